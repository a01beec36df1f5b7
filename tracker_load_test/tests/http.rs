//! The HTTP load tester against an in-process shoal HTTP tracker on loopback: keep-alive
//! connections with and without pipelining, and a new connection per request, in plain
//! text and over TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use tracker_common::config::{TrackerConfig, parse_config};
use tracker_load_test::http::{Config, run};
use tracker_load_test::report::Summary;

fn tracker(address: &str) -> tracker_http::Tracker {
    tracker_with(address, |_| {})
}

fn tracker_with(
    address: &str,
    tune: impl FnOnce(&mut tracker_http::Config),
) -> tracker_http::Tracker {
    let mut config = tracker_http::Config::default();
    config.network.address = address.parse().unwrap();
    config.network.poll_timeout_ms = 10;
    config.workers.socket_workers = 1;
    config.workers.request_workers = 2;
    config.statistics.interval_secs = 0;
    // Tests run side by side: the metrics endpoint takes a port of its own choosing.
    config.metrics.address = "127.0.0.1:0".parse().unwrap();
    tune(&mut config);
    tracker_http::start(config).unwrap()
}

/// A directory of its own for `name` in this test process, with a self-signed
/// certificate for 127.0.0.1 in it: returns the directory, the certificate file and the
/// key file.
fn certificate(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("shoal-http-load-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (dir, cert, key)
}

/// A tracker serving TLS only, with the certificate and key at these paths.
fn tls_tracker(cert: &std::path::Path, key: &std::path::Path) -> tracker_http::Tracker {
    tracker_with("127.0.0.1:0", |config| {
        config.tls.enabled = true;
        config.tls.certificate_chain_path = cert.to_owned();
        config.tls.private_key_path = key.to_owned();
    })
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
    config.network.connections_per_worker = 16;
    config.workload.torrents = 10_000;
    config.workload.peers = 20_000;
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
    assert_eq!(summary.no_answer_share, 0.0, "{summary:?}");
    assert_eq!(summary.connection_errors, 0, "{summary:?}");
    // Every request sent in the window is answered in it, give or take those in
    // flight at its edges.
    assert!(
        summary.requests_sent >= summary.responses / 2,
        "{summary:?}"
    );
    assert!(summary.peers_per_announce > 0.0, "{summary:?}");
    assert_eq!(summary.over_numwant, 0, "{summary:?}");
    assert!(summary.latency.p50_us > 0.0);
    assert!(summary.latency.p50_us <= summary.latency.p99_us);
    assert!(summary.latency.p99_us <= summary.latency.p999_us);
    assert!(summary.tracker_cpu_secs.is_some_and(|cpu| cpu > 0.0));
}

#[test]
fn keep_alive_connections_are_reused() {
    let tracker = tracker("127.0.0.1:0");
    let summary = run(load_config(tracker.local_addr())).unwrap();
    assert_sane(&summary);
    assert_eq!(summary.protocol, "http");
    // The 32 connections were made before the clock started and carried everything.
    assert_eq!(summary.connections_opened, 0, "{summary:?}");
    let stats = tracker.statistics();
    assert!(
        stats.announce > 0 && stats.seeders + stats.leechers > 0,
        "{stats:?}"
    );
    tracker.shutdown();
}

#[test]
fn passkeys_go_in_the_path() {
    // A public tracker serves /PASSKEY/announce as /announce: the paths are accepted and
    // answered like any other (the private-mode refusals are the tracker's tests).
    let tracker = tracker("127.0.0.1:0");
    let mut config = load_config(tracker.local_addr());
    config.passkeys = vec![
        "abcdefghijklmnopqrstuvwxyzABC789".to_string(),
        "0123456789ABCDEFGHIJKLMNOPQRSTUV".to_string(),
    ];
    config.network.pipeline_depth = 4;
    let summary = run(config).unwrap();
    assert_sane(&summary);
    tracker.shutdown();
}

#[test]
fn a_private_tracker_serves_the_passkeys() {
    // The benchmark's set-up: private mode on SQLite, every request with a known
    // passkey. A refused one would be a failure answer, which assert_sane counts.
    let keys = [
        "abcdefghijklmnopqrstuvwxyzABC789",
        "0123456789ABCDEFGHIJKLMNOPQRSTUV",
    ];
    let dir = tracker_common::testing::temp_dir("http-load-private");
    let passkeys = dir.join("passkeys.txt");
    std::fs::write(&passkeys, keys.join("\n")).unwrap();
    let tracker = tracker_with("127.0.0.1:0", |config| {
        config.private.enabled = true;
        config.private.passkeys_path = passkeys.clone();
        config.accounting.url = tracker_common::testing::accounting::sqlite_url(&dir);
        config.private.site_cache_path = dir.join("site.cache");
    });
    let mut config = load_config(tracker.local_addr());
    config.passkeys = keys.iter().map(|k| k.to_string()).collect();
    let summary = run(config).unwrap();
    assert_sane(&summary);
    let stats = tracker.statistics();
    assert_eq!(stats.private.refused, [0; 5], "{stats:?}");
    assert!(
        stats.private.peers + stats.private.credits_committed > 0,
        "reports waiting or committed: {stats:?}"
    );
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let tracker = tracker("127.0.0.1:0");
    let mut config = load_config(tracker.local_addr());
    config.network.pipeline_depth = 8;
    let summary = run(config).unwrap();
    assert_sane(&summary);
    tracker.shutdown();
}

#[test]
fn a_new_connection_per_request() {
    let tracker = tracker("127.0.0.1:0");
    let mut config = load_config(tracker.local_addr());
    config.network.keep_alive = false;
    config.network.connections_per_worker = 4;
    let summary = run(config).unwrap();
    assert_sane(&summary);
    assert_eq!(summary.protocol, "http-new-connection");
    // One connection per request: as many opened as answered, give or take the ones
    // open at the edges of the window.
    let slack = 2 * 4 + summary.responses / 100;
    assert!(
        summary.connections_opened + slack >= summary.responses
            && summary.connections_opened <= summary.responses + slack,
        "{summary:?}"
    );
    tracker.shutdown();
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
    config.network.pipeline_depth = 4;
    let summary = run(config).unwrap();
    assert_sane(&summary);
    assert_eq!(summary.protocol, "https");
    assert_eq!(summary.tls_handshake_failures, 0, "{summary:?}");
    assert_eq!(summary.connections_opened, 0, "{summary:?}");
    tracker.shutdown();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn over_tls_without_verifying_a_new_connection_per_request() {
    let (dir, cert, key) = certificate("unverified");
    let tracker = tls_tracker(&cert, &key);
    let mut config = load_config(tracker.local_addr());
    config.network.tls = true;
    config.network.keep_alive = false;
    config.network.connections_per_worker = 4;
    let summary = run(config).unwrap();
    assert_sane(&summary);
    assert_eq!(summary.protocol, "https-new-connection");
    assert_eq!(summary.tls_handshake_failures, 0, "{summary:?}");
    assert!(summary.connections_opened > 0, "{summary:?}");
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
    let out = Command::new(bin).args(["http", "-p"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parsed: Config = parse_config(&text).unwrap();
    parsed.validate().unwrap();
    assert_eq!(parsed, Config::default());

    let dir = std::env::temp_dir().join(format!("shoal-http-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("remote.toml");
    std::fs::write(&file, "server_address = \"192.0.2.1:6969\"\n").unwrap();
    let out = Command::new(bin)
        .args(["http", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not a loopback address"), "{err}");
}
