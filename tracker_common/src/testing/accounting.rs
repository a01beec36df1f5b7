//! Scenario tests of private mode, shared by the three trackers.
//!
//! A [`Script`] is a seeded sequence of announces: two users (passkeys), three
//! torrents, seven peers (one user runs two clients on one torrent), in rounds. Round 0
//! is every peer's `started` with zero counters; each later round moves bytes (counters
//! are cumulative, as BEP 3 says), leechers whose `left` reaches 0 announce `completed`
//! (all in round 1), and in the last round some peers stop. Every announce of round 2 is
//! sent twice, as a multi-homed client would. [`Script::truth`] is, per (passkey, info
//! hash), the bytes its peers moved and whether one completed: what
//! `shoal_credits` must hold at the end.
//!
//! [`run_scenario`] starts the tracker binary in private mode on a passkey file and a
//! fresh SQLite file or PostgreSQL server, plays the script through a protocol's
//! [`AnnounceClient`], and interrupts it after round 2 as [`Interruption`] says:
//! - [`Interruption::None`]: a clean run;
//! - [`Interruption::Sigterm`]: SIGTERM (it must exit 0), then a restart;
//! - [`Interruption::Kill`]: SIGKILL, then a restart. Round 1's commit (the completions
//!   and every peer's baseline) is waited for before round 2, so that what the crash
//!   loses is only what the peers' cumulative counters carry (see the private module's
//!   documentation for what a crash can lose beyond that);
//! - [`Interruption::DatabaseOutage`] (PostgreSQL): the server is stopped after round 2,
//!   rounds 3 and 4 are played while it is down (every announce must still be
//!   answered), it stays down for several flush intervals more, and is started again.
//!
//! At the end the sums in `shoal_credits` must equal the truth (polled until they
//! do, 30 s at most), and still equal it after a last SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::private::passkey::Passkey;
use crate::private::store::derived_user_id;
use crate::private::{AccountingConfig, PrivateConfig};
use crate::testing::mariadb::TestMariaDb;
use crate::testing::postgres::TestPostgres;
use crate::testing::{Spawned, temp_dir};
use crate::types::{AnnounceEvent, InfoHash, PeerId};

/// The first user's passkey.
pub const PASSKEY_A: Passkey = Passkey(*b"AliceAliceAliceAliceAliceAlice01");
/// The second user's passkey.
pub const PASSKEY_B: Passkey = Passkey(*b"BobBobBobBobBobBobBobBobBobBob02");
/// A well-formed passkey that is not in the file.
pub const PASSKEY_UNKNOWN: Passkey = Passkey(*b"MalloryMalloryMalloryMallory0003");

/// The accounting flush interval of the scenarios, in seconds.
pub const FLUSH_INTERVAL_SECS: u64 = 1;

/// One peer of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptPeer {
    /// Its user.
    pub passkey: Passkey,
    /// Its torrent.
    pub info_hash: InfoHash,
    /// Its peer id (starts with `-qB4`, a client on any allow list the tests use).
    pub peer_id: PeerId,
    /// Its port.
    pub port: u16,
}

/// One announce of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index of the peer in [`Script::peers`].
    pub peer: usize,
    /// The event.
    pub event: AnnounceEvent,
    /// Cumulative bytes uploaded since `started`.
    pub uploaded: u64,
    /// Cumulative bytes downloaded since `started`.
    pub downloaded: u64,
    /// Bytes left.
    pub left: u64,
}

/// What `shoal_credits` holds for one (passkey, info hash), as far as the
/// scenarios check it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Bytes uploaded credited.
    pub uploaded: u64,
    /// Bytes downloaded credited.
    pub downloaded: u64,
    /// Whether a completion is recorded.
    pub completed: bool,
}

/// A scripted run.
#[derive(Clone, Debug)]
pub struct Script {
    /// The peers.
    pub peers: Vec<ScriptPeer>,
    /// The announces, round by round.
    pub rounds: Vec<Vec<Step>>,
}

/// Rounds of every script.
pub const ROUNDS: usize = 6;

impl Script {
    /// The script of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let torrents: Vec<InfoHash> = (0..3u8).map(|t| InfoHash([0xa0 + t; 20])).collect();
        let owners = [
            (PASSKEY_A, 0),
            (PASSKEY_A, 0),
            (PASSKEY_A, 1),
            (PASSKEY_A, 2),
            (PASSKEY_B, 0),
            (PASSKEY_B, 1),
            (PASSKEY_B, 2),
        ];
        let peers: Vec<ScriptPeer> = owners
            .iter()
            .enumerate()
            .map(|(i, &(passkey, torrent))| {
                let mut id = [b'0'; 20];
                id[..4].copy_from_slice(b"-qB4");
                id[19] = b'a' + i as u8;
                ScriptPeer {
                    passkey,
                    info_hash: torrents[torrent],
                    peer_id: PeerId(id),
                    port: 40_000 + i as u16,
                }
            })
            .collect();
        // Leechers start with something left and finish in round 1.
        let mut state: Vec<(u64, u64, u64)> = peers
            .iter()
            .map(|_| {
                let left = if rng.random_bool(0.5) {
                    rng.random_range(100_000..2_000_000)
                } else {
                    0
                };
                (0, 0, left)
            })
            .collect();
        let mut rounds = Vec::with_capacity(ROUNDS);
        rounds.push(
            (0..peers.len())
                .map(|peer| Step {
                    peer,
                    event: AnnounceEvent::Started,
                    uploaded: 0,
                    downloaded: 0,
                    left: state[peer].2,
                })
                .collect(),
        );
        for round in 1..ROUNDS {
            let mut steps = Vec::new();
            for (peer, (up, down, left)) in state.iter_mut().enumerate() {
                *up += rng.random_range(0..500_000);
                let mut event = AnnounceEvent::None;
                if round == 1 && *left > 0 {
                    *down += *left;
                    *left = 0;
                    event = AnnounceEvent::Completed;
                } else {
                    // Seeders re-download nothing; a little protocol overhead counts.
                    *down += rng.random_range(0..1_000);
                }
                if round == ROUNDS - 1 && peer % 2 == 0 {
                    event = AnnounceEvent::Stopped;
                }
                steps.push(Step {
                    peer,
                    event,
                    uploaded: *up,
                    downloaded: *down,
                    left: *left,
                });
            }
            rounds.push(steps);
        }
        Self { peers, rounds }
    }

    /// What the database must hold at the end: per (passkey, info hash), the bytes its
    /// peers moved (their last counters: they count from `started`, which was at zero)
    /// and whether one of them completed.
    pub fn truth(&self) -> BTreeMap<(Passkey, InfoHash), Totals> {
        let mut totals: BTreeMap<(Passkey, InfoHash), Totals> = BTreeMap::new();
        for (index, peer) in self.peers.iter().enumerate() {
            let steps = self.rounds.iter().flatten().filter(|s| s.peer == index);
            let last = steps.clone().next_back();
            let entry = totals.entry((peer.passkey, peer.info_hash)).or_default();
            if let Some(last) = last {
                entry.uploaded += last.uploaded;
                entry.downloaded += last.downloaded;
            }
            entry.completed |= steps
                .into_iter()
                .any(|s| s.event == AnnounceEvent::Completed);
        }
        totals
    }
}

/// Sends a protocol's announces.
pub trait AnnounceClient {
    /// Sends `step` for `peer` to the tracker at `tracker` and waits for an answer that
    /// is not an error.
    ///
    /// # Errors
    /// No answer, or an error answer.
    fn announce(
        &mut self,
        tracker: SocketAddr,
        peer: &ScriptPeer,
        step: &Step,
    ) -> anyhow::Result<()>;

    /// Forgets connections: the tracker was restarted.
    fn reset(&mut self) {}
}

/// The accounting database of a scenario.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's directory.
    Sqlite,
    /// A PostgreSQL server of the test's own ([`TestPostgres`]).
    Postgres,
    /// A MariaDB server of the test's own ([`TestMariaDb`]).
    Mysql,
}

/// What happens after round 2.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Interruption {
    /// Nothing.
    None,
    /// SIGTERM and a restart.
    Sigterm,
    /// SIGKILL and a restart.
    Kill,
    /// The PostgreSQL server stops for rounds 3 and 4 and several flush intervals.
    DatabaseOutage,
}

/// The tracker under test.
pub struct ScenarioTracker<'a> {
    /// Its binary (`env!("CARGO_BIN_EXE_tracker_udp")`, say).
    pub binary: &'a Path,
    /// A name for the test's directory.
    pub name: &'a str,
}

/// The accounting URL of the SQLite file `accounting.db` in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("accounting.db").display())
}

/// The database under test and how to read it.
pub struct Database {
    /// The accounting URL.
    pub url: String,
    /// The server, for PostgreSQL.
    pub postgres: Option<TestPostgres>,
    /// The server, for MariaDB.
    pub mariadb: Option<TestMariaDb>,
}

impl Database {
    /// A fresh database of `backend` for a test in `dir`.
    ///
    /// # Panics
    /// PostgreSQL could not be started (not installed: run scripts/install-test-deps.sh).
    pub fn new(backend: Backend, dir: &Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: sqlite_url(dir),
                postgres: None,
                mariadb: None,
            },
            Backend::Postgres => {
                let server =
                    TestPostgres::start().unwrap_or_else(|err| panic!("start PostgreSQL: {err:#}"));
                Self {
                    url: server.url(),
                    postgres: Some(server),
                    mariadb: None,
                }
            }
            Backend::Mysql => {
                let server =
                    TestMariaDb::start().unwrap_or_else(|err| panic!("start MariaDB: {err:#}"));
                Self {
                    url: server.url(),
                    postgres: None,
                    mariadb: Some(server),
                }
            }
        }
    }

    /// Every row of `shoal_credits`, as [`Totals`] under users A and B.
    ///
    /// # Errors
    /// The database cannot be read, or a row's passkey or info hash is malformed (so that
    /// credit under such a key cannot go unseen).
    pub fn totals(&self) -> anyhow::Result<BTreeMap<(Passkey, InfoHash), Totals>> {
        let mut out = BTreeMap::new();
        let users = [PASSKEY_A, PASSKEY_B].map(|k| (derived_user_id(&k), k));
        let mut put = |user: i64, hash: Vec<u8>, up: i64, down: i64, done: Option<i64>| {
            let passkey = users.iter().find(|(id, _)| *id == user).map(|(_, k)| *k);
            let (Some(key), Ok(hash)) = (passkey, <[u8; 20]>::try_from(hash.as_slice())) else {
                anyhow::bail!(
                    "shoal_credits has a row under user {user} (neither A nor B) or an info \
                     hash of {} bytes",
                    hash.len()
                );
            };
            out.insert(
                (key, InfoHash(hash)),
                Totals {
                    uploaded: up as u64,
                    downloaded: down as u64,
                    completed: done.is_some(),
                },
            );
            Ok(())
        };
        const QUERY: &str = "SELECT user_id, info_hash, uploaded, downloaded, completed_at \
                             FROM shoal_credits";
        if let Some(path) = self.url.strip_prefix("sqlite://") {
            let db = rusqlite::Connection::open(path)?;
            let mut statement = db.prepare(QUERY)?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                put(
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                )?;
            }
        } else if self.url.starts_with("mysql://") {
            use mysql::prelude::Queryable;
            let mut conn = self.mysql()?;
            let rows: Vec<mysql::Row> = conn.query(QUERY)?;
            for row in rows {
                let (user, hash, up, down, done): (i64, Vec<u8>, i64, i64, Option<i64>) =
                    mysql::from_row_opt(row)?;
                put(user, hash, up, down, done)?;
            }
        } else {
            let mut client = postgres::Client::connect(&self.url, postgres::NoTls)?;
            for row in client.query(QUERY, &[])? {
                put(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                )?;
            }
        }
        Ok(out)
    }

    /// `(seed_seconds, leech_seconds)` of `user` on `info_hash` (0 without a row).
    ///
    /// # Errors
    /// The database cannot be read.
    pub fn seconds(&self, user: i64, info_hash: InfoHash) -> anyhow::Result<(u64, u64)> {
        const QUERY: &str = "SELECT seed_seconds, leech_seconds FROM shoal_credits \
                             WHERE user_id = $1 AND info_hash = $2";
        let row: Option<(i64, i64)> = if let Some(path) = self.url.strip_prefix("sqlite://") {
            use rusqlite::OptionalExtension;
            rusqlite::Connection::open(path)?
                .query_row(
                    &QUERY.replace('$', "?"),
                    rusqlite::params![user, &info_hash.0[..]],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?
        } else if self.url.starts_with("mysql://") {
            use mysql::prelude::Queryable;
            self.mysql()?.exec_first(
                QUERY.replace("$1", "?").replace("$2", "?"),
                (user, info_hash.0.to_vec()),
            )?
        } else {
            postgres::Client::connect(&self.url, postgres::NoTls)?
                .query_opt(QUERY, &[&user, &&info_hash.0[..]])?
                .map(|row| (row.get(0), row.get(1)))
        };
        Ok(row.map_or((0, 0), |(seed, leech)| (seed as u64, leech as u64)))
    }

    /// Every time the database holds, named: `shoal_batches.committed_at`,
    /// `shoal_credits.first_announce` and `last_announce`, `shoal_peer_marks.last_announce`.
    ///
    /// # Errors
    /// The database cannot be read.
    pub fn times(&self) -> anyhow::Result<Vec<(&'static str, u64)>> {
        const QUERIES: [(&str, &str); 4] = [
            (
                "shoal_batches.committed_at",
                "SELECT committed_at FROM shoal_batches",
            ),
            (
                "shoal_credits.first_announce",
                "SELECT first_announce FROM shoal_credits",
            ),
            (
                "shoal_credits.last_announce",
                "SELECT last_announce FROM shoal_credits",
            ),
            (
                "shoal_peer_marks.last_announce",
                "SELECT last_announce FROM shoal_peer_marks",
            ),
        ];
        let mut out = Vec::new();
        for (name, query) in QUERIES {
            let values: Vec<i64> = if let Some(path) = self.url.strip_prefix("sqlite://") {
                let db = rusqlite::Connection::open(path)?;
                let mut statement = db.prepare(query)?;
                let rows = statement.query_map([], |row| row.get(0))?;
                rows.collect::<Result<_, _>>()?
            } else if self.url.starts_with("mysql://") {
                use mysql::prelude::Queryable;
                self.mysql()?.query(query)?
            } else {
                postgres::Client::connect(&self.url, postgres::NoTls)?
                    .query(query, &[])?
                    .iter()
                    .map(|row| row.get(0))
                    .collect()
            };
            out.extend(values.into_iter().map(|v| (name, v as u64)));
        }
        Ok(out)
    }

    /// Stops the database server (PostgreSQL or MariaDB).
    ///
    /// # Panics
    /// SQLite (no server), or the server did not stop.
    pub fn stop_server(&mut self) {
        if let Some(server) = self.postgres.as_mut() {
            server
                .stop()
                .unwrap_or_else(|err| panic!("stop PostgreSQL: {err:#}"));
        } else if let Some(server) = self.mariadb.as_mut() {
            server
                .stop()
                .unwrap_or_else(|err| panic!("stop MariaDB: {err:#}"));
        } else {
            panic!("SQLite has no server to stop");
        }
    }

    /// Starts the stopped server again, on the same port and data.
    ///
    /// # Panics
    /// SQLite (no server), or the server did not start.
    pub fn start_server_again(&mut self) {
        if let Some(server) = self.postgres.as_mut() {
            server
                .start_again()
                .unwrap_or_else(|err| panic!("start PostgreSQL: {err:#}"));
        } else if let Some(server) = self.mariadb.as_mut() {
            server
                .start_again()
                .unwrap_or_else(|err| panic!("start MariaDB: {err:#}"));
        } else {
            panic!("SQLite has no server to start");
        }
    }

    /// A connection to the MariaDB database.
    fn mysql(&self) -> anyhow::Result<mysql::Conn> {
        let opts = mysql::Opts::from_url(&self.url)?;
        Ok(mysql::Conn::new(opts)?)
    }

    /// Rows of `shoal_peer_marks` (committed peer marks).
    ///
    /// # Errors
    /// The database cannot be read.
    pub fn committed_baselines(&self) -> anyhow::Result<u64> {
        const QUERY: &str = "SELECT COUNT(*) FROM shoal_peer_marks";
        let n: i64 = if let Some(path) = self.url.strip_prefix("sqlite://") {
            rusqlite::Connection::open(path)?.query_row(QUERY, [], |row| row.get(0))?
        } else if self.url.starts_with("mysql://") {
            use mysql::prelude::Queryable;
            self.mysql()?.query_first(QUERY)?.unwrap_or(0)
        } else {
            postgres::Client::connect(&self.url, postgres::NoTls)?
                .query_one(QUERY, &[])?
                .try_get(0)?
        };
        Ok(n as u64)
    }

    /// Waits (`timeout` at most) until `check` holds of the totals; the last totals read.
    /// A read that fails (the database restarting) counts as no rows until the deadline.
    ///
    /// # Panics
    /// The last read at the deadline failed: its error, rather than empty totals.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&BTreeMap<(Passkey, InfoHash), Totals>) -> bool,
    ) -> BTreeMap<(Passkey, InfoHash), Totals> {
        let deadline = Instant::now() + timeout;
        loop {
            let read = self.totals();
            let totals = read.as_ref().cloned().unwrap_or_default();
            if check(&totals) {
                return totals;
            }
            if Instant::now() >= deadline {
                // The caller's assertion says what is wrong; this says the wait ran out
                // (a database far slower than usual, or credit that never came).
                eprintln!("wait_for: not met within {timeout:?}; last totals: {totals:?}");
                return read.unwrap_or_else(|err| panic!("read shoal_credits: {err:#}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Private mode for a tracker started in-process: writes the passkey file (users A and
/// B) in `dir`, turns `private` on with that file and the allow list `-qB4` (the
/// scripts' clients), and points `accounting` at a fresh SQLite file in `dir`, flushed
/// every [`FLUSH_INTERVAL_SECS`]; returns that database.
///
/// # Panics
/// The passkey file could not be written.
pub fn configure_private(
    dir: &Path,
    private: &mut PrivateConfig,
    accounting: &mut AccountingConfig,
) -> Database {
    let passkeys = dir.join("passkeys.txt");
    std::fs::write(&passkeys, format!("{PASSKEY_A}\n{PASSKEY_B}\n"))
        .unwrap_or_else(|err| panic!("write {}: {err}", passkeys.display()));
    private.enabled = true;
    private.passkeys_path = passkeys;
    private.site_cache_path = dir.join("site.cache");
    private.allowed_clients = vec!["-qB4".to_string()];
    let database = Database::new(Backend::Sqlite, dir);
    accounting.url.clone_from(&database.url);
    accounting.flush_interval_secs = FLUSH_INTERVAL_SECS;
    database
}

/// Writes the passkey file (users A and B) and a private-mode config in `dir`; returns
/// the config's path. `private_extra` goes at the end of `[private]`.
pub fn write_private_config(dir: &Path, url: &str, private_extra: &str) -> PathBuf {
    let passkeys = dir.join("passkeys.txt");
    std::fs::write(
        &passkeys,
        format!("# users\n{PASSKEY_A}  # alice\n{PASSKEY_B}  # bob\n"),
    )
    .unwrap_or_else(|err| panic!("write {}: {err}", passkeys.display()));
    let config = dir.join("private.toml");
    let text = format!(
        "[network]\naddress = \"127.0.0.1:0\"\n\
         [statistics]\ninterval_secs = 0\n\
         [metrics]\naddress = \"127.0.0.1:0\"\n\
         [private]\nenabled = true\npasskeys_path = \"{}\"\nsite_cache_path = \"{}\"\n\
         {private_extra}\
         [accounting]\nurl = \"{url}\"\nflush_interval_secs = {FLUSH_INTERVAL_SECS}\n",
        passkeys.display(),
        dir.join("site.cache").display()
    );
    std::fs::write(&config, text).unwrap_or_else(|err| panic!("write {}: {err}", config.display()));
    config
}

/// Plays the script of `seed` against the tracker, interrupted as `interruption` says,
/// and checks the database against the truth (see the module documentation).
///
/// # Panics
/// A check failed: the test fails, saying which.
pub fn run_scenario(
    tracker: &ScenarioTracker<'_>,
    backend: Backend,
    interruption: Interruption,
    seed: u64,
    client: &mut dyn AnnounceClient,
) {
    assert!(
        interruption != Interruption::DatabaseOutage || backend != Backend::Sqlite,
        "a database outage is a PostgreSQL or MariaDB scenario"
    );
    let dir = temp_dir(&format!("{}-{backend:?}-{interruption:?}", tracker.name).to_lowercase());
    let mut database = Database::new(backend, &dir);
    let config = write_private_config(&dir, &database.url, "");
    let script = Script::new(seed);
    let truth = script.truth();
    let mut spawned = Spawned::start(tracker.binary, &config);

    let play = |spawned: &Spawned, client: &mut dyn AnnounceClient, round: usize| {
        for step in &script.rounds[round] {
            let peer = &script.peers[step.peer];
            let times = if round == 2 { 2 } else { 1 };
            for _ in 0..times {
                client
                    .announce(spawned.addr, peer, step)
                    .unwrap_or_else(|err| panic!("round {round}, peer {}: {err:#}", step.peer));
            }
        }
    };

    play(&spawned, client, 0);
    play(&spawned, client, 1);
    // Round 1's completions and every peer's baseline are committed before round 2.
    let completions = truth.values().filter(|t| t.completed).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while database.committed_baselines().unwrap_or(0) < script.peers.len() as u64
        || database
            .totals()
            .unwrap_or_default()
            .values()
            .filter(|t| t.completed)
            .count()
            < completions
    {
        assert!(
            Instant::now() < deadline,
            "round 1 was not committed within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    play(&spawned, client, 2);

    let mut next_round = 3;
    match interruption {
        Interruption::None => {}
        Interruption::Sigterm | Interruption::Kill => {
            let signal = if interruption == Interruption::Sigterm {
                "TERM"
            } else {
                "KILL"
            };
            spawned.signal(signal);
            let code = spawned.wait_exit();
            if interruption == Interruption::Sigterm {
                assert_eq!(code, Some(0), "exit status after SIGTERM");
            }
            spawned = Spawned::start(tracker.binary, &config);
            client.reset();
        }
        Interruption::DatabaseOutage => {
            database.stop_server();
            play(&spawned, client, 3);
            play(&spawned, client, 4);
            next_round = 5;
            // A commit failed while it is down (the rounds' credit was tried), and
            // several flush intervals pass.
            Spawned::wait_line(&spawned.lines, "not committed, will retry");
            // /health says so, and still answers 200: announces are served.
            let metrics = spawned
                .metrics
                .unwrap_or_else(|| panic!("the tracker logged no metrics address"));
            let (status, body) = crate::testing::http_get(metrics, "/health");
            assert_eq!(status, 200, "/health while the database is down: {body}");
            let health: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|err| panic!("/health body {body:?}: {err}"));
            assert_eq!(health["status"], "degraded", "{health}");
            assert_eq!(health["accounting"]["status"], "failing", "{health}");
            std::thread::sleep(Duration::from_secs(4 * FLUSH_INTERVAL_SECS));
            database.start_server_again();
        }
    }
    for round in next_round..ROUNDS {
        play(&spawned, client, round);
    }
    let totals = database.wait_for(Duration::from_secs(30), |t| *t == truth);
    assert_eq!(totals, truth, "shoal_credits against the bytes moved");
    spawned.signal("TERM");
    assert_eq!(
        spawned.wait_exit(),
        Some(0),
        "exit status after the last SIGTERM"
    );
    assert_eq!(
        database
            .totals()
            .unwrap_or_else(|err| panic!("read totals: {err:#}")),
        truth,
        "nothing applied twice at shutdown"
    );
    drop(database);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The four scenario tests of a tracker on MariaDB (`mysql_` `clean_run`,
/// `sigterm_and_restart`, `kill_and_restart` and `outage_mid_way`), as
/// [`accounting_scenario_tests!`] makes them on SQLite and PostgreSQL.
#[macro_export]
macro_rules! mysql_scenario_tests {
    ($binary:expr, $name:expr, $client:expr) => {
        $crate::accounting_scenario_tests!(@all $binary, $name, $client;
            mysql_clean_run, Mysql, None, 8;
            mysql_sigterm_and_restart, Mysql, Sigterm, 9;
            mysql_kill_and_restart, Mysql, Kill, 10;
            mysql_outage_mid_way, Mysql, DatabaseOutage, 11;
        );
    };
}

/// The seven scenario tests of a tracker: `sqlite_` and `postgres_` `clean_run`,
/// `sigterm_and_restart` and `kill_and_restart`, and `postgres_outage_mid_way`, each
/// running [`run_scenario`] on the binary `$binary` (`env!("CARGO_BIN_EXE_...")`), with
/// `$name` for its directory, a fresh `$client` (an [`AnnounceClient`]) and a seed of its
/// own.
#[macro_export]
macro_rules! accounting_scenario_tests {
    ($binary:expr, $name:expr, $client:expr) => {
        $crate::accounting_scenario_tests!(@all $binary, $name, $client;
            sqlite_clean_run, Sqlite, None, 1;
            sqlite_sigterm_and_restart, Sqlite, Sigterm, 2;
            sqlite_kill_and_restart, Sqlite, Kill, 3;
            postgres_clean_run, Postgres, None, 4;
            postgres_sigterm_and_restart, Postgres, Sigterm, 5;
            postgres_kill_and_restart, Postgres, Kill, 6;
            postgres_outage_mid_way, Postgres, DatabaseOutage, 7;
        );
    };
    (@all $binary:expr, $name:expr, $client:expr;
        $($test:ident, $backend:ident, $interruption:ident, $seed:expr;)*) => {
        $(
            #[test]
            fn $test() {
                use $crate::testing::accounting::{
                    Backend, Interruption, ScenarioTracker, run_scenario,
                };
                let tracker = ScenarioTracker {
                    binary: ::std::path::Path::new($binary),
                    name: $name,
                };
                run_scenario(
                    &tracker,
                    Backend::$backend,
                    Interruption::$interruption,
                    $seed,
                    &mut $client,
                );
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_truth_follows_the_counters() {
        let script = Script::new(7);
        assert_eq!(script.rounds.len(), ROUNDS);
        assert!(
            script.rounds[0]
                .iter()
                .all(|s| s.event == AnnounceEvent::Started)
        );
        // Counters never go backwards within a peer's script.
        for peer in 0..script.peers.len() {
            let steps: Vec<&Step> = script
                .rounds
                .iter()
                .flatten()
                .filter(|s| s.peer == peer)
                .collect();
            for pair in steps.windows(2) {
                assert!(pair[1].uploaded >= pair[0].uploaded);
                assert!(pair[1].downloaded >= pair[0].downloaded);
            }
        }
        let truth = script.truth();
        // Two users on three torrents.
        assert_eq!(truth.len(), 6);
        let a0 = truth[&(PASSKEY_A, InfoHash([0xa0; 20]))];
        let last = |peer: usize| {
            script.rounds[ROUNDS - 1]
                .iter()
                .find(|s| s.peer == peer)
                .unwrap()
                .clone()
        };
        assert_eq!(
            a0.uploaded,
            last(0).uploaded + last(1).uploaded,
            "two clients of one user"
        );
        assert_eq!(Script::new(7).rounds, script.rounds, "seeded");
    }
}
