//! The tracker's threads. All network I/O lives here; the wire format and the swarm stay
//! pure.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub(crate) mod request;
pub(crate) mod socket;

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use tracker_udp_protocol::{MAX_ANNOUNCE_PEERS_IPV4, MAX_ANNOUNCE_PEERS_IPV6};

/// What only the UDP tracker counts, per socket worker (the common counters are in
/// `tracker_common::statistics`).
pub(crate) struct UdpCounters {
    connect: Box<[CachePadded<AtomicU64>]>,
}

impl UdpCounters {
    pub(crate) fn new(socket_workers: usize) -> Self {
        Self {
            connect: (0..socket_workers)
                .map(|_| CachePadded::default())
                .collect(),
        }
    }

    /// Socket worker `index`'s connect counter; only that worker writes it.
    pub(crate) fn connect(&self, index: usize) -> &AtomicU64 {
        static UNUSED: AtomicU64 = AtomicU64::new(0);
        self.connect.get(index).map_or(&UNUSED, |c| c)
    }

    /// Connect requests received by all socket workers.
    pub(crate) fn connects(&self) -> u64 {
        self.connect.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The most peers an announce response of the family carries in one datagram that a
/// 1500-byte Ethernet MTU passes without fragmentation.
pub(crate) fn max_peers_in_datagram(ipv6: bool) -> usize {
    if ipv6 {
        MAX_ANNOUNCE_PEERS_IPV6
    } else {
        MAX_ANNOUNCE_PEERS_IPV4
    }
}
