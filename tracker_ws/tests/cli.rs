//! The binary: -p, bad config files, SIGUSR1 reloading the access list and the
//! certificates, SIGTERM.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use tracker_common::testing::Spawned;
use tracker_ws::Config;
use tracker_ws_protocol::{AnnounceEvent, ParsedOutMessage};

const BIN: &str = env!("CARGO_BIN_EXE_tracker_ws");

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-ws-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
    let line = Spawned::wait_line(&spawned.lines, "tls reload failed");
    assert!(line.contains("tracker.key"), "{line}");
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn environment_variables_set_keys_over_the_file() {
    let dir = temp_dir("env");
    let path = dir.join("env.toml");
    // Neither the address (TEST-NET-1, not on this host) nor the statistics interval of
    // the file can be the ones in force if the tracker listens and logs statistics.
    std::fs::write(
        &path,
        "[network]\naddress = \"192.0.2.1:6969\"\n[statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let spawned = Spawned::start_with_env(
        Path::new(BIN),
        &path,
        &[
            ("SHOAL_WS__NETWORK__ADDRESS", "127.0.0.1:0"),
            ("SHOAL_WS__STATISTICS__INTERVAL_SECS", "1"),
            ("SHOAL_WS__LOG_LEVEL", "debug"),
            // Another tracker's variables are not ours.
            ("SHOAL_UDP__NETWORK__ADDRESS", "nowhere"),
            ("SHOAL_UDP__NO_SUCH_KEY", "1"),
        ],
    );
    assert_eq!(spawned.addr.ip().to_string(), "127.0.0.1");
    let mut client = Client::connect(spawned.addr);
    client.send_text("not json".to_string());
    // At debug level, the garbage is logged.
    Spawned::wait_line(&spawned.lines, "DEBUG");
    Spawned::wait_line(&spawned.lines, "requests/s");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_environment_variables_stop_the_start_naming_the_variable() {
    let run = |env: &[(&str, &str)]| tracker_common::testing::run_to_exit(Path::new(BIN), &[], env);
    let (code, err) = run(&[("SHOAL_WS__NETWORK__ADDRESS", "nowhere")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "environment variable SHOAL_WS__NETWORK__ADDRESS: invalid socket address syntax"
        ),
        "{err}"
    );
    let (code, err) = run(&[("SHOAL_WS__NETWORK__ADRESS", "127.0.0.1:0")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("environment variable SHOAL_WS__NETWORK__ADRESS: the config has no key"),
        "{err}"
    );
}

#[test]
fn drops_privileges_to_nobody_and_still_answers() {
    if !tracker_common::testing::running_as_root("drops_privileges_to_nobody_and_still_answers") {
        return;
    }
    let (uid, gid) = tracker_common::testing::user_ids("nobody");
    let dir = temp_dir("privileges");
    let jail = dir.join("jail");
    std::fs::create_dir_all(&jail).unwrap();
    let path = dir.join("privileges.toml");
    std::fs::write(
        &path,
        format!(
            "[network]\naddress = \"127.0.0.1:0\"\n[statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n             [privileges]\ndrop_privileges = true\nuser = \"nobody\"\nchroot_dir = {:?}\n",
            jail.display().to_string()
        ),
    )
    .unwrap();
    let mut spawned = Spawned::start(Path::new(BIN), &path);
    let ids = tracker_common::testing::process_ids(spawned.child.id());
    assert_eq!(ids.uids, [uid; 4], "{ids:?}");
    assert_eq!(ids.gids, [gid; 4], "{ids:?}");
    assert_eq!(ids.groups, [gid], "{ids:?}");
    let root = std::fs::read_link(format!("/proc/{}/root", spawned.child.id())).unwrap();
    assert_eq!(root, jail);
    let mut client = Client::connect(spawned.addr);
    let request = announce(info_hash(1), peer_id(1), Some(1), AnnounceEvent::Started);
    assert_eq!(client.announce_counts(request), (0, 1));
    spawned.signal("TERM");
    assert_eq!(spawned.wait_exit(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_user_that_does_not_exist_stops_the_start() {
    let dir = temp_dir("nouser");
    let path = dir.join("nouser.toml");
    std::fs::write(
        &path,
        "[network]\naddress = \"127.0.0.1:0\"\n         [metrics]\naddress = \"127.0.0.1:0\"\n[privileges]\ndrop_privileges = true\nuser = \"shoal-no-such-user\"\n",
    )
    .unwrap();
    let (code, err) =
        tracker_common::testing::run_to_exit(Path::new(BIN), &["-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("privileges.user: no user \"shoal-no-such-user\""),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
