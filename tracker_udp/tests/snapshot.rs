//! Swarm snapshots: a clean stop writes the swarm, a start on the same file serves it
//! again (with another number of request workers too), and a bad file is moved aside.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use common::*;
use tracker_common::types::AnnounceEvent;

fn temp_dir(name: &str) -> PathBuf {
    tracker_common::testing::temp_dir(&format!("udp-{name}"))
}

fn snapshot_config(path: &Path, request_workers: usize) -> tracker_udp::Config {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.snapshot_path = path.display().to_string();
    config.swarm.max_archived_torrents = 1024;
    config.workers.request_workers = request_workers;
    config
}

#[test]
fn a_restart_serves_the_same_swarm() {
    let dir = temp_dir("restart");
    let path = dir.join("swarm.snapshot");

    let tracker = start(snapshot_config(&path, 3));
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    for n in 0..20u8 {
        let port = 1000 + u16::from(n);
        client.announce_v4(info_hash(n), peer_id(n), port, 0, AnnounceEvent::Started, 0);
    }
    // A leecher of torrent 0 completes: counted once, and it stays counted.
    client.announce_v4(
        info_hash(0),
        peer_id(100),
        3000,
        5,
        AnnounceEvent::Started,
        0,
    );
    client.announce_v4(
        info_hash(0),
        peer_id(100),
        3000,
        0,
        AnnounceEvent::Completed,
        0,
    );
    // Torrent 50 completes and empties: its count lives in the archive.
    client.announce_v4(
        info_hash(50),
        peer_id(1),
        4000,
        5,
        AnnounceEvent::Started,
        0,
    );
    client.announce_v4(
        info_hash(50),
        peer_id(1),
        4000,
        0,
        AnnounceEvent::Completed,
        0,
    );
    client.announce_v4(
        info_hash(50),
        peer_id(1),
        4000,
        0,
        AnnounceEvent::Stopped,
        0,
    );
    assert_eq!(client.scrape_one(info_hash(50)), (0, 1, 0));
    tracker.shutdown();
    assert!(path.exists(), "the clean stop wrote the snapshot");

    // Another number of request workers: every torrent may belong to another one now.
    let tracker = start(snapshot_config(&path, 2));
    let mut other = Client::connected("127.0.0.1:0", tracker.local_addr());
    for n in 0..20u8 {
        let (seeders, leechers, peers) = other.announce_v4(
            info_hash(n),
            peer_id(200),
            5000,
            10,
            AnnounceEvent::Started,
            50,
        );
        let expected = (Ipv4Addr::LOCALHOST, 1000 + u16::from(n));
        assert!(peers.contains(&expected), "torrent {n}: {peers:?}");
        let extra_seeder = i32::from(n == 0);
        assert_eq!((seeders, leechers), (1 + extra_seeder, 1), "torrent {n}");
    }
    assert_eq!(other.scrape_one(info_hash(0)), (2, 1, 1));
    assert_eq!(
        other.scrape_one(info_hash(50)),
        (0, 1, 0),
        "archived count kept"
    );
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupt_snapshot_is_moved_aside_and_the_tracker_starts_empty() {
    let dir = temp_dir("corrupt");
    let path = dir.join("swarm.snapshot");
    std::fs::write(&path, b"SHOALSNP but then nothing that makes sense").unwrap();

    let tracker = start(snapshot_config(&path, 3));
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let (seeders, leechers, _) =
        client.announce_v4(info_hash(1), peer_id(1), 1000, 0, AnnounceEvent::Started, 0);
    assert_eq!((seeders, leechers), (1, 0), "started empty");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("swarm.snapshot.corrupt-")),
        "{names:?}"
    );
    tracker.shutdown();
    // The stop wrote a good snapshot in its place.
    assert!(path.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The real binary: a periodic snapshot while it runs, one at SIGTERM, and a second run
/// on the same file serves the peers of the first.
#[test]
fn the_binary_writes_on_sigterm_and_every_interval() {
    let dir = temp_dir("binary");
    let path = dir.join("swarm.snapshot");
    let config = dir.join("udp.toml");
    std::fs::write(
        &config,
        format!(
            "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
             [swarm]\nsnapshot_path = {:?}\nsnapshot_interval_secs = 1\n\
             [workers]\nrequest_workers = 2\n[statistics]\ninterval_secs = 0\n",
            path.display().to_string()
        ),
    )
    .unwrap();

    // Spawned::start reads the log up to the "listening on" line, which comes after the
    // snapshot's: the lines waited for below are all written later.
    let mut spawned = Spawned::start(&config);
    let mut client = Client::connected("127.0.0.1:0", spawned.addr);
    client.announce_v4(info_hash(9), peer_id(1), 1234, 0, AnnounceEvent::Started, 0);
    let line = Spawned::wait_line(&spawned.lines, "1 peers");
    assert!(
        line.contains("wrote 1 torrents"),
        "a periodic snapshot: {line}"
    );
    client.announce_v4(info_hash(9), peer_id(2), 1235, 0, AnnounceEvent::Started, 0);
    spawned.signal("TERM");
    let line = Spawned::wait_line(&spawned.lines, "2 peers");
    assert!(
        line.contains("wrote 1 torrents"),
        "the snapshot at SIGTERM: {line}"
    );
    assert_eq!(spawned.wait_exit(), Some(0));

    let spawned = Spawned::start(&config);
    let mut other = Client::connected("127.0.0.1:0", spawned.addr);
    let (seeders, _, peers) = other.announce_v4(
        info_hash(9),
        peer_id(3),
        2000,
        7,
        AnnounceEvent::Started,
        10,
    );
    assert_eq!(seeders, 2);
    assert!(peers.contains(&(Ipv4Addr::LOCALHOST, 1234)), "{peers:?}");
    assert!(peers.contains(&(Ipv4Addr::LOCALHOST, 1235)), "{peers:?}");
    drop(spawned);
    std::fs::remove_dir_all(&dir).unwrap();
}
