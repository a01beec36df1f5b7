//! The peers of one torrent and the random choice of peers for an announce response.
//!
//! A torrent keeps, per address family, its seeders and its leechers in two separate
//! stores, so that both counts are `len()` calls and a seeder's response (leechers only)
//! needs no filtering. Random selection needs access by position, so both store forms are
//! ordered sequences; removal is `swap_remove`, which is O(1) and only reorders the one peer
//! moved into the hole, and order carries no meaning here.
//!
//! A stored peer is keyed by its endpoint (IP address and port) within the torrent; its
//! peer id is data, kept only for the answers that list it.
//!
//! # What a peer keeps of its peer id
//! The stores are generic over [`StoredPeerId`], what a stored peer keeps of its id.
//! The HTTP tracker keeps the whole [`PeerId`]: its non-compact answers list it (BEP 3),
//! and so does the admin API. The UDP tracker keeps nothing ([`NoPeerId`], zero-sized):
//! a UDP announce answer is addresses and ports only (BEP 15), and since a peer is keyed
//! by its endpoint nothing else reads the id. That makes a stored peer 4 bytes instead
//! of 24, and an entry of a store 10 bytes for IPv4 and 22 for IPv6 instead of 30 and 42
//! (the size assertions below). What the UDP kind cannot give back (a snapshot's
//! or a resync's peer ids, the admin API's) is zeros or `None`; a cluster change still
//! carries the announce's own peer id, which comes from the request, not the store.
//!
//! # Two forms of store
//! Most torrents of a public tracker have one or two peers, and a hash map is a poor fit
//! for them: an [`IndexMap`] is 64 bytes inline (with its hasher's seed) and, from its
//! first peer on, allocates an index table of at least four buckets besides its entries.
//! So a [`PeerStore`] is a plain vector of exactly as many peers as it holds, searched
//! linearly, up to [`SMALL_MAX`] peers, and a boxed [`LargeStore`] above that, where a
//! linear search would cost too much. Its peers are a `super::dense::DenseMap`: the same
//! entries as a small store's in a vector, indexed by a hash table of 4-byte positions. Both forms are addressed by position in the same
//! way, so [`Location`] and the sampling in [`sample_into`] work on either.
//!
//! # Peers per address
//! The cap on peers per address (an IPv4 address or an IPv6 /64, [`Ip::Group`]) needs
//! the number of peers a group holds in a torrent. A small store counts by a linear scan,
//! which it does anyway for lookups; a large store keeps a side table from group to count,
//! updated wherever a peer enters or leaves it. Only a new peer asks for the count.
//!
//! # Shared with the WebTorrent swarm
//! Who is offered to whom ([`response_pool`]) and the uniform choice ([`sample_into`],
//! over any [`PeerPool`]) serve `super::ws` too, on its own stores, so that both kinds of
//! shard answer by the same rule with the same sampler.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::{DefaultHashBuilder, HashMap};
use indexmap::IndexMap;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::time::SecondsSinceServerStart;
use crate::types::{AnnouncePeer, InfoHash, Ip, PeerId};

use super::dense::DenseMap;
use super::ledger::Expired;
use super::rules::{LastSeen, Status};

/// What identifies a peer within a torrent: the endpoint it announced from and listens on.
///
/// The IP is the request's source address, so that nobody can move or remove another
/// address's peer, and a client that restarts with a new peer id on the same endpoint
/// replaces its old entry instead of being handed it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PeerKey<I: Ip> {
    pub(super) ip: I,
    pub(super) port: u16,
}

/// What a stored peer keeps of its peer id (see the module documentation): the id itself
/// ([`PeerId`], for the HTTP tracker, whose answers list it) or nothing ([`NoPeerId`],
/// for the UDP tracker, whose answers never do).
pub trait StoredPeerId: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// What is kept of `id`.
    fn from_peer_id(id: &PeerId) -> Self;
    /// The id kept, to hand out (snapshots, the admin API); `None` when none is kept.
    fn peer_id(&self) -> Option<PeerId>;
    /// The id an announce answer is made with: the one kept, or zeros when none is kept
    /// (the answers of such a shard never read it). A reference, so that sampling copies
    /// nothing it does not need.
    fn answered(&self) -> &PeerId;
}

/// The id of the answers of a kind that keeps none: never read by them.
static NO_PEER_ID: PeerId = PeerId([0; 20]);

impl StoredPeerId for PeerId {
    fn from_peer_id(id: &PeerId) -> Self {
        *id
    }

    fn peer_id(&self) -> Option<PeerId> {
        Some(*self)
    }

    fn answered(&self) -> &PeerId {
        self
    }
}

/// No peer id kept: the UDP tracker's stored peers, whose answers never list one.
/// Zero-sized, so that a stored peer is its last-seen word alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NoPeerId;

impl StoredPeerId for NoPeerId {
    fn from_peer_id(_: &PeerId) -> Self {
        Self
    }

    fn peer_id(&self) -> Option<PeerId> {
        None
    }

    fn answered(&self) -> &PeerId {
        &NO_PEER_ID
    }
}

/// What a torrent stores per peer besides its key: what it keeps of the peer id (`D`)
/// and a `u32`. 24 bytes with the whole id, 4 without, because a public tracker holds
/// millions of these; the seeder flag is not stored at all but implied by which store
/// the peer is in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Peer<D> {
    pub(super) peer_id: D,
    pub(super) last_seen: LastSeen,
}

/// One peer of a store: with the peer id 30 bytes for IPv4 and 42 for IPv6, without it
/// 10 and 22 (everything in it is aligned to 2 bytes).
type PeerEntry<I, D> = (PeerKey<I>, Peer<D>);

const _: () = assert!(size_of::<Peer<PeerId>>() == 24);
const _: () = assert!(size_of::<PeerEntry<Ipv4Addr, PeerId>>() == 30);
const _: () = assert!(size_of::<PeerEntry<Ipv6Addr, PeerId>>() == 42);
const _: () = assert!(size_of::<Peer<NoPeerId>>() == 4);
const _: () = assert!(size_of::<PeerEntry<Ipv4Addr, NoPeerId>>() == 10);
const _: () = assert!(size_of::<PeerEntry<Ipv6Addr, NoPeerId>>() == 22);

/// The peers of a large store, by endpoint: entries as compact as a small store's, plus
/// a 4-byte position per index bucket (see `super::dense`).
type PeerMap<I, D> = DenseMap<PeerKey<I>, Peer<D>>;

/// The large form of a store: the peers, and how many of them each address group holds
/// (only groups holding at least one). Boxed in [`PeerStore`], so the two hashers' seeds
/// and the second table cost only the few stores large enough to need a map.
pub(super) struct LargeStore<I: Ip, D> {
    peers: PeerMap<I, D>,
    groups: HashMap<I::Group, u32, DefaultHashBuilder>,
}

impl<I: Ip, D: StoredPeerId> LargeStore<I, D> {
    fn from_entries(entries: impl ExactSizeIterator<Item = PeerEntry<I, D>>) -> Self {
        let mut store = Self {
            peers: PeerMap::with_capacity(entries.len()),
            groups: HashMap::with_hasher(DefaultHashBuilder::default()),
        };
        for (key, peer) in entries {
            store.insert(key, peer);
        }
        store
    }

    /// Adds a peer whose key is not here yet; returns its index.
    fn insert(&mut self, key: PeerKey<I>, peer: Peer<D>) -> usize {
        let count = self.groups.entry(key.ip.group()).or_insert(0);
        *count = count.saturating_add(1);
        self.peers.insert_new(key, peer)
    }

    fn group_left(groups: &mut HashMap<I::Group, u32, DefaultHashBuilder>, ip: &I) {
        if let hashbrown::hash_map::Entry::Occupied(mut entry) = groups.entry(ip.group()) {
            if *entry.get() <= 1 {
                entry.remove();
            } else {
                *entry.get_mut() -= 1;
            }
        }
    }
}

/// The most peers a store keeps in its small form; one more makes it a map. The choice
/// is measured in `documents/` (the announce bench of mid-sized torrents).
pub(super) const SMALL_MAX: usize = 16;

/// A map left with this many peers or fewer after a cleaning goes back to the small form.
/// Half of [`SMALL_MAX`], so that a store whose size hovers around the threshold does not
/// switch forms at every cleaning: after going back it takes `SMALL_MAX / 2 + 1` new peers
/// before it is a map again.
const SMALL_AFTER_CLEANING: usize = SMALL_MAX / 2;

/// The peers of one status and one address family within one torrent.
pub(super) enum PeerStore<I: Ip, D> {
    /// Up to [`SMALL_MAX`] peers, searched linearly. A boxed slice, whose capacity is
    /// its length (growth and removal reallocate exactly), so a store of one peer is one
    /// allocation of one entry, an empty store allocates nothing, and no capacity word
    /// is kept. Reallocating on every change costs a `realloc` of a few hundred bytes at
    /// most, only when a peer arrives, leaves or changes status, never on the
    /// re-announces that make up most of the traffic.
    Small(Box<[PeerEntry<I, D>]>),
    /// More than [`SMALL_MAX`] peers when it was made, found by hash. Boxed so that the
    /// enum stays the size of a boxed slice.
    Large(Box<LargeStore<I, D>>),
}

// The point of the two forms: a store is no bigger inline than a boxed slice (the
// compiler keeps the form in the slice pointer's niche), so that a torrent's table slot
// is 64 bytes, one cache line.
const _: () = assert!(size_of::<PeerStore<Ipv4Addr, PeerId>>() == 16);
const _: () = assert!(size_of::<PeerStore<Ipv6Addr, PeerId>>() == 16);
const _: () = assert!(size_of::<PeerStore<Ipv4Addr, NoPeerId>>() == 16);
const _: () = assert!(size_of::<PeerStore<Ipv6Addr, NoPeerId>>() == 16);

/// `entries` with `change` applied to them as a vector, reallocated to the exact length.
fn resized<E>(entries: &mut Box<[E]>, change: impl FnOnce(&mut Vec<E>)) {
    let mut vec = std::mem::take(entries).into_vec();
    change(&mut vec);
    *entries = vec.into_boxed_slice();
}

impl<I: Ip, D: StoredPeerId> PeerStore<I, D> {
    /// Reads the first entry, so that it is in cache when an announce looks here.
    fn touch(&self) {
        let first = match self {
            Self::Small(entries) => entries.first(),
            Self::Large(store) => store.peers.as_slice().first(),
        };
        std::hint::black_box(first.map(|(key, _)| key.port));
    }

    /// An empty store, which allocates nothing.
    fn new() -> Self {
        Self::Small(Box::default())
    }

    /// Peers stored.
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Small(entries) => entries.len(),
            Self::Large(store) => store.peers.len(),
        }
    }

    /// Whether the store holds no peer.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position of the peer with `key`, if it is here.
    fn get_index_of(&self, key: &PeerKey<I>) -> Option<usize> {
        match self {
            Self::Small(entries) => entries.iter().position(|(stored, _)| stored == key),
            Self::Large(store) => store.peers.get_index_of(key),
        }
    }

    /// The peer at `index`.
    fn peer(&self, index: usize) -> Option<&Peer<D>> {
        match self {
            Self::Small(entries) => entries.get(index).map(|(_, peer)| peer),
            Self::Large(store) => store.peers.as_slice().get(index).map(|(_, peer)| peer),
        }
    }

    /// The peer at `index`, to change.
    fn peer_mut(&mut self, index: usize) -> Option<&mut Peer<D>> {
        match self {
            Self::Small(entries) => entries.get_mut(index).map(|(_, peer)| peer),
            Self::Large(store) => store.peers.value_mut(index),
        }
    }

    /// How many peers of address group `group` are here.
    fn count_group(&self, group: I::Group) -> usize {
        match self {
            Self::Small(entries) => entries
                .iter()
                .filter(|(key, _)| key.ip.group() == group)
                .count(),
            Self::Large(store) => store
                .groups
                .get(&group)
                .map_or(0, |&count| usize::try_from(count).unwrap_or(usize::MAX)),
        }
    }

    /// Adds a peer whose key is not here; returns its index. A full small store becomes a
    /// map, with every peer at the same position.
    fn push(&mut self, key: PeerKey<I>, peer: Peer<D>) -> usize {
        match self {
            Self::Small(entries) => {
                let index = entries.len();
                if index < SMALL_MAX {
                    // `push` alone would double the capacity, which the slice then gives
                    // back: one exact `realloc` instead.
                    resized(entries, |vec| {
                        vec.reserve_exact(1);
                        vec.push((key, peer));
                    });
                } else {
                    let entries = std::mem::take(entries).into_vec();
                    let mut store = LargeStore::from_entries(entries.into_iter());
                    store.insert(key, peer);
                    *self = Self::Large(Box::new(store));
                }
                index
            }
            Self::Large(store) => store.insert(key, peer),
        }
    }

    /// Removes the peer with `key` and returns it. The last peer moves into its place.
    ///
    /// A map stays a map here, however small it gets: going back to the small form is left
    /// to cleaning ([`Self::remove_seen_before`]), the one place that gives memory back.
    fn swap_remove(&mut self, key: &PeerKey<I>) -> Option<Peer<D>> {
        match self {
            Self::Small(entries) => {
                let index = entries.iter().position(|(stored, _)| stored == key)?;
                let (_, peer) = *entries.get(index)?;
                // Reallocated to the length (see `Small`): frees the buffer of an emptied
                // store, such as the leechers of a torrent whose only leecher completed.
                resized(entries, |vec| {
                    vec.swap_remove(index);
                });
                Some(peer)
            }
            Self::Large(store) => {
                let peer = store.peers.swap_remove(key)?;
                LargeStore::<I, D>::group_left(&mut store.groups, &key.ip);
                Some(peer)
            }
        }
    }

    /// Removes the peers last seen before `cutoff`; returns how many went, and how many of
    /// those were remote. Then gives back
    /// memory: a small store is reallocated to its length, a map left with
    /// [`SMALL_AFTER_CLEANING`] peers or fewer becomes a small store, and a larger map that
    /// uses a quarter of its capacity or less is shrunk. Without this, a torrent that was
    /// once huge would keep its peak memory for as long as it has a single peer.
    fn remove_seen_before(&mut self, cutoff: SecondsSinceServerStart) -> (usize, usize) {
        let mut remote = 0usize;
        let mut keep = |peer: &Peer<D>| {
            let keep = peer.last_seen.seen_since(cutoff);
            if !keep && peer.last_seen.is_remote() {
                remote += 1;
            }
            keep
        };
        match self {
            Self::Small(entries) => {
                let before = entries.len();
                resized(entries, |vec| vec.retain(|(_, peer)| keep(peer)));
                (before.saturating_sub(entries.len()), remote)
            }
            Self::Large(store) => {
                let LargeStore { peers, groups } = &mut **store;
                let before = peers.len();
                peers.retain(|key, peer| {
                    let keep = keep(peer);
                    if !keep {
                        LargeStore::<I, D>::group_left(groups, &key.ip);
                    }
                    keep
                });
                let removed = before.saturating_sub(peers.len());
                if peers.len() <= SMALL_AFTER_CLEANING {
                    *self = Self::Small(peers.take_entries().into_boxed_slice());
                } else {
                    peers.shrink_if_sparse();
                    if let Some(target) = sparse_shrink_target(groups.len(), groups.capacity()) {
                        groups.shrink_to(target);
                    }
                }
                (removed, remote)
            }
        }
    }

    /// Calls `f` with every stored peer, in store order.
    pub(super) fn for_each(&self, mut f: impl FnMut(&PeerKey<I>, &Peer<D>)) {
        match self {
            Self::Small(entries) => entries.iter().for_each(|(key, peer)| f(key, peer)),
            Self::Large(store) => store
                .peers
                .as_slice()
                .iter()
                .for_each(|(key, peer)| f(key, peer)),
        }
    }

    /// Whether the store is in its large form.
    #[cfg(test)]
    pub(super) fn is_large(&self) -> bool {
        matches!(self, Self::Large(_))
    }

    /// Peers the store has room for without reallocating.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        match self {
            Self::Small(entries) => entries.len(),
            Self::Large(store) => store.peers.capacity(),
        }
    }

    /// The store's form rules: a small store holds at most [`SMALL_MAX`] peers and no
    /// spare room; right after cleaning, a map holds more than [`SMALL_AFTER_CLEANING`];
    /// a map's group table counts exactly its peers' groups.
    #[cfg(test)]
    pub(super) fn form_is_consistent(&self, just_cleaned: bool) -> bool {
        match self {
            Self::Small(entries) => entries.len() <= SMALL_MAX,
            Self::Large(store) => {
                let mut recount: std::collections::HashMap<I::Group, u32> =
                    std::collections::HashMap::new();
                for (key, _) in store.peers.as_slice() {
                    *recount.entry(key.ip.group()).or_default() += 1;
                }
                let groups_exact = recount.len() == store.groups.len()
                    && recount
                        .iter()
                        .all(|(group, count)| store.groups.get(group) == Some(count));
                groups_exact && (!just_cleaned || store.peers.len() > SMALL_AFTER_CLEANING)
            }
        }
    }

    /// Every stored peer: (key, peer).
    #[cfg(test)]
    pub(super) fn entries(&self) -> Vec<PeerEntry<I, D>> {
        match self {
            Self::Small(entries) => entries.to_vec(),
            Self::Large(store) => store.peers.as_slice().to_vec(),
        }
    }
}

/// Where a stored peer is: its store and its position in that store. Valid until the
/// torrent next changes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Location {
    pub(super) status: Status,
    pub(super) index: usize,
}

/// One torrent's peers of one address family.
pub(super) struct Peers<I: Ip, D> {
    pub(super) seeders: PeerStore<I, D>,
    pub(super) leechers: PeerStore<I, D>,
}

impl<I: Ip, D: StoredPeerId> Peers<I, D> {
    /// No peers, which allocates nothing.
    pub(super) fn new() -> Self {
        Self {
            seeders: PeerStore::new(),
            leechers: PeerStore::new(),
        }
    }

    /// Reads the first entries of both stores (see [`super::SwarmShard::touch`]).
    pub(super) fn touch(&self) {
        self.seeders.touch();
        self.leechers.touch();
    }

    /// Whether there is no peer.
    pub(super) fn is_empty(&self) -> bool {
        self.seeders.is_empty() && self.leechers.is_empty()
    }

    fn store(&self, status: Status) -> &PeerStore<I, D> {
        match status {
            Status::Seeder => &self.seeders,
            Status::Leecher => &self.leechers,
        }
    }

    fn store_mut(&mut self, status: Status) -> &mut PeerStore<I, D> {
        match status {
            Status::Seeder => &mut self.seeders,
            Status::Leecher => &mut self.leechers,
        }
    }

    /// Where the peer with `key` is stored, if it is. `status` is where to look first: an
    /// announcer is usually where it was.
    pub(super) fn locate(&self, key: &PeerKey<I>, status: Status) -> Option<Location> {
        let (first, second, other) = match status {
            Status::Seeder => (&self.seeders, &self.leechers, Status::Leecher),
            Status::Leecher => (&self.leechers, &self.seeders, Status::Seeder),
        };
        if let Some(index) = first.get_index_of(key) {
            return Some(Location { status, index });
        }
        second.get_index_of(key).map(|index| Location {
            status: other,
            index,
        })
    }

    /// The stored peer at `location`.
    pub(super) fn peer(&self, location: Location) -> Option<&Peer<D>> {
        self.store(location.status).peer(location.index)
    }

    /// The stored peer at `location`, to change.
    pub(super) fn peer_mut(&mut self, location: Location) -> Option<&mut Peer<D>> {
        self.store_mut(location.status).peer_mut(location.index)
    }

    /// Removes the peer with `key` from the store of `status`.
    pub(super) fn take(&mut self, status: Status, key: &PeerKey<I>) -> Option<Peer<D>> {
        self.store_mut(status).swap_remove(key)
    }

    /// Removes the peer with `key` from whichever store holds it: which, and the peer.
    pub(super) fn remove(&mut self, key: &PeerKey<I>) -> Option<(Status, Peer<D>)> {
        if let Some(peer) = self.seeders.swap_remove(key) {
            Some((Status::Seeder, peer))
        } else {
            self.leechers
                .swap_remove(key)
                .map(|peer| (Status::Leecher, peer))
        }
    }

    /// Adds a peer whose key is stored in neither store; returns where it went.
    pub(super) fn insert(&mut self, status: Status, key: PeerKey<I>, peer: Peer<D>) -> Location {
        let index = self.store_mut(status).push(key, peer);
        Location { status, index }
    }

    /// Peers of address group `group`, seeders and leechers.
    pub(super) fn count_group(&self, group: I::Group) -> usize {
        self.seeders
            .count_group(group)
            .saturating_add(self.leechers.count_group(group))
    }

    /// Removes the peers last seen before `cutoff`; returns how many seeders and leechers
    /// went, and how many of them were remote. Each store then gives back memory it no
    /// longer needs (see [`PeerStore::remove_seen_before`]).
    pub(super) fn remove_seen_before(&mut self, cutoff: SecondsSinceServerStart) -> Expired {
        let (seeders, remote_seeders) = self.seeders.remove_seen_before(cutoff);
        let (leechers, remote_leechers) = self.leechers.remove_seen_before(cutoff);
        Expired {
            seeders,
            leechers,
            remote: remote_seeders.saturating_add(remote_leechers),
        }
    }

    /// Fills `out` (which the caller has cleared) with up to `numwant` peers chosen at
    /// random for an announcer of status `announcer_status` stored at `announcer` (`None`
    /// if it is not stored here), from the pool [`response_pool`] gives it.
    pub(super) fn select_peers<P: AnnouncePeer<I>>(
        &self,
        announcer_status: Status,
        announcer: Option<Location>,
        numwant: usize,
        rng: &mut SmallRng,
        out: &mut Vec<P>,
    ) {
        // An empty vector allocates nothing.
        let no_peers = PeerStore::new();
        let (first, second, skip) = response_pool(
            announcer_status,
            announcer,
            &self.seeders,
            &self.leechers,
            &no_peers,
            PeerStore::len,
        );
        sample_stores(first, second, skip, numwant, rng, out);
    }
}

/// The pool of peers an announcer of status `announcer_status` is answered from, as two
/// stores read one after the other (indexed as one range), and the pool index to leave
/// out: the announcer's, if it is stored at `announcer`. A seeder is offered leechers
/// only (seeders are useless to it), a leecher seeders then leechers. Both kinds of shard
/// answer from this, whatever their stores `S` (`no_peers` is an empty one, `len` a
/// store's length).
pub(super) fn response_pool<'a, S: ?Sized>(
    announcer_status: Status,
    announcer: Option<Location>,
    seeders: &'a S,
    leechers: &'a S,
    no_peers: &'a S,
    len: impl Fn(&S) -> usize,
) -> (&'a S, &'a S, Option<usize>) {
    let (first, second) = match announcer_status {
        Status::Seeder => (leechers, no_peers),
        Status::Leecher => (seeders, leechers),
    };
    let skip = announcer.and_then(|location| match (announcer_status, location.status) {
        (Status::Seeder, Status::Seeder) => None,
        (Status::Seeder, Status::Leecher) | (Status::Leecher, Status::Seeder) => {
            Some(location.index)
        }
        (Status::Leecher, Status::Leecher) => Some(len(first).saturating_add(location.index)),
    });
    (first, second, skip)
}

/// One torrent: its completed count and its peers of both address families, so that its
/// limits hold across families and it is one entry of the torrent table.
///
/// The IPv6 peers are boxed and only present while there are some: most torrents have
/// IPv4 peers only, and they pay 8 bytes for the pointer instead of 32 for two stores.
/// With the info hash inline the whole table slot is 64 bytes, whatever the peers keep
/// of their ids (`D`): in a large table (a page-aligned allocation of 64-byte slots
/// before its control bytes) each slot is exactly one cache line, so that finding a
/// torrent and reading its stores costs one miss, not two.
pub(super) struct Torrent<D> {
    pub(super) info_hash: InfoHash,
    /// Completed downloads, for the scrape's `downloaded` / UDP `completed` field.
    pub(super) completed: u32,
    pub(super) v4: Peers<Ipv4Addr, D>,
    pub(super) v6: Option<Box<Peers<Ipv6Addr, D>>>,
}

const _: () = assert!(size_of::<Torrent<PeerId>>() == 64);
const _: () = assert!(size_of::<Torrent<NoPeerId>>() == 64);

impl<D: StoredPeerId> Torrent<D> {
    /// A torrent without peers, which allocates nothing.
    pub(super) fn new(info_hash: InfoHash, completed: u32) -> Self {
        Self {
            info_hash,
            completed,
            v4: Peers::new(),
            v6: None,
        }
    }

    /// Seeders and leechers of both families.
    pub(super) fn num_peers(&self) -> usize {
        let (seeders, leechers) = self.counts();
        seeders.saturating_add(leechers)
    }

    /// Seeders and leechers, both families.
    pub(super) fn counts(&self) -> (usize, usize) {
        let (mut seeders, mut leechers) = (self.v4.seeders.len(), self.v4.leechers.len());
        if let Some(v6) = &self.v6 {
            seeders = seeders.saturating_add(v6.seeders.len());
            leechers = leechers.saturating_add(v6.leechers.len());
        }
        (seeders, leechers)
    }

    /// Whether the torrent has no peer left (it is then removed from its table).
    pub(super) fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.as_ref().is_none_or(|v6| v6.is_empty())
    }

    /// Removes the peers last seen before `cutoff`, both families; returns how many
    /// seeders and leechers went, and how many of them were remote.
    pub(super) fn remove_seen_before(&mut self, cutoff: SecondsSinceServerStart) -> Expired {
        let mut expired = self.v4.remove_seen_before(cutoff);
        if let Some(v6) = &mut self.v6 {
            expired = expired.plus(v6.remove_seen_before(cutoff));
        }
        <Ipv6Addr as Family>::drop_if_empty::<D>(self);
        expired
    }
}

/// Access to one family's peers of a [`Torrent`], so that the announce code is written
/// once for both.
pub(super) trait Family: Ip + Sized + Into<IpAddr> {
    /// This family's peers, if any.
    fn peers<D: StoredPeerId>(torrent: &Torrent<D>) -> Option<&Peers<Self, D>>;
    /// This family's peers, if any.
    fn peers_mut<D: StoredPeerId>(torrent: &mut Torrent<D>) -> Option<&mut Peers<Self, D>>;
    /// This family's peers, made if there are none.
    fn peers_or_insert<D: StoredPeerId>(torrent: &mut Torrent<D>) -> &mut Peers<Self, D>;
    /// Frees this family's part of the torrent if it holds no peer.
    fn drop_if_empty<D: StoredPeerId>(torrent: &mut Torrent<D>);
}

impl Family for Ipv4Addr {
    fn peers<D: StoredPeerId>(torrent: &Torrent<D>) -> Option<&Peers<Self, D>> {
        Some(&torrent.v4)
    }
    fn peers_mut<D: StoredPeerId>(torrent: &mut Torrent<D>) -> Option<&mut Peers<Self, D>> {
        Some(&mut torrent.v4)
    }
    fn peers_or_insert<D: StoredPeerId>(torrent: &mut Torrent<D>) -> &mut Peers<Self, D> {
        &mut torrent.v4
    }
    fn drop_if_empty<D: StoredPeerId>(_: &mut Torrent<D>) {}
}

impl Family for Ipv6Addr {
    fn peers<D: StoredPeerId>(torrent: &Torrent<D>) -> Option<&Peers<Self, D>> {
        torrent.v6.as_deref()
    }
    fn peers_mut<D: StoredPeerId>(torrent: &mut Torrent<D>) -> Option<&mut Peers<Self, D>> {
        torrent.v6.as_deref_mut()
    }
    fn peers_or_insert<D: StoredPeerId>(torrent: &mut Torrent<D>) -> &mut Peers<Self, D> {
        torrent.v6.get_or_insert_with(|| Box::new(Peers::new()))
    }
    fn drop_if_empty<D: StoredPeerId>(torrent: &mut Torrent<D>) {
        if torrent.v6.as_ref().is_some_and(|v6| v6.is_empty()) {
            torrent.v6 = None;
        }
    }
}
/// [`sample_into`] on the pool made of `first` followed by `second`, whatever their forms.
///
/// One copy of the sampling code per pair of forms, so that it reads each form directly,
/// with no branch on the form per peer.
fn sample_stores<I: Ip, D: StoredPeerId, P: AnnouncePeer<I>>(
    first: &PeerStore<I, D>,
    second: &PeerStore<I, D>,
    skip: Option<usize>,
    numwant: usize,
    rng: &mut SmallRng,
    out: &mut Vec<P>,
) {
    match (first, second) {
        (PeerStore::Small(a), PeerStore::Small(b)) => {
            sample_into(&**a, &**b, skip, numwant, rng, out);
        }
        (PeerStore::Small(a), PeerStore::Large(b)) => {
            sample_into(&**a, b.peers.as_slice(), skip, numwant, rng, out);
        }
        (PeerStore::Large(a), PeerStore::Small(b)) => {
            sample_into(a.peers.as_slice(), &**b, skip, numwant, rng, out);
        }
        (PeerStore::Large(a), PeerStore::Large(b)) => {
            sample_into(
                a.peers.as_slice(),
                b.peers.as_slice(),
                skip,
                numwant,
                rng,
                out,
            );
        }
    }
}

/// Below this capacity a table is never shrunk: reallocating saves too little to be worth it.
const MIN_CAPACITY_TO_SHRINK: usize = 16;

/// The capacity a table of `len` entries and room for `capacity` shrinks to, if it
/// should: twice its length, once it uses a quarter of its capacity or less. The gap
/// between the two thresholds keeps a table whose size hovers around one of them from
/// reallocating at every cleaning. The one rule for every store's tables.
pub(super) fn sparse_shrink_target(len: usize, capacity: usize) -> Option<usize> {
    (capacity >= MIN_CAPACITY_TO_SHRINK && len <= capacity / 4).then(|| len.saturating_mul(2))
}

/// Shrinks `map` as [`sparse_shrink_target`] says.
pub(super) fn shrink_if_sparse<K, V, S>(map: &mut IndexMap<K, V, S>)
where
    K: std::hash::Hash + Eq,
    S: std::hash::BuildHasher,
{
    if let Some(target) = sparse_shrink_target(map.len(), map.capacity()) {
        map.shrink_to(target);
    }
}

/// The peers of one store read by position, whichever its form: all that [`sample_into`]
/// needs, `P` being the response entry made of a stored peer. A trait rather than an enum
/// so that the sampling is compiled for each form and reads it directly.
pub(super) trait PeerPool<P> {
    /// Peers in the pool.
    fn pool_len(&self) -> usize;
    /// The response entry of the peer at `index`; `None` past the end.
    fn response_peer(&self, index: usize) -> Option<P>;
}

impl<I: Ip, D: StoredPeerId, P: AnnouncePeer<I>> PeerPool<P> for [PeerEntry<I, D>] {
    fn pool_len(&self) -> usize {
        self.len()
    }

    fn response_peer(&self, index: usize) -> Option<P> {
        self.get(index)
            .map(|(key, peer)| P::from_stored(key.ip, key.port, peer.peer_id.answered()))
    }
}

/// How many consecutive pool entries [`sample_into`] takes at a time from a large pool.
/// Eight entries of a large store are 96 to 352 bytes (IPv4 without peer ids to IPv6 with
/// them): a handful of adjacent cache lines, which the hardware prefetcher brings in
/// together. (Pools of small stores are a few cache lines in all.)
const RUN_LEN: usize = 8;

/// Appends to `out` up to `numwant` distinct peers chosen at random from the pool made of
/// `first` followed by `second`, leaving out pool index `skip` (the announcer).
///
/// # Why stratified sampling
/// The pool can hold hundreds of thousands of peers and this runs for every announce, so
/// the choice must cost O(numwant), allocate nothing, and still give every peer the same
/// chance. Sampling indices independently would return duplicates, and removing them needs
/// a set (an allocation) or rejection loops (unbounded time when numwant is close to the
/// pool size). Instead the candidates' index range is cut into `m` strata of nearly equal
/// size (sizes differ by at most one), a run of consecutive indices starting at a uniformly
/// random place is taken from each stratum, the run lengths adding up to `numwant`, and the
/// whole range is rotated by a random offset. Runs in distinct strata never overlap, so
/// there are never duplicates. Exactly `numwant` indices are chosen every time and the
/// rotation is uniform and independent of them, so every candidate's chance of being
/// chosen is exactly `numwant / candidates`, whatever the sizes of strata and runs.
///
/// # Why runs
/// In a large pool each index is a cache miss of its own, and drawing the 30 peers of a
/// typical response one by one made this function a large share of the tracker's CPU
/// time. A run of [`RUN_LEN`] peers is a few consecutive cache lines, which the hardware
/// fetches together and prefetches, so a response costs a few misses per run instead of
/// one per peer. The price is that neighbours in the map are returned together. That is
/// harmless: map order is arrival order disturbed by `swap_remove` and says nothing about a
/// peer that matters to the one asking, each response still comes from `m` random places
/// spread over the whole pool, and which neighbours come together changes with every
/// announce.
///
/// A run must fit in its stratum. With at least `2 * numwant` candidates it does: runs are
/// at most `ceil(numwant / m)` long and strata at least `floor(candidates / m)`, which is
/// no less since `numwant / m >= 1`. Smaller pools take single peers (`m = numwant`), the
/// sampling before runs were introduced; such pools are small enough to stay in cache.
///
/// # The announcer
/// The announcer is taken out of the index range before sampling: candidate `c` is pool
/// index `c` below `skip` and `c + 1` from there on. Drawing one index more and dropping
/// the announcer if it is hit (otherwise the last pick) would not be fair with runs: when
/// the announcer is hit, so are the peers just after it in the same run, and those are
/// then never the dropped last pick. They would get up to about `1 / numwant` more than
/// their share (simulated: +2.3% for 30 of 100, +7% for 10 of 37).
///
/// A pool with no more candidates than `numwant` is returned whole, which also keeps every
/// stratum non-empty in the sampling branch.
pub(super) fn sample_into<P, A, B>(
    first: &A,
    second: &B,
    skip: Option<usize>,
    numwant: usize,
    rng: &mut SmallRng,
    out: &mut Vec<P>,
) where
    A: PeerPool<P> + ?Sized,
    B: PeerPool<P> + ?Sized,
{
    if numwant == 0 {
        return;
    }
    let first_len = first.pool_len();
    let pool_len = first_len.saturating_add(second.pool_len());
    let skip = skip.filter(|&skip| skip < pool_len);
    // `skip` is kept only if it is in the pool, which is then not empty: no underflow.
    let num_candidates = pool_len - usize::from(skip.is_some());
    let pool_peer = |index: usize| match index.checked_sub(first_len) {
        None => first.response_peer(index),
        Some(index) => second.response_peer(index),
    };
    if num_candidates <= numwant {
        out.reserve(num_candidates);
        for index in (0..pool_len).filter(|&index| Some(index) != skip) {
            if let Some(peer) = pool_peer(index) {
                out.push(peer);
            }
        }
        return;
    }

    let get = |candidate: usize| {
        // candidate < num_candidates <= pool_len - 1 when skipping: no overflow.
        let index = match skip {
            Some(skip) if candidate >= skip => candidate + 1,
            _ => candidate,
        };
        pool_peer(index)
    };
    // Written as a division so that `2 * numwant` cannot overflow.
    let run_len = if num_candidates / 2 >= numwant {
        RUN_LEN
    } else {
        1
    };
    // num_candidates > numwant >= num_runs >= 1 here, so every range below is non-empty
    // and every stratum holds its run (see the doc comment), which keeps `size - len`,
    // like all the sums below (bounded by num_candidates), from overflowing.
    let num_runs = numwant.div_ceil(run_len);
    let (stratum_size, num_larger_strata) = (num_candidates / num_runs, num_candidates % num_runs);
    let (run_size, num_longer_runs) = (numwant / num_runs, numwant % num_runs);
    let offset = rng.random_range(0..num_candidates);
    let wrap_at = num_candidates - offset;
    let mut stratum_start = 0usize;
    for stratum in 0..num_runs {
        let size = stratum_size + usize::from(stratum < num_larger_strata);
        let len = run_size + usize::from(stratum < num_longer_runs);
        let run_start = stratum_start + rng.random_range(0..=size - len);
        stratum_start += size;
        for unrotated in run_start..run_start + len {
            // (unrotated + offset) % num_candidates, without the sum ever overflowing.
            let candidate = match unrotated.checked_sub(wrap_at) {
                Some(candidate) => candidate,
                None => unrotated + offset,
            };
            if let Some(peer) = get(candidate) {
                out.push(peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;

    use super::*;

    use crate::types::ResponsePeer;

    // These tests are of the kind that keeps peer ids; what differs without them is
    // tested through the shard (`super::super::tests`), which runs on both kinds.
    type Peer = super::Peer<PeerId>;
    type PeerEntry<I> = super::PeerEntry<I, PeerId>;
    type PeerStore<I> = super::PeerStore<I, PeerId>;
    type Peers<I> = super::Peers<I, PeerId>;
    type Torrent = super::Torrent<PeerId>;

    fn key(n: u32) -> PeerKey<Ipv4Addr> {
        PeerKey {
            ip: Ipv4Addr::from(n),
            port: 1,
        }
    }

    fn seen_at(secs: u32) -> Peer {
        Peer {
            peer_id: PeerId([1; 20]),
            last_seen: LastSeen::new(SecondsSinceServerStart(secs), false),
        }
    }

    /// Stores peer `n` under `status` as the swarm does: refreshed where it is, moved
    /// if its status changed, added if new. Returns where it is.
    fn put(peers: &mut Peers<Ipv4Addr>, n: u32, secs: u32, status: Status) -> Location {
        match peers.locate(&key(n), status) {
            Some(found) if found.status == status => {
                peers.peer_mut(found).unwrap().last_seen =
                    LastSeen::new(SecondsSinceServerStart(secs), false);
                found
            }
            Some(found) => {
                let old = peers.take(found.status, &key(n)).unwrap();
                assert_eq!(old.peer_id, PeerId([1; 20]));
                peers.insert(status, key(n), seen_at(secs))
            }
            None => peers.insert(status, key(n), seen_at(secs)),
        }
    }

    /// A store of `n` peers whose IPs are `ip_offset..ip_offset + n`, so that a response
    /// entry names its pool index; in the large form if `large`, whatever its size, so that
    /// the sampler can be tested on every pair of forms.
    fn store(n: u32, ip_offset: u32, large: bool) -> PeerStore<Ipv4Addr> {
        let entries = (0..n).map(|i| (key(i + ip_offset), seen_at(0)));
        if large {
            PeerStore::Large(Box::new(LargeStore::from_entries(entries)))
        } else {
            PeerStore::Small(entries.collect())
        }
    }

    /// Every pair of forms for a pool of `na` then `nb` peers.
    fn pools(na: u32, nb: u32) -> Vec<(PeerStore<Ipv4Addr>, PeerStore<Ipv4Addr>)> {
        [(false, false), (false, true), (true, false), (true, true)]
            .into_iter()
            .map(|(large_a, large_b)| (store(na, 0, large_a), store(nb, na, large_b)))
            .collect()
    }

    fn sample(
        first: &PeerStore<Ipv4Addr>,
        second: &PeerStore<Ipv4Addr>,
        skip: Option<usize>,
        numwant: usize,
        rng: &mut SmallRng,
    ) -> Vec<u32> {
        let mut out = Vec::<ResponsePeer<Ipv4Addr>>::new();
        sample_stores(first, second, skip, numwant, rng, &mut out);
        out.iter().map(|peer| u32::from(peer.ip)).collect()
    }

    /// The IPs, in order, of a store's peers.
    fn ips(store: &PeerStore<Ipv4Addr>) -> Vec<u32> {
        (0..store.len())
            .map(|index| match store {
                PeerStore::Small(entries) => entries.response_peer(index),
                PeerStore::Large(store) => store.peers.as_slice().response_peer(index),
            })
            .map(|peer: Option<ResponsePeer<Ipv4Addr>>| u32::from(peer.unwrap().ip))
            .collect()
    }

    #[test]
    fn layout_stays_small() {
        assert_eq!(size_of::<Peer>(), 24);
        assert_eq!(size_of::<PeerKey<Ipv4Addr>>(), 6);
        assert_eq!(size_of::<PeerKey<Ipv6Addr>>(), 18);
        assert_eq!(size_of::<PeerEntry<Ipv4Addr>>(), 30);
        assert_eq!(size_of::<PeerEntry<Ipv6Addr>>(), 42);
        assert_eq!(size_of::<PeerStore<Ipv4Addr>>(), 16);
        assert_eq!(size_of::<PeerStore<Ipv6Addr>>(), 16);
        // Info hash and counter (24), IPv4 stores (32), boxed IPv6 stores (8).
        assert_eq!(size_of::<Torrent>(), 64);
        assert_eq!(size_of::<Peers<Ipv6Addr>>(), 32);
    }

    /// Without the peer id (the UDP tracker's kind) a stored peer is its last-seen word
    /// alone; entries shrink by the id's 20 bytes.
    #[test]
    fn layout_without_peer_ids() {
        type Bare = super::Peer<NoPeerId>;
        assert_eq!(size_of::<NoPeerId>(), 0);
        assert_eq!(size_of::<Bare>(), 4);
        assert_eq!(size_of::<super::PeerEntry<Ipv4Addr, NoPeerId>>(), 10);
        assert_eq!(size_of::<super::PeerEntry<Ipv6Addr, NoPeerId>>(), 22);
        assert_eq!(size_of::<super::PeerStore<Ipv4Addr, NoPeerId>>(), 16);
        assert_eq!(size_of::<super::PeerStore<Ipv6Addr, NoPeerId>>(), 16);
        // The torrent holds stores, not peers: the same 64-byte slot.
        assert_eq!(size_of::<super::Torrent<NoPeerId>>(), 64);
        assert_eq!(size_of::<super::Peers<Ipv6Addr, NoPeerId>>(), 32);
    }

    /// What each kind keeps of an id and gives back.
    #[test]
    fn stored_peer_ids_give_back_what_they_keep() {
        let id = PeerId([7; 20]);
        assert_eq!(
            <PeerId as StoredPeerId>::from_peer_id(&id).peer_id(),
            Some(id)
        );
        assert_eq!(<PeerId as StoredPeerId>::from_peer_id(&id).answered(), &id);
        assert_eq!(NoPeerId::from_peer_id(&id), NoPeerId);
        assert_eq!(NoPeerId.peer_id(), None);
        assert_eq!(NoPeerId.answered(), &PeerId([0; 20]));
    }

    #[test]
    fn whole_pool_when_small() {
        let mut rng = SmallRng::seed_from_u64(1);
        for (a, b) in pools(3, 2) {
            let mut got = sample(&a, &b, None, 10, &mut rng);
            got.sort_unstable();
            assert_eq!(got, [0, 1, 2, 3, 4]);
            // numwant + 1 peers including the announcer: all the others.
            let mut got = sample(&a, &b, Some(3), 4, &mut rng);
            got.sort_unstable();
            assert_eq!(got, [0, 1, 2, 4]);
            assert!(sample(&a, &b, None, 0, &mut rng).is_empty());
        }
    }

    #[test]
    fn exact_count_distinct_and_never_skip() {
        let mut rng = SmallRng::seed_from_u64(2);
        for (na, nb) in [(0, 7), (7, 0), (5, 9), (1, 50), (50, 50)] {
            for (a, b) in pools(na, nb) {
                let n = (na + nb) as usize;
                for numwant in [1, 2, n / 2, n.saturating_sub(2), n - 1, n, usize::MAX] {
                    for skip in [None, Some(0), Some(n / 2), Some(n - 1), Some(n + 5)] {
                        for _ in 0..20 {
                            let got = sample(&a, &b, skip, numwant, &mut rng);
                            let unique: HashSet<_> = got.iter().collect();
                            assert_eq!(unique.len(), got.len(), "duplicates in {got:?}");
                            let skipped = skip.is_some_and(|s| s < n);
                            let available = n - usize::from(skipped);
                            assert_eq!(got.len(), numwant.min(available));
                            if let Some(skip) = skip {
                                assert!(!got.contains(&(skip as u32)));
                            }
                            assert!(got.iter().all(|&i| (i as usize) < n));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_index_equally_likely() {
        // 10 of 37 (37 is not a multiple of 10, so strata differ in size), skipping 5, on
        // every pair of forms.
        let mut rng = SmallRng::seed_from_u64(3);
        for (a, b) in pools(20, 17) {
            let mut hits = [0u32; 37];
            let rounds = 36_000;
            for _ in 0..rounds {
                for i in sample(&a, &b, Some(5), 10, &mut rng) {
                    hits[i as usize] += 1;
                }
            }
            assert_eq!(hits[5], 0);
            // Expected 36_000 * 10 / 36 = 10_000 each; allow 5%.
            for (i, &h) in hits.iter().enumerate().filter(|(i, _)| *i != 5) {
                assert!((9_500..=10_500).contains(&h), "index {i} chosen {h} times");
            }
        }
    }

    #[test]
    fn runs_of_every_shape_are_exact_and_distinct() {
        // 150 candidates: numwant up to 75 takes runs, of every length up to RUN_LEN and
        // with strata of two sizes; beyond that single peers. The pool boundary (100) and
        // the announcer fall inside runs often.
        let mut rng = SmallRng::seed_from_u64(4);
        for (a, b) in pools(100, 51) {
            for numwant in 1..=151 {
                for skip in [None, Some(0), Some(99), Some(100), Some(150)] {
                    for _ in 0..5 {
                        let got = sample(&a, &b, skip, numwant, &mut rng);
                        let unique: HashSet<_> = got.iter().collect();
                        assert_eq!(unique.len(), got.len(), "duplicates in {got:?}");
                        let available = 151 - usize::from(skip.is_some());
                        assert_eq!(got.len(), numwant.min(available));
                        assert!(skip.is_none_or(|skip| !got.contains(&(skip as u32))));
                        assert!(got.iter().all(|&i| i < 151));
                    }
                }
            }
        }
    }

    #[test]
    fn large_pool_is_sampled_uniformly() {
        // The production case: 30 of 10k, in runs, across the seeders/leechers boundary.
        let mut rng = SmallRng::seed_from_u64(5);
        let (a, b) = (store(6_000, 0, true), store(4_000, 6_000, true));
        let skip = 5_997;
        let mut hits = vec![0u32; 10_000];
        let rounds = 40_000;
        for _ in 0..rounds {
            let got = sample(&a, &b, Some(skip), 30, &mut rng);
            assert_eq!(got.len(), 30);
            let unique: HashSet<_> = got.iter().collect();
            assert_eq!(unique.len(), 30, "duplicates in {got:?}");
            for i in got {
                hits[i as usize] += 1;
            }
        }
        assert_eq!(hits[skip], 0);
        // Each of the other 9_999 expects 40_000 * 30 / 9_999 ≈ 120 hits. Per peer, the
        // count is a sum of independent draws, so Pearson's statistic over the 9_999 peers
        // is about chi-square with 9_998 degrees of freedom: mean 9_998, standard
        // deviation sqrt(2 * 9_998) ≈ 141. Six deviations above the mean fails a fair
        // sampler about once in 10^9 seeds; any bias of a few percent on whole runs'
        // worth of peers, or a stratum never reached, pushes it far beyond.
        let expected = f64::from(rounds) * 30.0 / 9_999.0;
        let chi_square: f64 = hits
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, &h)| (f64::from(h) - expected).powi(2) / expected)
            .sum();
        assert!(
            chi_square < 9_998.0 + 6.0 * 141.0,
            "chi-square {chi_square}"
        );
        // And no peer far off its share (mean 120, standard deviation about 11).
        for (i, &h) in hits.iter().enumerate().filter(|(i, _)| *i != skip) {
            assert!((60..=180).contains(&h), "index {i} chosen {h} times");
        }
    }

    #[test]
    fn selection_on_small_stores() {
        // Through the torrent, as announces use it: 5 seeders (IPs 0..5) and 7 leechers
        // (IPs 5..12), both stores small.
        let mut torrent = Peers::<Ipv4Addr>::new();
        for i in 0..12 {
            let status = if i < 5 {
                Status::Seeder
            } else {
                Status::Leecher
            };
            put(&mut torrent, i, 0, status);
        }
        assert!(!torrent.seeders.is_large() && !torrent.leechers.is_large());
        let mut rng = SmallRng::seed_from_u64(6);
        let mut out = Vec::new();
        let select = |status, who: u32, numwant, rng: &mut SmallRng, out: &mut Vec<_>| {
            out.clear();
            torrent.select_peers(status, torrent.locate(&key(who), status), numwant, rng, out);
            out.iter()
                .map(|peer: &ResponsePeer<Ipv4Addr>| u32::from(peer.ip))
                .collect::<Vec<_>>()
        };
        // A leecher (IP 7) asking for 4 of the 11 others, many times: never itself, never
        // a duplicate, every other peer equally often (24_000 * 4 / 11 ≈ 8_727; allow 5%).
        let mut hits = [0u32; 12];
        for _ in 0..24_000 {
            let got = select(Status::Leecher, 7, 4, &mut rng, &mut out);
            assert_eq!(got.len(), 4);
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), 4);
            for i in got {
                hits[i as usize] += 1;
            }
        }
        assert_eq!(hits[7], 0);
        for (i, &h) in hits.iter().enumerate().filter(|(i, _)| *i != 7) {
            assert!((8_290..=9_165).contains(&h), "IP {i} chosen {h} times");
        }
        // A seeder gets leechers only: 3 of the 7, or all 7 when it wants more.
        for _ in 0..100 {
            let got = select(Status::Seeder, 0, 3, &mut rng, &mut out);
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), 3);
            assert!(got.iter().all(|&i| (5..12).contains(&i)));
        }
        let mut got = select(Status::Seeder, 0, 30, &mut rng, &mut out);
        got.sort_unstable();
        assert_eq!(got, [5, 6, 7, 8, 9, 10, 11]);
        // A leecher wanting more than there are gets all the others.
        let mut got = select(Status::Leecher, 11, 30, &mut rng, &mut out);
        got.sort_unstable();
        assert_eq!(got, (0..11).collect::<Vec<_>>());
    }

    #[test]
    fn small_store_grows_exactly_then_becomes_a_map() {
        let mut torrent = Peers::<Ipv4Addr>::new();
        let max = SMALL_MAX as u32;
        for i in 0..max {
            let location = Location {
                status: Status::Leecher,
                index: i as usize,
            };
            assert_eq!(put(&mut torrent, i, 0, Status::Leecher), location);
            assert!(!torrent.leechers.is_large());
            assert_eq!(torrent.leechers.capacity(), torrent.leechers.len());
            // Refreshing changes neither position nor size.
            assert_eq!(put(&mut torrent, i, 1, Status::Leecher), location);
            assert_eq!(torrent.leechers.capacity(), torrent.leechers.len());
        }
        // One more than SMALL_MAX: a map, with every peer where it was.
        assert_eq!(
            put(&mut torrent, max, 0, Status::Leecher),
            Location {
                status: Status::Leecher,
                index: SMALL_MAX
            }
        );
        assert!(torrent.leechers.is_large());
        assert!(torrent.leechers.form_is_consistent(false));
        assert_eq!(ips(&torrent.leechers), (0..=max).collect::<Vec<_>>());
        for i in 0..=max {
            assert_eq!(
                torrent.locate(&key(i), Status::Seeder),
                Some(Location {
                    status: Status::Leecher,
                    index: i as usize
                })
            );
        }
        // The refreshed peers kept their refreshed time through the conversion.
        assert_eq!(
            torrent.remove_seen_before(SecondsSinceServerStart(1)),
            Expired::peers(0, 1)
        );
        assert_eq!(torrent.locate(&key(max), Status::Leecher), None);
    }

    #[test]
    fn group_counts_in_both_forms() {
        let mut torrent = Peers::<Ipv4Addr>::new();
        let port = |n: u32, p: u16| PeerKey {
            ip: Ipv4Addr::from(n),
            port: p,
        };
        for p in 1..=3 {
            torrent.insert(Status::Leecher, port(7, p), seen_at(0));
        }
        torrent.insert(Status::Seeder, port(7, 9), seen_at(5));
        assert_eq!(torrent.count_group(7), 4);
        assert_eq!(torrent.count_group(8), 0);
        // Into the large form: the side table counts the same.
        for n in 100..100 + SMALL_MAX as u32 {
            torrent.insert(Status::Leecher, port(n, 1), seen_at(5));
        }
        assert!(torrent.leechers.is_large());
        assert_eq!(torrent.count_group(7), 4);
        assert_eq!(torrent.count_group(100), 1);
        assert!(torrent.leechers.form_is_consistent(false));
        // Removal and expiry update it.
        assert_eq!(
            torrent.remove(&port(7, 2)).map(|(status, _)| status),
            Some(Status::Leecher)
        );
        assert_eq!(torrent.count_group(7), 3);
        assert_eq!(
            torrent.remove_seen_before(SecondsSinceServerStart(1)),
            Expired::peers(0, 2)
        );
        assert_eq!(torrent.count_group(7), 1);
        assert!(torrent.leechers.form_is_consistent(true));
    }

    #[test]
    fn map_becomes_small_again_at_cleaning_only_and_with_hysteresis() {
        let mut torrent = Peers::<Ipv4Addr>::new();
        let max = SMALL_MAX as u32;
        // 3 * SMALL_MAX leechers; the first SMALL_MAX / 2 seen later than the others.
        for i in 0..3 * max {
            let seen = if i < max / 2 { 10 } else { 0 };
            put(&mut torrent, i, seen, Status::Leecher);
        }
        assert!(torrent.leechers.is_large());
        // Stopped peers leave a map a map, however few remain.
        for i in max / 2 + 1..3 * max {
            assert_eq!(
                torrent.remove(&key(i)).map(|(status, _)| status),
                Some(Status::Leecher)
            );
        }
        assert_eq!(torrent.leechers.len(), SMALL_MAX / 2 + 1);
        assert!(torrent.leechers.is_large());
        assert_eq!(
            torrent.remove_seen_before(SecondsSinceServerStart(0)),
            Expired::peers(0, 0)
        );
        assert!(torrent.leechers.is_large());
        assert!(torrent.leechers.form_is_consistent(true));
        // Peer max / 2 (seen at 0) expires: SMALL_AFTER_CLEANING left, small again, exact.
        assert_eq!(
            torrent.remove_seen_before(SecondsSinceServerStart(5)),
            Expired::peers(0, 1)
        );
        assert!(!torrent.leechers.is_large());
        assert_eq!(torrent.leechers.capacity(), SMALL_AFTER_CLEANING);
        let mut left = ips(&torrent.leechers);
        left.sort_unstable();
        assert_eq!(left, (0..max / 2).collect::<Vec<_>>());
        // It grows back as a small store up to SMALL_MAX, then is a map again.
        for i in 100..100 + max - max / 2 {
            put(&mut torrent, i, 10, Status::Leecher);
            assert!(!torrent.leechers.is_large());
        }
        assert_eq!(torrent.leechers.len(), SMALL_MAX);
        put(&mut torrent, 1000, 10, Status::Leecher);
        assert!(torrent.leechers.is_large());
        // Everything expiring empties it, and the map becomes an empty small store.
        assert_eq!(
            torrent.remove_seen_before(SecondsSinceServerStart(11)),
            Expired::peers(0, SMALL_MAX + 1)
        );
        assert!(torrent.is_empty() && !torrent.leechers.is_large());
        assert_eq!(torrent.leechers.capacity(), 0);
    }

    #[test]
    fn status_change_moves_between_forms() {
        let mut torrent = Peers::<Ipv4Addr>::new();
        let max = SMALL_MAX as u32;
        for i in 0..2 * max {
            put(&mut torrent, i, 0, Status::Leecher);
        }
        put(&mut torrent, 1000, 0, Status::Seeder);
        assert!(torrent.leechers.is_large() && !torrent.seeders.is_large());
        assert_eq!(
            put(&mut torrent, 3, 0, Status::Seeder),
            Location {
                status: Status::Seeder,
                index: 1
            }
        );
        assert_eq!(torrent.seeders.capacity(), 2);
        // The last leecher took the place of the one that moved.
        assert_eq!(
            torrent.locate(&key(2 * max - 1), Status::Leecher),
            Some(Location {
                status: Status::Leecher,
                index: 3
            })
        );
        assert_eq!(
            put(&mut torrent, 1000, 0, Status::Leecher),
            Location {
                status: Status::Leecher,
                index: 2 * SMALL_MAX - 1
            }
        );
        assert_eq!(torrent.seeders.capacity(), 1);
        assert!(torrent.leechers.form_is_consistent(false));
    }

    /// Cleaning says how many of the peers it removed were remote, in both forms.
    #[test]
    fn cleaning_counts_the_remote_peers_it_removes() {
        for n in [4u32, 3 * SMALL_MAX as u32] {
            let mut torrent = Peers::<Ipv4Addr>::new();
            for i in 0..n {
                let remote = i % 3 == 0;
                let status = if i % 2 == 0 {
                    Status::Seeder
                } else {
                    Status::Leecher
                };
                let peer = Peer {
                    peer_id: PeerId([1; 20]),
                    last_seen: LastSeen::new(SecondsSinceServerStart(i % 4), false)
                        .with_remote(remote),
                };
                torrent.insert(status, key(i), peer);
            }
            // Peers seen at 0 and 1 go: i % 4 < 2.
            let gone: Vec<u32> = (0..n).filter(|i| i % 4 < 2).collect();
            let expired = torrent.remove_seen_before(SecondsSinceServerStart(2));
            assert_eq!(
                expired,
                Expired {
                    seeders: gone.iter().filter(|i| *i % 2 == 0).count(),
                    leechers: gone.iter().filter(|i| *i % 2 == 1).count(),
                    remote: gone.iter().filter(|i| *i % 3 == 0).count(),
                },
                "{n} peers"
            );
        }
    }

    #[test]
    fn cleaning_shrinks_sparse_maps() {
        let mut torrent = Peers::<Ipv4Addr>::new();
        for i in 0..1000 {
            put(&mut torrent, i, i, Status::Leecher);
        }
        assert_eq!(
            torrent.remove_seen_before(SecondsSinceServerStart(1000 - 3 * SMALL_MAX as u32)),
            Expired::peers(0, 1000 - 3 * SMALL_MAX)
        );
        assert!(torrent.leechers.is_large());
        assert!(torrent.leechers.capacity() < 12 * SMALL_MAX);
        assert_eq!(torrent.leechers.len(), 3 * SMALL_MAX);
        assert!(torrent.leechers.form_is_consistent(true));
        let mut torrent = Peers::<Ipv4Addr>::new();
        for i in 0..4 {
            put(&mut torrent, i, i, Status::Seeder);
        }
        assert_eq!(
            torrent.remove_seen_before(SecondsSinceServerStart(2)),
            Expired::peers(2, 0)
        );
        assert_eq!(torrent.seeders.capacity(), 2);
    }
}
