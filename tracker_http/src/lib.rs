//! shoal's HTTP tracker: BitTorrent over HTTP (BEP 3, with BEP 23 compact peers, BEP 7
//! `peers6`, BEP 48 scrape and BEP 24 `external ip`), IPv4 and IPv6, keep-alive and
//! pipelining.
//!
//! # Threads and data flow
//! ```text
//!             SO_REUSEPORT TCP listeners, one per socket worker
//!  clients <-> socket-01..N   (mio; accept, read, parse, access list, answer the index
//!                 |            page and errors, write answers in request order)
//!                 |  batches of announces / scrape parts, routed by a keyed hash of
//!                 |  the info hash, over channels bounded by requests
//!                 v
//!             request-01..M   (each owns one shard of the torrents; the same request
//!                 |            workers as the UDP tracker, from tracker_common)
//!                 |  batches of responses back to the originating socket worker,
//!                 |  which a mio Waker rouses
//!                 v
//!             socket worker writes the answer on its connection
//!  + statistics (log line), metrics (/metrics and /stats.json on a listener of its
//!    own, read from the workers' counters when scraped; and the statistics page, charting samples it takes), signals (SIGUSR1 reloads the access list; SIGTERM / SIGINT stop) and
//!    a supervisor: any thread that ends takes the process down with an error naming it.
//! ```
//!
//! What one client can hold (connections, buffers, pipeline, time) is bounded by the
//! `[http]` section of the config; see the socket worker.
//!
//! [`start`] runs the tracker in-process and returns a [`Tracker`] handle (tests use it
//! on port 0); [`run`] is what the binary calls.

pub mod config;
mod messages;
mod proxy;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracker_common::config::TrackerConfig as _;
use tracker_common::net::address_limit::AddressLimit;
use tracker_common::net::tls::SharedServerConfig;
use tracker_common::observe::statistics::{ConnectionCounters, Protocol, ProtocolLine, Snapshot};
use tracker_common::private::passkey::PrivateCheck;
use tracker_common::runtime::server::{Core, TrackerHandle};
use tracker_common::swarm::NumWantPolicy;
use tracker_common::swarm::access_list::AccessListCache;

pub use config::Config;

use crate::workers::request::HttpHandler;
use crate::workers::socket::{SocketWorker, SocketWorkerParts, SocketWorkerSettings};
use tracker_common::net::front::{Driver, DriverParts, FrontSettings, WAKER_TOKEN};

/// The binary's name.
pub const APP_NAME: &str = "tracker_http";
/// The binary's version.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A running tracker.
pub struct Tracker {
    handle: TrackerHandle,
    http_counters: Arc<ConnectionCounters>,
    tls: Option<SharedServerConfig>,
    config: Config,
}

/// Connection counts of a running tracker.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    /// Open now.
    pub open: usize,
    /// Closed at once because `http.max_connections` were open.
    pub refused: u64,
    /// Closed at once because their client address (IPv4 address, IPv6 /64) had
    /// `http.max_connections_per_ip` open.
    pub refused_per_ip: u64,
    /// Closed for making no progress for `http.idle_timeout_secs`.
    pub timed_out: u64,
    /// Bytes of answers waiting to be sent, over all connections.
    pub queued_bytes: usize,
}

impl Tracker {
    /// The address the listeners are bound to (with the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Where the metrics endpoint listens (with the real port when 0 was configured);
    /// `None` when `metrics.enabled` is off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.handle.metrics_addr()
    }

    /// Where the admin API listens (with the real port when 0 was configured); `None`
    /// when `api.enabled` is off.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.handle.api_addr()
    }

    /// Runs what SIGUSR1 runs, and returns how each part went.
    pub fn reload(&self) -> Vec<tracker_common::runtime::reload::ReloadPart> {
        self.handle.reload()
    }

    /// The config in force, with worker counts resolved.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// All workers' counters summed.
    pub fn statistics(&self) -> Snapshot {
        self.handle.statistics()
    }

    /// Connection counts.
    pub fn connections(&self) -> Connections {
        Connections {
            open: self.http_counters.open.load(Ordering::Acquire),
            refused: self.http_counters.refused.load(Ordering::Relaxed),
            refused_per_ip: self.http_counters.refused_per_ip.load(Ordering::Relaxed),
            timed_out: self.http_counters.timed_out.load(Ordering::Relaxed),
            queued_bytes: self.http_counters.queued_bytes.load(Ordering::Relaxed),
        }
    }

    /// Re-reads the access list file, as SIGUSR1 does. On error the old list stays.
    ///
    /// # Errors
    /// The file could not be read or has a bad line.
    pub fn reload_access_list(&self) -> anyhow::Result<usize> {
        self.handle.reload_access_list()
    }

    /// Re-reads the TLS certificate chain and key, as SIGUSR1 does; connections accepted
    /// from then on get them. On error the old ones stay. Nothing to do without TLS.
    ///
    /// # Errors
    /// A file could not be read, or the key does not fit the certificate.
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        match &self.tls {
            Some(shared) => tracker_common::net::tls::reload(shared, &self.config.tls),
            None => Ok(()),
        }
    }

    /// Blocks until a thread ends: `Ok` after a requested shutdown, `Err` naming the
    /// thread otherwise.
    ///
    /// # Errors
    /// A worker failed, returned or panicked.
    pub fn wait(&self) -> anyhow::Result<()> {
        self.handle.wait()
    }

    /// Stops every thread and waits for them (a few seconds at most).
    pub fn shutdown(self) {
        self.handle.shutdown();
    }
}

/// Validates the config and starts every thread; returns once the listeners are bound.
///
/// # Errors
/// A bad config value (naming the key), an unreadable access list, or a port that could
/// not be bound.
pub fn start(config: Config) -> anyhow::Result<Tracker> {
    start_inner(config, false)
}

/// Runs the tracker until SIGTERM / SIGINT (then `Ok`) or until a thread fails.
///
/// # Errors
/// As [`start`], or a thread that failed, returned or panicked.
pub fn run(config: Config) -> anyhow::Result<()> {
    start_inner(config, true)?.handle.run_until_stopped()
}

fn start_inner(mut config: Config, handle_signals: bool) -> anyhow::Result<Tracker> {
    config.validate()?;
    let proxies = config.proxy.trusted()?;
    let tls = if config.tls.enabled {
        Some(tracker_common::net::tls::shared(&config.tls)?)
    } else {
        None
    };
    tracker_common::net::listen::ensure_open_files(
        config.http.max_connections,
        "http.max_connections",
    )?;
    let mut core = Core::new(
        &config.access_list,
        &config.bans,
        &config.workers,
        &config.swarm,
    )?;
    let (local_addr, listeners) = tracker_common::net::listen::bind_tcp_listeners(
        config.network.address,
        config.workers.socket_workers,
        &config.network.socket_options(),
        i32::try_from(config.network.backlog).unwrap_or(1024),
    )?;
    // Everything that needs root is done: the listeners are bound, the access list and
    // the TLS certificates read. Drop privileges before any thread starts; glibc's
    // setuid would change every thread anyway (see tracker_common::runtime::privileges::System).
    tracker_common::runtime::privileges::drop_privileges(&config.privileges)?;
    // After dropping root: the accounting database is then the unprivileged user's.
    let private = core.start_private(
        &config.private,
        &config.accounting,
        u64::from(config.swarm.announce_interval_secs),
    )?;
    core.start_cluster(&config.cluster)?;
    let (polls, wakers) =
        tracker_common::runtime::server::make_polls(listeners.len(), WAKER_TOKEN)?;
    let channels =
        core.spawn_request_workers(&config.swarm, &config.workers, wakers, HttpHandler::default)?;

    let http_counters = core.statistics.connections().clone();
    let front_settings = FrontSettings {
        max_connections: config.http.max_connections,
        poll_timeout: Duration::from_millis(config.network.poll_timeout_ms),
    };
    let settings = SocketWorkerSettings {
        max_request_bytes: config.http.max_request_bytes,
        max_pipelined_requests: config.http.max_pipelined_requests,
        max_outgoing_bytes: config.http.max_outgoing_bytes_per_connection,
        max_outgoing_bytes_total: config.http.max_outgoing_bytes_total,
        idle_timeout: Duration::from_secs(u64::from(config.http.idle_timeout_secs)),
        max_scrape_torrents: config.http.max_scrape_torrents,
        max_pending_scrapes: config.http.max_pending_scrapes,
        numwant: NumWantPolicy {
            default: config.swarm.numwant_default,
            max: config.swarm.numwant_max,
        },
        interval: config.swarm.announce_interval_secs,
        min_interval: config.http.min_announce_interval_secs,
        trust_client_ip: config.swarm.trust_client_ip,
        proxies,
        address_header: config.proxy.address_header.as_str().into(),
        port: local_addr.port(),
        full_scrape_max_torrents: config.http.full_scrape_max_torrents,
        full_scrape_cache: Duration::from_secs(u64::from(config.http.full_scrape_cache_secs)),
    };
    // A trusted proxy speaks for many clients: its connections are not capped.
    let trusted = settings.proxies.clone();
    let per_address = AddressLimit::with_exempt(config.http.max_connections_per_ip, move |ip| {
        trusted.contains(ip)
    });

    let counters = http_counters.clone();
    core.spawn_statistics(config.statistics.interval_secs, move |_| ProtocolLine {
        state: format!(
            "connections {} (since start: refused {}, over the per-ip cap {}, timed out {})",
            counters.open.load(Ordering::Acquire),
            counters.refused.load(Ordering::Relaxed),
            counters.refused_per_ip.load(Ordering::Relaxed),
            counters.timed_out.load(Ordering::Relaxed)
        ),
        ..ProtocolLine::default()
    })?;
    core.spawn_metrics(
        config.metrics.listen_address(),
        config.metrics.history_interval(),
        Protocol::Http,
        APP_VERSION,
    )?;
    if let Some(shared) = &tls {
        core.add_reload(tracker_common::net::tls::reload_part(
            shared.clone(),
            config.tls.clone(),
        ));
    }
    core.spawn_api(config.api.settings(), Protocol::Http, APP_VERSION)?;
    if handle_signals {
        core.spawn_signals()?;
    }

    // The socket workers start last: once they accept, a connection flood may take
    // every file descriptor, and the threads above (the metrics poll, the signal
    // pipe) must have theirs by then. The rate limits are allocated once, shared by
    // every socket worker: they are the whole tracker's.
    let rate_limiter = config.rate_limits.limiter();
    if let Some(limiter) = &rate_limiter {
        core.statistics.watch_rate_limiter(limiter.clone());
    }
    for (index, ((listener, poll), response_receiver)) in listeners
        .into_iter()
        .zip(polls)
        .zip(channels.to_socket_workers)
        .enumerate()
    {
        let protocol = SocketWorker::new(SocketWorkerParts {
            index,
            request_senders: channels.to_request_workers.clone(),
            response_receiver,
            router: core.router.clone(),
            access_list: AccessListCache::new(core.access_list.clone()),
            settings: settings.clone(),
            statistics: core.statistics.clone(),
            private: private.as_ref().map(PrivateCheck::new),
            rate_limiter: rate_limiter.clone(),
        });
        let driver = Driver::new(
            DriverParts {
                index,
                listener: mio::net::TcpListener::from_std(listener),
                poll,
                settings: front_settings.clone(),
                statistics: core.statistics.clone(),
                per_address: per_address.clone(),
                bans: core.bans.clone(),
                tls: tls.clone(),
                shutdown: core.supervisor.shutdown_flag().clone(),
            },
            protocol,
        )?;
        core.supervisor
            .spawn(&format!("socket-{:02}", index + 1), move || driver.run())?;
    }
    drop(channels.to_request_workers);

    let scheme = if tls.is_some() { "https" } else { "http" };
    log::info!(
        "listening on {scheme}://{local_addr} with {} socket and {} request workers",
        config.workers.socket_workers,
        config.workers.request_workers
    );
    Ok(Tracker {
        handle: core.into_handle(local_addr),
        http_counters,
        tls,
        config,
    })
}
