//! The MySQL backend against a real MariaDB server of the test's own
//! ([`TestMariaDb`]), and that server itself.
//!
//! The checks are written from the store's contract (`tracker_common::private::store`
//! and `ledger`): migrations run once, a batch is applied once whatever its retries, each
//! report is credited against its peer's committed mark, the (user, torrent)'s time marks
//! and the factors (a malformed row read as none), sums saturate at `i64::MAX`, and an
//! outage fails a call without losing or doubling a batch. What the store wrote is read
//! back through a connection of the test's own, never through the store.

use std::collections::HashMap;

use mysql::prelude::Queryable;
use tracker_common::private::ledger::{CreditRules, PeerReport, Point};
use tracker_common::private::passkey::Passkey;
use tracker_common::private::store::{
    AccountingStore, Batch, BatchId, CommitOutcome, MysqlStore, PasskeyUser, PeerKey, PeerState,
    derived_user_id,
};
use tracker_common::testing::mariadb::TestMariaDb;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};

/// Some Unix time in 2027.
const T0: u64 = 1_800_000_000;

const MAX: i64 = i64::MAX;

/// A `shoal_peer_marks` key as read: user, info hash, peer id.
type MarkKey = (i64, Vec<u8>, Vec<u8>);

/// A server, and a side door to it for raw SQL.
struct Db {
    server: TestMariaDb,
}

impl Db {
    fn start() -> Self {
        Self {
            server: TestMariaDb::start().unwrap(),
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn open(&self) -> MysqlStore {
        MysqlStore::open(&self.url()).unwrap()
    }

    fn conn(&self) -> mysql::Conn {
        connect(&self.url())
    }

    fn exec(&self, sql: &str) {
        self.conn().query_drop(sql).unwrap();
    }

    /// The rows of `sql`, integer (or NULL) columns.
    fn ints(&self, sql: &str) -> Vec<Vec<Option<i64>>> {
        self.conn()
            .query::<mysql::Row, _>(sql)
            .unwrap()
            .into_iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.get::<Option<i64>, _>(i).unwrap())
                    .collect()
            })
            .collect()
    }

    /// Every row of the tables a batch writes, in primary key order.
    fn snapshot(&self) -> Vec<Vec<mysql::Value>> {
        let mut conn = self.conn();
        let mut rows = Vec::new();
        for sql in [
            "SELECT * FROM shoal_credits ORDER BY user_id, info_hash",
            "SELECT * FROM shoal_peer_marks ORDER BY user_id, info_hash, peer_id",
            "SELECT * FROM shoal_batches ORDER BY id",
        ] {
            let table: Vec<mysql::Row> = conn.query(sql).unwrap();
            rows.extend(table.into_iter().map(mysql::Row::unwrap));
        }
        rows
    }

    /// `shoal_credits` of `key`'s (user, torrent): uploaded, downloaded, uploaded_raw,
    /// downloaded_raw, seed_seconds, leech_seconds, completed_at, first_announce,
    /// last_announce, flagged_announces, seed_until, leech_until.
    fn credit(&self, key: PeerKey) -> Vec<Option<i64>> {
        let mut rows = self.ints(&format!(
            "SELECT uploaded, downloaded, uploaded_raw, downloaded_raw, seed_seconds,
                    leech_seconds, completed_at, first_announce, last_announce,
                    flagged_announces, seed_until, leech_until
             FROM shoal_credits WHERE user_id = {} AND info_hash = {}",
            key.user,
            hex(&key.info_hash.0)
        ));
        assert_eq!(rows.len(), 1, "{key:?}");
        rows.remove(0)
    }

    /// Every `shoal_credits` row: (user, info hash) to uploaded, downloaded,
    /// uploaded_raw, downloaded_raw, leech_seconds, leech_until.
    fn credits(&self) -> HashMap<(i64, Vec<u8>), [i64; 6]> {
        let rows: Vec<mysql::Row> = self
            .conn()
            .query(
                "SELECT user_id, info_hash, uploaded, downloaded, uploaded_raw,
                        downloaded_raw, leech_seconds, leech_until
                 FROM shoal_credits",
            )
            .unwrap();
        rows.into_iter()
            .map(|row| {
                let values: [i64; 6] = std::array::from_fn(|i| row.get(i + 2).unwrap());
                ((row.get(0).unwrap(), row.get(1).unwrap()), values)
            })
            .collect()
    }

    /// Every `shoal_peer_marks` row: key to uploaded, downloaded, last_announce, state,
    /// noted_uploaded, noted_downloaded.
    fn marks(&self) -> HashMap<MarkKey, [Option<i64>; 6]> {
        let rows: Vec<mysql::Row> = self
            .conn()
            .query(
                "SELECT user_id, info_hash, peer_id, uploaded, downloaded, last_announce,
                        state, noted_uploaded, noted_downloaded
                 FROM shoal_peer_marks",
            )
            .unwrap();
        rows.into_iter()
            .map(|row| {
                let values = std::array::from_fn(|i| row.get(i + 3).unwrap());
                let key = (
                    row.get(0).unwrap(),
                    row.get(1).unwrap(),
                    row.get(2).unwrap(),
                );
                (key, values)
            })
            .collect()
    }
}

fn connect(url: &str) -> mysql::Conn {
    // prefer_socket would try the server's socket first, as shoal@localhost.
    let opts =
        mysql::OptsBuilder::from_opts(mysql::Opts::from_url(url).unwrap()).prefer_socket(false);
    mysql::Conn::new(opts).unwrap()
}

/// A binary literal.
fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("x'{digits}'")
}

fn rules() -> CreditRules {
    CreditRules {
        interval_secs: 1800,
        grace_secs: 300,
        flag_upload_bytes_per_sec: 0,
    }
}

/// Torrent `torrent`'s info hash: distinct for every `u32`, and not in the order of the
/// numbers (the first byte varies fastest).
fn info_hash(torrent: u32) -> InfoHash {
    let mut hash = [0xA5; 20];
    hash[..4].copy_from_slice(&torrent.to_le_bytes());
    InfoHash(hash)
}

fn key(user: i64, torrent: u32, peer: u32) -> PeerKey {
    let mut peer_id = *b"-SH0001-............";
    peer_id[16..].copy_from_slice(&peer.to_be_bytes());
    PeerKey {
        user,
        info_hash: info_hash(torrent),
        peer_id: PeerId(peer_id),
    }
}

fn peer_sql(key: PeerKey) -> String {
    format!(
        "({}, {}, {})",
        key.user,
        hex(&key.info_hash.0),
        hex(&key.peer_id.0)
    )
}

/// A report of one announce.
fn report(
    key: PeerKey,
    at: u64,
    uploaded: u64,
    downloaded: u64,
    state: PeerState,
    event: AnnounceEvent,
) -> PeerReport {
    PeerReport::new(
        key,
        Point {
            at,
            uploaded: Some(uploaded),
            downloaded: Some(downloaded),
            state,
            event,
        },
    )
}

fn batch(id: u16, created_at: u64, reports: Vec<PeerReport>) -> Batch {
    let mut bytes = [0x5A; 16];
    bytes[..2].copy_from_slice(&id.to_be_bytes());
    Batch {
        id: BatchId(bytes),
        reports,
        rules: rules(),
        created_at,
    }
}

/// A passkey of 32 times `c`.
fn passkey(c: char) -> Passkey {
    Passkey::parse(c.to_string().repeat(32).as_bytes()).unwrap()
}

/// The harness: the user `shoal` owns the database `shoal`; what a commit acknowledged is
/// there after a stop and a start on the same port; a stopped server refuses connections.
#[test]
fn the_test_server_keeps_its_data_across_a_restart() {
    let mut server = TestMariaDb::start().unwrap();
    let url = server.url();
    assert!(url.starts_with("mysql://shoal@127.0.0.1:"), "{url}");
    let mut conn = connect(&url);
    conn.query_drop("CREATE TABLE t (x BIGINT PRIMARY KEY) ENGINE=InnoDB")
        .unwrap();
    conn.query_drop("INSERT INTO t VALUES (1), (2)").unwrap();
    drop(conn);
    server.stop().unwrap();
    assert!(mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).is_err());
    server.start_again().unwrap();
    assert_eq!(server.url(), url);
    let sum: Option<i64> = connect(&url).query_first("SELECT SUM(x) FROM t").unwrap();
    assert_eq!(sum, Some(3));
}

#[test]
fn migrations_run_once_even_when_two_stores_open_a_new_database_at_once() {
    let db = Db::start();
    let url = db.url();
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let opens: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    MysqlStore::open(&url).map(drop)
                })
            })
            .collect();
        for open in opens {
            open.join().unwrap().unwrap();
        }
    });
    let tables = || -> Vec<String> {
        db.conn()
            .query(
                "SELECT table_name FROM information_schema.tables
                 WHERE table_schema = 'shoal' AND engine = 'InnoDB' ORDER BY table_name",
            )
            .unwrap()
    };
    let expected = [
        "shoal_batches",
        "shoal_credits",
        "shoal_lock",
        "shoal_passkeys",
        "shoal_peer_marks",
        "shoal_schema_migrations",
        "shoal_settings",
        "shoal_torrents",
        "shoal_users",
    ];
    assert_eq!(tables(), expected);
    let versions = "SELECT version FROM shoal_schema_migrations";
    assert_eq!(db.ints(versions), [[Some(1)]]);
    assert_eq!(db.ints("SELECT id FROM shoal_lock"), [[Some(1)]]);

    // Again: nothing to do.
    db.open();
    assert_eq!(tables(), expected);
    assert_eq!(db.ints(versions), [[Some(1)]]);
    assert_eq!(db.ints("SELECT id FROM shoal_lock"), [[Some(1)]]);

    // A migration cut short (MySQL commits each CREATE TABLE on its own): some tables
    // there, the version not recorded. It is applied again over them.
    db.exec("DELETE FROM shoal_schema_migrations");
    db.exec("DROP TABLE shoal_lock, shoal_batches");
    db.open();
    assert_eq!(tables(), expected);
    assert_eq!(db.ints(versions), [[Some(1)]]);
    assert_eq!(db.ints("SELECT id FROM shoal_lock"), [[Some(1)]]);
}

#[test]
fn a_batch_retried_with_its_id_applies_nothing() {
    let db = Db::start();
    let mut store = db.open();
    let peer = key(7, 1, 1);
    let first = batch(
        1,
        T0,
        vec![report(
            peer,
            T0,
            100,
            50,
            PeerState::Leeching,
            AnnounceEvent::Started,
        )],
    );
    assert_eq!(store.commit(&first).unwrap(), CommitOutcome::Applied);
    let t0 = Some(T0 as i64);
    let zero = Some(0);
    assert_eq!(
        db.credit(peer),
        [
            Some(100),
            Some(50),
            Some(100),
            Some(50),
            zero,
            zero,
            None,
            t0,
            t0,
            zero,
            zero,
            zero
        ]
    );
    let applied = db.snapshot();
    assert_eq!(store.commit(&first).unwrap(), CommitOutcome::AlreadyApplied);
    assert_eq!(db.snapshot(), applied);
    // Another store (another tracker retrying) finds it too.
    assert_eq!(
        db.open().commit(&first).unwrap(),
        CommitOutcome::AlreadyApplied
    );
    assert_eq!(db.snapshot(), applied);

    // The next batch is credited against the committed mark: 300 up, 100 down and 600 s
    // leeching (the previous state), time credited up to its announce.
    let t1 = T0 + 600;
    let second = batch(
        2,
        t1,
        vec![report(
            peer,
            t1,
            400,
            150,
            PeerState::Seeding,
            AnnounceEvent::None,
        )],
    );
    assert_eq!(store.commit(&second).unwrap(), CommitOutcome::Applied);
    let t1 = Some(t1 as i64);
    assert_eq!(
        db.credit(peer),
        [
            Some(400),
            Some(150),
            Some(400),
            Some(150),
            zero,
            Some(600),
            None,
            t0,
            t1,
            zero,
            zero,
            t1
        ]
    );
    assert_eq!(
        db.ints("SELECT uploaded, downloaded, last_announce, state FROM shoal_peer_marks"),
        [[Some(400), Some(150), t1, Some(1)]]
    );
    // Each batch recorded once, with its time and its number of reports.
    assert_eq!(
        db.ints("SELECT committed_at, credits FROM shoal_batches ORDER BY committed_at"),
        [[t0, Some(1)], [t1, Some(1)]]
    );
}

#[test]
fn load_site_reads_the_site_tables_and_skips_malformed_rows() {
    let db = Db::start();
    let mut store = db.open();
    let (alice, bob, carol) = (passkey('a'), passkey('b'), passkey('c'));
    db.exec(&format!(
        "INSERT INTO shoal_passkeys (passkey, enabled, user_id) VALUES
            ('{}', TRUE, 7), ('{}', TRUE, NULL), ('{}', FALSE, 9),
            ('tooshort', TRUE, 10), ('0123456789-abcdef0123456789abcde', TRUE, 11)",
        alice.as_str(),
        bob.as_str(),
        carol.as_str()
    ));
    db.exec(
        "INSERT INTO shoal_users (user_id, can_leech) VALUES (7, FALSE), (8, TRUE), (-3, FALSE)",
    );
    // BINARY(20) pads what is shorter and refuses what is longer: a site's own column
    // type could hold either.
    db.exec("ALTER TABLE shoal_torrents MODIFY info_hash VARBINARY(64) NOT NULL");
    db.exec(&format!(
        "INSERT INTO shoal_torrents (info_hash) VALUES ({}), ({}), ({}), ({})",
        hex(&[1; 20]),
        hex(&[2; 20]),
        hex(&[3; 19]),
        hex(&[4; 21])
    ));

    let mut site = store.load_site().unwrap();
    site.passkeys.sort_by_key(|p| p.user);
    let mut expected = vec![
        PasskeyUser {
            passkey: alice,
            user: 7,
        },
        PasskeyUser {
            passkey: bob,
            user: derived_user_id(&bob),
        },
    ];
    expected.sort_by_key(|p| p.user);
    assert_eq!(site.passkeys, expected);
    site.no_leech.sort_unstable();
    assert_eq!(site.no_leech, [-3, 7]);
    site.torrents.sort_unstable_by_key(|h| h.0);
    assert_eq!(site.torrents, [InfoHash([1; 20]), InfoHash([2; 20])]);
}

/// The ledger's reads (marks, time marks, factors) over three chunks of keys, some rows
/// missing and some malformed, interleaved: every peer has a (user, torrent) of its own
/// and numbers of its own, so a row read for the wrong key, or a malformed row read as
/// a value, shows in that peer's credit.
#[test]
fn each_report_is_credited_against_its_own_rows() {
    const PEERS: u32 = 2_500;
    let db = Db::start();
    let mut store = db.open();
    let peer = |i: u32| key(i64::from(i % 7) - 3, i, i);
    let has_mark = |i: u32| !i.is_multiple_of(3);
    let malformed_mark = |i: u32| has_mark(i) && i.is_multiple_of(11);
    let up_a = |i: u32| 1_000 + u64::from(i);
    let down_a = |i: u32| u64::from(i);
    let up_b = |i: u32| 10 * u64::from(i) + 1;

    let first: Vec<PeerReport> = (0..PEERS)
        .filter(|&i| has_mark(i))
        .map(|i| {
            let event = AnnounceEvent::Started;
            report(peer(i), T0, up_a(i), down_a(i), PeerState::Leeching, event)
        })
        .collect();
    assert_eq!(
        store.commit(&batch(1, T0, first)).unwrap(),
        CommitOutcome::Applied
    );

    // Only the second batch's credit is checked: the first one's is set to zero. Marks
    // made malformed: a negative counter, an unknown state, or half the noted counters.
    db.exec(
        "UPDATE shoal_credits SET uploaded = 0, downloaded = 0, uploaded_raw = 0,
             downloaded_raw = 0",
    );
    let keys = |filter: &dyn Fn(u32) -> bool| -> String {
        let keys: Vec<String> = (0..PEERS)
            .filter(|&i| filter(i))
            .map(|i| peer_sql(peer(i)))
            .collect();
        keys.join(", ")
    };
    db.exec(&format!(
        "UPDATE shoal_peer_marks SET uploaded = -1 WHERE (user_id, info_hash, peer_id) IN ({})",
        keys(&|i| malformed_mark(i) && (i / 33) % 3 == 0)
    ));
    db.exec(&format!(
        "UPDATE shoal_peer_marks SET state = 9 WHERE (user_id, info_hash, peer_id) IN ({})",
        keys(&|i| malformed_mark(i) && (i / 33) % 3 == 1)
    ));
    db.exec(&format!(
        "UPDATE shoal_peer_marks SET noted_uploaded = 5
         WHERE (user_id, info_hash, peer_id) IN ({})",
        keys(&|i| malformed_mark(i) && (i / 33) % 3 == 2)
    ));
    // Time marks: leeching credited up to T0 + 500 (100 s of the next 600 left), or a
    // malformed one (none: all 600 s).
    let user_torrents = |filter: &dyn Fn(u32) -> bool| -> String {
        let keys: Vec<String> = (0..PEERS)
            .filter(|&i| filter(i))
            .map(|i| format!("({}, {})", peer(i).user, hex(&peer(i).info_hash.0)))
            .collect();
        keys.join(", ")
    };
    db.exec(&format!(
        "UPDATE shoal_credits SET leech_until = {} WHERE (user_id, info_hash) IN ({})",
        T0 + 500,
        user_torrents(&|i| i % 5 == 0)
    ));
    db.exec(&format!(
        "UPDATE shoal_credits SET leech_until = -5 WHERE (user_id, info_hash) IN ({})",
        user_torrents(&|i| i % 5 == 1)
    ));
    // Factors: double upload everywhere; per torrent, none (100 %), its own, or a
    // malformed upload percent (100 %).
    db.exec("INSERT INTO shoal_settings (name, value) VALUES ('upload_percent', 200)");
    let torrent_up = |i: u32| match i % 4 {
        0 => None,
        1 if i.is_multiple_of(9) => Some(-7),
        _ => Some(i64::from(i % 300)),
    };
    let torrent_down = |i: u32| (!i.is_multiple_of(4)).then(|| i64::from(100 - i % 100));
    let rows: Vec<String> = (0..PEERS)
        .filter_map(|i| {
            let (up, down) = (torrent_up(i)?, torrent_down(i)?);
            Some(format!("({}, {up}, {down})", hex(&info_hash(i).0)))
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO shoal_torrents (info_hash, upload_percent, download_percent) VALUES {}",
        rows.join(", ")
    ));

    let t1 = T0 + 600;
    let second: Vec<PeerReport> = (0..PEERS)
        .map(|i| {
            let (up, down) = (up_a(i) + up_b(i), down_a(i) + 7);
            report(
                peer(i),
                t1,
                up,
                down,
                PeerState::Leeching,
                AnnounceEvent::None,
            )
        })
        .collect();
    assert_eq!(
        store.commit(&batch(2, t1, second)).unwrap(),
        CommitOutcome::Applied
    );

    let credits = db.credits();
    let marks = db.marks();
    assert_eq!(credits.len(), PEERS as usize);
    assert_eq!(marks.len(), PEERS as usize);
    for i in 0..PEERS {
        let key = peer(i);
        // Read against a mark: what went beyond it, and the time since it beyond the
        // time mark. Without one (none, or malformed): nothing.
        let expected = if has_mark(i) && !malformed_mark(i) {
            let up = i64::try_from(up_b(i)).unwrap();
            let percent = torrent_up(i).filter(|p| *p >= 0).unwrap_or(100);
            let down_percent = torrent_down(i).unwrap_or(100);
            let leech = if i % 5 == 0 { 100 } else { 600 };
            [
                up * percent * 200 / 10_000,
                7 * down_percent / 100,
                up,
                7,
                leech,
                t1 as i64,
            ]
        } else if has_mark(i) {
            // The first batch's row; its time mark as the test left it, a malformed one
            // replaced by the (none) it was read as.
            let until = if i % 5 == 0 { T0 as i64 + 500 } else { 0 };
            [0, 0, 0, 0, 0, until]
        } else {
            [0, 0, 0, 0, 0, 0]
        };
        let credit = credits[&(key.user, key.info_hash.0.to_vec())];
        assert_eq!(credit, expected, "peer {i}");
        // Every mark is now the second report's; one set without a start (no mark
        // read) has its counters noted.
        let mark = marks[&(key.user, key.info_hash.0.to_vec(), key.peer_id.0.to_vec())];
        let (up, down) = (
            Some(i64::try_from(up_a(i) + up_b(i)).unwrap()),
            Some(i64::try_from(down_a(i) + 7).unwrap()),
        );
        let noted = if has_mark(i) && !malformed_mark(i) {
            (None, None)
        } else {
            (up, down)
        };
        let expected_mark = [up, down, Some(t1 as i64), Some(0), noted.0, noted.1];
        assert_eq!(mark, expected_mark, "peer {i}");
    }
}

/// A peer first seen without its start has its counters noted in its mark (both columns
/// written, and read back as a pair); the start's report, older than the mark, credits
/// them once.
#[test]
fn noted_counters_wait_for_the_start() {
    let db = Db::start();
    let mut store = db.open();
    let peer = key(4, 4, 4);
    let leeching = PeerState::Leeching;
    let later = report(peer, T0 + 60, 500, 20, leeching, AnnounceEvent::None);
    assert_eq!(
        store.commit(&batch(1, T0 + 60, vec![later])).unwrap(),
        CommitOutcome::Applied
    );
    let noted = "SELECT noted_uploaded, noted_downloaded FROM shoal_peer_marks";
    assert_eq!(db.ints(noted), [[Some(500), Some(20)]]);
    assert_eq!(db.credit(peer)[..2], [Some(0), Some(0)]);

    let start = || report(peer, T0, 0, 0, leeching, AnnounceEvent::Started);
    assert_eq!(
        store.commit(&batch(2, T0, vec![start()])).unwrap(),
        CommitOutcome::Applied
    );
    assert_eq!(db.ints(noted), [[None, None]]);
    assert_eq!(db.credit(peer)[..2], [Some(500), Some(20)]);
    // The same start again (another tracker's report of it): nothing more.
    assert_eq!(
        store.commit(&batch(3, T0, vec![start()])).unwrap(),
        CommitOutcome::Applied
    );
    assert_eq!(db.credit(peer)[..2], [Some(500), Some(20)]);
}

#[test]
fn counters_saturate_at_i64_max() {
    let db = Db::start();
    let mut store = db.open();
    let rules = CreditRules {
        // Every step here is flagged, so flagged_announces is added to as well.
        flag_upload_bytes_per_sec: 1,
        ..rules()
    };
    let (leecher, seeder) = (key(1, 1, 1), key(1, 1, 2));
    let mut first = batch(
        1,
        T0,
        vec![
            report(
                leecher,
                T0,
                10,
                10,
                PeerState::Leeching,
                AnnounceEvent::Started,
            ),
            report(
                seeder,
                T0,
                10,
                0,
                PeerState::Seeding,
                AnnounceEvent::Started,
            ),
        ],
    );
    first.rules = rules;
    assert_eq!(store.commit(&first).unwrap(), CommitOutcome::Applied);
    db.exec(&format!(
        "UPDATE shoal_credits SET uploaded = {0}, downloaded = {0}, uploaded_raw = {0},
             downloaded_raw = {0}, seed_seconds = {0}, leech_seconds = {0},
             flagged_announces = {1}",
        MAX - 5,
        MAX - 1
    ));
    let t1 = T0 + 600;
    let mut second = batch(
        2,
        t1,
        vec![
            report(
                leecher,
                t1,
                1_000_010,
                1_010,
                PeerState::Leeching,
                AnnounceEvent::None,
            ),
            report(
                seeder,
                t1,
                1_000_010,
                0,
                PeerState::Seeding,
                AnnounceEvent::None,
            ),
        ],
    );
    second.rules = rules;
    assert_eq!(store.commit(&second).unwrap(), CommitOutcome::Applied);
    let max = Some(MAX);
    let credit = db.credit(leecher);
    assert_eq!(credit[..6], [max; 6]);
    assert_eq!(credit[9], max, "flagged_announces");

    // A client that reports counters beyond i64: stored as i64::MAX, then added to.
    let huge = key(2, 2, 2);
    let report_huge = |at, event| report(huge, at, u64::MAX, u64::MAX, PeerState::Leeching, event);
    let third = batch(3, T0, vec![report_huge(T0, AnnounceEvent::Started)]);
    assert_eq!(store.commit(&third).unwrap(), CommitOutcome::Applied);
    assert_eq!(db.credit(huge)[..4], [max; 4]);
    db.exec("DELETE FROM shoal_peer_marks");
    let fourth = batch(4, t1, vec![report_huge(t1, AnnounceEvent::Started)]);
    assert_eq!(store.commit(&fourth).unwrap(), CommitOutcome::Applied);
    assert_eq!(db.credit(huge)[..4], [max; 4]);
}

#[test]
fn forget_before_deletes_old_marks_and_batches_only() {
    let db = Db::start();
    let mut store = db.open();
    let (old, new) = (key(1, 1, 1), key(1, 1, 2));
    let started = AnnounceEvent::Started;
    let early = batch(
        1,
        T0,
        vec![report(old, T0, 1, 1, PeerState::Seeding, started)],
    );
    let t1 = T0 + 5_000;
    let late = batch(
        2,
        t1,
        vec![report(new, t1, 1, 1, PeerState::Seeding, started)],
    );
    assert_eq!(store.commit(&early).unwrap(), CommitOutcome::Applied);
    assert_eq!(store.commit(&late).unwrap(), CommitOutcome::Applied);
    let credits = db.credits();

    assert_eq!(store.forget_before(T0).unwrap(), 0);
    assert_eq!(store.forget_before(T0 + 1_000).unwrap(), 1);
    assert_eq!(
        db.ints("SELECT last_announce FROM shoal_peer_marks"),
        [[Some(t1 as i64)]]
    );
    assert_eq!(
        db.ints("SELECT committed_at FROM shoal_batches"),
        [[Some(t1 as i64)]]
    );
    assert_eq!(db.credits(), credits, "credits are never forgotten");
    assert_eq!(store.forget_before(T0 + 1_000).unwrap(), 0);
    // The batch kept is still known.
    assert_eq!(store.commit(&late).unwrap(), CommitOutcome::AlreadyApplied);
}

#[test]
fn a_commit_during_an_outage_fails_and_its_retry_applies_once() {
    let mut db = Db::start();
    let mut store = db.open();
    let peer = key(5, 5, 5);
    let started = AnnounceEvent::Started;
    let first = batch(
        1,
        T0,
        vec![report(peer, T0, 10, 0, PeerState::Seeding, started)],
    );
    assert_eq!(store.commit(&first).unwrap(), CommitOutcome::Applied);

    db.server.stop().unwrap();
    let t1 = T0 + 60;
    let next = AnnounceEvent::None;
    let second = batch(
        2,
        t1,
        vec![report(peer, t1, 30, 0, PeerState::Seeding, next)],
    );
    let err = format!("{:#}", store.commit(&second).unwrap_err());
    assert!(err.contains("connect to mysql on 127.0.0.1 port"), "{err}");
    assert!(store.load_site().is_err());
    assert!(store.forget_before(0).is_err());

    db.server.start_again().unwrap();
    assert_eq!(store.commit(&second).unwrap(), CommitOutcome::Applied);
    assert_eq!(
        store.commit(&second).unwrap(),
        CommitOutcome::AlreadyApplied
    );
    // 10 + 20 bytes and 60 s seeding: the second batch once.
    let credit = db.credit(peer);
    assert_eq!(
        credit[..6],
        [Some(30), Some(0), Some(30), Some(0), Some(60), Some(0)]
    );

    // A restart between two calls costs no failed call: the connection is pinged first.
    db.server.stop().unwrap();
    db.server.start_again().unwrap();
    let t2 = T0 + 120;
    let third = batch(
        3,
        t2,
        vec![report(peer, t2, 70, 0, PeerState::Seeding, next)],
    );
    assert_eq!(store.commit(&third).unwrap(), CommitOutcome::Applied);
    assert_eq!(
        db.credit(peer)[..5],
        [Some(70), Some(0), Some(70), Some(0), Some(120)]
    );

    // So does a connection the server closed (wait_timeout, an operator's KILL).
    let mut side = db.conn();
    let others: Vec<u64> = side
        .query(
            "SELECT id FROM information_schema.processlist
             WHERE user = 'shoal' AND id <> CONNECTION_ID()",
        )
        .unwrap();
    assert_eq!(others.len(), 1, "the store's connection");
    for id in others {
        side.query_drop(format!("KILL CONNECTION {id}")).unwrap();
    }
    let t3 = T0 + 180;
    let fourth = batch(
        4,
        t3,
        vec![report(peer, t3, 80, 0, PeerState::Seeding, next)],
    );
    assert_eq!(store.commit(&fourth).unwrap(), CommitOutcome::Applied);
    assert_eq!(
        db.credit(peer)[..5],
        [Some(80), Some(0), Some(80), Some(0), Some(180)]
    );
}

/// Without the row every batch locks, writers would not be serialised: commits stop
/// (applying nothing) until it is back.
#[test]
fn a_missing_lock_row_stops_commits() {
    let db = Db::start();
    let mut store = db.open();
    db.exec("DELETE FROM shoal_lock");
    let peer = key(3, 3, 3);
    let started = AnnounceEvent::Started;
    let first = batch(
        1,
        T0,
        vec![report(peer, T0, 10, 0, PeerState::Seeding, started)],
    );
    let err = format!("{:#}", store.commit(&first).err().unwrap());
    assert!(err.contains("shoal_lock has no row"), "{err}");
    assert_eq!(db.ints("SELECT COUNT(*) FROM shoal_batches"), [[Some(0)]]);
    assert_eq!(db.ints("SELECT COUNT(*) FROM shoal_credits"), [[Some(0)]]);
    db.exec("INSERT INTO shoal_lock (id) VALUES (1)");
    assert_eq!(store.commit(&first).unwrap(), CommitOutcome::Applied);
}

#[test]
fn errors_name_the_server_but_never_the_password() {
    let mut db = Db::start();
    let with_password = db.url().replacen("shoal@", "shoal:hunter2@", 1);
    // The user has no password: the server refuses one.
    let err = format!("{:#}", MysqlStore::open(&with_password).err().unwrap());
    assert!(err.contains("Access denied"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    db.server.stop().unwrap();
    let err = format!("{:#}", MysqlStore::open(&with_password).err().unwrap());
    assert!(err.contains("127.0.0.1 port"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// Two trackers that saw the same announces of one peer, each committing its own batches
/// at the same time: the accounting lock puts their batches in one order, and every step
/// is credited once, whichever reported it first.
#[test]
fn two_stores_committing_at_once_credit_each_step_once() {
    const STEPS: u64 = 20;
    let db = Db::start();
    let peer = key(9, 9, 9);
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let trackers: Vec<_> = (0..2u16)
            .map(|tracker| {
                let (db, barrier) = (&db, &barrier);
                scope.spawn(move || {
                    let mut store = db.open();
                    barrier.wait();
                    for step in 0..STEPS {
                        let at = T0 + 60 * step;
                        let event = if step == 0 {
                            AnnounceEvent::Started
                        } else {
                            AnnounceEvent::None
                        };
                        let up = 1_000 * step;
                        let reports = vec![report(peer, at, up, 0, PeerState::Seeding, event)];
                        let id = tracker * 100 + u16::try_from(step).unwrap();
                        let outcome = store.commit(&batch(id, at, reports)).unwrap();
                        assert_eq!(outcome, CommitOutcome::Applied);
                    }
                })
            })
            .collect();
        for tracker in trackers {
            tracker.join().unwrap();
        }
    });
    let credit = db.credit(peer);
    let (up, secs) = (1_000 * (STEPS - 1) as i64, 60 * (STEPS - 1) as i64);
    assert_eq!(
        credit[..6],
        [Some(up), Some(0), Some(up), Some(0), Some(secs), Some(0)]
    );
}
