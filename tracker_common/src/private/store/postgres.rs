//! The PostgreSQL backend: a server shared with the site, reached over TCP, that may go
//! away and come back.

use std::str::FromStr;
use std::time::Duration;

use ::postgres::types::ToSql;
use ::postgres::{Client, Config, NoTls, Row, Transaction};
use anyhow::Context;

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
/// Passkeys are ASCII identifiers, compared byte by byte (`COLLATE "C"`) rather than by
/// the database's locale: cheaper, and the order a [`Batch`]'s rows come in.
const MIGRATIONS: &[(i64, &str)] = &[
    (
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
    ),
    (
        2,
        r#"ALTER TABLE shoal_passkeys ADD COLUMN user_id BIGINT NULL;
        CREATE TABLE shoal_users (
            user_id BIGINT PRIMARY KEY,
            can_leech BOOLEAN NOT NULL DEFAULT TRUE
        );
        CREATE TABLE shoal_torrents (
            info_hash BYTEA PRIMARY KEY CHECK (octet_length(info_hash) = 20),
            upload_percent INTEGER NOT NULL DEFAULT 100,
            download_percent INTEGER NOT NULL DEFAULT 100
        );
        CREATE TABLE shoal_settings (
            name TEXT PRIMARY KEY,
            value BIGINT NOT NULL
        );
        CREATE TABLE shoal_credits (
            user_id BIGINT NOT NULL,
            info_hash BYTEA NOT NULL CHECK (octet_length(info_hash) = 20),
            uploaded BIGINT NOT NULL DEFAULT 0,
            downloaded BIGINT NOT NULL DEFAULT 0,
            uploaded_raw BIGINT NOT NULL DEFAULT 0,
            downloaded_raw BIGINT NOT NULL DEFAULT 0,
            seed_seconds BIGINT NOT NULL DEFAULT 0,
            leech_seconds BIGINT NOT NULL DEFAULT 0,
            completed_at BIGINT NULL,
            first_announce BIGINT NOT NULL,
            last_announce BIGINT NOT NULL,
            flagged_announces BIGINT NOT NULL DEFAULT 0,
            seed_until BIGINT NOT NULL DEFAULT 0,
            leech_until BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, info_hash)
        );
        CREATE TABLE shoal_peer_marks (
            user_id BIGINT NOT NULL,
            info_hash BYTEA NOT NULL,
            peer_id BYTEA NOT NULL,
            uploaded BIGINT NOT NULL,
            downloaded BIGINT NOT NULL,
            last_announce BIGINT NOT NULL,
            state SMALLINT NOT NULL,
            noted_uploaded BIGINT NULL,
            noted_downloaded BIGINT NULL,
            PRIMARY KEY (user_id, info_hash, peer_id)
        );"#,
    ),
];

/// Adds a chunk of credits, one array per column (see [`super::CreditRow`]).
/// `bigint + bigint` raises an error on overflow, and an error here would fail the batch
/// for ever: each sum is capped at `i64::MAX` by a comparison made before it (the added
/// values are never negative, so `i64::MAX - added` cannot overflow, nor can
/// `old + added` when it is not capped). This is the SQLite backend's rule.
const UPSERT_CREDITS: &str = "
    INSERT INTO shoal_credits AS t (user_id, info_hash, uploaded, downloaded, uploaded_raw,
        downloaded_raw, seed_seconds, leech_seconds, completed_at, first_announce,
        last_announce, flagged_announces, seed_until, leech_until)
    SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[],
        $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[],
        $12::int8[], $13::int8[], $14::int8[])
    ON CONFLICT (user_id, info_hash) DO UPDATE SET
        uploaded = CASE WHEN t.uploaded > 9223372036854775807 - EXCLUDED.uploaded
            THEN 9223372036854775807 ELSE t.uploaded + EXCLUDED.uploaded END,
        downloaded = CASE WHEN t.downloaded > 9223372036854775807 - EXCLUDED.downloaded
            THEN 9223372036854775807 ELSE t.downloaded + EXCLUDED.downloaded END,
        uploaded_raw = CASE WHEN t.uploaded_raw > 9223372036854775807 - EXCLUDED.uploaded_raw
            THEN 9223372036854775807 ELSE t.uploaded_raw + EXCLUDED.uploaded_raw END,
        downloaded_raw = CASE
            WHEN t.downloaded_raw > 9223372036854775807 - EXCLUDED.downloaded_raw
            THEN 9223372036854775807 ELSE t.downloaded_raw + EXCLUDED.downloaded_raw END,
        seed_seconds = CASE WHEN t.seed_seconds > 9223372036854775807 - EXCLUDED.seed_seconds
            THEN 9223372036854775807 ELSE t.seed_seconds + EXCLUDED.seed_seconds END,
        leech_seconds = CASE WHEN t.leech_seconds > 9223372036854775807 - EXCLUDED.leech_seconds
            THEN 9223372036854775807 ELSE t.leech_seconds + EXCLUDED.leech_seconds END,
        completed_at = COALESCE(t.completed_at, EXCLUDED.completed_at),
        first_announce = LEAST(t.first_announce, EXCLUDED.first_announce),
        last_announce = GREATEST(t.last_announce, EXCLUDED.last_announce),
        flagged_announces = CASE
            WHEN t.flagged_announces > 9223372036854775807 - EXCLUDED.flagged_announces
            THEN 9223372036854775807 ELSE t.flagged_announces + EXCLUDED.flagged_announces END,
        seed_until = GREATEST(t.seed_until, EXCLUDED.seed_until),
        leech_until = GREATEST(t.leech_until, EXCLUDED.leech_until)";

/// Replaces a chunk of peer marks, one array per column.
const UPSERT_MARKS: &str = "
    INSERT INTO shoal_peer_marks (user_id, info_hash, peer_id, uploaded, downloaded,
        last_announce, state, noted_uploaded, noted_downloaded)
    SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[], $4::int8[], $5::int8[],
        $6::int8[], $7::int2[], $8::int8[], $9::int8[])
    ON CONFLICT (user_id, info_hash, peer_id) DO UPDATE SET
        uploaded = EXCLUDED.uploaded,
        downloaded = EXCLUDED.downloaded,
        last_announce = EXCLUDED.last_announce,
        state = EXCLUDED.state,
        noted_uploaded = EXCLUDED.noted_uploaded,
        noted_downloaded = EXCLUDED.noted_downloaded";

/// Reads the marks of a chunk of peers, with each key's 1-based position.
const SELECT_MARKS: &str = "
    SELECT k.i, m.uploaded, m.downloaded, m.last_announce, m.state, m.noted_uploaded,
        m.noted_downloaded
    FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[]) WITH ORDINALITY
        AS k(user_id, info_hash, peer_id, i)
    JOIN shoal_peer_marks m ON m.user_id = k.user_id AND m.info_hash = k.info_hash
        AND m.peer_id = k.peer_id";

/// Reads the time marks of a chunk of (user, torrent)s, with each key's position.
const SELECT_TIME_MARKS: &str = "
    SELECT k.i, c.seed_until, c.leech_until
    FROM UNNEST($1::int8[], $2::bytea[]) WITH ORDINALITY AS k(user_id, info_hash, i)
    JOIN shoal_credits c ON c.user_id = k.user_id AND c.info_hash = k.info_hash";

/// Reads the factors of a chunk of torrents, with each key's position.
const SELECT_FACTORS: &str = "
    SELECT k.i, t.upload_percent, t.download_percent
    FROM UNNEST($1::bytea[]) WITH ORDINALITY AS k(info_hash, i)
    JOIN shoal_torrents t ON t.info_hash = k.info_hash";

/// Rows sent in one statement: large enough that the round trips do not matter, small
/// enough that one statement stays well inside the statement timeout.
const CHUNK_ROWS: usize = 10_000;

/// Any number that the migration transactions' advisory lock is known by, so that two
/// trackers starting at once against a new database do not both apply a migration.
const MIGRATION_LOCK: i64 = 0x73686f616c; // "shoal"

/// The advisory lock every batch's transaction takes first: writers apply their batches
/// one at a time, each against the marks the others committed.
const ACCOUNTING_LOCK: i64 = 0x0073_686f_616c_0001;

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
/// Those of [`super`], created by migrations 1 and 2; passkeys are `TEXT COLLATE "C"`,
/// ids and hashes `BYTEA`, counters and times `BIGINT`, states `SMALLINT`.
/// `shoal_peer_marks` is not indexed on `last_announce`: every upsert would pay for that
/// index, while only the hourly deletion of expired marks reads it (a scan).
///
/// # Writers
/// Every batch's transaction takes one advisory lock first (`pg_advisory_xact_lock`),
/// so that several trackers on one database apply their batches one at a time, each
/// against the marks the others committed. A batch reads the marks and writes its rows
/// from arrays (`UNNEST`), in chunks of 10,000 rows: a few round trips, not one a row.
/// The ledger hands each write at most one row per key, as PostgreSQL requires of one
/// statement.
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
            for &(version, sql) in MIGRATIONS {
                let mut tx = client.transaction()?;
                // The lock comes first: two trackers starting at once against a new
                // database would otherwise race to create the migrations table.
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
                tx.batch_execute(
                    "CREATE TABLE IF NOT EXISTS shoal_schema_migrations (
                        version INTEGER PRIMARY KEY,
                        applied_at BIGINT
                    )",
                )?;
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

impl PostgresStore {
    /// Looks a row of `table` up by its key (`exists`, whose one parameter is `key`; it
    /// locks the row it finds) and writes it (`upsert`, with `values`), in one
    /// transaction.
    fn upsert(
        &mut self,
        table: &str,
        exists: &str,
        key: &(dyn ToSql + Sync),
        upsert: &str,
        values: &[&(dyn ToSql + Sync)],
    ) -> anyhow::Result<Written> {
        self.with_client(&format!("write {table}"), |client| {
            let mut tx = client.transaction()?;
            let existed = tx.query_opt(exists, &[key])?.is_some();
            tx.execute(upsert, values)?;
            tx.commit()?;
            Ok(Written::existed(existed))
        })
    }

    /// Runs `delete` (one statement, whose one parameter is `key`) on `table`; whether
    /// it deleted a row.
    fn delete(
        &mut self,
        table: &str,
        delete: &str,
        key: &(dyn ToSql + Sync),
    ) -> anyhow::Result<bool> {
        self.with_client(&format!("delete from {table}"), |client| {
            Ok(client.execute(delete, &[key])? > 0)
        })
    }
}

/// Puts the value of each row at its key's 1-based position (column 0) in `out`, which
/// holds `len` slots after `base`.
fn place<T>(
    rows: &[Row],
    out: &mut [Option<T>],
    read: impl Fn(&Row) -> Option<T>,
) -> anyhow::Result<()> {
    for row in rows {
        let position: i64 = row.try_get(0)?;
        let slot = usize::try_from(position - 1)
            .ok()
            .and_then(|index| out.get_mut(index));
        if let Some(slot) = slot {
            *slot = read(row);
        }
    }
    Ok(())
}

/// A batch's transaction, as the ledger sees it.
struct PostgresLedger<'a, 'b> {
    tx: &'a mut Transaction<'b>,
}

impl Ledger for PostgresLedger<'_, '_> {
    fn peer_marks(&mut self, keys: &[PeerKey]) -> anyhow::Result<Vec<Option<PeerMark>>> {
        let statement = self.tx.prepare(SELECT_MARKS)?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK_ROWS) {
            let users: Vec<i64> = chunk.iter().map(|k| k.user).collect();
            let hashes: Vec<&[u8]> = chunk.iter().map(|k| &k.info_hash.0[..]).collect();
            let peers: Vec<&[u8]> = chunk.iter().map(|k| &k.peer_id.0[..]).collect();
            let rows = self
                .tx
                .query(&statement, &[&users, &hashes, &peers])
                .context("read shoal_peer_marks")?;
            let mut marks = vec![None; chunk.len()];
            place(&rows, &mut marks, |row| {
                checked_mark(
                    row.try_get(1).ok()?,
                    row.try_get(2).ok()?,
                    row.try_get(3).ok()?,
                    i64::from(row.try_get::<_, i16>(4).ok()?),
                    (row.try_get(5).ok()?, row.try_get(6).ok()?),
                )
            })?;
            out.extend(marks);
        }
        Ok(out)
    }

    fn time_marks(&mut self, keys: &[UserTorrentKey]) -> anyhow::Result<Vec<Option<TimeMarks>>> {
        let statement = self.tx.prepare(SELECT_TIME_MARKS)?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK_ROWS) {
            let users: Vec<i64> = chunk.iter().map(|k| k.user).collect();
            let hashes: Vec<&[u8]> = chunk.iter().map(|k| &k.info_hash.0[..]).collect();
            let rows = self
                .tx
                .query(&statement, &[&users, &hashes])
                .context("read shoal_credits")?;
            let mut marks = vec![None; chunk.len()];
            place(&rows, &mut marks, |row| {
                Some(TimeMarks {
                    seed_until: u64::try_from(row.try_get::<_, i64>(1).ok()?).ok()?,
                    leech_until: u64::try_from(row.try_get::<_, i64>(2).ok()?).ok()?,
                })
            })?;
            out.extend(marks);
        }
        Ok(out)
    }

    fn factors(&mut self, hashes: &[InfoHash]) -> anyhow::Result<(Factors, Vec<Option<Factors>>)> {
        let mut global = Factors::NEUTRAL;
        for row in self
            .tx
            .query(
                "SELECT name, value FROM shoal_settings
                 WHERE name IN ('upload_percent', 'download_percent')",
                &[],
            )
            .context("read shoal_settings")?
        {
            let value = checked_percent(row.try_get(1).ok());
            match row.try_get::<_, &str>(0).ok() {
                Some("upload_percent") => global.upload_percent = value,
                Some("download_percent") => global.download_percent = value,
                _ => {}
            }
        }
        let statement = self.tx.prepare(SELECT_FACTORS)?;
        let mut out = Vec::with_capacity(hashes.len());
        for chunk in hashes.chunks(CHUNK_ROWS) {
            let keys: Vec<&[u8]> = chunk.iter().map(|h| &h.0[..]).collect();
            let rows = self
                .tx
                .query(&statement, &[&keys])
                .context("read shoal_torrents")?;
            let mut factors = vec![None; chunk.len()];
            place(&rows, &mut factors, |row| {
                let percent = |index: usize| {
                    checked_percent(row.try_get::<_, i32>(index).ok().map(i64::from))
                };
                Some(Factors {
                    upload_percent: percent(1),
                    download_percent: percent(2),
                })
            })?;
            out.extend(factors);
        }
        Ok((global, out))
    }

    fn put_peer_marks(&mut self, rows: &[(PeerKey, PeerMark)]) -> anyhow::Result<()> {
        let statement = self.tx.prepare(UPSERT_MARKS)?;
        for chunk in rows.chunks(CHUNK_ROWS) {
            let users: Vec<i64> = chunk.iter().map(|(k, _)| k.user).collect();
            let hashes: Vec<&[u8]> = chunk.iter().map(|(k, _)| &k.info_hash.0[..]).collect();
            let peers: Vec<&[u8]> = chunk.iter().map(|(k, _)| &k.peer_id.0[..]).collect();
            let column = |f: fn(&PeerMark) -> u64| -> Vec<i64> {
                chunk.iter().map(|(_, m)| to_column(f(m))).collect()
            };
            let noted: Vec<(Option<i64>, Option<i64>)> =
                chunk.iter().map(|(_, m)| m.noted_columns()).collect();
            let noted_up: Vec<Option<i64>> = noted.iter().map(|n| n.0).collect();
            let noted_down: Vec<Option<i64>> = noted.iter().map(|n| n.1).collect();
            let states: Vec<i16> = chunk
                .iter()
                .map(|(_, m)| i16::try_from(m.state.to_column()).unwrap_or(0))
                .collect();
            self.tx
                .execute(
                    &statement,
                    &[
                        &users,
                        &hashes,
                        &peers,
                        &column(|m| m.uploaded),
                        &column(|m| m.downloaded),
                        &column(|m| m.last_announce),
                        &states,
                        &noted_up,
                        &noted_down,
                    ],
                )
                .context("upsert into shoal_peer_marks")?;
        }
        Ok(())
    }

    fn add_credits(&mut self, rows: &[CreditRow]) -> anyhow::Result<()> {
        let statement = self.tx.prepare(UPSERT_CREDITS)?;
        for chunk in rows.chunks(CHUNK_ROWS) {
            let users: Vec<i64> = chunk.iter().map(|r| r.key.user).collect();
            let hashes: Vec<&[u8]> = chunk.iter().map(|r| &r.key.info_hash.0[..]).collect();
            let column = |f: fn(&CreditRow) -> u64| -> Vec<i64> {
                chunk.iter().map(|r| to_column(f(r))).collect()
            };
            let completed_at: Vec<Option<i64>> = chunk
                .iter()
                .map(|r| r.completed_at.map(to_column))
                .collect();
            self.tx
                .execute(
                    &statement,
                    &[
                        &users,
                        &hashes,
                        &column(|r| r.uploaded),
                        &column(|r| r.downloaded),
                        &column(|r| r.uploaded_raw),
                        &column(|r| r.downloaded_raw),
                        &column(|r| r.seed_seconds),
                        &column(|r| r.leech_seconds),
                        &completed_at,
                        &column(|r| r.first_announce),
                        &column(|r| r.last_announce),
                        &column(|r| r.flagged_announces),
                        &column(|r| r.seed_until),
                        &column(|r| r.leech_until),
                    ],
                )
                .context("upsert into shoal_credits")?;
        }
        Ok(())
    }
}

impl AccountingStore for PostgresStore {
    fn load_site(&mut self) -> anyhow::Result<SiteTables> {
        self.with_client("load the site's tables", |client| {
            let mut site = SiteTables::default();
            let mut skipped = 0;
            for row in client.query(
                "SELECT passkey, user_id FROM shoal_passkeys WHERE enabled",
                &[],
            )? {
                let passkey = row
                    .try_get::<_, &str>(0)
                    .ok()
                    .and_then(|key| Passkey::parse(key.as_bytes()));
                match passkey {
                    Some(passkey) => site.passkeys.push(PasskeyUser {
                        passkey,
                        user: user_of(&passkey, row.try_get(1).ok().flatten()),
                    }),
                    None => skipped += 1,
                }
            }
            warn_skipped("shoal_passkeys", skipped);
            for row in client.query("SELECT user_id FROM shoal_users WHERE NOT can_leech", &[])? {
                if let Ok(user) = row.try_get(0) {
                    site.no_leech.push(user);
                }
            }
            let mut skipped = 0;
            for row in client.query("SELECT info_hash FROM shoal_torrents", &[])? {
                match row
                    .try_get::<_, &[u8]>(0)
                    .ok()
                    .and_then(|b| <[u8; 20]>::try_from(b).ok())
                {
                    Some(hash) => site.torrents.push(InfoHash(hash)),
                    None => skipped += 1,
                }
            }
            warn_skipped("shoal_torrents", skipped);
            Ok(site)
        })
    }

    fn commit_counted(&mut self, batch: &Batch) -> anyhow::Result<(CommitOutcome, Applied)> {
        self.with_client("commit a batch", |client| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ACCOUNTING_LOCK])
                .context("take the accounting lock")?;
            let inserted = tx
                .execute(
                    "INSERT INTO shoal_batches (id, committed_at, credits) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                    &[
                        &batch.id.to_hex(),
                        &to_column(batch.created_at),
                        &to_column(batch.reports.len() as u64),
                    ],
                )
                .context("insert into shoal_batches")?;
            if inserted == 0 {
                tx.rollback()?;
                return Ok((CommitOutcome::AlreadyApplied, Applied::default()));
            }
            let applied = ledger::apply(&mut PostgresLedger { tx: &mut tx }, batch)?;
            tx.commit().context("commit")?;
            Ok((CommitOutcome::Applied, applied))
        })
    }

    fn forget_before(&mut self, before: u64) -> anyhow::Result<u64> {
        self.with_client("forget old marks and batches", |client| {
            let before = to_column(before);
            let mut tx = client.transaction()?;
            let deleted = tx.execute(
                "DELETE FROM shoal_peer_marks WHERE last_announce < $1",
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

    fn put_passkey(&mut self, passkey: &Passkey, user: Option<UserId>) -> anyhow::Result<Written> {
        self.upsert(
            "shoal_passkeys",
            "SELECT 1 FROM shoal_passkeys WHERE passkey = $1 FOR UPDATE",
            &passkey.as_str(),
            "INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES ($1, TRUE, $2)
             ON CONFLICT (passkey) DO UPDATE SET enabled = TRUE, user_id = EXCLUDED.user_id",
            &[&passkey.as_str(), &user],
        )
    }

    fn delete_passkey(&mut self, passkey: &Passkey) -> anyhow::Result<bool> {
        self.delete(
            "shoal_passkeys",
            "DELETE FROM shoal_passkeys WHERE passkey = $1",
            &passkey.as_str(),
        )
    }

    fn put_user(&mut self, user: UserId, can_leech: bool) -> anyhow::Result<Written> {
        self.upsert(
            "shoal_users",
            "SELECT 1 FROM shoal_users WHERE user_id = $1 FOR UPDATE",
            &user,
            "INSERT INTO shoal_users (user_id, can_leech) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET can_leech = EXCLUDED.can_leech",
            &[&user, &can_leech],
        )
    }

    fn delete_user(&mut self, user: UserId) -> anyhow::Result<bool> {
        self.delete(
            "shoal_users",
            "DELETE FROM shoal_users WHERE user_id = $1",
            &user,
        )
    }

    fn put_torrent(&mut self, info_hash: &InfoHash, factors: Factors) -> anyhow::Result<Written> {
        let (upload, download) = percent_columns(factors)?;
        let hash = &info_hash.0[..];
        self.upsert(
            "shoal_torrents",
            "SELECT 1 FROM shoal_torrents WHERE info_hash = $1 FOR UPDATE",
            &hash,
            "INSERT INTO shoal_torrents (info_hash, upload_percent, download_percent)
             VALUES ($1, $2, $3)
             ON CONFLICT (info_hash) DO UPDATE SET upload_percent = EXCLUDED.upload_percent,
                 download_percent = EXCLUDED.download_percent",
            &[&hash, &upload, &download],
        )
    }

    fn delete_torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool> {
        self.delete(
            "shoal_torrents",
            "DELETE FROM shoal_torrents WHERE info_hash = $1",
            &&info_hash.0[..],
        )
    }
}
