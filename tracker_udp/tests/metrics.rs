//! The metrics endpoint end to end: a tracker on port 0 with metrics on port 0, a known
//! number of connects, announces and scrapes over real IPv4 and IPv6 sockets, then
//! `/metrics` read with a Prometheus text parser and `/stats.json` with a JSON parser,
//! both checked against what was sent; and the real binary's listener answering a
//! scrape and `/health` while idle connections are held.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Client, eventually, info_hash, peer_id, start, target, test_config};
use prometheus_parse::Scrape;
use tracker_common::testing::http_get;
use tracker_common::testing::metrics::{expect_errors, sample};
use tracker_common::types::AnnounceEvent;

#[test]
fn metrics_count_what_was_sent_by_kind_and_family() {
    let tracker = start(test_config("[::]:0"));
    let metrics = tracker.metrics_addr().expect("metrics are on by default");
    assert!(metrics.ip().is_loopback() && metrics.port() != 0);
    let mut v4 = Client::connected("127.0.0.1:0", target(&tracker, "127.0.0.1"));
    let mut v6 = Client::connected("[::1]:0", target(&tracker, "::1"));

    // IPv4: three announces (a leecher that completes, and a seeder of another
    // torrent) and two scrapes.
    let _ = v4.announce(
        info_hash(1),
        peer_id(1),
        6001,
        100,
        AnnounceEvent::Started,
        -1,
    );
    let _ = v4.announce(
        info_hash(1),
        peer_id(1),
        6001,
        0,
        AnnounceEvent::Completed,
        -1,
    );
    let _ = v4.announce(
        info_hash(2),
        peer_id(1),
        6001,
        0,
        AnnounceEvent::Started,
        -1,
    );
    assert_eq!(v4.scrape_one(info_hash(1)), (1, 1, 0));
    let _ = v4.scrape(&[info_hash(1), info_hash(2), info_hash(3)]);
    // IPv6: one leecher's announce and one scrape.
    let _ = v6.announce(
        info_hash(1),
        peer_id(2),
        6002,
        50,
        AnnounceEvent::Started,
        -1,
    );
    let _ = v6.scrape(&[info_hash(2)]);
    // And one packet that is no request.
    v4.send_raw(&[0xff; 20]);

    // Bytes, as BEP 15 sizes them: connect 16, announce 98 (no options), scrape 16 + 20
    // per hash; answers: connect 16, announce 20 + peers (each announcer here gets none
    // of its family), scrape 8 + 12 per hash.
    let received = 2 * 16 + 4 * 98 + (16 + 20) + (16 + 60) + (16 + 20) + 20;
    let sent = 2 * 16 + 4 * 20 + (8 + 12) + (8 + 36) + (8 + 12);
    // Some counters move just after the answer a client waits for has left.
    let json = || -> serde_json::Value {
        let (status, body) = http_get(metrics, "/stats.json");
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    };
    let settled = eventually(Duration::from_secs(10), || {
        let j = json();
        j["sent_bytes"] == sent
            && j["torrents"] == 2
            && j["seeders"] == 2
            && j["leechers"] == 1
            && j["errors"]["bad_request"] == 1
            && j["downloads_completed"] == 1
    });
    assert!(settled, "{}", json());

    let (status, text) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    for (kind, v4_count, v6_count) in [("connect", 1, 1), ("announce", 3, 1), ("scrape", 2, 1)] {
        for (family, n) in [("ipv4", v4_count), ("ipv6", v6_count)] {
            let labels = [("protocol", "udp"), ("kind", kind), ("family", family)];
            assert_eq!(sample(&scrape, "shoal_requests_total", &labels), n as f64);
            assert_eq!(sample(&scrape, "shoal_responses_total", &labels), n as f64);
        }
    }
    for family in ["ipv4", "ipv6"] {
        let labels = [("kind", "error"), ("family", family)];
        assert_eq!(sample(&scrape, "shoal_responses_total", &labels), 0.0);
    }
    expect_errors(&scrape, 1.0);
    for (name, n) in [
        ("shoal_torrents", 2.0),
        ("shoal_seeders", 2.0),
        ("shoal_leechers", 1.0),
        ("shoal_downloads_completed_total", 1.0),
        ("shoal_peers_cleaned_total", 0.0),
        ("shoal_dropped_full_channel_total", 0.0),
        ("shoal_received_bytes_total", received as f64),
        ("shoal_sent_bytes_total", sent as f64),
        ("shoal_access_list_info_hashes", 0.0),
    ] {
        assert_eq!(sample(&scrape, name, &[("protocol", "udp")]), n, "{name}");
    }
    let started = sample(&scrape, "shoal_start_time_seconds", &[]);
    assert!(started > 1.7e9, "{started}");
    assert!(
        sample(
            &scrape,
            "shoal_access_list_last_reload_timestamp_seconds",
            &[]
        ) >= started
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&scrape, "shoal_build_info", &[("version", version)]),
        1.0
    );
    // HELP and TYPE are there; the UDP tracker has no connections or relays.
    assert!(
        scrape.docs.contains_key("shoal_requests"),
        "{:?}",
        scrape.docs
    );
    assert!(text.contains("# TYPE shoal_requests counter\n"));
    assert!(!text.contains("shoal_connections_open") && !text.contains("shoal_relayed"));

    // The JSON has the same figures.
    let j = json();
    assert_eq!(j["protocol"], "udp");
    assert_eq!(j["version"], version);
    assert_eq!(j["requests"]["connect"]["ipv6"], 1);
    assert_eq!(j["requests"]["announce"]["ipv4"], 3);
    assert_eq!(j["requests"]["announce"]["ipv6"], 1);
    assert_eq!(j["requests"]["scrape"]["ipv4"], 2);
    assert_eq!(j["responses"]["scrape"]["ipv6"], 1);
    assert_eq!(j["responses"]["error"]["ipv4"], 0);
    assert_eq!(j["errors"]["bad_request"], 1);
    assert_eq!(
        (j["seeders"].clone(), j["leechers"].clone()),
        (2.into(), 1.into())
    );
    assert_eq!(j["received_bytes"], received);
    assert_eq!(j["start_time_unix_secs"].as_f64(), Some(started));

    // The log line's totals come from the same counters.
    let stats = tracker.statistics();
    assert_eq!(
        (stats.announce, stats.scrape, tracker.connects()),
        (4, 3, 2)
    );
    assert_eq!(stats.responses, 2 + 4 + 3);

    assert_eq!(http_get(metrics, "/nothing").0, 404);
    assert_eq!(http_get(metrics, "/metrics/x").0, 404);
    tracker.shutdown();
}

/// The statistics page and its history: the page is served, and the history sampled
/// every second shows the announces sent between two samples as a positive rate.
#[test]
fn the_page_charts_the_announces() {
    let mut config = test_config("127.0.0.1:0");
    config.metrics.history_interval_secs = 1;
    let tracker = start(config);
    let metrics = tracker.metrics_addr().expect("metrics are on by default");
    let (status, page) = http_get(metrics, "/");
    assert_eq!(status, 200);
    assert!(page.contains("/page.js"), "{page}");
    let mut client = Client::connected("127.0.0.1:0", target(&tracker, "127.0.0.1"));
    for n in 0..5 {
        let _ = client.announce(
            info_hash(n),
            peer_id(1),
            6001,
            100,
            AnnounceEvent::Started,
            -1,
        );
    }
    let mut history = serde_json::Value::Null;
    let charted = eventually(Duration::from_secs(10), || {
        let (status, body) = http_get(metrics, "/history.json");
        assert_eq!(status, 200);
        history = serde_json::from_str(&body).unwrap();
        history["requests_per_sec"]["announce"]
            .as_array()
            .is_some_and(|rates| rates.iter().any(|r| r.as_f64().is_some_and(|r| r > 0.0)))
    });
    assert!(charted, "no announce rate in {history}");
    assert_eq!(history["protocol"], "udp");
    assert_eq!(history["interval_secs"], 1);
    assert_eq!(history["capacity"], 3600);
    assert_eq!(
        history["torrents"].as_array().unwrap().last(),
        Some(&5.into())
    );
    tracker.shutdown();
}

#[test]
fn metrics_can_be_turned_off() {
    let mut config = test_config("127.0.0.1:0");
    config.metrics.enabled = false;
    let tracker = start(config);
    assert_eq!(tracker.metrics_addr(), None);
    tracker.shutdown();
}

#[test]
fn a_taken_metrics_port_stops_the_start_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = test_config("127.0.0.1:0");
    config.metrics.address = addr;
    let err = tracker_udp::start(config).err().expect("start must fail");
    assert!(
        format!("{err:#}").contains(&format!("bind metrics listener on {addr}")),
        "{err:#}"
    );
}

/// The binary's metrics listener answers a scrape at once while local clients hold
/// connections to it without asking anything (five such held the one-connection
/// listener this replaced for 10 s, Prometheus's scrape timeout), and `/health` says the
/// tracker is whole. 1 s is the bound, not a measure of how long it takes.
#[test]
fn the_binary_answers_a_scrape_while_idle_connections_are_held() {
    let dir = std::env::temp_dir().join(format!("shoal-metrics-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("idle.toml");
    std::fs::write(
        &path,
        "[network]\naddress = \"127.0.0.1:0\"\nrecv_buffer_bytes = 0\n\
         [swarm]\nmax_archived_torrents = 0\n[metrics]\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let spawned = common::Spawned::start(&path);
    let metrics = spawned
        .metrics
        .expect("the binary logs where its metrics listen");
    let idle: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(metrics).unwrap())
        .collect();

    let started = Instant::now();
    let (status, text) = http_get(metrics, "/metrics");
    let took = started.elapsed();
    eprintln!("/metrics answered in {took:?} with 5 idle connections held");
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    let (status, body) = http_get(metrics, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["protocol"], "udp", "{health}");
    assert_eq!(health["problems"], serde_json::json!([]), "{health}");
    assert!(health.get("accounting").is_none(), "{health}");

    drop(idle);
    drop(spawned);
    let _ = std::fs::remove_dir_all(&dir);
}
