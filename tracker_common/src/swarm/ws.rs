//! The WebTorrent swarm: which browsers are in which torrent, and to whom an announcer's
//! WebRTC offers go.
//!
//! A WebTorrent peer has no address that a tracker could hand out: it is reachable only
//! through its WebSocket connection to the tracker, which relays its offers to other
//! peers' connections and their answers back. So a peer here is a peer id on a connection
//! ([`ConnectionRef`]), an announce is answered with offer targets (the peers to relay
//! one offer each to) instead of addresses, and an answer is routed with
//! [`WsSwarmShard::connection_of`]. Each request worker of the WebSocket tracker owns one
//! [`WsSwarmShard`]; like the rest of [`super`], this module is pure and deterministic
//! (time and randomness come in as arguments) and never panics.
//!
//! # Rules shared with the IP swarm
//! Decided by the same code as for [`super::SwarmShard`] (its module lists them):
//! - `left == 0` makes a peer a seeder, any other value a leecher, and so does a missing
//!   `left` (`None`): a peer is a seeder only if it says it has everything. An announce
//!   that changes the status moves the peer between the torrent's two stores.
//! - `completed` grows by one only when a stored leecher becomes a seeder through
//!   `event=completed`, at most once per stored peer (a flag kept across status moves
//!   and peer id changes); a peer that is removed and comes back is a new peer.
//! - `event=stopped` removes the peer, and the torrent once it has no peers; it never
//!   creates a torrent and gets no offer targets.
//! - Memory is bounded by [`SwarmLimits`] for the whole tracker, through the
//!   [`SwarmBudget`] the shards share: `max_torrents`, `max_peers` and
//!   `max_peers_per_torrent`. An announce that would need a torrent or a peer beyond them
//!   stores nothing, gets no offer targets and is counted
//!   ([`WsSwarmShard::num_rejected_by_limits`]). `max_peers_per_ip` does not apply: a
//!   WebTorrent peer has no IP endpoint in the swarm, and what one client can hold is
//!   bounded by the tracker per connection instead (swarms per connection, connections).
//! - With [`SwarmLimits::min_announce_interval_secs`] set, a plain re-announce (no
//!   event) of a stored peer (its peer id, on its connection) sooner than that after it
//!   was last seen is throttled: it changes nothing, records nothing for the cluster, is
//!   answered with the counts and no offer targets (so none of its offers is relayed)
//!   and is counted ([`WsSwarmShard::num_throttled`]). It is still reported as stored
//!   ([`WsAnnounceOutcome::stored`]): the peer is there, under its old state. Announces
//!   with an event, new peers, and a connection's peer under a new peer id (which takes
//!   over the entry, below) always apply.
//! - [`WsSwarmShard::clean`] removes peers not seen for the configured age (connections
//!   that went silent; one last seen exactly that long ago stays), then empty torrents.
//! - A torrent that empties keeps its completed count in the bounded archive; the count
//!   comes back with the torrent, and a scrape of an archived torrent answers 0 seeders,
//!   0 leechers and that count.
//! - Offer targets are up to `numwant` distinct other peers chosen at random, each with
//!   the same chance, by the IP swarm's sampler: a seeder gets leechers only, a leecher
//!   seeders and leechers, never itself.
//!
//! # Rules of the WebTorrent swarm
//! - Within a torrent a peer is keyed by its peer id and owned by the connection that
//!   stored it. An announce of that peer id from another connection neither moves,
//!   updates nor removes it: it is answered with the torrent's counts, gets no offer
//!   targets and is reported as not stored ([`WsAnnounceOutcome::stored`]), so the tracker
//!   relays none of its offers and nobody can take over a peer id to receive its answers.
//!   It is counted ([`WsSwarmShard::num_peer_id_conflicts`]). The price: a client that
//!   reconnects and announces before its old connection's close has reached this shard
//!   (or before an old connection that never closed cleanly times out or expires) is
//!   refused until then, and stored at its next announce after that.
//! - A connection holds at most one peer per torrent. When the owning connection
//!   announces a different peer id in a torrent where it holds a peer (a client that
//!   restarted the torrent under a new id), the new peer id takes over the entry: the
//!   same stored peer, completion flag included, so no limit is checked and the status
//!   change, if any, is a move (the IP swarm treats a new peer id at the same endpoint
//!   the same way). If the new peer id is another connection's (the rule above), the
//!   connection's own entry is removed instead: the connection no longer goes by its old
//!   peer id there, and an entry that neither its next announce nor its closing could
//!   find would linger until it expired.
//! - Only a stored announcer gets offer targets (offers of an announcer that is not
//!   stored are not relayed, and answers to them would have no peer to go back to), and
//!   never a peer on its own connection.
//! - `event=stopped` removes the connection's own peer in the torrent: the one under the
//!   announced peer id if it is on this connection, else the one under
//!   [`WsAnnounceParams::previous_peer_id`] if that is; never another connection's.
//! - When a connection closes, the tracker calls [`WsSwarmShard::remove_connection_peer`]
//!   for each torrent it announced in; the peer goes only if it is still on that
//!   connection.
//!
//! # Finding a connection's peer
//! The one-peer-per-connection rule needs the connection's current entry in a torrent,
//! and a torrent keyed by peer id cannot find that without a scan of the torrent or an
//! index by connection, which would cost every peer as much again as its entry. The
//! socket worker knows it anyway: it keeps, per connection, the peer id it last sent per
//! torrent (it needs that list to remove the connection's peers when it closes, and it
//! bounds it by the swarms allowed per connection). So the caller passes that peer id as
//! [`WsAnnounceParams::previous_peer_id`], and the shard uses it only if that entry is on
//! the same connection: a wrong value can never touch another connection's peer.
//!
//! Requests of one connection for one torrent reach the shard in the order they were sent
//! (one request worker per torrent, FIFO channels), so with `previous_peer_id` being the
//! peer id of the connection's previous announce of the torrent, whatever became of it,
//! the connection's entry there, if any, is under that peer id, and it holds at most one.
//! If a request is lost on the way (a full channel drops it), the connection may be left
//! with a stale entry under an older peer id. That entry is no longer refreshed, so
//! cleaning removes it; meanwhile nobody can take it over, and it is never an offer
//! target of its own connection's announces.
//!
//! # Memory
//! Per torrent, seeders and leechers are each an [`IndexMap`] from peer id to a 16-byte
//! `WsPeer` (connection and last-seen time): lookup by peer id, access by position for
//! the sampler, O(1) `swap_remove`. An entry is 48 bytes (with indexmap's stored hash)
//! plus the map's index slot. Cleaning shrinks maps left sparse, as in the IP swarm.

use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable, hash_table};
use indexmap::IndexMap;
use indexmap::map::Slice;
use rand::rngs::SmallRng;
use tracker_cluster_protocol::{PeerChange, WsPeerUpsert};

use crate::swarm::routing::ShardRouter;
use crate::time::SecondsSinceServerStart;
use crate::types::{AnnounceEvent, InfoHash, PeerId};

use super::ledger::{Expired, Ledger, SwarmTorrent};
use super::peers::{Location, PeerPool, response_pool, sample_into, shrink_if_sparse};
use super::rules::{LastSeen, Status};
use super::{AnnounceCounts, CleanStats, ScrapeCounts, SwarmBudget, SwarmLimits, saturated_counts};

/// Where a WebTorrent peer is connected: the socket worker, and that worker's id of the
/// connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionRef {
    /// The index of the socket worker that owns the connection.
    pub worker: u16,
    /// The connection's id within its socket worker. It must never be reused for another
    /// connection while the process runs (the socket worker guarantees it, for example by
    /// packing a slot index and that slot's generation into the `u64`): the swarm trusts
    /// it to tell a peer's connection from any other, now and later.
    pub connection: u64,
}

/// The socket worker index that marks a peer of another cluster node: a socket worker
/// index is at most 1023 (the config's limit), so no local connection has it.
pub const REMOTE_WORKER: u16 = u16::MAX;

impl ConnectionRef {
    /// Where a peer of cluster node `node` is, as this node stores it: not on any of its
    /// connections, but reachable through that node (see [`crate::cluster`]).
    pub fn remote(node: u32) -> Self {
        Self {
            worker: REMOTE_WORKER,
            connection: u64::from(node),
        }
    }

    /// The cluster node the peer is on, if it is another node's.
    pub fn remote_node(&self) -> Option<u32> {
        if self.worker == REMOTE_WORKER {
            u32::try_from(self.connection).ok()
        } else {
            None
        }
    }
}

/// One WebTorrent announce, protocol-independent. `numwant` is already resolved (see
/// [`super::NumWantPolicy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsAnnounceParams {
    /// The torrent announced.
    pub info_hash: InfoHash,
    /// The announcing peer's self-chosen id.
    pub peer_id: PeerId,
    /// The peer id this connection sent in its previous announce of this torrent,
    /// whatever became of that announce; `None` if this is its first. The socket worker
    /// keeps it per connection and torrent; it is how the swarm finds the connection's
    /// current peer (see the module documentation).
    pub previous_peer_id: Option<PeerId>,
    /// The connection the announce came on.
    pub connection: ConnectionRef,
    /// Bytes the peer still has to download: 0 makes it a seeder; any other value, or
    /// none, a leecher.
    pub bytes_left: Option<u64>,
    /// The announce's event.
    pub event: AnnounceEvent,
    /// How many offer targets to hand out at most (the offers the announce carries, capped
    /// by the tracker).
    pub numwant: usize,
}

/// What a WebTorrent announce did.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct WsAnnounceOutcome {
    /// Seeders and leechers of the torrent after the announce (zeros if it does not
    /// exist).
    pub counts: AnnounceCounts,
    /// Whether the announcer is stored after the announce, as this connection's peer:
    /// only then may its offers be relayed (it got offer targets only then, and none if
    /// its announce was throttled).
    pub stored: bool,
}

/// What a torrent stores per peer besides its peer id. The connection is kept as its two
/// fields rather than a [`ConnectionRef`] (16 bytes with padding), so that with the
/// `LastSeen` the whole is 16 bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct WsPeer {
    connection: u64,
    worker: u16,
    last_seen: LastSeen,
}

const _: () = assert!(size_of::<WsPeer>() == 16);

impl WsPeer {
    fn new(connection: ConnectionRef, last_seen: LastSeen) -> Self {
        Self {
            connection: connection.connection,
            worker: connection.worker,
            last_seen,
        }
    }

    fn connection(&self) -> ConnectionRef {
        ConnectionRef {
            worker: self.worker,
            connection: self.connection,
        }
    }
}

/// The peers of one status in one torrent, by peer id.
type WsPeers = IndexMap<PeerId, WsPeer, DefaultHashBuilder>;

impl PeerPool<(PeerId, ConnectionRef)> for Slice<PeerId, WsPeer> {
    fn pool_len(&self) -> usize {
        self.len()
    }

    fn response_peer(&self, index: usize) -> Option<(PeerId, ConnectionRef)> {
        self.get_index(index)
            .map(|(peer_id, peer)| (*peer_id, peer.connection()))
    }
}

/// One WebTorrent torrent: its completed count, seeders and leechers.
struct WsTorrent {
    info_hash: InfoHash,
    completed: u32,
    seeders: WsPeers,
    leechers: WsPeers,
}

impl WsTorrent {
    /// A torrent without peers; empty maps allocate nothing.
    fn new(info_hash: InfoHash, completed: u32) -> Self {
        Self {
            info_hash,
            completed,
            seeders: WsPeers::with_hasher(DefaultHashBuilder::default()),
            leechers: WsPeers::with_hasher(DefaultHashBuilder::default()),
        }
    }

    fn store(&self, status: Status) -> &WsPeers {
        match status {
            Status::Seeder => &self.seeders,
            Status::Leecher => &self.leechers,
        }
    }

    fn store_mut(&mut self, status: Status) -> &mut WsPeers {
        match status {
            Status::Seeder => &mut self.seeders,
            Status::Leecher => &mut self.leechers,
        }
    }

    /// Where `peer_id` is stored, and its peer. `status` is where to look first: an
    /// announcer is usually where it was.
    fn find(&self, peer_id: &PeerId, status: Status) -> Option<(Location, WsPeer)> {
        let other = match status {
            Status::Seeder => Status::Leecher,
            Status::Leecher => Status::Seeder,
        };
        [status, other].into_iter().find_map(|status| {
            self.store(status)
                .get_full(peer_id)
                .map(|(index, _, peer)| (Location { status, index }, *peer))
        })
    }

    /// [`Self::find`], if the peer is on `connection`.
    fn find_owned(
        &self,
        peer_id: &PeerId,
        status: Status,
        connection: ConnectionRef,
    ) -> Option<(Location, WsPeer)> {
        self.find(peer_id, status)
            .filter(|(_, peer)| peer.connection() == connection)
    }

    /// Adds a peer whose peer id is stored in neither store; returns where it went.
    fn insert(&mut self, status: Status, peer_id: PeerId, peer: WsPeer) -> Location {
        let (index, _) = self.store_mut(status).insert_full(peer_id, peer);
        Location { status, index }
    }

    /// Removes `peer_id` from the store of `status`. The last peer moves into its place.
    fn take(&mut self, status: Status, peer_id: &PeerId) -> Option<WsPeer> {
        self.store_mut(status).swap_remove(peer_id)
    }

    /// Removes `peer_id` if it is on `connection`; returns the store it was in.
    fn remove_owned(&mut self, peer_id: &PeerId, connection: ConnectionRef) -> Option<Status> {
        let (location, _) = self.find_owned(peer_id, Status::Leecher, connection)?;
        self.take(location.status, peer_id)?;
        Some(location.status)
    }

    /// The stored peer `stored_id` (`peer`, at `stored`) is announced by `params` with
    /// `status` at `now`: refreshed in place if only its time changes, else taken out and
    /// put back under the announced peer id in the store of `status`, keeping its
    /// completion flag and counting a completion by the shared rule. Returns where it is
    /// and whether a completion was counted.
    fn reannounce(
        &mut self,
        (stored, stored_id, peer): (Location, &PeerId, WsPeer),
        params: &WsAnnounceParams,
        status: Status,
        now: SecondsSinceServerStart,
    ) -> (Location, bool) {
        let WsAnnounceParams { peer_id, event, .. } = *params;
        if stored.status == status && *stored_id == peer_id {
            if let Some((_, peer)) = self.store_mut(status).get_index_mut(stored.index) {
                peer.last_seen = peer.last_seen.refreshed(now);
            }
            return (stored, false);
        }
        let (last_seen, counts) = peer
            .last_seen
            .reannounced(now, stored.status, status, event);
        self.take(stored.status, stored_id);
        if counts {
            self.completed = self.completed.saturating_add(1);
        }
        (
            self.insert(status, peer_id, WsPeer { last_seen, ..peer }),
            counts,
        )
    }

    /// Fills `out` (which the caller has cleared) with up to `numwant` offer targets for
    /// the announcer stored at `announcer` with `status` on `connection`, from the pool
    /// [`response_pool`] gives it, leaving out any other peer of its connection.
    fn select_targets(
        &self,
        status: Status,
        announcer: Location,
        connection: ConnectionRef,
        numwant: usize,
        rng: &mut SmallRng,
        out: &mut Vec<(PeerId, ConnectionRef)>,
    ) {
        let (first, second, skip) = response_pool(
            status,
            Some(announcer),
            self.seeders.as_slice(),
            self.leechers.as_slice(),
            Slice::new(),
            Slice::len,
        );
        sample_into(first, second, skip, numwant, rng, out);
        // The announcer is the connection's only peer here unless a lost request left a
        // stale entry behind (see the module documentation): rare, so it is dropped after
        // sampling, at the cost of a shorter list then, rather than searched for first.
        out.retain(|(_, target)| *target != connection);
    }
}

impl SwarmTorrent for WsTorrent {
    fn info_hash(&self) -> &InfoHash {
        &self.info_hash
    }

    fn completed(&self) -> u32 {
        self.completed
    }

    fn counts(&self) -> (usize, usize) {
        (self.seeders.len(), self.leechers.len())
    }

    fn is_empty(&self) -> bool {
        self.seeders.is_empty() && self.leechers.is_empty()
    }

    fn remove_seen_before(&mut self, cutoff: SecondsSinceServerStart) -> (usize, usize) {
        let mut removed = [0usize; 2];
        for (store, removed) in [&mut self.seeders, &mut self.leechers]
            .into_iter()
            .zip(&mut removed)
        {
            let before = store.len();
            store.retain(|_, peer| peer.last_seen.seen_since(cutoff));
            *removed = before.saturating_sub(store.len());
            shrink_if_sparse(store);
        }
        let [seeders, leechers] = removed;
        (seeders, leechers)
    }

    fn remove_expired(&mut self, cutoff: SecondsSinceServerStart) -> Expired {
        let mut expired = Expired::default();
        let mut remote = 0usize;
        for (store, removed) in [
            (&mut self.seeders, &mut expired.seeders),
            (&mut self.leechers, &mut expired.leechers),
        ] {
            let before = store.len();
            store.retain(|_, peer| {
                let keep = peer.last_seen.seen_since(cutoff);
                if !keep && peer.worker == REMOTE_WORKER {
                    remote += 1;
                }
                keep
            });
            *removed = before.saturating_sub(store.len());
            shrink_if_sparse(store);
        }
        expired.remote = remote;
        expired
    }
}

/// Seeders and leechers of a torrent, as the answers carry them.
fn counts_of(torrent: &WsTorrent) -> AnnounceCounts {
    saturated_counts(torrent.counts())
}

/// The peer changes of local announces, for the other nodes of a cluster (see
/// [`WsSwarmShard::record_changes`]).
#[derive(Default)]
struct ChangeLog {
    on: bool,
    refresh_window_secs: u32,
    changes: Vec<PeerChange>,
}

impl ChangeLog {
    /// The peer `peer_id` is stored (new, moved, under a new id, or completed).
    fn upsert(&mut self, info_hash: InfoHash, peer_id: PeerId, status: Status, completed: bool) {
        if self.on {
            self.changes.push(PeerChange::WsUpsert(WsPeerUpsert {
                info_hash,
                peer_id,
                seeder: status == Status::Seeder,
                completed,
                age_secs: 0,
            }));
        }
    }

    /// The peer `peer_id`, last seen at `before`, re-announced at `now` with nothing new:
    /// recorded only as its first announce in a refresh window.
    fn refresh(
        &mut self,
        info_hash: InfoHash,
        peer_id: PeerId,
        status: Status,
        (before, now): (SecondsSinceServerStart, SecondsSinceServerStart),
    ) {
        let window = self.refresh_window_secs;
        if window == 0 || before.0 / window != now.0 / window {
            self.upsert(info_hash, peer_id, status, false);
        }
    }

    /// The peer `peer_id` left.
    fn removed(&mut self, info_hash: InfoHash, peer_id: PeerId) {
        if self.on {
            self.changes
                .push(PeerChange::WsRemoved { info_hash, peer_id });
        }
    }
}

/// The WebTorrent torrents of one shard.
pub struct WsSwarmShard {
    torrents: HashTable<WsTorrent>,
    budget: Arc<SwarmBudget>,
    // Limits, totals, refusals, archive and the table's keyed hasher.
    ledger: Ledger,
    num_peer_id_conflicts: u64,
    changes: ChangeLog,
}

impl WsSwarmShard {
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
            num_peer_id_conflicts: 0,
            changes: ChangeLog::default(),
        }
    }

    /// Applies the announce and fills `out` (cleared first) with up to `params.numwant`
    /// distinct other peers, with their connections, to relay one of the announcer's
    /// offers each to: chosen at random, leechers only for a seeder, seeders and leechers
    /// for a leecher, never the announcer and never a peer on its connection, and none at
    /// all unless the announcer is stored, nor for a throttled re-announce. See the module
    /// documentation for the rules.
    pub fn announce(
        &mut self,
        params: &WsAnnounceParams,
        now: SecondsSinceServerStart,
        rng: &mut SmallRng,
        out: &mut Vec<(PeerId, ConnectionRef)>,
    ) -> WsAnnounceOutcome {
        out.clear();
        let info_hash = params.info_hash;
        let connection = params.connection;
        let hash = self.ledger.hash(&info_hash);
        let status = Status::from_optional_bytes_left(params.bytes_left);
        if params.event == AnnounceEvent::Stopped {
            let mut removed = None;
            let counts = self
                .ledger
                .remove_peer(
                    &mut self.torrents,
                    &self.budget,
                    hash,
                    &info_hash,
                    |torrent| {
                        let own = torrent
                            .find_owned(&params.peer_id, status, connection)
                            .map(|_| params.peer_id)
                            .or(params.previous_peer_id)?;
                        let status = torrent.remove_owned(&own, connection)?;
                        removed = Some(own);
                        Some(status)
                    },
                    counts_of,
                )
                .unwrap_or_default();
            if let Some(peer_id) = removed {
                self.changes.removed(info_hash, peer_id);
            }
            return WsAnnounceOutcome {
                counts,
                stored: false,
            };
        }

        let Self {
            torrents,
            budget,
            ledger,
            num_peer_id_conflicts,
            changes,
        } = self;
        let torrent = match torrents.entry(
            hash,
            |t| t.info_hash == info_hash,
            |t| ledger.hash(&t.info_hash),
        ) {
            hash_table::Entry::Occupied(entry) => entry.into_mut(),
            hash_table::Entry::Vacant(entry) => {
                // No per-address cap here: the first peer only needs room.
                let Some(completed) = ledger.admit_torrent(budget, &info_hash, true) else {
                    return WsAnnounceOutcome::default();
                };
                let mut torrent = WsTorrent::new(info_hash, completed);
                let peer = WsPeer::new(connection, LastSeen::new(now, false));
                torrent.insert(status, params.peer_id, peer);
                ledger.peer_added(status);
                changes.upsert(info_hash, params.peer_id, status, false);
                // The announcer is the only peer: nobody to send offers to.
                return WsAnnounceOutcome {
                    counts: counts_of(entry.insert(torrent).get()),
                    stored: true,
                };
            }
        };

        let location = match torrent.find(&params.peer_id, status) {
            // Another connection's peer id: left alone, and this connection's own entry
            // under its previous peer id goes (see the module rules).
            Some((_, peer)) if peer.connection() != connection => {
                *num_peer_id_conflicts = num_peer_id_conflicts.saturating_add(1);
                if let Some(previous) = &params.previous_peer_id
                    && let Some(removed) = torrent.remove_owned(previous, connection)
                {
                    // The other connection's peer is still here: the torrent stays.
                    ledger.peer_removed(budget, removed);
                    changes.removed(info_hash, *previous);
                }
                return WsAnnounceOutcome {
                    counts: counts_of(torrent),
                    stored: false,
                };
            }
            // This connection's peer re-announcing too soon: nothing changes, no targets.
            Some((_, peer)) if ledger.throttles(peer.last_seen, params.event, now) => {
                return WsAnnounceOutcome {
                    counts: counts_of(torrent),
                    stored: true,
                };
            }
            // This connection's peer re-announcing.
            Some((stored, peer)) => {
                let (location, completed) =
                    torrent.reannounce((stored, &params.peer_id, peer), params, status, now);
                ledger.peer_moved(stored.status, status);
                if completed {
                    ledger.download_completed();
                }
                if stored.status == status && !completed {
                    let times = (peer.last_seen.time(), now);
                    changes.refresh(info_hash, params.peer_id, status, times);
                } else {
                    changes.upsert(info_hash, params.peer_id, status, completed);
                }
                location
            }
            None => {
                let own = params.previous_peer_id.and_then(|previous| {
                    Some((previous, torrent.find_owned(&previous, status, connection)?))
                });
                match own {
                    // This connection's peer under a new peer id: it takes over the entry.
                    Some((previous, (stored, peer))) => {
                        let (location, completed) =
                            torrent.reannounce((stored, &previous, peer), params, status, now);
                        ledger.peer_moved(stored.status, status);
                        if completed {
                            ledger.download_completed();
                        }
                        changes.removed(info_hash, previous);
                        changes.upsert(info_hash, params.peer_id, status, completed);
                        location
                    }
                    // A new peer: the only case that checks the limits.
                    None => {
                        if !ledger.admit_peer(budget, torrent.num_peers(), || true) {
                            return WsAnnounceOutcome {
                                counts: counts_of(torrent),
                                stored: false,
                            };
                        }
                        let peer = WsPeer::new(connection, LastSeen::new(now, false));
                        let location = torrent.insert(status, params.peer_id, peer);
                        ledger.peer_added(status);
                        changes.upsert(info_hash, params.peer_id, status, false);
                        location
                    }
                }
            }
        };
        torrent.select_targets(status, location, connection, params.numwant, rng, out);
        WsAnnounceOutcome {
            counts: counts_of(torrent),
            stored: true,
        }
    }

    /// The connection of `peer_id` in the torrent, to relay an answer to; `None` if it is
    /// not stored.
    pub fn connection_of(&self, info_hash: &InfoHash, peer_id: &PeerId) -> Option<ConnectionRef> {
        let hash = self.ledger.hash(info_hash);
        let torrent = self.torrents.find(hash, |t| t.info_hash == *info_hash)?;
        torrent
            .find(peer_id, Status::Leecher)
            .map(|(_, peer)| peer.connection())
    }

    /// `connection` closed: removes its peer `peer_id` from the torrent (the peer id it
    /// last announced there), and the torrent if that leaves it empty. A peer id that is
    /// not on that connection any more (it expired and another connection took it) stays.
    pub fn remove_connection_peer(
        &mut self,
        info_hash: &InfoHash,
        peer_id: &PeerId,
        connection: ConnectionRef,
    ) {
        let hash = self.ledger.hash(info_hash);
        let mut removed = false;
        self.ledger.remove_peer(
            &mut self.torrents,
            &self.budget,
            hash,
            info_hash,
            |torrent| {
                let status = torrent.remove_owned(peer_id, connection)?;
                removed = true;
                Some(status)
            },
            |_| (),
        );
        if removed {
            self.changes.removed(*info_hash, *peer_id);
        }
    }

    /// Seeders, completed downloads and leechers of the torrent; for a torrent not stored,
    /// its archived completed count (zeros if none).
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeCounts {
        self.ledger.scrape(&self.torrents, info_hash)
    }

    /// The `limit` torrents with the most peers, with their scrape counts, most peers
    /// first; ties in any order. A walk over every torrent, so callers run it rarely.
    pub fn busiest_torrents(&self, limit: usize) -> Vec<(InfoHash, ScrapeCounts)> {
        self.ledger.busiest_torrents(&self.torrents, limit)
    }

    /// Removes peers whose last announce is older than `max_peer_age_secs` before `now`
    /// (a peer last seen exactly that long ago stays), then torrents with no peers
    /// (archiving their completed counts). Maps and the table left much larger than their
    /// contents are shrunk.
    pub fn clean(&mut self, now: SecondsSinceServerStart, max_peer_age_secs: u32) -> CleanStats {
        self.ledger
            .clean(&mut self.torrents, &self.budget, now, max_peer_age_secs)
    }

    /// Torrents stored.
    pub fn num_torrents(&self) -> usize {
        self.torrents.len()
    }

    /// Seeders stored.
    pub fn num_seeders(&self) -> usize {
        self.ledger.num_seeders()
    }

    /// Leechers stored.
    pub fn num_leechers(&self) -> usize {
        self.ledger.num_leechers()
    }

    /// Announces that were not stored because a limit was reached (a counter the tracker
    /// reports).
    pub fn num_rejected_by_limits(&self) -> u64 {
        self.ledger.num_rejected_by_limits()
    }

    /// Downloads counted as completed (see the module rules) since the shard was made.
    pub fn num_completed(&self) -> u64 {
        self.ledger.num_completed()
    }

    /// Announces answered with the counts alone, no offer targets, and not applied,
    /// because they came sooner than [`SwarmLimits::min_announce_interval_secs`] after
    /// the peer's last one.
    pub fn num_throttled(&self) -> u64 {
        self.ledger.num_throttled()
    }

    /// Announces refused because their peer id is another connection's peer in that
    /// torrent (a counter the tracker reports).
    pub fn num_peer_id_conflicts(&self) -> u64 {
        self.num_peer_id_conflicts
    }

    /// Completed counts of emptied torrents held in this shard's archive.
    pub fn num_archived_torrents(&self) -> usize {
        self.ledger.num_archived_torrents()
    }

    /// Bytes this shard's archive takes (allocated once, whatever it holds).
    pub fn archive_memory_bytes(&self) -> usize {
        self.ledger.archive_memory_bytes()
    }

    /// Starts (or stops) recording the peer changes of local announces for the other
    /// nodes of a cluster ([`Self::take_changes`]): a peer stored, moved, completed or
    /// under a new peer id at once, a plain re-announce as the peer's first in a window
    /// of `refresh_window_secs` (0: every one), a peer that left (stopped, its connection
    /// closed, or its connection's entry went in a peer id conflict). Expiry is not
    /// recorded: every node expires peers by itself.
    pub fn record_changes(&mut self, on: bool, refresh_window_secs: u32) {
        self.changes.on = on;
        self.changes.refresh_window_secs = refresh_window_secs;
        if !on {
            self.changes.changes.clear();
        }
    }

    /// Moves the changes recorded since the last call to `out`.
    pub fn take_changes(&mut self, out: &mut Vec<PeerChange>) {
        out.append(&mut self.changes.changes);
    }

    /// Peers stored from other nodes' changes.
    pub fn num_remote_peers(&self) -> usize {
        self.ledger.num_remote()
    }

    /// Applies cluster node `node`'s change at `now`, recording nothing; returns whether
    /// anything changed. Changes of IP peers are not this swarm's and do nothing.
    ///
    /// A peer of another node is stored on [`ConnectionRef::remote`]`(node)`, so it is
    /// an offer target like any other peer (offers and answers for it go to its node),
    /// and it is "another connection's" peer for the rules of this module: a local
    /// announce of its peer id is a conflict, and it never takes a local peer's place.
    /// - An upsert of a peer id stored on a local connection leaves that peer alone (this
    ///   node's own peer wins here). One stored as another node's is refreshed: its node
    ///   becomes `node` (the peer moved between nodes), its status and time as announced
    ///   there (the later of its own and `now - age_secs`). A new peer goes through the
    ///   limits (budget and peers per torrent, a refusal counted like any) and is stored
    ///   seen at `now - age_secs`; a new torrent gets back its archived count.
    /// - An upsert's `completed` adds one to the torrent's completed count (and the
    ///   shard's downloads) whether or not the peer was stored: the completion was
    ///   counted once, on the node that handled it, and so it is here. Unless the peer
    ///   is stored here with its completion counted already (a client that announced
    ///   to two nodes, each counting it): then it is the same completion, and the
    ///   stored peer's flag is set, so that its own announce of it here counts
    ///   nothing either.
    /// - A removal removes the peer only if it is stored as `node`'s (a peer that has
    ///   moved to another node since stays), and the torrent if that leaves it empty.
    pub fn apply_remote_from(
        &mut self,
        change: &PeerChange,
        node: u32,
        now: SecondsSinceServerStart,
    ) -> bool {
        match change {
            PeerChange::WsUpsert(upsert) => self.apply_upsert(upsert, node, now),
            PeerChange::WsRemoved { info_hash, peer_id } => {
                let hash = self.ledger.hash(info_hash);
                let mut removed = false;
                self.ledger.remove_peer(
                    &mut self.torrents,
                    &self.budget,
                    hash,
                    info_hash,
                    |torrent| {
                        let status = torrent.remove_owned(peer_id, ConnectionRef::remote(node))?;
                        removed = true;
                        Some(status)
                    },
                    |_| (),
                );
                if removed {
                    self.ledger.remote_gone(1);
                }
                removed
            }
            PeerChange::Upsert(_) | PeerChange::Removed { .. } => false,
        }
    }

    /// Cluster node `node` is gone (its process stopped or restarted): the peers on its
    /// connections, which nobody can reach any more, are removed (as its removals would
    /// remove them), and torrents left empty with them. Returns how many. A walk over
    /// every torrent: it happens when a node goes.
    pub fn forget_node(&mut self, node: u32) -> usize {
        let owner = ConnectionRef::remote(node);
        let mut theirs = Vec::new();
        for torrent in &self.torrents {
            for store in [&torrent.seeders, &torrent.leechers] {
                for (peer_id, peer) in store {
                    if peer.connection() == owner {
                        theirs.push((torrent.info_hash, *peer_id));
                    }
                }
            }
        }
        let now = SecondsSinceServerStart(0);
        theirs
            .into_iter()
            .filter(|(info_hash, peer_id)| {
                let removal = PeerChange::WsRemoved {
                    info_hash: *info_hash,
                    peer_id: *peer_id,
                };
                self.apply_remote_from(&removal, node, now)
            })
            .count()
    }

    /// [`Self::apply_remote_from`] of an upsert.
    fn apply_upsert(
        &mut self,
        upsert: &WsPeerUpsert,
        node: u32,
        now: SecondsSinceServerStart,
    ) -> bool {
        let info_hash = upsert.info_hash;
        let hash = self.ledger.hash(&info_hash);
        let status = if upsert.seeder {
            Status::Seeder
        } else {
            Status::Leecher
        };
        let seen = now.sub_secs(u32::from(upsert.age_secs));
        let owner = ConnectionRef::remote(node);
        let new_peer = WsPeer::new(owner, LastSeen::new(seen, upsert.completed));
        let Self {
            torrents,
            budget,
            ledger,
            ..
        } = self;
        let torrent = match torrents.entry(
            hash,
            |t| t.info_hash == info_hash,
            |t| ledger.hash(&t.info_hash),
        ) {
            hash_table::Entry::Occupied(entry) => entry.into_mut(),
            hash_table::Entry::Vacant(entry) => {
                let Some(archived) = ledger.admit_torrent(budget, &info_hash, true) else {
                    return false;
                };
                let mut torrent = WsTorrent::new(info_hash, archived);
                torrent.insert(status, upsert.peer_id, new_peer);
                ledger.peer_added(status);
                ledger.remote_added();
                if upsert.completed {
                    torrent.completed = torrent.completed.saturating_add(1);
                    ledger.download_completed();
                }
                entry.insert(torrent);
                return true;
            }
        };
        // Whether the peer's completion was counted here before (by an announce here,
        // or another node's change): then this one is the same completion, come by
        // another way (a client announcing to two nodes), and does not count again.
        let (mut changed, counted_before) = match torrent.find(&upsert.peer_id, status) {
            // This node's own peer: it stays as it is, but for its completion flag.
            Some((found, peer)) if peer.worker != REMOTE_WORKER => {
                let counted = peer.last_seen.completion_counted();
                if upsert.completed
                    && !counted
                    && let Some((_, stored)) =
                        torrent.store_mut(found.status).get_index_mut(found.index)
                {
                    stored.last_seen = stored.last_seen.seen_remotely(peer.last_seen.time(), true);
                }
                (false, counted)
            }
            Some((found, peer)) => {
                let updated = WsPeer {
                    last_seen: peer.last_seen.seen_remotely(seen, upsert.completed),
                    ..new_peer
                };
                let changed = if found.status == status {
                    match torrent.store_mut(status).get_index_mut(found.index) {
                        Some((_, stored)) => {
                            let changed = *stored != updated;
                            *stored = updated;
                            changed
                        }
                        None => false,
                    }
                } else {
                    torrent.take(found.status, &upsert.peer_id);
                    torrent.insert(status, upsert.peer_id, updated);
                    ledger.peer_moved(found.status, status);
                    true
                };
                (changed, peer.last_seen.completion_counted())
            }
            None => {
                let admitted = ledger.admit_peer(budget, torrent.num_peers(), || true);
                if admitted {
                    torrent.insert(status, upsert.peer_id, new_peer);
                    ledger.peer_added(status);
                    ledger.remote_added();
                }
                (admitted, false)
            }
        };
        // Counted even if the peer was refused here: the torrent's count is the same on
        // every node that stores the torrent.
        if upsert.completed && !counted_before {
            torrent.completed = torrent.completed.saturating_add(1);
            ledger.download_completed();
            changed = true;
        }
        changed
    }

    /// The torrent `info_hash` with at most `max_peers` of its peers (without an
    /// address: a WebTorrent peer is a connection); `None` when the shard knows nothing
    /// of it (not stored, and no archived completed count).
    pub fn torrent_detail(
        &self,
        info_hash: &InfoHash,
        now: SecondsSinceServerStart,
        max_peers: usize,
    ) -> Option<super::inspect::TorrentDetail> {
        use super::inspect::{PeerDetail, TorrentDetail};
        let counts = self.scrape(info_hash);
        let hash = self.ledger.hash(info_hash);
        let Some(torrent) = self.torrents.find(hash, |t| t.info_hash == *info_hash) else {
            return TorrentDetail::not_stored(info_hash, counts);
        };
        let mut peers = Vec::new();
        let mut num_peers = 0;
        for (store, seeder) in [(&torrent.seeders, true), (&torrent.leechers, false)] {
            num_peers += store.len();
            for (peer_id, peer) in store {
                if peers.len() >= max_peers {
                    break;
                }
                peers.push(PeerDetail {
                    endpoint: None,
                    peer_id: Some(*peer_id),
                    seeder,
                    age_secs: now.0.saturating_sub(peer.last_seen.time().0),
                    remote: peer.worker == REMOTE_WORKER,
                });
            }
        }
        Some(TorrentDetail {
            info_hash: *info_hash,
            counts,
            num_peers,
            peers,
        })
    }

    /// This node's own peers (not other nodes'), as the upserts another node applies to
    /// catch up (a resync), into `out`; their completions are not marked, since every
    /// node counted them already. Peers not seen for `max_peer_age_secs` are left out.
    pub fn save_local_changes(
        &self,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
        out: &mut Vec<PeerChange>,
    ) {
        let cutoff = super::rules::expiry_cutoff(now, max_peer_age_secs);
        for torrent in &self.torrents {
            for (store, seeder) in [(&torrent.seeders, true), (&torrent.leechers, false)] {
                for (peer_id, peer) in store {
                    if peer.worker == REMOTE_WORKER || !peer.last_seen.seen_since(cutoff) {
                        continue;
                    }
                    let age = now.0.saturating_sub(peer.last_seen.time().0);
                    out.push(PeerChange::WsUpsert(WsPeerUpsert {
                        info_hash: torrent.info_hash,
                        peer_id: *peer_id,
                        seeder,
                        completed: false,
                        age_secs: u16::try_from(age).unwrap_or(u16::MAX),
                    }));
                }
            }
        }
    }

    /// The completed counts of the torrents stored, for a resync: each as a torrent
    /// without peers (the peers go as changes, [`Self::save_local_changes`]). The time
    /// arguments are [`Self::save`]'s, unused.
    pub fn save_local(
        &self,
        _now: SecondsSinceServerStart,
        _max_peer_age_secs: u32,
        sink: &mut dyn super::saved::SaveSink,
    ) {
        for torrent in &self.torrents {
            if torrent.completed > 0 {
                sink.torrent(&torrent.info_hash, torrent.completed, 0);
            }
        }
    }

    /// Merges a torrent of another node's resync: its completed count, the larger of the
    /// two, into the stored torrent or else the archive (the peers come as changes).
    /// Returns the peers stored: none.
    pub fn merge_torrent(
        &mut self,
        saved: &super::saved::SavedTorrent,
        _now: SecondsSinceServerStart,
        _max_peer_age_secs: u32,
    ) -> usize {
        let hash = self.ledger.hash(&saved.info_hash);
        match self
            .torrents
            .find_mut(hash, |t| t.info_hash == saved.info_hash)
        {
            Some(torrent) => torrent.completed = torrent.completed.max(saved.completed),
            None => self
                .ledger
                .archive_at_least(&saved.info_hash, saved.completed),
        }
        0
    }

    /// Hands the shard's completed counts to `sink`, each as an archived count: its
    /// peers live on connections, which a restart closes, so a torrent comes back as one
    /// whose peers all left would be, and nothing else is saved. The time arguments are
    /// those of [`SwarmShard::save`](super::SwarmShard::save); no peer is saved here, so
    /// they go unused.
    pub fn save(
        &self,
        _now: SecondsSinceServerStart,
        _max_peer_age_secs: u32,
        sink: &mut dyn super::saved::SaveSink,
    ) {
        for torrent in &self.torrents {
            if torrent.completed > 0 {
                sink.archived(
                    self.ledger.fingerprint(&torrent.info_hash),
                    torrent.completed,
                );
            }
        }
        for (fingerprint, completed) in self.ledger.archived_counts() {
            sink.archived(fingerprint, completed);
        }
    }

    /// Restores what this kind of swarm can of a saved torrent: its completed count, into
    /// the archive (its peers were on connections that are gone). Returns the peers
    /// stored: none. The time arguments are those of
    /// [`SwarmShard::restore_torrent`](super::SwarmShard::restore_torrent), unused here.
    pub fn restore_torrent(
        &mut self,
        saved: &super::saved::SavedTorrent,
        _now: SecondsSinceServerStart,
        _max_peer_age_secs: u32,
    ) -> usize {
        let fingerprint = self.ledger.fingerprint(&saved.info_hash);
        self.ledger.restore_archived(fingerprint, saved.completed);
        0
    }

    /// Archives a saved completed count by the archive's rules (a full set keeps the
    /// larger counts).
    pub fn restore_archived(&mut self, fingerprint: u64, completed: u32) {
        self.ledger.restore_archived(fingerprint, completed);
    }
}

impl Drop for WsSwarmShard {
    /// Gives the shard's torrents and peers back to the shared budget.
    fn drop(&mut self) {
        self.ledger.release_all(&self.budget, self.torrents.len());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    use proptest::prelude::*;
    use rand::SeedableRng;

    use super::*;

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

    fn peer_number(id: &PeerId) -> u32 {
        u32::from_be_bytes(id.0[..4].try_into().unwrap())
    }

    /// Connection `n` of socket worker `n % 3`.
    fn conn(n: u64) -> ConnectionRef {
        ConnectionRef {
            worker: (n % 3) as u16,
            connection: n,
        }
    }

    fn shard(limits: SwarmLimits) -> WsSwarmShard {
        WsSwarmShard::new(limits, Arc::new(SwarmBudget::new(&limits)), 1)
    }

    /// A shard, a fixed seed and a reusable target buffer; announces carry the peer id
    /// each connection last sent per torrent as `previous_peer_id`, as the socket worker
    /// does.
    struct Harness {
        shard: WsSwarmShard,
        rng: SmallRng,
        out: Vec<(PeerId, ConnectionRef)>,
        sent: BTreeMap<(u64, u8), u32>,
        now: u32,
    }

    impl Harness {
        fn new(limits: SwarmLimits) -> Self {
            Self {
                shard: shard(limits),
                rng: SmallRng::seed_from_u64(7),
                out: Vec::new(),
                sent: BTreeMap::new(),
                now: 0,
            }
        }

        fn announce_with(
            &mut self,
            h: u8,
            c: u64,
            id: u32,
            left: Option<u64>,
            event: AnnounceEvent,
            numwant: usize,
        ) -> WsAnnounceOutcome {
            let previous = self.sent.insert((c, h), id).map(peer_id);
            let params = WsAnnounceParams {
                info_hash: hash(h),
                peer_id: peer_id(id),
                previous_peer_id: previous,
                connection: conn(c),
                bytes_left: left,
                event,
                numwant,
            };
            let now = SecondsSinceServerStart(self.now);
            self.shard
                .announce(&params, now, &mut self.rng, &mut self.out)
        }

        fn announce(
            &mut self,
            h: u8,
            c: u64,
            id: u32,
            left: Option<u64>,
            event: AnnounceEvent,
        ) -> WsAnnounceOutcome {
            self.announce_with(h, c, id, left, event, 50)
        }

        /// Closes connection `c` as the socket worker would.
        fn close(&mut self, c: u64) {
            let torrents: Vec<(u8, u32)> = self
                .sent
                .iter()
                .filter(|((sc, _), _)| *sc == c)
                .map(|((_, h), id)| (*h, *id))
                .collect();
            for (h, id) in torrents {
                self.shard
                    .remove_connection_peer(&hash(h), &peer_id(id), conn(c));
                self.sent.remove(&(c, h));
            }
        }

        fn targets(&self) -> BTreeSet<u32> {
            self.out.iter().map(|(id, _)| peer_number(id)).collect()
        }

        fn scrape(&self, h: u8) -> ScrapeCounts {
            self.shard.scrape(&hash(h))
        }
    }

    fn stored(seeders: u32, leechers: u32) -> WsAnnounceOutcome {
        WsAnnounceOutcome {
            counts: AnnounceCounts { seeders, leechers },
            stored: true,
        }
    }

    fn not_stored(seeders: u32, leechers: u32) -> WsAnnounceOutcome {
        WsAnnounceOutcome {
            counts: AnnounceCounts { seeders, leechers },
            stored: false,
        }
    }

    fn scrape(seeders: u32, completed: u32, leechers: u32) -> ScrapeCounts {
        ScrapeCounts {
            seeders,
            completed,
            leechers,
        }
    }

    use AnnounceEvent::{Completed, None as NoEvent, Started, Stopped};

    #[test]
    fn layout() {
        // Per peer: an indexmap entry of hash (8), peer id (20) and WsPeer (16) is 48
        // bytes, plus the map's index slot (8 bytes and a control byte). Per torrent: the
        // info hash and completed count, and two maps of 64 bytes each (entries vector,
        // index table, hasher seed) that allocate nothing while empty.
        assert_eq!(size_of::<WsPeer>(), 16);
        assert_eq!(size_of::<(u64, PeerId, WsPeer)>(), 48);
        assert_eq!(size_of::<WsPeers>(), 64);
        assert_eq!(size_of::<WsTorrent>(), 152);
    }

    #[test]
    fn status_from_left_and_unknown_left_is_a_leecher() {
        let mut h = Harness::new(LIMITS);
        assert_eq!(h.announce(1, 1, 1, Some(0), Started), stored(1, 0));
        assert_eq!(h.announce(1, 2, 2, None, Started), stored(1, 1));
        assert_eq!(h.announce(1, 3, 3, Some(9), Started), stored(1, 2));
        // Changing status moves the peer; unknown left again makes it a leecher.
        assert_eq!(h.announce(1, 2, 2, Some(0), NoEvent), stored(2, 1));
        assert_eq!(h.announce(1, 1, 1, None, NoEvent), stored(1, 2));
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (1, 2));
        // Completed with left unknown is no completion: it stays a leecher.
        assert_eq!(h.announce(1, 3, 3, None, Completed), stored(1, 2));
        assert_eq!(h.scrape(1).completed, 0);
    }

    #[test]
    fn another_connection_cannot_move_update_or_remove_a_peer_id() {
        let mut h = Harness::new(LIMITS);
        h.announce(1, 1, 7, Some(5), Started);
        h.announce(1, 3, 8, Some(5), Started);
        // Connection 2 sends peer id 7 as a completing seeder: nothing changes, no targets.
        assert_eq!(h.announce(1, 2, 7, Some(0), Completed), not_stored(0, 2));
        assert!(h.out.is_empty());
        assert_eq!(h.scrape(1), scrape(0, 0, 2));
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(7)), Some(conn(1)));
        // Nor with stopped, nor by closing.
        assert_eq!(h.announce(1, 2, 7, Some(0), Stopped), not_stored(0, 2));
        h.shard
            .remove_connection_peer(&hash(1), &peer_id(7), conn(2));
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(7)), Some(conn(1)));
        assert_eq!(h.shard.num_peer_id_conflicts(), 1);
        assert_eq!(h.shard.num_rejected_by_limits(), 0);
        // Its own peer's time was not refreshed either: it expires on schedule.
        h.now = 100;
        assert_eq!(h.announce(1, 2, 7, None, NoEvent), not_stored(0, 2));
        h.announce(1, 3, 8, Some(5), NoEvent);
        assert_eq!(
            h.shard
                .clean(SecondsSinceServerStart(150), 50)
                .removed_peers,
            1
        );
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(7)), None);
        // Once the owner is gone, the peer id is free for anyone.
        assert_eq!(h.announce(1, 2, 7, Some(5), NoEvent), stored(0, 2));
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(7)), Some(conn(2)));
    }

    #[test]
    fn announcing_another_connections_peer_id_drops_the_own_entry() {
        let mut h = Harness::new(LIMITS);
        h.announce(1, 1, 7, Some(5), Started);
        h.announce(1, 2, 8, Some(5), Started);
        // Connection 2 now calls itself 7 in torrent 1: its entry 8 goes.
        assert_eq!(h.announce(1, 2, 7, Some(5), NoEvent), not_stored(0, 1));
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(8)), None);
        assert_eq!(h.shard.budget.num_peers(), 1);
        // Its next announce, under a new id, is a new peer: one entry, not two.
        assert_eq!(h.announce(1, 2, 9, Some(5), NoEvent), stored(0, 2));
        assert_eq!(h.targets(), [7].into());
    }

    #[test]
    fn a_new_peer_id_on_the_same_connection_takes_over_its_entry() {
        let mut h = Harness::new(SwarmLimits {
            max_peers_per_torrent: 2,
            ..LIMITS
        });
        h.announce(1, 1, 1, Some(5), Started);
        h.announce(1, 2, 2, Some(5), Started);
        assert_eq!(h.announce(1, 1, 1, Some(0), Completed), stored(1, 1));
        assert_eq!(h.scrape(1).completed, 1);
        // Connection 1 restarts as peer 3, leeching: the same entry (the torrent is full,
        // yet nothing is refused), moved back to the leechers.
        assert_eq!(h.announce(1, 1, 3, Some(5), Started), stored(0, 2));
        assert_eq!(h.targets(), [2].into());
        assert_eq!(h.shard.num_rejected_by_limits(), 0);
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(1)), None);
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(3)), Some(conn(1)));
        // Its completion flag came along: completing again does not count.
        assert_eq!(h.announce(1, 1, 3, Some(0), Completed), stored(1, 1));
        assert_eq!(h.scrape(1).completed, 1);
        // Others are offered the new id.
        h.announce(1, 2, 2, Some(5), NoEvent);
        assert_eq!(h.targets(), [3].into());
        assert_eq!(h.shard.budget.num_peers(), 2);
    }

    #[test]
    fn completed_counts_once_per_stored_peer() {
        let mut h = Harness::new(LIMITS);
        // A new peer announcing completed is not a stored leecher: no count.
        h.announce(1, 1, 1, Some(0), Completed);
        assert_eq!(h.scrape(1).completed, 0);
        h.announce(1, 2, 2, Some(9), Started);
        // Leecher -> seeder without the event: no count.
        h.announce(1, 2, 2, Some(0), NoEvent);
        assert_eq!(h.scrape(1).completed, 0);
        h.announce(1, 3, 3, Some(9), Started);
        // Completed with bytes left: no count.
        h.announce(1, 3, 3, Some(9), Completed);
        assert_eq!(h.scrape(1).completed, 0);
        // L -> S through completed counts once, however it cycles and repeats.
        h.announce(1, 3, 3, Some(0), Completed);
        h.announce(1, 3, 3, Some(0), Completed);
        h.announce(1, 3, 3, None, NoEvent);
        h.announce(1, 3, 3, Some(0), Completed);
        assert_eq!(h.scrape(1).completed, 1);
        // Removed and back: a new peer, which may count again.
        h.announce(1, 3, 3, Some(0), Stopped);
        h.announce(1, 3, 3, Some(9), Started);
        h.announce(1, 3, 3, Some(0), Completed);
        assert_eq!(h.scrape(1).completed, 2);
        // The shard's running total counts the same downloads.
        assert_eq!(h.shard.num_completed(), 2);
    }

    #[test]
    fn stopped_removes_own_peer_then_torrent_and_the_archive_keeps_completed() {
        let mut h = Harness::new(LIMITS);
        h.announce(1, 1, 1, Some(9), Started);
        h.announce(1, 1, 1, Some(0), Completed);
        h.announce(1, 2, 2, Some(9), Started);
        assert_eq!(h.announce(1, 2, 2, Some(9), Stopped), not_stored(1, 0));
        assert!(h.out.is_empty());
        // Stopped under a new peer id removes the connection's entry (found by the
        // previous one) ...
        assert_eq!(h.announce(1, 1, 5, Some(0), Stopped), not_stored(0, 0));
        assert_eq!(h.shard.num_torrents(), 0);
        assert_eq!(
            (h.shard.budget.num_torrents(), h.shard.budget.num_peers()),
            (0, 0)
        );
        // ... and the torrent's count is archived, for scrapes and for its return.
        assert_eq!(h.scrape(1), scrape(0, 1, 0));
        assert_eq!(h.shard.num_archived_torrents(), 1);
        assert_eq!(h.announce(1, 3, 3, Some(9), Started), stored(0, 1));
        assert_eq!(h.shard.num_archived_torrents(), 0);
        h.announce(1, 3, 3, Some(0), Completed);
        assert_eq!(h.scrape(1), scrape(1, 2, 0));
        // Stopped for an unknown torrent creates nothing.
        assert_eq!(h.announce(2, 1, 1, Some(0), Stopped), not_stored(0, 0));
        assert_eq!(h.shard.num_torrents(), 1);
        assert_eq!(h.shard.num_rejected_by_limits(), 0);
    }

    #[test]
    fn closing_a_connection_removes_its_peers_only() {
        let mut h = Harness::new(LIMITS);
        h.announce(1, 1, 1, Some(9), Started);
        h.announce(2, 1, 1, Some(9), Started);
        h.announce(2, 1, 4, Some(9), NoEvent);
        h.announce(1, 2, 2, Some(9), Started);
        h.close(1);
        assert_eq!(h.shard.num_torrents(), 1);
        assert_eq!(h.scrape(1), scrape(0, 0, 1));
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(2)), Some(conn(2)));
        assert_eq!(h.shard.budget.num_peers(), 1);
        // Removing a peer that is not (or no longer) on the connection does nothing.
        h.shard
            .remove_connection_peer(&hash(1), &peer_id(2), conn(1));
        h.shard
            .remove_connection_peer(&hash(9), &peer_id(2), conn(2));
        assert_eq!(h.scrape(1), scrape(0, 0, 1));
    }

    #[test]
    fn offer_targets_follow_status_and_skip_the_announcer() {
        let mut h = Harness::new(LIMITS);
        for i in 0..3 {
            h.announce(1, i, i as u32, Some(0), Started);
        }
        for i in 3..6 {
            h.announce(1, i, i as u32, None, Started);
        }
        // A leecher gets seeders and leechers, never itself.
        h.announce(1, 3, 3, None, NoEvent);
        assert_eq!(h.targets(), [0, 1, 2, 4, 5].into());
        assert_eq!(h.out.len(), 5);
        // Each target comes with its own connection.
        assert!(
            h.out
                .iter()
                .all(|(id, c)| *c == conn(u64::from(peer_number(id))))
        );
        // A seeder gets leechers only.
        h.announce(1, 0, 0, Some(0), NoEvent);
        assert_eq!(h.targets(), [3, 4, 5].into());
        // numwant caps the list, and 0 means none.
        assert_eq!(h.announce_with(1, 3, 3, None, NoEvent, 2).counts.seeders, 3);
        assert_eq!(h.out.len(), 2);
        h.announce_with(1, 3, 3, None, NoEvent, 0);
        assert!(h.out.is_empty());
        // The announcer that just completed gets leechers only.
        h.announce(1, 4, 4, Some(0), Completed);
        assert_eq!(h.targets(), [3, 5].into());
    }

    #[test]
    fn targets_are_uniform_and_distinct() {
        let mut h = Harness::new(LIMITS);
        for i in 0..100 {
            h.announce(
                1,
                i,
                i as u32,
                if i % 2 == 0 { Some(0) } else { None },
                Started,
            );
        }
        // Leecher 1 asks for 10 of the other 99, 9_900 times: 1_000 hits expected each.
        let mut hits = [0u32; 100];
        for _ in 0..9_900 {
            h.announce_with(1, 1, 1, None, NoEvent, 10);
            assert_eq!(h.out.len(), 10);
            let unique: HashSet<_> = h.out.iter().collect();
            assert_eq!(unique.len(), 10);
            for (id, _) in &h.out {
                hits[peer_number(id) as usize] += 1;
            }
        }
        assert_eq!(hits[1], 0);
        // The count per peer is a sum of independent announces, each a hit with chance
        // 10/99 (binomial, sd about 30): 15% off is five deviations.
        for (i, &n) in hits.iter().enumerate().filter(|(i, _)| *i != 1) {
            assert!((850..=1150).contains(&n), "peer {i} chosen {n} times");
        }
    }

    #[test]
    fn a_stale_entry_of_the_announcers_connection_is_never_a_target() {
        let mut h = Harness::new(LIMITS);
        h.announce(1, 1, 1, None, Started);
        h.announce(1, 2, 2, None, Started);
        // A lost request: connection 1's next announce comes without its previous peer
        // id, so peer 1 stays behind as a second entry of connection 1.
        h.sent.remove(&(1, 1));
        assert_eq!(h.announce(1, 1, 3, None, Started), stored(0, 3));
        assert_eq!(h.targets(), [2].into());
        for _ in 0..50 {
            h.announce(1, 1, 3, None, NoEvent);
            assert_eq!(h.targets(), [2].into());
        }
        // Others get both; the stale one expires.
        h.announce(1, 2, 2, None, NoEvent);
        assert_eq!(h.targets(), [1, 3].into());
        h.now = 20;
        h.announce(1, 1, 3, None, NoEvent);
        h.announce(1, 2, 2, None, NoEvent);
        assert_eq!(
            h.shard.clean(SecondsSinceServerStart(29), 9).removed_peers,
            1
        );
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(1)), None);
    }

    #[test]
    fn limits_refuse_new_torrents_and_peers_and_count_it() {
        let mut h = Harness::new(SwarmLimits {
            max_torrents: 2,
            max_peers: 4,
            max_peers_per_torrent: 3,
            // Not a WebTorrent limit: nothing has an IP here.
            max_peers_per_ip: 0,
            ..LIMITS
        });
        assert_eq!(h.announce(1, 1, 1, None, Started), stored(0, 1));
        assert_eq!(h.announce(2, 1, 1, None, Started), stored(0, 1));
        assert_eq!(h.announce(3, 1, 1, None, Started), not_stored(0, 0));
        assert_eq!(h.shard.num_torrents(), 2);
        assert_eq!(h.shard.num_rejected_by_limits(), 1);
        h.announce(1, 2, 2, Some(0), Started);
        assert_eq!(h.announce(1, 3, 3, None, Started), stored(1, 2));
        assert_eq!(h.shard.budget.num_peers(), 4);
        // A torrent's fourth peer: refused, counted, no targets.
        assert_eq!(h.announce(1, 4, 4, None, Started), not_stored(1, 2));
        assert!(h.out.is_empty());
        assert_eq!(h.shard.num_rejected_by_limits(), 2);
        // The tracker's fifth peer, in a torrent with room.
        assert_eq!(h.announce(2, 2, 2, None, Started), not_stored(0, 1));
        assert_eq!(h.shard.num_rejected_by_limits(), 3);
        // Room comes back when a peer leaves.
        assert_eq!(h.announce(1, 3, 3, None, Stopped), not_stored(1, 1));
        assert_eq!(h.shard.budget.num_peers(), 3);
        assert_eq!(h.announce(2, 2, 2, None, Started), stored(0, 2));
        // Stored peers still update and move.
        assert_eq!(h.announce(1, 1, 1, Some(0), Completed), stored(2, 0));
        assert_eq!(h.shard.num_rejected_by_limits(), 3);
        // No torrents at all with no room per torrent.
        let mut h = Harness::new(SwarmLimits {
            max_peers_per_torrent: 0,
            ..LIMITS
        });
        assert_eq!(h.announce(1, 1, 1, None, Started), not_stored(0, 0));
        assert_eq!(h.shard.budget.num_torrents(), 0);
        assert_eq!(h.shard.num_rejected_by_limits(), 1);
    }

    #[test]
    fn clean_keeps_peers_seen_exactly_max_age_ago() {
        let mut h = Harness::new(LIMITS);
        h.now = 100;
        h.announce(1, 1, 1, Some(9), Started);
        h.announce(1, 1, 1, Some(0), Completed);
        h.now = 150;
        h.announce(1, 2, 2, None, Started);
        h.now = 100;
        h.announce(2, 3, 3, None, Started);
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
        assert_eq!(h.scrape(1), scrape(0, 1, 1));
        assert_eq!(h.scrape(2), ScrapeCounts::default());
        assert_eq!(
            h.shard.clean(SecondsSinceServerStart(251), 100),
            CleanStats {
                removed_peers: 1,
                removed_torrents: 1
            }
        );
        assert_eq!(h.scrape(1), scrape(0, 1, 0));
        assert_eq!(
            (h.shard.budget.num_torrents(), h.shard.budget.num_peers()),
            (0, 0)
        );
    }

    #[test]
    fn cleaning_shrinks_maps_left_sparse() {
        let mut h = Harness::new(LIMITS);
        for i in 0..1000 {
            h.now = i as u32;
            h.announce(1, i, i as u32, None, Started);
        }
        h.shard.clean(SecondsSinceServerStart(1000), 10);
        let t = h.shard.torrents.iter().next().unwrap();
        assert_eq!(t.leechers.len(), 10);
        assert!(t.leechers.capacity() < 100);
    }

    #[test]
    fn busiest_torrents_and_budget_shared_with_drop() {
        let limits = SwarmLimits {
            max_peers: 10,
            ..LIMITS
        };
        let budget = Arc::new(SwarmBudget::new(&limits));
        let mut a = WsSwarmShard::new(limits, budget.clone(), 2);
        let mut b = WsSwarmShard::new(limits, budget.clone(), 2);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut out = Vec::new();
        let now = SecondsSinceServerStart(0);
        for (n, h) in [(3, 1), (5, 2), (1, 3), (4, 4)] {
            for i in 0..n {
                let shard = if h % 2 == 0 { &mut b } else { &mut a };
                let p = WsAnnounceParams {
                    info_hash: hash(h),
                    peer_id: peer_id(i),
                    previous_peer_id: None,
                    connection: conn(u64::from(i)),
                    bytes_left: Some(u64::from(i % 2)),
                    event: Started,
                    numwant: 5,
                };
                shard.announce(&p, now, &mut rng, &mut out);
            }
        }
        // 13 asked for, 10 fit: the last three of torrent 4 were refused.
        assert_eq!(budget.num_peers(), 10);
        assert_eq!(b.num_rejected_by_limits(), 3);
        let busiest = b.busiest_torrents(1);
        assert_eq!(busiest, [(hash(2), scrape(3, 0, 2))]);
        let order: Vec<InfoHash> = a.busiest_torrents(5).iter().map(|(h, _)| *h).collect();
        assert_eq!(order, [hash(1), hash(3)]);
        drop(a);
        assert_eq!((budget.num_torrents(), budget.num_peers()), (2, 6));
        drop(b);
        assert_eq!((budget.num_torrents(), budget.num_peers()), (0, 0));
    }

    /// [`LIMITS`] with a minimum announce interval of `secs`.
    fn throttling(secs: u32) -> SwarmLimits {
        SwarmLimits {
            min_announce_interval_secs: secs,
            ..LIMITS
        }
    }

    /// A stored peer's plain re-announce on its connection sooner than the interval after
    /// its last one gets the counts and no offer targets, and changes nothing: its status
    /// and last-seen time stay, so it expires on its old schedule. At the interval it
    /// applies.
    #[test]
    fn early_plain_reannounce_changes_nothing_and_relays_no_offers() {
        let mut h = Harness::new(throttling(100));
        h.shard.record_changes(true, 0);
        h.announce(1, 1, 1, Some(5), Started);
        h.announce(1, 2, 2, Some(0), Started);
        h.announce(1, 3, 3, Some(5), Started);
        let mut changes = Vec::new();
        h.shard.take_changes(&mut changes);
        assert_eq!(changes.len(), 3);
        // Peer 1 re-announces at 50, its status unchanged: still stored, no targets.
        h.now = 50;
        assert_eq!(h.announce(1, 1, 1, Some(5), NoEvent), stored(1, 2));
        assert!(h.out.is_empty());
        // At 99 it says it is a seeder: still a leecher, and no targets.
        h.now = 99;
        assert_eq!(h.announce(1, 1, 1, Some(0), NoEvent), stored(1, 2));
        assert!(h.out.is_empty());
        assert_eq!(h.scrape(1), scrape(1, 0, 2));
        assert_eq!((h.shard.num_seeders(), h.shard.num_leechers()), (1, 2));
        assert_eq!(h.shard.num_throttled(), 2);
        h.shard.take_changes(&mut changes);
        assert_eq!(changes.len(), 3, "a throttled announce records nothing");
        // At exactly the interval: applied, with targets.
        h.now = 100;
        assert_eq!(h.announce(1, 2, 2, Some(0), NoEvent), stored(1, 2));
        assert_eq!(h.targets(), [1, 3].into());
        assert_eq!(h.announce(1, 3, 3, Some(0), NoEvent), stored(2, 1));
        assert_eq!(h.targets(), [1].into());
        assert_eq!(h.shard.num_throttled(), 2);
        h.shard.take_changes(&mut changes);
        assert_eq!(changes.len(), 5);
        // Peer 1 was last seen at 0: with a maximum age of 100 it alone expires at 101.
        assert_eq!(
            h.shard
                .clean(SecondsSinceServerStart(101), 100)
                .removed_peers,
            1
        );
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(1)), None);
        assert_eq!(h.scrape(1), scrape(2, 0, 0));
    }

    /// Started, completed and stopped apply whatever the time, and so do a new peer and
    /// a connection's peer under a new peer id (which takes over its entry); another
    /// connection's peer id stays a conflict, not a throttle.
    #[test]
    fn events_new_peers_and_new_peer_ids_always_apply() {
        let mut h = Harness::new(throttling(100));
        h.announce(1, 1, 1, Some(5), Started);
        h.announce(1, 2, 2, Some(5), Started);
        h.now = 10;
        assert_eq!(h.announce(1, 1, 1, Some(5), Started), stored(0, 2));
        assert_eq!(h.targets(), [2].into());
        h.now = 20;
        assert_eq!(h.announce(1, 1, 1, Some(0), Completed), stored(1, 1));
        assert_eq!(h.targets(), [2].into());
        assert_eq!(h.scrape(1), scrape(1, 1, 1));
        h.now = 30;
        assert_eq!(h.announce(1, 1, 1, Some(0), Stopped), not_stored(0, 1));
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(1)), None);
        // Back without an event: a new peer, with targets.
        h.now = 31;
        assert_eq!(h.announce(1, 1, 1, Some(5), NoEvent), stored(0, 2));
        assert_eq!(h.targets(), [2].into());
        assert_eq!(h.shard.num_throttled(), 0);
        // Under a new peer id on the same connection: the entry is taken over, with
        // targets; the new id's next plain re-announce is then measured from it.
        h.now = 40;
        assert_eq!(h.announce(1, 1, 7, Some(5), NoEvent), stored(0, 2));
        assert_eq!(h.targets(), [2].into());
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(1)), None);
        assert_eq!(h.shard.connection_of(&hash(1), &peer_id(7)), Some(conn(1)));
        h.now = 139;
        assert_eq!(h.announce(1, 1, 7, Some(5), NoEvent), stored(0, 2));
        assert!(h.out.is_empty());
        assert_eq!(h.shard.num_throttled(), 1);
        h.now = 140;
        h.announce(1, 1, 7, Some(5), NoEvent);
        assert_eq!(h.targets(), [2].into());
        // Another connection announcing peer 2: a conflict, as without the interval.
        assert_eq!(h.announce(1, 3, 2, Some(5), NoEvent), not_stored(0, 2));
        assert_eq!(h.shard.num_peer_id_conflicts(), 1);
        assert_eq!(h.shard.num_throttled(), 1);
    }

    /// Off (0), the rapid re-announces a throttle would stop all apply, as before the
    /// interval existed.
    #[test]
    fn off_applies_every_ws_reannounce() {
        let mut h = Harness::new(throttling(0));
        h.announce(1, 1, 1, Some(5), Started);
        h.announce(1, 2, 2, Some(5), Started);
        for left in [Some(5), Some(5), Some(0), None] {
            h.announce(1, 1, 1, left, NoEvent);
            assert_eq!(h.targets(), [2].into());
        }
        assert_eq!(h.scrape(1), scrape(0, 0, 2));
        assert_eq!(h.shard.num_throttled(), 0);
    }

    // ---------------------------------------------------------------------------------
    // The model: the rules of the module documentation, written naively over BTreeMaps.

    /// A stored peer as the rules describe it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct ModelPeer {
        connection: (u16, u64),
        seeder: bool,
        seen: u32,
        counted: bool,
    }

    #[derive(Default)]
    struct ModelTorrent {
        /// By peer number.
        peers: BTreeMap<u32, ModelPeer>,
        completed: u32,
    }

    #[derive(Default)]
    struct Model {
        torrents: BTreeMap<u8, ModelTorrent>,
        /// Unbounded: the runs never fill an archive set (see `run_ws_model`).
        archive: BTreeMap<u8, u32>,
        rejected: u64,
        conflicts: u64,
        throttled: u64,
    }

    /// How often a run met the cases the rules are about.
    #[derive(Debug, Default)]
    struct Coverage {
        conflicts: usize,
        own_entry_dropped_on_conflict: usize,
        takeovers: usize,
        takeovers_with_flag: usize,
        completions: usize,
        completions_refused_by_flag: usize,
        unknown_left_stored: usize,
        stopped_removed: usize,
        closes_removed: usize,
        archive_restored: usize,
        rejected: usize,
        throttled: usize,
        applied_after_interval: usize,
        targets_given: usize,
        seeders_given_leechers_only: usize,
        stale_own_entries_skipped: usize,
        cleaned: usize,
    }

    fn pair(c: ConnectionRef) -> (u16, u64) {
        (c.worker, c.connection)
    }

    impl Model {
        fn num_peers(&self) -> usize {
            self.torrents.values().map(|t| t.peers.len()).sum()
        }

        fn scrape(&self, h: u8) -> ScrapeCounts {
            match self.torrents.get(&h) {
                Some(t) => {
                    let seeders = t.peers.values().filter(|p| p.seeder).count() as u32;
                    scrape(seeders, t.completed, t.peers.len() as u32 - seeders)
                }
                None => scrape(0, self.archive.get(&h).copied().unwrap_or(0), 0),
            }
        }

        fn counts(&self, h: u8) -> AnnounceCounts {
            let ScrapeCounts {
                seeders, leechers, ..
            } = self.scrape(h);
            AnnounceCounts { seeders, leechers }
        }

        /// The torrent goes if it has no peers; a count of downloads stays behind.
        fn forget_if_empty(&mut self, h: u8) {
            if self.torrents.get(&h).is_some_and(|t| t.peers.is_empty()) {
                let t = self.torrents.remove(&h).unwrap();
                if t.completed > 0 {
                    self.archive.insert(h, t.completed);
                }
            }
        }

        /// The stored peer re-announces (perhaps under a new peer id): a stored leecher
        /// becoming a seeder through completed counts, once per stored peer.
        fn reannounced(
            p: ModelPeer,
            seeder: bool,
            event: AnnounceEvent,
            now: u32,
            completed: &mut u32,
            cov: &mut Coverage,
        ) -> ModelPeer {
            let becomes_seeder = !p.seeder && seeder && event == Completed;
            if becomes_seeder && p.counted {
                cov.completions_refused_by_flag += 1;
            }
            let counts = becomes_seeder && !p.counted;
            if counts {
                *completed += 1;
                cov.completions += 1;
            }
            ModelPeer {
                connection: p.connection,
                seeder,
                seen: now,
                counted: p.counted || counts,
            }
        }

        /// Applies an announce by the rules; returns whether the announcer is stored.
        #[expect(clippy::too_many_arguments, reason = "one announce's worth of inputs")]
        fn announce(
            &mut self,
            limits: &SwarmLimits,
            h: u8,
            id: u32,
            previous: Option<u32>,
            c: (u16, u64),
            left: Option<u64>,
            event: AnnounceEvent,
            now: u32,
            cov: &mut Coverage,
        ) -> bool {
            let seeder = left == Some(0);
            let total = self.num_peers();
            let owned =
                |t: &ModelTorrent, id: u32| t.peers.get(&id).is_some_and(|p| p.connection == c);
            if event == Stopped {
                if let Some(t) = self.torrents.get_mut(&h) {
                    let own = if owned(t, id) {
                        Some(id)
                    } else {
                        previous.filter(|&q| owned(t, q))
                    };
                    if let Some(own) = own {
                        t.peers.remove(&own);
                        cov.stopped_removed += 1;
                    }
                    self.forget_if_empty(h);
                }
                return false;
            }
            let new_peer = ModelPeer {
                connection: c,
                seeder,
                seen: now,
                counted: false,
            };
            let stored = match self.torrents.get_mut(&h) {
                None => {
                    let room = self.torrents.len() < limits.max_torrents
                        && total < limits.max_peers
                        && limits.max_peers_per_torrent >= 1;
                    if room {
                        let completed = self.archive.remove(&h).unwrap_or(0);
                        if completed > 0 {
                            cov.archive_restored += 1;
                        }
                        let mut t = ModelTorrent {
                            peers: BTreeMap::new(),
                            completed,
                        };
                        t.peers.insert(id, new_peer);
                        self.torrents.insert(h, t);
                    } else {
                        self.rejected += 1;
                        cov.rejected += 1;
                    }
                    room
                }
                Some(t) => match t.peers.get(&id).copied() {
                    Some(p) if p.connection != c => {
                        self.conflicts += 1;
                        cov.conflicts += 1;
                        if let Some(q) = previous.filter(|&q| owned(t, q)) {
                            t.peers.remove(&q);
                            cov.own_entry_dropped_on_conflict += 1;
                        }
                        false
                    }
                    // Its own peer, too soon after its last announce and no event: nothing
                    // changes; it stays stored.
                    Some(p)
                        if event == NoEvent && now - p.seen < limits.min_announce_interval_secs =>
                    {
                        self.throttled += 1;
                        cov.throttled += 1;
                        true
                    }
                    Some(p) => {
                        if event == NoEvent && limits.min_announce_interval_secs > 0 {
                            cov.applied_after_interval += 1;
                        }
                        let p = Self::reannounced(p, seeder, event, now, &mut t.completed, cov);
                        t.peers.insert(id, p);
                        true
                    }
                    None => match previous.filter(|&q| owned(t, q)) {
                        Some(q) => {
                            let p = t.peers.remove(&q).unwrap();
                            cov.takeovers += 1;
                            if p.counted {
                                cov.takeovers_with_flag += 1;
                            }
                            let p = Self::reannounced(p, seeder, event, now, &mut t.completed, cov);
                            t.peers.insert(id, p);
                            true
                        }
                        None => {
                            let room = t.peers.len() < limits.max_peers_per_torrent
                                && total < limits.max_peers;
                            if room {
                                t.peers.insert(id, new_peer);
                            } else {
                                self.rejected += 1;
                                cov.rejected += 1;
                            }
                            room
                        }
                    },
                },
            };
            if stored && left.is_none() {
                cov.unknown_left_stored += 1;
            }
            stored
        }
    }

    #[derive(Clone, Debug)]
    enum WsOp {
        Announce {
            hash: u8,
            conn: u8,
            peer: u32,
            left: Option<u64>,
            event: AnnounceEvent,
            numwant: usize,
            /// The socket worker's last peer id for this connection and torrent is not
            /// passed (a request lost on the way, or a caller's mistake).
            lose_previous: bool,
        },
        Close {
            conn: u8,
        },
        Scrape {
            hash: u8,
        },
        Clean {
            max_age: u32,
        },
        Tick(u32),
    }

    /// The range of the operations a model run draws.
    #[derive(Copy, Clone, Debug)]
    struct WsSpace {
        /// Torrents 0..hashes (at most 8, so that an archive set never fills).
        hashes: u8,
        /// Connection slots 0..conns; a closed slot's next connection has a new id.
        conns: u8,
        /// Peer ids 0..peers.
        peers: u32,
        /// Cleanings use a maximum age in 0..max_age.
        max_age: u32,
        /// Announces ask for 0..numwant targets.
        numwant: usize,
        /// The chance that an announce loses its previous peer id.
        lose_previous: f64,
    }

    /// Few connections and peer ids: the same peer id from several connections, and one
    /// connection under several peer ids, all the time; limits are hit often.
    const FEW: WsSpace = WsSpace {
        hashes: 3,
        conns: 4,
        peers: 4,
        max_age: 30,
        numwant: 6,
        lose_previous: 0.0,
    };

    /// As [`FEW`], with lost requests: stale entries of a connection appear.
    const LOSSY: WsSpace = WsSpace {
        lose_previous: 0.1,
        ..FEW
    };

    /// Torrents of tens of peers, so that targets are sampled (in runs) from large pools.
    const MANY: WsSpace = WsSpace {
        hashes: 2,
        conns: 40,
        peers: 60,
        max_age: 300,
        numwant: 30,
        lose_previous: 0.0,
    };

    fn ws_op_strategy(space: WsSpace) -> impl Strategy<Value = WsOp> {
        let event = prop_oneof![
            2 => Just(NoEvent),
            1 => Just(Started),
            2 => Just(Completed),
            1 => Just(Stopped),
        ];
        let left = prop_oneof![
            1 => Just(None),
            2 => Just(Some(0u64)),
            2 => Just(Some(1u64)),
        ];
        prop_oneof![
            // A connection mostly announces its own peer id (the slot's number), as clients
            // keep theirs, so that stored peers live long enough to complete, cycle and
            // complete again; any other id now and then makes takeovers and conflicts.
            24 => (
                0..space.hashes,
                0..space.conns,
                prop::bool::weighted(0.75),
                0..space.peers,
                left,
                event,
                0..space.numwant,
                prop::bool::weighted(space.lose_previous),
            )
                .prop_map(
                    |(hash, conn, own_id, other_id, left, event, numwant, lose_previous)| {
                        let peer = if own_id { u32::from(conn) } else { other_id };
                        WsOp::Announce { hash, conn, peer, left, event, numwant, lose_previous }
                    },
                ),
            1 => (0..space.conns).prop_map(|conn| WsOp::Close { conn }),
            1 => (0..space.hashes).prop_map(|hash| WsOp::Scrape { hash }),
            2 => (0..space.max_age).prop_map(|max_age| WsOp::Clean { max_age }),
            4 => (0..5u32).prop_map(WsOp::Tick),
        ]
    }

    /// Connection slot `slot` at its `generation`: two slots share each connection number,
    /// on different socket workers, so that both fields tell connections apart.
    fn slot_connection(slot: u8, generation: u32) -> ConnectionRef {
        ConnectionRef {
            worker: u16::from(slot % 2),
            connection: (u64::from(generation) << 8) | u64::from(slot / 2),
        }
    }

    /// Runs `ops` on two shards sharing one budget (torrent `h` in shard `h % 2`) and on
    /// the model, with a socket worker's bookkeeping in between (the peer id last sent per
    /// connection and torrent; new connection ids after a close), checking after each op
    /// that shards and model agree.
    fn run_ws_model(
        limits: SwarmLimits,
        space: WsSpace,
        seed: u64,
        ops: Vec<WsOp>,
    ) -> Result<Coverage, TestCaseError> {
        let limits = SwarmLimits {
            max_archived_torrents: 2 * super::super::archive::WAYS,
            ..limits
        };
        let budget = Arc::new(SwarmBudget::new(&limits));
        let mut shards = [
            WsSwarmShard::new(limits, budget.clone(), 2),
            WsSwarmShard::new(limits, budget.clone(), 2),
        ];
        let mut model = Model::default();
        let mut cov = Coverage::default();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut out = Vec::new();
        let mut now = 0u32;
        let mut generation = vec![0u32; usize::from(space.conns)];
        // The socket worker's memory: (slot, torrent) -> peer id last sent.
        let mut sent: BTreeMap<(u8, u8), u32> = BTreeMap::new();
        let mut lost_any = false;
        for op in ops {
            match op {
                WsOp::Tick(secs) => now += secs,
                WsOp::Scrape { hash: h } => {
                    prop_assert_eq!(shards[usize::from(h % 2)].scrape(&hash(h)), model.scrape(h));
                }
                WsOp::Clean { max_age } => {
                    let mut removed = CleanStats::default();
                    for shard in &mut shards {
                        let s = shard.clean(SecondsSinceServerStart(now), max_age);
                        removed.removed_peers += s.removed_peers;
                        removed.removed_torrents += s.removed_torrents;
                    }
                    let (peers_before, torrents_before) = (model.num_peers(), model.torrents.len());
                    // Silent for more than max_age goes; exactly max_age stays.
                    for t in model.torrents.values_mut() {
                        t.peers.retain(|_, p| now - p.seen <= max_age);
                    }
                    for h in 0..space.hashes {
                        model.forget_if_empty(h);
                    }
                    prop_assert_eq!(removed.removed_peers, peers_before - model.num_peers());
                    prop_assert_eq!(
                        removed.removed_torrents,
                        torrents_before - model.torrents.len()
                    );
                    cov.cleaned += removed.removed_peers;
                }
                WsOp::Close { conn: slot } => {
                    let c = slot_connection(slot, generation[usize::from(slot)]);
                    let announced: Vec<(u8, u32)> = sent
                        .iter()
                        .filter(|((s, _), _)| *s == slot)
                        .map(|((_, h), id)| (*h, *id))
                        .collect();
                    for (h, id) in announced {
                        shards[usize::from(h % 2)].remove_connection_peer(
                            &hash(h),
                            &peer_id(id),
                            c,
                        );
                        sent.remove(&(slot, h));
                        if let Some(t) = model.torrents.get_mut(&h)
                            && t.peers.get(&id).is_some_and(|p| p.connection == pair(c))
                        {
                            t.peers.remove(&id);
                            cov.closes_removed += 1;
                            model.forget_if_empty(h);
                        }
                    }
                    generation[usize::from(slot)] += 1;
                }
                WsOp::Announce {
                    hash: h,
                    conn: slot,
                    peer: id,
                    left,
                    event,
                    numwant,
                    lose_previous,
                } => {
                    let c = slot_connection(slot, generation[usize::from(slot)]);
                    let last = sent.insert((slot, h), id);
                    let previous = if lose_previous { None } else { last };
                    lost_any |= lose_previous && last.is_some();
                    let params = WsAnnounceParams {
                        info_hash: hash(h),
                        peer_id: peer_id(id),
                        previous_peer_id: previous.map(peer_id),
                        connection: c,
                        bytes_left: left,
                        event,
                        numwant,
                    };
                    let got = shards[usize::from(h % 2)].announce(
                        &params,
                        SecondsSinceServerStart(now),
                        &mut rng,
                        &mut out,
                    );
                    let throttled_before = model.throttled;
                    let stored = model.announce(
                        &limits,
                        h,
                        id,
                        previous,
                        pair(c),
                        left,
                        event,
                        now,
                        &mut cov,
                    );
                    prop_assert_eq!(
                        got,
                        WsAnnounceOutcome {
                            counts: model.counts(h),
                            stored
                        }
                    );

                    // Offer targets: only for a stored announcer; distinct stored peers of
                    // the right status with their connections, never the announcer, never
                    // its connection; as many as asked for, or as there are.
                    let targets: Vec<(u32, (u16, u64))> = out
                        .iter()
                        .map(|(id, c)| (peer_number(id), pair(*c)))
                        .collect();
                    let unique: BTreeSet<_> = targets.iter().copied().collect();
                    prop_assert_eq!(unique.len(), targets.len(), "duplicate targets");
                    if !stored {
                        prop_assert!(targets.is_empty(), "targets for an announcer not stored");
                    } else if model.throttled > throttled_before {
                        prop_assert!(targets.is_empty(), "targets for a throttled announce");
                    } else {
                        check_targets(&model, h, id, pair(c), left, numwant, &targets, &mut cov)?;
                    }
                }
            }
            check_against_model(&shards, &model, &budget, &limits, space, lost_any)?;
        }
        Ok(cov)
    }

    /// The offer targets of a stored announcer: distinct stored peers of the right status
    /// with their connections, never the announcer, never on its connection `c`; as many
    /// as asked for, or as there are.
    #[expect(
        clippy::too_many_arguments,
        reason = "one announce's worth of test inputs"
    )]
    fn check_targets(
        model: &Model,
        h: u8,
        id: u32,
        c: (u16, u64),
        left: Option<u64>,
        numwant: usize,
        targets: &[(u32, (u16, u64))],
        cov: &mut Coverage,
    ) -> Result<(), TestCaseError> {
        let seeder = left == Some(0);
        let t = &model.torrents[&h];
        let candidates: BTreeMap<u32, (u16, u64)> = t
            .peers
            .iter()
            .filter(|(other, p)| **other != id && !(seeder && p.seeder))
            .map(|(other, p)| (*other, p.connection))
            .collect();
        let pool: BTreeMap<u32, (u16, u64)> = candidates
            .iter()
            .filter(|(_, conn)| **conn != c)
            .map(|(other, conn)| (*other, *conn))
            .collect();
        for (target, conn) in targets {
            prop_assert_eq!(
                pool.get(target),
                Some(conn),
                "{} not a valid target",
                target
            );
        }
        let stale = candidates.len() - pool.len();
        if stale == 0 {
            prop_assert_eq!(targets.len(), numwant.min(pool.len()));
        } else {
            // Stale entries of the connection are dropped after sampling.
            cov.stale_own_entries_skipped += 1;
            prop_assert!(targets.len() <= numwant.min(pool.len()));
            prop_assert!(targets.len() + stale >= numwant.min(candidates.len()));
        }
        if !targets.is_empty() {
            cov.targets_given += 1;
            if seeder && t.peers.values().any(|p| p.seeder && p.connection != c) {
                cov.seeders_given_leechers_only += 1;
            }
        }
        Ok(())
    }

    /// Every stored peer, total, limit and lookup, against the model.
    fn check_against_model(
        shards: &[WsSwarmShard; 2],
        model: &Model,
        budget: &SwarmBudget,
        limits: &SwarmLimits,
        space: WsSpace,
        lost_any: bool,
    ) -> Result<(), TestCaseError> {
        let (mut torrents, mut seeders, mut leechers, mut rejected, mut conflicts) =
            (0, 0, 0, 0, 0);
        let mut throttled = 0;
        let mut archived = 0;
        for (n, shard) in shards.iter().enumerate() {
            let (mut s, mut l) = (0, 0);
            for t in shard.torrents.iter() {
                let h = t.info_hash.0[0];
                prop_assert_eq!(usize::from(h % 2), n);
                let m = model.torrents.get(&h);
                prop_assert!(m.is_some(), "torrent {} not in the model", h);
                let m = m.unwrap();
                prop_assert!(!SwarmTorrent::is_empty(t));
                prop_assert!(t.seeders.len() + t.leechers.len() <= limits.max_peers_per_torrent);
                prop_assert_eq!(t.completed, m.completed);
                let mut real: Vec<(u32, ModelPeer)> = Vec::new();
                for (store, seeder) in [(&t.seeders, true), (&t.leechers, false)] {
                    for (id, peer) in store {
                        real.push((
                            peer_number(id),
                            ModelPeer {
                                connection: pair(peer.connection()),
                                seeder,
                                seen: peer.last_seen.time().0,
                                counted: peer.last_seen.completion_counted(),
                            },
                        ));
                    }
                }
                real.sort_unstable();
                let expected: Vec<(u32, ModelPeer)> =
                    m.peers.iter().map(|(id, p)| (*id, *p)).collect();
                prop_assert_eq!(real, expected);
                if !lost_any {
                    // With every previous peer id passed, a connection holds one peer per
                    // torrent.
                    let connections: BTreeSet<(u16, u64)> =
                        m.peers.values().map(|p| p.connection).collect();
                    prop_assert_eq!(
                        connections.len(),
                        m.peers.len(),
                        "two peers of one connection"
                    );
                }
                s += t.seeders.len();
                l += t.leechers.len();
            }
            prop_assert_eq!((shard.num_seeders(), shard.num_leechers()), (s, l));
            torrents += shard.num_torrents();
            seeders += s;
            leechers += l;
            rejected += shard.num_rejected_by_limits();
            conflicts += shard.num_peer_id_conflicts();
            throttled += shard.num_throttled();
            archived += shard.num_archived_torrents();
        }
        prop_assert_eq!(torrents, model.torrents.len());
        prop_assert_eq!(seeders + leechers, model.num_peers());
        prop_assert_eq!(budget.num_torrents(), torrents);
        prop_assert_eq!(budget.num_peers(), seeders + leechers);
        prop_assert!(torrents <= limits.max_torrents);
        prop_assert!(seeders + leechers <= limits.max_peers);
        prop_assert_eq!(rejected, model.rejected);
        prop_assert_eq!(conflicts, model.conflicts);
        prop_assert_eq!(throttled, model.throttled);
        prop_assert_eq!(archived, model.archive.len());
        for h in 0..space.hashes {
            let shard = &shards[usize::from(h % 2)];
            prop_assert_eq!(shard.scrape(&hash(h)), model.scrape(h));
            for id in 0..space.peers {
                let expected = model
                    .torrents
                    .get(&h)
                    .and_then(|t| t.peers.get(&id))
                    .map(|p| ConnectionRef {
                        worker: p.connection.0,
                        connection: p.connection.1,
                    });
                prop_assert_eq!(shard.connection_of(&hash(h), &peer_id(id)), expected);
            }
        }
        Ok(())
    }

    /// Limits from the given strategies; the minimum announce interval off (0) in two
    /// runs of three, else 1 to 19 seconds (ticks are up to 4).
    fn ws_limits(
        max_torrents: impl Strategy<Value = usize>,
        max_peers: impl Strategy<Value = usize>,
        per_torrent: impl Strategy<Value = usize>,
    ) -> impl Strategy<Value = SwarmLimits> {
        let min_interval = prop_oneof![2 => Just(0u32), 1 => 1..20u32];
        (
            max_torrents,
            max_peers,
            per_torrent,
            any::<usize>(),
            min_interval,
        )
            .prop_map(|(t, p, pt, pi, min)| SwarmLimits {
                max_torrents: t,
                max_peers: p,
                max_peers_per_torrent: pt,
                // Whatever it is, it must not matter.
                max_peers_per_ip: pi % 3,
                max_archived_torrents: 0,
                min_announce_interval_secs: min,
            })
    }

    proptest! {
        #[test]
        fn ws_matches_model(
            // Zero now and then: nothing can be stored at all.
            limits in ws_limits(
                prop_oneof![1 => Just(0usize), 6 => 1..4usize],
                prop_oneof![1 => Just(0usize), 6 => 1..10usize],
                prop_oneof![1 => Just(0usize), 6 => 1..5usize],
            ),
            seed in any::<u64>(),
            ops in prop::collection::vec(ws_op_strategy(FEW), 1..200),
        ) {
            run_ws_model(limits, FEW, seed, ops)?;
        }

        #[test]
        fn ws_matches_model_with_lost_requests(
            limits in ws_limits(1..4usize, 1..12usize, 1..6usize),
            seed in any::<u64>(),
            ops in prop::collection::vec(ws_op_strategy(LOSSY), 1..200),
        ) {
            run_ws_model(limits, LOSSY, seed, ops)?;
        }

        #[test]
        fn ws_matches_model_on_large_torrents(
            limits in ws_limits(
                Just(2usize),
                prop_oneof![3 => Just(usize::MAX), 1 => 0..60usize],
                prop_oneof![3 => Just(usize::MAX), 1 => 0..40usize],
            ),
            seed in any::<u64>(),
            ops in prop::collection::vec(ws_op_strategy(MANY), 1..400),
        ) {
            run_ws_model(limits, MANY, seed, ops)?;
        }
    }

    /// The model runs' inputs do produce the cases the rules are about (a proptest case
    /// cannot check that its own inputs were interesting): long fixed sequences of each
    /// space, checked against the model as above, must meet every case many times.
    #[test]
    fn ws_model_runs_cover_the_rules() {
        use proptest::strategy::ValueTree;

        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut ops = |space, n| {
            prop::collection::vec(ws_op_strategy(space), n)
                .new_tree(&mut runner)
                .unwrap()
                .current()
        };
        let limits = SwarmLimits {
            max_torrents: 3,
            max_peers: 8,
            max_peers_per_torrent: 3,
            ..LIMITS
        };
        let few = run_ws_model(limits, FEW, 1, ops(FEW, 5_000)).unwrap();
        let lossy = run_ws_model(limits, LOSSY, 2, ops(LOSSY, 5_000)).unwrap();
        let unlimited = SwarmLimits {
            max_torrents: 2,
            ..LIMITS
        };
        let many = run_ws_model(unlimited, MANY, 3, ops(MANY, 5_000)).unwrap();
        let rules = |cov: &Coverage| {
            [
                cov.conflicts,
                cov.own_entry_dropped_on_conflict,
                cov.takeovers,
                cov.takeovers_with_flag,
                cov.completions,
                cov.unknown_left_stored,
                cov.stopped_removed,
                cov.closes_removed,
                cov.targets_given,
                cov.seeders_given_leechers_only,
                cov.cleaned,
            ]
        };
        // Small torrents: everything, including what needs a peer to live long (a counted
        // completion refused) or a torrent to empty (archive) or a limit to be reached.
        // The rarest case is a refused completion: a counted peer has to go back to
        // leeching and complete again before it stops, expires, its connection closes or
        // gives it up.
        for (name, cov) in [("few", &few), ("lossy", &lossy)] {
            let small = [cov.archive_restored, cov.rejected];
            assert!(
                rules(cov).iter().chain(&small).all(|&n| n >= 10)
                    && cov.completions_refused_by_flag >= 5,
                "{name}: {cov:?}"
            );
        }
        assert!(rules(&many).iter().all(|&n| n >= 10), "{many:?}");
        // Stale entries come from lost requests only.
        assert!(lossy.stale_own_entries_skipped >= 10, "{lossy:?}");
        assert_eq!(
            few.stale_own_entries_skipped + many.stale_own_entries_skipped,
            0
        );
        // No interval, no throttling; with one of a few ticks, stored peers' plain
        // re-announces come both too soon and after it.
        assert_eq!(few.throttled + lossy.throttled + many.throttled, 0);
        let throttling = SwarmLimits {
            min_announce_interval_secs: 6,
            ..limits
        };
        let cov = run_ws_model(throttling, FEW, 4, ops(FEW, 5_000)).unwrap();
        assert!(
            cov.throttled >= 10 && cov.applied_after_interval >= 10,
            "{cov:?}"
        );
    }

    /// The cluster rules (see [`WsSwarmShard::record_changes`] and
    /// [`WsSwarmShard::apply_remote_from`]).
    mod cluster {
        use super::*;

        fn recording() -> Harness {
            let mut h = Harness::new(LIMITS);
            h.shard.record_changes(true, 600);
            h
        }

        fn taken(h: &mut Harness) -> Vec<PeerChange> {
            let mut out = Vec::new();
            h.shard.take_changes(&mut out);
            out
        }

        fn up(h: u8, id: u32, seeder: bool, completed: bool) -> PeerChange {
            PeerChange::WsUpsert(WsPeerUpsert {
                info_hash: hash(h),
                peer_id: peer_id(id),
                seeder,
                completed,
                age_secs: 0,
            })
        }

        fn gone(h: u8, id: u32) -> PeerChange {
            PeerChange::WsRemoved {
                info_hash: hash(h),
                peer_id: peer_id(id),
            }
        }

        fn apply(h: &mut Harness, change: PeerChange, node: u32) -> bool {
            let now = SecondsSinceServerStart(h.now);
            h.shard.apply_remote_from(&change, node, now)
        }

        #[test]
        fn nothing_is_recorded_unless_asked() {
            let mut h = Harness::new(LIMITS);
            h.announce(1, 1, 1, Some(1), Started);
            h.announce(1, 1, 1, Some(1), Stopped);
            assert!(taken(&mut h).is_empty());
        }

        #[test]
        fn local_announces_record_what_the_other_nodes_need() {
            let mut h = recording();
            // A new peer, and a new torrent.
            h.announce(1, 1, 1, Some(5), Started);
            assert_eq!(taken(&mut h), [up(1, 1, false, false)]);
            // A plain re-announce in the same window: nothing; in the next window: once.
            h.now = 10;
            h.announce(1, 1, 1, Some(5), NoEvent);
            assert!(taken(&mut h).is_empty());
            h.now = 600;
            h.announce(1, 1, 1, Some(5), NoEvent);
            h.announce(1, 1, 1, Some(5), NoEvent);
            assert_eq!(taken(&mut h), [up(1, 1, false, false)]);
            // A completion, at once, marked.
            h.announce(1, 1, 1, Some(0), Completed);
            assert_eq!(taken(&mut h), [up(1, 1, true, true)]);
            // A status move without a completion.
            h.announce(1, 1, 1, Some(3), NoEvent);
            assert_eq!(taken(&mut h), [up(1, 1, false, false)]);
            // A new peer id on the same connection: the old one leaves, the new one comes.
            h.announce(1, 1, 2, Some(3), NoEvent);
            assert_eq!(taken(&mut h), [gone(1, 1), up(1, 2, false, false)]);
            // A second peer on another connection; then the first stops.
            h.announce(1, 2, 7, None, Started);
            h.announce(1, 1, 2, Some(3), Stopped);
            assert_eq!(taken(&mut h), [up(1, 7, false, false), gone(1, 2)]);
            // A connection closing.
            h.close(2);
            assert_eq!(taken(&mut h), [gone(1, 7)]);
            // A stop of a peer that is not stored records nothing.
            h.announce(1, 3, 9, Some(3), Stopped);
            assert!(taken(&mut h).is_empty());
        }

        #[test]
        fn a_conflict_records_the_removal_of_the_connections_own_entry() {
            let mut h = recording();
            h.announce(1, 1, 1, Some(5), Started);
            h.announce(1, 2, 2, Some(5), Started);
            taken(&mut h);
            // Connection 2 now claims peer 1, connection 1's: refused, and its own entry
            // (peer 2) goes.
            assert_eq!(h.announce(1, 2, 1, Some(5), NoEvent), not_stored(0, 1));
            assert_eq!(taken(&mut h), [gone(1, 2)]);
        }

        #[test]
        fn a_remote_peer_is_an_offer_target_on_its_node() {
            let mut h = Harness::new(LIMITS);
            assert!(apply(&mut h, up(1, 50, true, false), 3));
            assert_eq!(h.shard.num_remote_peers(), 1);
            assert_eq!(h.scrape(1), scrape(1, 0, 0));
            assert_eq!(h.announce(1, 1, 1, Some(5), Started), stored(1, 1));
            assert_eq!(h.out, [(peer_id(50), ConnectionRef::remote(3))]);
            assert_eq!(ConnectionRef::remote(3).remote_node(), Some(3));
            assert_eq!(conn(3).remote_node(), None);
            assert_eq!(
                h.shard.connection_of(&hash(1), &peer_id(50)),
                Some(ConnectionRef::remote(3))
            );
        }

        #[test]
        fn a_remote_peer_id_is_another_connections_here() {
            let mut h = recording();
            apply(&mut h, up(1, 50, false, false), 3);
            // A local connection announcing it: a conflict, nothing stored or recorded.
            assert_eq!(h.announce(1, 1, 50, Some(5), Started), not_stored(0, 1));
            assert_eq!(h.shard.num_peer_id_conflicts(), 1);
            assert!(taken(&mut h).is_empty());
            // Closing that connection leaves the remote peer alone.
            h.close(1);
            assert_eq!(h.scrape(1), scrape(0, 0, 1));
        }

        #[test]
        fn a_local_peer_wins_over_another_nodes_upsert_of_its_id() {
            let mut h = Harness::new(LIMITS);
            h.announce(1, 1, 1, Some(5), Started);
            assert!(!apply(&mut h, up(1, 1, true, false), 3));
            assert_eq!(h.scrape(1), scrape(0, 0, 1));
            assert_eq!(h.shard.connection_of(&hash(1), &peer_id(1)), Some(conn(1)));
            // Nor can another node remove it.
            assert!(!apply(&mut h, gone(1, 1), 3));
            assert_eq!(h.scrape(1), scrape(0, 0, 1));
            assert_eq!(h.shard.num_remote_peers(), 0);
        }

        #[test]
        fn a_peer_moving_between_nodes_is_removed_only_by_its_new_node() {
            let mut h = Harness::new(LIMITS);
            apply(&mut h, up(1, 50, false, false), 3);
            // It announced on node 4 now, as a seeder.
            assert!(apply(&mut h, up(1, 50, true, false), 4));
            assert_eq!(h.scrape(1), scrape(1, 0, 0));
            assert_eq!(
                h.shard.connection_of(&hash(1), &peer_id(50)),
                Some(ConnectionRef::remote(4))
            );
            // Node 3's late removal does nothing; node 4's removes it, and the torrent.
            assert!(!apply(&mut h, gone(1, 50), 3));
            assert_eq!(h.scrape(1), scrape(1, 0, 0));
            assert!(apply(&mut h, gone(1, 50), 4));
            assert_eq!(h.shard.num_torrents(), 0);
            assert_eq!(h.shard.num_remote_peers(), 0);
        }

        #[test]
        fn a_completion_counts_once_per_change_even_where_the_peer_is_refused() {
            let mut h = Harness::new(SwarmLimits {
                max_peers_per_torrent: 1,
                ..LIMITS
            });
            apply(&mut h, up(1, 50, true, true), 3);
            assert_eq!(h.scrape(1), scrape(1, 1, 0));
            // A second peer does not fit, but its completion counts.
            assert!(apply(&mut h, up(1, 51, true, true), 3));
            assert_eq!(h.scrape(1), scrape(1, 2, 0));
            assert_eq!(h.shard.num_rejected_by_limits(), 1);
            assert_eq!(h.shard.num_completed(), 2);
        }

        /// A client that announces to two nodes is each one's own peer; its completion
        /// counts once on each, whichever node hears of it first.
        #[test]
        fn a_completion_announced_to_two_nodes_counts_once() {
            for a_first in [true, false] {
                let (mut a, mut b) = (recording(), recording());
                a.announce(1, 1, 1, Some(5), Started);
                b.announce(1, 1, 1, Some(5), Started);
                a.announce(1, 1, 1, Some(0), Completed);
                let from_a = taken(&mut a);
                if a_first {
                    for change in from_a.clone() {
                        apply(&mut b, change, 0);
                    }
                }
                b.announce(1, 1, 1, Some(0), Completed);
                let from_b = taken(&mut b);
                for change in from_b {
                    apply(&mut a, change, 1);
                }
                if !a_first {
                    for change in from_a {
                        apply(&mut b, change, 0);
                    }
                }
                assert_eq!(a.scrape(1), scrape(1, 1, 0), "a first: {a_first}");
                assert_eq!(b.scrape(1), scrape(1, 1, 0), "a first: {a_first}");
            }
        }

        #[test]
        fn remote_peers_expire_and_are_never_sent_back() {
            let mut h = Harness::new(LIMITS);
            h.now = 100;
            let aged = PeerChange::WsUpsert(WsPeerUpsert {
                info_hash: hash(1),
                peer_id: peer_id(50),
                seeder: false,
                completed: false,
                age_secs: 30,
            });
            apply(&mut h, aged, 3);
            h.announce(1, 1, 1, Some(5), Started);
            h.now = 110;
            let mut own = Vec::new();
            h.shard
                .save_local_changes(SecondsSinceServerStart(h.now), 3600, &mut own);
            let own_age = PeerChange::WsUpsert(WsPeerUpsert {
                info_hash: hash(1),
                peer_id: peer_id(1),
                seeder: false,
                completed: false,
                age_secs: 10,
            });
            assert_eq!(own, [own_age]);
            // Seen at 70 there: gone at a cleaning after 70 + 100.
            let stats = h.shard.clean(SecondsSinceServerStart(171), 100);
            assert_eq!(stats.removed_peers, 1);
            assert_eq!(h.shard.num_remote_peers(), 0);
            assert_eq!(h.scrape(1), scrape(0, 0, 1));
        }

        #[test]
        fn a_gone_node_takes_its_peers_and_no_other() {
            let mut h = Harness::new(LIMITS);
            h.announce(1, 1, 1, Some(5), Started);
            apply(&mut h, up(1, 50, true, false), 3);
            apply(&mut h, up(1, 51, false, false), 4);
            apply(&mut h, up(2, 52, false, true), 3);
            assert_eq!(h.shard.num_remote_peers(), 3);
            assert_eq!(h.shard.forget_node(3), 2);
            assert_eq!(h.scrape(1), scrape(0, 0, 2));
            // Torrent 2 went with its only peer; its completed count is archived.
            assert_eq!(h.shard.num_torrents(), 1);
            assert_eq!(h.shard.num_remote_peers(), 1);
            assert_eq!(h.shard.forget_node(3), 0);
        }

        #[test]
        fn ip_changes_are_not_this_swarms() {
            let mut h = Harness::new(LIMITS);
            let ip = PeerChange::Removed {
                info_hash: hash(1),
                ip: std::net::Ipv4Addr::LOCALHOST.into(),
                port: 1,
            };
            assert!(!apply(&mut h, ip, 3));
        }

        /// What a node holds of a torrent: peer id to (seeder, node), where a local
        /// peer's node is the node itself.
        fn view(shard: &WsSwarmShard, me: u32) -> BTreeMap<(u8, u32), (bool, u32)> {
            let mut view = BTreeMap::new();
            for torrent in &shard.torrents {
                for (store, seeder) in [(&torrent.seeders, true), (&torrent.leechers, false)] {
                    for (id, peer) in store {
                        let node = peer.connection().remote_node().unwrap_or(me);
                        view.insert((torrent.info_hash.0[0], peer_number(id)), (seeder, node));
                    }
                }
            }
            view
        }

        proptest! {
            /// Two nodes, each with its own connections, announcing, stopping and
            /// closing at random, each applying the other's changes as they come: at
            /// any point after the changes are exchanged, both hold the same peers with
            /// the same status, each peer on the node where its connection is, and the
            /// same counts, completions included. (Peer ids
            /// are per node here, as different browsers' are; the limits never bind.)
            #[test]
            fn two_nodes_that_exchange_their_changes_hold_the_same_swarm(
                ops in proptest::collection::vec(
                    (0u32..2, 0u8..3, 0u64..4, 0u32..3, proptest::option::of(0u64..2), 0u8..5),
                    1..120,
                ),
            ) {
                let mut nodes = [recording(), recording()];
                for (node, h, c, id, left, what) in ops {
                    let n = node as usize;
                    let me = &mut nodes[n];
                    // Node-distinct peer ids and connections.
                    let id = node * 100 + id;
                    match what {
                        0 => { me.announce(h, c, id, left, Started); }
                        1 => { me.announce(h, c, id, left, NoEvent); }
                        2 => { me.announce(h, c, id, left, Stopped); }
                        3 => { me.announce(h, c, id, left, Completed); }
                        _ => me.close(c),
                    }
                    me.now += 1;
                    let now = me.now;
                    let changes = taken(me);
                    let other = &mut nodes[1 - n];
                    other.now = other.now.max(now);
                    for change in changes {
                        apply(other, change, node);
                    }
                    prop_assert_eq!(view(&nodes[0].shard, 0), view(&nodes[1].shard, 1));
                    for h in 0..3 {
                        prop_assert_eq!(nodes[0].scrape(h), nodes[1].scrape(h));
                    }
                }
                for (n, h) in nodes.iter().enumerate() {
                    let remote = view(&h.shard, n as u32)
                        .values()
                        .filter(|(_, node)| *node != n as u32)
                        .count();
                    prop_assert_eq!(h.shard.num_remote_peers(), remote);
                }
            }
        }
    }
}
