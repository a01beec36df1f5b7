//! `tracker_load_test http`: load on an HTTP tracker (BEP 3 announces, BEP 48 scrapes)
//! over keep-alive TCP connections with pipelining, or over a new connection for every
//! request.
//!
//! ```text
//!  load-01..W (each: one mio poll over C connections from 127.x.y.z source addresses;
//!      |       each connection keeps up to `pipeline_depth` requests in flight and
//!      |       sends the next one as an answer arrives)
//!      |  one report per second: counts and a latency histogram
//!      v
//!  main thread: prints a line per second, samples the tracker's CPU time at the
//!  start and end of the measured window, prints the summary, writes --json
//! ```
//!
//! The workers are non-blocking (mio, one poll per thread) rather than blocking sockets
//! in threads: a thread per connection would cost two context switches per request,
//! which on the one core the load generator gets caps it far below what the tracker
//! answers, and a few threads with one blocking connection each could not keep
//! hundreds of connections busy.
//!
//! Every answer is checked: status 200, an HTTP/1.1 frame with a `Content-Length`, a
//! bencoded body that is a plausible answer to the request it answers (announce: a
//! positive interval, counts that cover the peers listed, peers of the server's address
//! family with a port; scrape: one entry per distinct info hash asked). A
//! `failure reason` counts as an error answer; anything else is malformed, and the
//! connection it came on is closed, since the answers after it can no longer be
//! matched to their requests.
//!
//! With `passkeys` set, the requests carry a private tracker's passkeys in their path
//! (`/PASSKEY/announce`, `/PASSKEY/scrape`): each simulated peer always announces with
//! the same one, as a user's client does, and scrapes take them in turn.
//!
//! With `network.tls` the same requests go over TLS (HTTPS): each connection carries a
//! rustls client, driven by the same readiness events (see the crate's `tls` module for what is
//! trusted). A handshake that fails after the TCP connect is counted apart from the
//! other connection errors.

mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use tracker_common::config::{LogLevel, TrackerConfig};
use tracker_common::config_section;
use tracker_common::private::passkey;
use tracker_http_protocol::Passkey;

use crate::report::{self, RunConfig, Summary};
use crate::runner::{check_server_address, run_workers};
use crate::workload::{Workload, WorkloadConfig};

config_section! {
    /// The whole configuration of `tracker_load_test http`.
    pub struct Config {
        /// Log level: "off", "error", "warn", "info", "debug" or "trace".
        pub log_level: LogLevel,
        /// Address of the tracker under test. Only loopback addresses (127.0.0.0/8, ::1)
        /// are accepted: this tool floods what it points at.
        pub server_address: SocketAddr,
        /// Duration, warm-up and threads.
        pub run: RunConfig,
        /// The load generator's connections.
        pub network: NetworkConfig,
        /// What the simulated clients ask. HTTP has no connect step: weight_connect is
        /// ignored.
        pub workload: WorkloadConfig,
        /// Passkeys of a private tracker (32 characters of 0-9, A-Z, a-z each). Set:
        /// requests go to /PASSKEY/announce and /PASSKEY/scrape, simulated peer n always
        /// with passkey n mod the count, scrapes with each in turn. Empty: /announce and
        /// /scrape.
        pub passkeys: Vec<String>,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            log_level: LogLevel::Warn,
            server_address: SocketAddr::from(([127, 0, 0, 1], 6969)),
            run: RunConfig::default(),
            network: NetworkConfig::default(),
            workload: WorkloadConfig::default(),
            passkeys: Vec::new(),
        }
    }
}

impl Config {
    /// The passkeys, parsed.
    ///
    /// # Errors
    /// One is not a passkey; the message names the key.
    pub fn parsed_passkeys(&self) -> anyhow::Result<Vec<Passkey>> {
        passkey::parse_list("passkeys", &self.passkeys)
    }
}

impl TrackerConfig for Config {
    fn log_level(&self) -> LogLevel {
        self.log_level
    }

    fn validate(&mut self) -> anyhow::Result<()> {
        check_server_address(self.server_address)?;
        self.run.validate("run")?;
        self.network.validate()?;
        self.workload.validate("workload")?;
        self.parsed_passkeys()?;
        if self.workload.weight_announce == 0 && self.workload.weight_scrape == 0 {
            anyhow::bail!(
                "workload.weight_announce: announces and scrapes both have weight 0 \
                 (HTTP has no connect step)"
            );
        }
        Ok(())
    }
}

config_section! {
    /// The load generator's connections.
    pub struct NetworkConfig {
        /// TCP connections per worker. With an IPv4 server each connection has its own
        /// source address (127.1.0.1 onwards), so that neither a tracker's per-address
        /// limits nor the ephemeral port range bound the test; with an IPv6 server all
        /// come from ::1.
        pub connections_per_worker: usize,
        /// Requests each connection keeps in flight (HTTP pipelining); 1 = each request
        /// waits for the answer to the one before.
        pub pipeline_depth: usize,
        /// true: keep-alive connections, each carrying request after request. false: a
        /// new connection for every request, sent with `Connection: close` and closed
        /// after its answer (for comparing with trackers that close); pipeline_depth is
        /// then 1 and the latency includes the TCP handshake.
        pub keep_alive: bool,
        /// Milliseconds after which an unanswered request counts as lost. Its connection
        /// is closed with everything in flight on it (counted as lost too) and opened
        /// again: later answers on it could not be matched any more.
        pub request_timeout_ms: u64,
        /// Most bytes of one answer's body; a longer answer counts as malformed.
        pub max_response_body_bytes: usize,
        /// true: speak TLS (HTTPS) to the tracker, with the server name its IP address.
        pub tls: bool,
        /// PEM file of the certificate(s) to trust when tls is true. Empty = accept any
        /// certificate without verifying it: for a tracker on loopback with a
        /// self-signed test certificate only.
        pub tls_ca_path: PathBuf,
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            connections_per_worker: 128,
            pipeline_depth: 1,
            keep_alive: true,
            request_timeout_ms: 2000,
            max_response_body_bytes: 64 * 1024,
            tls: false,
            tls_ca_path: PathBuf::new(),
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
        if !(1..=1024).contains(&self.pipeline_depth) {
            anyhow::bail!("network.pipeline_depth: must be between 1 and 1024");
        }
        if !(1..=60_000).contains(&self.request_timeout_ms) {
            anyhow::bail!("network.request_timeout_ms: must be between 1 and 60000");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_response_body_bytes) {
            anyhow::bail!("network.max_response_body_bytes: must be between 1024 and 16 MiB");
        }
        if !self.tls && !self.tls_ca_path.as_os_str().is_empty() {
            anyhow::bail!("network.tls_ca_path: set, but network.tls is false");
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
    // No connect step over HTTP: the workload draws announces and scrapes only.
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

    // Connect before the clock starts (as long-lived clients are connected), so that a
    // bad source address fails fast and the first second measures requests only.
    let mut prepared = Vec::with_capacity(workers);
    for index in 0..workers {
        prepared.push(
            worker::Worker::new(
                index,
                &config,
                tls.clone(),
                workload.clone(),
                sender.clone(),
            )
            .with_context(|| format!("set up load worker {}", index + 1))?,
        );
    }
    drop(sender);
    let depth = if config.network.keep_alive {
        config.network.pipeline_depth
    } else {
        1
    };
    println!(
        "load test: {}://{} for {} s (+{} s warm-up), {} worker(s) x {} {} connection(s), \
         {} request(s) in flight each",
        if config.network.tls { "https" } else { "http" },
        config.server_address,
        config.run.duration_secs,
        config.run.warmup_secs,
        workers,
        config.network.connections_per_worker,
        if config.network.keep_alive {
            "keep-alive"
        } else {
            "one-request"
        },
        depth
    );
    let (measured, cpu) = run_workers(prepared, &receiver, &config.run)?;
    let protocol = match (config.network.tls, config.network.keep_alive) {
        (false, true) => "http",
        (false, false) => "http-new-connection",
        (true, true) => "https",
        (true, false) => "https-new-connection",
    };
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
        Config::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut far = Config {
            server_address: "192.0.2.1:6969".parse().unwrap(),
            ..Config::default()
        };
        assert!(
            far.validate()
                .unwrap_err()
                .to_string()
                .starts_with("server_address")
        );
        let mut no_requests = Config::default();
        no_requests.workload.weight_announce = 0;
        no_requests.workload.weight_scrape = 0;
        assert!(
            no_requests
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("workload.weight_announce")
        );
        let mut deep = Config::default();
        deep.network.pipeline_depth = 0;
        assert!(
            deep.validate()
                .unwrap_err()
                .to_string()
                .starts_with("network.pipeline_depth")
        );
        let bad_passkey = Config {
            passkeys: vec!["abcdefghijklmnopqrstuvwxyzABC789".into(), "short".into()],
            ..Config::default()
        };
        assert!(
            bad_passkey
                .clone()
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("passkeys: \"short\"")
        );
        let mut good = Config {
            passkeys: vec!["abcdefghijklmnopqrstuvwxyzABC789".into()],
            ..Config::default()
        };
        good.validate().unwrap();
        let mut ca_without_tls = Config::default();
        ca_without_tls.network.tls_ca_path = "ca.pem".into();
        assert!(
            ca_without_tls
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("network.tls_ca_path")
        );
    }
}
