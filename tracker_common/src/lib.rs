//! Shared building blocks of the shoal trackers.
//!
//! Everything that more than one protocol needs lives here, so that the UDP, HTTP and
//! WebSocket trackers behave the same way where the protocols agree:
//!
//! - value types (`types`), time (`time`) and addresses (`addr`): pure data;
//! - the swarm (`swarm`): one shard of the torrent maps and the announce / scrape /
//!   expiry rules, pure and deterministic (time and randomness come in as arguments);
//!
//! This crate must not open sockets; the trackers own all network I/O.

pub mod addr;
pub mod swarm;
pub mod time;
pub mod types;
