//! Private mode: passkeys, and per-user accounting written exactly once to SQLite or
//! PostgreSQL.
//!
//! # Layout
//! - [`passkey`]: the passkeys in force, and the socket workers' check (with the
//!   optional client allow list); the passkey type and where a request carries one are
//!   `tracker_types`'. Refused requests are answered with a
//!   protocol error and never reach a request worker.
//! - [`accounting`]: the credit rules, per (passkey, info hash, peer id); pure and
//!   deterministic (time comes in as an argument). Each request worker owns the
//!   accounting of its shard's torrents, next to the swarm.
//! - [`store`]: what a batch writes, and the SQLite and PostgreSQL backends.
//! - [`stats`]: its counters, for the statistics line and the metrics endpoint.
//! - [`writer`]: the `accounting` thread, which takes the request workers' hand-overs,
//!   commits them in batches and retries a batch until it is known to be applied.
//!
//! # Exactly once
//! Credits are computed against each peer's baseline (its counters at its previous
//! announce). The database holds the *committed* baselines, in the same transaction as
//! the credits they account for, and they are loaded at start. A peer's next announce
//! after a restart, a crash or a database outage is credited against its committed
//! baseline, and its cumulative counters carry whatever was not committed. What waits for
//! the database stays merged in each peer's entry, so it is bounded by the number of
//! peers, not by the number of announces.

pub mod accounting;
pub mod passkey;
pub mod stats;
pub mod store;
pub mod writer;

use std::path::PathBuf;

crate::config_section! {
    /// Private mode: only announces with a known passkey are served, and every user's
    /// upload, download, seeding time and completions are credited to the accounting
    /// database.
    pub struct PrivateConfig {
        /// Serve only requests with a known passkey, and account for every user.
        pub enabled: bool,
        /// File of passkeys (32 characters of 0-9, A-Z, a-z), one a line; blank lines
        /// and # comments allowed. Re-read on SIGUSR1. Empty: read the enabled rows of
        /// the accounting database's shoal_passkeys table instead, every refresh_secs and
        /// on SIGUSR1.
        pub passkeys_path: PathBuf,
        /// Seconds between two reads of shoal_passkeys (when passkeys_path is empty).
        pub refresh_secs: u64,
        /// Peer id prefixes of the clients allowed to announce (for example "-qB4",
        /// "-TR4", "-lt20"). Empty: every client.
        pub allowed_clients: Vec<String>,
        /// Whether scrapes need a known passkey too. UDP scrapes cannot carry one (BEP 41
        /// options follow announces only), so with this on they are refused.
        pub scrape_requires_passkey: bool,
    }
}

impl Default for PrivateConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            passkeys_path: PathBuf::new(),
            refresh_secs: 60,
            allowed_clients: Vec::new(),
            scrape_requires_passkey: true,
        }
    }
}

impl PrivateConfig {
    /// Checks this section and, when private mode is on, `accounting` too (which only
    /// private mode reads).
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate_with(&self, accounting: &AccountingConfig) -> anyhow::Result<()> {
        if self.refresh_secs == 0 {
            anyhow::bail!("private.refresh_secs: must be at least 1");
        }
        for prefix in &self.allowed_clients {
            if prefix.is_empty() || prefix.len() > 20 {
                anyhow::bail!(
                    "private.allowed_clients: {prefix:?} must be 1 to 20 bytes (a peer id \
                     prefix such as \"-qB4\")"
                );
            }
        }
        if self.enabled {
            accounting.validate()?;
        }
        Ok(())
    }
}

crate::config_section! {
    /// Where and how private mode's accounting is written (used only when private.enabled
    /// is on).
    pub struct AccountingConfig {
        /// The accounting database: "sqlite://PATH" (created with its schema on first
        /// start; a relative PATH is relative to the working directory) or
        /// "postgresql://user:password@host:port/database".
        pub url: String,
        /// Seconds between two batches written to the database.
        pub flush_interval_secs: u64,
        /// Seconds beyond the announce interval that a gap between two announces may last
        /// and still be credited as seeding or leeching time.
        pub grace_secs: u64,
        /// Seconds a peer's accounting baseline is kept after its last announce, so that
        /// a user returning after an outage is credited exactly.
        pub baseline_retention_secs: u64,
        /// The most peers with accounting state, over the whole tracker. A new peer beyond
        /// it is served but not credited (and counted).
        pub max_peers: usize,
        /// The most peers with accounting state one passkey holds, over the whole
        /// tracker.
        pub max_peers_per_passkey: usize,
        /// Upload speed, in bytes per second, above which an announce is flagged in
        /// shoal_user_torrents.flagged_announces for review (never refused). 0: no flags.
        pub flag_upload_bytes_per_sec: u64,
    }
}

impl Default for AccountingConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://shoal-accounting.db".to_string(),
            flush_interval_secs: 5,
            grace_secs: 300,
            baseline_retention_secs: 21 * 24 * 3600,
            max_peers: 4_000_000,
            max_peers_per_passkey: 2_000,
            flag_upload_bytes_per_sec: 125_000_000,
        }
    }
}

impl AccountingConfig {
    /// Checks values that cannot work.
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.url.starts_with("sqlite://")
            || self.url.starts_with("postgresql://")
            || self.url.starts_with("postgres://"))
        {
            anyhow::bail!(
                "accounting.url: must start with sqlite:// or postgresql:// (got {:?})",
                self.url
            );
        }
        if self.url == "sqlite://" {
            anyhow::bail!("accounting.url: sqlite:// needs a file path");
        }
        if !(1..=3600).contains(&self.flush_interval_secs) {
            anyhow::bail!("accounting.flush_interval_secs: must be between 1 and 3600");
        }
        if self.baseline_retention_secs == 0 {
            anyhow::bail!("accounting.baseline_retention_secs: must be at least 1");
        }
        if self.max_peers == 0 {
            anyhow::bail!("accounting.max_peers: must be at least 1");
        }
        if self.max_peers_per_passkey == 0 {
            anyhow::bail!("accounting.max_peers_per_passkey: must be at least 1");
        }
        Ok(())
    }
}

/// What a socket worker needs in private mode.
#[derive(Clone)]
pub struct PrivateAccess {
    /// The passkeys in force.
    pub passkeys: passkey::SharedPasskeys,
    /// The client allow list.
    pub clients: std::sync::Arc<passkey::ClientAllowList>,
    /// Whether scrapes need a known passkey.
    pub scrape_requires_passkey: bool,
}

impl PrivateAccess {
    /// A socket worker's gate.
    pub fn gate(&self) -> passkey::PasskeyGate {
        passkey::PasskeyGate::new(self.passkeys.clone(), self.clients.clone())
    }
}

/// How SIGUSR1 re-reads the passkeys.
#[derive(Clone)]
enum PasskeySource {
    File(PathBuf),
    Database(std::sync::Arc<std::sync::atomic::AtomicBool>),
}

/// Private mode, started: the store opened, the passkeys and committed baselines
/// loaded. [`crate::runtime::server::Core`] holds it until the request workers start.
pub struct PrivateRuntime {
    access: PrivateAccess,
    source: PasskeySource,
    stats: std::sync::Arc<stats::PrivateStatistics>,
    /// Each request worker's shard, until its duty takes it.
    shards: Vec<Option<accounting::AccountingShard>>,
    sender: crossbeam_channel::Sender<writer::HandOver>,
    outstanding: writer::Outstanding,
    /// What the request workers' flush times count from.
    epoch: std::time::Instant,
    flush_interval: std::time::Duration,
    writer: Option<writer::AccountingWriter>,
}

impl PrivateRuntime {
    /// Opens the accounting database (creating or migrating its schema), loads the
    /// passkeys and the committed baselines of the last `baseline_retention_secs` into
    /// one accounting shard per request worker (routed like the torrents), and prepares
    /// the `accounting` thread.
    ///
    /// # Errors
    /// The database cannot be opened or read, or the passkey file is bad; the message
    /// names the key.
    pub fn start(
        private: &PrivateConfig,
        config: &AccountingConfig,
        announce_interval_secs: u64,
        router: &crate::swarm::routing::ShardRouter,
        stats: std::sync::Arc<stats::PrivateStatistics>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::sync::Arc;

        let mut store = store::open(&config.url).with_context(|| {
            format!(
                "accounting.url: cannot open the accounting database {}",
                redact(&config.url)
            )
        })?;
        let (set, source) = if private.passkeys_path.as_os_str().is_empty() {
            let keys = store
                .load_passkeys()
                .context("accounting.url: reading shoal_passkeys")?;
            (
                passkey::PasskeySet::new(keys),
                PasskeySource::Database(Arc::default()),
            )
        } else {
            let set = passkey::PasskeySet::load_file(&private.passkeys_path)
                .context("private.passkeys_path")?;
            (set, PasskeySource::File(private.passkeys_path.clone()))
        };
        log::info!("private mode: {} passkeys in force", set.len());
        stats.enable();
        stats
            .passkeys_loaded
            .store(set.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let passkeys = writer::shared_passkeys(set);

        let rules = accounting::AccountingRules {
            interval_secs: announce_interval_secs,
            grace_secs: config.grace_secs,
            retention_secs: config.baseline_retention_secs,
            flag_upload_bytes_per_sec: config.flag_upload_bytes_per_sec,
            max_peers: config.max_peers,
            max_peers_per_passkey: config.max_peers_per_passkey,
        };
        let budget = Arc::new(accounting::AccountingBudget::default());
        let mut shards: Vec<_> = (0..router.num_shards())
            .map(|_| accounting::AccountingShard::new(rules, budget.clone()))
            .collect();
        let since = crate::observe::statistics::unix_now_secs()
            .saturating_sub(config.baseline_retention_secs);
        let (mut restored, mut skipped) = (0u64, 0u64);
        {
            let set = passkeys.load();
            store
                .load_baselines(since, &mut |baseline| {
                    let shard = router.shard(&baseline.info_hash);
                    let count = set.peer_count(&baseline.passkey).map(|c| &**c);
                    let stored = shards
                        .get_mut(shard)
                        .is_some_and(|s| s.restore(&baseline, count));
                    if stored {
                        restored += 1;
                    } else {
                        skipped += 1;
                    }
                })
                .context("accounting.url: loading the committed baselines from shoal_peers")?;
        }
        log::info!(
            "accounting: {restored} committed baselines loaded ({skipped} skipped: passkey no \
             longer in force, or over a limit)"
        );

        let workers = router.num_shards();
        let (sender, receiver) =
            crossbeam_channel::bounded(workers.saturating_mul(writer::CHANNEL_ROUNDS).max(1));
        let refresh = match &source {
            PasskeySource::Database(requested) => Some(writer::PasskeyRefresh {
                shared: passkeys.clone(),
                interval: std::time::Duration::from_secs(private.refresh_secs),
                requested: requested.clone(),
            }),
            PasskeySource::File(_) => None,
        };
        let outstanding = writer::outstanding_flags(workers);
        let flush_interval = std::time::Duration::from_secs(config.flush_interval_secs);
        let writer = writer::AccountingWriter {
            store,
            receiver,
            outstanding: outstanding.clone(),
            flush_interval,
            retention_secs: config.baseline_retention_secs,
            passkeys: refresh,
            stats: stats.clone(),
        };
        Ok(Self {
            access: PrivateAccess {
                passkeys,
                clients: Arc::new(passkey::ClientAllowList::new(&private.allowed_clients)),
                scrape_requires_passkey: private.scrape_requires_passkey,
            },
            source,
            stats,
            shards: shards.into_iter().map(Some).collect(),
            sender,
            outstanding,
            epoch: std::time::Instant::now(),
            flush_interval,
            writer: Some(writer),
        })
    }

    /// What the socket workers need.
    pub fn access(&self) -> PrivateAccess {
        self.access.clone()
    }

    /// Request worker `index`'s accounting duty (each index once; `None` after).
    pub fn duty(
        &mut self,
        index: usize,
        start: crate::time::ServerStartInstant,
    ) -> Option<writer::AccountingDuty> {
        let shard = self.shards.get_mut(index)?.take()?;
        Some(writer::AccountingDuty::new(
            index,
            shard,
            self.access.passkeys.clone(),
            self.sender.clone(),
            self.outstanding.clone(),
            self.epoch,
            self.flush_interval,
            start,
            self.stats.clone(),
        ))
    }

    /// The `accounting` thread, once; the runtime's own sender is dropped with it, so
    /// that the thread sees the channel close when the last request worker stops.
    pub fn take_writer(&mut self) -> Option<writer::AccountingWriter> {
        let (closed, _) = crossbeam_channel::bounded(0);
        self.sender = closed;
        self.writer.take()
    }

    /// Re-reads the passkeys, as SIGUSR1 asks: the file now, or the table at the
    /// `accounting` thread's next wake-up (within a second).
    pub fn reloader(&self) -> impl Fn() + Send + 'static {
        let source = self.source.clone();
        let shared = self.access.passkeys.clone();
        let stats = self.stats.clone();
        move || match &source {
            PasskeySource::File(path) => match passkey::PasskeySet::load_file(path) {
                Ok(set) => {
                    let set = set.carry_over(&shared.load());
                    let len = set.len();
                    shared.store(std::sync::Arc::new(set));
                    stats
                        .passkeys_loaded
                        .store(len as u64, std::sync::atomic::Ordering::Relaxed);
                    log::info!("passkeys reloaded: {len}");
                }
                Err(err) => {
                    log::error!("passkey reload failed, keeping the passkeys in force: {err:#}");
                }
            },
            PasskeySource::Database(requested) => {
                requested.store(true, std::sync::atomic::Ordering::Relaxed);
                log::info!("passkeys: re-reading shoal_passkeys");
            }
        }
    }
}

/// The URL with any password replaced, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
