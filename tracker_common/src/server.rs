//! Start-up and thread wiring that every tracker shares: the access list, the request
//! workers with their channels, the statistics and signal threads, and the handle that
//! tests and the binaries hold.
//!
//! A tracker starts in a few named steps:
//! 1. [`Core::new`] loads the access list and makes the statistics and the shard router;
//! 2. the tracker binds its sockets (see [`crate::net`]), drops root if its config says
//!    so (see [`crate::privileges`]), and makes one waker per socket worker;
//! 3. [`Core::spawn_request_workers`] starts the request workers and returns the channels
//!    the socket workers use;
//! 4. the tracker spawns its socket workers on [`Core::supervisor`];
//! 5. [`Core::spawn_statistics`], [`Core::spawn_metrics`] and [`Core::spawn_signals`],
//!    then [`Core::into_handle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::access_list::{self, AccessList, AccessListConfig, AccessListMode, SharedAccessList};
use crate::channel::{WeightedReceiver, WeightedSender, weighted};
use crate::config::{SwarmConfig, WorkerConfig};
use crate::metrics::{Identity, MetricsServer, Protocol};
use crate::request_worker::{
    CleaningSchedule, RequestBatch, RequestHandler, RequestWorker, Responder, Shard, Swarm, WakeFn,
};
use crate::routing::ShardRouter;
use crate::statistics::{ProtocolLine, Snapshot, Statistics, run_statistics_logger, unix_now_secs};
use crate::supervisor::{ShutdownFlag, Supervisor, spawn_signal_thread};
use crate::swarm::SwarmBudget;
use crate::time::{SecondsSinceServerStart, ServerStartInstant};

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
    /// The server's start, the origin of its coarse clock.
    pub start: ServerStartInstant,
    /// Which request worker owns which torrent.
    pub router: ShardRouter,
    /// When the tracker started, in Unix seconds (for the metrics).
    pub start_unix_secs: u64,
    /// Where the metrics endpoint listens, once started.
    metrics_addr: Option<SocketAddr>,
}

/// The channels between the socket workers and the request workers.
pub struct Channels<H: RequestHandler> {
    /// To each request worker, by index; every socket worker gets a clone of all.
    pub to_request_workers: Vec<WeightedSender<RequestBatch<H::Request>>>,
    /// From the request workers, one per socket worker, by index.
    pub to_socket_workers: Vec<WeightedReceiver<H::Responses>>,
}

impl Core {
    /// Loads the access list (a bad file is an error naming it and the line) and makes
    /// the shared state for `workers` (already resolved).
    ///
    /// # Errors
    /// The access list cannot be read.
    pub fn new(
        access_list_config: &AccessListConfig,
        workers: &WorkerConfig,
    ) -> anyhow::Result<Self> {
        let list = AccessList::from_config(access_list_config)?;
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
        Ok(Self {
            supervisor: Supervisor::new(ShutdownFlag::new()),
            statistics: Arc::new(statistics),
            access_list: access_list::shared(list),
            access_list_config: access_list_config.clone(),
            start: ServerStartInstant::new(),
            router: ShardRouter::new(workers.request_workers),
            start_unix_secs: unix_now_secs(),
            metrics_addr: None,
        })
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
        mut make_handler: impl FnMut() -> H,
    ) -> anyhow::Result<Channels<H>> {
        let capacity = workers.channel_capacity_requests;
        let (to_request_workers, request_receivers): (Vec<_>, Vec<_>) = (0..workers
            .request_workers)
            .map(|_| weighted(capacity))
            .unzip();
        let (response_senders, to_socket_workers): (Vec<_>, Vec<_>) =
            wakers.iter().map(|_| weighted(capacity)).unzip();
        // The tracker-wide limits: every shard takes torrents and peers from one budget.
        let limits = swarm.limits();
        let budget = Arc::new(SwarmBudget::new(&limits));
        let cleaning = CleaningSchedule {
            interval: Duration::from_secs(u64::from(swarm.cleaning_interval_secs)),
            max_peer_age_secs: swarm.max_peer_age_secs,
        };
        for (index, receiver) in request_receivers.into_iter().enumerate() {
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
                    shard: <H::Shard as Shard>::new(
                        limits,
                        budget.clone(),
                        workers.request_workers,
                    ),
                    rng: SmallRng::from_os_rng(),
                    now: SecondsSinceServerStart(0),
                },
                cleaning,
                start: self.start,
                statistics: self.statistics.clone(),
                shutdown: self.supervisor.shutdown_flag().clone(),
            };
            self.supervisor
                .spawn(&format!("request-{:02}", index + 1), move || worker.run())?;
        }
        Ok(Channels {
            to_request_workers,
            to_socket_workers,
        })
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
        protocol: Protocol,
        version: &'static str,
    ) -> anyhow::Result<Option<SocketAddr>> {
        let Some(address) = address else {
            return Ok(None);
        };
        let (listener, local) = crate::metrics::bind(address)?;
        let server = MetricsServer {
            listener,
            statistics: self.statistics.clone(),
            identity: Identity {
                protocol,
                version,
                start_unix_secs: self.start_unix_secs,
            },
            shutdown: self.supervisor.shutdown_flag().clone(),
        };
        self.supervisor.spawn("metrics", move || server.run())?;
        log::info!("metrics on http://{local}/metrics and http://{local}/stats.json");
        self.metrics_addr = Some(local);
        Ok(Some(local))
    }

    /// Starts the signal thread: SIGUSR1 reloads the access list (a bad file is logged
    /// and the old list kept) and then runs `also` (a tracker's own reloads, such as its
    /// TLS certificates), SIGTERM and SIGINT stop the tracker.
    ///
    /// # Errors
    /// The signal handlers could not be installed.
    pub fn spawn_signals(&mut self, mut also: impl FnMut() + Send + 'static) -> anyhow::Result<()> {
        let list = self.access_list.clone();
        let list_config = self.access_list_config.clone();
        let statistics = self.statistics.clone();
        spawn_signal_thread(&mut self.supervisor, move || {
            if list_config.mode == AccessListMode::Off {
                log::info!("SIGUSR1: access list is off, nothing to reload");
            } else {
                match reload_access_list(&list, &list_config, &statistics) {
                    Ok(n) => log::info!("access list reloaded: {n} info hashes"),
                    Err(err) => {
                        log::error!("access list reload failed, keeping the old list: {err:#}");
                    }
                }
            }
            also();
        })
    }

    /// The handle of the started tracker, listening on `local_addr`.
    pub fn into_handle(self, local_addr: SocketAddr) -> TrackerHandle {
        TrackerHandle {
            local_addr,
            metrics_addr: self.metrics_addr,
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
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
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

    /// Stops every thread and waits for them (a few seconds at most).
    pub fn shutdown(mut self) {
        let stuck = self.supervisor.shutdown(Duration::from_secs(5));
        if !stuck.is_empty() {
            log::warn!("threads still running after shutdown: {}", stuck.join(", "));
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

impl Drop for TrackerHandle {
    /// A dropped handle (a failed test, say) still stops the threads.
    fn drop(&mut self) {
        self.supervisor.shutdown_flag().set();
    }
}
