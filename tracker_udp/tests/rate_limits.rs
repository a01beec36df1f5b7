//! Rate limits per client address against the real UDP tracker, over loopback: each
//! test client binds an address of its own in 127.0.0.0/8.
//!
//! Every request sent is accounted for, one at a time, as answered or as counted
//! limited by the tracker, so nothing rests on a reply not arriving in time. What
//! refills meanwhile depends on how long the test took, and the bounds say so.

mod common;

use std::time::{Duration, Instant};

use common::{Client, info_hash, peer_id, start, test_config};
use tracker_udp::Tracker;
use tracker_udp_protocol::{AnnounceEvent, ConnectRequest, Request, Response, TransactionId};

const DEADLINE: Duration = Duration::from_secs(20);

/// Requests the tracker has counted as over their limit.
fn limited(tracker: &Tracker) -> u64 {
    tracker.statistics().rate_limited
}

/// Sends `request` and waits until it is answered (true) or counted limited (false).
fn answered(client: &Client, tracker: &Tracker, request: &Request) -> bool {
    let before = limited(tracker);
    client.send(request);
    client
        .socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    loop {
        if client.recv_raw().is_some() {
            return true;
        }
        if limited(tracker) > before {
            return false;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "neither answered nor counted limited"
        );
    }
}

#[test]
fn an_address_over_its_announce_rate_is_dropped_while_another_is_served() {
    let mut config = test_config("127.0.0.1:0");
    config.rate_limits.enabled = true;
    config.rate_limits.announces_per_sec = 1;
    config.rate_limits.announce_burst = 3;
    config.rate_limits.connects_per_sec = 0;
    let tracker = start(config);
    let addr = tracker.local_addr();

    let mut heavy = Client::connected("127.0.0.2:0", addr);
    let started = Instant::now();
    let mut served = 0;
    for n in 0..10u8 {
        let request = Request::Announce(heavy.announce_request(
            info_hash(1),
            peer_id(n),
            6881,
            10,
            AnnounceEvent::Started,
            10,
        ));
        if answered(&heavy, &tracker, &request) {
            served += 1;
        }
    }
    // The burst, and one more per whole second the test took.
    let refilled = started.elapsed().as_secs();
    assert!(
        (3..=3 + refilled).contains(&served),
        "{served} of 10 served in {refilled} s"
    );
    assert_eq!(limited(&tracker), 10 - served);

    // Another address is served at once, the heavy one's state notwithstanding.
    let mut other = Client::connected("127.0.0.3:0", addr);
    for n in 0..3u8 {
        let request = Request::Announce(other.announce_request(
            info_hash(2),
            peer_id(n),
            6881,
            10,
            AnnounceEvent::Started,
            10,
        ));
        assert!(
            answered(&other, &tracker, &request),
            "announce {n} of another address"
        );
    }
    tracker.shutdown();
}

#[test]
fn connects_over_their_rate_get_no_answer() {
    let mut config = test_config("127.0.0.1:0");
    config.rate_limits.enabled = true;
    config.rate_limits.connects_per_sec = 1;
    config.rate_limits.connect_burst = 2;
    let tracker = start(config);
    let client = Client::new("127.0.0.4:0", tracker.local_addr());
    let started = Instant::now();
    let served = (0..6)
        .filter(|n| {
            let connect = Request::Connect(ConnectRequest {
                transaction_id: TransactionId(*n),
            });
            answered(&client, &tracker, &connect)
        })
        .count() as u64;
    let refilled = started.elapsed().as_secs();
    assert!(
        (2..=2 + refilled).contains(&served),
        "{served} of 6 in {refilled} s"
    );
    assert_eq!(limited(&tracker), 6 - served);
    // The limit is per address: another one connects.
    let other = Client::new("127.0.0.5:0", tracker.local_addr());
    match other.request(&Request::Connect(ConnectRequest {
        transaction_id: TransactionId(9),
    })) {
        Response::Connect(_) => {}
        response => panic!("expected a connect answer, got {response:?}"),
    }
    tracker.shutdown();
}

/// `swarm.min_announce_interval_secs`: a plain re-announce sooner is answered with the
/// counts and no peers and not stored (a leecher claiming to be done stays a leecher),
/// counted as throttled; an announce with an event applies whatever the time.
#[test]
fn a_re_announce_sooner_than_the_minimum_interval_is_not_stored() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.min_announce_interval_secs = 600;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(3);
    client.announce_v4(hash, peer_id(1), 7001, 0, AnnounceEvent::Started, 0);
    let (seeders, leechers, _) =
        client.announce_v4(hash, peer_id(2), 7002, 50, AnnounceEvent::Started, 0);
    assert_eq!((seeders, leechers), (1, 1));
    // Peer 2 says it is done, at once, without the completed event: throttled.
    let (seeders, leechers, peers) =
        client.announce_v4(hash, peer_id(2), 7002, 0, AnnounceEvent::None, 10);
    assert_eq!((seeders, leechers), (1, 1), "not stored");
    assert!(
        peers.is_empty(),
        "no peers for a throttled announce: {peers:?}"
    );
    // The gauge is published after the request worker's round.
    common::eventually(Duration::from_secs(10), || {
        tracker.statistics().throttled == 1
    });
    assert_eq!(tracker.statistics().throttled, 1);
    // The completed event applies.
    let (seeders, leechers, _) =
        client.announce_v4(hash, peer_id(2), 7002, 0, AnnounceEvent::Completed, 10);
    assert_eq!((seeders, leechers), (2, 0));
}
