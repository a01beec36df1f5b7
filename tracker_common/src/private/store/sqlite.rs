//! The SQLite backend: one database file, for a tracker on one host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    AccountingStore, Batch, CommitOutcome, PeerBaseline, RawBaseline, to_column, unix_now,
    warn_skipped,
};
use crate::private::passkey::Passkey;

/// The schema's migrations, applied in order, each in its own transaction and recorded
/// in `shoal_schema_migrations`. Never edit one that has shipped: add the next.
///
/// The tables keyed by several columns are `WITHOUT ROWID`: the primary key is then the
/// table's own B-tree, not a second index beside it, which halves the writes of an
/// upsert.
const MIGRATIONS: &[(i64, &str)] = &[(
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
)];

/// Adds a credit to its row. SQLite turns an integer sum that overflows into a REAL, so
/// each sum is capped by comparison before it is made, and stays an INTEGER.
const UPSERT_CREDIT: &str = "
    INSERT INTO shoal_user_torrents (passkey, info_hash, uploaded, downloaded,
        seed_seconds, leech_seconds, completed_at, first_announce, last_announce,
        flagged_announces)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
    ON CONFLICT (passkey, info_hash) DO UPDATE SET
        uploaded = CASE WHEN uploaded > 9223372036854775807 - excluded.uploaded
            THEN 9223372036854775807 ELSE uploaded + excluded.uploaded END,
        downloaded = CASE WHEN downloaded > 9223372036854775807 - excluded.downloaded
            THEN 9223372036854775807 ELSE downloaded + excluded.downloaded END,
        seed_seconds = CASE WHEN seed_seconds > 9223372036854775807 - excluded.seed_seconds
            THEN 9223372036854775807 ELSE seed_seconds + excluded.seed_seconds END,
        leech_seconds = CASE WHEN leech_seconds > 9223372036854775807 - excluded.leech_seconds
            THEN 9223372036854775807 ELSE leech_seconds + excluded.leech_seconds END,
        completed_at = COALESCE(completed_at, excluded.completed_at),
        first_announce = MIN(first_announce, excluded.first_announce),
        last_announce = MAX(last_announce, excluded.last_announce),
        flagged_announces = CASE
            WHEN flagged_announces > 9223372036854775807 - excluded.flagged_announces
            THEN 9223372036854775807 ELSE flagged_announces + excluded.flagged_announces END";

const UPSERT_BASELINE: &str = "
    INSERT INTO shoal_peers (passkey, info_hash, peer_id, uploaded, downloaded,
        last_announce, seeding)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
    ON CONFLICT (passkey, info_hash, peer_id) DO UPDATE SET
        uploaded = excluded.uploaded,
        downloaded = excluded.downloaded,
        last_announce = excluded.last_announce,
        seeding = excluded.seeding";

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
/// Created by migration 1 (see [`super`] for what each holds); integers are SQLite's
/// 64-bit INTEGER, booleans 0 or 1, ids BLOBs:
/// - `shoal_schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER)`;
/// - `shoal_passkeys(passkey TEXT PRIMARY KEY, enabled INTEGER NOT NULL DEFAULT 1)`;
/// - `shoal_user_torrents(passkey TEXT, info_hash BLOB (20 bytes), uploaded, downloaded,
///   seed_seconds, leech_seconds INTEGER DEFAULT 0, completed_at INTEGER NULL,
///   first_announce, last_announce INTEGER, flagged_announces INTEGER DEFAULT 0,
///   PRIMARY KEY (passkey, info_hash))`;
/// - `shoal_peers(passkey TEXT, info_hash BLOB, peer_id BLOB, uploaded, downloaded,
///   last_announce INTEGER, seeding INTEGER, PRIMARY KEY (passkey, info_hash, peer_id))`,
///   not indexed on `last_announce`: every upsert would pay for that index, while only
///   the hourly deletion of expired baselines reads it (a scan);
/// - `shoal_batches(id TEXT PRIMARY KEY, committed_at INTEGER, credits INTEGER)`, indexed
///   on `committed_at`.
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

fn baseline(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<PeerBaseline>> {
    let raw = (|| {
        Some(RawBaseline {
            passkey: bytes(row.get_ref(0).ok()?)?,
            info_hash: bytes(row.get_ref(1).ok()?)?,
            peer_id: bytes(row.get_ref(2).ok()?)?,
            uploaded: integer(row.get_ref(3).ok()?)?,
            downloaded: integer(row.get_ref(4).ok()?)?,
            last_announce: integer(row.get_ref(5).ok()?)?,
            seeding: integer(row.get_ref(6).ok()?)? != 0,
        })
    })();
    Ok(raw.and_then(|raw| raw.check()))
}

impl AccountingStore for SqliteStore {
    fn load_baselines(
        &mut self,
        since: u64,
        sink: &mut dyn FnMut(PeerBaseline),
    ) -> anyhow::Result<()> {
        let mut statement = self.connection.prepare(
            "SELECT passkey, info_hash, peer_id, uploaded, downloaded, last_announce, seeding
             FROM shoal_peers WHERE last_announce >= ?1",
        )?;
        let mut rows = statement.query([to_column(since)])?;
        let mut skipped = 0;
        while let Some(row) = rows.next().context("read shoal_peers")? {
            match baseline(row)? {
                Some(baseline) => sink(baseline),
                None => skipped += 1,
            }
        }
        warn_skipped("shoal_peers", skipped);
        Ok(())
    }

    fn load_passkeys(&mut self) -> anyhow::Result<Vec<Passkey>> {
        let mut statement = self
            .connection
            .prepare("SELECT passkey FROM shoal_passkeys WHERE enabled")?;
        let mut rows = statement.query([])?;
        let mut passkeys = Vec::new();
        let mut skipped = 0;
        while let Some(row) = rows.next().context("read shoal_passkeys")? {
            match row.get_ref(0).ok().and_then(bytes).and_then(Passkey::parse) {
                Some(passkey) => passkeys.push(passkey),
                None => skipped += 1,
            }
        }
        warn_skipped("shoal_passkeys", skipped);
        Ok(passkeys)
    }

    fn commit(&mut self, batch: &Batch) -> anyhow::Result<CommitOutcome> {
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
                    to_column(batch.credits.len() as u64)
                ],
            )
            .context("insert into shoal_batches")?;
        if inserted == 0 {
            // Dropping `tx` rolls back (nothing was written).
            return Ok(CommitOutcome::AlreadyApplied);
        }
        {
            let mut upsert = tx.prepare(UPSERT_CREDIT)?;
            for credit in &batch.credits {
                upsert
                    .execute(params![
                        credit.passkey.as_str(),
                        &credit.info_hash.0[..],
                        to_column(credit.uploaded),
                        to_column(credit.downloaded),
                        to_column(credit.seed_seconds),
                        to_column(credit.leech_seconds),
                        credit.completed_at.map(to_column),
                        to_column(credit.first_announce),
                        to_column(credit.last_announce),
                        to_column(credit.flagged_announces),
                    ])
                    .context("upsert into shoal_user_torrents")?;
            }
            let mut upsert = tx.prepare(UPSERT_BASELINE)?;
            for baseline in &batch.baselines {
                upsert
                    .execute(params![
                        baseline.passkey.as_str(),
                        &baseline.info_hash.0[..],
                        &baseline.peer_id.0[..],
                        to_column(baseline.uploaded),
                        to_column(baseline.downloaded),
                        to_column(baseline.last_announce),
                        baseline.seeding,
                    ])
                    .context("upsert into shoal_peers")?;
            }
        }
        tx.commit().context("commit")?;
        Ok(CommitOutcome::Applied)
    }

    fn forget_before(&mut self, before: u64) -> anyhow::Result<u64> {
        let before = to_column(before);
        let tx = self.connection.transaction()?;
        let deleted = tx
            .execute("DELETE FROM shoal_peers WHERE last_announce < ?1", [before])
            .context("delete from shoal_peers")?;
        tx.execute(
            "DELETE FROM shoal_batches WHERE committed_at < ?1",
            [before],
        )
        .context("delete from shoal_batches")?;
        tx.commit()?;
        Ok(deleted as u64)
    }
}
