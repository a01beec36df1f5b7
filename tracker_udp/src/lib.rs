//! shoal's UDP tracker: BitTorrent over UDP (BEP 15, with BEP 41 options), IPv4 and IPv6.
//!
//! # Threads and data flow
//! ```text
//!             SO_REUSEPORT UDP sockets, one per socket worker
//!  clients <-> socket-01..N   (mio; parse, connection ids, passkeys in private
//!                 |            mode, access list, connects, serialize and send)
//!                 |  batches of announces / scrape parts, routed by a keyed hash of
//!                 |  the info hash, over channels bounded by requests (full: dropped
//!                 |  and counted)
//!                 v
//!             request-01..M   (each owns one shard of the torrents; announce,
//!                 |            scrape, peer expiry; no locks; in private mode the
//!                 |            accounting of its torrents, handed to the
//!                 |            `accounting` thread, which writes it to the database)
//!                 |  batches of responses back to the originating socket worker,
//!                 |  which a mio Waker rouses
//!                 v
//!             socket worker sends
//!  + statistics (periodic log line), metrics (/metrics and /stats.json on a
//!    listener of its own, read from the workers' counters when scraped; and the
//!    statistics page, charting samples it takes), signals (SIGUSR1 reloads the access
//!    list and, in private mode, the passkeys; SIGTERM / SIGINT stop), and a
//!    supervisor: any thread that ends takes the process down with an error naming it.
//! ```
//!
//! Connects never leave the socket worker: connection ids are stateless (a keyed MAC of
//! the client's IP and an expiry time). A request with an invalid or expired connection
//! id is answered with the error "invalid connection id" (always smaller than the
//! request) and is otherwise ignored. A scrape over hashes of several shards is split
//! and merged again by the socket worker. In private mode an announce needs a passkey in
//! its BEP 41 URL data, and a scrape (which cannot carry one) is refused unless
//! `private.scrape_requires_passkey` is off; see `workers::socket`. The request workers'
//! loop, the routing, the scrape merging, private mode's accounting and the start-up
//! wiring are shared with the other trackers (`tracker_common`); this crate
//! holds what is UDP's own: the socket workers, connection ids and the meaning of a UDP
//! announce or scrape for the request workers.
//!
//! [`start`] runs the tracker in-process and returns a [`Tracker`] handle (tests use it
//! on port 0); [`run`] is what the binary calls.

pub mod config;
mod connection_id;
mod messages;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use tracker_common::config::TrackerConfig as _;
use tracker_common::net::bans::BanCache;
use tracker_common::observe::statistics::{Protocol, ProtocolLine, RequestKind, Snapshot};
use tracker_common::private::passkey::PrivateCheck;
use tracker_common::runtime::reload::ReloadPart;
use tracker_common::runtime::server::{Core, TrackerHandle};
use tracker_common::swarm::NumWantPolicy;
use tracker_common::swarm::access_list::AccessListCache;

pub use config::Config;

use crate::connection_id::{ConnectionValidator, SharedValidator, ValidatorCache};
use crate::workers::request::UdpHandler;
use crate::workers::socket::{SocketWorker, SocketWorkerSettings, WAKER_TOKEN};
use tracker_common::cluster::ClusterConfig;

/// The binary's name.
pub const APP_NAME: &str = "tracker_udp";
/// The binary's version.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A running tracker.
pub struct Tracker {
    handle: TrackerHandle,
    config: Config,
    secret: SecretReload,
    validator: SharedValidator,
}

impl Tracker {
    /// The address the sockets are bound to (with the real port when 0 was configured).
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
    pub fn reload(&self) -> Vec<ReloadPart> {
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

    /// Connect requests received.
    pub fn connects(&self) -> u64 {
        self.handle.statistics().requests_of(RequestKind::Connect)
    }

    /// Re-reads the cluster's connection id secret file, as SIGUSR1 does; returns how
    /// many secrets are in force. On error the secrets in force stay.
    ///
    /// # Errors
    /// No secret file is configured, or it cannot be read, is readable by other users
    /// or is malformed.
    pub fn reload_connection_id_secret(&self) -> anyhow::Result<usize> {
        self.secret.reload(&self.validator)
    }

    /// Re-reads the access list file, as SIGUSR1 does. On error the old list stays.
    ///
    /// # Errors
    /// The file could not be read or has a bad line.
    pub fn reload_access_list(&self) -> anyhow::Result<usize> {
        self.handle.reload_access_list()
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

/// Validates the config and starts every thread; returns once the sockets are bound.
///
/// # Errors
/// A bad config value (naming the key), an unreadable access list, a socket that could
/// not be bound, or (in private mode) an accounting database or passkey file that
/// cannot be read.
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
    let mut core = Core::new(
        &config.access_list,
        &config.bans,
        &config.workers,
        &config.swarm,
    )?;
    // Before privileges are dropped: the secret file may be readable by root alone.
    let secret = SecretReload {
        config: config.cluster.clone(),
        valid_secs: config.protocol.connection_id_valid_secs,
        start_unix_secs: core.start_unix_secs,
    };
    let validator: SharedValidator = Arc::new(ArcSwap::from_pointee(secret.read()?));
    let (local_addr, sockets) = bind_sockets(&config)?;
    // Everything that needs root is done: the sockets are bound, the access list read.
    // Drop privileges before any thread starts; glibc's setuid would change every thread
    // anyway (see tracker_common::runtime::privileges::System).
    tracker_common::runtime::privileges::drop_privileges(&config.privileges)?;
    let (polls, wakers) = tracker_common::runtime::server::make_polls(sockets.len(), WAKER_TOKEN)?;

    // After dropping root (the database file belongs to the unprivileged user) and
    // before the request workers, which take their accounting from it.
    let private = core.start_private(
        &config.private,
        &config.accounting,
        u64::from(config.swarm.announce_interval_secs),
    )?;
    core.start_cluster(&config.cluster)?;
    let interval = i32::try_from(config.swarm.announce_interval_secs).unwrap_or(i32::MAX);
    let channels = core.spawn_request_workers(&config.swarm, &config.workers, wakers, || {
        UdpHandler::new(interval)
    })?;

    // Allocated once, shared by every socket worker: the limits are the whole tracker's.
    let rate_limiter = config.rate_limits.limiter();
    if let Some(limiter) = &rate_limiter {
        core.statistics.watch_rate_limiter(limiter.clone());
    }
    let settings = SocketWorkerSettings {
        max_scrape_torrents: config.protocol.max_scrape_torrents,
        max_pending_scrapes: config.protocol.max_pending_scrapes,
        // Only private mode reads the URL data (for the passkey): public mode keeps none,
        // so that a client's "/announce" costs its announce no allocation.
        max_url_data_bytes: if private.is_some() {
            config.protocol.max_url_data_bytes
        } else {
            0
        },
        trust_client_ip: config.swarm.trust_client_ip,
        poll_timeout: Duration::from_millis(config.network.poll_timeout_ms),
        segmentation: config.network.segmentation,
        gather: config.network.gather(),
        numwant: NumWantPolicy {
            default: config.swarm.numwant_default,
            max: config.swarm.numwant_max,
        },
    };
    for (index, ((socket, poll), response_receiver)) in sockets
        .into_iter()
        .zip(polls)
        .zip(channels.to_socket_workers)
        .enumerate()
    {
        let worker = SocketWorker {
            index,
            socket,
            poll,
            request_senders: channels.to_request_workers.clone(),
            response_receiver,
            router: core.router.clone(),
            validator: ValidatorCache::new(validator.clone()),
            access_list: AccessListCache::new(core.access_list.clone()),
            settings: settings.clone(),
            start: core.start,
            statistics: core.statistics.clone(),
            shutdown: core.supervisor.shutdown_flag().clone(),
            private: private.as_ref().map(PrivateCheck::new),
            rate_limiter: rate_limiter.clone(),
            bans: BanCache::new(core.bans.clone()),
        };
        core.supervisor
            .spawn(&format!("socket-{:02}", index + 1), move || worker.run())?;
    }
    drop(channels.to_request_workers);

    let statistics = core.statistics.clone();
    let mut last_connects = 0;
    core.spawn_statistics(config.statistics.interval_secs, move |elapsed| {
        let connects = statistics.snapshot().requests_of(RequestKind::Connect);
        let rate = connects.saturating_sub(last_connects) as f64 / elapsed.as_secs_f64().max(0.001);
        last_connects = connects;
        ProtocolLine {
            requests: format!("connect {rate:.0}"),
            ..ProtocolLine::default()
        }
    })?;
    core.spawn_metrics(
        config.metrics.listen_address(),
        config.metrics.history_interval(),
        Protocol::Udp,
        APP_VERSION,
    )?;
    if secret.is_cluster() {
        let (secret, validator) = (secret.clone(), validator.clone());
        core.add_reload(move || {
            vec![match secret.reload(&validator) {
                Ok(n) => {
                    ReloadPart::done("connection_id_secret", format!("{n} secret(s) in force"))
                }
                Err(err) => ReloadPart::failed("connection_id_secret", &err),
            }]
        });
    }
    core.spawn_api(config.api.settings(), Protocol::Udp, APP_VERSION)?;
    if handle_signals {
        core.spawn_signals()?;
    }

    log::info!(
        "listening on udp://{local_addr} with {} socket and {} request workers",
        config.workers.socket_workers,
        config.workers.request_workers
    );
    Ok(Tracker {
        handle: core.into_handle(local_addr),
        config,
        secret,
        validator,
    })
}

/// What re-reading the cluster's connection id secret needs.
#[derive(Clone)]
struct SecretReload {
    config: ClusterConfig,
    valid_secs: u32,
    start_unix_secs: u64,
}

impl SecretReload {
    fn is_cluster(&self) -> bool {
        !self.config.connection_id_secret_path.as_os_str().is_empty()
    }

    /// The validator the config asks for: a process key, or the cluster's secrets.
    fn read(&self) -> anyhow::Result<ConnectionValidator> {
        if self.is_cluster() {
            ConnectionValidator::from_secret_file(
                &self.config.connection_id_secret_path,
                self.valid_secs,
                self.config.max_clock_skew_secs,
                self.start_unix_secs,
            )
        } else {
            ConnectionValidator::new(self.valid_secs)
        }
    }

    /// Re-reads the cluster's secret file into `shared`; on error the secrets in force
    /// stay. Returns how many secrets are in force.
    fn reload(&self, shared: &SharedValidator) -> anyhow::Result<usize> {
        anyhow::ensure!(
            self.is_cluster(),
            "cluster.connection_id_secret_path is not set: this tracker's connection id key \
             is its own, and stays"
        );
        let validator = self.read()?;
        let secrets = validator.accepted_secrets();
        shared.store(Arc::new(validator));
        Ok(secrets)
    }
}

/// Binds one socket per socket worker, all on the configured address and port; fails
/// if another process serves that port.
fn bind_sockets(config: &Config) -> anyhow::Result<(SocketAddr, Vec<mio::net::UdpSocket>)> {
    let (local_addr, sockets) = tracker_common::net::listen::bind_udp_sockets(
        config.network.address,
        config.workers.socket_workers,
        &config.network.socket_options(),
    )?;
    let sockets = sockets
        .into_iter()
        .map(mio::net::UdpSocket::from_std)
        .collect();
    Ok((local_addr, sockets))
}
