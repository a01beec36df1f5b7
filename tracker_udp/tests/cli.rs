//! The binary's command line: -p, -V, -h, bad config files; the statistics log line.

mod common;

use std::process::Command;

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
    let dir = std::env::temp_dir().join(format!("shoal-udp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn environment_variables_set_keys_over_the_file() {
    let dir = temp_dir("env");
    let path = dir.join("env.toml");
    // Neither the address (TEST-NET-1, not on this host) nor the statistics interval of
    // the file can be the ones in force if the tracker listens and logs statistics.
    std::fs::write(
        &path,
        "[network]\naddress = \"192.0.2.1:6969\"\nrecv_buffer_bytes = 0\n\
         [swarm]\nmax_archived_torrents = 0\n[statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let spawned = tracker_common::testing::Spawned::start_with_env(
        std::path::Path::new(BIN),
        &path,
        &[
            ("SHOAL_UDP__NETWORK__ADDRESS", "127.0.0.1:0"),
            ("SHOAL_UDP__STATISTICS__INTERVAL_SECS", "1"),
            ("SHOAL_UDP__LOG_LEVEL", "debug"),
            // Another tracker's variables are not ours.
            ("SHOAL_HTTP__NETWORK__ADDRESS", "nowhere"),
            ("SHOAL_WS__NO_SUCH_KEY", "1"),
        ],
    );
    assert_eq!(spawned.addr.ip().to_string(), "127.0.0.1");
    let client = common::Client::connected("127.0.0.1:0", spawned.addr);
    client.send_raw(b"garbage");
    // At debug level, the garbage is logged.
    common::Spawned::wait_line(&spawned.lines, "DEBUG");
    common::Spawned::wait_line(&spawned.lines, "requests/s");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_environment_variables_stop_the_start_naming_the_variable() {
    let run = |env: &[(&str, &str)]| {
        tracker_common::testing::run_to_exit(std::path::Path::new(BIN), &[], env)
    };
    let (code, err) = run(&[("SHOAL_UDP__NETWORK__ADDRESS", "nowhere")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "environment variable SHOAL_UDP__NETWORK__ADDRESS: invalid socket address syntax"
        ),
        "{err}"
    );
    let (code, err) = run(&[("SHOAL_UDP__NETWORK__ADRESS", "127.0.0.1:0")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("environment variable SHOAL_UDP__NETWORK__ADRESS: the config has no key"),
        "{err}"
    );
    // A value that parses but is impossible: validation names the key and the variable.
    let (code, err) = run(&[("SHOAL_UDP__SWARM__MAX_PEER_AGE_SECS", "5")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("SHOAL_UDP__SWARM__MAX_PEER_AGE_SECS")
            && err.contains("swarm.max_peer_age_secs: must be greater"),
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
            "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
             [swarm]\nmax_archived_torrents = 0\n[statistics]\ninterval_secs = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n\
             [privileges]\ndrop_privileges = true\nuser = \"nobody\"\nchroot_dir = {:?}\n",
            jail.display().to_string()
        ),
    )
    .unwrap();
    let mut spawned = common::Spawned::start(&path);
    let ids = tracker_common::testing::process_ids(spawned.child.id());
    assert_eq!(ids.uids, [uid; 4], "{ids:?}");
    assert_eq!(ids.gids, [gid; 4], "{ids:?}");
    assert_eq!(ids.groups, [gid], "{ids:?}");
    let root = std::fs::read_link(format!("/proc/{}/root", spawned.child.id())).unwrap();
    assert_eq!(root, jail);
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
        "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
         [metrics]\naddress = \"127.0.0.1:0\"\n[privileges]\ndrop_privileges = true\nuser = \"shoal-no-such-user\"\n",
    )
    .unwrap();
    let (code, err) = tracker_common::testing::run_to_exit(
        std::path::Path::new(BIN),
        &["-c", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("privileges.user: no user \"shoal-no-such-user\""),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
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
