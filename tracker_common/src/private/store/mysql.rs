//! The MySQL and MariaDB backend: a server shared with the site, reached over TCP, that
//! may go away and come back. MySQL 8 and MariaDB 10.6 or later.
//!
//! # Durability
//! A batch is one InnoDB transaction: acknowledged by `COMMIT`, it is as durable as the
//! server makes commits. `innodb_flush_log_at_trx_commit=1`, the default, flushes the
//! redo log at each commit; with 0 or 2, a crash of the server's host may undo the last
//! second of commits it acknowledged, which the trackers do not send again. Tables are
//! created `ENGINE=InnoDB`, and the session refuses a silent change of engine
//! (`NO_ENGINE_SUBSTITUTION`): a table without transactions would break "exactly once".
//!
//! # Writers
//! Each batch's transaction first locks the one row of `shoal_lock` (`SELECT ... FOR
//! UPDATE`), so that every writer of the database (UDP and HTTP trackers, several nodes)
//! applies one batch at a time. Sessions read at `READ COMMITTED`, as PostgreSQL does:
//! once the lock is held, every statement sees what the writers before committed. (A
//! server that logs statements, `binlog_format=STATEMENT`, refuses writes at that level;
//! `ROW` or `MIXED`, the defaults of MySQL and MariaDB, are needed.)

use std::time::Duration;

use anyhow::Context;
use hashbrown::HashMap;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Row, UrlError, Value};

use super::{
    AccountingStore, Batch, CommitOutcome, CreditRow, Factors, Ledger, PasskeyUser, PeerKey,
    PeerMark, SiteTables, TimeMarks, UserId, UserTorrentKey, Written, checked_mark,
    checked_percent, percent_columns, to_column, unix_now, user_of, warn_skipped,
};
use crate::private::ledger::{self, Applied};
use crate::private::passkey::Passkey;
use crate::types::{InfoHash, PeerId};

/// The schema's migrations, applied in order and recorded in `shoal_schema_migrations`.
/// Never edit one that has shipped: add the next.
///
/// MySQL commits each `CREATE TABLE` on its own, so a migration cut short (the server
/// went away) is not rolled back: it is applied again from its start at the next open,
/// and each of its statements must therefore do nothing the second time.
///
/// Passkeys and batch ids are ASCII, compared byte by byte (`ascii_bin`), not by the
/// server's collation. `DEFAULT CHARSET` is given so that `shoal_settings.name` does not
/// depend on the server's default (latin1 on a MariaDB without Debian's configuration).
const MIGRATIONS: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE IF NOT EXISTS shoal_passkeys (
            passkey VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
            enabled BOOLEAN NOT NULL DEFAULT TRUE,
            user_id BIGINT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS shoal_users (
            user_id BIGINT PRIMARY KEY,
            can_leech BOOLEAN NOT NULL DEFAULT TRUE
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS shoal_torrents (
            info_hash BINARY(20) PRIMARY KEY,
            upload_percent INT NOT NULL DEFAULT 100,
            download_percent INT NOT NULL DEFAULT 100
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS shoal_settings (
            name VARCHAR(64) PRIMARY KEY,
            value BIGINT NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS shoal_credits (
            user_id BIGINT NOT NULL,
            info_hash BINARY(20) NOT NULL,
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
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS shoal_peer_marks (
            user_id BIGINT NOT NULL,
            info_hash BINARY(20) NOT NULL,
            peer_id BINARY(20) NOT NULL,
            uploaded BIGINT NOT NULL,
            downloaded BIGINT NOT NULL,
            last_announce BIGINT NOT NULL,
            state SMALLINT NOT NULL,
            noted_uploaded BIGINT NULL,
            noted_downloaded BIGINT NULL,
            PRIMARY KEY (user_id, info_hash, peer_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS shoal_batches (
            id CHAR(32) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
            committed_at BIGINT NOT NULL,
            credits BIGINT NOT NULL,
            INDEX shoal_batches_committed_at (committed_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS shoal_lock (
            id INT PRIMARY KEY
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "INSERT IGNORE INTO shoal_lock (id) VALUES (1)",
    ],
)];

/// Adds credits: the rows' placeholders follow, then [`UPDATE_CREDITS`].
const INSERT_CREDITS: &str = "INSERT INTO shoal_credits (user_id, info_hash, uploaded,
    downloaded, uploaded_raw, downloaded_raw, seed_seconds, leech_seconds, completed_at,
    first_announce, last_announce, flagged_announces, seed_until, leech_until) VALUES ";

/// [`INSERT_CREDITS`]'s columns.
const CREDIT_COLUMNS: usize = 14;

/// What a credit adds to a row that exists ([`CreditRow`]): sums added and capped, the
/// first completion kept, the earliest first announce, the latest last announce and time
/// marks.
///
/// `BIGINT + BIGINT` raises an error on overflow (in every SQL mode), and an error here
/// would fail the batch for ever: each sum is capped at `i64::MAX` by a comparison made
/// before it (the added values are never negative, so `i64::MAX - added` cannot
/// overflow, nor can `old + added` when it is not capped). This is the other backends'
/// rule.
///
/// `VALUES(column)` (the row that was to be inserted) works on MySQL 8 (which calls it
/// deprecated but keeps it) and MariaDB; MySQL's `AS new` row alias does not exist on
/// MariaDB. Each assignment reads only its own column, so their order does not matter
/// (MySQL applies them left to right, and a later one would see an earlier's result).
const UPDATE_CREDITS: &str = "
    ON DUPLICATE KEY UPDATE
        uploaded = CASE WHEN uploaded > 9223372036854775807 - VALUES(uploaded)
            THEN 9223372036854775807 ELSE uploaded + VALUES(uploaded) END,
        downloaded = CASE WHEN downloaded > 9223372036854775807 - VALUES(downloaded)
            THEN 9223372036854775807 ELSE downloaded + VALUES(downloaded) END,
        uploaded_raw = CASE WHEN uploaded_raw > 9223372036854775807 - VALUES(uploaded_raw)
            THEN 9223372036854775807 ELSE uploaded_raw + VALUES(uploaded_raw) END,
        downloaded_raw = CASE
            WHEN downloaded_raw > 9223372036854775807 - VALUES(downloaded_raw)
            THEN 9223372036854775807 ELSE downloaded_raw + VALUES(downloaded_raw) END,
        seed_seconds = CASE WHEN seed_seconds > 9223372036854775807 - VALUES(seed_seconds)
            THEN 9223372036854775807 ELSE seed_seconds + VALUES(seed_seconds) END,
        leech_seconds = CASE WHEN leech_seconds > 9223372036854775807 - VALUES(leech_seconds)
            THEN 9223372036854775807 ELSE leech_seconds + VALUES(leech_seconds) END,
        completed_at = COALESCE(completed_at, VALUES(completed_at)),
        first_announce = LEAST(first_announce, VALUES(first_announce)),
        last_announce = GREATEST(last_announce, VALUES(last_announce)),
        flagged_announces = CASE
            WHEN flagged_announces > 9223372036854775807 - VALUES(flagged_announces)
            THEN 9223372036854775807 ELSE flagged_announces + VALUES(flagged_announces) END,
        seed_until = GREATEST(seed_until, VALUES(seed_until)),
        leech_until = GREATEST(leech_until, VALUES(leech_until))";

/// Replaces peer marks: the rows' placeholders follow, then [`UPDATE_MARKS`].
const INSERT_MARKS: &str = "INSERT INTO shoal_peer_marks (user_id, info_hash, peer_id, uploaded,
    downloaded, last_announce, state, noted_uploaded, noted_downloaded) VALUES ";

/// [`INSERT_MARKS`]'s columns.
const MARK_COLUMNS: usize = 9;

/// A mark replaces the row that exists, every column.
const UPDATE_MARKS: &str = "
    ON DUPLICATE KEY UPDATE
        uploaded = VALUES(uploaded),
        downloaded = VALUES(downloaded),
        last_announce = VALUES(last_announce),
        state = VALUES(state),
        noted_uploaded = VALUES(noted_uploaded),
        noted_downloaded = VALUES(noted_downloaded)";

/// Keys read, or rows written, by one statement: few round trips for a large batch, far
/// below the 65,535 placeholders a prepared statement may have (14,000 for credits) and
/// any server's `max_allowed_packet` (about 100 kB). MariaDB turns an `IN` list this
/// long into a derived table joined on the primary key; MySQL (since 5.7) reads a list
/// of row constructors as ranges of the primary key.
const CHUNK_ROWS: usize = 1_000;

/// The lock the migrations take, per database (lock names are the server's): MD5 keeps
/// the name within the 64 characters that MySQL allows, whatever the database's name.
const MIGRATION_LOCK: &str = "CONCAT('shoal_migrations.', MD5(DATABASE()))";

/// The accounting database on a MySQL or MariaDB server, through one connection without
/// TLS (run it on the host, a private network or through a tunnel).
///
/// # Outages
/// Any error drops the connection; the next call connects again. A batch whose commit
/// failed is retried by the caller with the same id, and `shoal_batches` tells whether
/// the earlier attempt was applied. Nothing here blocks for ever on a server that went
/// away: connecting gives up after [`Self::CONNECT_TIMEOUT`], each read or write on the
/// socket after [`Self::IO_TIMEOUT`] (so a statement the server takes longer over fails
/// too), TCP keepalives find a dead host or network within about a minute, and
/// `TCP_USER_TIMEOUT` bounds data the server does not acknowledge. Waiting for the
/// accounting lock gives up after 30 s (`innodb_lock_wait_timeout`). Each call pings the
/// connection it holds first (one round trip, at a batch's pace), so that a connection
/// the server closed meanwhile (a restart, `wait_timeout`, a proxy) costs a
/// reconnection, not a failed call. The URL's own
/// `tcp_connect_timeout_ms`, `tcp_keepalive_time_ms`,
/// `tcp_keepalive_probe_interval_secs`, `tcp_keepalive_probe_count` and
/// `tcp_user_timeout_ms` win over these. A loopback address is used as given (the mysql
/// crate's `prefer_socket`, which would switch to the server's Unix socket and so log in
/// as `user@localhost`, is off).
///
/// # Tables
/// Migration 1 creates the layout of [`super`], all InnoDB: `shoal_passkeys(passkey
/// VARCHAR(32) ascii_bin, enabled BOOLEAN, user_id BIGINT NULL)`, `shoal_users(user_id
/// BIGINT, can_leech BOOLEAN)`, `shoal_torrents(info_hash BINARY(20), upload_percent,
/// download_percent INT)`, `shoal_settings(name VARCHAR(64), value BIGINT)`,
/// `shoal_credits` (BIGINT counters and times, `completed_at` NULL until the first
/// completion), `shoal_peer_marks` (`state SMALLINT`, the noted counters BIGINT NULL),
/// not indexed on `last_announce`:
/// every upsert would pay for that index, while only the hourly [`forget_before`] reads
/// it (a scan), and `shoal_batches(id CHAR(32), committed_at, credits BIGINT)`, indexed
/// on `committed_at`. Besides them: `shoal_lock(id INT PRIMARY KEY)`, whose one row (1)
/// every batch locks, and `shoal_schema_migrations(version INT PRIMARY KEY, applied_at
/// BIGINT)`. A backend of MySQL has no history before this layout, so it has none of
/// `shoal_user_torrents` and `shoal_peers`.
///
/// A batch's reads and writes go by 1,000 keys or rows a statement (prepared): a few
/// round trips, not one a row. [`forget_before`] deletes with one statement a table,
/// which scans `shoal_peer_marks`: on a table so large that this takes longer than
/// [`Self::IO_TIMEOUT`], the call fails and the deletion is rolled back (the next one
/// tries again).
///
/// [`forget_before`]: AccountingStore::forget_before
pub struct MysqlStore {
    opts: Opts,
    /// Where the server is, for messages (never the password).
    server: String,
    /// `None` after an error, until the next call connects again.
    conn: Option<Conn>,
}

impl MysqlStore {
    /// How long connecting may take, unless the URL says otherwise.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// How long one read or write on the connection may wait.
    pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

    /// Run on every new connection: the session's rules, whatever the server's defaults.
    /// `STRICT_ALL_TABLES` makes a value that does not fit an error rather than a
    /// truncation, `NO_ENGINE_SUBSTITUTION` refuses tables without transactions, and the
    /// mode drops whatever the server's has (`ANSI_QUOTES`, `NO_BACKSLASH_ESCAPES`) that
    /// would change how the statements here read.
    const SESSION_INIT: [&str; 3] = [
        "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SET SESSION innodb_lock_wait_timeout = 30",
    ];

    /// Connects to the server that `url` names (`mysql://user:password@host:port/database`,
    /// with the mysql crate's optional parameters), and applies the migrations the
    /// database lacks.
    ///
    /// # Errors
    /// The URL is malformed or names no database, or the server cannot be reached or the
    /// schema migrated. No message holds the password.
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let parsed = Opts::from_url(url)
            .map_err(|err| anyhow::anyhow!("parse the mysql:// URL: {}", url_error(&err)))?;
        let database = parsed.get_db_name().unwrap_or_default().to_string();
        if database.is_empty() {
            anyhow::bail!("the mysql:// URL names no database (mysql://user@host:port/DATABASE)");
        }
        let server = match parsed.get_socket() {
            Some(socket) => format!("socket {socket}"),
            None => format!(
                "{} port {}",
                parsed.get_ip_or_hostname(),
                parsed.get_tcp_port()
            ),
        };
        let connect_timeout = parsed
            .get_tcp_connect_timeout()
            .unwrap_or(Self::CONNECT_TIMEOUT);
        // The mysql crate leaves keepalives off unless told: a dead connection would go
        // unnoticed until the read timeout.
        let keepalive_ms = parsed.get_tcp_keepalive_time_ms().unwrap_or(30_000);
        let builder = OptsBuilder::from_opts(parsed.clone())
            .prefer_socket(false)
            .tcp_connect_timeout(Some(connect_timeout))
            .read_timeout(Some(Self::IO_TIMEOUT))
            .write_timeout(Some(Self::IO_TIMEOUT))
            .tcp_keepalive_time_ms(Some(keepalive_ms))
            .init(Self::SESSION_INIT.to_vec());
        #[cfg(target_os = "linux")]
        let builder = builder
            .tcp_keepalive_probe_interval_secs(
                parsed.get_tcp_keepalive_probe_interval_secs().or(Some(10)),
            )
            .tcp_keepalive_probe_count(parsed.get_tcp_keepalive_probe_count().or(Some(3)))
            .tcp_user_timeout_ms(parsed.get_tcp_user_timeout_ms().or(Some(60_000)));
        let mut store = Self {
            opts: builder.into(),
            server,
            conn: None,
        };
        store
            .migrate()
            .with_context(|| format!("set up mysql database {database:?} on {}", store.server))?;
        Ok(store)
    }

    /// Runs `call` on the connection, connecting first if there is none or it does not
    /// answer a ping; any error drops the connection, so that the next call starts on a
    /// new one (and the server rolls back what it left open).
    fn with_conn<T>(
        &mut self,
        what: &str,
        call: impl FnOnce(&mut Conn) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let reused = self
            .conn
            .take()
            .and_then(|mut conn| conn.ping().is_ok().then_some(conn));
        let conn = match reused {
            Some(conn) => conn,
            None => Conn::new(self.opts.clone())
                .with_context(|| format!("connect to mysql on {}", self.server))?,
        };
        let result = call(self.conn.insert(conn)).with_context(|| what.to_string());
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        self.with_conn("migrate", |conn| {
            // Everything, the migrations table too, is made under the lock, so that two
            // trackers starting at once against a new database do not both apply a
            // migration. The lock is the session's: if anything fails, the connection
            // is dropped, which releases it.
            let locked = first_int(conn, &format!("SELECT GET_LOCK({MIGRATION_LOCK}, 30)"))?;
            anyhow::ensure!(
                locked == Some(1),
                "the migration lock was not free within 30 s (another tracker migrating?)"
            );
            conn.query_drop(
                "CREATE TABLE IF NOT EXISTS shoal_schema_migrations (
                    version INT PRIMARY KEY,
                    applied_at BIGINT
                ) ENGINE=InnoDB",
            )?;
            for &(version, statements) in MIGRATIONS {
                let applied: Option<Row> = conn.exec_first(
                    "SELECT 1 FROM shoal_schema_migrations WHERE version = ?",
                    (version,),
                )?;
                if applied.is_some() {
                    continue;
                }
                for statement in statements {
                    conn.query_drop(statement)
                        .with_context(|| format!("apply migration {version}"))?;
                }
                conn.exec_drop(
                    "INSERT INTO shoal_schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, unix_now()),
                )?;
                log::info!("accounting database: applied migration {version}");
            }
            conn.query_drop(format!("DO RELEASE_LOCK({MIGRATION_LOCK})"))?;
            Ok(())
        })
    }
}

impl MysqlStore {
    /// Looks a row of `table` up by its key (`exists`, whose one parameter is `key`; it
    /// locks the row it finds) and writes it (`upsert`, with `values`), in one
    /// transaction.
    fn upsert(
        &mut self,
        table: &str,
        exists: &str,
        key: Value,
        upsert: &str,
        values: Vec<Value>,
    ) -> anyhow::Result<Written> {
        self.with_conn(&format!("write {table}"), |conn| {
            // No Transaction guard, as for a batch: on an error the connection is
            // dropped, and the server rolls back.
            conn.query_drop("START TRANSACTION")?;
            let found: Option<Row> = conn.exec_first(exists, vec![key])?;
            conn.exec_drop(upsert, values)?;
            conn.query_drop("COMMIT")?;
            Ok(Written::existed(found.is_some()))
        })
    }

    /// Runs `delete` (one statement, whose one parameter is `key`) on `table`; whether
    /// it deleted a row.
    fn delete(&mut self, table: &str, delete: &str, key: Value) -> anyhow::Result<bool> {
        self.with_conn(&format!("delete from {table}"), |conn| {
            conn.exec_drop(delete, vec![key])?;
            Ok(conn.affected_rows() > 0)
        })
    }
}

/// A passkey as its column takes it.
fn passkey_value(passkey: &Passkey) -> Value {
    Value::Bytes(passkey.as_str().as_bytes().to_vec())
}

/// What is wrong with a URL, without the values it holds (a password among them).
fn url_error(err: &UrlError) -> String {
    match err {
        // The url crate's messages name the problem, never the input.
        UrlError::ParseError(err) => err.to_string(),
        UrlError::UnsupportedScheme(scheme) => format!("scheme {scheme:?} is not mysql"),
        UrlError::FeatureRequired(_, parameter) => {
            format!("parameter {parameter:?} needs TLS, which this build does not have")
        }
        UrlError::InvalidValue(parameter, _) => format!("parameter {parameter:?}: bad value"),
        UrlError::UnknownParameter(parameter) => format!("unknown parameter {parameter:?}"),
        UrlError::InvalidPoolConstraints { .. } => "bad pool_min or pool_max".to_string(),
        UrlError::BadUrl => "not a mysql://user:password@host:port/database URL".to_string(),
    }
}

/// The first column of the first row of `sql`, as an integer (`None`: no row, NULL, or
/// not an integer).
fn first_int(conn: &mut Conn, sql: &str) -> anyhow::Result<Option<i64>> {
    let row: Option<Row> = conn.query_first(sql)?;
    Ok(row.as_ref().and_then(|row| int(row, 0)))
}

/// Column `index` as an integer; `None` for NULL or anything else.
fn int(row: &Row, index: usize) -> Option<i64> {
    row.get_opt::<i64, usize>(index)?.ok()
}

/// Column `index` as an integer or NULL (`Some(None)`); `None` for anything else.
fn nullable_int(row: &Row, index: usize) -> Option<Option<i64>> {
    row.get_opt::<Option<i64>, usize>(index)?.ok()
}

/// Column `index` as 20 bytes; `None` for NULL or another length.
fn bytes20(row: &Row, index: usize) -> Option<[u8; 20]> {
    match row.as_ref(index)? {
        Value::Bytes(bytes) => bytes.as_slice().try_into().ok(),
        _ => None,
    }
}

/// `count` placeholders: `?,?,?`.
fn list(count: usize) -> String {
    vec!["?"; count].join(",")
}

/// `rows` tuples of `columns` placeholders: `(?,?),(?,?)`.
fn placeholders(rows: usize, columns: usize) -> String {
    vec![format!("({})", list(columns)); rows].join(",")
}

/// A `shoal_peer_marks` row's key (columns 0 to 2).
fn peer_key(row: &Row) -> Option<PeerKey> {
    Some(PeerKey {
        user: int(row, 0)?,
        info_hash: InfoHash(bytes20(row, 1)?),
        peer_id: PeerId(bytes20(row, 2)?),
    })
}

/// A `shoal_credits` row's key (columns 0 and 1).
fn user_torrent_key(row: &Row) -> Option<UserTorrentKey> {
    Some(UserTorrentKey {
        user: int(row, 0)?,
        info_hash: InfoHash(bytes20(row, 1)?),
    })
}

/// A peer mark (columns 3 to 8), if it holds what it must.
fn peer_mark(row: &Row) -> Option<PeerMark> {
    let noted = (nullable_int(row, 7)?, nullable_int(row, 8)?);
    checked_mark(
        int(row, 3)?,
        int(row, 4)?,
        int(row, 5)?,
        int(row, 6)?,
        noted,
    )
}

/// Time marks (columns 2 and 3), if they are not negative.
fn time_marks(row: &Row) -> Option<TimeMarks> {
    Some(TimeMarks {
        seed_until: u64::try_from(int(row, 2)?).ok()?,
        leech_until: u64::try_from(int(row, 3)?).ok()?,
    })
}

fn hash_value(hash: &InfoHash) -> Value {
    Value::Bytes(hash.0.to_vec())
}

/// A counter or a time as stored.
fn column(value: u64) -> Value {
    Value::Int(to_column(value))
}

/// A batch's transaction, as the ledger sees it: the connection whose open transaction
/// holds the accounting lock.
struct MysqlLedger<'a> {
    conn: &'a mut Conn,
}

impl Ledger for MysqlLedger<'_> {
    fn peer_marks(&mut self, keys: &[PeerKey]) -> anyhow::Result<Vec<Option<PeerMark>>> {
        let mut found: HashMap<PeerKey, PeerMark> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT user_id, info_hash, peer_id, uploaded, downloaded, last_announce, state,
                    noted_uploaded, noted_downloaded
                 FROM shoal_peer_marks WHERE (user_id, info_hash, peer_id) IN ({})",
                placeholders(chunk.len(), 3)
            );
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|key| {
                    [
                        Value::Int(key.user),
                        hash_value(&key.info_hash),
                        Value::Bytes(key.peer_id.0.to_vec()),
                    ]
                })
                .collect();
            for row in self
                .conn
                .exec_iter(sql, params)
                .context("read shoal_peer_marks")?
            {
                let row = row?;
                if let (Some(key), Some(mark)) = (peer_key(&row), peer_mark(&row)) {
                    found.insert(key, mark);
                }
            }
        }
        Ok(keys.iter().map(|key| found.get(key).copied()).collect())
    }

    fn time_marks(&mut self, keys: &[UserTorrentKey]) -> anyhow::Result<Vec<Option<TimeMarks>>> {
        let mut found: HashMap<UserTorrentKey, TimeMarks> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT user_id, info_hash, seed_until, leech_until
                 FROM shoal_credits WHERE (user_id, info_hash) IN ({})",
                placeholders(chunk.len(), 2)
            );
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|key| [Value::Int(key.user), hash_value(&key.info_hash)])
                .collect();
            for row in self
                .conn
                .exec_iter(sql, params)
                .context("read shoal_credits")?
            {
                let row = row?;
                if let (Some(key), Some(marks)) = (user_torrent_key(&row), time_marks(&row)) {
                    found.insert(key, marks);
                }
            }
        }
        Ok(keys.iter().map(|key| found.get(key).copied()).collect())
    }

    fn factors(&mut self, hashes: &[InfoHash]) -> anyhow::Result<(Factors, Vec<Option<Factors>>)> {
        let (mut upload, mut download) = (None, None);
        let settings = self
            .conn
            .query_iter(
                "SELECT name, value FROM shoal_settings
                 WHERE name IN ('upload_percent', 'download_percent')",
            )
            .context("read shoal_settings")?;
        for row in settings {
            let row = row?;
            // Compared here, byte by byte: the column's collation may ignore case.
            match row.as_ref(0) {
                Some(Value::Bytes(name)) if name == b"upload_percent" => upload = int(&row, 1),
                Some(Value::Bytes(name)) if name == b"download_percent" => {
                    download = int(&row, 1);
                }
                _ => {}
            }
        }
        let global = Factors {
            upload_percent: checked_percent(upload),
            download_percent: checked_percent(download),
        };

        let mut found: HashMap<InfoHash, Factors> = HashMap::with_capacity(hashes.len());
        for chunk in hashes.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT info_hash, upload_percent, download_percent
                 FROM shoal_torrents WHERE info_hash IN ({})",
                list(chunk.len())
            );
            let params: Vec<Value> = chunk.iter().map(hash_value).collect();
            for row in self
                .conn
                .exec_iter(sql, params)
                .context("read shoal_torrents")?
            {
                let row = row?;
                if let Some(hash) = bytes20(&row, 0) {
                    let factors = Factors {
                        upload_percent: checked_percent(int(&row, 1)),
                        download_percent: checked_percent(int(&row, 2)),
                    };
                    found.insert(InfoHash(hash), factors);
                }
            }
        }
        let per_torrent = hashes.iter().map(|hash| found.get(hash).copied()).collect();
        Ok((global, per_torrent))
    }

    fn put_peer_marks(&mut self, rows: &[(PeerKey, PeerMark)]) -> anyhow::Result<()> {
        for chunk in rows.chunks(CHUNK_ROWS) {
            let sql = format!(
                "{INSERT_MARKS}{}{UPDATE_MARKS}",
                placeholders(chunk.len(), MARK_COLUMNS)
            );
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|(key, mark)| {
                    let (noted_up, noted_down) = mark.noted_columns();
                    [
                        Value::Int(key.user),
                        hash_value(&key.info_hash),
                        Value::Bytes(key.peer_id.0.to_vec()),
                        column(mark.uploaded),
                        column(mark.downloaded),
                        column(mark.last_announce),
                        Value::Int(mark.state.to_column()),
                        noted_up.map_or(Value::NULL, Value::Int),
                        noted_down.map_or(Value::NULL, Value::Int),
                    ]
                })
                .collect();
            self.conn
                .exec_drop(sql, params)
                .context("upsert into shoal_peer_marks")?;
        }
        Ok(())
    }

    fn add_credits(&mut self, rows: &[CreditRow]) -> anyhow::Result<()> {
        for chunk in rows.chunks(CHUNK_ROWS) {
            let sql = format!(
                "{INSERT_CREDITS}{}{UPDATE_CREDITS}",
                placeholders(chunk.len(), CREDIT_COLUMNS)
            );
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|row| {
                    [
                        Value::Int(row.key.user),
                        hash_value(&row.key.info_hash),
                        column(row.uploaded),
                        column(row.downloaded),
                        column(row.uploaded_raw),
                        column(row.downloaded_raw),
                        column(row.seed_seconds),
                        column(row.leech_seconds),
                        row.completed_at.map_or(Value::NULL, column),
                        column(row.first_announce),
                        column(row.last_announce),
                        column(row.flagged_announces),
                        column(row.seed_until),
                        column(row.leech_until),
                    ]
                })
                .collect();
            self.conn
                .exec_drop(sql, params)
                .context("upsert into shoal_credits")?;
        }
        Ok(())
    }
}

impl AccountingStore for MysqlStore {
    fn load_site(&mut self) -> anyhow::Result<SiteTables> {
        self.with_conn("load the site's tables", |conn| {
            let mut site = SiteTables::default();
            let mut skipped = 0;
            let rows = conn
                .query_iter("SELECT passkey, user_id FROM shoal_passkeys WHERE enabled")
                .context("read shoal_passkeys")?;
            for row in rows {
                let row = row?;
                let passkey = match row.as_ref(0) {
                    Some(Value::Bytes(bytes)) => Passkey::parse(bytes),
                    _ => None,
                };
                let user_id = row.get_opt::<Option<i64>, usize>(1).and_then(Result::ok);
                match (passkey, user_id) {
                    (Some(passkey), Some(user_id)) => site.passkeys.push(PasskeyUser {
                        passkey,
                        user: user_of(&passkey, user_id),
                    }),
                    _ => skipped += 1,
                }
            }
            warn_skipped("shoal_passkeys", skipped);

            let rows = conn
                .query_iter("SELECT user_id FROM shoal_users WHERE NOT can_leech")
                .context("read shoal_users")?;
            let mut skipped = 0;
            for row in rows {
                match int(&row?, 0) {
                    Some(user) => site.no_leech.push(user),
                    None => skipped += 1,
                }
            }
            warn_skipped("shoal_users", skipped);

            let rows = conn
                .query_iter("SELECT info_hash FROM shoal_torrents")
                .context("read shoal_torrents")?;
            let mut skipped = 0;
            for row in rows {
                match bytes20(&row?, 0) {
                    Some(hash) => site.torrents.push(InfoHash(hash)),
                    None => skipped += 1,
                }
            }
            warn_skipped("shoal_torrents", skipped);
            Ok(site)
        })
    }

    fn commit_counted(&mut self, batch: &Batch) -> anyhow::Result<(CommitOutcome, Applied)> {
        self.with_conn("commit a batch", |conn| {
            // No Transaction guard: on an error the connection is dropped, and the server
            // rolls back, without a ROLLBACK sent to a server that may not answer.
            conn.query_drop("START TRANSACTION")?;
            let locked: Option<Row> = conn
                .query_first("SELECT id FROM shoal_lock WHERE id = 1 FOR UPDATE")
                .context("take the accounting lock")?;
            anyhow::ensure!(
                locked.is_some(),
                "shoal_lock has no row with id 1 (migration 1 made it): restore it, or \
                 writers would not be serialised"
            );
            conn.exec_drop(
                "INSERT IGNORE INTO shoal_batches (id, committed_at, credits) VALUES (?, ?, ?)",
                (
                    batch.id.to_hex(),
                    to_column(batch.created_at),
                    to_column(batch.reports.len() as u64),
                ),
            )
            .context("insert into shoal_batches")?;
            if conn.affected_rows() == 0 {
                conn.query_drop("ROLLBACK")?;
                return Ok((CommitOutcome::AlreadyApplied, Applied::default()));
            }
            let applied = ledger::apply(&mut MysqlLedger { conn: &mut *conn }, batch)?;
            conn.query_drop("COMMIT").context("commit")?;
            Ok((CommitOutcome::Applied, applied))
        })
    }

    fn forget_before(&mut self, before: u64) -> anyhow::Result<u64> {
        self.with_conn("forget old peer marks and batches", |conn| {
            let before = to_column(before);
            conn.query_drop("START TRANSACTION")?;
            conn.exec_drop(
                "DELETE FROM shoal_peer_marks WHERE last_announce < ?",
                (before,),
            )?;
            let deleted = conn.affected_rows();
            conn.exec_drop(
                "DELETE FROM shoal_batches WHERE committed_at < ?",
                (before,),
            )?;
            conn.query_drop("COMMIT")?;
            Ok(deleted)
        })
    }

    fn put_passkey(&mut self, passkey: &Passkey, user: Option<UserId>) -> anyhow::Result<Written> {
        self.upsert(
            "shoal_passkeys",
            "SELECT 1 FROM shoal_passkeys WHERE passkey = ? FOR UPDATE",
            passkey_value(passkey),
            "INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES (?, TRUE, ?)
             ON DUPLICATE KEY UPDATE enabled = TRUE, user_id = VALUES(user_id)",
            vec![passkey_value(passkey), user.map_or(Value::NULL, Value::Int)],
        )
    }

    fn delete_passkey(&mut self, passkey: &Passkey) -> anyhow::Result<bool> {
        self.delete(
            "shoal_passkeys",
            "DELETE FROM shoal_passkeys WHERE passkey = ?",
            passkey_value(passkey),
        )
    }

    fn put_user(&mut self, user: UserId, can_leech: bool) -> anyhow::Result<Written> {
        self.upsert(
            "shoal_users",
            "SELECT 1 FROM shoal_users WHERE user_id = ? FOR UPDATE",
            Value::Int(user),
            "INSERT INTO shoal_users (user_id, can_leech) VALUES (?, ?)
             ON DUPLICATE KEY UPDATE can_leech = VALUES(can_leech)",
            vec![Value::Int(user), Value::Int(i64::from(can_leech))],
        )
    }

    fn delete_user(&mut self, user: UserId) -> anyhow::Result<bool> {
        self.delete(
            "shoal_users",
            "DELETE FROM shoal_users WHERE user_id = ?",
            Value::Int(user),
        )
    }

    fn put_torrent(&mut self, info_hash: &InfoHash, factors: Factors) -> anyhow::Result<Written> {
        let (upload, download) = percent_columns(factors)?;
        self.upsert(
            "shoal_torrents",
            "SELECT 1 FROM shoal_torrents WHERE info_hash = ? FOR UPDATE",
            hash_value(info_hash),
            "INSERT INTO shoal_torrents (info_hash, upload_percent, download_percent)
             VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE upload_percent = VALUES(upload_percent),
                 download_percent = VALUES(download_percent)",
            vec![
                hash_value(info_hash),
                Value::Int(i64::from(upload)),
                Value::Int(i64::from(download)),
            ],
        )
    }

    fn delete_torrent(&mut self, info_hash: &InfoHash) -> anyhow::Result<bool> {
        self.delete(
            "shoal_torrents",
            "DELETE FROM shoal_torrents WHERE info_hash = ?",
            hash_value(info_hash),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_tuples() {
        assert_eq!(list(3), "?,?,?");
        assert_eq!(placeholders(1, 1), "(?)");
        assert_eq!(placeholders(2, 3), "(?,?,?),(?,?,?)");
    }

    #[test]
    fn url_errors_never_hold_the_password() {
        for url in [
            "mysql://shoal:hunter2@127.0.0.1:notaport/shoal",
            "mysql://shoal:hunter2@127.0.0.1/shoal?tcp_connect_timeout_ms=hunter2",
            "mysql://shoal:hunter2@127.0.0.1/shoal?no_such_parameter=1",
            "mysql://shoal:hunter2@127.0.0.1/shoal?pool_min=hunter2",
            "postgresql://shoal:hunter2@127.0.0.1/shoal",
            "mysql://shoal:hunter2@127.0.0.1:3306",
            "mysql://shoal:hunter2@[::1/shoal",
        ] {
            let err = match MysqlStore::open(url) {
                Ok(_) => panic!("{url} opened"),
                Err(err) => format!("{err:#}"),
            };
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }
}
