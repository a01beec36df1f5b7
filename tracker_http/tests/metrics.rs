//! The metrics endpoint end to end: a tracker on port 0 with metrics on port 0, a known
//! number of announces and scrapes over real IPv4 and IPv6 connections, then `/metrics`
//! read with a Prometheus text parser and `/stats.json` with a JSON parser, both
//! checked against what was sent.

mod common;

use std::time::Duration;

use common::{Client, announce, eventually, info_hash, peer_id, start, target, test_config};
use prometheus_parse::Scrape;
use tracker_common::testing::http_get;
use tracker_common::testing::metrics::{expect_errors, sample};
use tracker_http_protocol::AnnounceEvent;

#[test]
fn metrics_count_what_was_sent_by_kind_and_family() {
    let tracker = start(test_config("[::]:0"));
    let metrics = tracker.metrics_addr().expect("metrics are on by default");
    let mut a = Client::connect(target(&tracker, "127.0.0.1"));
    let mut b = Client::connect(target(&tracker, "::1"));
    let mut c = Client::connect(target(&tracker, "127.0.0.1"));

    // IPv4: a leecher that completes, and two scrapes.
    a.announce_ok(&announce(
        info_hash(1),
        peer_id(1),
        6001,
        100,
        AnnounceEvent::Started,
    ));
    a.announce_ok(&announce(
        info_hash(1),
        peer_id(1),
        6001,
        0,
        AnnounceEvent::Completed,
    ));
    assert_eq!(a.scrape_one(info_hash(1)), (1, 1, 0));
    let _ = a.scrape(&[info_hash(1), info_hash(2)]);
    // IPv6: a leecher of one torrent and a seeder of another, and one scrape.
    b.announce_ok(&announce(
        info_hash(1),
        peer_id(2),
        6002,
        50,
        AnnounceEvent::Started,
    ));
    b.announce_ok(&announce(
        info_hash(2),
        peer_id(2),
        6002,
        0,
        AnnounceEvent::Started,
    ));
    let _ = b.scrape(&[info_hash(2)]);
    // IPv4: an announce the tracker cannot use, answered with a failure reason.
    c.send(b"GET /announce?info_hash=short&port=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().status, 200);

    // Some counters move just after the answer a client waits for has left.
    let json = || -> serde_json::Value {
        let (status, body) = http_get(metrics, "/stats.json");
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    };
    let settled = eventually(Duration::from_secs(10), || {
        let j = json();
        j["torrents"] == 2
            && j["seeders"] == 2
            && j["leechers"] == 1
            && j["downloads_completed"] == 1
            && j["responses"]["error"]["ipv4"] == 1
    });
    assert!(settled, "{}", json());

    // The bytes sent are counted just after the write that the client may already have
    // read: the scrape is taken once they are the same before and after it.
    let mut text = String::new();
    let still = eventually(Duration::from_secs(10), || {
        let before = json()["sent_bytes"].clone();
        let (status, body) = http_get(metrics, "/metrics");
        assert_eq!(status, 200);
        text = body;
        json()["sent_bytes"] == before
    });
    assert!(still, "the bytes sent kept moving: {}", json());
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    for (kind, v4_count, v6_count) in [("announce", 2, 2), ("scrape", 2, 1)] {
        for (family, n) in [("ipv4", v4_count), ("ipv6", v6_count)] {
            let labels = [("protocol", "http"), ("kind", kind), ("family", family)];
            assert_eq!(sample(&scrape, "shoal_requests_total", &labels), n as f64);
            assert_eq!(sample(&scrape, "shoal_responses_total", &labels), n as f64);
        }
    }
    for (family, n) in [("ipv4", 1.0), ("ipv6", 0.0)] {
        let labels = [("kind", "error"), ("family", family)];
        assert_eq!(sample(&scrape, "shoal_responses_total", &labels), n);
    }
    expect_errors(&scrape, 1.0);
    for (name, n) in [
        ("shoal_torrents", 2.0),
        ("shoal_seeders", 2.0),
        ("shoal_leechers", 1.0),
        ("shoal_downloads_completed_total", 1.0),
        ("shoal_connections_open", 3.0),
    ] {
        assert_eq!(sample(&scrape, name, &[("protocol", "http")]), n, "{name}");
    }
    let received = sample(&scrape, "shoal_received_bytes_total", &[]);
    let sent = sample(&scrape, "shoal_sent_bytes_total", &[]);
    // Eight requests of some tens of bytes each, and their answers.
    assert!(
        received > 8.0 * 40.0 && sent > 8.0 * 40.0,
        "{received} {sent}"
    );
    assert!(sample(&scrape, "shoal_start_time_seconds", &[]) > 1.7e9);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&scrape, "shoal_build_info", &[("version", version)]),
        1.0
    );
    assert!(
        scrape.docs.contains_key("shoal_requests"),
        "{:?}",
        scrape.docs
    );
    assert!(!text.contains("kind=\"connect\"") && !text.contains("shoal_relayed"));

    // The JSON has the same figures.
    let j = json();
    assert_eq!(j["protocol"], "http");
    assert_eq!(j["version"], version);
    assert!(j["requests"].get("connect").is_none());
    assert_eq!(j["requests"]["announce"]["ipv4"], 2);
    assert_eq!(j["requests"]["announce"]["ipv6"], 2);
    assert_eq!(j["requests"]["scrape"]["ipv4"], 2);
    assert_eq!(j["requests"]["scrape"]["ipv6"], 1);
    assert_eq!(j["responses"]["announce"]["ipv6"], 2);
    assert_eq!(j["errors"]["bad_request"], 1);
    assert_eq!(j["connections_open"], 3);
    assert_eq!(j["received_bytes"].as_f64(), Some(received));
    assert_eq!(j["sent_bytes"].as_f64(), Some(sent));

    let stats = tracker.statistics();
    assert_eq!((stats.announce, stats.scrape), (4, 3));
    assert_eq!(http_get(metrics, "/announce").0, 404);
    tracker.shutdown();
}
