//! What an operator sees of a running tracker: the workers' counters and the periodic
//! log line, the metrics endpoint and its page, and the last hour of figures behind the
//! page's charts.
//!
//! Nothing here is on the request path beyond a worker adding to its own counters:
//! readers sum the per-worker blocks when they need a figure, and no worker waits for
//! them. The imports run one way: [`metrics`] reads [`history`] and [`statistics`],
//! [`history`] reads [`statistics`], and [`statistics`] neither.
//!
//! - [`statistics`]: per-worker counters (each worker the only writer of its own), their
//!   sum, which tracker they are of, and the periodic log line.
//! - [`metrics`]: the same counters over HTTP (`/metrics` for Prometheus, `/stats.json`)
//!   and a page of live figures, on a small listener of its own, and the `[metrics]` config
//!   section.
//! - [`history`]: the last hour of figures for the page's charts: a bounded ring of
//!   samples.

pub mod history;
pub mod metrics;
pub mod statistics;
