//! Which request worker owns a torrent: a keyed hash of its info hash.
//!
//! Info hashes are chosen by clients. With a mapping derived from the hash alone, a client
//! that picks its hashes could send every announce to one request worker and leave the
//! others idle. The router hashes the info hash with SipHash-1-3 under a key drawn from
//! the OS at start, so the shard of a hash cannot be known outside the process, and it
//! changes at every restart, unless a swarm snapshot is restored: the key is then the
//! snapshot's (see below), as secret as the file. SipHash-1-3 is the keyed hash std's `HashMap` defaults to
//! for the same reason (hash flooding); it is pinned here by name, through the
//! `siphasher` crate, so that the routing does not depend on an unspecified algorithm.
//!
//! The 64-bit hash itself, the info hash's *fingerprint*, also keys the archive of
//! emptied torrents' completed counts, which keeps no info hashes. A snapshot saves the
//! fingerprints and the key, so that a restart, with any number of workers, can tell
//! which worker each archived count belongs to ([`ShardRouter::shard_of_fingerprint`]).

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use crate::types::InfoHash;

/// Maps info hashes to one of `num_shards` request workers. Clones share the key.
#[derive(Clone, Debug)]
pub struct ShardRouter {
    key: [u8; 16],
    num_shards: usize,
}

impl ShardRouter {
    /// A router over `num_shards` shards (0 is treated as 1) with a random key.
    pub fn new(num_shards: usize) -> Self {
        use rand::{Rng, SeedableRng};
        Self::with_key(rand::rngs::StdRng::from_os_rng().random(), num_shards)
    }

    /// A router with a given key: for tests, which need reproducible shards.
    pub fn with_key(key: [u8; 16], num_shards: usize) -> Self {
        Self {
            key,
            num_shards: num_shards.max(1),
        }
    }

    /// The same key with another number of shards: how a snapshot's key is taken over
    /// by a tracker with another number of request workers.
    pub fn with_num_shards(&self, num_shards: usize) -> Self {
        Self::with_key(self.key, num_shards)
    }

    /// The secret key (for a snapshot, which must route fingerprints after a restart).
    pub fn key(&self) -> [u8; 16] {
        self.key
    }

    /// How many shards there are.
    pub fn num_shards(&self) -> usize {
        self.num_shards
    }

    /// The shard that owns `info_hash`: always below [`Self::num_shards`].
    pub fn shard(&self, info_hash: &InfoHash) -> usize {
        if self.num_shards == 1 {
            return 0;
        }
        self.shard_of_fingerprint(self.fingerprint(info_hash))
    }

    /// The keyed 64-bit hash of `info_hash` that [`Self::shard`] maps onto a shard.
    pub fn fingerprint(&self, info_hash: &InfoHash) -> u64 {
        let mut hasher = SipHasher13::new_with_key(&self.key);
        hasher.write(&info_hash.0);
        hasher.finish()
    }

    /// The shard that owns the info hashes of `fingerprint` ([`Self::fingerprint`]):
    /// always below [`Self::num_shards`]. The high bits decide.
    pub fn shard_of_fingerprint(&self, fingerprint: u64) -> usize {
        // Multiply-shift maps the 64-bit hash onto [0, num_shards) as evenly as `%`
        // would, without a division. The result is below num_shards, so it fits.
        let scaled = (u128::from(fingerprint) * self.num_shards as u128) >> 64;
        usize::try_from(scaled).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn in_range_stable_and_spread() {
        let mut rng = SmallRng::seed_from_u64(3);
        for n in [0, 1, 2, 3, 7, 64] {
            let router = ShardRouter::new(n);
            for _ in 0..1000 {
                let h = InfoHash(rng.random());
                let shard = router.shard(&h);
                assert!(shard < n.max(1));
                assert_eq!(shard, router.clone().shard(&h), "stable across clones");
            }
        }
        let router = ShardRouter::new(4);
        let mut per_shard = [0u32; 4];
        for _ in 0..10_000 {
            per_shard[router.shard(&InfoHash(rng.random()))] += 1;
        }
        // Expected 2500 each; the standard deviation is about 43, so this is ~12 sigma.
        for count in per_shard {
            assert!((2000..=3000).contains(&count), "{per_shard:?}");
        }
    }

    /// Hashes that an unkeyed router sends to shard 0 (their first bytes are zero) are
    /// spread by the keyed one, and two keys disagree on where they go.
    #[test]
    fn chosen_hashes_cannot_be_aimed_at_one_shard() {
        let mut rng = SmallRng::seed_from_u64(4);
        let aimed: Vec<InfoHash> = (0..4000)
            .map(|_| {
                let mut h: [u8; 20] = rng.random();
                h[..8].fill(0);
                InfoHash(h)
            })
            .collect();
        let a = ShardRouter::with_key([1; 16], 4);
        let b = ShardRouter::with_key([2; 16], 4);
        let mut per_shard = [0u32; 4];
        let mut same = 0;
        for h in &aimed {
            per_shard[a.shard(h)] += 1;
            same += usize::from(a.shard(h) == b.shard(h));
        }
        for count in per_shard {
            assert!((800..=1200).contains(&count), "{per_shard:?}");
        }
        // Independent keys agree on a quarter of the hashes, by chance.
        assert!((800..=1200).contains(&same), "{same}");
    }
}
