//! The HTTP tracker over real TCP connections on 127.0.0.1 / ::1: announces and scrapes,
//! keep-alive and pipelining, partial reads, every error path, the limits one client can
//! reach, the access list, the proxy header, and IPv6 peers.

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use tracker_common::swarm::access_list::AccessListMode;
use tracker_http_protocol::{AnnounceEvent, ParsedPeer, Passkey, PasskeyParam, TrackerResponse};

fn loopback(port: u16) -> (IpAddr, u16) {
    (IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

fn endpoints(peers: &[ParsedPeer]) -> Vec<(IpAddr, u16)> {
    peers.iter().map(|p| (p.ip, p.port)).collect()
}

#[test]
fn two_peers_find_each_other_and_completed_counts_once() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut a = Client::connect(tracker.local_addr());
    let mut b = Client::connect(tracker.local_addr());
    let hash = info_hash(1);

    let answer = a.announce_ok(&announce(hash, peer_id(1), 6001, 0, AnnounceEvent::Started));
    assert_eq!((answer.complete, answer.incomplete), (1, 0));
    assert!(
        answer.peers.is_empty(),
        "the announcer is never its own peer"
    );
    assert_eq!(answer.interval, 1800);
    assert_eq!(answer.min_interval, Some(900));
    // BEP 24: the address the tracker saw.
    assert_eq!(answer.external_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));

    let answer = b.announce_ok(&announce(
        hash,
        peer_id(2),
        6002,
        100,
        AnnounceEvent::Started,
    ));
    assert_eq!((answer.complete, answer.incomplete), (1, 1));
    assert_eq!(endpoints(&answer.peers), [loopback(6001)]);

    // The leecher completes, twice: one download.
    for _ in 0..2 {
        b.announce_ok(&announce(
            hash,
            peer_id(2),
            6002,
            0,
            AnnounceEvent::Completed,
        ));
    }
    assert_eq!(a.scrape_one(hash), (2, 1, 0));
    // Stopped removes; the same keep-alive connection goes on serving.
    b.announce_ok(&announce(hash, peer_id(2), 6002, 0, AnnounceEvent::Stopped));
    assert_eq!(b.scrape_one(hash), (1, 1, 0));

    let stats = tracker.statistics();
    assert_eq!((stats.announce, stats.scrape), (5, 2));
    assert_eq!(tracker.connections().open, 2);
    tracker.shutdown();
}

#[test]
fn non_compact_answers_list_peer_ids_unless_asked_not_to() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    let hash = info_hash(2);
    client.announce_ok(&announce(hash, peer_id(7), 7000, 0, AnnounceEvent::Started));
    let mut request = announce(hash, peer_id(8), 7001, 5, AnnounceEvent::Started);
    request.compact = false;
    let answer = client.announce_ok(&request);
    assert_eq!(answer.peers.len(), 1);
    assert_eq!(answer.peers[0].peer_id, Some(peer_id(7)));
    assert_eq!((answer.peers[0].ip, answer.peers[0].port), loopback(7000));
    request.no_peer_id = true;
    let answer = client.announce_ok(&request);
    assert_eq!(answer.peers[0].peer_id, None);
    tracker.shutdown();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    let hash = info_hash(3);
    // Announce, scrape, index page and a failing announce, in one write: the scrape
    // must see the announce, and the answers come back in request order.
    let mut bytes = Vec::new();
    announce(hash, peer_id(1), 5000, 0, AnnounceEvent::Started).write_http(&mut bytes, "t", true);
    tracker_http_protocol::ScrapeRequest {
        info_hashes: vec![hash, info_hash(99)],
        passkey: tracker_http_protocol::PasskeyParam::Missing,
    }
    .write_http(&mut bytes, "t", true);
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    bytes.extend_from_slice(b"GET /announce?info_hash=short HTTP/1.1\r\nHost: t\r\n\r\n");
    client.send(&bytes);

    let first = client.response();
    assert!(matches!(
        TrackerResponse::parse_body(&first.body).unwrap(),
        TrackerResponse::Announce(a) if a.complete == 1
    ));
    let second = client.response();
    match TrackerResponse::parse_body(&second.body).unwrap() {
        TrackerResponse::Scrape(files) => {
            let counts: Vec<_> = files
                .iter()
                .map(|(h, c)| (*h, c.seeders, c.leechers))
                .collect();
            assert!(counts.contains(&(hash, 1, 0)), "{counts:?}");
            assert!(counts.contains(&(info_hash(99), 0, 0)), "{counts:?}");
        }
        other => panic!("expected a scrape answer, got {other:?}"),
    }
    let third = client.response();
    assert_eq!(third.status, 200);
    assert!(String::from_utf8_lossy(&third.body).contains("/announce"));
    let fourth = client.response();
    assert!(matches!(
        TrackerResponse::parse_body(&fourth.body).unwrap(),
        TrackerResponse::Failure(reason) if reason.contains("info_hash")
    ));
    assert!(fourth.keep_alive, "a tracker error keeps the connection");
    tracker.shutdown();
}

#[test]
fn a_request_in_pieces_is_read_whole() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    let mut bytes = Vec::new();
    announce(info_hash(4), peer_id(1), 5000, 0, AnnounceEvent::Started)
        .write_http(&mut bytes, "t", true);
    for piece in bytes.chunks(7) {
        client.send(piece);
        client.stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let response = client.response();
    assert!(matches!(
        TrackerResponse::parse_body(&response.body).unwrap(),
        TrackerResponse::Announce(a) if a.complete == 1
    ));
    tracker.shutdown();
}

/// A client that sends its requests and then shuts down its sending side is answered
/// and then closed: whether the end of file comes with the last request or after it was
/// read, and whether the requests fill the read buffer or not.
#[test]
fn a_half_closed_client_gets_its_answers_then_the_close() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut one = Vec::new();
    announce(info_hash(5), peer_id(1), 5000, 0, AnnounceEvent::Started)
        .write_http(&mut one, "t", true);
    // 1: requests, then the FIN in a later segment once the requests were read.
    // 2: requests and FIN back to back.
    // 3: more requests than one read and the pipeline take, then the FIN: the tracker
    //    pauses reading and must still see the FIN when it reads on.
    for (case, copies, pause) in [(1, 2, true), (2, 2, false), (3, 40, false)] {
        let mut client = Client::connect(tracker.local_addr());
        client.send(&one.repeat(copies));
        if pause {
            let first = client.response();
            assert_eq!(first.status, 200, "case {case}");
        }
        client.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let expected = if pause { copies - 1 } else { copies };
        for i in 0..expected {
            let response = client.try_response();
            assert!(
                matches!(&response, Some(r) if r.status == 200),
                "case {case}: answer {i} of {expected} missing"
            );
        }
        assert!(client.is_closed_by_tracker(), "case {case}: not closed");
    }
    // Half a request and the FIN, back to back: nothing will be answered, so nothing
    // but the end of file itself can wake the tracker; it must close at once, not at
    // the idle timeout.
    for round in 0..20 {
        let mut client = Client::connect(tracker.local_addr());
        client.send(one.get(..one.len() / 2).unwrap());
        client.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(
            client.is_closed_by_tracker(),
            "round {round}: half request, FIN: not closed"
        );
    }
    tracker.shutdown();
}

#[test]
fn a_public_tracker_serves_passkey_paths_as_plain_ones() {
    // Private trackers' URLs: a public tracker ignores the passkey, well-formed or not.
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    let hash = info_hash(61);
    let key = "abcdefghijklmnopqrstuvwxyzABC789";
    let query = |id: u8| {
        format!(
            "info_hash={}&peer_id={}&port={}&left=0&event=started",
            "%3D".repeat(20), // info_hash(61): 20 x '='
            (id as char).to_string().repeat(20),
            6000 + u16::from(id)
        )
    };
    assert_eq!(hash.0, [61; 20], "%3D is '='");
    for (id, path) in [
        (b'a', format!("/{key}/announce")),
        (b'b', format!("/announce/{key}")),
        (b'c', "/not-a-passkey/announce".to_string()),
    ] {
        client.send(format!("GET {path}?{} HTTP/1.1\r\nHost: t\r\n\r\n", query(id)).as_bytes());
        let response = client.response();
        assert!(
            matches!(
                TrackerResponse::parse_body(&response.body).unwrap(),
                TrackerResponse::Announce(_)
            ),
            "{path}"
        );
    }
    for passkey in [
        PasskeyParam::Key(Passkey::parse(key.as_bytes()).unwrap()),
        PasskeyParam::Malformed,
    ] {
        let TrackerResponse::Scrape(files) = client.scrape_with(&[hash], passkey) else {
            panic!("expected a scrape answer");
        };
        assert_eq!(files[0].1.seeders, 3, "{files:?}");
    }
    client.send(format!("GET /{key}/other HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_eq!(client.response().status, 404);
    tracker.shutdown();
}

#[test]
fn http_errors_get_their_status_and_close() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let cases: [(&[u8], u16); 4] = [
        (
            b"POST /announce HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            405,
        ),
        (b"GET /elsewhere HTTP/1.1\r\nHost: t\r\n\r\n", 404),
        (
            b"GET /announce HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            413,
        ),
        (b"\x16\x03\x01 this is not http\r\n\r\n", 400),
    ];
    for (request, status) in cases {
        let mut client = Client::connect(addr);
        client.send(request);
        let response = client.response();
        assert_eq!(
            response.status,
            status,
            "{}",
            String::from_utf8_lossy(request)
        );
        assert!(!response.keep_alive);
        assert!(client.is_closed_by_tracker());
    }
    // A head larger than http.max_request_bytes, even before it ends.
    let mut client = Client::connect(addr);
    let mut big = b"GET /announce?".to_vec();
    big.extend(std::iter::repeat_n(b'a', 5000));
    client.send(&big);
    assert_eq!(client.response().status, 431);
    assert!(client.is_closed_by_tracker());
    assert_eq!(tracker.statistics().bad_requests, 5);
    tracker.shutdown();
}

#[test]
fn tracker_errors_are_bencoded_failures() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    let cases: [(&str, &str); 4] = [
        (
            "/announce?peer_id=aaaaaaaaaaaaaaaaaaaa&port=1&left=0",
            "info_hash",
        ),
        (
            "/announce?info_hash=%00%01&peer_id=aaaaaaaaaaaaaaaaaaaa&port=1&left=0",
            "info_hash",
        ),
        (
            "/announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=aaaaaaaaaaaaaaaaaaaa&port=99999&left=0",
            "port",
        ),
        ("/scrape", "full scrape"),
    ];
    for (target, word) in cases {
        client.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.status, 200, "{target}");
        match TrackerResponse::parse_body(&response.body).unwrap() {
            TrackerResponse::Failure(reason) => {
                assert!(reason.contains(word), "{target}: {reason}")
            }
            other => panic!("{target}: expected a failure, got {other:?}"),
        }
    }
    tracker.shutdown();
}

/// Real clients send binary `key`s (aria2 does) and parameters shoal does not know;
/// none of them may fail the announce.
#[test]
fn unused_parameters_with_any_bytes_do_not_fail_an_announce() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    let target = "/announce?info_hash=%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01\
                  &peer_id=-AR1360-%ff%fe%00abcdefghi&port=6881&left=10&key=%ff%00%c3%28\
                  &trackerid=%&supportcrypto=1&corrupt=0&something=%zz+x&compact=1";
    client.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let response = client.response();
    match TrackerResponse::parse_body(&response.body).unwrap() {
        TrackerResponse::Announce(a) => assert_eq!((a.complete, a.incomplete), (0, 1)),
        other => panic!("expected an announce answer, got {other:?}"),
    }
    tracker.shutdown();
}

#[test]
fn idle_and_byte_by_byte_connections_are_closed_after_the_timeout() {
    let mut config = test_config("127.0.0.1:0");
    config.http.idle_timeout_secs = 1;
    let tracker = start(config);
    let addr = tracker.local_addr();
    let mut idle = Client::connect(addr);
    let mut slow = Client::connect(addr);
    // The slow client sends a request one byte every 100 ms: it never completes one
    // within the timeout.
    let request = b"GET /announce?info_hash=aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n";
    let mut sent = 0;
    let mut closed = false;
    for byte in request.iter() {
        if slow.stream.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
        if sent > 30 {
            break;
        }
    }
    assert!(
        closed || slow.is_closed_by_tracker(),
        "the slow client was not cut off"
    );
    assert!(
        idle.is_closed_by_tracker(),
        "the idle connection stayed open"
    );
    assert!(eventually(Duration::from_secs(5), || tracker
        .connections()
        .open
        == 0));
    assert!(tracker.connections().timed_out >= 2);
    // Others are served all along.
    let mut fresh = Client::connect(addr);
    fresh.announce_ok(&announce(
        info_hash(5),
        peer_id(1),
        1,
        0,
        AnnounceEvent::Started,
    ));
    tracker.shutdown();
}

#[test]
fn connections_beyond_the_limit_are_closed_at_once() {
    let mut config = test_config("127.0.0.1:0");
    config.http.max_connections = 2;
    let tracker = start(config);
    let addr = tracker.local_addr();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    // Both are served, so both are counted before the third arrives.
    a.announce_ok(&announce(
        info_hash(6),
        peer_id(1),
        1,
        0,
        AnnounceEvent::Started,
    ));
    b.announce_ok(&announce(
        info_hash(6),
        peer_id(2),
        2,
        0,
        AnnounceEvent::Started,
    ));
    let mut c = Client::connect(addr);
    assert!(c.is_closed_by_tracker());
    // The close may be seen before the tracker has counted it.
    assert!(eventually(Duration::from_secs(5), || tracker
        .connections()
        .refused
        == 1));
    drop(a);
    assert!(eventually(Duration::from_secs(5), || tracker
        .connections()
        .open
        == 1));
    let mut d = Client::connect(addr);
    d.announce_ok(&announce(
        info_hash(6),
        peer_id(3),
        3,
        0,
        AnnounceEvent::Started,
    ));
    tracker.shutdown();
}

#[test]
fn the_access_list_refuses_announces_and_hides_scrapes() {
    let dir = std::env::temp_dir().join(format!("shoal-http-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deny.txt");
    std::fs::write(&path, format!("{}\n", info_hash(7).to_hex())).unwrap();
    let mut config = test_config("127.0.0.1:0");
    config.access_list.mode = AccessListMode::Deny;
    config.access_list.path = path;
    let tracker = start(config);
    let mut client = Client::connect(tracker.local_addr());
    match client.announce(&announce(
        info_hash(7),
        peer_id(1),
        1,
        0,
        AnnounceEvent::Started,
    )) {
        TrackerResponse::Failure(reason) => assert_eq!(reason, "info hash not allowed"),
        other => panic!("expected a failure, got {other:?}"),
    }
    client.announce_ok(&announce(
        info_hash(8),
        peer_id(1),
        1,
        0,
        AnnounceEvent::Started,
    ));
    let files = client.scrape(&[info_hash(7), info_hash(8)]);
    let find = |h| {
        files
            .iter()
            .find(|(hash, _)| *hash == h)
            .map(|(_, c)| c.seeders)
    };
    assert_eq!(find(info_hash(7)), Some(0));
    assert_eq!(find(info_hash(8)), Some(1));
    assert_eq!(tracker.statistics().access_denied, 1);
    tracker.shutdown();
}

#[test]
fn the_proxy_header_is_believed_only_from_trusted_proxies() {
    for trusted in [true, false] {
        let mut config = test_config("127.0.0.1:0");
        if trusted {
            config.proxy.trusted_proxies = vec!["127.0.0.0/8".into()];
        }
        let tracker = start(config);
        let mut proxy = Client::connect(tracker.local_addr());
        let hash = info_hash(9);
        let mut bytes = Vec::new();
        announce(hash, peer_id(1), 4000, 0, AnnounceEvent::Started)
            .write_http(&mut bytes, "t", true);
        // The client wrote a fake address; the proxy appended the real one.
        let header = "X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n";
        let end = bytes.len() - 2;
        bytes.splice(end..end, header.bytes());
        proxy.send(&bytes);
        let answer = proxy.response();
        match TrackerResponse::parse_body(&answer.body).unwrap() {
            TrackerResponse::Announce(a) => {
                let expected: IpAddr = if trusted {
                    "203.0.113.7".parse().unwrap()
                } else {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                };
                assert_eq!(a.external_ip, Some(expected));
            }
            other => panic!("{other:?}"),
        }
        let mut other = Client::connect(tracker.local_addr());
        let seen = other.announce_ok(&announce(hash, peer_id(2), 4001, 9, AnnounceEvent::Started));
        let expected_ip: IpAddr = if trusted {
            "203.0.113.7".parse().unwrap()
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        assert_eq!(endpoints(&seen.peers), [(expected_ip, 4000)]);
        tracker.shutdown();
    }
}

#[test]
fn ipv6_clients_get_peers6() {
    let tracker = start(test_config("[::1]:0"));
    let mut a = Client::connect(tracker.local_addr());
    let mut b = Client::connect(tracker.local_addr());
    let hash = info_hash(10);
    a.announce_ok(&announce(hash, peer_id(1), 7001, 0, AnnounceEvent::Started));
    let answer = b.announce_ok(&announce(hash, peer_id(2), 7002, 5, AnnounceEvent::Started));
    assert_eq!(
        endpoints(&answer.peers),
        [("::1".parse::<IpAddr>().unwrap(), 7001)]
    );
    assert_eq!(answer.external_ip, Some("::1".parse().unwrap()));
    tracker.shutdown();
}

#[test]
fn a_second_tracker_on_the_same_port_is_refused() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut config = test_config("127.0.0.1:0");
    config.network.address = tracker.local_addr();
    let err = tracker_http::start(config).err().expect("start must fail");
    assert!(
        format!("{err:#}").contains("already in use by another process"),
        "{err:#}"
    );
    tracker.shutdown();
}

/// A full scrape is off by default; on, it answers the busiest torrents, at most
/// `http.full_scrape_max_torrents`, and reuses its answer for the cache period, so that
/// asking again and again costs no walk over the torrents.
#[test]
fn full_scrape_is_bounded_and_cached() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    client.send(b"GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = client.response();
    assert!(matches!(
        TrackerResponse::parse_body(&response.body).unwrap(),
        TrackerResponse::Failure(reason) if reason.contains("full scrape")
    ));
    tracker.shutdown();

    let mut config = test_config("127.0.0.1:0");
    config.workers.socket_workers = 1; // one cache
    config.http.full_scrape_max_torrents = 2;
    config.http.full_scrape_cache_secs = 1;
    let tracker = start(config);
    let mut client = Client::connect(tracker.local_addr());
    let mut port = 1000;
    let mut add_peers = |client: &mut Client, torrent: u8, n: u16| {
        for _ in 0..n {
            port += 1;
            client.announce_ok(&announce(
                info_hash(torrent),
                peer_id(1),
                port,
                1,
                AnnounceEvent::Started,
            ));
        }
    };
    add_peers(&mut client, 31, 3);
    add_peers(&mut client, 32, 2);
    add_peers(&mut client, 33, 1);
    let full_scrape = |client: &mut Client| -> Vec<(u8, u32)> {
        client.send(b"GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n");
        match TrackerResponse::parse_body(&client.response().body).unwrap() {
            TrackerResponse::Scrape(files) => {
                files.iter().map(|(h, c)| (h.0[0], c.leechers)).collect()
            }
            other => panic!("expected a scrape answer, got {other:?}"),
        }
    };
    let first = full_scrape(&mut client);
    assert_eq!(first, [(31, 3), (32, 2)]);
    // Torrent 33 becomes the busiest; within the cache period the answer stays.
    add_peers(&mut client, 33, 5);
    assert_eq!(full_scrape(&mut client), first);
    assert!(eventually(Duration::from_secs(5), || full_scrape(
        &mut client
    ) == [
        (31, 3),
        (33, 6)
    ]));
    // Cached answers share one body: pipelined between other answers, each goes out
    // whole and in its place (the head, the shared body, then what follows).
    let mut pipelined = Vec::new();
    for _ in 0..3 {
        pipelined.extend_from_slice(b"GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n");
        pipelined.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    client.send(&pipelined);
    for _ in 0..3 {
        match TrackerResponse::parse_body(&client.response().body).unwrap() {
            TrackerResponse::Scrape(files) => assert_eq!(files.len(), 2),
            other => panic!("expected a scrape answer, got {other:?}"),
        }
        let index = client.response();
        assert!(String::from_utf8_lossy(&index.body).contains("Announce URL"));
    }
    tracker.shutdown();
}

/// 1,000 idle connections and a client sending a request byte by byte hold neither a
/// worker nor the others: a keep-alive client meanwhile gets every answer, in order.
#[test]
fn idle_crowds_and_slow_clients_do_not_hold_up_the_others() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let idle: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut slow = Client::connect(addr);
    slow.send(b"GET /announce?info_hash=");
    assert!(eventually(Duration::from_secs(10), || tracker
        .connections()
        .open
        == 1001));
    let mut client = Client::connect(addr);
    for i in 0..200u16 {
        // The slow client adds a byte now and then; its request never completes.
        if i % 20 == 0 {
            slow.send(b"a");
        }
        let answer = client.announce_ok(&announce(
            info_hash(40),
            peer_id(1),
            2000 + i,
            0,
            AnnounceEvent::None,
        ));
        assert_eq!(answer.complete, i64::from(i) + 1);
    }
    assert_eq!(tracker.connections().open, 1002);
    drop(idle);
    tracker.shutdown();
}

/// A client that pipelines 300 requests without reading an answer: the tracker reads
/// no more than its pipeline holds until the answers go out (its memory for the client
/// stays bounded), and once the client reads, every answer arrives, in order.
#[test]
fn a_client_that_does_not_read_is_held_back_then_answered_in_order() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    let mut bytes = Vec::new();
    for i in 0..300u16 {
        let mut request = announce(info_hash(41), peer_id(1), 3000 + i, 0, AnnounceEvent::None);
        request.numwant = Some(0);
        request.write_http(&mut bytes, "t", true);
    }
    let mut writer = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..300 {
        let response = client.response();
        match TrackerResponse::parse_body(&response.body).unwrap() {
            // Each announce adds one endpoint: the counts show the order.
            TrackerResponse::Announce(a) => assert_eq!(a.complete, i + 1),
            other => panic!("{other:?}"),
        }
    }
    sender.join().unwrap();
    tracker.shutdown();
}

/// A byte bound just above the largest answer holds parsing back a few answers at a
/// time, not the answers: pipelined announces and index pages all come back, in order.
#[test]
fn a_small_byte_bound_holds_parsing_back_and_answers_everything_in_order() {
    let mut config = test_config("127.0.0.1:0");
    config.swarm.numwant_default = 1;
    config.swarm.numwant_max = 1;
    config.http.max_scrape_torrents = 1;
    config.http.max_outgoing_bytes_per_connection = 600;
    let tracker = start(config);
    let mut client = Client::connect(tracker.local_addr());
    let mut bytes = Vec::new();
    for i in 0..60u16 {
        let mut request = announce(info_hash(43), peer_id(1), 4000 + i, 0, AnnounceEvent::None);
        request.numwant = Some(0);
        request.write_http(&mut bytes, "t", true);
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    client.send(&bytes);
    for i in 0..60 {
        match TrackerResponse::parse_body(&client.response().body).unwrap() {
            // Each announce adds one endpoint: the counts show the order.
            TrackerResponse::Announce(a) => assert_eq!(a.complete, i + 1),
            other => panic!("{other:?}"),
        }
        let index = client.response();
        assert!(String::from_utf8_lossy(&index.body).contains("Announce URL"));
    }
    tracker.shutdown();
}

/// On the dual-stack default address, an IPv4 client (seen as an IPv4-mapped address)
/// is in the IPv4 swarm and an IPv6 client in the IPv6 one, with `peers6`.
#[test]
fn dual_stack_keeps_the_families_apart() {
    let tracker = start(test_config("[::]:0"));
    let v4 = target(&tracker, "127.0.0.1");
    let v6 = target(&tracker, "::1");
    let hash = info_hash(42);
    let mut a = Client::connect(v4);
    let mut b = Client::connect(v6);
    let mut c = Client::connect(v4);
    a.announce_ok(&announce(hash, peer_id(1), 8001, 0, AnnounceEvent::Started));
    b.announce_ok(&announce(hash, peer_id(2), 8002, 0, AnnounceEvent::Started));
    let answer = c.announce_ok(&announce(hash, peer_id(3), 8003, 5, AnnounceEvent::Started));
    assert_eq!(endpoints(&answer.peers), [loopback(8001)]);
    assert_eq!(answer.external_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let mut d = Client::connect(v6);
    let answer = d.announce_ok(&announce(hash, peer_id(4), 8004, 5, AnnounceEvent::Started));
    assert_eq!(
        endpoints(&answer.peers),
        [("::1".parse::<IpAddr>().unwrap(), 8002)]
    );
    // A scrape counts both families.
    assert_eq!(a.scrape_one(hash), (2, 0, 2));
    tracker.shutdown();
}
