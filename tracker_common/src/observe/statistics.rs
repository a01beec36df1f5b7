//! Counters kept by the workers and the periodic statistics line in the log.
//!
//! Each worker owns one cache-line-padded block of counters and is its only writer, so a
//! count is a relaxed load and store (no locked instruction, no cache-line ping-pong).
//! Readers (the statistics thread once per interval, the metrics endpoint when it is
//! scraped) sum the blocks into a [`Snapshot`]; nothing is published on the hot path.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_utils::CachePadded;

use crate::cluster::stats::{ClusterSnapshot, ClusterStatistics};
use crate::private::stats::{PrivateSnapshot, PrivateStatistics};

use crate::runtime::supervisor::ShutdownFlag;

/// Adds `n` to a counter that only the calling thread writes.
#[inline]
pub fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The address family of a client. IPv4-mapped IPv6 addresses count as IPv4, as they do
/// in the swarms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (and IPv4-mapped IPv6).
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// Both families, in index order.
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// The family of `ip`, mapped addresses as IPv4.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// The label value: `ipv4` or `ipv6`.
    pub fn label(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// A UDP connect (BEP 15).
    Connect,
    /// An announce.
    Announce,
    /// A scrape.
    Scrape,
}

impl RequestKind {
    /// Every kind, in index order.
    pub const ALL: [RequestKind; 3] = [
        RequestKind::Connect,
        RequestKind::Announce,
        RequestKind::Scrape,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RequestKind::Connect => "connect",
            RequestKind::Announce => "announce",
            RequestKind::Scrape => "scrape",
        }
    }
}

/// What a response is: the answer to a request of a kind, or an error (a failure reason,
/// an HTTP error status, a UDP error message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// A UDP connect answer.
    Connect,
    /// An announce answer.
    Announce,
    /// A scrape answer.
    Scrape,
    /// An error.
    Error,
}

impl ResponseKind {
    /// Every kind, in index order.
    pub const ALL: [ResponseKind; 4] = [
        ResponseKind::Connect,
        ResponseKind::Announce,
        ResponseKind::Scrape,
        ResponseKind::Error,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ResponseKind::Connect => "connect",
            ResponseKind::Announce => "announce",
            ResponseKind::Scrape => "scrape",
            ResponseKind::Error => "error",
        }
    }
}

/// Which tracker the figures are of: it names the `protocol` label and decides which
/// series apply (connects are UDP's, connections TCP's, relays WebSocket's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The UDP tracker.
    Udp,
    /// The HTTP tracker.
    Http,
    /// The WebSocket tracker.
    Ws,
}

impl Protocol {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Http => "http",
            Protocol::Ws => "ws",
        }
    }

    pub(crate) fn request_kinds(self) -> &'static [RequestKind] {
        match self {
            Protocol::Udp => &RequestKind::ALL,
            Protocol::Http | Protocol::Ws => &[RequestKind::Announce, RequestKind::Scrape],
        }
    }

    pub(crate) fn response_kinds(self) -> &'static [ResponseKind] {
        match self {
            Protocol::Udp => &ResponseKind::ALL,
            Protocol::Http | Protocol::Ws => &[
                ResponseKind::Announce,
                ResponseKind::Scrape,
                ResponseKind::Error,
            ],
        }
    }

    pub(crate) fn has_connections(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Ws)
    }

    pub(crate) fn relays(self) -> bool {
        self == Protocol::Ws
    }
}

/// Counts by kind (`K` kinds) and family.
pub type ByKindAndFamily<const K: usize> = [[u64; 2]; K];

/// Counters by kind and family, indexed `[kind as usize][family as usize]`.
type AtomicByKindAndFamily<const K: usize> = [[AtomicU64; 2]; K];

/// What one socket worker counts. Fields a protocol has no use for stay 0 (only the UDP
/// tracker has connects, only the WebSocket tracker relays offers and answers).
#[derive(Debug, Default)]
pub struct SocketCounters {
    requests: AtomicByKindAndFamily<3>,
    responses: AtomicByKindAndFamily<4>,
    /// Requests dropped because a channel to a request worker was full, or a response
    /// could not be sent.
    pub dropped: AtomicU64,
    /// The part of `dropped` refused by a full channel to a request worker.
    pub dropped_full_channel: AtomicU64,
    /// Requests that could not be parsed, or were refused before reaching a request
    /// worker (an invalid UDP connection id, say).
    pub bad_requests: AtomicU64,
    /// Requests refused by the access list.
    pub access_denied: AtomicU64,
    /// Requests over their address's rate limit, dropped or refused.
    pub rate_limited: AtomicU64,
    /// UDP packets dropped and TCP connections closed at accept because their address
    /// is banned.
    pub banned: AtomicU64,
    /// Bytes received from clients (UDP payloads; TCP stream bytes after TLS).
    pub bytes_received: AtomicU64,
    /// Bytes sent to clients (as `bytes_received`).
    pub bytes_sent: AtomicU64,
    /// WebRTC offers relayed to peers.
    pub offers_relayed: AtomicU64,
    /// WebRTC answers relayed to peers.
    pub answers_relayed: AtomicU64,
    /// Offers and answers shed because the connection they were for was not keeping up.
    pub relayed_shed: AtomicU64,
}

impl SocketCounters {
    /// Counts a request of `kind` from a client of `family`.
    #[inline]
    pub fn request(&self, kind: RequestKind, family: Family) {
        add(&self.requests[kind as usize][family as usize], 1);
    }

    /// Counts a response of `kind` to a client of `family`.
    #[inline]
    pub fn response(&self, kind: ResponseKind, family: Family) {
        add(&self.responses[kind as usize][family as usize], 1);
    }
}

/// What one request worker publishes: the size of its shard, and what it dropped.
#[derive(Debug, Default)]
pub struct RequestWorkerGauges {
    /// Torrents in this worker's shard (distinct info hashes).
    pub torrents: AtomicU64,
    /// Seeders in this worker's shard.
    pub seeders: AtomicU64,
    /// Leechers in this worker's shard.
    pub leechers: AtomicU64,
    /// Announces not stored because a limit was reached (a running total).
    pub rejected_by_limits: AtomicU64,
    /// Re-announces sooner than `swarm.min_announce_interval_secs`, answered but not
    /// stored (a running total).
    pub throttled: AtomicU64,
    /// Emptied torrents whose completed count is kept.
    pub archived_torrents: AtomicU64,
    /// Bytes the archive of completed counts takes.
    pub archive_bytes: AtomicU64,
    /// Responses this worker dropped because the channel back to a socket worker was full.
    pub dropped: AtomicU64,
    /// Downloads counted as completed (a running total).
    pub completed: AtomicU64,
    /// Peers removed by cleaning because they were not seen for too long (a running
    /// total).
    pub peers_cleaned: AtomicU64,
    /// Peers stored from other cluster nodes' changes.
    pub remote_peers: AtomicU64,
}

/// What the admin API changes, by kind: the index into [`AdminCounters::changes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminChange {
    /// An info hash added to or removed from the access list.
    AccessList,
    /// A ban added, changed or lifted.
    Bans,
    /// A passkey added, changed or removed.
    Passkeys,
    /// A user's row set or removed.
    Users,
    /// A registered torrent set or removed.
    RegisteredTorrents,
}

impl AdminChange {
    /// Every kind, in index order.
    pub const ALL: [Self; 5] = [
        Self::AccessList,
        Self::Bans,
        Self::Passkeys,
        Self::Users,
        Self::RegisteredTorrents,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::AccessList => "access_list",
            Self::Bans => "bans",
            Self::Passkeys => "passkeys",
            Self::Users => "users",
            Self::RegisteredTorrents => "registered_torrents",
        }
    }
}

/// The admin API's counters and the bans in force; written by the API and reload
/// threads, read by snapshots.
#[derive(Debug, Default)]
pub struct AdminCounters {
    /// Changes made through the API, by [`AdminChange`] (as `usize`).
    pub changes: [AtomicU64; 5],
    /// Bans in force.
    pub bans: AtomicU64,
    /// API requests refused for a missing or wrong token.
    pub unauthorized: AtomicU64,
}

impl AdminCounters {
    /// Counts one change of `kind`.
    pub fn changed(&self, kind: AdminChange) {
        if let Some(counter) = self.changes.get(kind as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// [`AdminCounters`], read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdminSnapshot {
    /// Changes made through the API, by [`AdminChange`] (as `usize`).
    pub changes: [u64; 5],
    /// Bans in force.
    pub bans: u64,
    /// API requests refused for a missing or wrong token.
    pub unauthorized: u64,
}

/// All workers' counters, and the few figures of the whole tracker.
#[derive(Debug)]
pub struct Statistics {
    socket: Box<[CachePadded<SocketCounters>]>,
    request: Box<[CachePadded<RequestWorkerGauges>]>,
    access_list_len: AtomicU64,
    access_list_loaded_unix_secs: AtomicU64,
    admin: AdminCounters,
    /// The rate limiter, when the limits are on (set once at start).
    rate_limiter: std::sync::OnceLock<Arc<crate::net::rate_limit::RateLimiter>>,
    connections: Arc<ConnectionCounters>,
    private: Arc<PrivateStatistics>,
    cluster: Arc<ClusterStatistics>,
}

/// Connection counts of a TCP tracker, over all its socket workers (zero for UDP).
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections open now. It enforces the connection limit, so it is one count,
    /// changed per connection (never per request).
    pub open: AtomicUsize,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    /// Connections closed at once because their address had `max_connections_per_ip`
    /// open.
    pub refused_per_ip: AtomicU64,
    /// Connections closed by their protocol's idle rule.
    pub timed_out: AtomicU64,
    /// Connections closed for not reading what was sent to them.
    pub slow_readers: AtomicU64,
    /// Bytes waiting to be sent, over all connections (each connection's as of its last
    /// write attempt).
    pub queued_bytes: AtomicUsize,
}

/// The sum of every worker's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Requests received by kind and family (`[RequestKind as usize][Family as usize]`).
    pub requests: ByKindAndFamily<3>,
    /// Responses by kind and family (`[ResponseKind as usize][Family as usize]`).
    pub responses_by_kind: ByKindAndFamily<4>,
    /// Announce requests received.
    pub announce: u64,
    /// Scrape requests received.
    pub scrape: u64,
    /// Responses written for sending, errors included.
    pub responses: u64,
    /// Error responses written for sending.
    pub error_responses: u64,
    /// Requests or responses dropped: on full channels, or by an overloaded worker.
    pub dropped: u64,
    /// The part of `dropped` refused by full channels between workers.
    pub dropped_full_channel: u64,
    /// Bad packets.
    pub bad_requests: u64,
    /// Requests refused by the access list.
    pub access_denied: u64,
    /// Requests over their address's rate limit.
    pub rate_limited: u64,
    /// UDP packets dropped and TCP connections closed at accept for a ban.
    pub banned: u64,
    /// Bytes received from clients.
    pub bytes_received: u64,
    /// Bytes sent to clients.
    pub bytes_sent: u64,
    /// WebRTC offers relayed.
    pub offers_relayed: u64,
    /// WebRTC answers relayed.
    pub answers_relayed: u64,
    /// Offers and answers shed.
    pub relayed_shed: u64,
    /// Torrents tracked.
    pub torrents: u64,
    /// Seeders tracked.
    pub seeders: u64,
    /// Leechers tracked.
    pub leechers: u64,
    /// Announces not stored because a limit was reached.
    pub rejected_by_limits: u64,
    /// Re-announces sooner than the minimum interval, answered but not stored.
    pub throttled: u64,
    /// Emptied torrents whose completed count is kept.
    pub archived_torrents: u64,
    /// Bytes the archive of completed counts takes.
    pub archive_bytes: u64,
    /// Downloads counted as completed.
    pub completed: u64,
    /// Peers removed by cleaning.
    pub peers_cleaned: u64,
    /// Connections open now (TCP trackers; 0 for UDP).
    pub open_connections: u64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_refused: u64,
    /// Connections closed at once because their address had `max_connections_per_ip`
    /// open.
    pub connections_refused_per_ip: u64,
    /// Connections closed for being idle too long.
    pub connections_timed_out: u64,
    /// Connections closed for not reading what was sent to them.
    pub connections_slow_readers: u64,
    /// Bytes waiting to be sent over all connections.
    pub queued_bytes: u64,
    /// Info hashes in the access list.
    pub access_list_len: u64,
    /// When the access list was last loaded (Unix seconds).
    pub access_list_loaded_unix_secs: u64,
    /// The admin API's counters and the bans in force.
    pub admin: AdminSnapshot,
    /// Addresses the rate limits track (0 when they are off): at most
    /// [`Self::rate_limit_slots`], whatever the number of addresses seen.
    pub rate_limit_addresses: u64,
    /// Slots of the rate limits' table (0 when they are off).
    pub rate_limit_slots: u64,
    /// Private mode's figures (all zero when it is off).
    pub private: PrivateSnapshot,
    /// The cluster's figures (`enabled: false` and zeros on a single node).
    pub cluster: ClusterSnapshot,
}

impl Snapshot {
    /// Requests of `kind`, both families.
    pub fn requests_of(&self, kind: RequestKind) -> u64 {
        self.requests[kind as usize].iter().sum()
    }

    /// Responses of `kind`, both families.
    pub fn responses_of(&self, kind: ResponseKind) -> u64 {
        self.responses_by_kind[kind as usize].iter().sum()
    }
}

impl Statistics {
    /// Counters for the given numbers of workers.
    pub fn new(socket_workers: usize, request_workers: usize) -> Self {
        Self {
            socket: (0..socket_workers)
                .map(|_| CachePadded::default())
                .collect(),
            request: (0..request_workers)
                .map(|_| CachePadded::default())
                .collect(),
            access_list_len: AtomicU64::new(0),
            access_list_loaded_unix_secs: AtomicU64::new(0),
            admin: AdminCounters::default(),
            rate_limiter: std::sync::OnceLock::new(),
            connections: Arc::default(),
            private: Arc::new(PrivateStatistics::new(request_workers)),
            cluster: Arc::default(),
        }
    }

    /// The cluster's counters.
    pub fn cluster(&self) -> &Arc<ClusterStatistics> {
        &self.cluster
    }

    /// Private mode's counters.
    pub fn private(&self) -> &Arc<PrivateStatistics> {
        &self.private
    }

    /// The connection counts, which the TCP trackers' socket workers share.
    pub fn connections(&self) -> &Arc<ConnectionCounters> {
        &self.connections
    }

    /// Socket worker `index`'s counters.
    ///
    /// # Panics
    /// If `index` is out of range: worker indexes are fixed at start-up.
    pub fn socket(&self, index: usize) -> &SocketCounters {
        &self.socket[index]
    }

    /// Request worker `index`'s gauges.
    ///
    /// # Panics
    /// If `index` is out of range: worker indexes are fixed at start-up.
    pub fn request_worker(&self, index: usize) -> &RequestWorkerGauges {
        &self.request[index]
    }

    /// Makes snapshots report `limiter`'s table (once; later calls change nothing).
    pub fn watch_rate_limiter(&self, limiter: Arc<crate::net::rate_limit::RateLimiter>) {
        let _ = self.rate_limiter.set(limiter);
    }

    /// The admin API's and the bans' counters.
    pub fn admin(&self) -> &AdminCounters {
        &self.admin
    }

    /// Records that the access list was (re)loaded now with `len` info hashes.
    pub fn access_list_loaded(&self, len: usize) {
        self.access_list_len.store(len as u64, Ordering::Relaxed);
        self.access_list_loaded_unix_secs
            .store(unix_now_secs(), Ordering::Relaxed);
    }

    /// Sums every worker's counters.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = Snapshot::default();
        for c in self.socket.iter() {
            for (sum, counters) in s.requests.iter_mut().zip(&c.requests) {
                for (sum, counter) in sum.iter_mut().zip(counters) {
                    *sum += get(counter);
                }
            }
            for (sum, counters) in s.responses_by_kind.iter_mut().zip(&c.responses) {
                for (sum, counter) in sum.iter_mut().zip(counters) {
                    *sum += get(counter);
                }
            }
            s.dropped += get(&c.dropped);
            s.dropped_full_channel += get(&c.dropped_full_channel);
            s.bad_requests += get(&c.bad_requests);
            s.access_denied += get(&c.access_denied);
            s.rate_limited += get(&c.rate_limited);
            s.banned += get(&c.banned);
            s.bytes_received += get(&c.bytes_received);
            s.bytes_sent += get(&c.bytes_sent);
            s.offers_relayed += get(&c.offers_relayed);
            s.answers_relayed += get(&c.answers_relayed);
            s.relayed_shed += get(&c.relayed_shed);
        }
        s.announce = s.requests_of(RequestKind::Announce);
        s.scrape = s.requests_of(RequestKind::Scrape);
        s.responses = s.responses_by_kind.iter().flatten().sum();
        s.error_responses = s.responses_of(ResponseKind::Error);
        let mut remote_peers = 0;
        for g in self.request.iter() {
            remote_peers += get(&g.remote_peers);
            s.torrents += get(&g.torrents);
            s.seeders += get(&g.seeders);
            s.leechers += get(&g.leechers);
            s.rejected_by_limits += get(&g.rejected_by_limits);
            s.throttled += get(&g.throttled);
            s.archived_torrents += get(&g.archived_torrents);
            s.archive_bytes += get(&g.archive_bytes);
            // A request worker drops only on a full channel.
            s.dropped += get(&g.dropped);
            s.dropped_full_channel += get(&g.dropped);
            s.completed += get(&g.completed);
            s.peers_cleaned += get(&g.peers_cleaned);
        }
        let c = &self.connections;
        s.open_connections = c.open.load(Ordering::Acquire) as u64;
        s.connections_refused = get(&c.refused);
        s.connections_refused_per_ip = get(&c.refused_per_ip);
        s.connections_timed_out = get(&c.timed_out);
        s.connections_slow_readers = get(&c.slow_readers);
        s.queued_bytes = c.queued_bytes.load(Ordering::Relaxed) as u64;
        s.access_list_len = get(&self.access_list_len);
        s.access_list_loaded_unix_secs = get(&self.access_list_loaded_unix_secs);
        if let Some(limiter) = self.rate_limiter.get() {
            s.rate_limit_addresses = limiter.occupied() as u64;
            s.rate_limit_slots = limiter.capacity() as u64;
        }
        s.admin = AdminSnapshot {
            changes: self.admin.changes.each_ref().map(get),
            bans: get(&self.admin.bans),
            unauthorized: get(&self.admin.unauthorized),
        };
        s.private = self.private.snapshot();
        s.cluster = self.cluster.snapshot(remote_peers);
        s
    }
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lets a warning through at most once per interval and counts what it held back, so
/// that a flood of drops cannot flood the log.
#[derive(Debug)]
pub struct RateLimitedWarning {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimitedWarning {
    /// A limiter that lets one warning through per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// Whether to log now; if so, how many occurrences were held back since the last
    /// logged one.
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// A tracker's own parts of the statistics line; an empty part is left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolLine {
    /// Its own request rates, put first among the requests (UDP's `connect 50`).
    pub requests: String,
    /// Its own response rates, put after the responses (WebSocket's relayed offers).
    pub responses: String,
    /// Its own state and totals, put last (open connections, say).
    pub state: String,
}

/// The statistics line for the interval between two snapshots, with the tracker's own
/// parts where they belong.
pub fn format_line(
    prev: &Snapshot,
    now: &Snapshot,
    elapsed: Duration,
    protocol: &ProtocolLine,
) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let own = |part: &str, before: &str, after: &str| {
        if part.is_empty() {
            String::new()
        } else {
            format!("{before}{part}{after}")
        }
    };
    format!(
        "requests/s: {}announce {:.0}, scrape {:.0}; responses/s {:.0} (errors {:.0}){}; \
         torrents {}, seeders {}, leechers {}, archived {} ({} bytes); \
         since last: dropped {}, bad requests {}, access denied {}, rejected by limits {}{}",
        own(&protocol.requests, "", ", "),
        rate(prev.announce, now.announce),
        rate(prev.scrape, now.scrape),
        rate(prev.responses, now.responses),
        rate(prev.error_responses, now.error_responses),
        own(&protocol.responses, ", ", ""),
        now.torrents,
        now.seeders,
        now.leechers,
        now.archived_torrents,
        now.archive_bytes,
        now.dropped.saturating_sub(prev.dropped),
        now.bad_requests.saturating_sub(prev.bad_requests),
        now.access_denied.saturating_sub(prev.access_denied),
        now.rejected_by_limits
            .saturating_sub(prev.rejected_by_limits),
        own(&protocol.state, "; ", ""),
    )
}

/// The statistics thread's loop: logs a line every `interval` until shutdown.
/// `protocol` gives the tracker's own part of the line for the time since its last call.
///
/// # Errors
/// None so far; the signature matches the other workers.
pub fn run_statistics_logger(
    stats: &Statistics,
    interval: Duration,
    shutdown: &ShutdownFlag,
    mut protocol: impl FnMut(Duration) -> ProtocolLine,
) -> anyhow::Result<()> {
    let mut prev = stats.snapshot();
    let mut last = Instant::now();
    let _ = protocol(Duration::ZERO);
    while !shutdown.is_set() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= interval {
            let now = stats.snapshot();
            let elapsed = last.elapsed();
            log::info!("{}", format_line(&prev, &now, elapsed, &protocol(elapsed)));
            prev = now;
            last = Instant::now();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_workers() {
        let stats = Statistics::new(2, 2);
        // A distinct value per counter and worker, so a counter summed into the wrong
        // field, or a worker left out, shows.
        for (i, scale) in [(0, 1), (1, 100)] {
            let c = stats.socket(i);
            add(&c.dropped, 6 * scale);
            add(&c.dropped_full_channel, 5 * scale);
            add(&c.bad_requests, 7 * scale);
            add(&c.access_denied, 8 * scale);
            add(&c.bytes_received, 16 * scale);
            add(&c.bytes_sent, 17 * scale);
            add(&c.offers_relayed, 18 * scale);
            add(&c.answers_relayed, 19 * scale);
            add(&c.relayed_shed, 20 * scale);
            let g = stats.request_worker(i);
            g.torrents.store(9 * scale, Ordering::Relaxed);
            g.seeders.store(10 * scale, Ordering::Relaxed);
            g.leechers.store(11 * scale, Ordering::Relaxed);
            add(&g.dropped, 12 * scale);
            g.rejected_by_limits.store(13 * scale, Ordering::Relaxed);
            g.archived_torrents.store(14 * scale, Ordering::Relaxed);
            g.archive_bytes.store(15 * scale, Ordering::Relaxed);
            g.completed.store(21 * scale, Ordering::Relaxed);
            g.peers_cleaned.store(22 * scale, Ordering::Relaxed);
        }
        let s = stats.snapshot();
        assert_eq!(
            (s.dropped, s.bad_requests, s.access_denied),
            // Socket and request worker drops add up.
            (606 + 1212, 707, 808)
        );
        assert_eq!(s.dropped_full_channel, 505 + 1212);
        assert_eq!(
            (s.bytes_received, s.bytes_sent),
            (1616, 1717),
            "bytes in, out"
        );
        assert_eq!(
            (s.offers_relayed, s.answers_relayed, s.relayed_shed),
            (1818, 1919, 2020)
        );
        assert_eq!(
            (s.torrents, s.seeders, s.leechers, s.rejected_by_limits),
            (909, 1010, 1111, 1313)
        );
        assert_eq!((s.archived_torrents, s.archive_bytes), (1414, 1515));
        assert_eq!((s.completed, s.peers_cleaned), (2121, 2222));
    }

    /// Every (kind, family) cell is its own counter, summed over workers into its own
    /// cell, and the totals the log line uses are the sums of the cells.
    #[test]
    fn snapshot_keeps_kinds_and_families_apart() {
        let stats = Statistics::new(3, 1);
        // Worker w counts (w + 1) * (1 + cell index) of each request cell, so each
        // cell's sum over workers is 6 * (1 + cell index): distinct for every cell.
        for w in 0..3u64 {
            let c = stats.socket(w as usize);
            for (k, kind) in RequestKind::ALL.into_iter().enumerate() {
                for (f, family) in Family::ALL.into_iter().enumerate() {
                    for _ in 0..(w + 1) * (1 + 2 * k as u64 + f as u64) {
                        c.request(kind, family);
                    }
                }
            }
            for (k, kind) in ResponseKind::ALL.into_iter().enumerate() {
                for (f, family) in Family::ALL.into_iter().enumerate() {
                    for _ in 0..(w + 1) * (10 + 2 * k as u64 + f as u64) {
                        c.response(kind, family);
                    }
                }
            }
        }
        let s = stats.snapshot();
        assert_eq!(s.requests, [[6, 12], [18, 24], [30, 36]]);
        assert_eq!(
            s.responses_by_kind,
            [[60, 66], [72, 78], [84, 90], [96, 102]]
        );
        assert_eq!(s.requests_of(RequestKind::Connect), 18);
        assert_eq!((s.announce, s.scrape), (42, 66));
        assert_eq!(s.responses, 60 + 66 + 72 + 78 + 84 + 90 + 96 + 102);
        assert_eq!(s.error_responses, 198);
        assert_eq!(s.responses_of(ResponseKind::Announce), 150);
    }

    #[test]
    fn families_count_mapped_addresses_as_ipv4() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Family::of(v4), Family::Ipv4);
        assert_eq!(Family::of(mapped), Family::Ipv4);
        assert_eq!(Family::of(v6), Family::Ipv6);
    }

    #[test]
    fn open_connections_and_access_list_are_read_at_snapshot() {
        let stats = Statistics::new(1, 1);
        let connections = stats.connections().clone();
        connections.open.store(3, Ordering::Release);
        assert_eq!(stats.snapshot().open_connections, 3);
        connections.open.store(5, Ordering::Release);
        connections.refused_per_ip.store(7, Ordering::Relaxed);
        connections.queued_bytes.store(1234, Ordering::Relaxed);
        let s = stats.snapshot();
        assert_eq!(s.open_connections, 5);
        assert_eq!(s.connections_refused_per_ip, 7);
        assert_eq!(s.queued_bytes, 1234);
        let before = unix_now_secs();
        stats.access_list_loaded(42);
        let s = stats.snapshot();
        assert_eq!(s.access_list_len, 42);
        assert!(s.access_list_loaded_unix_secs >= before);
    }

    #[test]
    fn warnings_are_rate_limited() {
        let mut w = RateLimitedWarning::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.check(t0), Some(0));
        assert_eq!(w.check(t0 + Duration::from_secs(1)), None);
        assert_eq!(w.check(t0 + Duration::from_secs(9)), None);
        assert_eq!(w.check(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(w.check(t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn line_shows_rates_gauges_and_deltas() {
        let prev = Snapshot {
            dropped: 10,
            bad_requests: 1,
            ..Snapshot::default()
        };
        let now = Snapshot {
            announce: 200,
            scrape: 20,
            responses: 300,
            error_responses: 4,
            torrents: 9,
            seeders: 3,
            leechers: 5,
            archived_torrents: 2,
            archive_bytes: 32,
            dropped: 13,
            bad_requests: 8,
            access_denied: 6,
            rejected_by_limits: 7,
            ..Snapshot::default()
        };
        let udp = ProtocolLine {
            requests: "connect 50".into(),
            ..ProtocolLine::default()
        };
        let line = format_line(&prev, &now, Duration::from_secs(2), &udp);
        assert_eq!(
            line,
            "requests/s: connect 50, announce 100, scrape 10; responses/s 150 (errors 2); \
             torrents 9, seeders 3, leechers 5, archived 2 (32 bytes); since last: dropped 3, \
             bad requests 7, access denied 6, rejected by limits 7"
        );
        let ws = ProtocolLine {
            requests: String::new(),
            responses: "offers relayed 40".into(),
            state: "connections 12".into(),
        };
        assert_eq!(
            format_line(&prev, &now, Duration::from_secs(1), &ws),
            "requests/s: announce 200, scrape 20; responses/s 300 (errors 4), offers relayed \
             40; torrents 9, seeders 3, leechers 5, archived 2 (32 bytes); since last: \
             dropped 3, bad requests 7, access denied 6, rejected by limits 7; connections 12"
        );
    }
}
