#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The value types that the shoal wire formats share, at the bottom of the workspace's
//! dependency graph.
//!
//! `tracker_udp_protocol`, `tracker_http_protocol` and `tracker_ws_protocol` build on
//! this crate and on nothing else of shoal's, so that compiling a wire format compiles no
//! database client, TLS stack, poller or metrics encoder. `tracker_common` builds on it
//! too and re-exports these items at their old paths (`tracker_common::types`,
//! `tracker_common::swarm::ScrapeCounts`, `tracker_common::private::passkey`).
//!
//! # What belongs here
//! Pure values and pure parsing of client-sent bytes: what a request or response carries.
//! Nothing here does I/O, reads the clock, logs, spawns threads, reads configuration or
//! holds shared state, and the crate has no dependencies. Whatever needs one of those
//! (the passkey *set* in force and its file loader, the private-mode check, the swarm)
//! lives in `tracker_common` and uses these types. `scripts/check-layering.sh` checks
//! that neither this crate nor the wire crates depend on `tracker_common` or its heavy
//! dependencies.
//!
//! Nothing here panics on any input: the lints above forbid `unwrap`, `expect`, `panic!`
//! and unchecked indexing outside tests.
//!
//! # Layout
//! - `types`: [`InfoHash`], [`PeerId`], [`AnnounceEvent`], the [`Ip`] families, the
//!   peer entries of announce responses ([`ResponsePeer`], [`ResponsePeerWithId`]) and
//!   [`ScrapeCounts`].
//! - `passkey`: [`Passkey`], where a request path carries one ([`split_passkey_path`]),
//!   and what a parser found ([`PasskeyParam`]).

mod passkey;
mod types;

pub use passkey::{Endpoint, PASSKEY_LEN, Passkey, PasskeyParam, PasskeyPath, split_passkey_path};
pub use types::{
    AnnounceEvent, AnnouncePeer, InfoHash, Ip, PeerId, ResponsePeer, ResponsePeerWithId,
    ScrapeCounts,
};
