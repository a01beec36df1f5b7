//! Swarm snapshots of the WebSocket tracker: its peers are connections and end with the
//! tracker, but its completed counts come back after a restart; a bad file is moved
//! aside.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tracker_ws_protocol::AnnounceEvent;

fn temp_dir(name: &str) -> PathBuf {
    tracker_common::testing::temp_dir(&format!("ws-{name}"))
}

fn snapshot_config(path: &Path, request_workers: usize) -> tracker_ws::Config {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.snapshot_path = path.display().to_string();
    config.swarm.max_archived_torrents = 1024;
    config.workers.request_workers = request_workers;
    config
}

/// (seeders, leechers, completed) of one torrent.
fn scrape_one(client: &mut Client, hash: tracker_ws_protocol::InfoHash) -> (u32, u32, u32) {
    let files = client.scrape(&[hash]);
    assert_eq!(files.len(), 1);
    let counts = files[0].1;
    (counts.seeders, counts.leechers, counts.completed)
}

#[test]
fn a_restart_keeps_the_completed_counts() {
    let dir = temp_dir("restart");
    let path = dir.join("swarm.snapshot");

    let tracker = start(snapshot_config(&path, 2));
    // Torrent n completes n times, by n connections (a connection is one peer in a
    // torrent).
    let mut clients: Vec<Client> = (0..9)
        .map(|_| Client::connect(tracker.local_addr()))
        .collect();
    for n in 0..10u8 {
        for (p, client) in clients.iter_mut().enumerate().take(usize::from(n)) {
            let peer = peer_id(p as u8);
            client.announce_counts(announce(
                info_hash(n),
                peer,
                Some(9),
                AnnounceEvent::Started,
            ));
            client.announce_counts(announce(
                info_hash(n),
                peer,
                Some(0),
                AnnounceEvent::Completed,
            ));
        }
    }
    let mut client = Client::connect(tracker.local_addr());
    assert_eq!(scrape_one(&mut client, info_hash(3)), (3, 0, 3));
    drop((client, clients));
    tracker.shutdown();
    assert!(path.exists(), "the clean stop wrote the snapshot");

    let tracker = start(snapshot_config(&path, 3));
    let mut other = Client::connect(tracker.local_addr());
    for n in 0..10u8 {
        // The peers were connections and are gone; the counts stay.
        assert_eq!(
            scrape_one(&mut other, info_hash(n)),
            (0, 0, u32::from(n)),
            "{n}"
        );
    }
    // A torrent that comes back starts from its count.
    other.announce_counts(announce(
        info_hash(4),
        peer_id(50),
        Some(9),
        AnnounceEvent::Started,
    ));
    other.announce_counts(announce(
        info_hash(4),
        peer_id(50),
        Some(0),
        AnnounceEvent::Completed,
    ));
    assert_eq!(scrape_one(&mut other, info_hash(4)), (1, 0, 5));
    drop(other);
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupt_snapshot_is_moved_aside_and_the_tracker_starts_empty() {
    let dir = temp_dir("corrupt");
    let path = dir.join("swarm.snapshot");
    std::fs::write(&path, b"").unwrap();

    let tracker = start(snapshot_config(&path, 2));
    let mut client = Client::connect(tracker.local_addr());
    assert_eq!(scrape_one(&mut client, info_hash(1)), (0, 0, 0));
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
    drop(client);
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}
