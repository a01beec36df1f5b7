//! Rate limits per client address against the real WebSocket tracker: an announce over
//! its address's rate gets the failure "rate limited"; answers to relayed offers are
//! signalling and never limited.
//!
//! Every announce gets a reply, a failure or not, and messages of one connection are
//! handled in order, so each is accounted for; what refills meanwhile depends on how long
//! the test took, and the bounds say so.

mod common;

use std::time::Instant;

use common::{Client, announce, answer, info_hash, offer_id, peer_id, start, test_config};
use tracker_ws_protocol::{AnnounceEvent, ParsedOutMessage};

#[test]
fn announces_over_the_rate_fail_and_answers_are_never_limited() {
    let mut config = test_config("127.0.0.1:0");
    config.rate_limits.enabled = true;
    config.rate_limits.announces_per_sec = 1;
    config.rate_limits.announce_burst = 2;
    config.rate_limits.scrapes_per_sec = 0;
    let tracker = start(config);
    let mut client = Client::connect(tracker.local_addr());

    let started = Instant::now();
    let mut served = 0u64;
    for _ in 0..6 {
        client.announce(announce(
            info_hash(1),
            peer_id(1),
            Some(5),
            AnnounceEvent::None,
        ));
        match client.next() {
            ParsedOutMessage::AnnounceResponse { .. } => served += 1,
            ParsedOutMessage::Failure { reason, .. } => assert_eq!(reason, "rate limited"),
            other => panic!("{other:?}"),
        }
    }
    let refilled = started.elapsed().as_secs();
    assert!(
        (2..=2 + refilled).contains(&served),
        "{served} of 6 in {refilled} s"
    );
    assert_eq!(tracker.statistics().rate_limited, 6 - served);

    // Answers, then a scrape (not limited here): once the scrape's reply is in, the
    // answers before it were handled, and none was counted limited.
    for n in 0..10 {
        client.announce(answer(
            info_hash(1),
            peer_id(1),
            peer_id(2),
            offer_id(n),
            "a",
        ));
    }
    let files = client.scrape(&[info_hash(1)]);
    assert_eq!(files.len(), 1);
    assert_eq!(tracker.statistics().rate_limited, 6 - served);
    tracker.shutdown();
}
