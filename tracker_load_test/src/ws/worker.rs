//! One WebSocket load worker: its connections (connect, optional TLS, upgrade, frames),
//! the loop that keeps each one's announces and scrapes going, answers the offers
//! relayed to it, and reads, checks, counts and times what the tracker sends.
//!
//! Over TLS each connection carries a rustls client between the socket and the
//! WebSocket bytes, driven as in the HTTP load worker (see `crate::tcp`).

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::Sender;
use hashbrown::HashSet;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use tracker_common::types::AnnounceEvent;
use tracker_ws_protocol::websocket::{Frame, FrameKind, read_server_frame, write_client_frame};
use tracker_ws_protocol::{
    Action, AnnounceRequest, Answer, InMessage, InfoHash, Offer, OfferId, ParsedOutMessage, PeerId,
    ScrapeRequest, parse_out_message, write_in_message,
};

use super::Config;
use super::client::{Messages, offer_id};
use super::websocket::{UpgradeAnswer, parse_upgrade_answer, upgrade_request};
use crate::report::{Counters, TickReport};
use crate::runner::LoadWorker;
use crate::tcp::{open_stream, read_plain, read_through_tls, source_ip, write_through_tls};
use crate::workload::{PeerSet, RequestKind, Workload};

/// How often connections are scanned for timed-out requests, due reconnections and
/// idle windows.
const SCAN_INTERVAL: Duration = Duration::from_millis(20);
/// Longest sleep in poll: bounds how late a second's report goes out.
const POLL_TIMEOUT: Duration = Duration::from_millis(5);
/// Wait before opening a connection again after one failed, so that a server that is
/// down is not hammered with connects.
const RETRY_DELAY: Duration = Duration::from_millis(50);
/// Most bytes waiting to be sent on one connection. Only answers can pile up beyond the
/// window of requests (a tracker that relays offers but reads nothing); past this they
/// are not sent, and counted as send failures.
const MAX_PENDING_OUT: usize = 4 * 1024 * 1024;

/// A request waiting for its reply.
#[derive(Copy, Clone, Debug)]
enum Pending {
    /// An announce of this torrent.
    Announce {
        info_hash: InfoHash,
        sent_at: Instant,
    },
    /// A scrape naming `asked` torrents (a hot one perhaps more than once), whose
    /// hashes set the bits of `filter` (see [`hash_bit`]).
    Scrape {
        filter: u128,
        asked: usize,
        sent_at: Instant,
    },
}

impl Pending {
    fn sent_at(&self) -> Instant {
        match self {
            Self::Announce { sent_at, .. } | Self::Scrape { sent_at, .. } => *sent_at,
        }
    }
}

/// The bit of a scrape's filter that stands for `info_hash`: a scrape reply is matched
/// to a scrape in flight whose filter has the bits of every torrent in the reply, and
/// that asked about at least as many torrents as the reply lists. (A reply may list
/// fewer: aquatic_ws leaves out torrents it does not know, and a JSON object lists a
/// repeated hash once; shoal lists one entry per hash asked, repeats included.)
fn hash_bit(info_hash: &InfoHash) -> u128 {
    1u128 << (info_hash.0[0] & 127)
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// The TCP connect is under way.
    Connecting,
    /// The upgrade request is out (behind the TLS handshake, over TLS).
    Upgrading,
    /// Frames flow.
    Open,
}

struct Connection {
    /// The connection's number across all workers, which its peer id and offer ids
    /// carry.
    number: u32,
    peer_id: PeerId,
    stream: Option<TcpStream>,
    /// The TLS client of the current stream (wss only).
    tls: Option<ClientConnection>,
    source: Option<IpAddr>,
    peers: PeerSet,
    phase: Phase,
    /// The `Sec-WebSocket-Accept` the current upgrade request calls for.
    accept_key: String,
    opened_at: Instant,
    /// Frames not yet written, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Bytes read and not yet parsed.
    input: Vec<u8>,
    /// The message being put together from a fragmented frame sequence.
    fragments: Vec<u8>,
    fragmented: bool,
    in_flight: VecDeque<Pending>,
    /// The torrents the connection is a peer of (announced, not stopped since).
    /// hashbrown's hasher: the set is looked up for every offer received.
    active: HashSet<InfoHash>,
    /// Announces sent, numbering the offer ids.
    announces: u64,
    /// When to open the stream again after a failure.
    retry_at: Option<Instant>,
}

/// One load worker.
pub(crate) struct Worker {
    index: usize,
    /// The tracker's address (and of the other cluster nodes, if any), with the Host
    /// header for it: connection number n opens on the (n mod len)-th.
    servers: Vec<(SocketAddr, String)>,
    /// The paths connections open on, by connection number: `/`, or
    /// `/PASSKEY/announce` for each of `network.passkeys`.
    paths: Vec<String>,
    origin: String,
    /// The client config, for wss (a server's certificate is checked against its IP
    /// address).
    tls: Option<Arc<ClientConfig>>,
    depth: usize,
    timeout: Duration,
    max_message: usize,
    offers_per_announce: usize,
    answer_share: f64,
    workload: Workload,
    messages: Messages,
    poll: Poll,
    connections: Vec<Connection>,
    rng: SmallRng,
    /// The JSON text of the message being sent.
    text: Vec<u8>,
    /// The offers of an announce, their descriptions made once; only the ids change.
    offers: Vec<Offer>,
    /// The answer sent to offers; only the ids change.
    answer: Option<Answer>,
    /// A scrape's info hashes.
    hashes: Vec<InfoHash>,
    counters: Counters,
    sender: Sender<TickReport>,
}

/// The upgrade paths for these passkeys: `/` without any.
fn upgrade_paths(passkeys: &[String]) -> Vec<String> {
    if passkeys.is_empty() {
        return vec!["/".to_string()];
    }
    passkeys
        .iter()
        .map(|key| format!("/{key}/announce"))
        .collect()
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        config: &Config,
        tls: Option<Arc<ClientConfig>>,
        workload: Workload,
        messages: Messages,
        sender: Sender<TickReport>,
    ) -> anyhow::Result<Self> {
        let servers = std::iter::once(config.server_address)
            .chain(config.cluster_server_addresses.iter().copied())
            .map(|server| (server, server.to_string()))
            .collect();
        let network = &config.network;
        let per_worker = network.connections_per_worker;
        let worker_peers = PeerSet::range(
            config.workload.peers,
            index as u64,
            config.run.workers as u64,
        );
        let offers = (0..config.webtorrent.offers_per_announce)
            .map(|_| Offer {
                offer_id: OfferId([0; 20]),
                offer: messages.offer().to_owned(),
            })
            .collect();
        let answer = Answer {
            to_peer_id: PeerId([0; 20]),
            offer_id: OfferId([0; 20]),
            answer: messages.answer().to_owned(),
        };
        let now = Instant::now();
        let mut worker = Self {
            index,
            servers,
            paths: upgrade_paths(&network.passkeys),
            origin: network.origin.clone(),
            tls,
            depth: network.requests_in_flight,
            timeout: Duration::from_millis(network.request_timeout_ms),
            max_message: network.max_message_bytes,
            offers_per_announce: config.webtorrent.offers_per_announce,
            answer_share: config.webtorrent.answer_share,
            workload,
            poll: Poll::new().context("create poll")?,
            connections: Vec::with_capacity(per_worker),
            rng: SmallRng::seed_from_u64(config.workload.seed ^ (index as u64 + 1)),
            text: Vec::with_capacity(16 * 1024),
            offers,
            answer: Some(answer),
            hashes: Vec::with_capacity(74),
            counters: Counters::default(),
            sender,
            messages,
        };
        for c in 0..per_worker {
            let number = u32::try_from(index * per_worker + c).context("too many connections")?;
            worker.connections.push(Connection {
                number,
                peer_id: worker.messages.peer_id(number),
                stream: None,
                tls: None,
                source: source_ip(config.server_address, index, c, per_worker),
                peers: worker_peers.interleaved(c as u64, per_worker as u64),
                phase: Phase::Connecting,
                accept_key: String::new(),
                opened_at: now,
                out: Vec::new(),
                written: 0,
                input: Vec::new(),
                fragments: Vec::new(),
                fragmented: false,
                in_flight: VecDeque::with_capacity(worker.depth),
                active: HashSet::new(),
                announces: 0,
                retry_at: None,
            });
            worker.open(c, now).with_context(|| {
                format!(
                    "connect from {:?} to {:?}",
                    worker.connections.get(c).and_then(|conn| conn.source),
                    worker.servers.first()
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

    /// Counts timed-out requests, fails connections whose connect or upgrade takes too
    /// long, reopens the failed ones that are due, and refills the windows that have
    /// room (the first requests of each connection, and after timeouts).
    fn scan(&mut self, now: Instant) {
        for i in 0..self.connections.len() {
            let Some(c) = self.connections.get_mut(i) else {
                break;
            };
            if c.stream.is_none() {
                if c.retry_at.is_none_or(|at| now >= at) {
                    self.service(i, now);
                }
                continue;
            }
            if c.phase != Phase::Open {
                if now.duration_since(c.opened_at) >= self.timeout {
                    let why = match c.phase {
                        Phase::Connecting => "connect timed out",
                        _ => "upgrade timed out",
                    };
                    self.fail(i, now, why);
                }
                continue;
            }
            while c
                .in_flight
                .front()
                .is_some_and(|p| now.duration_since(p.sent_at()) >= self.timeout)
            {
                c.in_flight.pop_front();
                self.counters.unanswered += 1;
            }
            if c.in_flight.len() < self.depth {
                self.service(i, now);
            }
        }
    }

    /// Opens connection `i`'s stream, registers it and queues the upgrade request,
    /// which goes out once connected (over TLS, once the handshake is done).
    fn open(&mut self, i: usize, now: Instant) -> std::io::Result<()> {
        let Some(c) = self.connections.get_mut(i) else {
            return Ok(());
        };
        let Some((server, host)) = self
            .servers
            .get(c.number as usize % self.servers.len().max(1))
        else {
            return Ok(());
        };
        let mut stream = open_stream(*server, c.source)?;
        c.tls = match &self.tls {
            Some(config) => Some(
                ClientConnection::new(config.clone(), ServerName::IpAddress(server.ip().into()))
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let key = tungstenite::handshake::client::generate_key();
        c.accept_key = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let path = self
            .paths
            .get(c.number as usize % self.paths.len().max(1))
            .map_or("/", String::as_str);
        upgrade_request(host, path, &key, &self.origin, &mut c.out);
        c.stream = Some(stream);
        c.phase = Phase::Connecting;
        c.opened_at = now;
        c.retry_at = None;
        self.counters.connections += 1;
        Ok(())
    }

    /// Closes connection `i`'s stream; what was in flight on it is counted unanswered,
    /// and the torrents it was in are forgotten, as the tracker forgets its peers.
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
        c.active.clear();
        c.out.clear();
        c.written = 0;
        c.input.clear();
        c.fragments.clear();
        c.fragmented = false;
        c.phase = Phase::Connecting;
    }

    fn fail(&mut self, i: usize, now: Instant, why: &str) {
        log::debug!("load-{:02}: connection {i}: {why}", self.index + 1);
        let in_handshake = self.connections.get(i).is_some_and(|c| {
            c.phase != Phase::Connecting && c.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
        });
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

    /// Gives connection `i` a turn: (re)open it if due, then read, handle, refill and
    /// write until it waits for the network.
    fn service(&mut self, i: usize, now: Instant) {
        let Some(c) = self.connections.get(i) else {
            return;
        };
        if c.stream.is_none() {
            if c.retry_at.is_some_and(|at| now < at) {
                return;
            }
            if let Err(err) = self.open(i, now) {
                self.fail(i, now, &format!("connect: {err}"));
                return;
            }
        }
        if let Err(why) = self.turn(i, now) {
            self.fail(i, now, &why);
        }
    }

    /// One connection's turn. `Err` when the connection is over.
    fn turn(&mut self, i: usize, now: Instant) -> Result<(), String> {
        if !self.check_connected(i)? {
            return Ok(());
        }
        let eof = self.read(i)?;
        let phase = self.connections.get(i).map(|c| c.phase);
        if phase == Some(Phase::Upgrading) {
            self.check_upgrade(i)?;
        }
        if self.connections.get(i).map(|c| c.phase) == Some(Phase::Open) {
            let closed = self.handle_frames(i, now)?;
            if closed {
                // Send the echo of the close if the socket takes it.
                self.write(i)?;
                return Err("closed by the server".to_string());
            }
            self.refill(i, now);
        }
        self.write(i)?;
        if eof {
            return Err("closed by the server without a close frame".to_string());
        }
        Ok(())
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
        if c.phase != Phase::Connecting {
            return Ok(true);
        }
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(err)) | Err(err) => return Err(format!("connect: {err}")),
        }
        match stream.peer_addr() {
            Ok(_) => {
                c.phase = Phase::Upgrading;
                Ok(true)
            }
            Err(err) if err.kind() == ErrorKind::NotConnected => Ok(false),
            Err(err) => Err(format!("connect: {err}")),
        }
    }

    /// Reads what has come on connection `i`. `Ok(true)` at the end of the stream.
    fn read(&mut self, i: usize) -> Result<bool, String> {
        let Some(c) = self.connections.get_mut(i) else {
            return Ok(false);
        };
        let Some(stream) = c.stream.as_mut() else {
            return Ok(false);
        };
        match c.tls.as_mut() {
            Some(tls) => read_through_tls(stream, tls, &mut c.input),
            None => read_plain(stream, &mut c.input),
        }
    }

    /// Checks the server's answer to the upgrade request, if it is all there.
    fn check_upgrade(&mut self, i: usize) -> Result<(), String> {
        let Some(c) = self.connections.get_mut(i) else {
            return Ok(());
        };
        match parse_upgrade_answer(&c.input, &c.accept_key) {
            UpgradeAnswer::Incomplete => Ok(()),
            UpgradeAnswer::Accepted { len } => {
                c.input.drain(..len.min(c.input.len()));
                c.phase = Phase::Open;
                Ok(())
            }
            UpgradeAnswer::Refused(why) => Err(why),
        }
    }

    /// Handles every whole frame read on connection `i`. `Ok(true)` when the server
    /// closed the connection (the echo of its close frame is queued).
    fn handle_frames(&mut self, i: usize, now: Instant) -> Result<bool, String> {
        let mut consumed = 0;
        let mut closed = false;
        loop {
            let Some(c) = self.connections.get_mut(i) else {
                return Ok(false);
            };
            let rest = c.input.get_mut(consumed..).unwrap_or_default();
            let (kind, fin, payload, len) = match read_server_frame(rest, self.max_message) {
                Frame::Incomplete => break,
                Frame::Error(code) => {
                    return Err(format!("WebSocket protocol error (close code {code})"));
                }
                Frame::Whole {
                    kind,
                    fin,
                    payload,
                    len,
                } => (kind, fin, payload, len),
            };
            let payload = consumed + payload.start..consumed + payload.end;
            consumed += len;
            match kind {
                FrameKind::Text if c.fragmented => {
                    return Err("a new message inside a fragmented one".to_string());
                }
                FrameKind::Text if fin => self.handle_message(i, Some(payload), now),
                FrameKind::Text => {
                    c.fragments.clear();
                    c.fragments
                        .extend_from_slice(c.input.get(payload).unwrap_or_default());
                    c.fragmented = true;
                }
                FrameKind::Continuation if !c.fragmented => {
                    return Err("a continuation frame outside a message".to_string());
                }
                FrameKind::Continuation => {
                    if c.fragments.len() + payload.len() > self.max_message {
                        return Err("message larger than network.max_message_bytes".to_string());
                    }
                    c.fragments
                        .extend_from_slice(c.input.get(payload).unwrap_or_default());
                    if fin {
                        c.fragmented = false;
                        self.handle_message(i, None, now);
                    }
                }
                FrameKind::Binary => return Err("a binary message".to_string()),
                FrameKind::Ping => {
                    let mask = self.rng.random::<u32>().to_ne_bytes();
                    let Connection { input, out, .. } = c;
                    let data = input.get(payload).unwrap_or_default();
                    write_client_frame(out, FrameKind::Pong, data, mask);
                }
                FrameKind::Pong => {}
                FrameKind::Close => {
                    let mask = self.rng.random::<u32>().to_ne_bytes();
                    // Echo the status code, as RFC 6455, 5.5.1 asks.
                    let Connection { input, out, .. } = c;
                    let code = input
                        .get(payload)
                        .and_then(|p| p.get(..2))
                        .unwrap_or_default();
                    write_client_frame(out, FrameKind::Close, code, mask);
                    closed = true;
                    break;
                }
            }
        }
        if let Some(c) = self.connections.get_mut(i) {
            c.input.drain(..consumed.min(c.input.len()));
        }
        Ok(closed)
    }

    /// Handles one whole message of connection `i`: the text at `payload` in its input,
    /// or its fragments when `None`.
    fn handle_message(&mut self, i: usize, payload: Option<Range<usize>>, now: Instant) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        let text = match payload {
            Some(range) => c.input.get(range).unwrap_or_default(),
            None => &c.fragments,
        };
        let message = match parse_out_message(text) {
            Ok(message) => message,
            Err(err) => {
                log::debug!("load-{:02}: malformed message: {err}", self.index + 1);
                self.counters.malformed += 1;
                return;
            }
        };
        let checked = match message {
            ParsedOutMessage::AnnounceResponse {
                info_hash,
                interval,
                ..
            } => {
                if interval == 0 {
                    return self.malformed("an announce reply with interval 0");
                }
                self.counters.announce += 1;
                let place = c.in_flight.iter().position(
                    |p| matches!(p, Pending::Announce { info_hash: h, .. } if *h == info_hash),
                );
                match place.and_then(|at| c.in_flight.remove(at)) {
                    Some(pending) => self
                        .counters
                        .latency
                        .record(now.duration_since(pending.sent_at()).as_nanos() as u64),
                    None => self.counters.unmatched += 1,
                }
                Ok(())
            }
            ParsedOutMessage::Offer {
                info_hash,
                peer_id,
                offer_id,
                offer,
            } => {
                if let Err(why) = self
                    .messages
                    .check_offer(c.number, &peer_id, &offer_id, &offer)
                {
                    return self.malformed(why);
                }
                self.counters.offer += 1;
                // A browser answers offers for the torrents it is in, and ignores those
                // of a torrent it has left.
                let answer = c.active.contains(&info_hash)
                    && (self.answer_share >= 1.0 || self.rng.random::<f64>() < self.answer_share);
                if answer {
                    self.send_answer(i, info_hash, peer_id, offer_id);
                }
                Ok(())
            }
            ParsedOutMessage::Answer {
                peer_id,
                offer_id,
                answer,
                ..
            } => self
                .messages
                .check_answer(c.number, &peer_id, &offer_id, &answer)
                .map(|()| self.counters.answer += 1),
            ParsedOutMessage::ScrapeResponse { files } => {
                self.counters.scrape += 1;
                let bits = files.iter().fold(0u128, |bits, (h, _)| bits | hash_bit(h));
                // A scrape asking for just these first, then one asking for more, so
                // that a reply does not take the place of another scrape's.
                let exact = c.in_flight.iter().position(|p| {
                    matches!(p, Pending::Scrape { filter, asked, .. }
                        if bits == *filter && files.len() == *asked)
                });
                let place = exact.or_else(|| {
                    c.in_flight.iter().position(|p| {
                        matches!(p, Pending::Scrape { filter, asked, .. }
                            if bits & !filter == 0 && files.len() <= *asked)
                    })
                });
                if place.and_then(|at| c.in_flight.remove(at)).is_none() {
                    self.counters.unmatched += 1;
                }
                Ok(())
            }
            ParsedOutMessage::Failure {
                reason,
                action,
                info_hash,
            } => {
                log::debug!("load-{:02}: failure: {reason}", self.index + 1);
                self.counters.error += 1;
                let place = c.in_flight.iter().position(|p| match (p, action) {
                    (Pending::Announce { info_hash: h, .. }, Some(Action::Announce)) => {
                        Some(*h) == info_hash
                    }
                    (Pending::Scrape { .. }, Some(Action::Scrape)) => true,
                    _ => false,
                });
                if let Some(at) = place {
                    c.in_flight.remove(at);
                }
                Ok(())
            }
        };
        if let Err(why) = checked {
            self.malformed(why);
        }
    }

    fn malformed(&mut self, why: &str) {
        log::debug!("load-{:02}: malformed message: {why}", self.index + 1);
        self.counters.malformed += 1;
    }

    /// Queues on connection `i` the answer to offer `offer_id` of `offerer` in
    /// `info_hash`, as the client sends it: no counts, no event, no offers.
    fn send_answer(&mut self, i: usize, info_hash: InfoHash, offerer: PeerId, offer_id: OfferId) {
        let Some(c) = self.connections.get_mut(i) else {
            return;
        };
        if c.out.len() - c.written > MAX_PENDING_OUT {
            self.counters.send_failed += 1;
            return;
        }
        let Some(mut answer) = self.answer.take() else {
            return;
        };
        answer.to_peer_id = offerer;
        answer.offer_id = offer_id;
        let message = InMessage::Announce(AnnounceRequest {
            info_hash,
            peer_id: c.peer_id,
            event: AnnounceEvent::None,
            left: None,
            uploaded: None,
            downloaded: None,
            numwant: None,
            offers: Vec::new(),
            answer: Some(answer),
        });
        self.text.clear();
        write_in_message(&message, &mut self.text);
        if let InMessage::Announce(request) = message {
            self.answer = request.answer;
        }
        let mask = self.rng.random::<u32>().to_ne_bytes();
        write_client_frame(&mut c.out, FrameKind::Text, &self.text, mask);
        self.counters.sent += 1;
        self.counters.answers_sent += 1;
    }

    /// Queues requests on connection `i` up to the window.
    fn refill(&mut self, i: usize, now: Instant) {
        while self
            .connections
            .get(i)
            .is_some_and(|c| c.in_flight.len() < self.depth)
        {
            let pending = match self.workload.sample_kind(&mut self.rng) {
                RequestKind::Scrape => self.scrape(i, now),
                // The workload of a WebSocket test draws no connects.
                RequestKind::Announce | RequestKind::Connect => self.announce(i, now),
            };
            let Some(c) = self.connections.get_mut(i) else {
                return;
            };
            let mask = self.rng.random::<u32>().to_ne_bytes();
            write_client_frame(&mut c.out, FrameKind::Text, &self.text, mask);
            c.in_flight.push_back(pending);
            self.counters.sent += 1;
        }
    }

    /// Draws connection `i`'s next announce and writes its text to `self.text`.
    fn announce(&mut self, i: usize, now: Instant) -> Pending {
        let workload = &self.workload;
        let Some(c) = self.connections.get_mut(i) else {
            return Pending::Announce {
                info_hash: InfoHash([0; 20]),
                sent_at: now,
            };
        };
        let peer = workload.peer(
            c.peers
                .pick(workload.config().sequential_peers, &mut self.rng),
        );
        let event = workload.sample_event(&mut self.rng);
        let info_hash = workload.info_hash(peer.torrent);
        // The client makes offers with no event and "started" only.
        let with_offers = matches!(event, AnnounceEvent::None | AnnounceEvent::Started);
        c.announces += 1;
        let offers = if with_offers {
            for (index, offer) in self.offers.iter_mut().enumerate() {
                offer.offer_id = offer_id(c.number, c.announces, index as u8, &mut self.rng);
            }
            std::mem::take(&mut self.offers)
        } else {
            Vec::new()
        };
        let numwant = if with_offers {
            self.offers_per_announce as u64
        } else {
            0
        };
        let message = InMessage::Announce(AnnounceRequest {
            info_hash,
            peer_id: c.peer_id,
            event,
            left: Some(workload.bytes_left(&peer, event).max(0) as u64),
            uploaded: Some(0),
            downloaded: Some(0),
            numwant: Some(numwant),
            offers,
            answer: None,
        });
        self.text.clear();
        write_in_message(&message, &mut self.text);
        if let InMessage::Announce(request) = message
            && with_offers
        {
            self.offers = request.offers;
        }
        if event == AnnounceEvent::Stopped {
            c.active.remove(&info_hash);
        } else {
            c.active.insert(info_hash);
        }
        Pending::Announce {
            info_hash,
            sent_at: now,
        }
    }

    /// Draws a scrape and writes its text to `self.text`.
    fn scrape(&mut self, _i: usize, now: Instant) -> Pending {
        let n = self.workload.sample_scrape_len(&mut self.rng);
        let mut hashes = std::mem::take(&mut self.hashes);
        hashes.clear();
        for _ in 0..n {
            let rank = self.workload.sample_torrent(&mut self.rng);
            let hash = self.workload.info_hash(rank);
            // The tracker answers a torrent named twice once, as a client asks.
            if !hashes.contains(&hash) {
                hashes.push(hash);
            }
        }
        let asked = hashes.len();
        let filter = hashes.iter().fold(0u128, |bits, h| bits | hash_bit(h));
        let message = InMessage::Scrape(ScrapeRequest::InfoHashes(hashes));
        self.text.clear();
        write_in_message(&message, &mut self.text);
        if let InMessage::Scrape(ScrapeRequest::InfoHashes(hashes)) = message {
            self.hashes = hashes;
        }
        Pending::Scrape {
            filter,
            asked,
            sent_at: now,
        }
    }

    /// Writes what is pending on connection `i`, until done or the socket is full.
    fn write(&mut self, i: usize) -> Result<(), String> {
        let Some(c) = self.connections.get_mut(i) else {
            return Ok(());
        };
        let Some(stream) = c.stream.as_mut() else {
            return Ok(());
        };
        if c.phase == Phase::Connecting {
            return Ok(());
        }
        if let Some(tls) = c.tls.as_mut() {
            write_through_tls(stream, tls, &c.out, &mut c.written)?;
        } else {
            while c.written < c.out.len() {
                let pending = c.out.get(c.written..).unwrap_or_default();
                match stream.write(pending) {
                    Ok(0) => return Err("write: closed".to_string()),
                    Ok(n) => c.written += n,
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => return Err(format!("write: {err}")),
                }
            }
        }
        if c.written == c.out.len() {
            c.out.clear();
            c.written = 0;
        } else if c.written > 64 * 1024 {
            c.out.drain(..c.written);
            c.written = 0;
        }
        Ok(())
    }
}

impl LoadWorker for Worker {
    fn run(self, start: Instant, end: Instant) -> anyhow::Result<()> {
        self.drive(start, end)
    }
}
