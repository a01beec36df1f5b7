//! Private mode: passkeys, and per-user accounting written exactly once to SQLite or
//! PostgreSQL.
//!
//! # Layout
//! - [`passkey`]: the passkeys in force, and the socket workers' check (with the
//!   optional client allow list); the passkey type and where a request carries one are
//!   `tracker_types`'. Refused requests are answered with a
//!   protocol error and never reach a request worker.
//! - [`accounting`]: each request worker's reports of its peers' announces, merged per
//!   peer, with the limits that bound them; pure and deterministic (time comes in as an
//!   argument).
//! - [`ledger`]: the credit rules, applied by the database's transaction against the
//!   committed marks: the one place credit is decided.
//! - [`store`]: what a batch is, and the SQLite, PostgreSQL and MySQL/MariaDB backends.
//! - [`site_cache`]: the local copy of the site's tables, for a start without the
//!   database.
//! - [`admin`]: the changes an operator makes at run time (passkeys, users, torrents),
//!   written to their source and put in force at once.
//! - [`stats`]: its counters, for the statistics line and the metrics endpoint.
//! - [`writer`]: the `accounting` thread, which takes the request workers' hand-overs,
//!   commits them in batches and retries a batch until it is known to be applied.
//!
//! # Exactly once, whatever number of writers
//! The database decides every credit: a batch's transaction computes each peer's credit
//! against the peer's committed high-water mark (counters, state and announce time) and
//! its (user, torrent)'s time marks, under the database's accounting lock, and records
//! the batch id. A retried batch applies nothing; a stale or reordered report credits
//! nothing; two trackers (UDP and HTTP, or several nodes) reporting one client are
//! credited once; a restart that overlaps the old process's last commit is credited
//! once. What waits for the database stays merged per peer in the request workers,
//! bounded by the limits. A crash loses what was not committed, and of that a peer that
//! announces again gets its bytes back (they are in its cumulative counters, credited
//! against its committed mark); its time, a completion, flags and the counters of a
//! last `stopped` are lost. Reports holding a `started`, a completion or a `stopped`
//! are handed over within a second to keep that window short.

pub mod accounting;
pub mod admin;
pub mod ledger;
pub mod passkey;
pub mod site_cache;
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
        /// File of passkeys (32 characters of 0-9, A-Z, a-z), one a line, each optionally
        /// followed by its user id (a 64-bit integer; without one, the passkey is its own
        /// user); blank lines and # comments allowed. Re-read on SIGUSR1. Empty: read the
        /// enabled rows of the accounting database's shoal_passkeys table instead, every
        /// refresh_secs and on SIGUSR1.
        pub passkeys_path: PathBuf,
        /// Seconds between two reads of the site's tables (shoal_passkeys when
        /// passkeys_path is empty, shoal_users and shoal_torrents).
        pub refresh_secs: u64,
        /// Peer id prefixes of the clients allowed to announce (for example "-qB4",
        /// "-TR4", "-lt20"). Empty: every client.
        pub allowed_clients: Vec<String>,
        /// Whether scrapes need a known passkey too. UDP scrapes cannot carry one (BEP 41
        /// options follow announces only), so with this on they are refused.
        pub scrape_requires_passkey: bool,
        /// Serve only the torrents of the accounting database's shoal_torrents table
        /// (others are refused: "unregistered torrent"); read with the passkeys, every
        /// refresh_secs and on SIGUSR1.
        pub require_registered_torrents: bool,
        /// Where the site's tables (passkeys, users who may not leech, registered
        /// torrents) are cached after each read, for a start while the database is
        /// down. Empty: no cache.
        pub site_cache_path: PathBuf,
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
            require_registered_torrents: false,
            site_cache_path: PathBuf::from("shoal-site.cache"),
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
        /// start; a relative PATH is relative to the working directory),
        /// "postgresql://user:password@host:port/database" or
        /// "mysql://user:password@host:port/database" (MySQL or MariaDB). Several
        /// trackers may share one database: each credit is decided by the database.
        pub url: String,
        /// Seconds between two batches written to the database.
        pub flush_interval_secs: u64,
        /// Seconds beyond the announce interval that a gap between two announces may last
        /// and still be credited as seeding or leeching time.
        pub grace_secs: u64,
        /// Seconds a peer's committed mark is kept after its last announce, so that a
        /// user returning after an outage is credited exactly.
        pub baseline_retention_secs: u64,
        /// The most peers whose reports wait in memory for the database, over the whole
        /// tracker (shared evenly by the request workers). A new peer beyond it takes the
        /// place of a least recently seen one (as a clock finds it), whose report goes
        /// (counted): its bytes are credited at its next announce.
        pub max_peers: usize,
        /// The same, for the peers of one user.
        pub max_peers_per_passkey: usize,
        /// Upload speed, in bytes per second, above which an announce is flagged in
        /// shoal_credits.flagged_announces for review (never refused). 0: no flags.
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
            || self.url.starts_with("postgres://")
            || self.url.starts_with("mysql://"))
        {
            anyhow::bail!(
                "accounting.url: must start with sqlite://, postgresql:// or mysql:// (got \
                 {:?})",
                redact(&self.url)
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
    /// Whether only registered torrents are served.
    pub require_registered_torrents: bool,
}

impl PrivateAccess {
    /// A socket worker's gate.
    pub fn gate(&self) -> passkey::PasskeyGate {
        passkey::PasskeyGate::new(
            self.passkeys.clone(),
            self.clients.clone(),
            self.require_registered_torrents,
        )
    }
}

/// Private mode, started: the passkeys in force, and the accounting database opened if
/// it could be. [`crate::runtime::server::Core`] holds it until the request workers
/// start.
pub struct PrivateRuntime {
    access: PrivateAccess,
    passkeys_path: Option<PathBuf>,
    /// Held by whoever replaces the set in force (see [`passkey::ChangeLock`]).
    change_lock: passkey::ChangeLock,
    /// The site cache, if one is kept.
    site_cache: Option<PathBuf>,
    /// The accounting database's URL (the admin API opens it per change).
    accounting_url: String,
    reload_requested: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stats: std::sync::Arc<stats::PrivateStatistics>,
    /// Each request worker's shard, until its duty takes it.
    shards: Vec<Option<accounting::AccountingShard>>,
    sender: crossbeam_channel::Sender<writer::HandOver>,
    outstanding: writer::Outstanding,
    clock: crate::time::UnixClock,
    /// What the request workers' flush times count from.
    epoch: std::time::Instant,
    flush_interval: std::time::Duration,
    writer: Option<writer::AccountingWriter>,
}

impl PrivateRuntime {
    /// Loads the passkeys (from the file, or from the database, or, when the database
    /// cannot be reached, from the site cache), opens the accounting database (creating
    /// or migrating its schema) if it can be reached now, and prepares one accounting
    /// shard per request worker and the `accounting` thread, which opens the database
    /// later if it could not be now.
    ///
    /// # Errors
    /// The passkey file is bad; the message names the key.
    pub fn start(
        private: &PrivateConfig,
        config: &AccountingConfig,
        announce_interval_secs: u64,
        workers: usize,
        start: crate::time::ServerStartInstant,
        stats: std::sync::Arc<stats::PrivateStatistics>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::sync::Arc;

        let clock = crate::time::UnixClock::new(start);
        let file_keys = if private.passkeys_path.as_os_str().is_empty() {
            None
        } else {
            Some(
                passkey::PasskeySet::load_file(&private.passkeys_path)
                    .context("private.passkeys_path")?,
            )
        };
        let cache = (!private.site_cache_path.as_os_str().is_empty())
            .then(|| private.site_cache_path.clone());
        stats.enable();
        let mut store = match store::open(&config.url) {
            Ok(store) => {
                stats
                    .database_up
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                Some(store)
            }
            Err(err) => {
                log::error!(
                    "accounting.url: the accounting database {} cannot be opened now: \
                     {err:#}; serving on, reports wait and are committed once it opens",
                    redact(&config.url)
                );
                None
            }
        };
        let site = store.as_mut().map(|store| store.load_site());
        let set = match site {
            Some(Ok(site)) => {
                stats
                    .site_loaded_unix_secs
                    .store(clock.now(), std::sync::atomic::Ordering::Relaxed);
                let set = passkey::PasskeySet::of_site(&site, file_keys.as_ref());
                if let Some(path) = &cache
                    && let Err(err) = site_cache::write(path, &set.to_site())
                {
                    log::warn!("private.site_cache_path: {err:#}");
                }
                set
            }
            failed => {
                if let Some(Err(err)) = failed {
                    log::error!("accounting: reading the site's tables: {err:#}");
                }
                match cache.as_deref().map(site_cache::read) {
                    Some(Ok(site)) => {
                        log::warn!(
                            "private mode: the site's tables come from the cache {} until \
                             the database answers",
                            private.site_cache_path.display()
                        );
                        passkey::PasskeySet::of_site(&site, file_keys.as_ref())
                    }
                    other => {
                        if let Some(Err(err)) = other {
                            log::warn!("private.site_cache_path: {err:#}");
                        }
                        if file_keys.is_none() {
                            log::error!(
                                "private mode: no passkeys until the accounting database \
                                 answers (no passkey file, no site cache)"
                            );
                        }
                        file_keys.clone().unwrap_or_default()
                    }
                }
            }
        };
        log::info!("private mode: {} passkeys in force", set.len());
        stats
            .passkeys_loaded
            .store(set.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let passkeys = writer::shared_passkeys(set);

        let credit = ledger::CreditRules {
            interval_secs: announce_interval_secs,
            grace_secs: config.grace_secs,
            flag_upload_bytes_per_sec: config.flag_upload_bytes_per_sec,
        };
        let rules = accounting::AccountingRules::shard_share(
            credit,
            config.max_peers,
            config.max_peers_per_passkey,
            workers,
        );
        let shards = (0..workers)
            .map(|_| Some(accounting::AccountingShard::new(rules)))
            .collect();
        let (sender, receiver) =
            crossbeam_channel::bounded(workers.saturating_mul(writer::CHANNEL_ROUNDS).max(1));
        let reload_requested = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let change_lock = passkey::ChangeLock::default();
        let outstanding = writer::outstanding_flags(workers);
        let flush_interval = std::time::Duration::from_secs(config.flush_interval_secs);
        let writer = writer::AccountingWriter {
            store: match store {
                Some(store) => writer::StoreSlot::Open(store),
                None => writer::StoreSlot::Closed {
                    url: config.url.clone(),
                },
            },
            receiver,
            outstanding: outstanding.clone(),
            flush_interval,
            retention_secs: config.baseline_retention_secs,
            site: writer::SiteRefresh {
                shared: passkeys.clone(),
                interval: std::time::Duration::from_secs(private.refresh_secs),
                requested: reload_requested.clone(),
                lock: change_lock.clone(),
                passkeys_from_file: file_keys.is_some(),
                cache: cache.clone(),
                cache_warning: crate::observe::statistics::RateLimitedWarning::new(
                    writer::SITE_CACHE_WARNING_INTERVAL,
                ),
            },
            rules: credit,
            clock,
            stats: stats.clone(),
        };
        Ok(Self {
            access: PrivateAccess {
                passkeys,
                clients: Arc::new(passkey::ClientAllowList::new(&private.allowed_clients)),
                scrape_requires_passkey: private.scrape_requires_passkey,
                require_registered_torrents: private.require_registered_torrents,
            },
            passkeys_path: file_keys.map(|_| private.passkeys_path.clone()),
            change_lock,
            site_cache: cache,
            accounting_url: config.url.clone(),
            reload_requested,
            stats,
            shards,
            sender,
            outstanding,
            clock,
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
    pub fn duty(&mut self, index: usize) -> Option<writer::AccountingDuty> {
        let shard = self.shards.get_mut(index)?.take()?;
        Some(writer::AccountingDuty::new(writer::DutyParts {
            index,
            shard,
            sender: self.sender.clone(),
            outstanding: self.outstanding.clone(),
            clock: self.clock,
            epoch: self.epoch,
            flush_interval: self.flush_interval,
            stats: self.stats.clone(),
        }))
    }

    /// The `accounting` thread, once; the runtime's own sender is dropped with it, so
    /// that the thread sees the channel close when the last request worker stops.
    pub fn take_writer(&mut self) -> Option<writer::AccountingWriter> {
        let (closed, _) = crossbeam_channel::bounded(0);
        self.sender = closed;
        self.writer.take()
    }

    /// Re-reads what SIGUSR1 asks: the passkey file now (if passkeys come from one), and
    /// the site's tables at the `accounting` thread's next wake-up (within a second).
    /// The returned function says how the file's read went.
    pub fn reloader(
        &self,
    ) -> impl Fn() -> crate::runtime::reload::ReloadPart + Send + Sync + 'static {
        use crate::runtime::reload::ReloadPart;
        let path = self.passkeys_path.clone();
        let shared = self.access.passkeys.clone();
        let lock = self.change_lock.clone();
        let stats = self.stats.clone();
        let requested = self.reload_requested.clone();
        move || {
            // The site's tables are re-read either way: a bad file does not hold back
            // the database's users and torrents.
            requested.store(true, std::sync::atomic::Ordering::Relaxed);
            let Some(path) = &path else {
                return ReloadPart::done(
                    "passkeys",
                    "the site's tables are re-read from the database within a second",
                );
            };
            // From the read of the file to the swap: an admin API change of the file
            // meanwhile is in the file read, or made on the set swapped in.
            let _held = passkey::hold(&lock);
            match passkey::PasskeySet::load_file(path) {
                Ok(keys) => {
                    let set = shared.load().with_keys_of(&keys);
                    let len = set.len();
                    shared.store(std::sync::Arc::new(set));
                    stats
                        .passkeys_loaded
                        .store(len as u64, std::sync::atomic::Ordering::Relaxed);
                    ReloadPart::done("passkeys", format!("{len} passkeys"))
                }
                Err(err) => ReloadPart::failed("passkeys", &err),
            }
        }
    }
}

/// The URL with every secret replaced, for messages: the password of the user
/// information (`user:secret@`) and the value of any `password` query parameter.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("pass") => {
                    format!("{key}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_every_password() {
        assert_eq!(
            redact("postgresql://shoal:s3cret@db:5432/shoal"),
            "postgresql://shoal:***@db:5432/shoal"
        );
        assert_eq!(
            redact("postgresql://shoal@db/shoal?password=s3cret&sslmode=disable"),
            "postgresql://shoal@db/shoal?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("mysql://u:p@h/d?PASSWORD=x&passfile=/x"),
            "mysql://u:***@h/d?PASSWORD=***&passfile=***"
        );
        assert_eq!(
            redact("sqlite:///var/lib/shoal/a.db"),
            "sqlite:///var/lib/shoal/a.db"
        );
        for url in [
            "postgresql://shoal:s3cret@db/shoal",
            "postgresql://db/shoal?password=s3cret",
        ] {
            assert!(!redact(url).contains("s3cret"), "{url}");
        }
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let config = AccountingConfig {
            url: "redis://u:s3cret@h/0".to_string(),
            ..AccountingConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.starts_with("accounting.url:"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
