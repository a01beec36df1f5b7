//! The request worker: the thread that owns one shard of the torrents, and its loop.
//!
//! Every tracker has the same request workers; only what a request means differs. The
//! loop here drains batches of requests from the socket workers, lets the tracker's
//! [`RequestHandler`] apply each to the shard, sends the responses back in one batch per
//! socket worker, cleans the shard on schedule and publishes its gauges. Nothing else
//! touches the shard, so nothing is locked.
//!
//! Channels are bounded by requests or bytes ([`crate::runtime::channel`]); a full channel drops
//! the batch, counts it and logs a rate-limited warning. Responses are flushed after at
//! most [`MAX_BATCHES_PER_FLUSH`] batches, or as soon as one socket worker's batch reaches
//! [`MAX_BATCH_LEN`] or its channel's largest batch weight, so that no batch is larger
//! than a channel can take.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use rand::rngs::SmallRng;

use tracker_cluster_protocol::{BatchHeader, BatchWriter, MAX_CHANGE_BYTES, PeerChange};

use crate::cluster::sync::ChunkSink;
use crate::cluster::{ClusterDuty, ClusterRelay, ResyncChunks, ShardMessage};
use crate::observe::statistics::{RateLimitedWarning, RequestWorkerGauges, Statistics, add};
use crate::private::accounting::AccountInfo;
use crate::private::writer::AccountingDuty;
use crate::runtime::channel::{MAX_BATCH_LEN, TrySendError, WeightedReceiver, WeightedSender};
use crate::runtime::supervisor::ShutdownFlag;
use crate::swarm::inspect::TorrentDetail;
use crate::swarm::routing::ShardRouter;
use crate::swarm::saved::{SaveSink, SavedTorrent};
use crate::swarm::snapshot::SnapshotPart;
use crate::swarm::ws::WsSwarmShard;
use crate::swarm::{
    AnnounceCounts, AnnounceParams, CleanStats, NoPeerId, ScrapeCounts, StoredPeerId, SwarmBudget,
    SwarmLimits, SwarmShard,
};
use crate::time::{SecondsSinceServerStart, ServerStartInstant};
use crate::types::{AnnounceEvent, AnnouncePeer, InfoHash, PeerId};

/// How long to block on the request channel before checking shutdown and cleaning.
const RECV_TIMEOUT: Duration = Duration::from_millis(50);
/// Request batches handled before responses are flushed, to amortize sends and wake-ups.
pub const MAX_BATCHES_PER_FLUSH: usize = 64;
/// Requests a handler prepares at once ([`RequestHandler::prepare`]): enough for their
/// memory reads to overlap, few enough that what they read is still in cache when they
/// are handled.
const PREPARE_AHEAD: usize = 16;

/// Wakes a socket worker after responses were sent to it (a mio `Waker`, say).
pub type WakeFn = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// Requests from one socket worker.
#[derive(Debug)]
pub struct RequestBatch<R> {
    /// The socket worker that sent them, where the responses go.
    pub from: usize,
    /// The requests, at most [`MAX_BATCH_LEN`].
    pub requests: Vec<R>,
}

/// Responses for one socket worker, as a tracker batches them.
pub trait ResponseBatch: Send + Default + 'static {
    /// Responses in the batch.
    fn len(&self) -> usize;

    /// The batch's weight in its channel: its length, unless the tracker's channels are
    /// bounded by bytes (see [`crate::runtime::channel::ChannelBound`]). Called after every
    /// request handled: keep a running total rather than summing.
    fn weight(&self) -> usize {
        self.len()
    }

    /// Whether there is nothing to send.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty batch with room for about as much as this one holds: the next batch
    /// will be about as large, and one allocation beats a series of doublings.
    fn empty_like(&self) -> Self {
        Self::default()
    }
}

/// What the request worker's loop needs of a shard, whatever kind of peers it holds
/// ([`SwarmShard`] for the UDP and HTTP trackers, whose peers are endpoints: the UDP
/// tracker's keeps no peer ids, `SwarmShard<NoPeerId>`).
pub trait Shard: Send + 'static {
    /// An empty shard, one of `router`'s, taking torrents and peers from `budget`.
    fn new(limits: SwarmLimits, budget: Arc<SwarmBudget>, router: &ShardRouter) -> Self;
    /// Hands what a snapshot keeps of the shard to `sink` (see [`crate::swarm::snapshot`]).
    fn save(&self, now: SecondsSinceServerStart, max_peer_age_secs: u32, sink: &mut dyn SaveSink);
    /// Restores a saved torrent within the limits; returns the peers stored.
    fn restore_torrent(
        &mut self,
        saved: &SavedTorrent,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
    ) -> usize;
    /// Restores a saved archived completed count.
    fn restore_archived(&mut self, fingerprint: u64, completed: u32);
    /// Removes peers not seen for `max_peer_age_secs`, then emptied torrents.
    fn clean(&mut self, now: SecondsSinceServerStart, max_peer_age_secs: u32) -> CleanStats;
    /// The torrent `info_hash` with at most `max_peers` of its peers, for the admin API;
    /// `None` when the shard knows nothing of it.
    fn torrent_detail(
        &self,
        info_hash: &InfoHash,
        now: SecondsSinceServerStart,
        max_peers: usize,
    ) -> Option<TorrentDetail>;
    /// The `limit` torrents with the most peers, with their counts, most peers first.
    fn busiest_torrents(&self, limit: usize) -> Vec<(InfoHash, ScrapeCounts)>;
    /// Torrents stored.
    fn num_torrents(&self) -> usize;
    /// Seeders stored.
    fn num_seeders(&self) -> usize;
    /// Leechers stored.
    fn num_leechers(&self) -> usize;
    /// Announces not stored because a limit was reached.
    fn num_rejected_by_limits(&self) -> u64;
    /// Re-announces answered without being applied because they came sooner than the
    /// minimum announce interval.
    fn num_throttled(&self) -> u64;
    /// Downloads counted as completed since the shard was made.
    fn num_completed(&self) -> u64;
    /// Completed counts held in the archive.
    fn num_archived_torrents(&self) -> usize;
    /// Bytes the archive takes.
    fn archive_memory_bytes(&self) -> usize;
    /// Whether the shard's swarms are replicated over a cluster (see [`crate::cluster`]):
    /// shards that are not say so, and a cluster node refuses to start with them.
    fn replicated() -> bool {
        false
    }
    /// A subject token for the shard's kind of swarm on a cluster's bus, after the
    /// cluster's name: empty for IP swarms (UDP and HTTP nodes share theirs), "ws" for
    /// WebTorrent ones, which are another kind of peer.
    fn swarm_kind() -> &'static str {
        ""
    }
    /// Starts (or stops) recording the peer changes of local announces, a peer's plain
    /// re-announces once per `refresh_window_secs` (0: all).
    fn record_changes(&mut self, _on: bool, _refresh_window_secs: u32) {}
    /// Hands this node's own peers (not those of other nodes) to `sink`, as
    /// [`Self::save`] does all of them.
    fn save_local(
        &self,
        _now: SecondsSinceServerStart,
        _max_peer_age_secs: u32,
        _sink: &mut dyn SaveSink,
    ) {
    }
    /// Moves the recorded changes to `out`.
    fn take_changes(&mut self, _out: &mut Vec<PeerChange>) {}
    /// Applies cluster node `node`'s change (`node` as the `cluster` thread numbers the
    /// nodes it hears); returns whether anything changed.
    fn apply_remote(
        &mut self,
        _change: &PeerChange,
        _node: u32,
        _now: SecondsSinceServerStart,
    ) -> bool {
        false
    }
    /// Hands this node's own peers that a resync sends as changes rather than in
    /// [`Self::save_local`]'s chunks (peers without an address) to `out`.
    fn save_local_changes(
        &self,
        _now: SecondsSinceServerStart,
        _max_peer_age_secs: u32,
        _out: &mut Vec<PeerChange>,
    ) {
    }
    /// Merges a torrent of another node's resync; returns the peers stored.
    fn merge_torrent(
        &mut self,
        _saved: &SavedTorrent,
        _now: SecondsSinceServerStart,
        _max_peer_age_secs: u32,
    ) -> usize {
        0
    }
    /// Peers stored from other nodes.
    fn num_remote_peers(&self) -> usize {
        0
    }
    /// Cluster node `node` is gone: removes the peers that live on its connections;
    /// returns how many.
    fn forget_node(&mut self, _node: u32) -> usize {
        0
    }
}

/// `changes` as change batches of at most `max_bytes` each (a resync's chunks).
fn change_batches(changes: &[PeerChange], max_bytes: usize) -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    let header = BatchHeader::default();
    let mut writer = BatchWriter::new(&header);
    for change in changes {
        if writer.count() > 0 && writer.len_bytes() + MAX_CHANGE_BYTES > max_bytes {
            batches.push(std::mem::replace(&mut writer, BatchWriter::new(&header)).finish());
        }
        writer.push(change);
    }
    if writer.count() > 0 {
        batches.push(writer.finish());
    }
    batches
}

/// Implements [`Shard`] for a shard type whose inherent methods have the trait's names.
macro_rules! impl_shard {
    ($shard:ty $(, $replicated:ident $(, $kind:literal)?)?) => {
        impl Shard for $shard {
            fn new(limits: SwarmLimits, budget: Arc<SwarmBudget>, router: &ShardRouter) -> Self {
                <$shard>::with_router(limits, budget, router)
            }
            fn save(
                &self,
                now: SecondsSinceServerStart,
                max_peer_age_secs: u32,
                sink: &mut dyn SaveSink,
            ) {
                <$shard>::save(self, now, max_peer_age_secs, sink)
            }
            fn restore_torrent(
                &mut self,
                saved: &SavedTorrent,
                now: SecondsSinceServerStart,
                max_peer_age_secs: u32,
            ) -> usize {
                <$shard>::restore_torrent(self, saved, now, max_peer_age_secs)
            }
            fn restore_archived(&mut self, fingerprint: u64, completed: u32) {
                <$shard>::restore_archived(self, fingerprint, completed)
            }
            fn clean(&mut self, now: SecondsSinceServerStart, max_age_secs: u32) -> CleanStats {
                <$shard>::clean(self, now, max_age_secs)
            }
            fn torrent_detail(
                &self,
                info_hash: &InfoHash,
                now: SecondsSinceServerStart,
                max_peers: usize,
            ) -> Option<TorrentDetail> {
                <$shard>::torrent_detail(self, info_hash, now, max_peers)
            }
            fn busiest_torrents(&self, limit: usize) -> Vec<(InfoHash, ScrapeCounts)> {
                <$shard>::busiest_torrents(self, limit)
            }
            fn num_torrents(&self) -> usize {
                <$shard>::num_torrents(self)
            }
            fn num_seeders(&self) -> usize {
                <$shard>::num_seeders(self)
            }
            fn num_leechers(&self) -> usize {
                <$shard>::num_leechers(self)
            }
            fn num_rejected_by_limits(&self) -> u64 {
                <$shard>::num_rejected_by_limits(self)
            }
            fn num_throttled(&self) -> u64 {
                <$shard>::num_throttled(self)
            }
            fn num_completed(&self) -> u64 {
                <$shard>::num_completed(self)
            }
            fn num_archived_torrents(&self) -> usize {
                <$shard>::num_archived_torrents(self)
            }
            fn archive_memory_bytes(&self) -> usize {
                <$shard>::archive_memory_bytes(self)
            }
            $(impl_shard!(@$replicated $shard);
            $(fn swarm_kind() -> &'static str {
                $kind
            })?)?
        }
    };
    (@replicated $shard:ty) => {
        fn replicated() -> bool {
            true
        }
        fn record_changes(&mut self, on: bool, refresh_window_secs: u32) {
            <$shard>::record_changes(self, on, refresh_window_secs)
        }
        fn take_changes(&mut self, out: &mut Vec<PeerChange>) {
            <$shard>::take_changes(self, out)
        }
        fn save_local(
            &self,
            now: SecondsSinceServerStart,
            max_peer_age_secs: u32,
            sink: &mut dyn SaveSink,
        ) {
            <$shard>::save_local(self, now, max_peer_age_secs, sink)
        }
        fn apply_remote(
            &mut self,
            change: &PeerChange,
            node: u32,
            now: SecondsSinceServerStart,
        ) -> bool {
            <$shard>::apply_remote_from(self, change, node, now)
        }
        fn save_local_changes(
            &self,
            now: SecondsSinceServerStart,
            max_peer_age_secs: u32,
            out: &mut Vec<PeerChange>,
        ) {
            <$shard>::save_local_changes(self, now, max_peer_age_secs, out)
        }
        fn merge_torrent(
            &mut self,
            saved: &SavedTorrent,
            now: SecondsSinceServerStart,
            max_peer_age_secs: u32,
        ) -> usize {
            <$shard>::merge_torrent(self, saved, now, max_peer_age_secs)
        }
        fn num_remote_peers(&self) -> usize {
            <$shard>::num_remote_peers(self)
        }
        fn forget_node(&mut self, node: u32) -> usize {
            <$shard>::forget_node(self, node)
        }
    };
}

impl_shard!(SwarmShard, replicated);
impl_shard!(SwarmShard<NoPeerId>, replicated);
impl_shard!(WsSwarmShard, replicated, "ws");

/// A shard and what a handler needs to apply requests to it.
pub struct Swarm<S = SwarmShard> {
    /// The torrents this worker owns.
    pub shard: S,
    /// Randomness for peer selection.
    pub rng: SmallRng,
    /// The time of the batch being handled.
    pub now: SecondsSinceServerStart,
    /// Private mode's accounting of the shard's torrents; `None` in public mode.
    pub accounting: Option<AccountingDuty>,
    /// Offers and answers for peers on other cluster nodes, each with its node's number,
    /// that the handler relays: handed to the `cluster` thread after each round.
    pub relays: Vec<(u32, ClusterRelay)>,
}

impl<S> Swarm<S> {
    /// Credits an accepted announce to its user, in private mode (`account` is what the
    /// socket worker checked; `None` in public mode). Credit does not depend on whether
    /// the swarm stored the peer (a full torrent, port 0): the client's counters are
    /// what it transferred either way.
    pub fn account(
        &mut self,
        account: Option<&AccountInfo>,
        info_hash: InfoHash,
        peer_id: PeerId,
        left: u64,
        event: AnnounceEvent,
    ) {
        if let (Some(info), Some(duty)) = (account, self.accounting.as_mut()) {
            duty.announce(&info.announce(info_hash, peer_id, left, event), self.now);
        }
    }
}

/// A socket worker's batches of requests, one per request worker, and the channels
/// they go over. Both trackers' socket workers use it.
///
/// A batch leaves when it reaches [`MAX_BATCH_LEN`] or its channel's largest batch weight,
/// before a request would take it past that weight, or at [`Self::flush`]. A batch that
/// finds its channel full is not waited for: its requests come back to the caller, which
/// counts them and, where its protocol needs it, answers them; a rate-limited warning is
/// logged.
pub struct RequestOutbox<R> {
    from: usize,
    senders: Vec<WeightedSender<RequestBatch<R>>>,
    batches: Vec<Vec<R>>,
    /// The weight of each batch, by `weigh`.
    weights: Vec<usize>,
    weigh: fn(&R) -> usize,
    full_warning: RateLimitedWarning,
    receiver_gone: bool,
    /// Batches the channels took, since the outbox was made.
    batches_sent: u64,
}

impl<R> RequestOutbox<R> {
    /// The outbox of socket worker `from`, over one channel per request worker, each
    /// request weighing 1 (channels bounded by requests).
    pub fn new(from: usize, senders: Vec<WeightedSender<RequestBatch<R>>>) -> Self {
        Self::weighed(from, senders, |_| 1)
    }

    /// The outbox of socket worker `from`, over channels whose weights are `weigh`'s
    /// (bytes, say). No single request should weigh more than a channel's largest batch
    /// (the config validation sees to it); one that does leaves in a batch of its own.
    pub fn weighed(
        from: usize,
        senders: Vec<WeightedSender<RequestBatch<R>>>,
        weigh: fn(&R) -> usize,
    ) -> Self {
        Self {
            from,
            batches: senders.iter().map(|_| Vec::new()).collect(),
            weights: senders.iter().map(|_| 0).collect(),
            senders,
            weigh,
            full_warning: RateLimitedWarning::new(Duration::from_secs(10)),
            receiver_gone: false,
            batches_sent: 0,
        }
    }

    /// How many batches the channels have taken so far: a socket worker that sees it
    /// grow knows that responses are on their way.
    pub fn batches_sent(&self) -> u64 {
        self.batches_sent
    }

    /// How many request workers there are.
    pub fn num_shards(&self) -> usize {
        self.senders.len()
    }

    /// Whether a request worker's channel is closed (the worker is gone).
    pub fn receiver_gone(&self) -> bool {
        self.receiver_gone
    }

    /// Adds `request` for request worker `shard`, sending the batch if it is full now.
    /// Returns the requests a full channel refused (empty, without allocating, if none).
    pub fn push(&mut self, shard: usize, request: R) -> Vec<R> {
        let (Some(weight), Some(sender)) = (self.weights.get(shard), self.senders.get(shard))
        else {
            return Vec::new();
        };
        let max_weight = sender.max_batch_weight();
        let added = (self.weigh)(&request);
        // The batch leaves first if this request would take it past the largest weight.
        let mut refused = if *weight > 0 && weight.saturating_add(added) > max_weight {
            self.send(shard)
        } else {
            Vec::new()
        };
        let (Some(batch), Some(weight)) =
            (self.batches.get_mut(shard), self.weights.get_mut(shard))
        else {
            return refused;
        };
        batch.push(request);
        *weight = weight.saturating_add(added);
        if batch.len() >= MAX_BATCH_LEN || *weight >= max_weight {
            let mut more = self.send(shard);
            if refused.is_empty() {
                refused = more;
            } else {
                refused.append(&mut more);
            }
        }
        refused
    }

    /// Sends every batch; returns the requests full channels refused.
    pub fn flush(&mut self) -> Vec<R> {
        let mut refused = Vec::new();
        for shard in 0..self.batches.len() {
            let mut dropped = self.send(shard);
            if refused.is_empty() {
                refused = dropped;
            } else {
                refused.append(&mut dropped);
            }
        }
        refused
    }

    fn send(&mut self, shard: usize) -> Vec<R> {
        let (Some(batch), Some(sender)) = (self.batches.get_mut(shard), self.senders.get(shard))
        else {
            return Vec::new();
        };
        if batch.is_empty() {
            return Vec::new();
        }
        // The next batch will be about as large: one allocation now instead of a series
        // of doublings while it fills.
        let requests = std::mem::replace(batch, Vec::with_capacity(batch.len()));
        let len = requests.len();
        let weight = self.weights.get_mut(shard).map_or(len, std::mem::take);
        let message = RequestBatch {
            from: self.from,
            requests,
        };
        match sender.try_send(message, weight) {
            Ok(()) => {
                self.batches_sent += 1;
                Vec::new()
            }
            Err(TrySendError::Full(message)) => {
                if let Some(held_back) = self.full_warning.check(Instant::now()) {
                    log::warn!(
                        "request channel full: dropped {len} requests (and {held_back} more \
                         batches since the last warning); request workers are overloaded"
                    );
                }
                message.requests
            }
            Err(TrySendError::Disconnected(_)) => {
                self.receiver_gone = true;
                Vec::new()
            }
        }
    }
}

/// Where an announce answer's peers are in its batch's [`PeerBuffers`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerRange {
    /// In the IPv6 buffer rather than the IPv4 one.
    pub ipv6: bool,
    /// First peer.
    pub start: u32,
    /// Number of peers.
    pub len: u32,
}

/// The peers of all announce answers of one response batch, one buffer per family, so
/// that an announce allocates nothing of its own. `P4` and `P6` are what a protocol's
/// answer lists (compact peers, or peers with ids).
#[derive(Debug)]
pub struct PeerBuffers<P4, P6> {
    /// Peers of IPv4 answers.
    pub v4: Vec<P4>,
    /// Peers of IPv6 answers.
    pub v6: Vec<P6>,
}

impl<P4, P6> Default for PeerBuffers<P4, P6> {
    fn default() -> Self {
        Self {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

impl<P4, P6> PeerBuffers<P4, P6> {
    /// Empty buffers with room for about as much as these hold.
    pub fn empty_like(&self) -> Self {
        Self {
            v4: Vec::with_capacity(self.v4.len()),
            v6: Vec::with_capacity(self.v6.len()),
        }
    }

    /// The peers of `range`: one slice is empty, the other holds them.
    pub fn get(&self, range: PeerRange) -> (&[P4], &[P6]) {
        let start = range.start as usize;
        let span = start..start.saturating_add(range.len as usize);
        if range.ipv6 {
            (&[], self.v6.get(span).unwrap_or_default())
        } else {
            (self.v4.get(span).unwrap_or_default(), &[])
        }
    }
}

/// Applies announces to a shard and puts each answer's peers in a batch's
/// [`PeerBuffers`]: the same for every protocol but for the peer type.
#[derive(Debug)]
pub struct Announcer<P4, P6> {
    // The swarm fills these (cleared first); the batch buffers then take a copy.
    scratch_v4: Vec<P4>,
    scratch_v6: Vec<P6>,
}

impl<P4, P6> Default for Announcer<P4, P6> {
    fn default() -> Self {
        Self {
            scratch_v4: Vec::new(),
            scratch_v6: Vec::new(),
        }
    }
}

impl<P4, P6> Announcer<P4, P6>
where
    P4: AnnouncePeer<Ipv4Addr> + Clone,
    P6: AnnouncePeer<Ipv6Addr> + Clone,
{
    /// Applies the announce from `ip` to the shard of `swarm` (whatever its peers keep of
    /// their ids); returns the torrent's counts (of `ip`'s family) and where the chosen
    /// peers went in `buffers`.
    pub fn announce<D: StoredPeerId>(
        &mut self,
        swarm: &mut Swarm<SwarmShard<D>>,
        params: &AnnounceParams,
        ip: IpAddr,
        buffers: &mut PeerBuffers<P4, P6>,
    ) -> (AnnounceCounts, PeerRange) {
        match ip {
            IpAddr::V4(ip) => {
                let counts = swarm.shard.announce_ipv4(
                    params,
                    ip,
                    swarm.now,
                    &mut swarm.rng,
                    &mut self.scratch_v4,
                );
                (counts, append(&mut buffers.v4, &self.scratch_v4, false))
            }
            IpAddr::V6(ip) => {
                let counts = swarm.shard.announce_ipv6(
                    params,
                    ip,
                    swarm.now,
                    &mut swarm.rng,
                    &mut self.scratch_v6,
                );
                (counts, append(&mut buffers.v6, &self.scratch_v6, true))
            }
        }
    }
}

/// Appends `peers` to `buffer` and says where they went.
fn append<P: Clone>(buffer: &mut Vec<P>, peers: &[P], ipv6: bool) -> PeerRange {
    let start = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(peers);
    PeerRange {
        ipv6,
        start,
        len: u32::try_from(peers.len()).unwrap_or(0),
    }
}

/// What a request means: the tracker's part of the request worker.
pub trait RequestHandler: Send + 'static {
    /// The kind of shard the requests apply to.
    type Shard: Shard;
    /// What socket workers send.
    type Request: Send + 'static;
    /// What goes back to a socket worker.
    type Responses: ResponseBatch;

    /// Applies `request`, which came from socket worker `from`, to the swarm, and adds its
    /// responses to `out` (one batch per socket worker, indexed like them).
    fn handle(
        &mut self,
        swarm: &mut Swarm<Self::Shard>,
        from: usize,
        request: Self::Request,
        out: &mut [Self::Responses],
    );

    /// Called with the next few requests of a batch before they are handled: a handler
    /// may read ahead what they will need (see `SwarmShard::touch`), so that their
    /// memory reads overlap. The default does nothing.
    fn prepare(&mut self, _swarm: &Swarm<Self::Shard>, _requests: &[Self::Request]) {}

    /// Hands an offer or answer that another cluster node relayed to its peer's
    /// connection here, adding it to `out`; returns whether it was (the peer may have
    /// left, or be another node's now). Trackers without relays keep this default.
    fn relay(
        &mut self,
        _swarm: &mut Swarm<Self::Shard>,
        _relay: ClusterRelay,
        _out: &mut [Self::Responses],
    ) -> bool {
        false
    }
}

/// The channel back to one socket worker and how to wake it.
pub struct Responder<B> {
    /// The channel.
    pub sender: WeightedSender<B>,
    /// Called after each batch sent.
    pub wake: WakeFn,
}

/// When to clean the shard.
#[derive(Copy, Clone, Debug)]
pub struct CleaningSchedule {
    /// Time between cleanings.
    pub interval: Duration,
    /// Peers not seen for longer are removed.
    pub max_peer_age_secs: u32,
}

/// When a request worker hands over its shard's snapshot, and where to
/// ([`crate::swarm::snapshot`]).
pub struct SnapshotDuty {
    /// Time between periodic parts; `None` for a part at shutdown only.
    pub interval: Option<Duration>,
    /// Where periodic parts go (the `snapshot` thread), with the worker's index. Bounded:
    /// a part that does not fit (the writer is behind) is skipped, with a warning.
    pub periodic: crossbeam_channel::Sender<(usize, SnapshotPart)>,
    /// Where the part taken when the worker stops goes (whoever stops the tracker).
    pub last: crossbeam_channel::Sender<(usize, SnapshotPart)>,
}

/// A question of the admin API to one request worker, answered between two rounds of
/// requests. The reply channel has room for the answer: the worker never waits on it, and
/// an asker that gave up (dropped its receiver) costs nothing.
pub enum AdminQuery {
    /// One torrent with at most `max_peers` of its peers.
    Torrent {
        /// The torrent.
        info_hash: InfoHash,
        /// Most peers listed.
        max_peers: usize,
        /// Where the answer goes.
        reply: crossbeam_channel::Sender<Option<TorrentDetail>>,
    },
    /// The shard's `limit` busiest torrents.
    Busiest {
        /// Most torrents.
        limit: usize,
        /// Where the answer goes.
        reply: crossbeam_channel::Sender<Vec<(InfoHash, ScrapeCounts)>>,
    },
}

/// Admin queries a request worker answers per round at most: a query is a lookup or
/// one walk over the shard, and requests wait behind it.
const MAX_ADMIN_QUERIES_PER_ROUND: usize = 4;

/// One request worker and everything it owns.
pub struct RequestWorker<H: RequestHandler> {
    /// Its index among the request workers (its shard).
    pub index: usize,
    /// Requests from every socket worker.
    pub receiver: WeightedReceiver<RequestBatch<H::Request>>,
    /// Channels back to the socket workers, by index.
    pub responders: Vec<Responder<H::Responses>>,
    /// The tracker's part.
    pub handler: H,
    /// The shard.
    pub swarm: Swarm<H::Shard>,
    /// When to clean.
    pub cleaning: CleaningSchedule,
    /// The server's start, for `now`.
    pub start: ServerStartInstant,
    /// Where the gauges go.
    pub statistics: Arc<Statistics>,
    /// Set when the tracker stops.
    pub shutdown: ShutdownFlag,
    /// Snapshots to take, if they are on.
    pub snapshot: Option<SnapshotDuty>,
    /// The cluster's messages and hand-off, on a cluster node.
    pub cluster: Option<ClusterDuty>,
    /// The admin API's questions (see [`AdminQuery`]).
    pub admin: crossbeam_channel::Receiver<AdminQuery>,
}

impl<H: RequestHandler> RequestWorker<H> {
    /// Runs until shutdown.
    ///
    /// # Errors
    /// The request channel closed while no shutdown was asked for.
    pub fn run(mut self) -> anyhow::Result<()> {
        let statistics = self.statistics.clone();
        let gauges = statistics.request_worker(self.index);
        let mut full_warning = RateLimitedWarning::new(Duration::from_secs(10));
        let mut next_cleaning = Instant::now() + self.cleaning.interval;
        let mut next_snapshot = self
            .snapshot
            .as_ref()
            .and_then(|duty| duty.interval)
            .map(|interval| Instant::now() + interval);
        let mut outgoing: Vec<H::Responses> = self
            .responders
            .iter()
            .map(|_| H::Responses::default())
            .collect();

        let mut changes = Vec::new();
        while !self.shutdown.is_set() {
            let received = match &self.cluster {
                None => self.receiver.recv_timeout(RECV_TIMEOUT),
                Some(cluster) => {
                    self.receiver.wait_either(&cluster.incoming, RECV_TIMEOUT);
                    self.receiver.try_recv().map_err(|err| match err {
                        crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                        crossbeam_channel::TryRecvError::Disconnected => {
                            RecvTimeoutError::Disconnected
                        }
                    })
                }
            };
            match received {
                Ok(first) => {
                    self.swarm.now = self.start.seconds_elapsed();
                    let mut next = Some(first);
                    let mut batches = 0;
                    while let Some(batch) = next {
                        self.handle_batch(batch, &mut outgoing, gauges, &mut full_warning);
                        batches += 1;
                        next = if batches < MAX_BATCHES_PER_FLUSH {
                            self.receiver.try_recv().ok()
                        } else {
                            None
                        };
                    }
                    for to in 0..outgoing.len() {
                        self.flush(to, &mut outgoing, gauges, &mut full_warning);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.shutdown.is_set() {
                        break;
                    }
                    anyhow::bail!("request channel closed");
                }
            }
            if let Some(cluster) = &self.cluster {
                self.swarm.shard.take_changes(&mut changes);
                if !changes.is_empty() {
                    cluster.outgoing.send(std::mem::take(&mut changes));
                }
                if !self.swarm.relays.is_empty() {
                    cluster
                        .outgoing
                        .send_relays(std::mem::take(&mut self.swarm.relays));
                }
                if self.handle_cluster_messages(&mut outgoing, gauges, &mut full_warning) {
                    for to in 0..outgoing.len() {
                        self.flush(to, &mut outgoing, gauges, &mut full_warning);
                    }
                }
            }

            if Instant::now() >= next_cleaning {
                let now = self.start.seconds_elapsed();
                let cleaned = self.swarm.shard.clean(now, self.cleaning.max_peer_age_secs);
                log::trace!(
                    "request-{:02}: removed {} peers and {} torrents",
                    self.index + 1,
                    cleaned.removed_peers,
                    cleaned.removed_torrents
                );
                add(&gauges.peers_cleaned, cleaned.removed_peers as u64);
                next_cleaning = Instant::now() + self.cleaning.interval;
            }
            if let (Some(due), Some(duty)) = (next_snapshot, &self.snapshot)
                && Instant::now() >= due
            {
                let part = self.snapshot_part();
                if duty.periodic.try_send((self.index, part)).is_err() {
                    log::warn!(
                        "request-{:02}: the snapshot writer is behind, skipping a snapshot",
                        self.index + 1
                    );
                }
                next_snapshot = duty.interval.map(|interval| Instant::now() + interval);
            }
            self.answer_admin_queries();
            publish_gauges(&self.swarm.shard, gauges);
            if let Some(accounting) = &mut self.swarm.accounting {
                accounting.tick();
            }
        }
        if let Some(accounting) = &mut self.swarm.accounting {
            accounting.finish();
        }
        if let Some(duty) = &self.snapshot {
            // Whoever stops the tracker writes the file once every worker has sent this;
            // if it is gone, the process is on its way out without a snapshot.
            let _ = duty.last.send((self.index, self.snapshot_part()));
        }
        Ok(())
    }

    /// Applies what the `cluster` thread sent: at most [`MAX_BATCHES_PER_FLUSH`]
    /// messages, so that requests wait no longer behind them than behind their own.
    /// Returns whether relays added responses to `outgoing` (to flush).
    fn handle_cluster_messages(
        &mut self,
        outgoing: &mut [H::Responses],
        gauges: &RequestWorkerGauges,
        full_warning: &mut RateLimitedWarning,
    ) -> bool {
        let Some(cluster) = &self.cluster else {
            return false;
        };
        let statistics = cluster.statistics.clone();
        let now = self.start.seconds_elapsed();
        let max_age = self.cleaning.max_peer_age_secs;
        let mut responses = false;
        for _ in 0..MAX_BATCHES_PER_FLUSH {
            let Some(Ok(message)) = self.cluster.as_ref().map(|c| c.incoming.try_recv()) else {
                break;
            };
            match message {
                ShardMessage::Changes { node, changes } => {
                    for change in &changes {
                        self.swarm.shard.apply_remote(change, node, now);
                    }
                    add(&statistics.changes_applied, changes.len() as u64);
                }
                ShardMessage::NodeGone(node) => {
                    self.swarm.shard.forget_node(node);
                }
                ShardMessage::Merge(torrents) => {
                    for torrent in &torrents {
                        self.swarm.shard.merge_torrent(torrent, now, max_age);
                    }
                }
                ShardMessage::Save { max_bytes, reply } => {
                    let mut sink = ChunkSink::new(max_bytes);
                    self.swarm.shard.save_local(now, max_age, &mut sink);
                    let mut changes = Vec::new();
                    self.swarm
                        .shard
                        .save_local_changes(now, max_age, &mut changes);
                    let _ = reply.send(ResyncChunks {
                        snapshots: sink.finish(),
                        changes: change_batches(&changes, max_bytes),
                    });
                }
                ShardMessage::Relays(relays) => {
                    self.swarm.now = now;
                    for relay in relays {
                        let delivered = self.handler.relay(&mut self.swarm, relay, outgoing);
                        add(
                            if delivered {
                                &statistics.relays_delivered
                            } else {
                                &statistics.relays_dropped_incoming
                            },
                            1,
                        );
                        responses |= delivered;
                        self.flush_full(outgoing, gauges, full_warning);
                    }
                }
            }
        }
        responses
    }

    /// Answers the admin API's waiting questions, [`MAX_ADMIN_QUERIES_PER_ROUND`] at
    /// most.
    fn answer_admin_queries(&mut self) {
        for _ in 0..MAX_ADMIN_QUERIES_PER_ROUND {
            let Ok(query) = self.admin.try_recv() else {
                return;
            };
            // A send fails only when the asker gave up: nothing to do then.
            match query {
                AdminQuery::Torrent {
                    info_hash,
                    max_peers,
                    reply,
                } => {
                    let now = self.start.seconds_elapsed();
                    let _ =
                        reply.try_send(self.swarm.shard.torrent_detail(&info_hash, now, max_peers));
                }
                AdminQuery::Busiest { limit, reply } => {
                    let _ = reply.try_send(self.swarm.shard.busiest_torrents(limit));
                }
            }
        }
    }

    /// The shard's snapshot part, taken now.
    fn snapshot_part(&self) -> SnapshotPart {
        let mut part = SnapshotPart::new();
        self.swarm.shard.save(
            self.start.seconds_elapsed(),
            self.cleaning.max_peer_age_secs,
            &mut part,
        );
        part
    }

    fn handle_batch(
        &mut self,
        batch: RequestBatch<H::Request>,
        outgoing: &mut [H::Responses],
        gauges: &RequestWorkerGauges,
        full_warning: &mut RateLimitedWarning,
    ) {
        let from = batch.from;
        let mut requests = batch.requests.into_iter();
        while requests.len() > 0 {
            let ahead = requests.len().min(PREPARE_AHEAD);
            if let Some(next) = requests.as_slice().get(..ahead) {
                self.handler.prepare(&self.swarm, next);
            }
            for request in requests.by_ref().take(ahead) {
                self.handler
                    .handle(&mut self.swarm, from, request, outgoing);
                self.flush_full(outgoing, gauges, full_warning);
            }
        }
    }

    /// Sends every batch that reached [`MAX_BATCH_LEN`] or its channel's largest weight.
    /// Most handlers answer the sender only; checking every destination keeps the bound
    /// for those that also write elsewhere. A batch passes its largest weight by one
    /// request's (or relay's) responses at most, which the config validation keeps within
    /// that weight again: at most twice it, at most the capacity.
    fn flush_full(
        &self,
        outgoing: &mut [H::Responses],
        gauges: &RequestWorkerGauges,
        full_warning: &mut RateLimitedWarning,
    ) {
        for to in 0..outgoing.len() {
            let max_weight = self
                .responders
                .get(to)
                .map_or(usize::MAX, |r| r.sender.max_batch_weight());
            if outgoing
                .get(to)
                .is_some_and(|out| out.len() >= MAX_BATCH_LEN || out.weight() >= max_weight)
            {
                self.flush(to, outgoing, gauges, full_warning);
            }
        }
    }

    /// Sends socket worker `to` its batch, if it has one, and wakes it.
    fn flush(
        &self,
        to: usize,
        outgoing: &mut [H::Responses],
        gauges: &RequestWorkerGauges,
        full_warning: &mut RateLimitedWarning,
    ) {
        let (Some(out), Some(responder)) = (outgoing.get_mut(to), self.responders.get(to)) else {
            return;
        };
        if out.is_empty() {
            return;
        }
        let batch = std::mem::replace(out, out.empty_like());
        let len = batch.len();
        let weight = batch.weight();
        match responder.sender.try_send(batch, weight) {
            Ok(()) => {
                if let Err(err) = (responder.wake)() {
                    log::warn!("wake socket worker: {err}");
                }
            }
            Err(TrySendError::Full(_)) => {
                add(&gauges.dropped, len as u64);
                if let Some(held_back) = full_warning.check(Instant::now()) {
                    log::warn!(
                        "response channel full: dropped {len} responses (and {held_back} \
                         more batches since the last warning); socket workers are overloaded"
                    );
                }
            }
            // The socket worker is gone: the supervisor is already shutting down.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Publishes the shard's sizes; cheap (running totals), so done every loop.
fn publish_gauges(shard: &impl Shard, gauges: &RequestWorkerGauges) {
    let set = |gauge: &std::sync::atomic::AtomicU64, value: usize| {
        gauge.store(value as u64, Ordering::Relaxed);
    };
    set(&gauges.torrents, shard.num_torrents());
    set(&gauges.seeders, shard.num_seeders());
    set(&gauges.leechers, shard.num_leechers());
    set(&gauges.archived_torrents, shard.num_archived_torrents());
    set(&gauges.archive_bytes, shard.archive_memory_bytes());
    set(&gauges.remote_peers, shard.num_remote_peers());
    gauges
        .rejected_by_limits
        .store(shard.num_rejected_by_limits(), Ordering::Relaxed);
    gauges
        .throttled
        .store(shard.num_throttled(), Ordering::Relaxed);
    gauges
        .completed
        .store(shard.num_completed(), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicUsize;

    use rand::SeedableRng;

    use super::*;
    use crate::runtime::channel::{WeightedSender, weighted};
    use crate::swarm::{AnnounceParams, SwarmBudget, SwarmLimits};
    use crate::types::{AnnounceEvent, InfoHash, PeerId, ResponsePeer};

    /// Announces a seeder on port `port` of torrent `hash`, answering the torrent's seeder
    /// count.
    struct Announcer {
        scratch: Vec<ResponsePeer<Ipv4Addr>>,
    }

    impl ResponseBatch for Vec<(u16, u32)> {
        fn len(&self) -> usize {
            Vec::len(self)
        }
    }

    impl RequestHandler for Announcer {
        type Shard = SwarmShard;
        type Request = (u8, u16);
        type Responses = Vec<(u16, u32)>;

        fn handle(
            &mut self,
            swarm: &mut Swarm,
            from: usize,
            (hash, port): (u8, u16),
            out: &mut [Self::Responses],
        ) {
            let params = AnnounceParams {
                info_hash: InfoHash([hash; 20]),
                peer_id: PeerId([0; 20]),
                port,
                bytes_left: 0,
                event: AnnounceEvent::Started,
                numwant: 0,
            };
            let ip = Ipv4Addr::from(u32::from(port));
            let counts = swarm.shard.announce_ipv4(
                &params,
                ip,
                swarm.now,
                &mut swarm.rng,
                &mut self.scratch,
            );
            out[from].push((port, counts.seeders));
        }
    }

    struct Running {
        to_worker: WeightedSender<RequestBatch<(u8, u16)>>,
        from_worker: Vec<WeightedReceiver<Vec<(u16, u32)>>>,
        wakes: Arc<AtomicUsize>,
        statistics: Arc<Statistics>,
        shutdown: ShutdownFlag,
        thread: std::thread::JoinHandle<anyhow::Result<()>>,
    }

    fn start(socket_workers: usize, capacity: usize) -> Running {
        // Room for two full batches of requests; responses get `capacity`.
        let (to_worker, receiver) = weighted(2 * MAX_BATCH_LEN);
        let wakes = Arc::new(AtomicUsize::new(0));
        let (senders, from_worker): (Vec<_>, Vec<_>) =
            (0..socket_workers).map(|_| weighted(capacity)).unzip();
        let statistics = Arc::new(Statistics::new(socket_workers, 1));
        let shutdown = ShutdownFlag::new();
        let worker = RequestWorker {
            index: 0,
            receiver,
            responders: senders
                .into_iter()
                .map(|sender| {
                    let wakes = wakes.clone();
                    Responder {
                        sender,
                        wake: Arc::new(move || {
                            wakes.fetch_add(1, Ordering::Relaxed);
                            Ok(())
                        }),
                    }
                })
                .collect(),
            handler: Announcer {
                scratch: Vec::new(),
            },
            swarm: Swarm {
                shard: {
                    let limits = SwarmLimits {
                        max_torrents: 100,
                        max_peers: 100_000,
                        max_peers_per_torrent: 100_000,
                        max_peers_per_ip: 1,
                        max_archived_torrents: 0,
                        min_announce_interval_secs: 0,
                    };
                    SwarmShard::new(limits, Arc::new(SwarmBudget::new(&limits)), 1)
                },
                rng: SmallRng::seed_from_u64(1),
                now: SecondsSinceServerStart(0),
                accounting: None,
                relays: Vec::new(),
            },
            cleaning: CleaningSchedule {
                interval: Duration::from_secs(3600),
                max_peer_age_secs: 3600,
            },
            start: ServerStartInstant::new(),
            statistics: statistics.clone(),
            shutdown: shutdown.clone(),
            snapshot: None,
            cluster: None,
            admin: crossbeam_channel::never(),
        };
        let thread = std::thread::spawn(move || worker.run());
        Running {
            to_worker,
            from_worker,
            wakes,
            statistics,
            shutdown,
            thread,
        }
    }

    fn stop(running: Running) {
        running.shutdown.set();
        running.thread.join().unwrap().unwrap();
    }

    #[test]
    fn answers_go_back_to_the_sender_and_wake_it() {
        let running = start(2, MAX_BATCH_LEN);
        let batch = |from, requests| RequestBatch { from, requests };
        running
            .to_worker
            .try_send(batch(1, vec![(1, 10), (1, 11)]), 2)
            .unwrap();
        let answer = running.from_worker[1]
            .recv_timeout(Duration::from_secs(5))
            .unwrap();
        assert_eq!(answer, vec![(10, 1), (11, 2)]);
        running
            .to_worker
            .try_send(batch(0, vec![(1, 12)]), 1)
            .unwrap();
        let answer = running.from_worker[0]
            .recv_timeout(Duration::from_secs(5))
            .unwrap();
        assert_eq!(answer, vec![(12, 3)]);
        assert!(running.wakes.load(Ordering::Relaxed) >= 2);
        assert!(
            running.from_worker[1].try_recv().is_err(),
            "nothing more for worker 1"
        );
        stop(running);
    }

    /// Responses leave in batches of at most MAX_BATCH_LEN, and a batch that finds the
    /// channel back full is dropped and counted, not waited for.
    #[test]
    fn response_batches_are_bounded_and_a_full_channel_drops() {
        let running = start(1, MAX_BATCH_LEN);
        let requests: Vec<(u8, u16)> = (0..MAX_BATCH_LEN as u16).map(|p| (2, p + 1)).collect();
        for _ in 0..2 {
            let batch = RequestBatch {
                from: 0,
                requests: requests.clone(),
            };
            assert!(running.to_worker.try_send(batch, MAX_BATCH_LEN).is_ok());
        }
        // Nobody reads the responses: the first full batch fills the channel, the second
        // is dropped whole.
        let gauges = running.statistics.request_worker(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while gauges.dropped.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(gauges.dropped.load(Ordering::Relaxed), MAX_BATCH_LEN as u64);
        let first = running.from_worker[0].try_recv().unwrap();
        assert_eq!(first.len(), MAX_BATCH_LEN);
        assert!(running.from_worker[0].try_recv().is_err());
        assert_eq!(gauges.seeders.load(Ordering::Relaxed), MAX_BATCH_LEN as u64);
        stop(running);
    }

    #[test]
    fn a_closed_request_channel_without_shutdown_is_an_error() {
        let running = start(1, MAX_BATCH_LEN);
        drop(running.to_worker);
        let result = running.thread.join().unwrap();
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("request channel closed")
        );
    }

    /// Weighed by bytes: a batch leaves before a request would take it past the
    /// channel's largest batch weight, or once it reaches it; the channel counts the
    /// batch's bytes, exactly.
    #[test]
    fn a_weighed_outbox_keeps_batches_within_the_largest_weight() {
        let (sender, receiver) = crate::runtime::channel::bounded::<RequestBatch<u32>>(
            crate::runtime::channel::ChannelBound::Bytes(400),
        );
        assert_eq!(sender.max_batch_weight(), 100);
        let mut outbox = RequestOutbox::weighed(0, vec![sender.clone()], |r: &u32| *r as usize);
        assert!(outbox.push(0, 60).is_empty());
        assert!(receiver.try_recv().is_err(), "60 of 100: waits");
        assert!(outbox.push(0, 60).is_empty());
        assert_eq!(
            receiver.try_recv().unwrap().requests,
            vec![60],
            "120 would pass 100"
        );
        assert!(outbox.push(0, 40).is_empty());
        assert_eq!(
            receiver.try_recv().unwrap().requests,
            vec![60, 40],
            "100: full"
        );
        assert!(outbox.push(0, 7).is_empty());
        assert!(outbox.push(0, 150).is_empty());
        assert_eq!(receiver.try_recv().unwrap().requests, vec![7]);
        assert_eq!(receiver.try_recv().unwrap().requests, vec![150], "alone");
        assert_eq!(sender.queued(), 0);
        for _ in 0..4 {
            assert!(outbox.push(0, 100).is_empty());
        }
        assert_eq!(sender.queued(), 400);
        assert_eq!(outbox.push(0, 100), vec![100], "the budget is used");
        assert!(outbox.push(0, 1).is_empty());
        assert_eq!(outbox.flush(), vec![1]);
        assert_eq!(sender.queued(), 400);
    }

    /// Batches leave full or at a flush; what a full channel refuses comes back whole;
    /// a closed channel is noticed.
    #[test]
    fn the_outbox_sends_full_batches_and_returns_what_is_refused() {
        let (sender, receiver) = weighted::<RequestBatch<u32>>(MAX_BATCH_LEN);
        let mut outbox = RequestOutbox::new(3, vec![sender]);
        for i in 0..MAX_BATCH_LEN as u32 - 1 {
            assert!(outbox.push(0, i).is_empty());
        }
        assert!(receiver.try_recv().is_err(), "not sent before it is full");
        assert!(outbox.push(0, 9999).is_empty());
        let batch = receiver.try_recv().unwrap();
        assert_eq!((batch.from, batch.requests.len()), (3, MAX_BATCH_LEN));
        // Fill the channel, then a flushed batch is refused and comes back.
        assert!(outbox.push(0, 1).is_empty());
        assert!(outbox.flush().is_empty());
        for i in 0..MAX_BATCH_LEN as u32 - 1 {
            assert!(outbox.push(0, i).is_empty());
        }
        assert_eq!(outbox.flush(), Vec::<u32>::new(), "1 + 1023 fit exactly");
        assert!(outbox.push(0, 7).is_empty());
        assert_eq!(outbox.flush(), vec![7]);
        assert!(!outbox.receiver_gone());
        let (sender, receiver) = weighted::<RequestBatch<u32>>(MAX_BATCH_LEN);
        let mut outbox = RequestOutbox::new(0, vec![sender]);
        drop(receiver);
        assert!(outbox.push(0, 8).is_empty());
        assert!(outbox.flush().is_empty());
        assert!(outbox.receiver_gone());
    }
}
