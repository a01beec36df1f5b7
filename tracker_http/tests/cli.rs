//! The binary: -p, bad config files, SIGUSR1 reloading the access list, SIGTERM.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use tracker_common::testing::{Spawned, TrackerBinary};
use tracker_http::Config;
use tracker_http_protocol::{AnnounceEvent, TrackerResponse};

const BIN: &str = env!("CARGO_BIN_EXE_tracker_http");

fn temp_dir(name: &str) -> std::path::PathBuf {
    tracker_common::testing::temp_dir(&format!("http-{name}"))
}

#[test]
fn print_config_parses_back_to_the_defaults() {
    let out = Command::new(BIN).arg("-p").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("address = \"[::]:6969\""), "{text}");
    let parsed: Config = tracker_common::config::parse_config(&text).unwrap();
    assert_eq!(parsed, Config::default());
}

#[test]
fn bad_config_files_name_the_file_and_the_key() {
    let dir = temp_dir("badconfig");
    for (name, text, key) in [
        (
            "type",
            "[http]\nmax_connections = \"many\"\n",
            "http.max_connections",
        ),
        (
            "proxy",
            "[proxy]\ntrusted_proxies = [\"10.0.0.0/40\"]\n",
            "proxy.trusted_proxies",
        ),
        (
            "limit",
            "[http]\nmax_request_bytes = 1\n",
            "http.max_request_bytes",
        ),
    ] {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(BIN).arg("-c").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{name}.toml")) || err.contains(key),
            "{err}"
        );
        assert!(err.contains(key), "{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigusr1_reloads_the_access_list_and_sigterm_stops_cleanly() {
    let dir = temp_dir("sigusr1");
    let list = dir.join("allow.txt");
    let hash = info_hash(0x42);
    std::fs::write(&list, "# nothing allowed yet\n").unwrap();
    let config = dir.join("http.toml");
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
    let request = announce(hash, peer_id(1), 1, 0, AnnounceEvent::Started);
    assert!(matches!(
        client.announce(&request),
        TrackerResponse::Failure(_)
    ));

    std::fs::write(&list, format!("{}\n", hash.to_hex())).unwrap();
    spawned.signal("USR1");
    let line = Spawned::wait_line(&spawned.lines, "access list reloaded");
    assert!(line.contains("1 info hashes"), "{line}");
    assert!(matches!(
        client.announce(&request),
        TrackerResponse::Announce(_)
    ));

    std::fs::write(&list, "zzzz\n").unwrap();
    spawned.signal("USR1");
    let line = Spawned::wait_line(&spawned.lines, "reload failed");
    assert!(line.contains("line 1"), "{line}");
    assert!(matches!(
        client.announce(&request),
        TrackerResponse::Announce(_)
    ));

    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigusr1_reloads_the_certificates_and_keeps_them_when_broken() {
    let dir = temp_dir("tls-sigusr1");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("tracker.crt"), dir.join("tracker.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let config = dir.join("https.toml");
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
        env_prefix: "SHOAL_HTTP__",
        other_prefix: "SHOAL_UDP__",
        network_extra: "",
    }
}

#[test]
fn environment_variables_set_keys_over_the_file() {
    let (spawned, dir) = binary().start_with_env_overrides();
    // Garbage is logged at debug level.
    let mut client = Client::connect(spawned.addr);
    client.send(b"\x00garbage\r\n\r\n");
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
    let request = announce(info_hash(1), peer_id(1), 1, 0, AnnounceEvent::Started);
    assert!(matches!(
        client.announce(&request),
        TrackerResponse::Announce(_)
    ));
    TrackerBinary::stop_cleanly(spawned, &dir);
}

#[test]
fn a_user_that_does_not_exist_stops_the_start() {
    binary().check_unknown_user();
}
