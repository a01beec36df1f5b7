//! Swarm state: which peers are in which torrent, shared by the UDP, HTTP and WebSocket
//! trackers.
//!
//! # Two kinds of shard
//! [`SwarmShard`] is the swarm of the UDP and HTTP trackers: peers keyed by their IP
//! endpoint, under the rules below. [`ws::WsSwarmShard`] is the WebTorrent swarm: peers
//! keyed by peer id and owned by a WebSocket connection, answered with offer targets
//! instead of addresses; its module states its rules. A tracker uses one kind; both can
//! share the [`SwarmBudget`] type and [`SwarmLimits`].
//!
//! Each request worker owns one [`SwarmShard`] (the torrents that
//! [`crate::swarm::routing::ShardRouter`] assigns to it), so the swarms themselves are not
//! locked. What the shards share is one [`SwarmBudget`]: atomic counts of torrents and peers against the
//! whole-tracker limits, touched only when a torrent or a peer is created or removed,
//! never on a re-announce. The module is otherwise pure and deterministic: no sockets,
//! threads, channels, clock, logging or configuration. Time ([`SecondsSinceServerStart`])
//! and randomness ([`SmallRng`]) come in as arguments, so the tests need neither a clock
//! nor threads, and limits come in as plain values ([`SwarmLimits`], [`NumWantPolicy`]).
//!
//! # Rules enforced
//! By [`SwarmShard`]. The WebTorrent swarm applies those marked (*) too, through the same
//! code.
//! - A peer is keyed by (info hash, IP, port): its endpoint, the IP being the request's
//!   source address. A request from another IP can neither move nor remove someone's
//!   peer, whatever peer id it sends; a client that restarts with a new peer id on the
//!   same IP and port takes over its old entry (the entry's peer id changes, nothing
//!   else).
//! - The peer id is data, and what a shard keeps of it is its type parameter
//!   ([`StoredPeerId`]): `SwarmShard<PeerId>` (the default, the HTTP tracker's) keeps it,
//!   because non-compact HTTP answers list it; `SwarmShard<NoPeerId>` (the UDP tracker's)
//!   keeps none, because UDP answers never list peer ids (BEP 15) and, a peer being keyed
//!   by its endpoint, nothing else reads it: a stored peer is then 4 bytes instead of 24
//!   (see `peers`). Such a shard answers with zero ids (which its answers drop), saves
//!   zeros in snapshots, lists no id in the admin API, and takes no peer id change for
//!   news worth recording; its cluster changes carry the announce's own peer id, which
//!   comes from the request. Everything else is the same for both kinds.
//! - (*) `left == 0` makes a peer a seeder, anything else a leecher; an announce that
//!   changes it moves the peer. Seeders and leechers are kept in separate stores per
//!   torrent.
//! - (*) `event=stopped` removes the peer at (source IP, port), and the torrent once it
//!   has no peers; it never creates a torrent and is answered without peers.
//! - (*) `completed` grows by one only when a stored leecher becomes a seeder through
//!   `event=completed` (with `left == 0`), at most once per stored peer: the peer carries
//!   a flag set when its completion is counted. Repeats, `completed` from a peer that
//!   stays a leecher, and leecher → seeder → leecher → seeder cycles do not count again,
//!   nor does a restart under a new peer id at the same endpoint (the same entry, flag
//!   included). A peer that is removed (stopped or expired) and comes back is a new peer
//!   (in private mode, where `completed` is credit, accounting will be per user instead).
//! - Port 0 is answered (counts and peers) but stores nothing.
//! - (*) The response holds up to `numwant` peers chosen at random, never the announcer's
//!   own endpoint; a seeder gets leechers only, a leecher gets seeders and leechers.
//! - IPv4 and IPv6 peers never mix: a client gets peers, and announce counts, of the
//!   family it announced from. A torrent holds both families' peers, so its limits, its
//!   `completed` and its scrape counts cover both.
//! - One address (an IPv4 address, or an IPv6 /64) holds at most
//!   [`SwarmLimits::max_peers_per_ip`] peers in one torrent, seeders and leechers
//!   together; only a new peer is checked.
//! - (*) Memory is bounded by [`SwarmLimits`], for the whole tracker: distinct torrents
//!   over all shards, peers over all shards, peers of one torrent over both families. An
//!   announce that would need a torrent or a peer beyond them is answered from what
//!   exists, stores nothing and is counted ([`SwarmShard::num_rejected_by_limits`]).
//! - (*) With [`SwarmLimits::min_announce_interval_secs`] set (0 = off), a plain
//!   re-announce (no event) of a stored peer less than that long after the peer was
//!   last seen is throttled: answered with the torrent's counts and no peers, it changes
//!   nothing (last-seen time, status, peer id, `completed` all stay as they were; so the
//!   peer expires on its old schedule) and records nothing for the cluster. It is counted
//!   ([`SwarmShard::num_throttled`]). An announce with an event (started, completed,
//!   stopped), a new peer, port 0 and the first announce here of a remote peer always
//!   apply; so does the first plain re-announce once the interval has passed. The
//!   last-seen time is the one cleaning goes by, so another node's change that moved it
//!   later counts as an announce.
//! - (*) [`SwarmShard::clean`] removes peers not seen for the configured age (one last
//!   seen exactly that long ago stays) and the torrents left empty.
//! - (*) A torrent that empties keeps its completed count in a bounded archive (see
//!   `archive.rs` for what it keeps when full); the count comes back with the torrent, and
//!   a scrape of an archived torrent answers 0 seeders, 0 leechers and that count.
//!
//! # Between the nodes of a cluster
//! By [`SwarmShard`] alone (the WebTorrent swarm is not replicated). The wire format of
//! the changes is the `tracker_cluster_protocol` crate; publishing and receiving them is
//! the caller's.
//! - Recording is off unless [`SwarmShard::record_changes`] turns it on; then each local
//!   announce that stores or refreshes a peer (a new peer, a re-announce, a status move;
//!   a plain re-announce once per window, see there) records an upsert of age 0, with `completed` set exactly when that announce counted
//!   a completion, and an `event=stopped` that removed a stored peer records a removal.
//!   Port 0, an announce refused by the limits, a throttled re-announce, a stop that
//!   removed nothing, cleaning and everything applied from other nodes record nothing.
//! - Another node's change ([`SwarmShard::apply_remote`]): an upsert refreshes a stored
//!   peer (peer id, status, last seen the later of its own and the change's) or stores a
//!   new one through the admission of a restored peer (every limit above, refusals
//!   counted), seen `age_secs` before now; with `completed` set, the torrent's count grows
//!   by one and the peer's flag is set (the completion was counted once, where it
//!   happened). A removal removes the peer at that endpoint, local or not.
//! - A peer stored by another node's change ([`SwarmShard::apply_remote`],
//!   [`SwarmShard::merge_torrent`]) is remote ([`SwarmShard::num_remote_peers`]) until
//!   it announces here; another node's change to a stored peer leaves its mark as it is.
//!   Peers restored from a snapshot are this node's.
//!
//! The decisions behind the rules marked (*) live in private modules that both kinds of
//! shard call: `rules` (status from bytes left, when a completion counts and the flag
//! that keeps it from counting twice, the expiry cutoff), `ledger` (admission against the
//! limits and the shared [`SwarmBudget`], refusals, totals, removing a peer and its
//! emptied torrent, the archive, cleaning, scrapes, the busiest torrents) and the
//! response pool and sampler of `peers`.
//!
//! # Beside the shards
//! These modules are about the swarm without being a shard, and the purity above is not
//! theirs (each states what it touches):
//! - [`access_list`]: allow / deny lists of info hashes and the `[access_list]` section,
//!   reloaded without locks on the hot path.
//! - [`full_scrape`]: full scrapes (naming no torrent): gathered from every request worker,
//!   merged, and one cached body shared by every answer.
//! - [`inspect`]: one torrent's counts and peers, for the admin API.
//! - [`routing`]: which request worker owns a torrent (a keyed hash, so that clients cannot
//!   aim their torrents at one worker).
//! - [`scrape`]: splitting a scrape over the request workers and merging the answers.
//! - [`snapshot`]: the swarm saved to a file (periodically and at a clean shutdown) and
//!   restored at start, in a checksummed format of its own.
//!
//! None of them starts a thread, holds a channel or opens a socket, and the shard
//! modules import [`routing`] alone of them. The rest of the crate imports `swarm`; it
//! imports nothing of the rest of the crate but the value types at the root and the
//! `config_section!` macro.
//!
//! Nothing here panics on any input: the lints below forbid `unwrap`, `expect`, `panic!`
//! and unchecked indexing in this module.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod access_list;
mod archive;
mod dense;
pub(crate) use dense::MAX_LEN as MAX_STORE_LEN;
pub mod full_scrape;
pub mod inspect;
mod ledger;
mod peers;
pub mod routing;
mod rules;
pub mod saved;
pub mod scrape;
pub mod snapshot;
pub mod ws;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::{HashTable, hash_table};
use rand::rngs::SmallRng;
use tracker_cluster_protocol::{PeerChange, PeerUpsert};

use crate::swarm::routing::ShardRouter;
use crate::time::SecondsSinceServerStart;
use crate::types::{AnnounceEvent, AnnouncePeer, InfoHash, PeerId};

// What a scrape reports, defined with the other wire values so that the wire crates
// need not depend on this crate; re-exported at its old path.
pub use tracker_types::ScrapeCounts;

pub use self::peers::{NoPeerId, StoredPeerId};

use self::ledger::{Ledger, SwarmTorrent};
use self::peers::{Family, Peer, PeerKey, Torrent};
use self::rules::{LastSeen, Status};

/// How many peers to return: missing or negative → default; 0 → none; capped by max
/// (default is capped by max too).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NumWantPolicy {
    /// Peers returned when the client does not say (or sends a negative number, as UDP
    /// clients do with -1).
    pub default: usize,
    /// The most peers ever returned, whatever the client asks for.
    pub max: usize,
}

impl NumWantPolicy {
    /// The number of peers to return for the client's `numwant` (`None` if it sent none).
    pub fn resolve(&self, requested: Option<i64>) -> usize {
        match requested {
            None => self.default.min(self.max),
            Some(n) if n < 0 => self.default.min(self.max),
            // Positive and too large for usize (32-bit targets) means "as many as allowed".
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(self.max),
        }
    }
}

/// Bounds on memory, each for the whole tracker (all shards, both address families), and
/// on how often a stored peer's plain re-announces are applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SwarmLimits {
    /// The most torrents (distinct info hashes) stored.
    pub max_torrents: usize,
    /// The most peers stored, over all torrents.
    pub max_peers: usize,
    /// The most peers (seeders and leechers, IPv4 and IPv6) one torrent holds; at most
    /// `u32::MAX - 1` whatever is asked.
    pub max_peers_per_torrent: usize,
    /// The most peers one IPv4 address or one IPv6 /64 holds in one torrent.
    pub max_peers_per_ip: usize,
    /// The most completed counts of emptied torrents kept (split evenly over the shards).
    pub max_archived_torrents: usize,
    /// Seconds a stored peer must wait after its last announce before a plain
    /// re-announce (no event) is applied again; a sooner one is answered with the counts
    /// alone and changes nothing (see the module rules). 0 = off.
    pub min_announce_interval_secs: u32,
}

/// The torrents and peers stored by all shards, against the whole-tracker limits. Shared
/// by the shards (`Arc`) and counted with atomics, taken when a torrent or a peer is
/// created and given back when it goes, so that a limit holds for the sum of the shards
/// without locking any of them.
#[derive(Debug)]
pub struct SwarmBudget {
    torrents: AtomicUsize,
    peers: AtomicUsize,
    max_torrents: usize,
    max_peers: usize,
}

impl SwarmBudget {
    /// An empty budget for `limits`.
    pub fn new(limits: &SwarmLimits) -> Self {
        Self {
            torrents: AtomicUsize::new(0),
            peers: AtomicUsize::new(0),
            max_torrents: limits.max_torrents,
            max_peers: limits.max_peers,
        }
    }

    /// Torrents stored, over all shards.
    pub fn num_torrents(&self) -> usize {
        self.torrents.load(Ordering::Relaxed)
    }

    /// Peers stored, over all shards.
    pub fn num_peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }

    fn try_acquire(counter: &AtomicUsize, max: usize) -> bool {
        // Relaxed: the counter orders nothing else, it only has to stay exact.
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n.saturating_add(1))
            })
            .is_ok()
    }

    fn release(counter: &AtomicUsize, n: usize) {
        if n > 0 {
            // Saturating, so that a bug could never wrap it into "everything is full".
            let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                Some(m.saturating_sub(n))
            });
        }
    }

    /// Takes room for one torrent; `false` if the tracker holds `max_torrents` already.
    fn acquire_torrent(&self) -> bool {
        Self::try_acquire(&self.torrents, self.max_torrents)
    }

    /// Takes room for one peer; `false` if the tracker holds `max_peers` already.
    fn acquire_peer(&self) -> bool {
        Self::try_acquire(&self.peers, self.max_peers)
    }

    /// Gives back room for `n` torrents.
    fn release_torrents(&self, n: usize) {
        Self::release(&self.torrents, n);
    }

    /// Gives back room for `n` peers.
    fn release_peers(&self, n: usize) {
        Self::release(&self.peers, n);
    }
}

/// One announce, protocol-independent. `numwant` is already resolved by [`NumWantPolicy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceParams {
    /// The torrent announced.
    pub info_hash: InfoHash,
    /// The announcing peer's self-chosen id.
    pub peer_id: PeerId,
    /// The port the peer listens on; 0 means the announce is answered but not stored.
    pub port: u16,
    /// Bytes the peer still has to download; 0 makes it a seeder.
    pub bytes_left: u64,
    /// The announce's event.
    pub event: AnnounceEvent,
    /// How many peers to return at most.
    pub numwant: usize,
}

/// Seeders and leechers of the announced torrent in the announcer's address family (the
/// swarm it can get peers from), after the announce was applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct AnnounceCounts {
    /// Peers that have the whole torrent.
    pub seeders: u32,
    /// Peers still downloading.
    pub leechers: u32,
}

/// What one cleaning pass removed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct CleanStats {
    /// Peers removed because they were not seen for too long.
    pub removed_peers: usize,
    /// Torrents removed because they were left without peers.
    pub removed_torrents: usize,
}

/// The torrents of one shard, both address families. `D` is what a stored peer keeps of
/// its peer id: the whole id by default (the HTTP tracker), [`NoPeerId`] for the UDP
/// tracker (see the rules above).
pub struct SwarmShard<D: StoredPeerId = PeerId> {
    // Torrents are stored inline, info hash included: a 64-byte slot. Boxing would make
    // a slot 8 bytes plus a 64-byte heap chunk per torrent, which only saves memory while
    // the table is mostly empty, and would cost each announce a second cache miss.
    torrents: HashTable<Torrent<D>>,
    budget: Arc<SwarmBudget>,
    // Limits, totals, refusals, archive and the table's keyed hasher.
    ledger: Ledger,
    // Whether local announces append what they change to `changes`, for the other nodes
    // of a cluster; off unless `record_changes` turned it on.
    recording: bool,
    // Seconds of a window in which a peer's plain re-announces are recorded once (0:
    // every one); see `record_changes`.
    refresh_window_secs: u32,
    changes: Vec<PeerChange>,
}

impl<D: StoredPeerId> SwarmShard<D> {
    /// An empty shard, one of `num_shards` sharing `budget` (made from the same `limits`).
    /// The archive's capacity is split evenly over the shards.
    pub fn new(limits: SwarmLimits, budget: Arc<SwarmBudget>, num_shards: usize) -> Self {
        Self::with_router(limits, budget, &ShardRouter::new(num_shards))
    }

    /// An empty shard of `router`'s shards sharing `budget` (made from the same
    /// `limits`); its archive is keyed by the router's fingerprints, so that a snapshot
    /// can route the archived counts after a restart.
    pub fn with_router(
        limits: SwarmLimits,
        budget: Arc<SwarmBudget>,
        router: &ShardRouter,
    ) -> Self {
        Self {
            torrents: HashTable::new(),
            budget,
            ledger: Ledger::new(limits, router),
            recording: false,
            refresh_window_secs: 0,
            changes: Vec::new(),
        }
    }

    /// Turns on or off the recording of what local announces change, for the other nodes
    /// of a cluster (see the module's cluster rules); off when the shard is made. Turning
    /// it off drops the changes not taken yet. While it is on, the caller must take the
    /// changes ([`Self::take_changes`]) regularly: they are kept until then.
    ///
    /// A plain re-announce (a stored peer of this node, same status and peer id, no
    /// completion) is recorded only if it is the peer's first announce in its window of
    /// `refresh_window_secs` (windows counted from the server's start; 0: every
    /// re-announce is recorded). Another node's copy is then refreshed at least every
    /// two windows while the peer announces, so with windows of at most a third of the
    /// peer age it never expires there while the peer lives, and a peer that dies leaves
    /// the other nodes at most a window before this one. A client that re-announces
    /// faster than the interval costs the bus one change per window, not one per
    /// announce.
    pub fn record_changes(&mut self, on: bool, refresh_window_secs: u32) {
        self.recording = on;
        self.refresh_window_secs = refresh_window_secs;
        if !on {
            self.changes = Vec::new();
        }
    }

    /// Appends the changes recorded since the last call to `out`, oldest first, and
    /// empties the shard's own buffer (keeping its capacity for the next ones).
    pub fn take_changes(&mut self, out: &mut Vec<PeerChange>) {
        out.append(&mut self.changes);
    }

    /// Peers stored that are remote: stored from another node's change
    /// ([`Self::apply_remote`], [`Self::merge_torrent`]) and not announced to this node
    /// since.
    pub fn num_remote_peers(&self) -> usize {
        self.ledger.num_remote()
    }

    /// Applies the announce from `ip` (IPv4, including IPv4-mapped IPv6 addresses, which
    /// the caller turns into IPv4) and fills `out` (cleared first) with up to
    /// params.numwant random IPv4 peers.
    ///
    /// Returns the torrent's counts after the announce; zeros if the torrent does not exist
    /// (any more). See the module documentation for the rules.
    pub fn announce_ipv4<P: AnnouncePeer<Ipv4Addr>>(
        &mut self,
        params: &AnnounceParams,
        ip: Ipv4Addr,
        now: SecondsSinceServerStart,
        rng: &mut SmallRng,
        out: &mut Vec<P>,
    ) -> AnnounceCounts {
        self.announce(params, ip, now, rng, out)
    }

    /// [`Self::announce_ipv4`] for an announce from an IPv6 address; `out` gets IPv6 peers.
    pub fn announce_ipv6<P: AnnouncePeer<Ipv6Addr>>(
        &mut self,
        params: &AnnounceParams,
        ip: Ipv6Addr,
        now: SecondsSinceServerStart,
        rng: &mut SmallRng,
        out: &mut Vec<P>,
    ) -> AnnounceCounts {
        self.announce(params, ip, now, rng, out)
    }

    fn hash(&self, info_hash: &InfoHash) -> u64 {
        self.ledger.hash(info_hash)
    }

    /// Reads what an announce for `info_hash` reads first: the torrent's slot and the
    /// first entries of its IPv4 stores. Nothing changes.
    ///
    /// A request worker calls it for a few requests before it answers them: the table
    /// of a large shard is far larger than the caches, so each announce would otherwise
    /// wait for two or three memory reads in turn (the table's control bytes, the slot,
    /// the store), while these lookups, one after the other and independent, wait for
    /// theirs at the same time.
    pub fn touch(&self, info_hash: &InfoHash) {
        let hash = self.hash(info_hash);
        if let Some(torrent) = self.torrents.find(hash, |t| t.info_hash == *info_hash) {
            torrent.v4.touch();
        }
    }

    fn announce<F: Family, P: AnnouncePeer<F>>(
        &mut self,
        params: &AnnounceParams,
        ip: F,
        now: SecondsSinceServerStart,
        rng: &mut SmallRng,
        out: &mut Vec<P>,
    ) -> AnnounceCounts {
        out.clear();
        let key = PeerKey {
            ip,
            port: params.port,
        };
        let info_hash = params.info_hash;
        let hash = self.hash(&info_hash);
        // Stopped comes before the port check: a leaving client wants no peers.
        if params.event == AnnounceEvent::Stopped {
            let (counts, removed) = self.remove_peer(hash, &info_hash, &key);
            if removed && self.recording {
                self.changes.push(PeerChange::Removed {
                    info_hash,
                    ip: ip.into(),
                    port: params.port,
                });
            }
            return counts;
        }
        let status = Status::from_bytes_left(params.bytes_left);

        if params.port == 0 {
            // A peer nobody can connect to is worth answering but not storing. Nothing
            // changes, not even `completed`. Its endpoint (IP, 0) is never stored, so
            // there is no announcer to leave out.
            let Some(torrent) = self.torrents.find(hash, |t| t.info_hash == info_hash) else {
                return AnnounceCounts::default();
            };
            if let Some(peers) = F::peers(torrent) {
                peers.select_peers(status, None, params.numwant, rng, out);
            }
            return family_counts::<F, D>(torrent);
        }

        // What the shard keeps of the announced id (nothing, for the UDP kind).
        let peer_id = D::from_peer_id(&params.peer_id);
        let new_peer = Peer {
            peer_id,
            last_seen: LastSeen::new(now, false),
        };
        let Self {
            torrents,
            budget,
            ledger,
            recording,
            refresh_window_secs,
            changes,
        } = self;
        // What the announce stored, for the other nodes: `Some(completed)` once a peer
        // is stored or refreshed, `completed` saying whether its completion counted now.
        let record = |changes: &mut Vec<PeerChange>, completed: bool| {
            changes.push(PeerChange::Upsert(PeerUpsert {
                info_hash,
                ip: ip.into(),
                port: params.port,
                peer_id: params.peer_id,
                seeder: status == Status::Seeder,
                completed,
                age_secs: 0,
            }));
        };
        let limits = ledger.limits();
        let torrent = match torrents.entry(
            hash,
            |t| t.info_hash == info_hash,
            |t| ledger.hash(&t.info_hash),
        ) {
            hash_table::Entry::Occupied(entry) => entry.into_mut(),
            hash_table::Entry::Vacant(entry) => {
                // No peers yet: the per-address cap only asks for room for one.
                let Some(completed) =
                    ledger.admit_torrent(budget, &info_hash, limits.max_peers_per_ip > 0)
                else {
                    return AnnounceCounts::default();
                };
                let mut torrent = Torrent::new(info_hash, completed);
                F::peers_or_insert(&mut torrent).insert(status, key, new_peer);
                ledger.peer_added(status);
                if *recording {
                    record(changes, false);
                }
                // The announcer is the only peer: nothing to send.
                return family_counts::<F, D>(entry.insert(torrent).get());
            }
        };

        let found = F::peers(torrent).and_then(|peers| peers.locate(&key, status));
        // A stored peer's plain re-announce that comes too soon changes nothing, records
        // nothing and gets no peers.
        if let Some(found) = found
            && let Some(peer) = F::peers(torrent).and_then(|peers| peers.peer(found))
            && ledger.throttles(peer.last_seen, params.event, now)
        {
            return family_counts::<F, D>(torrent);
        }
        // Whether a peer was stored or refreshed, and whether its completion counted now.
        let mut stored = None;
        let location = match found {
            // The common case: a stored peer re-announcing with its status unchanged.
            Some(found) if found.status == status => {
                if let Some(peer) = F::peers_mut(torrent).and_then(|p| p.peer_mut(found)) {
                    // A remote peer announcing here becomes this node's.
                    let was_remote = peer.last_seen.is_remote();
                    if was_remote {
                        ledger.remote_gone(1);
                    }
                    let window = *refresh_window_secs;
                    // A kind that keeps no id sees no news in a new one.
                    let news = was_remote
                        || peer.peer_id != peer_id
                        || window == 0
                        || peer.last_seen.time().0 / window != now.0 / window;
                    peer.peer_id = peer_id;
                    peer.last_seen = peer.last_seen.refreshed(now);
                    if news {
                        stored = Some(false);
                    }
                }
                Some(found)
            }
            // A stored peer changing status moves, keeping its completion flag.
            Some(found) => {
                let peers = F::peers_or_insert(torrent);
                let previous = peers
                    .take(found.status, &key)
                    .map_or(LastSeen::new(now, false), |old| old.last_seen);
                if previous.is_remote() {
                    ledger.remote_gone(1);
                }
                let (last_seen, counts_now) =
                    previous.reannounced(now, found.status, status, params.event);
                let moved = Peer { peer_id, last_seen };
                let location = peers.insert(status, key, moved);
                if counts_now {
                    torrent.completed = torrent.completed.saturating_add(1);
                    ledger.download_completed();
                }
                ledger.peer_moved(found.status, status);
                stored = Some(counts_now);
                Some(location)
            }
            // A new peer: the only case that checks the limits.
            None => {
                let admitted = ledger.admit_peer(budget, torrent.num_peers(), || {
                    F::peers(torrent).map_or(0, |p| p.count_group(ip.group()))
                        < limits.max_peers_per_ip
                });
                if admitted {
                    let location = F::peers_or_insert(torrent).insert(status, key, new_peer);
                    ledger.peer_added(status);
                    stored = Some(false);
                    Some(location)
                } else {
                    None
                }
            }
        };
        if *recording && let Some(completed) = stored {
            record(changes, completed);
        }
        if let Some(peers) = F::peers(torrent) {
            peers.select_peers(status, location, params.numwant, rng, out);
        }
        family_counts::<F, D>(torrent)
    }

    /// Handles `event=stopped` (and another node's): removes the peer, and its torrent if
    /// that is left empty. Returns the counts after, and whether a peer was removed.
    fn remove_peer<F: Family>(
        &mut self,
        hash: u64,
        info_hash: &InfoHash,
        key: &PeerKey<F>,
    ) -> (AnnounceCounts, bool) {
        let mut removed_remote = None;
        let counts = self
            .ledger
            .remove_peer(
                &mut self.torrents,
                &self.budget,
                hash,
                info_hash,
                |torrent| {
                    let (status, peer) =
                        F::peers_mut(torrent).and_then(|peers| peers.remove(key))?;
                    F::drop_if_empty(torrent);
                    removed_remote = Some(peer.last_seen.is_remote());
                    Some(status)
                },
                family_counts::<F, D>,
            )
            .unwrap_or_default();
        if removed_remote == Some(true) {
            self.ledger.remote_gone(1);
        }
        (counts, removed_remote.is_some())
    }

    /// Seeders, completed downloads and leechers of the torrent, both families; for a
    /// torrent not stored, its archived completed count (zeros if none).
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeCounts {
        self.ledger.scrape(&self.torrents, info_hash)
    }

    /// The `limit` torrents with the most peers (seeders and leechers, both families),
    /// with their scrape counts, most peers first; ties in any order. For a full scrape:
    /// a walk over every torrent, so callers run it rarely (the HTTP tracker caches it).
    pub fn busiest_torrents(&self, limit: usize) -> Vec<(InfoHash, ScrapeCounts)> {
        self.ledger.busiest_torrents(&self.torrents, limit)
    }

    /// Removes peers whose last announce is older than max_peer_age_secs before now, then
    /// torrents with no peers (archiving their completed counts).
    ///
    /// A peer last seen exactly `max_peer_age_secs` ago stays. Tables left much larger than
    /// their contents are shrunk, so that memory follows the swarm down after a peak.
    pub fn clean(&mut self, now: SecondsSinceServerStart, max_peer_age_secs: u32) -> CleanStats {
        self.ledger
            .clean(&mut self.torrents, &self.budget, now, max_peer_age_secs)
    }

    /// Torrents stored (distinct info hashes, both families).
    pub fn num_torrents(&self) -> usize {
        self.torrents.len()
    }

    /// Seeders stored, both families.
    pub fn num_seeders(&self) -> usize {
        self.ledger.num_seeders()
    }

    /// Leechers stored, both families.
    pub fn num_leechers(&self) -> usize {
        self.ledger.num_leechers()
    }

    /// Announces that were not stored because a limit was reached (a counter the tracker
    /// reports).
    pub fn num_rejected_by_limits(&self) -> u64 {
        self.ledger.num_rejected_by_limits()
    }

    /// Announces answered with the counts alone, and not applied, because they came
    /// sooner than [`SwarmLimits::min_announce_interval_secs`] after the peer's last one.
    pub fn num_throttled(&self) -> u64 {
        self.ledger.num_throttled()
    }

    /// Downloads counted as completed (see the module rules) since the shard was made.
    pub fn num_completed(&self) -> u64 {
        self.ledger.num_completed()
    }

    /// Completed counts of emptied torrents held in this shard's archive.
    pub fn num_archived_torrents(&self) -> usize {
        self.ledger.num_archived_torrents()
    }

    /// Bytes this shard's archive takes (allocated once, whatever it holds).
    pub fn archive_memory_bytes(&self) -> usize {
        self.ledger.archive_memory_bytes()
    }
}

impl<D: StoredPeerId> Drop for SwarmShard<D> {
    /// Gives the shard's torrents and peers back to the shared budget.
    fn drop(&mut self) {
        self.ledger.release_all(&self.budget, self.torrents.len());
    }
}

impl<D: StoredPeerId> SwarmTorrent for Torrent<D> {
    fn info_hash(&self) -> &InfoHash {
        &self.info_hash
    }

    fn completed(&self) -> u32 {
        self.completed
    }

    fn counts(&self) -> (usize, usize) {
        Torrent::counts(self)
    }

    fn is_empty(&self) -> bool {
        Torrent::is_empty(self)
    }

    fn remove_seen_before(&mut self, cutoff: SecondsSinceServerStart) -> (usize, usize) {
        let expired = Torrent::remove_seen_before(self, cutoff);
        (expired.seeders, expired.leechers)
    }

    fn remove_expired(&mut self, cutoff: SecondsSinceServerStart) -> ledger::Expired {
        Torrent::remove_seen_before(self, cutoff)
    }
}

/// Seeders and leechers of family `F`: the swarm an announcer of that family sees.
fn family_counts<F: Family, D: StoredPeerId>(torrent: &Torrent<D>) -> AnnounceCounts {
    saturated_counts(F::peers(torrent).map_or((0, 0), |p| (p.seeders.len(), p.leechers.len())))
}

/// Seeders and leechers as the answers carry them (saturating at `u32::MAX`).
fn saturated_counts((seeders, leechers): (usize, usize)) -> AnnounceCounts {
    AnnounceCounts {
        seeders: u32::try_from(seeders).unwrap_or(u32::MAX),
        leechers: u32::try_from(leechers).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap as StdHashMap, HashSet};

    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::types::{ResponsePeer, ResponsePeerWithId};

    const LIMITS: SwarmLimits = SwarmLimits {
        max_torrents: 1000,
        max_peers: 100_000,
        max_peers_per_torrent: 1000,
        max_peers_per_ip: 1000,
        max_archived_torrents: 1024,
        min_announce_interval_secs: 0,
    };

    fn hash(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn peer_id(n: u32) -> PeerId {
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&n.to_be_bytes());
        PeerId(id)
    }

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + n)
    }

    /// IPv6 addresses two to a /64: `v6(2k)` and `v6(2k + 1)` share a prefix.
    fn v6(n: u32) -> Ipv6Addr {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            (n / 2) as u16,
            0,
            0,
            0,
            (n % 2 + 1) as u16,
        )
    }

    fn params(h: u8, id: u32, port: u16, left: u64, event: AnnounceEvent) -> AnnounceParams {
        AnnounceParams {
            info_hash: hash(h),
            peer_id: peer_id(id),
            port,
            bytes_left: left,
            event,
            numwant: 50,
        }
    }

    fn shard<D: StoredPeerId>(limits: SwarmLimits) -> SwarmShard<D> {
        SwarmShard::new(limits, Arc::new(SwarmBudget::new(&limits)), 1)
    }

    impl<D: StoredPeerId> SwarmShard<D> {
        fn torrent(&self, info_hash: &InfoHash) -> Option<&Torrent<D>> {
            self.torrents
                .find(self.hash(info_hash), |t| t.info_hash == *info_hash)
        }
    }

    /// A shard with reusable response buffers and a fixed seed; of the kind that keeps
    /// peer ids unless made with [`Harness::of_kind`].
    struct Harness<D: StoredPeerId = PeerId> {
        shard: SwarmShard<D>,
        rng: SmallRng,
        out: Vec<ResponsePeer<Ipv4Addr>>,
        out6: Vec<ResponsePeer<Ipv6Addr>>,
    }

    impl Harness {
        fn new(limits: SwarmLimits) -> Self {
            Self::of_kind(limits)
        }
    }

    impl<D: StoredPeerId> Harness<D> {
        fn of_kind(limits: SwarmLimits) -> Self {
            Self {
                shard: shard(limits),
                rng: SmallRng::seed_from_u64(7),
                out: Vec::new(),
                out6: Vec::new(),
            }
        }

        fn announce_at(&mut self, p: &AnnounceParams, from: Ipv4Addr, now: u32) -> AnnounceCounts {
            let now = SecondsSinceServerStart(now);
            self.shard
                .announce_ipv4(p, from, now, &mut self.rng, &mut self.out)
        }

        fn announce(&mut self, p: &AnnounceParams, from: Ipv4Addr) -> AnnounceCounts {
            self.announce_at(p, from, 0)
        }

        fn announce6(&mut self, p: &AnnounceParams, from: Ipv6Addr) -> AnnounceCounts {
            let now = SecondsSinceServerStart(0);
            self.shard
                .announce_ipv6(p, from, now, &mut self.rng, &mut self.out6)
        }

        fn returned_ips(&self) -> HashSet<Ipv4Addr> {
            self.out.iter().map(|p| p.ip).collect()
        }

        fn completed(&self, h: u8) -> u32 {
            self.shard.scrape(&hash(h)).completed
        }
    }

    fn counts(seeders: u32, leechers: u32) -> AnnounceCounts {
        AnnounceCounts { seeders, leechers }
    }

    /// The busiest torrents are those with the most peers, IPv6 ones included, and no
    /// more than asked for.
    #[test]
    fn busiest_torrents_are_the_most_peopled() {
        let mut h = Harness::new(LIMITS);
        // Torrent n gets n IPv4 peers; torrent 2 also 5 IPv6 peers (7 in all).
        for n in 1..=6u8 {
            for i in 0..u32::from(n) {
                h.announce(&params(n, i, 1, 1, AnnounceEvent::Started), ip(i));
            }
        }
        for i in 0..5u16 {
            let v6 = Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 1);
            h.announce6(
                &params(2, 100 + u32::from(i), 1, 0, AnnounceEvent::Started),
                v6,
            );
        }
        let busiest = h.shard.busiest_torrents(3);
        let order: Vec<InfoHash> = busiest.iter().map(|(hash, _)| *hash).collect();
        assert_eq!(order, [hash(2), hash(6), hash(5)]);
        assert_eq!(
            busiest[0].1,
            ScrapeCounts {
                seeders: 5,
                completed: 0,
                leechers: 2
            }
        );
        assert_eq!(h.shard.busiest_torrents(100).len(), 6);
        assert!(h.shard.busiest_torrents(0).is_empty());
    }

    #[test]
    fn numwant_policy() {
        let policy = NumWantPolicy {
            default: 50,
            max: 100,
        };
        assert_eq!(policy.resolve(None), 50);
        assert_eq!(policy.resolve(Some(-1)), 50);
        assert_eq!(policy.resolve(Some(i64::MIN)), 50);
        assert_eq!(policy.resolve(Some(0)), 0);
        assert_eq!(policy.resolve(Some(30)), 30);
        assert_eq!(policy.resolve(Some(100)), 100);
        assert_eq!(policy.resolve(Some(101)), 100);
        assert_eq!(policy.resolve(Some(i64::MAX)), 100);
        let capped = NumWantPolicy {
            default: 200,
            max: 74,
        };
        assert_eq!(capped.resolve(None), 74);
        assert_eq!(capped.resolve(Some(-5)), 74);
        assert_eq!(capped.resolve(Some(0)), 0);
    }

    #[test]
    fn peer_is_keyed_by_endpoint_and_another_ip_cannot_touch_it() {
        let mut h = Harness::new(LIMITS);
        let (a, b) = (ip(1), ip(2));
        h.announce(&params(1, 9, 1000, 10, AnnounceEvent::Started), a);
        // Same peer id and port from another address: another peer, which cannot make the
        // first a seeder ...
        assert_eq!(
            h.announce(&params(1, 9, 1000, 0, AnnounceEvent::None), b),
            counts(1, 1)
        );
        assert_eq!(h.out, [ResponsePeer { ip: a, port: 1000 }]);
        // ... nor remove it.
        assert_eq!(
            h.announce(&params(1, 9, 1000, 0, AnnounceEvent::Stopped), b),
            counts(0, 1)
        );
        assert_eq!(
            h.announce(&params(1, 9, 1000, 0, AnnounceEvent::Stopped), b),
            counts(0, 1)
        );
        // Another port of the same IP is another peer too.
        assert_eq!(
            h.announce(&params(1, 9, 1001, 10, AnnounceEvent::None), a),
            counts(0, 2)
        );
        assert_eq!(h.out, [ResponsePeer { ip: a, port: 1000 }]);
    }

    #[test]
    fn restart_with_new_peer_id_replaces_and_never_gets_its_old_entry() {
        let mut h = Harness::new(LIMITS);
        let mut out = Vec::<ResponsePeerWithId<Ipv4Addr>>::new();
        let now = SecondsSinceServerStart(0);
        h.announce(&params(1, 1, 6881, 10, AnnounceEvent::Started), ip(1));
        h.announce(&params(1, 2, 6881, 10, AnnounceEvent::Started), ip(2));
        // ip(1) restarts with peer id 3 on the same port: one entry, never its own.
        let counts3 = h.shard.announce_ipv4(
            &params(1, 3, 6881, 10, AnnounceEvent::Started),
            ip(1),
            now,
            &mut h.rng,
            &mut out,
        );
        assert_eq!(counts3, counts(0, 2));
        assert_eq!(
            out,
            [ResponsePeerWithId {
                ip: ip(2),
                port: 6881,
                peer_id: peer_id(2)
            }]
        );
        assert_eq!(h.shard.num_leechers(), 2);
        // Others now get the new peer id.
        h.shard.announce_ipv4(
            &params(1, 2, 6881, 10, AnnounceEvent::None),
            ip(2),
            now,
            &mut h.rng,
            &mut out,
        );
        assert_eq!(
            out,
            [ResponsePeerWithId {
                ip: ip(1),
                port: 6881,
                peer_id: peer_id(3)
            }]
        );
        // Stopped removes the entry at the endpoint, whatever peer id it sends.
        assert_eq!(
            h.announce(&params(1, 1, 6881, 10, AnnounceEvent::Stopped), ip(1)),
            counts(0, 1)
        );
    }

    #[test]
    fn seeder_iff_nothing_left_and_status_change_moves() {
        let mut h = Harness::new(LIMITS);
        assert_eq!(
            h.announce(&params(1, 1, 1, 0, AnnounceEvent::Started), ip(1)),
            counts(1, 0)
        );
        assert_eq!(
            h.announce(&params(1, 2, 1, 1, AnnounceEvent::Started), ip(2)),
            counts(1, 1)
        );
        assert_eq!(
            h.announce(&params(1, 2, 1, 0, AnnounceEvent::None), ip(2)),
            counts(2, 0)
        );
        assert_eq!(
            h.announce(&params(1, 1, 1, 5, AnnounceEvent::None), ip(1)),
            counts(1, 1)
        );
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (1, 1));
        assert_eq!(
            h.announce(&params(1, 1, 1, 4, AnnounceEvent::None), ip(1)),
            counts(1, 1)
        );
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (1, 1));
    }

    #[test]
    fn stopped_removes_peer_then_torrent_and_returns_no_peers() {
        let mut h = Harness::new(LIMITS);
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Started), ip(1));
        h.announce(&params(1, 2, 1, 9, AnnounceEvent::Started), ip(2));
        assert_eq!(
            h.announce(&params(1, 2, 1, 9, AnnounceEvent::Stopped), ip(2)),
            counts(1, 0)
        );
        assert!(h.out.is_empty());
        assert_eq!(h.shard.num_torrents(), 1);
        assert_eq!(
            h.announce(&params(1, 1, 1, 0, AnnounceEvent::Stopped), ip(1)),
            counts(0, 0)
        );
        assert!(h.out.is_empty());
        assert_eq!(h.shard.num_torrents(), 0);
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (0, 0));
        // Stopped for an unknown torrent creates nothing.
        assert_eq!(
            h.announce(&params(3, 1, 1, 0, AnnounceEvent::Stopped), ip(1)),
            counts(0, 0)
        );
        assert_eq!(h.shard.num_torrents(), 0);
        assert_eq!(h.shard.num_rejected_by_limits(), 0);
    }

    #[test]
    fn completed_with_bytes_left_never_counts() {
        let mut h = Harness::new(LIMITS);
        h.announce(&params(1, 1, 1, 5, AnnounceEvent::Started), ip(1));
        for _ in 0..5 {
            h.announce(&params(1, 1, 1, 5, AnnounceEvent::Completed), ip(1));
        }
        assert_eq!(h.completed(1), 0);
        assert_eq!(h.shard.num_leechers(), 1);
        assert_eq!(h.shard.num_completed(), 0);
    }

    #[test]
    fn completed_counts_once_per_stored_peer_through_cycles() {
        let mut h = Harness::new(LIMITS);
        h.announce(&params(1, 1, 1, 100, AnnounceEvent::Started), ip(1));
        // L -> S -> L -> S: one download.
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1));
        assert_eq!(h.completed(1), 1);
        h.announce(&params(1, 1, 1, 50, AnnounceEvent::None), ip(1));
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1));
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1));
        assert_eq!(h.completed(1), 1);
        // The flag follows the endpoint through a peer id change.
        h.announce(&params(1, 7, 1, 50, AnnounceEvent::None), ip(1));
        h.announce(&params(1, 7, 1, 0, AnnounceEvent::Completed), ip(1));
        assert_eq!(h.completed(1), 1);
        // A new peer announcing completed first is not a stored leecher: no count. A
        // leecher becoming seeder without the event: no count.
        h.announce(&params(1, 2, 1, 0, AnnounceEvent::Completed), ip(2));
        h.announce(&params(1, 3, 1, 9, AnnounceEvent::Started), ip(3));
        h.announce(&params(1, 3, 1, 0, AnnounceEvent::None), ip(3));
        assert_eq!(h.completed(1), 1);
        // A removed peer that comes back is a new peer and may count again.
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Stopped), ip(1));
        h.announce(&params(1, 1, 1, 9, AnnounceEvent::Started), ip(1));
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1));
        assert_eq!(h.completed(1), 2);
        // The shard's running total counts the same downloads.
        assert_eq!(h.shard.num_completed(), 2);
    }

    #[test]
    fn last_seen_keeps_time_and_flag_apart() {
        let t = SecondsSinceServerStart(123);
        assert_eq!(LastSeen::new(t, true).time(), t);
        assert!(LastSeen::new(t, true).completion_counted());
        assert!(!LastSeen::new(t, false).completion_counted());
        // Times beyond 30 bits saturate instead of setting the flag or the remote mark.
        let late = LastSeen::new(SecondsSinceServerStart(u32::MAX), false);
        assert!(!late.completion_counted() && !late.is_remote());
        assert_eq!(late.time(), SecondsSinceServerStart(u32::MAX >> 2));
    }

    #[test]
    fn port_zero_answered_but_not_stored() {
        let mut h = Harness::new(LIMITS);
        assert_eq!(
            h.announce(&params(1, 1, 0, 5, AnnounceEvent::Completed), ip(1)),
            counts(0, 0)
        );
        assert_eq!(h.shard.num_torrents(), 0);
        h.announce(&params(1, 2, 6881, 0, AnnounceEvent::Started), ip(2));
        assert_eq!(
            h.announce(&params(1, 1, 0, 5, AnnounceEvent::Completed), ip(1)),
            counts(1, 0)
        );
        assert_eq!(
            h.out,
            [ResponsePeer {
                ip: ip(2),
                port: 6881
            }]
        );
        assert_eq!(h.completed(1), 0);
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (1, 0));
        assert_eq!(h.shard.num_rejected_by_limits(), 0);
    }

    #[test]
    fn response_excludes_announcer_and_seeders_get_leechers_only() {
        let mut h = Harness::new(LIMITS);
        for i in 0..3 {
            h.announce(&params(1, i, 1, 0, AnnounceEvent::Started), ip(i));
        }
        for i in 3..6 {
            h.announce(&params(1, i, 1, 9, AnnounceEvent::Started), ip(i));
        }
        let leechers: HashSet<_> = (3..6).map(ip).collect();
        h.announce(&params(1, 3, 1, 9, AnnounceEvent::None), ip(3));
        let expected: HashSet<_> = [0, 1, 2, 4, 5].map(ip).into();
        assert_eq!(h.returned_ips(), expected);
        assert_eq!(h.out.len(), 5);
        h.announce(&params(1, 0, 1, 0, AnnounceEvent::None), ip(0));
        assert_eq!(h.returned_ips(), leechers);
        h.announce(&params(1, 4, 1, 0, AnnounceEvent::Completed), ip(4));
        assert_eq!(h.returned_ips(), [3, 5].map(ip).into());
        let mut h = Harness::new(LIMITS);
        for i in 0..200 {
            h.announce(
                &params(1, i, 1, u64::from(i % 2), AnnounceEvent::None),
                ip(i),
            );
        }
        for i in 0..200 {
            let p = AnnounceParams {
                numwant: 30,
                ..params(1, i, 1, u64::from(i % 2), AnnounceEvent::None)
            };
            h.announce(&p, ip(i));
            assert_eq!(h.out.len(), 30);
            assert!(!h.returned_ips().contains(&ip(i)));
            if i % 2 == 0 {
                assert!(h.out.iter().all(|p| u32::from(p.ip) % 2 == 1));
            }
        }
    }

    #[test]
    fn limit_on_torrents_and_peers_per_torrent() {
        let mut h = Harness::new(SwarmLimits {
            max_torrents: 2,
            max_peers_per_torrent: 2,
            ..LIMITS
        });
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Started), ip(1));
        h.announce(&params(2, 1, 1, 0, AnnounceEvent::Started), ip(1));
        assert_eq!(
            h.announce(&params(3, 1, 1, 0, AnnounceEvent::Started), ip(1)),
            counts(0, 0)
        );
        assert_eq!(h.shard.num_torrents(), 2);
        assert_eq!(h.shard.num_rejected_by_limits(), 1);
        h.announce(&params(1, 2, 1, 5, AnnounceEvent::Started), ip(2));
        // A third peer (over IPv6: the cap covers both families) is answered, not stored.
        assert_eq!(
            h.announce6(&params(1, 3, 1, 5, AnnounceEvent::Started), v6(1)),
            counts(0, 0)
        );
        assert!(h.out6.is_empty());
        assert_eq!(h.shard.num_rejected_by_limits(), 2);
        assert_eq!(h.shard.scrape(&hash(1)).leechers, 1);
        // Known peers still update, including a status change.
        assert_eq!(
            h.announce(&params(1, 2, 1, 0, AnnounceEvent::Completed), ip(2)),
            counts(2, 0)
        );
        assert_eq!(h.shard.num_rejected_by_limits(), 2);
        // Once a torrent goes, there is room again.
        h.announce(&params(2, 1, 1, 0, AnnounceEvent::Stopped), ip(1));
        assert_eq!(
            h.announce(&params(3, 1, 1, 0, AnnounceEvent::Started), ip(1)),
            counts(1, 0)
        );
    }

    #[test]
    fn per_ip_cap_counts_ipv4_addresses_and_ipv6_slash_64s() {
        let mut h = Harness::new(SwarmLimits {
            max_peers_per_ip: 2,
            ..LIMITS
        });
        for port in 1..=3 {
            h.announce(&params(1, 0, port, 5, AnnounceEvent::Started), ip(1));
        }
        assert_eq!(h.shard.num_leechers(), 2);
        assert_eq!(h.shard.num_rejected_by_limits(), 1);
        // The rejected one still got peers and counts; seeders count too.
        assert_eq!(h.out.len(), 2);
        h.announce(&params(1, 0, 4, 0, AnnounceEvent::Started), ip(1));
        assert_eq!(h.shard.num_rejected_by_limits(), 2);
        // Another address, and another torrent, have their own room.
        h.announce(&params(1, 0, 1, 5, AnnounceEvent::Started), ip(2));
        h.announce(&params(2, 0, 1, 5, AnnounceEvent::Started), ip(1));
        assert_eq!(h.shard.num_leechers(), 4);
        // Two IPv6 addresses of one /64 share the cap; another /64 does not.
        h.announce6(&params(1, 0, 1, 5, AnnounceEvent::Started), v6(0));
        h.announce6(&params(1, 0, 1, 5, AnnounceEvent::Started), v6(1));
        assert_eq!(
            h.announce6(&params(1, 0, 2, 5, AnnounceEvent::Started), v6(1)),
            counts(0, 2)
        );
        assert_eq!(h.shard.num_rejected_by_limits(), 3);
        h.announce6(&params(1, 0, 1, 5, AnnounceEvent::Started), v6(2));
        assert_eq!(h.shard.num_leechers(), 7);
        // Re-announces of stored peers are never refused.
        h.announce6(&params(1, 0, 1, 0, AnnounceEvent::None), v6(1));
        assert_eq!(h.shard.num_rejected_by_limits(), 3);
        // In a large store (a side table counts): 40 addresses, then the cap.
        let mut h = Harness::new(SwarmLimits {
            max_peers_per_ip: 3,
            ..LIMITS
        });
        for i in 0..40 {
            for port in 1..=4 {
                h.announce(&params(1, 0, port, 5, AnnounceEvent::Started), ip(i));
            }
        }
        assert_eq!(h.shard.num_leechers(), 120);
        assert_eq!(h.shard.num_rejected_by_limits(), 40);
        // Room frees up when one goes.
        h.announce(&params(1, 0, 1, 5, AnnounceEvent::Stopped), ip(7));
        h.announce(&params(1, 0, 9, 5, AnnounceEvent::Started), ip(7));
        assert_eq!(h.shard.num_leechers(), 120);
        assert_eq!(h.shard.num_rejected_by_limits(), 40);
    }

    #[test]
    fn families_share_a_torrent_but_never_mix_in_responses() {
        let mut h = Harness::new(LIMITS);
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Started), ip(1));
        assert_eq!(
            h.announce6(&params(1, 1, 2, 5, AnnounceEvent::None), v6(1)),
            counts(0, 1)
        );
        assert!(h.out6.is_empty());
        assert_eq!(
            h.announce(&params(1, 2, 3, 5, AnnounceEvent::None), ip(2)),
            counts(1, 1)
        );
        assert_eq!(
            h.shard.scrape(&hash(1)),
            ScrapeCounts {
                seeders: 1,
                completed: 0,
                leechers: 2
            }
        );
        assert_eq!(h.out, [ResponsePeer { ip: ip(1), port: 1 }]);
        assert_eq!(h.shard.num_torrents(), 1);
        assert_eq!(h.shard.budget.num_torrents(), 1);
        // Stopping the IPv6 peer frees its part; the torrent stays.
        h.announce6(&params(1, 1, 2, 5, AnnounceEvent::Stopped), v6(1));
        assert!(h.shard.torrent(&hash(1)).unwrap().v6.is_none());
        assert_eq!(h.shard.num_torrents(), 1);
    }

    #[test]
    fn clean_removes_stale_peers_and_empty_torrents() {
        let mut h = Harness::new(LIMITS);
        h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::Started), ip(1), 100);
        h.announce_at(&params(1, 2, 1, 5, AnnounceEvent::Started), ip(2), 150);
        h.announce_at(&params(2, 3, 1, 5, AnnounceEvent::Started), ip(3), 100);
        assert_eq!(
            h.shard.clean(SecondsSinceServerStart(200), 100),
            CleanStats::default()
        );
        assert_eq!(
            h.shard.clean(SecondsSinceServerStart(201), 100),
            CleanStats {
                removed_peers: 2,
                removed_torrents: 1
            }
        );
        assert_eq!(h.shard.num_torrents(), 1);
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (0, 1));
        assert_eq!(h.shard.scrape(&hash(2)), ScrapeCounts::default());
        h.announce_at(&params(1, 2, 1, 5, AnnounceEvent::None), ip(2), 300);
        assert_eq!(
            h.shard
                .clean(SecondsSinceServerStart(400), 100)
                .removed_peers,
            0
        );
        assert_eq!(
            h.shard
                .clean(SecondsSinceServerStart(401), 100)
                .removed_torrents,
            1
        );
        assert_eq!(h.shard.num_torrents(), 0);
        assert_eq!(h.shard.budget.num_torrents(), 0);
        assert_eq!(h.shard.budget.num_peers(), 0);
        h.announce_at(&params(1, 2, 1, 5, AnnounceEvent::None), ip(2), 0);
        assert_eq!(
            h.shard.clean(SecondsSinceServerStart(5), 100),
            CleanStats::default()
        );
    }

    #[test]
    fn touching_a_torrent_changes_nothing() {
        let mut h = Harness::new(LIMITS);
        // Nothing to read: no torrent is made.
        h.shard.touch(&hash(1));
        assert_eq!(h.shard.num_torrents(), 0);
        // A small store and a large one (more peers than a small store holds).
        for i in 0..40 {
            h.announce(&params(1, i, 1, 9, AnnounceEvent::Started), ip(i));
        }
        h.announce(&params(2, 0, 1, 0, AnnounceEvent::Started), ip(0));
        let before = (h.shard.scrape(&hash(1)), h.shard.scrape(&hash(2)));
        for n in [1, 2, 3] {
            h.shard.touch(&hash(n));
        }
        assert_eq!((h.shard.scrape(&hash(1)), h.shard.scrape(&hash(2))), before);
        assert_eq!(h.shard.num_torrents(), 2);
        assert_eq!(h.shard.num_leechers(), 40);
        assert_eq!(h.shard.num_seeders(), 1);
    }

    #[test]
    fn scrape_after_emptying_keeps_completed_and_it_comes_back() {
        let mut h = Harness::new(LIMITS);
        for i in 0..3 {
            h.announce(&params(1, i, 1, 9, AnnounceEvent::Started), ip(i));
            h.announce(&params(1, i, 1, 0, AnnounceEvent::Completed), ip(i));
        }
        for i in 0..3 {
            h.announce(&params(1, i, 1, 0, AnnounceEvent::Stopped), ip(i));
        }
        assert_eq!(h.shard.num_torrents(), 0);
        assert_eq!(
            h.shard.scrape(&hash(1)),
            ScrapeCounts {
                seeders: 0,
                completed: 3,
                leechers: 0
            }
        );
        assert_eq!(h.shard.num_archived_torrents(), 1);
        // The torrent comes back with its count, and the archive entry is freed.
        h.announce(&params(1, 5, 1, 9, AnnounceEvent::Started), ip(5));
        assert_eq!(h.shard.num_archived_torrents(), 0);
        h.announce(&params(1, 5, 1, 0, AnnounceEvent::Completed), ip(5));
        assert_eq!(h.completed(1), 4);
        // Expiry archives too.
        h.shard.clean(SecondsSinceServerStart(1000), 10);
        assert_eq!(h.completed(1), 4);
        assert_eq!(h.shard.num_archived_torrents(), 1);
        assert!(h.shard.archive_memory_bytes() > 0);
    }

    #[test]
    fn archive_eviction_keeps_larger_counts() {
        // One set of archive slots: every torrent competes for it.
        let mut h = Harness::new(SwarmLimits {
            max_archived_torrents: archive::WAYS,
            ..LIMITS
        });
        let popular = archive::WAYS as u8;
        // A popular torrent with 5 downloads, then a flood of torrents with 1 each.
        for i in 0..5 {
            h.announce(&params(popular, i, 1, 9, AnnounceEvent::Started), ip(i));
            h.announce(&params(popular, i, 1, 0, AnnounceEvent::Completed), ip(i));
        }
        h.shard.clean(SecondsSinceServerStart(100), 10);
        for t in 0..100u8 {
            let hs = 100 + t;
            h.announce_at(&params(hs, 1, 1, 9, AnnounceEvent::Started), ip(1), 200);
            h.announce_at(&params(hs, 1, 1, 0, AnnounceEvent::Completed), ip(1), 200);
            h.announce_at(&params(hs, 1, 1, 0, AnnounceEvent::Stopped), ip(1), 200);
        }
        assert_eq!(h.completed(popular), 5);
        assert_eq!(h.shard.num_archived_torrents(), archive::WAYS);
    }

    #[test]
    fn budget_never_exceeds_limits_with_two_shards() {
        let limits = SwarmLimits {
            max_torrents: 10,
            max_peers: 25,
            ..LIMITS
        };
        let budget = Arc::new(SwarmBudget::new(&limits));
        let mut shards: [SwarmShard; 2] = [
            SwarmShard::new(limits, budget.clone(), 2),
            SwarmShard::new(limits, budget.clone(), 2),
        ];
        let mut rng = SmallRng::seed_from_u64(3);
        let mut out = Vec::<ResponsePeer<Ipv4Addr>>::new();
        for round in 0..2000u32 {
            let h = rng.random_range(0..40u8);
            let event = if rng.random_bool(0.2) {
                AnnounceEvent::Stopped
            } else {
                AnnounceEvent::Started
            };
            let p = params(h, 0, 1 + rng.random_range(0..3), 5, event);
            let shard = &mut shards[usize::from(h % 2)];
            shard.announce_ipv4(
                &p,
                ip(rng.random_range(0..5)),
                SecondsSinceServerStart(round),
                &mut rng,
                &mut out,
            );
            if round % 97 == 0 {
                shard.clean(SecondsSinceServerStart(round), 50);
            }
            let torrents: usize = shards.iter().map(SwarmShard::num_torrents).sum();
            let peers: usize = shards
                .iter()
                .map(|s| s.num_seeders() + s.num_leechers())
                .sum();
            assert!(torrents <= 10 && peers <= 25);
            assert_eq!(
                (budget.num_torrents(), budget.num_peers()),
                (torrents, peers)
            );
        }
        assert!(
            shards
                .iter()
                .map(|s| s.num_rejected_by_limits())
                .sum::<u64>()
                > 0
        );
        // A dropped shard gives its share back.
        let [a, b] = shards;
        drop(a);
        assert_eq!(budget.num_torrents(), b.num_torrents());
        drop(b);
        assert_eq!((budget.num_torrents(), budget.num_peers()), (0, 0));
    }

    #[test]
    fn selection_is_random_and_fair() {
        let mut h = Harness::new(LIMITS);
        for i in 0..100 {
            h.announce(&params(1, i, 1, 1, AnnounceEvent::None), ip(i));
        }
        let mut chosen = [0u32; 100];
        let mut distinct_responses = HashSet::new();
        for round in 0..2000u32 {
            let i = round % 100;
            let p = AnnounceParams {
                numwant: 10,
                ..params(1, i, 1, 1, AnnounceEvent::None)
            };
            h.announce(&p, ip(i));
            assert_eq!(h.out.len(), 10);
            for peer in &h.out {
                chosen[(u32::from(peer.ip) - u32::from(ip(0))) as usize] += 1;
            }
            let mut response: Vec<_> = h.out.iter().map(|p| p.ip).collect();
            response.sort_unstable();
            distinct_responses.insert(response);
        }
        let (min, max) = (chosen.iter().min().unwrap(), chosen.iter().max().unwrap());
        // Expected 200 each (2000 × 10 / 100); a fair sampler stays far inside 2×.
        assert!(*min > 0, "some peer never chosen: {chosen:?}");
        assert!(*max <= 2 * *min, "unfair: min {min}, max {max}");
        // Not the same few sets over and over. Ten of 99 are two runs of five (see
        // `peers::sample_into`), which allows only a few thousand sets per announcer, so
        // 2000 draws repeat some: over 200 seeds a simulation of the sampler gave 1595
        // distinct on average (standard deviation 15, lowest 1554). Sets drawn peer by
        // peer would be nearly all distinct.
        assert!(
            distinct_responses.len() > 1450,
            "{} distinct responses",
            distinct_responses.len()
        );
    }

    #[test]
    fn no_duplicates_in_response() {
        let mut h = Harness::new(LIMITS);
        for i in 0..1000 {
            h.announce(
                &params(1, i, 1, u64::from(i % 2), AnnounceEvent::None),
                ip(i),
            );
        }
        for numwant in [1, 10, 333, 498, 499, 500, 998, 999, 1000, 5000] {
            for i in [0, 1, 500, 999, 2000] {
                let p = AnnounceParams {
                    numwant,
                    ..params(1, i, 1, 1, AnnounceEvent::None)
                };
                h.announce(&p, ip(i));
                let unique = h.returned_ips();
                assert_eq!(unique.len(), h.out.len());
                // 2000 is the 1001st peer: over max_peers_per_torrent, not stored.
                let pool = if i < 1000 { 999 } else { 1000 };
                assert_eq!(h.out.len(), numwant.min(pool));
            }
        }
    }

    #[test]
    fn forms_change_through_announces_stops_and_cleaning() {
        // One torrent's leechers through the public API: past SMALL_MAX by announces, down
        // by stopped events, back to small at a cleaning; answers right all along.
        let mut h = Harness::new(LIMITS);
        let n = 3 * peers::SMALL_MAX as u32;
        let leechers = |h: &Harness| h.shard.torrent(&hash(1)).map(|t| t.v4.leechers.is_large());
        for i in 0..n {
            assert_eq!(
                h.announce_at(&params(1, i, 1, 9, AnnounceEvent::Started), ip(i), i),
                counts(0, i + 1)
            );
            assert_eq!(leechers(&h), Some(i as usize >= peers::SMALL_MAX));
            assert_eq!(h.out.len(), (i as usize).min(50));
            assert!(!h.returned_ips().contains(&ip(i)));
        }
        let keep = peers::SMALL_MAX as u32 / 2 + 1;
        for i in keep..n {
            h.announce(&params(1, i, 1, 9, AnnounceEvent::Stopped), ip(i));
        }
        assert_eq!(leechers(&h), Some(true));
        assert_eq!(h.shard.scrape(&hash(1)).leechers, keep);
        assert_eq!(
            h.shard.clean(SecondsSinceServerStart(keep + 10), 11),
            CleanStats {
                removed_peers: keep as usize - 1,
                removed_torrents: 0,
            }
        );
        assert_eq!(leechers(&h), Some(false));
        assert_eq!(h.shard.num_leechers(), 1);
    }

    /// The rules, written naively from the module documentation, for the proptest to
    /// compare against. A peer is keyed by (torrent, family, IP number, port).
    #[derive(Clone, Copy, Debug)]
    struct ModelPeer {
        peer_id: u32,
        seeder: bool,
        seen: u32,
        completion_counted: bool,
    }

    type ModelKey = (bool, u32, u16);

    #[derive(Default)]
    struct ModelTorrent {
        peers: StdHashMap<ModelKey, ModelPeer>,
        completed: u32,
    }

    #[derive(Default)]
    struct Model {
        torrents: StdHashMap<u8, ModelTorrent>,
        /// Unbounded: the tests' archives never fill a set (see `run_model`).
        archive: StdHashMap<u8, u32>,
        rejected: u64,
        throttled: u64,
    }

    impl Model {
        fn num_peers(&self) -> usize {
            self.torrents.values().map(|t| t.peers.len()).sum()
        }

        fn scrape(&self, h: u8) -> ScrapeCounts {
            match self.torrents.get(&h) {
                Some(t) => {
                    let seeders = t.peers.values().filter(|p| p.seeder).count() as u32;
                    ScrapeCounts {
                        seeders,
                        completed: t.completed,
                        leechers: t.peers.len() as u32 - seeders,
                    }
                }
                None => ScrapeCounts {
                    completed: self.archive.get(&h).copied().unwrap_or(0),
                    ..ScrapeCounts::default()
                },
            }
        }

        fn forget(&mut self, h: u8) {
            if let Some(t) = self.torrents.remove(&h)
                && t.completed > 0
            {
                self.archive.insert(h, t.completed);
            }
        }
    }

    /// The address group of IP number `n`: the address for IPv4, the /64 for IPv6 (see
    /// `v6`), written from the rule rather than from `Ip::group`.
    fn model_group(v6: bool, n: u32) -> u32 {
        if v6 { n / 2 } else { n }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Announce {
            hash: u8,
            v6: bool,
            ip: u32,
            port: u16,
            peer: u32,
            seeder: bool,
            event: AnnounceEvent,
            numwant: usize,
        },
        Clean {
            max_age: u32,
        },
        Tick(u32),
    }

    /// The range of the operations a model test draws.
    #[derive(Copy, Clone, Debug)]
    struct OpSpace {
        /// Torrents 0..hashes (at most 8, so that an archive set never fills).
        hashes: u8,
        /// IP numbers 0..ips of either family.
        ips: u32,
        /// Ports 0..ports; port 0 is the "not stored" case.
        ports: u16,
        /// Peer ids 0..peers: the same endpoint shows up under several.
        peers: u32,
        /// Cleanings use a maximum age in 0..max_age.
        max_age: u32,
        /// Announces ask for 0..numwant peers.
        numwant: usize,
    }

    /// Few endpoints, so that the same one comes back under other peer ids, with status
    /// changes and completed events (cycles included), and limits are hit often.
    const FEW_PEERS: OpSpace = OpSpace {
        hashes: 3,
        ips: 3,
        ports: 3,
        peers: 3,
        max_age: 20,
        numwant: 8,
    };

    /// Up to 80 endpoints per family in each of two torrents, cleaned with ages from nothing
    /// to longer than most runs: stores grow past `peers::SMALL_MAX` into maps and go back
    /// to the small form at cleanings, and responses are sampled from either form.
    const MANY_PEERS: OpSpace = OpSpace {
        hashes: 2,
        ips: 20,
        ports: 5,
        peers: 2,
        max_age: 1000,
        numwant: 40,
    };

    fn op_strategy(space: OpSpace) -> impl Strategy<Value = Op> {
        let event = prop_oneof![
            1 => Just(AnnounceEvent::None),
            1 => Just(AnnounceEvent::Started),
            2 => Just(AnnounceEvent::Completed),
            1 => Just(AnnounceEvent::Stopped),
        ];
        prop_oneof![
            8 => (
                0..space.hashes,
                prop::bool::weighted(0.3),
                0..space.ips,
                prop_oneof![1 => Just(0u16), 9 => 1..space.ports],
                0..space.peers,
                any::<bool>(),
                event,
                0..space.numwant,
            )
                .prop_map(|(hash, v6, ip, port, peer, seeder, event, numwant)| Op::Announce {
                    hash, v6, ip, port, peer, seeder, event, numwant,
                }),
            1 => (0..space.max_age).prop_map(|max_age| Op::Clean { max_age }),
            2 => (0..10u32).prop_map(Op::Tick),
        ]
    }

    /// What a model run went through: peer stores changing form, and stored peers' plain
    /// re-announces under a minimum interval, throttled or applied.
    #[derive(Debug, Default)]
    struct ModelRunStats {
        to_large: usize,
        to_small: usize,
        throttled: u64,
        applied_after_interval: u64,
    }

    /// Whether each torrent's IPv4 seeders and leechers are maps, by info hash number.
    fn forms<D: StoredPeerId>(
        shards: &[SwarmShard<D>],
        hashes: u8,
    ) -> StdHashMap<u8, (bool, bool)> {
        (0..hashes)
            .filter_map(|h| {
                let t = shards[usize::from(h) % shards.len()].torrent(&hash(h))?;
                Some((h, (t.v4.seeders.is_large(), t.v4.leechers.is_large())))
            })
            .collect()
    }

    /// The stored peers of one family of a torrent, as (IP, port, peer id kept, seeder).
    fn stored<I: Family, D: StoredPeerId>(t: &Torrent<D>) -> Vec<(I, u16, Option<PeerId>, bool)> {
        let Some(peers) = I::peers(t) else {
            return Vec::new();
        };
        let mut all = Vec::new();
        for (store, seeder) in [(&peers.seeders, true), (&peers.leechers, false)] {
            for (key, peer) in store.entries() {
                all.push((key.ip, key.port, peer.peer_id.peer_id(), seeder));
            }
        }
        all
    }

    /// Whether shards of kind `D` keep peer ids.
    fn keeps_ids<D: StoredPeerId>() -> bool {
        D::from_peer_id(&peer_id(1)).peer_id().is_some()
    }

    /// The model's number of a peer id as a shard of kind `D` gives it back: the number,
    /// or 0 (the zero id) from a kind that keeps none.
    fn id_as_kept<D: StoredPeerId>(n: u32) -> u32 {
        if keeps_ids::<D>() { n } else { 0 }
    }

    /// The number of a peer id made by `peer_id`.
    fn id_number(id: &PeerId) -> u32 {
        u32::from_be_bytes(id.0[..4].try_into().unwrap())
    }

    /// Runs `ops` on two shards of kind `D` sharing one budget (torrent `h` in shard
    /// `h % 2`) and on the model, checking after each that they agree, that the budget
    /// equals the real totals and that every peer store follows its form rules. Peer ids
    /// are compared as the kind keeps them: whole, or not at all (zeros in answers).
    fn run_model<D: StoredPeerId>(
        limits: SwarmLimits,
        space: OpSpace,
        seed: u64,
        ops: Vec<Op>,
    ) -> Result<ModelRunStats, TestCaseError> {
        // 2 shards × one set each: at most 8 torrents per shard can be archived without
        // eviction, and the spaces have at most 8 hashes.
        let limits = SwarmLimits {
            max_archived_torrents: 2 * archive::WAYS,
            ..limits
        };
        let budget = Arc::new(SwarmBudget::new(&limits));
        let mut shards: Vec<SwarmShard<D>> = vec![
            SwarmShard::new(limits, budget.clone(), 2),
            SwarmShard::new(limits, budget.clone(), 2),
        ];
        let mut model = Model::default();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut out4 = Vec::<ResponsePeerWithId<Ipv4Addr>>::new();
        let mut out6 = Vec::<ResponsePeerWithId<Ipv6Addr>>::new();
        let mut now = 0u32;
        let mut changes = ModelRunStats::default();
        for op in ops {
            let forms_before = forms(&shards, space.hashes);
            let just_cleaned = matches!(op, Op::Clean { .. });
            match op {
                Op::Tick(secs) => now += secs,
                Op::Clean { max_age } => {
                    let mut removed = CleanStats::default();
                    for shard in &mut shards {
                        let s = shard.clean(SecondsSinceServerStart(now), max_age);
                        removed.removed_peers += s.removed_peers;
                        removed.removed_torrents += s.removed_torrents;
                    }
                    let before_peers = model.num_peers();
                    let before_torrents = model.torrents.len();
                    for t in model.torrents.values_mut() {
                        t.peers.retain(|_, p| p.seen + max_age >= now);
                    }
                    let emptied: Vec<u8> = model
                        .torrents
                        .iter()
                        .filter(|(_, t)| t.peers.is_empty())
                        .map(|(h, _)| *h)
                        .collect();
                    for h in emptied {
                        model.forget(h);
                    }
                    prop_assert_eq!(removed.removed_peers, before_peers - model.num_peers());
                    prop_assert_eq!(
                        removed.removed_torrents,
                        before_torrents - model.torrents.len()
                    );
                }
                Op::Announce {
                    hash: h,
                    v6: family_v6,
                    ip: ip_n,
                    port,
                    peer,
                    seeder,
                    event,
                    numwant,
                } => {
                    let p = AnnounceParams {
                        info_hash: hash(h),
                        peer_id: peer_id(peer),
                        port,
                        bytes_left: if seeder { 0 } else { 1 },
                        event,
                        numwant,
                    };
                    let shard = &mut shards[usize::from(h % 2)];
                    let at = SecondsSinceServerStart(now);
                    let got = if family_v6 {
                        shard.announce_ipv6(&p, v6(ip_n), at, &mut rng, &mut out6)
                    } else {
                        shard.announce_ipv4(&p, ip(ip_n), at, &mut rng, &mut out4)
                    };

                    // The rules, applied to the model.
                    let key = (family_v6, ip_n, port);
                    let total_peers = model.num_peers();
                    let min_interval = limits.min_announce_interval_secs;
                    let mut throttled = false;
                    if event == AnnounceEvent::Stopped {
                        if let Some(t) = model.torrents.get_mut(&h) {
                            t.peers.remove(&key);
                            if t.peers.is_empty() {
                                model.forget(h);
                            }
                        }
                    } else if port != 0 {
                        let new_peer = ModelPeer {
                            peer_id: peer,
                            seeder,
                            seen: now,
                            completion_counted: false,
                        };
                        match model.torrents.get_mut(&h) {
                            None => {
                                if model.torrents.len() < limits.max_torrents
                                    && total_peers < limits.max_peers
                                    && limits.max_peers_per_torrent >= 1
                                    && limits.max_peers_per_ip >= 1
                                {
                                    let completed = model.archive.remove(&h).unwrap_or(0);
                                    let mut t = ModelTorrent {
                                        peers: StdHashMap::new(),
                                        completed,
                                    };
                                    t.peers.insert(key, new_peer);
                                    model.torrents.insert(h, t);
                                } else {
                                    model.rejected += 1;
                                }
                            }
                            Some(t) => match t.peers.get_mut(&key) {
                                // Too soon after its last announce, and no event: nothing
                                // changes.
                                Some(stored)
                                    if event == AnnounceEvent::None
                                        && now - stored.seen < min_interval =>
                                {
                                    throttled = true;
                                    model.throttled += 1;
                                }
                                Some(stored) => {
                                    if event == AnnounceEvent::None && min_interval > 0 {
                                        changes.applied_after_interval += 1;
                                    }
                                    let counts = !stored.seeder
                                        && seeder
                                        && event == AnnounceEvent::Completed
                                        && !stored.completion_counted;
                                    if counts {
                                        t.completed += 1;
                                        stored.completion_counted = true;
                                    }
                                    stored.peer_id = peer;
                                    stored.seeder = seeder;
                                    stored.seen = now;
                                }
                                None => {
                                    let group = model_group(family_v6, ip_n);
                                    let same_group = t
                                        .peers
                                        .keys()
                                        .filter(|(f, i, _)| {
                                            *f == family_v6 && model_group(*f, *i) == group
                                        })
                                        .count();
                                    if t.peers.len() < limits.max_peers_per_torrent
                                        && same_group < limits.max_peers_per_ip
                                        && total_peers < limits.max_peers
                                    {
                                        t.peers.insert(key, new_peer);
                                    } else {
                                        model.rejected += 1;
                                    }
                                }
                            },
                        }
                    }

                    let (seeders, leechers) = model.torrents.get(&h).map_or((0, 0), |t| {
                        let family = t.peers.iter().filter(|((f, _, _), _)| *f == family_v6);
                        let seeders = family.clone().filter(|(_, p)| p.seeder).count() as u32;
                        (seeders, family.count() as u32 - seeders)
                    });
                    prop_assert_eq!(got, AnnounceCounts { seeders, leechers });

                    // The response: right size, no duplicates, never the announcer's
                    // endpoint, only eligible stored peers of its family with their
                    // current peer ids.
                    let pool: HashSet<(u32, u16, u32)> = model
                        .torrents
                        .get(&h)
                        .map(|t| {
                            t.peers
                                .iter()
                                .filter(|((f, i, po), p)| {
                                    *f == family_v6
                                        && (*i, *po) != (ip_n, port)
                                        && !(seeder && p.seeder)
                                })
                                .map(|((_, i, po), p)| (*i, *po, id_as_kept::<D>(p.peer_id)))
                                .collect()
                        })
                        .unwrap_or_default();
                    let response: Vec<(u32, u16, u32)> = if family_v6 {
                        out6.iter()
                            .map(|r| {
                                let n = (0..space.ips).find(|&n| v6(n) == r.ip).unwrap();
                                (n, r.port, id_number(&r.peer_id))
                            })
                            .collect()
                    } else {
                        out4.iter()
                            .map(|r| {
                                let n = u32::from(r.ip) - u32::from(ip(0));
                                (n, r.port, id_number(&r.peer_id))
                            })
                            .collect()
                    };
                    let unique: HashSet<_> = response.iter().copied().collect();
                    prop_assert_eq!(unique.len(), response.len(), "duplicates");
                    prop_assert!(unique.is_subset(&pool), "{:?} not in {:?}", unique, pool);
                    let expected_len = if event == AnnounceEvent::Stopped || throttled {
                        0
                    } else {
                        numwant.min(pool.len())
                    };
                    prop_assert_eq!(response.len(), expected_len);
                }
            }

            // Every stored peer, per shard, against the model; totals and the budget.
            let mut total_torrents = 0;
            let mut total_peers = 0;
            let mut rejected = 0;
            let mut throttled = 0;
            for (n, shard) in shards.iter().enumerate() {
                let mut seeders = 0;
                let mut leechers = 0;
                for t in shard.torrents.iter() {
                    let h = t.info_hash.0[0];
                    prop_assert_eq!(usize::from(h % 2), n);
                    let m = model.torrents.get(&h);
                    prop_assert!(m.is_some(), "torrent {} not in the model", h);
                    let m = m.unwrap();
                    prop_assert!(!t.is_empty());
                    prop_assert!(t.v6.as_ref().is_none_or(|p| !p.is_empty()));
                    // A kind keeps the last announced id, or none at all.
                    let kept = |id: Option<PeerId>| {
                        prop_assert_eq!(id.is_some(), keeps_ids::<D>());
                        Ok(id.as_ref().map_or(0, id_number))
                    };
                    let mut real: Vec<(ModelKey, u32, bool)> = Vec::new();
                    for (i, port, id, s) in stored::<Ipv4Addr, D>(t) {
                        real.push(((false, u32::from(i) - u32::from(ip(0)), port), kept(id)?, s));
                    }
                    for (i, port, id, s) in stored::<Ipv6Addr, D>(t) {
                        let n = (0..space.ips).find(|&n| v6(n) == i).unwrap();
                        real.push(((true, n, port), kept(id)?, s));
                    }
                    real.sort_unstable();
                    let mut expected: Vec<(ModelKey, u32, bool)> = m
                        .peers
                        .iter()
                        .map(|(k, p)| (*k, id_as_kept::<D>(p.peer_id), p.seeder))
                        .collect();
                    expected.sort_unstable();
                    prop_assert_eq!(real, expected);
                    let (s, l) = t.counts();
                    seeders += s;
                    leechers += l;
                    prop_assert!(t.num_peers() <= limits.max_peers_per_torrent);
                    let consistent = t.v4.seeders.form_is_consistent(just_cleaned)
                        && t.v4.leechers.form_is_consistent(just_cleaned)
                        && t.v6.as_ref().is_none_or(|p| {
                            p.seeders.form_is_consistent(just_cleaned)
                                && p.leechers.form_is_consistent(just_cleaned)
                        });
                    prop_assert!(consistent);
                }
                prop_assert_eq!(shard.num_seeders(), seeders);
                prop_assert_eq!(shard.num_leechers(), leechers);
                total_torrents += shard.num_torrents();
                total_peers += seeders + leechers;
                rejected += shard.num_rejected_by_limits();
                throttled += shard.num_throttled();
            }
            prop_assert_eq!(total_torrents, model.torrents.len());
            prop_assert_eq!(total_peers, model.num_peers());
            prop_assert_eq!(budget.num_torrents(), total_torrents);
            prop_assert_eq!(budget.num_peers(), total_peers);
            prop_assert!(total_torrents <= limits.max_torrents);
            prop_assert!(total_peers <= limits.max_peers);
            prop_assert_eq!(rejected, model.rejected);
            prop_assert_eq!(throttled, model.throttled);
            let archived: usize = shards
                .iter()
                .map(SwarmShard::<D>::num_archived_torrents)
                .sum();
            prop_assert_eq!(archived, model.archive.len());
            for h in 0..space.hashes {
                prop_assert_eq!(shards[usize::from(h % 2)].scrape(&hash(h)), model.scrape(h));
            }

            // Store forms: maps become small stores only at cleanings.
            for (h, (seeders_large, leechers_large)) in forms(&shards, space.hashes) {
                let (was_seeders_large, was_leechers_large) =
                    forms_before.get(&h).copied().unwrap_or_default();
                for (was, is) in [
                    (was_seeders_large, seeders_large),
                    (was_leechers_large, leechers_large),
                ] {
                    if !was && is {
                        changes.to_large += 1;
                    }
                    if was && !is {
                        prop_assert!(just_cleaned, "a map became small outside cleaning");
                        changes.to_small += 1;
                    }
                }
            }
        }
        changes.throttled = model.throttled;
        Ok(changes)
    }

    /// Limits from the given strategies; the minimum announce interval off (0) in two
    /// runs of three, else 1 to 19 seconds (ticks are up to 9).
    fn limits_strategy(
        max_torrents: impl Strategy<Value = usize>,
        max_peers: impl Strategy<Value = usize>,
        per_torrent: impl Strategy<Value = usize>,
        per_ip: impl Strategy<Value = usize>,
    ) -> impl Strategy<Value = SwarmLimits> {
        let min_interval = prop_oneof![2 => Just(0u32), 1 => 1..20u32];
        (max_torrents, max_peers, per_torrent, per_ip, min_interval).prop_map(
            |(t, p, pt, pi, min)| SwarmLimits {
                max_torrents: t,
                max_peers: p,
                max_peers_per_torrent: pt,
                max_peers_per_ip: pi,
                max_archived_torrents: 0,
                min_announce_interval_secs: min,
            },
        )
    }

    /// Limits for `FEW_PEERS`: small, and zero now and then (nothing can be stored).
    fn few_peers_limits() -> impl Strategy<Value = SwarmLimits> {
        limits_strategy(
            prop_oneof![1 => Just(0usize), 6 => 1..5usize],
            prop_oneof![1 => Just(0usize), 6 => 1..12usize],
            prop_oneof![1 => Just(0usize), 6 => 1..8usize],
            prop_oneof![1 => Just(0usize), 6 => 1..4usize],
        )
    }

    /// Limits for `MANY_PEERS`: two torrents at most, mostly no other limit, so that
    /// stores grow into their large form and back.
    fn store_forms_limits() -> impl Strategy<Value = SwarmLimits> {
        limits_strategy(
            1..3usize,
            prop_oneof![3 => Just(usize::MAX), 1 => 0..60usize],
            prop_oneof![3 => Just(usize::MAX), 1 => 0..40usize],
            prop_oneof![3 => Just(usize::MAX), 1 => 1..5usize],
        )
    }

    proptest! {
        #[test]
        fn matches_model_and_budget_holds(
            limits in few_peers_limits(),
            seed in any::<u64>(),
            ops in prop::collection::vec(op_strategy(FEW_PEERS), 1..200),
        ) {
            // Both kinds, on the same inputs: the rules do not depend on what a peer
            // keeps of its id.
            run_model::<PeerId>(limits, FEW_PEERS, seed, ops.clone())?;
            run_model::<NoPeerId>(limits, FEW_PEERS, seed, ops)?;
        }

        #[test]
        fn matches_model_across_store_forms(
            limits in store_forms_limits(),
            seed in any::<u64>(),
            ops in prop::collection::vec(op_strategy(MANY_PEERS), 1..600),
        ) {
            run_model::<PeerId>(limits, MANY_PEERS, seed, ops.clone())?;
            run_model::<NoPeerId>(limits, MANY_PEERS, seed, ops)?;
        }
    }

    /// Limits of two torrents and nothing else: the fixed coverage runs' limits.
    fn two_torrents_unlimited() -> SwarmLimits {
        SwarmLimits {
            max_torrents: 2,
            max_peers: usize::MAX,
            max_peers_per_torrent: usize::MAX,
            max_peers_per_ip: usize::MAX,
            max_archived_torrents: 0,
            min_announce_interval_secs: 0,
        }
    }

    /// The model run above, on one fixed long sequence, does go through both conversions
    /// many times, and its inputs do produce the cases the rules are about (a proptest
    /// case cannot check that its own inputs were interesting).
    #[test]
    fn model_runs_convert_both_ways_and_cover_the_rules() {
        use proptest::strategy::ValueTree;

        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let ops = prop::collection::vec(op_strategy(MANY_PEERS), 5_000)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let unlimited = two_torrents_unlimited();
        let changes = run_model::<PeerId>(unlimited, MANY_PEERS, 1, ops.clone()).unwrap();
        assert!(
            changes.to_large >= 20 && changes.to_small >= 20,
            "{changes:?}"
        );
        let bare = run_model::<NoPeerId>(unlimited, MANY_PEERS, 1, ops).unwrap();
        assert_eq!(
            (bare.to_large, bare.to_small),
            (changes.to_large, changes.to_small)
        );
        // The small space produces an endpoint under two peer ids, completed with bytes
        // left, and leecher -> seeder -> leecher -> seeder cycles of one stored peer.
        let ops = prop::collection::vec(op_strategy(FEW_PEERS), 2_000)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (mut two_ids, mut completed_left, mut cycles) = (0, 0, 0);
        // Per endpoint: last peer id, and the statuses it went through while stored.
        let mut seen: StdHashMap<(u8, ModelKey), (u32, Vec<bool>)> = StdHashMap::new();
        for op in &ops {
            if let Op::Announce {
                hash,
                v6,
                ip,
                port,
                peer,
                seeder,
                event,
                ..
            } = *op
            {
                if port == 0 {
                    continue;
                }
                if event == AnnounceEvent::Completed && !seeder {
                    completed_left += 1;
                }
                let entry = seen
                    .entry((hash, (v6, ip, port)))
                    .or_insert((peer, Vec::new()));
                if event == AnnounceEvent::Stopped {
                    entry.1.clear();
                    continue;
                }
                if entry.0 != peer {
                    two_ids += 1;
                    entry.0 = peer;
                }
                if entry.1.last() != Some(&seeder) {
                    entry.1.push(seeder);
                }
                if entry.1.ends_with(&[false, true, false, true]) {
                    cycles += 1;
                }
            }
        }
        assert!(
            two_ids > 50 && completed_left > 50 && cycles > 10,
            "{two_ids} {completed_left} {cycles}"
        );
        let stats = run_model::<PeerId>(LIMITS, FEW_PEERS, 2, ops.clone()).unwrap();
        assert_eq!(stats.throttled, 0);
        run_model::<NoPeerId>(LIMITS, FEW_PEERS, 2, ops.clone()).unwrap();
        // With a minimum interval of a few ticks, stored peers' plain re-announces come
        // both too soon and after it.
        let throttling = SwarmLimits {
            min_announce_interval_secs: 8,
            ..LIMITS
        };
        let stats = run_model::<PeerId>(throttling, FEW_PEERS, 2, ops.clone()).unwrap();
        let bare = run_model::<NoPeerId>(throttling, FEW_PEERS, 2, ops).unwrap();
        assert_eq!(
            (bare.throttled, bare.applied_after_interval),
            (stats.throttled, stats.applied_after_interval)
        );
        assert!(
            stats.throttled > 20 && stats.applied_after_interval > 20,
            "{stats:?}"
        );
    }

    // --- cluster: recording local changes, applying other nodes' ---

    fn v4_upsert(h: u8, n: u32, port: u16, id: u32, seeder: bool) -> PeerUpsert {
        PeerUpsert {
            info_hash: hash(h),
            ip: ip(n).into(),
            port,
            peer_id: peer_id(id),
            seeder,
            completed: false,
            age_secs: 0,
        }
    }

    fn upsert(u: PeerUpsert) -> PeerChange {
        PeerChange::Upsert(u)
    }

    fn removed(h: u8, n: u32, port: u16) -> PeerChange {
        PeerChange::Removed {
            info_hash: hash(h),
            ip: ip(n).into(),
            port,
        }
    }

    impl<D: StoredPeerId> Harness<D> {
        fn take(&mut self) -> Vec<PeerChange> {
            let mut out = Vec::new();
            self.shard.take_changes(&mut out);
            out
        }

        fn apply(&mut self, change: PeerChange, now: u32) -> bool {
            self.shard
                .apply_remote(&change, SecondsSinceServerStart(now))
        }

        /// The stored IPv4 peer at (ip(n), port) of torrent `h`: seeder?, peer id (zeros
        /// from a kind that keeps none), last seen time, counted flag, remote mark.
        fn peer(&self, h: u8, n: u32, port: u16) -> Option<(bool, PeerId, u32, bool, bool)> {
            let t = self.shard.torrent(&hash(h))?;
            let key = PeerKey { ip: ip(n), port };
            [(&t.v4.seeders, true), (&t.v4.leechers, false)]
                .into_iter()
                .find_map(|(store, seeder)| {
                    let (_, p) = store.entries().into_iter().find(|(k, _)| *k == key)?;
                    Some((
                        seeder,
                        *p.peer_id.answered(),
                        p.last_seen.time().0,
                        p.last_seen.completion_counted(),
                        p.last_seen.is_remote(),
                    ))
                })
        }
    }

    #[test]
    fn nothing_recorded_when_off() {
        let mut h = Harness::new(LIMITS);
        h.announce(&params(1, 1, 1, 1, AnnounceEvent::Started), ip(1));
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1));
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Stopped), ip(1));
        assert!(h.take().is_empty());
        // Turned on, then off again: what was not taken is dropped.
        h.shard.record_changes(true, 0);
        h.announce(&params(1, 1, 1, 1, AnnounceEvent::Started), ip(1));
        h.shard.record_changes(false, 0);
        h.announce(&params(1, 1, 1, 1, AnnounceEvent::None), ip(1));
        assert!(h.take().is_empty());
    }

    /// New peer (new torrent or not), re-announce, status moves: an upsert of age 0 each,
    /// `completed` only for the announce whose completion counted.
    #[test]
    fn records_an_upsert_for_every_peer_stored_or_refreshed() {
        let mut h = Harness::new(LIMITS);
        h.shard.record_changes(true, 0);
        let u = |n, id, seeder, completed| {
            upsert(PeerUpsert {
                completed,
                ..v4_upsert(1, n, 6881, id, seeder)
            })
        };
        h.announce(&params(1, 1, 6881, 9, AnnounceEvent::Started), ip(1));
        h.announce(&params(1, 2, 6881, 0, AnnounceEvent::Started), ip(2));
        h.announce(&params(1, 3, 6881, 9, AnnounceEvent::None), ip(1));
        h.announce(&params(1, 3, 6881, 0, AnnounceEvent::Completed), ip(1));
        h.announce(&params(1, 3, 6881, 5, AnnounceEvent::None), ip(1));
        // Back to seeder with completed: already counted, so not completed.
        h.announce(&params(1, 3, 6881, 0, AnnounceEvent::Completed), ip(1));
        assert_eq!(
            h.take(),
            [
                u(1, 1, false, false),
                u(2, 2, true, false),
                u(1, 3, false, false),
                u(1, 3, true, true),
                u(1, 3, false, false),
                u(1, 3, true, false),
            ]
        );
        assert_eq!(h.completed(1), 1);
        // Taken: the buffer is empty.
        assert!(h.take().is_empty());
        // IPv6: the address as announced.
        h.announce6(&params(1, 4, 7, 0, AnnounceEvent::None), v6(3));
        assert_eq!(
            h.take(),
            [upsert(PeerUpsert {
                ip: v6(3).into(),
                port: 7,
                ..v4_upsert(1, 0, 7, 4, true)
            })]
        );
    }

    /// With a window, a plain re-announce is recorded once per window; anything else
    /// that changes the peer is recorded at once.
    #[test]
    fn plain_re_announces_are_recorded_once_per_window() {
        let mut h = Harness::new(LIMITS);
        h.shard.record_changes(true, 100);
        let plain = params(1, 1, 6881, 9, AnnounceEvent::None);
        // New at 10: recorded. Re-announces at 20 and 99, same window: not.
        h.announce_at(&plain, ip(1), 10);
        h.announce_at(&plain, ip(1), 20);
        h.announce_at(&plain, ip(1), 99);
        assert_eq!(h.take(), [upsert(v4_upsert(1, 1, 6881, 1, false))]);
        // The first in the next window is; the next one in it is not.
        h.announce_at(&plain, ip(1), 100);
        h.announce_at(&plain, ip(1), 150);
        assert_eq!(h.take().len(), 1);
        // Within the window: a new peer id, a status move and a stop are all recorded.
        h.announce_at(&params(1, 2, 6881, 9, AnnounceEvent::None), ip(1), 160);
        h.announce_at(&params(1, 2, 6881, 0, AnnounceEvent::Completed), ip(1), 170);
        h.announce_at(&params(1, 2, 6881, 0, AnnounceEvent::Stopped), ip(1), 180);
        assert_eq!(
            h.take(),
            [
                upsert(v4_upsert(1, 1, 6881, 2, false)),
                upsert(PeerUpsert {
                    completed: true,
                    ..v4_upsert(1, 1, 6881, 2, true)
                }),
                removed(1, 1, 6881),
            ]
        );
        // A remote peer announcing here is recorded at once: it is this node's now.
        assert!(h.apply(upsert(v4_upsert(1, 3, 6881, 3, false)), 190));
        h.announce_at(&params(1, 3, 6881, 9, AnnounceEvent::None), ip(3), 191);
        assert_eq!(h.take(), [upsert(v4_upsert(1, 3, 6881, 3, false))]);
    }

    #[test]
    fn records_a_removal_only_when_stopped_removed_a_peer() {
        let mut h = Harness::new(LIMITS);
        h.announce(&params(1, 1, 6881, 9, AnnounceEvent::Started), ip(1));
        h.shard.record_changes(true, 0);
        // Not stored: another port, another address, another torrent.
        h.announce(&params(1, 1, 6882, 9, AnnounceEvent::Stopped), ip(1));
        h.announce(&params(1, 1, 6881, 9, AnnounceEvent::Stopped), ip(2));
        h.announce(&params(2, 1, 6881, 9, AnnounceEvent::Stopped), ip(1));
        assert!(h.take().is_empty());
        h.announce(&params(1, 1, 6881, 9, AnnounceEvent::Stopped), ip(1));
        assert_eq!(h.take(), [removed(1, 1, 6881)]);
        h.announce(&params(1, 1, 6881, 9, AnnounceEvent::Stopped), ip(1));
        assert!(h.take().is_empty());
    }

    #[test]
    fn records_nothing_for_port_zero_refusals_or_cleaning() {
        let limits = SwarmLimits {
            max_peers_per_torrent: 1,
            max_torrents: 1,
            ..LIMITS
        };
        let mut h = Harness::new(limits);
        h.announce(&params(1, 1, 1, 9, AnnounceEvent::Started), ip(1));
        h.shard.record_changes(true, 0);
        h.announce(&params(1, 2, 0, 9, AnnounceEvent::Started), ip(2));
        // Rejected by limits: the torrent is full, no room for another torrent.
        h.announce(&params(1, 2, 1, 9, AnnounceEvent::Started), ip(2));
        h.announce(&params(2, 2, 1, 9, AnnounceEvent::Started), ip(2));
        assert_eq!(h.shard.num_rejected_by_limits(), 2);
        assert_eq!(
            h.shard
                .clean(SecondsSinceServerStart(100), 10)
                .removed_peers,
            1
        );
        assert!(h.take().is_empty());
        assert_eq!(h.shard.num_torrents(), 0);
    }

    #[test]
    fn applying_records_nothing() {
        let mut h = Harness::new(LIMITS);
        h.shard.record_changes(true, 0);
        assert!(h.apply(upsert(v4_upsert(1, 1, 1, 1, false)), 0));
        assert!(h.apply(removed(1, 1, 1), 0));
        assert!(h.take().is_empty());
    }

    #[test]
    fn apply_remote_stores_a_new_peer_marked_remote() {
        let mut h = Harness::new(LIMITS);
        // Torrent 1 emptied with a count of 1, archived.
        h.announce(&params(1, 1, 1, 9, AnnounceEvent::Started), ip(1));
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1));
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Stopped), ip(1));
        assert_eq!(h.shard.num_torrents(), 0);
        let change = PeerUpsert {
            age_secs: 30,
            ..v4_upsert(1, 2, 6881, 7, true)
        };
        assert!(h.apply(upsert(change), 100));
        assert_eq!(
            h.peer(1, 2, 6881),
            Some((true, peer_id(7), 70, false, true))
        );
        assert_eq!(h.shard.num_remote_peers(), 1);
        // The archived count came back with the torrent.
        assert_eq!(
            h.shard.scrape(&hash(1)),
            ScrapeCounts {
                seeders: 1,
                completed: 1,
                leechers: 0
            }
        );
        // A second peer in the stored torrent; an age beyond `now` is seen at 0.
        let change = PeerUpsert {
            age_secs: u16::MAX,
            ..v4_upsert(1, 3, 6881, 8, false)
        };
        assert!(h.apply(upsert(change), 100));
        assert_eq!(
            h.peer(1, 3, 6881),
            Some((false, peer_id(8), 0, false, true))
        );
        assert_eq!(h.shard.num_remote_peers(), 2);
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (1, 1));
        // Port 0 does nothing.
        assert!(!h.apply(upsert(v4_upsert(1, 4, 0, 8, false)), 100));
        assert!(!h.apply(removed(1, 4, 0), 100));
        // Announcers get the remote peers like any.
        h.announce_at(&params(1, 9, 1, 9, AnnounceEvent::Started), ip(9), 100);
        assert_eq!(h.returned_ips(), HashSet::from([ip(2), ip(3)]));
        // An IPv4-mapped address is the IPv4 peer.
        let mapped = PeerUpsert {
            ip: ip(2).to_ipv6_mapped().into(),
            ..v4_upsert(1, 2, 6881, 7, true)
        };
        h.apply(upsert(mapped), 100);
        assert_eq!(h.shard.num_seeders() + h.shard.num_leechers(), 3);
    }

    /// A refresh takes the later of the peer's own time and the change's: a change that
    /// took long to arrive never moves a peer back in time.
    #[test]
    fn apply_remote_refresh_never_goes_back_in_time() {
        let mut h = Harness::new(LIMITS);
        h.announce_at(&params(1, 1, 1, 9, AnnounceEvent::Started), ip(1), 50);
        let at_age = |age| {
            upsert(PeerUpsert {
                age_secs: age,
                ..v4_upsert(1, 1, 1, 1, false)
            })
        };
        // Seen at 40 elsewhere: older, nothing changes.
        assert!(!h.apply(at_age(20), 60));
        assert_eq!(h.peer(1, 1, 1).unwrap().2, 50);
        // Seen at 55 elsewhere: later.
        assert!(h.apply(at_age(5), 60));
        assert_eq!(h.peer(1, 1, 1).unwrap().2, 55);
        // A local peer stays local.
        assert!(!h.peer(1, 1, 1).unwrap().4);
        assert_eq!(h.shard.num_remote_peers(), 0);
        // Cleaning sees the later time: 55 + 10 >= 65 stays, then goes.
        assert_eq!(
            h.shard.clean(SecondsSinceServerStart(65), 10).removed_peers,
            0
        );
        assert_eq!(
            h.shard.clean(SecondsSinceServerStart(66), 10).removed_peers,
            1
        );
        // A new peer id is a change even with an older time.
        h.apply(at_age(0), 100);
        let new_id = upsert(PeerUpsert {
            age_secs: 50,
            ..v4_upsert(1, 1, 1, 2, false)
        });
        assert!(h.apply(new_id, 100));
        assert_eq!(h.peer(1, 1, 1), Some((false, peer_id(2), 100, false, true)));
    }

    #[test]
    fn apply_remote_moves_status_keeping_the_mark() {
        let mut h = Harness::new(LIMITS);
        h.apply(upsert(v4_upsert(1, 1, 1, 1, false)), 10);
        h.announce_at(&params(1, 2, 1, 9, AnnounceEvent::Started), ip(2), 10);
        assert!(h.apply(upsert(v4_upsert(1, 1, 1, 1, true)), 20));
        assert!(h.apply(upsert(v4_upsert(1, 2, 1, 2, true)), 20));
        assert_eq!(h.peer(1, 1, 1), Some((true, peer_id(1), 20, false, true)));
        assert_eq!(h.peer(1, 2, 1), Some((true, peer_id(2), 20, false, false)));
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (2, 0));
        assert_eq!(h.shard.num_remote_peers(), 1);
        assert!(h.apply(upsert(v4_upsert(1, 1, 1, 1, false)), 20));
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (1, 1));
        assert_eq!(h.shard.num_remote_peers(), 1);
        // Unchanged: the same status, peer id and time.
        assert!(!h.apply(upsert(v4_upsert(1, 1, 1, 1, false)), 20));
    }

    /// Each change with `completed` adds one, whatever the peer's flag, and sets the flag,
    /// so that the peer's own completed announce here does not count it again.
    #[test]
    fn apply_remote_counts_completed_once_per_peer_and_sets_the_flag() {
        let mut h = Harness::new(LIMITS);
        h.announce(&params(1, 1, 1, 9, AnnounceEvent::Started), ip(1));
        let completed = upsert(PeerUpsert {
            completed: true,
            ..v4_upsert(1, 1, 1, 1, true)
        });
        assert!(h.apply(completed, 0));
        assert_eq!(h.completed(1), 1);
        assert_eq!(h.shard.num_completed(), 1);
        assert_eq!(h.peer(1, 1, 1), Some((true, peer_id(1), 0, true, false)));
        // The peer goes back to leecher and completes here: the flag keeps it at one.
        h.announce(&params(1, 1, 1, 9, AnnounceEvent::None), ip(1));
        h.announce(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1));
        assert_eq!(h.completed(1), 1);
        // Another change with completed for the stored peer whose completion counted
        // here: the same completion (the client announced it to another node too).
        assert!(!h.apply(completed, 0));
        assert_eq!(h.completed(1), 1);
        // Counted again only as a new peer's: after the peer left and came back there.
        assert!(h.apply(removed(1, 1, 1), 0));
        assert!(h.apply(completed, 0));
        assert_eq!(h.completed(1), 2);
        // A new peer (and a new torrent) of a completed change: counted, flag set.
        let new = upsert(PeerUpsert {
            completed: true,
            ..v4_upsert(2, 5, 1, 5, true)
        });
        assert!(h.apply(new, 0));
        assert_eq!(h.completed(2), 1);
        assert_eq!(h.peer(2, 5, 1), Some((true, peer_id(5), 0, true, true)));
        assert_eq!(h.shard.num_completed(), 3);
    }

    #[test]
    fn apply_remote_removal_removes_and_archives_the_torrent() {
        let mut h = Harness::new(LIMITS);
        h.apply(
            upsert(PeerUpsert {
                completed: true,
                ..v4_upsert(1, 1, 1, 1, true)
            }),
            0,
        );
        h.apply(upsert(v4_upsert(1, 2, 1, 2, false)), 0);
        assert_eq!(h.shard.num_remote_peers(), 2);
        assert!(h.apply(removed(1, 2, 1), 0));
        assert!(!h.apply(removed(1, 2, 1), 0));
        assert!(!h.apply(removed(3, 2, 1), 0));
        assert_eq!(h.shard.num_remote_peers(), 1);
        assert!(h.apply(removed(1, 1, 1), 0));
        assert_eq!(h.shard.num_remote_peers(), 0);
        assert_eq!(h.shard.num_torrents(), 0);
        assert_eq!(h.shard.num_archived_torrents(), 1);
        assert_eq!(h.completed(1), 1);
        // A removal removes a local peer too: the endpoint left, wherever it said so.
        h.announce(&params(1, 1, 1, 9, AnnounceEvent::Started), ip(1));
        assert!(h.apply(removed(1, 1, 1), 0));
        assert_eq!(h.shard.num_torrents(), 0);
    }

    #[test]
    fn apply_remote_respects_limits_and_counts_refusals() {
        let limits = SwarmLimits {
            max_torrents: 1,
            max_peers: 3,
            max_peers_per_torrent: 2,
            max_peers_per_ip: 1,
            ..LIMITS
        };
        let budget = Arc::new(SwarmBudget::new(&limits));
        let mut shard: SwarmShard = SwarmShard::new(limits, budget.clone(), 1);
        let now = SecondsSinceServerStart(0);
        let mut apply = |change| shard.apply_remote(&upsert(change), now);
        assert!(apply(v4_upsert(1, 1, 1, 1, false)));
        // Per address: a second port of ip(1).
        assert!(!apply(v4_upsert(1, 1, 2, 1, false)));
        assert!(apply(v4_upsert(1, 2, 1, 1, false)));
        // Per torrent.
        assert!(!apply(v4_upsert(1, 3, 1, 1, false)));
        // Torrents.
        assert!(!apply(v4_upsert(2, 3, 1, 1, false)));
        // A refused peer's completion still counts in the stored torrent.
        assert!(apply(PeerUpsert {
            completed: true,
            ..v4_upsert(1, 3, 1, 1, true)
        }));
        assert_eq!(shard.num_rejected_by_limits(), 4);
        assert_eq!(shard.num_remote_peers(), 2);
        assert_eq!(budget.num_peers(), 2);
        assert_eq!(budget.num_torrents(), 1);
        assert_eq!(shard.scrape(&hash(1)).completed, 1);
    }

    #[test]
    fn remote_count_through_takeover_stop_clean_and_remove() {
        let mut h = Harness::new(LIMITS);
        for n in 0..6 {
            h.apply(upsert(v4_upsert(1, n, 1, n, n % 2 == 0)), 10);
        }
        assert_eq!(h.shard.num_remote_peers(), 6);
        // Local takeover, same status and with a move.
        h.announce_at(&params(1, 0, 1, 0, AnnounceEvent::None), ip(0), 10);
        h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1), 10);
        assert!(!h.peer(1, 0, 1).unwrap().4);
        assert_eq!(h.shard.num_remote_peers(), 4);
        // Stopped and removed.
        h.announce_at(&params(1, 2, 1, 0, AnnounceEvent::Stopped), ip(2), 10);
        h.apply(removed(1, 3, 1), 10);
        assert_eq!(h.shard.num_remote_peers(), 2);
        // Expiry: peer 4 refreshed remotely stays, peer 5 goes.
        h.apply(upsert(v4_upsert(1, 4, 1, 4, true)), 30);
        h.shard.clean(SecondsSinceServerStart(30), 10);
        assert_eq!(h.shard.num_remote_peers(), 1);
        assert!(h.peer(1, 4, 1).unwrap().4);
        h.shard.clean(SecondsSinceServerStart(100), 10);
        assert_eq!(h.shard.num_remote_peers(), 0);
        assert_eq!(h.shard.num_torrents(), 0);
    }

    #[test]
    fn merge_torrent_marks_remote_keeps_stored_and_takes_the_larger_count() {
        let mut h = Harness::new(LIMITS);
        h.announce_at(&params(1, 1, 1, 9, AnnounceEvent::Started), ip(1), 100);
        let saved_peer = |n: u32, seeder| saved::SavedPeer {
            ip: ip(n).into(),
            port: 1,
            peer_id: peer_id(50 + n),
            seeder,
            completion_counted: seeder,
            remaining_secs: 40,
        };
        let saved = saved::SavedTorrent {
            info_hash: hash(1),
            completed: 5,
            peers: vec![
                saved_peer(1, true),
                saved_peer(2, true),
                saved_peer(3, false),
            ],
        };
        assert_eq!(
            h.shard
                .merge_torrent(&saved, SecondsSinceServerStart(100), 60),
            2
        );
        // The stored peer is left as it was.
        assert_eq!(
            h.peer(1, 1, 1),
            Some((false, peer_id(1), 100, false, false))
        );
        assert_eq!(h.peer(1, 2, 1), Some((true, peer_id(52), 80, true, true)));
        assert_eq!(h.peer(1, 3, 1), Some((false, peer_id(53), 80, false, true)));
        assert_eq!(h.shard.num_remote_peers(), 2);
        assert_eq!(h.completed(1), 5);
        // A smaller count does not lower it; counts are not downloads of this shard.
        let smaller = saved::SavedTorrent {
            completed: 2,
            ..saved.clone()
        };
        assert_eq!(
            h.shard
                .merge_torrent(&smaller, SecondsSinceServerStart(100), 60),
            0
        );
        assert_eq!(h.completed(1), 5);
        assert_eq!(h.shard.num_completed(), 0);
        // A torrent that gets no peer: its archived count, the larger.
        let empty = |completed| saved::SavedTorrent {
            info_hash: hash(2),
            completed,
            peers: Vec::new(),
        };
        h.shard
            .merge_torrent(&empty(7), SecondsSinceServerStart(100), 60);
        h.shard
            .merge_torrent(&empty(3), SecondsSinceServerStart(100), 60);
        assert_eq!(h.completed(2), 7);
        // Restored peers are this node's own, merged ones remote: both counted exactly.
        let restored = saved::SavedTorrent {
            info_hash: hash(3),
            completed: 0,
            peers: vec![saved_peer(1, true)],
        };
        h.shard
            .restore_torrent(&restored, SecondsSinceServerStart(100), 60);
        assert_eq!(h.shard.num_remote_peers(), 2);
        h.shard.clean(SecondsSinceServerStart(1000), 60);
        assert_eq!(h.shard.num_remote_peers(), 0);
    }

    /// Shard A records its announces; the changes go through the wire format to shard B,
    /// which applies them: B then answers scrapes and announces as A does.
    #[test]
    fn replicated_shard_answers_like_the_origin() {
        use tracker_cluster_protocol::{BatchHeader, BatchWriter, decode_batch};

        let mut a = Harness::new(LIMITS);
        let mut b = Harness::new(LIMITS);
        a.shard.record_changes(true, 0);
        let mut rng = SmallRng::seed_from_u64(11);
        for (sequence, round) in (0..20u32).enumerate() {
            let now = round * 5;
            for _ in 0..50 {
                let h = rng.random_range(0..4u8);
                let n = rng.random_range(0..12u32);
                let port = rng.random_range(1..3u16);
                let left = if rng.random_bool(0.4) { 0 } else { 100 };
                let event = match rng.random_range(0..6) {
                    0 => AnnounceEvent::Stopped,
                    1 | 2 => AnnounceEvent::Completed,
                    3 => AnnounceEvent::Started,
                    _ => AnnounceEvent::None,
                };
                let p = params(h, rng.random_range(0..3), port, left, event);
                let at = SecondsSinceServerStart(now);
                if n % 3 == 0 {
                    a.shard
                        .announce_ipv6(&p, v6(n), at, &mut a.rng, &mut a.out6);
                } else {
                    a.shard.announce_ipv4(&p, ip(n), at, &mut a.rng, &mut a.out);
                }
            }
            let changes = a.take();
            let mut writer = BatchWriter::new(&BatchHeader {
                epoch: 1,
                sequence: sequence as u64,
                sent_unix_millis: 0,
            });
            for change in &changes {
                writer.push(change);
            }
            let (_, received) = decode_batch(&writer.finish()).unwrap();
            assert_eq!(received, changes);
            for change in &received {
                b.shard.apply_remote(change, SecondsSinceServerStart(now));
            }
            a.shard.clean(SecondsSinceServerStart(now), 30);
            b.shard.clean(SecondsSinceServerStart(now), 30);
        }
        assert!(a.shard.num_completed() > 0);
        assert_eq!(a.shard.num_completed(), b.shard.num_completed());
        assert_eq!(a.shard.num_torrents(), b.shard.num_torrents());
        assert_eq!(a.shard.num_seeders(), b.shard.num_seeders());
        assert_eq!(a.shard.num_leechers(), b.shard.num_leechers());
        assert_eq!(
            b.shard.num_remote_peers(),
            b.shard.num_seeders() + b.shard.num_leechers()
        );
        assert_eq!(a.shard.num_remote_peers(), 0);
        for h in 0..4 {
            assert_eq!(a.shard.scrape(&hash(h)), b.shard.scrape(&hash(h)));
            // Port 0 stores nothing: both get every peer of a family, with peer ids.
            for seeder in [true, false] {
                let left = if seeder { 0 } else { 1 };
                let mut p = params(h, 99, 0, left, AnnounceEvent::None);
                p.numwant = 1000;
                let at = SecondsSinceServerStart(100);
                let peers4 = |s: &mut Harness| {
                    let mut out = Vec::<ResponsePeerWithId<Ipv4Addr>>::new();
                    s.shard.announce_ipv4(&p, ip(99), at, &mut s.rng, &mut out);
                    out.into_iter()
                        .map(|r| (r.ip, r.port, r.peer_id))
                        .collect::<HashSet<_>>()
                };
                assert_eq!(peers4(&mut a), peers4(&mut b));
                let peers6 = |s: &mut Harness| {
                    let mut out = Vec::<ResponsePeerWithId<Ipv6Addr>>::new();
                    s.shard.announce_ipv6(&p, v6(99), at, &mut s.rng, &mut out);
                    out.into_iter()
                        .map(|r| (r.ip, r.port, r.peer_id))
                        .collect::<HashSet<_>>()
                };
                assert_eq!(peers6(&mut a), peers6(&mut b));
            }
        }
    }

    /// The remote peer rules, written from the module documentation: a peer stored by
    /// another node's change is remote until announced here; refreshed or moved by one,
    /// it keeps its mark; it goes with a stop, a removal or expiry.
    #[derive(Clone, Copy, Debug)]
    struct RemoteModelPeer {
        seeder: bool,
        seen: u32,
        counted: bool,
        remote: bool,
    }

    /// A torrent of the model: its completed count, its peers by (IP number, port).
    type RemoteModelTorrent = (u32, StdHashMap<(u32, u16), RemoteModelPeer>);

    #[derive(Default)]
    struct RemoteModel {
        torrents: StdHashMap<u8, RemoteModelTorrent>,
        archive: StdHashMap<u8, u32>,
    }

    impl RemoteModel {
        fn remote(&self) -> usize {
            self.torrents
                .values()
                .flat_map(|(_, peers)| peers.values())
                .filter(|p| p.remote)
                .count()
        }

        fn torrent(&mut self, h: u8) -> &mut RemoteModelTorrent {
            let archived = self.archive.remove(&h);
            self.torrents
                .entry(h)
                .or_insert_with(|| (archived.unwrap_or(0), StdHashMap::new()))
        }

        fn remove(&mut self, h: u8, key: (u32, u16)) {
            if let Some((completed, peers)) = self.torrents.get_mut(&h) {
                peers.remove(&key);
                if peers.is_empty() {
                    if *completed > 0 {
                        self.archive.insert(h, *completed);
                    }
                    self.torrents.remove(&h);
                }
            }
        }

        fn scrape(&self, h: u8) -> ScrapeCounts {
            match self.torrents.get(&h) {
                Some((completed, peers)) => {
                    let seeders = peers.values().filter(|p| p.seeder).count() as u32;
                    ScrapeCounts {
                        seeders,
                        completed: *completed,
                        leechers: peers.len() as u32 - seeders,
                    }
                }
                None => ScrapeCounts {
                    completed: self.archive.get(&h).copied().unwrap_or(0),
                    ..ScrapeCounts::default()
                },
            }
        }
    }

    #[derive(Clone, Debug)]
    enum RemoteOp {
        Announce {
            hash: u8,
            ip: u32,
            port: u16,
            seeder: bool,
            completed_event: bool,
        },
        Stop {
            hash: u8,
            ip: u32,
            port: u16,
        },
        Upsert {
            hash: u8,
            ip: u32,
            port: u16,
            seeder: bool,
            completed: bool,
            age: u16,
        },
        Remove {
            hash: u8,
            ip: u32,
            port: u16,
        },
        Clean {
            max_age: u32,
        },
        Tick(u32),
    }

    fn remote_op_strategy() -> impl Strategy<Value = RemoteOp> {
        let endpoint = (0..3u8, 0..4u32, 1..3u16);
        prop_oneof![
            4 => (endpoint.clone(), any::<bool>(), any::<bool>()).prop_map(
                |((hash, ip, port), seeder, completed_event)| RemoteOp::Announce {
                    hash, ip, port, seeder, completed_event,
                }
            ),
            1 => endpoint.clone().prop_map(|(hash, ip, port)| RemoteOp::Stop { hash, ip, port }),
            4 => (endpoint.clone(), any::<bool>(), prop::bool::weighted(0.2), 0..30u16).prop_map(
                |((hash, ip, port), seeder, completed, age)| RemoteOp::Upsert {
                    hash, ip, port, seeder, completed, age,
                }
            ),
            1 => endpoint.prop_map(|(hash, ip, port)| RemoteOp::Remove { hash, ip, port }),
            1 => (0..40u32).prop_map(|max_age| RemoteOp::Clean { max_age }),
            2 => (0..10u32).prop_map(RemoteOp::Tick),
        ]
    }

    proptest! {
        #[test]
        fn remote_count_matches_model(
            ops in prop::collection::vec(remote_op_strategy(), 1..300),
        ) {
            run_remote_model::<PeerId>(ops.clone())?;
            run_remote_model::<NoPeerId>(ops)?;
        }
    }

    /// Runs `ops` on a shard of kind `D` and on [`RemoteModel`], checking after each that
    /// they agree.
    fn run_remote_model<D: StoredPeerId>(ops: Vec<RemoteOp>) -> Result<(), TestCaseError> {
        let mut h = Harness::<D>::of_kind(LIMITS);
        let mut model = RemoteModel::default();
        let mut now = 0u32;
        for op in ops {
            match op {
                RemoteOp::Announce {
                    hash: t,
                    ip: n,
                    port,
                    seeder,
                    completed_event,
                } => {
                    let event = if completed_event {
                        AnnounceEvent::Completed
                    } else {
                        AnnounceEvent::None
                    };
                    let left = if seeder { 0 } else { 1 };
                    h.announce_at(&params(t, n, port, left, event), ip(n), now);
                    let (completed, peers) = model.torrent(t);
                    let peer = peers.entry((n, port)).or_insert(RemoteModelPeer {
                        seeder,
                        seen: now,
                        counted: false,
                        remote: false,
                    });
                    if !peer.seeder && seeder && completed_event && !peer.counted {
                        *completed += 1;
                        peer.counted = true;
                    }
                    peer.seeder = seeder;
                    peer.seen = now;
                    peer.remote = false;
                }
                RemoteOp::Stop {
                    hash: t,
                    ip: n,
                    port,
                } => {
                    h.announce_at(&params(t, n, port, 1, AnnounceEvent::Stopped), ip(n), now);
                    model.remove(t, (n, port));
                }
                RemoteOp::Upsert {
                    hash: t,
                    ip: n,
                    port,
                    seeder,
                    completed,
                    age,
                } => {
                    let change = PeerUpsert {
                        completed,
                        age_secs: age,
                        ..v4_upsert(t, n, port, n, seeder)
                    };
                    h.apply(upsert(change), now);
                    let seen = now.saturating_sub(u32::from(age));
                    let (count, peers) = model.torrent(t);
                    let peer = peers.entry((n, port)).or_insert(RemoteModelPeer {
                        seeder,
                        seen,
                        counted: false,
                        remote: true,
                    });
                    peer.seeder = seeder;
                    peer.seen = peer.seen.max(seen);
                    // Once per stored peer: a completion counted here before is the
                    // same one, come by another node.
                    if completed && !peer.counted {
                        *count += 1;
                        peer.counted = true;
                    }
                }
                RemoteOp::Remove {
                    hash: t,
                    ip: n,
                    port,
                } => {
                    h.apply(removed(t, n, port), now);
                    model.remove(t, (n, port));
                }
                RemoteOp::Clean { max_age } => {
                    h.shard.clean(SecondsSinceServerStart(now), max_age);
                    let expired: Vec<(u8, (u32, u16))> = model
                        .torrents
                        .iter()
                        .flat_map(|(t, (_, peers))| {
                            peers
                                .iter()
                                .filter(|(_, p)| p.seen + max_age < now)
                                .map(|(k, _)| (*t, *k))
                        })
                        .collect();
                    for (t, key) in expired {
                        model.remove(t, key);
                    }
                }
                RemoteOp::Tick(secs) => now += secs,
            }
            prop_assert_eq!(h.shard.num_remote_peers(), model.remote());
            for t in 0..3 {
                prop_assert_eq!(h.shard.scrape(&hash(t)), model.scrape(t));
                for ((n, port), p) in model
                    .torrents
                    .get(&t)
                    .map(|(_, m)| m.clone())
                    .unwrap_or_default()
                {
                    let got = h
                        .peer(t, n, port)
                        .map(|(s, _, seen, counted, remote)| (s, seen, counted, remote));
                    prop_assert_eq!(got, Some((p.seeder, p.seen, p.counted, p.remote)));
                }
            }
            prop_assert_eq!(h.shard.num_torrents(), model.torrents.len());
        }
        Ok(())
    }

    // --- the minimum announce interval ---

    /// [`LIMITS`] with a minimum announce interval of `secs`.
    fn throttling(secs: u32) -> SwarmLimits {
        SwarmLimits {
            min_announce_interval_secs: secs,
            ..LIMITS
        }
    }

    /// A stored peer's plain re-announce sooner than the interval after its last one gets
    /// the counts and no peers, and changes nothing: its status, peer id and last-seen
    /// time stay, so it expires on its old schedule. At the interval it applies.
    #[test]
    fn early_plain_reannounce_changes_nothing_and_gets_no_peers() {
        let mut h = Harness::new(throttling(100));
        h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::Started), ip(1), 0);
        h.announce_at(&params(1, 2, 1, 0, AnnounceEvent::Started), ip(2), 0);
        h.announce_at(&params(1, 3, 1, 50, AnnounceEvent::Started), ip(3), 0);
        // Two IPv6 peers, new at 10.
        let at = SecondsSinceServerStart;
        let p6 = params(1, 4, 1, 50, AnnounceEvent::None);
        h.shard
            .announce_ipv6(&p6, v6(4), at(10), &mut h.rng, &mut h.out6);
        h.shard
            .announce_ipv6(&p6, v6(5), at(10), &mut h.rng, &mut h.out6);
        // The leecher at ip(1) re-announces at 50, its status unchanged: not refreshed.
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::None), ip(1), 50),
            counts(1, 2)
        );
        assert!(h.out.is_empty());
        assert_eq!(h.peer(1, 1, 1), Some((false, peer_id(1), 0, false, false)));
        // Over IPv6 alike.
        assert_eq!(
            h.shard
                .announce_ipv6(&p6, v6(4), at(60), &mut h.rng, &mut h.out6),
            counts(0, 2)
        );
        assert!(h.out6.is_empty());
        // At 99 it says it is a seeder, under another peer id: still a leecher with its
        // old id and time.
        assert_eq!(
            h.announce_at(&params(1, 9, 1, 0, AnnounceEvent::None), ip(1), 99),
            counts(1, 2)
        );
        assert!(h.out.is_empty());
        assert_eq!(h.peer(1, 1, 1), Some((false, peer_id(1), 0, false, false)));
        assert_eq!(
            h.shard.scrape(&hash(1)),
            ScrapeCounts {
                seeders: 1,
                completed: 0,
                leechers: 4
            }
        );
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (1, 4));
        assert_eq!(h.shard.num_throttled(), 3);
        // At exactly the interval: applied, with peers.
        assert_eq!(
            h.announce_at(&params(1, 2, 1, 0, AnnounceEvent::None), ip(2), 100),
            counts(1, 2)
        );
        assert_eq!(h.returned_ips(), [1, 3].map(ip).into());
        assert_eq!(
            h.announce_at(&params(1, 3, 1, 0, AnnounceEvent::None), ip(3), 100),
            counts(2, 1)
        );
        assert_eq!(h.returned_ips(), [ip(1)].into());
        assert_eq!(h.peer(1, 3, 1), Some((true, peer_id(3), 100, false, false)));
        assert_eq!(h.shard.num_throttled(), 3);
        // ip(1) was last seen at 0, whatever it sent since: with a maximum age of 100 it
        // alone expires at 101; the IPv6 peer announced at 60 is gone at 111, as seen at
        // 10.
        assert_eq!(
            h.shard
                .clean(SecondsSinceServerStart(101), 100)
                .removed_peers,
            1
        );
        assert_eq!(h.peer(1, 1, 1), None);
        assert_eq!(h.shard.scrape(&hash(1)).seeders, 2);
        assert_eq!(
            h.shard
                .clean(SecondsSinceServerStart(111), 100)
                .removed_peers,
            2
        );
    }

    /// Throttled announces do not move the window: a peer announcing every 60 seconds
    /// under an interval of 100 is applied every other time, measured from its last
    /// applied announce.
    #[test]
    fn the_interval_counts_from_the_last_applied_announce() {
        let mut h = Harness::new(throttling(100));
        h.announce_at(&params(1, 2, 1, 0, AnnounceEvent::Started), ip(2), 0);
        h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::Started), ip(1), 0);
        let mut applied = Vec::new();
        for t in (60..=480).step_by(60) {
            h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::None), ip(1), t);
            if !h.out.is_empty() {
                applied.push(t);
            }
            assert_eq!(h.peer(1, 1, 1).unwrap().2, *applied.last().unwrap_or(&0));
        }
        assert_eq!(applied, [120, 240, 360, 480]);
        assert_eq!(h.shard.num_throttled(), 4);
    }

    /// Started, completed and stopped apply whatever the time, and so does a new peer
    /// (a stopped one that comes back is one).
    #[test]
    fn announces_with_an_event_always_apply() {
        let mut h = Harness::new(throttling(100));
        h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::Started), ip(1), 0);
        h.announce_at(&params(1, 2, 1, 50, AnnounceEvent::Started), ip(2), 0);
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::Started), ip(1), 10),
            counts(0, 2)
        );
        assert_eq!(h.returned_ips(), [ip(2)].into());
        assert_eq!(h.peer(1, 1, 1), Some((false, peer_id(1), 10, false, false)));
        // Completed: a seeder, the download counted.
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::Completed), ip(1), 20),
            counts(1, 1)
        );
        assert_eq!(h.returned_ips(), [ip(2)].into());
        assert_eq!(h.completed(1), 1);
        assert_eq!(h.peer(1, 1, 1), Some((true, peer_id(1), 20, true, false)));
        // Stopped: removed.
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::Stopped), ip(1), 30),
            counts(0, 1)
        );
        assert_eq!(h.peer(1, 1, 1), None);
        // Back without an event: a new peer, stored, with peers; its next plain
        // re-announce is measured from then.
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::None), ip(1), 31),
            counts(1, 1)
        );
        assert_eq!(h.returned_ips(), [ip(2)].into());
        assert_eq!(h.shard.num_throttled(), 0);
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::None), ip(1), 40),
            counts(1, 1)
        );
        assert!(h.out.is_empty());
        assert_eq!(h.peer(1, 1, 1), Some((true, peer_id(1), 31, false, false)));
        assert_eq!(h.shard.num_throttled(), 1);
    }

    /// New peers (another endpoint, another torrent) and port 0 are never throttled.
    #[test]
    fn new_peers_and_port_zero_are_never_throttled() {
        let mut h = Harness::new(throttling(100));
        h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::None), ip(1), 0);
        // Another port of the same address, and the same endpoint in another torrent.
        assert_eq!(
            h.announce_at(&params(1, 2, 2, 50, AnnounceEvent::None), ip(1), 1),
            counts(1, 1)
        );
        assert_eq!(h.out, [ResponsePeer { ip: ip(1), port: 1 }]);
        assert_eq!(
            h.announce_at(&params(2, 1, 1, 0, AnnounceEvent::None), ip(1), 2),
            counts(1, 0)
        );
        // Port 0, again and again: answered with peers every time, stored never.
        for t in 3..6 {
            assert_eq!(
                h.announce_at(&params(1, 3, 0, 50, AnnounceEvent::None), ip(3), t),
                counts(1, 1)
            );
            assert_eq!(h.out.len(), 2);
        }
        assert_eq!(h.shard.num_throttled(), 0);
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (2, 1));
    }

    /// A throttled announce records nothing for the other nodes; the first one after the
    /// interval records as usual.
    #[test]
    fn throttled_reannounce_records_nothing() {
        let mut h = Harness::new(throttling(100));
        h.shard.record_changes(true, 0);
        h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::Started), ip(1), 0);
        assert_eq!(h.take(), [upsert(v4_upsert(1, 1, 1, 1, false))]);
        // Would be a status move, then a new peer id.
        h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::None), ip(1), 50);
        h.announce_at(&params(1, 7, 1, 50, AnnounceEvent::None), ip(1), 60);
        assert!(h.take().is_empty());
        h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::None), ip(1), 100);
        assert_eq!(h.take(), [upsert(v4_upsert(1, 1, 1, 1, false))]);
    }

    /// A remote peer's first announce here applies (it becomes this node's); its next
    /// one is then measured from it.
    #[test]
    fn a_remote_peers_first_announce_here_applies() {
        let mut h = Harness::new(throttling(100));
        h.apply(upsert(v4_upsert(1, 1, 1, 1, false)), 10);
        assert_eq!(h.shard.num_remote_peers(), 1);
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::None), ip(1), 20),
            counts(1, 0)
        );
        assert_eq!(h.peer(1, 1, 1), Some((true, peer_id(1), 20, false, false)));
        assert_eq!(h.shard.num_remote_peers(), 0);
        h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::None), ip(1), 30);
        assert_eq!(h.peer(1, 1, 1), Some((true, peer_id(1), 20, false, false)));
        assert_eq!(h.shard.num_throttled(), 1);
    }

    /// Off (0), the rapid re-announces a throttle would stop all apply, as before the
    /// interval existed: refreshed, moved, renamed, answered with peers.
    #[test]
    fn off_applies_every_reannounce() {
        let mut h = Harness::new(throttling(0));
        h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::Started), ip(1), 0);
        h.announce_at(&params(1, 2, 1, 50, AnnounceEvent::Started), ip(2), 0);
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::None), ip(1), 0),
            counts(0, 2)
        );
        assert_eq!(h.returned_ips(), [ip(2)].into());
        h.announce_at(&params(1, 1, 1, 50, AnnounceEvent::None), ip(1), 1);
        assert_eq!(h.peer(1, 1, 1), Some((false, peer_id(1), 1, false, false)));
        assert_eq!(
            h.announce_at(&params(1, 1, 1, 0, AnnounceEvent::None), ip(1), 2),
            counts(1, 1)
        );
        assert_eq!(h.returned_ips(), [ip(2)].into());
        h.announce_at(&params(1, 9, 1, 0, AnnounceEvent::None), ip(1), 3);
        assert_eq!(h.peer(1, 1, 1), Some((true, peer_id(9), 3, false, false)));
        assert_eq!(h.shard.num_throttled(), 0);
    }

    // --- the kind that keeps no peer ids (the UDP tracker's) ---

    /// One step of the differential test: an announce, a cleaning or a tick of the model
    /// tests, or another node's change.
    #[derive(Clone, Debug)]
    enum KindOp {
        Local(Op),
        Upsert {
            hash: u8,
            v6: bool,
            ip: u32,
            port: u16,
            peer: u32,
            seeder: bool,
            completed: bool,
            age: u16,
        },
        Removed {
            hash: u8,
            v6: bool,
            ip: u32,
            port: u16,
        },
    }

    fn kind_op_strategy(space: OpSpace) -> impl Strategy<Value = KindOp> {
        let endpoint = (
            0..space.hashes,
            prop::bool::weighted(0.3),
            0..space.ips,
            0..space.ports,
        );
        prop_oneof![
            8 => op_strategy(space).prop_map(KindOp::Local),
            2 => (endpoint.clone(), 0..space.peers, any::<bool>(), prop::bool::weighted(0.2), 0..30u16)
                .prop_map(|((hash, v6, ip, port), peer, seeder, completed, age)| KindOp::Upsert {
                    hash, v6, ip, port, peer, seeder, completed, age,
                }),
            1 => endpoint.prop_map(|(hash, v6, ip, port)| KindOp::Removed { hash, v6, ip, port }),
        ]
    }

    /// A stored peer as the differential test compares it: its endpoint, status, last
    /// seen time with its flags; stores in order.
    type StoredState = Vec<(std::net::IpAddr, u16, rules::Status, LastSeen)>;

    /// Every torrent of `shard` with its peers in store order, by info hash.
    fn shard_state<D: StoredPeerId>(shard: &SwarmShard<D>) -> Vec<(InfoHash, u32, StoredState)> {
        let mut all: Vec<_> = shard
            .torrents
            .iter()
            .map(|t| {
                let mut peers = Vec::new();
                saved::for_each_peer(t, &mut |ip, (port, status), peer| {
                    peers.push((ip, port, status, peer.last_seen));
                });
                (t.info_hash, t.completed, peers)
            })
            .collect();
        all.sort_by_key(|(hash, _, _)| hash.0);
        all
    }

    /// A shard's totals, as the statistics read them.
    fn totals<D: StoredPeerId>(s: &SwarmShard<D>) -> [u64; 8] {
        [
            s.num_torrents() as u64,
            s.num_seeders() as u64,
            s.num_leechers() as u64,
            s.num_completed(),
            s.num_rejected_by_limits(),
            s.num_throttled(),
            s.num_remote_peers() as u64,
            s.num_archived_torrents() as u64,
        ]
    }

    /// What a save hands its sink: each torrent (info hash, completed count, number of
    /// peers) with its peers in order, and the archived counts.
    #[derive(Debug, Default, PartialEq)]
    struct SavedRecords {
        torrents: Vec<(InfoHash, u32, u32, Vec<saved::SavedPeer>)>,
        archived: Vec<u32>,
    }

    impl saved::SaveSink for SavedRecords {
        fn torrent(&mut self, info_hash: &InfoHash, completed: u32, num_peers: u32) {
            self.torrents
                .push((*info_hash, completed, num_peers, Vec::new()));
        }
        fn peer(&mut self, peer: &saved::SavedPeer) {
            if let Some((_, _, _, peers)) = self.torrents.last_mut() {
                peers.push(*peer);
            }
        }
        fn archived(&mut self, _fingerprint: u64, completed: u32) {
            // Fingerprints are keyed per shard (a random router key): not comparable.
            self.archived.push(completed);
        }
    }

    impl SavedRecords {
        /// In an order that does not depend on the torrent table's: by info hash.
        fn sorted(mut self) -> Self {
            self.torrents.sort_by_key(|t| t.0.0);
            self.archived.sort_unstable();
            self
        }
    }

    /// Runs `ops` on a shard that keeps peer ids and one that keeps none, with the same
    /// seeds, recording changes (every re-announce: a window of 0), and checks after each
    /// step that they are alike in all but the ids: the counts an announce returns, the
    /// endpoints it returns (in the same order: the same stores sampled with the same
    /// randomness), the changes recorded (whose peer ids come from the requests), every
    /// stored endpoint with its status, time and flags, every total and scrape, and the
    /// admin API's detail; an upsert that changes the kind without ids changes the other
    /// too. At the end, their snapshots differ only in the peer ids, zeros for the one
    /// without.
    fn run_both_kinds(
        limits: SwarmLimits,
        space: OpSpace,
        seed: u64,
        ops: Vec<KindOp>,
    ) -> Result<(), TestCaseError> {
        let mut kept = Harness::<PeerId>::of_kind(limits);
        let mut bare = Harness::<NoPeerId>::of_kind(limits);
        kept.rng = SmallRng::seed_from_u64(seed);
        bare.rng = SmallRng::seed_from_u64(seed);
        kept.shard.record_changes(true, 0);
        bare.shard.record_changes(true, 0);
        let mut now = 0u32;
        let (mut kept4, mut bare4) = (Vec::new(), Vec::new());
        let (mut kept6, mut bare6) = (Vec::new(), Vec::new());
        for op in ops {
            let at = SecondsSinceServerStart(now);
            match op {
                KindOp::Local(Op::Tick(secs)) => now += secs,
                KindOp::Local(Op::Clean { max_age }) => {
                    prop_assert_eq!(kept.shard.clean(at, max_age), bare.shard.clean(at, max_age));
                }
                KindOp::Local(Op::Announce {
                    hash: h,
                    v6: family_v6,
                    ip: n,
                    port,
                    peer,
                    seeder,
                    event,
                    numwant,
                }) => {
                    let p = AnnounceParams {
                        numwant,
                        ..params(h, peer, port, if seeder { 0 } else { 1 }, event)
                    };
                    if family_v6 {
                        let a = kept
                            .shard
                            .announce_ipv6(&p, v6(n), at, &mut kept.rng, &mut kept6);
                        let b = bare
                            .shard
                            .announce_ipv6(&p, v6(n), at, &mut bare.rng, &mut bare6);
                        prop_assert_eq!(a, b);
                    } else {
                        let a = kept
                            .shard
                            .announce_ipv4(&p, ip(n), at, &mut kept.rng, &mut kept4);
                        let b = bare
                            .shard
                            .announce_ipv4(&p, ip(n), at, &mut bare.rng, &mut bare4);
                        prop_assert_eq!(a, b);
                    }
                    let endpoints4 = |out: &[ResponsePeerWithId<Ipv4Addr>]| {
                        out.iter().map(|r| (r.ip, r.port)).collect::<Vec<_>>()
                    };
                    let endpoints6 = |out: &[ResponsePeerWithId<Ipv6Addr>]| {
                        out.iter().map(|r| (r.ip, r.port)).collect::<Vec<_>>()
                    };
                    prop_assert_eq!(endpoints4(&kept4), endpoints4(&bare4));
                    prop_assert_eq!(endpoints6(&kept6), endpoints6(&bare6));
                    // The answers of the kind without ids carry zeros (UDP's drop them).
                    prop_assert!(bare4.iter().all(|r| r.peer_id == PeerId([0; 20])));
                    prop_assert!(bare6.iter().all(|r| r.peer_id == PeerId([0; 20])));
                }
                KindOp::Upsert {
                    hash: h,
                    v6: family_v6,
                    ip: n,
                    port,
                    peer,
                    seeder,
                    completed,
                    age,
                } => {
                    let address = if family_v6 {
                        v6(n).into()
                    } else {
                        ip(n).into()
                    };
                    let change = upsert(PeerUpsert {
                        ip: address,
                        completed,
                        age_secs: age,
                        ..v4_upsert(h, n, port, peer, seeder)
                    });
                    let a = kept.shard.apply_remote(&change, at);
                    let b = bare.shard.apply_remote(&change, at);
                    // Only a new peer id can change the kind that keeps it alone.
                    prop_assert!(a || !b);
                }
                KindOp::Removed {
                    hash: h,
                    v6: family_v6,
                    ip: n,
                    port,
                } => {
                    let address = if family_v6 {
                        v6(n).into()
                    } else {
                        ip(n).into()
                    };
                    let change = PeerChange::Removed {
                        info_hash: hash(h),
                        ip: address,
                        port,
                    };
                    prop_assert_eq!(
                        kept.shard.apply_remote(&change, at),
                        bare.shard.apply_remote(&change, at)
                    );
                }
            }
            prop_assert_eq!(kept.take(), bare.take());
            prop_assert_eq!(shard_state(&kept.shard), shard_state(&bare.shard));
            prop_assert_eq!(totals(&kept.shard), totals(&bare.shard));
            for h in 0..space.hashes {
                prop_assert_eq!(kept.shard.scrape(&hash(h)), bare.shard.scrape(&hash(h)));
                let detail = |d: Option<inspect::TorrentDetail>, keep: bool| {
                    d.map(|mut d| {
                        for p in &mut d.peers {
                            assert_eq!(p.peer_id.is_some(), keep);
                            p.peer_id = None;
                        }
                        d
                    })
                };
                prop_assert_eq!(
                    detail(kept.shard.torrent_detail(&hash(h), at, 1000), true),
                    detail(bare.shard.torrent_detail(&hash(h), at, 1000), false)
                );
            }
        }
        let at = SecondsSinceServerStart(now);
        let (mut a, mut b) = (SavedRecords::default(), SavedRecords::default());
        kept.shard.save(at, 50, &mut a);
        bare.shard.save(at, 50, &mut b);
        let (mut a, b) = (a.sorted(), b.sorted());
        let zeros = PeerId([0; 20]);
        for (_, _, _, peers) in &b.torrents {
            prop_assert!(peers.iter().all(|p| p.peer_id == zeros));
        }
        for (_, _, _, peers) in &mut a.torrents {
            peers.iter_mut().for_each(|p| p.peer_id = zeros);
        }
        prop_assert_eq!(a, b);
        Ok(())
    }

    proptest! {
        /// The same announces, cleanings and other nodes' changes on both kinds.
        #[test]
        fn without_peer_ids_behaves_the_same(
            limits in few_peers_limits(),
            seed in any::<u64>(),
            ops in prop::collection::vec(kind_op_strategy(FEW_PEERS), 1..200),
        ) {
            run_both_kinds(limits, FEW_PEERS, seed, ops)?;
        }

        /// The same on torrents large enough for both store forms.
        #[test]
        fn without_peer_ids_behaves_the_same_across_store_forms(
            limits in store_forms_limits(),
            seed in any::<u64>(),
            ops in prop::collection::vec(kind_op_strategy(MANY_PEERS), 1..600),
        ) {
            run_both_kinds(limits, MANY_PEERS, seed, ops)?;
        }
    }

    /// Without peer ids, a stored peer's new peer id is no news: within a refresh window
    /// nothing is recorded for it (the kind with ids records it at once). What is
    /// recorded carries the id the request sent, so that the other nodes get it.
    #[test]
    fn without_peer_ids_a_new_id_is_no_news_and_changes_carry_the_request_id() {
        let mut kept = Harness::new(LIMITS);
        let mut bare = Harness::<NoPeerId>::of_kind(LIMITS);
        kept.shard.record_changes(true, 100);
        bare.shard.record_changes(true, 100);
        kept.announce_at(&params(1, 1, 6881, 9, AnnounceEvent::None), ip(1), 10);
        bare.announce_at(&params(1, 1, 6881, 9, AnnounceEvent::None), ip(1), 10);
        assert_eq!(bare.take(), [upsert(v4_upsert(1, 1, 6881, 1, false))]);
        assert_eq!(kept.take(), [upsert(v4_upsert(1, 1, 6881, 1, false))]);
        kept.announce_at(&params(1, 2, 6881, 9, AnnounceEvent::None), ip(1), 20);
        bare.announce_at(&params(1, 2, 6881, 9, AnnounceEvent::None), ip(1), 20);
        assert_eq!(kept.take(), [upsert(v4_upsert(1, 1, 6881, 2, false))]);
        assert!(bare.take().is_empty());
        // The next window's re-announce carries the request's id.
        bare.announce_at(&params(1, 3, 6881, 9, AnnounceEvent::None), ip(1), 100);
        assert_eq!(bare.take(), [upsert(v4_upsert(1, 1, 6881, 3, false))]);
    }

    /// The admin API's detail of a torrent of the kind without peer ids lists its peers
    /// (endpoints, statuses, ages, remote marks) with no peer id; the other kind's lists
    /// each one's last id.
    #[test]
    fn without_peer_ids_torrent_detail_has_none() {
        let mut kept = Harness::new(LIMITS);
        let mut bare = Harness::<NoPeerId>::of_kind(LIMITS);
        kept.announce_at(&params(1, 1, 6881, 0, AnnounceEvent::Started), ip(1), 10);
        bare.announce_at(&params(1, 1, 6881, 0, AnnounceEvent::Started), ip(1), 10);
        kept.apply(upsert(v4_upsert(1, 2, 6882, 2, false)), 20);
        bare.apply(upsert(v4_upsert(1, 2, 6882, 2, false)), 20);
        let now = SecondsSinceServerStart(30);
        let bare_detail = bare.shard.torrent_detail(&hash(1), now, 10).unwrap();
        let kept_detail = kept.shard.torrent_detail(&hash(1), now, 10).unwrap();
        let expected = |id: fn(u32) -> Option<PeerId>| {
            vec![
                inspect::PeerDetail {
                    endpoint: Some((ip(1).into(), 6881)),
                    peer_id: id(1),
                    seeder: true,
                    age_secs: 20,
                    remote: false,
                },
                inspect::PeerDetail {
                    endpoint: Some((ip(2).into(), 6882)),
                    peer_id: id(2),
                    seeder: false,
                    age_secs: 10,
                    remote: true,
                },
            ]
        };
        assert_eq!(bare_detail.peers, expected(|_| None));
        assert_eq!(kept_detail.peers, expected(|n| Some(peer_id(n))));
        assert_eq!(bare_detail.num_peers, 2);
        assert_eq!(bare_detail.counts, kept_detail.counts);
    }

    /// A few fixed runs of the differential test go through what it is about: answers
    /// with peers, both store forms, status moves, completions, refusals, throttling,
    /// expiry and other nodes' changes.
    #[test]
    fn differential_runs_cover_the_rules() {
        use proptest::strategy::ValueTree;

        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let ops = prop::collection::vec(kind_op_strategy(MANY_PEERS), 3_000)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let unlimited = two_torrents_unlimited();
        run_both_kinds(unlimited, MANY_PEERS, 1, ops).unwrap();
        let ops = prop::collection::vec(kind_op_strategy(FEW_PEERS), 2_000)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let tight = SwarmLimits {
            max_peers_per_torrent: 4,
            max_peers_per_ip: 2,
            min_announce_interval_secs: 8,
            ..LIMITS
        };
        run_both_kinds(tight, FEW_PEERS, 2, ops.clone()).unwrap();
        // What those inputs did, seen on one kind.
        let mut h = Harness::<NoPeerId>::of_kind(tight);
        let mut now = 0;
        for op in &ops {
            match *op {
                KindOp::Local(Op::Announce {
                    hash: t,
                    v6: false,
                    ip: n,
                    port,
                    peer,
                    seeder,
                    event,
                    ..
                }) => {
                    h.announce_at(
                        &params(t, peer, port, if seeder { 0 } else { 1 }, event),
                        ip(n),
                        now,
                    );
                }
                KindOp::Local(Op::Clean { max_age }) => {
                    h.shard.clean(SecondsSinceServerStart(now), max_age);
                }
                KindOp::Local(Op::Tick(secs)) => now += secs,
                _ => {}
            }
        }
        assert!(
            h.shard.num_completed() > 5
                && h.shard.num_rejected_by_limits() > 5
                && h.shard.num_throttled() > 5,
            "{} {} {}",
            h.shard.num_completed(),
            h.shard.num_rejected_by_limits(),
            h.shard.num_throttled()
        );
    }
}
