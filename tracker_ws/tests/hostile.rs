//! Hostile clients against a tracker with one socket worker and one request worker:
//! each runs beside an honest client on the same worker, which must be answered within
//! a second at every request while the hostile one goes on, and what the tracker keeps
//! for the hostile one must stay bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use tracker_ws_protocol::AnnounceEvent;
use tracker_ws_protocol::websocket::{FrameKind, write_client_frame};

/// How long an honest request may wait while a hostile client runs (the bound:
/// a fair worker answers at once, so this is far from a timing limit).
const HONEST_BOUND: Duration = Duration::from_secs(1);
/// Honest requests made while the hostile client runs.
const HONEST_ROUNDS: usize = 50;
/// The largest pong frame the tracker sends: a 2-byte header and 125 bytes of payload.
const MAX_PONG_FRAME: usize = 127;

fn one_worker() -> tracker_ws::Config {
    let mut config = test_config("127.0.0.1:0");
    config.workers.socket_workers = 1;
    config.workers.request_workers = 1;
    config
}

/// A TCP connection upgraded to WebSocket by hand, so that the test writes raw frames.
fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /announce HTTP/1.1\r\nHost: tracker.test\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed during upgrade");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    stream
}

/// A client that writes `chunk` over and over without reading, until `stop` is set, 30 s
/// pass, or a write fails; counts the bytes written.
struct Flood {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    thread: JoinHandle<TcpStream>,
}

impl Flood {
    fn start(mut stream: TcpStream, chunk: Vec<u8>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                    written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                stream
            })
        };
        Self {
            stop,
            written,
            thread,
        }
    }

    /// Waits until the tracker has taken `bytes` of the flood (it reads on), so that
    /// what follows runs while the flood is going on.
    fn wait_for(&self, bytes: u64) {
        let started = Instant::now();
        while self.written.load(Ordering::Relaxed) < bytes {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the tracker took only {} bytes of the flood",
                self.written.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn running(&self) -> bool {
        !self.thread.is_finished()
    }

    fn stop(self) -> TcpStream {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// `HONEST_ROUNDS` announces of an honest client; each must be answered within
/// [`HONEST_BOUND`], and `check` holds after each.
fn honest_rounds(tracker: &tracker_ws::Tracker, mut check: impl FnMut()) {
    let mut honest = Client::connect(tracker.local_addr());
    for round in 0..HONEST_ROUNDS {
        let started = Instant::now();
        let event = if round == 0 {
            AnnounceEvent::Started
        } else {
            AnnounceEvent::None
        };
        honest.announce_counts(announce(info_hash(1), peer_id(1), Some(1), event));
        let waited = started.elapsed();
        assert!(
            waited < HONEST_BOUND,
            "round {round}: the honest announce waited {waited:?}"
        );
        check();
    }
}

/// `count` masked frames of `kind` with `payload`, as one buffer.
fn frames(kind: FrameKind, payload: &[u8], count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let mask = (i as u32).wrapping_mul(0x9E37_79B9).to_be_bytes();
        write_client_frame(&mut out, kind, payload, mask);
    }
    out
}

#[test]
fn a_ping_flood_that_never_reads_holds_one_pong_and_starves_no_one() {
    let tracker = tracker_ws::start(one_worker()).unwrap();
    let flood = Flood::start(
        upgraded(tracker.local_addr()),
        frames(FrameKind::Ping, &[0x5a; 125], 512),
    );
    // Megabytes of pings: far more pongs than the socket buffers hold.
    flood.wait_for(8 << 20);
    honest_rounds(&tracker, || {
        let queued = tracker.connections().queued_bytes;
        assert!(
            queued <= MAX_PONG_FRAME,
            "{queued} bytes queued for a client that does not read"
        );
    });
    flood.wait_for(16 << 20);
    assert!(flood.running(), "the flood stopped early");
    let queued = tracker.connections().queued_bytes;
    assert!(queued <= MAX_PONG_FRAME, "{queued} bytes queued");
    // The flooder is still connected, and what waits for it is pongs.
    let mut stream = flood.stop();
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head, [0x8a, 125], "a pong of the ping's payload");
    tracker.shutdown();
}

#[test]
fn a_pong_stream_starves_no_one() {
    let tracker = tracker_ws::start(one_worker()).unwrap();
    let flood = Flood::start(
        upgraded(tracker.local_addr()),
        frames(FrameKind::Pong, b"", 4096),
    );
    flood.wait_for(8 << 20);
    honest_rounds(&tracker, || {});
    assert!(flood.running(), "the pong stream stopped early");
    drop(flood.stop());
    tracker.shutdown();
}

#[test]
fn close_codes_are_checked() {
    let tracker = tracker_ws::start(one_worker()).unwrap();
    // (what the client's close frame carries, the code the tracker answers with)
    let cases: [(&[u8], u16); 6] = [
        (&[], 1000),
        (&[0x0f, 0xa0], 4000),
        (&[0x03], 1002),
        // 1005 and 1006: reserved, never sent in a frame.
        (&[0x03, 0xed], 1002),
        (&[0x03, 0xee], 1002),
        (&[0x03, 0xe8, 0xff], 1007),
    ];
    for (payload, expected) in cases {
        let mut stream = upgraded(tracker.local_addr());
        stream
            .write_all(&frames(FrameKind::Close, payload, 1))
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let code = u16::from_be_bytes([answer[2], answer[3]]);
        assert_eq!(&answer[..2], &[0x88, 2], "a close frame, for {payload:?}");
        assert_eq!(code, expected, "for {payload:?}");
    }
    tracker.shutdown();
}
