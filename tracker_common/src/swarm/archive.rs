//! Completed counts of torrents that left the swarm: a set-associative table of
//! (fingerprint, count), so that a torrent's `completed` survives its last peer leaving
//! and memory stays bounded however many torrents come and go.
//!
//! # Rules
//! - An entry is a 64-bit keyed fingerprint of the info hash (the shard router's SipHash,
//!   whose key is made at start or taken from a snapshot, so clients cannot aim
//!   collisions) and its count. A
//!   count of 0 marks a free slot: a torrent that never completed has nothing to keep.
//! - A fingerprint maps to one set of [`WAYS`] slots. When its set is full and the table
//!   is at its full size, the newcomer replaces the entry with the smallest count, and
//!   only if its own count is at least as large: a flood of new torrents with small
//!   counts cannot push out popular torrents.
//! - Taking an entry (a torrent that comes back) frees its slot.
//! - The table starts small and doubles (up to its full size, never past it) when it is
//!   three quarters full or a newcomer's set is full, so that its memory follows what it
//!   holds: the sets are spread over the whole table, and a table allocated whole would
//!   have a few thousand entries touch most of its pages.

/// Slots per set.
pub(super) const WAYS: usize = 8;

/// Sets of a new table (or all of them, if fewer).
const INITIAL_SETS: usize = 64;

pub(super) struct Archive {
    fingerprints: Vec<u64>,
    counts: Vec<u32>,
    len: usize,
    /// Sets of the table at its full size.
    max_sets: usize,
}

impl Archive {
    /// A table of at most `capacity` entries, rounded down to whole sets (so 0..WAYS
    /// entries make a table that keeps nothing).
    pub(super) fn new(capacity: usize) -> Self {
        let max_sets = capacity / WAYS;
        let slots = max_sets.min(INITIAL_SETS) * WAYS;
        Self {
            fingerprints: vec![0; slots],
            counts: vec![0; slots],
            len: 0,
            max_sets,
        }
    }

    fn sets(&self) -> usize {
        self.counts.len() / WAYS
    }

    /// The slot range of the set of `fingerprint`, empty if the table has no set.
    fn set(&self, fingerprint: u64) -> std::ops::Range<usize> {
        let sets = self.sets();
        // Multiply-shift: the fingerprint's high bits pick the set, uniformly.
        let set = usize::try_from((u128::from(fingerprint) * sets as u128) >> 64).unwrap_or(0);
        let start = set.saturating_mul(WAYS);
        start..start.saturating_add(WAYS).min(self.counts.len())
    }

    fn position(&self, fingerprint: u64) -> Option<usize> {
        let set = self.set(fingerprint);
        let start = set.start;
        let fingerprints = self.fingerprints.get(set.clone())?;
        let counts = self.counts.get(set)?;
        fingerprints
            .iter()
            .zip(counts)
            .position(|(&f, &c)| c != 0 && f == fingerprint)
            .map(|i| start + i)
    }

    /// The archived count of `fingerprint`.
    pub(super) fn get(&self, fingerprint: u64) -> Option<u32> {
        self.position(fingerprint)
            .and_then(|i| self.counts.get(i).copied())
    }

    /// Removes and returns the archived count of `fingerprint`.
    pub(super) fn take(&mut self, fingerprint: u64) -> Option<u32> {
        let i = self.position(fingerprint)?;
        let count = self.counts.get_mut(i)?;
        let taken = std::mem::take(count);
        self.len = self.len.saturating_sub(1);
        Some(taken)
    }

    /// Archives `count` for `fingerprint` (see the module rules); a count of 0 is not kept.
    pub(super) fn put(&mut self, fingerprint: u64, count: u32) {
        if count == 0 {
            return;
        }
        if let Some(i) = self.position(fingerprint) {
            if let Some(slot) = self.counts.get_mut(i) {
                *slot = count;
            }
            return;
        }
        let three_quarters = self.counts.len() / 4 * 3;
        if self.sets() < self.max_sets && (self.len >= three_quarters || self.set_full(fingerprint))
        {
            self.grow();
        }
        self.place(fingerprint, count);
    }

    fn set_full(&self, fingerprint: u64) -> bool {
        self.counts
            .get(self.set(fingerprint))
            .is_some_and(|counts| counts.iter().all(|&c| c != 0))
    }

    /// Puts a fingerprint the table does not hold into its set: a free slot, or else the
    /// smallest count's if `count` is at least as large.
    fn place(&mut self, fingerprint: u64, count: u32) {
        let set = self.set(fingerprint);
        let Some(counts) = self.counts.get(set.clone()) else {
            return;
        };
        let Some((victim, &smallest)) = counts.iter().enumerate().min_by_key(|(_, c)| **c) else {
            return;
        };
        if smallest == 0 {
            self.len = self.len.saturating_add(1);
        } else if count < smallest {
            return;
        }
        let i = set.start + victim;
        if let (Some(f), Some(c)) = (self.fingerprints.get_mut(i), self.counts.get_mut(i)) {
            *f = fingerprint;
            *c = count;
        }
    }

    /// Doubles the table (at most to its full size) and places every entry again.
    fn grow(&mut self) {
        let sets = self.sets().saturating_mul(2).clamp(1, self.max_sets);
        let fingerprints = std::mem::replace(&mut self.fingerprints, vec![0; sets * WAYS]);
        let counts = std::mem::replace(&mut self.counts, vec![0; sets * WAYS]);
        self.len = 0;
        for (fingerprint, count) in fingerprints.into_iter().zip(counts) {
            if count != 0 {
                self.place(fingerprint, count);
            }
        }
    }

    /// Every entry held: (fingerprint, count).
    pub(super) fn entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.fingerprints
            .iter()
            .zip(&self.counts)
            .filter(|&(_, &count)| count != 0)
            .map(|(&fingerprint, &count)| (fingerprint, count))
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the table takes now.
    pub(super) fn memory_bytes(&self) -> usize {
        self.counts.len() * (size_of::<u64>() + size_of::<u32>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_take() {
        let mut a = Archive::new(64);
        assert_eq!(a.memory_bytes(), 64 * 12);
        a.put(1, 5);
        a.put(2, 0);
        assert_eq!((a.get(1), a.get(2), a.len()), (Some(5), None, 1));
        a.put(1, 7);
        assert_eq!((a.get(1), a.len()), (Some(7), 1));
        assert_eq!(a.take(1), Some(7));
        assert_eq!((a.get(1), a.take(1), a.len()), (None, None, 0));
        // Too small for one set: keeps nothing.
        let mut a = Archive::new(WAYS - 1);
        a.put(1, 5);
        assert_eq!((a.get(1), a.len(), a.memory_bytes()), (None, 0, 0));
    }

    #[test]
    fn full_set_evicts_smallest_only_for_at_least_as_large() {
        // One set: every fingerprint shares it.
        let mut a = Archive::new(WAYS);
        for f in 0..WAYS as u64 {
            a.put(f << 60 | 1, 10 + f as u32);
        }
        assert_eq!(a.len(), WAYS);
        // Smaller than every entry: dropped.
        a.put(99, 9);
        assert_eq!(a.get(99), None);
        // Equal to the smallest (10, fingerprint 1): replaces it.
        a.put(100, 10);
        assert_eq!((a.get(100), a.get(1)), (Some(10), None));
        // Larger: replaces the smallest left (100's 10).
        a.put(101, 1000);
        assert_eq!((a.get(101), a.get(100)), (Some(1000), None));
        assert_eq!(a.len(), WAYS);
        // The larger counts all survived.
        for f in 1..WAYS as u64 {
            assert_eq!(a.get(f << 60 | 1), Some(10 + f as u32));
        }
    }

    /// A well-spread fingerprint for `i`.
    fn spread(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i >> 7)
    }

    #[test]
    fn memory_follows_what_it_holds_up_to_the_full_size() {
        let full = 1 << 20;
        let mut a = Archive::new(full);
        let small = a.memory_bytes();
        assert!(small <= INITIAL_SETS * WAYS * 12, "starts small: {small}");
        for i in 1..=2000 {
            a.put(spread(i), 1 + (i % 50) as u32);
        }
        // Nothing lost on the way: every count is found again.
        assert_eq!(a.len(), 2000);
        for i in 1..=2000 {
            assert_eq!(a.get(spread(i)), Some(1 + (i % 50) as u32), "entry {i}");
        }
        // Grown in doublings to hold them, far from the full 12 MiB.
        let held = a.memory_bytes();
        assert!((2000 * 12..=8 * 2000 * 12).contains(&held), "{held} bytes");
        // Never past the full size, however many come.
        for i in 2001..=(2 * full as u64) {
            a.put(spread(i), 1);
        }
        assert_eq!(a.memory_bytes(), full * 12);
        assert!(a.len() <= full);
    }

    #[test]
    fn a_full_set_grows_the_table_before_evicting() {
        // Room for two sets: eight fingerprints that share a set of the one-set table
        // fill it; a ninth grows the table instead of pushing one out.
        let mut a = Archive::new(2 * WAYS);
        a.max_sets = 2;
        a.fingerprints = vec![0; WAYS];
        a.counts = vec![0; WAYS];
        for f in 0..WAYS as u64 {
            a.put(f << 56 | 1, 5);
        }
        a.put(u64::MAX, 1);
        assert_eq!(a.memory_bytes(), 2 * WAYS * 12);
        assert_eq!(a.get(u64::MAX), Some(1));
        for f in 0..WAYS as u64 {
            assert_eq!(a.get(f << 56 | 1), Some(5));
        }
    }
}
