//! What the UDP tracker's socket workers and request workers send each other.
//!
//! Requests carry only what the swarm needs: the announce's parameters (numwant already
//! resolved and capped for the client's address family) and, in private mode, the
//! checked passkey with the counters to credit; never the client's BEP 41 URL data or
//! anything else whose size the client chooses. Responses travel in batches, one
//! per socket worker per flush, with the peers of all announce responses of a batch in two
//! shared buffers, so that an announce allocates nothing of its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tracker_common::addr::CanonicalSocketAddr;
use tracker_common::private::accounting::AccountInfo;
use tracker_common::runtime::request_worker::{PeerBuffers, PeerRange, ResponseBatch};
use tracker_common::swarm::scrape::ScrapePart;
use tracker_common::swarm::{AnnounceParams, ScrapeCounts};
use tracker_common::types::ResponsePeer;
use tracker_udp_protocol::{AnnounceResponseRef, Ip, TransactionId};

/// A request for a request worker.
#[derive(Debug)]
pub(crate) enum UdpRequest {
    /// An announce whose connection id and info hash were already checked.
    Announce {
        /// What the swarm needs.
        params: AnnounceParams,
        /// The announce's transaction id.
        transaction_id: TransactionId,
        /// The IP to store for the peer (its source address unless the config trusts the
        /// `ip` field).
        peer_ip: IpAddr,
        /// Where the response goes.
        addr: CanonicalSocketAddr,
        /// Private mode: the user's passkey (checked) and counters, to credit once the
        /// swarm has the announce. `None` in public mode. Inline rather than boxed: a
        /// box costs every private announce an allocation in the socket worker and a
        /// free in the request worker, across threads, which measured dearer than
        /// copying 56 bytes more per request.
        account: Option<AccountInfo>,
    },
    /// The part of a scrape that this request worker's shard answers.
    Scrape {
        /// Where the response goes.
        addr: CanonicalSocketAddr,
        /// The scrape's transaction id.
        transaction_id: TransactionId,
        /// Set when the scrape was split: the socket worker's key for collecting the
        /// parts. Unset, the part is the whole scrape, in order.
        pending_id: Option<u64>,
        /// The hashes with their positions in the scrape.
        part: ScrapePart,
    },
}

/// A response from a request worker.
#[derive(Debug)]
pub(crate) enum UdpResponse {
    /// An announce response; its peers are in the batch's peer buffer of its family.
    Announce {
        /// Where it goes.
        addr: CanonicalSocketAddr,
        /// Everything but the peers.
        header: AnnounceHeader,
        /// Which of the batch's peer buffers, and where in it.
        peers: PeerRange,
    },
    /// A whole scrape answer.
    Scrape {
        /// Where it goes.
        addr: CanonicalSocketAddr,
        /// The scrape's transaction id.
        transaction_id: TransactionId,
        /// Counts in the order of the scrape.
        counts: Vec<ScrapeCounts>,
    },
    /// One request worker's part of a split scrape.
    ScrapePart {
        /// The socket worker's key for the pending scrape.
        pending_id: u64,
        /// Counts with their positions in the scrape.
        counts: Vec<(u16, ScrapeCounts)>,
    },
}

/// The fixed part of an announce response.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct AnnounceHeader {
    /// The announce's transaction id.
    pub(crate) transaction_id: TransactionId,
    /// Seconds until the client should announce again.
    pub(crate) announce_interval: i32,
    /// Leechers of the torrent (of the announcer's address family).
    pub(crate) leechers: i32,
    /// Seeders of the torrent (of the announcer's address family).
    pub(crate) seeders: i32,
}

impl AnnounceHeader {
    /// The whole response, with `peers`.
    pub(crate) fn with_peers<'a, I: Ip>(
        &self,
        peers: &'a [ResponsePeer<I>],
    ) -> AnnounceResponseRef<'a, I> {
        AnnounceResponseRef {
            transaction_id: self.transaction_id,
            announce_interval: self.announce_interval,
            leechers: self.leechers,
            seeders: self.seeders,
            peers,
        }
    }
}

/// A batch of responses for one socket worker.
#[derive(Debug, Default)]
pub(crate) struct UdpResponses {
    /// The responses, in the order they were made.
    pub(crate) responses: Vec<UdpResponse>,
    /// Peers of the announce responses.
    pub(crate) peers: PeerBuffers<ResponsePeer<Ipv4Addr>, ResponsePeer<Ipv6Addr>>,
}

impl ResponseBatch for UdpResponses {
    fn len(&self) -> usize {
        self.responses.len()
    }

    fn empty_like(&self) -> Self {
        Self {
            responses: Vec::with_capacity(self.responses.len()),
            peers: self.peers.empty_like(),
        }
    }
}
#[cfg(test)]
mod tests {
    /// Requests are copied into batches and across channels by the million: they stay
    /// within three cache lines, private mode's passkey and counters included.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn requests_stay_small() {
        assert!(std::mem::size_of::<super::UdpRequest>() <= 192);
    }
}
