//! The cap on open connections per client address, for the whole TCP tracker (all its
//! socket workers): without it one address could take every place of
//! `max_connections` and shut everyone else out.
//!
//! What counts as one client address:
//! - an IPv4 address;
//! - an IPv6 /64: the prefix one subscriber's network (or one host) is given, so a client
//!   cannot step around the cap by taking a fresh address from its prefix;
//! - an IPv4-mapped IPv6 address (a dual-stack listener's IPv4 client) as its IPv4
//!   address ([`IpAddr::to_canonical`]).
//!
//! The table is touched twice per connection, when it is accepted and when it closes,
//! never on the request path. It is sharded so that socket workers accepting at once
//! rarely meet on one lock, and an address has an entry only while it has connections
//! open: its memory follows the open connections (at most `max_connections` entries).
//! The maps hash with a random key per process, so clients cannot pick addresses that
//! collide.
//!
//! Addresses may be exempt (a reverse proxy's: every client behind it would share its
//! cap). This module keeps counts only; refusing the connection is the caller's.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Shards of the table; a few times the socket workers of a large machine.
const SHARDS: usize = 16;

/// A client address as the cap counts it (see the module doc).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// An IPv4 address (IPv4-mapped IPv6 addresses included).
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl AddressKey {
    /// The key `ip` counts under.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4.to_bits()),
            IpAddr::V6(v6) => Self::V6Prefix((v6.to_bits() >> 64) as u64),
        }
    }
}

/// Whether an address is exempt from the cap.
type Exempt = Box<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Open connections per client address, over all socket workers of a tracker, with a
/// cap.
pub struct AddressLimit {
    /// Most connections per address; 0 = no cap (nothing is counted).
    max_per_address: u32,
    /// Addresses not capped nor counted.
    exempt: Option<Exempt>,
    /// Picks the shard.
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<AddressKey, u32>>]>,
}

/// A place held by one open connection; dropping it (with the connection) gives the
/// place back.
#[derive(Debug)]
pub struct AddressPermit {
    /// `None` when there is no cap.
    limit: Option<Arc<AddressLimit>>,
    key: AddressKey,
}

impl AddressLimit {
    /// A table allowing `max_per_address` open connections per client address; 0 = no
    /// cap.
    pub fn new(max_per_address: u32) -> Arc<Self> {
        Self::build(max_per_address, None)
    }

    /// As [`AddressLimit::new`], but connections from addresses for which `exempt`
    /// holds are neither capped nor counted (a trusted reverse proxy's).
    pub fn with_exempt(
        max_per_address: u32,
        exempt: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::build(max_per_address, Some(Box::new(exempt)))
    }

    fn build(max_per_address: u32, exempt: Option<Exempt>) -> Arc<Self> {
        let shards = if max_per_address == 0 { 0 } else { SHARDS };
        Arc::new(Self {
            max_per_address,
            exempt,
            hasher: RandomState::new(),
            shards: (0..shards).map(|_| Mutex::default()).collect(),
        })
    }

    /// A place for one more connection from `ip`, or `None` when its address has the
    /// cap's number open already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressPermit> {
        let key = AddressKey::of(ip);
        if self.max_per_address == 0 || self.exempt.as_ref().is_some_and(|exempt| exempt(ip)) {
            return Some(AddressPermit { limit: None, key });
        }
        let mut shard = self.shard(key)?;
        let open = shard.entry(key).or_insert(0);
        if *open >= self.max_per_address {
            return None;
        }
        *open += 1;
        Some(AddressPermit {
            limit: Some(Arc::clone(self)),
            key,
        })
    }

    /// Connections open now from `ip`'s address (0 when there is no cap: nothing is
    /// counted then).
    pub fn open(&self, ip: IpAddr) -> u32 {
        let key = AddressKey::of(ip);
        self.shard(key)
            .and_then(|shard| shard.get(&key).copied())
            .unwrap_or(0)
    }

    /// Addresses with connections open now.
    pub fn addresses(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    fn release(&self, key: AddressKey) {
        let Some(mut shard) = self.shard(key) else {
            return;
        };
        if let Some(open) = shard.get_mut(&key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                shard.remove(&key);
                // Give memory back after a crowd of addresses has gone; the hysteresis
                // (shrink at a quarter, to half) keeps it from reallocating back and forth.
                if shard.capacity() > 64 && shard.len() * 4 < shard.capacity() {
                    let len = shard.len();
                    shard.shrink_to(len * 2);
                }
            }
        }
    }

    fn shard(&self, key: AddressKey) -> Option<MutexGuard<'_, HashMap<AddressKey, u32>>> {
        let len = self.shards.len();
        if len == 0 {
            return None;
        }
        let index = (self.hasher.hash_one(key) % len as u64) as usize;
        self.shards.get(index).map(lock)
    }
}

/// The map behind `shard`. Nothing panics while holding one (plain map operations), so
/// a poisoned lock still holds consistent counts.
fn lock(shard: &Mutex<HashMap<AddressKey, u32>>) -> MutexGuard<'_, HashMap<AddressKey, u32>> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for AddressLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressLimit")
            .field("max_per_address", &self.max_per_address)
            .field("exempt", &self.exempt.is_some())
            .field("addresses", &self.addresses())
            .finish_non_exhaustive()
    }
}

impl AddressPermit {
    /// The address this place is counted under.
    pub fn key(&self) -> AddressKey {
        self.key
    }
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        if let Some(limit) = &self.limit {
            limit.release(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_addresses_count_one_by_one() {
        let limit = AddressLimit::new(2);
        let a = limit.try_acquire(ip("192.0.2.1")).unwrap();
        let _b = limit.try_acquire(ip("192.0.2.1")).unwrap();
        assert!(limit.try_acquire(ip("192.0.2.1")).is_none());
        // The neighbour is another client.
        let _c = limit.try_acquire(ip("192.0.2.2")).unwrap();
        assert_eq!(limit.open(ip("192.0.2.1")), 2);
        assert_eq!(limit.open(ip("192.0.2.2")), 1);
        drop(a);
        assert_eq!(limit.open(ip("192.0.2.1")), 1);
        assert!(limit.try_acquire(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let limit = AddressLimit::new(2);
        let _a = limit.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        let _b = limit
            .try_acquire(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
            .unwrap();
        // A fresh address from the same /64 is the same client.
        assert!(limit.try_acquire(ip("2001:db8:1:2:1234::9")).is_none());
        // The next /64 is another.
        let _c = limit.try_acquire(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(
            AddressKey::of(ip("2001:db8:1:2::1")),
            AddressKey::V6Prefix(0x2001_0db8_0001_0002)
        );
        assert_eq!(limit.open(ip("2001:db8:1:2::77")), 2);
        assert_eq!(limit.addresses(), 2);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        assert_eq!(
            AddressKey::of(ip("::ffff:192.0.2.1")),
            AddressKey::of(ip("192.0.2.1"))
        );
        assert_eq!(AddressKey::of(ip("192.0.2.1")), AddressKey::V4(0xC000_0201));
        let limit = AddressLimit::new(1);
        let _a = limit.try_acquire(ip("::ffff:192.0.2.1")).unwrap();
        assert!(limit.try_acquire(ip("192.0.2.1")).is_none());
        // Only mapped addresses are IPv4: an IPv4-compatible one (deprecated,
        // ::a.b.c.d) is IPv6, of the /64 ::/64.
        assert!(limit.try_acquire(ip("::192.0.2.1")).is_some());
    }

    #[test]
    fn places_are_given_back_when_connections_close_and_entries_go() {
        let limit = AddressLimit::new(3);
        let permits: Vec<AddressPermit> = (0..5000u16)
            .flat_map(|n| {
                let [hi, lo] = n.to_be_bytes();
                let ip = IpAddr::from([10, 0, hi, lo]);
                [
                    limit.try_acquire(ip).unwrap(),
                    limit.try_acquire(ip).unwrap(),
                ]
            })
            .collect();
        assert_eq!(limit.addresses(), 5000);
        assert!(limit.shards.iter().any(|shard| lock(shard).capacity() > 64));
        drop(permits);
        assert_eq!(limit.addresses(), 0);
        assert_eq!(limit.open(ip("10.0.0.7")), 0);
        // The shards gave their memory back: none still sized for the crowd.
        for shard in limit.shards.iter() {
            assert!(lock(shard).capacity() <= 64, "{}", lock(shard).capacity());
        }
    }

    #[test]
    fn exempt_addresses_are_neither_capped_nor_counted() {
        let proxy = ip("10.1.2.3");
        let limit = AddressLimit::with_exempt(1, move |ip| ip.to_canonical() == proxy);
        let permits: Vec<AddressPermit> = (0..10)
            .map(|_| limit.try_acquire(ip("::ffff:10.1.2.3")).unwrap())
            .collect();
        assert_eq!(limit.open(proxy), 0);
        assert_eq!(limit.addresses(), 0);
        // Others are capped as ever.
        let _a = limit.try_acquire(ip("10.1.2.4")).unwrap();
        assert!(limit.try_acquire(ip("10.1.2.4")).is_none());
        drop(permits);
        assert_eq!(limit.addresses(), 1);
    }

    #[test]
    fn a_cap_of_0_counts_nothing_and_refuses_nothing() {
        let limit = AddressLimit::new(0);
        let permits: Vec<AddressPermit> = (0..1000)
            .map(|_| limit.try_acquire(ip("192.0.2.1")).unwrap())
            .collect();
        assert_eq!(limit.open(ip("192.0.2.1")), 0);
        assert_eq!(limit.addresses(), 0);
        assert_eq!(permits[0].key(), AddressKey::of(ip("192.0.2.1")));
    }

    #[test]
    fn counts_hold_under_socket_workers_accepting_and_closing_at_once() {
        let limit = AddressLimit::new(1000);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limit = Arc::clone(&limit);
                std::thread::spawn(move || {
                    for round in 0..2000u32 {
                        let ip = IpAddr::from([10, 0, (round % 7) as u8, 1]);
                        let permit = limit.try_acquire(ip).unwrap();
                        drop(permit);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(limit.addresses(), 0);
    }
}
