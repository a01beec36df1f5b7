//! Start-up and thread wiring that every tracker shares: the access list, the request
//! workers with their channels, the statistics and signal threads, and the handle that
//! tests and the binaries hold.
//!
//! A tracker starts in a few named steps:
//! 1. [`Core::new`] loads the access list and the swarm snapshot, if any, and makes the
//!    statistics and the shard router (with the snapshot's key);
//! 2. the tracker binds its sockets (see [`crate::net::listen`]), drops root if its config says
//!    so (see [`crate::runtime::privileges`]), and makes one waker per socket worker; in
//!    private mode it then calls [`Core::start_private`], which opens the accounting
//!    database as the unprivileged user and loads the passkeys and committed baselines;
//! 3. [`Core::spawn_request_workers`] restores the snapshot into the shards, starts the
//!    request workers (and the `snapshot` thread) and returns the channels the socket
//!    workers use;
//! 4. the tracker spawns its socket workers on [`Core::supervisor`];
//! 5. [`Core::spawn_statistics`], [`Core::spawn_metrics`], [`Core::add_reload`] for the
//!    tracker's own files, [`Core::spawn_api`] and [`Core::spawn_signals`], then
//!    [`Core::into_handle`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::api::{ApiContext, ApiService, ApiSettings};
use crate::cluster::bus::{Bus, connect_options};
use crate::cluster::{ClusterConfig, ClusterDuty, change_channel};
use crate::config::{SwarmConfig, WorkerConfig};
use crate::net::bans::{self, BanConfig, SharedBans};
use crate::net::http_server::{self, HttpServer};
use crate::observe::history::History;
use crate::observe::metrics::{Identity, MetricsServer};
use crate::observe::statistics::{
    Protocol, ProtocolLine, Snapshot, Statistics, run_statistics_logger, unix_now_secs,
};
use crate::private::writer::FINAL_COMMIT_DEADLINE;
use crate::private::{AccountingConfig, PrivateAccess, PrivateConfig, PrivateRuntime};
use crate::runtime::channel::{ChannelBound, WeightedReceiver, WeightedSender, bounded, weighted};
use crate::runtime::reload::{ReloadPart, Reloader};
use crate::runtime::request_worker::{
    AdminQuery, CleaningSchedule, RequestBatch, RequestHandler, RequestWorker, Responder, Shard,
    SnapshotDuty, Swarm, WakeFn,
};
use crate::runtime::supervisor::{ShutdownFlag, Supervisor, spawn_signal_thread};
use crate::swarm::SwarmBudget;
use crate::swarm::access_list::{
    self, AccessList, AccessListConfig, AccessListMode, SharedAccessList,
};
use crate::swarm::routing::ShardRouter;
use crate::swarm::saved::SavedTorrent;
use crate::swarm::snapshot::{self, LoadSink, SnapshotFile, SnapshotPart};
use crate::time::{SecondsSinceServerStart, ServerStartInstant};

/// How long a stopping tracker waits for its threads.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What every tracker starts with, before its sockets.
pub struct Core {
    /// The tracker's threads.
    pub supervisor: Supervisor,
    /// Every worker's counters.
    pub statistics: Arc<Statistics>,
    /// The access list, shared with the socket workers and reloaded by SIGUSR1.
    pub access_list: SharedAccessList,
    /// How the access list is read.
    pub access_list_config: AccessListConfig,
    /// The bans, shared with the socket workers; reloaded by SIGUSR1, changed by the
    /// admin API.
    pub bans: SharedBans,
    /// Where the bans are kept.
    pub ban_config: BanConfig,
    /// What SIGUSR1 and the admin API's reload do.
    reloader: Reloader,
    /// Held while the access list or the bans are changed or reloaded.
    edit_lock: Arc<Mutex<()>>,
    /// Where the admin API listens, once started.
    api_addr: Option<SocketAddr>,
    /// The server's start, the origin of its coarse clock.
    pub start: ServerStartInstant,
    /// Which request worker owns which torrent.
    pub router: ShardRouter,
    /// When the tracker started, in Unix seconds (for the metrics).
    pub start_unix_secs: u64,
    /// Where the metrics endpoint listens, once started.
    metrics_addr: Option<SocketAddr>,
    snapshot: Option<SnapshotSetup>,
    private: Option<PrivateRuntime>,
    cluster: Option<ClusterSetup>,
    /// To each request worker, the admin API's questions; empty until they start.
    admin_queries: Vec<crossbeam_channel::Sender<AdminQuery>>,
}

/// A cluster node's set-up, between [`Core::start_cluster`] and the request workers.
struct ClusterSetup {
    config: ClusterConfig,
    node_id: String,
    options: async_nats::ConnectOptions,
}

/// Admin API questions waiting for one request worker, at most: the API asks one at a
/// time, so this only bounds what a stuck worker holds.
const ADMIN_QUERY_CAPACITY: usize = 4;

/// Other nodes' changes and resync torrents queued for one request worker, at most (in
/// peers): beyond, changes are dropped and counted, and the node resyncs.
const CLUSTER_CHANNEL_CAPACITY: usize = 1 << 17;

/// Snapshots, when `swarm.snapshot_path` is set.
struct SnapshotSetup {
    path: PathBuf,
    interval_secs: u32,
    /// The snapshot read at start, until it is restored into the shards.
    loaded: Option<SnapshotFile>,
    /// The request workers' last parts, sent as they stop.
    last_parts: Option<crossbeam_channel::Receiver<(usize, SnapshotPart)>>,
}

/// What [`TrackerHandle::shutdown`] needs to write the last snapshot.
struct FinalSnapshot {
    path: PathBuf,
    router_key: [u8; 16],
    workers: usize,
    parts: crossbeam_channel::Receiver<(usize, SnapshotPart)>,
}

/// The channels between the socket workers and the request workers.
pub struct Channels<H: RequestHandler> {
    /// To each request worker, by index; every socket worker gets a clone of all.
    pub to_request_workers: Vec<WeightedSender<RequestBatch<H::Request>>>,
    /// From the request workers, one per socket worker, by index.
    pub to_socket_workers: Vec<WeightedReceiver<H::Responses>>,
}

impl Core {
    /// Loads the access list (a bad file is an error naming it and the line) and the
    /// swarm snapshot of `swarm.snapshot_path` (a missing or unusable one starts an empty
    /// swarm, see [`crate::swarm::snapshot`]), and makes the shared state for `workers` (already
    /// resolved).
    ///
    /// # Errors
    /// The access list cannot be read, or the snapshot's directory does not exist.
    pub fn new(
        access_list_config: &AccessListConfig,
        ban_config: &BanConfig,
        workers: &WorkerConfig,
        swarm: &SwarmConfig,
    ) -> anyhow::Result<Self> {
        let list = AccessList::from_config(access_list_config)?;
        let ban_list = bans::load(ban_config)?;
        if !ban_config.path.as_os_str().is_empty() {
            log::info!(
                "bans {}: {} networks",
                ban_config.path.display(),
                ban_list.len()
            );
        }
        if access_list_config.mode != AccessListMode::Off {
            log::info!(
                "access list {}: {} info hashes ({:?} mode)",
                access_list_config.path.display(),
                list.len(),
                access_list_config.mode
            );
        }
        let statistics = Statistics::new(workers.socket_workers, workers.request_workers);
        statistics.access_list_loaded(list.len());
        statistics
            .admin()
            .bans
            .store(ban_list.len() as u64, Ordering::Relaxed);
        let snapshot = if swarm.snapshot_path.is_empty() {
            None
        } else {
            let path = PathBuf::from(&swarm.snapshot_path);
            if !snapshot::directory_exists(&path) {
                anyhow::bail!(
                    "swarm.snapshot_path: the directory of {} does not exist",
                    path.display()
                );
            }
            let loaded = snapshot::load(&path);
            Some(SnapshotSetup {
                path,
                interval_secs: swarm.snapshot_interval_secs,
                loaded,
                last_parts: None,
            })
        };
        // The archive is keyed by the router's fingerprints: a snapshot's archived counts
        // mean something only under the key they were made with.
        let router = match snapshot.as_ref().and_then(|s| s.loaded.as_ref()) {
            Some(loaded) => ShardRouter::with_key(loaded.router_key, workers.request_workers),
            None => ShardRouter::new(workers.request_workers),
        };
        // Restored peers were last seen up to max_peer_age_secs ago: the clock starts
        // there, so that their times need no negative seconds.
        let start = if snapshot.is_some() {
            ServerStartInstant::backdated(swarm.max_peer_age_secs)
        } else {
            ServerStartInstant::new()
        };
        let statistics = Arc::new(statistics);
        let access_list = access_list::shared(list);
        let bans = bans::shared(ban_list);
        let edit_lock = Arc::new(Mutex::new(()));
        let mut reloader = Reloader::default();
        {
            let (list, config, statistics, lock) = (
                access_list.clone(),
                access_list_config.clone(),
                statistics.clone(),
                edit_lock.clone(),
            );
            reloader.add(move || {
                if config.mode == AccessListMode::Off {
                    return Vec::new();
                }
                let _editing = lock.lock().unwrap_or_else(PoisonError::into_inner);
                vec![match reload_access_list(&list, &config, &statistics) {
                    Ok(n) => ReloadPart::done("access_list", format!("{n} info hashes")),
                    Err(err) => ReloadPart::failed("access_list", &err),
                }]
            });
        }
        {
            let (shared, config, statistics, lock) = (
                bans.clone(),
                ban_config.clone(),
                statistics.clone(),
                edit_lock.clone(),
            );
            reloader.add(move || {
                if config.path.as_os_str().is_empty() {
                    return Vec::new();
                }
                let _editing = lock.lock().unwrap_or_else(PoisonError::into_inner);
                vec![match bans::reload(&shared, &config) {
                    Ok(n) => {
                        statistics.admin().bans.store(n as u64, Ordering::Relaxed);
                        ReloadPart::done("bans", format!("{n} networks"))
                    }
                    Err(err) => ReloadPart::failed("bans", &err),
                }]
            });
        }
        Ok(Self {
            supervisor: Supervisor::new(ShutdownFlag::new()),
            statistics,
            access_list,
            access_list_config: access_list_config.clone(),
            bans,
            ban_config: ban_config.clone(),
            reloader,
            edit_lock,
            api_addr: None,
            start,
            router,
            snapshot,
            start_unix_secs: unix_now_secs(),
            metrics_addr: None,
            private: None,
            cluster: None,
            admin_queries: Vec::new(),
        })
    }

    /// Starts private mode if `private.enabled`: loads the passkeys and opens the
    /// accounting database if it can (see [`PrivateRuntime::start`]). Call it
    /// after dropping privileges (the database file is then the unprivileged user's, and
    /// a relative path is inside the chroot) and before
    /// [`Core::spawn_request_workers`]. Returns what the socket workers need, `None` in
    /// public mode.
    ///
    /// # Errors
    /// As [`PrivateRuntime::start`].
    pub fn start_private(
        &mut self,
        private: &PrivateConfig,
        accounting: &AccountingConfig,
        announce_interval_secs: u64,
    ) -> anyhow::Result<Option<PrivateAccess>> {
        if !private.enabled {
            return Ok(None);
        }
        let runtime = PrivateRuntime::start(
            private,
            accounting,
            announce_interval_secs,
            self.router.num_shards(),
            self.start,
            self.statistics.private().clone(),
        )?;
        let access = runtime.access();
        let reload_passkeys = runtime.reloader();
        self.reloader.add(move || vec![reload_passkeys()]);
        self.private = Some(runtime);
        Ok(Some(access))
    }

    /// Makes this tracker a node of the cluster that `config` names, if it is enabled:
    /// its request workers will record and apply peer changes, and
    /// [`Self::spawn_request_workers`] starts the `cluster` thread (see
    /// [`crate::cluster`]). Not being able to reach NATS does not stop a start: the node
    /// serves its own swarms and keeps trying.
    ///
    /// # Errors
    /// No node id can be made, or the credentials file cannot be read.
    pub fn start_cluster(&mut self, config: &ClusterConfig) -> anyhow::Result<()> {
        if !config.enabled {
            return Ok(());
        }
        let node_id = config.resolved_node_id()?;
        let options = connect_options(config, &node_id)?;
        self.statistics
            .cluster()
            .enabled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.cluster = Some(ClusterSetup {
            config: config.clone(),
            node_id,
            options,
        });
        Ok(())
    }

    /// Starts `workers.request_workers` request workers named `request-01`, ..., each
    /// with a handler from `make_handler` and an empty shard bounded by `swarm`, and
    /// returns the channels. `wakers` has one entry per socket worker.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn spawn_request_workers<H: RequestHandler>(
        &mut self,
        swarm: &SwarmConfig,
        workers: &WorkerConfig,
        wakers: Vec<WakeFn>,
        make_handler: impl FnMut() -> H,
    ) -> anyhow::Result<Channels<H>> {
        let bound = ChannelBound::Requests(workers.channel_capacity_requests);
        self.spawn_request_workers_bounded(swarm, workers, bound, wakers, make_handler)
    }

    /// As [`Self::spawn_request_workers`], with channels bounded as `bound` says (by
    /// bytes, for a tracker whose messages vary in size) rather than by
    /// `workers.channel_capacity_requests`.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn spawn_request_workers_bounded<H: RequestHandler>(
        &mut self,
        swarm: &SwarmConfig,
        workers: &WorkerConfig,
        bound: ChannelBound,
        wakers: Vec<WakeFn>,
        mut make_handler: impl FnMut() -> H,
    ) -> anyhow::Result<Channels<H>> {
        let (to_request_workers, request_receivers): (Vec<_>, Vec<_>) =
            (0..workers.request_workers).map(|_| bounded(bound)).unzip();
        let (response_senders, to_socket_workers): (Vec<_>, Vec<_>) =
            wakers.iter().map(|_| bounded(bound)).unzip();
        // The tracker-wide limits: every shard takes torrents and peers from one budget.
        let limits = swarm.limits();
        let budget = Arc::new(SwarmBudget::new(&limits));
        let cleaning = CleaningSchedule {
            interval: Duration::from_secs(u64::from(swarm.cleaning_interval_secs)),
            max_peer_age_secs: swarm.max_peer_age_secs,
        };
        let mut shards: Vec<H::Shard> = (0..workers.request_workers)
            .map(|_| <H::Shard as Shard>::new(limits, budget.clone(), &self.router))
            .collect();
        let duties = self.start_snapshots(swarm, &mut shards)?;
        let mut cluster_duties = self.start_cluster_bus::<H::Shard>(&mut shards)?;
        let (admin_senders, admin_receivers): (Vec<_>, Vec<_>) = (0..workers.request_workers)
            .map(|_| crossbeam_channel::bounded(ADMIN_QUERY_CAPACITY))
            .unzip();
        self.admin_queries = admin_senders;
        for (((index, receiver), (shard, snapshot)), admin) in request_receivers
            .into_iter()
            .enumerate()
            .zip(shards.into_iter().zip(duties))
            .zip(admin_receivers)
        {
            let worker = RequestWorker {
                index,
                receiver,
                responders: response_senders
                    .iter()
                    .zip(&wakers)
                    .map(|(sender, wake)| Responder {
                        sender: sender.clone(),
                        wake: wake.clone(),
                    })
                    .collect(),
                handler: make_handler(),
                swarm: Swarm {
                    shard,
                    rng: SmallRng::from_os_rng(),
                    now: SecondsSinceServerStart(0),
                    accounting: self.private.as_mut().and_then(|p| p.duty(index)),
                    relays: Vec::new(),
                },
                cleaning,
                start: self.start,
                statistics: self.statistics.clone(),
                shutdown: self.supervisor.shutdown_flag().clone(),
                snapshot,
                cluster: cluster_duties.get_mut(index).and_then(Option::take),
                admin,
            };
            self.supervisor
                .spawn(&format!("request-{:02}", index + 1), move || worker.run())?;
        }
        if let Some(writer) = self.private.as_mut().and_then(PrivateRuntime::take_writer) {
            self.supervisor.spawn("accounting", move || writer.run())?;
        }
        Ok(Channels {
            to_request_workers,
            to_socket_workers,
        })
    }

    /// On a cluster node, turns on the shards' change records and starts the `cluster`
    /// thread; returns each request worker's duty (none on a single node).
    fn start_cluster_bus<S: Shard>(
        &mut self,
        shards: &mut [S],
    ) -> anyhow::Result<Vec<Option<ClusterDuty>>> {
        let Some(setup) = self.cluster.take() else {
            return Ok(shards.iter().map(|_| None).collect());
        };
        anyhow::ensure!(
            S::replicated(),
            "cluster.enabled: this tracker's swarms cannot be shared over a cluster"
        );
        let statistics = self.statistics.cluster().clone();
        let (outbox, inbox) = change_channel(
            setup.config.max_queued_changes,
            setup.config.max_queued_relay_bytes,
            statistics.clone(),
        );
        let mut senders = Vec::with_capacity(shards.len());
        let mut duties = Vec::with_capacity(shards.len());
        for shard in shards.iter_mut() {
            shard.record_changes(true, setup.config.refresh_window_secs);
            let (sender, receiver) = weighted(CLUSTER_CHANNEL_CAPACITY);
            senders.push(sender);
            duties.push(Some(ClusterDuty {
                incoming: receiver,
                outgoing: outbox.clone(),
                statistics: statistics.clone(),
            }));
        }
        let bus = Bus {
            config: setup.config,
            node_id: setup.node_id,
            statistics,
            router: self.router.clone(),
            workers: senders,
            inbox,
            shutdown: self.supervisor.shutdown_flag().clone(),
            options: Some(setup.options),
            swarm_kind: S::swarm_kind(),
        };
        self.supervisor.spawn("cluster", move || bus.run())?;
        Ok(duties)
    }

    /// Restores the snapshot read at start into `shards` and, with snapshots on, starts
    /// the `snapshot` thread for periodic ones; returns each request worker's duty.
    fn start_snapshots<S: Shard>(
        &mut self,
        swarm: &SwarmConfig,
        shards: &mut [S],
    ) -> anyhow::Result<Vec<Option<SnapshotDuty>>> {
        let num_workers = shards.len();
        let Some(setup) = &mut self.snapshot else {
            return Ok((0..num_workers).map(|_| None).collect());
        };
        if let Some(loaded) = setup.loaded.take() {
            restore(
                &loaded,
                &setup.path,
                shards,
                &self.router,
                self.start.seconds_elapsed(),
                swarm.max_peer_age_secs,
            );
        }
        let (last_sender, last_receiver) = crossbeam_channel::unbounded();
        setup.last_parts = Some(last_receiver);
        // Room for a round and a half: a worker that finds it full skips its periodic
        // part rather than pile up copies of its shard.
        let (periodic_sender, periodic_receiver) =
            crossbeam_channel::bounded(num_workers + num_workers / 2 + 1);
        let interval =
            (setup.interval_secs > 0).then(|| Duration::from_secs(u64::from(setup.interval_secs)));
        if interval.is_some() {
            let writer = PeriodicWriter {
                path: setup.path.clone(),
                router_key: self.router.key(),
                parts: periodic_receiver,
                shutdown: self.supervisor.shutdown_flag().clone(),
            };
            self.supervisor
                .spawn("snapshot", move || writer.run(num_workers))?;
        }
        Ok((0..num_workers)
            .map(|_| {
                Some(SnapshotDuty {
                    interval,
                    periodic: periodic_sender.clone(),
                    last: last_sender.clone(),
                })
            })
            .collect())
    }

    /// Starts the thread that logs a statistics line every `interval_secs` (0 = none);
    /// `protocol` gives the tracker's own parts of the line for the time given.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn spawn_statistics(
        &mut self,
        interval_secs: u32,
        protocol: impl FnMut(Duration) -> ProtocolLine + Send + 'static,
    ) -> anyhow::Result<()> {
        if interval_secs == 0 {
            return Ok(());
        }
        let stats = self.statistics.clone();
        let interval = Duration::from_secs(u64::from(interval_secs));
        let shutdown = self.supervisor.shutdown_flag().clone();
        self.supervisor.spawn("statistics", move || {
            run_statistics_logger(&stats, interval, &shutdown, protocol)
        })
    }

    /// Starts the metrics endpoint on `address` (`None`: disabled), serving the counters
    /// of this `protocol`'s tracker at `version`, and returns where it listens.
    ///
    /// # Errors
    /// The address cannot be bound or the thread could not be started.
    pub fn spawn_metrics(
        &mut self,
        address: Option<SocketAddr>,
        history_interval: Duration,
        protocol: Protocol,
        version: &'static str,
    ) -> anyhow::Result<Option<SocketAddr>> {
        let Some(address) = address else {
            return Ok(None);
        };
        let (listener, local) = crate::observe::metrics::bind(address)?;
        let server = MetricsServer::new(
            listener,
            self.statistics.clone(),
            Identity {
                protocol,
                version,
                start_unix_secs: self.start_unix_secs,
            },
            self.supervisor.shutdown_flag().clone(),
            History::new(history_interval),
        )?
        .with_ended_threads(self.supervisor.ended_threads());
        self.supervisor.spawn("metrics", move || server.run())?;
        log::info!(
            "metrics on http://{local}/metrics and http://{local}/stats.json, health on \
             http://{local}/health, statistics page on http://{local}/"
        );
        self.metrics_addr = Some(local);
        Ok(Some(local))
    }

    /// Adds a tracker's own part to what SIGUSR1 and the admin API's reload do (its TLS
    /// certificates, say), after the access list, the bans and the passkeys. Call it
    /// before [`Core::spawn_signals`] and [`Core::spawn_api`].
    pub fn add_reload(&mut self, part: impl Fn() -> Vec<ReloadPart> + Send + Sync + 'static) {
        self.reloader.add(part);
    }

    /// Starts the signal thread: SIGUSR1 runs the reload (the passkeys, the access list
    /// and the bans, then the parts of [`Core::add_reload`]; a part that fails is logged
    /// and keeps what was in force), SIGTERM and SIGINT stop the tracker.
    ///
    /// # Errors
    /// The signal handlers could not be installed.
    pub fn spawn_signals(&mut self) -> anyhow::Result<()> {
        let reloader = self.reloader.clone();
        spawn_signal_thread(&mut self.supervisor, move || {
            reloader.run();
        })
    }

    /// Starts the admin API if `settings` says so (see [`crate::api`]): reads its token,
    /// binds its address and serves on a thread of its own. Call it after
    /// [`Core::spawn_request_workers`] (it asks them about torrents) and
    /// [`Core::add_reload`]. Returns where it listens.
    ///
    /// # Errors
    /// The token file is missing or too short, or the address cannot be bound.
    pub fn spawn_api(
        &mut self,
        settings: Option<ApiSettings>,
        protocol: Protocol,
        version: &'static str,
    ) -> anyhow::Result<Option<SocketAddr>> {
        let Some(settings) = settings else {
            return Ok(None);
        };
        let token = crate::api::read_token(&settings.token_path)?;
        let (listener, local) = http_server::bind("admin API", settings.address)?;
        let context = ApiContext {
            statistics: self.statistics.clone(),
            identity: Identity {
                protocol,
                version,
                start_unix_secs: self.start_unix_secs,
            },
            ended: self.supervisor.ended_threads(),
            router: self.router.clone(),
            queries: self.admin_queries.clone(),
            access_list: self.access_list.clone(),
            access_list_config: self.access_list_config.clone(),
            bans: self.bans.clone(),
            ban_config: self.ban_config.clone(),
            site: self.private.as_ref().map(PrivateRuntime::admin),
            reloader: self.reloader.clone(),
            edit_lock: self.edit_lock.clone(),
        };
        let server = HttpServer::new(
            "admin API",
            listener,
            ApiService::new(token, context),
            self.supervisor.shutdown_flag().clone(),
            http_server::Limits {
                max_body_bytes: crate::api::service::MAX_BODY_BYTES,
                // An answer may wait for the request workers or the database.
                request_timeout: Duration::from_secs(10),
                max_connections: 16,
            },
        )?;
        self.supervisor.spawn("api", move || server.run())?;
        log::info!("admin API on http://{local}/api/v1/ (health on http://{local}/health)");
        self.api_addr = Some(local);
        Ok(Some(local))
    }

    /// The handle of the started tracker, listening on `local_addr`.
    pub fn into_handle(self, local_addr: SocketAddr) -> TrackerHandle {
        let final_snapshot = self.snapshot.and_then(|setup| {
            Some(FinalSnapshot {
                path: setup.path,
                router_key: self.router.key(),
                workers: self.router.num_shards(),
                parts: setup.last_parts?,
            })
        });
        TrackerHandle {
            // The accounting thread's last commit may take its own deadline.
            shutdown_timeout: if self.private.is_some() {
                SHUTDOWN_TIMEOUT + FINAL_COMMIT_DEADLINE
            } else {
                SHUTDOWN_TIMEOUT
            },
            final_snapshot,
            local_addr,
            metrics_addr: self.metrics_addr,
            api_addr: self.api_addr,
            reloader: self.reloader,
            supervisor: self.supervisor,
            statistics: self.statistics,
            access_list: self.access_list,
            access_list_config: self.access_list_config,
        }
    }
}

/// Re-reads the access list and, when that worked, records its size and time for the
/// metrics.
fn reload_access_list(
    list: &SharedAccessList,
    config: &AccessListConfig,
    statistics: &Statistics,
) -> anyhow::Result<usize> {
    let n = access_list::reload(list, config)?;
    statistics.access_list_loaded(n);
    Ok(n)
}

/// One mio poll per socket worker, and the wake functions the request workers call to
/// rouse them (a mio `Waker` registered in each poll under `waker_token`).
///
/// # Errors
/// A poll or waker could not be made.
pub fn make_polls(
    count: usize,
    waker_token: mio::Token,
) -> anyhow::Result<(Vec<mio::Poll>, Vec<WakeFn>)> {
    let mut polls = Vec::with_capacity(count);
    let mut wakers = Vec::with_capacity(count);
    for _ in 0..count {
        let poll = mio::Poll::new().context("create poll")?;
        let waker = mio::Waker::new(poll.registry(), waker_token).context("create waker")?;
        let wake: WakeFn = Arc::new(move || waker.wake());
        wakers.push(wake);
        polls.push(poll);
    }
    Ok((polls, wakers))
}

/// A running tracker, whatever its protocol: what its binary waits on and what tests
/// inspect. Dropping it stops the threads.
pub struct TrackerHandle {
    shutdown_timeout: Duration,
    final_snapshot: Option<FinalSnapshot>,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    api_addr: Option<SocketAddr>,
    reloader: Reloader,
    supervisor: Supervisor,
    statistics: Arc<Statistics>,
    access_list: SharedAccessList,
    access_list_config: AccessListConfig,
}

impl TrackerHandle {
    /// The address the sockets are bound to (with the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the metrics endpoint listens (with the real port when 0 was configured);
    /// `None` when it is disabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the admin API listens (with the real port when 0 was configured); `None`
    /// when it is off.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// Runs the reload SIGUSR1 runs, and returns how each part went.
    pub fn reload(&self) -> Vec<ReloadPart> {
        self.reloader.run()
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
        reload_access_list(
            &self.access_list,
            &self.access_list_config,
            &self.statistics,
        )
    }

    /// Blocks until a thread ends: `Ok` after a requested shutdown, `Err` naming the
    /// thread otherwise.
    ///
    /// # Errors
    /// A worker failed, returned or panicked.
    pub fn wait(&self) -> anyhow::Result<()> {
        self.supervisor.wait()
    }

    /// Stops every thread and waits for them (a few seconds at most), then, with
    /// snapshots on, writes the swarm's snapshot from the parts the request workers left
    /// as they stopped.
    pub fn shutdown(mut self) {
        let stuck = self.supervisor.shutdown(self.shutdown_timeout);
        if !stuck.is_empty() {
            log::warn!("threads still running after shutdown: {}", stuck.join(", "));
        }
        if let Some(last) = self.final_snapshot.take() {
            last.write();
        }
    }

    /// Runs until SIGTERM / SIGINT (then `Ok`) or until a thread fails: what a binary
    /// does after starting.
    ///
    /// # Errors
    /// A thread failed, returned or panicked.
    pub fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.wait();
        if result.is_ok() {
            self.shutdown();
            log::info!("stopped");
        }
        result
    }
}

impl FinalSnapshot {
    /// Writes the snapshot if every request worker left its part; otherwise the file of
    /// the last complete snapshot stays, since half a swarm would replace a whole one.
    fn write(self) {
        let mut parts: Vec<SnapshotPart> = Vec::with_capacity(self.workers);
        let mut seen = vec![false; self.workers];
        while let Ok((index, part)) = self.parts.try_recv() {
            if let Some(slot) = seen.get_mut(index) {
                *slot = true;
                parts.push(part);
            }
        }
        if seen.iter().any(|&s| !s) {
            log::error!(
                "snapshot {}: a request worker did not stop in time, keeping the previous \
                 snapshot",
                self.path.display()
            );
            return;
        }
        write_logged(&self.path, self.router_key, &parts);
    }
}

/// Writes a snapshot of `parts`, logging the outcome.
fn write_logged(path: &std::path::Path, router_key: [u8; 16], parts: &[SnapshotPart]) {
    let began = Instant::now();
    let sum = |f: fn(&SnapshotPart) -> u64| parts.iter().map(f).sum::<u64>();
    match snapshot::write_file(path, router_key, parts) {
        Ok(()) => log::info!(
            "snapshot {}: wrote {} torrents, {} peers, {} archived counts in {} ms",
            path.display(),
            sum(SnapshotPart::num_torrents),
            sum(SnapshotPart::num_peers),
            sum(SnapshotPart::num_archived),
            began.elapsed().as_millis()
        ),
        Err(err) => log::error!("snapshot {}: cannot write it: {err}", path.display()),
    }
}

/// The `snapshot` thread: gathers the request workers' periodic parts and writes a file
/// once it has one from each.
struct PeriodicWriter {
    path: PathBuf,
    router_key: [u8; 16],
    parts: crossbeam_channel::Receiver<(usize, SnapshotPart)>,
    shutdown: ShutdownFlag,
}

impl PeriodicWriter {
    fn run(self, num_workers: usize) -> anyhow::Result<()> {
        let mut round: Vec<Option<SnapshotPart>> = (0..num_workers).map(|_| None).collect();
        while !self.shutdown.is_set() {
            let Ok((index, part)) = self.parts.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            // A worker's newer part replaces its older one: the file is made of the
            // latest part of each worker, and each torrent is in exactly one of them.
            if let Some(slot) = round.get_mut(index) {
                *slot = Some(part);
            }
            if round.iter().all(Option::is_some) {
                let parts: Vec<SnapshotPart> = round.iter_mut().filter_map(Option::take).collect();
                write_logged(&self.path, self.router_key, &parts);
            }
        }
        Ok(())
    }
}

/// Routes a snapshot's records to the shards that own them now and restores them, then
/// logs what came back.
fn restore<S: Shard>(
    loaded: &SnapshotFile,
    path: &std::path::Path,
    shards: &mut [S],
    router: &ShardRouter,
    now: SecondsSinceServerStart,
    max_peer_age_secs: u32,
) {
    struct Router<'a, S> {
        shards: &'a mut [S],
        router: &'a ShardRouter,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
        downtime_secs: u32,
        scratch: SavedTorrent,
        peers_stored: usize,
        peers_expired: usize,
    }
    impl<S: Shard> LoadSink for Router<'_, S> {
        fn torrent(&mut self, torrent: &SavedTorrent) {
            // The time it had left, less the time the tracker was down.
            self.scratch.info_hash = torrent.info_hash;
            self.scratch.completed = torrent.completed;
            self.scratch.peers.clear();
            for peer in &torrent.peers {
                let remaining_secs = peer.remaining_secs.saturating_sub(self.downtime_secs);
                if remaining_secs == 0 {
                    self.peers_expired += 1;
                } else {
                    self.scratch.peers.push(crate::swarm::saved::SavedPeer {
                        remaining_secs,
                        ..*peer
                    });
                }
            }
            let shard = self.router.shard(&torrent.info_hash);
            if let Some(shard) = self.shards.get_mut(shard) {
                self.peers_stored +=
                    shard.restore_torrent(&self.scratch, self.now, self.max_peer_age_secs);
            }
        }

        fn archived(&mut self, fingerprint: u64, completed: u32) {
            let shard = self.router.shard_of_fingerprint(fingerprint);
            if let Some(shard) = self.shards.get_mut(shard) {
                shard.restore_archived(fingerprint, completed);
            }
        }
    }

    let began = Instant::now();
    let downtime = snapshot::unix_now().saturating_sub(loaded.written_at_unix_secs);
    let mut sink = Router {
        shards,
        router,
        now,
        max_peer_age_secs,
        downtime_secs: u32::try_from(downtime).unwrap_or(u32::MAX),
        scratch: SavedTorrent {
            info_hash: crate::types::InfoHash([0; 20]),
            completed: 0,
            peers: Vec::new(),
        },
        peers_stored: 0,
        peers_expired: 0,
    };
    if let Err(err) = loaded.read(&mut sink) {
        // SnapshotFile::parse read every record once: this cannot happen, but if it did,
        // what was restored so far stays.
        log::error!("snapshot {}: {err}", path.display());
    }
    let (stored, expired) = (sink.peers_stored, sink.peers_expired);
    let torrents: usize = shards.iter().map(Shard::num_torrents).sum();
    let archived: usize = shards.iter().map(Shard::num_archived_torrents).sum();
    log::info!(
        "snapshot {}: restored {torrents} torrents and {stored} of {} peers ({expired} expired \
         in the {downtime} s since it was written, the rest over limits), {archived} archived \
         counts, in {} ms",
        path.display(),
        loaded.num_peers,
        began.elapsed().as_millis()
    );
}

impl Drop for TrackerHandle {
    /// A dropped handle (a failed test, say) still stops the threads.
    fn drop(&mut self) {
        self.supervisor.shutdown_flag().set();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::swarm::SwarmShard;
    use crate::swarm::saved::{SaveSink, SavedPeer};
    use crate::types::{InfoHash, PeerId};

    /// The time a snapshot spent on disk counts against its peers: one whose time ran
    /// out meanwhile is not restored, one with time left gets what is left. Each
    /// torrent lands in the shard that owns it under the new worker count.
    #[test]
    fn restoring_skips_peers_that_expired_while_the_tracker_was_down() {
        let key = [3; 16];
        let mut part = SnapshotPart::new();
        for n in 0..8u8 {
            part.torrent(&InfoHash([n; 20]), 2, 2);
            for (port, remaining_secs) in [(1000, 50), (2000, 500)] {
                part.peer(&SavedPeer {
                    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
                    port,
                    peer_id: PeerId([n; 20]),
                    seeder: port == 1000,
                    completion_counted: false,
                    remaining_secs,
                });
            }
        }
        let mut bytes = Vec::new();
        // Written 100 s ago: the first peer of each torrent had 50 s left.
        snapshot::encode(key, snapshot::unix_now() - 100, &[part], &mut bytes).unwrap();
        let loaded = SnapshotFile::parse(bytes).unwrap();

        let config = SwarmConfig::default();
        let limits = config.limits();
        let budget = Arc::new(SwarmBudget::new(&limits));
        let router = ShardRouter::with_key(key, 3);
        let mut shards: Vec<SwarmShard> = (0..3)
            .map(|_| SwarmShard::with_router(limits, budget.clone(), &router))
            .collect();
        let now = SecondsSinceServerStart(config.max_peer_age_secs);
        restore(
            &loaded,
            std::path::Path::new("test"),
            &mut shards,
            &router,
            now,
            config.max_peer_age_secs,
        );
        for n in 0..8u8 {
            let hash = InfoHash([n; 20]);
            let counts = shards[router.shard(&hash)].scrape(&hash);
            assert_eq!(
                (counts.seeders, counts.leechers, counts.completed),
                (0, 1, 2)
            );
        }
        // The survivors have about 400 s left: cleaning 401 s on removes them all.
        for shard in &mut shards {
            shard.clean(now.add_secs(399), config.max_peer_age_secs);
        }
        assert_eq!(budget.num_peers(), 8);
        for shard in &mut shards {
            shard.clean(now.add_secs(402), config.max_peer_age_secs);
        }
        assert_eq!(budget.num_peers(), 0);
    }
}
