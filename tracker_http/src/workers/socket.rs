//! The HTTP protocol of a socket worker, which the TCP front
//! (`tracker_common::net::front`) runs: the front accepts, reads, writes and closes; this
//! hands what it reads to each connection's HTTP session (`tracker_http_protocol::session`: parsing, the pipeline,
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
//!   unsent; one answer always goes out when nothing else waits. Over the whole
//!   tracker, once `http.max_outgoing_bytes_total` bytes wait to be sent, a connection
//!   with anything held or unsent parses no further request until its bytes are out.
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

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;

use tracker_common::net::front::{Conn, Front, Idle, Protocol, Written};
use tracker_common::net::rate_limit::{Limited, RateLimiter};
use tracker_common::observe::statistics::{
    self, Family, ResponseKind, SocketCounters, Statistics, add,
};
use tracker_common::private::accounting::AccountInfo;
use tracker_common::private::passkey::{AnnounceFacts, PrivateCheck, Refusal};
use tracker_common::runtime::channel::{WeightedReceiver, WeightedSender};
use tracker_common::runtime::request_worker::{PeerRange, RequestBatch, RequestOutbox};
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

/// A split scrape whose parts have not all come back by then is dropped.
const PENDING_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request whose answer has not come by then (a request worker dropped it on a full
/// channel, or its split scrape expired) is answered "overloaded": seen unanswered at
/// the head of its pipeline at two housekeeping rounds this far apart, so within this
/// plus two rounds (a second each) of being asked (see `Session::expire`).
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

const ERR_NOT_ALLOWED: &str = "info hash not allowed";
const ERR_FULL_SCRAPE: &str = "full scrape is not served: name the info_hash of each torrent";
const ERR_OVERLOADED: &str = "tracker overloaded, try again later";
const ERR_RATE_LIMITED: &str = "rate limited";

/// Settings a socket worker needs from the config.
#[derive(Clone, Debug)]
pub(crate) struct SocketWorkerSettings {
    pub(crate) max_request_bytes: usize,
    pub(crate) max_pipelined_requests: usize,
    /// No request is parsed while a connection's answers held and unsent reach it.
    pub(crate) max_outgoing_bytes: usize,
    /// Over the whole tracker: once this many bytes wait to be sent, a connection with
    /// anything held or unsent parses no further request.
    pub(crate) max_outgoing_bytes_total: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_scrape_torrents: usize,
    pub(crate) max_pending_scrapes: usize,
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

/// The HTTP protocol of one socket worker, and everything it owns.
pub(crate) struct SocketWorker {
    index: usize,
    outbox: RequestOutbox<HttpRequest>,
    response_receiver: WeightedReceiver<HttpResponses>,
    router: ShardRouter,
    access_list: AccessListCache,
    settings: SocketWorkerSettings,
    statistics: Arc<Statistics>,
    /// Private mode's check; `None` in public mode.
    private: Option<PrivateCheck>,
    pending_scrapes: PendingScrapes<(ConnRef, usize)>,
    /// Reused for answer bodies.
    body: Vec<u8>,
    /// The cached full scrape, shared by its answers, and the one being gathered.
    full_scrape: FullScrapes<ConnRef>,
    /// The rate limits, shared by every socket worker; `None` when they are off.
    rate_limiter: Option<Arc<RateLimiter>>,
}

/// What a socket worker is made of.
pub(crate) struct SocketWorkerParts {
    pub(crate) index: usize,
    pub(crate) request_senders: Vec<WeightedSender<RequestBatch<HttpRequest>>>,
    pub(crate) response_receiver: WeightedReceiver<HttpResponses>,
    pub(crate) router: ShardRouter,
    pub(crate) access_list: AccessListCache,
    pub(crate) settings: SocketWorkerSettings,
    pub(crate) statistics: Arc<Statistics>,
    pub(crate) private: Option<PrivateCheck>,
    pub(crate) rate_limiter: Option<Arc<RateLimiter>>,
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

/// What the HTTP protocol keeps for a connection.
pub(crate) struct HttpConn {
    /// The HTTP protocol's state: the pipeline and its answers, keep-alive, closing.
    session: Session,
    /// Its requests sent on to the request workers whose answers its session has not
    /// handed out yet (at most the pipeline's bound): what each answer needs. One given
    /// an "overloaded" failure stays until that is handed out, so that a late answer
    /// can still replace it.
    awaiting: Vec<Awaiting>,
    /// When it last completed a request or took answer bytes.
    last_progress: Instant,
}

impl HttpConn {
    /// Takes what the answer to request `seq` needs, if it is awaited.
    fn take_awaiting(&mut self, seq: u64) -> Option<Awaiting> {
        let index = self.awaiting.iter().position(|a| a.seq == seq)?;
        Some(self.awaiting.swap_remove(index))
    }
}

/// The connection `conn` names, if it is still open.
fn current(front: &mut Front<HttpConn>, conn: ConnRef) -> Option<&mut Conn<HttpConn>> {
    front.get_current(conn.slot as usize, conn.generation)
}

/// Remembers what the answer to request `conn` needs, while a request worker makes it.
fn await_answer(front: &mut Front<HttpConn>, conn: ConnRef, keep_alive: bool, awaited: Awaited) {
    if let Some(c) = current(front, conn) {
        c.state.awaiting.push(Awaiting {
            seq: conn.seq,
            keep_alive,
            awaited,
        });
    }
}

/// A full scrape's body: bencoded, as a scrape of those torrents is answered.
fn write_full_scrape_body(files: &[ScrapeFile], out: &mut Vec<u8>) {
    ScrapeResponse { files }.write_body(out);
}

impl Protocol for SocketWorker {
    type State = HttpConn;

    fn open(&mut self, _peer_ip: IpAddr, now: Instant) -> HttpConn {
        HttpConn {
            session: Session::new(),
            awaiting: Vec::new(),
            last_progress: now,
        }
    }

    /// Reads what the connection has and handles every whole request in it. Reading
    /// stops early, until the answers are out, while the session takes no request (a
    /// full pipeline, or its byte bound reached), the read buffer holds a request
    /// head's worth, or answers are unsent: a client that sends and never reads holds no
    /// more than that.
    fn readable(&mut self, front: &mut Front<HttpConn>, slot: usize, may_be_closed: bool) {
        let header = Arc::clone(&self.settings.address_header);
        let limits = self.session_limits(&header, front);
        let max_request_bytes = self.settings.max_request_bytes;
        let Some(c) = front.get_mut(slot) else {
            return;
        };
        if !c.state.session.is_reading() || c.peer_closed {
            c.read_paused = false;
        } else {
            let unsent = c.out.unsent();
            let blocked = !c.state.session.wants_input(&limits, unsent) || unsent > 0;
            let round = front.read(slot, may_be_closed, |buf| {
                blocked || buf.len() > max_request_bytes
            });
            if round.is_some_and(|round| round.failed) {
                front.close(slot, self);
                return;
            }
            if round.is_some_and(|round| round.peer_closed)
                && let Some(c) = front.get_mut(slot)
            {
                // Whole requests already read are still answered; half a one is
                // dropped.
                c.state.session.end_of_input();
            }
        }
        self.handle_input(slot, &limits, front);
        front.write(slot, self);
        // Stopped only to parse, and there is room again: read on.
        if let Some(c) = front.get_mut(slot)
            && c.read_paused
            && c.read_buf.len() <= max_request_bytes
            && c.out.unsent() == 0
            && c.state.session.wants_input(&limits, 0)
        {
            c.read_paused = false;
            front.ready(slot);
        }
    }

    /// Moves the answers the session hands out (those at the head of the pipeline, in
    /// request order) into the connection's bytes.
    fn fill(&self, c: &mut Conn<HttpConn>) -> bool {
        let mut popped = false;
        while let Some(output) = c.state.session.next_output() {
            popped = true;
            c.out.push_vec(output.answer.bytes);
            if let Some(body) = output.answer.shared {
                c.out.push_shared(body);
            }
        }
        if popped {
            // What an answer handed out (a real one, or the failure that stood for it)
            // would have needed is needed no more.
            let session = &c.state.session;
            c.state
                .awaiting
                .retain(|a| session.keep_alive(a.seq).is_some());
        }
        popped
    }

    /// Reading and parsing go on once answers have made room in the pipeline (requests
    /// may wait in the read buffer), or once unsent answers, which held reading (and,
    /// past the byte bound, parsing) back, are out. Either is progress, so resuming
    /// cannot loop. A connection that was held back in nothing (its read buffer empty,
    /// its socket read to the end) is not read again: a new request raises a new edge,
    /// and a read that would find nothing costs a system call per answer.
    fn written(&self, c: &mut Conn<HttpConn>, round: Written) -> bool {
        if round.wrote > 0 {
            c.state.last_progress = Instant::now();
        }
        if !round.all_out {
            return false;
        }
        // An idle keep-alive connection keeps no buffer: a request of a few hundred
        // bytes costs one small allocation.
        if c.read_buf.is_empty() {
            c.read_buf = Vec::new();
        }
        if c.state.awaiting.is_empty() {
            c.state.awaiting = Vec::new();
        }
        let held_back = c.read_paused || !c.read_buf.is_empty();
        held_back && c.state.session.is_reading() && (round.filled || round.had_unsent)
    }

    fn finished(&self, c: &Conn<HttpConn>) -> bool {
        c.state.session.is_finished()
    }

    fn closed(&mut self, _: &mut Front<HttpConn>, _: usize, _: u32, _: HttpConn) {}

    fn after_events(&mut self, front: &mut Front<HttpConn>) {
        self.flush_requests(front);
        self.take_responses(front);
    }

    fn after_turn(&mut self, front: &mut Front<HttpConn>) {
        self.flush_requests(front);
    }

    fn request_workers_gone(&self) -> bool {
        self.outbox.receiver_gone()
    }

    /// A connection that completes no request and takes no answer for the idle timeout
    /// is closed, whether it is idle, sends a request byte by byte, or reads nothing.
    fn idle(&self, c: &mut Conn<HttpConn>, now: Instant) -> Idle {
        let quiet = now.saturating_duration_since(c.state.last_progress);
        if quiet > self.settings.idle_timeout {
            Idle::TimedOut
        } else {
            Idle::Keep
        }
    }

    /// Drops split scrapes whose parts did not all come back, and answers "overloaded"
    /// what was lost.
    fn housekeeping(&mut self, front: &mut Front<HttpConn>, now: Instant) {
        self.pending_scrapes.expire(now);
        self.answer_lost(now, front);
        // A full scrape with a part lost to a full channel: its waiters get the failure
        // that the lost requests of announces and scrapes get.
        for conn in self.full_scrape.expire(now) {
            self.answer_overloaded(conn, front);
        }
    }
}

impl SocketWorker {
    pub(crate) fn new(parts: SocketWorkerParts) -> Self {
        // Every request worker sends a part of a full scrape.
        let shards = parts.request_senders.len();
        let settings = parts.settings;
        Self {
            index: parts.index,
            outbox: RequestOutbox::new(parts.index, parts.request_senders),
            response_receiver: parts.response_receiver,
            router: parts.router,
            access_list: parts.access_list,
            statistics: parts.statistics,
            private: parts.private,
            rate_limiter: parts.rate_limiter,
            pending_scrapes: PendingScrapes::new(
                settings.max_pending_scrapes,
                PENDING_SCRAPE_TIMEOUT,
            ),
            body: Vec::new(),
            full_scrape: FullScrapes::new(FullScrapeSettings {
                max_torrents: settings.full_scrape_max_torrents,
                parts: shards,
                cache_for: settings.full_scrape_cache,
                timeout: PENDING_SCRAPE_TIMEOUT,
                write_body: write_full_scrape_body,
            }),
            settings,
        }
    }

    fn counters(&self) -> &SocketCounters {
        self.statistics.socket(self.index)
    }

    /// The bounds of a connection's session, with `header` the proxy address header.
    /// While the whole tracker's waiting bytes reach `http.max_outgoing_bytes_total`,
    /// the byte bound shrinks to one answer: a connection with nothing held or unsent
    /// takes one request, one with anything waiting none.
    fn session_limits<'h>(&self, header: &'h str, front: &Front<HttpConn>) -> SessionLimits<'h> {
        let total = front
            .counters()
            .queued_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        let max_queued_bytes = if total >= self.settings.max_outgoing_bytes_total {
            1
        } else {
            self.settings.max_outgoing_bytes
        };
        SessionLimits {
            request: RequestLimits {
                max_request_bytes: self.settings.max_request_bytes,
                max_scrape_hashes: self.settings.max_scrape_torrents,
                forwarded_header: (!self.settings.proxies.is_empty()).then_some(header),
            },
            max_pipelined: self.settings.max_pipelined_requests,
            max_queued_bytes,
        }
    }

    /// Hands the connection's read buffer to its session, one request at a time, and
    /// handles each, as many as the session takes.
    fn handle_input(
        &mut self,
        slot: usize,
        limits: &SessionLimits<'_>,
        front: &mut Front<HttpConn>,
    ) {
        let generation = front.generation(slot);
        loop {
            let Some(c) = front.get_mut(slot) else {
                return;
            };
            let Received { consumed, event } =
                c.state.session.receive(&c.read_buf, limits, c.out.unsent());
            c.read_buf.drain(..consumed.min(c.read_buf.len()));
            match event {
                Event::Incomplete | Event::NotReading => {
                    if !c.state.session.is_reading() {
                        // Nothing more is parsed: what is left is not for the tracker.
                        c.read_buf = Vec::new();
                    }
                    return;
                }
                Event::Request { seq, request } => {
                    c.state.last_progress = Instant::now();
                    let peer_ip = c.peer_ip;
                    let conn = ConnRef {
                        slot: u32::try_from(slot).unwrap_or(u32::MAX),
                        generation,
                        seq,
                    };
                    self.handle_request(request, peer_ip, conn, front);
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
        front: &mut Front<HttpConn>,
    ) {
        let keep_alive = request.keep_alive;
        // Behind a trusted proxy, the address it forwards for.
        let client_ip = self
            .settings
            .proxies
            .client_ip(tcp_peer, request.forwarded_for.as_deref());
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
                self.ready(conn, None, answer.into(), front);
            }
            RequestKind::Failure(reason) => {
                add(&self.counters().bad_requests, 1);
                self.fail(conn, keep_alive, reason, front);
            }
            RequestKind::Announce(announce) => {
                self.counters()
                    .request(statistics::RequestKind::Announce, Family::of(tcp_peer));
                if self.rate_limited(Limited::Announce, client_ip) {
                    self.fail(conn, keep_alive, ERR_RATE_LIMITED, front);
                    return;
                }
                // The passkey before the access list: a stranger learns nothing about
                // which torrents are served.
                let account = match &mut self.private {
                    None => None,
                    Some(check) => {
                        let facts = AnnounceFacts {
                            peer_id: announce.peer_id,
                            info_hash: announce.info_hash,
                            left: announce.left,
                            event: announce.event,
                            uploaded: announce.uploaded,
                            downloaded: announce.downloaded,
                        };
                        match check.check_announce(announce.passkey, &facts) {
                            Ok(account) => Some(account),
                            Err(cause) => {
                                self.refuse(conn, keep_alive, cause, tcp_peer, front);
                                return;
                            }
                        }
                    }
                };
                if !self.access_list.allows(&announce.info_hash) {
                    add(&self.counters().access_denied, 1);
                    self.fail(conn, keep_alive, ERR_NOT_ALLOWED, front);
                    return;
                }
                self.route_announce(&announce, client_ip, account, conn, keep_alive, front);
            }
            RequestKind::Scrape(scrape) => {
                self.counters()
                    .request(statistics::RequestKind::Scrape, Family::of(tcp_peer));
                if self.rate_limited(Limited::Scrape, client_ip) {
                    self.fail(conn, keep_alive, ERR_RATE_LIMITED, front);
                    return;
                }
                if let Some(check) = &mut self.private
                    && let Err(cause) = check.check_scrape(scrape.passkey)
                {
                    self.refuse(conn, keep_alive, cause, tcp_peer, front);
                    return;
                }
                if scrape.info_hashes.is_empty() {
                    if self.settings.full_scrape_max_torrents == 0 {
                        self.fail(conn, keep_alive, ERR_FULL_SCRAPE, front);
                    } else {
                        self.full_scrape(conn, keep_alive, front);
                    }
                    return;
                }
                self.route_scrape(scrape.info_hashes, conn, keep_alive, front);
            }
        }
    }

    /// Whether a request of `kind` from client `ip` (behind a trusted proxy, the address
    /// it forwards for) is over its address's rate limit: then it is counted, and the
    /// caller answers it with the failure `rate limited`.
    fn rate_limited(&self, kind: Limited, ip: IpAddr) -> bool {
        match &self.rate_limiter {
            Some(limiter) if !limiter.allow(kind, ip, Instant::now()) => {
                add(&self.counters().rate_limited, 1);
                true
            }
            _ => false,
        }
    }

    /// Answers a request private mode refused, with the cause as its failure reason.
    fn refuse(
        &mut self,
        conn: ConnRef,
        keep_alive: bool,
        cause: Refusal,
        tcp_peer: IpAddr,
        front: &mut Front<HttpConn>,
    ) {
        self.statistics.private().refused(cause);
        log::debug!("refused http request from {tcp_peer}: {}", cause.message());
        self.fail(conn, keep_alive, cause.message(), front);
    }

    fn route_announce(
        &mut self,
        announce: &AnnounceRequest,
        client_ip: IpAddr,
        account: Option<AccountInfo>,
        conn: ConnRef,
        keep_alive: bool,
        front: &mut Front<HttpConn>,
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
        await_answer(front, conn, keep_alive, awaited);
        self.push_request(
            shard,
            HttpRequest::Announce {
                params,
                peer_ip,
                conn,
                account,
            },
            front,
        );
    }

    fn route_scrape(
        &mut self,
        hashes: Vec<InfoHash>,
        conn: ConnRef,
        keep_alive: bool,
        front: &mut Front<HttpConn>,
    ) {
        let access_list = &mut self.access_list;
        let route = route_scrape(&hashes, &self.router, |hash| access_list.allows(hash));
        let parts: Vec<(usize, ScrapePart, Option<u64>)> = match route {
            ScrapeRoute::Nothing => {
                let counts = vec![ScrapeCounts::default(); hashes.len()];
                let answer = self.scrape_answer(&hashes, &counts, keep_alive);
                self.ready(conn, Some(ResponseKind::Scrape), answer.into(), front);
                return;
            }
            ScrapeRoute::One { shard, part } => vec![(shard, part, None)],
            ScrapeRoute::Split(parts) => {
                let id = self.pending_scrapes.insert(
                    (conn, hashes.len()),
                    hashes.len(),
                    parts.len(),
                    Instant::now(),
                );
                let Some(id) = id else {
                    add(&self.counters().dropped, 1);
                    self.fail(conn, keep_alive, ERR_OVERLOADED, front);
                    return;
                };
                parts
                    .into_iter()
                    .map(|(shard, part)| (shard, part, Some(id)))
                    .collect()
            }
        };
        await_answer(front, conn, keep_alive, Awaited::Scrape { hashes });
        for (shard, part, pending_id) in parts {
            self.push_request(
                shard,
                HttpRequest::Scrape {
                    part,
                    pending_id,
                    conn,
                },
                front,
            );
        }
    }

    /// Answers a full scrape from the cache, or waits for the one in flight, or starts
    /// one: every request worker sends its busiest torrents.
    fn full_scrape(&mut self, conn: ConnRef, keep_alive: bool, front: &mut Front<HttpConn>) {
        await_answer(front, conn, keep_alive, Awaited::FullScrape);
        match self.full_scrape.ask(conn, Instant::now()) {
            // Written with the answers before it, once the request is parsed.
            Ask::Cached { waiter, body } => self.give_full_scrape(waiter, &body, front),
            Ask::Joined => {}
            Ask::Start { limit } => {
                for shard in 0..self.outbox.num_shards() {
                    self.push_request(shard, HttpRequest::FullScrape { limit }, front);
                }
            }
        }
    }

    /// Adds one request worker's part; once all are in, answers everyone waiting with
    /// the one body, now cached.
    fn full_scrape_part(&mut self, files: &[ScrapeFile], front: &mut Front<HttpConn>) {
        if let Some((body, waiting)) = self.full_scrape.part(files, Instant::now()) {
            for conn in waiting {
                self.answer_full_scrape(conn, &body, front);
            }
        }
    }

    /// Gives `conn` the head of a full scrape's answer and a reference to its body, and
    /// writes what is ready.
    fn answer_full_scrape(&mut self, conn: ConnRef, body: &Arc<[u8]>, front: &mut Front<HttpConn>) {
        self.give_full_scrape(conn, body, front);
        front.write(conn.slot as usize, self);
    }

    /// Gives `conn` the head of a full scrape's answer and a reference to its body.
    fn give_full_scrape(&mut self, conn: ConnRef, body: &Arc<[u8]>, front: &mut Front<HttpConn>) {
        let Some(awaiting) = current(front, conn).and_then(|c| c.state.take_awaiting(conn.seq))
        else {
            return;
        };
        let answer = full_scrape_answer(awaiting.keep_alive, body);
        self.ready(conn, Some(ResponseKind::Scrape), answer, front);
    }

    /// Answers with a bencoded `failure reason`, status 200 as clients expect.
    fn fail(&mut self, conn: ConnRef, keep_alive: bool, reason: &str, front: &mut Front<HttpConn>) {
        self.body.clear();
        write_failure_body(reason, &mut self.body);
        let answer = ok_answer(keep_alive, &self.body);
        self.ready(conn, Some(ResponseKind::Error), answer.into(), front);
    }

    /// Gives request `conn` its answer, which its session hands out in request order;
    /// `kind` is what it counts as (`None`: the index page). An answer that replaces an
    /// "overloaded" failure was counted as that failure.
    fn ready(
        &mut self,
        conn: ConnRef,
        kind: Option<ResponseKind>,
        answer: Answer,
        front: &mut Front<HttpConn>,
    ) {
        let Some(c) = current(front, conn) else {
            return;
        };
        let answered = c.state.session.answer(conn.seq, answer);
        if let (Answered::Queued, Some(kind)) = (answered, kind) {
            let family = Family::of(c.peer_ip);
            self.counters().response(kind, family);
        }
    }

    fn push_request(&mut self, shard: usize, request: HttpRequest, front: &mut Front<HttpConn>) {
        let refused = self.outbox.push(shard, request);
        self.refused(refused, front);
    }

    fn flush_requests(&mut self, front: &mut Front<HttpConn>) {
        let refused = self.outbox.flush();
        self.refused(refused, front);
    }

    /// Requests a full channel refused: counted, and each answered with an "overloaded"
    /// failure, so that no connection waits for an answer that will not come.
    fn refused(&mut self, requests: Vec<HttpRequest>, front: &mut Front<HttpConn>) {
        add(&self.counters().dropped, requests.len() as u64);
        add(&self.counters().dropped_full_channel, requests.len() as u64);
        for request in requests {
            match request {
                HttpRequest::Announce { conn, .. } | HttpRequest::Scrape { conn, .. } => {
                    self.answer_overloaded(conn, front);
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
    fn answer_lost(&mut self, now: Instant, front: &mut Front<HttpConn>) {
        let counters = self.statistics.socket(self.index);
        let mut resume = Vec::new();
        for (slot, c) in front.iter_mut() {
            let lost = c.state.session.expire(now, ANSWER_DEADLINE, ERR_OVERLOADED);
            if lost > 0 {
                let family = Family::of(c.peer_ip);
                for _ in 0..lost {
                    counters.response(ResponseKind::Error, family);
                }
                resume.push(slot);
            }
        }
        for slot in resume {
            front.ready(slot);
        }
    }

    /// Gives `conn`, still unanswered, an "overloaded" failure.
    fn answer_overloaded(&mut self, conn: ConnRef, front: &mut Front<HttpConn>) {
        let Some(c) = current(front, conn) else {
            return;
        };
        if c.state.session.overloaded(conn.seq, ERR_OVERLOADED) {
            let family = Family::of(c.peer_ip);
            self.counters().response(ResponseKind::Error, family);
            front.ready(conn.slot as usize);
        }
    }

    fn take_responses(&mut self, front: &mut Front<HttpConn>) {
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
                    } => self.answer_announce(*conn, *counts, *peers, &batch, front),
                    HttpResponse::Scrape {
                        conn,
                        pending_id: None,
                        counts,
                    } => {
                        let counts: Vec<ScrapeCounts> = counts.iter().map(|(_, c)| *c).collect();
                        self.answer_scrape(*conn, &counts, front);
                    }
                    HttpResponse::Scrape {
                        pending_id: Some(id),
                        counts,
                        ..
                    } => {
                        if let Some(((conn, _), all)) = self.pending_scrapes.merge(*id, counts) {
                            self.answer_scrape(conn, &all, front);
                        }
                    }
                    HttpResponse::FullScrape { files } => self.full_scrape_part(files, front),
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
        front: &mut Front<HttpConn>,
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
        }) = current(front, conn).and_then(|c| c.state.take_awaiting(conn.seq))
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
        self.body.clear();
        response.write_body(&mut self.body);
        let answer = ok_answer(keep_alive, &self.body);
        self.ready(conn, Some(ResponseKind::Announce), answer.into(), front);
        front.write(conn.slot as usize, self);
    }

    fn answer_scrape(
        &mut self,
        conn: ConnRef,
        counts: &[ScrapeCounts],
        front: &mut Front<HttpConn>,
    ) {
        let Some(Awaiting {
            keep_alive,
            awaited: Awaited::Scrape { hashes },
            ..
        }) = current(front, conn).and_then(|c| c.state.take_awaiting(conn.seq))
        else {
            return;
        };
        let answer = self.scrape_answer(&hashes, counts, keep_alive);
        self.ready(conn, Some(ResponseKind::Scrape), answer.into(), front);
        front.write(conn.slot as usize, self);
    }

    fn scrape_answer(
        &mut self,
        hashes: &[InfoHash],
        counts: &[ScrapeCounts],
        keep_alive: bool,
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
        self.body.clear();
        ScrapeResponse { files: &files }.write_body(&mut self.body);
        ok_answer(keep_alive, &self.body)
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
