//! Shared building blocks of the shoal trackers.
//!
//! Everything that more than one protocol needs lives here, so that the UDP, HTTP and
//! WebSocket trackers behave the same way where the protocols agree.
//!
//! # Layout
//! The folders name the architecture. [`swarm`] is the state and its rules, and imports
//! nothing of the crate but the value types; [`net`] carries bytes; [`observe`] counts
//! and shows; [`runtime`] starts the threads and wires all of them together; [`config`]
//! and [`private`] are used across them.
//! - [`types`], [`time`], [`addr`]: value types (re-exported from `tracker_types`, which
//!   the wire crates build on instead of this crate), coarse server time, canonical
//!   addresses. They stay at the root because every folder uses them and they use
//!   nothing of the crate.
//! - [`swarm`]: one shard of the torrent maps and the announce / scrape / expiry rules,
//!   pure and deterministic (time and randomness come in as arguments); and beside the
//!   shards:
//!   - [`swarm::routing`]: which request worker owns a torrent (a keyed hash, so that
//!     clients cannot aim their torrents at one worker).
//!   - [`swarm::scrape`]: splitting a scrape over the request workers and merging the
//!     answers.
//!   - [`swarm::snapshot`]: the swarm saved to a file (periodically and at a clean
//!     shutdown) and restored at start, in a checksummed format of its own.
//!   - [`swarm::access_list`]: allow / deny lists of info hashes and the `[access_list]`
//!     section, reloaded without locks on the hot path.
//!   - [`swarm::full_scrape`]: full scrapes (naming no torrent): gathered from every
//!     request worker, merged, and one cached body shared by every answer.
//! - [`net`]: sockets and the bytes on them:
//!   - [`net::listen`]: binds the listening sockets (a SO_REUSEPORT group per port),
//!     refusing a port that another process already serves.
//!   - [`net::transport`]: a TCP connection's byte stream, plain or TLS, for the socket
//!     workers of the TCP trackers; accepting connections, and closing them gracefully.
//!   - [`net::tls`]: the `[tls]` section and a reloadable rustls server config (ring
//!     provider).
//!   - [`net::slots`]: a TCP socket worker's connections by slot, with generations.
//!   - [`net::ready`]: a TCP socket worker's turn order: each connection with work left is
//!     served once per turn, so that none can hold the worker.
//!   - [`net::udp_batch`]: `recvmmsg` / `sendmmsg` batches over a socket the caller owns.
//!     It is UDP-only, and the crate's only `unsafe` code (each block with a `SAFETY`
//!     comment and a test), yet it stays here: the UDP tracker, and the load tester's
//!     generator and ceiling responder, must share the same batched I/O, and the load
//!     tester should not reach into the tracker's internals.
//!   - [`net::address_limit`]: the cap on open connections per client address (IPv4
//!     address, IPv6 /64) that both TCP trackers enforce at accept; it counts, the caller
//!     refuses.
//!   - [`net::shared_bytes`]: shared bodies (a full scrape's cached answer) in a
//!     connection's outgoing stream, written from their one copy.
//! - [`runtime`]: the running tracker:
//!   - [`runtime::server`]: start-up and thread wiring in a few named steps, and the handle
//!     of a running tracker.
//!   - [`runtime::supervisor`]: named threads; any worker that ends takes the process down;
//!     the signal thread.
//!   - [`runtime::request_worker`]: the loop of the threads that own the shards, generic
//!     over what a protocol's requests mean.
//!   - [`runtime::channel`]: channels between workers, bounded by the requests they hold.
//!   - [`runtime::privileges`]: the `[privileges]` section; chroot and switching to an
//!     unprivileged user once the sockets are bound.
//!   - [`runtime::cli`]: `-c` / `-p` / `-h` / `-V`, the config file and the environment,
//!     logging.
//! - [`observe`]: what an operator sees:
//!   - [`observe::statistics`]: per-worker counters (each worker the only writer of its
//!     own), their sum, which tracker they are of, and the periodic log line.
//!   - [`observe::metrics`]: the same counters over HTTP (`/metrics` for Prometheus,
//!     `/stats.json`) and a page of live figures, on a small listener of its own, and the
//!     `[metrics]` config section.
//!   - [`observe::history`]: the last hour of figures for the page's charts: a bounded ring
//!     of samples.
//! - [`cluster`]: several nodes as one tracker over NATS: the `[cluster]` section, the
//!   `cluster` thread (the NATS client on a tokio runtime of its own) that publishes the
//!   request workers' peer changes and hands them other nodes', resyncs, and its figures.
//! - [`api`]: the admin API (stats, torrents, the access list, bans, passkeys, reloads
//!   over HTTP with a bearer token) and its `[api]` section; it runs on the operator's
//!   HTTP server ([`net::http_server`]) on a thread of its own.
//! - [`files`]: files rewritten while the tracker runs, replaced whole.
//! - [`config`]: documented config sections (`config_section!`), the shared ones
//!   (logging, workers, swarm limits), and keys from the environment ([`config::env`]).
//! - [`private`]: private mode: passkeys, and per-user accounting written exactly once
//!   to SQLite or PostgreSQL.
//! - `testing`, only with the cargo feature `testing` (the crates' dev-dependencies
//!   turn it on): a tracker binary as a child process, a throwaway PostgreSQL server,
//!   `/metrics` readers and private mode's scenario tests, for the integration tests.
//!
//! The only sockets this crate opens are the listening ones of [`net::listen`], the
//! metrics endpoint of [`observe::metrics`] and the admin API of [`api`], which serve
//! themselves; apart from those two, reading, writing and polling them is the trackers'
//! business.

pub mod addr;
pub mod api;
pub mod cluster;
pub mod config;
pub mod files;
pub mod net;
pub mod observe;
pub mod private;
pub mod runtime;
pub mod swarm;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod types;
