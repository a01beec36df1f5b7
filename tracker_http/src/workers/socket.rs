//! Socket worker: accepts connections on its listener, hands what it reads to each
//! connection's HTTP session (`tracker_http_protocol::session`: parsing, the pipeline,
//! answers in request order, keep-alive, refusals, lost answers), answers what needs no
//! swarm (the index page, failures), forwards announces and scrapes to the request
//! workers in batches, and gives the answers back to the sessions, which hand them out
//! to be written in request order.
//!
//! # What one client can hold
//! - A place among `http.max_connections` (whole tracker), and among the
//!   `http.max_connections_per_ip` of its address (IPv4 address, IPv6 /64; whole
//!   tracker); one more is closed at once.
//! - A read buffer of at most `http.max_request_bytes` plus one read: a larger request
//!   head is answered 431 and the connection closed.
//! - At most `http.max_pipelined_requests` requests waiting for answers; further
//!   requests stay unread in the kernel until answers have gone out (TCP flow control
//!   then slows the client down, not the tracker).
//! - Answers: no further request is parsed while the answers held for it plus its
//!   unsent bytes (shared full-scrape bodies counted whole) reach
//!   `http.max_outgoing_bytes_per_connection`, and nothing is read while any byte is
//!   unsent; one answer always goes out when nothing else waits.
//! - Time: a connection that completes no request and takes no answer for
//!   `http.idle_timeout_secs` is closed, whether it is idle, sends a request byte by
//!   byte, or reads nothing.
//!
//! # Private mode
//! Every announce needs a known passkey in its path (and a peer id on the client allow
//! list); so does every scrape, full scrapes included, when `scrape_requires_passkey`.
//! A refused request is answered with a `failure reason` naming the cause, counted, and
//! never sent to a request worker: it is stored nowhere. An accepted announce carries
//! its passkey and counters to its request worker, which credits them. In public mode a
//! passkey in the path is ignored.

use std::io::ErrorKind;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use tracker_common::net::address_limit::{AddressLimit, AddressPermit};
use tracker_common::net::shared_bytes::{SharedBodies, write_round_shared};
use tracker_common::net::tls::SharedServerConfig;
use tracker_common::observe::statistics::{
    self, Family, RateLimitedWarning, ResponseKind, SocketCounters, Statistics, add,
};
use tracker_common::private::accounting::AccountInfo;
use tracker_common::private::passkey::{PrivateCheck, Refusal};
use tracker_common::runtime::channel::{WeightedReceiver, WeightedSender};
use tracker_common::runtime::request_worker::{RequestBatch, RequestOutbox};
use tracker_common::runtime::supervisor::ShutdownFlag;
use tracker_common::swarm::access_list::AccessListCache;
use tracker_common::swarm::full_scrape::{Ask, FullScrapeSettings, FullScrapes, ScrapeFile};
use tracker_common::swarm::routing::ShardRouter;
use tracker_common::swarm::scrape::{PendingScrapes, ScrapePart, ScrapeRoute, route_scrape};
use tracker_common::swarm::{AnnounceCounts, AnnounceParams, NumWantPolicy, ScrapeCounts};
use tracker_http_protocol::session::{Answer, Answered, Event, Received, Session, SessionLimits};
use tracker_http_protocol::{
    AnnounceRequest, AnnounceResponse, InfoHash, Request, RequestKind, RequestLimits,
    ScrapeResponse, write_failure_body, write_http_head, write_http_response,
};

use crate::messages::{ConnRef, HttpRequest, HttpResponse, HttpResponses};
use crate::proxy::TrustedProxies;
use tracker_common::net::ready::ReadyQueue;
use tracker_common::net::slots::Slots;
use tracker_common::net::transport::{Accepted, Linger, Transport, accept_one, linger, read_round};
use tracker_common::runtime::request_worker::PeerRange;

/// Token of the listening socket.
const LISTENER_TOKEN: Token = Token(usize::MAX - 1);
/// Token of the waker that request workers use after sending responses.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX - 2);
/// A split scrape whose parts have not all come back by then is dropped.
const PENDING_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request whose answer has not come by then (a request worker dropped it on a full
/// channel, or its split scrape expired) is answered "overloaded": seen unanswered at
/// the head of its pipeline at two housekeeping rounds this far apart, so within this
/// plus two rounds (a second each) of being asked (see `Session::expire`).
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// Connections accepted per wake-up, so that a connect flood cannot starve the others.
const MAX_ACCEPTS_PER_ROUND: usize = 256;

const ERR_NOT_ALLOWED: &str = "info hash not allowed";
const ERR_FULL_SCRAPE: &str = "full scrape is not served: name the info_hash of each torrent";
const ERR_OVERLOADED: &str = "tracker overloaded, try again later";

/// Settings a socket worker needs from the config.
#[derive(Clone, Debug)]
pub(crate) struct SocketWorkerSettings {
    pub(crate) max_request_bytes: usize,
    pub(crate) max_pipelined_requests: usize,
    /// No request is parsed while a connection's answers held and unsent reach it.
    pub(crate) max_outgoing_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_scrape_torrents: usize,
    pub(crate) max_pending_scrapes: usize,
    pub(crate) poll_timeout: Duration,
    pub(crate) numwant: NumWantPolicy,
    pub(crate) interval: u32,
    pub(crate) min_interval: u32,
    pub(crate) trust_client_ip: bool,
    pub(crate) proxies: TrustedProxies,
    /// Shared rather than owned, so that each parsing round takes it without a copy.
    pub(crate) address_header: Arc<str>,
    /// The tracker's port, for the index page.
    pub(crate) port: u16,
    /// Most torrents of a full scrape; 0 refuses them.
    pub(crate) full_scrape_max_torrents: usize,
    /// How long a full scrape's answer is reused.
    pub(crate) full_scrape_cache: Duration,
}

/// Counts only the HTTP tracker keeps.
#[derive(Debug, Default)]
pub(crate) struct HttpCounters {
    /// Connections open now, over all socket workers (the count the metrics read).
    pub(crate) open: Arc<AtomicUsize>,
    /// Connections closed at once because `http.max_connections` were open.
    pub(crate) refused: AtomicU64,
    /// Connections closed at once because their address had
    /// `http.max_connections_per_ip` open.
    pub(crate) refused_per_ip: AtomicU64,
    /// Connections closed for being idle too long.
    pub(crate) timed_out: AtomicU64,
}

/// One socket worker and everything it owns.
pub(crate) struct SocketWorker {
    pub(crate) index: usize,
    pub(crate) listener: TcpListener,
    pub(crate) poll: Poll,
    pub(crate) request_senders: Vec<WeightedSender<RequestBatch<HttpRequest>>>,
    pub(crate) response_receiver: WeightedReceiver<HttpResponses>,
    pub(crate) router: ShardRouter,
    pub(crate) access_list: AccessListCache,
    pub(crate) settings: SocketWorkerSettings,
    pub(crate) statistics: Arc<Statistics>,
    pub(crate) http_counters: Arc<HttpCounters>,
    /// Open connections per client address, shared by all socket workers.
    pub(crate) per_address: Arc<AddressLimit>,
    /// The TLS config in force, when the port speaks TLS.
    pub(crate) tls: Option<SharedServerConfig>,
    /// Private mode's check; `None` in public mode.
    pub(crate) private: Option<PrivateCheck>,
    pub(crate) shutdown: ShutdownFlag,
}

/// What an answer still waiting for a request worker needs to be written.
#[derive(Debug)]
enum Awaited {
    Announce {
        compact: bool,
        no_peer_id: bool,
        external_ip: IpAddr,
    },
    Scrape {
        hashes: Vec<InfoHash>,
    },
    /// The full scrape in flight.
    FullScrape,
}

/// A request sent on to the request workers, with what its answer needs.
#[derive(Debug)]
struct Awaiting {
    /// Its sequence number in the connection's session.
    seq: u64,
    keep_alive: bool,
    awaited: Awaited,
}

struct Connection {
    stream: Transport,
    /// Its place under `http.max_connections_per_ip`, given back when it is dropped.
    _address_permit: AddressPermit,
    /// Closing after its last answer (see [`linger`]).
    linger: Linger,
    /// The TCP peer, IPv4-mapped addresses as IPv4.
    peer_ip: IpAddr,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    written: usize,
    /// Shared bodies queued between the write buffer's bytes.
    shared: SharedBodies,
    /// The HTTP protocol's state: the pipeline and its answers, keep-alive, closing.
    session: Session,
    /// Its requests sent on to the request workers whose answers its session has not
    /// handed out yet (at most the pipeline's bound): what each answer needs. One given
    /// an "overloaded" failure stays until that is handed out, so that a late answer
    /// can still replace it.
    awaiting: Vec<Awaiting>,
    last_progress: Instant,
    /// The client closed its side: read no more.
    peer_closed: bool,
    /// Reading stopped before the socket was drained (a full pipeline, read buffer or
    /// unsent answers): read again once the answers are out.
    read_paused: bool,
}

impl Connection {
    /// Bytes queued for it (the buffer's and shared bodies') not written yet.
    fn unsent(&self) -> usize {
        self.write_buf
            .len()
            .saturating_sub(self.written)
            .saturating_add(self.shared.unsent())
    }

    /// Takes what the answer to request `seq` needs, if it is awaited.
    fn take_awaiting(&mut self, seq: u64) -> Option<Awaiting> {
        let index = self.awaiting.iter().position(|a| a.seq == seq)?;
        Some(self.awaiting.swap_remove(index))
    }
}

/// The connection `conn` names, if it is still open.
fn get_current(slots: &mut Slots<Connection>, conn: ConnRef) -> Option<&mut Connection> {
    slots.get_current(conn.slot as usize, conn.generation)
}

/// Remembers what the answer to request `conn` needs, while a request worker makes it.
fn await_answer(slots: &mut Slots<Connection>, conn: ConnRef, keep_alive: bool, awaited: Awaited) {
    if let Some(c) = get_current(slots, conn) {
        c.awaiting.push(Awaiting {
            seq: conn.seq,
            keep_alive,
            awaited,
        });
    }
}

/// The worker's loop state, apart from sockets and channels.
struct State {
    slots: Slots<Connection>,
    outbox: RequestOutbox<HttpRequest>,
    pending_scrapes: PendingScrapes<(ConnRef, usize)>,
    accept_warning: RateLimitedWarning,
    /// Accepting stopped for want of descriptors (EMFILE): the waiting connections raise
    /// no new edge, so accepting is retried when a connection closes and at
    /// housekeeping.
    accept_blocked: bool,
    /// Retry accepting at the next round (a descriptor was freed while blocked).
    retry_accept: bool,
    /// Reused for answer bodies.
    body: Vec<u8>,
    /// Connections whose reading stopped before the socket was drained (a full pipeline
    /// or read buffer, or their part of a turn used) and should be read again once
    /// their answers are out, one turn each.
    resume: ReadyQueue,
    /// The cached full scrape, shared by its answers, and the one being gathered.
    full_scrape: FullScrapes<ConnRef>,
}

/// A full scrape's body: bencoded, as a scrape of those torrents is answered.
fn write_full_scrape_body(files: &[ScrapeFile], out: &mut Vec<u8>) {
    ScrapeResponse { files }.write_body(out);
}

impl SocketWorker {
    /// Runs until shutdown.
    ///
    /// # Errors
    /// Polling failed, or a request worker is gone while no shutdown was asked for.
    pub(crate) fn run(mut self) -> anyhow::Result<()> {
        self.poll
            .registry()
            .register(&mut self.listener, LISTENER_TOKEN, Interest::READABLE)
            .map_err(|err| anyhow::Error::new(err).context("register listener"))?;
        let mut events = Events::with_capacity(1024);
        // Taken by the outbox below: every request worker sends a part of a full scrape.
        let parts = self.request_senders.len();
        let mut state = State {
            slots: Slots::default(),
            outbox: RequestOutbox::new(self.index, std::mem::take(&mut self.request_senders)),
            pending_scrapes: PendingScrapes::new(
                self.settings.max_pending_scrapes,
                PENDING_SCRAPE_TIMEOUT,
            ),
            accept_warning: RateLimitedWarning::new(Duration::from_secs(10)),
            accept_blocked: false,
            retry_accept: false,
            body: Vec::new(),
            resume: ReadyQueue::default(),
            full_scrape: FullScrapes::new(FullScrapeSettings {
                max_torrents: self.settings.full_scrape_max_torrents,
                parts,
                cache_for: self.settings.full_scrape_cache,
                timeout: PENDING_SCRAPE_TIMEOUT,
                write_body: write_full_scrape_body,
            }),
        };
        let mut last_housekeeping = Instant::now();
        let mut listener_ready = false;

        while !self.shutdown.is_set() {
            // While connections have work left, only look for events, and come back.
            let timeout = if state.resume.is_empty() {
                self.settings.poll_timeout
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(anyhow::Error::new(err).context("poll")),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER_TOKEN => listener_ready = true,
                    WAKER_TOKEN => {}
                    Token(slot) => {
                        if event.is_readable() || event.is_read_closed() {
                            let may_be_closed = event.is_read_closed() || event.is_error();
                            self.read(slot, &mut state, may_be_closed);
                        }
                        if event.is_writable() {
                            self.write(slot, &mut state);
                        }
                    }
                }
            }
            if listener_ready || std::mem::take(&mut state.retry_accept) {
                listener_ready = self.accept(&mut state);
            }
            self.flush_requests(&mut state);
            self.take_responses(&mut state);
            // One turn: each connection with work left reads (at most a chunk) and
            // handles once; one that has more waits for the next turn, after the poll.
            let mut turn = state.resume.turn();
            while let Some(slot) = state.resume.next(&mut turn) {
                // Reading was paused: a FIN may have come meanwhile, its edge consumed.
                self.read(slot, &mut state, true);
            }
            self.flush_requests(&mut state);
            if state.outbox.receiver_gone() && !self.shutdown.is_set() {
                anyhow::bail!("request worker channel closed");
            }
            if last_housekeeping.elapsed() >= Duration::from_secs(1) {
                self.housekeeping(&mut state);
                last_housekeeping = Instant::now();
            }
        }
        Ok(())
    }

    fn counters(&self) -> &SocketCounters {
        self.statistics.socket(self.index)
    }

    /// Accepts waiting connections; returns whether more may be waiting.
    fn accept(&mut self, state: &mut State) -> bool {
        for _ in 0..MAX_ACCEPTS_PER_ROUND {
            let (stream, addr, address_permit) = match accept_one(
                &self.listener,
                &self.http_counters.open,
                self.settings.max_connections,
                &self.per_address,
                self.tls.as_ref(),
                &mut state.accept_warning,
            ) {
                Accepted::Connection(stream, addr, permit) => (stream, addr, permit),
                Accepted::Refused => {
                    self.http_counters.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Accepted::OverAddressLimit => {
                    self.http_counters
                        .refused_per_ip
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Accepted::Skipped => continue,
                Accepted::None => {
                    state.accept_blocked = false;
                    return false;
                }
                Accepted::Blocked => {
                    state.accept_blocked = true;
                    return false;
                }
            };
            let connection = Connection {
                _address_permit: address_permit,
                linger: Linger::default(),
                peer_ip: addr.ip().to_canonical(),
                stream,
                read_buf: Vec::new(),
                write_buf: Vec::new(),
                written: 0,
                shared: SharedBodies::default(),
                session: Session::new(),
                awaiting: Vec::new(),
                last_progress: Instant::now(),
                peer_closed: false,
                read_paused: false,
            };
            let slot = state.slots.insert(connection);
            let registered = state.slots.get_mut(slot).map(|c| {
                self.poll.registry().register(
                    c.stream.socket(),
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )
            });
            if let Some(Err(err)) = registered {
                log::warn!("register connection: {err}");
                self.close(slot, state);
            }
        }
        true
    }

    /// The bounds of a connection's session, with `header` the proxy address header.
    fn session_limits<'h>(&self, header: &'h str) -> SessionLimits<'h> {
        SessionLimits {
            request: RequestLimits {
                max_request_bytes: self.settings.max_request_bytes,
                max_scrape_hashes: self.settings.max_scrape_torrents,
                forwarded_header: (!self.settings.proxies.is_empty()).then_some(header),
            },
            max_pipelined: self.settings.max_pipelined_requests,
            max_queued_bytes: self.settings.max_outgoing_bytes,
        }
    }

    /// Reads what the connection has and handles every whole request in it. Reading
    /// stops early, until the answers are out, while the session takes no request (a
    /// full pipeline, or its byte bound reached), the read buffer holds a request
    /// head's worth, or answers are unsent: a client that sends and never reads holds no
    /// more than that.
    ///
    /// `may_be_closed`: see [`read_round`].
    fn read(&mut self, slot: usize, state: &mut State, may_be_closed: bool) {
        let header = Arc::clone(&self.settings.address_header);
        let limits = self.session_limits(&header);
        let max_request_bytes = self.settings.max_request_bytes;
        let failed = {
            let Some(c) = state.slots.get_mut(slot) else {
                return;
            };
            if !c.session.is_reading() || c.peer_closed {
                c.read_paused = false;
                false
            } else {
                let unsent = c.unsent();
                let blocked = !c.session.wants_input(&limits, unsent) || unsent > 0;
                let before = c.read_buf.len();
                let round = read_round(&mut c.stream, &mut c.read_buf, may_be_closed, |buf| {
                    blocked || buf.len() > max_request_bytes
                });
                add(
                    &self.statistics.socket(self.index).bytes_received,
                    c.read_buf.len().saturating_sub(before) as u64,
                );
                if round.peer_closed {
                    // Whole requests already read are still answered; half a one is
                    // dropped.
                    c.peer_closed = true;
                    c.session.end_of_input();
                }
                c.read_paused = !round.drained;
                round.failed
            }
        };
        if failed {
            self.close(slot, state);
            return;
        }
        self.handle_input(slot, &limits, state);
        self.write(slot, state);
        // Stopped only to parse, and there is room again: read on.
        if let Some(c) = state.slots.get_mut(slot)
            && c.read_paused
            && c.read_buf.len() <= max_request_bytes
            && c.unsent() == 0
            && c.session.wants_input(&limits, 0)
        {
            c.read_paused = false;
            state.resume.push(slot);
        }
    }

    /// Hands the connection's read buffer to its session, one request at a time, and
    /// handles each, as many as the session takes.
    fn handle_input(&mut self, slot: usize, limits: &SessionLimits<'_>, state: &mut State) {
        loop {
            let Some(c) = state.slots.get_mut(slot) else {
                return;
            };
            let Received { consumed, event } = c.session.receive(&c.read_buf, limits, c.unsent());
            c.read_buf.drain(..consumed.min(c.read_buf.len()));
            match event {
                Event::Incomplete | Event::NotReading => {
                    if !c.session.is_reading() {
                        // Nothing more is parsed: what is left is not for the tracker.
                        c.read_buf = Vec::new();
                    }
                    return;
                }
                Event::Request { seq, request } => {
                    c.last_progress = Instant::now();
                    let peer_ip = c.peer_ip;
                    let conn = ConnRef {
                        slot: u32::try_from(slot).unwrap_or(u32::MAX),
                        generation: state.slots.generation(slot),
                        seq,
                    };
                    self.handle_request(request, peer_ip, conn, state);
                }
                Event::Bad(error) => {
                    // The session has queued the refusal; nothing more is parsed.
                    c.read_buf = Vec::new();
                    let peer_ip = c.peer_ip;
                    add(&self.counters().bad_requests, 1);
                    self.counters()
                        .response(ResponseKind::Error, Family::of(peer_ip));
                    log::debug!("bad http request from {peer_ip}: {error:?}");
                    return;
                }
            }
        }
    }

    fn handle_request(
        &mut self,
        request: Request,
        tcp_peer: IpAddr,
        conn: ConnRef,
        state: &mut State,
    ) {
        let keep_alive = request.keep_alive;
        match request.kind {
            RequestKind::Index => {
                let page = index_page(self.settings.port);
                let mut answer = Vec::new();
                write_http_response(
                    &mut answer,
                    200,
                    "OK",
                    "text/plain; charset=utf-8",
                    keep_alive,
                    page.as_bytes(),
                );
                self.ready(conn, None, answer.into(), state);
            }
            RequestKind::Failure(reason) => {
                add(&self.counters().bad_requests, 1);
                self.fail(conn, keep_alive, reason, state);
            }
            RequestKind::Announce(announce) => {
                self.counters()
                    .request(statistics::RequestKind::Announce, Family::of(tcp_peer));
                // The passkey before the access list: a stranger learns nothing about
                // which torrents are served.
                let account = match &mut self.private {
                    None => None,
                    Some(check) => {
                        match check.check_announce(announce.passkey, &announce.peer_id) {
                            Ok(passkey) => Some(AccountInfo {
                                passkey,
                                uploaded: announce.uploaded,
                                downloaded: announce.downloaded,
                            }),
                            Err(cause) => {
                                self.refuse(conn, keep_alive, cause, tcp_peer, state);
                                return;
                            }
                        }
                    }
                };
                if !self.access_list.allows(&announce.info_hash) {
                    add(&self.counters().access_denied, 1);
                    self.fail(conn, keep_alive, ERR_NOT_ALLOWED, state);
                    return;
                }
                let client_ip = self
                    .settings
                    .proxies
                    .client_ip(tcp_peer, request.forwarded_for.as_deref());
                self.route_announce(&announce, client_ip, account, conn, keep_alive, state);
            }
            RequestKind::Scrape(scrape) => {
                self.counters()
                    .request(statistics::RequestKind::Scrape, Family::of(tcp_peer));
                if let Some(check) = &mut self.private
                    && let Err(cause) = check.check_scrape(scrape.passkey)
                {
                    self.refuse(conn, keep_alive, cause, tcp_peer, state);
                    return;
                }
                if scrape.info_hashes.is_empty() {
                    if self.settings.full_scrape_max_torrents == 0 {
                        self.fail(conn, keep_alive, ERR_FULL_SCRAPE, state);
                    } else {
                        self.full_scrape(conn, keep_alive, state);
                    }
                    return;
                }
                self.route_scrape(scrape.info_hashes, conn, keep_alive, state);
            }
        }
    }

    /// Answers a request private mode refused, with the cause as its failure reason.
    fn refuse(
        &mut self,
        conn: ConnRef,
        keep_alive: bool,
        cause: Refusal,
        tcp_peer: IpAddr,
        state: &mut State,
    ) {
        self.statistics.private().refused(cause);
        log::debug!("refused http request from {tcp_peer}: {}", cause.message());
        self.fail(conn, keep_alive, cause.message(), state);
    }

    fn route_announce(
        &mut self,
        announce: &AnnounceRequest,
        client_ip: IpAddr,
        account: Option<AccountInfo>,
        conn: ConnRef,
        keep_alive: bool,
        state: &mut State,
    ) {
        // The `ip` parameter is believed only behind a relay the operator trusts, and
        // only within the family the client came from (its peers are of that family).
        let peer_ip = match (self.settings.trust_client_ip, announce.ip) {
            (true, Some(claimed)) if claimed.is_ipv4() == client_ip.is_ipv4() => claimed,
            _ => client_ip,
        };
        let params = AnnounceParams {
            info_hash: announce.info_hash,
            peer_id: announce.peer_id,
            port: announce.port,
            bytes_left: announce.left,
            event: announce.event,
            numwant: self.settings.numwant.resolve(announce.numwant),
        };
        let shard = self.router.shard(&announce.info_hash);
        let awaited = Awaited::Announce {
            compact: announce.compact,
            no_peer_id: announce.no_peer_id,
            external_ip: client_ip,
        };
        await_answer(&mut state.slots, conn, keep_alive, awaited);
        self.push_request(
            shard,
            HttpRequest::Announce {
                params,
                peer_ip,
                conn,
                account,
            },
            state,
        );
    }

    fn route_scrape(
        &mut self,
        hashes: Vec<InfoHash>,
        conn: ConnRef,
        keep_alive: bool,
        state: &mut State,
    ) {
        let access_list = &mut self.access_list;
        let route = route_scrape(&hashes, &self.router, |hash| access_list.allows(hash));
        let parts: Vec<(usize, ScrapePart, Option<u64>)> = match route {
            ScrapeRoute::Nothing => {
                let counts = vec![ScrapeCounts::default(); hashes.len()];
                let answer = self.scrape_answer(&hashes, &counts, keep_alive, state);
                self.ready(conn, Some(ResponseKind::Scrape), answer.into(), state);
                return;
            }
            ScrapeRoute::One { shard, part } => vec![(shard, part, None)],
            ScrapeRoute::Split(parts) => {
                let id = state.pending_scrapes.insert(
                    (conn, hashes.len()),
                    hashes.len(),
                    parts.len(),
                    Instant::now(),
                );
                let Some(id) = id else {
                    add(&self.counters().dropped, 1);
                    self.fail(conn, keep_alive, ERR_OVERLOADED, state);
                    return;
                };
                parts
                    .into_iter()
                    .map(|(shard, part)| (shard, part, Some(id)))
                    .collect()
            }
        };
        await_answer(
            &mut state.slots,
            conn,
            keep_alive,
            Awaited::Scrape { hashes },
        );
        for (shard, part, pending_id) in parts {
            self.push_request(
                shard,
                HttpRequest::Scrape {
                    part,
                    pending_id,
                    conn,
                },
                state,
            );
        }
    }

    /// Answers a full scrape from the cache, or waits for the one in flight, or starts
    /// one: every request worker sends its busiest torrents.
    fn full_scrape(&mut self, conn: ConnRef, keep_alive: bool, state: &mut State) {
        await_answer(&mut state.slots, conn, keep_alive, Awaited::FullScrape);
        match state.full_scrape.ask(conn, Instant::now()) {
            // Written with the answers before it, once the request is parsed.
            Ask::Cached { waiter, body } => self.give_full_scrape(waiter, &body, state),
            Ask::Joined => {}
            Ask::Start { limit } => {
                for shard in 0..state.outbox.num_shards() {
                    self.push_request(shard, HttpRequest::FullScrape { limit }, state);
                }
            }
        }
    }

    /// Adds one request worker's part; once all are in, answers everyone waiting with
    /// the one body, now cached.
    fn full_scrape_part(&mut self, files: &[ScrapeFile], state: &mut State) {
        if let Some((body, waiting)) = state.full_scrape.part(files, Instant::now()) {
            for conn in waiting {
                self.answer_full_scrape(conn, &body, state);
            }
        }
    }

    /// Gives `conn` the head of a full scrape's answer and a reference to its body, and
    /// writes what is ready.
    fn answer_full_scrape(&mut self, conn: ConnRef, body: &Arc<[u8]>, state: &mut State) {
        self.give_full_scrape(conn, body, state);
        self.write(conn.slot as usize, state);
    }

    /// Gives `conn` the head of a full scrape's answer and a reference to its body.
    fn give_full_scrape(&mut self, conn: ConnRef, body: &Arc<[u8]>, state: &mut State) {
        let Some(awaiting) =
            get_current(&mut state.slots, conn).and_then(|c| c.take_awaiting(conn.seq))
        else {
            return;
        };
        let answer = full_scrape_answer(awaiting.keep_alive, body);
        self.ready(conn, Some(ResponseKind::Scrape), answer, state);
    }

    /// Answers with a bencoded `failure reason`, status 200 as clients expect.
    fn fail(&mut self, conn: ConnRef, keep_alive: bool, reason: &str, state: &mut State) {
        state.body.clear();
        write_failure_body(reason, &mut state.body);
        let answer = ok_answer(keep_alive, &state.body);
        self.ready(conn, Some(ResponseKind::Error), answer.into(), state);
    }

    /// Gives request `conn` its answer, which its session hands out in request order;
    /// `kind` is what it counts as (`None`: the index page). An answer that replaces an
    /// "overloaded" failure was counted as that failure.
    fn ready(
        &mut self,
        conn: ConnRef,
        kind: Option<ResponseKind>,
        answer: Answer,
        state: &mut State,
    ) {
        let Some(c) = get_current(&mut state.slots, conn) else {
            return;
        };
        let answered = c.session.answer(conn.seq, answer);
        if let (Answered::Queued, Some(kind)) = (answered, kind) {
            let family = Family::of(c.peer_ip);
            self.counters().response(kind, family);
        }
    }

    fn push_request(&mut self, shard: usize, request: HttpRequest, state: &mut State) {
        let refused = state.outbox.push(shard, request);
        self.refused(refused, state);
    }

    fn flush_requests(&mut self, state: &mut State) {
        let refused = state.outbox.flush();
        self.refused(refused, state);
    }

    /// Requests a full channel refused: counted, and each answered with an "overloaded"
    /// failure, so that no connection waits for an answer that will not come.
    fn refused(&mut self, requests: Vec<HttpRequest>, state: &mut State) {
        add(&self.counters().dropped, requests.len() as u64);
        add(&self.counters().dropped_full_channel, requests.len() as u64);
        for request in requests {
            match request {
                HttpRequest::Announce { conn, .. } | HttpRequest::Scrape { conn, .. } => {
                    self.answer_overloaded(conn, state);
                }
                // Its waiters are answered when it times out.
                HttpRequest::FullScrape { .. } => {}
            }
        }
    }

    /// Answers "overloaded" the requests of each connection whose head request has waited
    /// past [`ANSWER_DEADLINE`] (its session keeps the deadline): its answer was lost,
    /// and those behind it, which could only be written after it, get the same failure
    /// rather than wait for the idle timeout. (An answer that comes after all replaces
    /// the failure if that is not written yet.) Counted where they were lost (a request
    /// worker's dropped responses), and as error responses here.
    fn answer_lost(&mut self, now: Instant, state: &mut State) {
        let counters = self.statistics.socket(self.index);
        for (slot, c) in state.slots.iter_mut() {
            let lost = c.session.expire(now, ANSWER_DEADLINE, ERR_OVERLOADED);
            if lost > 0 {
                let family = Family::of(c.peer_ip);
                for _ in 0..lost {
                    counters.response(ResponseKind::Error, family);
                }
                state.resume.push(slot);
            }
        }
    }

    /// Gives `conn`, still unanswered, an "overloaded" failure.
    fn answer_overloaded(&mut self, conn: ConnRef, state: &mut State) {
        let Some(c) = get_current(&mut state.slots, conn) else {
            return;
        };
        if c.session.overloaded(conn.seq, ERR_OVERLOADED) {
            let family = Family::of(c.peer_ip);
            self.counters().response(ResponseKind::Error, family);
            state.resume.push(conn.slot as usize);
        }
    }

    fn take_responses(&mut self, state: &mut State) {
        loop {
            let batch = match self.response_receiver.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            for response in &batch.responses {
                match response {
                    HttpResponse::Announce {
                        conn,
                        counts,
                        peers,
                    } => self.answer_announce(*conn, *counts, *peers, &batch, state),
                    HttpResponse::Scrape {
                        conn,
                        pending_id: None,
                        counts,
                    } => {
                        let counts: Vec<ScrapeCounts> = counts.iter().map(|(_, c)| *c).collect();
                        self.answer_scrape(*conn, &counts, state);
                    }
                    HttpResponse::Scrape {
                        pending_id: Some(id),
                        counts,
                        ..
                    } => {
                        if let Some(((conn, _), all)) = state.pending_scrapes.merge(*id, counts) {
                            self.answer_scrape(conn, &all, state);
                        }
                    }
                    HttpResponse::FullScrape { files } => self.full_scrape_part(files, state),
                }
            }
        }
    }

    fn answer_announce(
        &mut self,
        conn: ConnRef,
        counts: AnnounceCounts,
        peers: PeerRange,
        batch: &HttpResponses,
        state: &mut State,
    ) {
        let Some(Awaiting {
            keep_alive,
            awaited:
                Awaited::Announce {
                    compact,
                    no_peer_id,
                    external_ip,
                },
            ..
        }) = get_current(&mut state.slots, conn).and_then(|c| c.take_awaiting(conn.seq))
        else {
            return;
        };
        let (peers_v4, peers_v6) = batch.peers.get(peers);
        let response = AnnounceResponse {
            interval: self.settings.interval,
            min_interval: self.settings.min_interval,
            complete: counts.seeders,
            incomplete: counts.leechers,
            peers_v4,
            peers_v6,
            compact,
            no_peer_id,
            external_ip: Some(external_ip),
        };
        state.body.clear();
        response.write_body(&mut state.body);
        let answer = ok_answer(keep_alive, &state.body);
        self.ready(conn, Some(ResponseKind::Announce), answer.into(), state);
        self.write(conn.slot as usize, state);
    }

    fn answer_scrape(&mut self, conn: ConnRef, counts: &[ScrapeCounts], state: &mut State) {
        let Some(Awaiting {
            keep_alive,
            awaited: Awaited::Scrape { hashes },
            ..
        }) = get_current(&mut state.slots, conn).and_then(|c| c.take_awaiting(conn.seq))
        else {
            return;
        };
        let answer = self.scrape_answer(&hashes, counts, keep_alive, state);
        self.ready(conn, Some(ResponseKind::Scrape), answer.into(), state);
        self.write(conn.slot as usize, state);
    }

    fn scrape_answer(
        &self,
        hashes: &[InfoHash],
        counts: &[ScrapeCounts],
        keep_alive: bool,
        state: &mut State,
    ) -> Vec<u8> {
        let files: Vec<(InfoHash, ScrapeCounts)> = hashes
            .iter()
            .zip(
                counts
                    .iter()
                    .chain(std::iter::repeat(&ScrapeCounts::default())),
            )
            .map(|(hash, counts)| (*hash, *counts))
            .collect();
        state.body.clear();
        ScrapeResponse { files: &files }.write_body(&mut state.body);
        ok_answer(keep_alive, &state.body)
    }

    /// Moves the answers the session hands out (those at the head of the pipeline, in
    /// request order) into the write buffer, writes what the socket takes, and closes
    /// the connection when it is done.
    fn write(&mut self, slot: usize, state: &mut State) {
        let failed;
        let mut done = false;
        let mut resume = false;
        {
            let Some(c) = state.slots.get_mut(slot) else {
                return;
            };
            let had_unsent = c.unsent() > 0;
            let mut popped = 0usize;
            let counters = self.statistics.socket(self.index);
            while let Some(output) = c.session.next_output() {
                popped += 1;
                let answer = output.answer;
                if c.write_buf.is_empty() {
                    c.write_buf = answer.bytes;
                    c.written = 0;
                } else {
                    c.write_buf.extend_from_slice(&answer.bytes);
                }
                if let Some(body) = answer.shared {
                    c.shared.push(c.write_buf.len(), body);
                }
            }
            if popped > 0 {
                // What an answer handed out (a real one, or the failure that stood for
                // it) would have needed is needed no more.
                let session = &c.session;
                c.awaiting.retain(|a| session.keep_alive(a.seq).is_some());
            }
            let round =
                write_round_shared(&mut c.stream, &c.write_buf, &mut c.written, &mut c.shared);
            add(&counters.bytes_sent, round.wrote as u64);
            failed = round.failed;
            if round.wrote > 0 {
                c.last_progress = Instant::now();
            }
            if round.all_out {
                // Everything out: an idle keep-alive connection keeps no buffer. The next
                // answer moves in without a copy, and a request of a few hundred bytes
                // costs one small allocation.
                c.write_buf = Vec::new();
                c.written = 0;
                if c.read_buf.is_empty() {
                    c.read_buf = Vec::new();
                }
                if c.awaiting.is_empty() {
                    c.awaiting = Vec::new();
                }
                if c.session.is_finished() {
                    // Input still unread would turn the close into a reset that can
                    // destroy the last answer (a 400 or 431): linger unless the client
                    // has closed its side.
                    done = c.peer_closed || linger(&mut c.stream, &mut c.linger);
                }
            }
            // Reading and parsing go on once answers have made room in the pipeline
            // (requests may wait in the read buffer), or once unsent answers, which held
            // reading (and, past the byte bound, parsing) back, are out. Either is
            // progress, so resuming cannot loop.
            let all_out = c.unsent() == 0;
            let held_back = c.read_paused || !c.read_buf.is_empty();
            if all_out && c.session.is_reading() && (popped > 0 || (had_unsent && held_back)) {
                resume = true;
            }
        }
        if failed || done {
            self.close(slot, state);
        } else if resume {
            state.resume.push(slot);
        }
    }

    fn close(&mut self, slot: usize, state: &mut State) {
        if let Some(mut c) = state.slots.remove(slot) {
            let _ = self.poll.registry().deregister(c.stream.socket());
            self.http_counters.open.fetch_sub(1, Ordering::AcqRel);
            // A descriptor is freed: a connection waiting in the backlog may now be taken.
            state.retry_accept |= state.accept_blocked;
        }
    }

    /// Closes connections that made no progress for the idle timeout and lingering ones
    /// whose time is up, drops split scrapes whose parts did not all come back, and has
    /// accepting retried if it was blocked (descriptors another worker freed).
    fn housekeeping(&mut self, state: &mut State) {
        let now = Instant::now();
        let timeout = self.settings.idle_timeout;
        // (slot, whether it timed out rather than lingered its time)
        let idle: Vec<(usize, bool)> = state
            .slots
            .iter_mut()
            .filter_map(|(slot, c)| {
                if c.linger.started() {
                    c.linger.expired(now).then_some((slot, false))
                } else {
                    let idle = now.saturating_duration_since(c.last_progress) > timeout;
                    idle.then_some((slot, true))
                }
            })
            .collect();
        for (slot, timed_out) in idle {
            if timed_out {
                self.http_counters.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            self.close(slot, state);
        }
        state.retry_accept |= state.accept_blocked;
        state.pending_scrapes.expire(now);
        self.answer_lost(now, state);
        // A full scrape with a part lost to a full channel: its waiters get the failure
        // that the lost requests of announces and scrapes get.
        for conn in state.full_scrape.expire(now) {
            self.answer_overloaded(conn, state);
        }
    }
}

/// A 200 answer with a bencoded (or plain) `body`, ready to write.
fn ok_answer(keep_alive: bool, body: &[u8]) -> Vec<u8> {
    let mut answer = Vec::with_capacity(body.len() + 128);
    write_http_response(&mut answer, 200, "OK", "text/plain", keep_alive, body);
    answer
}

/// A 200 answer whose body is a full scrape's shared one: only the head is written
/// here.
fn full_scrape_answer(keep_alive: bool, body: &Arc<[u8]>) -> Answer {
    let mut head = Vec::with_capacity(128);
    write_http_head(&mut head, 200, "OK", "text/plain", keep_alive, body.len());
    Answer {
        bytes: head,
        shared: Some(Arc::clone(body)),
    }
}

/// The plain page `GET /` answers.
fn index_page(port: u16) -> String {
    format!(
        "shoal BitTorrent tracker (HTTP)\n\n\
         Announce URL: http://<this host>:{port}/announce\n\
         Scrape URL:   http://<this host>:{port}/scrape\n"
    )
}
