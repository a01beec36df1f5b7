//! What the WebSocket tracker's socket workers and request workers send each other.
//!
//! A connection is named by its socket worker and a connection id that is never reused
//! within the process (the slot in the lower 32 bits, the slot's generation in the upper
//! ones), so that a message for a connection that has closed is not given to a newer one
//! in the same slot.

use serde_json::value::RawValue;
use tracker_common::private::accounting::AccountInfo;
use tracker_common::request_worker::ResponseBatch;
use tracker_common::scrape::ScrapePart;
use tracker_common::swarm::ws::{ConnectionRef, WsAnnounceParams};
use tracker_common::swarm::{AnnounceCounts, ScrapeCounts};
use tracker_common::types::{InfoHash, PeerId};
use tracker_ws_protocol::{Answer, Offer, OfferId};

/// A connection id from its slot and the slot's generation.
pub(crate) fn connection_id(slot: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(slot)
}

/// The slot and generation of a connection id.
pub(crate) fn slot_and_generation(connection: u64) -> (u32, u32) {
    (connection as u32, (connection >> 32) as u32)
}

/// A request for a request worker.
#[derive(Debug)]
pub(crate) enum WsRequest {
    /// A checked announce, with the offers to hand to other peers.
    Announce {
        /// What the swarm needs (the announcer's connection included).
        params: WsAnnounceParams,
        /// Offers, one per chosen peer; `params.numwant` is at most their number.
        offers: Vec<Offer>,
        /// Private mode: the passkey checked and the client's counters, to credit.
        /// `None` in public mode.
        account: Option<AccountInfo>,
    },
    /// An answer to an offer, for the peer that made it.
    Answer {
        /// The torrent.
        info_hash: InfoHash,
        /// The answerer: relayed only if this peer is on `connection`.
        peer_id: PeerId,
        /// The connection the answer came on.
        connection: ConnectionRef,
        /// The answer and where it goes.
        answer: Answer,
    },
    /// A connection closed: its peer in this torrent leaves the swarm.
    Leave {
        /// The torrent.
        info_hash: InfoHash,
        /// The peer id the connection announced.
        peer_id: PeerId,
        /// The connection.
        connection: ConnectionRef,
    },
    /// The part of a scrape that this request worker's shard answers.
    Scrape {
        /// The hashes with their positions in the scrape.
        part: ScrapePart,
        /// Set when the scrape was split over several request workers.
        pending_id: Option<u64>,
        /// The asking connection's id.
        connection: u64,
    },
    /// The busiest torrents of the shard, for a full scrape.
    FullScrape {
        /// How many at most.
        limit: usize,
    },
}

/// A message from a request worker to a socket worker.
#[derive(Debug)]
pub(crate) enum WsResponse {
    /// The counts for an announcer.
    Announce {
        /// The announcer's connection id.
        connection: u64,
        /// The torrent.
        info_hash: InfoHash,
        /// Its seeders and leechers after the announce.
        counts: AnnounceCounts,
    },
    /// An offer for a peer on this worker.
    Offer {
        /// The receiving peer's connection id.
        connection: u64,
        /// The torrent.
        info_hash: InfoHash,
        /// The offerer.
        peer_id: PeerId,
        /// The offerer's id for it.
        offer_id: OfferId,
        /// The session description, as the offerer sent it.
        offer: Box<RawValue>,
    },
    /// An answer for a peer on this worker.
    Answer {
        /// The offerer's connection id.
        connection: u64,
        /// The torrent.
        info_hash: InfoHash,
        /// The answerer.
        peer_id: PeerId,
        /// The offer answered.
        offer_id: OfferId,
        /// The session description, as the answerer sent it.
        answer: Box<RawValue>,
    },
    /// A whole scrape, or one request worker's part of a split one.
    Scrape {
        /// The asking connection's id.
        connection: u64,
        /// Set when the scrape was split over several request workers.
        pending_id: Option<u64>,
        /// Counts with the positions and hashes they answer.
        files: Vec<(u16, InfoHash, ScrapeCounts)>,
    },
    /// One request worker's busiest torrents, most peers first.
    FullScrape {
        /// Torrents and counts.
        files: Vec<(InfoHash, ScrapeCounts)>,
    },
    /// An answer from this connection was handled (relayed, or dropped as not its
    /// peer's to give): its place among the messages awaiting a reply is free.
    AnswerTaken {
        /// The answering connection's id.
        connection: u64,
    },
}

/// A batch of messages for one socket worker.
#[derive(Debug, Default)]
pub(crate) struct WsResponses(pub(crate) Vec<WsResponse>);

impl ResponseBatch for WsResponses {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn empty_like(&self) -> Self {
        Self(Vec::with_capacity(self.0.len()))
    }
}
