//! The accounting database's backends, each against a real database: SQLite in a
//! temporary file, PostgreSQL and MariaDB on servers of the test's own
//! ([`TestPostgres`], `TestMariaDb`). Every check runs on all three; the outage checks
//! on PostgreSQL here (MariaDB's are in `mysql_store.rs`).
//!
//! The checks are written from the store's contract (`tracker_common::private::store`
//! and `ledger`): a batch is applied exactly once, each report is credited against the
//! committed peer mark (nothing for a stale one), time against the (user, torrent)'s
//! time marks, factors from the site's tables, sums saturating at `i64::MAX`; and what
//! is read back from the tables is checked, never trusted.

use tracker_common::private::ledger::{CreditRules, PeerReport, Point};
use tracker_common::private::passkey::Passkey;
use tracker_common::private::store::{
    self, AccountingStore, Batch, BatchId, CommitOutcome, PasskeyUser, PeerKey, PeerState,
    derived_user_id,
};
use tracker_common::testing::postgres::TestPostgres;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};

/// A database to test, with a side door for raw SQL (to read the tables and to put rows
/// there that the store would never write).
trait Backend {
    /// The URL that `store::open` takes.
    fn url(&self) -> String;
    /// Runs statements.
    fn exec(&self, sql: &str);
    /// The one row of `sql`, integer (or NULL) columns.
    fn row(&self, sql: &str) -> Vec<Option<i64>>;
    /// A BLOB / bytea literal.
    fn blob(&self, bytes: &[u8]) -> String;
    /// A boolean literal.
    fn boolean(&self, value: bool) -> &'static str;

    fn open(&self) -> Box<dyn AccountingStore> {
        store::open(&self.url()).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.row(sql)[0].unwrap()
    }

    /// Migrations of the backend's schema (MySQL's first is the whole layout).
    fn migrations(&self) -> i64 {
        2
    }
}

struct Sqlite {
    dir: std::path::PathBuf,
}

impl Sqlite {
    fn new(test: &str) -> Self {
        Self {
            dir: tracker_common::testing::temp_dir(&format!("store-{test}")),
        }
    }

    fn connection(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.join("accounting.db")).unwrap()
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Backend for Sqlite {
    fn url(&self) -> String {
        // An absolute path: sqlite:///tmp/...
        tracker_common::testing::accounting::sqlite_url(&self.dir)
    }

    fn exec(&self, sql: &str) {
        self.connection().execute_batch(sql).unwrap();
    }

    fn row(&self, sql: &str) -> Vec<Option<i64>> {
        self.connection()
            .query_row(sql, [], |row| {
                (0..row.as_ref().column_count())
                    .map(|i| row.get::<_, Option<i64>>(i))
                    .collect()
            })
            .unwrap()
    }

    fn blob(&self, bytes: &[u8]) -> String {
        format!("X'{}'", hex(bytes))
    }

    fn boolean(&self, value: bool) -> &'static str {
        if value { "1" } else { "0" }
    }
}

struct Postgres {
    server: TestPostgres,
}

impl Postgres {
    fn new() -> Self {
        Self {
            server: TestPostgres::start().unwrap_or_else(|err| panic!("{err:#}")),
        }
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.server.url(), postgres::NoTls).unwrap()
    }
}

impl Backend for Postgres {
    fn url(&self) -> String {
        self.server.url()
    }

    fn exec(&self, sql: &str) {
        self.client().batch_execute(sql).unwrap();
    }

    fn row(&self, sql: &str) -> Vec<Option<i64>> {
        let row = self.client().query_one(sql, &[]).unwrap();
        (0..row.len())
            .map(|i| {
                row.try_get::<_, Option<i64>>(i)
                    .or_else(|_| row.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)))
                    .or_else(|_| row.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from)))
                    .unwrap()
            })
            .collect()
    }

    fn blob(&self, bytes: &[u8]) -> String {
        format!("'\\x{}'::bytea", hex(bytes))
    }

    fn boolean(&self, value: bool) -> &'static str {
        if value { "TRUE" } else { "FALSE" }
    }
}

struct Mariadb {
    server: tracker_common::testing::mariadb::TestMariaDb,
}

impl Mariadb {
    fn new() -> Self {
        Self {
            server: tracker_common::testing::mariadb::TestMariaDb::start()
                .unwrap_or_else(|err| panic!("{err:#}")),
        }
    }

    fn conn(&self) -> mysql::Conn {
        mysql::Conn::new(mysql::Opts::from_url(&self.server.url()).unwrap()).unwrap()
    }
}

impl Backend for Mariadb {
    fn url(&self) -> String {
        self.server.url()
    }

    fn exec(&self, sql: &str) {
        use mysql::prelude::Queryable;
        self.conn().query_drop(sql).unwrap();
    }

    fn row(&self, sql: &str) -> Vec<Option<i64>> {
        use mysql::prelude::Queryable;
        let row: mysql::Row = self.conn().query_first(sql).unwrap().unwrap();
        (0..row.len())
            .map(|i| row.get::<Option<i64>, _>(i).flatten())
            .collect()
    }

    fn blob(&self, bytes: &[u8]) -> String {
        format!("X'{}'", hex(bytes))
    }

    fn boolean(&self, value: bool) -> &'static str {
        if value { "TRUE" } else { "FALSE" }
    }

    fn migrations(&self) -> i64 {
        1
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A passkey made from `n`.
fn passkey(n: u32) -> Passkey {
    Passkey::parse(format!("{n:0>32}").as_bytes()).unwrap()
}

const T0: u64 = 1_800_000_000;

fn rules() -> CreditRules {
    CreditRules {
        interval_secs: 1800,
        grace_secs: 300,
        flag_upload_bytes_per_sec: 0,
    }
}

fn key(user: i64, torrent: u8, peer: u8) -> PeerKey {
    PeerKey {
        user,
        info_hash: InfoHash([torrent; 20]),
        peer_id: PeerId([peer; 20]),
    }
}

/// A report of one announce.
fn report(key: PeerKey, at: u64, uploaded: u64, event: AnnounceEvent, seeding: bool) -> PeerReport {
    PeerReport::new(
        key,
        Point {
            at,
            uploaded: Some(uploaded),
            downloaded: Some(uploaded / 2),
            state: if event == AnnounceEvent::Stopped {
                PeerState::Stopped
            } else if seeding {
                PeerState::Seeding
            } else {
                PeerState::Leeching
            },
            event,
        },
    )
}

fn batch(id: u8, reports: Vec<PeerReport>) -> Batch {
    Batch {
        id: BatchId([id; 16]),
        reports,
        rules: rules(),
        created_at: T0,
    }
}

/// `shoal_credits` of (user, torrent): uploaded, downloaded, uploaded_raw,
/// downloaded_raw, seed_seconds, leech_seconds, completed_at.
fn credits(db: &dyn Backend, user: i64, torrent: u8) -> Vec<Option<i64>> {
    db.row(&format!(
        "SELECT uploaded, downloaded, uploaded_raw, downloaded_raw, seed_seconds,
                leech_seconds, completed_at
         FROM shoal_credits WHERE user_id = {user} AND info_hash = {}",
        db.blob(&[torrent; 20])
    ))
}

/// `shoal_peer_marks` of a peer: uploaded, downloaded, last_announce, state.
fn mark(db: &dyn Backend, key: PeerKey) -> Vec<Option<i64>> {
    db.row(&format!(
        "SELECT uploaded, downloaded, last_announce, state FROM shoal_peer_marks
         WHERE user_id = {} AND info_hash = {} AND peer_id = {}",
        key.user,
        db.blob(&key.info_hash.0),
        db.blob(&key.peer_id.0)
    ))
}

fn schema_is_created_once(db: &dyn Backend) {
    drop(db.open());
    let mut store = db.open();
    assert_eq!(
        db.count("SELECT COUNT(*) FROM shoal_schema_migrations"),
        db.migrations(),
        "each migration once"
    );
    for table in [
        "shoal_passkeys",
        "shoal_users",
        "shoal_torrents",
        "shoal_settings",
        "shoal_credits",
        "shoal_peer_marks",
        "shoal_batches",
    ] {
        assert_eq!(
            db.count(&format!("SELECT COUNT(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    assert_eq!(store.load_site().unwrap(), Default::default());
}

fn reports_are_credited_against_the_marks(db: &dyn Backend) {
    let mut store = db.open();
    let a = key(1, 1, 1);
    let started = report(a, T0, 100, AnnounceEvent::Started, false);
    assert_eq!(
        store.commit(&batch(1, vec![started])).unwrap(),
        CommitOutcome::Applied
    );
    assert_eq!(
        credits(db, 1, 1)[..6],
        [Some(100), Some(50), Some(100), Some(50), Some(0), Some(0)]
    );
    assert_eq!(mark(db, a), [Some(100), Some(50), Some(T0 as i64), Some(0)]);
    // 600 s later, seeding after a completion: the difference, and the time leeching.
    let done = report(a, T0 + 600, 700, AnnounceEvent::Completed, true);
    store.commit(&batch(2, vec![done])).unwrap();
    let row = credits(db, 1, 1);
    assert_eq!(
        row[..6],
        [
            Some(700),
            Some(350),
            Some(700),
            Some(350),
            Some(0),
            Some(600)
        ]
    );
    assert_eq!(row[6], Some((T0 + 600) as i64), "the completion");
    // A stale report (another tracker's, older than the mark) credits nothing.
    let stale = report(a, T0 + 300, 400, AnnounceEvent::None, false);
    store.commit(&batch(3, vec![stale])).unwrap();
    assert_eq!(
        credits(db, 1, 1)[..6],
        [
            Some(700),
            Some(350),
            Some(700),
            Some(350),
            Some(0),
            Some(600)
        ]
    );
    // The same announce seen by a second tracker a second later: time only.
    let twin = report(a, T0 + 601, 700, AnnounceEvent::None, true);
    store.commit(&batch(4, vec![twin])).unwrap();
    assert_eq!(
        credits(db, 1, 1)[..6],
        [
            Some(700),
            Some(350),
            Some(700),
            Some(350),
            Some(1),
            Some(600)
        ]
    );
    // Stopped: saved, and no time across it.
    let stop = report(a, T0 + 900, 800, AnnounceEvent::Stopped, false);
    store.commit(&batch(5, vec![stop])).unwrap();
    assert_eq!(mark(db, a)[3], Some(2));
    let back = report(a, T0 + 1200, 800, AnnounceEvent::None, true);
    store.commit(&batch(6, vec![back])).unwrap();
    assert_eq!(
        credits(db, 1, 1)[..6],
        [
            Some(800),
            Some(400),
            Some(800),
            Some(400),
            Some(300),
            Some(600)
        ]
    );
}

fn a_batch_applies_once(db: &dyn Backend) {
    let mut store = db.open();
    let one = batch(
        1,
        vec![report(key(1, 1, 1), T0, 10, AnnounceEvent::Started, false)],
    );
    assert_eq!(store.commit(&one).unwrap(), CommitOutcome::Applied);
    assert_eq!(store.commit(&one).unwrap(), CommitOutcome::AlreadyApplied);
    assert_eq!(credits(db, 1, 1)[0], Some(10));
    assert_eq!(db.count("SELECT COUNT(*) FROM shoal_batches"), 1);
}

fn two_stores_on_one_database_credit_one_client_once(db: &dyn Backend) {
    let (mut udp, mut http) = (db.open(), db.open());
    let peer = key(3, 2, 9);
    for (n, at, up) in [
        (0u8, T0, 0u64),
        (1, T0 + 1800, 5_000),
        (2, T0 + 3600, 9_000),
    ] {
        let event = if n == 0 {
            AnnounceEvent::Started
        } else {
            AnnounceEvent::None
        };
        // Each tracker saw the announce, one second apart, in either order.
        let first = batch(10 + n, vec![report(peer, at, up, event, true)]);
        let second = batch(20 + n, vec![report(peer, at + 1, up, event, true)]);
        if n % 2 == 0 {
            http.commit(&second).unwrap();
            udp.commit(&first).unwrap();
        } else {
            udp.commit(&first).unwrap();
            http.commit(&second).unwrap();
        }
    }
    let row = credits(db, 3, 2);
    assert_eq!(row[0], Some(9_000), "bytes once");
    // From T0 to T0 + 3601, less the first second: the report of T0 arrived after the
    // one of T0 + 1 and was stale. Never twice the wall clock.
    assert_eq!(row[4], Some(3600), "wall-clock seeding time once");
}

fn time_is_credited_once_per_user_and_torrent(db: &dyn Backend) {
    let mut store = db.open();
    // 100 peer ids of one user seed one torrent through the same half hour.
    let starts: Vec<PeerReport> = (0..100)
        .map(|peer| {
            report(
                key(4, 3, peer),
                T0 + u64::from(peer),
                0,
                AnnounceEvent::Started,
                true,
            )
        })
        .collect();
    store.commit(&batch(1, starts)).unwrap();
    let laters: Vec<PeerReport> = (0..100)
        .map(|peer| {
            report(
                key(4, 3, peer),
                T0 + 1800 + u64::from(peer),
                0,
                AnnounceEvent::None,
                true,
            )
        })
        .collect();
    store.commit(&batch(2, laters)).unwrap();
    assert_eq!(
        credits(db, 4, 3)[4],
        Some(1899),
        "the union of the spans, not 100 times"
    );
}

fn factors_come_from_the_site_tables(db: &dyn Backend) {
    let mut store = db.open();
    db.exec(&format!(
        "INSERT INTO shoal_torrents (info_hash, upload_percent, download_percent)
             VALUES ({}, 100, 0);
         INSERT INTO shoal_settings (name, value) VALUES ('upload_percent', 200);",
        db.blob(&[5; 20])
    ));
    store
        .commit(&batch(
            1,
            vec![
                report(key(1, 5, 1), T0, 1_000, AnnounceEvent::Started, false),
                report(key(1, 6, 1), T0, 1_000, AnnounceEvent::Started, false),
            ],
        ))
        .unwrap();
    // Freeleech and double upload on torrent 5; double upload only on torrent 6.
    assert_eq!(
        credits(db, 1, 5)[..4],
        [Some(2_000), Some(0), Some(1_000), Some(500)]
    );
    assert_eq!(
        credits(db, 1, 6)[..4],
        [Some(2_000), Some(500), Some(1_000), Some(500)]
    );
}

fn sums_saturate_at_i64_max(db: &dyn Backend) {
    let mut store = db.open();
    let huge = report(key(1, 1, 1), T0, u64::MAX, AnnounceEvent::Started, false);
    store.commit(&batch(1, vec![huge])).unwrap();
    let again = report(key(1, 1, 2), T0, u64::MAX, AnnounceEvent::Started, false);
    store.commit(&batch(2, vec![again])).unwrap();
    assert_eq!(credits(db, 1, 1)[0], Some(i64::MAX));
    assert_eq!(credits(db, 1, 1)[2], Some(i64::MAX));
}

fn malformed_marks_count_as_none(db: &dyn Backend) {
    let mut store = db.open();
    let a = key(1, 1, 1);
    db.exec(&format!(
        "INSERT INTO shoal_peer_marks VALUES (1, {}, {}, -5, 0, {T0}, 0, NULL, NULL)",
        db.blob(&a.info_hash.0),
        db.blob(&a.peer_id.0)
    ));
    // Not started: with no (good) mark, the report sets it and credits nothing.
    store
        .commit(&batch(
            1,
            vec![report(a, T0 + 10, 500, AnnounceEvent::None, false)],
        ))
        .unwrap();
    assert_eq!(credits(db, 1, 1)[0], Some(0));
    assert_eq!(mark(db, a)[0], Some(500));
}

fn the_site_tables_are_loaded(db: &dyn Backend) {
    let mut store = db.open();
    let (a, b, c) = (passkey(1), passkey(2), passkey(3));
    db.exec(&format!(
        "INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES ('{a}', {t}, 7);
         INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES ('{b}', {t}, NULL);
         INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES ('{c}', {f}, 9);
         INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES ('not a passkey', {t}, 1);
         INSERT INTO shoal_users (user_id, can_leech) VALUES (7, {f});
         INSERT INTO shoal_users (user_id, can_leech) VALUES (8, {t});
         INSERT INTO shoal_torrents (info_hash) VALUES ({});
         INSERT INTO shoal_torrents (info_hash) VALUES ({});",
        db.blob(&[1; 20]),
        db.blob(&[2; 20]),
        t = db.boolean(true),
        f = db.boolean(false),
    ));
    let mut site = store.load_site().unwrap();
    site.passkeys.sort_by_key(|k| k.passkey);
    site.torrents.sort();
    assert_eq!(
        site.passkeys,
        [
            PasskeyUser {
                passkey: a,
                user: 7
            },
            PasskeyUser {
                passkey: b,
                user: derived_user_id(&b)
            },
        ]
    );
    assert_eq!(site.no_leech, [7]);
    assert_eq!(site.torrents, [InfoHash([1; 20]), InfoHash([2; 20])]);
}

fn forget_before_deletes(db: &dyn Backend) {
    let mut store = db.open();
    store
        .commit(&batch(
            1,
            vec![
                report(key(1, 1, 1), T0, 1, AnnounceEvent::Started, false),
                report(key(1, 1, 2), T0 + 100, 1, AnnounceEvent::Started, false),
            ],
        ))
        .unwrap();
    assert_eq!(store.forget_before(T0 + 50).unwrap(), 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM shoal_peer_marks"), 1);
    assert_eq!(store.forget_before(T0 + 50).unwrap(), 0);
    // The batch was committed (created_at T0) before T0 + 50: gone too.
    assert_eq!(db.count("SELECT COUNT(*) FROM shoal_batches"), 0);
    assert_eq!(credits(db, 1, 1)[0], Some(2), "credit is never forgotten");
}

macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $check() {
                    super::$check(&super::Sqlite::new(stringify!($check)));
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $check() {
                    super::$check(&super::Postgres::new());
                }
            )*
        }
        mod on_mariadb {
            $(
                #[test]
                fn $check() {
                    super::$check(&super::Mariadb::new());
                }
            )*
        }
    };
}

on_both_backends!(
    schema_is_created_once,
    reports_are_credited_against_the_marks,
    a_batch_applies_once,
    two_stores_on_one_database_credit_one_client_once,
    time_is_credited_once_per_user_and_torrent,
    factors_come_from_the_site_tables,
    sums_saturate_at_i64_max,
    malformed_marks_count_as_none,
    the_site_tables_are_loaded,
    forget_before_deletes,
);

#[test]
fn sqlite_stores_integers_and_uses_wal() {
    let db = Sqlite::new("types");
    let mut store = db.open();
    for id in 1..=2 {
        let huge = report(key(1, 1, id), T0, u64::MAX, AnnounceEvent::Started, false);
        store.commit(&batch(id, vec![huge])).unwrap();
    }
    // An overflowing sum would have become a REAL.
    let connection = db.connection();
    let kind: String = connection
        .query_row("SELECT typeof(uploaded) FROM shoal_credits", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(kind, "integer");
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn sqlite_skips_values_of_the_wrong_type() {
    let db = Sqlite::new("wrongtype");
    let mut store = db.open();
    let a = key(1, 1, 1);
    db.exec(&format!(
        "INSERT INTO shoal_peer_marks VALUES (1, {}, {}, 1.5, 0, {T0}, 1, NULL, NULL);
         INSERT INTO shoal_passkeys VALUES (42, 1, NULL);",
        db.blob(&a.info_hash.0),
        db.blob(&a.peer_id.0),
    ));
    assert_eq!(store.load_site().unwrap(), Default::default());
    // The mark with a REAL counter is no mark: a later report credits nothing.
    store
        .commit(&batch(
            1,
            vec![report(a, T0 + 5, 100, AnnounceEvent::None, true)],
        ))
        .unwrap();
    assert_eq!(credits(&db, 1, 1)[0], Some(0));
}

/// The server goes away between two calls and comes back: the store fails while it is
/// gone and works again, without being re-opened, once it is back; the batch that
/// failed is applied exactly once.
#[test]
fn postgres_outage_is_survived() {
    let mut db = Postgres::new();
    let mut store = db.open();
    let peer = key(1, 1, 1);
    let one = batch(1, vec![report(peer, T0, 5, AnnounceEvent::Started, false)]);
    assert_eq!(store.commit(&one).unwrap(), CommitOutcome::Applied);

    db.server.stop().unwrap();
    let two = batch(
        2,
        vec![report(peer, T0 + 60, 12, AnnounceEvent::None, false)],
    );
    assert!(store.commit(&two).is_err());
    // While the server is down, every call fails (connection refused).
    assert!(store.commit(&two).is_err());
    assert!(store.load_site().is_err());

    db.server.start_again().unwrap();
    assert_eq!(store.commit(&two).unwrap(), CommitOutcome::Applied);
    assert_eq!(store.commit(&two).unwrap(), CommitOutcome::AlreadyApplied);
    assert_eq!(credits(&db, 1, 1)[0], Some(12));
    assert_eq!(mark(&db, peer)[2], Some((T0 + 60) as i64));
}

/// The store's connection is killed by the server between two calls: the next call may
/// fail (it finds out then), and the one after works.
#[test]
fn postgres_killed_connection_is_replaced() {
    let db = Postgres::new();
    let mut store = db.open();
    let reports = |id: u8| {
        batch(
            id,
            vec![report(key(1, 1, id), T0, 1, AnnounceEvent::Started, false)],
        )
    };
    store.commit(&reports(1)).unwrap();
    for id in 2..5 {
        let killed = db.count(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = 'shoal'",
        );
        assert_eq!(killed, 1);
        let batch = reports(id);
        let mut outcome = store.commit(&batch);
        if outcome.is_err() {
            outcome = store.commit(&batch);
        }
        assert_eq!(outcome.unwrap(), CommitOutcome::Applied);
    }
    assert_eq!(credits(&db, 1, 1)[0], Some(4));
}

#[test]
fn postgres_open_fails_when_the_server_is_down() {
    let mut db = Postgres::new();
    db.server.stop().unwrap();
    let err = store::open(&db.url()).err().unwrap();
    assert!(format!("{err:#}").contains("connect to postgresql on 127.0.0.1"));
}

/// Two trackers starting at once against a new database: both migrate (one waits for
/// the other's lock), neither fails.
#[test]
fn postgres_two_stores_migrate_a_new_database_at_once() {
    let db = Postgres::new();
    let url = db.url();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || store::open(&url).map(drop))
        })
        .collect();
    for handle in handles {
        handle.join().unwrap().unwrap();
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM shoal_schema_migrations"), 2);
}
