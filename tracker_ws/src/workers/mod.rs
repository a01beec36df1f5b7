//! The tracker's threads. All network I/O lives here; the wire format and the swarm stay
//! pure.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub(crate) mod request;
pub(crate) mod socket;
