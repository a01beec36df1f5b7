//! The WebSocket protocol of a socket worker, which the TCP front
//! (`tracker_common::net::front`) runs: the front accepts, reads, writes and closes; this
//! hands what it reads to each connection's WebSocket session (`tracker_ws_protocol::session`: the upgrade, frames,
//! pings, closes), parses the JSON messages the session gives, forwards announces, answers,
//! departures and scrapes to the request workers in batches, and writes what comes back
//! (announce replies, relayed offers and answers, scrape replies) on the connections.
//!
//! # What one client can hold
//! - A place among `ws.max_connections` (whole tracker), and among the
//!   `ws.max_connections_per_ip` of its address (IPv4 address, IPv6 /64; whole
//!   tracker); one more is closed at once.
//! - A read buffer of at most one message (`ws.max_message_bytes`, all fragments) plus
//!   one read; a larger message closes the connection (code 1009). An idle connection
//!   keeps no buffer at all.
//! - At most `ws.max_outgoing_bytes_per_connection` waiting to be sent. While its
//!   unsent bytes pass half of that, offers and answers relayed to it are shed (the
//!   peers that sent them see no answer, as when a browser goes away). A client that
//!   does not read even the replies to its own messages is disconnected, not buffered
//!   for. Over all connections, once half of `ws.max_outgoing_bytes_total` is waiting,
//!   relayed messages to connections with unsent bytes are shed; once all of it is,
//!   such a connection is disconnected when more comes for it.
//! - At most [`MAX_AWAITING`] announces and scrapes waiting for their replies: its
//!   further messages are read once replies come (TCP flow control then slows it down,
//!   not the tracker). Reading does not wait for the client to read what it was sent:
//!   a client that writes only after it has read could then never be read again.
//! - A peer in at most `ws.max_swarms_per_connection` torrents.
//! - Time: a connection that sends nothing for half of `ws.idle_timeout_secs` is pinged,
//!   and closed once the whole timeout passes without a frame from it (and at least a
//!   second after the ping); the upgrade request must be complete within the timeout
//!   too.
//!
//! # Private mode
//! The passkey comes with the upgrade request's path (`/PASSKEY/announce`,
//! `/announce/PASSKEY`; an upgrade on a path that is not the tracker's is refused 404),
//! and an upgrade without a passkey in force is refused 403 with the cause, counted: a
//! stranger holds no connection. The passkey stays with the connection and is checked
//! at every announce, so that a passkey revoked while the connection lives stops working
//! at once: a refused announce is answered with the refusal's failure reason, counted,
//! and goes no further (no swarm entry, no offers relayed); an answer from a connection
//! without a passkey in force is dropped (counted); a scrape needs one when
//! `private.scrape_requires_passkey` is on. At the first housekeeping after a reload,
//! the connections whose passkey is gone are closed (code 1008) and their peers leave
//! their swarms before the close frame goes out.
//! An accepted announce carries the passkey and the client's `uploaded` and
//! `downloaded` to its request worker, which credits them. Public mode ignores the
//! path's passkey, and opens on any path, as it always has.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;

use tracker_common::net::front::{Conn, Front, Idle, Protocol, Written};
use tracker_common::net::rate_limit::{Limited, RateLimiter};
use tracker_common::observe::statistics::{
    ConnectionCounters, Family, RequestKind, ResponseKind, SocketCounters, Statistics, add,
};
use tracker_common::private::accounting::AccountInfo;
use tracker_common::private::passkey::{AnnounceFacts, PasskeyParam, PrivateCheck, Refusal};
use tracker_common::runtime::channel::{WeightedReceiver, WeightedSender};
use tracker_common::runtime::request_worker::{RequestBatch, RequestOutbox};
use tracker_common::swarm::access_list::AccessListCache;
use tracker_common::swarm::full_scrape::{Ask, FullScrapeSettings, FullScrapes, ScrapeFile};
use tracker_common::swarm::routing::ShardRouter;
use tracker_common::swarm::scrape::{PendingScrapes, ScrapeRoute, route_scrape};
use tracker_common::swarm::ws::{ConnectionRef, WsAnnounceParams};
use tracker_common::swarm::{NumWantPolicy, ScrapeCounts};
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};
use tracker_ws_protocol::{
    Action, AnnounceRequest, InMessage, Limits, OutMessage, ScrapeRequest, parse_in_text,
    write_out_message,
};

use crate::config::OriginConfig;
use crate::messages::{WsRequest, WsResponse, WsResponses, connection_id, slot_and_generation};
use tracker_ws_protocol::session::{Event, Phase, Received, Session, SessionLimits};
use tracker_ws_protocol::websocket::{FrameKind, close_code, write_frame, write_frame_header};

/// A split scrape whose parts have not all come back by then is dropped.
const PENDING_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection may take to receive its last bytes.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Bytes a frame header adds at most to what the tracker sends.
const MAX_FRAME_HEADER: usize = 10;
/// Announces and scrapes of one connection waiting for their replies; past it, its
/// messages are not read until replies come, so that a socket buffer full of announces
/// is not read (and sent on to the request workers) at once.
const MAX_AWAITING: usize = 64;
/// Replies not come by then are taken as lost (a request worker dropped them under
/// overload), so that the connection's reading does not wait for them for ever.
const AWAITING_TIMEOUT: Duration = Duration::from_secs(10);

const ERR_NOT_ALLOWED: &str = "info hash not allowed";
const ERR_FULL_SCRAPE: &str = "full scrape is not served: name the info_hash of each torrent";
const ERR_OVERLOADED: &str = "tracker overloaded, try again later";
const ERR_RATE_LIMITED: &str = "rate limited";
const ERR_TOO_MANY_SWARMS: &str = "too many torrents on one connection";
const ERR_ANSWER_NOT_IN_SWARM: &str = "answer for a torrent this connection has not announced";

/// Settings a socket worker needs from the config.
#[derive(Clone, Debug)]
pub(crate) struct SocketWorkerSettings {
    pub(crate) max_handshake_bytes: usize,
    pub(crate) max_message_bytes: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_offers: usize,
    pub(crate) max_swarms_per_connection: usize,
    pub(crate) max_outgoing_bytes: usize,
    pub(crate) max_outgoing_bytes_total: usize,
    pub(crate) max_scrape_torrents: usize,
    pub(crate) max_pending_scrapes: usize,
    pub(crate) numwant: NumWantPolicy,
    pub(crate) interval: u32,
    pub(crate) origin: OriginConfig,
    /// Most torrents of a full scrape; 0 refuses them.
    pub(crate) full_scrape_max_torrents: usize,
    /// How long a full scrape's answer is reused.
    pub(crate) full_scrape_cache: Duration,
    /// The tracker's port and scheme, for the index page.
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

/// What a socket worker is made of.
pub(crate) struct SocketWorkerParts {
    pub(crate) index: usize,
    pub(crate) request_senders: Vec<WeightedSender<RequestBatch<WsRequest>>>,
    pub(crate) response_receiver: WeightedReceiver<WsResponses>,
    pub(crate) router: ShardRouter,
    pub(crate) access_list: AccessListCache,
    pub(crate) settings: SocketWorkerSettings,
    pub(crate) statistics: Arc<Statistics>,
    /// The tracker's connection counts (the front's), for slow readers and queued bytes.
    pub(crate) conns: Arc<ConnectionCounters>,
    pub(crate) private: Option<PrivateCheck>,
    pub(crate) rate_limiter: Option<Arc<RateLimiter>>,
}

/// The WebSocket protocol of one socket worker, and everything it owns.
pub(crate) struct SocketWorker {
    index: usize,
    outbox: RequestOutbox<WsRequest>,
    response_receiver: WeightedReceiver<WsResponses>,
    router: ShardRouter,
    access_list: AccessListCache,
    settings: SocketWorkerSettings,
    statistics: Arc<Statistics>,
    conns: Arc<ConnectionCounters>,
    /// Private mode's check; `None` in public mode.
    private: Option<PrivateCheck>,
    pending_scrapes: PendingScrapes<(u64, Vec<InfoHash>)>,
    /// Reused for each message's JSON.
    scratch: Vec<u8>,
    /// Connections not read while the response channel was backlogged.
    deferred: Vec<usize>,
    /// Departures a full channel refused, sent again at the next round.
    leaves: Vec<(usize, WsRequest)>,
    /// The cached full scrape, shared by its answers, and the one being gathered (its
    /// waiters by connection id).
    full_scrape: FullScrapes<u64>,
    /// The rate limits, shared by every socket worker; `None` when they are off.
    rate_limiter: Option<Arc<RateLimiter>>,
}

/// What the WebSocket protocol keeps for a connection.
pub(crate) struct WsConn {
    /// The WebSocket protocol's state: the upgrade, a message in fragments, the pong and
    /// the close frame waiting.
    session: Session,
    /// Since when nothing more is read or queued; the connection closes once its last
    /// bytes are out, or [`CLOSE_GRACE`] after that.
    closing: Option<Instant>,
    /// The last frame (or, before the upgrade, the accept).
    last_received: Instant,
    ping_sent: bool,
    /// Where the last control frame the session gave ends in the connection's stream:
    /// once written past it, the session hears that it is out (see [`queue_control`]).
    control_end: u64,
    /// In the worker's list of connections whose reading waits for the responses.
    deferred: bool,
    /// Its announces, scrapes and answers waiting for their replies, in the order they
    /// were sent on (see [`MAX_AWAITING`]); no allocation while empty.
    awaiting: Vec<Awaited>,
    /// When a reply last came, or the first of `awaiting` was sent.
    awaiting_since: Instant,
    /// Messages were queued since its last write attempt (which gave the socket all it
    /// could take then).
    queued_since_write: bool,
    /// The torrents this connection is a peer of, with the peer id it announced.
    swarms: Vec<(InfoHash, PeerId)>,
    /// The passkey of the upgrade request's path, checked at every announce in private
    /// mode (a passkey may be revoked while the connection lives).
    passkey: PasskeyParam,
}

impl WsConn {
    /// Whether its messages may be read: not too many replies are still to come.
    fn may_read(&self) -> bool {
        self.awaiting.len() < MAX_AWAITING
    }

    /// One more message sent on to the request workers, whose reply is `what`.
    fn expect_reply(&mut self, what: Awaited) {
        if self.awaiting.is_empty() {
            self.awaiting_since = Instant::now();
        }
        self.awaiting.push(what);
    }

    /// The reply `what` came (or was given up): the first message awaiting it no longer
    /// waits.
    fn reply_came(&mut self, what: Awaited) {
        if let Some(i) = self.awaiting.iter().position(|w| *w == what) {
            self.awaiting.remove(i);
        }
        if self.awaiting.is_empty() {
            self.awaiting = Vec::new();
        }
        self.awaiting_since = Instant::now();
    }
}

/// What a message sent on to the request workers awaits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Awaited {
    /// The reply to an announce of this torrent.
    Announce(InfoHash),
    /// The reply to a scrape.
    Scrape,
    /// Word that an answer was handled (relayed or not): answers count against
    /// [`MAX_AWAITING`] like announces, so that a client streaming answers cannot queue
    /// work for the request workers without bound.
    Answer,
}

/// The slot of connection id `connection`, if that connection is still open.
fn current(front: &Front<WsConn>, connection: u64) -> Option<usize> {
    let (slot, generation) = slot_and_generation(connection);
    let slot = slot as usize;
    front.is_current(slot, generation).then_some(slot)
}

/// A full scrape's body: the JSON message a scrape of those torrents is answered with.
fn write_full_scrape_body(files: &[ScrapeFile], out: &mut Vec<u8>) {
    write_out_message(&OutMessage::ScrapeResponse { files }, out);
}

impl Protocol for SocketWorker {
    type State = WsConn;

    fn open(&mut self, _peer_ip: IpAddr, now: Instant) -> WsConn {
        WsConn {
            session: Session::new(),
            closing: None,
            last_received: now,
            ping_sent: false,
            control_end: 0,
            deferred: false,
            awaiting: Vec::new(),
            awaiting_since: now,
            queued_since_write: false,
            swarms: Vec::new(),
            passkey: PasskeyParam::Missing,
        }
    }

    /// Reads what the connection has and handles every whole frame in it. Reading waits
    /// while too many replies are still to come, and while the response channel is
    /// backlogged: announces read then would only make the request workers compute
    /// offers and replies that find no room, so the responses are taken first.
    fn readable(&mut self, front: &mut Front<WsConn>, slot: usize, may_be_closed: bool) {
        let backlogged = self.response_receiver.backlogged();
        let Some(c) = front.get_mut(slot) else {
            return;
        };
        if backlogged && c.state.session.is_open() && !c.peer_closed {
            // Read again (as if a close may have come unseen) once responses are taken.
            if !c.state.deferred {
                c.state.deferred = true;
                self.deferred.push(slot);
            }
            return;
        }
        c.state.deferred = false;
        if c.state.closing.is_some() || c.peer_closed {
            c.read_paused = false;
        } else {
            let blocked = !c.state.may_read();
            let round = front.read(slot, may_be_closed, |_| blocked);
            if round.is_some_and(|round| round.failed) {
                front.close(slot, self);
                return;
            }
        }
        self.handle_input(slot, front);
        front.write(slot, self);
        let Some(c) = front.get_mut(slot) else {
            return;
        };
        if c.peer_closed && c.state.closing.is_none() {
            // The client is gone or half-closed: nothing more will come from it.
            c.state.session.end_of_input();
            c.state.closing = Some(Instant::now());
            c.read_buf = Vec::new();
            front.write(slot, self);
        } else if c.read_paused && c.state.closing.is_none() && c.state.may_read() {
            c.read_paused = false;
            front.ready(slot);
        }
    }

    /// Queues the control frames the session has waiting.
    fn fill(&self, c: &mut Conn<WsConn>) -> bool {
        queue_control(c, self.settings.max_outgoing_bytes)
    }

    fn written(&self, c: &mut Conn<WsConn>, _: Written) -> bool {
        c.state.queued_since_write = false;
        false
    }

    fn finished(&self, c: &Conn<WsConn>) -> bool {
        c.state.closing.is_some()
    }

    /// Takes the closed connection's peers out of their swarms.
    fn closed(&mut self, front: &mut Front<WsConn>, slot: usize, generation: u32, state: WsConn) {
        let connection = ConnectionRef {
            worker: u16::try_from(self.index).unwrap_or(u16::MAX),
            connection: connection_id(u32::try_from(slot).unwrap_or(u32::MAX), generation),
        };
        self.leave(connection, state.swarms, front);
    }

    fn after_events(&mut self, front: &mut Front<WsConn>) {
        self.flush_requests(front);
        self.take_responses(front);
        // What waited for the responses is read now that they are taken.
        for slot in self.deferred.drain(..) {
            front.ready(slot);
        }
    }

    fn after_turn(&mut self, front: &mut Front<WsConn>) {
        self.flush_requests(front);
    }

    fn request_workers_gone(&self) -> bool {
        self.outbox.receiver_gone()
    }

    /// A connection that sends nothing for half the idle timeout is pinged, and closed
    /// once the whole timeout passes without a frame from it; a closing one is closed
    /// once [`CLOSE_GRACE`] has passed.
    fn idle(&self, c: &mut Conn<WsConn>, now: Instant) -> Idle {
        let timeout = self.settings.idle_timeout;
        let quiet = now.saturating_duration_since(c.state.last_received);
        match (c.state.closing, c.state.session.phase()) {
            (Some(since), _) if now.saturating_duration_since(since) > CLOSE_GRACE => Idle::Close,
            (Some(_), _) => Idle::Keep,
            // Not open and not closing: the upgrade request is not all there yet (or,
            // were a closed session ever left without `closing`, timed out all the
            // same rather than kept for ever).
            (None, Phase::Handshake | Phase::Answering | Phase::Closed) if quiet > timeout => {
                Idle::TimedOut
            }
            // Closed only once pinged at an earlier round: rounds are a second or more
            // apart, so one may pass over the second half of the timeout unseen.
            (None, Phase::Open) if quiet > timeout && c.state.ping_sent => Idle::TimedOut,
            (None, Phase::Open) if quiet > timeout / 2 && !c.state.ping_sent => {
                write_frame(c.out.buf_mut(), FrameKind::Ping, b"");
                c.state.ping_sent = true;
                Idle::Wrote
            }
            (None, _) => Idle::Keep,
        }
    }

    /// Closes the connections whose passkey was revoked, answers "overloaded" the
    /// replies that were lost, and drops split scrapes whose parts did not all come back.
    fn housekeeping(&mut self, front: &mut Front<WsConn>, now: Instant) {
        self.revoke(front);
        let mut lost = Vec::new();
        let mut resume = Vec::new();
        for (slot, c) in front.iter_mut() {
            if !c.state.awaiting.is_empty()
                && now.saturating_duration_since(c.state.awaiting_since) > AWAITING_TIMEOUT
            {
                // Lost under overload (a request worker dropped the replies on a full
                // channel, or a split scrape expired): each is answered "overloaded"
                // rather than left without an answer, and the connection is read again.
                lost.push((slot, std::mem::take(&mut c.state.awaiting)));
                if c.read_paused {
                    c.read_paused = false;
                    resume.push(slot);
                }
            }
        }
        for slot in resume {
            front.ready(slot);
        }
        for (slot, awaited) in lost {
            for what in awaited {
                let failure = match what {
                    Awaited::Announce(info_hash) => OutMessage::Failure {
                        reason: ERR_OVERLOADED,
                        action: Some(Action::Announce),
                        info_hash: Some(info_hash),
                    },
                    Awaited::Scrape => scrape_failure(ERR_OVERLOADED),
                    // An answer has no reply: the offerer's attempt times out.
                    Awaited::Answer => continue,
                };
                self.send_to_slot(slot, &failure, front);
            }
        }
        self.pending_scrapes.expire(now);
        for connection in self.full_scrape.expire(now) {
            self.replied_to(connection, front);
            self.send(connection, &scrape_failure(ERR_OVERLOADED), front);
        }
        // Departures (of revoked connections, say) before the close frames that tell
        // their clients.
        self.flush_requests(front);
    }
}

impl SocketWorker {
    pub(crate) fn new(parts: SocketWorkerParts) -> Self {
        // Every request worker sends a part of a full scrape.
        let shards = parts.request_senders.len();
        let settings = parts.settings;
        Self {
            index: parts.index,
            outbox: RequestOutbox::weighed(parts.index, parts.request_senders, WsRequest::weight),
            response_receiver: parts.response_receiver,
            router: parts.router,
            access_list: parts.access_list,
            statistics: parts.statistics,
            conns: parts.conns,
            private: parts.private,
            rate_limiter: parts.rate_limiter,
            pending_scrapes: PendingScrapes::new(
                settings.max_pending_scrapes,
                PENDING_SCRAPE_TIMEOUT,
            ),
            scratch: Vec::new(),
            deferred: Vec::new(),
            leaves: Vec::new(),
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

    /// Hands the read buffer to the connection's session, one frame (or the upgrade
    /// request) at a time, and acts on what it finds there, until it needs more bytes or
    /// reads no more.
    fn handle_input(&mut self, slot: usize, front: &mut Front<WsConn>) {
        let Some(c) = front.get_mut(slot) else {
            return;
        };
        if c.state.closing.is_some() {
            return; // Lingering: what is left is not for the tracker.
        }
        // The buffer leaves the connection while its messages are handled, which may
        // queue bytes on this and other connections.
        let mut buf = std::mem::take(&mut c.read_buf);
        let mut pos = 0;
        let limits = SessionLimits {
            max_handshake_bytes: self.settings.max_handshake_bytes,
            max_message_bytes: self.settings.max_message_bytes,
        };
        loop {
            let (Some(c), Some(rest)) = (front.get_mut(slot), buf.get_mut(pos..)) else {
                return;
            };
            let Received { consumed, event } = c.state.session.receive(rest, &limits);
            pos += consumed;
            if event.is_frame() {
                // Any frame, pings and pongs included, shows the client alive: a client
                // that only pings holds no more than an idle one (a pong's worth).
                c.state.last_received = Instant::now();
                c.state.ping_sent = false;
            }
            match event {
                Event::Incomplete | Event::NotReading => break,
                Event::Upgrade { origin, passkey } => {
                    self.upgrade(slot, origin.as_deref(), passkey, front);
                }
                Event::IndexPage => {
                    let page = index_page(self.settings.port, self.settings.tls);
                    self.answer_http(slot, 200, "OK", &page, front);
                }
                Event::Refused { status, reason } => {
                    add(&self.counters().bad_requests, 1);
                    self.answer_http(slot, status, reason, &format!("{reason}\n"), front);
                }
                Event::Message(text) => self.handle_message(slot, &text, front),
                Event::Fragment | Event::Ping | Event::Pong => {}
                // The session has queued the close frame that answers.
                Event::Close { .. } => start_closing(slot, front),
                Event::Failed { .. } => {
                    add(&self.counters().bad_requests, 1);
                    start_closing(slot, front);
                }
            }
        }
        buf.drain(..pos.min(buf.len()));
        if let Some(c) = front.get_mut(slot)
            && c.state.session.is_reading()
        {
            // What is not used yet waits for more; an idle connection keeps no buffer.
            c.read_buf = if buf.is_empty() { Vec::new() } else { buf };
        }
    }

    /// Accepts an upgrade request, or refuses it: an origin not allowed; in private mode
    /// a path that is not the tracker's, or no passkey in force.
    fn upgrade(
        &mut self,
        slot: usize,
        origin: Option<&[u8]>,
        passkey: Option<PasskeyParam>,
        front: &mut Front<WsConn>,
    ) {
        if !self.settings.origin.allows(origin) {
            self.answer_http(slot, 403, "Forbidden", "origin not allowed\n", front);
            return;
        }
        // Public mode opens on any path, as it always has; private mode only on the
        // tracker's own, which carry the passkey, and only with a passkey in force: a
        // stranger holds no connection.
        let passkey = match (passkey, &mut self.private) {
            (Some(passkey), None) => passkey,
            (None, None) => PasskeyParam::Missing,
            (Some(passkey), Some(check)) => match check.check_passkey(passkey) {
                Ok(_) => passkey,
                Err(cause) => {
                    self.statistics.private().refused(cause);
                    let body = format!("{}\n", cause.message());
                    self.answer_http(slot, 403, "Forbidden", &body, front);
                    return;
                }
            },
            (None, Some(_)) => {
                add(&self.counters().bad_requests, 1);
                let body = "not found: connect to /PASSKEY/announce\n";
                self.answer_http(slot, 404, "Not Found", body, front);
                return;
            }
        };
        if let Some(c) = front.get_mut(slot) {
            c.state.passkey = passkey;
            c.state.session.accept(c.out.buf_mut());
            c.state.last_received = Instant::now();
        }
    }

    /// Answers the request with a plain HTTP answer, and closes once it is out.
    fn answer_http(
        &mut self,
        slot: usize,
        status: u16,
        reason: &str,
        body: &str,
        front: &mut Front<WsConn>,
    ) {
        if let Some(c) = front.get_mut(slot) {
            c.state
                .session
                .answer_http(status, reason, body, c.out.buf_mut());
            c.state.closing = Some(Instant::now());
        }
    }

    /// Closes an open connection with a close frame of `code`, once it is out.
    fn fail_connection(&mut self, slot: usize, code: u16, front: &mut Front<WsConn>) {
        if let Some(c) = front.get_mut(slot) {
            c.state.session.close(code);
        }
        start_closing(slot, front);
    }

    /// Handles one whole text message.
    fn handle_message(&mut self, slot: usize, text: &str, front: &mut Front<WsConn>) {
        let limits = Limits {
            max_offers: self.settings.max_offers,
            max_scrape_torrents: self.settings.max_scrape_torrents,
        };
        match parse_in_text(text, &limits) {
            Ok(InMessage::Announce(announce)) => self.announce(slot, announce, front),
            Ok(InMessage::Scrape(scrape)) => self.scrape(slot, scrape, front),
            Err(err) => {
                add(&self.counters().bad_requests, 1);
                log::debug!("bad message: {err}");
                let failure = OutMessage::Failure {
                    reason: err.reason(),
                    action: err.action,
                    info_hash: err.info_hash,
                };
                self.send_to_slot(slot, &failure, front);
            }
        }
    }

    fn connection_ref(&self, slot: usize, front: &Front<WsConn>) -> ConnectionRef {
        let slot32 = u32::try_from(slot).unwrap_or(u32::MAX);
        ConnectionRef {
            worker: u16::try_from(self.index).unwrap_or(u16::MAX),
            connection: connection_id(slot32, front.generation(slot)),
        }
    }

    fn announce(&mut self, slot: usize, mut request: AnnounceRequest, front: &mut Front<WsConn>) {
        self.count_request(RequestKind::Announce, slot, front);
        let info_hash = request.info_hash;
        let fail = |reason: &'static str| OutMessage::Failure {
            reason,
            action: Some(Action::Announce),
            info_hash: Some(info_hash),
        };
        // An answer to a relayed offer is signalling, not an announce: not limited, or a
        // browser answering many offers at once would lose its connections.
        if request.answer.is_none() && self.rate_limited(Limited::Announce, slot, front) {
            self.send_to_slot(slot, &fail(ERR_RATE_LIMITED), front);
            return;
        }
        let account = match self.check_announce(slot, &request, front) {
            Ok(account) => account,
            Err(Some(cause)) => {
                self.send_to_slot(slot, &fail(cause.message()), front);
                return;
            }
            Err(None) => return,
        };
        if !self.access_list.allows(&info_hash) {
            add(&self.counters().access_denied, 1);
            self.send_to_slot(slot, &fail(ERR_NOT_ALLOWED), front);
            return;
        }
        let connection = self.connection_ref(slot, front);
        let shard = self.router.shard(&info_hash);
        let max_swarms = self.settings.max_swarms_per_connection;
        let Some(c) = front.get_mut(slot) else {
            return;
        };
        let place = c
            .state
            .swarms
            .iter()
            .position(|(hash, _)| *hash == info_hash);
        if let Some(answer) = request.answer.take() {
            // An answer is only relayed: it changes nothing in the swarm.
            if place.is_none() {
                add(&self.counters().bad_requests, 1);
                self.send_to_slot(slot, &fail(ERR_ANSWER_NOT_IN_SWARM), front);
                return;
            }
            let answer = WsRequest::Answer {
                info_hash,
                peer_id: request.peer_id,
                connection,
                answer,
            };
            c.state.expect_reply(Awaited::Answer);
            self.push_request(shard, answer, front);
            return;
        }
        let previous_peer_id = place
            .and_then(|i| c.state.swarms.get(i))
            .map(|(_, peer)| *peer);
        let refused = match (place, request.event) {
            (Some(i), AnnounceEvent::Stopped) => {
                c.state.swarms.swap_remove(i);
                false
            }
            (Some(i), _) => {
                if let Some(entry) = c.state.swarms.get_mut(i) {
                    entry.1 = request.peer_id;
                }
                false
            }
            (None, AnnounceEvent::Stopped) => false,
            (None, _) if c.state.swarms.len() >= max_swarms => true,
            (None, _) => {
                c.state.swarms.push((info_hash, request.peer_id));
                false
            }
        };
        if refused {
            self.send_to_slot(slot, &fail(ERR_TOO_MANY_SWARMS), front);
            return;
        }
        let requested = request
            .numwant
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let numwant = self
            .settings
            .numwant
            .resolve(requested)
            .min(request.offers.len());
        request.offers.truncate(numwant);
        let params = WsAnnounceParams {
            info_hash,
            peer_id: request.peer_id,
            previous_peer_id,
            connection,
            bytes_left: request.left,
            event: request.event,
            numwant,
        };
        let announce = WsRequest::Announce {
            params,
            offers: request.offers,
            account,
        };
        if let Some(c) = front.get_mut(slot) {
            c.state.expect_reply(Awaited::Announce(info_hash));
        }
        self.push_request(shard, announce, front);
    }

    /// Private mode's check of an announce (or of an answer, which needs the passkey
    /// only), against the passkey the connection opened with: `Ok` with what to credit
    /// (`None` in public mode and for answers), or the refusal, counted. An announce is
    /// answered with the refusal's message (`Err(Some)`); an answer is dropped
    /// (`Err(None)`): the offerer's attempt times out.
    fn check_announce(
        &mut self,
        slot: usize,
        request: &AnnounceRequest,
        front: &Front<WsConn>,
    ) -> Result<Option<AccountInfo>, Option<Refusal>> {
        let Some(private) = &mut self.private else {
            return Ok(None);
        };
        let Some(c) = front.get(slot) else {
            return Err(None);
        };
        if request.answer.is_some() {
            return match private.check_passkey(c.state.passkey) {
                Ok(_) => Ok(None),
                Err(cause) => {
                    self.statistics.private().refused(cause);
                    Err(None)
                }
            };
        }
        let facts = AnnounceFacts {
            peer_id: request.peer_id,
            info_hash: request.info_hash,
            left: request.left.unwrap_or(u64::MAX),
            event: request.event,
            uploaded: request.uploaded,
            downloaded: request.downloaded,
        };
        match private.check_announce(c.state.passkey, &facts) {
            Ok(account) => Ok(Some(account)),
            Err(cause) => {
                self.statistics.private().refused(cause);
                Err(Some(cause))
            }
        }
    }

    /// Private mode's check of a scrape when scrapes need a passkey: the refusal,
    /// counted, or `None` to serve it.
    fn check_scrape(&mut self, slot: usize, front: &Front<WsConn>) -> Option<Refusal> {
        let private = self.private.as_mut()?;
        let c = front.get(slot)?;
        let cause = private.check_scrape(c.state.passkey).err()?;
        self.statistics.private().refused(cause);
        Some(cause)
    }

    /// Whether a request of `kind` from the connection in `slot` is over its address's
    /// rate limit: then it is counted, and the caller answers it with the failure
    /// `rate limited`.
    fn rate_limited(&self, kind: Limited, slot: usize, front: &Front<WsConn>) -> bool {
        match (&self.rate_limiter, front.get(slot)) {
            (Some(limiter), Some(c)) if !limiter.allow(kind, c.peer_ip, Instant::now()) => {
                add(&self.counters().rate_limited, 1);
                true
            }
            _ => false,
        }
    }

    /// Counts a request of `kind` from the connection in `slot`.
    fn count_request(&self, kind: RequestKind, slot: usize, front: &Front<WsConn>) {
        if let Some(c) = front.get(slot) {
            self.counters().request(kind, Family::of(c.peer_ip));
        }
    }

    fn scrape(&mut self, slot: usize, scrape: ScrapeRequest, front: &mut Front<WsConn>) {
        self.count_request(RequestKind::Scrape, slot, front);
        if self.rate_limited(Limited::Scrape, slot, front) {
            self.send_to_slot(slot, &scrape_failure(ERR_RATE_LIMITED), front);
            return;
        }
        if let Some(cause) = self.check_scrape(slot, front) {
            self.send_to_slot(slot, &scrape_failure(cause.message()), front);
            return;
        }
        let connection = self.connection_ref(slot, front).connection;
        let hashes = match scrape {
            ScrapeRequest::Full => {
                self.full_scrape(slot, connection, front);
                return;
            }
            ScrapeRequest::InfoHashes(hashes) => hashes,
        };
        let access_list = &mut self.access_list;
        let route = route_scrape(&hashes, &self.router, |hash| access_list.allows(hash));
        match route {
            ScrapeRoute::Nothing => {
                let files: Vec<(InfoHash, ScrapeCounts)> = hashes
                    .iter()
                    .map(|hash| (*hash, ScrapeCounts::default()))
                    .collect();
                self.send_to_slot(slot, &OutMessage::ScrapeResponse { files: &files }, front);
            }
            ScrapeRoute::One { shard, part } => {
                let request = WsRequest::Scrape {
                    part,
                    pending_id: None,
                    connection,
                };
                expect_reply(slot, front);
                self.push_request(shard, request, front);
            }
            ScrapeRoute::Split(parts) => {
                let num_hashes = hashes.len();
                let id = self.pending_scrapes.insert(
                    (connection, hashes),
                    num_hashes,
                    parts.len(),
                    Instant::now(),
                );
                let Some(id) = id else {
                    add(&self.counters().dropped, 1);
                    self.send_to_slot(slot, &scrape_failure(ERR_OVERLOADED), front);
                    return;
                };
                expect_reply(slot, front);
                for (shard, part) in parts {
                    let request = WsRequest::Scrape {
                        part,
                        pending_id: Some(id),
                        connection,
                    };
                    self.push_request(shard, request, front);
                }
            }
        }
    }

    /// Answers a full scrape from the cache, or waits for the one in flight, or starts
    /// one: every request worker sends its busiest torrents.
    fn full_scrape(&mut self, slot: usize, connection: u64, front: &mut Front<WsConn>) {
        if self.settings.full_scrape_max_torrents == 0 {
            self.send_to_slot(slot, &scrape_failure(ERR_FULL_SCRAPE), front);
            return;
        }
        expect_reply(slot, front);
        match self.full_scrape.ask(connection, Instant::now()) {
            Ask::Cached { waiter, body } => self.answer_full_scrape(waiter, &body, front),
            Ask::Joined => {}
            Ask::Start { limit } => {
                for shard in 0..self.outbox.num_shards() {
                    self.push_request(shard, WsRequest::FullScrape { limit }, front);
                }
            }
        }
    }

    /// Adds one request worker's part; once all are in, answers everyone waiting with
    /// the one message, now cached.
    fn full_scrape_part(&mut self, files: &[ScrapeFile], front: &mut Front<WsConn>) {
        if let Some((body, waiting)) = self.full_scrape.part(files, Instant::now()) {
            for connection in waiting {
                self.answer_full_scrape(connection, &body, front);
            }
        }
    }

    /// Queues a full scrape's answer for connection id `connection`: a frame header,
    /// then a reference to the shared message.
    fn answer_full_scrape(&mut self, connection: u64, body: &Arc<[u8]>, front: &mut Front<WsConn>) {
        let Some(slot) = current(front, connection) else {
            return;
        };
        replied(slot, front);
        if self.queue_text(slot, &[], Some(body), front)
            && let Some(c) = front.get(slot)
        {
            self.counters()
                .response(ResponseKind::Scrape, Family::of(c.peer_ip));
        }
    }

    /// Queues a request for a request worker; handles what a full channel refuses.
    fn push_request(&mut self, shard: usize, request: WsRequest, front: &mut Front<WsConn>) {
        let refused = self.outbox.push(shard, request);
        self.refused(refused, shard, front);
    }

    fn flush_requests(&mut self, front: &mut Front<WsConn>) {
        // Departures refused earlier go first.
        for (shard, leave) in std::mem::take(&mut self.leaves) {
            let refused = self.outbox.push(shard, leave);
            self.refused(refused, shard, front);
        }
        let refused = self.outbox.flush();
        self.refused(refused, usize::MAX, front);
    }

    /// Requests a full channel refused: announces and scrapes get a failure, departures
    /// are sent again later (a peer must not outlive its connection in the swarm), and
    /// answers are dropped (the offerer's WebRTC attempt times out).
    fn refused(&mut self, refused: Vec<WsRequest>, shard: usize, front: &mut Front<WsConn>) {
        for request in refused {
            match request {
                WsRequest::Announce { params, .. } => {
                    let what = Awaited::Announce(params.info_hash);
                    self.reply_came_to(params.connection.connection, what, front);
                    add(&self.counters().dropped, 1);
                    let failure = OutMessage::Failure {
                        reason: ERR_OVERLOADED,
                        action: Some(Action::Announce),
                        info_hash: Some(params.info_hash),
                    };
                    self.send(params.connection.connection, &failure, front);
                }
                WsRequest::Scrape { connection, .. } => {
                    self.replied_to(connection, front);
                    add(&self.counters().dropped, 1);
                    self.send(connection, &scrape_failure(ERR_OVERLOADED), front);
                }
                WsRequest::Leave {
                    info_hash,
                    peer_id,
                    connection,
                } => {
                    let shard = if shard == usize::MAX {
                        self.router.shard(&info_hash)
                    } else {
                        shard
                    };
                    let leave = WsRequest::Leave {
                        info_hash,
                        peer_id,
                        connection,
                    };
                    self.leaves.push((shard, leave));
                }
                WsRequest::Answer { connection, .. } => {
                    self.reply_came_to(connection.connection, Awaited::Answer, front);
                    add(&self.counters().dropped, 1);
                }
                WsRequest::FullScrape { .. } => {
                    add(&self.counters().dropped, 1);
                }
            }
        }
    }

    /// Writes what the request workers sent.
    fn take_responses(&mut self, front: &mut Front<WsConn>) {
        loop {
            let batch = match self.response_receiver.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            for response in batch.0 {
                self.response(response, front);
            }
        }
    }

    fn response(&mut self, response: WsResponse, front: &mut Front<WsConn>) {
        match response {
            WsResponse::Announce {
                connection,
                info_hash,
                counts,
            } => {
                let reply = OutMessage::AnnounceResponse {
                    info_hash,
                    interval: self.settings.interval,
                    complete: counts.seeders,
                    incomplete: counts.leechers,
                };
                self.reply_came_to(connection, Awaited::Announce(info_hash), front);
                self.send(connection, &reply, front);
            }
            WsResponse::Offer {
                connection,
                info_hash,
                peer_id,
                offer_id,
                offer,
            } => {
                let message = OutMessage::Offer {
                    info_hash,
                    peer_id,
                    offer_id,
                    offer: &offer,
                };
                if self.relay(connection, &message, front) {
                    add(&self.counters().offers_relayed, 1);
                }
            }
            WsResponse::Answer {
                connection,
                info_hash,
                peer_id,
                offer_id,
                answer,
            } => {
                let message = OutMessage::Answer {
                    info_hash,
                    peer_id,
                    offer_id,
                    answer: &answer,
                };
                if self.relay(connection, &message, front) {
                    add(&self.counters().answers_relayed, 1);
                }
            }
            WsResponse::Scrape {
                connection,
                pending_id: None,
                mut files,
            } => {
                files.sort_unstable_by_key(|(pos, _, _)| *pos);
                let files: Vec<(InfoHash, ScrapeCounts)> =
                    files.into_iter().map(|(_, h, c)| (h, c)).collect();
                self.replied_to(connection, front);
                self.send(
                    connection,
                    &OutMessage::ScrapeResponse { files: &files },
                    front,
                );
            }
            WsResponse::Scrape {
                pending_id: Some(id),
                files,
                ..
            } => {
                let part: Vec<(u16, ScrapeCounts)> =
                    files.into_iter().map(|(pos, _, c)| (pos, c)).collect();
                if let Some(((connection, hashes), counts)) = self.pending_scrapes.merge(id, &part)
                {
                    let files: Vec<(InfoHash, ScrapeCounts)> =
                        hashes.into_iter().zip(counts).collect();
                    self.replied_to(connection, front);
                    self.send(
                        connection,
                        &OutMessage::ScrapeResponse { files: &files },
                        front,
                    );
                }
            }
            WsResponse::FullScrape { files } => self.full_scrape_part(&files, front),
            WsResponse::AnswerTaken { connection, count } => {
                for _ in 0..count {
                    self.reply_came_to(connection, Awaited::Answer, front);
                }
            }
        }
    }

    /// Counts a scrape reply come (or given up) for connection id `connection`, if it is
    /// still open.
    fn replied_to(&mut self, connection: u64, front: &mut Front<WsConn>) {
        if let Some(slot) = current(front, connection) {
            replied(slot, front);
        }
    }

    /// Counts the reply `what` come (or given up) for connection id `connection`, if it
    /// is still open.
    fn reply_came_to(&mut self, connection: u64, what: Awaited, front: &mut Front<WsConn>) {
        if let Some(slot) = current(front, connection) {
            reply_came(slot, what, front);
        }
    }

    /// Queues `message` for connection id `connection`, if it is still open; returns
    /// whether it was queued.
    fn send(
        &mut self,
        connection: u64,
        message: &OutMessage<'_>,
        front: &mut Front<WsConn>,
    ) -> bool {
        match current(front, connection) {
            Some(slot) => self.send_to_slot(slot, message, front),
            None => false,
        }
    }

    /// Queues a relayed offer or answer for connection id `connection`, unless the
    /// connection has bytes waiting and the message would put more than half its
    /// outgoing bound, or half the whole tracker's, waiting: such a message
    /// is shed (counted) rather than let grow the queue of a client that is not keeping
    /// up. Only replies to its own messages then reach the bounds, and a client that
    /// does not read those is disconnected. Returns whether it was queued.
    fn relay(
        &mut self,
        connection: u64,
        message: &OutMessage<'_>,
        front: &mut Front<WsConn>,
    ) -> bool {
        let Some(slot) = current(front, connection) else {
            return false;
        };
        let mut json = std::mem::take(&mut self.scratch);
        json.clear();
        write_out_message(message, &mut json);
        let frame = json.len() + MAX_FRAME_HEADER;
        let (max, max_total) = (
            self.settings.max_outgoing_bytes,
            self.settings.max_outgoing_bytes_total,
        );
        let over = move |c: &Conn<WsConn>, front: &Front<WsConn>| {
            let unsent = c.out.unsent();
            // A connection with nothing waiting takes any one message (the config makes
            // sure its bound holds the largest), so that big offers still reach idle
            // peers.
            unsent > 0 && (unsent + frame > max / 2 || front.queued_now(c) + frame > max_total / 2)
        };
        let Some(c) = front.get(slot) else {
            self.scratch = json;
            return false;
        };
        // Bytes queued in this round may only be waiting for the write that follows it:
        // the socket takes them first, and only what it does not take counts. A
        // connection with nothing queued since its last write attempt has had its chance
        // (the socket took what it could): it is not written again for each message
        // aimed at it, so a peer that does not read costs no system call per shed offer.
        let over = over(c, front)
            && (!c.state.queued_since_write || {
                front.write(slot, self);
                front.get(slot).is_none_or(|c| over(c, front))
            });
        let sent = if over {
            add(&self.counters().relayed_shed, 1);
            false
        } else {
            self.send_json(slot, &json, front)
        };
        self.scratch = json;
        sent
    }

    fn send_to_slot(
        &mut self,
        slot: usize,
        message: &OutMessage<'_>,
        front: &mut Front<WsConn>,
    ) -> bool {
        let mut json = std::mem::take(&mut self.scratch);
        json.clear();
        write_out_message(message, &mut json);
        let sent = self.send_json(slot, &json, front);
        self.scratch = json;
        // Relayed offers and answers are counted by the caller, as relays.
        let kind = match message {
            OutMessage::AnnounceResponse { .. } => Some(ResponseKind::Announce),
            OutMessage::ScrapeResponse { .. } => Some(ResponseKind::Scrape),
            OutMessage::Failure { .. } => Some(ResponseKind::Error),
            OutMessage::Offer { .. } | OutMessage::Answer { .. } => None,
        };
        if sent
            && let Some(kind) = kind
            && let Some(c) = front.get(slot)
        {
            self.counters().response(kind, Family::of(c.peer_ip));
        }
        sent
    }

    /// Queues one text frame; a connection that cannot take it is closed.
    fn send_json(&mut self, slot: usize, json: &[u8], front: &mut Front<WsConn>) -> bool {
        self.queue_text(slot, json, None, front)
    }

    /// Queues one text frame whose payload is `json` then `shared` (referenced, not
    /// copied); a connection that cannot take it is closed.
    fn queue_text(
        &mut self,
        slot: usize,
        json: &[u8],
        shared: Option<&Arc<[u8]>>,
        front: &mut Front<WsConn>,
    ) -> bool {
        let max = self.settings.max_outgoing_bytes;
        let payload = json.len() + shared.map_or(0, |body| body.len());
        let Some(c) = front.get(slot) else {
            return false;
        };
        if !c.state.session.is_open() {
            return false;
        }
        let frame = payload + MAX_FRAME_HEADER;
        let unsent = c.out.unsent();
        let queued_total = front.queued_now(c).saturating_add(frame);
        let over_total = queued_total > self.settings.max_outgoing_bytes_total && unsent > 0;
        if unsent.saturating_add(frame) > max || over_total {
            // It does not read what it is sent: disconnect rather than buffer for it.
            self.conns.slow_readers.fetch_add(1, Ordering::Relaxed);
            front.close(slot, self);
            return false;
        }
        let Some(c) = front.get_mut(slot) else {
            return false;
        };
        c.out.compact();
        match shared {
            None => write_frame(c.out.buf_mut(), FrameKind::Text, json),
            Some(body) => {
                write_frame_header(c.out.buf_mut(), FrameKind::Text, payload);
                c.out.buf_mut().extend_from_slice(json);
                c.out.push_shared(Arc::clone(body));
            }
        }
        c.state.queued_since_write = true;
        front.mark_dirty(slot);
        true
    }

    /// Takes the peers of the connection in `slot` out of their swarms now, while the
    /// connection itself stays until its last bytes are out.
    fn leave_swarms(&mut self, slot: usize, front: &mut Front<WsConn>) {
        let connection = self.connection_ref(slot, front);
        let Some(c) = front.get_mut(slot) else {
            return;
        };
        let swarms = std::mem::take(&mut c.state.swarms);
        self.leave(connection, swarms, front);
    }

    /// Sends the departures of `connection`'s peers to their request workers.
    fn leave(
        &mut self,
        connection: ConnectionRef,
        swarms: Vec<(InfoHash, PeerId)>,
        front: &mut Front<WsConn>,
    ) {
        for (info_hash, peer_id) in swarms {
            let shard = self.router.shard(&info_hash);
            let leave = WsRequest::Leave {
                info_hash,
                peer_id,
                connection,
            };
            self.push_request(shard, leave, front);
        }
    }

    /// After a reload of the passkeys, closes the connections whose passkey is no longer
    /// in force (close code 1008), and takes their peers out of their swarms at once, so
    /// that no other peer's offer reaches them meanwhile.
    fn revoke(&mut self, front: &mut Front<WsConn>) {
        let Some(check) = &mut self.private else {
            return;
        };
        if !check.passkeys_changed() {
            return;
        }
        let revoked: Vec<usize> = front
            .iter_mut()
            .filter(|(_, c)| {
                c.state.session.is_open() && check.check_passkey(c.state.passkey).is_err()
            })
            .map(|(slot, _)| slot)
            .collect();
        for slot in revoked {
            log::debug!("closing a connection whose passkey was revoked");
            self.fail_connection(slot, close_code::POLICY_VIOLATION, front);
            self.leave_swarms(slot, front);
        }
    }
}

/// Counts one more scrape reply on its way for the connection in `slot`.
fn expect_reply(slot: usize, front: &mut Front<WsConn>) {
    if let Some(c) = front.get_mut(slot) {
        c.state.expect_reply(Awaited::Scrape);
    }
}

/// Counts a scrape reply come for the connection in `slot` (see [`reply_came`]).
fn replied(slot: usize, front: &mut Front<WsConn>) {
    reply_came(slot, Awaited::Scrape, front);
}

/// Counts the reply `what` come for the connection in `slot`, and reads it again if
/// that was all its reading waited for.
fn reply_came(slot: usize, what: Awaited, front: &mut Front<WsConn>) {
    let Some(c) = front.get_mut(slot) else {
        return;
    };
    c.state.reply_came(what);
    if c.read_paused && c.state.session.is_open() && c.state.may_read() {
        c.read_paused = false;
        front.ready(slot);
    }
}

/// Starts closing the connection in `slot`: nothing more is read or queued, and it closes
/// once its last bytes (the session's close frame among them) are out.
fn start_closing(slot: usize, front: &mut Front<WsConn>) {
    if let Some(c) = front.get_mut(slot) {
        c.state.closing.get_or_insert_with(Instant::now);
        c.read_buf = Vec::new();
        front.mark_dirty(slot);
    }
}

/// Moves the control frames the session has waiting into the connection's bytes: the
/// close frame, or a pong if it fits within `max_unsent` bytes waiting for this
/// connection (the session gives one only once the one before is written). Returns
/// whether any was queued.
fn queue_control(c: &mut Conn<WsConn>, max_unsent: usize) -> bool {
    if c.out.passed(c.state.control_end) {
        c.state.session.control_flushed();
    }
    if !c.state.session.control_waiting() {
        return false;
    }
    c.out.compact();
    let room = max_unsent.saturating_sub(c.out.unsent());
    if c.state.session.write_control(c.out.buf_mut(), room) == 0 {
        return false;
    }
    c.state.control_end = c.out.mark();
    true
}

fn scrape_failure(reason: &str) -> OutMessage<'_> {
    OutMessage::Failure {
        reason,
        action: Some(Action::Scrape),
        info_hash: None,
    }
}

/// The plain page `GET /` answers.
fn index_page(port: u16, tls: bool) -> String {
    let scheme = if tls { "wss" } else { "ws" };
    format!(
        "shoal WebTorrent tracker (WebSocket)\n\n\
         Announce URL: {scheme}://<this host>:{port}\n"
    )
}
