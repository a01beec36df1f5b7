//! Access list modes, in-process reloads, and SIGUSR1 reloads of the real binary.

mod common;

use std::time::Duration;

use common::*;
use tracker_common::swarm::access_list::AccessListMode;
use tracker_common::types::AnnounceEvent;
use tracker_udp_protocol::Response;

fn temp_dir(name: &str) -> std::path::PathBuf {
    tracker_common::testing::temp_dir(&format!("test-{name}"))
}

fn is_denied(response: &Response) -> bool {
    matches!(response, Response::Error(e) if e.message == "info hash not allowed")
}

#[test]
fn allow_and_deny_modes_with_reload() {
    let dir = temp_dir("modes");
    let list = dir.join("list.txt");
    let listed = info_hash(0xaa);
    let other = info_hash(0xbb);
    std::fs::write(&list, format!("# listed\n{}\n", listed.to_hex())).unwrap();

    for mode in [AccessListMode::Allow, AccessListMode::Deny] {
        let mut config = test_config("127.0.0.1:0");
        config.access_list.mode = mode;
        config.access_list.path = list.clone();
        let tracker = start(config);
        let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
        let on_listed = client.announce(listed, peer_id(1), 1, 0, AnnounceEvent::Started, -1);
        let on_other = client.announce(other, peer_id(1), 1, 0, AnnounceEvent::Started, -1);
        match mode {
            AccessListMode::Allow => {
                assert!(!is_denied(&on_listed), "{on_listed:?}");
                assert!(is_denied(&on_other), "{on_other:?}");
                // A denied torrent scrapes as zeros and is not stored.
                assert_eq!(client.scrape_one(other), (0, 0, 0));
                assert_eq!(client.scrape_one(listed), (1, 0, 0));
            }
            _ => {
                assert!(is_denied(&on_listed), "{on_listed:?}");
                assert!(!is_denied(&on_other), "{on_other:?}");
            }
        }
        // One announce was denied; the denied scrape is answered with zeros, uncounted.
        assert_eq!(tracker.statistics().access_denied, 1);
        tracker.shutdown();
    }

    // Reload: the new list takes effect; a broken file keeps the old one.
    let mut config = test_config("127.0.0.1:0");
    config.access_list.mode = AccessListMode::Allow;
    config.access_list.path = list.clone();
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    assert!(is_denied(&client.announce(
        other,
        peer_id(1),
        1,
        0,
        AnnounceEvent::Started,
        -1
    )));
    std::fs::write(&list, format!("{}\n{}\n", listed.to_hex(), other.to_hex())).unwrap();
    assert_eq!(tracker.reload_access_list().unwrap(), 2);
    assert!(!is_denied(&client.announce(
        other,
        peer_id(1),
        1,
        0,
        AnnounceEvent::Started,
        -1
    )));
    std::fs::write(&list, "not a hash\n").unwrap();
    assert!(tracker.reload_access_list().is_err());
    assert!(!is_denied(&client.announce(
        other,
        peer_id(1),
        1,
        0,
        AnnounceEvent::None,
        -1
    )));
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_access_list_at_start_names_file_and_line() {
    let dir = temp_dir("badstart");
    let list = dir.join("bad.txt");
    std::fs::write(&list, format!("{}\n\nxyz\n", info_hash(1).to_hex())).unwrap();
    let mut config = test_config("127.0.0.1:0");
    config.access_list.mode = AccessListMode::Deny;
    config.access_list.path = list;
    let err = tracker_udp::start(config).err().expect("start must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("bad.txt line 3"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigusr1_reloads_the_list_of_the_running_binary() {
    let dir = temp_dir("sigusr1");
    let list = dir.join("allow.txt");
    let hash = info_hash(0x42);
    std::fs::write(&list, "# nothing allowed yet\n").unwrap();
    let config = dir.join("udp.toml");
    std::fs::write(
        &config,
        format!(
            "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
             [access_list]\nmode = \"allow\"\npath = {:?}\n[statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n",
            list.display().to_string()
        ),
    )
    .unwrap();
    let spawned = Spawned::start(&config);
    let mut client = Client::connected("127.0.0.1:0", spawned.addr);
    assert!(is_denied(&client.announce(
        hash,
        peer_id(1),
        1,
        0,
        AnnounceEvent::Started,
        -1
    )));

    std::fs::write(&list, format!("{}\n", hash.to_hex())).unwrap();
    spawned.signal("USR1");
    let line = Spawned::wait_line(&spawned.lines, "access list reloaded");
    assert!(line.contains("1 info hashes"), "{line}");
    assert!(!is_denied(&client.announce(
        hash,
        peer_id(1),
        1,
        0,
        AnnounceEvent::Started,
        -1
    )));

    // A broken file: an error in the log, and the old list stays in force.
    std::fs::write(&list, "zzzz\n").unwrap();
    spawned.signal("USR1");
    let line = Spawned::wait_line(&spawned.lines, "reload failed");
    assert!(line.contains("line 1"), "{line}");
    assert!(!is_denied(&client.announce(
        hash,
        peer_id(1),
        1,
        0,
        AnnounceEvent::None,
        -1
    )));

    // SIGTERM: a clean exit with code 0.
    let mut spawned = spawned;
    spawned.signal("TERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = spawned.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}
