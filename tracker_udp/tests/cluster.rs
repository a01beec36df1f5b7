//! Nodes of one cluster accept each other's connection ids: behind anycast or ECMP a
//! client's connect may reach one node and its announce another. Real trackers on
//! loopback ports, each with its own worker threads and start time.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use tracker_udp_protocol::{AnnounceEvent, Response};

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-cluster-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_secret(dir: &Path, name: &str, lines: &[&str], mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

const SECRET_A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const SECRET_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn node(secret: Option<&Path>) -> tracker_udp::Tracker {
    let mut config = test_config("127.0.0.1:0");
    if let Some(path) = secret {
        config.cluster.connection_id_secret_path = path.to_path_buf();
    }
    start(config)
}

/// Announces with the client's connection id to `tracker`; whether it was answered as an
/// announce (and not with "invalid connection id").
fn announce_to(client: &mut Client, tracker: &tracker_udp::Tracker, peer: u8) -> bool {
    client.tracker = tracker.local_addr();
    match client.announce(
        info_hash(9),
        peer_id(peer),
        6881,
        0,
        AnnounceEvent::Started,
        10,
    ) {
        Response::AnnounceIpv4(_) => true,
        Response::Error(e) => {
            assert_eq!(e.message, "invalid connection id");
            false
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

#[test]
fn a_connect_answered_by_one_node_is_accepted_by_the_others() {
    let dir = scratch("ids");
    let secret = write_secret(&dir, "secret", &[SECRET_A], 0o600);
    let a = node(Some(&secret));
    let b = node(Some(&secret));
    let c = node(Some(&secret));
    let mut client = Client::connected("127.0.0.1:0", a.local_addr());
    assert!(announce_to(&mut client, &b, 1));
    assert!(announce_to(&mut client, &c, 2));
    assert!(announce_to(&mut client, &a, 3));

    // A node of another cluster, and a tracker with a key of its own, refuse it.
    let other_secret = write_secret(&dir, "other", &[SECRET_B], 0o600);
    let other = node(Some(&other_secret));
    let alone = node(None);
    assert!(!announce_to(&mut client, &other, 4));
    assert!(!announce_to(&mut client, &alone, 5));
    // ... and a connect to the lone tracker is good there only.
    let mut lone_client = Client::connected("127.0.0.1:0", alone.local_addr());
    assert!(!announce_to(&mut lone_client, &a, 6));

    for tracker in [a, b, c, other, alone] {
        tracker.shutdown();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_rotation_refuses_no_id() {
    // Step 1: every node accepts the new secret besides the old one, and still makes ids
    // with the old. Step 2: every node makes ids with the new one and still accepts the
    // old. Step 3: the old one goes. At every step, ids of nodes one step apart are
    // accepted both ways.
    let dir = scratch("rotation");
    let steps = [
        write_secret(&dir, "0", &[SECRET_A], 0o600),
        write_secret(&dir, "1", &[SECRET_A, SECRET_B], 0o600),
        write_secret(&dir, "2", &[SECRET_B, SECRET_A], 0o600),
        write_secret(&dir, "3", &[SECRET_B], 0o600),
    ];
    let nodes: Vec<_> = steps.iter().map(|s| node(Some(s))).collect();
    for pair in nodes.windows(2) {
        let [before, after] = pair else {
            unreachable!()
        };
        let mut client = Client::connected("127.0.0.1:0", before.local_addr());
        assert!(announce_to(&mut client, after, 1));
        let mut client = Client::connected("127.0.0.1:0", after.local_addr());
        assert!(announce_to(&mut client, before, 2));
    }
    // Two steps apart is not a rotation that keeps every id: the last refuses the first.
    let mut client = Client::connected("127.0.0.1:0", nodes[0].local_addr());
    assert!(!announce_to(&mut client, &nodes[3], 3));
    for tracker in nodes {
        tracker.shutdown();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_secret_others_can_read_or_a_bad_one_is_refused_at_start() {
    let dir = scratch("refused");
    let cases = [
        (write_secret(&dir, "open", &[SECRET_A], 0o644), "mode 0644"),
        (
            write_secret(&dir, "short", &[&SECRET_A[..60]], 0o600),
            "64 hex digits",
        ),
        (dir.join("missing"), "cannot open"),
    ];
    for (path, expected) in cases {
        let mut config = test_config("127.0.0.1:0");
        config.cluster.connection_id_secret_path = path.clone();
        let err = tracker_udp::start(config)
            .err()
            .unwrap_or_else(|| panic!("{} must be refused", path.display()));
        let message = format!("{err:#}");
        assert!(
            message.starts_with("cluster.connection_id_secret_path: ")
                && message.contains(expected),
            "{message}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_re_read_secret_replaces_the_one_in_force_and_a_bad_one_does_not() {
    let dir = scratch("reload");
    let a_only = write_secret(&dir, "a", &[SECRET_A], 0o600);
    let path = write_secret(&dir, "b", &[SECRET_A], 0o600);
    let a = node(Some(&a_only));
    let b = node(Some(&path));
    let mut from_b = Client::connected("127.0.0.1:0", b.local_addr());
    assert!(announce_to(&mut from_b, &a, 1));

    // B's file now makes ids with the new secret and still accepts the old one.
    write_secret(&dir, "b", &[SECRET_B, SECRET_A], 0o600);
    assert_eq!(b.reload_connection_id_secret().unwrap(), 2);
    let mut from_b = Client::connected("127.0.0.1:0", b.local_addr());
    assert!(announce_to(&mut from_b, &b, 2));
    assert!(
        !announce_to(&mut from_b, &a, 3),
        "A knows only the old secret"
    );
    let mut from_a = Client::connected("127.0.0.1:0", a.local_addr());
    assert!(
        announce_to(&mut from_a, &b, 4),
        "B still accepts the old secret"
    );

    // A file others may read: refused, and B keeps the secrets in force.
    write_secret(&dir, "b", &[SECRET_A], 0o644);
    let err = format!("{:#}", b.reload_connection_id_secret().unwrap_err());
    assert!(err.contains("mode 0644"), "{err}");
    let mut from_b = Client::connected("127.0.0.1:0", b.local_addr());
    assert!(announce_to(&mut from_b, &b, 5));
    assert!(!announce_to(&mut from_b, &a, 6), "still the new secret");
    let mut from_a = Client::connected("127.0.0.1:0", a.local_addr());
    assert!(announce_to(&mut from_a, &b, 7));

    // A tracker with a key of its own has nothing to re-read.
    let alone = node(None);
    let err = alone.reload_connection_id_secret().unwrap_err().to_string();
    assert!(err.contains("is not set"), "{err}");
    for tracker in [a, b, alone] {
        tracker.shutdown();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigusr1_re_reads_the_secret_of_the_running_binary() {
    let dir = scratch("sigusr1");
    let path = write_secret(&dir, "secret", &[SECRET_A], 0o600);
    let config = dir.join("udp.toml");
    std::fs::write(
        &config,
        format!(
            "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
             [statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n\
             [cluster]\nconnection_id_secret_path = {:?}\n",
            path.display().to_string()
        ),
    )
    .unwrap();
    let spawned = Spawned::start(&config);
    let other = write_secret(&dir, "other", &[SECRET_B], 0o600);
    let b_node = node(Some(&other));
    let mut client = Client::connected("127.0.0.1:0", spawned.addr);
    assert!(!announce_to(&mut client, &b_node, 1));

    write_secret(&dir, "secret", &[SECRET_B, SECRET_A], 0o600);
    spawned.signal("USR1");
    let line = Spawned::wait_line(&spawned.lines, "connection id secret reloaded");
    assert!(line.contains("2 secret(s) in force"), "{line}");
    let mut client = Client::connected("127.0.0.1:0", spawned.addr);
    assert!(
        announce_to(&mut client, &b_node, 2),
        "ids made with the new secret"
    );

    write_secret(&dir, "secret", &["not hex"], 0o600);
    spawned.signal("USR1");
    let line = Spawned::wait_line(&spawned.lines, "connection id secret reload failed");
    assert!(line.contains("line 1"), "{line}");
    let mut client = Client::connected("127.0.0.1:0", spawned.addr);
    assert!(
        announce_to(&mut client, &b_node, 3),
        "the secrets in force stay"
    );
    b_node.shutdown();
    drop(spawned);
    std::fs::remove_dir_all(&dir).unwrap();
}
