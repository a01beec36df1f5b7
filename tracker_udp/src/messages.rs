//! What socket workers and request (swarm) workers send each other.
//!
//! Messages travel in batches, one `Vec` per destination per loop iteration, so the
//! channel cost is paid per batch rather than per request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tracker_common::addr::CanonicalSocketAddr;
use tracker_common::types::{InfoHash, ResponsePeer};
use tracker_udp_protocol::{
    AnnounceRequest, AnnounceResponseRef, Ip, Response, TorrentScrapeStatistics, TransactionId,
};

/// Index of a socket worker: where responses go back to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SocketWorkerIndex(pub usize);

/// Index of a request worker: which shard of the torrents.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SwarmWorkerIndex(pub usize);

impl SwarmWorkerIndex {
    /// The worker that owns `info_hash` among `num_workers`.
    pub fn from_info_hash(info_hash: &InfoHash, num_workers: usize) -> Self {
        Self(tracker_common::swarm::shard_index(info_hash, num_workers))
    }
}

/// A request for a request worker.
#[derive(Debug)]
pub enum SwarmRequest {
    /// An announce whose connection id and info hash were already checked.
    Announce {
        /// The request as parsed.
        request: AnnounceRequest,
        /// The IP to store for the peer (its source address unless the config trusts the
        /// `ip` field).
        peer_ip: IpAddr,
        /// Where the response goes.
        addr: CanonicalSocketAddr,
    },
    /// The part of a scrape that this request worker's shard answers.
    Scrape {
        /// Where the response goes.
        addr: CanonicalSocketAddr,
        /// The scrape's transaction id.
        transaction_id: TransactionId,
        /// Set when the scrape was split over several workers: the socket worker's key
        /// for collecting the parts.
        pending_id: Option<u64>,
        /// Each hash with its position in the original request.
        info_hashes: Vec<(u8, InfoHash)>,
    },
}

/// A batch of requests from one socket worker.
pub type SwarmRequestBatch = (SocketWorkerIndex, Vec<SwarmRequest>);

/// A response from a request worker.
#[derive(Debug)]
pub enum SwarmResponse {
    /// An announce response; its peers are in the batch's peer buffer of its family.
    Announce {
        /// Where it goes.
        addr: CanonicalSocketAddr,
        /// Everything but the peers.
        header: AnnounceHeader,
        /// Which of the batch's peer buffers, and where in it.
        peers: PeerRange,
    },
    /// A complete response, ready to be written.
    Ready {
        /// Where it goes.
        addr: CanonicalSocketAddr,
        /// The response.
        response: Response,
    },
    /// One worker's share of a split scrape.
    ScrapePart {
        /// The socket worker's key for the pending scrape.
        pending_id: u64,
        /// Counts with their positions in the original request.
        stats: Vec<(u8, TorrentScrapeStatistics)>,
    },
}

/// The fixed part of an announce response.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AnnounceHeader {
    /// The announce's transaction id.
    pub transaction_id: TransactionId,
    /// Seconds until the client should announce again.
    pub announce_interval: i32,
    /// Leechers of the torrent (of the announcer's address family).
    pub leechers: i32,
    /// Seeders of the torrent (of the announcer's address family).
    pub seeders: i32,
}

impl AnnounceHeader {
    /// The whole response, with `peers`.
    pub fn with_peers<'a, I: Ip>(
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

/// Where an announce response's peers are in its [`ResponseBatch`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerRange {
    /// In `peers_v6` rather than `peers_v4`.
    pub ipv6: bool,
    /// First peer.
    pub start: u32,
    /// Number of peers.
    pub len: u32,
}

/// A batch of responses for one socket worker. The peers of all its announce
/// responses share two buffers, so that an announce allocates nothing of its own.
#[derive(Debug, Default)]
pub struct ResponseBatch {
    /// The responses, in the order they were made.
    pub responses: Vec<SwarmResponse>,
    /// Peers of the IPv4 announce responses.
    pub peers_v4: Vec<ResponsePeer<Ipv4Addr>>,
    /// Peers of the IPv6 announce responses.
    pub peers_v6: Vec<ResponsePeer<Ipv6Addr>>,
}

impl ResponseBatch {
    /// An empty batch with room for about as much as `like` held.
    pub fn with_capacity_of(like: &ResponseBatch) -> Self {
        Self {
            responses: Vec::with_capacity(like.responses.len()),
            peers_v4: Vec::with_capacity(like.peers_v4.len()),
            peers_v6: Vec::with_capacity(like.peers_v6.len()),
        }
    }

    /// Whether it holds no response.
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }
}
