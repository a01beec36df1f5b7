//! The load tester against real servers on loopback: an in-process shoal UDP tracker
//! (IPv4 and IPv6) and the ceiling responder; and the binary's command line.

use std::net::SocketAddr;
use std::process::Command;

use tracker_common::config::{TrackerConfig, parse_config};
use tracker_load_test::report::Summary;
use tracker_load_test::udp::{CeilingConfig, Config, run, start_ceiling};

fn tracker(address: &str) -> tracker_udp::Tracker {
    tracker_with(address, |_| {})
}

/// [`tracker`] with `tune` applied to its config last.
fn tracker_with(
    address: &str,
    tune: impl FnOnce(&mut tracker_udp::Config),
) -> tracker_udp::Tracker {
    let mut config = tracker_udp::Config::default();
    config.network.address = address.parse().unwrap();
    config.network.recv_buffer_bytes = 0;
    config.network.poll_timeout_ms = 10;
    config.workers.socket_workers = 1;
    config.workers.request_workers = 2;
    config.statistics.interval_secs = 0;
    // Tests run side by side: the metrics endpoint takes a port of its own choosing.
    config.metrics.address = "127.0.0.1:0".parse().unwrap();
    tune(&mut config);
    tracker_udp::start(config).unwrap()
}

/// A short, small load: 2 measured seconds after a 1 s warm-up.
fn load_config(server: SocketAddr) -> Config {
    let mut config = Config {
        server_address: server,
        ..Config::default()
    };
    config.run.duration_secs = 2;
    config.run.warmup_secs = 1;
    config.run.workers = 2;
    config.network.sockets_per_worker = 2;
    config.network.in_flight_per_worker = 64;
    config.network.recv_buffer_bytes = 0;
    config.workload.torrents = 10_000;
    config.workload.peers = 20_000;
    config.run.tracker_pid = std::process::id();
    config
}

fn assert_sane(summary: &Summary) {
    assert!(summary.responses > 0, "{summary:?}");
    assert_eq!(summary.malformed, 0, "{summary:?}");
    assert_eq!(summary.error_per_sec, 0.0, "{summary:?}");
    assert!(summary.connect_per_sec > 0.0, "{summary:?}");
    assert!(summary.announce_per_sec > 0.0, "{summary:?}");
    assert!(summary.scrape_per_sec > 0.0, "{summary:?}");
    assert!(summary.requests_per_sec >= summary.responses_per_sec * 0.5);
    assert!(summary.latency.p50_us > 0.0);
    assert!(summary.latency.p50_us <= summary.latency.p99_us);
    assert!(summary.latency.p99_us <= summary.latency.p999_us);
    assert!(summary.tracker_cpu_secs.is_some_and(|cpu| cpu > 0.0));
}

#[test]
fn a_short_load_test_against_the_tracker_is_sane() {
    let tracker = tracker("127.0.0.1:0");
    let summary = run(load_config(tracker.local_addr())).unwrap();
    assert_sane(&summary);
    // The workload's peers are stored: the swarm has grown.
    let stats = tracker.statistics();
    assert!(
        stats.announce > 0 && stats.seeders + stats.leechers > 0,
        "{stats:?}"
    );
    assert!(summary.peers_per_announce > 0.0, "{summary:?}");
    assert_eq!(summary.over_numwant, 0);
    tracker.shutdown();
}

#[test]
fn a_short_load_test_over_ipv6() {
    // Fails, rather than passing unseen, on a host without IPv6 loopback.
    if let Err(err) = std::net::UdpSocket::bind("[::1]:0") {
        panic!("this test needs IPv6 loopback (::1), which this host lacks: {err}");
    }
    let tracker = tracker("[::1]:0");
    let summary = run(load_config(tracker.local_addr())).unwrap();
    assert_sane(&summary);
    tracker.shutdown();
}

#[test]
fn the_ceiling_answers_every_kind_well_formed() {
    let mut config = CeilingConfig::default();
    config.network.address = "127.0.0.1:0".parse().unwrap();
    config.network.recv_buffer_bytes = 0;
    config.network.poll_timeout_ms = 10;
    let ceiling = start_ceiling(config).unwrap();
    let summary = run(load_config(ceiling.local_addr())).unwrap();
    assert_sane(&summary);
    // 30 peers, except for "stopped" announces that ask for none.
    assert!(summary.peers_per_announce > 25.0, "{summary:?}");
    assert_eq!(summary.over_numwant, 0);
    ceiling.shutdown();
}

#[test]
fn the_naive_responder_answers_every_kind_well_formed() {
    let mut config = CeilingConfig::default();
    config.network.address = "127.0.0.1:0".parse().unwrap();
    config.network.poll_timeout_ms = 10;
    config.naive = true;
    let naive = start_ceiling(config.clone()).unwrap();
    let summary = run(load_config(naive.local_addr())).unwrap();
    assert_sane(&summary);
    assert!(summary.peers_per_announce > 25.0, "{summary:?}");
    naive.shutdown();
    config.workers = 2;
    let err = start_ceiling(config).err().expect("refused").to_string();
    assert!(err.starts_with("workers"), "{err}");
}

#[test]
fn only_loopback_is_accepted() {
    let mut config = Config {
        server_address: "192.0.2.1:6969".parse().unwrap(),
        ..Config::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.starts_with("server_address"), "{err}");
    let mut config = Config::default();
    config.workload.popularity_scale = 0.0;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.starts_with("workload.popularity_scale"), "{err}");
}

fn bin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tracker_load_test"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn printed_configs_parse_back_to_the_defaults() {
    let out = bin(&["udp", "-p"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("# Shape"), "{text}");
    assert_eq!(parse_config::<Config>(&text).unwrap(), Config::default());

    let out = bin(&["udp-ceiling", "-p"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        parse_config::<CeilingConfig>(&text).unwrap(),
        CeilingConfig::default()
    );
}

#[test]
fn bad_command_lines_and_configs_fail_with_a_message() {
    let out = bin(&[]);
    assert_eq!(out.status.code(), Some(2));
    let out = bin(&["tcp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command"));
    let out = bin(&["udp", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let out = bin(&["-h"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("udp-ceiling"));

    let dir = std::env::temp_dir().join(format!("shoal-load-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[workload]\nseeder_share = 2.0\n").unwrap();
    let out = bin(&["udp", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("workload.seeder_share"), "{stderr}");
    std::fs::write(&path, "[run]\nworkers = \"two\"\n").unwrap();
    let out = bin(&["udp", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run.workers"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn passkeys_come_from_the_list_then_the_file() {
    let a = "AliceAliceAliceAliceAliceAlice01";
    let b = "BobBobBobBobBobBobBobBobBobBob02";
    let mut config = Config::default();
    assert!(config.private.load().unwrap().is_empty(), "none by default");
    config.private.passkeys = vec!["short".to_string()];
    let err = config.validate().unwrap_err().to_string();
    assert!(err.starts_with("private.passkeys"), "{err}");

    let dir = tracker_common::testing::temp_dir("load-passkeys");
    let path = dir.join("passkeys.txt");
    std::fs::write(&path, format!("# users\n\n{b}  # bob\n")).unwrap();
    config.private.passkeys = vec![a.to_string()];
    config.private.passkeys_path = path.clone();
    config.validate().unwrap();
    let keys: Vec<String> = config
        .private
        .load()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(keys, [a, b]);
    std::fs::write(&path, format!("{b}\nnot-a-passkey\n")).unwrap();
    let err = format!("{:#}", config.private.load().unwrap_err());
    assert!(
        err.starts_with("private.passkeys_path") && err.contains("line 2"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A public tracker ignores the passkeys' URL data: the load is as sane as without.
#[test]
fn a_load_test_with_passkeys_against_a_public_tracker_is_sane() {
    let tracker = tracker("127.0.0.1:0");
    let mut config = load_config(tracker.local_addr());
    config.private.passkeys = vec![
        "AliceAliceAliceAliceAliceAlice01".to_string(),
        "BobBobBobBobBobBobBobBobBobBob02".to_string(),
    ];
    let summary = run(config).unwrap();
    assert_sane(&summary);
    tracker.shutdown();
}

/// The benchmark of private mode: every announce carries its peer's passkey and is
/// served (none refused), and the peers get accounting state.
#[test]
fn a_load_test_with_passkeys_against_a_private_tracker_is_sane() {
    let a = "AliceAliceAliceAliceAliceAlice01";
    let b = "BobBobBobBobBobBobBobBobBobBob02";
    let dir = tracker_common::testing::temp_dir("load-private");
    let passkeys = dir.join("passkeys.txt");
    std::fs::write(&passkeys, format!("{a}\n{b}\n")).unwrap();
    let tracker = tracker_with("127.0.0.1:0", |config| {
        config.private.enabled = true;
        config.private.passkeys_path = passkeys.clone();
        // The workload scrapes too; UDP scrapes cannot carry a passkey.
        config.private.scrape_requires_passkey = false;
        config.accounting.url = tracker_common::testing::accounting::sqlite_url(&dir);
        config.private.site_cache_path = dir.join("site.cache");
    });

    let mut load = load_config(tracker.local_addr());
    load.private.passkeys_path = passkeys;
    let summary = run(load).unwrap();
    assert_sane(&summary);
    let stats = tracker.statistics();
    assert_eq!(stats.private.refused, [0; 5], "{stats:?}");
    assert!(
        stats.private.peers + stats.private.credits_committed > 0,
        "reports waiting or committed: {stats:?}"
    );

    // Without passkeys every announce is refused, as "missing passkey".
    let summary = run(load_config(tracker.local_addr())).unwrap();
    assert_eq!(summary.announce_per_sec, 0.0, "{summary:?}");
    assert!(summary.error_per_sec > 0.0, "{summary:?}");
    let refused = tracker.statistics().private.refused;
    assert!(refused[0] > 0 && refused[1..] == [0; 4], "{refused:?}");
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn info_hashes_are_printed_as_an_allow_list() {
    let dir = std::env::temp_dir().join(format!("shoal-load-hashes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("load.toml");
    std::fs::write(&config_path, "[workload]\ntorrents = 500\n").unwrap();
    let out = bin(&["udp-info-hashes", "-c", config_path.to_str().unwrap()]);
    assert!(out.status.success());
    let list_path = dir.join("allow.txt");
    std::fs::write(&list_path, &out.stdout).unwrap();
    // shoal's own access list reader takes it, with every line a distinct hash.
    let list = tracker_common::swarm::access_list::AccessList::load_file(
        tracker_common::swarm::access_list::AccessListMode::Allow,
        &list_path,
    )
    .unwrap();
    assert_eq!(list.len(), 500);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_summary_is_written() {
    let mut config = CeilingConfig::default();
    config.network.address = "127.0.0.1:0".parse().unwrap();
    config.network.recv_buffer_bytes = 0;
    let ceiling = start_ceiling(config).unwrap();
    let dir = std::env::temp_dir().join(format!("shoal-load-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("load.toml");
    std::fs::write(
        &config_path,
        format!(
            "server_address = \"{}\"\n[run]\nduration_secs = 1\nwarmup_secs = 0\n\
             [workload]\ntorrents = 1000\npeers = 1000\n",
            ceiling.local_addr()
        ),
    )
    .unwrap();
    let json_path = dir.join("summary.json");
    let out = bin(&[
        "udp",
        "-c",
        config_path.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("responses per second"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert!(json["responses_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(json["malformed"], 0);
    std::fs::remove_dir_all(&dir).unwrap();
    ceiling.shutdown();
}

#[test]
fn a_small_burst_is_answered_in_full_and_counted() {
    let tracker = tracker("127.0.0.1:0");
    // Small enough for any default receive buffer: nothing may be lost.
    let summary = tracker_load_test::udp::run_burst(tracker.local_addr(), 64, 4).unwrap();
    assert_eq!(summary.sent, 64);
    assert_eq!(summary.answered, 64, "{summary:?}");
    assert_eq!(summary.port_drops, 0, "{summary:?}");
    assert_eq!(tracker.statistics().announce, 64);
    let err =
        tracker_load_test::udp::run_burst("192.0.2.1:6969".parse().unwrap(), 1, 1).unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    tracker.shutdown();
}
