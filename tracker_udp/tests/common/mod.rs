//! Helpers for the integration tests: an in-process tracker on an ephemeral port and a
//! small BEP 15 client over a real UDP socket.
#![allow(dead_code, unreachable_pub)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracker_common::observe::statistics::Snapshot;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};
use tracker_udp::{Config, Tracker};
use tracker_udp_protocol::{
    AnnounceRequest, ConnectRequest, ConnectionId, Request, Response, ScrapeRequest,
    TorrentScrapeStatistics, TransactionId,
};

/// A config for tests: the given address, small worker counts, no periodic log.
pub fn test_config(address: &str) -> Config {
    let mut config = Config::default();
    config.network.address = address.parse().unwrap();
    config.network.recv_buffer_bytes = 0;
    config.network.poll_timeout_ms = 10;
    config.workers.socket_workers = 2;
    config.workers.request_workers = 3;
    config.statistics.interval_secs = 0;
    // Tests run side by side: the metrics endpoint takes a port of its own choosing.
    config.metrics.address = "127.0.0.1:0".parse().unwrap();
    // Every test client announces from the loopback address.
    config.swarm.max_peers_per_ip = 10_000;
    // No archive of completed counts, so that the statistics of a test are only what it
    // did (the archive's table is allocated whole); the tests of the archive turn it on.
    config.swarm.max_archived_torrents = 0;
    config
}

/// Starts a tracker in-process. A test that asks for IPv6 loopback on a host without
/// it fails saying so (IPv6 tests never pass unseen).
pub fn start(config: Config) -> Tracker {
    if config.network.address.is_ipv6() {
        require_ipv6_loopback();
    }
    tracker_udp::start(config).expect("start tracker")
}

/// Fails the test, saying why, when this host has no IPv6 loopback.
pub fn require_ipv6_loopback() {
    if let Err(err) = UdpSocket::bind("[::1]:0") {
        panic!("this test needs IPv6 loopback (::1), which this host lacks: {err}");
    }
}

/// Where a client should send to reach a tracker bound to an unspecified address.
pub fn target(tracker: &Tracker, loopback: &str) -> SocketAddr {
    let mut addr = tracker.local_addr();
    if addr.ip().is_unspecified() {
        addr.set_ip(loopback.parse().unwrap());
    }
    addr
}

/// A BEP 15 client on its own socket.
pub struct Client {
    pub socket: UdpSocket,
    pub tracker: SocketAddr,
    pub connection_id: ConnectionId,
    next_tid: i32,
}

pub fn info_hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}

pub fn peer_id(n: u8) -> PeerId {
    PeerId([n; 20])
}

impl Client {
    /// A client bound to `bind` (e.g. "127.0.0.1:0"), not yet connected.
    pub fn new(bind: &str, tracker: SocketAddr) -> Self {
        let socket = UdpSocket::bind(bind).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        Self {
            socket,
            tracker,
            connection_id: ConnectionId(0),
            next_tid: 1,
        }
    }

    /// A client that has done the connect handshake.
    pub fn connected(bind: &str, tracker: SocketAddr) -> Self {
        let mut client = Self::new(bind, tracker);
        client.connect();
        client
    }

    pub fn tid(&mut self) -> TransactionId {
        self.next_tid += 1;
        TransactionId(self.next_tid)
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.tracker).unwrap();
    }

    pub fn recv_raw(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 8192];
        match self.socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                assert_eq!(from.port(), self.tracker.port());
                Some(buf[..len].to_vec())
            }
            Err(_) => None,
        }
    }

    fn is_ipv4(&self) -> bool {
        self.socket.local_addr().unwrap().is_ipv4()
    }

    pub fn send(&self, request: &Request) {
        let mut buf = Vec::new();
        request.write_bytes(&mut buf).unwrap();
        self.send_raw(&buf);
    }

    /// Sends `request` and returns the parsed answer.
    pub fn request(&self, request: &Request) -> Response {
        self.send(request);
        let bytes = self.recv_raw().expect("tracker did not answer");
        Response::parse_bytes(&bytes, self.is_ipv4()).unwrap()
    }

    pub fn connect(&mut self) -> TransactionId {
        let tid = self.tid();
        match self.request(&Request::Connect(ConnectRequest {
            transaction_id: tid,
        })) {
            Response::Connect(r) => {
                assert_eq!(r.transaction_id, tid);
                self.connection_id = r.connection_id;
            }
            other => panic!("expected a connect response, got {other:?}"),
        }
        tid
    }

    pub fn announce_request(
        &mut self,
        hash: InfoHash,
        peer: PeerId,
        port: u16,
        left: i64,
        event: AnnounceEvent,
        numwant: i32,
    ) -> AnnounceRequest {
        AnnounceRequest {
            connection_id: self.connection_id,
            transaction_id: self.tid(),
            info_hash: hash,
            peer_id: peer,
            bytes_downloaded: 0,
            bytes_left: left,
            bytes_uploaded: 0,
            event,
            ip_address: None,
            key: 7,
            peers_wanted: numwant,
            port,
            url_data: Vec::new(),
        }
    }

    /// Announces and returns the response (an announce or an error response).
    pub fn announce(
        &mut self,
        hash: InfoHash,
        peer: PeerId,
        port: u16,
        left: i64,
        event: AnnounceEvent,
        numwant: i32,
    ) -> Response {
        let request = self.announce_request(hash, peer, port, left, event, numwant);
        let tid = request.transaction_id;
        let response = self.request(&Request::Announce(request));
        match &response {
            Response::AnnounceIpv4(r) => assert_eq!(r.transaction_id, tid),
            Response::AnnounceIpv6(r) => assert_eq!(r.transaction_id, tid),
            Response::Error(r) => assert_eq!(r.transaction_id, tid),
            other => panic!("unexpected response {other:?}"),
        }
        response
    }

    /// IPv4 announce returning (seeders, leechers, peers).
    pub fn announce_v4(
        &mut self,
        hash: InfoHash,
        peer: PeerId,
        port: u16,
        left: i64,
        event: AnnounceEvent,
        numwant: i32,
    ) -> (i32, i32, Vec<(Ipv4Addr, u16)>) {
        match self.announce(hash, peer, port, left, event, numwant) {
            Response::AnnounceIpv4(r) => (
                r.seeders,
                r.leechers,
                r.peers.iter().map(|p| (p.ip, p.port)).collect(),
            ),
            other => panic!("expected an IPv4 announce response, got {other:?}"),
        }
    }

    pub fn scrape(&mut self, hashes: &[InfoHash]) -> Vec<TorrentScrapeStatistics> {
        let tid = self.tid();
        let response = self.request(&Request::Scrape(ScrapeRequest {
            connection_id: self.connection_id,
            transaction_id: tid,
            info_hashes: hashes.to_vec(),
        }));
        match response {
            Response::Scrape(r) => {
                assert_eq!(r.transaction_id, tid);
                r.torrent_stats
            }
            other => panic!("expected a scrape response, got {other:?}"),
        }
    }

    /// (seeders, completed, leechers) of one torrent.
    pub fn scrape_one(&mut self, hash: InfoHash) -> (i32, i32, i32) {
        let s = self.scrape(&[hash]);
        (s[0].seeders, s[0].completed, s[0].leechers)
    }
}

/// Sends a connect from `socket` and asserts that its answer is the first datagram
/// that comes back. A socket's datagrams reach one tracker socket in order and are
/// handled in order, and the socket worker answers errors and connects itself, in
/// order: so this proves, with no timeout, that nothing sent before it from this
/// socket was answered. The connect is sent again (at most 10 times) while no answer
/// comes, since after a flood the kernel may drop it. Returns the connection id and
/// the number of connects sent.
pub fn assert_first_reply_is_connect(
    socket: &UdpSocket,
    tracker: SocketAddr,
) -> (ConnectionId, u64) {
    let tid = TransactionId(0x5eed_c0de);
    let mut buf = Vec::new();
    Request::Connect(ConnectRequest {
        transaction_id: tid,
    })
    .write_bytes(&mut buf)
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut reply = [0u8; 2048];
    for sent in 1..=10 {
        socket.send_to(&buf, tracker).unwrap();
        if let Ok((len, _)) = socket.recv_from(&mut reply) {
            return match Response::parse_bytes(&reply[..len], true) {
                Ok(Response::Connect(r)) if r.transaction_id == tid => (r.connection_id, sent),
                other => panic!("the first reply is not the connect's answer: {other:?}"),
            };
        }
    }
    panic!("the tracker did not answer 10 connects");
}

/// Datagrams the kernel dropped on the UDP sockets bound to `port`.
pub fn kernel_drops(port: u16) -> u64 {
    tracker_common::net::listen::udp_port_drops(port).expect("read /proc/net/udp")
}

/// Waits until the tracker's statistics equal `expected` (some counters are bumped
/// just after the datagram that a test waits for has left), then asserts it, so a
/// mismatch shows both.
/// Only the totals a test sets are compared (by kind and family, bytes and the access
/// list's load time are the metrics test's business).
pub fn assert_statistics(tracker: &Tracker, connects: u64, expected: Snapshot) {
    let expected = totals(&expected);
    eventually(Duration::from_secs(5), || {
        totals(&tracker.statistics()) == expected
    });
    assert_eq!(totals(&tracker.statistics()), expected);
    assert_eq!(tracker.connects(), connects);
}

/// The totals of `s`, everything else zero.
fn totals(s: &Snapshot) -> Snapshot {
    Snapshot {
        announce: s.announce,
        scrape: s.scrape,
        responses: s.responses,
        error_responses: s.error_responses,
        dropped: s.dropped,
        bad_requests: s.bad_requests,
        access_denied: s.access_denied,
        torrents: s.torrents,
        seeders: s.seeders,
        leechers: s.leechers,
        rejected_by_limits: s.rejected_by_limits,
        archived_torrents: s.archived_torrents,
        archive_bytes: s.archive_bytes,
        ..Snapshot::default()
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The real binary, its stderr lines, and the address it listens on.
pub struct Spawned;

impl Spawned {
    pub fn start(config_path: &std::path::Path) -> tracker_common::testing::Spawned {
        tracker_common::testing::Spawned::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_tracker_udp")),
            config_path,
        )
    }

    pub fn wait_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
        tracker_common::testing::Spawned::wait_line(lines, needle)
    }
}
