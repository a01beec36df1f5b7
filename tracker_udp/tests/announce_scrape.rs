//! Connect, announce and scrape against a real tracker over real UDP sockets, IPv4 and
//! IPv6.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use tracker_common::observe::statistics::Snapshot;
use tracker_common::types::AnnounceEvent;
use tracker_udp_protocol::{ConnectionId, Request, Response, ScrapeRequest, TransactionId};

#[test]
fn two_ipv4_peers_see_each_other_and_stopped_removes() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let mut a = Client::connected("127.0.0.1:0", addr);
    let mut b = Client::connected("127.0.0.1:0", addr);
    let hash = info_hash(1);

    let (seeders, leechers, peers) =
        a.announce_v4(hash, peer_id(1), 6001, 0, AnnounceEvent::Started, -1);
    assert_eq!((seeders, leechers), (1, 0));
    assert!(peers.is_empty(), "the announcer is never its own peer");

    let (seeders, leechers, peers) =
        b.announce_v4(hash, peer_id(2), 6002, 100, AnnounceEvent::Started, -1);
    assert_eq!((seeders, leechers), (1, 1));
    assert_eq!(peers, vec![(Ipv4Addr::LOCALHOST, 6001)]);

    // The seeder gets the leecher.
    let (_, _, peers) = a.announce_v4(hash, peer_id(1), 6001, 0, AnnounceEvent::None, -1);
    assert_eq!(peers, vec![(Ipv4Addr::LOCALHOST, 6002)]);

    assert_eq!(a.scrape_one(hash), (1, 0, 1));

    // The leecher completes: a real download is counted.
    let (seeders, leechers, peers) =
        b.announce_v4(hash, peer_id(2), 6002, 0, AnnounceEvent::Completed, -1);
    assert_eq!((seeders, leechers), (2, 0));
    assert!(peers.is_empty(), "seeders get leechers only");
    assert_eq!(a.scrape_one(hash), (2, 1, 0));

    // Stopped removes.
    let (seeders, leechers, _) =
        b.announce_v4(hash, peer_id(2), 6002, 0, AnnounceEvent::Stopped, 0);
    assert_eq!((seeders, leechers), (1, 0));
    assert_eq!(a.scrape_one(hash), (1, 1, 0));

    // Every request was answered; one seeder is left.
    assert_statistics(
        &tracker,
        2,
        Snapshot {
            announce: 5,
            scrape: 3,
            responses: 10,
            torrents: 1,
            seeders: 1,
            ..Snapshot::default()
        },
    );
    tracker.shutdown();
}

#[test]
fn ipv6_peers_get_18_byte_peers_from_the_ipv6_swarm() {
    let tracker = start(test_config("[::1]:0"));
    let addr = tracker.local_addr();
    let mut a = Client::connected("[::1]:0", addr);
    let mut b = Client::connected("[::1]:0", addr);
    let hash = info_hash(2);
    let _ = a.announce(hash, peer_id(1), 7001, 0, AnnounceEvent::Started, -1);
    match b.announce(hash, peer_id(2), 7002, 5, AnnounceEvent::Started, -1) {
        Response::AnnounceIpv6(r) => {
            assert_eq!((r.seeders, r.leechers), (1, 1));
            assert_eq!(r.peers.len(), 1);
            assert_eq!(r.peers[0].ip, "::1".parse::<std::net::Ipv6Addr>().unwrap());
            assert_eq!(r.peers[0].port, 7001);
        }
        other => panic!("expected an IPv6 announce response, got {other:?}"),
    }
    // Raw check of the size: 20-byte header and one 18-byte peer.
    let request = a.announce_request(hash, peer_id(1), 7001, 0, AnnounceEvent::None, -1);
    a.send(&Request::Announce(request));
    assert_eq!(a.recv_raw().unwrap().len(), 20 + 18);
    assert_eq!(a.scrape_one(hash), (1, 0, 1));
    tracker.shutdown();
}

#[test]
fn dual_stack_socket_treats_mapped_ipv4_as_ipv4() {
    let tracker = start(test_config("[::]:0"));
    let v4 = target(&tracker, "127.0.0.1");
    let v6 = target(&tracker, "::1");
    let mut a = Client::connected("127.0.0.1:0", v4);
    let mut b = Client::connected("127.0.0.1:0", v4);
    let mut c = Client::connected("[::1]:0", v6);
    let hash = info_hash(3);
    let _ = a.announce_v4(hash, peer_id(1), 8001, 0, AnnounceEvent::Started, -1);
    let _ = c.announce(hash, peer_id(3), 8003, 0, AnnounceEvent::Started, -1);
    let (seeders, leechers, peers) =
        b.announce_v4(hash, peer_id(2), 8002, 9, AnnounceEvent::Started, -1);
    // IPv4 and IPv6 swarms are apart: counts and peers are of the IPv4 swarm.
    assert_eq!((seeders, leechers), (1, 1));
    assert_eq!(peers, vec![(Ipv4Addr::LOCALHOST, 8001)]);
    // A scrape sums both families.
    assert_eq!(c.scrape_one(hash), (2, 0, 1));
    tracker.shutdown();
}

#[test]
fn numwant_default_max_and_zero() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.numwant_default = 3;
    config.swarm.numwant_max = 5;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(4);
    for i in 0..10u8 {
        let _ = client.announce_v4(
            hash,
            peer_id(i),
            9000 + u16::from(i),
            0,
            AnnounceEvent::Started,
            0,
        );
    }
    let leecher = peer_id(100);
    let (_, _, peers) = client.announce_v4(hash, leecher, 9100, 1, AnnounceEvent::Started, -1);
    assert_eq!(peers.len(), 3, "default");
    let (_, _, peers) = client.announce_v4(hash, leecher, 9100, 1, AnnounceEvent::None, 1000);
    assert_eq!(peers.len(), 5, "capped by the maximum");
    let (_, _, peers) = client.announce_v4(hash, leecher, 9100, 1, AnnounceEvent::None, 0);
    assert!(peers.is_empty(), "numwant 0");
    let (_, _, peers) = client.announce_v4(hash, leecher, 9100, 1, AnnounceEvent::None, 4);
    assert_eq!(peers.len(), 4);
    let mut unique = peers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "no duplicates");
    assert!(!peers.contains(&(Ipv4Addr::LOCALHOST, 9100)));
    tracker.shutdown();
}

#[test]
fn port_zero_is_answered_but_not_stored() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(5);
    let (seeders, leechers, _) =
        client.announce_v4(hash, peer_id(1), 0, 10, AnnounceEvent::Started, -1);
    assert_eq!((seeders, leechers), (0, 0));
    assert_eq!(client.scrape_one(hash), (0, 0, 0));
    tracker.shutdown();
}

#[test]
fn scrape_over_several_shards_and_unknown_hashes() {
    let mut config = test_config("127.0.0.1:0");
    config.workers.request_workers = 4;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hashes: Vec<_> = (10..40u8).map(info_hash).collect();
    // Torrent i gets i % 3 seeders and one leecher.
    for (i, hash) in hashes.iter().enumerate() {
        for s in 0..(i % 3) as u8 {
            let _ = client.announce_v4(
                *hash,
                peer_id(s),
                1000 + u16::from(s),
                0,
                AnnounceEvent::Started,
                0,
            );
        }
        let _ = client.announce_v4(*hash, peer_id(99), 2000, 50, AnnounceEvent::Started, 0);
    }
    let mut wanted = hashes.clone();
    wanted.insert(7, info_hash(200)); // unknown
    let stats = client.scrape(&wanted);
    assert_eq!(stats.len(), wanted.len());
    for (hash, s) in wanted.iter().zip(&stats) {
        match hashes.iter().position(|h| h == hash) {
            Some(i) => assert_eq!((s.seeders, s.completed, s.leechers), ((i % 3) as i32, 0, 1)),
            None => assert_eq!((s.seeders, s.completed, s.leechers), (0, 0, 0)),
        }
    }
    tracker.shutdown();
}

#[test]
fn scrape_is_capped_at_the_configured_maximum() {
    let mut config = test_config("127.0.0.1:0");
    config.protocol.max_scrape_torrents = 5;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hashes: Vec<_> = (0..20u8).map(info_hash).collect();
    assert_eq!(client.scrape(&hashes).len(), 5);
    tracker.shutdown();
}

#[test]
fn invalid_connection_id_gets_an_error_and_no_peers() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let mut good = Client::connected("127.0.0.1:0", addr);
    let hash = info_hash(6);
    let _ = good.announce_v4(hash, peer_id(1), 6001, 0, AnnounceEvent::Started, -1);

    let mut bad = Client::new("127.0.0.1:0", addr);
    bad.connection_id = ConnectionId(0x1234_5678);
    match bad.announce(hash, peer_id(2), 6002, 10, AnnounceEvent::Started, -1) {
        Response::Error(e) => assert_eq!(e.message, "invalid connection id"),
        other => panic!("expected an error, got {other:?}"),
    }
    let tid = bad.tid();
    match bad.request(&Request::Scrape(ScrapeRequest {
        connection_id: ConnectionId(99),
        transaction_id: tid,
        info_hashes: vec![hash],
    })) {
        Response::Error(e) => {
            assert_eq!(e.transaction_id, tid);
            assert_eq!(e.message, "invalid connection id");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // The rejected announce was not stored.
    assert_eq!(good.scrape_one(hash), (1, 0, 0));
    assert_statistics(
        &tracker,
        1,
        Snapshot {
            announce: 2,
            scrape: 2,
            responses: 5,
            error_responses: 2,
            bad_requests: 2,
            torrents: 1,
            seeders: 1,
            ..Snapshot::default()
        },
    );
    tracker.shutdown();
}

#[test]
fn hostile_datagrams_are_survived_and_counted() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let client = Client::new("127.0.0.1:0", addr);
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 15],
        vec![0xff; 16],
        vec![0; 97],
        vec![0xab; 1500],
        vec![0x41; 4000],
        vec![0x17; 9000],
    ];
    // Connect with a wrong magic; unknown action 9 with a transaction id.
    let mut wrong_magic = vec![0u8; 16];
    wrong_magic[7] = 1;
    garbage.push(wrong_magic);
    let mut unknown_action = vec![0u8; 16];
    unknown_action[11] = 9;
    garbage.push(unknown_action);
    for packet in &garbage {
        client.send_raw(packet);
    }
    // Nothing comes back to an unvalidated source (no amplification): the answer to a
    // connect sent after the garbage is the first reply.
    assert_first_reply_is_connect(&client.socket, addr);

    // The tracker still works.
    let mut ok = Client::connected("127.0.0.1:0", addr);
    let _ = ok.announce_v4(info_hash(7), peer_id(1), 1, 0, AnnounceEvent::Started, -1);

    // A connected client sending a broken scrape gets a protocol error.
    let mut short_scrape = Vec::new();
    short_scrape.extend_from_slice(&ok.connection_id.0.to_be_bytes());
    short_scrape.extend_from_slice(&2i32.to_be_bytes());
    short_scrape.extend_from_slice(&77i32.to_be_bytes());
    ok.send_raw(&short_scrape);
    let reply = ok.recv_raw().expect("an error response");
    match tracker_udp_protocol::Response::parse_bytes(&reply, true).unwrap() {
        Response::Error(e) => assert_eq!(e.transaction_id, TransactionId(77)),
        other => panic!("expected an error, got {other:?}"),
    }
    // Each garbage packet and the short scrape count once as a bad request.
    assert_statistics(
        &tracker,
        2,
        Snapshot {
            announce: 1,
            responses: 4,
            error_responses: 1,
            bad_requests: garbage.len() as u64 + 1,
            torrents: 1,
            seeders: 1,
            ..Snapshot::default()
        },
    );
    tracker.shutdown();
}

#[test]
fn bep41_options_make_a_valid_announce() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let mut request = client.announce_request(
        info_hash(8),
        peer_id(1),
        5000,
        0,
        AnnounceEvent::Started,
        -1,
    );
    request.url_data = b"/announce?passkey=abcdef".to_vec();
    match client.request(&Request::Announce(request)) {
        Response::AnnounceIpv4(r) => assert_eq!(r.seeders, 1),
        other => panic!("expected an announce response, got {other:?}"),
    }
    tracker.shutdown();
}

/// A client that stuffs its announce with URL data (3,000 bytes over twelve BEP 41
/// options, far past `protocol.max_url_data_bytes`) gets an ordinary answer, not an
/// error. That the data is cut while parsing is the protocol crate's tests' to show
/// (`url_data_never_exceeds_the_limit`); requests to the request workers carry no URL
/// data at all (see `messages.rs`).
#[test]
fn oversized_url_data_is_cut_not_refused() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    for i in 0..100u16 {
        let mut request = client.announce_request(
            info_hash(13),
            peer_id(1),
            5000 + i,
            0,
            AnnounceEvent::Started,
            -1,
        );
        request.url_data = vec![b'x'; 3000];
        match client.request(&Request::Announce(request)) {
            Response::AnnounceIpv4(r) => assert_eq!(r.seeders, i32::from(i) + 1),
            other => panic!("expected an announce response, got {other:?}"),
        }
    }
    assert_eq!(tracker.statistics().bad_requests, 0);
    tracker.shutdown();
}

#[test]
fn expired_peers_and_empty_torrents_are_removed() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.announce_interval_secs = 1;
    config.swarm.max_peer_age_secs = 2;
    config.swarm.cleaning_interval_secs = 1;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    let hash = info_hash(9);
    let _ = client.announce_v4(hash, peer_id(1), 4000, 0, AnnounceEvent::Started, -1);
    assert_eq!(client.scrape_one(hash), (1, 0, 0));
    assert!(eventually(Duration::from_secs(10), || tracker
        .statistics()
        .torrents
        == 0));
    assert_eq!(client.scrape_one(hash), (0, 0, 0));
    tracker.shutdown();
}

#[test]
fn announce_interval_comes_from_the_config() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.announce_interval_secs = 1234;
    config.swarm.max_peer_age_secs = 2000;
    let tracker = start(config);
    let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
    match client.announce(info_hash(1), peer_id(1), 1, 0, AnnounceEvent::Started, -1) {
        Response::AnnounceIpv4(r) => assert_eq!(r.announce_interval, 1234),
        other => panic!("{other:?}"),
    }
    tracker.shutdown();
}

#[test]
fn client_ip_field_is_ignored_unless_trusted() {
    for trust in [false, true] {
        let mut config = test_config("127.0.0.1:0");
        config.swarm.trust_client_ip = trust;
        let tracker = start(config);
        let mut client = Client::connected("127.0.0.1:0", tracker.local_addr());
        let hash = info_hash(11);
        let mut request =
            client.announce_request(hash, peer_id(1), 5000, 0, AnnounceEvent::Started, -1);
        request.ip_address = Some(Ipv4Addr::new(10, 9, 8, 7));
        let _ = client.request(&Request::Announce(request));
        let (_, _, peers) =
            client.announce_v4(hash, peer_id(2), 5001, 10, AnnounceEvent::Started, -1);
        let expected = if trust {
            Ipv4Addr::new(10, 9, 8, 7)
        } else {
            Ipv4Addr::LOCALHOST
        };
        assert_eq!(peers, vec![(expected, 5000)]);
        tracker.shutdown();
    }
}

/// A client cannot make an answer larger than one unfragmented datagram: with a maximum
/// of 200 peers, IPv4 answers carry up to 200 (1220 bytes) and IPv6 answers at most 79
/// (1442 bytes, within the 1452 bytes of UDP payload a 1500-byte MTU passes over IPv6).
#[test]
fn answers_fit_one_datagram_of_each_family() {
    for (addr, max_peers, peer_len) in [("127.0.0.1:0", 200, 6), ("[::1]:0", 79, 18)] {
        let mut config = test_config(addr);
        config.swarm.numwant_max = 200;
        let tracker = start(config);
        let mut client = Client::connected(addr, tracker.local_addr());
        let hash = info_hash(12);
        // 250 seeders on distinct ports of the loopback address.
        for i in 0..250u16 {
            let mut id = [0; 20];
            id[..2].copy_from_slice(&i.to_be_bytes());
            let request = client.announce_request(
                hash,
                tracker_common::types::PeerId(id),
                10_000 + i,
                0,
                AnnounceEvent::Started,
                0,
            );
            let _ = client.request(&Request::Announce(request));
        }
        let request =
            client.announce_request(hash, peer_id(255), 9999, 1, AnnounceEvent::Started, 1000);
        client.send(&Request::Announce(request));
        let reply = client.recv_raw().expect("an announce answer");
        assert_eq!(reply.len(), 20 + max_peers * peer_len, "{addr}");
        tracker.shutdown();
    }
}
