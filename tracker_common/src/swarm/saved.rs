//! A shard's state as a snapshot keeps it, and the ways back in: from a snapshot, and
//! from another node of a cluster (its changes one by one, its torrents for a resync).
//!
//! Saving walks the shard and hands each torrent, live peer and archived count to a
//! [`SaveSink`] (the snapshot's encoder), so that nothing is copied first. A peer's time
//! is saved as the seconds it has left before it expires, not as a time, because the
//! clock of the next run starts from zero.
//!
//! Restoring goes through the same admission as an announce (the `ledger` module):
//! the whole-tracker budget of torrents and peers, the peers per torrent and the peers
//! per address. A snapshot made under larger limits is cut down, not taken whole, and
//! what is refused is counted like a refused announce. A torrent left without peers
//! keeps its completed count in the archive, as one whose peers left would.
//!
//! Another node's changes ([`SwarmShard::apply_remote`]) and torrents
//! ([`SwarmShard::merge_torrent`]) go through the same admission, and the peers they
//! store are marked remote (see the cluster rules in the module `swarm`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::hash_table;

use tracker_cluster_protocol::{PeerChange, PeerUpsert};

use crate::time::SecondsSinceServerStart;
use crate::types::{InfoHash, Ip, PeerId};

use super::SwarmShard;
use super::peers::{Family, Peer, PeerKey, Peers, StoredPeerId, Torrent};
use super::rules::{LastSeen, Status, expiry_cutoff};

/// A peer as a snapshot keeps it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SavedPeer {
    /// Its address.
    pub ip: IpAddr,
    /// Its port (never 0: such peers are not stored).
    pub port: u16,
    /// The peer id it announced last; zeros from a shard that keeps none (the UDP
    /// tracker's, see [`super::NoPeerId`]).
    pub peer_id: PeerId,
    /// Whether it is a seeder.
    pub seeder: bool,
    /// Whether its completion was counted (so that it never counts again).
    pub completion_counted: bool,
    /// Seconds before it would expire, at least 1.
    pub remaining_secs: u32,
}

/// A torrent as a snapshot keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedTorrent {
    /// Its info hash.
    pub info_hash: InfoHash,
    /// Its completed count.
    pub completed: u32,
    /// Its live peers.
    pub peers: Vec<SavedPeer>,
}

/// Where a shard's saved state goes, record by record.
pub trait SaveSink {
    /// A torrent with `num_peers` live peers; that many [`Self::peer`] calls follow.
    fn torrent(&mut self, info_hash: &InfoHash, completed: u32, num_peers: u32);
    /// A peer of the last torrent.
    fn peer(&mut self, peer: &SavedPeer);
    /// An archived completed count, by the router's fingerprint of its info hash.
    fn archived(&mut self, fingerprint: u64, completed: u32);
}

/// Seconds a peer last seen `last_seen` has left at `now`, with `max_peer_age_secs`; 0 if
/// it expires now or has expired.
fn remaining_secs(
    last_seen: LastSeen,
    now: SecondsSinceServerStart,
    max_peer_age_secs: u32,
) -> u32 {
    last_seen
        .time()
        .0
        .saturating_add(max_peer_age_secs)
        .saturating_sub(now.0)
}

impl<D: StoredPeerId> SwarmShard<D> {
    /// Hands every torrent with its live peers (those with at least a second left), and
    /// every archived count, to `sink`. A torrent whose peers have all expired goes as an
    /// archived count, as cleaning would make it. Peers whose count would not fit a
    /// record (more than `u32::MAX` in one torrent) are left out.
    pub fn save(
        &self,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
        sink: &mut dyn SaveSink,
    ) {
        self.save_peers(now, max_peer_age_secs, sink, false);
    }

    /// [`Self::save`] of this node's own peers: those marked remote are left out, and a
    /// torrent that has no others goes as an archived count. What a cluster node answers
    /// a resync with: each node sends the peers it heard, so that no node gets its own
    /// peers back from another, nor a third node's second-hand.
    pub fn save_local(
        &self,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
        sink: &mut dyn SaveSink,
    ) {
        self.save_peers(now, max_peer_age_secs, sink, true);
    }

    fn save_peers(
        &self,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
        sink: &mut dyn SaveSink,
        local_only: bool,
    ) {
        let cutoff = expiry_cutoff(now, max_peer_age_secs);
        let live = |last_seen: LastSeen| {
            last_seen.seen_since(cutoff)
                && remaining_secs(last_seen, now, max_peer_age_secs) > 0
                && !(local_only && last_seen.is_remote())
        };
        for torrent in &self.torrents {
            let mut count: u32 = 0;
            for_each_peer(torrent, &mut |_, _, peer| {
                if live(peer.last_seen) {
                    count = count.saturating_add(1);
                }
            });
            if count == 0 {
                if torrent.completed > 0 {
                    sink.archived(
                        self.ledger.fingerprint(&torrent.info_hash),
                        torrent.completed,
                    );
                }
                continue;
            }
            sink.torrent(&torrent.info_hash, torrent.completed, count);
            let mut left = count;
            for_each_peer(torrent, &mut |ip, (port, status), peer| {
                if left == 0 || !live(peer.last_seen) {
                    return;
                }
                left -= 1;
                sink.peer(&SavedPeer {
                    ip,
                    port,
                    peer_id: peer.peer_id.peer_id().unwrap_or_default(),
                    seeder: status == Status::Seeder,
                    completion_counted: peer.last_seen.completion_counted(),
                    remaining_secs: remaining_secs(peer.last_seen, now, max_peer_age_secs),
                });
            });
        }
        for (fingerprint, completed) in self.ledger.archived_counts() {
            sink.archived(fingerprint, completed);
        }
    }

    /// Stores a saved torrent's peers as if they had announced at the time their
    /// remaining seconds give (with `max_peer_age_secs` of this run: a peer never gets
    /// more than that), within every limit; a peer of no remaining time, of port 0, or
    /// already stored is skipped. Returns the peers stored. A torrent that gets no peer
    /// keeps its completed count in the archive.
    pub fn restore_torrent(
        &mut self,
        saved: &SavedTorrent,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
    ) -> usize {
        let info_hash = saved.info_hash;
        let stored = self.store_saved_peers(saved, now, max_peer_age_secs, false);
        let hash = self.hash(&info_hash);
        let present = self
            .torrents
            .find(hash, |t| t.info_hash == info_hash)
            .is_some();
        if !present {
            self.restore_archived(self.ledger.fingerprint(&info_hash), saved.completed);
        }
        stored
    }

    /// Another node's torrent, for a resync: its peers are stored as
    /// [`Self::restore_torrent`] stores them, marked remote (peers stored here already are
    /// left as they are), and the torrent's completed count becomes the larger of its own
    /// and the saved one (its archived count, if the torrent is not stored). Returns the
    /// peers stored. Completions are not counted as downloads of this shard
    /// ([`Self::num_completed`]): they were counted where they happened.
    pub fn merge_torrent(
        &mut self,
        saved: &SavedTorrent,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
    ) -> usize {
        let info_hash = saved.info_hash;
        let stored = self.store_saved_peers(saved, now, max_peer_age_secs, true);
        let hash = self.hash(&info_hash);
        match self.torrents.find_mut(hash, |t| t.info_hash == info_hash) {
            Some(torrent) => torrent.completed = torrent.completed.max(saved.completed),
            None => self.ledger.archive_at_least(&info_hash, saved.completed),
        }
        stored
    }

    /// Stores the peers of `saved` (see [`Self::restore_torrent`]), marked `remote` or
    /// not; returns how many.
    fn store_saved_peers(
        &mut self,
        saved: &SavedTorrent,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
        remote: bool,
    ) -> usize {
        let info_hash = saved.info_hash;
        let hash = self.hash(&info_hash);
        let mut stored = 0;
        for peer in &saved.peers {
            if peer.remaining_secs == 0 || peer.port == 0 {
                continue;
            }
            let age = max_peer_age_secs.saturating_sub(peer.remaining_secs);
            let last_seen =
                LastSeen::new(now.sub_secs(age), peer.completion_counted).with_remote(remote);
            let status = if peer.seeder {
                Status::Seeder
            } else {
                Status::Leecher
            };
            let value = Peer {
                peer_id: D::from_peer_id(&peer.peer_id),
                last_seen,
            };
            let added = match peer.ip.to_canonical() {
                IpAddr::V4(ip) => self.restore_peer::<Ipv4Addr>(
                    hash,
                    &info_hash,
                    saved.completed,
                    ip,
                    peer.port,
                    status,
                    value,
                ),
                IpAddr::V6(ip) => self.restore_peer::<Ipv6Addr>(
                    hash,
                    &info_hash,
                    saved.completed,
                    ip,
                    peer.port,
                    status,
                    value,
                ),
            };
            stored += usize::from(added);
        }
        stored
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one peer's parts, each needed once; a struct would only rename them"
    )]
    fn restore_peer<F: Family>(
        &mut self,
        hash: u64,
        info_hash: &InfoHash,
        completed: u32,
        ip: F,
        port: u16,
        status: Status,
        peer: Peer<D>,
    ) -> bool {
        let key = PeerKey { ip, port };
        let Self {
            torrents,
            budget,
            ledger,
            ..
        } = self;
        let limits = ledger.limits();
        match torrents.entry(
            hash,
            |t| t.info_hash == *info_hash,
            |t| ledger.hash(&t.info_hash),
        ) {
            hash_table::Entry::Occupied(mut entry) => {
                let torrent = entry.get_mut();
                if F::peers(torrent).is_some_and(|peers| peers.locate(&key, status).is_some()) {
                    return false;
                }
                let admitted = ledger.admit_peer(budget, torrent.num_peers(), || {
                    F::peers(torrent).map_or(0, |p: &Peers<F, D>| p.count_group(ip.group()))
                        < limits.max_peers_per_ip
                });
                if admitted {
                    F::peers_or_insert(torrent).insert(status, key, peer);
                    ledger.peer_added(status);
                    if peer.last_seen.is_remote() {
                        ledger.remote_added();
                    }
                }
                admitted
            }
            hash_table::Entry::Vacant(entry) => {
                let Some(archived) =
                    ledger.admit_torrent(budget, info_hash, limits.max_peers_per_ip > 0)
                else {
                    return false;
                };
                let mut torrent = Torrent::new(*info_hash, completed.max(archived));
                F::peers_or_insert(&mut torrent).insert(status, key, peer);
                ledger.peer_added(status);
                if peer.last_seen.is_remote() {
                    ledger.remote_added();
                }
                entry.insert(torrent);
                true
            }
        }
    }

    /// Applies another node's change at `now`, recording nothing (see the cluster rules
    /// in the module `swarm`); returns whether anything changed.
    ///
    /// An upsert refreshes a stored peer of either status: its peer id and status (moving
    /// between the stores as an announce does), its last seen time the later of its own
    /// and `now - age_secs`, its remote mark as it was. A new peer goes through the
    /// admission of a restored one (the budget, the peers per torrent and per address; a
    /// refusal is counted like any) and is stored seen at `now - age_secs`, marked remote;
    /// a new torrent gets back its archived count. If the upsert's `completed` is set, the
    /// torrent's completed count (and the shard's downloads) grows by one and the peer's
    /// flag is set: the completion was counted once, on the node that handled it, and so
    /// it is here; unless the stored peer's flag was set already (a client that announced
    /// its completion to two nodes, each counting it: the same completion). A removal removes the peer if it is stored, and its
    /// torrent if that is left empty (archived as usual). A change of port 0 does
    /// nothing.
    pub fn apply_remote(&mut self, change: &PeerChange, now: SecondsSinceServerStart) -> bool {
        match change {
            PeerChange::Upsert(upsert) => {
                if upsert.port == 0 {
                    return false;
                }
                match upsert.ip.to_canonical() {
                    IpAddr::V4(ip) => self.apply_upsert::<Ipv4Addr>(upsert, ip, now),
                    IpAddr::V6(ip) => self.apply_upsert::<Ipv6Addr>(upsert, ip, now),
                }
            }
            PeerChange::Removed {
                info_hash,
                ip,
                port,
            } => {
                if *port == 0 {
                    return false;
                }
                let hash = self.hash(info_hash);
                let port = *port;
                match ip.to_canonical() {
                    IpAddr::V4(ip) => self.remove_peer(hash, info_hash, &PeerKey { ip, port }).1,
                    IpAddr::V6(ip) => self.remove_peer(hash, info_hash, &PeerKey { ip, port }).1,
                }
            }
            // WebTorrent peers are another swarm's.
            PeerChange::WsUpsert(_) | PeerChange::WsRemoved { .. } => false,
        }
    }

    /// [`Self::apply_remote`], whichever node the change came from: an endpoint is one
    /// peer whatever node it announced to. (The shard trait's form, which the WebTorrent
    /// swarm needs the node for.)
    pub fn apply_remote_from(
        &mut self,
        change: &PeerChange,
        _node: u32,
        now: SecondsSinceServerStart,
    ) -> bool {
        self.apply_remote(change, now)
    }

    /// Nothing: IP peers do not live on a node's connections, they are reachable at
    /// their address whatever becomes of the node they announced to, and expire by age.
    /// (The shard trait's form, for the WebTorrent swarm.) Returns 0.
    pub fn forget_node(&mut self, _node: u32) -> usize {
        0
    }

    /// Nothing: a resync sends IP peers in [`Self::save_local`]'s chunks. (The shard
    /// trait's form, which the WebTorrent swarm's peers, without addresses, need.)
    pub fn save_local_changes(
        &self,
        _now: SecondsSinceServerStart,
        _max_peer_age_secs: u32,
        _out: &mut Vec<PeerChange>,
    ) {
    }

    /// [`Self::apply_remote`] of an upsert of a peer of family `F` at `ip`.
    fn apply_upsert<F: Family>(
        &mut self,
        upsert: &PeerUpsert,
        ip: F,
        now: SecondsSinceServerStart,
    ) -> bool {
        let info_hash = upsert.info_hash;
        let hash = self.hash(&info_hash);
        let key = PeerKey {
            ip,
            port: upsert.port,
        };
        let status = if upsert.seeder {
            Status::Seeder
        } else {
            Status::Leecher
        };
        let seen = now.sub_secs(u32::from(upsert.age_secs));
        let peer_id = D::from_peer_id(&upsert.peer_id);
        let new_peer = Peer {
            peer_id,
            last_seen: LastSeen::new(seen, upsert.completed).with_remote(true),
        };
        let Self {
            torrents,
            budget,
            ledger,
            ..
        } = self;
        let limits = ledger.limits();
        let torrent = match torrents.entry(
            hash,
            |t| t.info_hash == info_hash,
            |t| ledger.hash(&t.info_hash),
        ) {
            hash_table::Entry::Occupied(entry) => entry.into_mut(),
            hash_table::Entry::Vacant(entry) => {
                let Some(archived) =
                    ledger.admit_torrent(budget, &info_hash, limits.max_peers_per_ip > 0)
                else {
                    return false;
                };
                let mut torrent = Torrent::new(info_hash, archived);
                F::peers_or_insert(&mut torrent).insert(status, key, new_peer);
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
        // Whether the peer's completion was counted here before: then this one is the
        // same completion come by another way (a client that announced it to two nodes,
        // each counting it), and does not count again.
        let mut counted_before = false;
        let mut changed = match F::peers(torrent).and_then(|peers| peers.locate(&key, status)) {
            Some(found) => {
                let peers = F::peers_or_insert(torrent);
                if found.status == status {
                    peers.peer_mut(found).is_some_and(|peer| {
                        counted_before = peer.last_seen.completion_counted();
                        let updated = Peer {
                            peer_id,
                            last_seen: peer.last_seen.seen_remotely(seen, upsert.completed),
                        };
                        let changed = updated != *peer;
                        *peer = updated;
                        changed
                    })
                } else if let Some(old) = peers.take(found.status, &key) {
                    counted_before = old.last_seen.completion_counted();
                    let moved = Peer {
                        peer_id,
                        last_seen: old.last_seen.seen_remotely(seen, upsert.completed),
                    };
                    peers.insert(status, key, moved);
                    ledger.peer_moved(found.status, status);
                    true
                } else {
                    false
                }
            }
            None => {
                let admitted = ledger.admit_peer(budget, torrent.num_peers(), || {
                    F::peers(torrent).map_or(0, |p| p.count_group(ip.group()))
                        < limits.max_peers_per_ip
                });
                if admitted {
                    F::peers_or_insert(torrent).insert(status, key, new_peer);
                    ledger.peer_added(status);
                    ledger.remote_added();
                }
                admitted
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

    /// Archives a saved completed count (see [`SaveSink::archived`]) by the archive's
    /// rules (a full set keeps the larger counts).
    pub fn restore_archived(&mut self, fingerprint: u64, completed: u32) {
        self.ledger.restore_archived(fingerprint, completed);
    }
}

/// What [`for_each_peer`] calls with every peer: its IP, its (port, status), the peer.
pub(super) type PeerVisitor<'a, D> = dyn FnMut(IpAddr, (u16, Status), &Peer<D>) + 'a;

/// Calls `f` with every peer of `torrent`, both families.
pub(super) fn for_each_peer<D: StoredPeerId>(torrent: &Torrent<D>, f: &mut PeerVisitor<'_, D>) {
    fn family<I: Ip + Into<IpAddr>, D: StoredPeerId>(
        peers: &Peers<I, D>,
        f: &mut PeerVisitor<'_, D>,
    ) {
        peers
            .seeders
            .for_each(|key, peer| f(key.ip.into(), (key.port, Status::Seeder), peer));
        peers
            .leechers
            .for_each(|key, peer| f(key.ip.into(), (key.port, Status::Leecher), peer));
    }
    family(&torrent.v4, f);
    if let Some(v6) = &torrent.v6 {
        family(v6.as_ref(), f);
    }
}
