//! One load worker: its sockets, its table of requests in flight, and the loop that
//! keeps the table full, reads the answers, checks them and times them.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Sender;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};

use tracker_common::net::udp_batch::{RecvBatch, SendBatch};
use tracker_common::private::passkey::Passkey;
use tracker_udp_protocol::{
    AnnounceRequest, ConnectRequest, ConnectionId, Ip, Request, Response, ScrapeRequest,
    TransactionId,
};

use crate::report::{Counters, TickReport};
use crate::runner::LoadWorker;
use crate::udp::{Config, passkey_url_data};
use crate::workload::{PeerSet, RequestKind, Workload};

/// Datagrams per `recvmmsg` call.
const RECV_BATCH: usize = 64;
/// How often the in-flight table is scanned for timed-out requests.
const TIMEOUT_SCAN: Duration = Duration::from_millis(20);
/// How long to sleep in poll when nothing arrived and nothing could be sent.
const POLL_TIMEOUT: Duration = Duration::from_millis(1);

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Connect,
    Announce,
    Scrape,
}

/// A request in flight.
#[derive(Copy, Clone, Debug)]
struct Slot {
    busy: bool,
    generation: u16,
    kind: Kind,
    socket: u16,
    /// Peers asked for (announce; negative = the tracker's default) or torrents asked
    /// about (scrape).
    expected: i32,
    sent_at: Instant,
}

struct SocketState {
    socket: mio::net::UdpSocket,
    send: SendBatch,
    connection_id: Option<ConnectionId>,
    connected_at: Instant,
    connect_in_flight: bool,
}

/// One load worker.
pub(crate) struct Worker {
    index: usize,
    server: SocketAddr,
    ipv4: bool,
    workload: Workload,
    timeout: Duration,
    reconnect: Duration,
    sockets: Vec<SocketState>,
    poll: Poll,
    slots: Vec<Slot>,
    free: Vec<u16>,
    recv: RecvBatch,
    rng: SmallRng,
    peers: PeerSet,
    scrape: ScrapeRequest,
    /// Private mode: the BEP 41 URL data of each passkey, lent to one announce at a
    /// time so that no announce allocates. Empty: no passkeys.
    url_data: Vec<Vec<u8>>,
    counters: Counters,
    sender: Sender<TickReport>,
}

fn source_ip(server: SocketAddr, worker: usize, socket: usize) -> IpAddr {
    match server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(127, 0, worker as u8, socket as u8 + 1)),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

fn make_socket(
    server: SocketAddr,
    source: IpAddr,
    recv_buffer_bytes: usize,
) -> anyhow::Result<mio::net::UdpSocket> {
    let domain = if server.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("create socket")?;
    if recv_buffer_bytes > 0 {
        socket
            .set_recv_buffer_size(recv_buffer_bytes)
            .context("set SO_RCVBUF")?;
    }
    socket.set_nonblocking(true).context("set non-blocking")?;
    let local = SocketAddr::new(source, 0);
    socket
        .bind(&local.into())
        .with_context(|| format!("bind to {local}"))?;
    // Connected: the kernel then delivers only the server's datagrams to this socket.
    socket
        .connect(&server.into())
        .with_context(|| format!("connect to {server}"))?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// Which of `passkeys` passkeys peer `peer` announces with; `None` without passkeys.
fn passkey_index(peer: u64, passkeys: usize) -> Option<usize> {
    (passkeys > 0).then(|| (peer % passkeys as u64) as usize)
}

fn transaction_id(slot: u16, generation: u16) -> TransactionId {
    TransactionId(((u32::from(generation) << 16) | u32::from(slot)) as i32)
}

fn split_transaction_id(id: TransactionId) -> (u16, u16) {
    let bits = id.0 as u32;
    ((bits & 0xffff) as u16, (bits >> 16) as u16)
}

/// Whether an announce answer is plausible: a positive interval, counts that are not
/// negative and cover the peers listed, no peer without a port.
fn plausible_announce<I: Ip>(response: &tracker_udp_protocol::AnnounceResponse<I>) -> bool {
    let peers = response.peers.len() as i64;
    response.announce_interval > 0
        && response.seeders >= 0
        && response.leechers >= 0
        && peers <= i64::from(response.seeders) + i64::from(response.leechers)
        && response.peers.iter().all(|p| p.port != 0)
}

/// Whether an answer lists more peers than the request asked for (`wanted` < 0 asks
/// for the tracker's default). Wasteful, not malformed: counted apart.
fn over_numwant(peers: usize, wanted: i32) -> bool {
    usize::try_from(wanted).is_ok_and(|wanted| peers > wanted)
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        config: &Config,
        workload: Workload,
        passkeys: &[Passkey],
        sender: Sender<TickReport>,
    ) -> anyhow::Result<Self> {
        let server = config.server_address;
        let poll = Poll::new().context("create poll")?;
        let mut sockets = Vec::with_capacity(config.network.sockets_per_worker);
        let now = Instant::now();
        let per_socket = config
            .network
            .in_flight_per_worker
            .div_ceil(config.network.sockets_per_worker);
        for i in 0..config.network.sockets_per_worker {
            let mut socket = make_socket(
                server,
                source_ip(server, index, i),
                config.network.recv_buffer_bytes,
            )?;
            poll.registry()
                .register(&mut socket, Token(i), Interest::READABLE)
                .context("register socket")?;
            sockets.push(SocketState {
                socket,
                send: SendBatch::new(per_socket.min(1024), per_socket * 100),
                connection_id: None,
                connected_at: now,
                connect_in_flight: false,
            });
        }
        let in_flight = config.network.in_flight_per_worker;
        let slots = vec![
            Slot {
                busy: false,
                generation: 0,
                kind: Kind::Connect,
                socket: 0,
                expected: 0,
                sent_at: now,
            };
            in_flight
        ];
        let free = (0..in_flight).rev().map(|i| i as u16).collect();
        // Room for the largest answer the workload can provoke, so that a long answer
        // is checked rather than cut.
        let numwant = usize::try_from(config.workload.numwant.max(200)).unwrap_or(200);
        let recv_buf_len = (20 + 18 * numwant).max(2048);
        Ok(Self {
            index,
            server,
            ipv4: server.is_ipv4(),
            timeout: Duration::from_millis(config.network.request_timeout_ms),
            reconnect: Duration::from_secs(config.network.reconnect_interval_secs),
            sockets,
            poll,
            slots,
            free,
            recv: RecvBatch::new(RECV_BATCH, recv_buf_len),
            rng: SmallRng::seed_from_u64(config.workload.seed ^ (index as u64 + 1)),
            peers: PeerSet::range(
                config.workload.peers,
                index as u64,
                config.run.workers as u64,
            ),
            scrape: ScrapeRequest {
                connection_id: ConnectionId(0),
                transaction_id: TransactionId(0),
                info_hashes: Vec::with_capacity(74),
            },
            url_data: passkeys.iter().map(passkey_url_data).collect(),
            workload,
            counters: Counters::default(),
            sender,
        })
    }

    /// Runs from `start` to `end`, reporting each second.
    fn drive(mut self, start: Instant, end: Instant) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut tick: u32 = 0;
        let mut tick_end = start + Duration::from_secs(1);
        let mut next_scan = start + TIMEOUT_SCAN;
        loop {
            let now = Instant::now();
            while now >= tick_end {
                self.report(tick);
                tick += 1;
                tick_end += Duration::from_secs(1);
            }
            if now >= end {
                return Ok(());
            }
            if now >= next_scan {
                self.expire(now);
                next_scan = now + TIMEOUT_SCAN;
            }
            let sent = self.fill(now);
            let received = self.receive();
            if sent == 0 && received == 0 {
                match self.poll.poll(&mut events, Some(POLL_TIMEOUT)) {
                    Ok(()) => {}
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => return Err(anyhow::Error::new(err).context("poll")),
                }
            }
        }
    }

    fn report(&mut self, tick: u32) {
        let counters = std::mem::take(&mut self.counters);
        // The main thread is gone only if it failed; nothing to do then but stop
        // reporting.
        let _ = self.sender.send(TickReport { tick, counters });
    }

    /// Counts requests older than the timeout as unanswered and frees their slots.
    fn expire(&mut self, now: Instant) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.busy && now.duration_since(slot.sent_at) >= self.timeout {
                slot.busy = false;
                self.counters.unanswered += 1;
                if slot.kind == Kind::Connect
                    && let Some(s) = self.sockets.get_mut(usize::from(slot.socket))
                {
                    s.connect_in_flight = false;
                }
                self.free.push(i as u16);
            }
        }
    }

    /// Sends a request for every free slot; returns how many went out.
    fn fill(&mut self, now: Instant) -> usize {
        while let Some(slot) = self.free.pop() {
            if !self.issue(slot, now) {
                self.free.push(slot);
                break;
            }
        }
        let mut sent = 0;
        for s in &mut self.sockets {
            let outcome = s.send.flush(&s.socket);
            sent += outcome.sent;
            self.counters.sent += outcome.sent as u64;
            self.counters.send_failed += outcome.dropped as u64;
        }
        // Refused sends will never be answered: their slots time out and are counted
        // as unanswered, which is what they are.
        sent
    }

    fn next_peer(&mut self) -> u64 {
        self.peers
            .pick(self.workload.config().sequential_peers, &mut self.rng)
    }

    /// Queues one request in `slot`. Returns false when nothing can be sent yet (every
    /// usable socket is still waiting for its connection id).
    fn issue(&mut self, slot_index: u16, now: Instant) -> bool {
        let kind = self.workload.sample_kind(&mut self.rng);
        let num_sockets = self.sockets.len() as u64;
        let (peer, socket) = match kind {
            RequestKind::Announce => {
                let index = self.next_peer();
                let peer = self.workload.peer(index);
                (Some(peer), (peer.index % num_sockets) as usize)
            }
            _ => (None, self.rng.random_range(0..self.sockets.len())),
        };
        let Some(s) = self.sockets.get_mut(socket) else {
            return false;
        };
        let stale = now.duration_since(s.connected_at) >= self.reconnect;
        let needs_connect = s.connection_id.is_none() || stale;
        let kind = if needs_connect && !s.connect_in_flight {
            RequestKind::Connect
        } else if s.connection_id.is_none() && kind != RequestKind::Connect {
            return false;
        } else {
            kind
        };
        let Some(slot) = self.slots.get_mut(usize::from(slot_index)) else {
            return false;
        };
        let generation = slot.generation.wrapping_add(1);
        let transaction_id = transaction_id(slot_index, generation);
        let connection_id = s.connection_id.unwrap_or(ConnectionId(0));
        // The passkey whose URL data an announce borrows, given back once written.
        let mut lent = None;
        let (slot_kind, expected, request) = match kind {
            RequestKind::Connect => {
                s.connect_in_flight = true;
                (
                    Kind::Connect,
                    0,
                    Request::Connect(ConnectRequest { transaction_id }),
                )
            }
            RequestKind::Announce => {
                let Some(peer) = peer else {
                    return false;
                };
                let event = self.workload.sample_event(&mut self.rng);
                let numwant = self.workload.numwant(event);
                // Each peer always has the same passkey, as a real user's client does.
                lent = passkey_index(peer.index, self.url_data.len());
                let url_data = lent
                    .and_then(|i| self.url_data.get_mut(i))
                    .map(std::mem::take)
                    .unwrap_or_default();
                let request = AnnounceRequest {
                    connection_id,
                    transaction_id,
                    info_hash: self.workload.info_hash(peer.torrent),
                    peer_id: peer.peer_id,
                    bytes_downloaded: 0,
                    bytes_left: self.workload.bytes_left(&peer, event),
                    bytes_uploaded: 0,
                    event,
                    ip_address: None,
                    key: peer.index as u32,
                    peers_wanted: numwant,
                    port: peer.port,
                    url_data,
                };
                (Kind::Announce, numwant, Request::Announce(request))
            }
            RequestKind::Scrape => {
                let n = self.workload.sample_scrape_len(&mut self.rng);
                let mut request = std::mem::replace(
                    &mut self.scrape,
                    ScrapeRequest {
                        connection_id,
                        transaction_id,
                        info_hashes: Vec::new(),
                    },
                );
                request.connection_id = connection_id;
                request.transaction_id = transaction_id;
                request.info_hashes.clear();
                for _ in 0..n {
                    let rank = self.workload.sample_torrent(&mut self.rng);
                    request.info_hashes.push(self.workload.info_hash(rank));
                }
                (Kind::Scrape, n as i32, Request::Scrape(request))
            }
        };
        let pushed = s
            .send
            .push_with(self.server, |buf| request.write_bytes(buf))
            .unwrap_or(false);
        match request {
            // Keep the hash buffer for the next scrape.
            Request::Scrape(scrape) => self.scrape = scrape,
            // Give the passkey's URL data back.
            Request::Announce(announce) => {
                if let Some(slot) = lent.and_then(|i| self.url_data.get_mut(i)) {
                    *slot = announce.url_data;
                }
            }
            _ => {}
        }
        if !pushed {
            if slot_kind == Kind::Connect {
                s.connect_in_flight = false;
            }
            return false;
        }
        *slot = Slot {
            busy: true,
            generation,
            kind: slot_kind,
            socket: socket as u16,
            expected,
            sent_at: now,
        };
        true
    }

    /// Reads what has arrived on every socket; returns how many datagrams.
    fn receive(&mut self) -> usize {
        let mut received = 0;
        for socket_index in 0..self.sockets.len() {
            // Bounded, so that one busy socket cannot starve the sends.
            for _ in 0..8 {
                let Some(s) = self.sockets.get(socket_index) else {
                    break;
                };
                match self.recv.recv(&s.socket) {
                    Ok(n) => {
                        received += n;
                        let now = Instant::now();
                        for i in 0..n {
                            self.handle_datagram(socket_index, i, now);
                        }
                        if n < self.recv.capacity() {
                            break;
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => {
                        // E.g. ECONNREFUSED: the server is not (yet, or any more)
                        // listening. Its requests time out and are counted.
                        log::debug!("load-{:02}: recv: {err}", self.index + 1);
                        break;
                    }
                }
            }
        }
        received
    }

    fn handle_datagram(&mut self, socket_index: usize, i: usize, now: Instant) {
        let truncated = self.recv.truncated(i);
        let Some((data, _)) = self.recv.get(i) else {
            return;
        };
        let parsed = if truncated {
            Err("longer than the receive buffer".to_string())
        } else {
            Response::parse_bytes(data, self.ipv4).map_err(|err| format!("{err}: {data:02x?}"))
        };
        let response = match parsed {
            Ok(response) => response,
            Err(err) => {
                log::debug!("load-{:02}: malformed answer: {err}", self.index + 1);
                self.counters.malformed += 1;
                return;
            }
        };
        let (slot_index, generation) = split_transaction_id(response.transaction_id());
        let Some(slot) = self.slots.get_mut(usize::from(slot_index)) else {
            self.counters.malformed += 1;
            return;
        };
        if !slot.busy || slot.generation != generation {
            // An answer to a request that timed out already, or a second answer.
            self.counters.late += 1;
            return;
        }
        slot.busy = false;
        self.free.push(slot_index);
        let slot = *slot;
        if usize::from(slot.socket) != socket_index {
            self.counters.malformed += 1;
            return;
        }
        let Some(s) = self.sockets.get_mut(socket_index) else {
            return;
        };
        if slot.kind == Kind::Connect {
            s.connect_in_flight = false;
        }
        let ok = match (slot.kind, &response) {
            (Kind::Connect, Response::Connect(r)) => {
                s.connection_id = Some(r.connection_id);
                s.connected_at = now;
                self.counters.connect += 1;
                true
            }
            (Kind::Announce, Response::AnnounceIpv4(r)) if self.ipv4 && plausible_announce(r) => {
                self.counters.announce += 1;
                self.counters.peers += r.peers.len() as u64;
                self.counters.over_numwant += u64::from(over_numwant(r.peers.len(), slot.expected));
                true
            }
            (Kind::Announce, Response::AnnounceIpv6(r)) if !self.ipv4 && plausible_announce(r) => {
                self.counters.announce += 1;
                self.counters.peers += r.peers.len() as u64;
                self.counters.over_numwant += u64::from(over_numwant(r.peers.len(), slot.expected));
                true
            }
            (Kind::Scrape, Response::Scrape(r)) => {
                let plausible = r.torrent_stats.len() == slot.expected as usize
                    && r.torrent_stats
                        .iter()
                        .all(|t| t.seeders >= 0 && t.leechers >= 0 && t.completed >= 0);
                if plausible {
                    self.counters.scrape += 1;
                }
                plausible
            }
            (_, Response::Error(e)) => {
                if e.message.contains("connection id") {
                    s.connection_id = None;
                }
                self.counters.error += 1;
                true
            }
            _ => false,
        };
        if ok {
            self.counters
                .latency
                .record(now.duration_since(slot.sent_at).as_nanos() as u64);
        } else {
            log::debug!(
                "load-{:02}: implausible answer to a {:?} request (expected {}): {response:?}",
                self.index + 1,
                slot.kind,
                slot.expected
            );
            self.counters.malformed += 1;
        }
    }
}

impl LoadWorker for Worker {
    fn run(self, start: Instant, end: Instant) -> anyhow::Result<()> {
        self.drive(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_keeps_its_passkey() {
        assert_eq!(passkey_index(7, 0), None);
        assert_eq!(passkey_index(7, 3), Some(1));
        assert_eq!(passkey_index(u64::MAX, 2), Some(1));
        let key = Passkey(*b"0123456789abcdefghijABCDEFGHIJkl");
        let url = passkey_url_data(&key);
        assert_eq!(url, b"/0123456789abcdefghijABCDEFGHIJkl/announce");
        // What the tracker reads back from the written announce.
        let announce = AnnounceRequest {
            connection_id: ConnectionId(1),
            transaction_id: TransactionId(2),
            info_hash: tracker_udp_protocol::InfoHash([3; 20]),
            peer_id: tracker_udp_protocol::PeerId([4; 20]),
            bytes_downloaded: 0,
            bytes_left: 0,
            bytes_uploaded: 0,
            event: tracker_udp_protocol::AnnounceEvent::Started,
            ip_address: None,
            key: 5,
            peers_wanted: -1,
            port: 6,
            url_data: url,
        };
        let mut bytes = Vec::new();
        Request::Announce(announce).write_bytes(&mut bytes).unwrap();
        let Ok(Request::Announce(parsed)) = Request::parse_bytes(&bytes, 74, 128) else {
            panic!("the announce parses");
        };
        assert_eq!(
            parsed.passkey(),
            tracker_udp_protocol::PasskeyParam::Key(key)
        );
    }

    #[test]
    fn transaction_ids_carry_slot_and_generation() {
        for (slot, generation) in [(0, 0), (1, 2), (65_535, 65_535), (300, 40_000)] {
            let id = transaction_id(slot, generation);
            assert_eq!(split_transaction_id(id), (slot, generation));
        }
    }

    #[test]
    fn source_addresses_are_per_socket_on_ipv4() {
        let v4: SocketAddr = "127.0.0.1:6969".parse().unwrap();
        assert_eq!(source_ip(v4, 2, 3), IpAddr::V4(Ipv4Addr::new(127, 0, 2, 4)));
        let v6: SocketAddr = "[::1]:6969".parse().unwrap();
        assert_eq!(source_ip(v6, 2, 3), IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn implausible_announces_are_caught() {
        use tracker_udp_protocol::{AnnounceResponse, ResponsePeer};
        let good = AnnounceResponse::<Ipv4Addr> {
            transaction_id: TransactionId(1),
            announce_interval: 1800,
            leechers: 1,
            seeders: 1,
            peers: vec![
                ResponsePeer {
                    ip: Ipv4Addr::LOCALHOST,
                    port: 1,
                };
                2
            ],
        };
        assert!(plausible_announce(&good));
        let more_than_the_swarm = AnnounceResponse {
            seeders: 0,
            ..good.clone()
        };
        assert!(!plausible_announce(&more_than_the_swarm));
        let no_interval = AnnounceResponse {
            announce_interval: 0,
            ..good.clone()
        };
        assert!(!plausible_announce(&no_interval));
        let port_zero = AnnounceResponse {
            peers: vec![ResponsePeer {
                ip: Ipv4Addr::LOCALHOST,
                port: 0,
            }],
            ..good.clone()
        };
        assert!(!plausible_announce(&port_zero));
        assert!(over_numwant(2, 1));
        assert!(over_numwant(1, 0));
        assert!(!over_numwant(2, 2));
        assert!(!over_numwant(200, -1));
    }
}
