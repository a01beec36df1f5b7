//! The SQLite backend: one database file, for a tracker on one host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rusqlite::ToSql;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    AccountingStore, Batch, CommitOutcome, CreditRow, Factors, Ledger, PasskeyUser, PeerKey,
    PeerMark, SiteTables, TimeMarks, UserId, UserTorrentKey, Written, checked_mark,
    checked_percent, percent_columns, to_column, unix_now, user_of, warn_skipped,
};
use crate::private::ledger::{self, Applied};
use crate::private::passkey::Passkey;
use crate::types::InfoHash;

/// The schema's migrations, applied in order, each in its own transaction and recorded
/// in `shoal_schema_migrations`. Never edit one that has shipped: add the next.
///
/// The tables keyed by several columns are `WITHOUT ROWID`: the primary key is then the
/// table's own B-tree, not a second index beside it, which halves the writes of an
/// upsert.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE shoal_passkeys (
        passkey TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE shoal_user_torrents (
        passkey TEXT NOT NULL,
        info_hash BLOB NOT NULL CHECK (length(info_hash) = 20),
        uploaded INTEGER NOT NULL DEFAULT 0,
        downloaded INTEGER NOT NULL DEFAULT 0,
        seed_seconds INTEGER NOT NULL DEFAULT 0,
        leech_seconds INTEGER NOT NULL DEFAULT 0,
        completed_at INTEGER NULL,
        first_announce INTEGER NOT NULL,
        last_announce INTEGER NOT NULL,
        flagged_announces INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (passkey, info_hash)
    ) WITHOUT ROWID;
    CREATE TABLE shoal_peers (
        passkey TEXT NOT NULL,
        info_hash BLOB NOT NULL,
        peer_id BLOB NOT NULL,
        uploaded INTEGER NOT NULL,
        downloaded INTEGER NOT NULL,
        last_announce INTEGER NOT NULL,
        seeding INTEGER NOT NULL,
        PRIMARY KEY (passkey, info_hash, peer_id)
    ) WITHOUT ROWID;
    CREATE TABLE shoal_batches (
        id TEXT PRIMARY KEY,
        committed_at INTEGER NOT NULL,
        credits INTEGER NOT NULL
    );
    CREATE INDEX shoal_batches_committed_at ON shoal_batches (committed_at);",
    ),
    (
        2,
        "ALTER TABLE shoal_passkeys ADD COLUMN user_id INTEGER NULL;
        CREATE TABLE shoal_users (
            user_id INTEGER PRIMARY KEY,
            can_leech INTEGER NOT NULL DEFAULT 1
        );
        CREATE TABLE shoal_torrents (
            info_hash BLOB PRIMARY KEY CHECK (length(info_hash) = 20),
            upload_percent INTEGER NOT NULL DEFAULT 100,
            download_percent INTEGER NOT NULL DEFAULT 100
        ) WITHOUT ROWID;
        CREATE TABLE shoal_settings (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        );
        CREATE TABLE shoal_credits (
            user_id INTEGER NOT NULL,
            info_hash BLOB NOT NULL CHECK (length(info_hash) = 20),
            uploaded INTEGER NOT NULL DEFAULT 0,
            downloaded INTEGER NOT NULL DEFAULT 0,
            uploaded_raw INTEGER NOT NULL DEFAULT 0,
            downloaded_raw INTEGER NOT NULL DEFAULT 0,
            seed_seconds INTEGER NOT NULL DEFAULT 0,
            leech_seconds INTEGER NOT NULL DEFAULT 0,
            completed_at INTEGER NULL,
            first_announce INTEGER NOT NULL,
            last_announce INTEGER NOT NULL,
            flagged_announces INTEGER NOT NULL DEFAULT 0,
            seed_until INTEGER NOT NULL DEFAULT 0,
            leech_until INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, info_hash)
        ) WITHOUT ROWID;
        CREATE TABLE shoal_peer_marks (
            user_id INTEGER NOT NULL,
            info_hash BLOB NOT NULL,
            peer_id BLOB NOT NULL,
            uploaded INTEGER NOT NULL,
            downloaded INTEGER NOT NULL,
            last_announce INTEGER NOT NULL,
            state INTEGER NOT NULL,
            noted_uploaded INTEGER NULL,
            noted_downloaded INTEGER NULL,
            PRIMARY KEY (user_id, info_hash, peer_id)
        ) WITHOUT ROWID;",
    ),
];

/// `a + b` capped at `i64::MAX`, in SQL: SQLite turns an integer sum that overflows
/// into a REAL, so the sum is capped by a comparison made before it, and stays an
/// INTEGER.
macro_rules! capped_sum {
    ($column:literal) => {
        concat!(
            $column,
            " = CASE WHEN ",
            $column,
            " > 9223372036854775807 - excluded.",
            $column,
            " THEN 9223372036854775807 ELSE ",
            $column,
            " + excluded.",
            $column,
            " END"
        )
    };
}

/// Adds a credit to its row (see [`super::CreditRow`]).
const UPSERT_CREDIT: &str = concat!(
    "INSERT INTO shoal_credits (user_id, info_hash, uploaded, downloaded, uploaded_raw,
        downloaded_raw, seed_seconds, leech_seconds, completed_at, first_announce,
        last_announce, flagged_announces, seed_until, leech_until)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
    ON CONFLICT (user_id, info_hash) DO UPDATE SET ",
    capped_sum!("uploaded"),
    ", ",
    capped_sum!("downloaded"),
    ", ",
    capped_sum!("uploaded_raw"),
    ", ",
    capped_sum!("downloaded_raw"),
    ", ",
    capped_sum!("seed_seconds"),
    ", ",
    capped_sum!("leech_seconds"),
    ", ",
    capped_sum!("flagged_announces"),
    ",
        completed_at = COALESCE(completed_at, excluded.completed_at),
        first_announce = MIN(first_announce, excluded.first_announce),
        last_announce = MAX(last_announce, excluded.last_announce),
        seed_until = MAX(seed_until, excluded.seed_until),
        leech_until = MAX(leech_until, excluded.leech_until)"
);

const UPSERT_MARK: &str = "
    INSERT INTO shoal_peer_marks (user_id, info_hash, peer_id, uploaded, downloaded,
        last_announce, state, noted_uploaded, noted_downloaded)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
    ON CONFLICT (user_id, info_hash, peer_id) DO UPDATE SET
        uploaded = excluded.uploaded,
        downloaded = excluded.downloaded,
        last_announce = excluded.last_announce,
        state = excluded.state,
        noted_uploaded = excluded.noted_uploaded,
        noted_downloaded = excluded.noted_downloaded";

/// The accounting database in one SQLite file.
///
/// # Durability
/// The file is in WAL journal mode with `synchronous = FULL`: a commit returns after the
/// write-ahead log is synced, so a committed batch survives a power loss (with the
/// default `NORMAL`, WAL mode may lose the last transactions). Concurrent readers (an
/// operator's `sqlite3` shell, a site's export job) do not block the writer; a writer
/// waits up to `busy_timeout` for another's lock before its call fails.
///
/// # Tables
/// Those of [`super`], created by migrations 1 and 2; integers are SQLite's 64-bit
/// INTEGER, booleans 0 or 1, info hashes and peer ids 20-byte BLOBs, passkeys TEXT. The
/// tables keyed by several columns are `WITHOUT ROWID`. `shoal_peer_marks` is not
/// indexed on `last_announce`: every upsert would pay for that index, while only the
/// hourly deletion of expired marks reads it (a scan). `shoal_batches` is indexed on
/// `committed_at`.
///
/// # Writers
/// A batch's transaction is `BEGIN IMMEDIATE`: it holds the file's write lock from its
/// first read of the marks to its commit, so that two processes on one file apply
/// their batches one after the other, each against the other's marks.
///
/// Times are Unix seconds.
///
/// # Errors
/// SQLite is in-process: an error is a disk error, a lock held past the busy timeout or
/// a damaged file. The connection stays usable; the caller retries the call.
pub struct SqliteStore {
    connection: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// How long a call waits for another connection's lock on the file.
    const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

    /// Opens the database file at `path`, creating it and its schema if needed, and
    /// applies the migrations it lacks.
    ///
    /// # Errors
    /// The file cannot be opened or created, is not a database, or cannot be migrated.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let connection = Connection::open(path)
            .with_context(|| format!("open sqlite database {}", path.display()))?;
        let mut store = Self {
            connection,
            path: path.to_path_buf(),
        };
        store
            .configure()
            .and_then(|()| store.migrate())
            .with_context(|| format!("set up sqlite database {}", path.display()))?;
        Ok(store)
    }

    fn configure(&mut self) -> anyhow::Result<()> {
        self.connection
            .busy_timeout(Self::BUSY_TIMEOUT)
            .context("set busy_timeout")?;
        let mode: String = self
            .connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .context("set journal_mode")?;
        if !mode.eq_ignore_ascii_case("wal") {
            anyhow::bail!("journal_mode is {mode}, not wal");
        }
        self.connection
            .execute_batch("PRAGMA synchronous = FULL")
            .context("set synchronous")?;
        // A batch touches up to millions of rows spread over the B-trees: a larger page
        // cache (64 MiB, negative = KiB) keeps the hot inner pages in memory.
        self.connection
            .execute_batch("PRAGMA cache_size = -65536")
            .context("set cache_size")?;
        Ok(())
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        self.connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS shoal_schema_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_at INTEGER
                )",
            )
            .context("create shoal_schema_migrations")?;
        for &(version, sql) in MIGRATIONS {
            // IMMEDIATE takes the write lock first, so that two processes opening the
            // same new file do not both apply a migration.
            let tx = self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let applied = tx
                .query_row(
                    "SELECT 1 FROM shoal_schema_migrations WHERE version = ?1",
                    [version],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !applied {
                tx.execute_batch(sql)
                    .with_context(|| format!("apply migration {version}"))?;
                tx.execute(
                    "INSERT INTO shoal_schema_migrations (version, applied_at) VALUES (?1, ?2)",
                    params![version, unix_now()],
                )?;
                log::info!(
                    "accounting database {}: applied migration {version}",
                    self.path.display()
                );
            }
            tx.commit()?;
        }
        Ok(())
    }
}

impl SqliteStore {
    /// Looks a row of `table` up by its key (`exists`, whose one parameter is `key`)
    /// and writes it (`upsert`, with `values`), in one transaction that holds the file's
    /// write lock from the look-up to the commit.
    fn upsert(
        &mut self,
        table: &str,
        exists: &str,
        key: &dyn ToSql,
        upsert: &str,
        values: &[&dyn ToSql],
    ) -> anyhow::Result<Written> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        let existed = tx
            .query_row(exists, [key], |_| Ok(()))
            .optional()
            .with_context(|| format!("read {table}"))?
            .is_some();
        tx.execute(upsert, values)
            .with_context(|| format!("upsert into {table}"))?;
        tx.commit().context("commit")?;
        Ok(Written::existed(existed))
    }

    /// Runs `delete` (one statement, whose one parameter is `key`) on `table`; whether
    /// it deleted a row.
    fn delete(&mut self, table: &str, delete: &str, key: &dyn ToSql) -> anyhow::Result<bool> {
        let deleted = self
            .connection
            .execute(delete, [key])
            .with_context(|| format!("delete from {table}"))?;
        Ok(deleted > 0)
    }
}

/// The bytes of a TEXT or BLOB value; `None` for other types.
fn bytes(value: ValueRef<'_>) -> Option<&[u8]> {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(bytes),
        _ => None,
    }
}

fn integer(value: ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    }
}

/// A batch's transaction, as the ledger sees it.
struct SqliteLedger<'a> {
    tx: &'a rusqlite::Transaction<'a>,
}

impl Ledger for SqliteLedger<'_> {
    fn peer_marks(&mut self, keys: &[PeerKey]) -> anyhow::Result<Vec<Option<PeerMark>>> {
        let mut select = self.tx.prepare_cached(
            "SELECT uploaded, downloaded, last_announce, state, noted_uploaded,
                    noted_downloaded
             FROM shoal_peer_marks
             WHERE user_id = ?1 AND info_hash = ?2 AND peer_id = ?3",
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let mark = select
                .query_row(
                    params![key.user, &key.info_hash.0[..], &key.peer_id.0[..]],
                    |row| {
                        Ok((|| {
                            let nullable = |i: usize| -> Option<Option<i64>> {
                                match row.get_ref(i).ok()? {
                                    ValueRef::Null => Some(None),
                                    value => Some(Some(integer(value)?)),
                                }
                            };
                            checked_mark(
                                integer(row.get_ref(0).ok()?)?,
                                integer(row.get_ref(1).ok()?)?,
                                integer(row.get_ref(2).ok()?)?,
                                integer(row.get_ref(3).ok()?)?,
                                (nullable(4)?, nullable(5)?),
                            )
                        })())
                    },
                )
                .optional()
                .context("read shoal_peer_marks")?
                .flatten();
            out.push(mark);
        }
        Ok(out)
    }

    fn time_marks(&mut self, keys: &[UserTorrentKey]) -> anyhow::Result<Vec<Option<TimeMarks>>> {
        let mut select = self.tx.prepare_cached(
            "SELECT seed_until, leech_until FROM shoal_credits
             WHERE user_id = ?1 AND info_hash = ?2",
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let marks = select
                .query_row(params![key.user, &key.info_hash.0[..]], |row| {
                    Ok((|| {
                        Some(TimeMarks {
                            seed_until: u64::try_from(integer(row.get_ref(0).ok()?)?).ok()?,
                            leech_until: u64::try_from(integer(row.get_ref(1).ok()?)?).ok()?,
                        })
                    })())
                })
                .optional()
                .context("read shoal_credits")?
                .flatten();
            out.push(marks);
        }
        Ok(out)
    }

    fn factors(&mut self, hashes: &[InfoHash]) -> anyhow::Result<(Factors, Vec<Option<Factors>>)> {
        let setting = |name: &str| -> anyhow::Result<Option<i64>> {
            Ok(self
                .tx
                .query_row(
                    "SELECT value FROM shoal_settings WHERE name = ?1",
                    [name],
                    |row| Ok(integer(row.get_ref(0)?)),
                )
                .optional()
                .context("read shoal_settings")?
                .flatten())
        };
        let global = Factors {
            upload_percent: checked_percent(setting("upload_percent")?),
            download_percent: checked_percent(setting("download_percent")?),
        };
        let mut select = self.tx.prepare_cached(
            "SELECT upload_percent, download_percent FROM shoal_torrents WHERE info_hash = ?1",
        )?;
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let factors = select
                .query_row([&hash.0[..]], |row| {
                    Ok(Factors {
                        upload_percent: checked_percent(integer(row.get_ref(0)?)),
                        download_percent: checked_percent(integer(row.get_ref(1)?)),
                    })
                })
                .optional()
                .context("read shoal_torrents")?;
            out.push(factors);
        }
        Ok((global, out))
    }

    fn put_peer_marks(&mut self, rows: &[(PeerKey, PeerMark)]) -> anyhow::Result<()> {
        let mut upsert = self.tx.prepare_cached(UPSERT_MARK)?;
        for (key, mark) in rows {
            let (noted_up, noted_down) = mark.noted_columns();
            upsert
                .execute(params![
                    key.user,
                    &key.info_hash.0[..],
                    &key.peer_id.0[..],
                    to_column(mark.uploaded),
                    to_column(mark.downloaded),
                    to_column(mark.last_announce),
                    mark.state.to_column(),
                    noted_up,
                    noted_down,
                ])
                .context("upsert into shoal_peer_marks")?;
        }
        Ok(())
    }

    fn add_credits(&mut self, rows: &[CreditRow]) -> anyhow::Result<()> {
        let mut upsert = self.tx.prepare_cached(UPSERT_CREDIT)?;
        for row in rows {
            upsert
                .execute(params![
                    row.key.user,
                    &row.key.info_hash.0[..],
                    to_column(row.uploaded),
                    to_column(row.downloaded),
                    to_column(row.uploaded_raw),
                    to_column(row.downloaded_raw),
                    to_column(row.seed_seconds),
                    to_column(row.leech_seconds),
                    row.completed_at.map(to_column),
                    to_column(row.first_announce),
                    to_column(row.last_announce),
                    to_column(row.flagged_announces),
                    to_column(row.seed_until),
                    to_column(row.leech_until),
                ])
                .context("upsert into shoal_credits")?;
        }
        Ok(())
    }
}

impl AccountingStore for SqliteStore {
    fn load_site(&mut self) -> anyhow::Result<SiteTables> {
        let mut site = SiteTables::default();
        let mut skipped = 0;
        {
            let mut statement = self
                .connection
                .prepare("SELECT passkey, user_id FROM shoal_passkeys WHERE enabled")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next().context("read shoal_passkeys")? {
                let passkey = row.get_ref(0).ok().and_then(bytes).and_then(Passkey::parse);
                let user = row.get_ref(1).ok().and_then(integer);
                match passkey {
                    Some(passkey) => site.passkeys.push(PasskeyUser {
                        passkey,
                        user: user_of(&passkey, user),
                    }),
                    None => skipped += 1,
                }
            }
        }
        warn_skipped("shoal_passkeys", skipped);
        {
            let mut statement = self
                .connection
                .prepare("SELECT user_id FROM shoal_users WHERE NOT can_leech")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next().context("read shoal_users")? {
                if let Some(user) = row.get_ref(0).ok().and_then(integer) {
                    site.no_leech.push(user);
                }
            }
        }
        let mut skipped = 0;
        {
            let mut statement = self
                .connection
                .prepare("SELECT info_hash FROM shoal_torrents")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next().context("read shoal_torrents")? {
                match row
                    .get_ref(0)
                    .ok()
                    .and_then(bytes)
                    .and_then(|b| <[u8; 20]>::try_from(b).ok())
                {
                    Some(hash) => site.torrents.push(InfoHash(hash)),
                    None => skipped += 1,
                }
            }
        }
        warn_skipped("shoal_torrents", skipped);
        Ok(site)
    }

    fn commit_counted(&mut self, batch: &Batch) -> anyhow::Result<(CommitOutcome, Applied)> {
        // IMMEDIATE takes the database's write lock at once: the accounting lock.
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("begin")?;
        let inserted = tx
            .execute(
                "INSERT INTO shoal_batches (id, committed_at, credits) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO NOTHING",
                params![
                    batch.id.to_hex(),
                    to_column(batch.created_at),
                    to_column(batch.reports.len() as u64)
                ],
            )
            .context("insert into shoal_batches")?;
        if inserted == 0 {
            // Dropping `tx` rolls back (nothing was written).
            return Ok((CommitOutcome::AlreadyApplied, Applied::default()));
        }
        let applied = ledger::apply(&mut SqliteLedger { tx: &tx }, batch)?;
        tx.commit().context("commit")?;
        Ok((CommitOutcome::Applied, applied))
    }

    fn forget_before(&mut self, before: u64) -> anyhow::Result<u64> {
        let before = to_column(before);
        let tx = self.connection.transaction()?;
        let deleted = tx
            .execute(
                "DELETE FROM shoal_peer_marks WHERE last_announce < ?1",
                [before],
            )
            .context("delete from shoal_peer_marks")?;
        tx.execute(
            "DELETE FROM shoal_batches WHERE committed_at < ?1",
            [before],
        )
        .context("delete from shoal_batches")?;
        tx.commit()?;
        Ok(deleted as u64)
    }

    fn put_passkey(&mut self, passkey: &Passkey, user: Option<UserId>) -> anyhow::Result<Written> {
        self.upsert(
            "shoal_passkeys",
            "SELECT 1 FROM shoal_passkeys WHERE passkey = ?1",
            &passkey.as_str(),
            "INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES (?1, 1, ?2)
             ON CONFLICT (passkey) DO UPDATE SET enabled = 1, user_id = excluded.user_id",
            &[&passkey.as_str(), &user],
        )
    }

    fn delete_passkey(&mut self, passkey: &Passkey) -> anyhow::Result<bool> {
        self.delete(
            "shoal_passkeys",
            "DELETE FROM shoal_passkeys WHERE passkey = ?1",
            &passkey.as_str(),
        )
    }

    fn put_user(&mut self, user: UserId, can_leech: bool) -> anyhow::Result<Written> {
        self.upsert(
            "shoal_users",
            "SELECT 1 FROM shoal_users WHERE user_id = ?1",
            &user,
            "INSERT INTO shoal_users (user_id, can_leech) VALUES (?1, ?2)
             ON CONFLICT (user_id) DO UPDATE SET can_leech = excluded.can_leech",
            &[&user, &can_leech],
        )
    }

    fn delete_user(&mut self, user: UserId) -> anyhow::Result<bool> {
        self.delete(
            "shoal_users",
            "DELETE FROM shoal_users WHERE user_id = ?1",
            &user,
        )
    }

    fn put_torrent(&mut self, info_hash: &InfoHash, factors: Factors) -> anyhow::Result<Written> {
        let (upload, download) = percent_columns(factors)?;
        let hash = &info_hash.0[..];
        self.upsert(
            "shoal_torrents",
            "SELECT 1 FROM shoal_torrents WHERE info_hash = ?1",
            &hash,
            "INSERT INTO shoal_torrents (info_hash, upload_percent, download_percent)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (info_hash) DO UPDATE SET upload_percent = excluded.upload_percent,
                 download_percent = excluded.download_percent",
            &[&hash, &upload, &download],
        )
    }

    fn delete_torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool> {
        self.delete(
            "shoal_torrents",
            "DELETE FROM shoal_torrents WHERE info_hash = ?1",
            &&info_hash.0[..],
        )
    }
}
