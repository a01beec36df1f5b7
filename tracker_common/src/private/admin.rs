//! The changes an operator makes to private mode at run time, for the HTTP admin API:
//! passkeys added, replaced and removed, users let leech or not, torrents registered
//! with their factors and unregistered, and the passkeys in force listed. The HTTP side
//! is not here.
//!
//! # Where a change goes
//! Each change is written where its data comes from, then put in force at once: a new
//! [`PasskeySet`] is swapped into the [`SharedPasskeys`] that the socket workers check.
//! - Passkeys: the passkey file when `private.passkeys_path` is set (rewritten
//!   atomically, see [`SiteAdmin::put_passkey`]), else `shoal_passkeys`.
//! - Users and torrents: the accounting database (`shoal_users`, `shoal_torrents`),
//!   where alone they exist, whatever the passkeys come from.
//! - The site cache, when one is kept, is rewritten after each change, so that a start
//!   without the database serves what the API set.
//!
//! # Order
//! Written first, then swapped: a change that cannot be written (the database down,
//! the file not writable) fails and leaves the set in force as it was. Every change
//! holds the [`ChangeLock`] from its read of the source to its swap, as the
//! `accounting` thread's refresh of the site's tables and the SIGUSR1 reload do: a
//! refresh either reads the database after the change was written, or swaps its set in
//! before the change is made on it; it never undoes a change. Changes are serialised
//! by the same lock. Other trackers on the same database see a change at their next
//! refresh (`private.refresh_secs`) or SIGUSR1.
//!
//! # The database, opened per change
//! Each change opens the accounting database ([`store::open`]) and closes it after.
//! Changes are an operator's, and rare: a connection held between them would go stale
//! (a server restart, an idle timeout of the server or of a proxy) and fail the change
//! after, while opening costs a connection and the schema check, a few round trips, and
//! tells at once whether the database can be reached.
//!
//! # Cost
//! Each change copies the set in force (the workers keep reading the old one until the
//! swap): its cost grows with the number of passkeys. It is an operator's path; a site
//! that imports passkeys by the thousand writes `shoal_passkeys` itself and lets the
//! refresh read them.
//!
//! # Errors
//! A change refused as it stands, before anything was written, is an [`InvalidChange`]
//! (`err.downcast_ref::<InvalidChange>()`; the API answers 400). Any other error is the
//! database or the passkey file failing (503), and nothing changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;

pub use crate::private::store::Written;

use crate::private::passkey::{
    ChangeLock, Passkey, PasskeySet, SharedPasskeys, hold, line_content, parse_lines,
};
use crate::private::stats::PrivateStatistics;
use crate::private::store::{self, AccountingStore, Factors, MAX_PERCENT, UserId, derived_user_id};
use crate::private::{PrivateRuntime, redact, site_cache};
use crate::types::InfoHash;

/// The comment a passkey file written by the admin API starts with (added if the file
/// does not hold it).
pub const FILE_HEADER: &str = "# This file is also written by shoal's admin API: a passkey \
                               added, replaced or removed there\n# rewrites its line (and \
                               loses any comment on it); the other lines are kept.\n";

/// A change refused as it stands, before anything was written (the API answers 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidChange(pub String);

impl std::fmt::Display for InvalidChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidChange {}

/// Opens the accounting database for one change.
type OpenStore = Box<dyn Fn() -> anyhow::Result<Box<dyn AccountingStore>> + Send + Sync>;

/// The admin API's handle on private mode: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct SiteAdmin {
    inner: Arc<Parts>,
}

/// What a [`SiteAdmin`] changes and where it writes.
struct Parts {
    /// The set in force.
    shared: SharedPasskeys,
    /// Held from the read of a source to the swap.
    lock: ChangeLock,
    /// `passkeys_loaded` is kept up to date.
    stats: Arc<PrivateStatistics>,
    /// The passkey file, when passkeys come from one.
    passkeys_path: Option<PathBuf>,
    /// The site cache, if one is kept.
    site_cache: Option<PathBuf>,
    /// Opens the accounting database.
    open: OpenStore,
}

impl PrivateRuntime {
    /// The admin API's handle: the set in force, the passkey file (if passkeys come from
    /// one), the site cache and the accounting database.
    pub fn admin(&self) -> SiteAdmin {
        let url = self.accounting_url.clone();
        SiteAdmin {
            inner: Arc::new(Parts {
                shared: self.access.passkeys.clone(),
                lock: self.change_lock.clone(),
                stats: self.stats.clone(),
                passkeys_path: self.passkeys_path.clone(),
                site_cache: self.site_cache.clone(),
                open: Box::new(move || {
                    store::open(&url).with_context(|| {
                        format!("the accounting database {} cannot be reached", redact(&url))
                    })
                }),
            }),
        }
    }
}

impl SiteAdmin {
    /// The passkeys in force and their users, sorted by passkey.
    pub fn passkeys(&self) -> Vec<(Passkey, UserId)> {
        self.inner
            .shared
            .load()
            .passkey_users()
            .into_iter()
            .map(|k| (k.passkey, k.user))
            .collect()
    }

    /// Puts `key` in force for `user` (`None`: the passkey is its own user, see
    /// [`derived_user_id`]), adding it or replacing its user.
    ///
    /// From a passkey file, the file is rewritten: the key's line (`PASSKEY [USER_ID]`,
    /// the format the file is read in) takes the place of its first line, or is added
    /// at the end; other lines of the key go, and so do comments on them; every other
    /// line is kept, and the [`FILE_HEADER`] added if missing. The new file is written
    /// beside the old one, synced and renamed over it (a symbolic link is followed and
    /// kept), with the old file's permissions, so that a crash leaves the old file or
    /// the new, and the directory is synced. The file as it is then comes in force
    /// whole, as on SIGUSR1: edits of its other lines not yet reloaded too.
    /// [`Written::Replaced`] if the file had a line of the key.
    ///
    /// From the database, its `shoal_passkeys` row is written, enabled (a disabled row
    /// is enabled): [`Written::Replaced`] if it had one.
    ///
    /// # Errors
    /// The file cannot be read, holds a bad line or cannot be written, or the database
    /// cannot be written; nothing changed.
    pub fn put_passkey(&self, key: Passkey, user: Option<UserId>) -> anyhow::Result<Written> {
        match &self.inner.passkeys_path {
            Some(path) => {
                let line = match user {
                    Some(user) => format!("{} {user}", key.as_str()),
                    None => key.as_str().to_string(),
                };
                let found = self.change_file(path, &key, Some(&line))?;
                Ok(Written::existed(found))
            }
            None => {
                let in_force = user.unwrap_or_else(|| derived_user_id(&key));
                let (written, _) = self.change_database(
                    "shoal_passkeys",
                    |store| store.put_passkey(&key, user),
                    |set| set.insert_key(key, in_force),
                )?;
                Ok(written)
            }
        }
    }

    /// Takes `key` out of force: its lines of the passkey file, or its row of
    /// `shoal_passkeys` (enabled or not), are deleted. `false` if neither the source
    /// nor the set in force had it.
    ///
    /// # Errors
    /// As [`SiteAdmin::put_passkey`]; nothing changed.
    pub fn delete_passkey(&self, key: &Passkey) -> anyhow::Result<bool> {
        match &self.inner.passkeys_path {
            Some(path) => self.change_file(path, key, None),
            None => {
                let (row, in_force) = self.change_database(
                    "shoal_passkeys",
                    |store| store.delete_passkey(key),
                    |set| set.remove_key(key).is_some(),
                )?;
                Ok(row || in_force)
            }
        }
    }

    /// Lets `user` leech or not (`shoal_users.can_leech`): [`Written::Replaced`] if the
    /// user had a row.
    ///
    /// # Errors
    /// The database cannot be written; nothing changed.
    pub fn put_user(&self, user: UserId, can_leech: bool) -> anyhow::Result<Written> {
        let (written, ()) = self.change_database(
            "shoal_users",
            |store| store.put_user(user, can_leech),
            |set| set.set_may_leech(user, can_leech),
        )?;
        Ok(written)
    }

    /// Deletes `user`'s row of `shoal_users`: the user may leech. Their passkeys stay in
    /// force. `false` if neither the database nor the set in force had the user.
    ///
    /// # Errors
    /// The database cannot be written; nothing changed.
    pub fn delete_user(&self, user: UserId) -> anyhow::Result<bool> {
        let (row, in_force) = self.change_database(
            "shoal_users",
            |store| store.delete_user(user),
            |set| {
                let refused = !set.may_leech(user);
                set.set_may_leech(user, true);
                refused
            },
        )?;
        Ok(row || in_force)
    }

    /// Registers `info_hash` in `shoal_torrents` with these factors (percent of the
    /// bytes uploaded and downloaded credited; freeleech is a `download_percent` of 0),
    /// or replaces its factors: [`Written::Replaced`] if it had a row. The factors apply
    /// to every batch committed from then on (each batch's transaction reads them).
    ///
    /// # Errors
    /// An [`InvalidChange`] for a factor above [`MAX_PERCENT`]; otherwise the database
    /// cannot be written. Nothing changed.
    pub fn put_torrent(
        &self,
        info_hash: InfoHash,
        upload_percent: u32,
        download_percent: u32,
    ) -> anyhow::Result<Written> {
        for (name, value) in [
            ("upload_percent", upload_percent),
            ("download_percent", download_percent),
        ] {
            if value > MAX_PERCENT {
                return Err(InvalidChange(format!("{name} {value}: at most {MAX_PERCENT}")).into());
            }
        }
        let factors = Factors {
            upload_percent,
            download_percent,
        };
        let (written, ()) = self.change_database(
            "shoal_torrents",
            |store| store.put_torrent(&info_hash, factors),
            |set| set.insert_torrent(info_hash),
        )?;
        Ok(written)
    }

    /// Deletes `info_hash`'s row of `shoal_torrents` (its credits stay). `false` if
    /// neither the database nor the set in force had it.
    ///
    /// # Errors
    /// The database cannot be written; nothing changed.
    pub fn delete_torrent(&self, info_hash: &InfoHash) -> anyhow::Result<bool> {
        let (row, in_force) = self.change_database(
            "shoal_torrents",
            |store| store.delete_torrent(info_hash),
            |set| set.remove_torrent(info_hash),
        )?;
        Ok(row || in_force)
    }

    /// Writes a change to the database (`write`), then makes it on the set in force
    /// (`apply`); both results.
    fn change_database<T, U>(
        &self,
        table: &str,
        write: impl FnOnce(&mut dyn AccountingStore) -> anyhow::Result<T>,
        apply: impl FnOnce(&mut PasskeySet) -> U,
    ) -> anyhow::Result<(T, U)> {
        let _held = hold(&self.inner.lock);
        let mut store = (self.inner.open)()?;
        let written = write(store.as_mut())
            .with_context(|| format!("change {table} in the accounting database"))?;
        drop(store);
        Ok((written, self.swap(apply)))
    }

    /// Rewrites the passkey file at `path` with `key`'s line replaced by `line` (`None`:
    /// removed), then puts the file's passkeys in force; whether it had a line of `key`.
    fn change_file(&self, path: &Path, key: &Passkey, line: Option<&str>) -> anyhow::Result<bool> {
        let _held = hold(&self.inner.lock);
        let target = std::fs::canonicalize(path)
            .with_context(|| format!("find passkey file {}", path.display()))?;
        let text = std::fs::read_to_string(&target)
            .with_context(|| format!("read passkey file {}", path.display()))?;
        if let Err((number, message)) = parse_lines(&text) {
            anyhow::bail!(
                "passkey file {} line {number}: {message} (not rewritten: fix the line first)",
                path.display()
            );
        }
        let (edited, found) = edit_lines(&text, key, line);
        let keys = PasskeySet::parse(&edited).map_err(|(number, message)| {
            anyhow::anyhow!(
                "passkey file {}: the rewritten line {number} would be bad: {message}",
                path.display()
            )
        })?;
        replace_file(&target, edited.as_bytes())
            .with_context(|| format!("rewrite passkey file {}", path.display()))?;
        self.swap(|set| *set = set.with_keys_of(&keys));
        Ok(found)
    }

    /// Makes `apply` on a copy of the set in force, writes the site cache and swaps the
    /// copy in; what `apply` returned. Called with the change lock held.
    fn swap<U>(&self, apply: impl FnOnce(&mut PasskeySet) -> U) -> U {
        let mut set = PasskeySet::clone(&self.inner.shared.load());
        let out = apply(&mut set);
        if let Some(path) = &self.inner.site_cache
            && let Err(err) = site_cache::write(path, &set.to_site())
        {
            log::warn!(
                "private.site_cache_path: {err:#} (the change is written and in force; a \
                 start without the database would not see it)"
            );
        }
        let len = set.len();
        self.inner.shared.store(Arc::new(set));
        self.inner
            .stats
            .passkeys_loaded
            .store(len as u64, Ordering::Relaxed);
        out
    }
}

/// A passkey file's `text` with the lines of `key` removed and `line` (if any) in the
/// place of the first, or at the end if there was none, and [`FILE_HEADER`] first if
/// it was not there; whether there was a line of `key`.
fn edit_lines(text: &str, key: &Passkey, line: Option<&str>) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + FILE_HEADER.len() + 64);
    if !text.contains(FILE_HEADER) {
        out.push_str(FILE_HEADER);
    }
    let mut found = false;
    for old in text.lines() {
        let of_key = line_content(old)
            .split_whitespace()
            .next()
            .and_then(|field| Passkey::parse(field.as_bytes()))
            == Some(*key);
        if !of_key {
            out.push_str(old);
            out.push('\n');
            continue;
        }
        if !found && let Some(line) = line {
            out.push_str(line);
            out.push('\n');
        }
        found = true;
    }
    if !found && let Some(line) = line {
        out.push_str(line);
        out.push('\n');
    }
    (out, found)
}

/// Replaces the file at `path` with `contents` whole, keeping its permissions (see
/// [`crate::files::write_atomic`]).
///
/// # Errors
/// The temporary file cannot be made, written or renamed; `path` is then untouched.
fn replace_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    crate::files::write_atomic(path, contents, 0o600)
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, mpsc};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::private::ledger::{Applied, CreditRules};
    use crate::private::passkey::{PasskeyGate, PasskeyParam};
    use crate::private::store::memory::{MemoryDatabase, MemoryStore};
    use crate::private::store::{Batch, CommitOutcome, PasskeyUser, SiteTables};
    use crate::private::{AccountingConfig, PrivateConfig, writer};
    use crate::time::{ServerStartInstant, UnixClock};

    /// A passkey made from `n`.
    fn key(n: u32) -> Passkey {
        Passkey::parse(format!("{n:0>32}").as_bytes()).unwrap()
    }

    fn hash(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    /// An admin over a memory database, and what it changes.
    struct Memory {
        db: Arc<Mutex<MemoryDatabase>>,
        admin: SiteAdmin,
        shared: SharedPasskeys,
        lock: ChangeLock,
        stats: Arc<PrivateStatistics>,
    }

    impl Memory {
        fn new(site_cache: Option<PathBuf>) -> Self {
            let db = Arc::new(Mutex::new(MemoryDatabase::default()));
            let shared = writer::shared_passkeys(PasskeySet::default());
            let lock = ChangeLock::default();
            let stats = Arc::new(PrivateStatistics::new(1));
            let opened = db.clone();
            let admin = SiteAdmin {
                inner: Arc::new(Parts {
                    shared: shared.clone(),
                    lock: lock.clone(),
                    stats: stats.clone(),
                    passkeys_path: None,
                    site_cache,
                    open: Box::new(move || {
                        Ok(Box::new(MemoryStore(opened.clone())) as Box<dyn AccountingStore>)
                    }),
                }),
            };
            Self {
                db,
                admin,
                shared,
                lock,
                stats,
            }
        }

        fn set(&self) -> Arc<PasskeySet> {
            self.shared.load_full()
        }

        fn loaded(&self) -> u64 {
            self.stats.passkeys_loaded.load(Ordering::Relaxed)
        }

        fn db(&self) -> std::sync::MutexGuard<'_, MemoryDatabase> {
            self.db.lock().unwrap()
        }

        /// The `accounting` thread, reading the site's tables from `store`, over the set
        /// in force and the change lock of this admin.
        fn writer(&self, store: Box<dyn AccountingStore>) -> writer::AccountingWriter {
            writer::AccountingWriter {
                store: writer::StoreSlot::Open(store),
                receiver: crossbeam_channel::bounded(1).1,
                outstanding: writer::outstanding_flags(1),
                flush_interval: Duration::from_secs(5),
                retention_secs: 3600,
                site: writer::SiteRefresh {
                    shared: self.shared.clone(),
                    interval: Duration::from_secs(3600),
                    requested: Arc::default(),
                    lock: self.lock.clone(),
                    passkeys_from_file: false,
                    cache: None,
                    cache_warning: crate::observe::statistics::RateLimitedWarning::new(
                        writer::SITE_CACHE_WARNING_INTERVAL,
                    ),
                },
                rules: CreditRules {
                    interval_secs: 1800,
                    grace_secs: 300,
                    flag_upload_bytes_per_sec: 0,
                },
                clock: UnixClock::at_start(ServerStartInstant::new(), 1_800_000_000),
                stats: self.stats.clone(),
            }
        }
    }

    #[test]
    fn every_change_is_written_and_in_force_at_once() {
        let m = Memory::new(None);
        let mut gate = PasskeyGate::new(m.shared.clone(), Arc::default(), true);
        let check = |gate: &mut PasskeyGate, n| gate.check_passkey(PasskeyParam::Key(key(n)));

        // Passkeys.
        assert!(check(&mut gate, 1).is_err());
        assert_eq!(
            m.admin.put_passkey(key(1), Some(7)).unwrap(),
            Written::Created
        );
        assert_eq!(check(&mut gate, 1), Ok(7));
        assert_eq!(m.db().passkeys.get(&key(1)), Some(&(true, Some(7))));
        assert_eq!(
            m.admin.put_passkey(key(1), None).unwrap(),
            Written::Replaced
        );
        assert_eq!(check(&mut gate, 1), Ok(derived_user_id(&key(1))));
        assert_eq!(m.db().passkeys.get(&key(1)), Some(&(true, None)));
        assert_eq!(
            m.admin.put_passkey(key(0), Some(3)).unwrap(),
            Written::Created
        );
        assert_eq!(
            m.admin.passkeys(),
            vec![(key(0), 3), (key(1), derived_user_id(&key(1)))],
            "sorted by passkey"
        );
        assert_eq!(m.loaded(), 2);
        // A disabled row is there: it is enabled.
        m.db().passkeys.insert(key(2), (false, Some(9)));
        assert_eq!(
            m.admin.put_passkey(key(2), Some(9)).unwrap(),
            Written::Replaced
        );
        assert_eq!(m.db().passkeys.get(&key(2)), Some(&(true, Some(9))));
        assert_eq!(check(&mut gate, 2), Ok(9));
        assert!(m.admin.delete_passkey(&key(1)).unwrap());
        assert!(check(&mut gate, 1).is_err());
        assert!(!m.db().passkeys.contains_key(&key(1)));
        assert!(!m.admin.delete_passkey(&key(1)).unwrap());
        assert_eq!(m.loaded(), 2);

        // Users.
        assert_eq!(m.admin.put_user(9, false).unwrap(), Written::Created);
        assert!(!m.set().may_leech(9));
        assert_eq!(m.db().users.get(&9), Some(&false));
        assert_eq!(m.admin.put_user(9, true).unwrap(), Written::Replaced);
        assert!(m.set().may_leech(9));
        assert_eq!(m.admin.put_user(9, false).unwrap(), Written::Replaced);
        assert!(m.admin.delete_user(9).unwrap());
        assert!(m.set().may_leech(9));
        assert!(!m.db().users.contains_key(&9));
        assert!(!m.admin.delete_user(9).unwrap());
        // The user's passkeys stay.
        assert_eq!(check(&mut gate, 2), Ok(9));

        // Torrents.
        assert!(!m.set().registered(&hash(1)));
        assert_eq!(
            m.admin.put_torrent(hash(1), 200, 0).unwrap(),
            Written::Created
        );
        assert!(m.set().registered(&hash(1)));
        let factors = |upload_percent, download_percent| Factors {
            upload_percent,
            download_percent,
        };
        assert_eq!(m.db().factors.get(&hash(1)), Some(&factors(200, 0)));
        assert_eq!(
            m.admin.put_torrent(hash(1), MAX_PERCENT, 100).unwrap(),
            Written::Replaced
        );
        assert_eq!(
            m.db().factors.get(&hash(1)),
            Some(&factors(MAX_PERCENT, 100))
        );
        assert!(m.admin.delete_torrent(&hash(1)).unwrap());
        assert!(!m.set().registered(&hash(1)));
        assert!(!m.db().factors.contains_key(&hash(1)));
        assert!(!m.admin.delete_torrent(&hash(1)).unwrap());

        // A factor out of range is refused before anything is written.
        for (up, down) in [(MAX_PERCENT + 1, 100), (100, u32::MAX)] {
            let before = m.set();
            let err = m.admin.put_torrent(hash(2), up, down).unwrap_err();
            assert!(err.downcast_ref::<InvalidChange>().is_some(), "{err:#}");
            assert!(Arc::ptr_eq(&before, &m.set()));
            assert!(m.db().factors.is_empty());
        }
    }

    #[test]
    fn a_database_down_changes_nothing() {
        let m = Memory::new(None);
        m.admin.put_passkey(key(1), Some(1)).unwrap();
        m.admin.put_user(2, false).unwrap();
        m.admin.put_torrent(hash(1), 100, 100).unwrap();
        let before = m.set();
        m.db().down = true;
        let results = [
            m.admin.put_passkey(key(3), None).map(drop),
            m.admin.delete_passkey(&key(1)).map(drop),
            m.admin.put_user(2, true).map(drop),
            m.admin.delete_user(2).map(drop),
            m.admin.put_torrent(hash(2), 100, 100).map(drop),
            m.admin.delete_torrent(&hash(1)).map(drop),
        ];
        for result in results {
            let err = result.unwrap_err();
            assert!(format!("{err:#}").contains("connection refused"), "{err:#}");
            assert!(err.downcast_ref::<InvalidChange>().is_none(), "{err:#}");
        }
        assert!(Arc::ptr_eq(&before, &m.set()), "the set in force changed");
        assert_eq!(m.loaded(), 1);
        let db = m.db();
        assert_eq!(db.passkeys.keys().copied().collect::<Vec<_>>(), [key(1)]);
        assert_eq!(db.users.get(&2), Some(&false));
        assert_eq!(db.factors.keys().copied().collect::<Vec<_>>(), [hash(1)]);
    }

    #[test]
    fn a_refresh_after_a_change_keeps_it_and_the_cache_has_it() {
        let dir = crate::testing::temp_dir("admin-refresh");
        let cache = dir.join("site.cache");
        let m = Memory::new(Some(cache.clone()));
        let mut writer = m.writer(Box::new(MemoryStore(m.db.clone())));
        m.admin.put_passkey(key(1), Some(4)).unwrap();
        m.admin.put_user(4, false).unwrap();
        m.admin.put_torrent(hash(1), 100, 0).unwrap();
        assert_eq!(site_cache::read(&cache).unwrap(), m.set().to_site());
        let changed = m.set();
        assert!(writer.refresh_site());
        assert!(!Arc::ptr_eq(&changed, &m.set()), "no refresh happened");
        assert_eq!(*m.set(), *changed, "the refresh undid a change");
        assert!(m.admin.delete_passkey(&key(1)).unwrap());
        assert!(writer.refresh_site());
        assert_eq!(m.set().user(&key(1)), None);
        assert_eq!(
            site_cache::read(&cache).unwrap(),
            SiteTables {
                passkeys: Vec::new(),
                no_leech: vec![4],
                torrents: vec![hash(1)],
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store whose read of the site's tables stops once it has read them, until told
    /// to go on: a refresh caught between its read and its swap.
    struct HeldRead {
        inner: MemoryStore,
        read: mpsc::Sender<()>,
        go_on: mpsc::Receiver<()>,
    }

    impl AccountingStore for HeldRead {
        fn load_site(&mut self) -> anyhow::Result<SiteTables> {
            let site = self.inner.load_site()?;
            self.read.send(())?;
            self.go_on.recv()?;
            Ok(site)
        }

        fn commit_counted(&mut self, batch: &Batch) -> anyhow::Result<(CommitOutcome, Applied)> {
            self.inner.commit_counted(batch)
        }

        fn forget_before(&mut self, before: u64) -> anyhow::Result<u64> {
            self.inner.forget_before(before)
        }

        fn put_passkey(
            &mut self,
            passkey: &Passkey,
            user: Option<UserId>,
        ) -> anyhow::Result<Written> {
            self.inner.put_passkey(passkey, user)
        }

        fn delete_passkey(&mut self, passkey: &Passkey) -> anyhow::Result<bool> {
            self.inner.delete_passkey(passkey)
        }

        fn put_user(&mut self, user: UserId, can_leech: bool) -> anyhow::Result<Written> {
            self.inner.put_user(user, can_leech)
        }

        fn delete_user(&mut self, user: UserId) -> anyhow::Result<bool> {
            self.inner.delete_user(user)
        }

        fn put_torrent(
            &mut self,
            info_hash: &InfoHash,
            factors: Factors,
        ) -> anyhow::Result<Written> {
            self.inner.put_torrent(info_hash, factors)
        }

        fn delete_torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool> {
            self.inner.delete_torrent(info_hash)
        }
    }

    #[test]
    fn a_change_made_while_a_refresh_reads_waits_for_its_swap() {
        let m = Memory::new(None);
        let (read, has_read) = mpsc::channel();
        let (go_on, wait) = mpsc::channel();
        let mut writer = m.writer(Box::new(HeldRead {
            inner: MemoryStore(m.db.clone()),
            read,
            go_on: wait,
        }));
        let refresh = std::thread::spawn(move || writer.refresh_site());
        // The refresh has read the tables: user 5 is not there.
        has_read.recv().unwrap();
        let admin = m.admin.clone();
        let change = std::thread::spawn(move || admin.put_user(5, false));
        // Without the lock the change would be done well within this, and the refresh's
        // swap below would undo it. (With it, the change cannot finish: no timing is
        // assumed.)
        let deadline = Instant::now() + Duration::from_millis(300);
        while !change.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !change.is_finished(),
            "the change did not wait for the refresh"
        );
        go_on.send(()).unwrap();
        assert!(refresh.join().unwrap());
        assert_eq!(change.join().unwrap().unwrap(), Written::Created);
        assert!(!m.set().may_leech(5), "the refresh undid the change");
        assert_eq!(m.db().users.get(&5), Some(&false));
    }

    /// Private mode started on `url`, with `passkeys_path` (empty: passkeys from the
    /// database) and a site cache in `dir`.
    fn runtime(dir: &Path, passkeys_path: PathBuf, url: String) -> PrivateRuntime {
        let private = PrivateConfig {
            enabled: true,
            passkeys_path,
            site_cache_path: dir.join("site.cache"),
            ..PrivateConfig::default()
        };
        let accounting = AccountingConfig {
            url,
            ..AccountingConfig::default()
        };
        PrivateRuntime::start(
            &private,
            &accounting,
            1800,
            1,
            ServerStartInstant::new(),
            Arc::new(PrivateStatistics::new(1)),
        )
        .unwrap()
    }

    fn sqlite_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("accounting.db").display())
    }

    /// What the tracker started on the database (or the cache) has in force.
    fn in_force(runtime: &PrivateRuntime) -> Arc<PasskeySet> {
        runtime.access().passkeys.load_full()
    }

    #[test]
    fn sqlite_changes_reach_the_database_the_cache_and_a_restart() {
        let dir = crate::testing::temp_dir("admin-sqlite");
        let url = sqlite_url(&dir);
        let first = runtime(&dir, PathBuf::new(), url.clone());
        let admin = first.admin();
        assert_eq!(
            admin.put_passkey(key(1), Some(7)).unwrap(),
            Written::Created
        );
        assert_eq!(admin.put_passkey(key(2), None).unwrap(), Written::Created);
        assert_eq!(
            admin.put_passkey(key(1), Some(8)).unwrap(),
            Written::Replaced
        );
        assert_eq!(
            admin.put_passkey(key(3), Some(8)).unwrap(),
            Written::Created
        );
        assert!(admin.delete_passkey(&key(3)).unwrap());
        assert_eq!(admin.put_user(8, false).unwrap(), Written::Created);
        assert_eq!(
            admin.put_torrent(hash(1), 200, 0).unwrap(),
            Written::Created
        );
        assert_eq!(
            admin.put_torrent(hash(2), 100, 100).unwrap(),
            Written::Created
        );
        assert!(admin.delete_torrent(&hash(2)).unwrap());
        let expected = vec![(key(1), 8), (key(2), derived_user_id(&key(2)))];
        assert_eq!(admin.passkeys(), expected);
        assert_eq!(first.stats.passkeys_loaded.load(Ordering::Relaxed), 2);
        let set = in_force(&first);
        assert!(!set.may_leech(8));
        assert!(set.registered(&hash(1)) && !set.registered(&hash(2)));

        // The rows, as the site reads them.
        let sql = rusqlite::Connection::open(dir.join("accounting.db")).unwrap();
        let passkey_row = |n: u32| -> (i64, Option<i64>) {
            sql.query_row(
                "SELECT enabled, user_id FROM shoal_passkeys WHERE passkey = ?1",
                [key(n).as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(passkey_row(1), (1, Some(8)));
        assert_eq!(passkey_row(2), (1, None));
        let factors: (i64, i64) = sql
            .query_row(
                "SELECT upload_percent, download_percent FROM shoal_torrents",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(factors, (200, 0));

        // The cache holds the set in force; a restart reads the database, and one
        // without the database the cache.
        let cache = site_cache::read(&dir.join("site.cache")).unwrap();
        assert_eq!(cache, set.to_site());
        drop(first);
        let again = runtime(&dir, PathBuf::new(), url);
        assert_eq!(*in_force(&again), *set);
        let without = runtime(
            &dir,
            PathBuf::new(),
            sqlite_url(&dir.join("no-such-directory")),
        );
        assert_eq!(*in_force(&without), *set);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sqlite_unreachable_changes_nothing() {
        let dir = crate::testing::temp_dir("admin-sqlite-down");
        let url = sqlite_url(&dir.join("no-such-directory"));
        let runtime = runtime(&dir, PathBuf::new(), url);
        let admin = runtime.admin();
        let before = in_force(&runtime);
        let results = [
            admin.put_passkey(key(1), None).map(drop),
            admin.delete_passkey(&key(1)).map(drop),
            admin.put_user(1, false).map(drop),
            admin.delete_user(1).map(drop),
            admin.put_torrent(hash(1), 100, 100).map(drop),
            admin.delete_torrent(&hash(1)).map(drop),
        ];
        for result in results {
            let err = format!("{:#}", result.unwrap_err());
            assert!(err.contains("cannot be reached"), "{err}");
        }
        assert!(Arc::ptr_eq(&before, &in_force(&runtime)));
        assert!(!dir.join("site.cache").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The passkeys of the file at `path`, as a start or SIGUSR1 reads them.
    fn file_keys(path: &Path) -> Vec<PasskeyUser> {
        PasskeySet::load_file(path).unwrap().passkey_users()
    }

    #[test]
    fn a_passkey_file_is_rewritten_atomically_and_read_back() {
        use std::os::unix::fs::PermissionsExt;

        let dir = crate::testing::temp_dir("admin-file");
        let real = dir.join("passkeys.txt");
        // The configured path is a link: the file it names is replaced, the link kept.
        let path = dir.join("passkeys");
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let (k1, k2, k3) = (key(1), key(2), key(3));
        std::fs::write(
            &real,
            format!("# the site's passkeys\n{k1}  # alice\n\n{k2} 42 # bob\n{k3} 5\n{k2} 43\n"),
        )
        .unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let runtime = runtime(&dir, path.clone(), sqlite_url(&dir));
        let admin = runtime.admin();
        let read = || std::fs::read_to_string(&real).unwrap();

        // Added at the end, under the header.
        assert_eq!(
            admin.put_passkey(key(4), Some(9)).unwrap(),
            Written::Created
        );
        assert_eq!(
            read(),
            format!(
                "{FILE_HEADER}# the site's passkeys\n{k1}  # alice\n\n{k2} 42 # bob\n{k3} 5\n\
                 {k2} 43\n{} 9\n",
                key(4)
            )
        );
        assert_eq!(file_keys(&path), in_force(&runtime).passkey_users());
        assert_eq!(in_force(&runtime).user(&key(4)), Some(9));
        // Replaced in the place of its first line; the other lines of the key go.
        assert_eq!(admin.put_passkey(k2, None).unwrap(), Written::Replaced);
        assert_eq!(
            read(),
            format!(
                "{FILE_HEADER}# the site's passkeys\n{k1}  # alice\n\n{k2}\n{k3} 5\n{} 9\n",
                key(4)
            )
        );
        assert_eq!(in_force(&runtime).user(&k2), Some(derived_user_id(&k2)));
        // Removed.
        assert!(admin.delete_passkey(&k1).unwrap());
        assert!(!admin.delete_passkey(&k1).unwrap());
        assert_eq!(
            read(),
            format!(
                "{FILE_HEADER}# the site's passkeys\n\n{k2}\n{k3} 5\n{} 9\n",
                key(4)
            )
        );
        assert_eq!(file_keys(&path), in_force(&runtime).passkey_users());
        assert_eq!(admin.passkeys().len(), 3);
        assert_eq!(runtime.stats.passkeys_loaded.load(Ordering::Relaxed), 3);
        // The link, the permissions; no temporary file left.
        assert!(std::fs::symlink_metadata(&path).unwrap().is_symlink());
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{mode:o}");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("passkeys"))
            .collect();
        names.sort();
        assert_eq!(names, ["passkeys", "passkeys.txt"]);

        // Users and torrents go to the database, and the file stays as it is.
        let file = read();
        assert_eq!(admin.put_user(9, false).unwrap(), Written::Created);
        assert_eq!(
            admin.put_torrent(hash(1), 100, 0).unwrap(),
            Written::Created
        );
        assert!(!in_force(&runtime).may_leech(9));
        let site = store::open(&sqlite_url(&dir)).unwrap().load_site().unwrap();
        assert_eq!((site.no_leech, site.torrents), (vec![9], vec![hash(1)]));
        assert_eq!(read(), file);

        // A temporary file that cannot be made: nothing changes.
        let blocker = dir.join(format!("passkeys.txt.tmp-{}", std::process::id()));
        std::fs::create_dir(&blocker).unwrap();
        let before = in_force(&runtime);
        assert!(admin.put_passkey(key(5), None).is_err());
        assert_eq!(read(), file);
        assert!(Arc::ptr_eq(&before, &in_force(&runtime)));
        std::fs::remove_dir(&blocker).unwrap();

        // A bad line: the file is not rewritten, nothing changes.
        std::fs::write(&real, format!("{file}not-a-passkey\n")).unwrap();
        let err = format!("{:#}", admin.delete_passkey(&k2).unwrap_err());
        assert!(err.contains("line"), "{err}");
        assert_eq!(read(), format!("{file}not-a-passkey\n"));
        assert!(Arc::ptr_eq(&before, &in_force(&runtime)));

        // An edit not yet reloaded comes in force with the next change.
        std::fs::write(&real, format!("{file}{} 11\n", key(6))).unwrap();
        assert_eq!(admin.put_passkey(key(5), None).unwrap(), Written::Created);
        assert_eq!(in_force(&runtime).user(&key(6)), Some(11));
        assert_eq!(file_keys(&path), in_force(&runtime).passkey_users());
        assert_eq!(read().matches(FILE_HEADER).count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn passkeys_from_a_file_change_while_the_database_is_down() {
        let dir = crate::testing::temp_dir("admin-file-down");
        let path = dir.join("passkeys");
        std::fs::write(&path, format!("{}\n", key(1))).unwrap();
        let runtime = runtime(
            &dir,
            path.clone(),
            sqlite_url(&dir.join("no-such-directory")),
        );
        let admin = runtime.admin();
        assert_eq!(
            admin.put_passkey(key(2), Some(3)).unwrap(),
            Written::Created
        );
        assert_eq!(in_force(&runtime).user(&key(2)), Some(3));
        let before = in_force(&runtime);
        for result in [
            admin.put_user(3, false).map(drop),
            admin.put_torrent(hash(1), 100, 100).map(drop),
        ] {
            let err = format!("{:#}", result.unwrap_err());
            assert!(err.contains("cannot be reached"), "{err}");
        }
        assert!(Arc::ptr_eq(&before, &in_force(&runtime)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Raw access to a backend's tables, for what the store does not read back.
    trait Raw {
        /// Runs a statement.
        fn exec(&self, sql: &str);
        /// The integer (or boolean, or NULL) columns of the one row of `sql`, if any.
        fn row(&self, sql: &str) -> Option<Vec<Option<i64>>>;
        /// A literal of `bytes`.
        fn blob(&self, bytes: &[u8]) -> String;
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Every write of the site's tables, on the store that `url` opens.
    fn check_store(url: &str, raw: &dyn Raw) {
        let mut store = store::open(url).unwrap();
        let passkey_row = |n: u32| {
            raw.row(&format!(
                "SELECT enabled, user_id FROM shoal_passkeys WHERE passkey = '{}'",
                key(n)
            ))
        };
        let torrent_row = |n: u8| {
            raw.row(&format!(
                "SELECT upload_percent, download_percent FROM shoal_torrents WHERE info_hash = {}",
                raw.blob(&hash(n).0)
            ))
        };
        let user_row = |user: i64| {
            raw.row(&format!(
                "SELECT can_leech FROM shoal_users WHERE user_id = {user}"
            ))
        };

        // Passkeys.
        assert_eq!(
            store.put_passkey(&key(1), Some(7)).unwrap(),
            Written::Created
        );
        assert_eq!(passkey_row(1), Some(vec![Some(1), Some(7)]));
        assert_eq!(store.put_passkey(&key(1), None).unwrap(), Written::Replaced);
        assert_eq!(passkey_row(1), Some(vec![Some(1), None]));
        raw.exec(&format!(
            "INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES ('{}', {}, 3)",
            key(2),
            if url.starts_with("sqlite") {
                "0"
            } else {
                "FALSE"
            }
        ));
        assert_eq!(
            store.put_passkey(&key(2), Some(4)).unwrap(),
            Written::Replaced
        );
        assert_eq!(passkey_row(2), Some(vec![Some(1), Some(4)]));
        let mut site = store.load_site().unwrap();
        site.passkeys.sort_by_key(|k| k.passkey);
        assert_eq!(
            site.passkeys,
            [
                PasskeyUser {
                    passkey: key(1),
                    user: derived_user_id(&key(1))
                },
                PasskeyUser {
                    passkey: key(2),
                    user: 4
                }
            ]
        );
        assert!(store.delete_passkey(&key(1)).unwrap());
        assert_eq!(passkey_row(1), None);
        assert!(!store.delete_passkey(&key(1)).unwrap());

        // Users: writing the same values again is a replacement too.
        assert_eq!(store.put_user(5, false).unwrap(), Written::Created);
        assert_eq!(store.put_user(5, false).unwrap(), Written::Replaced);
        assert_eq!(store.load_site().unwrap().no_leech, [5]);
        assert_eq!(store.put_user(5, true).unwrap(), Written::Replaced);
        assert_eq!(user_row(5), Some(vec![Some(1)]));
        assert!(store.load_site().unwrap().no_leech.is_empty());
        assert!(store.delete_user(5).unwrap());
        assert_eq!(user_row(5), None);
        assert!(!store.delete_user(5).unwrap());

        // Torrents.
        let factors = |upload_percent, download_percent| Factors {
            upload_percent,
            download_percent,
        };
        assert_eq!(
            store.put_torrent(&hash(1), factors(200, 0)).unwrap(),
            Written::Created
        );
        assert_eq!(torrent_row(1), Some(vec![Some(200), Some(0)]));
        assert_eq!(
            store
                .put_torrent(&hash(1), factors(MAX_PERCENT, 50))
                .unwrap(),
            Written::Replaced
        );
        assert_eq!(
            torrent_row(1),
            Some(vec![Some(i64::from(MAX_PERCENT)), Some(50)])
        );
        assert!(
            store
                .put_torrent(&hash(1), factors(MAX_PERCENT + 1, 50))
                .is_err()
        );
        assert_eq!(
            torrent_row(1),
            Some(vec![Some(i64::from(MAX_PERCENT)), Some(50)])
        );
        assert_eq!(store.load_site().unwrap().torrents, [hash(1)]);
        assert!(store.delete_torrent(&hash(1)).unwrap());
        assert_eq!(torrent_row(1), None);
        assert!(!store.delete_torrent(&hash(1)).unwrap());
    }

    struct SqliteRaw(PathBuf);

    impl Raw for SqliteRaw {
        fn exec(&self, sql: &str) {
            rusqlite::Connection::open(&self.0)
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        }

        fn row(&self, sql: &str) -> Option<Vec<Option<i64>>> {
            use rusqlite::OptionalExtension;
            rusqlite::Connection::open(&self.0)
                .unwrap()
                .query_row(sql, [], |row| {
                    (0..row.as_ref().column_count())
                        .map(|i| row.get::<_, Option<i64>>(i))
                        .collect()
                })
                .optional()
                .unwrap()
        }

        fn blob(&self, bytes: &[u8]) -> String {
            format!("X'{}'", hex(bytes))
        }
    }

    #[test]
    fn sqlite_store_writes_the_site_tables() {
        let dir = crate::testing::temp_dir("admin-sqlite-store");
        check_store(&sqlite_url(&dir), &SqliteRaw(dir.join("accounting.db")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    struct PostgresRaw(String);

    impl Raw for PostgresRaw {
        fn exec(&self, sql: &str) {
            ::postgres::Client::connect(&self.0, ::postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap();
        }

        fn row(&self, sql: &str) -> Option<Vec<Option<i64>>> {
            let row = ::postgres::Client::connect(&self.0, ::postgres::NoTls)
                .unwrap()
                .query_opt(sql, &[])
                .unwrap()?;
            Some(
                (0..row.len())
                    .map(|i| {
                        row.try_get::<_, Option<i64>>(i)
                            .or_else(|_| row.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)))
                            .or_else(|_| {
                                row.try_get::<_, Option<bool>>(i).map(|v| v.map(i64::from))
                            })
                            .unwrap()
                    })
                    .collect(),
            )
        }

        fn blob(&self, bytes: &[u8]) -> String {
            format!("'\\x{}'::bytea", hex(bytes))
        }
    }

    #[test]
    fn postgres_store_writes_the_site_tables() {
        let server =
            crate::testing::postgres::TestPostgres::start().unwrap_or_else(|err| panic!("{err:#}"));
        check_store(&server.url(), &PostgresRaw(server.url()));
    }

    struct MariadbRaw(String);

    impl MariadbRaw {
        fn conn(&self) -> mysql::Conn {
            mysql::Conn::new(mysql::Opts::from_url(&self.0).unwrap()).unwrap()
        }
    }

    impl Raw for MariadbRaw {
        fn exec(&self, sql: &str) {
            use mysql::prelude::Queryable;
            self.conn().query_drop(sql).unwrap();
        }

        fn row(&self, sql: &str) -> Option<Vec<Option<i64>>> {
            use mysql::prelude::Queryable;
            let row: mysql::Row = self.conn().query_first(sql).unwrap()?;
            Some(
                (0..row.len())
                    .map(|i| row.get::<Option<i64>, _>(i).flatten())
                    .collect(),
            )
        }

        fn blob(&self, bytes: &[u8]) -> String {
            format!("X'{}'", hex(bytes))
        }
    }

    #[test]
    fn mariadb_store_writes_the_site_tables() {
        let server =
            crate::testing::mariadb::TestMariaDb::start().unwrap_or_else(|err| panic!("{err:#}"));
        check_store(&server.url(), &MariadbRaw(server.url()));
    }
}
