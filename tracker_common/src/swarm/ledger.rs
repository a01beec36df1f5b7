//! What both kinds of shard keep besides their torrents, and what they do to a whole
//! torrent table, written once: admitting a new torrent or peer against the limits and
//! the whole-tracker [`SwarmBudget`] (counting refusals), the seeder and leecher totals,
//! removing a peer and then its torrent once empty, the archive of completed counts
//! (filled when a torrent empties, emptied when it comes back, read by scrapes),
//! cleaning, scrapes and the busiest torrents.
//!
//! A shard holds its torrent table (a [`HashTable`] of its own torrent type, which
//! implements [`SwarmTorrent`]), its `Arc<SwarmBudget>` and a [`Ledger`], and hands the
//! table and the budget to the ledger's methods. Keeping them apart lets a shard borrow a
//! torrent from its table while the ledger records what happened to it.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::swarm::routing::ShardRouter;
use crate::time::SecondsSinceServerStart;
use crate::types::{AnnounceEvent, InfoHash};

use super::archive::Archive;
use super::rules::{LastSeen, Status, expiry_cutoff};
use super::{CleanStats, ScrapeCounts, SwarmBudget, SwarmLimits, saturated_counts};

/// What the ledger needs of a torrent, whichever kind of swarm it belongs to.
pub(super) trait SwarmTorrent {
    /// The torrent's info hash.
    fn info_hash(&self) -> &InfoHash;
    /// Completed downloads counted while it is stored, plus any it came back with.
    fn completed(&self) -> u32;
    /// Seeders and leechers.
    fn counts(&self) -> (usize, usize);
    /// Whether it holds no peer (it is then removed from its table).
    fn is_empty(&self) -> bool;
    /// Removes the peers last seen before `cutoff` ([`super::rules::expiry_cutoff`]),
    /// giving back memory its stores no longer need; returns how many seeders and
    /// leechers went.
    fn remove_seen_before(&mut self, cutoff: SecondsSinceServerStart) -> (usize, usize);

    /// [`Self::remove_seen_before`], saying also how many of the peers removed were
    /// remote (stored from another node's change). A swarm that never stores remote
    /// peers keeps this default.
    fn remove_expired(&mut self, cutoff: SecondsSinceServerStart) -> Expired {
        let (seeders, leechers) = self.remove_seen_before(cutoff);
        Expired::peers(seeders, leechers)
    }

    /// Seeders and leechers together.
    fn num_peers(&self) -> usize {
        let (seeders, leechers) = self.counts();
        seeders.saturating_add(leechers)
    }
}

/// The peers a cleaning removed from a torrent or a store.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub(super) struct Expired {
    pub(super) seeders: usize,
    pub(super) leechers: usize,
    /// Of the seeders and leechers, those marked remote.
    pub(super) remote: usize,
}

impl Expired {
    /// `seeders` and `leechers`, none of them remote.
    pub(super) fn peers(seeders: usize, leechers: usize) -> Self {
        Self {
            seeders,
            leechers,
            remote: 0,
        }
    }

    /// Both together.
    pub(super) fn plus(self, other: Self) -> Self {
        Self {
            seeders: self.seeders.saturating_add(other.seeders),
            leechers: self.leechers.saturating_add(other.leechers),
            remote: self.remote.saturating_add(other.remote),
        }
    }
}

/// A shard's books: its limits, its running totals, the announces its limits refused,
/// and its archive, keyed by the router's keyed fingerprint of the info hash (so clients
/// can aim no collisions, and a snapshot can route the archived counts after a restart),
/// with the keyed hasher of its torrent table.
pub(super) struct Ledger {
    hasher: DefaultHashBuilder,
    router: ShardRouter,
    limits: SwarmLimits,
    archive: Archive,
    // Running totals, so that the statistics thread's numbers cost O(1) instead of a walk
    // over every torrent.
    num_seeders: usize,
    num_leechers: usize,
    // Of the seeders and leechers, those marked remote (see `rules::LastSeen`).
    num_remote: usize,
    num_rejected_by_limits: u64,
    num_throttled: u64,
    num_completed: u64,
}

impl Ledger {
    /// The books of one of the `router`'s shards: a fresh hasher seed and this shard's
    /// even share of the archive.
    pub(super) fn new(mut limits: SwarmLimits, router: &ShardRouter) -> Self {
        // A store indexes its peers by `u32` position (`super::dense`); the configuration
        // check keeps the limit below that, and this keeps limits made in code there too.
        limits.max_peers_per_torrent = limits.max_peers_per_torrent.min(super::MAX_STORE_LEN - 1);
        Self {
            hasher: DefaultHashBuilder::default(),
            router: router.clone(),
            limits,
            archive: Archive::new(limits.max_archived_torrents / router.num_shards().max(1)),
            num_seeders: 0,
            num_leechers: 0,
            num_remote: 0,
            num_rejected_by_limits: 0,
            num_throttled: 0,
            num_completed: 0,
        }
    }

    /// The table hash of `info_hash`.
    pub(super) fn hash(&self, info_hash: &InfoHash) -> u64 {
        self.hasher.hash_one(info_hash)
    }

    /// The archive's key of `info_hash`: the router's fingerprint, turned so that its
    /// high bits, which chose the shard (and so are alike in every entry of this shard),
    /// do not choose the archive's set too.
    fn archive_key(&self, info_hash: &InfoHash) -> u64 {
        Self::archive_key_of_fingerprint(self.router.fingerprint(info_hash))
    }

    /// [`Self::archive_key`] from a fingerprint.
    fn archive_key_of_fingerprint(fingerprint: u64) -> u64 {
        fingerprint.rotate_left(32)
    }

    /// The limits this shard enforces.
    pub(super) fn limits(&self) -> SwarmLimits {
        self.limits
    }

    /// The minimum-interval rule ([`LastSeen::too_soon`]) with this shard's
    /// `min_announce_interval_secs`: whether the announce with `event` at `now` of a
    /// stored peer last seen as `last_seen` is answered without being applied. Counted
    /// if it is.
    pub(super) fn throttles(
        &mut self,
        last_seen: LastSeen,
        event: AnnounceEvent,
        now: SecondsSinceServerStart,
    ) -> bool {
        let too_soon = last_seen.too_soon(now, event, self.limits.min_announce_interval_secs);
        if too_soon {
            self.num_throttled = self.num_throttled.saturating_add(1);
        }
        too_soon
    }

    fn reject(&mut self) {
        self.num_rejected_by_limits = self.num_rejected_by_limits.saturating_add(1);
    }

    /// Room for a new torrent `info_hash`, which needs room for itself and for
    /// its first peer: one torrent and one peer taken from `budget`, if the limits allow
    /// both and `first_peer_fits` (a swarm's own condition on the peer, such as the IP
    /// swarm's per-address cap). Returns the completed count the torrent starts with (its
    /// archived count if it comes back, taken out of the archive; otherwise 0), or `None`,
    /// counted as a refusal, if there is no room.
    pub(super) fn admit_torrent(
        &mut self,
        budget: &SwarmBudget,
        info_hash: &InfoHash,
        first_peer_fits: bool,
    ) -> Option<u32> {
        if self.limits.max_peers_per_torrent == 0 || !first_peer_fits {
            self.reject();
            return None;
        }
        if !budget.acquire_torrent() {
            self.reject();
            return None;
        }
        if !budget.acquire_peer() {
            budget.release_torrents(1);
            self.reject();
            return None;
        }
        let key = self.archive_key(info_hash);
        Some(self.archive.take(key).unwrap_or(0))
    }

    /// Room for a new peer in a stored torrent that holds `torrent_peers` peers: one peer
    /// taken from `budget`, if the torrent is below its cap and `fits()` (the swarm's own
    /// condition, asked only when the cap allows, since it may cost a count). `false`,
    /// counted as a refusal, if there is no room. Only a new peer is ever checked: a
    /// stored peer re-announcing, moving or changing peer id takes no new room.
    pub(super) fn admit_peer(
        &mut self,
        budget: &SwarmBudget,
        torrent_peers: usize,
        fits: impl FnOnce() -> bool,
    ) -> bool {
        let room =
            torrent_peers < self.limits.max_peers_per_torrent && fits() && budget.acquire_peer();
        if !room {
            self.reject();
        }
        room
    }

    /// A peer admitted by [`Self::admit_torrent`] or [`Self::admit_peer`] was stored with
    /// `status`.
    pub(super) fn peer_added(&mut self, status: Status) {
        match status {
            Status::Seeder => self.num_seeders = self.num_seeders.saturating_add(1),
            Status::Leecher => self.num_leechers = self.num_leechers.saturating_add(1),
        }
    }

    /// A stored peer moved from `from` to `to` (the same is fine).
    pub(super) fn peer_moved(&mut self, from: Status, to: Status) {
        if from != to {
            self.peer_left(from);
            self.peer_added(to);
        }
    }

    /// A stored peer of `status` was removed: its room goes back to `budget`.
    pub(super) fn peer_removed(&mut self, budget: &SwarmBudget, status: Status) {
        self.peer_left(status);
        budget.release_peers(1);
    }

    /// A peer marked remote was stored (after [`Self::peer_added`]).
    pub(super) fn remote_added(&mut self) {
        self.num_remote = self.num_remote.saturating_add(1);
    }

    /// `n` peers marked remote were removed or lost the mark.
    pub(super) fn remote_gone(&mut self, n: usize) {
        self.num_remote = self.num_remote.saturating_sub(n);
    }

    fn peer_left(&mut self, status: Status) {
        match status {
            Status::Seeder => self.num_seeders = self.num_seeders.saturating_sub(1),
            Status::Leecher => self.num_leechers = self.num_leechers.saturating_sub(1),
        }
    }

    /// The torrent `info_hash` left the table: its completed count goes to the archive,
    /// its room back to `budget`.
    fn torrent_removed(&mut self, budget: &SwarmBudget, info_hash: &InfoHash, completed: u32) {
        let key = self.archive_key(info_hash);
        self.archive.put(key, completed);
        budget.release_torrents(1);
    }

    /// Removes one peer of the torrent `info_hash` (table hash `hash`), and the torrent
    /// if it is left empty: the rule of `event=stopped` and of a peer's connection
    /// closing. `remove` removes the peer (if it is there and may be removed) and says
    /// from which store; `answer` reads the torrent after the removal, before it can go.
    /// Returns `None` if the torrent is not stored: nothing is created.
    pub(super) fn remove_peer<T: SwarmTorrent, R>(
        &mut self,
        torrents: &mut HashTable<T>,
        budget: &SwarmBudget,
        hash: u64,
        info_hash: &InfoHash,
        remove: impl FnOnce(&mut T) -> Option<Status>,
        answer: impl FnOnce(&T) -> R,
    ) -> Option<R> {
        let Ok(mut entry) = torrents.find_entry(hash, |t| t.info_hash() == info_hash) else {
            return None;
        };
        let torrent = entry.get_mut();
        if let Some(status) = remove(torrent) {
            self.peer_removed(budget, status);
        }
        let answer = answer(torrent);
        if torrent.is_empty() {
            let (torrent, _) = entry.remove();
            self.torrent_removed(budget, info_hash, torrent.completed());
        }
        Some(answer)
    }

    /// Seeders, completed downloads and leechers of the torrent; for a torrent not stored,
    /// its archived completed count (zeros if none).
    pub(super) fn scrape<T: SwarmTorrent>(
        &self,
        torrents: &HashTable<T>,
        info_hash: &InfoHash,
    ) -> ScrapeCounts {
        let hash = self.hash(info_hash);
        match torrents.find(hash, |t| t.info_hash() == info_hash) {
            Some(torrent) => {
                let counts = saturated_counts(torrent.counts());
                ScrapeCounts {
                    seeders: counts.seeders,
                    completed: torrent.completed(),
                    leechers: counts.leechers,
                }
            }
            None => ScrapeCounts {
                completed: self.archive.get(self.archive_key(info_hash)).unwrap_or(0),
                ..ScrapeCounts::default()
            },
        }
    }

    /// The `limit` torrents with the most peers, with their scrape counts, most peers
    /// first; ties in any order. A walk over every torrent.
    pub(super) fn busiest_torrents<T: SwarmTorrent>(
        &self,
        torrents: &HashTable<T>,
        limit: usize,
    ) -> Vec<(InfoHash, ScrapeCounts)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;

        if limit == 0 {
            return Vec::new();
        }
        // A min-heap of the best `limit` so far: O(torrents * log limit), and never more
        // than `limit` entries whatever the shard holds.
        let mut best: BinaryHeap<Reverse<(usize, InfoHash)>> = BinaryHeap::new();
        for torrent in torrents {
            let peers = torrent.num_peers();
            if best.len() < limit {
                best.push(Reverse((peers, *torrent.info_hash())));
            } else if best
                .peek()
                .is_some_and(|Reverse((least, _))| peers > *least)
            {
                best.pop();
                best.push(Reverse((peers, *torrent.info_hash())));
            }
        }
        let mut chosen: Vec<(usize, InfoHash)> = best.into_iter().map(|Reverse(e)| e).collect();
        chosen.sort_unstable_by_key(|&(peers, _)| Reverse(peers));
        chosen
            .into_iter()
            .map(|(_, info_hash)| (info_hash, self.scrape(torrents, &info_hash)))
            .collect()
    }

    /// Removes peers not seen for more than `max_peer_age_secs` before `now`
    /// ([`expiry_cutoff`]: a peer last seen exactly that long ago stays), then torrents
    /// left without peers (archiving their completed counts), giving their room back to
    /// `budget`. A table left much larger than its contents is shrunk, so that memory
    /// follows the swarm down after a peak.
    pub(super) fn clean<T: SwarmTorrent>(
        &mut self,
        torrents: &mut HashTable<T>,
        budget: &SwarmBudget,
        now: SecondsSinceServerStart,
        max_peer_age_secs: u32,
    ) -> CleanStats {
        let cutoff = expiry_cutoff(now, max_peer_age_secs);
        let mut stats = CleanStats::default();
        let Self {
            router,
            archive,
            num_seeders,
            num_leechers,
            num_remote,
            ..
        } = self;
        torrents.retain(|torrent| {
            let Expired {
                seeders,
                leechers,
                remote,
            } = torrent.remove_expired(cutoff);
            *num_seeders = num_seeders.saturating_sub(seeders);
            *num_leechers = num_leechers.saturating_sub(leechers);
            *num_remote = num_remote.saturating_sub(remote);
            stats.removed_peers = stats
                .removed_peers
                .saturating_add(seeders)
                .saturating_add(leechers);
            if torrent.is_empty() {
                let key = Self::archive_key_of_fingerprint(router.fingerprint(torrent.info_hash()));
                archive.put(key, torrent.completed());
                stats.removed_torrents += 1;
                false
            } else {
                true
            }
        });
        budget.release_peers(stats.removed_peers);
        budget.release_torrents(stats.removed_torrents);
        let capacity = torrents.capacity();
        if capacity >= 64 && torrents.len() <= capacity / 4 {
            let hasher = &self.hasher;
            torrents.shrink_to(torrents.len().saturating_mul(2), |t| {
                hasher.hash_one(t.info_hash())
            });
        }
        stats
    }

    /// Gives back to `budget` everything the shard holds: its `num_torrents` torrents and
    /// all its peers. For the shard's `Drop`.
    pub(super) fn release_all(&self, budget: &SwarmBudget, num_torrents: usize) {
        budget.release_torrents(num_torrents);
        budget.release_peers(self.num_seeders.saturating_add(self.num_leechers));
    }

    /// Every archived count, by the router's fingerprint of its info hash (for a
    /// snapshot).
    pub(super) fn archived_counts(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.archive
            .entries()
            .map(|(key, count)| (key.rotate_right(32), count))
    }

    /// Archives `completed` for the torrent of router fingerprint `fingerprint`, by the
    /// archive's rules (a full set keeps the larger counts): restoring a snapshot.
    pub(super) fn restore_archived(&mut self, fingerprint: u64, completed: u32) {
        self.archive
            .put(Self::archive_key_of_fingerprint(fingerprint), completed);
    }

    /// Makes the archived count of `info_hash` (a torrent not stored) at least
    /// `completed`: a count another node sent, which must not lower this node's own.
    pub(super) fn archive_at_least(&mut self, info_hash: &InfoHash, completed: u32) {
        let key = self.archive_key(info_hash);
        if self
            .archive
            .get(key)
            .is_none_or(|archived| archived < completed)
        {
            self.archive.put(key, completed);
        }
    }

    /// The router's fingerprint of `info_hash`.
    pub(super) fn fingerprint(&self, info_hash: &InfoHash) -> u64 {
        self.router.fingerprint(info_hash)
    }

    /// Seeders stored.
    pub(super) fn num_seeders(&self) -> usize {
        self.num_seeders
    }

    /// Leechers stored.
    pub(super) fn num_leechers(&self) -> usize {
        self.num_leechers
    }

    /// Peers stored that are marked remote.
    pub(super) fn num_remote(&self) -> usize {
        self.num_remote
    }

    /// Announces that stored nothing because a limit was reached.
    pub(super) fn num_rejected_by_limits(&self) -> u64 {
        self.num_rejected_by_limits
    }

    /// Announces answered without being applied because they came too soon
    /// ([`Self::throttles`]).
    pub(super) fn num_throttled(&self) -> u64 {
        self.num_throttled
    }

    /// A download was counted as completed (a torrent's `completed` grew).
    pub(super) fn download_completed(&mut self) {
        self.num_completed = self.num_completed.saturating_add(1);
    }

    /// Downloads counted as completed in this shard since it was made.
    pub(super) fn num_completed(&self) -> u64 {
        self.num_completed
    }

    /// Completed counts of emptied torrents held in the archive.
    pub(super) fn num_archived_torrents(&self) -> usize {
        self.archive.len()
    }

    /// Bytes the archive takes (allocated once, whatever it holds).
    pub(super) fn archive_memory_bytes(&self) -> usize {
        self.archive.memory_bytes()
    }
}
