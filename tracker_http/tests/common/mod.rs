//! Helpers for the integration tests: an in-process HTTP tracker on an ephemeral port
//! and a small HTTP client over real TCP connections.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tracker_http::{Config, Tracker};
use tracker_http_protocol::{
    AnnounceEvent, AnnounceRequest, HttpResponse, InfoHash, ParsedAnnounce, PasskeyParam, PeerId,
    ScrapeCounts, ScrapeRequest, TrackerResponse, parse_http_response,
};

/// A config for tests: the given address, small worker counts, no periodic log, room for
/// many peers from the loopback address.
pub fn test_config(address: &str) -> Config {
    let mut config = Config::default();
    config.network.address = address.parse().unwrap();
    config.network.poll_timeout_ms = 10;
    config.workers.socket_workers = 2;
    config.workers.request_workers = 2;
    config.statistics.interval_secs = 0;
    // Tests run side by side: the metrics endpoint takes a port of its own choosing.
    config.metrics.address = "127.0.0.1:0".parse().unwrap();
    config.swarm.max_peers_per_ip = 10_000;
    config.swarm.max_archived_torrents = 0;
    // Every test client connects from 127.0.0.1, some by the thousand.
    config.http.max_connections_per_ip = 0;
    config
}

/// Starts a tracker in-process. A test that asks for IPv6 loopback on a host without it
/// fails saying so.
pub fn start(config: Config) -> Tracker {
    if config.network.address.is_ipv6() && std::net::TcpListener::bind("[::1]:0").is_err() {
        panic!("this test needs IPv6 loopback (::1), which this host does not have");
    }
    tracker_http::start(config).expect("start tracker")
}

/// Where a client should connect to reach a tracker bound to an unspecified address.
pub fn target(tracker: &Tracker, loopback: &str) -> SocketAddr {
    let mut addr = tracker.local_addr();
    if addr.ip().is_unspecified() {
        addr.set_ip(loopback.parse().unwrap());
    }
    addr
}

pub fn info_hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}

pub fn peer_id(n: u8) -> PeerId {
    PeerId([n; 20])
}

/// An announce with the given fields and defaults for the rest (compact, no numwant).
pub fn announce(
    hash: InfoHash,
    peer: PeerId,
    port: u16,
    left: u64,
    event: AnnounceEvent,
) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: hash,
        peer_id: peer,
        port,
        uploaded: Some(0),
        downloaded: Some(0),
        left,
        event,
        numwant: None,
        compact: true,
        no_peer_id: false,
        ip: None,
        passkey: PasskeyParam::Missing,
    }
}

/// One keep-alive HTTP connection.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next response; panics if none comes within the read timeout.
    pub fn response(&mut self) -> HttpResponse {
        self.try_response()
            .expect("the tracker sent no whole response")
    }

    /// The next response, or `None` if the connection closed first.
    pub fn try_response(&mut self) -> Option<HttpResponse> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((response, len)) = parse_http_response(&self.buf, 1 << 20).unwrap() {
                self.buf.drain(..len);
                return Some(response);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(err) => panic!("read: {err}"),
            }
        }
    }

    /// Whether the tracker closes the connection (EOF) without sending anything more.
    pub fn is_closed_by_tracker(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        match self.stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(_) => false,
            Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    pub fn announce(&mut self, request: &AnnounceRequest) -> TrackerResponse {
        let mut bytes = Vec::new();
        request.write_http(&mut bytes, "tracker.test", true);
        self.send(&bytes);
        let response = self.response();
        assert_eq!(response.status, 200);
        TrackerResponse::parse_body(&response.body).unwrap()
    }

    pub fn announce_ok(&mut self, request: &AnnounceRequest) -> ParsedAnnounce {
        match self.announce(request) {
            TrackerResponse::Announce(a) => a,
            other => panic!("expected an announce answer, got {other:?}"),
        }
    }

    pub fn scrape(&mut self, hashes: &[InfoHash]) -> Vec<(InfoHash, ScrapeCounts)> {
        match self.scrape_with(hashes, PasskeyParam::Missing) {
            TrackerResponse::Scrape(files) => files,
            other => panic!("expected a scrape answer, got {other:?}"),
        }
    }

    /// The answer to a scrape of `hashes` with `passkey` in its path.
    pub fn scrape_with(&mut self, hashes: &[InfoHash], passkey: PasskeyParam) -> TrackerResponse {
        let mut bytes = Vec::new();
        ScrapeRequest {
            info_hashes: hashes.to_vec(),
            passkey,
        }
        .write_http(&mut bytes, "tracker.test", true);
        self.send(&bytes);
        let response = self.response();
        assert_eq!(response.status, 200);
        TrackerResponse::parse_body(&response.body).unwrap()
    }

    /// (seeders, completed, leechers) of one torrent.
    pub fn scrape_one(&mut self, hash: InfoHash) -> (u32, u32, u32) {
        let files = self.scrape(&[hash]);
        let (h, c) = files.into_iter().next().expect("one file");
        assert_eq!(h, hash);
        (c.seeders, c.completed, c.leechers)
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
