//! A bounded flood of garbage and half-valid packets must not crash a worker or stall
//! the service of well-behaved clients.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_common::types::AnnounceEvent;

#[test]
fn garbage_flood_does_not_stall_real_clients() {
    let tracker = start(test_config("127.0.0.1:0"));
    let addr = tracker.local_addr();
    let done = Arc::new(AtomicBool::new(false));

    let flooder = {
        let done = done.clone();
        std::thread::spawn(move || {
            let socket = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
            let mut rng = SmallRng::seed_from_u64(7);
            let mut buf = vec![0u8; 2048];
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut sent = 0u64;
            // Bounded in count and time; loopback only.
            while sent < 50_000 && !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                let len = match rng.random_range(0..4) {
                    0 => rng.random_range(0..16),
                    1 => 16,
                    2 => 98,
                    _ => rng.random_range(0..2048),
                };
                rng.fill(&mut buf[..len]);
                if len >= 12 && rng.random_bool(0.5) {
                    // A known action with a random connection id.
                    buf[8..12].copy_from_slice(&rng.random_range(0i32..4).to_be_bytes());
                }
                if socket.send_to(&buf[..len], addr).is_ok() {
                    sent += 1;
                }
            }
            sent
        })
    };

    let mut client = Client::connected("127.0.0.1:0", addr);
    client
        .socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let hash = info_hash(1);
    let mut answered = 0u32;
    let mut i = 0u16;
    // Announce for as long as the flood lasts (at least 200 times). UDP may lose a
    // packet under a flood, so each announce is retried a few times; what must not
    // happen is a tracker that stops answering.
    while answered < 200 || !flooder.is_finished() {
        i = i.wrapping_add(1);
        // One endpoint throughout: peers are keyed by (IP, port), so this stays one seeder.
        let request = client.announce_request(hash, peer_id(1), 1000, 0, AnnounceEvent::None, 5);
        let mut bytes = Vec::new();
        tracker_udp_protocol::Request::Announce(request)
            .write_bytes(&mut bytes)
            .unwrap();
        let ok = (0..10).any(|_| {
            client.send_raw(&bytes);
            client.recv_raw().is_some_and(|reply| {
                matches!(
                    tracker_udp_protocol::Response::parse_bytes(&reply, true),
                    Ok(tracker_udp_protocol::Response::AnnounceIpv4(r)) if r.seeders == 1
                )
            })
        });
        assert!(ok, "announce {i} got no answer during the flood");
        answered += 1;
    }
    done.store(true, Ordering::Relaxed);
    let sent = flooder.join().unwrap();
    assert!(sent > 0);
    assert!(eventually(Duration::from_secs(5), || tracker
        .statistics()
        .bad_requests
        > 0));
    // Still alive after the flood.
    let mut late = Client::connected("127.0.0.1:0", addr);
    assert_eq!(late.scrape_one(hash), (1, 0, 0));
    tracker.shutdown();
}
