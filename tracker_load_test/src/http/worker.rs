//! One HTTP load worker: its connections, each with its requests in flight in order,
//! and the loop that keeps them busy, reads the answers, checks them and times them.
//!
//! Over TLS each connection carries a rustls client between the socket and the HTTP
//! bytes: what the socket has goes through `read_tls` and `process_new_packets` and the
//! answers come out of its `reader()`; requests go into its `writer()` (which holds
//! them while the handshake is on) and out with `write_tls` until the socket is full.
//! Every turn does both, so the handshake moves on readable and writable events alike.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Sender;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use tracker_http_protocol::{
    AnnounceRequest, HttpResponse, InfoHash, ParsedAnnounce, Passkey, PasskeyParam, ScrapeRequest,
    TrackerResponse, parse_http_response,
};

use crate::http::Config;
use crate::report::{Counters, TickReport};
use crate::runner::LoadWorker;
use crate::tcp::{open_stream, read_plain, read_through_tls, source_ip, write_through_tls};
use crate::workload::{PeerSet, RequestKind, Workload};

/// How often connections are scanned for timed-out requests and due reconnections.
const SCAN_INTERVAL: Duration = Duration::from_millis(20);
/// Longest sleep in poll: bounds how late a second's report goes out.
const POLL_TIMEOUT: Duration = Duration::from_millis(5);
/// Wait before opening a connection again after one failed, so that a server that is
/// down is not hammered with connects.
const RETRY_DELAY: Duration = Duration::from_millis(50);
/// Room for an answer's head on top of its body.
const MAX_HEAD_BYTES: usize = 4096;
/// Rounds of write / read / refill per readiness event, so that one busy connection
/// cannot starve the others.
const ROUNDS_PER_EVENT: usize = 4;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Announce,
    Scrape,
}

/// A request sent and not yet answered. Answers come in request order.
#[derive(Copy, Clone, Debug)]
struct InFlight {
    kind: Kind,
    /// Peers asked for (announce; negative = the tracker's default), or distinct info
    /// hashes asked about (scrape).
    expected: i32,
    sent_at: Instant,
}

struct Connection {
    stream: Option<TcpStream>,
    /// The TLS client of the current stream (HTTPS only).
    tls: Option<ClientConnection>,
    source: Option<IpAddr>,
    peers: PeerSet,
    connected: bool,
    /// Requests not yet written, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Bytes read and not yet parsed.
    input: Vec<u8>,
    in_flight: VecDeque<InFlight>,
    /// Requests issued on the current stream.
    issued: u32,
    /// The server said it closes after its last answer: send nothing more on it.
    closing: bool,
    /// When to open the stream again after a failure.
    retry_at: Option<Instant>,
}

/// How a connection's turn ended.
enum Outcome {
    /// It is open and waits for the network.
    Open,
    /// The exchange is over (a new-connection request was answered, or the server
    /// closed after its last answer): open a new stream.
    Done,
    /// It failed: what is in flight is lost.
    Failed(String),
}

/// One load worker.
pub(crate) struct Worker {
    index: usize,
    server: SocketAddr,
    host: String,
    keep_alive: bool,
    /// The client config and the name the server's certificate is checked against
    /// (its IP address), for HTTPS.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    depth: usize,
    timeout: Duration,
    max_body: usize,
    workload: Workload,
    poll: Poll,
    connections: Vec<Connection>,
    rng: SmallRng,
    scrape: ScrapeRequest,
    distinct: Vec<InfoHash>,
    /// A private tracker's passkeys (empty: none in the path).
    passkeys: Passkeys,
    counters: Counters,
    sender: Sender<TickReport>,
}

/// Whether an announce answer is plausible for a server of this address family: a
/// positive interval, counts that are not negative and cover the peers listed, peers of
/// the server's family, none without a port.
fn plausible_announce(answer: &ParsedAnnounce, ipv4: bool) -> bool {
    let peers = answer.peers.len() as i64;
    answer.interval > 0
        && answer.complete >= 0
        && answer.incomplete >= 0
        && peers <= answer.complete.saturating_add(answer.incomplete)
        && answer
            .peers
            .iter()
            .all(|p| p.port != 0 && p.ip.is_ipv4() == ipv4)
}

/// Checks one answer against its request and counts it. `Err` says why it is
/// malformed (uncounted; the caller counts it).
fn check_answer(
    counters: &mut Counters,
    request: &InFlight,
    response: &HttpResponse,
    ipv4: bool,
) -> Result<(), String> {
    if response.status != 200 {
        return Err(format!("status {}", response.status));
    }
    // aquatic_http 0.9 ends each body with a CRLF that its Content-Length counts; the
    // bencoded value before it is whole, and clients read it, so it is accepted here.
    let body = response.body.trim_ascii_end();
    match (request.kind, TrackerResponse::parse_body(body)?) {
        (_, TrackerResponse::Failure(reason)) => {
            log::debug!("failure answer: {reason}");
            counters.error += 1;
        }
        (Kind::Announce, TrackerResponse::Announce(answer))
            if plausible_announce(&answer, ipv4) =>
        {
            counters.announce += 1;
            counters.peers += answer.peers.len() as u64;
            counters.over_numwant += u64::from(
                usize::try_from(request.expected).is_ok_and(|wanted| answer.peers.len() > wanted),
            );
        }
        (Kind::Scrape, TrackerResponse::Scrape(files))
            if usize::try_from(request.expected).is_ok_and(|n| files.len() == n) =>
        {
            counters.scrape += 1;
        }
        (kind, answer) => {
            return Err(format!(
                "implausible answer to a {kind:?} request (expected {}): {answer:?}",
                request.expected
            ));
        }
    }
    Ok(())
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        config: &Config,
        tls: Option<Arc<ClientConfig>>,
        workload: Workload,
        sender: Sender<TickReport>,
    ) -> anyhow::Result<Self> {
        let server = config.server_address;
        let network = &config.network;
        let per_worker = network.connections_per_worker;
        let worker_peers = PeerSet::range(
            config.workload.peers,
            index as u64,
            config.run.workers as u64,
        );
        let depth = if network.keep_alive {
            network.pipeline_depth
        } else {
            1
        };
        let mut worker = Self {
            index,
            server,
            host: server.to_string(),
            keep_alive: network.keep_alive,
            tls: tls.map(|config| (config, ServerName::IpAddress(server.ip().into()))),
            depth,
            timeout: Duration::from_millis(network.request_timeout_ms),
            max_body: network.max_response_body_bytes,
            workload,
            poll: Poll::new().context("create poll")?,
            connections: Vec::with_capacity(per_worker),
            rng: SmallRng::seed_from_u64(config.workload.seed ^ (index as u64 + 1)),
            scrape: ScrapeRequest {
                info_hashes: Vec::with_capacity(74),
                passkey: PasskeyParam::Missing,
            },
            distinct: Vec::with_capacity(74),
            passkeys: Passkeys {
                keys: config.parsed_passkeys()?,
                next_scrape: index,
            },
            counters: Counters::default(),
            sender,
        };
        for c in 0..per_worker {
            worker.connections.push(Connection {
                stream: None,
                tls: None,
                source: source_ip(server, index, c, per_worker),
                peers: worker_peers.interleaved(c as u64, per_worker as u64),
                connected: false,
                out: Vec::with_capacity(1024 * depth.min(16)),
                written: 0,
                input: Vec::new(),
                in_flight: VecDeque::with_capacity(depth),
                issued: 0,
                closing: false,
                retry_at: None,
            });
            worker.open(c).with_context(|| {
                format!(
                    "connect from {:?} to {server}",
                    worker.connections.get(c).and_then(|conn| conn.source)
                )
            })?;
        }
        // The connections made here are the test's set-up, not its load.
        worker.counters = Counters::default();
        Ok(worker)
    }

    /// Runs from `start` to `end`, reporting each second.
    fn drive(mut self, start: Instant, end: Instant) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut tick: u32 = 0;
        let mut tick_end = start + Duration::from_secs(1);
        let mut next_scan = start;
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
                self.scan(now);
                next_scan = now + SCAN_INTERVAL;
            }
            let wait = POLL_TIMEOUT
                .min(next_scan.saturating_duration_since(now))
                .min(tick_end.saturating_duration_since(now));
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(anyhow::Error::new(err).context("poll")),
            }
            let now = Instant::now();
            for event in events.iter() {
                self.service(event.token().0, now);
            }
        }
    }

    fn report(&mut self, tick: u32) {
        let counters = std::mem::take(&mut self.counters);
        // The main thread is gone only if it failed; nothing to do then but stop
        // reporting.
        let _ = self.sender.send(TickReport { tick, counters });
    }

    /// Closes connections whose oldest request timed out, reopens the failed ones that
    /// are due, and starts the requests of connections that have none (the first turn
    /// of each, and any that a lost event left idle).
    fn scan(&mut self, now: Instant) {
        for i in 0..self.connections.len() {
            let Some(c) = self.connections.get(i) else {
                break;
            };
            let timed_out = c
                .in_flight
                .front()
                .is_some_and(|r| now.duration_since(r.sent_at) >= self.timeout);
            if timed_out {
                log::debug!(
                    "load-{:02}: request timed out on connection {i}",
                    self.index + 1
                );
                self.close(i);
                self.service(i, now);
            } else if c.in_flight.is_empty() || c.stream.is_none() {
                self.service(i, now);
            }
        }
    }

    /// Opens connection `i`'s stream and registers it. Requests go out once connected.
    fn open(&mut self, i: usize) -> std::io::Result<()> {
        let Some(c) = self.connections.get_mut(i) else {
            return Ok(());
        };
        let mut stream = open_stream(self.server, c.source)?;
        c.tls = match &self.tls {
            Some((config, name)) => Some(
                ClientConnection::new(config.clone(), name.clone())
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        c.stream = Some(stream);
        c.connected = false;
        c.retry_at = None;
        self.counters.connections += 1;
        Ok(())
    }

    /// Closes connection `i`'s stream; what was in flight on it is counted unanswered.
    fn close(&mut self, i: usize) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        if let Some(mut stream) = c.stream.take() {
            if let Some(tls) = c.tls.as_mut().filter(|tls| !tls.is_handshaking()) {
                // Say goodbye as a TLS client does, if the socket takes it at once.
                tls.send_close_notify();
                let _ = tls.write_tls(&mut stream);
            }
            let _ = self.poll.registry().deregister(&mut stream);
        }
        c.tls = None;
        self.counters.unanswered += c.in_flight.len() as u64;
        c.in_flight.clear();
        c.out.clear();
        c.written = 0;
        c.input.clear();
        c.connected = false;
        c.issued = 0;
        c.closing = false;
    }

    /// Gives connection `i` a turn: (re)open it if due, then write, read, check and
    /// refill until it waits for the network.
    fn service(&mut self, i: usize, now: Instant) {
        for _ in 0..ROUNDS_PER_EVENT {
            let Some(c) = self.connections.get(i) else {
                return;
            };
            if c.stream.is_none() {
                if c.retry_at.is_some_and(|at| now < at) {
                    return;
                }
                if let Err(err) = self.open(i) {
                    self.fail(i, now, &format!("connect: {err}"));
                    return;
                }
            }
            match self.turn(i, now) {
                Outcome::Open => return,
                Outcome::Done => self.close(i),
                Outcome::Failed(why) => {
                    self.fail(i, now, &why);
                    return;
                }
            }
        }
    }

    fn fail(&mut self, i: usize, now: Instant, why: &str) {
        log::debug!("load-{:02}: connection {i}: {why}", self.index + 1);
        let in_handshake = self
            .connections
            .get(i)
            .is_some_and(|c| c.connected && c.tls.as_ref().is_some_and(|tls| tls.is_handshaking()));
        if in_handshake {
            self.counters.tls_handshake_failures += 1;
        } else {
            self.counters.connection_errors += 1;
        }
        self.close(i);
        if let Some(c) = self.connections.get_mut(i) {
            c.retry_at = Some(now + RETRY_DELAY);
        }
    }

    /// One connection's turn: check the connect, read and check the answers, refill,
    /// write.
    fn turn(&mut self, i: usize, now: Instant) -> Outcome {
        match self.check_connected(i) {
            Ok(true) => {}
            Ok(false) => {
                // Queue the requests now, so that without keep-alive the latency
                // includes the handshake, as it does for a client that connects.
                self.refill(i, now);
                return Outcome::Open;
            }
            Err(why) => return Outcome::Failed(why),
        }
        if let Some(outcome) = self.read_answers(i, now) {
            return outcome;
        }
        self.refill(i, now);
        self.write(i)
    }

    /// Whether connection `i` is connected (false: still connecting); `Err` if the
    /// connect failed.
    fn check_connected(&mut self, i: usize) -> Result<bool, String> {
        let Some(c) = self.connections.get_mut(i) else {
            return Ok(false);
        };
        let Some(stream) = c.stream.as_ref() else {
            return Ok(false);
        };
        if c.connected {
            return Ok(true);
        }
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(err)) | Err(err) => return Err(format!("connect: {err}")),
        }
        match stream.peer_addr() {
            Ok(_) => {
                c.connected = true;
                Ok(true)
            }
            Err(err) if err.kind() == ErrorKind::NotConnected => Ok(false),
            Err(err) => Err(format!("connect: {err}")),
        }
    }

    /// Reads what has come on connection `i` and checks every whole answer. `Some`
    /// when the connection's stream is over (or broken).
    fn read_answers(&mut self, i: usize, now: Instant) -> Option<Outcome> {
        let ipv4 = self.server.is_ipv4();
        let c = self.connections.get_mut(i)?;
        let stream = c.stream.as_mut()?;
        let read = match c.tls.as_mut() {
            Some(tls) => read_through_tls(stream, tls, &mut c.input),
            None => read_plain(stream, &mut c.input),
        };
        let eof = match read {
            Ok(eof) => eof,
            Err(why) => return Some(Outcome::Failed(why)),
        };
        let mut consumed = 0;
        loop {
            let rest = c.input.get(consumed..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            let Some(request) = c.in_flight.front().copied() else {
                self.counters.malformed += 1;
                return Some(Outcome::Failed("bytes that answer no request".to_string()));
            };
            let (response, len) = match parse_http_response(rest, self.max_body) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => {
                    if rest.len() > self.max_body + MAX_HEAD_BYTES {
                        self.counters.malformed += 1;
                        return Some(Outcome::Failed("answer too long".to_string()));
                    }
                    break;
                }
                Err(err) => {
                    self.counters.malformed += 1;
                    return Some(Outcome::Failed(format!("malformed answer: {err}")));
                }
            };
            consumed += len;
            c.in_flight.pop_front();
            if let Err(err) = check_answer(&mut self.counters, &request, &response, ipv4) {
                self.counters.malformed += 1;
                return Some(Outcome::Failed(format!("malformed answer: {err}")));
            }
            self.counters
                .latency
                .record(now.duration_since(request.sent_at).as_nanos() as u64);
            if !response.keep_alive {
                c.closing = true;
            }
        }
        c.input.drain(..consumed.min(c.input.len()));

        let answered_all = c.in_flight.is_empty();
        if eof && !answered_all {
            let lost = c.in_flight.len();
            return Some(Outcome::Failed(format!(
                "closed by the server with {lost} request(s) unanswered"
            )));
        }
        // Over: the server closed (idle, or after a last answer), said it will, or the
        // one request of a new-connection exchange is answered.
        let exchange_over = !self.keep_alive && c.issued > 0;
        if answered_all && (eof || c.closing || exchange_over) {
            return Some(Outcome::Done);
        }
        None
    }

    /// Queues requests on connection `i` up to the pipeline depth (one per stream
    /// without keep-alive, none once the server said it closes).
    fn refill(&mut self, i: usize, now: Instant) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        if c.stream.is_none() || c.closing {
            return;
        }
        while c.in_flight.len() < self.depth && (self.keep_alive || c.issued == 0) {
            let request = issue(
                &self.workload,
                &mut self.rng,
                &mut c.peers,
                &mut self.scrape,
                &mut self.distinct,
                &mut self.passkeys,
                &mut c.out,
                &self.host,
                self.keep_alive,
                now,
            );
            c.in_flight.push_back(request);
            c.issued += 1;
            self.counters.sent += 1;
        }
    }

    /// Writes what is pending on connection `i`, until done or the socket is full.
    fn write(&mut self, i: usize) -> Outcome {
        let Some(c) = self.connections.get_mut(i) else {
            return Outcome::Open;
        };
        let Some(stream) = c.stream.as_mut() else {
            return Outcome::Open;
        };
        if let Some(tls) = c.tls.as_mut() {
            return match write_through_tls(stream, tls, &c.out, &mut c.written) {
                Ok(()) => {
                    if c.written == c.out.len() {
                        c.out.clear();
                        c.written = 0;
                    }
                    Outcome::Open
                }
                Err(why) => Outcome::Failed(why),
            };
        }
        while c.written < c.out.len() {
            let pending = c.out.get(c.written..).unwrap_or_default();
            match stream.write(pending) {
                Ok(0) => return Outcome::Failed("write: closed".to_string()),
                Ok(n) => c.written += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Outcome::Failed(format!("write: {err}")),
            }
        }
        if c.written == c.out.len() {
            c.out.clear();
            c.written = 0;
        }
        Outcome::Open
    }
}

/// A private tracker's passkeys, as the requests carry them.
struct Passkeys {
    keys: Vec<Passkey>,
    /// The scrapes' turn.
    next_scrape: usize,
}

impl Passkeys {
    /// Simulated peer `peer`'s passkey: always the same one, as a user's client has.
    fn of_peer(&self, peer: u64) -> PasskeyParam {
        let n = self.keys.len() as u64;
        match n {
            0 => PasskeyParam::Missing,
            _ => self
                .keys
                .get(usize::try_from(peer % n).unwrap_or(0))
                .map_or(PasskeyParam::Missing, |k| PasskeyParam::Key(*k)),
        }
    }

    /// The next scrape's passkey: each in turn.
    fn for_scrape(&mut self) -> PasskeyParam {
        if self.keys.is_empty() {
            return PasskeyParam::Missing;
        }
        self.next_scrape = (self.next_scrape + 1) % self.keys.len();
        self.keys
            .get(self.next_scrape)
            .map_or(PasskeyParam::Missing, |k| PasskeyParam::Key(*k))
    }
}

/// Draws the next request, writes it to `out` and returns what is in flight.
#[expect(
    clippy::too_many_arguments,
    reason = "the worker's fields, borrowed apart from the connection's"
)]
fn issue(
    workload: &Workload,
    rng: &mut SmallRng,
    peers: &mut PeerSet,
    scrape: &mut ScrapeRequest,
    distinct: &mut Vec<InfoHash>,
    passkeys: &mut Passkeys,
    out: &mut Vec<u8>,
    host: &str,
    keep_alive: bool,
    now: Instant,
) -> InFlight {
    match workload.sample_kind(rng) {
        RequestKind::Scrape => {
            let n = workload.sample_scrape_len(rng);
            scrape.info_hashes.clear();
            for _ in 0..n {
                let rank = workload.sample_torrent(rng);
                scrape.info_hashes.push(workload.info_hash(rank));
            }
            scrape.passkey = passkeys.for_scrape();
            scrape.write_http(out, host, keep_alive);
            // A hot torrent may be asked about twice; the answer lists it once.
            distinct.clear();
            distinct.extend_from_slice(&scrape.info_hashes);
            distinct.sort_unstable();
            distinct.dedup();
            InFlight {
                kind: Kind::Scrape,
                expected: distinct.len() as i32,
                sent_at: now,
            }
        }
        // The workload of an HTTP test draws no connects.
        RequestKind::Announce | RequestKind::Connect => {
            let index = peers.pick(workload.config().sequential_peers, rng);
            let peer = workload.peer(index);
            let event = workload.sample_event(rng);
            let numwant = workload.numwant(event);
            let request = AnnounceRequest {
                info_hash: workload.info_hash(peer.torrent),
                peer_id: peer.peer_id,
                port: peer.port,
                uploaded: Some(0),
                downloaded: Some(0),
                left: workload.bytes_left(&peer, event).max(0) as u64,
                event,
                // Negative asks for the tracker's default: leave the parameter out.
                numwant: (numwant >= 0).then_some(i64::from(numwant)),
                compact: true,
                no_peer_id: false,
                ip: None,
                passkey: passkeys.of_peer(index),
            };
            request.write_http(out, host, keep_alive);
            InFlight {
                kind: Kind::Announce,
                expected: numwant,
                sent_at: now,
            }
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
    use tracker_http_protocol::ParsedPeer;

    fn announce(peers: Vec<ParsedPeer>, complete: i64, incomplete: i64) -> ParsedAnnounce {
        ParsedAnnounce {
            interval: 1800,
            min_interval: None,
            complete,
            incomplete,
            peers,
            external_ip: None,
        }
    }

    fn peer(ip: &str, port: u16) -> ParsedPeer {
        ParsedPeer {
            ip: ip.parse().unwrap(),
            port,
            peer_id: None,
        }
    }

    #[test]
    fn each_peer_keeps_its_passkey_and_scrapes_take_turns() {
        let keys: Vec<Passkey> = [
            "abcdefghijklmnopqrstuvwxyzABC789",
            "0123456789ABCDEFGHIJKLMNOPQRSTUV",
        ]
        .iter()
        .map(|k| Passkey::parse(k.as_bytes()).unwrap())
        .collect();
        let key = |i: usize| PasskeyParam::Key(keys[i]);
        let mut passkeys = Passkeys {
            keys: keys.clone(),
            next_scrape: 0,
        };
        assert_eq!(passkeys.of_peer(0), key(0));
        assert_eq!(passkeys.of_peer(1), key(1));
        assert_eq!(passkeys.of_peer(2), key(0));
        assert_eq!(
            passkeys.of_peer(2),
            key(0),
            "the same peer, the same passkey"
        );
        assert_eq!(passkeys.for_scrape(), key(1));
        assert_eq!(passkeys.for_scrape(), key(0));
        let mut none = Passkeys {
            keys: Vec::new(),
            next_scrape: 0,
        };
        assert_eq!(none.of_peer(7), PasskeyParam::Missing);
        assert_eq!(none.for_scrape(), PasskeyParam::Missing);
    }

    #[test]
    fn implausible_announces_are_caught() {
        let good = announce(vec![peer("127.0.0.2", 1), peer("127.0.0.3", 2)], 1, 1);
        assert!(plausible_announce(&good, true));
        assert!(!plausible_announce(&good, false), "v4 peers to a v6 client");
        assert!(!plausible_announce(
            &announce(good.peers.clone(), 1, 0),
            true
        ));
        assert!(!plausible_announce(
            &announce(vec![peer("127.0.0.2", 0)], 1, 0),
            true
        ));
        let no_interval = ParsedAnnounce {
            interval: 0,
            ..good.clone()
        };
        assert!(!plausible_announce(&no_interval, true));
    }

    fn response(body: &[u8]) -> HttpResponse {
        HttpResponse {
            status: 200,
            keep_alive: true,
            body: body.to_vec(),
        }
    }

    #[test]
    fn answers_are_checked_against_their_request() {
        let now = Instant::now();
        let announce_req = InFlight {
            kind: Kind::Announce,
            expected: 1,
            sent_at: now,
        };
        let scrape_req = InFlight {
            kind: Kind::Scrape,
            expected: 1,
            sent_at: now,
        };
        let mut counters = Counters::default();
        // d8:completei1e10:incompletei1e8:intervali1800e5:peers12:<2 compact peers>e
        let mut two_peers = b"d8:completei1e10:incompletei1e8:intervali1800e5:peers12:".to_vec();
        two_peers.extend_from_slice(&[127, 0, 0, 2, 0, 1, 127, 0, 0, 3, 0, 2]);
        two_peers.push(b'e');
        check_answer(&mut counters, &announce_req, &response(&two_peers), true).unwrap();
        assert_eq!((counters.announce, counters.peers), (1, 2));
        assert_eq!(counters.over_numwant, 1, "2 peers for numwant 1");

        let failure = response(b"d14:failure reason9:not founde");
        check_answer(&mut counters, &scrape_req, &failure, true).unwrap();
        assert_eq!(counters.error, 1);

        // An announce answer to a scrape, a wrong status, and garbage are malformed.
        assert!(check_answer(&mut counters, &scrape_req, &response(&two_peers), true).is_err());
        let not_found = HttpResponse {
            status: 404,
            ..response(b"")
        };
        assert!(check_answer(&mut counters, &announce_req, &not_found, true).is_err());
        assert!(check_answer(&mut counters, &announce_req, &response(b"xx"), true).is_err());
        // A scrape answer with one entry per distinct hash asked.
        let mut scrape = b"d5:filesd20:".to_vec();
        scrape.extend_from_slice(&[7; 20]);
        scrape.extend_from_slice(b"d8:completei0e10:downloadedi0e10:incompletei0eeee");
        check_answer(&mut counters, &scrape_req, &response(&scrape), true).unwrap();
        assert_eq!(counters.scrape, 1);
        // Trailing whitespace after the bencoded value (aquatic_http 0.9) is accepted.
        scrape.extend_from_slice(b"\r\n");
        check_answer(&mut counters, &scrape_req, &response(&scrape), true).unwrap();
        assert_eq!(counters.scrape, 2);
        let two_asked = InFlight {
            expected: 2,
            ..scrape_req
        };
        assert!(check_answer(&mut counters, &two_asked, &response(&scrape), true).is_err());
    }
}
