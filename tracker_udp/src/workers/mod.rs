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

use tracker_udp_protocol::{MAX_ANNOUNCE_PEERS_IPV4, MAX_ANNOUNCE_PEERS_IPV6};

/// The most peers an announce response of the family carries in one datagram that a
/// 1500-byte Ethernet MTU passes without fragmentation.
pub(crate) fn max_peers_in_datagram(ipv6: bool) -> usize {
    if ipv6 {
        MAX_ANNOUNCE_PEERS_IPV6
    } else {
        MAX_ANNOUNCE_PEERS_IPV4
    }
}
