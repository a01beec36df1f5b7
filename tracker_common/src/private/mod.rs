//! Private mode: passkeys, and per-user accounting written exactly once to SQLite or
//! PostgreSQL.
//!
//! # Layout
//! - [`passkey`]: passkeys, where a request carries one, and the socket workers' check
//!   (with the optional client allow list). Refused requests are answered with a
//!   protocol error and never reach a request worker.
//! - [`accounting`]: the credit rules, per (passkey, info hash, peer id); pure and
//!   deterministic (time comes in as an argument). Each request worker owns the
//!   accounting of its shard's torrents, next to the swarm.
//! - [`store`]: what a batch writes, and the SQLite and PostgreSQL backends.
//! - [`writer`]: the `accounting` thread, which gathers the request workers' credits,
//!   commits them in batches and retries a batch until it is known to be applied.
//!
//! # Exactly once
//! Credits are computed against each peer's baseline (its counters at its previous
//! announce). The database holds the *committed* baselines, in the same transaction as
//! the credits they account for, and they are loaded at start. A peer's next announce
//! after a restart, a crash or a database outage is credited against its committed
//! baseline, and its cumulative counters carry whatever was not committed. What waits for
//! the database is merged per peer, so it is bounded by the number of peers, not by the
//! number of announces.

pub mod accounting;
pub mod passkey;
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
    /// Checks values that cannot work.
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
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
