//! Shared building blocks of the shoal trackers.
//!
//! Everything that more than one protocol needs lives here, so that the UDP, HTTP and
//! WebSocket trackers behave the same way where the protocols agree.
//!
//! # Layout
//! - [`types`], [`time`], [`addr`]: value types, coarse server time, canonical addresses.
//! - [`swarm`]: one shard of the torrent maps and the announce / scrape / expiry rules;
//!   pure and deterministic (time and randomness come in as arguments).
//! - [`config`], [`cli`]: documented config sections, `-c` / `-p` / `-h` / `-V`.
//! - [`access_list`]: allow / deny lists, reloaded without locks on the hot path.
//! - [`supervisor`]: named threads; any worker that ends takes the process down.
//! - [`statistics`]: per-worker counters and the periodic log line.
//! - [`net`]: binds the listening sockets (a SO_REUSEPORT group per port), refusing a
//!   port that another process already serves.
//! - [`udp_batch`]: `recvmmsg` / `sendmmsg` batches over a socket the caller owns.
//!
//! The only sockets this crate opens are the listening ones of [`net`]; reading,
//! writing and polling them is the trackers' business.

pub mod access_list;
pub mod addr;
pub mod cli;
pub mod config;
pub mod net;
pub mod statistics;
pub mod supervisor;
pub mod swarm;
pub mod time;
pub mod types;
pub mod udp_batch;
