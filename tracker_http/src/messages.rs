//! What the HTTP tracker's socket workers and request workers send each other.
//!
//! A request names the connection its answer goes back to: the socket worker's slot of
//! the connection, that slot's generation (so that an answer for a connection that has
//! closed meanwhile is not given to a newer one in the same slot), and the request's
//! place in the connection's pipeline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tracker_common::private::accounting::AccountInfo;
use tracker_common::runtime::request_worker::{PeerBuffers, PeerRange, ResponseBatch};
use tracker_common::swarm::scrape::ScrapePart;
use tracker_common::swarm::{AnnounceCounts, AnnounceParams, ScrapeCounts};
use tracker_common::types::{InfoHash, ResponsePeerWithId};

/// Where an answer goes: a connection of the socket worker, and a request of it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnRef {
    /// The connection's slot in the socket worker.
    pub(crate) slot: u32,
    /// The slot's generation when the request was read.
    pub(crate) generation: u32,
    /// The request's number on the connection.
    pub(crate) seq: u64,
}

/// A request for a request worker.
#[derive(Debug)]
pub(crate) enum HttpRequest {
    /// A checked announce.
    Announce {
        /// What the swarm needs.
        params: AnnounceParams,
        /// The address stored for the peer.
        peer_ip: IpAddr,
        /// Where the answer goes.
        conn: ConnRef,
        /// In private mode, the checked passkey and the counters to credit; `None` in
        /// public mode.
        account: Option<AccountInfo>,
    },
    /// The part of a scrape that this request worker's shard answers.
    Scrape {
        /// The hashes with their positions in the scrape.
        part: ScrapePart,
        /// Set when the scrape was split over several request workers.
        pending_id: Option<u64>,
        /// Where the answer goes.
        conn: ConnRef,
    },
    /// The busiest torrents of the shard, for a full scrape.
    FullScrape {
        /// How many at most.
        limit: usize,
    },
}

/// A response from a request worker.
#[derive(Debug)]
pub(crate) enum HttpResponse {
    /// An announce's counts and peers.
    Announce {
        conn: ConnRef,
        counts: AnnounceCounts,
        peers: PeerRange,
    },
    /// A whole scrape, or one request worker's part of a split one: counts with their
    /// positions in the scrape.
    Scrape {
        conn: ConnRef,
        pending_id: Option<u64>,
        counts: Vec<(u16, ScrapeCounts)>,
    },
    /// One request worker's busiest torrents, most peers first.
    FullScrape {
        files: Vec<(InfoHash, ScrapeCounts)>,
    },
}

/// A batch of responses for one socket worker; the peers of its announce answers share
/// two buffers.
#[derive(Debug, Default)]
pub(crate) struct HttpResponses {
    pub(crate) responses: Vec<HttpResponse>,
    pub(crate) peers: PeerBuffers<ResponsePeerWithId<Ipv4Addr>, ResponsePeerWithId<Ipv6Addr>>,
}

impl ResponseBatch for HttpResponses {
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
