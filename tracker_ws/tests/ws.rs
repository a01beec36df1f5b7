//! The WebSocket tracker over real TCP connections on 127.0.0.1: announces, the relay of
//! offers and answers, scrapes, departures of closed connections, every refusal, and the
//! limits one client can reach.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use tracker_common::swarm::access_list::AccessListMode;
use tracker_ws::config::OriginMode;
use tracker_ws_protocol::{Action, AnnounceEvent, InMessage, ParsedOutMessage, ScrapeRequest};

#[test]
fn offers_reach_other_peers_and_answers_come_back() {
    let tracker = start(test_config("127.0.0.1:0"));
    let hash = info_hash(1);
    let mut a = Client::connect(tracker.local_addr());
    let mut b = Client::connect(tracker.local_addr());
    assert_eq!(
        a.announce_counts(announce(
            hash,
            peer_id(1),
            Some(100),
            AnnounceEvent::Started
        )),
        (0, 1)
    );
    // b brings three offers, but a is the only other peer: one offer goes out.
    let mut with_offers = announce(hash, peer_id(2), Some(100), AnnounceEvent::Started);
    with_offers.offers = offers(10, 3);
    with_offers.numwant = Some(3);
    assert_eq!(b.announce_counts(with_offers), (0, 2));
    let ParsedOutMessage::Offer {
        info_hash: got_hash,
        peer_id: from,
        offer_id: id,
        offer,
    } = a.next()
    else {
        panic!("a got no offer");
    };
    assert_eq!((got_hash, from), (hash, peer_id(2)));
    let sent = offers(10, 3);
    let original = sent
        .iter()
        .find(|o| o.offer_id == id)
        .expect("a known offer id");
    assert_eq!(
        offer.get(),
        original.offer.get(),
        "the SDP is relayed byte for byte"
    );

    // a answers; only b receives it, with a's peer id.
    a.announce(answer(hash, peer_id(1), peer_id(2), id, "v=0 answer"));
    match b.next() {
        ParsedOutMessage::Answer {
            info_hash,
            peer_id: answerer,
            offer_id,
            answer,
        } => {
            assert_eq!((info_hash, answerer, offer_id), (hash, peer_id(1), id));
            assert_eq!(answer.get(), sdp("answer", "v=0 answer").get());
        }
        other => panic!("b expected an answer, got {other:?}"),
    }
    assert!(eventually(Duration::from_secs(2), || {
        let c = tracker.connections();
        c.offers_relayed == 1 && c.answers_relayed == 1
    }));
    tracker.shutdown();
}

#[test]
fn seeders_leechers_and_completed_follow_the_swarm_rules() {
    let tracker = start(test_config("127.0.0.1:0"));
    let hash = info_hash(2);
    let mut a = Client::connect(tracker.local_addr());
    let mut b = Client::connect(tracker.local_addr());
    // left unknown (null) is a leecher.
    assert_eq!(
        a.announce_counts(announce(hash, peer_id(1), None, AnnounceEvent::Started)),
        (0, 1)
    );
    assert_eq!(
        b.announce_counts(announce(hash, peer_id(2), Some(0), AnnounceEvent::Started)),
        (1, 1)
    );
    // a completes, twice: counted once.
    for _ in 0..2 {
        assert_eq!(
            a.announce_counts(announce(
                hash,
                peer_id(1),
                Some(0),
                AnnounceEvent::Completed
            )),
            (2, 0)
        );
    }
    let files = b.scrape(&[hash, info_hash(99)]);
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].0, hash);
    assert_eq!(
        (
            files[0].1.seeders,
            files[0].1.leechers,
            files[0].1.completed
        ),
        (2, 0, 1)
    );
    assert_eq!(
        (files[1].0, files[1].1.seeders, files[1].1.completed),
        (info_hash(99), 0, 0)
    );
    // stopped leaves the swarm.
    assert_eq!(
        a.announce_counts(announce(hash, peer_id(1), Some(0), AnnounceEvent::Stopped)),
        (1, 0)
    );
    tracker.shutdown();
}

#[test]
fn a_closed_connection_leaves_every_swarm_at_once() {
    let tracker = start(test_config("127.0.0.1:0"));
    let hashes: Vec<_> = (10..20).map(info_hash).collect();
    let mut a = Client::connect(tracker.local_addr());
    let mut b = Client::connect(tracker.local_addr());
    for hash in &hashes {
        a.announce_counts(announce(*hash, peer_id(1), Some(5), AnnounceEvent::Started));
        b.announce_counts(announce(*hash, peer_id(2), Some(0), AnnounceEvent::Started));
    }
    let files = b.scrape(&hashes);
    assert!(files.iter().all(|(_, c)| (c.seeders, c.leechers) == (1, 1)));
    // Dropped without a close handshake: the TCP connection just ends.
    drop(a);
    assert!(
        eventually(Duration::from_secs(3), || {
            b.scrape(&hashes)
                .iter()
                .all(|(_, c)| (c.seeders, c.leechers) == (1, 0))
        }),
        "a's peers stayed after its connection closed"
    );
    tracker.shutdown();
}

#[test]
fn another_connection_cannot_take_over_a_peer_id() {
    let tracker = start(test_config("127.0.0.1:0"));
    let hash = info_hash(3);
    let mut owner = Client::connect(tracker.local_addr());
    let mut other = Client::connect(tracker.local_addr());
    let mut thief = Client::connect(tracker.local_addr());
    owner.announce_counts(announce(hash, peer_id(1), Some(5), AnnounceEvent::Started));
    other.announce_counts(announce(hash, peer_id(2), Some(5), AnnounceEvent::Started));
    // The thief uses the owner's peer id: it may neither stop the owner's peer, nor make
    // it a seeder, nor relay offers as it.
    thief.announce_counts(announce(hash, peer_id(1), Some(5), AnnounceEvent::Stopped));
    let mut forged = announce(hash, peer_id(1), Some(0), AnnounceEvent::Completed);
    forged.offers = offers(1, 1);
    forged.numwant = Some(1);
    thief.announce_counts(forged);
    let files = other.scrape(&[hash]);
    assert_eq!(
        (
            files[0].1.seeders,
            files[0].1.leechers,
            files[0].1.completed
        ),
        (0, 2, 0)
    );
    // An answer addressed to peer 1 still reaches the owner, and the thief got no offer.
    owner.announce(with_offer_to_others(hash, peer_id(1)));
    let _ = owner.next(); // the owner's announce reply
    let ParsedOutMessage::Offer { offer_id, .. } = other.next() else {
        panic!("other got no offer from the owner");
    };
    other.announce(answer(
        hash,
        peer_id(2),
        peer_id(1),
        offer_id,
        "to the owner",
    ));
    assert!(matches!(owner.next(), ParsedOutMessage::Answer { .. }));
    assert_eq!(tracker.connections().offers_relayed, 1);
    tracker.shutdown();
}

fn with_offer_to_others(
    hash: tracker_ws_protocol::InfoHash,
    peer: tracker_ws_protocol::PeerId,
) -> tracker_ws_protocol::AnnounceRequest {
    let mut request = announce(hash, peer, Some(5), AnnounceEvent::None);
    request.offers = offers(40, 1);
    request.numwant = Some(1);
    request
}

#[test]
fn bad_messages_get_a_failure_and_the_connection_goes_on() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    client.send_text("{not json".into());
    match client.next() {
        ParsedOutMessage::Failure { reason, .. } => assert_eq!(reason, "malformed JSON"),
        other => panic!("{other:?}"),
    }
    // An announce with a short info_hash: the failure names the action.
    client.send_text(
        r#"{"action":"announce","info_hash":"short","peer_id":"aaaaaaaaaaaaaaaaaaaa"}"#.into(),
    );
    match client.next() {
        ParsedOutMessage::Failure { reason, action, .. } => {
            assert!(reason.contains("info_hash"), "{reason}");
            assert_eq!(action, Some(Action::Announce));
        }
        other => panic!("{other:?}"),
    }
    client.send_text(r#"{"action":"dance"}"#.into());
    assert!(matches!(client.next(), ParsedOutMessage::Failure { .. }));
    // Still usable.
    assert_eq!(
        client.announce_counts(announce(
            info_hash(4),
            peer_id(1),
            Some(1),
            AnnounceEvent::Started
        )),
        (0, 1)
    );
    tracker.shutdown();
}

#[test]
fn binary_oversize_and_unmasked_frames_close_with_their_codes() {
    let mut config = test_config("127.0.0.1:0");
    config.ws.max_message_bytes = 2048;
    config.ws.max_outgoing_bytes_per_connection = 4096;
    // A scrape answer must fit the bound.
    config.ws.max_scrape_torrents = 10;
    let tracker = start(config);
    let mut client = Client::connect(tracker.local_addr());
    client
        .ws
        .send(tungstenite::Message::binary(vec![1u8, 2, 3]))
        .unwrap();
    assert_eq!(client.close_code(), Some(1003));

    let mut client = Client::connect(tracker.local_addr());
    client.send_text("x".repeat(3000));
    assert_eq!(client.close_code(), Some(1009));

    // Fragments that add up to too much.
    let mut client = Client::connect(tracker.local_addr());
    let mut frame = |fin: bool, opcode: u8, payload: &[u8]| {
        let mut bytes = vec![(if fin { 0x80 } else { 0 }) | opcode, 0x80 | 126];
        bytes.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(payload);
        client.ws.get_mut().write_all(&bytes).unwrap();
    };
    frame(false, 0x1, &[b' '; 1500]);
    frame(true, 0x0, &[b' '; 1500]);
    let mut raw = Client { ws: client.ws };
    assert_eq!(raw.close_code(), Some(1009));

    // An unmasked client frame breaks the protocol.
    let mut client = Client::connect(tracker.local_addr());
    client
        .ws
        .get_mut()
        .write_all(&[0x81, 0x02, b'{', b'}'])
        .unwrap();
    assert_eq!(client.close_code(), Some(1002));
    tracker.shutdown();
}

#[test]
fn upgrade_refusals_and_the_index_page() {
    let mut config = test_config("127.0.0.1:0");
    config.origin.mode = OriginMode::Allow;
    config.origin.origins = vec!["https://good.example".into()];
    let tracker = start(config);
    let exchange = |request: &str| {
        let mut stream = TcpStream::connect(tracker.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let upgrade = |origin: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             {origin}\r\n"
        )
    };
    assert!(exchange(&upgrade("Origin: https://evil.example\r\n")).starts_with("HTTP/1.1 403"));
    assert!(exchange(&upgrade("")).starts_with("HTTP/1.1 403"));
    let mut ok = TcpStream::connect(tracker.local_addr()).unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ok.write_all(upgrade("Origin: https://GOOD.example\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 12];
    ok.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");

    let page = exchange("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("shoal WebTorrent tracker"),
        "{page}"
    );
    assert!(
        exchange("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
            .starts_with("HTTP/1.1 405")
    );
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(5000));
    assert!(exchange(&huge).starts_with("HTTP/1.1 431"));
    tracker.shutdown();
}

#[test]
fn the_access_list_refuses_announces_and_hides_scrapes() {
    let dir = std::env::temp_dir().join(format!("shoal-ws-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("deny.txt");
    std::fs::write(&list, format!("{}\n", hex(&info_hash(66).0))).unwrap();
    let mut config = test_config("127.0.0.1:0");
    config.access_list.mode = AccessListMode::Deny;
    config.access_list.path = list.clone();
    let tracker = start(config);
    let mut client = Client::connect(tracker.local_addr());
    client.announce(announce(
        info_hash(66),
        peer_id(1),
        Some(1),
        AnnounceEvent::Started,
    ));
    match client.next() {
        ParsedOutMessage::Failure {
            reason,
            action,
            info_hash: hash,
        } => {
            assert_eq!(reason, "info hash not allowed");
            assert_eq!(
                (action, hash),
                (Some(Action::Announce), Some(info_hash(66)))
            );
        }
        other => panic!("{other:?}"),
    }
    client.announce_counts(announce(
        info_hash(67),
        peer_id(1),
        Some(1),
        AnnounceEvent::Started,
    ));
    let files = client.scrape(&[info_hash(66), info_hash(67)]);
    assert_eq!((files[0].1.leechers, files[1].1.leechers), (0, 1));
    tracker.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn swarms_per_connection_are_bounded() {
    let mut config = test_config("127.0.0.1:0");
    config.ws.max_swarms_per_connection = 3;
    let tracker = start(config);
    let mut client = Client::connect(tracker.local_addr());
    for n in 0..3 {
        client.announce_counts(announce(
            info_hash(n),
            peer_id(1),
            Some(1),
            AnnounceEvent::Started,
        ));
    }
    client.announce(announce(
        info_hash(3),
        peer_id(1),
        Some(1),
        AnnounceEvent::Started,
    ));
    match client.next() {
        ParsedOutMessage::Failure { reason, .. } => {
            assert_eq!(reason, "too many torrents on one connection");
        }
        other => panic!("{other:?}"),
    }
    // Leaving one makes room.
    client.announce_counts(announce(
        info_hash(0),
        peer_id(1),
        Some(1),
        AnnounceEvent::Stopped,
    ));
    client.announce_counts(announce(
        info_hash(3),
        peer_id(1),
        Some(1),
        AnnounceEvent::Started,
    ));
    tracker.shutdown();
}

#[test]
fn silent_connections_are_pinged_then_closed_and_answering_ones_stay() {
    let mut config = test_config("127.0.0.1:0");
    config.ws.idle_timeout_secs = 2;
    let tracker = start(config);
    // Answers pings (tungstenite replies to them while reading).
    let mut alive = Client::connect(tracker.local_addr());
    alive
        .ws
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Completes the upgrade, then never sends a byte.
    let mut silent = Client::connect(tracker.local_addr());
    let started = std::time::Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(5) {
        match alive.ws.read() {
            Ok(tungstenite::Message::Ping(_)) => {
                pings += 1;
                let _ = alive.ws.flush();
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let _ = alive.ws.flush();
            }
            Err(err) => panic!("the answering connection was closed: {err}"),
        }
    }
    assert!(pings >= 2, "pings seen: {pings}");
    // The silent one saw a ping (unanswered: tungstenite answers only on read, and it never
    // flushed) and was then closed.
    silent
        .ws
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = silent.ws.get_mut().read_to_end(&mut raw);
    assert!(raw.starts_with(&[0x89, 0x00]), "a ping came first: {raw:?}");
    assert!(tracker.connections().timed_out >= 1);
    assert_eq!(
        alive.announce_counts(announce(
            info_hash(5),
            peer_id(1),
            Some(1),
            AnnounceEvent::Started
        )),
        (0, 1)
    );
    tracker.shutdown();
}

/// Offers of ~1 KB from `sender` to `sink`'s torrent until the tracker sheds one (the
/// sink, never reading, falls behind); returns the peak of bytes waiting over the tracker.
fn offer_until_shed(
    tracker: &tracker_ws::Tracker,
    sender: &mut Client,
    hash: tracker_ws_protocol::InfoHash,
) -> usize {
    let big = "x".repeat(1000);
    let mut sent = 0;
    let mut peak = 0;
    while tracker.connections().relayed_shed == 0 && sent < 50_000 {
        let mut request = announce(hash, peer_id(2), Some(1), AnnounceEvent::None);
        request.offers = vec![tracker_ws_protocol::Offer {
            offer_id: offer_id(1),
            offer: sdp("offer", &big),
        }];
        request.numwant = Some(1);
        sender.announce_counts(request);
        sent += 1;
        peak = peak.max(tracker.connections().queued_bytes);
    }
    assert!(
        tracker.connections().relayed_shed >= 1,
        "nothing shed after {sent} offers"
    );
    // The sink's worker may take several offers in one round, so that its queue grows
    // past the shedding point between two looks; it never shrinks (the sink does not
    // read), so one more look sees it.
    peak.max(tracker.connections().queued_bytes)
}

/// Starts a tracker on `config` with a sink peer in `hash` that never reads after its
/// first announce, and offers to it from a sender until one is shed (the sink is not
/// disconnected for that). Returns the tracker, the sink, the sender and the peak of
/// bytes waiting.
fn sink_shed_for(
    config: tracker_ws::Config,
    hash: tracker_ws_protocol::InfoHash,
) -> (tracker_ws::Tracker, Client, Client, usize) {
    let tracker = start(config);
    let mut sink = Client::connect(tracker.local_addr());
    sink.announce_counts(announce(hash, peer_id(1), Some(1), AnnounceEvent::Started));
    let mut sender = Client::connect(tracker.local_addr());
    let peak = offer_until_shed(&tracker, &mut sender, hash);
    assert_eq!(tracker.connections().slow_readers, 0);
    (tracker, sink, sender, peak)
}

/// Replies to its own messages are never shed: `sink` pipelines scrapes and reads
/// none of their answers, and must be disconnected as a slow reader.
fn pipeline_until_disconnected(
    tracker: &tracker_ws::Tracker,
    sink: &mut Client,
    hash: tracker_ws_protocol::InfoHash,
) {
    let scrape = InMessage::Scrape(ScrapeRequest::InfoHashes(vec![hash]));
    sink.send_burst_unread(&scrape, 4000);
    // Generous: a debug build on a loaded machine answers 4,000 scrapes slowly.
    assert!(
        eventually(Duration::from_secs(30), || tracker
            .connections()
            .slow_readers
            == 1),
        "the sink was not disconnected"
    );
}

#[test]
fn a_peer_that_does_not_read_is_shed_for_then_disconnected_not_buffered_for() {
    let mut config = test_config("127.0.0.1:0");
    config.ws.max_message_bytes = 4096;
    let bound = 16 * 1024;
    config.ws.max_outgoing_bytes_per_connection = bound;
    // A scrape answer must fit the bound.
    config.ws.max_scrape_torrents = 10;
    // No ping of the tracker's own (a control frame outside the relay rule) within the
    // test: the bound below is then exact.
    config.ws.idle_timeout_secs = 3600;
    let hash = info_hash(6);
    // Offers of ~1 KB fill the sink's socket buffers and then the tracker's queue for
    // it, up to half the bound; an offer that would pass it is shed, and the sink stays
    // a peer. Nothing else waits: the sender reads each reply before it sends again.
    let (tracker, mut sink, mut sender, peak) = sink_shed_for(config, hash);
    assert!(peak <= bound / 2, "peak {peak} bytes queued");
    assert_eq!(sender.scrape(&[hash])[0].1.leechers, 2);
    pipeline_until_disconnected(&tracker, &mut sink, hash);
    // Its peer left with it, and the sender is still served.
    assert!(
        eventually(Duration::from_secs(3), || sender.scrape(&[hash])[0]
            .1
            .leechers
            == 1),
        "the slow reader's peer stayed"
    );
    tracker.shutdown();
}

#[test]
fn scrapes_over_several_request_workers_answer_in_order_and_full_scrape_is_off() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    let hashes: Vec<_> = (100..140).map(info_hash).collect();
    for (i, hash) in hashes.iter().enumerate() {
        if i % 2 == 0 {
            client.announce_counts(announce(*hash, peer_id(1), Some(0), AnnounceEvent::Started));
        }
    }
    let files = client.scrape(&hashes);
    assert_eq!(files.len(), hashes.len());
    for (i, (hash, counts)) in files.iter().enumerate() {
        assert_eq!(*hash, hashes[i]);
        assert_eq!(counts.seeders, u32::from(i % 2 == 0), "hash {i}");
    }
    client.send(&InMessage::Scrape(ScrapeRequest::Full));
    match client.next() {
        ParsedOutMessage::Failure { reason, action, .. } => {
            assert!(reason.starts_with("full scrape is not served"));
            assert_eq!(action, Some(Action::Scrape));
        }
        other => panic!("{other:?}"),
    }
    tracker.shutdown();
}

#[test]
fn full_scrape_when_enabled_answers_the_busiest_torrents() {
    let mut config = test_config("127.0.0.1:0");
    config.ws.full_scrape_max_torrents = 2;
    let tracker = start(config);
    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::connect(tracker.local_addr()))
        .collect();
    for (n, client) in clients.iter_mut().enumerate() {
        for t in 0..=n as u8 {
            client.announce_counts(announce(
                info_hash(200 + t),
                peer_id(n as u8),
                Some(0),
                AnnounceEvent::Started,
            ));
        }
    }
    clients[0].send(&InMessage::Scrape(ScrapeRequest::Full));
    match clients[0].next() {
        ParsedOutMessage::ScrapeResponse { files } => {
            let got: Vec<_> = files.iter().map(|(h, c)| (h.0[0], c.seeders)).collect();
            assert_eq!(got, vec![(200, 3), (201, 2)]);
        }
        other => panic!("{other:?}"),
    }
    tracker.shutdown();
}

#[test]
fn ipv6_clients_are_served() {
    let tracker = start(test_config("[::1]:0"));
    let mut a = Client::connect(tracker.local_addr());
    let mut b = Client::connect(tracker.local_addr());
    a.announce_counts(announce(
        info_hash(7),
        peer_id(1),
        Some(1),
        AnnounceEvent::Started,
    ));
    let mut request = announce(info_hash(7), peer_id(2), Some(1), AnnounceEvent::Started);
    request.offers = offers(1, 1);
    request.numwant = Some(1);
    assert_eq!(b.announce_counts(request), (0, 2));
    assert!(matches!(a.next(), ParsedOutMessage::Offer { .. }));
    tracker.shutdown();
}

#[test]
fn an_answer_in_another_peers_name_is_not_relayed() {
    let tracker = start(test_config("127.0.0.1:0"));
    let hash = info_hash(8);
    let mut offerer = Client::connect(tracker.local_addr());
    let mut answerer = Client::connect(tracker.local_addr());
    let mut forger = Client::connect(tracker.local_addr());
    answerer.announce_counts(announce(hash, peer_id(2), Some(5), AnnounceEvent::Started));
    forger.announce_counts(announce(hash, peer_id(3), Some(0), AnnounceEvent::Started));
    // The offerer is a seeder: its offer goes to the leecher (the answerer) only.
    let mut request = announce(hash, peer_id(1), Some(0), AnnounceEvent::Started);
    request.offers = offers(1, 1);
    request.numwant = Some(1);
    offerer.announce_counts(request);
    let ParsedOutMessage::Offer { offer_id, .. } = answerer.next() else {
        panic!("no offer");
    };
    // The forger, a member of the swarm, answers in the answerer's name: dropped.
    forger.announce(answer(hash, peer_id(2), peer_id(1), offer_id, "forged"));
    // Its next announce is handled after the forged answer (one request worker, in
    // order): once it is answered, a relay of the forgery would be on its way.
    forger.announce_counts(announce(hash, peer_id(3), Some(0), AnnounceEvent::None));
    // The real answer arrives, and it is the first thing the offerer gets.
    answerer.announce(answer(hash, peer_id(2), peer_id(1), offer_id, "real"));
    match offerer.next() {
        ParsedOutMessage::Answer { answer, .. } => {
            assert_eq!(answer.get(), sdp("answer", "real").get());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(tracker.connections().answers_relayed, 1);
    tracker.shutdown();
}

#[test]
fn bytes_waiting_for_slow_readers_are_bounded_for_the_whole_tracker() {
    let mut config = test_config("127.0.0.1:0");
    config.ws.max_message_bytes = 4096;
    // One connection alone could hold 1 MiB; the whole tracker holds 64 KiB.
    config.ws.max_outgoing_bytes_per_connection = 1024 * 1024;
    config.ws.max_outgoing_bytes_total = 64 * 1024;
    let total = config.ws.max_outgoing_bytes_total;
    // Relayed offers are shed once half the whole bound waits, long before the sink's
    // own bound.
    let (tracker, mut sink, _sender, peak) = sink_shed_for(config, info_hash(9));
    // Relays stop at half the whole bound; the sender's own announce reply may be
    // counted in the whole tracker's bytes while it is on its way (replies are never
    // shed), and it is far under 1 KiB.
    assert!(peak <= total / 2 + 1024, "peak {peak} bytes queued");
    assert!(peak > total / 4, "the sink never queued much: peak {peak}");
    // Replies it does not read pass the whole tracker's bound: it is disconnected, and
    // what waited for it is freed.
    pipeline_until_disconnected(&tracker, &mut sink, info_hash(9));
    assert!(eventually(Duration::from_secs(2), || tracker
        .connections()
        .queued_bytes
        == 0));
    tracker.shutdown();
}

#[test]
fn pipelined_messages_are_all_answered() {
    let tracker = start(test_config("127.0.0.1:0"));
    let mut client = Client::connect(tracker.local_addr());
    // Far more than the tracker reads ahead of its replies (64): the rest must be read
    // as the replies come, none lost and none left unread. Replies may come in another
    // order (two request workers); each names its torrent.
    let count = 2000;
    let burst: Vec<_> = (0..count)
        .map(|i| InMessage::Scrape(ScrapeRequest::InfoHashes(vec![info_hash((i % 256) as u8)])))
        .collect();
    client.send_all_unread(&burst);
    let mut replies = vec![0usize; 256];
    for i in 0..count {
        match client.next() {
            ParsedOutMessage::ScrapeResponse { files } => {
                assert_eq!(files.len(), 1, "reply {i}");
                replies[usize::from(files[0].0.0[0])] += 1;
            }
            other => panic!("reply {i}: {other:?}"),
        }
    }
    let expected: Vec<usize> = (0..256).map(|h| (count + 255 - h) / 256).collect();
    assert_eq!(replies, expected);
    tracker.shutdown();
}

#[test]
fn pipelined_answers_are_taken_and_reading_goes_on() {
    let tracker = start(test_config("127.0.0.1:0"));
    let hash = info_hash(12);
    let mut client = Client::connect(tracker.local_addr());
    client.announce_counts(announce(hash, peer_id(1), Some(1), AnnounceEvent::Started));
    // Far more answers than the worker lets wait for their request workers (64): each
    // is handled and its place freed, so the announce behind them is read and answered.
    let mut burst: Vec<_> = (0..2000)
        .map(|i| {
            InMessage::Announce(answer(
                hash,
                peer_id(1),
                peer_id(2),
                offer_id((i % 200) as u8),
                "nobody",
            ))
        })
        .collect();
    burst.push(InMessage::Announce(announce(
        hash,
        peer_id(1),
        Some(1),
        AnnounceEvent::None,
    )));
    client.send_all_unread(&burst);
    match client.next() {
        ParsedOutMessage::AnnounceResponse { info_hash, .. } => assert_eq!(info_hash, hash),
        other => panic!("{other:?}"),
    }
    tracker.shutdown();
}

/// The most torrents a full scrape may list is what fits a connection's outgoing bound
/// (the config refuses one more); with the bound set to exactly that, a full scrape of
/// that many torrents, whose hashes all need escaping in JSON, is answered whole, twice
/// (the second from the shared cache), and the client stays connected.
#[test]
fn a_full_scrape_of_the_most_torrents_fits_and_the_client_stays() {
    const TORRENTS: usize = 200;
    let mut config = test_config("127.0.0.1:0");
    config.workers.socket_workers = 1; // one cache
    config.ws.max_message_bytes = 16 * 1024;
    config.ws.max_swarms_per_connection = TORRENTS;
    config.ws.full_scrape_max_torrents = TORRENTS;
    config.ws.max_outgoing_bytes_per_connection =
        tracker_ws_protocol::max_scrape_response_bytes(TORRENTS)
            + tracker_ws_protocol::websocket::MAX_SERVER_FRAME_HEADER;
    let mut too_small = config.clone();
    too_small.ws.max_outgoing_bytes_per_connection -= 1;
    let err = tracker_ws::start(too_small).err().unwrap().to_string();
    assert!(err.starts_with("ws.full_scrape_max_torrents"), "{err}");
    assert!(
        err.contains("ws.max_outgoing_bytes_per_connection"),
        "{err}"
    );
    let tracker = start(config);
    let mut client = Client::connect(tracker.local_addr());
    // Every byte below 0x20: written as \u00xx, the longest a hash gets.
    let hash = |i: usize| {
        let mut h = [0x1f; 20];
        h[0] = (i % 32) as u8;
        h[1] = (i / 32) as u8;
        tracker_ws_protocol::InfoHash(h)
    };
    for i in 0..TORRENTS {
        client.announce_counts(announce(
            hash(i),
            peer_id(1),
            Some(0),
            AnnounceEvent::Started,
        ));
    }
    for _ in 0..2 {
        client.send(&InMessage::Scrape(ScrapeRequest::Full));
        match client.next() {
            ParsedOutMessage::ScrapeResponse { files } => {
                assert_eq!(files.len(), TORRENTS);
                assert!(files.iter().all(|(_, c)| c.seeders == 1));
            }
            other => panic!("{other:?}"),
        }
    }
    // Still connected, and served.
    assert_eq!(client.scrape(&[hash(7)])[0].1.seeders, 1);
    let connections = tracker.connections();
    assert_eq!((connections.open, connections.slow_readers), (1, 0));
    tracker.shutdown();
}
