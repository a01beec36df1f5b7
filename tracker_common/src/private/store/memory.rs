//! An accounting database in memory, for tests: the same ledger, a map per table, and
//! failures on demand.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use super::{
    AccountingStore, Batch, BatchId, CommitOutcome, CreditRow, Factors, Ledger, PasskeyUser,
    PeerKey, PeerMark, SiteTables, TimeMarks, UserId, UserTorrentKey, Written, percent_columns,
    user_of,
};
use crate::private::ledger::{self, Applied};
use crate::private::passkey::Passkey;
use crate::types::InfoHash;

/// How a commit fails: `Lose` applies the batch and then reports an error (a commit
/// whose reply was lost), `Refuse` applies nothing and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Applied, then an error.
    Lose,
    /// An error, nothing applied.
    Refuse,
}

/// The tables.
#[derive(Debug, Default)]
pub(crate) struct MemoryDatabase {
    /// `shoal_batches`.
    pub applied: HashSet<BatchId>,
    /// `shoal_peer_marks`.
    pub marks: BTreeMap<PeerKey, PeerMark>,
    /// `shoal_credits`.
    pub credits: BTreeMap<UserTorrentKey, CreditRow>,
    /// `shoal_torrents`: the registered torrents and their factors.
    pub factors: BTreeMap<InfoHash, Factors>,
    /// `shoal_passkeys`: whether enabled, and the user id (`None`: NULL).
    pub passkeys: BTreeMap<Passkey, (bool, Option<UserId>)>,
    /// `shoal_users`: whether the user may leech.
    pub users: BTreeMap<UserId, bool>,
    /// Whether the database is down: every call of a [`MemoryStore`] on it fails (and
    /// changes nothing).
    pub down: bool,
    /// `shoal_settings`' factors.
    pub global: Factors,
    /// What the next commits do, first first.
    pub failures: Vec<Failure>,
    /// Commit attempts.
    pub commits: usize,
}

impl MemoryDatabase {
    /// Applies `batch` as a backend's transaction does (all or nothing).
    pub(crate) fn commit(&mut self, batch: &Batch) -> anyhow::Result<CommitOutcome> {
        Ok(self.commit_counted(batch)?.0)
    }

    /// As [`MemoryDatabase::commit`], with the ledger's counts.
    pub(crate) fn commit_counted(
        &mut self,
        batch: &Batch,
    ) -> anyhow::Result<(CommitOutcome, Applied)> {
        if self.applied.contains(&batch.id) {
            return Ok((CommitOutcome::AlreadyApplied, Applied::default()));
        }
        let mut tx = MemoryLedger {
            db: self,
            marks: Vec::new(),
            credits: Vec::new(),
        };
        let applied = ledger::apply(&mut tx, batch)?;
        let (marks, credits) = (tx.marks, tx.credits);
        for (key, mark) in marks {
            self.marks.insert(key, mark);
        }
        for add in credits {
            let row = self
                .credits
                .entry(add.key)
                .or_insert_with(|| CreditRow::zero(add.key, add.first_announce, add.last_announce));
            let sum = |a: u64, b: u64| a.saturating_add(b).min(i64::MAX as u64);
            row.uploaded = sum(row.uploaded, add.uploaded);
            row.downloaded = sum(row.downloaded, add.downloaded);
            row.uploaded_raw = sum(row.uploaded_raw, add.uploaded_raw);
            row.downloaded_raw = sum(row.downloaded_raw, add.downloaded_raw);
            row.seed_seconds = sum(row.seed_seconds, add.seed_seconds);
            row.leech_seconds = sum(row.leech_seconds, add.leech_seconds);
            row.flagged_announces = sum(row.flagged_announces, add.flagged_announces);
            row.completed_at = row.completed_at.or(add.completed_at);
            row.first_announce = row.first_announce.min(add.first_announce);
            row.last_announce = row.last_announce.max(add.last_announce);
            row.seed_until = row.seed_until.max(add.seed_until);
            row.leech_until = row.leech_until.max(add.leech_until);
        }
        self.applied.insert(batch.id);
        Ok((CommitOutcome::Applied, applied))
    }
}

/// A transaction: reads the tables, buffers the writes.
struct MemoryLedger<'a> {
    db: &'a MemoryDatabase,
    marks: Vec<(PeerKey, PeerMark)>,
    credits: Vec<CreditRow>,
}

impl Ledger for MemoryLedger<'_> {
    fn peer_marks(&mut self, keys: &[PeerKey]) -> anyhow::Result<Vec<Option<PeerMark>>> {
        Ok(keys.iter().map(|k| self.db.marks.get(k).copied()).collect())
    }

    fn time_marks(&mut self, keys: &[UserTorrentKey]) -> anyhow::Result<Vec<Option<TimeMarks>>> {
        Ok(keys
            .iter()
            .map(|k| {
                self.db.credits.get(k).map(|row| TimeMarks {
                    seed_until: row.seed_until,
                    leech_until: row.leech_until,
                })
            })
            .collect())
    }

    fn factors(&mut self, hashes: &[InfoHash]) -> anyhow::Result<(Factors, Vec<Option<Factors>>)> {
        Ok((
            self.db.global,
            hashes
                .iter()
                .map(|h| self.db.factors.get(h).copied())
                .collect(),
        ))
    }

    fn put_peer_marks(&mut self, rows: &[(PeerKey, PeerMark)]) -> anyhow::Result<()> {
        self.marks.extend_from_slice(rows);
        Ok(())
    }

    fn add_credits(&mut self, rows: &[CreditRow]) -> anyhow::Result<()> {
        self.credits.extend_from_slice(rows);
        Ok(())
    }
}

/// A store over a shared [`MemoryDatabase`], failing as its `failures` say, and in
/// every call while it is `down`.
pub(crate) struct MemoryStore(pub(crate) Arc<Mutex<MemoryDatabase>>);

impl MemoryStore {
    /// The database, unless it is down.
    fn database(&self) -> anyhow::Result<std::sync::MutexGuard<'_, MemoryDatabase>> {
        let db = self
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("memory database poisoned"))?;
        if db.down {
            anyhow::bail!("connection refused");
        }
        Ok(db)
    }
}

impl AccountingStore for MemoryStore {
    fn load_site(&mut self) -> anyhow::Result<SiteTables> {
        let db = self.database()?;
        Ok(SiteTables {
            passkeys: db
                .passkeys
                .iter()
                .filter(|(_, (enabled, _))| *enabled)
                .map(|(passkey, (_, user))| PasskeyUser {
                    passkey: *passkey,
                    user: user_of(passkey, *user),
                })
                .collect(),
            no_leech: db
                .users
                .iter()
                .filter(|(_, can_leech)| !**can_leech)
                .map(|(user, _)| *user)
                .collect(),
            torrents: db.factors.keys().copied().collect(),
        })
    }

    fn commit_counted(&mut self, batch: &Batch) -> anyhow::Result<(CommitOutcome, Applied)> {
        let mut db = self.database()?;
        db.commits += 1;
        let failure = if db.failures.is_empty() {
            None
        } else {
            Some(db.failures.remove(0))
        };
        if failure == Some(Failure::Refuse) {
            anyhow::bail!("connection refused");
        }
        let outcome = db.commit_counted(batch)?;
        if failure == Some(Failure::Lose) {
            anyhow::bail!("connection reset after commit");
        }
        Ok(outcome)
    }

    fn forget_before(&mut self, before: u64) -> anyhow::Result<u64> {
        let mut db = self.database()?;
        let old = db.marks.len();
        db.marks.retain(|_, m| m.last_announce >= before);
        Ok((old - db.marks.len()) as u64)
    }

    fn put_passkey(&mut self, passkey: &Passkey, user: Option<UserId>) -> anyhow::Result<Written> {
        let old = self.database()?.passkeys.insert(*passkey, (true, user));
        Ok(Written::existed(old.is_some()))
    }

    fn delete_passkey(&mut self, passkey: &Passkey) -> anyhow::Result<bool> {
        Ok(self.database()?.passkeys.remove(passkey).is_some())
    }

    fn put_user(&mut self, user: UserId, can_leech: bool) -> anyhow::Result<Written> {
        let old = self.database()?.users.insert(user, can_leech);
        Ok(Written::existed(old.is_some()))
    }

    fn delete_user(&mut self, user: UserId) -> anyhow::Result<bool> {
        Ok(self.database()?.users.remove(&user).is_some())
    }

    fn put_torrent(&mut self, info_hash: &InfoHash, factors: Factors) -> anyhow::Result<Written> {
        // The backends' check of the columns.
        percent_columns(factors)?;
        let old = self.database()?.factors.insert(*info_hash, factors);
        Ok(Written::existed(old.is_some()))
    }

    fn delete_torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool> {
        Ok(self.database()?.factors.remove(info_hash).is_some())
    }
}
