//! A map kept as a dense vector of its entries plus a hash index of `u32` positions: the
//! large form of a peer store (`super::peers::LargeStore`).
//!
//! # Why not `IndexMap`
//! An [`indexmap::IndexMap`] stores each entry with its 8-byte hash and indexes it with a
//! `usize`, so an IPv4 UDP peer of 10 bytes (6 of endpoint, 4 of last-seen word) costs 24
//! bytes of entry and 9 of index bucket, before the slack of both tables. This map keeps
//! the entry alone (12 bytes for that peer) and a 4-byte position per index bucket. The
//! hash is not stored: a key is a few bytes (an endpoint), so hashing it again when the
//! index grows costs less than keeping it. What is kept is what `IndexMap` gives a store
//! and no more: lookup by key, access by position (the sampling reads the entries as a
//! plain slice), insertion of a new key at the end, `swap_remove`, and `retain`.
//!
//! The entries grow by a quarter of their length at a time rather than doubling, which
//! leaves about a tenth of them spare on average instead of a quarter to a half. The price
//! is more reallocations while a store grows (each entry is copied about five times over
//! the store's growth instead of twice), paid only when a new peer arrives, never on the
//! re-announces that make up most of the traffic.
//!
//! # Invariants
//! - Every position `0..entries.len()` is in `index` exactly once, under the hash of the
//!   key at that position, and nothing else is.
//! - No two entries have the same key.
//! - Positions fit in a `u32`: a store never holds more than a torrent's peer limit,
//!   which the configuration keeps below `u32::MAX` ([`MAX_LEN`]).

use std::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashTable};

use super::peers::sparse_shrink_target;

/// The most entries a map holds: positions are `u32`s. `swarm.max_peers_per_torrent` is
/// kept below this by the configuration check, so a torrent's stores never reach it.
pub(crate) const MAX_LEN: usize = u32::MAX as usize;

/// The entries (see the module documentation) and the index of their positions by key.
pub(super) struct DenseMap<K, V> {
    entries: Vec<(K, V)>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

/// The position `i` as the index stores it. Within [`MAX_LEN`] by the module's invariant.
fn position(i: usize) -> u32 {
    debug_assert!(i < MAX_LEN);
    i as u32
}

impl<K: Hash + Eq, V> DenseMap<K, V> {
    /// An empty map with room for `capacity` entries.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            index: HashTable::with_capacity(capacity),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries the map has room for without growing its vector.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// The entries, by position.
    pub(super) fn as_slice(&self) -> &[(K, V)] {
        &self.entries
    }

    /// The value at position `i`, to change (the key stays).
    pub(super) fn value_mut(&mut self, i: usize) -> Option<&mut V> {
        self.entries.get_mut(i).map(|(_, value)| value)
    }

    /// The position of `key`, if it is here.
    pub(super) fn get_index_of(&self, key: &K) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(self.hasher.hash_one(key), |&i| {
                entries.get(i as usize).is_some_and(|(k, _)| k == key)
            })
            .map(|&i| i as usize)
    }

    /// Adds `key`, which must not be here yet, at the end; returns its position.
    pub(super) fn insert_new(&mut self, key: K, value: V) -> usize {
        debug_assert!(self.get_index_of(&key).is_none());
        let i = self.entries.len();
        if i == self.entries.capacity() {
            // A quarter more (at least 4), not double: see the module documentation.
            self.entries.reserve_exact((i / 4).max(4));
        }
        let hash = self.hasher.hash_one(&key);
        self.entries.push((key, value));
        let Self {
            entries,
            index,
            hasher,
        } = self;
        index.insert_unique(hash, position(i), |&j| rehash(hasher, entries, j));
        i
    }

    /// Removes `key` and returns its value; the last entry moves into its position.
    pub(super) fn swap_remove(&mut self, key: &K) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let entries = &self.entries;
        let found = self.index.find_entry(hash, |&i| {
            entries.get(i as usize).is_some_and(|(k, _)| k == key)
        });
        let (i, _) = found.ok()?.remove();
        let i = i as usize;
        let last = self.entries.len().checked_sub(1)?;
        let (_, value) = self.entries.swap_remove(i);
        if i != last {
            // The entry that was last is at `i` now: its index bucket says so.
            let moved_hash = self.hasher.hash_one(&self.entries.get(i)?.0);
            let moved = self.index.find_mut(moved_hash, |&j| j as usize == last);
            if let Some(slot) = moved {
                *slot = position(i);
            }
        }
        Some(value)
    }

    /// Keeps the entries for which `keep` is true, in their order, and rebuilds the index.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|(key, value)| keep(key, value));
        if self.entries.len() != before {
            self.reindex();
        }
    }

    /// Takes every entry out, in order, leaving the map empty (and its tables allocated).
    pub(super) fn take_entries(&mut self) -> Vec<(K, V)> {
        self.index.clear();
        std::mem::take(&mut self.entries)
    }

    /// Shrinks both tables as the stores' rule says (`super::peers::sparse_shrink_target`,
    /// on the entries' capacity).
    pub(super) fn shrink_if_sparse(&mut self) {
        if let Some(target) = sparse_shrink_target(self.entries.len(), self.entries.capacity()) {
            self.entries.shrink_to(target);
            let Self {
                entries,
                index,
                hasher,
            } = self;
            index.shrink_to(target, |&j| rehash(hasher, entries, j));
        }
    }

    /// Puts every position back in the index.
    fn reindex(&mut self) {
        let Self {
            entries,
            index,
            hasher,
        } = self;
        index.clear();
        for (i, (key, _)) in entries.iter().enumerate() {
            index.insert_unique(hasher.hash_one(key), position(i), |&j| {
                rehash(hasher, entries, j)
            });
        }
    }

    /// Whether the module's invariants hold.
    #[cfg(test)]
    pub(super) fn is_consistent(&self) -> bool {
        let mut seen = vec![false; self.entries.len()];
        for &i in &self.index {
            match seen.get_mut(i as usize) {
                Some(slot) if !*slot => *slot = true,
                _ => return false,
            }
        }
        seen.iter().all(|&s| s)
            && self
                .entries
                .iter()
                .enumerate()
                .all(|(i, (key, _))| self.get_index_of(key) == Some(i))
    }
}

/// The hash of the key at position `j`, for the index when it moves its buckets.
fn rehash<K: Hash, V>(hasher: &DefaultHashBuilder, entries: &[(K, V)], j: u32) -> u64 {
    // Every position in the index is below the length (the module's invariants).
    entries
        .get(j as usize)
        .map_or(0, |(key, _)| hasher.hash_one(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Retain(u16),
        Shrink,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys from a small range, so that removals and re-insertions hit stored keys.
        prop_oneof![
            6 => (0u16..300).prop_map(Op::Insert),
            3 => (0u16..300).prop_map(Op::Remove),
            1 => (1u16..8).prop_map(Op::Retain),
            1 => Just(Op::Shrink),
        ]
    }

    proptest! {
        /// Against a plain map as the model: the same keys with the same values, every
        /// position indexed once, positions dense.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 0..600)) {
            let mut map = DenseMap::<u16, u32>::with_capacity(0);
            let mut model = HashMap::<u16, u32>::new();
            for (n, op) in ops.into_iter().enumerate() {
                let n = n as u32;
                match op {
                    Op::Insert(k) => {
                        if model.contains_key(&k) {
                            let i = map.get_index_of(&k);
                            prop_assert!(i.is_some());
                            if let Some(value) = i.and_then(|i| map.value_mut(i)) {
                                *value = n;
                            }
                        } else {
                            let i = map.insert_new(k, n);
                            prop_assert_eq!(i, model.len());
                        }
                        model.insert(k, n);
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(map.swap_remove(&k), model.remove(&k));
                    }
                    Op::Retain(m) => {
                        map.retain(|k, _| k % m != 0);
                        model.retain(|k, _| k % m != 0);
                    }
                    Op::Shrink => map.shrink_if_sparse(),
                }
                prop_assert!(map.is_consistent());
                prop_assert_eq!(map.len(), model.len());
                for (k, v) in map.as_slice() {
                    prop_assert_eq!(model.get(k), Some(v));
                }
            }
        }
    }

    #[test]
    fn grows_by_a_quarter_and_shrinks_when_sparse() {
        let mut map = DenseMap::<u32, ()>::with_capacity(0);
        for k in 0..1000 {
            map.insert_new(k, ());
        }
        // Never more than a quarter (or 4) spare after a growth.
        assert!(map.capacity() <= 1000 + 1000 / 4 + 4, "{}", map.capacity());
        map.retain(|k, _| *k < 100);
        map.shrink_if_sparse();
        assert_eq!(map.capacity(), 200);
        assert!(map.is_consistent());
        assert_eq!(map.take_entries().len(), 100);
        assert_eq!(map.len(), 0);
        assert!(map.is_consistent());
    }
}
