//! Hostile clients against the swarm rules, over real UDP sockets: inflating `completed`,
//! getting handed back one's own address, filling a torrent or the whole tracker from one
//! address, and the limits and the archive that bound what such clients can store. Each
//! test is written from the rule it checks (the module doc of `tracker_common::swarm` and
//! the `swarm.*` config docs), and the hostile client is simulated by what it sends.

mod common;

use std::fmt::Debug;
use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use tracker_common::observe::statistics::Snapshot;
use tracker_common::types::AnnounceEvent;
use tracker_udp::Tracker;
use tracker_udp_protocol::Response;

/// Waits until `pick` of the tracker's statistics equals `expected` (request workers
/// publish their gauges just after answering), then asserts it, so a mismatch shows both.
fn assert_gauges<T: PartialEq + Debug>(
    tracker: &Tracker,
    pick: impl Fn(&Snapshot) -> T,
    expected: T,
) {
    eventually(Duration::from_secs(5), || {
        pick(&tracker.statistics()) == expected
    });
    assert_eq!(pick(&tracker.statistics()), expected);
}

/// (torrents, seeders, leechers, rejected_by_limits): the swarm gauges most tests check.
fn swarm_gauges(s: &Snapshot) -> (u64, u64, u64, u64) {
    (s.torrents, s.seeders, s.leechers, s.rejected_by_limits)
}

/// A client that announces `completed` without having been a stored leecher that just
/// finished, or over and over, cannot inflate the torrent's `completed` (the `downloaded`
/// count of a scrape): it grows by one only when a stored leecher becomes a seeder through
/// `event=completed`, once per stored peer, and the stored peer is the endpoint (IP and
/// port), whatever peer id the client sends.
#[test]
fn completed_cannot_be_inflated() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let mut client = Client::connected("127.0.0.1:0", addr);
    let hash = info_hash(1);
    let port = 6001;

    // A leecher says `completed` five times while still having bytes left.
    let _ = client.announce_v4(hash, peer_id(1), port, 5, AnnounceEvent::Started, -1);
    for _ in 0..5 {
        let (seeders, leechers, _) =
            client.announce_v4(hash, peer_id(1), port, 5, AnnounceEvent::Completed, -1);
        assert_eq!((seeders, leechers), (0, 1), "it stays a leecher");
    }
    assert_eq!(client.scrape_one(hash), (0, 0, 1));

    // The leecher really completes: one download.
    let (seeders, leechers, _) =
        client.announce_v4(hash, peer_id(1), port, 0, AnnounceEvent::Completed, -1);
    assert_eq!((seeders, leechers), (1, 0));
    assert_eq!(client.scrape_one(hash), (1, 1, 0));

    // Leecher → seeder (completed) → leecher → seeder (completed): the same peer, not
    // counted again.
    for _ in 0..2 {
        let (seeders, leechers, _) =
            client.announce_v4(hash, peer_id(1), port, 5, AnnounceEvent::None, -1);
        assert_eq!((seeders, leechers), (0, 1));
        let (seeders, leechers, _) =
            client.announce_v4(hash, peer_id(1), port, 0, AnnounceEvent::Completed, -1);
        assert_eq!((seeders, leechers), (1, 0));
        assert_eq!(client.scrape_one(hash), (1, 1, 0));
    }

    // `completed` repeated by a seeder.
    for _ in 0..5 {
        let _ = client.announce_v4(hash, peer_id(1), port, 0, AnnounceEvent::Completed, -1);
    }
    assert_eq!(client.scrape_one(hash), (1, 1, 0));

    // The client "restarts": a new socket and a new peer id, the same IP and port. It
    // announces as a leecher (replacing its entry, still one peer) and completes again.
    let mut restarted = Client::connected("127.0.0.1:0", addr);
    let (seeders, leechers, _) =
        restarted.announce_v4(hash, peer_id(99), port, 5, AnnounceEvent::Started, -1);
    assert_eq!((seeders, leechers), (0, 1), "the old entry was replaced");
    let (seeders, leechers, _) =
        restarted.announce_v4(hash, peer_id(99), port, 0, AnnounceEvent::Completed, -1);
    assert_eq!((seeders, leechers), (1, 0));
    assert_eq!(restarted.scrape_one(hash), (1, 1, 0));

    assert_gauges(&tracker, swarm_gauges, (1, 1, 0, 0));
    tracker.shutdown();
}

/// A client that restarts with a new peer id on the same IP and port, and changes from
/// seeder to leecher, is never sent its own endpoint (which would make it connect to
/// itself) and is not stored twice; others see that endpoint once.
#[test]
fn an_announcer_is_never_sent_its_own_address() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let hash = info_hash(2);
    let (own, other, third) = (7001, 7002, 7003);

    // Another seeder, so that the answers below are not empty for lack of peers.
    let mut other_seeder = Client::connected("127.0.0.1:0", addr);
    let _ = other_seeder.announce_v4(hash, peer_id(2), other, 0, AnnounceEvent::Started, -1);

    let mut first = Client::connected("127.0.0.1:0", addr);
    let (_, _, peers) = first.announce_v4(hash, peer_id(0xa), own, 0, AnnounceEvent::Started, -1);
    assert!(
        peers.is_empty(),
        "a seeder gets leechers only, and there are none"
    );

    // Restart: new socket, peer id B, same port, now a leecher (it gets seeders too).
    let mut restarted = Client::connected("127.0.0.1:0", addr);
    let (seeders, leechers, peers) =
        restarted.announce_v4(hash, peer_id(0xb), own, 5, AnnounceEvent::Started, 50);
    assert!(
        !peers.contains(&(Ipv4Addr::LOCALHOST, own)),
        "sent its own endpoint: {peers:?}"
    );
    assert_eq!(peers, vec![(Ipv4Addr::LOCALHOST, other)]);
    // The endpoint moved from seeder to leecher: one peer, not two.
    assert_eq!((seeders, leechers), (1, 1));
    assert_eq!(restarted.scrape_one(hash), (1, 0, 1));

    // Another leecher sees the restarted client's endpoint exactly once.
    let mut leecher = Client::connected("127.0.0.1:0", addr);
    let (seeders, leechers, peers) =
        leecher.announce_v4(hash, peer_id(3), third, 5, AnnounceEvent::Started, 50);
    assert_eq!((seeders, leechers), (1, 2));
    let seen = peers
        .iter()
        .filter(|&&p| p == (Ipv4Addr::LOCALHOST, own))
        .count();
    assert_eq!(seen, 1, "{peers:?}");
    assert_eq!(peers.len(), 2, "{peers:?}");

    assert_gauges(&tracker, swarm_gauges, (1, 1, 2, 0));
    tracker.shutdown();
}

/// One address cannot fill a torrent with made-up peers (one per port): beyond
/// `swarm.max_peers_per_ip` new peers from it are answered, with the torrent's peers, but
/// not stored, and the cap of one address does not touch another. (Two IPv6 addresses of
/// one /64 share a cap too, but ::1 is the only IPv6 loopback address, so no test client
/// can announce from a second address of its /64; the swarm's unit tests cover that.)
#[test]
fn one_address_holds_at_most_max_peers_per_ip_in_a_torrent() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.max_peers_per_ip = 3;
    let tracker = start(config);
    let addr = tracker.local_addr();
    let mut client = Client::connected("127.0.0.1:0", addr);
    let hash = info_hash(3);

    for (i, port) in (8001..=8003).enumerate() {
        let (seeders, leechers, _) =
            client.announce_v4(hash, peer_id(1), port, 5, AnnounceEvent::Started, 50);
        assert_eq!((seeders, leechers), (0, i as i32 + 1), "stored");
    }
    let stored: Vec<_> = (8001..=8003).map(|p| (Ipv4Addr::LOCALHOST, p)).collect();
    for port in 8004..=8005 {
        let (seeders, leechers, mut peers) =
            client.announce_v4(hash, peer_id(1), port, 5, AnnounceEvent::Started, 50);
        // Not stored, yet answered with the torrent as it is.
        assert_eq!((seeders, leechers), (0, 3));
        peers.sort();
        assert_eq!(peers, stored);
    }
    assert_eq!(client.scrape_one(hash), (0, 0, 3));
    assert_gauges(&tracker, swarm_gauges, (1, 0, 3, 2));

    // Only a new peer is checked: a stored one re-announces and changes status freely.
    let (seeders, leechers, _) =
        client.announce_v4(hash, peer_id(1), 8001, 0, AnnounceEvent::Completed, 50);
    assert_eq!((seeders, leechers), (1, 2));

    // Another address has its own cap.
    let mut neighbour = Client::connected("127.0.0.2:0", addr);
    for port in 8001..=8003 {
        let _ = neighbour.announce_v4(hash, peer_id(2), port, 5, AnnounceEvent::Started, 50);
    }
    let (seeders, leechers, peers) =
        neighbour.announce_v4(hash, peer_id(2), 8004, 5, AnnounceEvent::Started, 50);
    assert_eq!(
        (seeders, leechers),
        (1, 5),
        "the fourth from 127.0.0.2 is refused"
    );
    assert_eq!(peers.len(), 6, "{peers:?}");
    assert_eq!(client.scrape_one(hash), (1, 1, 5));
    assert_gauges(&tracker, swarm_gauges, (1, 1, 5, 3));
    tracker.shutdown();
}

/// Many new torrents, spread by the router over the three request workers, cannot take
/// more than `swarm.max_torrents` over the whole tracker (a per-worker limit would let
/// about three times as many in); the rest are answered and counted, and room comes back
/// when the stored torrents empty.
#[test]
fn max_torrents_holds_for_the_whole_tracker() {
    let mut config = test_config("127.0.0.1:0");
    assert_eq!(config.workers.request_workers, 3);
    config.swarm.max_torrents = 5;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());

    // Announced one after the other, each answered before the next: the first five are
    // stored.
    for n in 1..=40 {
        let (seeders, leechers, _) = client.announce_v4(
            info_hash(n),
            peer_id(1),
            9000,
            0,
            AnnounceEvent::Started,
            -1,
        );
        let expected = if n <= 5 { (1, 0) } else { (0, 0) };
        assert_eq!((seeders, leechers), expected, "torrent {n}");
    }
    assert_gauges(&tracker, swarm_gauges, (5, 5, 0, 35));
    assert_eq!(client.scrape_one(info_hash(5)), (1, 0, 0));
    assert_eq!(client.scrape_one(info_hash(6)), (0, 0, 0));

    // The stored peers leave: their torrents go, and five new torrents fit again.
    for n in 1..=5 {
        let _ = client.announce_v4(info_hash(n), peer_id(1), 9000, 0, AnnounceEvent::Stopped, 0);
    }
    assert_gauges(&tracker, swarm_gauges, (0, 0, 0, 35));
    for n in 6..=11 {
        let (seeders, _, _) = client.announce_v4(
            info_hash(n),
            peer_id(1),
            9000,
            0,
            AnnounceEvent::Started,
            -1,
        );
        assert_eq!(seeders, i32::from(n <= 10), "torrent {n}");
    }
    assert_gauges(&tracker, swarm_gauges, (5, 5, 0, 36));
    tracker.shutdown();
}

/// Many new peers over many torrents and ports, spread over the three request workers,
/// cannot take more than `swarm.max_peers` over the whole tracker; the rest are answered
/// and counted, and room comes back when stored peers send `stopped`.
#[test]
fn max_peers_holds_for_the_whole_tracker() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.max_peers = 7;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());

    // Two rounds over ten torrents, a port per round: the first seven announces are
    // stored (round 0, torrents 1..=7). A torrent that cannot get its first peer is not
    // created either, and a refused announcer is answered from what exists: the seeder
    // already there, not itself.
    for port in [9100, 9101] {
        for n in 1..=10 {
            let (seeders, _, _) = client.announce_v4(
                info_hash(n),
                peer_id(n),
                port,
                0,
                AnnounceEvent::Started,
                -1,
            );
            assert_eq!(seeders, i32::from(n <= 7), "torrent {n}, port {port}");
        }
    }
    let stored: Vec<_> = (1..=7).map(|n| (n, 9100)).collect();
    assert_gauges(&tracker, swarm_gauges, (7, 7, 0, 13));
    assert_eq!(client.scrape_one(info_hash(8)), (0, 0, 0));

    // The stored peers leave; seven new ones (other torrents and ports) fit, an eighth
    // does not.
    for &(n, port) in &stored {
        let _ = client.announce_v4(info_hash(n), peer_id(n), port, 0, AnnounceEvent::Stopped, 0);
    }
    assert_gauges(&tracker, swarm_gauges, (0, 0, 0, 13));
    // (torrent, port, leechers in the answer): the eighth needs an eighth peer (and a
    // new torrent) and gets an empty answer.
    let again = [
        (8, 9200, 1),
        (9, 9200, 1),
        (10, 9200, 1),
        (8, 9201, 2),
        (9, 9201, 2),
        (10, 9201, 2),
        (1, 9202, 1),
        (2, 9202, 0),
    ];
    for (n, port, expected) in again {
        let (seeders, leechers, _) = client.announce_v4(
            info_hash(n),
            peer_id(n),
            port,
            9,
            AnnounceEvent::Started,
            -1,
        );
        assert_eq!(
            (seeders, leechers),
            (0, expected),
            "torrent {n}, port {port}"
        );
    }
    assert_gauges(&tracker, swarm_gauges, (4, 0, 7, 14));
    tracker.shutdown();
}

/// `max_peers_per_torrent` cannot be dodged by announcing from the other address family:
/// a torrent's limit covers its IPv4 and IPv6 peers together.
#[test]
fn max_peers_per_torrent_counts_both_families() {
    let mut config = test_config("[::]:0");
    config.swarm.max_peers_per_torrent = 2;
    let tracker = start(config);
    let v4 = target(&tracker, "127.0.0.1");
    let v6 = target(&tracker, "::1");
    let mut a = Client::connected("127.0.0.1:0", v4);
    let mut b = Client::connected("127.0.0.1:0", v4);
    let mut c = Client::connected("[::1]:0", v6);
    let hash = info_hash(5);

    let _ = a.announce_v4(hash, peer_id(1), 8001, 0, AnnounceEvent::Started, -1);
    match c.announce(hash, peer_id(3), 8003, 0, AnnounceEvent::Started, -1) {
        Response::AnnounceIpv6(r) => assert_eq!((r.seeders, r.leechers), (1, 0), "stored"),
        other => panic!("expected an IPv6 announce response, got {other:?}"),
    }
    // The torrent is full: a second IPv4 peer is answered from the IPv4 swarm, not stored.
    let (seeders, leechers, peers) =
        b.announce_v4(hash, peer_id(2), 8002, 5, AnnounceEvent::Started, -1);
    assert_eq!((seeders, leechers), (1, 0));
    assert_eq!(peers, vec![(Ipv4Addr::LOCALHOST, 8001)]);
    // And so is a second IPv6 peer.
    match c.announce(hash, peer_id(4), 8004, 5, AnnounceEvent::Started, -1) {
        Response::AnnounceIpv6(r) => {
            assert_eq!((r.seeders, r.leechers), (1, 0));
            assert_eq!(r.peers.len(), 1);
            assert_eq!(r.peers[0].port, 8003);
        }
        other => panic!("expected an IPv6 announce response, got {other:?}"),
    }
    assert_eq!(b.scrape_one(hash), (2, 0, 0));
    assert_eq!(c.scrape_one(hash), (2, 0, 0));
    assert_gauges(&tracker, swarm_gauges, (1, 2, 0, 2));
    tracker.shutdown();
}

/// Emptying a torrent (every peer sends `stopped`) does not wipe out its completed count,
/// so clients cannot reset a torrent's `downloaded` by leaving together; the count comes
/// back with the torrent.
#[test]
fn completed_survives_a_torrent_emptying() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.max_archived_torrents = 1024;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(6);

    let _ = client.announce_v4(hash, peer_id(1), 6001, 5, AnnounceEvent::Started, -1);
    let _ = client.announce_v4(hash, peer_id(2), 6002, 5, AnnounceEvent::Started, -1);
    let _ = client.announce_v4(hash, peer_id(1), 6001, 0, AnnounceEvent::Completed, -1);
    assert_eq!(client.scrape_one(hash), (1, 1, 1));
    assert_gauges(&tracker, |s| (s.torrents, s.archived_torrents), (1, 0));

    let _ = client.announce_v4(hash, peer_id(1), 6001, 0, AnnounceEvent::Stopped, 0);
    let _ = client.announce_v4(hash, peer_id(2), 6002, 5, AnnounceEvent::Stopped, 0);
    assert_gauges(&tracker, |s| (s.torrents, s.archived_torrents), (0, 1));
    assert_eq!(client.scrape_one(hash), (0, 1, 0));

    let (seeders, leechers, _) =
        client.announce_v4(hash, peer_id(3), 6003, 5, AnnounceEvent::Started, -1);
    assert_eq!((seeders, leechers), (0, 1));
    assert_eq!(client.scrape_one(hash), (0, 1, 1));
    assert_gauges(&tracker, |s| (s.torrents, s.archived_torrents), (1, 0));
    tracker.shutdown();
}

/// Peers that stop announcing (expire) do not take the completed count with them either.
#[test]
fn completed_survives_a_torrent_expiring() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.max_archived_torrents = 1024;
    config.swarm.announce_interval_secs = 1;
    config.swarm.max_peer_age_secs = 2;
    config.swarm.cleaning_interval_secs = 1;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(7);

    let _ = client.announce_v4(hash, peer_id(1), 6001, 5, AnnounceEvent::Started, -1);
    let _ = client.announce_v4(hash, peer_id(1), 6001, 0, AnnounceEvent::Completed, -1);
    assert_eq!(client.scrape_one(hash), (1, 1, 0));

    assert!(
        eventually(Duration::from_secs(10), || tracker.statistics().torrents
            == 0),
        "the peer did not expire"
    );
    assert_gauges(&tracker, |s| (s.torrents, s.archived_torrents), (0, 1));
    assert_eq!(client.scrape_one(hash), (0, 1, 0));

    let _ = client.announce_v4(hash, peer_id(2), 6002, 0, AnnounceEvent::Started, -1);
    assert_eq!(client.scrape_one(hash), (1, 1, 0));
    assert_gauges(&tracker, |s| (s.torrents, s.archived_torrents), (1, 0));
    tracker.shutdown();
}

/// A config whose limits would make the tracker store nothing (every announce refused as
/// over a limit) is refused at start, naming the key, rather than running a tracker that
/// silently tracks no one.
#[test]
fn zero_limits_are_refused_at_start() {
    let keys = [
        "swarm.max_peers_per_ip",
        "swarm.max_peers",
        "swarm.max_torrents",
        "swarm.max_peers_per_torrent",
    ];
    for key in keys {
        let mut config = test_config("127.0.0.1:0");
        match key {
            "swarm.max_peers_per_ip" => config.swarm.max_peers_per_ip = 0,
            "swarm.max_peers" => config.swarm.max_peers = 0,
            "swarm.max_torrents" => config.swarm.max_torrents = 0,
            _ => config.swarm.max_peers_per_torrent = 0,
        }
        match tracker_udp::start(config) {
            Ok(tracker) => {
                tracker.shutdown();
                panic!("{key} = 0 was accepted");
            }
            Err(err) => {
                let msg = format!("{err:#}");
                assert!(msg.starts_with(&format!("{key}:")), "{key}: {msg}");
            }
        }
    }
}
