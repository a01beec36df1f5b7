//! What socket workers and request (swarm) workers send each other.
//!
//! Messages travel in batches, one `Vec` per destination per loop iteration, so the
//! channel cost is paid per batch rather than per request.

use std::net::IpAddr;

use tracker_common::addr::CanonicalSocketAddr;
use tracker_common::types::InfoHash;
use tracker_udp_protocol::{AnnounceRequest, Response, TorrentScrapeStatistics, TransactionId};

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
