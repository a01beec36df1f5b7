//! The peers of one torrent (of one address family) and the random choice of peers for
//! an announce response.
//!
//! A torrent keeps its seeders and its leechers in two separate insertion-ordered maps,
//! so that both counts are `len()` calls and a seeder's response (leechers only) needs
//! no filtering. The maps are [`IndexMap`]s because random selection needs access by
//! position; removal uses `swap_remove`, which is O(1) and only reorders the one peer
//! moved into the hole, and order carries no meaning here.

use hashbrown::DefaultHashBuilder;
use indexmap::IndexMap;
use indexmap::map::{Entry, Slice};
use rand::Rng;
use rand::rngs::SmallRng;

use crate::time::SecondsSinceServerStart;
use crate::types::{Ip, PeerId, ResponsePeer};

/// What identifies a peer within a torrent: its self-chosen id *and* the address it
/// announced from, so that nobody can move or remove another address's peer by sending
/// its peer id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PeerKey<I: Ip> {
    pub(super) peer_id: PeerId,
    pub(super) ip: I,
}

/// What a torrent stores per peer besides its key. Kept to 8 bytes (a `u16` and a `u32`)
/// because a public tracker holds millions of these; the seeder flag is not stored at all
/// but implied by which map the peer is in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Peer {
    pub(super) port: u16,
    pub(super) last_seen: SecondsSinceServerStart,
}

/// Peers of one status within one torrent.
pub(super) type PeerMap<I> = IndexMap<PeerKey<I>, Peer, DefaultHashBuilder>;

/// Seeder or leecher: which of a torrent's two maps a peer is (or would be) in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Seeder,
    Leecher,
}

impl Status {
    /// `left == 0` means seeder (BEP 3).
    pub(super) fn from_bytes_left(bytes_left: u64) -> Self {
        if bytes_left == 0 {
            Self::Seeder
        } else {
            Self::Leecher
        }
    }
}

/// Where a stored peer is: its map and its position in that map.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Location {
    pub(super) status: Status,
    pub(super) index: usize,
}

/// The result of [`Torrent::upsert`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Upsert {
    /// The peer is stored at `location`. `previous` is its status before this announce,
    /// `None` if it is new.
    Stored {
        location: Location,
        previous: Option<Status>,
    },
    /// The peer is new and the torrent is full: nothing was changed.
    Rejected,
}

/// One torrent's peers of one address family.
pub(super) struct Torrent<I: Ip> {
    pub(super) seeders: PeerMap<I>,
    pub(super) leechers: PeerMap<I>,
    /// Completed downloads, for the scrape's `downloaded` / UDP `completed` field.
    pub(super) completed: u32,
}

/// Maps shorter than this grow by one slot at a time (see [`Torrent::upsert`]).
const GROW_EXACTLY_BELOW: usize = 4;

/// Below this capacity a map is never shrunk: reallocating saves too little to be worth it.
const MIN_CAPACITY_TO_SHRINK: usize = 16;

impl<I: Ip> Torrent<I> {
    pub(super) fn new() -> Self {
        // Empty maps do not allocate, so a torrent costs nothing on the heap until it has
        // peers of that status.
        Self {
            seeders: PeerMap::with_hasher(DefaultHashBuilder::default()),
            leechers: PeerMap::with_hasher(DefaultHashBuilder::default()),
            completed: 0,
        }
    }

    pub(super) fn num_peers(&self) -> usize {
        self.seeders.len().saturating_add(self.leechers.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.seeders.is_empty() && self.leechers.is_empty()
    }

    /// Seeders and leechers, saturated to what the protocols can carry.
    pub(super) fn counts(&self) -> (u32, u32) {
        (
            saturate_u32(self.seeders.len()),
            saturate_u32(self.leechers.len()),
        )
    }

    fn map_mut(&mut self, status: Status) -> &mut PeerMap<I> {
        match status {
            Status::Seeder => &mut self.seeders,
            Status::Leecher => &mut self.leechers,
        }
    }

    /// Where the peer with `key` is stored, if it is.
    pub(super) fn locate(&self, key: &PeerKey<I>) -> Option<Location> {
        if let Some(index) = self.seeders.get_index_of(key) {
            return Some(Location {
                status: Status::Seeder,
                index,
            });
        }
        self.leechers.get_index_of(key).map(|index| Location {
            status: Status::Leecher,
            index,
        })
    }

    /// Stores or refreshes the peer with `key` under `status`, moving it between the maps
    /// if its status changed. A new peer is only stored while the torrent has fewer than
    /// `max_peers` peers; a known peer is always refreshed (it takes no extra room).
    pub(super) fn upsert(
        &mut self,
        key: PeerKey<I>,
        peer: Peer,
        status: Status,
        max_peers: usize,
    ) -> Upsert {
        // Taken before borrowing one map through `entry`; only needed for a new peer, when
        // neither map changes before the check.
        let num_peers = self.num_peers();
        let (own, other) = match status {
            Status::Seeder => (&mut self.seeders, &mut self.leechers),
            Status::Leecher => (&mut self.leechers, &mut self.seeders),
        };
        // Most torrents of a public tracker have one to three peers, and left alone the
        // map would give its first peer room for three (120 bytes of entries for IPv4).
        // Growing small maps one slot at a time costs a few reallocations of tiny buffers
        // and saves that slack on millions of torrents. The lookup only runs while the map
        // is small and full.
        if own.len() == own.capacity() && own.len() < GROW_EXACTLY_BELOW && !own.contains_key(&key)
        {
            own.reserve_exact(1);
        }
        match own.entry(key) {
            Entry::Occupied(mut entry) => {
                *entry.get_mut() = peer;
                Upsert::Stored {
                    location: Location {
                        status,
                        index: entry.index(),
                    },
                    previous: Some(status),
                }
            }
            Entry::Vacant(entry) => {
                let previous = if other.swap_remove(&key).is_some() {
                    Some(match status {
                        Status::Seeder => Status::Leecher,
                        Status::Leecher => Status::Seeder,
                    })
                } else if num_peers >= max_peers {
                    return Upsert::Rejected;
                } else {
                    None
                };
                let index = entry.index();
                entry.insert(peer);
                Upsert::Stored {
                    location: Location { status, index },
                    previous,
                }
            }
        }
    }

    /// Removes the peer with `key`; returns the status it had, `None` if it was not here.
    pub(super) fn remove(&mut self, key: &PeerKey<I>) -> Option<Status> {
        if self.seeders.swap_remove(key).is_some() {
            Some(Status::Seeder)
        } else if self.leechers.swap_remove(key).is_some() {
            Some(Status::Leecher)
        } else {
            None
        }
    }

    /// Removes the peers last seen before `cutoff`; returns how many seeders and leechers
    /// went. Then gives back the memory of a map that has become much smaller than its
    /// capacity: without this, a torrent that was once huge would keep its peak memory for
    /// as long as it has a single peer.
    pub(super) fn remove_seen_before(&mut self, cutoff: SecondsSinceServerStart) -> (usize, usize) {
        let mut removed = [0usize; 2];
        for (status, removed) in [Status::Seeder, Status::Leecher]
            .into_iter()
            .zip(&mut removed)
        {
            let map = self.map_mut(status);
            let before = map.len();
            map.retain(|_, peer| peer.last_seen >= cutoff);
            *removed = before.saturating_sub(map.len());
            shrink_if_sparse(map);
        }
        let [seeders, leechers] = removed;
        (seeders, leechers)
    }

    /// Fills `out` (which the caller has cleared) with up to `numwant` peers chosen at
    /// random for an announcer of status `announcer_status` stored at `announcer` (`None`
    /// if it is not stored here). A seeder is offered leechers only, a leecher both
    /// seeders and leechers; the announcer itself is never offered.
    pub(super) fn select_peers(
        &self,
        announcer_status: Status,
        announcer: Option<Location>,
        numwant: usize,
        rng: &mut SmallRng,
        out: &mut Vec<ResponsePeer<I>>,
    ) {
        // The pool is `first` followed by `second`, indexed as one range.
        let (first, second) = match announcer_status {
            Status::Seeder => (self.leechers.as_slice(), Slice::new()),
            Status::Leecher => (self.seeders.as_slice(), self.leechers.as_slice()),
        };
        let skip = announcer.and_then(|location| match (announcer_status, location.status) {
            (Status::Seeder, Status::Seeder) => None,
            (Status::Seeder, Status::Leecher) | (Status::Leecher, Status::Seeder) => {
                Some(location.index)
            }
            (Status::Leecher, Status::Leecher) => Some(first.len().saturating_add(location.index)),
        });
        sample_into(first, second, skip, numwant, rng, out);
    }
}

/// Shrinks `map` to twice its length once it uses a quarter of its capacity or less. The
/// gap between the two thresholds keeps a map whose size hovers around one of them from
/// reallocating at every cleaning.
fn shrink_if_sparse<K, V, S>(map: &mut IndexMap<K, V, S>)
where
    K: std::hash::Hash + Eq,
    S: std::hash::BuildHasher,
{
    let capacity = map.capacity();
    if capacity >= MIN_CAPACITY_TO_SHRINK && map.len() <= capacity / 4 {
        map.shrink_to(map.len().saturating_mul(2));
    }
}

fn saturate_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// How many consecutive pool entries [`sample_into`] takes at a time from a large pool.
/// Eight entries (indexmap stores each with its 8-byte hash) are 320 bytes for IPv4 and
/// 448 for IPv6: a handful of adjacent cache lines, which the hardware prefetcher brings
/// in together.
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
fn sample_into<I: Ip>(
    first: &Slice<PeerKey<I>, Peer>,
    second: &Slice<PeerKey<I>, Peer>,
    skip: Option<usize>,
    numwant: usize,
    rng: &mut SmallRng,
    out: &mut Vec<ResponsePeer<I>>,
) {
    if numwant == 0 {
        return;
    }
    let pool_len = first.len().saturating_add(second.len());
    let skip = skip.filter(|&skip| skip < pool_len);
    // `skip` is kept only if it is in the pool, which is then not empty: no underflow.
    let num_candidates = pool_len - usize::from(skip.is_some());
    let pool = first.iter().chain(second.iter());
    if num_candidates <= numwant {
        out.extend(
            pool.enumerate()
                .filter(|(index, _)| Some(*index) != skip)
                .map(|(_, (key, peer))| ResponsePeer {
                    ip: key.ip,
                    port: peer.port,
                }),
        );
        return;
    }

    let get = |candidate: usize| {
        // candidate < num_candidates <= pool_len - 1 when skipping: no overflow.
        let index = match skip {
            Some(skip) if candidate >= skip => candidate + 1,
            _ => candidate,
        };
        match index.checked_sub(first.len()) {
            None => first.get_index(index),
            Some(index) => second.get_index(index),
        }
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
            if let Some((key, peer)) = get(candidate) {
                out.push(ResponsePeer {
                    ip: key.ip,
                    port: peer.port,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    use rand::SeedableRng;

    use super::*;

    fn key(n: u32) -> PeerKey<Ipv4Addr> {
        PeerKey {
            peer_id: PeerId([1; 20]),
            ip: Ipv4Addr::from(n),
        }
    }

    /// A map of `n` peers whose IPs are 0..n, so a response entry names its pool index.
    fn pool(n: u32, ip_offset: u32) -> PeerMap<Ipv4Addr> {
        let mut map = PeerMap::with_hasher(DefaultHashBuilder::default());
        for i in 0..n {
            map.insert(
                key(i + ip_offset),
                Peer {
                    port: 1,
                    last_seen: SecondsSinceServerStart(0),
                },
            );
        }
        map
    }

    fn sample(
        first: &PeerMap<Ipv4Addr>,
        second: &PeerMap<Ipv4Addr>,
        skip: Option<usize>,
        numwant: usize,
        rng: &mut SmallRng,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        sample_into(
            first.as_slice(),
            second.as_slice(),
            skip,
            numwant,
            rng,
            &mut out,
        );
        out.iter().map(|peer| u32::from(peer.ip)).collect()
    }

    #[test]
    fn layout_stays_small() {
        assert_eq!(size_of::<Peer>(), 8);
        assert_eq!(size_of::<PeerKey<Ipv4Addr>>(), 24);
        assert_eq!(size_of::<PeerKey<std::net::Ipv6Addr>>(), 36);
        // Two maps and a counter (the maps' size comes from indexmap: update the bound,
        // with a reason, if a new version changes it).
        assert!(size_of::<Torrent<Ipv4Addr>>() <= 136);
    }

    #[test]
    fn whole_pool_when_small() {
        let mut rng = SmallRng::seed_from_u64(1);
        let (a, b) = (pool(3, 0), pool(2, 3));
        let mut got = sample(&a, &b, None, 10, &mut rng);
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        // numwant + 1 peers including the announcer: all the others.
        let mut got = sample(&a, &b, Some(3), 4, &mut rng);
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 4]);
        assert!(sample(&a, &b, None, 0, &mut rng).is_empty());
    }

    #[test]
    fn exact_count_distinct_and_never_skip() {
        let mut rng = SmallRng::seed_from_u64(2);
        for (na, nb) in [(0, 7), (7, 0), (5, 9), (1, 50), (50, 50)] {
            let (a, b) = (pool(na, 0), pool(nb, na));
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

    #[test]
    fn every_index_equally_likely() {
        // 10 of 37 (37 is not a multiple of 10, so strata differ in size), skipping 5.
        let mut rng = SmallRng::seed_from_u64(3);
        let (a, b) = (pool(20, 0), pool(17, 20));
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

    #[test]
    fn runs_of_every_shape_are_exact_and_distinct() {
        // 150 candidates: numwant up to 75 takes runs, of every length up to RUN_LEN and
        // with strata of two sizes; beyond that single peers. The pool boundary (100) and
        // the announcer fall inside runs often.
        let mut rng = SmallRng::seed_from_u64(4);
        let (a, b) = (pool(100, 0), pool(51, 100));
        for numwant in 1..=151 {
            for skip in [None, Some(0), Some(99), Some(100), Some(150)] {
                for _ in 0..20 {
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

    #[test]
    fn large_pool_is_sampled_uniformly() {
        // The production case: 30 of 10k, in runs, across the seeders/leechers boundary.
        let mut rng = SmallRng::seed_from_u64(5);
        let (a, b) = (pool(6_000, 0), pool(4_000, 6_000));
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
    fn upsert_moves_and_respects_capacity() {
        let mut torrent = Torrent::<Ipv4Addr>::new();
        let peer = Peer {
            port: 1,
            last_seen: SecondsSinceServerStart(0),
        };
        assert!(matches!(
            torrent.upsert(key(1), peer, Status::Leecher, 1),
            Upsert::Stored { previous: None, .. }
        ));
        // A lone peer gets no room for others (see GROW_EXACTLY_BELOW).
        assert_eq!(torrent.leechers.capacity(), 1);
        assert_eq!(
            torrent.upsert(key(2), peer, Status::Leecher, 1),
            Upsert::Rejected
        );
        // A known peer changing status is not a new peer: the full torrent takes it.
        assert_eq!(
            torrent.upsert(key(1), peer, Status::Seeder, 1),
            Upsert::Stored {
                location: Location {
                    status: Status::Seeder,
                    index: 0
                },
                previous: Some(Status::Leecher),
            }
        );
        assert_eq!(torrent.counts(), (1, 0));
        assert_eq!(torrent.remove(&key(1)), Some(Status::Seeder));
        assert!(torrent.is_empty());
    }

    #[test]
    fn cleaning_shrinks_sparse_maps() {
        let mut torrent = Torrent::<Ipv4Addr>::new();
        for i in 0..1000 {
            let peer = Peer {
                port: 1,
                last_seen: SecondsSinceServerStart(i),
            };
            torrent.upsert(key(i), peer, Status::Leecher, usize::MAX);
        }
        assert_eq!(
            torrent.remove_seen_before(SecondsSinceServerStart(990)),
            (0, 990)
        );
        assert!(torrent.leechers.capacity() < 100);
        assert_eq!(torrent.leechers.len(), 10);
    }
}
