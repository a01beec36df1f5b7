//! The binary's command line: -p, -V, -h, bad config files; the statistics log line.

mod common;

use std::process::Command;

use tracker_common::testing::TrackerBinary;
use tracker_udp::Config;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tracker_udp"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn print_config_parses_back_to_the_defaults() {
    let out = run(&["-p"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("address = \"[::]:6969\""), "{text}");
    let parsed: Config = tracker_common::config::parse_config(&text).unwrap();
    assert_eq!(parsed, Config::default());
}

#[test]
fn version_and_help() {
    let out = run(&["-V"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tracker_udp "));
    let out = run(&["-h"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("-c FILE"));
    let out = run(&["--bogus"]);
    assert!(!out.status.success());
}

fn run_with_config(name: &str, text: &str) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("shoal-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let out = run(&["-c", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_files_name_the_file_the_key_and_the_problem() {
    let (code, err) = run_with_config("wrongtype", "[swarm]\nnumwant_max = \"lots\"\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("wrongtype.toml"), "{err}");
    assert!(err.contains("swarm.numwant_max"), "{err}");
    assert!(err.contains("invalid type"), "{err}");

    let (code, err) = run_with_config("unknown", "[network]\nport = 1\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("unknown.toml") && err.contains("unknown field `port`"),
        "{err}"
    );

    let (code, err) = run_with_config(
        "impossible",
        "[swarm]\nannounce_interval_secs = 600\nmax_peer_age_secs = 60\n",
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("impossible.toml"), "{err}");
    assert!(err.contains("swarm.max_peer_age_secs"), "{err}");

    let (code, err) = run_with_config("gather", "[network]\ngather_micros = 10001\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("gather.toml") && err.contains("network.gather_micros: must be at most"),
        "{err}"
    );

    let (code, err) = run_with_config("syntax", "[network\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("syntax.toml") && err.contains("line 1"),
        "{err}"
    );

    let missing = run(&["-c", "/nonexistent/shoal.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/shoal.toml"));
}

#[test]
fn port_in_use_fails_with_a_message() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let (code, err) = run_with_config(
        "inuse",
        &format!("[network]\naddress = \"{addr}\"\nrecv_buffer_bytes = 0\n"),
    );
    assert_eq!(code, Some(1));
    let expected = format!(
        "udp port {} on 127.0.0.1 is already in use by another process (another tracker?)",
        addr.port()
    );
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn statistics_line_appears_in_the_log() {
    let dir = std::env::temp_dir().join(format!("shoal-cli-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stats.toml");
    std::fs::write(
        &path,
        "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
         [swarm]\nmax_archived_torrents = 0\n\
         [statistics]\ninterval_secs = 1\n[metrics]\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let spawned = common::Spawned::start(&path);
    let mut client = common::Client::connected("127.0.0.1:0", spawned.addr);
    let _ = client.announce(
        common::info_hash(1),
        common::peer_id(1),
        1,
        0,
        tracker_common::types::AnnounceEvent::Started,
        -1,
    );
    client.send_raw(b"garbage");
    // The garbage is counted in the first line logged after it was handled; a line
    // logged before that shows no bad request. The gauges are absolute: one torrent
    // with one seeder, whichever line it is.
    let mut counted = None;
    for _ in 0..5 {
        let line = common::Spawned::wait_line(&spawned.lines, "requests/s");
        assert!(
            line.contains(
                "torrents 1, seeders 1, leechers 0, archived 0 (0 bytes); since last: dropped 0, \
                 bad requests "
            ),
            "{line}"
        );
        if line.contains("bad requests 1,") {
            counted = Some(line);
            break;
        }
        assert!(line.contains("bad requests 0,"), "{line}");
    }
    let line = counted.expect("no statistics line counted the garbage");
    assert!(line.contains("access denied 0"), "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

const BIN: &str = env!("CARGO_BIN_EXE_tracker_udp");

fn temp_dir(name: &str) -> std::path::PathBuf {
    tracker_common::testing::temp_dir(&format!("udp-{name}"))
}

#[test]
fn dropping_privileges_without_root_stops_the_start() {
    if !tracker_common::testing::running_as_root("dropping_privileges_without_root_stops_the_start")
    {
        return;
    }
    use std::os::unix::process::CommandExt;
    let (uid, gid) = tracker_common::testing::user_ids("nobody");
    let dir = temp_dir("notroot");
    let path = dir.join("notroot.toml");
    std::fs::write(
        &path,
        "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
         [metrics]\naddress = \"127.0.0.1:0\"\n[privileges]\ndrop_privileges = true\nuser = \"nobody\"\n",
    )
    .unwrap();
    // Started as nobody already: the first privileged call is refused.
    let out = Command::new(BIN)
        .arg("-c")
        .arg(&path)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("privileges.group: set supplementary groups to")
            && err.contains("EPERM")
            && err.contains("needs the tracker to start as root"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn binary() -> TrackerBinary<'static> {
    TrackerBinary {
        path: std::path::Path::new(BIN),
        env_prefix: "SHOAL_UDP__",
        other_prefix: "SHOAL_HTTP__",
        network_extra: "recv_buffer_bytes = 0\n",
    }
}

#[test]
fn environment_variables_set_keys_over_the_file() {
    let (spawned, dir) = binary().start_with_env_overrides();
    // Garbage is logged at debug level.
    let client = common::Client::connected("127.0.0.1:0", spawned.addr);
    client.send_raw(b"garbage");
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
    let mut client = common::Client::connected("127.0.0.1:0", spawned.addr);
    let (seeders, leechers, _) = client.announce_v4(
        common::info_hash(1),
        common::peer_id(1),
        1,
        0,
        tracker_common::types::AnnounceEvent::Started,
        -1,
    );
    assert_eq!((seeders, leechers), (1, 0));
    TrackerBinary::stop_cleanly(spawned, &dir);
}

#[test]
fn a_user_that_does_not_exist_stops_the_start() {
    binary().check_unknown_user();
}
