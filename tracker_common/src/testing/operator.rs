//! Private mode's operator scenarios, against the real binaries: what a private
//! tracker's operator meets that a clean run does not. Each is written from the rule it
//! checks (see `private::ledger`), not from the code:
//!
//! - [`seedbox_restarts`]: a seedbox restarted many times, a new peer id per torrent per
//!   start, under a small `max_peers_per_passkey`: every restart is credited.
//! - [`many_peer_ids_one_torrent`]: many peer ids of one user seed one torrent: its
//!   seeding time is at most the wall clock.
//! - [`overlapping_restart`]: a new process serves the peers before the old one's last
//!   commit lands: credited once.
//! - [`database_down_at_start`]: the tracker starts while PostgreSQL is down, serves,
//!   says so, and commits once the database is back.
//! - [`kill_after_committed_seconds`]: `kill -9` after seconds were committed: the
//!   seconds are not credited again.
//! - [`two_trackers_one_database`]: two tracker processes (UDP and HTTP, or any two) on
//!   one database, one client announcing the same peers to both: credited once.
//! - [`wall_clock_step`]: the wall clock jumps 30 days while the tracker runs (through
//!   libfaketime): announce and batch times, seconds and retention do not.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::private::store::derived_user_id;
use crate::testing::accounting::{
    AnnounceClient, Backend, Database, FLUSH_INTERVAL_SECS, PASSKEY_A, ScriptPeer, Step, Totals,
};
use crate::testing::{Spawned, temp_dir};
use crate::types::{AnnounceEvent, InfoHash, PeerId};

/// A peer of user A on torrent `torrent`, peer id number `n`.
pub fn peer(torrent: u8, n: u32) -> ScriptPeer {
    let mut id = [b'0'; 20];
    id[..4].copy_from_slice(b"-qB4");
    id[12..16].copy_from_slice(&n.to_be_bytes());
    ScriptPeer {
        passkey: PASSKEY_A,
        info_hash: InfoHash([torrent; 20]),
        peer_id: PeerId(id),
        port: 40_000 + (n % 20_000) as u16,
    }
}

/// A step of peer 0 (the client sends its own peer's step; the index is unused).
pub fn step(event: AnnounceEvent, uploaded: u64, left: u64) -> Step {
    Step {
        peer: 0,
        event,
        uploaded,
        downloaded: uploaded / 4,
        left,
    }
}

/// Writes a private-mode config for `url` in `dir` with `accounting_extra` at the end of
/// `[accounting]` (and the passkey file of users A and B).
pub fn write_config(dir: &Path, url: &str, accounting_extra: &str) -> std::path::PathBuf {
    let config = crate::testing::accounting::write_private_config(dir, url, "");
    let mut text = std::fs::read_to_string(&config)
        .unwrap_or_else(|err| panic!("read {}: {err}", config.display()));
    text.push_str(accounting_extra);
    std::fs::write(&config, text).unwrap_or_else(|err| panic!("write {}: {err}", config.display()));
    config
}

/// A scenario's directory (`NAME-BACKEND` under the temporary directory), its fresh
/// database, and a config for it with `accounting_extra` (see [`write_config`]).
fn prepare(
    name: &str,
    backend: Backend,
    accounting_extra: &str,
) -> (std::path::PathBuf, Database, std::path::PathBuf) {
    let dir = temp_dir(&format!("{name}-{backend:?}").to_lowercase());
    let database = Database::new(backend, &dir);
    let config = write_config(&dir, &database.url, accounting_extra);
    (dir, database, config)
}

/// Stops the tracker with SIGTERM (it must exit 0), then removes what [`prepare`] made.
fn finish(mut spawned: Spawned, database: Database, dir: &Path) {
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0), "exit status after SIGTERM");
    clean_up(database, dir);
}

/// Stops the database's server, if it has one, and removes the scenario's directory.
fn clean_up(database: Database, dir: &Path) {
    drop(database);
    let _ = std::fs::remove_dir_all(dir);
}

fn announce(client: &mut dyn AnnounceClient, addr: SocketAddr, peer: &ScriptPeer, step: &Step) {
    client
        .announce(addr, peer, step)
        .unwrap_or_else(|err| panic!("announce of {:?}: {err:#}", peer.peer_id));
}

/// User A's totals on `hash`.
fn totals_of(database: &Database, hash: InfoHash) -> Totals {
    database
        .totals()
        .unwrap_or_default()
        .get(&(PASSKEY_A, hash))
        .copied()
        .unwrap_or_default()
}

/// A seedbox with 10 torrents restarted 6 times, each start a new peer id per torrent
/// (as libtorrent and qBittorrent do), `started` at 0 then 1,000 bytes uploaded, under
/// `max_peers_per_passkey = 40`: 60 peer ids in all, more than the cap. Every restart is
/// credited: 6,000 bytes per torrent.
pub fn seedbox_restarts(binary: &Path, backend: Backend, client: &mut dyn AnnounceClient) {
    let (dir, database, config) = prepare("seedbox", backend, "max_peers_per_passkey = 40\n");
    let spawned = Spawned::start(binary, &config);
    let (torrents, restarts) = (10u8, 6u32);
    for restart in 0..restarts {
        for torrent in 0..torrents {
            let p = peer(torrent, restart);
            announce(
                client,
                spawned.addr,
                &p,
                &step(AnnounceEvent::Started, 0, 0),
            );
            announce(
                client,
                spawned.addr,
                &p,
                &step(AnnounceEvent::None, 1_000, 0),
            );
        }
        // The client restarts: each peer stops (as a clean client quit does, every
        // other restart) or just goes silent.
        if restart % 2 == 0 {
            for torrent in 0..torrents {
                let p = peer(torrent, restart);
                announce(
                    client,
                    spawned.addr,
                    &p,
                    &step(AnnounceEvent::Stopped, 1_000, 0),
                );
            }
        }
        // A restart of the client takes a while: the tracker commits meanwhile.
        let want = u64::from(restart + 1) * 1_000;
        database.wait_for(Duration::from_secs(30), |t| {
            (0..torrents).all(|h| {
                t.get(&(PASSKEY_A, InfoHash([h; 20])))
                    .is_some_and(|x| x.uploaded == want)
            })
        });
    }
    let totals = database.totals().unwrap_or_default();
    for torrent in 0..torrents {
        assert_eq!(
            totals
                .get(&(PASSKEY_A, InfoHash([torrent; 20])))
                .map(|t| t.uploaded),
            Some(u64::from(restarts) * 1_000),
            "torrent {torrent} after {restarts} restarts of 10 torrents, cap 40: {totals:?}"
        );
    }
    finish(spawned, database, &dir);
}

/// 30 peer ids of user A seed one torrent, each announcing `started` and again about
/// two seconds later: the torrent's seeding time is at most the wall clock the test
/// spent between its first and last announce (not 30 times it), and not nothing.
pub fn many_peer_ids_one_torrent(binary: &Path, backend: Backend, client: &mut dyn AnnounceClient) {
    let (dir, database, config) = prepare("peerids", backend, "");
    let spawned = Spawned::start(binary, &config);
    let began = Instant::now();
    for n in 0..30 {
        announce(
            client,
            spawned.addr,
            &peer(7, n),
            &step(AnnounceEvent::Started, 0, 0),
        );
    }
    std::thread::sleep(Duration::from_millis(2_100));
    for n in 0..30 {
        announce(
            client,
            spawned.addr,
            &peer(7, n),
            &step(AnnounceEvent::None, 10, 0),
        );
    }
    // Announce times are whole seconds: the wall clock spent, rounded up, plus one.
    let wall = began.elapsed().as_secs() + 2;
    database.wait_for(Duration::from_secs(30), |t| {
        t.get(&(PASSKEY_A, InfoHash([7; 20])))
            .is_some_and(|x| x.uploaded == 300)
    });
    let seconds = database
        .seconds(derived_user_id(&PASSKEY_A), InfoHash([7; 20]))
        .unwrap_or_else(|err| panic!("read seed_seconds: {err:#}"));
    assert!(
        (1..=wall).contains(&seconds.0),
        "seed_seconds {} for 30 peer ids over {wall} s of wall clock",
        seconds.0
    );
    finish(spawned, database, &dir);
}

/// The old process holds reports it has not committed (a long flush interval) when a
/// new process on the same database takes the peers' next announces and commits them;
/// then the old one stops and commits its last batch, older than the new one's: each
/// peer is credited once, its last counters.
pub fn overlapping_restart(binary: &Path, backend: Backend, client: &mut dyn AnnounceClient) {
    let dir = temp_dir(&format!("overlap-{backend:?}").to_lowercase());
    let database = Database::new(backend, &dir);
    let old_dir = dir.join("old");
    let new_dir = dir.join("new");
    for d in [&old_dir, &new_dir] {
        std::fs::create_dir_all(d).unwrap_or_else(|err| panic!("{}: {err}", d.display()));
    }
    // The old process flushes only at its stop.
    let old_config = write_config(&old_dir, &database.url, "");
    let text = std::fs::read_to_string(&old_config)
        .unwrap_or_default()
        .replace(
            &format!("flush_interval_secs = {FLUSH_INTERVAL_SECS}"),
            "flush_interval_secs = 3600",
        );
    std::fs::write(&old_config, text).unwrap_or_else(|err| panic!("write: {err}"));
    let mut old = Spawned::start(binary, &old_config);
    let peers: Vec<ScriptPeer> = (0..4).map(|n| peer(3, n)).collect();
    for p in &peers {
        announce(client, old.addr, p, &step(AnnounceEvent::Started, 0, 0));
        announce(client, old.addr, p, &step(AnnounceEvent::None, 5_000, 0));
    }
    // Announce times are whole seconds: the new process's are later.
    std::thread::sleep(Duration::from_millis(1_100));
    let new_config = write_config(&new_dir, &database.url, "");
    let mut new = Spawned::start(binary, &new_config);
    client.reset();
    for p in &peers {
        announce(client, new.addr, p, &step(AnnounceEvent::None, 8_000, 0));
    }
    database.wait_for(Duration::from_secs(30), |_| {
        database.committed_baselines().unwrap_or(0) >= peers.len() as u64
    });
    // Now the old process's last commit, older than what the new one committed.
    old.signal("TERM");
    assert_eq!(old.wait_exit(), Some(0));
    let want = 8_000 * peers.len() as u64;
    let totals = database.wait_for(Duration::from_secs(30), |t| {
        t.get(&(PASSKEY_A, InfoHash([3; 20])))
            .is_some_and(|x| x.uploaded == want)
    });
    assert_eq!(
        totals
            .get(&(PASSKEY_A, InfoHash([3; 20])))
            .map(|t| t.uploaded),
        Some(want),
        "four peers at 8,000 bytes each, credited once across the overlap"
    );
    new.signal("TERM");
    assert_eq!(new.wait_exit(), Some(0));
    assert_eq!(totals_of(&database, InfoHash([3; 20])).uploaded, want);
    clean_up(database, &dir);
}

/// The tracker starts while its database server (PostgreSQL or MariaDB) is down: it serves the passkey file's users,
/// `/health` says the accounting database is not reachable (200, "degraded"), and once
/// the server is back what waited is committed.
pub fn database_down_at_start(binary: &Path, backend: Backend, client: &mut dyn AnnounceClient) {
    let dir = temp_dir(&format!("db-down-at-start-{backend:?}").to_lowercase());
    let mut database = Database::new(backend, &dir);
    let config = write_config(&dir, &database.url, "");
    database.stop_server();
    let spawned = Spawned::start(binary, &config);
    let p = peer(5, 1);
    announce(
        client,
        spawned.addr,
        &p,
        &step(AnnounceEvent::Started, 0, 0),
    );
    announce(
        client,
        spawned.addr,
        &p,
        &step(AnnounceEvent::None, 2_000, 0),
    );
    let metrics = spawned
        .metrics
        .unwrap_or_else(|| panic!("the tracker logged no metrics address"));
    let (status, body) = crate::testing::http_get(metrics, "/health");
    assert_eq!(status, 200, "/health with the database down: {body}");
    let health: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|err| panic!("{body:?}: {err}"));
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["accounting"]["database_up"], false, "{health}");
    database.start_server_again();
    let totals = database.wait_for(Duration::from_secs(60), |t| {
        t.get(&(PASSKEY_A, InfoHash([5; 20])))
            .is_some_and(|x| x.uploaded == 2_000)
    });
    assert_eq!(
        totals
            .get(&(PASSKEY_A, InfoHash([5; 20])))
            .map(|t| t.uploaded),
        Some(2_000)
    );
    let (_, body) = crate::testing::http_get(metrics, "/health");
    let health: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|err| panic!("{body:?}: {err}"));
    assert_eq!(health["accounting"]["database_up"], true, "{health}");
    finish(spawned, database, &dir);
}

/// A seeder announces three times two seconds apart, its seconds are committed, the
/// tracker is killed (`kill -9`) and restarted, and the seeder announces again: the
/// seeding time is at most the wall clock of the whole test, though the first process
/// never stopped cleanly.
pub fn kill_after_committed_seconds(
    binary: &Path,
    backend: Backend,
    client: &mut dyn AnnounceClient,
) {
    let (dir, database, config) = prepare("kill-seconds", backend, "");
    let began = Instant::now();
    let mut spawned = Spawned::start(binary, &config);
    let p = peer(9, 1);
    let hash = InfoHash([9; 20]);
    let user = derived_user_id(&PASSKEY_A);
    announce(
        client,
        spawned.addr,
        &p,
        &step(AnnounceEvent::Started, 0, 0),
    );
    for n in 1..=2u64 {
        std::thread::sleep(Duration::from_millis(2_000));
        announce(
            client,
            spawned.addr,
            &p,
            &step(AnnounceEvent::None, n * 100, 0),
        );
    }
    database.wait_for(Duration::from_secs(30), |t| {
        t.get(&(PASSKEY_A, hash)).is_some_and(|x| x.uploaded == 200)
    });
    let before = database.seconds(user, hash).unwrap_or_default().0;
    assert!(before >= 3, "seconds committed before the kill: {before}");
    spawned.signal("KILL");
    let _ = spawned.wait_exit();
    let spawned = Spawned::start(binary, &config);
    client.reset();
    std::thread::sleep(Duration::from_millis(1_000));
    announce(client, spawned.addr, &p, &step(AnnounceEvent::None, 300, 0));
    database.wait_for(Duration::from_secs(30), |t| {
        t.get(&(PASSKEY_A, hash)).is_some_and(|x| x.uploaded == 300)
    });
    let wall = began.elapsed().as_secs() + 2;
    let after = database.seconds(user, hash).unwrap_or_default().0;
    assert!(
        after >= before && after <= wall,
        "seed_seconds {after} (was {before}) over {wall} s of wall clock"
    );
    finish(spawned, database, &dir);
}

/// Two tracker processes on one database (`first` and `second`, each with its client:
/// UDP and HTTP, say), one client announcing each of its peers to both, as clients do
/// with every tier of a torrent's trackers: every byte is credited once, and the
/// seeding time is at most the wall clock.
pub fn two_trackers_one_database(
    first: (&Path, &mut dyn AnnounceClient),
    second: (&Path, &mut dyn AnnounceClient),
    backend: Backend,
) {
    let dir = temp_dir(&format!("two-trackers-{backend:?}").to_lowercase());
    let database = Database::new(backend, &dir);
    let (one_dir, two_dir) = (dir.join("one"), dir.join("two"));
    for d in [&one_dir, &two_dir] {
        std::fs::create_dir_all(d).unwrap_or_else(|err| panic!("{}: {err}", d.display()));
    }
    let (first_binary, first_client) = first;
    let (second_binary, second_client) = second;
    let mut one = Spawned::start(first_binary, &write_config(&one_dir, &database.url, ""));
    let mut two = Spawned::start(second_binary, &write_config(&two_dir, &database.url, ""));
    let began = Instant::now();
    let peers: Vec<ScriptPeer> = (0..3).map(|n| peer(4, 100 + n)).collect();
    let rounds: [(AnnounceEvent, u64); 4] = [
        (AnnounceEvent::Started, 0),
        (AnnounceEvent::None, 10_000),
        (AnnounceEvent::None, 25_000),
        (AnnounceEvent::Stopped, 30_000),
    ];
    for (round, (event, uploaded)) in rounds.into_iter().enumerate() {
        for (n, p) in peers.iter().enumerate() {
            let s = step(event, uploaded, 0);
            // Either tracker may hear first.
            if (round + n) % 2 == 0 {
                announce(first_client, one.addr, p, &s);
                announce(second_client, two.addr, p, &s);
            } else {
                announce(second_client, two.addr, p, &s);
                announce(first_client, one.addr, p, &s);
            }
        }
        std::thread::sleep(Duration::from_millis(1_100));
    }
    let want = 30_000 * peers.len() as u64;
    let hash = InfoHash([4; 20]);
    database.wait_for(Duration::from_secs(30), |t| {
        t.get(&(PASSKEY_A, hash))
            .is_some_and(|x| x.uploaded >= want)
    });
    one.signal("TERM");
    two.signal("TERM");
    assert_eq!(one.wait_exit(), Some(0));
    assert_eq!(two.wait_exit(), Some(0));
    let wall = began.elapsed().as_secs() + 2;
    assert_eq!(
        totals_of(&database, hash).uploaded,
        want,
        "three peers at 30,000 bytes, announced to two trackers, credited once"
    );
    let seed = database
        .seconds(derived_user_id(&PASSKEY_A), hash)
        .unwrap_or_default()
        .0;
    assert!(
        (1..=wall).contains(&seed),
        "seed_seconds {seed} over {wall} s of wall clock"
    );
    clean_up(database, &dir);
}

/// Two nodes of a cluster (`binary`, each with `cluster_sections[i]` added to its config)
/// on one database, a client whose peers move from node to node at every announce, as
/// behind ECMP: each announce reaches one node only, and every byte is credited once.
pub fn peers_moving_between_nodes(
    binary: &Path,
    client: &mut dyn AnnounceClient,
    backend: Backend,
    cluster_sections: [&str; 2],
) {
    let dir = temp_dir(&format!("moving-peers-{backend:?}").to_lowercase());
    let database = Database::new(backend, &dir);
    let nodes: Vec<Spawned> = cluster_sections
        .iter()
        .enumerate()
        .map(|(n, section)| {
            let node_dir = dir.join(format!("node{n}"));
            std::fs::create_dir_all(&node_dir)
                .unwrap_or_else(|err| panic!("{}: {err}", node_dir.display()));
            Spawned::start(binary, &write_config(&node_dir, &database.url, section))
        })
        .collect();
    let peers: Vec<ScriptPeer> = (0..3).map(|n| peer(5, 100 + n)).collect();
    let rounds: [(AnnounceEvent, u64); 5] = [
        (AnnounceEvent::Started, 0),
        (AnnounceEvent::None, 10_000),
        (AnnounceEvent::None, 25_000),
        (AnnounceEvent::None, 26_000),
        (AnnounceEvent::Stopped, 30_000),
    ];
    for (round, (event, uploaded)) in rounds.into_iter().enumerate() {
        for (n, p) in peers.iter().enumerate() {
            let node = &nodes[(round + n) % nodes.len()];
            announce(client, node.addr, p, &step(event, uploaded, 0));
        }
        std::thread::sleep(Duration::from_millis(1_100));
    }
    let want = 30_000 * peers.len() as u64;
    let hash = InfoHash([5; 20]);
    database.wait_for(Duration::from_secs(30), |t| {
        t.get(&(PASSKEY_A, hash))
            .is_some_and(|x| x.uploaded >= want)
    });
    for mut node in nodes {
        node.signal("TERM");
        assert_eq!(node.wait_exit(), Some(0));
    }
    assert_eq!(
        totals_of(&database, hash).uploaded,
        want,
        "three peers at 30,000 bytes, each announce to one of two nodes, credited once"
    );
    clean_up(database, &dir);
}

/// Where Debian's `faketime` package puts its multi-threaded preload library.
fn libfaketime() -> std::path::PathBuf {
    let found = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| {
            Path::new("/usr/lib")
                .join(arch)
                .join("faketime/libfaketimeMT.so.1")
        })
        .find(|path| path.exists());
    found.unwrap_or_else(|| {
        panic!(
            "libfaketimeMT.so.1 not found: install Debian's faketime package \
             (scripts/install-test-deps.sh does)"
        )
    })
}

/// The wall clock steps 30 days forward while the tracker runs (libfaketime, reading
/// the offset from a file at every call; the monotonic clock is left alone): a seeder's
/// announces before and after the step are credited their real gap, the batches'
/// times and the announce times stay on the tracker's clock, and the peer's mark is not
/// taken for 30 days old (and deleted by the retention).
pub fn wall_clock_step(binary: &Path, client: &mut dyn AnnounceClient) {
    let dir = temp_dir("clock-step");
    let database = Database::new(Backend::Sqlite, &dir);
    let config = write_config(&dir, &database.url, "baseline_retention_secs = 86400\n");
    let offset = dir.join("faketime");
    std::fs::write(&offset, "+0\n").unwrap_or_else(|err| panic!("write: {err}"));
    let preload = libfaketime();
    let real_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let offset_path = offset.display().to_string();
    let preload_path = preload.display().to_string();
    let spawned = Spawned::start_with_env(
        binary,
        &config,
        &[
            ("LD_PRELOAD", preload_path.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", offset_path.as_str()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let began = Instant::now();
    let p = peer(8, 1);
    let hash = InfoHash([8; 20]);
    announce(
        client,
        spawned.addr,
        &p,
        &step(AnnounceEvent::Started, 0, 0),
    );
    database.wait_for(Duration::from_secs(30), |_| {
        database.committed_baselines().unwrap_or(0) >= 1
    });
    std::fs::write(&offset, "+30d\n").unwrap_or_else(|err| panic!("write: {err}"));
    std::thread::sleep(Duration::from_millis(2_100));
    announce(client, spawned.addr, &p, &step(AnnounceEvent::None, 100, 0));
    database.wait_for(Duration::from_secs(30), |t| {
        t.get(&(PASSKEY_A, hash)).is_some_and(|x| x.uploaded == 100)
    });
    let wall = began.elapsed().as_secs() + 2;
    let (seed, _) = database
        .seconds(derived_user_id(&PASSKEY_A), hash)
        .unwrap_or_default();
    assert!(
        (1..=wall).contains(&seed),
        "seed_seconds {seed} across a 30-day step of the wall clock ({wall} s of real time)"
    );
    let real_end = real_start + began.elapsed().as_secs() + 5;
    let times = database
        .times()
        .unwrap_or_else(|err| panic!("read the times: {err:#}"));
    for (what, at) in &times {
        assert!(
            (real_start.saturating_sub(5)..=real_end).contains(at),
            "{what} = {at}, outside the real time {real_start}..{real_end}: the step leaked"
        );
    }
    assert!(
        database.committed_baselines().unwrap_or(0) >= 1,
        "the mark is kept"
    );
    finish(spawned, database, &dir);
}

/// The operator scenarios of a tracker, on SQLite, PostgreSQL and MariaDB (the database
/// down at start on the two servers, the clock step on SQLite): `$binary` (`env!("CARGO_BIN_EXE_...")`), and an
/// expression making a fresh [`AnnounceClient`].
#[macro_export]
macro_rules! operator_scenario_tests {
    ($binary:expr, $client:expr) => {
        $crate::operator_scenario_tests!(@each $binary, $client;
            sqlite_seedbox_restarts, seedbox_restarts, Sqlite;
            postgres_seedbox_restarts, seedbox_restarts, Postgres;
            sqlite_many_peer_ids_one_torrent, many_peer_ids_one_torrent, Sqlite;
            postgres_many_peer_ids_one_torrent, many_peer_ids_one_torrent, Postgres;
            sqlite_overlapping_restart, overlapping_restart, Sqlite;
            postgres_overlapping_restart, overlapping_restart, Postgres;
            sqlite_kill_after_committed_seconds, kill_after_committed_seconds, Sqlite;
            postgres_kill_after_committed_seconds, kill_after_committed_seconds, Postgres;
            postgres_down_at_start, database_down_at_start, Postgres;
            mysql_seedbox_restarts, seedbox_restarts, Mysql;
            mysql_many_peer_ids_one_torrent, many_peer_ids_one_torrent, Mysql;
            mysql_overlapping_restart, overlapping_restart, Mysql;
            mysql_kill_after_committed_seconds, kill_after_committed_seconds, Mysql;
            mysql_down_at_start, database_down_at_start, Mysql;
        );
        #[test]
        fn sqlite_wall_clock_step() {
            $crate::testing::operator::wall_clock_step(
                ::std::path::Path::new($binary),
                &mut $client,
            );
        }
    };
    (@each $binary:expr, $client:expr;
        $($test:ident, $scenario:ident, $backend:ident;)*) => {
        $(
            #[test]
            fn $test() {
                $crate::testing::operator::$scenario(
                    ::std::path::Path::new($binary),
                    $crate::testing::accounting::Backend::$backend,
                    &mut $client,
                );
            }
        )*
    };
}
