//! The `accounting` thread (see the parent module).
