//! The credit rules of private mode (see the parent module).
