//! Hostile clients against a tracker with one socket worker and one request worker:
//! each runs beside an honest client on the same worker, which must be answered within
//! a second at every request while the hostile one goes on.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tracker_http_protocol::{AnnounceEvent, InfoHash};

/// How long an honest request may wait while a hostile client runs (the bound:
/// a fair worker answers at once, so this is far from a timing limit).
const HONEST_BOUND: Duration = Duration::from_secs(1);

#[test]
fn a_client_pipelining_index_requests_at_full_speed_starves_no_one() {
    let mut config = test_config("127.0.0.1:0");
    config.workers.socket_workers = 1;
    config.workers.request_workers = 1;
    let tracker = start(config);
    let addr = tracker.local_addr();

    // The hostile client: one thread writes `GET /` without pause, another reads the
    // answers as fast as they come, both until told to stop (or 30 s pass).
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Bytes of answers the hostile client has read.
    let answered = Arc::new(AtomicU64::new(0));
    let writer = {
        let (mut stream, stop) = (stream.try_clone().unwrap(), Arc::clone(&stop));
        let requests = b"GET / HTTP/1.1\r\nHost: tracker.test\r\n\r\n".repeat(256);
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                if stream.write_all(&requests).is_err() {
                    return false;
                }
            }
            true
        })
    };
    let reader = {
        let (mut stream, answered) = (stream.try_clone().unwrap(), Arc::clone(&answered));
        // Reads until the connection is shut down, so that the writer is never blocked
        // by answers left unread.
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        answered.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // The hostile client is being answered before the honest one starts.
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) < 4 << 20 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the hostile client got only {} bytes of answers",
            answered.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut honest = Client::connect(addr);
    for round in 0..50 {
        let started = Instant::now();
        let event = if round == 0 {
            AnnounceEvent::Started
        } else {
            AnnounceEvent::None
        };
        honest.announce_ok(&announce(info_hash(1), peer_id(1), 6881, 1, event));
        let waited = started.elapsed();
        assert!(
            waited < HONEST_BOUND,
            "round {round}: the honest announce waited {waited:?}"
        );
    }
    let before = answered.load(Ordering::Relaxed);
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) == before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the hostile client is no longer answered"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap(), "the hostile writer failed");
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    reader.join().unwrap();
    tracker.shutdown();
}

/// Clients that ask for big answers and never read: once the answers waiting over the
/// whole tracker reach `http.max_outgoing_bytes_total`, a connection with anything
/// waiting parses no further request. The total then stays within that bound, one
/// connection's bound (the one whose answers crossed it) and an answer per connection,
/// far below the per-connection bounds' sum; and a client with nothing waiting is still
/// answered.
#[test]
fn clients_that_do_not_read_are_bounded_over_the_whole_tracker() {
    const TORRENTS: u16 = 300;
    const HOSTILE: usize = 8;
    const TOTAL: usize = 64 * 1024;
    let mut config = test_config("127.0.0.1:0");
    config.workers.socket_workers = 1;
    config.workers.request_workers = 1;
    config.http.full_scrape_max_torrents = usize::from(TORRENTS);
    config.http.full_scrape_cache_secs = 3600;
    config.http.max_outgoing_bytes_total = TOTAL;
    let per_connection = config.http.max_outgoing_bytes_per_connection;
    let tracker = start(config);
    let addr = tracker.local_addr();

    // Torrents to make the full scrape's answer big, and that answer cached.
    let mut honest = Client::connect(addr);
    for i in 0..TORRENTS {
        let [lo, hi] = i.to_le_bytes();
        let mut hash = [1u8; 20];
        hash[0] = lo;
        hash[1] = hi;
        honest.announce_ok(&announce(
            InfoHash(hash),
            peer_id(1),
            6881,
            1,
            AnnounceEvent::Started,
        ));
    }
    honest.send(b"GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n");
    let answer = honest.response().body.len() + 128; // body and head
    assert!(
        answer > 10_000,
        "a full scrape of {TORRENTS} torrents is big"
    );

    // Each asks for 400 of them (some 6 MB, more than socket buffers hold) and never
    // reads.
    let hostile: Vec<TcpStream> = (0..HOSTILE)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(&b"GET /scrape HTTP/1.1\r\nHost: t\r\n\r\n".repeat(400))
                .unwrap();
            stream
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(20), || tracker
            .connections()
            .queued_bytes
            >= TOTAL),
        "the tracker never held {TOTAL} bytes: {:?}",
        tracker.connections()
    );
    let bound = TOTAL + per_connection + (HOSTILE + 1) * answer;
    let mut peak = 0;
    for _ in 0..200 {
        peak = peak.max(tracker.connections().queued_bytes);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        peak <= bound,
        "{peak} bytes waiting, bound {bound} (each connection alone may hold {per_connection})"
    );
    // A client with nothing waiting is answered all the same.
    let answered = honest.announce_ok(&announce(
        info_hash(7),
        peer_id(2),
        6882,
        1,
        AnnounceEvent::Started,
    ));
    assert_eq!(answered.incomplete, 1);
    drop(hostile);
    assert!(
        eventually(Duration::from_secs(10), || {
            let c = tracker.connections();
            c.open == 1 && c.queued_bytes == 0
        }),
        "closed connections give their bytes back: {:?}",
        tracker.connections()
    );
    tracker.shutdown();
}
