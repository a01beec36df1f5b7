//! The WebSocket load tester against an in-process shoal WebSocket tracker on loopback:
//! offers relayed and answered, scrapes, in plain text and over TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use tracker_common::config::{TrackerConfig, parse_config};
use tracker_load_test::report::Summary;
use tracker_load_test::ws::{Config, run};

fn tracker(address: &str) -> tracker_ws::Tracker {
    tracker_with(address, |_| {})
}

fn tracker_with(address: &str, tune: impl FnOnce(&mut tracker_ws::Config)) -> tracker_ws::Tracker {
    let mut config = tracker_ws::Config::default();
    config.network.address = address.parse().unwrap();
    config.network.poll_timeout_ms = 10;
    config.workers.socket_workers = 1;
    config.workers.request_workers = 2;
    config.statistics.interval_secs = 0;
    // Tests run side by side: the metrics endpoint takes a port of its own choosing.
    config.metrics.address = "127.0.0.1:0".parse().unwrap();
    tune(&mut config);
    tracker_ws::start(config).unwrap()
}

/// A directory of its own for `name` in this test process, with a self-signed
/// certificate for 127.0.0.1 in it: returns the directory, the certificate file and the
/// key file.
fn certificate(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("shoal-ws-load-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (dir, cert, key)
}

/// A tracker serving TLS only, with the certificate and key at these paths.
fn tls_tracker(cert: &std::path::Path, key: &std::path::Path) -> tracker_ws::Tracker {
    tracker_with("127.0.0.1:0", |config| {
        config.tls.enabled = true;
        config.tls.certificate_chain_path = cert.to_owned();
        config.tls.private_key_path = key.to_owned();
    })
}

/// A short, small load: 2 measured seconds after a 1 s warm-up, 32 browsers in 64
/// torrents, most of them in the hottest few, so that offers find peers.
fn load_config(server: SocketAddr) -> Config {
    let mut config = Config {
        server_address: server,
        ..Config::default()
    };
    config.run.duration_secs = 2;
    config.run.warmup_secs = 1;
    config.run.workers = 2;
    config.network.connections_per_worker = 16;
    config.workload.torrents = 64;
    config.workload.peers = 512;
    config.workload.popularity_scale = 0.05;
    config.run.tracker_pid = std::process::id();
    config
}

fn assert_sane(summary: &Summary) {
    assert!(summary.responses > 0, "{summary:?}");
    assert_eq!(summary.malformed, 0, "{summary:?}");
    assert_eq!(summary.error_per_sec, 0.0, "{summary:?}");
    assert_eq!(summary.connect_per_sec, 0.0, "{summary:?}");
    assert!(summary.announce_per_sec > 0.0, "{summary:?}");
    assert!(summary.scrape_per_sec > 0.0, "{summary:?}");
    assert!(summary.offer_per_sec > 0.0, "{summary:?}");
    assert!(summary.answer_per_sec > 0.0, "{summary:?}");
    assert!(summary.answers_sent_per_sec > 0.0, "{summary:?}");
    assert_eq!(summary.no_answer_share, 0.0, "{summary:?}");
    assert_eq!(summary.connection_errors, 0, "{summary:?}");
    assert_eq!(summary.send_failed, 0, "{summary:?}");
    // shoal does not reply to answer messages, as the reference server does not: every
    // reply matches a request.
    assert_eq!(summary.unmatched, 0, "{summary:?}");
    // Offers are answered as they come, and the answers relayed back: about as many
    // answers come back as were sent (give or take those in flight at the edges of
    // the window), and no more answers are sent than offers came.
    assert!(
        summary.answers_sent_per_sec <= summary.offer_per_sec * 1.05 + 10.0,
        "{summary:?}"
    );
    assert!(
        summary.answer_per_sec >= summary.answers_sent_per_sec * 0.9,
        "{summary:?}"
    );
    assert!(summary.latency.p50_us > 0.0);
    assert!(summary.latency.p50_us <= summary.latency.p99_us);
    assert!(summary.latency.p99_us <= summary.latency.p999_us);
    assert!(summary.tracker_cpu_secs.is_some_and(|cpu| cpu > 0.0));
}

#[test]
fn offers_are_relayed_and_answered() {
    let tracker = tracker("127.0.0.1:0");
    let summary = run(load_config(tracker.local_addr())).unwrap();
    assert_sane(&summary);
    assert_eq!(summary.protocol, "ws");
    // The 32 connections were made before the clock started and carried everything.
    assert_eq!(summary.connections_opened, 0, "{summary:?}");
    // (The connections close as the load test ends, so the tracker's count of open
    // ones is not checked here.)
    let connections = tracker.connections();
    assert!(connections.offers_relayed > 0, "{connections:?}");
    assert!(connections.answers_relayed > 0, "{connections:?}");
    tracker.shutdown();
}

#[test]
fn several_requests_in_flight_and_half_of_the_offers_answered() {
    let tracker = tracker("127.0.0.1:0");
    let mut config = load_config(tracker.local_addr());
    config.network.requests_in_flight = 4;
    config.webtorrent.answer_share = 0.5;
    config.webtorrent.offers_per_announce = 5;
    config.webtorrent.sdp_bytes = 1500;
    let summary = run(config).unwrap();
    assert_sane(&summary);
    let share = summary.answers_sent_per_sec / summary.offer_per_sec;
    assert!((0.4..0.6).contains(&share), "{share} {summary:?}");
    tracker.shutdown();
}

#[test]
fn connections_open_on_the_passkey_path() {
    // A public tracker ignores the passkey in the path: the load is served as on `/`.
    let tracker = tracker("127.0.0.1:0");
    let mut config = load_config(tracker.local_addr());
    config.network.passkeys = vec![
        "abcdefghijklmnopqrstuvwxyz012345".to_string(),
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345".to_string(),
    ];
    let summary = run(config).unwrap();
    assert_sane(&summary);
    tracker.shutdown();
}

#[test]
fn a_private_tracker_serves_the_passkeys_given_and_refuses_others() {
    let keys = [
        "abcdefghijklmnopqrstuvwxyz012345",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
    ];
    let dir = tracker_common::testing::temp_dir("ws-load-private");
    let passkeys = dir.join("passkeys.txt");
    std::fs::write(&passkeys, keys.join("\n")).unwrap();
    let url = tracker_common::testing::accounting::sqlite_url(&dir);
    let tracker = tracker_with("127.0.0.1:0", |config| {
        config.private.enabled = true;
        config.private.passkeys_path = passkeys;
        config.private.site_cache_path = dir.join("site.cache");
        config.accounting.url = url;
    });
    let mut config = load_config(tracker.local_addr());
    config.network.passkeys = keys.iter().map(|k| k.to_string()).collect();
    let summary = run(config.clone()).unwrap();
    assert_sane(&summary);
    assert_eq!(tracker.statistics().private.refused, [0; 5]);

    // With a passkey the tracker does not know, every upgrade is refused (403): no
    // connection opens, and nothing is announced.
    config.network.passkeys = vec!["MalloryMalloryMalloryMallory0003".to_string()];
    let summary = run(config).unwrap();
    assert_eq!(summary.announce_per_sec, 0.0, "{summary:?}");
    assert!(summary.connection_errors > 0, "{summary:?}");
    let refused = tracker.statistics().private.refused;
    assert!(refused[1] > 0 && refused[0] == 0, "{refused:?}");
    tracker.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn over_ipv6() {
    if let Err(err) = std::net::TcpListener::bind("[::1]:0") {
        panic!("this test needs IPv6 loopback (::1), which this host lacks: {err}");
    }
    let tracker = tracker("[::1]:0");
    let summary = run(load_config(tracker.local_addr())).unwrap();
    assert_sane(&summary);
    tracker.shutdown();
}

#[test]
fn over_tls_trusting_the_certificate() {
    let (dir, cert, key) = certificate("trusted");
    let tracker = tls_tracker(&cert, &key);
    let mut config = load_config(tracker.local_addr());
    config.network.tls = true;
    config.network.tls_ca_path = cert;
    let summary = run(config).unwrap();
    assert_sane(&summary);
    assert_eq!(summary.protocol, "wss");
    assert_eq!(summary.tls_handshake_failures, 0, "{summary:?}");
    assert_eq!(summary.connections_opened, 0, "{summary:?}");
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn over_tls_without_verifying() {
    let (dir, cert, key) = certificate("unverified");
    let tracker = tls_tracker(&cert, &key);
    let mut config = load_config(tracker.local_addr());
    config.network.tls = true;
    let summary = run(config).unwrap();
    assert_sane(&summary);
    assert_eq!(summary.tls_handshake_failures, 0, "{summary:?}");
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_certificate_not_trusted_fails_the_handshake() {
    let (dir, cert, key) = certificate("served");
    let (other_dir, other_cert, _) = certificate("other");
    let tracker = tls_tracker(&cert, &key);
    let mut config = load_config(tracker.local_addr());
    config.network.tls = true;
    config.network.tls_ca_path = other_cert;
    config.run.duration_secs = 1;
    config.run.warmup_secs = 0;
    let summary = run(config).unwrap();
    assert_eq!(summary.responses, 0, "{summary:?}");
    assert!(summary.tls_handshake_failures > 0, "{summary:?}");
    assert_eq!(summary.connection_errors, 0, "{summary:?}");
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other_dir).unwrap();
}

#[test]
fn a_refused_upgrade_counts_as_failed_connections() {
    // The tracker refuses every page but this one by its Origin header.
    let tracker = tracker_with("127.0.0.1:0", |config| {
        config.origin.mode = tracker_ws::config::OriginMode::Allow;
        config.origin.origins = vec!["https://only.example".to_string()];
    });
    let mut config = load_config(tracker.local_addr());
    config.run.duration_secs = 1;
    config.run.warmup_secs = 0;
    let summary = run(config).unwrap();
    assert_eq!(summary.responses, 0, "{summary:?}");
    assert!(summary.connection_errors > 0, "{summary:?}");
    tracker.shutdown();
}

#[test]
fn a_server_that_is_down_counts_as_failed_connections() {
    // Nothing listens on this port once the listener is gone.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = load_config(SocketAddr::from(([127, 0, 0, 1], port)));
    config.run.duration_secs = 1;
    config.run.warmup_secs = 0;
    config.run.tracker_pid = 0;
    let summary = run(config).unwrap();
    assert_eq!(summary.responses, 0);
    assert!(summary.connection_errors > 0, "{summary:?}");
}

#[test]
fn the_binary_prints_a_config_that_parses_back_and_refuses_remote_targets() {
    let bin = env!("CARGO_BIN_EXE_tracker_load_test");
    let out = Command::new(bin).args(["ws", "-p"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parsed: Config = parse_config(&text).unwrap();
    parsed.validate().unwrap();
    assert_eq!(parsed, Config::default());

    let dir = std::env::temp_dir().join(format!("shoal-ws-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("remote.toml");
    std::fs::write(&file, "server_address = \"192.0.2.1:6970\"\n").unwrap();
    let out = Command::new(bin)
        .args(["ws", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not a loopback address"), "{err}");
}
