//! A bounded flood of certainly invalid packets must not crash a worker, stall the
//! service of a well-behaved client, or get the flooder any answer; every flood packet
//! that reached the tracker is counted as a bad request.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_common::types::AnnounceEvent;
use tracker_udp_protocol::{PROTOCOL_IDENTIFIER, Request, Response};

/// A packet no tracker may answer and that counts as one bad request: too short to
/// carry a transaction id, a connect with the wrong magic number, or an unknown action
/// (with a random, thus invalid, connection id: the error is not sent).
fn garbage(rng: &mut SmallRng, buf: &mut [u8; 2048]) -> usize {
    let len = match rng.random_range(0..3) {
        0 => rng.random_range(0..16),
        _ => rng.random_range(16..2048),
    };
    let packet = &mut buf[..len];
    rng.fill(packet);
    if len >= 16 {
        if rng.random_bool(0.5) {
            // Connect with a wrong magic number.
            packet[8..12].copy_from_slice(&0i32.to_be_bytes());
            if packet[..8] == PROTOCOL_IDENTIFIER.to_be_bytes() {
                packet[0] ^= 1;
            }
        } else {
            // An action past scrape (2) and error (3).
            let action = rng.random_range(4..=i32::MAX);
            packet[8..12].copy_from_slice(&action.to_be_bytes());
        }
    }
    len
}

/// Floods `addr` from its own socket until `done` (bounded in count and time), then
/// proves from that socket that nothing was answered. Returns the garbage packets
/// sent and the connects sent after them.
fn flood(addr: SocketAddr, done: &AtomicBool) -> (u64, u64) {
    let socket = UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0u64;
    // Loopback only.
    while sent < 50_000 && !done.load(Ordering::Relaxed) && Instant::now() < deadline {
        let len = garbage(&mut rng, &mut buf);
        if socket.send_to(&buf[..len], addr).is_ok() {
            sent += 1;
        }
    }
    // No amplification, and no answer at all: the first reply the flooder gets is the
    // one to the connect it sends now.
    let (_, connects) = assert_first_reply_is_connect(&socket, addr);
    (sent, connects)
}

#[test]
fn garbage_flood_does_not_stall_real_clients_and_is_counted() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let done = Arc::new(AtomicBool::new(false));
    let flooder = {
        let done = done.clone();
        std::thread::spawn(move || flood(addr, &done))
    };

    let mut client = Client::connected("127.0.0.1:0", addr);
    let mut client_sent = 1u64; // the connect
    client
        .socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let hash = info_hash(1);
    let mut answered = 0u32;
    let mut i = 0u16;
    // Announce for as long as the flood lasts (at least 200 times). UDP may lose a
    // packet under a flood, so each announce is retried a few times; what must not
    // happen is a tracker that stops answering, or answers wrongly.
    while answered < 200 || !flooder.is_finished() {
        i = i.wrapping_add(1);
        // One endpoint throughout: peers are keyed by (IP, port), so this stays one seeder.
        let request = client.announce_request(hash, peer_id(1), 1000, 0, AnnounceEvent::None, 5);
        let tid = request.transaction_id;
        let mut bytes = Vec::new();
        Request::Announce(request).write_bytes(&mut bytes).unwrap();
        let ok = (0..10).any(|_| {
            client.send_raw(&bytes);
            client_sent += 1;
            // A late answer to an earlier retry may come first: it must be right too.
            while let Some(reply) = client.recv_raw() {
                match Response::parse_bytes(&reply, true) {
                    Ok(Response::AnnounceIpv4(r)) => {
                        // The only peer of the swarm is the announcer itself.
                        assert_eq!((r.seeders, r.leechers), (1, 0), "{r:?}");
                        assert!(r.peers.is_empty(), "{r:?}");
                        assert!(r.transaction_id.0 <= tid.0, "{r:?}");
                        if r.transaction_id == tid {
                            return true;
                        }
                    }
                    other => panic!("the client got {other:?}"),
                }
            }
            false
        });
        assert!(ok, "announce {i} got no answer during the flood");
        answered += 1;
    }
    done.store(true, Ordering::Relaxed);
    let (flood_sent, flood_connects) = flooder.join().unwrap();
    assert!(flood_sent > 0);

    // After this answer every packet the client sent before it has been handled.
    let mut late_answers = 0;
    let connect = Request::Connect(tracker_udp_protocol::ConnectRequest {
        transaction_id: tracker_udp_protocol::TransactionId(-1),
    });
    let answered = (0..10).any(|_| {
        client.send(&connect);
        client_sent += 1;
        while let Some(reply) = client.recv_raw() {
            match Response::parse_bytes(&reply, true) {
                Ok(Response::Connect(r)) if r.transaction_id.0 == -1 => return true,
                Ok(Response::AnnounceIpv4(_)) => late_answers += 1,
                other => panic!("the client got {other:?}"),
            }
        }
        false
    });
    assert!(answered, "no answer to 10 connects after the flood");
    assert!(late_answers <= client_sent);

    // Every datagram that reached a tracker socket was counted once: the flood's as
    // bad requests, the client's as connects and announces. What the kernel dropped
    // (full receive buffer) is in /proc/net/udp.
    let stats = tracker.statistics();
    let drops = kernel_drops(addr.port());
    let client_handled = tracker.connects() + stats.announce + stats.scrape;
    // The flooder's final connects are among the connects.
    assert_eq!(
        stats.bad_requests + client_handled + drops,
        flood_sent + flood_connects + client_sent,
        "{stats:?}, kernel drops {drops}, flood {flood_sent}, client {client_sent}"
    );
    assert!(
        stats.bad_requests >= flood_sent.saturating_sub(drops),
        "{stats:?}, kernel drops {drops}, flood {flood_sent}"
    );
    assert_eq!(
        (stats.scrape, stats.access_denied, stats.error_responses),
        (0, 0, 0)
    );

    // Still alive after the flood.
    let mut late = Client::connected("127.0.0.1:0", addr);
    assert_eq!(late.scrape_one(hash), (1, 0, 0));
    tracker.shutdown();
}
