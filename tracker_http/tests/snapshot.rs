//! Swarm snapshots: a clean stop writes the swarm, a start on the same file serves it
//! again (with another number of request workers too), and a bad file is moved aside.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use common::*;
use tracker_http_protocol::AnnounceEvent;

fn temp_dir(name: &str) -> PathBuf {
    tracker_common::testing::temp_dir(&format!("http-{name}"))
}

fn snapshot_config(path: &Path, request_workers: usize) -> tracker_http::Config {
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

    let tracker = start(snapshot_config(&path, 2));
    let mut client = Client::connect(tracker.local_addr());
    for n in 0..20u8 {
        let port = 1000 + u16::from(n);
        client.announce_ok(&announce(
            info_hash(n),
            peer_id(n),
            port,
            0,
            AnnounceEvent::Started,
        ));
    }
    client.announce_ok(&announce(
        info_hash(0),
        peer_id(100),
        3000,
        5,
        AnnounceEvent::Started,
    ));
    client.announce_ok(&announce(
        info_hash(0),
        peer_id(100),
        3000,
        0,
        AnnounceEvent::Completed,
    ));
    client.announce_ok(&announce(
        info_hash(50),
        peer_id(1),
        4000,
        5,
        AnnounceEvent::Started,
    ));
    client.announce_ok(&announce(
        info_hash(50),
        peer_id(1),
        4000,
        0,
        AnnounceEvent::Completed,
    ));
    client.announce_ok(&announce(
        info_hash(50),
        peer_id(1),
        4000,
        0,
        AnnounceEvent::Stopped,
    ));
    assert_eq!(client.scrape_one(info_hash(50)), (0, 1, 0));
    drop(client);
    tracker.shutdown();
    assert!(path.exists(), "the clean stop wrote the snapshot");

    let tracker = start(snapshot_config(&path, 3));
    let mut other = Client::connect(tracker.local_addr());
    for n in 0..20u8 {
        let mut request = announce(info_hash(n), peer_id(200), 5000, 10, AnnounceEvent::Started);
        request.numwant = Some(50);
        let answer = other.announce_ok(&request);
        let expected = (IpAddr::V4(Ipv4Addr::LOCALHOST), 1000 + u16::from(n));
        assert!(
            answer.peers.iter().any(|p| (p.ip, p.port) == expected),
            "torrent {n}: {:?}",
            answer.peers
        );
        let extra_seeder = i64::from(n == 0);
        assert_eq!(
            (answer.complete, answer.incomplete),
            (1 + extra_seeder, 1),
            "torrent {n}"
        );
    }
    assert_eq!(other.scrape_one(info_hash(0)), (2, 1, 1));
    assert_eq!(
        other.scrape_one(info_hash(50)),
        (0, 1, 0),
        "archived count kept"
    );
    drop(other);
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_corrupt_snapshot_is_moved_aside_and_the_tracker_starts_empty() {
    let dir = temp_dir("corrupt");
    let path = dir.join("swarm.snapshot");
    std::fs::write(&path, vec![0xa5; 4096]).unwrap();

    let tracker = start(snapshot_config(&path, 2));
    let mut client = Client::connect(tracker.local_addr());
    let answer = client.announce_ok(&announce(
        info_hash(1),
        peer_id(1),
        1000,
        0,
        AnnounceEvent::Started,
    ));
    assert_eq!(
        (answer.complete, answer.incomplete),
        (1, 0),
        "started empty"
    );
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
