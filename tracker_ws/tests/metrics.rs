//! The metrics endpoint end to end: a tracker on port 0 with metrics on port 0, a known
//! number of announces (with an offer and an answer relayed) and scrapes over real IPv4
//! and IPv6 WebSocket connections, then `/metrics` read with a Prometheus text parser and
//! `/stats.json` with a JSON parser, both checked against what was sent.

mod common;

use std::time::Duration;

use common::*;
use prometheus_parse::Scrape;
use tracker_common::testing::http_get;
use tracker_common::testing::metrics::{expect_errors, sample};
use tracker_ws_protocol::{AnnounceEvent, ParsedOutMessage};

/// Where a client reaches the dual-stack tracker over `loopback`.
fn to(tracker: &tracker_ws::Tracker, loopback: &str) -> std::net::SocketAddr {
    std::net::SocketAddr::new(loopback.parse().unwrap(), tracker.local_addr().port())
}

#[test]
fn metrics_count_what_was_sent_by_kind_and_family() {
    let tracker = start(test_config("[::]:0"));
    let metrics = tracker.metrics_addr().expect("metrics are on by default");
    let mut a = Client::connect(to(&tracker, "127.0.0.1"));
    let mut b = Client::connect(to(&tracker, "::1"));
    let hash = info_hash(1);

    // a (IPv4) leeches; b (IPv6) brings one offer, which goes to a; a's answer goes to b.
    a.announce_counts(announce(
        hash,
        peer_id(1),
        Some(100),
        AnnounceEvent::Started,
    ));
    let mut with_offer = announce(hash, peer_id(2), Some(100), AnnounceEvent::Started);
    with_offer.offers = offers(10, 1);
    with_offer.numwant = Some(1);
    b.announce_counts(with_offer);
    let ParsedOutMessage::Offer { offer_id, .. } = a.next() else {
        panic!("a got no offer");
    };
    // An answer is an announce that the tracker relays and does not reply to.
    a.announce(answer(hash, peer_id(1), peer_id(2), offer_id, "v=0 answer"));
    assert!(matches!(b.next(), ParsedOutMessage::Answer { .. }));
    // a completes; each scrapes once; a sends a message that is no JSON.
    a.announce_counts(announce(
        hash,
        peer_id(1),
        Some(0),
        AnnounceEvent::Completed,
    ));
    let _ = b.scrape(&[hash]);
    let _ = a.scrape(&[hash, info_hash(2)]);
    a.send_text("{".into());
    assert!(matches!(a.next(), ParsedOutMessage::Failure { .. }));

    // Some counters move just after the answer a client waits for has left.
    let json = || -> serde_json::Value {
        let (status, body) = http_get(metrics, "/stats.json");
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    };
    let settled = eventually(Duration::from_secs(10), || {
        let j = json();
        j["torrents"] == 1
            && j["seeders"] == 1
            && j["leechers"] == 1
            && j["downloads_completed"] == 1
    });
    assert!(settled, "{}", json());

    let (status, text) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let count = |name: &str, kind: &str, family: &str| {
        let labels = [("protocol", "ws"), ("kind", kind), ("family", family)];
        sample(&scrape, name, &labels)
    };
    // Announces: a's two and its answer, b's one; replies to all but the answer.
    assert_eq!(count("shoal_requests_total", "announce", "ipv4"), 3.0);
    assert_eq!(count("shoal_requests_total", "announce", "ipv6"), 1.0);
    assert_eq!(count("shoal_responses_total", "announce", "ipv4"), 2.0);
    assert_eq!(count("shoal_responses_total", "announce", "ipv6"), 1.0);
    for family in ["ipv4", "ipv6"] {
        assert_eq!(count("shoal_requests_total", "scrape", family), 1.0);
        assert_eq!(count("shoal_responses_total", "scrape", family), 1.0);
    }
    assert_eq!(count("shoal_responses_total", "error", "ipv4"), 1.0);
    assert_eq!(count("shoal_responses_total", "error", "ipv6"), 0.0);
    for (kind, n) in [("offer", 1.0), ("answer", 1.0)] {
        assert_eq!(sample(&scrape, "shoal_relayed_total", &[("kind", kind)]), n);
    }
    expect_errors(&scrape, 1.0);
    for (name, n) in [
        ("shoal_torrents", 1.0),
        ("shoal_seeders", 1.0),
        ("shoal_leechers", 1.0),
        ("shoal_downloads_completed_total", 1.0),
        ("shoal_relayed_shed_total", 0.0),
        ("shoal_connections_open", 2.0),
    ] {
        assert_eq!(sample(&scrape, name, &[("protocol", "ws")]), n, "{name}");
    }
    let received = sample(&scrape, "shoal_received_bytes_total", &[]);
    let sent = sample(&scrape, "shoal_sent_bytes_total", &[]);
    assert!(received > 500.0 && sent > 500.0, "{received} {sent}");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&scrape, "shoal_build_info", &[("version", version)]),
        1.0
    );
    assert!(
        scrape.docs.contains_key("shoal_relayed"),
        "{:?}",
        scrape.docs
    );

    // The JSON has the same figures.
    let j = json();
    assert_eq!(j["protocol"], "ws");
    assert_eq!(j["requests"]["announce"]["ipv4"], 3);
    assert_eq!(j["requests"]["announce"]["ipv6"], 1);
    assert_eq!(j["responses"]["announce"]["ipv4"], 2);
    assert_eq!(j["responses"]["error"]["ipv4"], 1);
    assert_eq!(j["relayed"]["offer"], 1);
    assert_eq!(j["relayed"]["answer"], 1);
    assert_eq!(j["connections_open"], 2);
    assert_eq!(j["received_bytes"].as_f64(), Some(received));

    let connections = tracker.connections();
    assert_eq!(
        (connections.offers_relayed, connections.answers_relayed),
        (1, 1)
    );
    tracker.shutdown();
}
