//! `tracker_load_test udp`: load on a UDP tracker (BEP 15), and `udp-ceiling`, the
//! minimal responder that shows what the machine and the load generator allow; and
//! `udp-burst`, which counts what a sudden burst loses.
//!
//! ```text
//!  worker-01..W (each: S sockets on 127.0.W.1..S or [::1], a table of in-flight
//!      |         requests, recvmmsg / sendmmsg; a new request for every answer)
//!      |  one report per second: counts and a latency histogram
//!      v
//!  main thread: prints a line per second, samples the tracker's CPU time at the
//!  start and end of the measured window, prints the summary, writes --json
//! ```
//!
//! For a tracker in private mode, `[private]` lists passkeys (or a passkey file): every
//! announce then carries the BEP 41 URL data "/PASSKEY/announce" of its peer's passkey.

mod burst;
mod ceiling;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use tracker_common::config::{LogLevel, TrackerConfig};
use tracker_common::config_section;
use tracker_common::private::passkey::{self, Passkey};

use crate::report::{self, RunConfig, Summary};
use crate::runner::{check_server_address, run_workers};
use crate::workload::{Workload, WorkloadConfig};

pub use burst::{BurstSummary, MAX_BURST, MAX_SOURCES, run_burst, run_burst_cli};
pub use ceiling::{Ceiling, CeilingConfig, run_ceiling, start_ceiling};

config_section! {
    /// The whole configuration of `tracker_load_test udp`.
    pub struct Config {
        /// Log level: "off", "error", "warn", "info", "debug" or "trace".
        pub log_level: LogLevel,
        /// Address of the tracker under test. Only loopback addresses (127.0.0.0/8, ::1)
        /// are accepted: this tool floods what it points at.
        pub server_address: SocketAddr,
        /// Duration, warm-up and threads.
        pub run: RunConfig,
        /// The load generator's sockets.
        pub network: NetworkConfig,
        /// What the simulated clients ask.
        pub workload: WorkloadConfig,
        /// Passkeys for a tracker in private mode.
        pub private: PrivateConfig,
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
            private: PrivateConfig::default(),
        }
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
        self.private.validate()
    }
}

config_section! {
    /// Passkeys for a tracker in private mode: each announce then carries BEP 41 URL
    /// data "/PASSKEY/announce", every simulated peer always with the same passkey
    /// (peer n takes passkey n modulo their number). With neither set, announces carry
    /// no URL data.
    pub struct PrivateConfig {
        /// Passkeys (32 characters of 0-9, A-Z, a-z).
        pub passkeys: Vec<String>,
        /// A passkey file in the tracker's format (one a line, blank lines and #
        /// comments allowed), used after the passkeys above. Empty: none.
        pub passkeys_path: PathBuf,
    }
}

impl Default for PrivateConfig {
    fn default() -> Self {
        Self {
            passkeys: Vec::new(),
            passkeys_path: PathBuf::new(),
        }
    }
}

impl PrivateConfig {
    fn validate(&self) -> anyhow::Result<()> {
        passkey::parse_list("private.passkeys", &self.passkeys).map(drop)
    }

    /// The passkeys, in order: the list, then the file's. Empty: no passkeys.
    ///
    /// # Errors
    /// The file cannot be read or has a line that is not a passkey (named with its
    /// number).
    pub fn load(&self) -> anyhow::Result<Vec<Passkey>> {
        let mut keys = passkey::parse_list("private.passkeys", &self.passkeys)?;
        if self.passkeys_path.as_os_str().is_empty() {
            return Ok(keys);
        }
        let path = &self.passkeys_path;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("private.passkeys_path: read {}", path.display()))?;
        let from_file = passkey::parse_lines(&text).map_err(|(line, message)| {
            anyhow::anyhow!(
                "private.passkeys_path: {} line {line}: {message}",
                path.display()
            )
        })?;
        keys.extend(from_file.into_iter().map(|k| k.passkey));
        Ok(keys)
    }
}

/// The BEP 41 URL data of an announce with `passkey`: "/PASSKEY/announce".
pub fn passkey_url_data(passkey: &Passkey) -> Vec<u8> {
    let mut url = Vec::with_capacity(passkey.0.len() + "//announce".len());
    url.push(b'/');
    url.extend_from_slice(&passkey.0);
    url.extend_from_slice(b"/announce");
    url
}

config_section! {
    /// The load generator's sockets.
    pub struct NetworkConfig {
        /// Sockets per worker. With an IPv4 server each socket has its own source address
        /// (127.0.W.S for worker W and socket S), so that SO_REUSEPORT spreads the load
        /// over the tracker's sockets; with an IPv6 server all use ::1.
        pub sockets_per_worker: usize,
        /// Requests each worker keeps in flight; every answer (or timeout) lets the next
        /// one go.
        pub in_flight_per_worker: usize,
        /// Milliseconds after which an unanswered request counts as lost.
        pub request_timeout_ms: u64,
        /// Socket receive buffer (SO_RCVBUF) in bytes; 0 = OS default.
        pub recv_buffer_bytes: usize,
        /// Seconds between connects on each socket, to keep its connection id fresh (BEP 15
        /// ids live about two minutes). An "invalid connection id" answer also triggers one.
        pub reconnect_interval_secs: u64,
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            sockets_per_worker: 4,
            in_flight_per_worker: 512,
            request_timeout_ms: 1000,
            recv_buffer_bytes: 8 * 1024 * 1024,
            reconnect_interval_secs: 60,
        }
    }
}

impl NetworkConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=250).contains(&self.sockets_per_worker) {
            anyhow::bail!("network.sockets_per_worker: must be between 1 and 250");
        }
        if !(1..=65_536).contains(&self.in_flight_per_worker) {
            anyhow::bail!("network.in_flight_per_worker: must be between 1 and 65536");
        }
        if !(1..=60_000).contains(&self.request_timeout_ms) {
            anyhow::bail!("network.request_timeout_ms: must be between 1 and 60000");
        }
        if self.recv_buffer_bytes > i32::MAX as usize {
            anyhow::bail!("network.recv_buffer_bytes: must be below 2 GiB");
        }
        if self.reconnect_interval_secs == 0 {
            anyhow::bail!("network.reconnect_interval_secs: must be at least 1");
        }
        Ok(())
    }
}

/// Runs the load test and returns its summary (also printed along the way).
///
/// # Errors
/// A bad config value, or sockets that could not be set up.
pub fn run(mut config: Config) -> anyhow::Result<Summary> {
    config.validate()?;
    let workload = Workload::new(&config.workload);
    let workers = config.run.workers;
    let passkeys = config.private.load()?;
    let (sender, receiver) = crossbeam_channel::unbounded();

    // Set everything up before the clock starts, so that a socket error fails fast.
    let mut prepared = Vec::with_capacity(workers);
    for index in 0..workers {
        prepared.push(
            worker::Worker::new(index, &config, workload.clone(), &passkeys, sender.clone())
                .with_context(|| format!("set up load worker {}", index + 1))?,
        );
    }
    drop(sender);
    println!(
        "load test: {} for {} s (+{} s warm-up), {} worker(s) x {} socket(s), {} in flight each{}",
        config.server_address,
        config.run.duration_secs,
        config.run.warmup_secs,
        workers,
        config.network.sockets_per_worker,
        config.network.in_flight_per_worker,
        if passkeys.is_empty() {
            String::new()
        } else {
            format!(", {} passkeys", passkeys.len())
        }
    );
    let (measured, cpu) = run_workers(prepared, &receiver, &config.run)?;
    let summary = report::summarize(
        "udp",
        config.server_address.to_string(),
        &config.run,
        &measured,
        cpu,
    );
    Ok(summary)
}

/// Prints the info hash of every torrent of the workload, hottest first, one a line in
/// hex: an allow list for a tracker that serves listed torrents only.
///
/// # Errors
/// Standard output could not be written.
pub fn print_info_hashes(config: Config) -> anyhow::Result<()> {
    use std::io::Write;
    let workload = Workload::new(&config.workload);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for rank in 0..config.workload.torrents {
        writeln!(out, "{}", workload.info_hash(rank).to_hex()).context("write info hashes")?;
    }
    out.flush().context("write info hashes")
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
