//! Socket worker: receives datagrams, parses them, answers connects itself, checks
//! connection ids, passkeys (in private mode) and the access list, forwards announces
//! and scrapes to the request workers in batches, and sends the responses that come
//! back.
//!
//! # Private mode
//! An announce must carry a passkey in force in its BEP 41 URL data
//! (`/PASSKEY/announce` or `/announce/PASSKEY`), and its peer id must start with an
//! allowed prefix; otherwise it is answered with a BEP 15 error carrying the
//! [`Refusal`]'s message, counted, and goes no further: no request worker sees it, so
//! it is neither stored nor credited. A UDP scrape cannot carry a passkey (BEP 41
//! options follow announces only): with `private.scrape_requires_passkey` it is refused
//! as "missing passkey". Refusals, like every error, go only to a source whose
//! connection id is valid, and are smaller than the request (no amplification).

use std::io::ErrorKind;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use tracker_common::addr::CanonicalSocketAddr;
use tracker_common::net::bans::BanCache;
use tracker_common::net::gather::Gather;
use tracker_common::net::rate_limit::{Limited, RateLimiter};
use tracker_common::net::udp_batch::{RecvBatch, SendBatch};
use tracker_common::observe::statistics::{
    Family, RequestKind, ResponseKind, SocketCounters, Statistics, add,
};
use tracker_common::private::accounting::AccountInfo;
use tracker_common::private::passkey::{AnnounceFacts, PasskeyParam, PrivateCheck, Refusal};
use tracker_common::runtime::channel::{WeightedReceiver, WeightedSender};
use tracker_common::runtime::request_worker::{RequestBatch, RequestOutbox};
use tracker_common::runtime::supervisor::ShutdownFlag;
use tracker_common::swarm::access_list::AccessListCache;
use tracker_common::swarm::routing::ShardRouter;
use tracker_common::swarm::scrape::{PendingScrapes, ScrapeRoute, route_scrape};
use tracker_common::swarm::{AnnounceParams, NumWantPolicy, ScrapeCounts};
use tracker_common::time::{SecondsSinceServerStart, ServerStartInstant};
use tracker_udp_protocol::{
    AnnounceRequest, ConnectResponse, ErrorResponse, Request, RequestParseError, Response,
    ScrapeRequest, ScrapeResponse, TorrentScrapeStatistics, TransactionId,
};

use crate::connection_id::ValidatorCache;
use crate::messages::{AnnounceHeader, UdpRequest, UdpResponse, UdpResponses};
use crate::workers::max_peers_in_datagram;
use tracker_common::runtime::request_worker::PeerRange;

/// Token of the UDP socket in the worker's poll.
pub(crate) const SOCKET_TOKEN: Token = Token(0);
/// Token of the waker that request workers use after sending responses.
pub(crate) const WAKER_TOKEN: Token = Token(1);

/// Datagrams read before the worker forwards batches and sends responses, so that a
/// flood on the socket cannot starve the responses.
const MAX_READS_PER_ROUND: usize = 1024;
/// Larger than any valid request (a full scrape is 1496 bytes; BEP 41 options add some).
const RECV_BUFFER_LEN: usize = 4096;
/// Datagrams per `recvmmsg` / `sendmmsg` call: enough to amortize the system call,
/// small enough that the buffers stay in cache.
const IO_BATCH: usize = 64;
/// The longest a worker waits for the responses to requests it handed over before it
/// reads its socket again (a request worker busy cleaning a large shard, say).
const MAX_RESPONSE_WAIT: Duration = Duration::from_millis(5);
/// A split scrape whose parts have not all come back by then is dropped.
const PENDING_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

const ERR_CONNECTION_ID: &str = "invalid connection id";
const ERR_NOT_ALLOWED: &str = "info hash not allowed";

/// Settings a socket worker needs from the config.
#[derive(Clone, Debug)]
pub(crate) struct SocketWorkerSettings {
    pub(crate) max_scrape_torrents: u8,
    pub(crate) max_url_data_bytes: usize,
    pub(crate) max_pending_scrapes: usize,
    pub(crate) trust_client_ip: bool,
    pub(crate) poll_timeout: Duration,
    /// `network.segmentation`: group answers into UDP GSO sends where the kernel can.
    pub(crate) segmentation: bool,
    /// `network.gather_micros`: see [`Gather`].
    pub(crate) gather: Duration,
    pub(crate) numwant: NumWantPolicy,
}

/// One socket worker and everything it owns.
pub(crate) struct SocketWorker {
    pub(crate) index: usize,
    pub(crate) socket: UdpSocket,
    pub(crate) poll: Poll,
    pub(crate) request_senders: Vec<WeightedSender<RequestBatch<UdpRequest>>>,
    pub(crate) response_receiver: WeightedReceiver<UdpResponses>,
    pub(crate) router: ShardRouter,
    pub(crate) validator: ValidatorCache,
    pub(crate) access_list: AccessListCache,
    pub(crate) settings: SocketWorkerSettings,
    pub(crate) start: ServerStartInstant,
    pub(crate) statistics: Arc<Statistics>,
    pub(crate) shutdown: ShutdownFlag,
    /// Private mode's check; `None` in public mode.
    pub(crate) private: Option<PrivateCheck>,
    /// The rate limits, shared by every socket worker; `None` when they are off.
    pub(crate) rate_limiter: Option<Arc<RateLimiter>>,
    /// The bans in force: a banned address's datagrams are dropped unread.
    pub(crate) bans: BanCache,
}

/// What an announce carries to its request worker for accounting, or why private mode
/// refuses it.
fn check_announce(
    check: &mut PrivateCheck,
    request: &AnnounceRequest,
) -> Result<AccountInfo, Refusal> {
    // A negative counter is nonsense: it counts as unchanged, neither a fortune nor 0
    // (after which the next announce would credit the whole counter again).
    let counter = |n: i64| u64::try_from(n).ok();
    let facts = AnnounceFacts {
        peer_id: request.peer_id,
        info_hash: request.info_hash,
        left: u64::try_from(request.bytes_left).unwrap_or(u64::MAX),
        event: request.event,
        uploaded: counter(request.bytes_uploaded),
        downloaded: counter(request.bytes_downloaded),
    };
    check.check_announce(request.passkey(), &facts)
}

/// The mutable state of the worker's loop, apart from the socket and channels.
struct State {
    send: SendBatch,
    outbox: RequestOutbox<UdpRequest>,
    pending_scrapes: PendingScrapes<(CanonicalSocketAddr, TransactionId)>,
    now: SecondsSinceServerStart,
    /// The time of the round, for the rate limits: read once per round of reads.
    instant: Instant,
    /// Whether requests were handed to request workers and no response has come back
    /// since: then the worker sleeps on its waker alone ([`SocketWorker::sleep`]).
    awaiting_responses: bool,
}

impl SocketWorker {
    /// Runs until shutdown.
    ///
    /// # Errors
    /// Polling failed, or a request worker is gone while no shutdown was asked for.
    pub(crate) fn run(mut self) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut recv = RecvBatch::new(IO_BATCH, RECV_BUFFER_LEN);
        let mut send = SendBatch::new(IO_BATCH, IO_BATCH * 512);
        // Every worker tries; one of them says so if the kernel lacks it.
        if self.settings.segmentation && !send.enable_segmentation(&self.socket) && self.index == 0
        {
            log::info!(
                "network.segmentation: the kernel offers no UDP segmentation; sending \
                 datagrams one by one"
            );
        }
        let mut state = State {
            send,
            outbox: RequestOutbox::new(self.index, std::mem::take(&mut self.request_senders)),
            pending_scrapes: PendingScrapes::new(
                self.settings.max_pending_scrapes,
                PENDING_SCRAPE_TIMEOUT,
            ),
            now: self.start.seconds_elapsed(),
            instant: Instant::now(),
            awaiting_responses: false,
        };
        // Whether the socket may hold datagrams: after a round that stopped short of
        // WouldBlock, or after waking up, it is read without polling first.
        let mut socket_readable = true;
        let mut last_housekeeping = Instant::now();
        let mut gather = Gather::new(self.settings.gather);

        while !self.shutdown.is_set() {
            if !socket_readable {
                // A round that asks for gathering sleeps below instead, unless it waits
                // for responses: then the waker ends that sleep as they come.
                if state.awaiting_responses || gather.wait().is_zero() {
                    self.sleep(&mut events, state.awaiting_responses)?;
                }
                // One bounded wait: whether or not the responses came, the next sleep
                // listens to the socket again unless this round hands more over.
                state.awaiting_responses = false;
            }
            let wait = gather.wait();
            if !wait.is_zero() {
                // Answers that are ready go out first: the wait delays only what is
                // still to come.
                self.send_responses(&mut state);
                self.flush_sends(&mut state);
                std::thread::sleep(wait);
            }
            // After any wait: the round's datagrams are checked against its time.
            state.now = self.start.seconds_elapsed();
            if self.rate_limiter.is_some() {
                state.instant = Instant::now();
            }
            let batches_sent = state.outbox.batches_sent();
            // Every pass reads: a socket found empty last time was slept on above.
            gather.begin_round();
            let read;
            (socket_readable, read) = self.read_packets(&mut recv, &mut state);
            gather.end_round(read);
            self.flush_requests(&mut state);
            if state.outbox.receiver_gone() && !self.shutdown.is_set() {
                anyhow::bail!("request worker channel closed");
            }
            let answered = self.send_responses(&mut state);
            self.flush_sends(&mut state);
            // Requests handed over in this round are unanswered; earlier ones may be.
            state.awaiting_responses = state.outbox.batches_sent() != batches_sent
                || (state.awaiting_responses && !answered);

            if last_housekeeping.elapsed() >= Duration::from_secs(1) {
                state.pending_scrapes.expire(Instant::now());
                last_housekeeping = Instant::now();
            }
        }
        Ok(())
    }

    /// Waits until the socket has datagrams, a request worker has sent responses (its
    /// waker), or the poll timeout passes.
    ///
    /// # Why the socket is in the poll only while the worker sleeps
    /// A socket on an epoll wait queue has the epoll callback run, under an
    /// interrupt-saving lock, whenever its state changes: for every datagram that
    /// arrives and every sent datagram whose buffer is freed. A busy worker never
    /// needs those wake-ups, since it reads until the socket is empty anyway. Adding
    /// the socket just before sleeping loses nothing: epoll reports data that is
    /// already waiting at once. The ceiling responder, which shares this socket code,
    /// answers more requests per second this way than with the socket always registered
    /// (documents/udp-benchmark.md, optimisation 5).
    ///
    /// # Why it waits for its responses before it listens to the socket again
    /// With requests handed over and unanswered (`awaiting_responses`), the worker
    /// sleeps on its waker alone, at most [`MAX_RESPONSE_WAIT`]: the responses are due
    /// within microseconds, and datagrams that arrive meanwhile are read in one larger
    /// round when they come. Listening to the socket as well would have every datagram
    /// that arrives in that gap wake the worker, each wake-up an interrupt to this core
    /// that the sender's core pays for too; where the request worker shares the core, the
    /// wake-up also takes the core from the request worker that would answer
    /// (documents/udp-benchmark.md, "Waiting for the responses").
    ///
    /// # Errors
    /// Polling, registering or deregistering failed.
    fn sleep(&mut self, events: &mut Events, awaiting_responses: bool) -> anyhow::Result<()> {
        let registered = !awaiting_responses;
        let timeout = if registered {
            self.poll
                .registry()
                .register(&mut self.socket, SOCKET_TOKEN, Interest::READABLE)
                .map_err(|err| anyhow::Error::new(err).context("register socket"))?;
            self.settings.poll_timeout
        } else {
            self.settings.poll_timeout.min(MAX_RESPONSE_WAIT)
        };
        let polled = self.poll.poll(events, Some(timeout));
        if registered {
            self.poll
                .registry()
                .deregister(&mut self.socket)
                .map_err(|err| anyhow::Error::new(err).context("deregister socket"))?;
        }
        match polled {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == ErrorKind::Interrupted => Ok(()),
            Err(err) => Err(anyhow::Error::new(err).context("poll")),
        }
    }

    /// Reads datagrams until the socket is drained or the round's quota is used up.
    /// Returns whether the socket may still hold datagrams, and how many it read.
    fn read_packets(&mut self, recv: &mut RecvBatch, state: &mut State) -> (bool, usize) {
        let mut read = 0;
        let mut datagrams = 0;
        while read < MAX_READS_PER_ROUND {
            match recv.recv(&self.socket) {
                Ok(n) => {
                    read += n.max(1);
                    datagrams += n;
                    let mut bytes = 0;
                    for (packet, src) in recv.iter() {
                        bytes += packet.len();
                        self.handle_packet(packet, CanonicalSocketAddr::new(src), state);
                    }
                    add(&self.counters().bytes_received, bytes as u64);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return (false, datagrams),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    // E.g. an ICMP error surfacing; nothing to do but carry on.
                    log::debug!("recvmmsg: {err}");
                    read += 1;
                }
            }
        }
        (true, datagrams)
    }

    fn counters(&self) -> &SocketCounters {
        self.statistics.socket(self.index)
    }

    fn handle_packet(&mut self, packet: &[u8], src: CanonicalSocketAddr, state: &mut State) {
        let ip = src.canonical_ip();
        // Before anything else, and never answered: a ban costs one lookup, and a
        // spoofed source cannot turn it into traffic towards its victim.
        if self.bans.is_banned(ip) {
            add(&self.counters().banned, 1);
            return;
        }
        let family = Family::of(ip);
        match Request::parse_bytes(
            packet,
            self.settings.max_scrape_torrents,
            self.settings.max_url_data_bytes,
        ) {
            Ok(Request::Connect(request)) => {
                self.counters().request(RequestKind::Connect, family);
                if self.rate_limited(Limited::Connect, ip, state) {
                    return;
                }
                let connection_id = self.validator.get().create(ip, state.now);
                let response = Response::Connect(ConnectResponse {
                    transaction_id: request.transaction_id,
                    connection_id,
                });
                self.send_response(src, &response, state);
            }
            Ok(Request::Announce(request)) => {
                self.counters().request(RequestKind::Announce, family);
                if !self
                    .validator
                    .get()
                    .is_valid(request.connection_id, ip, state.now)
                {
                    self.reject_connection_id(src, request.transaction_id, state);
                    return;
                }
                // After the connection id: a spoofed source cannot spend its victim's
                // announces.
                if self.rate_limited(Limited::Announce, ip, state) {
                    return;
                }
                // Before the access list: a client without a passkey learns nothing of
                // which torrents are served.
                let account = match self.private.as_mut().map(|p| check_announce(p, &request)) {
                    None => None,
                    Some(Ok(account)) => Some(account),
                    Some(Err(cause)) => {
                        self.refuse(src, request.transaction_id, cause, state);
                        return;
                    }
                };
                if !self.access_list.allows(&request.info_hash) {
                    add(&self.counters().access_denied, 1);
                    self.send_error(src, request.transaction_id, ERR_NOT_ALLOWED, state);
                    return;
                }
                self.route_announce(&request, ip, src, account, state);
            }
            Ok(Request::Scrape(request)) => {
                self.counters().request(RequestKind::Scrape, family);
                if !self
                    .validator
                    .get()
                    .is_valid(request.connection_id, ip, state.now)
                {
                    self.reject_connection_id(src, request.transaction_id, state);
                    return;
                }
                if self.rate_limited(Limited::Scrape, ip, state) {
                    return;
                }
                // A UDP scrape has no URL data to carry a passkey in.
                if let Some(Err(cause)) = self
                    .private
                    .as_mut()
                    .map(|p| p.check_scrape(PasskeyParam::Missing))
                {
                    self.refuse(src, request.transaction_id, cause, state);
                    return;
                }
                self.route_scrape(&request, src, state);
            }
            Err(RequestParseError::Sendable {
                connection_id,
                transaction_id,
                err,
            }) => {
                add(&self.counters().bad_requests, 1);
                log::debug!("bad request from {}: {err}", src.socket_addr());
                // Answer only a client that proved its address: an error to a spoofed
                // source could be larger than the packet that caused it.
                if self.validator.get().is_valid(connection_id, ip, state.now) {
                    self.send_error(src, transaction_id, err, state);
                }
            }
            Err(RequestParseError::Unsendable { err }) => {
                add(&self.counters().bad_requests, 1);
                log::debug!("unanswerable packet from {}: {err}", src.socket_addr());
            }
        }
    }

    /// Whether a request of `kind` from `ip` is over its address's rate limit: then it
    /// is counted and dropped without an answer (an answer to a spoofed source would be
    /// traffic aimed at someone else).
    fn rate_limited(&self, kind: Limited, ip: IpAddr, state: &State) -> bool {
        match &self.rate_limiter {
            Some(limiter) if !limiter.allow(kind, ip, state.instant) => {
                add(&self.counters().rate_limited, 1);
                true
            }
            _ => false,
        }
    }

    fn reject_connection_id(
        &mut self,
        src: CanonicalSocketAddr,
        transaction_id: TransactionId,
        state: &mut State,
    ) {
        add(&self.counters().bad_requests, 1);
        log::debug!("invalid connection id from {}", src.socket_addr());
        // The error (29 bytes) is smaller than any announce (98) or scrape (36+), so it
        // cannot amplify a spoofed request.
        self.send_error(src, transaction_id, ERR_CONNECTION_ID, state);
    }

    /// Answers a private-mode refusal with a BEP 15 error carrying its message, and
    /// counts it. The caller has validated the connection id, and the error (at most 26
    /// bytes) is smaller than any announce or scrape: no amplification.
    fn refuse(
        &mut self,
        src: CanonicalSocketAddr,
        transaction_id: TransactionId,
        cause: Refusal,
        state: &mut State,
    ) {
        self.statistics.private().refused(cause);
        log::debug!("{} from {}", cause.message(), src.socket_addr());
        self.send_error(src, transaction_id, cause.message(), state);
    }

    /// Queues a checked announce for the request worker that owns its torrent. Only what
    /// the swarm and the accounting need goes: the client's URL data and other sized
    /// fields stay here.
    fn route_announce(
        &mut self,
        request: &AnnounceRequest,
        ip: IpAddr,
        src: CanonicalSocketAddr,
        account: Option<AccountInfo>,
        state: &mut State,
    ) {
        let peer_ip = match (self.settings.trust_client_ip, request.ip_address, ip) {
            (true, Some(claimed), IpAddr::V4(_)) => IpAddr::V4(claimed),
            _ => ip,
        };
        // A response must fit one datagram of the client's family (the config keeps the
        // maximum within the IPv4 figure; IPv6 peers take three times the room).
        let numwant = self
            .settings
            .numwant
            .resolve(Some(i64::from(request.peers_wanted)))
            .min(max_peers_in_datagram(peer_ip.is_ipv6()));
        let params = AnnounceParams {
            info_hash: request.info_hash,
            peer_id: request.peer_id,
            port: request.port,
            // A negative `left` is nonsense; treat the peer as a leecher rather than
            // promote it to seeder.
            bytes_left: u64::try_from(request.bytes_left).unwrap_or(u64::MAX),
            event: request.event,
            numwant,
        };
        let shard = self.router.shard(&request.info_hash);
        self.push_request(
            shard,
            UdpRequest::Announce {
                params,
                transaction_id: request.transaction_id,
                peer_ip,
                addr: src,
                account,
            },
            state,
        );
    }

    fn route_scrape(
        &mut self,
        request: &ScrapeRequest,
        src: CanonicalSocketAddr,
        state: &mut State,
    ) {
        let access_list = &mut self.access_list;
        let route = route_scrape(&request.info_hashes, &self.router, |hash| {
            access_list.allows(hash)
        });
        let (pending_id, parts) = match route {
            ScrapeRoute::Nothing => {
                let response = Response::Scrape(ScrapeResponse {
                    transaction_id: request.transaction_id,
                    torrent_stats: vec![
                        TorrentScrapeStatistics::default();
                        request.info_hashes.len()
                    ],
                });
                self.send_response(src, &response, state);
                return;
            }
            ScrapeRoute::One { shard, part } => (None, vec![(shard, part)]),
            ScrapeRoute::Split(parts) => {
                let meta = (src, request.transaction_id);
                let id = state.pending_scrapes.insert(
                    meta,
                    request.info_hashes.len(),
                    parts.len(),
                    Instant::now(),
                );
                let Some(id) = id else {
                    add(&self.counters().dropped, 1);
                    log::debug!("too many pending scrapes; dropped one");
                    return;
                };
                (Some(id), parts)
            }
        };
        for (shard, part) in parts {
            let request = UdpRequest::Scrape {
                addr: src,
                transaction_id: request.transaction_id,
                pending_id,
                part,
            };
            self.push_request(shard, request, state);
        }
    }

    /// Adds a request to the batch for request worker `shard`; what a full channel
    /// refuses is counted as dropped.
    fn push_request(&self, shard: usize, request: UdpRequest, state: &mut State) {
        let refused = state.outbox.push(shard, request);
        self.count_full_channel(refused.len());
    }

    fn flush_requests(&self, state: &mut State) {
        let refused = state.outbox.flush();
        self.count_full_channel(refused.len());
    }

    fn count_full_channel(&self, refused: usize) {
        add(&self.counters().dropped, refused as u64);
        add(&self.counters().dropped_full_channel, refused as u64);
    }

    /// Sends the responses the request workers have sent back; returns whether there
    /// were any.
    fn send_responses(&mut self, state: &mut State) -> bool {
        let mut any = false;
        loop {
            let batch = match self.response_receiver.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return any,
            };
            any = true;
            for response in &batch.responses {
                match response {
                    UdpResponse::Announce {
                        addr,
                        header,
                        peers,
                    } => {
                        self.send_announce(*addr, header, *peers, &batch, state);
                    }
                    UdpResponse::Scrape {
                        addr,
                        transaction_id,
                        counts,
                    } => {
                        self.send_scrape(*addr, *transaction_id, counts, state);
                    }
                    UdpResponse::ScrapePart { pending_id, counts } => {
                        if let Some(((addr, transaction_id), counts)) =
                            state.pending_scrapes.merge(*pending_id, counts)
                        {
                            self.send_scrape(addr, transaction_id, &counts, state);
                        }
                    }
                }
            }
        }
    }

    fn send_scrape(
        &mut self,
        addr: CanonicalSocketAddr,
        transaction_id: TransactionId,
        counts: &[ScrapeCounts],
        state: &mut State,
    ) {
        let saturating = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        let response = Response::Scrape(ScrapeResponse {
            transaction_id,
            torrent_stats: counts
                .iter()
                .map(|c| TorrentScrapeStatistics {
                    seeders: saturating(c.seeders),
                    completed: saturating(c.completed),
                    leechers: saturating(c.leechers),
                })
                .collect(),
        });
        self.send_response(addr, &response, state);
    }

    fn send_error(
        &mut self,
        src: CanonicalSocketAddr,
        transaction_id: TransactionId,
        message: &'static str,
        state: &mut State,
    ) {
        let response = Response::Error(ErrorResponse {
            transaction_id,
            message: message.into(),
        });
        self.send_response(src, &response, state);
    }

    /// Queues an announce response whose peers are in `batch`.
    fn send_announce(
        &mut self,
        addr: CanonicalSocketAddr,
        header: &AnnounceHeader,
        peers: PeerRange,
        batch: &UdpResponses,
        state: &mut State,
    ) {
        let (v4, v6) = batch.peers.get(peers);
        let queued = if peers.ipv6 {
            let response = header.with_peers(v6);
            self.queue(addr, state, |buf| response.write_bytes(buf))
        } else {
            let response = header.with_peers(v4);
            self.queue(addr, state, |buf| response.write_bytes(buf))
        };
        if queued {
            self.count_response(ResponseKind::Announce, addr);
        }
    }

    /// Queues a response; it leaves with the next [`Self::flush_sends`].
    fn send_response(&mut self, addr: CanonicalSocketAddr, response: &Response, state: &mut State) {
        if self.queue(addr, state, |buf| response.write_bytes(buf)) {
            let kind = match response {
                Response::Connect(_) => ResponseKind::Connect,
                Response::AnnounceIpv4(_) | Response::AnnounceIpv6(_) => ResponseKind::Announce,
                Response::Scrape(_) => ResponseKind::Scrape,
                Response::Error(_) => ResponseKind::Error,
            };
            self.count_response(kind, addr);
        }
    }

    /// Counts a response queued for sending; one the kernel then refuses is also
    /// counted as dropped.
    fn count_response(&self, kind: ResponseKind, addr: CanonicalSocketAddr) {
        self.counters()
            .response(kind, Family::of(addr.canonical_ip()));
    }

    /// Queues the datagram `write` produces for `addr`, flushing first if the batch is
    /// full. Returns whether it was queued.
    fn queue(
        &mut self,
        addr: CanonicalSocketAddr,
        state: &mut State,
        write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> bool {
        if state.send.is_full() {
            self.flush_sends(state);
        }
        match state.send.push_with(addr.socket_addr(), write) {
            Ok(queued) => queued,
            Err(err) => {
                log::warn!("serialize response: {err}");
                false
            }
        }
    }

    /// Sends the queued responses. Those the kernel refuses (a full send buffer, an
    /// address we cannot send to such as port 0) are counted as dropped: UDP has no
    /// delivery promise, and waiting on one client would stall all the others.
    fn flush_sends(&self, state: &mut State) {
        let outcome = state.send.flush(&self.socket);
        let counters = self.counters();
        add(&counters.bytes_sent, outcome.bytes_sent as u64);
        add(&counters.dropped, outcome.dropped as u64);
    }
}
