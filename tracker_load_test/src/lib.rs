//! shoal's load generator: realistic tracker traffic over loopback, measured.
//!
//! `tracker_load_test udp` drives a UDP tracker with a configurable workload (skewed
//! torrent popularity, a connect / announce / scrape mix, announce events, many source
//! addresses) from worker threads that each keep many requests in flight. It checks
//! every answer, prints a line each second and a summary at the end (responses per
//! second in total and by kind, peers per announce, share unanswered, latency
//! percentiles, and with `run.tracker_pid` the tracker's CPU time), and writes the
//! summary as JSON with `--json FILE`. `tracker_load_test udp-ceiling` is the minimal
//! responder that shows what the machine itself allows.
//!
//! `tracker_load_test http` drives an HTTP tracker with the same workload and the same
//! report, over keep-alive connections (with pipelining) or a new connection per
//! request.
//!
//! `tracker_load_test ws` drives a WebSocket (WebTorrent) tracker with the same workload:
//! each connection is a browser that announces with WebRTC offers, answers the offers
//! relayed to it and scrapes; the report counts every message received by kind.
//!
//! # Layout
//! - [`workload`]: the simulated clients (pure; randomness comes in as an argument).
//! - [`histogram`]: latency histogram.
//! - [`report`]: counters, per-second lines, the summary, the tracker's CPU time.
//! - [`udp`]: the UDP load workers and the ceiling responder.
//! - [`http`]: the HTTP load workers.
//! - [`ws`]: the WebSocket load workers.
//! - `runner` (private): the loopback check and the start / collect / join of workers
//!   that every protocol shares.
//! - `tcp`, `tls` (private): what the TCP load workers (HTTP, WebSocket) share: source
//!   addresses, non-blocking connects, reading and writing through an optional rustls
//!   client, and that client's config.
//!
//! It only ever sends to loopback addresses, runs for a bounded time and stops by
//! itself.

pub mod histogram;
pub mod http;
pub mod report;
mod runner;
mod tcp;
mod tls;
pub mod udp;
pub mod workload;
pub mod ws;
