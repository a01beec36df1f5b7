//! Shared building blocks of the shoal trackers.
//!
//! Everything that more than one protocol needs lives here, so that the UDP, HTTP and
//! WebSocket trackers behave the same way where the protocols agree.
//!
//! # Layout
//! - [`types`], [`time`], [`addr`]: value types (re-exported from `tracker_types`, which
//!   the wire crates build on instead of this crate), coarse server time, canonical
//!   addresses.
//! - [`swarm`]: one shard of the torrent maps and the announce / scrape / expiry rules;
//!   pure and deterministic (time and randomness come in as arguments).
//! - [`routing`]: which request worker owns a torrent (a keyed hash, so that clients
//!   cannot aim their torrents at one worker).
//! - [`request_worker`]: the loop of the threads that own the shards, generic over what
//!   a protocol's requests mean.
//! - [`scrape`]: splitting scrapes over request workers and merging the answers.
//! - [`full_scrape`]: full scrapes gathered from every request worker, merged, and one
//!   cached body shared by every answer.
//! - [`shared_bytes`]: shared bodies in a connection's outgoing stream, written from
//!   their one copy.
//! - [`channel`]: channels between workers, bounded by the requests they hold.
//! - [`server`]: start-up and thread wiring, and the handle of a running tracker.
//! - [`config`], [`cli`]: documented config sections, `-c` / `-p` / `-h` / `-V`.
//! - [`access_list`]: allow / deny lists, reloaded without locks on the hot path.
//! - [`snapshot`]: the swarm saved to a file (periodically and at a clean shutdown) and
//!   restored at start, in a checksummed format of its own.
//! - [`supervisor`]: named threads; any worker that ends takes the process down.
//! - [`statistics`]: per-worker counters and the periodic log line.
//! - [`metrics`]: the same counters over HTTP (`/metrics` for Prometheus, `/stats.json`)
//!   on a small listener of its own, and the `[metrics]` config section.
//! - [`udp_batch`]: `recvmmsg` / `sendmmsg` batches over a socket the caller owns. It is
//!   UDP-only, and the crate's only `unsafe` code (each block with a `SAFETY` comment and
//!   a test), yet it stays here: the UDP tracker, and the load tester's generator and
//!   ceiling responder, must share the same batched I/O, and the load tester should not
//!   reach into the tracker's internals. A crate of its own for one module would add a
//!   crate without separating anything more.
//! - [`tls`]: the `[tls]` section and a reloadable rustls server config (ring provider).
//! - [`slots`]: a TCP socket worker's connections by slot, with generations.
//! - [`ready`]: a TCP socket worker's turn order: each connection with work left is
//!   served once per turn, so that none can hold the worker.
//! - [`transport`]: a TCP connection's byte stream, plain or TLS, for the socket workers
//!   of the TCP trackers; accepting connections, and closing them gracefully.
//! - [`address_limit`]: the cap on open connections per client address (IPv4 address,
//!   IPv6 /64) that both TCP trackers enforce at accept.
//! - [`testing`]: a tracker binary as a child process, and a throwaway PostgreSQL server,
//!   for the integration tests.
//! - [`private`]: private mode: passkeys, and per-user accounting written exactly once
//!   to SQLite or PostgreSQL.
//! - [`privileges`]: the `[privileges]` section; chroot and switching to an unprivileged
//!   user once the sockets are bound.
//! - [`net`]: binds the listening sockets (a SO_REUSEPORT group per port), refusing a
//!   port that another process already serves.
//!
//! The only sockets this crate opens are the listening ones of [`net`] and the metrics
//! endpoint of [`metrics`], which serves itself; apart from that one, reading,
//! writing and polling them is the trackers' business.

pub mod access_list;
pub mod addr;
pub mod address_limit;
pub mod channel;
pub mod cli;
pub mod config;
pub mod full_scrape;
pub mod history;
pub mod metrics;
pub mod net;
pub mod private;
pub mod privileges;
pub mod ready;
pub mod request_worker;
pub mod routing;
pub mod scrape;
pub mod server;
pub mod shared_bytes;
pub mod slots;
pub mod snapshot;
pub mod statistics;
pub mod supervisor;
pub mod swarm;
pub mod testing;
pub mod time;
pub mod tls;
pub mod transport;
pub mod types;
pub mod udp_batch;
