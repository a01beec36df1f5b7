//! shoal's WebSocket tracker: the WebTorrent tracker protocol (JSON messages over
//! WebSocket, as the `bittorrent-tracker` npm client speaks it), which browsers use to
//! find peers and to exchange the WebRTC offers and answers that connect them; IPv4 and
//! IPv6, optional TLS (wss://).
//!
//! # Threads and data flow
//! ```text
//!             SO_REUSEPORT TCP listeners, one per socket worker
//!  clients <-> socket-01..N   (mio; accept, WebSocket upgrade and frames, parse JSON,
//!                 |            passkeys in private mode, access list, write replies,
//!                 |            relayed offers and answers)
//!                 |  batches of announces (with their offers), answers, departures of
//!                 |  closed connections and scrape parts, routed by a keyed hash of the
//!                 |  info hash, over channels bounded by bytes
//!                 v
//!             request-01..M   (each owns one shard of the torrents: peers on
//!                 |            connections, and in private mode their accounting; the
//!                 |            request worker loop of tracker_common)
//!                 |  the announcer's counts back to its socket worker; each offer to the
//!                 |  socket worker of the peer chosen for it, each answer to the
//!                 |  offerer's; a mio Waker rouses each
//!                 v
//!             socket workers write them on the connections
//!  + accounting (private mode: commits the request workers' credit to the database),
//!    statistics (log line), metrics (/metrics and /stats.json on a listener of its
//!    own, read from the workers' counters when scraped; and the statistics page,
//!    charting samples it takes), signals (SIGUSR1 reloads the access list and the
//!    passkeys; SIGTERM / SIGINT stop) and a supervisor: any thread that ends takes the
//!    process down with an error naming it.
//! ```
//!
//! What one client can hold (connections, buffers, swarms, outgoing queue, time) is
//! bounded by the `[ws]` section of the config; see the socket worker.
//!
//! [`start`] runs the tracker in-process and returns a [`Tracker`] handle (tests use it
//! on port 0); [`run`] is what the binary calls.

pub mod config;
mod messages;
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
use tracker_common::runtime::channel::ChannelBound;
use tracker_common::runtime::server::{Core, TrackerHandle};
use tracker_common::swarm::NumWantPolicy;
use tracker_common::swarm::access_list::AccessListCache;

pub use config::Config;

use crate::workers::request::WsHandler;
use crate::workers::socket::{SocketWorker, SocketWorkerParts, SocketWorkerSettings};
use tracker_common::net::front::{Driver, DriverParts, FrontSettings, WAKER_TOKEN};

/// The binary's name.
pub const APP_NAME: &str = "tracker_ws";
/// The binary's version.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A running tracker.
pub struct Tracker {
    handle: TrackerHandle,
    ws_counters: Arc<ConnectionCounters>,
    tls: Option<SharedServerConfig>,
    config: Config,
}

/// Connection counts of a running tracker.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    /// Open now.
    pub open: usize,
    /// Closed at once because `ws.max_connections` were open.
    pub refused: u64,
    /// Closed at once because their client address (IPv4 address, IPv6 /64) had
    /// `ws.max_connections_per_ip` open.
    pub refused_per_ip: u64,
    /// Closed for sending nothing for `ws.idle_timeout_secs`.
    pub timed_out: u64,
    /// Closed for not reading what was sent to them.
    pub slow_readers: u64,
    /// Bytes waiting to be sent now, over all connections.
    pub queued_bytes: usize,
    /// Offers relayed to connected peers.
    pub offers_relayed: u64,
    /// Answers relayed to connected peers.
    pub answers_relayed: u64,
    /// Offers and answers shed: the connection they were for was not keeping up.
    pub relayed_shed: u64,
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
        let c = &self.ws_counters;
        let relays = self.handle.statistics();
        Connections {
            open: c.open.load(Ordering::Acquire),
            refused: c.refused.load(Ordering::Relaxed),
            refused_per_ip: c.refused_per_ip.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            slow_readers: c.slow_readers.load(Ordering::Relaxed),
            queued_bytes: c.queued_bytes.load(Ordering::Relaxed),
            offers_relayed: relays.offers_relayed,
            answers_relayed: relays.answers_relayed,
            relayed_shed: relays.relayed_shed,
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
    let tls = if config.tls.enabled {
        Some(tracker_common::net::tls::shared(&config.tls)?)
    } else {
        None
    };
    tracker_common::net::listen::ensure_open_files(
        config.ws.max_connections,
        "ws.max_connections",
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
    // Private mode opens its database as the unprivileged user, and must be up before
    // the request workers take their accounting.
    let private = core.start_private(
        &config.private,
        &config.accounting,
        u64::from(config.swarm.announce_interval_secs),
    )?;
    core.start_cluster(&config.cluster)?;
    let (polls, wakers) =
        tracker_common::runtime::server::make_polls(listeners.len(), WAKER_TOKEN)?;
    // Bounded by bytes: offers and answers vary in size (see messages).
    let channels = core.spawn_request_workers_bounded(
        &config.swarm,
        &config.workers,
        ChannelBound::Bytes(config.ws.max_channel_bytes),
        wakers,
        {
            let max_sdp_bytes = config.ws.max_message_bytes;
            move || WsHandler::new(max_sdp_bytes)
        },
    )?;

    let ws_counters = core.statistics.connections().clone();
    let front_settings = FrontSettings {
        max_connections: config.ws.max_connections,
        poll_timeout: Duration::from_millis(config.network.poll_timeout_ms),
    };
    let settings = SocketWorkerSettings {
        max_handshake_bytes: config.ws.max_handshake_bytes,
        max_message_bytes: config.ws.max_message_bytes,
        idle_timeout: Duration::from_secs(u64::from(config.ws.idle_timeout_secs)),
        max_offers: config.ws.max_offers_per_announce,
        max_swarms_per_connection: config.ws.max_swarms_per_connection,
        max_outgoing_bytes: config.ws.max_outgoing_bytes_per_connection,
        max_outgoing_bytes_total: config.ws.max_outgoing_bytes_total,
        max_scrape_torrents: config.ws.max_scrape_torrents,
        max_pending_scrapes: config.ws.max_pending_scrapes,
        numwant: NumWantPolicy {
            default: config.swarm.numwant_default,
            max: config.swarm.numwant_max,
        },
        interval: config.swarm.announce_interval_secs,
        origin: config.origin.clone(),
        full_scrape_max_torrents: config.ws.full_scrape_max_torrents,
        full_scrape_cache: Duration::from_secs(u64::from(config.ws.full_scrape_cache_secs)),
        port: local_addr.port(),
        tls: tls.is_some(),
    };
    let per_address = AddressLimit::new(config.ws.max_connections_per_ip);

    let counters = ws_counters.clone();
    let statistics = core.statistics.clone();
    let mut relayed_before = (0, 0, 0);
    core.spawn_statistics(config.statistics.interval_secs, move |elapsed| {
        let s = statistics.snapshot();
        let relayed = (s.offers_relayed, s.answers_relayed, s.relayed_shed);
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
        let line = ProtocolLine {
            requests: String::new(),
            responses: format!(
                "offers relayed {:.0}, answers relayed {:.0}, offers and answers shed {:.0}",
                rate(relayed.0, relayed_before.0),
                rate(relayed.1, relayed_before.1),
                rate(relayed.2, relayed_before.2),
            ),
            state: format!(
                "connections {} (since start: refused {}, over the per-ip cap {}, timed out {}, slow readers {}), \
                 bytes waiting to be sent {}",
                counters.open.load(Ordering::Acquire),
                counters.refused.load(Ordering::Relaxed),
                counters.refused_per_ip.load(Ordering::Relaxed),
                counters.timed_out.load(Ordering::Relaxed),
                counters.slow_readers.load(Ordering::Relaxed),
                counters.queued_bytes.load(Ordering::Relaxed),
            ),
        };
        relayed_before = relayed;
        line
    })?;
    core.spawn_metrics(
        config.metrics.listen_address(),
        config.metrics.history_interval(),
        Protocol::Ws,
        APP_VERSION,
    )?;
    if let Some(shared) = &tls {
        core.add_reload(tracker_common::net::tls::reload_part(
            shared.clone(),
            config.tls.clone(),
        ));
    }
    core.spawn_api(config.api.settings(), Protocol::Ws, APP_VERSION)?;
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
            conns: ws_counters.clone(),
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

    let scheme = if tls.is_some() { "wss" } else { "ws" };
    log::info!(
        "listening on {scheme}://{local_addr} with {} socket and {} request workers",
        config.workers.socket_workers,
        config.workers.request_workers
    );
    Ok(Tracker {
        handle: core.into_handle(local_addr),
        ws_counters,
        tls,
        config,
    })
}
