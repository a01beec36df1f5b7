//! The PostgreSQL backend: a server shared with the site, reached over TCP, that may go
//! away and come back.

use std::str::FromStr;
use std::time::Duration;

use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::{Client, Config, NoTls, Row, Transaction};
use anyhow::Context;

use super::{
    AccountingStore, Batch, CommitOutcome, PeerBaseline, RawBaseline, to_column, unix_now,
    warn_skipped,
};
use crate::private::passkey::Passkey;

/// The schema's migrations, applied in order, each in its own transaction and recorded
/// in `shoal_schema_migrations`. Never edit one that has shipped: add the next.
///
/// Passkeys are ASCII identifiers, compared byte by byte (`COLLATE "C"`) rather than by
/// the database's locale: cheaper, and the order a [`Batch`]'s rows come in.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    r#"CREATE TABLE shoal_passkeys (
        passkey TEXT COLLATE "C" PRIMARY KEY,
        enabled BOOLEAN NOT NULL DEFAULT TRUE
    );
    CREATE TABLE shoal_user_torrents (
        passkey TEXT COLLATE "C" NOT NULL,
        info_hash BYTEA NOT NULL CHECK (octet_length(info_hash) = 20),
        uploaded BIGINT NOT NULL DEFAULT 0,
        downloaded BIGINT NOT NULL DEFAULT 0,
        seed_seconds BIGINT NOT NULL DEFAULT 0,
        leech_seconds BIGINT NOT NULL DEFAULT 0,
        completed_at BIGINT NULL,
        first_announce BIGINT NOT NULL,
        last_announce BIGINT NOT NULL,
        flagged_announces BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (passkey, info_hash)
    );
    CREATE TABLE shoal_peers (
        passkey TEXT COLLATE "C" NOT NULL,
        info_hash BYTEA NOT NULL,
        peer_id BYTEA NOT NULL,
        uploaded BIGINT NOT NULL,
        downloaded BIGINT NOT NULL,
        last_announce BIGINT NOT NULL,
        seeding BOOLEAN NOT NULL,
        PRIMARY KEY (passkey, info_hash, peer_id)
    );
    CREATE TABLE shoal_batches (
        id TEXT PRIMARY KEY,
        committed_at BIGINT NOT NULL,
        credits BIGINT NOT NULL
    );
    CREATE INDEX shoal_batches_committed_at ON shoal_batches (committed_at);"#,
)];

/// Adds a chunk of credits, one array per column. `bigint + bigint` raises an error on
/// overflow, and an error here would fail the batch for ever: each sum is capped at
/// `i64::MAX` by a comparison made before it (the added values are never negative, so
/// `i64::MAX - added` cannot overflow, nor can `old + added` when it is not capped). This
/// spares the conversions to `numeric` and back, and is the SQLite backend's rule.
const UPSERT_CREDITS: &str = "
    INSERT INTO shoal_user_torrents AS t (passkey, info_hash, uploaded, downloaded,
        seed_seconds, leech_seconds, completed_at, first_announce, last_announce,
        flagged_announces)
    SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[],
        $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])
    ON CONFLICT (passkey, info_hash) DO UPDATE SET
        uploaded = CASE WHEN t.uploaded > 9223372036854775807 - EXCLUDED.uploaded
            THEN 9223372036854775807 ELSE t.uploaded + EXCLUDED.uploaded END,
        downloaded = CASE WHEN t.downloaded > 9223372036854775807 - EXCLUDED.downloaded
            THEN 9223372036854775807 ELSE t.downloaded + EXCLUDED.downloaded END,
        seed_seconds = CASE WHEN t.seed_seconds > 9223372036854775807 - EXCLUDED.seed_seconds
            THEN 9223372036854775807 ELSE t.seed_seconds + EXCLUDED.seed_seconds END,
        leech_seconds = CASE WHEN t.leech_seconds > 9223372036854775807 - EXCLUDED.leech_seconds
            THEN 9223372036854775807 ELSE t.leech_seconds + EXCLUDED.leech_seconds END,
        completed_at = COALESCE(t.completed_at, EXCLUDED.completed_at),
        first_announce = LEAST(t.first_announce, EXCLUDED.first_announce),
        last_announce = GREATEST(t.last_announce, EXCLUDED.last_announce),
        flagged_announces = CASE WHEN t.flagged_announces > 9223372036854775807 - EXCLUDED.flagged_announces
            THEN 9223372036854775807 ELSE t.flagged_announces + EXCLUDED.flagged_announces END";

/// Replaces a chunk of baselines, one array per column.
const UPSERT_BASELINES: &str = "
    INSERT INTO shoal_peers (passkey, info_hash, peer_id, uploaded, downloaded,
        last_announce, seeding)
    SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::int8[], $5::int8[],
        $6::int8[], $7::bool[])
    ON CONFLICT (passkey, info_hash, peer_id) DO UPDATE SET
        uploaded = EXCLUDED.uploaded,
        downloaded = EXCLUDED.downloaded,
        last_announce = EXCLUDED.last_announce,
        seeding = EXCLUDED.seeding";

/// Rows sent in one statement: large enough that the round trips do not matter, small
/// enough that one statement stays well inside the statement timeout.
const CHUNK_ROWS: usize = 10_000;

/// Any number that the migration transactions' advisory lock is known by, so that two
/// trackers starting at once against a new database do not both apply a migration.
const MIGRATION_LOCK: i64 = 0x73686f616c; // "shoal"

/// The accounting database on a PostgreSQL server, through one connection without TLS
/// (run it on the host, a private network or through a tunnel).
///
/// # Outages
/// Any error drops the connection; the next call connects again. A batch whose commit
/// failed is retried by the caller with the same id, and `shoal_batches` tells whether
/// the earlier attempt was applied. Nothing here blocks for ever on a server that went
/// away: connecting gives up after [`Self::CONNECT_TIMEOUT`], TCP keepalives find a
/// dead host or network within about a minute, `tcp_user_timeout` bounds data the server
/// does not acknowledge, and the session's `statement_timeout`, `lock_timeout` and
/// `idle_in_transaction_session_timeout` bound what a live server may take. Left
/// unbounded: a server process that is alive to TCP but stopped (a debugger, SIGSTOP).
/// Values set in the URL (`connect_timeout`, `keepalives_idle`, `options=-c ...`) win
/// over these.
///
/// # Tables
/// Created by migration 1 (see [`super`] for what each holds; passkeys are
/// `TEXT COLLATE "C"`):
/// - `shoal_schema_migrations(version INTEGER PRIMARY KEY, applied_at BIGINT)`;
/// - `shoal_passkeys(passkey TEXT PRIMARY KEY, enabled BOOLEAN NOT NULL DEFAULT TRUE)`;
/// - `shoal_user_torrents(passkey TEXT, info_hash BYTEA (20 bytes), uploaded, downloaded,
///   seed_seconds, leech_seconds BIGINT DEFAULT 0, completed_at BIGINT NULL,
///   first_announce, last_announce BIGINT, flagged_announces BIGINT DEFAULT 0,
///   PRIMARY KEY (passkey, info_hash))`;
/// - `shoal_peers(passkey TEXT, info_hash BYTEA, peer_id BYTEA, uploaded, downloaded,
///   last_announce BIGINT, seeding BOOLEAN, PRIMARY KEY (passkey, info_hash, peer_id))`,
///   not indexed on `last_announce`: every upsert would pay for that index, while only
///   the hourly deletion of expired baselines reads it (a scan);
/// - `shoal_batches(id TEXT PRIMARY KEY, committed_at BIGINT, credits BIGINT)`, indexed
///   on `committed_at`.
///
/// Times are Unix seconds. A batch's rows are upserted in the order the batch holds them
/// (primary key order, see [`Batch`]) from arrays (`UNNEST`), in chunks of 10,000 rows,
/// so that a batch costs a few round trips, not one a row. A batch must therefore hold at most one credit per (passkey, info hash)
/// and one baseline per (passkey, info hash, peer id), as [`Batch`] says, or PostgreSQL
/// refuses it (one statement may not update a row twice).
pub struct PostgresStore {
    config: Config,
    /// `None` after an error, until the next call connects again.
    client: Option<Client>,
}

impl PostgresStore {
    /// How long connecting may take, unless the URL says otherwise.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// The session settings put before the URL's own `options`: a statement, a lock wait
    /// and an idle transaction are each bounded, so a stuck server fails a call rather
    /// than holding it.
    const SESSION_OPTIONS: &str = "-c statement_timeout=60s -c lock_timeout=30s \
                                   -c idle_in_transaction_session_timeout=120s";

    /// Connects to the server that `url` names (a libpq URL, `postgresql://user:password@host:port/dbname`),
    /// and applies the migrations the database lacks.
    ///
    /// # Errors
    /// The URL is malformed, or the server cannot be reached or the schema migrated.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        // The URL may hold a password: errors name the host instead.
        let mut config = Config::from_str(url).context("parse the postgresql:// URL")?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Self::CONNECT_TIMEOUT);
        }
        // libpq's default idle time before keepalives (two hours) would leave a dead
        // connection unnoticed for that long.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(Duration::from_secs(30));
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(10));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(60));
        }
        let options = match config.get_options() {
            Some(own) => format!("{} {own}", Self::SESSION_OPTIONS),
            None => Self::SESSION_OPTIONS.to_string(),
        };
        config.options(&options);
        config.application_name("shoal");
        let mut store = Self {
            config,
            client: None,
        };
        store.migrate().with_context(|| {
            format!(
                "set up postgresql database {:?} on {}",
                store.config.get_dbname().unwrap_or_default(),
                store.server()
            )
        })?;
        Ok(store)
    }

    /// The hosts and ports of the URL, for messages (never the password).
    fn server(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                ::postgres::config::Host::Tcp(name) => name.clone(),
                ::postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
        format!("{} port {}", hosts.join(","), ports.join(","))
    }

    /// Runs `call` on the connection, connecting first if there is none; any error drops
    /// the connection, so that the next call starts on a new one.
    fn with_client<T>(
        &mut self,
        what: &str,
        call: impl FnOnce(&mut Client) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => self
                .config
                .connect(NoTls)
                .with_context(|| format!("connect to postgresql on {}", self.server()))?,
        };
        let result = call(self.client.insert(client)).with_context(|| what.to_string());
        if result.is_err() {
            self.client = None;
        }
        result
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        self.with_client("migrate", |client| {
            client.batch_execute(
                "CREATE TABLE IF NOT EXISTS shoal_schema_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_at BIGINT
                )",
            )?;
            for &(version, sql) in MIGRATIONS {
                let mut tx = client.transaction()?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
                let applied = tx
                    .query_opt(
                        "SELECT 1 FROM shoal_schema_migrations WHERE version = $1::int8",
                        &[&version],
                    )?
                    .is_some();
                if !applied {
                    tx.batch_execute(sql)
                        .with_context(|| format!("apply migration {version}"))?;
                    tx.execute(
                        "INSERT INTO shoal_schema_migrations (version, applied_at)
                         VALUES ($1::int8, $2)",
                        &[&version, &unix_now()],
                    )?;
                    log::info!("accounting database: applied migration {version}");
                }
                tx.commit()?;
            }
            Ok(())
        })
    }
}

fn baseline(row: &Row) -> Option<PeerBaseline> {
    RawBaseline {
        passkey: row.try_get::<_, &str>(0).ok()?.as_bytes(),
        info_hash: row.try_get(1).ok()?,
        peer_id: row.try_get(2).ok()?,
        uploaded: row.try_get(3).ok()?,
        downloaded: row.try_get(4).ok()?,
        last_announce: row.try_get(5).ok()?,
        seeding: row.try_get(6).ok()?,
    }
    .check()
}

fn upsert_credits(tx: &mut Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    let statement = tx.prepare(UPSERT_CREDITS)?;
    for chunk in batch.credits.chunks(CHUNK_ROWS) {
        let passkeys: Vec<&str> = chunk.iter().map(|c| c.passkey.as_str()).collect();
        let info_hashes: Vec<&[u8]> = chunk.iter().map(|c| &c.info_hash.0[..]).collect();
        let column = |f: fn(&super::UserTorrentCredit) -> u64| -> Vec<i64> {
            chunk.iter().map(|c| to_column(f(c))).collect()
        };
        let completed_at: Vec<Option<i64>> = chunk
            .iter()
            .map(|c| c.completed_at.map(to_column))
            .collect();
        tx.execute(
            &statement,
            &[
                &passkeys,
                &info_hashes,
                &column(|c| c.uploaded),
                &column(|c| c.downloaded),
                &column(|c| c.seed_seconds),
                &column(|c| c.leech_seconds),
                &completed_at,
                &column(|c| c.first_announce),
                &column(|c| c.last_announce),
                &column(|c| c.flagged_announces),
            ],
        )
        .context("upsert into shoal_user_torrents")?;
    }
    Ok(())
}

fn upsert_baselines(tx: &mut Transaction<'_>, batch: &Batch) -> anyhow::Result<()> {
    let statement = tx.prepare(UPSERT_BASELINES)?;
    for chunk in batch.baselines.chunks(CHUNK_ROWS) {
        let passkeys: Vec<&str> = chunk.iter().map(|b| b.passkey.as_str()).collect();
        let info_hashes: Vec<&[u8]> = chunk.iter().map(|b| &b.info_hash.0[..]).collect();
        let peer_ids: Vec<&[u8]> = chunk.iter().map(|b| &b.peer_id.0[..]).collect();
        let column = |f: fn(&PeerBaseline) -> u64| -> Vec<i64> {
            chunk.iter().map(|b| to_column(f(b))).collect()
        };
        let seeding: Vec<bool> = chunk.iter().map(|b| b.seeding).collect();
        tx.execute(
            &statement,
            &[
                &passkeys,
                &info_hashes,
                &peer_ids,
                &column(|b| b.uploaded),
                &column(|b| b.downloaded),
                &column(|b| b.last_announce),
                &seeding,
            ],
        )
        .context("upsert into shoal_peers")?;
    }
    Ok(())
}

impl AccountingStore for PostgresStore {
    fn load_baselines(
        &mut self,
        since: u64,
        sink: &mut dyn FnMut(PeerBaseline),
    ) -> anyhow::Result<()> {
        self.with_client("load shoal_peers", |client| {
            let since = to_column(since);
            // Rows are streamed, not collected: there may be millions.
            let mut rows = client.query_raw(
                "SELECT passkey, info_hash, peer_id, uploaded, downloaded, last_announce,
                        seeding
                 FROM shoal_peers WHERE last_announce >= $1",
                [&since],
            )?;
            let mut skipped = 0;
            while let Some(row) = rows.next()? {
                match baseline(&row) {
                    Some(baseline) => sink(baseline),
                    None => skipped += 1,
                }
            }
            warn_skipped("shoal_peers", skipped);
            Ok(())
        })
    }

    fn load_passkeys(&mut self) -> anyhow::Result<Vec<Passkey>> {
        self.with_client("load shoal_passkeys", |client| {
            let rows = client.query("SELECT passkey FROM shoal_passkeys WHERE enabled", &[])?;
            let mut skipped = 0;
            let mut passkeys = Vec::with_capacity(rows.len());
            for row in &rows {
                match row
                    .try_get::<_, &str>(0)
                    .ok()
                    .and_then(|key| Passkey::parse(key.as_bytes()))
                {
                    Some(passkey) => passkeys.push(passkey),
                    None => skipped += 1,
                }
            }
            warn_skipped("shoal_passkeys", skipped);
            Ok(passkeys)
        })
    }

    fn commit(&mut self, batch: &Batch) -> anyhow::Result<CommitOutcome> {
        self.with_client("commit a batch", |client| {
            let mut tx = client.transaction()?;
            let inserted = tx
                .execute(
                    "INSERT INTO shoal_batches (id, committed_at, credits) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                    &[
                        &batch.id.to_hex(),
                        &to_column(batch.created_at),
                        &to_column(batch.credits.len() as u64),
                    ],
                )
                .context("insert into shoal_batches")?;
            if inserted == 0 {
                tx.rollback()?;
                return Ok(CommitOutcome::AlreadyApplied);
            }
            upsert_credits(&mut tx, batch)?;
            upsert_baselines(&mut tx, batch)?;
            tx.commit().context("commit")?;
            Ok(CommitOutcome::Applied)
        })
    }

    fn forget_before(&mut self, before: u64) -> anyhow::Result<u64> {
        self.with_client("forget old baselines and batches", |client| {
            let before = to_column(before);
            let mut tx = client.transaction()?;
            let deleted = tx.execute(
                "DELETE FROM shoal_peers WHERE last_announce < $1",
                &[&before],
            )?;
            tx.execute(
                "DELETE FROM shoal_batches WHERE committed_at < $1",
                &[&before],
            )?;
            tx.commit()?;
            Ok(deleted)
        })
    }
}
