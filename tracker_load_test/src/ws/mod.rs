//! `tracker_load_test ws`: load on a WebTorrent tracker (JSON messages over WebSocket,
//! ws:// or wss://), as browsers running the `bittorrent-tracker` npm client make it.
//!
//! ```text
//!  load-01..W (each: one mio poll over C WebSocket connections from 127.x.y.z source
//!      |       addresses; each connection is one browser with one peer id, announcing
//!      |       with offers, answering the offers relayed to it, scraping)
//!      |  one report per second: counts and a latency histogram
//!      v
//!  main thread: prints a line per second, samples the tracker's CPU time at the
//!  start and end of the measured window, prints the summary, writes --json
//! ```
//!
//! # The simulated browsers
//! - A connection is a browser: one source address, one peer id (as a WebTorrent
//!   client uses one peer id for all its torrents on one tracker connection). Its
//!   torrents are those of its share of the workload's simulated peers (see
//!   [`crate::workload`]); each announce picks one of them, which gives the torrent,
//!   the seeder flag and, with the event, `left`.
//! - An announce with no event or `started` carries `webtorrent.offers_per_announce`
//!   offers and asks for as many peers (`numwant`), as the client does; `completed`
//!   and `stopped` carry none and ask for none, as the client does. workload.numwant
//!   is therefore not used.
//! - Every offer relayed to a connection in a torrent it is in is answered (or the
//!   share `webtorrent.answer_share` of them), at once, with an answer message as the
//!   client sends it (`info_hash`, `peer_id`, `to_peer_id`, `offer_id`, `answer`). An
//!   offer for a torrent the connection has left (a `stopped` crossed it) is ignored,
//!   as the client ignores it.
//! - Scrapes in the workload's proportion ask about 1..=scrape_max_torrents torrents.
//! - Offers and answers carry session descriptions of `webtorrent.sdp_bytes` bytes
//!   shaped like a browser's (`{"type":"offer","sdp":"v=0\r\no=- ..."}`).
//!
//! # What is counted, and checked
//! Each connection keeps up to `network.requests_in_flight` announces and scrapes
//! waiting for their replies; answers are sent as offers come, outside that window.
//! Every message received is counted by kind (announce replies, relayed offers, relayed
//! answers, scrape replies, failures): their sum is the headline figure, messages
//! received per second, as aquatic_ws_load_test reports it. The latency is that of the
//! announce replies.
//!
//! Replies are matched to requests by kind and torrents, not by order: the tracker
//! answers announces of different torrents from different request workers. An announce
//! reply goes to the announce in flight of its info hash; a scrape reply to a scrape in
//! flight that asked about its torrents. A reply that matches nothing in flight is
//! counted apart (`unmatched`): a reply that came after its timeout, or a reply to an
//! answer message (aquatic_ws sends one; the reference server does not). With
//! aquatic_ws, a reply to an answer can also be taken for the reply to an announce of
//! the same torrent in flight, which shortens that sample's latency a little.
//!
//! A relayed offer must come from another connection of this test (its offer id names
//! the offering connection, whose peer id must be the one relayed), with the session
//! description sent byte for byte; a relayed answer must answer an offer of this
//! connection, from another connection, with the description sent. Anything else
//! counts as malformed. A WebSocket protocol error, a close or a timed-out upgrade
//! closes the connection (what it had in flight is counted unanswered), and it is
//! opened again; requests in flight that time out are counted unanswered and the
//! connection goes on.
//!
//! With `network.tls` the connections speak wss:// through the same rustls client as
//! the HTTP load test.
//!
//! With `network.passkeys` (a private tracker) each connection opens on
//! `/PASSKEY/announce` with one of them, in turn, instead of `/`.

mod client;
mod websocket;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use tracker_common::config::{LogLevel, TrackerConfig};
use tracker_common::config_section;
use tracker_common::private::passkey;

use crate::report::{self, RunConfig, Summary};
use crate::runner::{check_server_address, run_workers};
use crate::workload::{Workload, WorkloadConfig};

config_section! {
    /// The whole configuration of `tracker_load_test ws`.
    pub struct Config {
        /// Log level: "off", "error", "warn", "info", "debug" or "trace".
        pub log_level: LogLevel,
        /// Address of the tracker under test. Only loopback addresses (127.0.0.0/8, ::1)
        /// are accepted: this tool floods what it points at.
        pub server_address: SocketAddr,
        /// Other nodes of one cluster, loaded together with server_address: connection
        /// number n opens on the (n mod k)-th of the k addresses (server_address first),
        /// so that offers and answers cross nodes. Loopback addresses only, like
        /// server_address. Empty: one tracker.
        pub cluster_server_addresses: Vec<SocketAddr>,
        /// Duration, warm-up and threads.
        pub run: RunConfig,
        /// The load generator's connections.
        pub network: NetworkConfig,
        /// What the simulated browsers put in their messages.
        pub webtorrent: WebTorrentConfig,
        /// What the simulated clients ask. WebSocket has no connect step: weight_connect
        /// is ignored, and so is numwant (an announce asks for as many peers as it makes
        /// offers). Each connection is in the torrents of its share of the peers, so
        /// peers / (run.workers × network.connections_per_worker) bounds the torrents
        /// one connection is in: keep it below the tracker's limit of swarms per
        /// connection.
        pub workload: WorkloadConfig,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            log_level: LogLevel::Warn,
            server_address: SocketAddr::from(([127, 0, 0, 1], 6970)),
            cluster_server_addresses: Vec::new(),
            run: RunConfig::default(),
            network: NetworkConfig::default(),
            webtorrent: WebTorrentConfig::default(),
            // WebTorrent swarms are smaller than those of a public BitTorrent tracker,
            // and one connection is one browser: 64 torrents each with the default
            // 128 connections, half of the peers in the 10 hottest torrents.
            workload: WorkloadConfig {
                torrents: 10_000,
                peers: 8_192,
                popularity_scale: 0.001,
                ..WorkloadConfig::default()
            },
        }
    }
}

impl TrackerConfig for Config {
    fn log_level(&self) -> LogLevel {
        self.log_level
    }

    fn validate(&mut self) -> anyhow::Result<()> {
        check_server_address(self.server_address)?;
        for address in &self.cluster_server_addresses {
            check_server_address(*address).map_err(|err| {
                let reason = err.to_string();
                let reason = reason.trim_start_matches("server_address: ");
                anyhow::anyhow!("cluster_server_addresses: {reason}")
            })?;
        }
        self.run.validate("run")?;
        self.network.validate()?;
        self.webtorrent.validate()?;
        self.workload.validate("workload")?;
        if self.workload.weight_announce == 0 && self.workload.weight_scrape == 0 {
            anyhow::bail!(
                "workload.weight_announce: announces and scrapes both have weight 0 \
                 (WebSocket has no connect step)"
            );
        }
        Ok(())
    }
}

config_section! {
    /// The load generator's connections.
    pub struct NetworkConfig {
        /// WebSocket connections per worker. With an IPv4 server each connection has
        /// its own source address (127.1.0.1 onwards); with an IPv6 server all come
        /// from ::1.
        pub connections_per_worker: usize,
        /// Announces and scrapes each connection keeps waiting for their replies; the
        /// next one goes out as a reply comes. Answers to relayed offers are sent as the
        /// offers come, outside this window.
        pub requests_in_flight: usize,
        /// Milliseconds after which an announce or scrape without a reply counts as
        /// lost (the connection goes on), and after which an unfinished connect or
        /// upgrade fails the connection.
        pub request_timeout_ms: u64,
        /// Most bytes of one message from the tracker (all its frames); a larger frame
        /// is a protocol error and closes the connection.
        pub max_message_bytes: usize,
        /// The Origin header of the upgrade request, as a browser sends it; empty = none.
        pub origin: String,
        /// true: speak TLS (wss://) to the tracker, with the server name its IP address.
        pub tls: bool,
        /// PEM file of the certificate(s) to trust when tls is true. Empty = accept any
        /// certificate without verifying it: for a tracker on loopback with a
        /// self-signed test certificate only.
        pub tls_ca_path: PathBuf,
        /// Passkeys of a private tracker (32 characters of 0-9, A-Z, a-z each):
        /// connection N opens on /PASSKEY/announce with the (N mod count)th of them.
        /// Empty: connections open on /, as for a public tracker.
        pub passkeys: Vec<String>,
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            connections_per_worker: 128,
            requests_in_flight: 1,
            request_timeout_ms: 5000,
            max_message_bytes: 1024 * 1024,
            origin: "http://localhost:8080".to_string(),
            tls: false,
            tls_ca_path: PathBuf::new(),
            passkeys: Vec::new(),
        }
    }
}

/// Most connections per worker: source addresses are numbered within 127.1.0.1 to
/// 127.201.255.250 for up to 256 workers.
const MAX_CONNECTIONS_PER_WORKER: usize = 50_000;

impl NetworkConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=MAX_CONNECTIONS_PER_WORKER).contains(&self.connections_per_worker) {
            anyhow::bail!(
                "network.connections_per_worker: must be between 1 and {MAX_CONNECTIONS_PER_WORKER}"
            );
        }
        if !(1..=1024).contains(&self.requests_in_flight) {
            anyhow::bail!("network.requests_in_flight: must be between 1 and 1024");
        }
        if !(1..=60_000).contains(&self.request_timeout_ms) {
            anyhow::bail!("network.request_timeout_ms: must be between 1 and 60000");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_message_bytes) {
            anyhow::bail!("network.max_message_bytes: must be between 1024 and 64 MiB");
        }
        if self.origin.contains(['\r', '\n']) {
            anyhow::bail!("network.origin: must be one line");
        }
        if !self.tls && !self.tls_ca_path.as_os_str().is_empty() {
            anyhow::bail!("network.tls_ca_path: set, but network.tls is false");
        }
        passkey::parse_list("network.passkeys", &self.passkeys).map(drop)
    }
}

config_section! {
    /// What the simulated browsers put in their messages.
    pub struct WebTorrentConfig {
        /// Offers in each announce with no event or `started` (and the numwant it
        /// sends); 0 = announces without offers.
        pub offers_per_announce: usize,
        /// Bytes of each offer's and answer's SDP text (a browser's is a few hundred
        /// bytes to about a kilobyte).
        pub sdp_bytes: usize,
        /// Share of the relayed offers answered (0.0 to 1.0), each drawn at random.
        pub answer_share: f64,
    }
}

impl Default for WebTorrentConfig {
    fn default() -> Self {
        Self {
            offers_per_announce: 10,
            sdp_bytes: 500,
            answer_share: 1.0,
        }
    }
}

impl WebTorrentConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.offers_per_announce > 100 {
            anyhow::bail!("webtorrent.offers_per_announce: must be at most 100");
        }
        if !(16..=32_768).contains(&self.sdp_bytes) {
            anyhow::bail!("webtorrent.sdp_bytes: must be between 16 and 32768");
        }
        if !(0.0..=1.0).contains(&self.answer_share) {
            anyhow::bail!("webtorrent.answer_share: must be between 0.0 and 1.0");
        }
        Ok(())
    }
}

/// Runs the load test and returns its summary (also printed along the way).
///
/// # Errors
/// A bad config value, or connections that could not be set up.
pub fn run(mut config: Config) -> anyhow::Result<Summary> {
    config.validate()?;
    // No connect step over WebSocket: the workload draws announces and scrapes only.
    let mut workload_config = config.workload.clone();
    workload_config.weight_connect = 0;
    let workload = Workload::new(&workload_config);
    let workers = config.run.workers;
    let (sender, receiver) = crossbeam_channel::unbounded();
    let tls = if config.network.tls {
        Some(crate::tls::client_config(&config.network.tls_ca_path)?)
    } else {
        None
    };
    let messages = client::Messages::new(&config);

    // Connect before the clock starts, so that a bad source address fails fast; the
    // upgrades complete in the first moments of the warm-up.
    let mut prepared = Vec::with_capacity(workers);
    for index in 0..workers {
        prepared.push(
            worker::Worker::new(
                index,
                &config,
                tls.clone(),
                workload.clone(),
                messages.clone(),
                sender.clone(),
            )
            .with_context(|| format!("set up load worker {}", index + 1))?,
        );
    }
    drop(sender);
    println!(
        "load test: {}://{} for {} s (+{} s warm-up), {} worker(s) x {} connection(s), \
         {} request(s) in flight each, {} offer(s) of {} SDP bytes per announce",
        if config.network.tls { "wss" } else { "ws" },
        config.server_address,
        config.run.duration_secs,
        config.run.warmup_secs,
        workers,
        config.network.connections_per_worker,
        config.network.requests_in_flight,
        config.webtorrent.offers_per_announce,
        config.webtorrent.sdp_bytes,
    );
    let (measured, cpu) = run_workers(prepared, &receiver, &config.run)?;
    let protocol = if config.network.tls { "wss" } else { "ws" };
    Ok(report::summarize(
        protocol,
        config.server_address.to_string(),
        &config.run,
        &measured,
        cpu,
    ))
}

/// What the binary calls: runs, prints the summary and writes it to `json` if given.
///
/// # Errors
/// As [`run`], or the JSON file could not be written.
pub fn run_cli(config: Config, json: Option<PathBuf>) -> anyhow::Result<()> {
    let summary = run(config)?;
    summary.print();
    if let Some(path) = json {
        summary.write_json(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        let mut config = Config::default();
        config.validate().unwrap();
        // One connection's torrents stay within shoal's default swarms per connection.
        let connections = config.run.workers * config.network.connections_per_worker;
        assert!(config.workload.peers / connections as u64 <= 128);
    }

    #[test]
    fn bad_values_name_their_key() {
        type Spoil = fn(&mut Config);
        let cases: [(Spoil, &str); 8] = [
            (
                |c| c.server_address = "192.0.2.1:6970".parse().unwrap(),
                "server_address",
            ),
            (
                |c| {
                    c.cluster_server_addresses = vec![
                        "127.0.0.2:1".parse().unwrap(),
                        "[2001:db8::1]:1".parse().unwrap(),
                    ]
                },
                "cluster_server_addresses",
            ),
            (
                |c| {
                    c.workload.weight_announce = 0;
                    c.workload.weight_scrape = 0;
                },
                "workload.weight_announce",
            ),
            (
                |c| c.network.requests_in_flight = 0,
                "network.requests_in_flight",
            ),
            (
                |c| c.network.tls_ca_path = "ca.pem".into(),
                "network.tls_ca_path",
            ),
            (|c| c.webtorrent.sdp_bytes = 1, "webtorrent.sdp_bytes"),
            (
                |c| c.network.passkeys = vec!["not a passkey".to_string()],
                "network.passkeys",
            ),
            (
                |c| c.webtorrent.answer_share = 1.5,
                "webtorrent.answer_share",
            ),
        ];
        for (spoil, key) in cases {
            let mut config = Config::default();
            spoil(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }
}
