//! Sockets and the bytes on them, for every protocol: binding the listening sockets,
//! accepting TCP connections under a per-address cap, a TCP connection's byte stream
//! (plain or TLS) and the TLS config, a TCP socket worker's connections and the order it
//! serves them in, and batched UDP I/O.
//!
//! What is here carries bytes without knowing what they mean: it parses and answers no
//! tracker message (the wire crates and the trackers' socket workers do), touches no
//! swarm, and starts no thread (the trackers run their socket workers on
//! [`crate::runtime`]'s supervisor).
//!
//! - [`listen`]: binds the listening sockets (a SO_REUSEPORT group per port), refusing a
//!   port that another process already serves.
//! - [`transport`]: a TCP connection's byte stream, plain or TLS, for the socket workers of
//!   the TCP trackers; accepting connections, and closing them gracefully.
//! - [`tls`]: the `[tls]` section and a reloadable rustls server config (ring provider).
//! - [`slots`]: a TCP socket worker's connections by slot, with generations.
//! - [`ready`]: a TCP socket worker's turn order: each connection with work left is served
//!   once per turn, so that none can hold the worker.
//! - [`udp_batch`]: `recvmmsg` / `sendmmsg` batches over a socket the caller owns. It is
//!   UDP-only, and the crate's only `unsafe` code (each block with a `SAFETY` comment and a
//!   test), yet it stays here: the UDP tracker, and the load tester's generator and ceiling
//!   responder, must share the same batched I/O, and the load tester should not reach into
//!   the tracker's internals.
//! - [`gather`]: when a UDP socket worker, after a round of few datagrams, waits before
//!   it reads again (`network.gather_micros`).
//! - [`address_limit`]: the cap on open connections per client address (IPv4 address, IPv6
//!   /64) that both TCP trackers enforce at accept; it counts, the caller refuses.
//! - [`front`]: the TCP front, the one event loop of both TCP trackers' socket workers,
//!   generic over the protocol: accepting, reading, writing, closing, the ready queue and
//!   the tracker-wide count of queued bytes.
//! - [`rate_limit`]: token buckets per client address (IPv4 address, IPv6 /64) and kind
//!   of request, for the whole tracker, in a fixed table that a spoofed flood cannot
//!   grow; it decides, the caller drops or refuses.
//! - [`bans`]: banned networks (`[bans]`); it decides, the caller drops or closes.
//! - [`http_server`]: a small HTTP/1.1 server for the operator's listeners (metrics,
//!   admin API): one thread, bounded connections, a deadline per request.
//! - [`shared_bytes`]: shared bodies (a full scrape's cached answer) in a connection's
//!   outgoing stream, written from their one copy.

pub mod address_limit;
pub mod bans;
pub mod front;
pub mod gather;
pub mod http_server;
pub mod listen;
pub mod rate_limit;
pub mod ready;
pub mod shared_bytes;
pub mod slots;
pub mod tls;
pub mod transport;
pub mod udp_batch;
