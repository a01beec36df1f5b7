//! The metrics endpoint: the workers' counters over HTTP, as Prometheus text at
//! `/metrics` and as JSON at `/stats.json`, on a listener of its own; whether the
//! tracker is whole at `/health` ([`health`]); and a page of live figures and charts at
//! `/`, whose last hour the metrics thread keeps ([`History`], served at
//! `/history.json`). The page's files are built into the binary.
//!
//! Nothing here runs on the request path. A scrape reads the per-worker counters
//! ([`Statistics::snapshot`]) and encodes what it read; the workers never wait for it.
//!
//! # Layout
//! - this module: what is served, encoded from a [`Snapshot`] (no I/O);
//! - [`health`]: the answer to `/health` (no I/O);
//! - [`server`]: the listener, [`MetricsServer`]: one thread and one mio poll serving
//!   many connections at once, each with a deadline on its whole request
//!   ([`REQUEST_TIMEOUT`]) and bounds on their number ([`MAX_CONNECTIONS`]) and on what
//!   a client may make it read ([`MAX_REQUEST_BYTES`]), so that no client can delay a
//!   scrape. It is for a scraper on a trusted network, not for the public: its address
//!   defaults to loopback.
//!
//! [`Statistics::snapshot`]: crate::observe::statistics::Statistics::snapshot

pub mod health;
pub mod server;

use std::borrow::Cow;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

pub use server::{
    Limits, MAX_CONNECTIONS, MAX_REQUEST_BYTES, MetricsServer, REQUEST_TIMEOUT, bind,
};

use crate::cluster::stats::{ClusterSnapshot, DELAY_BUCKETS_MS};
#[cfg(doc)]
use crate::observe::history::History;
use crate::observe::statistics::{AdminChange, Family, Protocol, Snapshot};
use crate::private::passkey::Refusal;
use crate::private::stats::PrivateSnapshot;

/// The page and what it loads, built into the binary: path, content type, body. uPlot's
/// files are vendored from npm (see `assets/README.md`).
pub(crate) const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../assets/index.html"),
    ),
    (
        "/page.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/page.js"),
    ),
    (
        "/uplot.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/uplot.min.js"),
    ),
    (
        "/uplot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/uplot.min.css"),
    ),
];

/// Declares a tracker's `[metrics]` config section, `MetricsConfig`, whose default
/// address is 127.0.0.1 on `$port`. A macro rather than one shared struct because the
/// default port differs per tracker and serde fills a key left out of the file from the
/// section's own `Default`.
#[macro_export]
macro_rules! metrics_config_section {
    ($port:literal) => {
        $crate::config_section! {
            /// The metrics endpoint: `/metrics` (Prometheus text), `/stats.json`,
            /// `/health`, and a page of live figures and charts of the last hour at `/`.
            pub struct MetricsConfig {
                /// Serve the metrics endpoint.
                pub enabled: bool,
                /// Address and port of the metrics endpoint (plain HTTP). It tells anyone
                /// who can reach it how busy the tracker is: keep it on loopback or a
                /// private network. Port 0 lets the OS choose (the chosen port is logged).
                pub address: ::std::net::SocketAddr,
                /// Seconds between two samples of the page's charts (1 to 3600). The
                /// charts keep the last hour of samples.
                pub history_interval_secs: u64,
            }
        }

        impl Default for MetricsConfig {
            fn default() -> Self {
                Self {
                    enabled: true,
                    address: ::std::net::SocketAddr::from(([127, 0, 0, 1], $port)),
                    history_interval_secs: 10,
                }
            }
        }

        impl MetricsConfig {
            /// The address to serve metrics on, if enabled.
            pub fn listen_address(&self) -> Option<::std::net::SocketAddr> {
                self.enabled.then_some(self.address)
            }

            /// The time between two samples of the page's charts.
            pub fn history_interval(&self) -> ::std::time::Duration {
                ::std::time::Duration::from_secs(self.history_interval_secs)
            }

            /// Rejects an interval outside 1 to 3600 seconds.
            ///
            /// # Errors
            /// The interval is out of range.
            pub fn validate(&self) -> ::anyhow::Result<()> {
                if !(1..=3600).contains(&self.history_interval_secs) {
                    ::anyhow::bail!("metrics.history_interval_secs: must be between 1 and 3600");
                }
                Ok(())
            }
        }
    };
}

/// What the figures are of, fixed at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The tracker.
    pub protocol: Protocol,
    /// Its version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// When it started, in Unix seconds.
    pub start_unix_secs: u64,
}

/// A family of series with the labels given, encoded in the order given (the
/// prometheus-client `Family` keeps its series in a hash map, so that their order would
/// change from one scrape to the next).
#[derive(Debug)]
struct Ordered<M> {
    name: &'static str,
    help: &'static str,
    series: Vec<(Vec<(&'static str, &'static str)>, M)>,
}

impl<M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static> Collector for Ordered<M> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((_, first)) = self.series.first() else {
            return Ok(());
        };
        // The registry ends the help of what is registered with it with a full stop.
        let help = format!("{}.", self.help);
        let mut family = encoder.encode_descriptor(self.name, &help, None, first.metric_type())?;
        for (labels, metric) in &self.series {
            metric.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

fn gauge(value: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The figures in the OpenMetrics text format (which Prometheus scrapes), every name
/// prefixed `shoal_` and every series labelled with the protocol.
///
/// # Errors
/// Only if formatting fails, which writing to a `String` does not.
pub fn encode_prometheus(s: &Snapshot, id: &Identity) -> Result<String, std::fmt::Error> {
    let protocol = [(
        Cow::Borrowed("protocol"),
        Cow::Borrowed(id.protocol.label()),
    )];
    let mut registry = Registry::with_prefix_and_labels("shoal", protocol.into_iter());

    let mut requests = Vec::new();
    for &kind in id.protocol.request_kinds() {
        for family in Family::ALL {
            let value = s.requests[kind as usize][family as usize];
            let labels = vec![("kind", kind.label()), ("family", family.label())];
            requests.push((labels, ConstCounter::new(value)));
        }
    }
    registry.register_collector(Box::new(Ordered {
        name: "requests",
        help: "Requests received, by kind and client address family",
        series: requests,
    }));
    let mut responses = Vec::new();
    for &kind in id.protocol.response_kinds() {
        for family in Family::ALL {
            let value = s.responses_by_kind[kind as usize][family as usize];
            let labels = vec![("kind", kind.label()), ("family", family.label())];
            responses.push((labels, ConstCounter::new(value)));
        }
    }
    registry.register_collector(Box::new(Ordered {
        name: "responses",
        help: "Responses written, by kind (error: an error answer) and client address family",
        series: responses,
    }));
    let errors = [
        ("bad_request", s.bad_requests),
        ("access_denied", s.access_denied),
        ("rate_limited", s.rate_limited),
        ("banned", s.banned),
        ("dropped", s.dropped),
        ("rejected_by_limits", s.rejected_by_limits),
        ("throttled", s.throttled),
    ];
    registry.register_collector(Box::new(Ordered {
        name: "errors",
        help: "Requests not served as asked, by cause: bad_request (malformed or refused \
               before routing), access_denied (access list), rate_limited (over the address's \
               rate limit), banned (a UDP packet dropped or a connection closed at accept for \
               a ban), dropped (a full channel or an overloaded worker), \
               rejected_by_limits (answered but not stored: a swarm limit), throttled (a \
               re-announce sooner than swarm.min_announce_interval_secs: answered with the \
               counts and no peers, not stored)",
        series: errors
            .into_iter()
            .map(|(cause, value)| (vec![("cause", cause)], ConstCounter::new(value)))
            .collect(),
    }));
    registry.register(
        "dropped_full_channel",
        "Requests and responses dropped because a channel between workers was full (part \
         of errors_total{cause=\"dropped\"})",
        ConstCounter::new(s.dropped_full_channel),
    );

    registry.register("torrents", "Torrents tracked", gauge(s.torrents));
    registry.register("seeders", "Seeders tracked", gauge(s.seeders));
    registry.register("leechers", "Leechers tracked", gauge(s.leechers));
    registry.register(
        "downloads_completed",
        "Downloads counted as completed",
        ConstCounter::new(s.completed),
    );
    registry.register(
        "peers_cleaned",
        "Peers removed by cleaning because they were not seen for too long",
        ConstCounter::new(s.peers_cleaned),
    );
    registry.register(
        "archived_torrents",
        "Emptied torrents whose completed count is kept",
        gauge(s.archived_torrents),
    );
    registry.register_with_unit(
        "archive",
        "Memory the archive of completed counts takes",
        Unit::Bytes,
        gauge(s.archive_bytes),
    );
    registry.register_with_unit(
        "received",
        "Bytes received from clients (UDP payloads; TCP stream bytes, after TLS)",
        Unit::Bytes,
        ConstCounter::new(s.bytes_received),
    );
    registry.register_with_unit(
        "sent",
        "Bytes sent to clients (UDP payloads; TCP stream bytes, before TLS)",
        Unit::Bytes,
        ConstCounter::new(s.bytes_sent),
    );
    if id.protocol.has_connections() {
        registry.register(
            "connections_open",
            "Client connections open now",
            gauge(s.open_connections),
        );
        registry.register_collector(Box::new(Ordered {
            name: "connections_refused",
            help: "Connections closed at accept, by cause: max_connections (the tracker's \
                   limit was reached), per_ip (the client address's limit was reached)",
            series: vec![
                (
                    vec![("cause", "max_connections")],
                    ConstCounter::new(s.connections_refused),
                ),
                (
                    vec![("cause", "per_ip")],
                    ConstCounter::new(s.connections_refused_per_ip),
                ),
            ],
        }));
        registry.register(
            "connections_timed_out",
            "Connections closed for being idle too long",
            ConstCounter::new(s.connections_timed_out),
        );
        registry.register(
            "connections_slow_readers",
            "Connections closed for not reading what was sent to them",
            ConstCounter::new(s.connections_slow_readers),
        );
        registry.register_with_unit(
            "queued",
            "Bytes waiting to be sent over all connections",
            Unit::Bytes,
            gauge(s.queued_bytes),
        );
    }
    if id.protocol.relays() {
        registry.register_collector(Box::new(Ordered {
            name: "relayed",
            help: "WebRTC offers and answers relayed to peers",
            series: vec![
                (vec![("kind", "offer")], ConstCounter::new(s.offers_relayed)),
                (
                    vec![("kind", "answer")],
                    ConstCounter::new(s.answers_relayed),
                ),
            ],
        }));
        registry.register(
            "relayed_shed",
            "Offers and answers shed because the connection they were for was not keeping up",
            ConstCounter::new(s.relayed_shed),
        );
    }
    if s.private.enabled {
        register_private(&mut registry, &s.private);
    }
    if s.cluster.enabled {
        register_cluster(&mut registry, &s.cluster);
    }
    registry.register_collector(Box::new(Ordered {
        name: "admin_changes",
        help: "Changes made through the admin API, by what they changed",
        series: AdminChange::ALL
            .into_iter()
            .map(|kind| {
                let value = s.admin.changes.get(kind as usize).copied().unwrap_or(0);
                (vec![("what", kind.label())], ConstCounter::new(value))
            })
            .collect(),
    }));
    registry.register(
        "admin_unauthorized",
        "Admin API requests refused for a missing or wrong token",
        ConstCounter::new(s.admin.unauthorized),
    );
    registry.register("bans", "Banned networks in force", gauge(s.admin.bans));
    registry.register(
        "rate_limit_addresses",
        "Client addresses the rate limits track; at most rate_limit_slots (0 when off)",
        gauge(s.rate_limit_addresses),
    );
    registry.register(
        "rate_limit_slots",
        "Slots of the rate limits' table, rate_limits.max_tracked_addresses (0 when off)",
        gauge(s.rate_limit_slots),
    );
    registry.register(
        "access_list_info_hashes",
        "Info hashes in the access list",
        gauge(s.access_list_len),
    );
    registry.register_with_unit(
        "access_list_last_reload_timestamp",
        "When the access list was last loaded, in Unix time",
        Unit::Seconds,
        gauge(s.access_list_loaded_unix_secs),
    );
    registry.register_with_unit(
        "start_time",
        "When the tracker started, in Unix time",
        Unit::Seconds,
        gauge(id.start_unix_secs),
    );
    // A gauge of 1 labelled with the version, as Prometheus's own `*_build_info`: the
    // OpenMetrics `info` type would be the same series, but a parser of the older text
    // format refuses that type.
    registry.register_collector(Box::new(Ordered {
        name: "build_info",
        help: "The tracker's version",
        series: vec![(vec![("version", id.version)], ConstGauge::new(1i64))],
    }));

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

/// A cluster node's series, `shoal_cluster_*`.
fn register_cluster(registry: &mut Registry, c: &ClusterSnapshot) {
    registry.register(
        "cluster_bus_up",
        "Whether the connection to NATS is up (1) or not (0)",
        gauge(u64::from(c.bus_up)),
    );
    registry.register(
        "cluster_live_nodes",
        "Other nodes heard from in the last seconds",
        gauge(c.live_nodes),
    );
    registry.register(
        "cluster_remote_peers",
        "Peers stored from other nodes' changes",
        gauge(c.remote_peers),
    );
    registry.register_collector(Box::new(Ordered {
        name: "cluster_changes",
        help: "Peer changes: published (this node's), applied (other nodes'), dropped \
               (direction out: the hand-off to the bus was full or the bus down; in: a \
               request worker's channel was full)",
        series: vec![
            (
                vec![("outcome", "published"), ("direction", "out")],
                ConstCounter::new(c.changes_published),
            ),
            (
                vec![("outcome", "dropped"), ("direction", "out")],
                ConstCounter::new(c.changes_dropped_outgoing),
            ),
            (
                vec![("outcome", "applied"), ("direction", "in")],
                ConstCounter::new(c.changes_applied),
            ),
            (
                vec![("outcome", "dropped"), ("direction", "in")],
                ConstCounter::new(c.changes_dropped_incoming),
            ),
        ],
    }));
    registry.register_collector(Box::new(Ordered {
        name: "cluster_relays",
        help: "WebTorrent offers and answers between nodes: published (for peers on other \
               nodes), delivered (from other nodes, to a connection here), dropped \
               (direction out: the hand-off to the bus was full or the bus down; in: \
               unreadable, a request worker's channel full, or the peer gone)",
        series: vec![
            (
                vec![("outcome", "published"), ("direction", "out")],
                ConstCounter::new(c.relays_published),
            ),
            (
                vec![("outcome", "dropped"), ("direction", "out")],
                ConstCounter::new(c.relays_dropped_outgoing),
            ),
            (
                vec![("outcome", "delivered"), ("direction", "in")],
                ConstCounter::new(c.relays_delivered),
            ),
            (
                vec![("outcome", "dropped"), ("direction", "in")],
                ConstCounter::new(c.relays_dropped_incoming),
            ),
        ],
    }));
    registry.register(
        "cluster_batches_published",
        "Batches of changes published, heartbeats included",
        ConstCounter::new(c.batches_published),
    );
    registry.register_collector(Box::new(Ordered {
        name: "cluster_bytes",
        help: "Bytes of change batches published and received",
        series: vec![
            (
                vec![("direction", "out")],
                ConstCounter::new(c.bytes_published),
            ),
            (
                vec![("direction", "in")],
                ConstCounter::new(c.bytes_received),
            ),
        ],
    }));
    registry.register(
        "cluster_bad_batches",
        "Batches from other nodes that could not be read",
        ConstCounter::new(c.bad_batches),
    );
    registry.register(
        "cluster_sequence_gaps",
        "Batches of other nodes that never arrived",
        ConstCounter::new(c.sequence_gaps),
    );
    registry.register(
        "cluster_slow_consumer",
        "Times this node fell behind its subscription and messages were dropped",
        ConstCounter::new(c.slow_consumer),
    );
    registry.register_collector(Box::new(Ordered {
        name: "cluster_resyncs",
        help: "Resyncs: started by this node, failed, answered for other nodes, refused \
               (too many of other nodes' requests waiting)",
        series: vec![
            (vec![("outcome", "started")], ConstCounter::new(c.resyncs)),
            (
                vec![("outcome", "failed")],
                ConstCounter::new(c.resyncs_failed),
            ),
            (
                vec![("outcome", "served")],
                ConstCounter::new(c.resyncs_served),
            ),
            (
                vec![("outcome", "refused")],
                ConstCounter::new(c.resyncs_refused),
            ),
        ],
    }));
    registry.register(
        "cluster_resync_peers",
        "Peers received from other nodes by resyncs",
        ConstCounter::new(c.resync_peers),
    );
    let buckets: Vec<(f64, u64)> = DELAY_BUCKETS_MS
        .iter()
        .zip(c.delay_buckets)
        .map(|(bound, count)| (*bound as f64 / 1000.0, count))
        .collect();
    registry.register_collector(Box::new(DelayHistogram {
        buckets,
        count: c.delay_count,
        sum_secs: c.delay_sum_ms as f64 / 1000.0,
    }));
}

/// How long other nodes' changes took to arrive, as a Prometheus histogram.
#[derive(Debug)]
struct DelayHistogram {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum_secs: f64,
}

impl Collector for DelayHistogram {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metric = ConstHistogram {
            buckets: &self.buckets,
            count: self.count,
            sum: self.sum_secs,
        };
        let mut family = encoder.encode_descriptor(
            "cluster_change_delay",
            "Time from a change's publication on another node to its arrival here (wall \
             clocks: as close as NTP keeps them).",
            Some(&Unit::Seconds),
            metric.metric_type(),
        )?;
        metric.encode(family.encode_family(&Vec::<(&str, &str)>::new())?)
    }
}

/// A histogram of fixed counts.
#[derive(Debug)]
struct ConstHistogram<'a> {
    buckets: &'a [(f64, u64)],
    count: u64,
    sum: f64,
}

impl TypedMetric for ConstHistogram<'_> {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ConstHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        // The encoder wants each bucket's own count; ours are cumulative.
        let mut previous = 0;
        let mut own: Vec<(f64, u64)> = Vec::with_capacity(self.buckets.len() + 1);
        for (bound, cumulative) in self.buckets {
            own.push((*bound, cumulative.saturating_sub(previous)));
            previous = *cumulative;
        }
        own.push((f64::INFINITY, self.count.saturating_sub(previous)));
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum, self.count, &own, None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Private mode's series, `shoal_private_*`.
fn register_private(registry: &mut Registry, p: &PrivateSnapshot) {
    registry.register(
        "private_passkeys",
        "Passkeys in force",
        gauge(p.passkeys_loaded),
    );
    registry.register(
        "private_peers",
        "Peers with an accounting report waiting in the request workers",
        gauge(p.peers),
    );
    registry.register(
        "private_credits_pending",
        "Peer reports waiting to be committed to the accounting database",
        gauge(p.credits_pending),
    );
    registry.register_collector(Box::new(Ordered {
        name: "private_batches",
        help: "Accounting batches by outcome: committed, already_applied (a retry whose \
               earlier attempt had been applied), failed (an attempt that will be retried)",
        series: [
            ("committed", p.batches_committed),
            ("already_applied", p.batches_already_applied),
            ("failed", p.batches_failed),
        ]
        .into_iter()
        .map(|(outcome, n)| (vec![("outcome", outcome)], ConstCounter::new(n)))
        .collect(),
    }));
    registry.register(
        "private_credits_committed",
        "Peer reports committed to the accounting database",
        ConstCounter::new(p.credits_committed),
    );
    registry.register_with_unit(
        "private_flush",
        "Time spent in successful accounting commits (divide by the batches for the mean \
         flush latency)",
        Unit::Seconds,
        ConstCounter::new(p.flush_micros_total as f64 / 1e6),
    );
    registry.register_with_unit(
        "private_last_flush",
        "How long the last successful accounting commit took",
        Unit::Seconds,
        ConstGauge::new(p.last_flush_micros as f64 / 1e6),
    );
    registry.register_with_unit(
        "private_last_commit_timestamp",
        "When the last accounting batch was committed, in Unix time",
        Unit::Seconds,
        gauge(p.last_commit_unix_secs),
    );
    registry.register(
        "private_database_up",
        "1 while the accounting database is open and its last use worked, else 0 (reports \
         then wait, and are committed when it is back)",
        gauge(u64::from(p.database_up)),
    );
    registry.register_with_unit(
        "private_site_loaded_timestamp",
        "When the site's tables (passkeys, users, registered torrents) were last read from \
         the accounting database, in Unix time (0: not yet; the cache or file is in force)",
        Unit::Seconds,
        gauge(p.site_loaded_unix_secs),
    );
    registry.register_collector(Box::new(Ordered {
        name: "private_refused",
        help: "Private-mode requests refused, by cause",
        series: Refusal::ALL
            .into_iter()
            .map(|cause| {
                (
                    vec![("cause", cause.label())],
                    ConstCounter::new(p.refused_for(cause)),
                )
            })
            .collect(),
    }));
    registry.register(
        "private_flagged_announces",
        "Announces whose implied upload speed exceeded accounting.flag_upload_bytes_per_sec \
         (credited, and counted in shoal_credits.flagged_announces)",
        ConstCounter::new(p.flagged),
    );
    registry.register_collector(Box::new(Ordered {
        name: "private_reports",
        help: "Committed reports the database found behind their peer's mark (stale: \
               credited nothing) or overlapping it (another tracker, or the process before a \
               restart, reported part of their span: credited beyond the mark only)",
        series: vec![
            (
                vec![("outcome", "stale")],
                ConstCounter::new(p.reports_stale),
            ),
            (
                vec![("outcome", "overlapping")],
                ConstCounter::new(p.reports_overlapping),
            ),
        ],
    }));
    registry.register(
        "private_evictions",
        "Peer reports evicted because accounting.max_peers or max_peers_per_passkey was \
         reached (a new peer took the place of the least recently seen)",
        ConstCounter::new(p.evicted),
    );
}

/// The same figures as [`encode_prometheus`], as one JSON object.
pub fn to_json(s: &Snapshot, id: &Identity) -> serde_json::Value {
    let by_family = |cells: &[u64; 2]| {
        serde_json::Map::from_iter(
            Family::ALL
                .into_iter()
                .zip(cells)
                .map(|(family, n)| (family.label().to_owned(), (*n).into())),
        )
    };
    let requests = serde_json::Map::from_iter(id.protocol.request_kinds().iter().map(|&k| {
        (
            k.label().to_owned(),
            by_family(&s.requests[k as usize]).into(),
        )
    }));
    let responses = serde_json::Map::from_iter(id.protocol.response_kinds().iter().map(|&k| {
        (
            k.label().to_owned(),
            by_family(&s.responses_by_kind[k as usize]).into(),
        )
    }));
    let mut json = serde_json::json!({
        "protocol": id.protocol.label(),
        "version": id.version,
        "start_time_unix_secs": id.start_unix_secs,
        "requests": requests,
        "responses": responses,
        "errors": {
            "bad_request": s.bad_requests,
            "access_denied": s.access_denied,
            "rate_limited": s.rate_limited,
            "banned": s.banned,
            "throttled": s.throttled,
            "dropped": s.dropped,
            "rejected_by_limits": s.rejected_by_limits,
        },
        "dropped_full_channel": s.dropped_full_channel,
        "torrents": s.torrents,
        "seeders": s.seeders,
        "leechers": s.leechers,
        "downloads_completed": s.completed,
        "peers_cleaned": s.peers_cleaned,
        "archived_torrents": s.archived_torrents,
        "archive_bytes": s.archive_bytes,
        "received_bytes": s.bytes_received,
        "sent_bytes": s.bytes_sent,
        "access_list": {
            "info_hashes": s.access_list_len,
            "last_reload_unix_secs": s.access_list_loaded_unix_secs,
        },
        "bans": s.admin.bans,
        "rate_limits": {
            "tracked_addresses": s.rate_limit_addresses,
            "table_slots": s.rate_limit_slots,
        },
        "admin": {
            "changes": AdminChange::ALL
                .into_iter()
                .map(|kind| {
                    let value = s.admin.changes.get(kind as usize).copied().unwrap_or(0);
                    (kind.label().to_string(), serde_json::Value::from(value))
                })
                .collect::<serde_json::Map<_, _>>(),
            "unauthorized": s.admin.unauthorized,
        },
    });
    if let Some(map) = json.as_object_mut() {
        if id.protocol.has_connections() {
            map.insert("connections_open".into(), s.open_connections.into());
            map.insert(
                "connections".into(),
                serde_json::json!({
                    "open": s.open_connections,
                    "refused": {
                        "max_connections": s.connections_refused,
                        "per_ip": s.connections_refused_per_ip,
                    },
                    "timed_out": s.connections_timed_out,
                    "slow_readers": s.connections_slow_readers,
                    "queued_bytes": s.queued_bytes,
                }),
            );
        }
        if s.private.enabled {
            let p = &s.private;
            let refused = serde_json::Map::from_iter(
                Refusal::ALL
                    .into_iter()
                    .map(|cause| (cause.label().to_owned(), p.refused_for(cause).into())),
            );
            map.insert(
                "private".into(),
                serde_json::json!({
                    "passkeys": p.passkeys_loaded,
                    "peers": p.peers,
                    "credits_pending": p.credits_pending,
                    "batches": {
                        "committed": p.batches_committed,
                        "already_applied": p.batches_already_applied,
                        "failed": p.batches_failed,
                    },
                    "credits_committed": p.credits_committed,
                    "flush_seconds_total": p.flush_micros_total as f64 / 1e6,
                    "last_flush_seconds": p.last_flush_micros as f64 / 1e6,
                    "last_commit_unix_secs": p.last_commit_unix_secs,
                    "commit_failures_in_a_row": p.commit_failures_in_a_row,
                    "refused": refused,
                    "flagged_announces": p.flagged,
                    "evictions": p.evicted,
                    "reports": {
                        "stale": p.reports_stale,
                        "overlapping": p.reports_overlapping,
                    },
                    "database_up": p.database_up,
                    "site_loaded_unix_secs": p.site_loaded_unix_secs,
                }),
            );
        }
        if s.cluster.enabled {
            map.insert(
                "cluster".into(),
                serde_json::to_value(s.cluster).unwrap_or_default(),
            );
        }
        if id.protocol.relays() {
            map.insert(
                "relayed".into(),
                serde_json::json!({
                    "offer": s.offers_relayed,
                    "answer": s.answers_relayed,
                    "shed": s.relayed_shed,
                }),
            );
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            requests: [[1, 2], [3, 4], [5, 6]],
            responses_by_kind: [[7, 8], [9, 10], [11, 12], [13, 14]],
            bad_requests: 15,
            access_denied: 16,
            dropped: 17,
            dropped_full_channel: 18,
            rejected_by_limits: 19,
            torrents: 20,
            seeders: 21,
            leechers: 22,
            completed: 23,
            peers_cleaned: 24,
            archived_torrents: 25,
            archive_bytes: 26,
            bytes_received: 27,
            bytes_sent: 28,
            open_connections: 29,
            connections_refused: 36,
            connections_refused_per_ip: 37,
            connections_timed_out: 38,
            connections_slow_readers: 39,
            queued_bytes: 40,
            offers_relayed: 30,
            answers_relayed: 31,
            relayed_shed: 32,
            access_list_len: 33,
            access_list_loaded_unix_secs: 34,
            ..Snapshot::default()
        }
    }

    fn id(protocol: Protocol) -> Identity {
        Identity {
            protocol,
            version: "9.8.7",
            start_unix_secs: 35,
        }
    }

    #[test]
    fn prometheus_text_has_every_series_of_the_protocol() {
        let text = encode_prometheus(&snapshot(), &id(Protocol::Udp)).unwrap();
        for line in [
            "# TYPE shoal_requests counter",
            "shoal_requests_total{protocol=\"udp\",kind=\"connect\",family=\"ipv4\"} 1",
            "shoal_requests_total{protocol=\"udp\",kind=\"scrape\",family=\"ipv6\"} 6",
            "shoal_responses_total{protocol=\"udp\",kind=\"error\",family=\"ipv6\"} 14",
            "shoal_errors_total{protocol=\"udp\",cause=\"rejected_by_limits\"} 19",
            "shoal_dropped_full_channel_total{protocol=\"udp\"} 18",
            "# TYPE shoal_torrents gauge",
            "shoal_torrents{protocol=\"udp\"} 20",
            "shoal_downloads_completed_total{protocol=\"udp\"} 23",
            "shoal_peers_cleaned_total{protocol=\"udp\"} 24",
            "shoal_archive_bytes{protocol=\"udp\"} 26",
            "# UNIT shoal_received_bytes bytes",
            "shoal_received_bytes_total{protocol=\"udp\"} 27",
            "shoal_sent_bytes_total{protocol=\"udp\"} 28",
            "shoal_access_list_info_hashes{protocol=\"udp\"} 33",
            "shoal_access_list_last_reload_timestamp_seconds{protocol=\"udp\"} 34",
            "shoal_start_time_seconds{protocol=\"udp\"} 35",
            "# TYPE shoal_build_info gauge",
            "shoal_build_info{protocol=\"udp\",version=\"9.8.7\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // Not UDP's: connections and relays.
        assert!(!text.contains("connections_open"), "{text}");
        assert!(!text.contains("relayed"), "{text}");
        // Every series has its HELP and TYPE.
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# HELP ")).count(),
            text.lines().filter(|l| l.starts_with("# TYPE ")).count()
        );
    }

    /// The same figures give the same text, series in kind then family order, so that
    /// two scrapes can be compared by eye or by diff.
    #[test]
    fn series_come_in_a_fixed_order() {
        let text = encode_prometheus(&snapshot(), &id(Protocol::Udp)).unwrap();
        for _ in 0..10 {
            assert_eq!(
                encode_prometheus(&snapshot(), &id(Protocol::Udp)).unwrap(),
                text
            );
        }
        let position = |kind: &str, family: &str| {
            text.find(&format!(
                "shoal_requests_total{{protocol=\"udp\",kind=\"{kind}\",family=\"{family}\"}}"
            ))
            .unwrap()
        };
        let order = [
            position("connect", "ipv4"),
            position("connect", "ipv6"),
            position("announce", "ipv4"),
            position("announce", "ipv6"),
            position("scrape", "ipv4"),
            position("scrape", "ipv6"),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn tcp_trackers_have_connections_and_ws_relays_and_no_connects() {
        let http = encode_prometheus(&snapshot(), &id(Protocol::Http)).unwrap();
        assert!(http.contains("shoal_connections_open{protocol=\"http\"} 29\n"));
        assert!(!http.contains("kind=\"connect\""), "{http}");
        assert!(!http.contains("relayed"), "{http}");
        let ws = encode_prometheus(&snapshot(), &id(Protocol::Ws)).unwrap();
        assert!(ws.contains("shoal_relayed_total{protocol=\"ws\",kind=\"offer\"} 30\n"));
        assert!(ws.contains("shoal_relayed_total{protocol=\"ws\",kind=\"answer\"} 31\n"));
        assert!(ws.contains("shoal_relayed_shed_total{protocol=\"ws\"} 32\n"));
        assert!(ws.contains("shoal_connections_open{protocol=\"ws\"} 29\n"));
        for line in [
            "shoal_connections_refused_total{protocol=\"http\",cause=\"max_connections\"} 36",
            "shoal_connections_refused_total{protocol=\"http\",cause=\"per_ip\"} 37",
            "shoal_connections_timed_out_total{protocol=\"http\"} 38",
            "shoal_connections_slow_readers_total{protocol=\"http\"} 39",
            "# UNIT shoal_queued_bytes bytes",
            "shoal_queued_bytes{protocol=\"http\"} 40",
        ] {
            assert!(http.lines().any(|l| l == line), "{line} missing in\n{http}");
        }
        let json = to_json(&snapshot(), &id(Protocol::Ws));
        assert_eq!(json["connections"]["refused"]["per_ip"], 37);
        assert_eq!(json["connections"]["queued_bytes"], 40);
        assert_eq!(json["connections_open"], 29);
        assert!(
            to_json(&snapshot(), &id(Protocol::Udp))
                .get("connections")
                .is_none()
        );
    }

    #[test]
    fn private_series_only_in_private_mode() {
        let public = encode_prometheus(&snapshot(), &id(Protocol::Http)).unwrap();
        assert!(!public.contains("private"), "{public}");
        assert!(
            to_json(&snapshot(), &id(Protocol::Http))
                .get("private")
                .is_none()
        );
        let mut s = snapshot();
        s.private = PrivateSnapshot {
            enabled: true,
            passkeys_loaded: 2,
            peers: 3,
            credits_pending: 4,
            batches_committed: 5,
            batches_failed: 6,
            batches_already_applied: 7,
            credits_committed: 8,
            flush_micros_total: 2_500_000,
            last_flush_micros: 1_500,
            last_commit_unix_secs: 1_800_000_000,
            commit_failures_in_a_row: 0,
            refused: [9, 10, 11, 0, 0],
            database_up: true,
            site_loaded_unix_secs: 0,
            flagged: 12,
            evicted: 13,
            reports_stale: 14,
            reports_overlapping: 15,
        };
        let text = encode_prometheus(&s, &id(Protocol::Http)).unwrap();
        for line in [
            "shoal_private_passkeys{protocol=\"http\"} 2",
            "shoal_private_peers{protocol=\"http\"} 3",
            "shoal_private_credits_pending{protocol=\"http\"} 4",
            "shoal_private_batches_total{protocol=\"http\",outcome=\"committed\"} 5",
            "shoal_private_batches_total{protocol=\"http\",outcome=\"failed\"} 6",
            "shoal_private_batches_total{protocol=\"http\",outcome=\"already_applied\"} 7",
            "shoal_private_credits_committed_total{protocol=\"http\"} 8",
            "shoal_private_flush_seconds_total{protocol=\"http\"} 2.5",
            "shoal_private_last_flush_seconds{protocol=\"http\"} 0.0015",
            "shoal_private_refused_total{protocol=\"http\",cause=\"missing_passkey\"} 9",
            "shoal_private_refused_total{protocol=\"http\",cause=\"unknown_passkey\"} 10",
            "shoal_private_refused_total{protocol=\"http\",cause=\"client_not_allowed\"} 11",
            "shoal_private_flagged_announces_total{protocol=\"http\"} 12",
            "shoal_private_evictions_total{protocol=\"http\"} 13",
            "shoal_private_reports_total{protocol=\"http\",outcome=\"stale\"} 14",
            "shoal_private_reports_total{protocol=\"http\",outcome=\"overlapping\"} 15",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing from:\n{text}"
            );
        }
        let json = to_json(&s, &id(Protocol::Http));
        assert_eq!(json["private"]["refused"]["unknown_passkey"], 10);
        assert_eq!(json["private"]["batches"]["already_applied"], 7);
        assert_eq!(json["private"]["flush_seconds_total"], 2.5);
        assert_eq!(json["private"]["reports"]["overlapping"], 15);
    }

    #[test]
    fn json_has_the_same_figures() {
        let json = to_json(&snapshot(), &id(Protocol::Ws));
        assert_eq!(json["protocol"], "ws");
        assert_eq!(json["version"], "9.8.7");
        assert!(json["requests"].get("connect").is_none());
        assert_eq!(json["requests"]["announce"]["ipv4"], 3);
        assert_eq!(json["requests"]["scrape"]["ipv6"], 6);
        assert_eq!(json["responses"]["error"]["ipv4"], 13);
        assert_eq!(json["errors"]["access_denied"], 16);
        assert_eq!(json["dropped_full_channel"], 18);
        assert_eq!(json["downloads_completed"], 23);
        assert_eq!(json["received_bytes"], 27);
        assert_eq!(json["connections_open"], 29);
        assert_eq!(json["relayed"]["shed"], 32);
        assert_eq!(json["access_list"]["last_reload_unix_secs"], 34);
        assert_eq!(json["start_time_unix_secs"], 35);
        let udp = to_json(&snapshot(), &id(Protocol::Udp));
        assert_eq!(udp["requests"]["connect"]["ipv6"], 2);
        assert!(udp.get("connections_open").is_none());
        assert!(udp.get("relayed").is_none());
    }
}
