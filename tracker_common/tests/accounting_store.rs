//! The accounting database's backends, each against a real database: SQLite in a
//! temporary file, PostgreSQL on a server of the test's own ([`TestPostgres`]). Every
//! check runs on both; the outage checks on PostgreSQL only.
//!
//! The checks are written from the store's contract (`tracker_common::private::store`):
//! a batch applies its credits (sums, first completion, earliest and latest announce,
//! saturating at `i64::MAX`) and baselines exactly once, and what is read back from the
//! tables is checked, never trusted.

use tracker_common::private::passkey::Passkey;
use tracker_common::private::store::{
    self, AccountingStore, Batch, BatchId, CommitOutcome, PeerBaseline, UserTorrentCredit,
};
use tracker_common::testing::postgres::TestPostgres;
use tracker_common::types::{InfoHash, PeerId};

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
        (0..row.len()).map(|i| row.get(i)).collect()
    }

    fn blob(&self, bytes: &[u8]) -> String {
        format!("'\\x{}'::bytea", hex(bytes))
    }

    fn boolean(&self, value: bool) -> &'static str {
        if value { "TRUE" } else { "FALSE" }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A passkey made from `n`.
fn passkey(n: u32) -> Passkey {
    Passkey::parse(format!("{n:0>32}").as_bytes()).unwrap()
}

fn batch(id: u8, credits: Vec<UserTorrentCredit>, baselines: Vec<PeerBaseline>) -> Batch {
    Batch {
        id: BatchId([id; 16]),
        credits,
        baselines,
        created_at: 1_000,
    }
}

fn credit(user: u32, torrent: u8) -> UserTorrentCredit {
    UserTorrentCredit {
        passkey: passkey(user),
        info_hash: InfoHash([torrent; 20]),
        uploaded: 0,
        downloaded: 0,
        seed_seconds: 0,
        leech_seconds: 0,
        completed_at: None,
        first_announce: 500,
        last_announce: 600,
        flagged_announces: 0,
    }
}

fn baseline(user: u32, torrent: u8, peer: u8, last_announce: u64) -> PeerBaseline {
    PeerBaseline {
        passkey: passkey(user),
        info_hash: InfoHash([torrent; 20]),
        peer_id: PeerId([peer; 20]),
        uploaded: 10,
        downloaded: 20,
        last_announce,
        seeding: false,
    }
}

/// The row of (user, torrent) in shoal_user_torrents: uploaded, downloaded,
/// seed_seconds, leech_seconds, completed_at, first_announce, last_announce,
/// flagged_announces.
fn user_torrent(db: &dyn Backend, user: u32, torrent: u8) -> Vec<Option<i64>> {
    db.row(&format!(
        "SELECT uploaded, downloaded, seed_seconds, leech_seconds, completed_at,
                first_announce, last_announce, flagged_announces
         FROM shoal_user_torrents WHERE passkey = '{}' AND info_hash = {}",
        passkey(user),
        db.blob(&[torrent; 20])
    ))
}

fn loaded(store: &mut dyn AccountingStore, since: u64) -> Vec<PeerBaseline> {
    let mut baselines = Vec::new();
    store
        .load_baselines(since, &mut |baseline| baselines.push(baseline))
        .unwrap();
    baselines.sort_by_key(|b| (b.passkey, b.info_hash, b.peer_id));
    baselines
}

fn schema_is_created_once(db: &dyn Backend) {
    drop(db.open());
    for table in [
        "shoal_passkeys",
        "shoal_user_torrents",
        "shoal_peers",
        "shoal_batches",
    ] {
        assert_eq!(db.count(&format!("SELECT count(*) FROM {table}")), 0);
    }
    let migrations = "SELECT count(*), CAST(min(version) AS BIGINT), CAST(max(version) AS BIGINT) \
                      FROM shoal_schema_migrations";
    assert_eq!(db.row(migrations), [Some(1), Some(1), Some(1)]);
    let mut store = db.open();
    assert_eq!(db.row(migrations), [Some(1), Some(1), Some(1)]);
    assert!(store.load_passkeys().unwrap().is_empty());
}

fn commit_adds_credits(db: &dyn Backend) {
    let mut store = db.open();
    let first = UserTorrentCredit {
        uploaded: 100,
        downloaded: 200,
        seed_seconds: 30,
        leech_seconds: 40,
        flagged_announces: 1,
        first_announce: 500,
        last_announce: 600,
        ..credit(1, 1)
    };
    let other = UserTorrentCredit {
        uploaded: 7,
        ..credit(2, 1)
    };
    let outcome = store.commit(&batch(1, vec![first, other], vec![])).unwrap();
    assert_eq!(outcome, CommitOutcome::Applied);
    assert_eq!(
        user_torrent(db, 1, 1),
        [
            Some(100),
            Some(200),
            Some(30),
            Some(40),
            None,
            Some(500),
            Some(600),
            Some(1)
        ]
    );

    // Later and earlier announces than the row's, and a first completion.
    let second = UserTorrentCredit {
        uploaded: 1,
        downloaded: 2,
        seed_seconds: 3,
        leech_seconds: 4,
        flagged_announces: 5,
        completed_at: Some(550),
        first_announce: 400,
        last_announce: 550,
        ..credit(1, 1)
    };
    let third = UserTorrentCredit {
        completed_at: Some(700),
        first_announce: 650,
        last_announce: 700,
        ..credit(1, 1)
    };
    assert_eq!(
        store.commit(&batch(2, vec![second], vec![])).unwrap(),
        CommitOutcome::Applied
    );
    assert_eq!(
        store.commit(&batch(3, vec![third], vec![])).unwrap(),
        CommitOutcome::Applied
    );
    assert_eq!(
        user_torrent(db, 1, 1),
        [
            Some(101),
            Some(202),
            Some(33),
            Some(44),
            Some(550),
            Some(400),
            Some(700),
            Some(6)
        ]
    );
    assert_eq!(user_torrent(db, 2, 1)[0], Some(7));
    assert_eq!(db.count("SELECT count(*) FROM shoal_batches"), 3);
    assert_eq!(
        db.row("SELECT committed_at, credits FROM shoal_batches WHERE id = '01010101010101010101010101010101'"),
        [Some(1_000), Some(2)]
    );
}

fn a_batch_applies_once(db: &dyn Backend) {
    let mut store = db.open();
    let credits = vec![UserTorrentCredit {
        uploaded: 5,
        ..credit(1, 1)
    }];
    let one = batch(9, credits, vec![baseline(1, 1, 1, 600)]);
    assert_eq!(store.commit(&one).unwrap(), CommitOutcome::Applied);
    // The baseline moves on; a replay of the batch must not move it back.
    let newer = PeerBaseline {
        uploaded: 99,
        ..baseline(1, 1, 1, 700)
    };
    store.commit(&batch(10, vec![], vec![newer])).unwrap();
    assert_eq!(store.commit(&one).unwrap(), CommitOutcome::AlreadyApplied);
    let mut reopened = db.open();
    assert_eq!(
        reopened.commit(&one).unwrap(),
        CommitOutcome::AlreadyApplied
    );
    assert_eq!(user_torrent(db, 1, 1)[0], Some(5));
    assert_eq!(loaded(&mut *store, 0), [newer]);
    assert_eq!(db.count("SELECT count(*) FROM shoal_batches"), 2);
}

fn sums_saturate_at_i64_max(db: &dyn Backend) {
    let mut store = db.open();
    let huge = UserTorrentCredit {
        uploaded: u64::MAX,
        downloaded: u64::MAX,
        seed_seconds: u64::MAX,
        leech_seconds: u64::MAX,
        flagged_announces: u64::MAX,
        completed_at: Some(u64::MAX),
        first_announce: u64::MAX,
        last_announce: u64::MAX,
        ..credit(1, 1)
    };
    let near = UserTorrentCredit {
        uploaded: i64::MAX as u64 - 1,
        ..credit(1, 2)
    };
    store.commit(&batch(1, vec![huge, near], vec![])).unwrap();
    let plus_two = UserTorrentCredit {
        uploaded: 2,
        ..credit(1, 2)
    };
    store
        .commit(&batch(2, vec![huge, plus_two], vec![]))
        .unwrap();
    let max = Some(i64::MAX);
    assert_eq!(
        user_torrent(db, 1, 1),
        [max, max, max, max, max, max, max, max]
    );
    assert_eq!(user_torrent(db, 1, 2)[0], max);
    let huge_baseline = PeerBaseline {
        uploaded: u64::MAX,
        downloaded: u64::MAX,
        ..baseline(1, 1, 1, u64::MAX)
    };
    store
        .commit(&batch(3, vec![], vec![huge_baseline]))
        .unwrap();
    let read_back = PeerBaseline {
        uploaded: i64::MAX as u64,
        downloaded: i64::MAX as u64,
        last_announce: i64::MAX as u64,
        ..huge_baseline
    };
    assert_eq!(loaded(&mut *store, u64::MAX), [read_back]);
}

fn baselines_are_upserted_and_loaded(db: &dyn Backend) {
    let mut store = db.open();
    let a = baseline(1, 1, 1, 100);
    let b = baseline(1, 1, 2, 200);
    let c = PeerBaseline {
        seeding: true,
        ..baseline(2, 3, 1, 300)
    };
    store.commit(&batch(1, vec![], vec![a, b, c])).unwrap();
    assert_eq!(loaded(&mut *store, 0), [a, b, c]);
    assert_eq!(loaded(&mut *store, 200), [b, c]);
    assert_eq!(loaded(&mut *store, 301), []);
    let a2 = PeerBaseline {
        uploaded: 1_000,
        downloaded: 2_000,
        seeding: true,
        ..baseline(1, 1, 1, 400)
    };
    store.commit(&batch(2, vec![], vec![a2])).unwrap();
    assert_eq!(loaded(&mut *store, 0), [a2, b, c]);
    assert_eq!(db.count("SELECT count(*) FROM shoal_peers"), 3);
}

fn malformed_rows_are_skipped(db: &dyn Backend) {
    let mut store = db.open();
    let good = baseline(1, 1, 1, 100);
    store.commit(&batch(1, vec![], vec![good])).unwrap();
    let key = passkey(1).to_string();
    let id = db.blob(&[1; 20]);
    let t = db.boolean(true);
    let bad_rows = [
        (
            format!("'{}'", &key[..31]),
            id.clone(),
            db.blob(&[2; 20]),
            "1",
        ),
        (
            format!("'{}-'", &key[..31]),
            id.clone(),
            db.blob(&[3; 20]),
            "1",
        ),
        (
            format!("'{key}'"),
            db.blob(&[1; 19]),
            db.blob(&[4; 20]),
            "1",
        ),
        (format!("'{key}'"), id.clone(), db.blob(&[5; 21]), "1"),
        (format!("'{key}'"), id.clone(), db.blob(&[6; 20]), "-1"),
    ];
    for (passkey, info_hash, peer_id, uploaded) in bad_rows {
        db.exec(&format!(
            "INSERT INTO shoal_peers VALUES ({passkey}, {info_hash}, {peer_id}, {uploaded}, 0, \
             100, {t})"
        ));
    }
    assert_eq!(loaded(&mut *store, 0), [good]);
}

fn passkeys_are_loaded(db: &dyn Backend) {
    let mut store = db.open();
    let (t, f) = (db.boolean(true), db.boolean(false));
    db.exec(&format!(
        "INSERT INTO shoal_passkeys (passkey) VALUES ('{}');
         INSERT INTO shoal_passkeys VALUES ('{}', {t});
         INSERT INTO shoal_passkeys VALUES ('{}', {f});
         INSERT INTO shoal_passkeys VALUES ('short', {t});
         INSERT INTO shoal_passkeys VALUES ('{}é', {t});
         INSERT INTO shoal_passkeys VALUES ('', {t});",
        passkey(1),
        passkey(2),
        passkey(3),
        &passkey(4).to_string()[..30],
    ));
    let mut keys = store.load_passkeys().unwrap();
    keys.sort();
    assert_eq!(keys, [passkey(1), passkey(2)]);
}

fn forget_before_deletes(db: &dyn Backend) {
    let mut store = db.open();
    let old = baseline(1, 1, 1, 100);
    let edge = baseline(1, 1, 2, 200);
    let new = baseline(1, 1, 3, 300);
    store
        .commit(&batch(1, vec![], vec![old, edge, new]))
        .unwrap();
    let later = Batch {
        created_at: 5_000,
        ..batch(2, vec![], vec![])
    };
    store.commit(&later).unwrap();
    assert_eq!(store.forget_before(200).unwrap(), 1);
    assert_eq!(loaded(&mut *store, 0), [edge, new]);
    assert_eq!(db.count("SELECT count(*) FROM shoal_batches"), 2);
    assert_eq!(store.forget_before(2_000).unwrap(), 2);
    assert_eq!(loaded(&mut *store, 0), []);
    assert_eq!(db.count("SELECT count(*) FROM shoal_batches"), 1);
    // A forgotten batch id can be applied again: the retention outlives any retry.
    assert_eq!(
        store.commit(&batch(1, vec![], vec![])).unwrap(),
        CommitOutcome::Applied
    );
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
    };
}

on_both_backends!(
    schema_is_created_once,
    commit_adds_credits,
    a_batch_applies_once,
    sums_saturate_at_i64_max,
    baselines_are_upserted_and_loaded,
    malformed_rows_are_skipped,
    passkeys_are_loaded,
    forget_before_deletes,
);

#[test]
fn sqlite_stores_integers_and_uses_wal() {
    let db = Sqlite::new("types");
    let mut store = db.open();
    let huge = UserTorrentCredit {
        uploaded: u64::MAX,
        ..credit(1, 1)
    };
    store.commit(&batch(1, vec![huge], vec![])).unwrap();
    store.commit(&batch(2, vec![huge], vec![])).unwrap();
    // An overflowing sum would have become a REAL.
    let connection = db.connection();
    let kind: String = connection
        .query_row(
            "SELECT typeof(uploaded) FROM shoal_user_torrents",
            [],
            |row| row.get(0),
        )
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
    let key = passkey(1);
    let id = db.blob(&[1; 20]);
    db.exec(&format!(
        "INSERT INTO shoal_peers VALUES ('{key}', {id}, {}, 1.5, 0, 100, 1);
         INSERT INTO shoal_peers VALUES ('{key}', {id}, {}, 1, 0, 100, 'yes');
         INSERT INTO shoal_peers VALUES (x'00', {id}, {}, 1, 0, 100, 1);
         INSERT INTO shoal_passkeys VALUES (42, 1);",
        db.blob(&[2; 20]),
        db.blob(&[3; 20]),
        db.blob(&[4; 20]),
    ));
    assert_eq!(loaded(&mut *store, 0), []);
    assert_eq!(store.load_passkeys().unwrap(), []);
}

/// The server goes away between two calls and comes back: the store fails while it is
/// gone and works again, without being re-opened, once it is back; the batch that
/// failed is applied exactly once.
#[test]
fn postgres_outage_is_survived() {
    let mut db = Postgres::new();
    let mut store = db.open();
    let one = batch(
        1,
        vec![UserTorrentCredit {
            uploaded: 5,
            ..credit(1, 1)
        }],
        vec![],
    );
    assert_eq!(store.commit(&one).unwrap(), CommitOutcome::Applied);

    db.server.stop().unwrap();
    let two = batch(
        2,
        vec![UserTorrentCredit {
            uploaded: 7,
            ..credit(1, 1)
        }],
        vec![baseline(1, 1, 1, 100)],
    );
    assert!(store.commit(&two).is_err());
    // While the server is down, every call fails (connection refused).
    assert!(store.commit(&two).is_err());
    assert!(store.load_passkeys().is_err());

    db.server.start_again().unwrap();
    assert_eq!(store.commit(&two).unwrap(), CommitOutcome::Applied);
    assert_eq!(store.commit(&two).unwrap(), CommitOutcome::AlreadyApplied);
    assert_eq!(user_torrent(&db, 1, 1)[0], Some(12));
    assert_eq!(loaded(&mut *store, 0), [baseline(1, 1, 1, 100)]);
}

/// The store's connection is killed by the server between two calls: the next call may
/// fail (it finds out then), and the one after works.
#[test]
fn postgres_killed_connection_is_replaced() {
    let db = Postgres::new();
    let mut store = db.open();
    let credits = |id: u8| {
        batch(
            id,
            vec![UserTorrentCredit {
                uploaded: 1,
                ..credit(1, 1)
            }],
            vec![],
        )
    };
    store.commit(&credits(1)).unwrap();
    for id in 2..5 {
        let killed = db.count(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = 'shoal'",
        );
        assert_eq!(killed, 1);
        let batch = credits(id);
        let mut outcome = store.commit(&batch);
        if outcome.is_err() {
            outcome = store.commit(&batch);
        }
        assert_eq!(outcome.unwrap(), CommitOutcome::Applied);
    }
    assert_eq!(user_torrent(&db, 1, 1)[0], Some(4));
}

#[test]
fn postgres_open_fails_when_the_server_is_down() {
    let mut db = Postgres::new();
    db.server.stop().unwrap();
    let err = store::open(&db.url()).err().unwrap();
    assert!(format!("{err:#}").contains("connect to postgresql on 127.0.0.1"));
}
