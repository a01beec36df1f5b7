//! The binary: -p, bad config files, SIGUSR1 reloading the access list and the
//! certificates, SIGTERM.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use tracker_common::testing::{Spawned, TrackerBinary};
use tracker_ws::Config;
use tracker_ws_protocol::{AnnounceEvent, ParsedOutMessage};

const BIN: &str = env!("CARGO_BIN_EXE_tracker_ws");

fn temp_dir(name: &str) -> std::path::PathBuf {
    tracker_common::testing::temp_dir(&format!("ws-{name}"))
}

#[test]
fn print_config_parses_back_to_the_defaults() {
    let out = Command::new(BIN).arg("-p").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("address = \"[::]:6970\""), "{text}");
    let parsed: Config = tracker_common::config::parse_config(&text).unwrap();
    assert_eq!(parsed, Config::default());
}

#[test]
fn bad_config_files_name_the_file_and_the_key() {
    let dir = temp_dir("badconfig");
    for (name, text, key) in [
        (
            "type",
            "[ws]\nmax_connections = \"many\"\n",
            "ws.max_connections",
        ),
        ("mode", "[origin]\nmode = \"maybe\"\n", "origin.mode"),
        (
            "limit",
            "[ws]\nmax_message_bytes = 1\n",
            "ws.max_message_bytes",
        ),
        ("unknown", "[ws]\nmax_everything = 1\n", "max_everything"),
    ] {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN).arg("-c").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigusr1_reloads_the_access_list_and_certificates_and_sigterm_stops_cleanly() {
    let dir = temp_dir("sigusr1");
    let list = dir.join("allow.txt");
    let hash = info_hash(0x42);
    std::fs::write(&list, "# nothing allowed yet\n").unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("tracker.crt"), dir.join("tracker.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let config = dir.join("ws.toml");
    std::fs::write(
        &config,
        format!(
            "[network]\naddress = \"127.0.0.1:0\"\n\
             [access_list]\nmode = \"allow\"\npath = {:?}\n[statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n",
            list.display().to_string()
        ),
    )
    .unwrap();
    let mut spawned = Spawned::start(Path::new(BIN), &config);
    let mut client = Client::connect(spawned.addr);
    let request = || announce(hash, peer_id(1), Some(1), AnnounceEvent::Started);
    client.announce(request());
    assert!(matches!(client.next(), ParsedOutMessage::Failure { .. }));

    std::fs::write(&list, format!("{}\n", hash.to_hex())).unwrap();
    spawned.signal("USR1");
    let line = Spawned::wait_line(&spawned.lines, "access list reloaded");
    assert!(line.contains("1 info hashes"), "{line}");
    assert_eq!(client.announce_counts(request()), (0, 1));

    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));

    // The same with TLS on: certificates reloaded, a broken key kept out.
    std::fs::write(
        &config,
        format!(
            "[network]\naddress = \"127.0.0.1:0\"\n[statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n\
             [tls]\nenabled = true\ncertificate_chain_path = {:?}\nprivate_key_path = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let mut spawned = Spawned::start(Path::new(BIN), &config);
    spawned.signal("USR1");
    Spawned::wait_line(&spawned.lines, "tls certificates reloaded");
    std::fs::write(&key, "broken\n").unwrap();
    spawned.signal("USR1");
    let line = Spawned::wait_line(&spawned.lines, "tls certificates reload failed");
    assert!(line.contains("tracker.key"), "{line}");
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn binary() -> TrackerBinary<'static> {
    TrackerBinary {
        path: Path::new(BIN),
        env_prefix: "SHOAL_WS__",
        other_prefix: "SHOAL_UDP__",
        network_extra: "",
    }
}

#[test]
fn environment_variables_set_keys_over_the_file() {
    let (spawned, dir) = binary().start_with_env_overrides();
    // Garbage is logged at debug level.
    let mut client = Client::connect(spawned.addr);
    client.send_text("not json".to_string());
    TrackerBinary::expect_debug_and_statistics(&spawned, &dir);
}

#[test]
fn bad_environment_variables_stop_the_start_naming_the_variable() {
    binary().check_bad_environment_variables();
}

#[test]
fn drops_privileges_to_nobody_and_still_answers() {
    let Some((spawned, dir)) =
        binary().start_as_nobody_in_a_chroot("drops_privileges_to_nobody_and_still_answers")
    else {
        return;
    };
    let mut client = Client::connect(spawned.addr);
    let request = announce(info_hash(1), peer_id(1), Some(1), AnnounceEvent::Started);
    assert_eq!(client.announce_counts(request), (0, 1));
    TrackerBinary::stop_cleanly(spawned, &dir);
}

#[test]
fn a_user_that_does_not_exist_stops_the_start() {
    binary().check_unknown_user();
}
