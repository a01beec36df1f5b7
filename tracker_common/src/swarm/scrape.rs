//! Scrapes over torrents of several request workers: splitting one into a part per
//! request worker, and merging the answers back in the order the client asked.
//!
//! The socket worker that received a scrape does both, so no other thread keeps state
//! about it. A split scrape waits in [`PendingScrapes`] until every part has come back;
//! the table is bounded, and parts that never come back (a full channel dropped them) are
//! expired, so a client cannot make it grow.

use std::time::{Duration, Instant};

use hashbrown::HashMap;

use crate::swarm::ScrapeCounts;
use crate::swarm::routing::ShardRouter;
use crate::types::InfoHash;

/// Info hashes of one scrape that one request worker owns, each with its position in the
/// scrape.
pub type ScrapePart = Vec<(u16, InfoHash)>;

/// Where a scrape's hashes go.
#[derive(Debug, PartialEq, Eq)]
pub enum ScrapeRoute {
    /// No hash may be answered (the access list refused them all): the answer is all
    /// zeros, without asking any request worker.
    Nothing,
    /// Every hash is allowed and owned by one request worker: its answer is the whole
    /// answer, in order.
    One {
        /// The request worker.
        shard: usize,
        /// All the hashes.
        part: ScrapePart,
    },
    /// Several parts, or allowed hashes mixed with refused ones (which answer zeros):
    /// the answers must be merged in [`PendingScrapes`].
    Split(Vec<(usize, ScrapePart)>),
}

/// Routes each hash of a scrape to the request worker that owns it, leaving out those
/// `allows` refuses; refused hashes are answered with zeros, as unknown ones are, so that
/// the access list is not revealed. Positions past `u16::MAX` are not answered (no
/// protocol lets a scrape carry that many).
///
/// O(n) in the hashes: each goes straight to its request worker's part (parts are
/// indexed by request worker, so none is searched for), and the parts come out in
/// request-worker order. Repeated hashes are routed as often as they are named; a
/// protocol whose answer names each torrent once drops repeats when it parses or
/// writes.
pub fn route_scrape(
    info_hashes: &[InfoHash],
    router: &ShardRouter,
    mut allows: impl FnMut(&InfoHash) -> bool,
) -> ScrapeRoute {
    // One allocation: empty parts allocate nothing, and are dropped at the end.
    let mut parts: Vec<(usize, ScrapePart)> = (0..router.num_shards())
        .map(|shard| (shard, Vec::new()))
        .collect();
    let mut all_allowed = true;
    for (pos, hash) in info_hashes.iter().enumerate() {
        let Ok(pos) = u16::try_from(pos) else {
            break;
        };
        if !allows(hash) {
            all_allowed = false;
            continue;
        }
        if let Some((_, part)) = parts.get_mut(router.shard(hash)) {
            part.push((pos, *hash));
        }
    }
    parts.retain(|(_, part)| !part.is_empty());
    match parts.len() {
        0 => ScrapeRoute::Nothing,
        1 if all_allowed => match parts.pop() {
            Some((shard, part)) => ScrapeRoute::One { shard, part },
            None => ScrapeRoute::Nothing,
        },
        _ => ScrapeRoute::Split(parts),
    }
}

/// The counts of one part, in the part's order, answered by a request worker's shard.
pub fn answer_part(
    part: &ScrapePart,
    scrape: impl Fn(&InfoHash) -> ScrapeCounts,
) -> Vec<(u16, ScrapeCounts)> {
    part.iter()
        .map(|(pos, hash)| (*pos, scrape(hash)))
        .collect()
}

struct Pending<M> {
    meta: M,
    counts: Vec<ScrapeCounts>,
    parts_left: usize,
    created: Instant,
}

/// Split scrapes waiting for their parts; `M` is what the protocol needs to answer (the
/// client's address and transaction id, a connection, ...).
pub struct PendingScrapes<M> {
    pending: HashMap<u64, Pending<M>>,
    next_id: u64,
    max_pending: usize,
    timeout: Duration,
}

impl<M> PendingScrapes<M> {
    /// A table holding at most `max_pending` scrapes, each for at most `timeout`.
    pub fn new(max_pending: usize, timeout: Duration) -> Self {
        Self {
            pending: HashMap::new(),
            next_id: 0,
            max_pending,
            timeout,
        }
    }

    /// Registers a scrape of `num_hashes` hashes split into `num_parts` parts; returns
    /// the id its parts carry, or `None` when the table is full (the scrape is dropped).
    pub fn insert(
        &mut self,
        meta: M,
        num_hashes: usize,
        num_parts: usize,
        now: Instant,
    ) -> Option<u64> {
        if self.pending.len() >= self.max_pending {
            return None;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.pending.insert(
            id,
            Pending {
                meta,
                counts: vec![ScrapeCounts::default(); num_hashes],
                parts_left: num_parts,
                created: now,
            },
        );
        Some(id)
    }

    /// Adds a part's counts; returns the whole answer once the last part is in. A part of
    /// an expired or unknown scrape is ignored.
    pub fn merge(
        &mut self,
        id: u64,
        part: &[(u16, ScrapeCounts)],
    ) -> Option<(M, Vec<ScrapeCounts>)> {
        let pending = self.pending.get_mut(&id)?;
        for (pos, counts) in part {
            if let Some(slot) = pending.counts.get_mut(usize::from(*pos)) {
                *slot = *counts;
            }
        }
        pending.parts_left = pending.parts_left.saturating_sub(1);
        if pending.parts_left > 0 {
            return None;
        }
        self.pending
            .remove(&id)
            .map(|done| (done.meta, done.counts))
    }

    /// Drops scrapes older than the timeout; returns how many went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.pending.len();
        let timeout = self.timeout;
        self.pending
            .retain(|_, p| now.saturating_duration_since(p.created) < timeout);
        before - self.pending.len()
    }

    /// Scrapes waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn counts(n: u32) -> ScrapeCounts {
        ScrapeCounts {
            seeders: n,
            completed: n * 10,
            leechers: n * 100,
        }
    }

    #[test]
    fn routes_to_owners_keeping_positions() {
        let router = ShardRouter::with_key([9; 16], 3);
        let hashes: Vec<InfoHash> = (0..30).map(hash).collect();
        let ScrapeRoute::Split(parts) = route_scrape(&hashes, &router, |_| true) else {
            panic!("30 hashes over 3 shards are split");
        };
        let mut seen = Vec::new();
        for (shard, part) in &parts {
            for (pos, h) in part {
                assert_eq!(router.shard(h), *shard);
                assert_eq!(hashes[usize::from(*pos)], *h);
                seen.push(*pos);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..30).collect::<Vec<u16>>());
    }

    #[test]
    fn one_shard_or_nothing() {
        let router = ShardRouter::with_key([9; 16], 1);
        let hashes = [hash(1), hash(2)];
        assert_eq!(
            route_scrape(&hashes, &router, |_| true),
            ScrapeRoute::One {
                shard: 0,
                part: vec![(0, hash(1)), (1, hash(2))]
            }
        );
        assert_eq!(
            route_scrape(&hashes, &router, |_| false),
            ScrapeRoute::Nothing
        );
        // A refused hash among allowed ones needs merging, to put its zeros in place.
        assert_eq!(
            route_scrape(&hashes, &router, |h| *h == hash(2)),
            ScrapeRoute::Split(vec![(0, vec![(1, hash(2))])])
        );
    }

    /// The largest scrape a config accepts (65,535 hashes: positions are u16), over
    /// many request workers, every hash named twice: each occurrence routed once, to
    /// its owner, with its own position.
    #[test]
    fn largest_scrape_with_repeats_routes_every_position_once() {
        let router = ShardRouter::with_key([3; 16], 64);
        let hashes: Vec<InfoHash> = (0..usize::from(u16::MAX))
            .map(|i| {
                let mut h = [0; 20];
                h[..8].copy_from_slice(&((i % 32_768) as u64).to_le_bytes());
                InfoHash(h)
            })
            .collect();
        let ScrapeRoute::Split(parts) = route_scrape(&hashes, &router, |_| true) else {
            panic!("split");
        };
        let mut seen = vec![false; hashes.len()];
        let mut last_shard = None;
        for (shard, part) in &parts {
            assert!(Some(*shard) > last_shard, "request-worker order, each once");
            last_shard = Some(*shard);
            for (pos, h) in part {
                assert_eq!(router.shard(h), *shard);
                assert_eq!(hashes[usize::from(*pos)], *h);
                assert!(!std::mem::replace(&mut seen[usize::from(*pos)], true));
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn merges_parts_in_request_order() {
        let mut pending = PendingScrapes::new(10, Duration::from_secs(10));
        let now = Instant::now();
        let id = pending.insert("client", 4, 2, now).unwrap();
        assert_eq!(pending.merge(id, &[(3, counts(3)), (0, counts(0))]), None);
        let (meta, all) = pending.merge(id, &[(1, counts(1))]).unwrap();
        assert_eq!(meta, "client");
        // Position 2 was refused: zeros.
        assert_eq!(
            all,
            vec![counts(0), counts(1), ScrapeCounts::default(), counts(3)]
        );
        assert!(pending.is_empty());
        // A late or forged part is ignored.
        assert_eq!(pending.merge(id, &[(1, counts(1))]), None);
    }

    #[test]
    fn bounded_and_expiring() {
        let mut pending = PendingScrapes::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        let a = pending.insert(1, 1, 2, t0).unwrap();
        pending
            .insert(2, 1, 2, t0 + Duration::from_secs(5))
            .unwrap();
        assert_eq!(pending.insert(3, 1, 2, t0), None, "full");
        assert_eq!(pending.expire(t0 + Duration::from_secs(10)), 1);
        assert_eq!(pending.merge(a, &[(0, counts(1))]), None);
        assert_eq!(pending.len(), 1);
        assert!(pending.insert(4, 1, 2, t0).is_some());
    }
}
