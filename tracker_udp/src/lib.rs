//! shoal's UDP tracker: BitTorrent over UDP (BEP 15, with BEP 41 options), IPv4 and IPv6.
//!
//! # Threads and data flow
//! ```text
//!             SO_REUSEPORT UDP sockets, one per socket worker
//!  clients <-> socket-01..N   (mio; parse, connection ids, access list, connects,
//!                 |            serialize and send)
//!                 |  batches of announces / scrape parts, routed by info hash,
//!                 |  over bounded crossbeam channels (full: dropped and counted)
//!                 v
//!             swarm-01..M     (each owns one shard of the torrents; announce,
//!                 |            scrape, peer expiry; no locks)
//!                 |  batches of responses back to the originating socket worker,
//!                 |  which a mio Waker rouses
//!                 v
//!             socket worker sends
//!  + statistics (periodic log line), signals (SIGUSR1 reloads the access list,
//!    SIGTERM / SIGINT stop), and a supervisor: any thread that ends takes the
//!    process down with an error naming it.
//! ```
//!
//! Connects never leave the socket worker: connection ids are stateless (see
//! [`connection_id`]). A request with an invalid or expired connection id is answered
//! with the error "invalid connection id" (always smaller than the request) and is
//! otherwise ignored. A scrape over hashes of several shards is split and merged again
//! by the socket worker.
//!
//! [`start`] runs the tracker in-process and returns a [`Tracker`] handle (tests use it
//! on port 0); [`run`] is what the binary calls.

pub mod config;
pub mod connection_id;
pub mod messages;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mio::{Poll, Waker};

use tracker_common::access_list::{self, AccessList, AccessListCache, SharedAccessList};
use tracker_common::statistics::{RateLimitedWarning, Snapshot, Statistics, run_statistics_logger};
use tracker_common::supervisor::{ShutdownFlag, Supervisor, spawn_signal_thread};
use tracker_common::time::ServerStartInstant;

pub use config::Config;
use tracker_common::config::TrackerConfig as _;
pub use workers::{make_more_sockets, make_socket};

use crate::connection_id::ConnectionValidator;
use crate::messages::{SocketWorkerIndex, SwarmWorkerIndex};
use crate::workers::socket::{SocketWorker, SocketWorkerSettings, WAKER_TOKEN};
use crate::workers::swarm::SwarmWorker;
use tracker_common::swarm::SwarmBudget;

/// The binary's name.
pub const APP_NAME: &str = "tracker_udp";
/// The binary's version.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A running tracker.
pub struct Tracker {
    local_addr: SocketAddr,
    supervisor: Supervisor,
    statistics: Arc<Statistics>,
    access_list: SharedAccessList,
    config: Config,
}

impl Tracker {
    /// The address the sockets are bound to (with the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The config in force, with worker counts resolved.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// All workers' counters summed.
    pub fn statistics(&self) -> Snapshot {
        self.statistics.snapshot()
    }

    /// Re-reads the access list file, as SIGUSR1 does. On error the old list stays.
    ///
    /// # Errors
    /// The file could not be read or has a bad line.
    pub fn reload_access_list(&self) -> anyhow::Result<usize> {
        access_list::reload(&self.access_list, &self.config.access_list)
    }

    /// Blocks until a thread ends: `Ok` after a requested shutdown, `Err` naming the
    /// thread otherwise.
    ///
    /// # Errors
    /// A worker failed, returned or panicked.
    pub fn wait(&self) -> anyhow::Result<()> {
        self.supervisor.wait()
    }

    /// Stops every thread and waits for them (a few seconds at most).
    pub fn shutdown(mut self) {
        let stuck = self.supervisor.shutdown(Duration::from_secs(5));
        if !stuck.is_empty() {
            log::warn!("threads still running after shutdown: {}", stuck.join(", "));
        }
    }
}

impl Drop for Tracker {
    /// A dropped handle (a failed test, say) still stops the threads.
    fn drop(&mut self) {
        self.supervisor.shutdown_flag().set();
    }
}

/// Validates the config and starts every thread; returns once the sockets are bound.
///
/// # Errors
/// A bad config value (naming the key), an unreadable access list, or a socket that
/// could not be bound.
pub fn start(config: Config) -> anyhow::Result<Tracker> {
    start_inner(config, false)
}

/// Runs the tracker until SIGTERM / SIGINT (then `Ok`) or until a thread fails.
///
/// # Errors
/// As [`start`], or a thread that failed, returned or panicked.
pub fn run(config: Config) -> anyhow::Result<()> {
    let tracker = start_inner(config, true)?;
    let result = tracker.wait();
    if result.is_ok() {
        tracker.shutdown();
        log::info!("stopped");
    }
    result
}

fn start_inner(mut config: Config, handle_signals: bool) -> anyhow::Result<Tracker> {
    config.validate()?;
    let list = AccessList::from_config(&config.access_list)?;
    if config.access_list.mode != access_list::AccessListMode::Off {
        log::info!(
            "access list {}: {} info hashes ({:?} mode)",
            config.access_list.path.display(),
            list.len(),
            config.access_list.mode
        );
    }
    let shared_list = access_list::shared(list);

    let num_socket = config.workers.socket_workers;
    let num_swarm = config.workers.swarm_workers;
    let capacity = config.workers.channel_capacity;
    let statistics = Arc::new(Statistics::new(num_socket, num_swarm));
    let start = ServerStartInstant::new();
    let validator = ConnectionValidator::new(config.protocol.connection_id_valid_secs);
    let mut supervisor = Supervisor::new(ShutdownFlag::new());

    // Bind every socket before starting any thread, so that a port in use fails fast.
    let first = match workers::make_socket(config.network.address, &config.network, true) {
        Ok(socket) => socket,
        Err(err) => {
            match workers::ipv4_fallback(config.network.address, config.network.only_ipv6, &err) {
                // A host without IPv6 (some containers) still runs the default config.
                Some(v4) => {
                    log::warn!("{err:#}; IPv6 is unavailable here, listening on {v4} (IPv4 only)");
                    workers::make_socket(v4, &config.network, true)?
                }
                None => return Err(err),
            }
        }
    };
    let (local_addr, sockets) = workers::make_more_sockets(first, num_socket, &config.network)?;
    let mut polls = Vec::with_capacity(num_socket);
    let mut wakers = Vec::with_capacity(num_socket);
    for _ in 0..num_socket {
        let poll = Poll::new().context("create poll")?;
        wakers.push(Arc::new(
            Waker::new(poll.registry(), WAKER_TOKEN).context("create waker")?,
        ));
        polls.push(poll);
    }

    let (request_senders, request_receivers): (Vec<_>, Vec<_>) = (0..num_swarm)
        .map(|_| crossbeam_channel::bounded(capacity))
        .unzip();
    let (response_senders, response_receivers): (Vec<_>, Vec<_>) = (0..num_socket)
        .map(|_| crossbeam_channel::bounded(capacity))
        .unzip();

    let budget = Arc::new(SwarmBudget::new(&config.swarm.limits()));
    for (i, receiver) in request_receivers.into_iter().enumerate() {
        let worker = SwarmWorker {
            index: SwarmWorkerIndex(i),
            receiver,
            senders: response_senders.clone(),
            wakers: wakers.clone(),
            num_shards: num_swarm,
            budget: budget.clone(),
            config: config.swarm.clone(),
            start,
            statistics: statistics.clone(),
            shutdown: supervisor.shutdown_flag().clone(),
            full_warning: RateLimitedWarning::new(Duration::from_secs(10)),
        };
        supervisor.spawn(&format!("swarm-{:02}", i + 1), move || worker.run())?;
    }
    drop(response_senders);

    let settings = SocketWorkerSettings {
        max_scrape_torrents: config.protocol.max_scrape_torrents,
        max_pending_scrapes: config.protocol.max_pending_scrapes,
        trust_client_ip: config.swarm.trust_client_ip,
        poll_timeout: Duration::from_millis(config.network.poll_timeout_ms),
    };
    for (i, ((socket, poll), response_receiver)) in sockets
        .into_iter()
        .zip(polls)
        .zip(response_receivers)
        .enumerate()
    {
        let worker = SocketWorker {
            index: SocketWorkerIndex(i),
            socket,
            poll,
            request_senders: request_senders.clone(),
            response_receiver,
            validator: validator.clone(),
            access_list: AccessListCache::new(shared_list.clone()),
            settings: settings.clone(),
            start,
            statistics: statistics.clone(),
            shutdown: supervisor.shutdown_flag().clone(),
        };
        supervisor.spawn(&format!("socket-{:02}", i + 1), move || worker.run())?;
    }
    drop(request_senders);

    if config.statistics.interval_secs > 0 {
        let stats = statistics.clone();
        let interval = Duration::from_secs(u64::from(config.statistics.interval_secs));
        let shutdown = supervisor.shutdown_flag().clone();
        supervisor.spawn("statistics", move || {
            run_statistics_logger(&stats, interval, &shutdown)
        })?;
    }

    if handle_signals {
        let list = shared_list.clone();
        let list_config = config.access_list.clone();
        spawn_signal_thread(&mut supervisor, move || {
            if list_config.mode == access_list::AccessListMode::Off {
                log::info!("SIGUSR1: access list is off, nothing to reload");
                return;
            }
            match access_list::reload(&list, &list_config) {
                Ok(n) => log::info!("access list reloaded: {n} info hashes"),
                Err(err) => log::error!("access list reload failed, keeping the old list: {err:#}"),
            }
        })?;
    }

    log::info!(
        "listening on udp://{local_addr} with {num_socket} socket and {num_swarm} swarm workers"
    );
    Ok(Tracker {
        local_addr,
        supervisor,
        statistics,
        access_list: shared_list,
        config,
    })
}
