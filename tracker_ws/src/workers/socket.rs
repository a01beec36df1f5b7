//! Socket worker: accepts connections on its listener, hands what it reads to each
//! connection's WebSocket session (`tracker_ws_protocol::session`: the upgrade, frames,
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

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use tracker_common::net::address_limit::{AddressLimit, AddressPermit};
use tracker_common::net::ready::ReadyQueue;
use tracker_common::net::shared_bytes::{SharedBodies, write_round_shared};
use tracker_common::net::slots::Slots;
use tracker_common::net::tls::SharedServerConfig;
use tracker_common::net::transport::{Accepted, Linger, Transport, accept_one, linger, read_round};
use tracker_common::observe::statistics::{
    Family, RateLimitedWarning, RequestKind, ResponseKind, SocketCounters, Statistics, add,
};
use tracker_common::private::accounting::AccountInfo;
use tracker_common::private::passkey::{PasskeyParam, PrivateCheck, Refusal};
use tracker_common::runtime::channel::{WeightedReceiver, WeightedSender};
use tracker_common::runtime::request_worker::{RequestBatch, RequestOutbox};
use tracker_common::runtime::supervisor::ShutdownFlag;
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

/// Token of the listening socket.
const LISTENER_TOKEN: Token = Token(usize::MAX - 1);
/// Token of the waker that request workers use after sending responses.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX - 2);
/// A split scrape whose parts have not all come back by then is dropped.
const PENDING_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted per wake-up, so that a connect flood cannot starve the others.
const MAX_ACCEPTS_PER_ROUND: usize = 256;
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
const ERR_TOO_MANY_SWARMS: &str = "too many torrents on one connection";
const ERR_ANSWER_NOT_IN_SWARM: &str = "answer for a torrent this connection has not announced";

/// Settings a socket worker needs from the config.
#[derive(Clone, Debug)]
pub(crate) struct SocketWorkerSettings {
    pub(crate) max_handshake_bytes: usize,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_offers: usize,
    pub(crate) max_swarms_per_connection: usize,
    pub(crate) max_outgoing_bytes: usize,
    pub(crate) max_outgoing_bytes_total: usize,
    pub(crate) max_scrape_torrents: usize,
    pub(crate) max_pending_scrapes: usize,
    pub(crate) poll_timeout: Duration,
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

/// Counts only the WebSocket tracker keeps.
#[derive(Debug, Default)]
pub(crate) struct WsCounters {
    /// Connections open now, over all socket workers (the count the metrics read).
    pub(crate) open: Arc<AtomicUsize>,
    /// Connections closed at once because `ws.max_connections` were open.
    pub(crate) refused: AtomicU64,
    /// Connections closed at once because their address had
    /// `ws.max_connections_per_ip` open.
    pub(crate) refused_per_ip: AtomicU64,
    /// Connections closed for sending nothing for the idle timeout.
    pub(crate) timed_out: AtomicU64,
    /// Connections closed for not reading what was sent to them.
    pub(crate) slow_readers: AtomicU64,
    /// Bytes waiting to be sent, over all connections (as of each connection's last
    /// write attempt).
    pub(crate) queued_bytes: AtomicUsize,
}

/// One socket worker and everything it owns.
pub(crate) struct SocketWorker {
    pub(crate) index: usize,
    pub(crate) listener: TcpListener,
    pub(crate) poll: Poll,
    pub(crate) request_senders: Vec<WeightedSender<RequestBatch<WsRequest>>>,
    pub(crate) response_receiver: WeightedReceiver<WsResponses>,
    pub(crate) router: ShardRouter,
    pub(crate) access_list: AccessListCache,
    pub(crate) settings: SocketWorkerSettings,
    pub(crate) statistics: Arc<Statistics>,
    pub(crate) ws_counters: Arc<WsCounters>,
    /// Open connections per client address, shared by all socket workers.
    pub(crate) per_address: Arc<AddressLimit>,
    /// The TLS config in force, when the port speaks TLS.
    pub(crate) tls: Option<SharedServerConfig>,
    pub(crate) shutdown: ShutdownFlag,
    /// Private mode's check; `None` in public mode.
    pub(crate) private: Option<PrivateCheck>,
}

struct Connection {
    stream: Transport,
    /// Its place under `ws.max_connections_per_ip`, given back when it is dropped.
    _address_permit: AddressPermit,
    /// Closing after its last bytes (see [`linger`]).
    linger: Linger,
    /// The client's address family, for the counters.
    family: Family,
    /// The WebSocket protocol's state: the upgrade, a message in fragments, the pong and
    /// the close frame waiting.
    session: Session,
    /// Since when nothing more is read or queued; the connection closes once its last
    /// bytes are out, or [`CLOSE_GRACE`] after that.
    closing: Option<Instant>,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    written: usize,
    /// Shared bodies (a cached full scrape's) queued between the write buffer's bytes.
    shared: SharedBodies,
    /// The part of the unsent bytes counted in `WsCounters::queued_bytes`.
    accounted: usize,
    /// The last frame (or, before the upgrade, the accept).
    last_received: Instant,
    ping_sent: bool,
    /// Where the last control frame the session gave ends in `write_buf`: once `written`
    /// has passed it, the session hears that it is out (see [`Self::queue_control`]).
    control_end: usize,
    /// The client closed its side: read no more.
    peer_closed: bool,
    /// Reading stopped before the socket was drained: read again once there is room.
    read_paused: bool,
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
    /// Already in the worker's list of connections with bytes to send.
    dirty: bool,
    /// The torrents this connection is a peer of, with the peer id it announced.
    swarms: Vec<(InfoHash, PeerId)>,
    /// The passkey of the upgrade request's path, checked at every announce in private
    /// mode (a passkey may be revoked while the connection lives).
    passkey: PasskeyParam,
}

impl Connection {
    fn unsent(&self) -> usize {
        self.write_buf
            .len()
            .saturating_sub(self.written)
            .saturating_add(self.shared.unsent())
    }

    /// Whether its messages may be read: not too many replies are still to come.
    fn may_read(&self) -> bool {
        self.awaiting.len() < MAX_AWAITING
    }

    /// Moves the control frames the session has waiting into the write buffer: the close
    /// frame, or a pong if it fits within `max_unsent` bytes waiting for this connection
    /// (the session gives one only once the one before is written). Returns whether any
    /// was queued.
    fn queue_control(&mut self, max_unsent: usize) -> bool {
        if self.written >= self.control_end {
            self.session.control_flushed();
        }
        if !self.session.control_waiting() {
            return false;
        }
        self.compact();
        let room = max_unsent.saturating_sub(self.unsent());
        if self.session.write_control(&mut self.write_buf, room) == 0 {
            return false;
        }
        self.control_end = self.write_buf.len();
        true
    }

    /// Drops the written half of the write buffer (once at least half is written), so
    /// that a connection that is always sent something does not grow it for ever.
    fn compact(&mut self) {
        if self.written > 0 && self.written >= self.write_buf.len() / 2 {
            self.write_buf.drain(..self.written);
            self.shared.shift(self.written);
            self.control_end = self.control_end.saturating_sub(self.written);
            self.written = 0;
        }
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
fn current(slots: &Slots<Connection>, connection: u64) -> Option<usize> {
    let (slot, generation) = slot_and_generation(connection);
    let slot = slot as usize;
    slots.is_current(slot, generation).then_some(slot)
}

/// The worker's loop state, apart from sockets and channels.
struct State {
    slots: Slots<Connection>,
    outbox: RequestOutbox<WsRequest>,
    pending_scrapes: PendingScrapes<(u64, Vec<InfoHash>)>,
    accept_warning: RateLimitedWarning,
    /// Accepting stopped for want of descriptors (EMFILE): the waiting connections raise
    /// no new edge, so accepting is retried when a connection closes and at
    /// housekeeping.
    accept_blocked: bool,
    /// Retry accepting at the next round (a descriptor was freed while blocked).
    retry_accept: bool,
    /// Reused for each message's JSON.
    scratch: Vec<u8>,
    /// Connections with bytes queued since they were last written.
    dirty: Vec<usize>,
    /// Connections whose reading stopped before the socket was drained (or their part
    /// of a turn was used), read again one turn each.
    resume: ReadyQueue,
    /// Connections not read while the response channel was backlogged.
    deferred: Vec<usize>,
    /// Departures a full channel refused, sent again at the next round.
    leaves: Vec<(usize, WsRequest)>,
    /// The cached full scrape, shared by its answers, and the one being gathered (its
    /// waiters by connection id).
    full_scrape: FullScrapes<u64>,
}

/// A full scrape's body: the JSON message a scrape of those torrents is answered with.
fn write_full_scrape_body(files: &[ScrapeFile], out: &mut Vec<u8>) {
    write_out_message(&OutMessage::ScrapeResponse { files }, out);
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
            outbox: RequestOutbox::weighed(
                self.index,
                std::mem::take(&mut self.request_senders),
                WsRequest::weight,
            ),
            pending_scrapes: PendingScrapes::new(
                self.settings.max_pending_scrapes,
                PENDING_SCRAPE_TIMEOUT,
            ),
            accept_warning: RateLimitedWarning::new(Duration::from_secs(10)),
            accept_blocked: false,
            retry_accept: false,
            scratch: Vec::new(),
            dirty: Vec::new(),
            resume: ReadyQueue::default(),
            deferred: Vec::new(),
            leaves: Vec::new(),
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
            // What waited for the responses is read now that they are taken.
            for slot in state.deferred.drain(..) {
                state.resume.push(slot);
            }
            // One turn: each connection with work left reads (at most a chunk) and
            // handles once; one that has more waits for the next turn, after the poll.
            let mut turn = state.resume.turn();
            while let Some(slot) = state.resume.next(&mut turn) {
                // Reading was paused: a FIN may have come meanwhile, its edge consumed.
                self.read(slot, &mut state, true);
            }
            self.write_dirty(&mut state);
            self.flush_requests(&mut state);
            if state.outbox.receiver_gone() && !self.shutdown.is_set() {
                anyhow::bail!("request worker channel closed");
            }
            if last_housekeeping.elapsed() >= Duration::from_secs(1) {
                self.housekeeping(&mut state);
                // Departures (of revoked connections, say) before the close frames that
                // tell their clients.
                self.flush_requests(&mut state);
                self.write_dirty(&mut state);
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
            let (stream, family, address_permit) = match accept_one(
                &self.listener,
                &self.ws_counters.open,
                self.settings.max_connections,
                &self.per_address,
                self.tls.as_ref(),
                &mut state.accept_warning,
            ) {
                Accepted::Connection(stream, addr, permit) => {
                    (stream, Family::of(addr.ip()), permit)
                }
                Accepted::Refused => {
                    self.ws_counters.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Accepted::OverAddressLimit => {
                    self.ws_counters
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
                stream,
                _address_permit: address_permit,
                linger: Linger::default(),
                family,
                session: Session::new(),
                closing: None,
                read_buf: Vec::new(),
                write_buf: Vec::new(),
                written: 0,
                shared: SharedBodies::default(),
                accounted: 0,
                last_received: Instant::now(),
                ping_sent: false,
                control_end: 0,
                peer_closed: false,
                read_paused: false,
                deferred: false,
                awaiting: Vec::new(),
                awaiting_since: Instant::now(),
                queued_since_write: false,
                dirty: false,
                swarms: Vec::new(),
                passkey: PasskeyParam::Missing,
            };
            let slot = state.slots.insert(connection);
            let registered = state.slots.get_mut(slot).map(|c| {
                self.poll.registry().register(
                    c.stream.socket(),
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )
            });
            match registered {
                Some(Err(err)) => {
                    log::warn!("register connection: {err}");
                    self.close(slot, state);
                }
                // Bytes may have come with the connection: read them now.
                _ => state.resume.push(slot),
            }
        }
        true
    }

    /// Reads what the connection has and handles every whole frame in it. Reading stops
    /// early while unsent bytes pass half the outgoing bound, until they are out, and
    /// waits while the response channel is backlogged: announces read then would only
    /// make the request workers compute offers and replies that find no room, so the
    /// responses are taken first. `may_be_closed`: see [`read_round`].
    fn read(&mut self, slot: usize, state: &mut State, may_be_closed: bool) {
        let backlogged = self.response_receiver.backlogged();
        let failed = {
            let Some(c) = state.slots.get_mut(slot) else {
                return;
            };
            if backlogged && c.session.is_open() && !c.peer_closed {
                // Read again (as if a close may have come unseen) once responses are taken.
                if !c.deferred {
                    c.deferred = true;
                    state.deferred.push(slot);
                }
                return;
            }
            c.deferred = false;
            if c.closing.is_some() || c.peer_closed {
                c.read_paused = false;
                false
            } else {
                let blocked = !c.may_read();
                let before = c.read_buf.len();
                let round = read_round(&mut c.stream, &mut c.read_buf, may_be_closed, |_| blocked);
                add(
                    &self.statistics.socket(self.index).bytes_received,
                    c.read_buf.len().saturating_sub(before) as u64,
                );
                c.peer_closed |= round.peer_closed;
                c.read_paused = !round.drained;
                round.failed
            }
        };
        if failed {
            self.close(slot, state);
            return;
        }
        self.handle_input(slot, state);
        self.write(slot, state);
        if let Some(c) = state.slots.get_mut(slot) {
            if c.peer_closed && c.closing.is_none() {
                // The client is gone or half-closed: nothing more will come from it.
                c.session.end_of_input();
                c.closing = Some(Instant::now());
                c.read_buf = Vec::new();
                self.write(slot, state);
            } else if c.read_paused && c.closing.is_none() && c.may_read() {
                c.read_paused = false;
                state.resume.push(slot);
            }
        }
    }

    /// Hands the read buffer to the connection's session, one frame (or the upgrade
    /// request) at a time, and acts on what it finds there, until it needs more bytes or
    /// reads no more.
    fn handle_input(&mut self, slot: usize, state: &mut State) {
        let Some(c) = state.slots.get_mut(slot) else {
            return;
        };
        if c.closing.is_some() {
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
            let (Some(c), Some(rest)) = (state.slots.get_mut(slot), buf.get_mut(pos..)) else {
                return;
            };
            let Received { consumed, event } = c.session.receive(rest, &limits);
            pos += consumed;
            if event.is_frame() {
                // Any frame, pings and pongs included, shows the client alive: a client
                // that only pings holds no more than an idle one (a pong's worth).
                c.last_received = Instant::now();
                c.ping_sent = false;
            }
            match event {
                Event::Incomplete | Event::NotReading => break,
                Event::Upgrade { origin, passkey } => {
                    self.upgrade(slot, origin.as_deref(), passkey, state);
                }
                Event::IndexPage => {
                    let page = index_page(self.settings.port, self.settings.tls);
                    self.answer_http(slot, 200, "OK", &page, state);
                }
                Event::Refused { status, reason } => {
                    add(&self.counters().bad_requests, 1);
                    self.answer_http(slot, status, reason, &format!("{reason}\n"), state);
                }
                Event::Message(text) => self.handle_message(slot, &text, state),
                Event::Fragment | Event::Ping | Event::Pong => {}
                // The session has queued the close frame that answers.
                Event::Close { .. } => start_closing(slot, state),
                Event::Failed { .. } => {
                    add(&self.counters().bad_requests, 1);
                    start_closing(slot, state);
                }
            }
        }
        buf.drain(..pos.min(buf.len()));
        if let Some(c) = state.slots.get_mut(slot)
            && c.session.is_reading()
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
        state: &mut State,
    ) {
        if !self.settings.origin.allows(origin) {
            self.answer_http(slot, 403, "Forbidden", "origin not allowed\n", state);
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
                    self.answer_http(slot, 403, "Forbidden", &body, state);
                    return;
                }
            },
            (None, Some(_)) => {
                add(&self.counters().bad_requests, 1);
                let body = "not found: connect to /PASSKEY/announce\n";
                self.answer_http(slot, 404, "Not Found", body, state);
                return;
            }
        };
        if let Some(c) = state.slots.get_mut(slot) {
            c.passkey = passkey;
            c.session.accept(&mut c.write_buf);
            c.last_received = Instant::now();
        }
    }

    /// Answers the request with a plain HTTP answer, and closes once it is out.
    fn answer_http(
        &mut self,
        slot: usize,
        status: u16,
        reason: &str,
        body: &str,
        state: &mut State,
    ) {
        if let Some(c) = state.slots.get_mut(slot) {
            c.session
                .answer_http(status, reason, body, &mut c.write_buf);
            c.closing = Some(Instant::now());
        }
    }

    /// Closes an open connection with a close frame of `code`, once it is out.
    fn fail_connection(&mut self, slot: usize, code: u16, state: &mut State) {
        if let Some(c) = state.slots.get_mut(slot) {
            c.session.close(code);
        }
        start_closing(slot, state);
    }

    /// Handles one whole text message.
    fn handle_message(&mut self, slot: usize, text: &str, state: &mut State) {
        let limits = Limits {
            max_offers: self.settings.max_offers,
            max_scrape_torrents: self.settings.max_scrape_torrents,
        };
        match parse_in_text(text, &limits) {
            Ok(InMessage::Announce(announce)) => self.announce(slot, announce, state),
            Ok(InMessage::Scrape(scrape)) => self.scrape(slot, scrape, state),
            Err(err) => {
                add(&self.counters().bad_requests, 1);
                log::debug!("bad message: {err}");
                let failure = OutMessage::Failure {
                    reason: err.reason(),
                    action: err.action,
                    info_hash: err.info_hash,
                };
                self.send_to_slot(slot, &failure, state);
            }
        }
    }

    fn connection_ref(&self, slot: usize, state: &State) -> ConnectionRef {
        let slot32 = u32::try_from(slot).unwrap_or(u32::MAX);
        ConnectionRef {
            worker: u16::try_from(self.index).unwrap_or(u16::MAX),
            connection: connection_id(slot32, state.slots.generation(slot)),
        }
    }

    fn announce(&mut self, slot: usize, mut request: AnnounceRequest, state: &mut State) {
        self.count_request(RequestKind::Announce, slot, state);
        let info_hash = request.info_hash;
        let fail = |reason: &'static str| OutMessage::Failure {
            reason,
            action: Some(Action::Announce),
            info_hash: Some(info_hash),
        };
        let account = match self.check_announce(slot, &request, state) {
            Ok(account) => account,
            Err(Some(cause)) => {
                self.send_to_slot(slot, &fail(cause.message()), state);
                return;
            }
            Err(None) => return,
        };
        if !self.access_list.allows(&info_hash) {
            add(&self.counters().access_denied, 1);
            self.send_to_slot(slot, &fail(ERR_NOT_ALLOWED), state);
            return;
        }
        let connection = self.connection_ref(slot, state);
        let shard = self.router.shard(&info_hash);
        let max_swarms = self.settings.max_swarms_per_connection;
        let Some(c) = state.slots.get_mut(slot) else {
            return;
        };
        let place = c.swarms.iter().position(|(hash, _)| *hash == info_hash);
        if let Some(answer) = request.answer.take() {
            // An answer is only relayed: it changes nothing in the swarm.
            if place.is_none() {
                add(&self.counters().bad_requests, 1);
                self.send_to_slot(slot, &fail(ERR_ANSWER_NOT_IN_SWARM), state);
                return;
            }
            let answer = WsRequest::Answer {
                info_hash,
                peer_id: request.peer_id,
                connection,
                answer,
            };
            c.expect_reply(Awaited::Answer);
            self.push_request(shard, answer, state);
            return;
        }
        let previous_peer_id = place.and_then(|i| c.swarms.get(i)).map(|(_, peer)| *peer);
        let refused = match (place, request.event) {
            (Some(i), AnnounceEvent::Stopped) => {
                c.swarms.swap_remove(i);
                false
            }
            (Some(i), _) => {
                if let Some(entry) = c.swarms.get_mut(i) {
                    entry.1 = request.peer_id;
                }
                false
            }
            (None, AnnounceEvent::Stopped) => false,
            (None, _) if c.swarms.len() >= max_swarms => true,
            (None, _) => {
                c.swarms.push((info_hash, request.peer_id));
                false
            }
        };
        if refused {
            self.send_to_slot(slot, &fail(ERR_TOO_MANY_SWARMS), state);
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
        if let Some(c) = state.slots.get_mut(slot) {
            c.expect_reply(Awaited::Announce(info_hash));
        }
        self.push_request(shard, announce, state);
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
        state: &State,
    ) -> Result<Option<AccountInfo>, Option<Refusal>> {
        let Some(private) = &mut self.private else {
            return Ok(None);
        };
        let Some(c) = state.slots.get(slot) else {
            return Err(None);
        };
        if request.answer.is_some() {
            return match private.check_passkey(c.passkey) {
                Ok(_) => Ok(None),
                Err(cause) => {
                    self.statistics.private().refused(cause);
                    Err(None)
                }
            };
        }
        match private.check_announce(c.passkey, &request.peer_id) {
            Ok(passkey) => Ok(Some(AccountInfo {
                passkey,
                uploaded: request.uploaded.unwrap_or(0),
                downloaded: request.downloaded.unwrap_or(0),
            })),
            Err(cause) => {
                self.statistics.private().refused(cause);
                Err(Some(cause))
            }
        }
    }

    /// Private mode's check of a scrape when scrapes need a passkey: the refusal,
    /// counted, or `None` to serve it.
    fn check_scrape(&mut self, slot: usize, state: &State) -> Option<Refusal> {
        let private = self.private.as_mut()?;
        let c = state.slots.get(slot)?;
        let cause = private.check_scrape(c.passkey).err()?;
        self.statistics.private().refused(cause);
        Some(cause)
    }

    /// Counts a request of `kind` from the connection in `slot`.
    fn count_request(&self, kind: RequestKind, slot: usize, state: &State) {
        if let Some(c) = state.slots.get(slot) {
            self.counters().request(kind, c.family);
        }
    }

    fn scrape(&mut self, slot: usize, scrape: ScrapeRequest, state: &mut State) {
        self.count_request(RequestKind::Scrape, slot, state);
        if let Some(cause) = self.check_scrape(slot, state) {
            self.send_to_slot(slot, &scrape_failure(cause.message()), state);
            return;
        }
        let connection = self.connection_ref(slot, state).connection;
        let hashes = match scrape {
            ScrapeRequest::Full => {
                self.full_scrape(slot, connection, state);
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
                self.send_to_slot(slot, &OutMessage::ScrapeResponse { files: &files }, state);
            }
            ScrapeRoute::One { shard, part } => {
                let request = WsRequest::Scrape {
                    part,
                    pending_id: None,
                    connection,
                };
                expect_reply(slot, state);
                self.push_request(shard, request, state);
            }
            ScrapeRoute::Split(parts) => {
                let num_hashes = hashes.len();
                let id = state.pending_scrapes.insert(
                    (connection, hashes),
                    num_hashes,
                    parts.len(),
                    Instant::now(),
                );
                let Some(id) = id else {
                    add(&self.counters().dropped, 1);
                    self.send_to_slot(slot, &scrape_failure(ERR_OVERLOADED), state);
                    return;
                };
                expect_reply(slot, state);
                for (shard, part) in parts {
                    let request = WsRequest::Scrape {
                        part,
                        pending_id: Some(id),
                        connection,
                    };
                    self.push_request(shard, request, state);
                }
            }
        }
    }

    /// Answers a full scrape from the cache, or waits for the one in flight, or starts
    /// one: every request worker sends its busiest torrents.
    fn full_scrape(&mut self, slot: usize, connection: u64, state: &mut State) {
        if self.settings.full_scrape_max_torrents == 0 {
            self.send_to_slot(slot, &scrape_failure(ERR_FULL_SCRAPE), state);
            return;
        }
        expect_reply(slot, state);
        match state.full_scrape.ask(connection, Instant::now()) {
            Ask::Cached { waiter, body } => self.answer_full_scrape(waiter, &body, state),
            Ask::Joined => {}
            Ask::Start { limit } => {
                for shard in 0..state.outbox.num_shards() {
                    self.push_request(shard, WsRequest::FullScrape { limit }, state);
                }
            }
        }
    }

    /// Adds one request worker's part; once all are in, answers everyone waiting with
    /// the one message, now cached.
    fn full_scrape_part(&mut self, files: &[ScrapeFile], state: &mut State) {
        if let Some((body, waiting)) = state.full_scrape.part(files, Instant::now()) {
            for connection in waiting {
                self.answer_full_scrape(connection, &body, state);
            }
        }
    }

    /// Queues a full scrape's answer for connection id `connection`: a frame header,
    /// then a reference to the shared message.
    fn answer_full_scrape(&mut self, connection: u64, body: &Arc<[u8]>, state: &mut State) {
        let Some(slot) = current(&state.slots, connection) else {
            return;
        };
        replied(slot, state);
        if self.queue_text(slot, &[], Some(body), state)
            && let Some(c) = state.slots.get(slot)
        {
            self.counters().response(ResponseKind::Scrape, c.family);
        }
    }

    /// Queues a request for a request worker; handles what a full channel refuses.
    fn push_request(&mut self, shard: usize, request: WsRequest, state: &mut State) {
        let refused = state.outbox.push(shard, request);
        self.refused(refused, shard, state);
    }

    fn flush_requests(&mut self, state: &mut State) {
        // Departures refused earlier go first.
        for (shard, leave) in std::mem::take(&mut state.leaves) {
            let refused = state.outbox.push(shard, leave);
            self.refused(refused, shard, state);
        }
        let refused = state.outbox.flush();
        self.refused(refused, usize::MAX, state);
    }

    /// Requests a full channel refused: announces and scrapes get a failure, departures
    /// are sent again later (a peer must not outlive its connection in the swarm), and
    /// answers are dropped (the offerer's WebRTC attempt times out).
    fn refused(&mut self, refused: Vec<WsRequest>, shard: usize, state: &mut State) {
        for request in refused {
            match request {
                WsRequest::Announce { params, .. } => {
                    let what = Awaited::Announce(params.info_hash);
                    self.reply_came_to(params.connection.connection, what, state);
                    add(&self.counters().dropped, 1);
                    let failure = OutMessage::Failure {
                        reason: ERR_OVERLOADED,
                        action: Some(Action::Announce),
                        info_hash: Some(params.info_hash),
                    };
                    self.send(params.connection.connection, &failure, state);
                }
                WsRequest::Scrape { connection, .. } => {
                    self.replied_to(connection, state);
                    add(&self.counters().dropped, 1);
                    self.send(connection, &scrape_failure(ERR_OVERLOADED), state);
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
                    state.leaves.push((shard, leave));
                }
                WsRequest::Answer { connection, .. } => {
                    self.reply_came_to(connection.connection, Awaited::Answer, state);
                    add(&self.counters().dropped, 1);
                }
                WsRequest::FullScrape { .. } => {
                    add(&self.counters().dropped, 1);
                }
            }
        }
    }

    /// Writes what the request workers sent.
    fn take_responses(&mut self, state: &mut State) {
        loop {
            let batch = match self.response_receiver.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            for response in batch.0 {
                self.response(response, state);
            }
        }
    }

    fn response(&mut self, response: WsResponse, state: &mut State) {
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
                self.reply_came_to(connection, Awaited::Announce(info_hash), state);
                self.send(connection, &reply, state);
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
                if self.relay(connection, &message, state) {
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
                if self.relay(connection, &message, state) {
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
                self.replied_to(connection, state);
                self.send(
                    connection,
                    &OutMessage::ScrapeResponse { files: &files },
                    state,
                );
            }
            WsResponse::Scrape {
                pending_id: Some(id),
                files,
                ..
            } => {
                let part: Vec<(u16, ScrapeCounts)> =
                    files.into_iter().map(|(pos, _, c)| (pos, c)).collect();
                if let Some(((connection, hashes), counts)) = state.pending_scrapes.merge(id, &part)
                {
                    let files: Vec<(InfoHash, ScrapeCounts)> =
                        hashes.into_iter().zip(counts).collect();
                    self.replied_to(connection, state);
                    self.send(
                        connection,
                        &OutMessage::ScrapeResponse { files: &files },
                        state,
                    );
                }
            }
            WsResponse::FullScrape { files } => self.full_scrape_part(&files, state),
            WsResponse::AnswerTaken { connection, count } => {
                for _ in 0..count {
                    self.reply_came_to(connection, Awaited::Answer, state);
                }
            }
        }
    }

    /// Counts a scrape reply come (or given up) for connection id `connection`, if it is
    /// still open.
    fn replied_to(&mut self, connection: u64, state: &mut State) {
        if let Some(slot) = current(&state.slots, connection) {
            replied(slot, state);
        }
    }

    /// Counts the reply `what` come (or given up) for connection id `connection`, if it
    /// is still open.
    fn reply_came_to(&mut self, connection: u64, what: Awaited, state: &mut State) {
        if let Some(slot) = current(&state.slots, connection) {
            reply_came(slot, what, state);
        }
    }

    /// Queues `message` for connection id `connection`, if it is still open; returns
    /// whether it was queued.
    fn send(&mut self, connection: u64, message: &OutMessage<'_>, state: &mut State) -> bool {
        match current(&state.slots, connection) {
            Some(slot) => self.send_to_slot(slot, message, state),
            None => false,
        }
    }

    /// Queues a relayed offer or answer for connection id `connection`, unless the
    /// connection has bytes waiting and the message would put more than half its
    /// outgoing bound, or half the whole tracker's, waiting: such a message
    /// is shed (counted) rather than let grow the queue of a client that is not keeping
    /// up. Only replies to its own messages then reach the bounds, and a client that
    /// does not read those is disconnected. Returns whether it was queued.
    fn relay(&mut self, connection: u64, message: &OutMessage<'_>, state: &mut State) -> bool {
        let Some(slot) = current(&state.slots, connection) else {
            return false;
        };
        let mut json = std::mem::take(&mut state.scratch);
        json.clear();
        write_out_message(message, &mut json);
        let frame = json.len() + MAX_FRAME_HEADER;
        let (max, max_total) = (
            self.settings.max_outgoing_bytes,
            self.settings.max_outgoing_bytes_total,
        );
        let over = move |c: &Connection, queued: &AtomicUsize| {
            let unsent = c.unsent();
            // A connection with nothing waiting takes any one message (the config makes
            // sure its bound holds the largest), so that big offers still reach idle
            // peers.
            unsent > 0
                && (unsent + frame > max / 2 || queued_now(queued, c) + frame > max_total / 2)
        };
        let Some(c) = state.slots.get(slot) else {
            state.scratch = json;
            return false;
        };
        // Bytes queued in this round may only be waiting for the write that follows it:
        // the socket takes them first, and only what it does not take counts. A
        // connection with nothing queued since its last write attempt has had its chance
        // (the socket took what it could): it is not written again for each message
        // aimed at it, so a peer that does not read costs no system call per shed offer.
        let over = over(c, &self.ws_counters.queued_bytes)
            && (!c.queued_since_write || {
                self.write(slot, state);
                state
                    .slots
                    .get(slot)
                    .is_none_or(|c| over(c, &self.ws_counters.queued_bytes))
            });
        let sent = if over {
            add(&self.counters().relayed_shed, 1);
            false
        } else {
            self.send_json(slot, &json, state)
        };
        state.scratch = json;
        sent
    }

    fn send_to_slot(&mut self, slot: usize, message: &OutMessage<'_>, state: &mut State) -> bool {
        let mut json = std::mem::take(&mut state.scratch);
        json.clear();
        write_out_message(message, &mut json);
        let sent = self.send_json(slot, &json, state);
        state.scratch = json;
        // Relayed offers and answers are counted by the caller, as relays.
        let kind = match message {
            OutMessage::AnnounceResponse { .. } => Some(ResponseKind::Announce),
            OutMessage::ScrapeResponse { .. } => Some(ResponseKind::Scrape),
            OutMessage::Failure { .. } => Some(ResponseKind::Error),
            OutMessage::Offer { .. } | OutMessage::Answer { .. } => None,
        };
        if sent
            && let Some(kind) = kind
            && let Some(c) = state.slots.get(slot)
        {
            self.counters().response(kind, c.family);
        }
        sent
    }

    /// Queues one text frame; a connection that cannot take it is closed.
    fn send_json(&mut self, slot: usize, json: &[u8], state: &mut State) -> bool {
        self.queue_text(slot, json, None, state)
    }

    /// Queues one text frame whose payload is `json` then `shared` (referenced, not
    /// copied); a connection that cannot take it is closed.
    fn queue_text(
        &mut self,
        slot: usize,
        json: &[u8],
        shared: Option<&Arc<[u8]>>,
        state: &mut State,
    ) -> bool {
        let max = self.settings.max_outgoing_bytes;
        let payload = json.len() + shared.map_or(0, |body| body.len());
        let Some(c) = state.slots.get_mut(slot) else {
            return false;
        };
        if !c.session.is_open() {
            return false;
        }
        let frame = payload + MAX_FRAME_HEADER;
        let unsent = c.unsent();
        let queued_total = queued_now(&self.ws_counters.queued_bytes, c).saturating_add(frame);
        let over_total = queued_total > self.settings.max_outgoing_bytes_total && unsent > 0;
        if unsent.saturating_add(frame) > max || over_total {
            // It does not read what it is sent: disconnect rather than buffer for it.
            self.ws_counters
                .slow_readers
                .fetch_add(1, Ordering::Relaxed);
            self.close(slot, state);
            return false;
        }
        c.compact();
        match shared {
            None => write_frame(&mut c.write_buf, FrameKind::Text, json),
            Some(body) => {
                write_frame_header(&mut c.write_buf, FrameKind::Text, payload);
                c.write_buf.extend_from_slice(json);
                c.shared.push(c.write_buf.len(), Arc::clone(body));
            }
        }
        c.queued_since_write = true;
        mark_dirty(c, slot, &mut state.dirty);
        true
    }

    fn write_dirty(&mut self, state: &mut State) {
        while let Some(slot) = state.dirty.pop() {
            if let Some(c) = state.slots.get_mut(slot) {
                c.dirty = false;
            }
            self.write(slot, state);
        }
    }

    /// Writes what the socket takes, and closes a closing connection when all is out.
    fn write(&mut self, slot: usize, state: &mut State) {
        let Some(c) = state.slots.get_mut(slot) else {
            return;
        };
        c.queue_control(self.settings.max_outgoing_bytes);
        let round = write_round_shared(&mut c.stream, &c.write_buf, &mut c.written, &mut c.shared);
        c.queued_since_write = false;
        add(
            &self.statistics.socket(self.index).bytes_sent,
            round.wrote as u64,
        );
        account(&self.ws_counters.queued_bytes, c);
        let mut done = false;
        if round.all_out {
            // Everything out: an idle connection keeps no buffer.
            c.write_buf = Vec::new();
            c.written = 0;
            c.control_end = 0;
            // A ping came while the last pong was on its way: its turn now.
            let queued = c.queue_control(self.settings.max_outgoing_bytes);
            if queued {
                mark_dirty(c, slot, &mut state.dirty);
            }
            // Input still unread would turn the close into a reset that can destroy the
            // last bytes (a 400 answer, a close frame): linger unless the client has
            // closed its side. CLOSE_GRACE bounds it.
            done = c.closing.is_some()
                && !queued
                && (c.peer_closed || linger(&mut c.stream, &mut c.linger));
        }
        if round.failed || done {
            self.close(slot, state);
        }
    }

    /// Closes the connection and takes its peers out of their swarms.
    fn close(&mut self, slot: usize, state: &mut State) {
        let connection = self.connection_ref(slot, state);
        let Some(mut c) = state.slots.remove(slot) else {
            return;
        };
        let _ = self.poll.registry().deregister(c.stream.socket());
        self.ws_counters.open.fetch_sub(1, Ordering::AcqRel);
        // A descriptor is freed: a connection waiting in the backlog may now be taken.
        state.retry_accept |= state.accept_blocked;
        self.ws_counters
            .queued_bytes
            .fetch_sub(c.accounted, Ordering::Relaxed);
        self.leave(connection, c.swarms, state);
    }

    /// Takes the peers of the connection in `slot` out of their swarms now, while the
    /// connection itself stays until its last bytes are out.
    fn leave_swarms(&mut self, slot: usize, state: &mut State) {
        let connection = self.connection_ref(slot, state);
        let Some(c) = state.slots.get_mut(slot) else {
            return;
        };
        let swarms = std::mem::take(&mut c.swarms);
        self.leave(connection, swarms, state);
    }

    /// Sends the departures of `connection`'s peers to their request workers.
    fn leave(
        &mut self,
        connection: ConnectionRef,
        swarms: Vec<(InfoHash, PeerId)>,
        state: &mut State,
    ) {
        for (info_hash, peer_id) in swarms {
            let shard = self.router.shard(&info_hash);
            let leave = WsRequest::Leave {
                info_hash,
                peer_id,
                connection,
            };
            self.push_request(shard, leave, state);
        }
    }

    /// After a reload of the passkeys, closes the connections whose passkey is no longer
    /// in force (close code 1008), and takes their peers out of their swarms at once, so
    /// that no other peer's offer reaches them meanwhile.
    fn revoke(&mut self, state: &mut State) {
        let Some(check) = &mut self.private else {
            return;
        };
        if !check.passkeys_changed() {
            return;
        }
        let revoked: Vec<usize> = state
            .slots
            .iter_mut()
            .filter(|(_, c)| c.session.is_open() && check.check_passkey(c.passkey).is_err())
            .map(|(slot, _)| slot)
            .collect();
        for slot in revoked {
            log::debug!("closing a connection whose passkey was revoked");
            self.fail_connection(slot, close_code::POLICY_VIOLATION, state);
            self.leave_swarms(slot, state);
        }
    }

    /// Pings quiet connections, closes silent ones and finished closings, drops split
    /// scrapes whose parts did not all come back, and has accepting retried if it was
    /// blocked (descriptors another worker freed).
    fn housekeeping(&mut self, state: &mut State) {
        self.revoke(state);
        let now = Instant::now();
        let timeout = self.settings.idle_timeout;
        let mut to_close = Vec::new();
        let mut lost = Vec::new();
        for (slot, c) in state.slots.iter_mut() {
            let quiet = now.saturating_duration_since(c.last_received);
            match (c.closing, c.session.phase()) {
                (Some(since), _) => {
                    if now.saturating_duration_since(since) > CLOSE_GRACE {
                        to_close.push(slot);
                    }
                }
                // Not open and not closing: the upgrade request is not all there yet (or,
                // were a closed session ever left without `closing`, timed out all the
                // same rather than kept for ever).
                (None, Phase::Handshake | Phase::Answering | Phase::Closed) if quiet > timeout => {
                    self.ws_counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    to_close.push(slot);
                }
                // Closed only once pinged at an earlier round: rounds are a second or more
                // apart, so one may pass over the second half of the timeout unseen.
                (None, Phase::Open) if quiet > timeout && c.ping_sent => {
                    self.ws_counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    to_close.push(slot);
                }
                (None, Phase::Open) if quiet > timeout / 2 && !c.ping_sent => {
                    write_frame(&mut c.write_buf, FrameKind::Ping, b"");
                    c.ping_sent = true;
                    mark_dirty(c, slot, &mut state.dirty);
                }
                (None, _) => {}
            }
            if !c.awaiting.is_empty()
                && now.saturating_duration_since(c.awaiting_since) > AWAITING_TIMEOUT
            {
                // Lost under overload (a request worker dropped the replies on a full
                // channel, or a split scrape expired): each is answered "overloaded"
                // rather than left without an answer, and the connection is read again.
                lost.push((slot, std::mem::take(&mut c.awaiting)));
                if c.read_paused {
                    c.read_paused = false;
                    state.resume.push(slot);
                }
            }
        }
        for slot in to_close {
            self.close(slot, state);
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
                self.send_to_slot(slot, &failure, state);
            }
        }
        state.retry_accept |= state.accept_blocked;
        state.pending_scrapes.expire(now);
        for connection in state.full_scrape.expire(now) {
            self.replied_to(connection, state);
            self.send(connection, &scrape_failure(ERR_OVERLOADED), state);
        }
    }
}

/// Bytes waiting over the whole tracker now: its count holds each connection's as of
/// that connection's last write, so `c`'s queued since then are added.
fn queued_now(queued: &AtomicUsize, c: &Connection) -> usize {
    queued
        .load(Ordering::Relaxed)
        .saturating_add(c.unsent().saturating_sub(c.accounted))
}

/// Brings the whole tracker's count of waiting bytes up to date with this connection's.
fn account(queued: &AtomicUsize, c: &mut Connection) {
    let unsent = c.unsent();
    if unsent > c.accounted {
        queued.fetch_add(unsent - c.accounted, Ordering::Relaxed);
    } else {
        queued.fetch_sub(c.accounted - unsent, Ordering::Relaxed);
    }
    c.accounted = unsent;
}

/// Counts one more scrape reply on its way for the connection in `slot`.
fn expect_reply(slot: usize, state: &mut State) {
    if let Some(c) = state.slots.get_mut(slot) {
        c.expect_reply(Awaited::Scrape);
    }
}

/// Counts a scrape reply come for the connection in `slot` (see [`reply_came`]).
fn replied(slot: usize, state: &mut State) {
    reply_came(slot, Awaited::Scrape, state);
}

/// Counts the reply `what` come for the connection in `slot`, and reads it again if
/// that was all its reading waited for.
fn reply_came(slot: usize, what: Awaited, state: &mut State) {
    if let Some(c) = state.slots.get_mut(slot) {
        c.reply_came(what);
        if c.read_paused && c.session.is_open() && c.may_read() {
            c.read_paused = false;
            state.resume.push(slot);
        }
    }
}

/// Starts closing the connection in `slot`: nothing more is read or queued, and it closes
/// once its last bytes (the session's close frame among them) are out.
fn start_closing(slot: usize, state: &mut State) {
    if let Some(c) = state.slots.get_mut(slot) {
        c.closing.get_or_insert_with(Instant::now);
        c.read_buf = Vec::new();
        mark_dirty(c, slot, &mut state.dirty);
    }
}

fn mark_dirty(c: &mut Connection, slot: usize, dirty: &mut Vec<usize>) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(slot);
    }
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
