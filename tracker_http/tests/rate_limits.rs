//! Rate limits per client address against the real HTTP tracker. Two client addresses
//! come through a trusted proxy (X-Forwarded-For), as behind a reverse proxy, so that
//! one loopback connection can speak for each.
//!
//! Every request gets an answer, a failure or not, so each is accounted for; what
//! refills meanwhile depends on how long the test took, and the bounds say so.

mod common;

use std::time::Instant;

use common::{Client, announce, info_hash, peer_id, start, test_config};
use tracker_http_protocol::{AnnounceEvent, TrackerResponse};

/// Sends an announce of peer `n` for client address `client` through the proxy;
/// whether it was served (else it must be the failure "rate limited").
fn served(proxy: &mut Client, client: &str, n: u8) -> bool {
    let mut bytes = Vec::new();
    announce(
        info_hash(1),
        peer_id(n),
        4000 + u16::from(n),
        9,
        AnnounceEvent::Started,
    )
    .write_http(&mut bytes, "t", true);
    let header = format!("X-Forwarded-For: {client}\r\n");
    let end = bytes.len() - 2;
    bytes.splice(end..end, header.bytes());
    proxy.send(&bytes);
    let answer = proxy.response();
    match TrackerResponse::parse_body(&answer.body).unwrap() {
        TrackerResponse::Announce(_) => true,
        TrackerResponse::Failure(reason) => {
            assert_eq!(reason, "rate limited");
            false
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_address_over_its_rate_gets_rate_limited_while_another_is_served() {
    let mut config = test_config("127.0.0.1:0");
    config.proxy.trusted_proxies = vec!["127.0.0.0/8".into()];
    config.rate_limits.enabled = true;
    config.rate_limits.announces_per_sec = 1;
    config.rate_limits.announce_burst = 3;
    config.rate_limits.scrapes_per_sec = 0;
    let tracker = start(config);
    let mut proxy = Client::connect(tracker.local_addr());

    let started = Instant::now();
    let heavy = (0..10)
        .filter(|n| served(&mut proxy, "198.51.100.1", *n))
        .count() as u64;
    let refilled = started.elapsed().as_secs();
    assert!(
        (3..=3 + refilled).contains(&heavy),
        "{heavy} of 10 in {refilled} s"
    );
    assert_eq!(tracker.statistics().rate_limited, 10 - heavy);

    // Another address through the same proxy connection is served; scrapes are not
    // limited here.
    for n in 0..3 {
        assert!(served(&mut proxy, "203.0.113.7", 20 + n));
    }
    for _ in 0..10 {
        proxy.scrape_one(info_hash(1));
    }
    assert_eq!(tracker.statistics().rate_limited, 10 - heavy);
    tracker.shutdown();
}
