//! What the WebSocket tracker's socket workers and request workers send each other.
//!
//! A connection is named by its socket worker and a connection id that is never reused
//! within the process (the slot in the lower 32 bits, the slot's generation in the upper
//! ones), so that a message for a connection that has closed is not given to a newer one
//! in the same slot.
//!
//! # Weights
//! Offers and answers run from a few bytes to a whole message, so the channels that
//! carry these are bounded by bytes, not by count ([`tracker_common::runtime::channel`]): a
//! message weighs its own size plus the heap bytes it holds (session descriptions,
//! scrape lists). [`max_weight`] bounds what one request, and the responses one request
//! makes for one socket worker, can weigh under the config's limits; the config is
//! checked against it so that any batch can pass.

use std::mem::size_of;

use serde_json::value::RawValue;
use tracker_common::private::accounting::AccountInfo;
use tracker_common::runtime::request_worker::ResponseBatch;
use tracker_common::swarm::scrape::ScrapePart;
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
        /// How many of its answers (those handled one after another are counted in one
        /// message, so that a connection streaming answers costs one message a batch).
        count: u32,
    },
}

impl WsRequest {
    /// Its weight in a channel: its size and the heap bytes it holds.
    pub(crate) fn weight(&self) -> usize {
        let held = match self {
            Self::Announce { offers, .. } => offers
                .iter()
                .map(|offer| size_of::<Offer>() + offer.offer.get().len())
                .sum(),
            Self::Answer { answer, .. } => answer.answer.get().len(),
            Self::Scrape { part, .. } => part.len() * size_of::<(u16, InfoHash)>(),
            Self::Leave { .. } | Self::FullScrape { .. } => 0,
        };
        size_of::<Self>() + held
    }
}

impl WsResponse {
    /// Its weight in a channel: its size and the heap bytes it holds.
    pub(crate) fn weight(&self) -> usize {
        let held = match self {
            Self::Announce { .. } => 0,
            Self::Offer { offer, .. } => offer.get().len(),
            Self::Answer { answer, .. } => answer.get().len(),
            Self::Scrape { files, .. } => files.len() * size_of::<(u16, InfoHash, ScrapeCounts)>(),
            Self::FullScrape { files } => files.len() * size_of::<(InfoHash, ScrapeCounts)>(),
            Self::AnswerTaken { .. } => 0,
        };
        size_of::<Self>() + held
    }
}

/// The limits that bound what a message can weigh.
#[derive(Copy, Clone, Debug)]
pub(crate) struct WeightLimits {
    /// `ws.max_message_bytes`: the session descriptions of one message fit in it.
    pub(crate) max_message_bytes: usize,
    /// `ws.max_offers_per_announce`.
    pub(crate) max_offers: usize,
    /// `ws.max_scrape_torrents`.
    pub(crate) max_scrape_torrents: usize,
    /// `ws.full_scrape_max_torrents`.
    pub(crate) full_scrape_max_torrents: usize,
}

/// The most one request weighs, or the responses one request makes for one socket
/// worker (an announce's reply and every offer it relays may go to the same one), under
/// `limits`. Session descriptions are parts of one message, so together they are at most
/// `max_message_bytes`.
pub(crate) fn max_weight(limits: WeightLimits) -> usize {
    let request = size_of::<WsRequest>();
    let response = size_of::<WsResponse>();
    let offers = limits.max_offers;
    let scrape = limits.max_scrape_torrents.min(usize::from(u16::MAX));
    [
        request + offers * size_of::<Offer>() + limits.max_message_bytes,
        request + scrape * size_of::<(u16, InfoHash)>(),
        (1 + offers) * response + limits.max_message_bytes,
        // A relayed answer, and the word that it was taken, to the same socket worker.
        2 * response + limits.max_message_bytes,
        response + scrape * size_of::<(u16, InfoHash, ScrapeCounts)>(),
        response + limits.full_scrape_max_torrents * size_of::<(InfoHash, ScrapeCounts)>(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}

/// A batch of messages for one socket worker, with its weight kept as it grows.
#[derive(Debug, Default)]
pub(crate) struct WsResponses(pub(crate) Vec<WsResponse>, usize);

impl WsResponses {
    /// Adds `response`, and its weight.
    pub(crate) fn push(&mut self, response: WsResponse) {
        self.1 += response.weight();
        self.0.push(response);
    }
}

impl ResponseBatch for WsResponses {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn weight(&self) -> usize {
        self.1
    }

    fn empty_like(&self) -> Self {
        Self(Vec::with_capacity(self.0.len()), 0)
    }
}

#[cfg(test)]
mod tests {
    use tracker_common::runtime::channel::{ChannelBound, bounded, max_batch_bytes};
    use tracker_common::runtime::request_worker::{RequestBatch, RequestOutbox};
    use tracker_common::types::AnnounceEvent;

    use super::*;

    const LIMITS: WeightLimits = WeightLimits {
        max_message_bytes: 64 * 1024,
        max_offers: 10,
        max_scrape_torrents: 100,
        full_scrape_max_torrents: 0,
    };

    /// An announce with `offers` offers of `sdp_bytes` bytes of JSON each.
    fn announce(n: u16, offers: usize, sdp_bytes: usize) -> WsRequest {
        let sdp = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "x".repeat(sdp_bytes - 25)
        );
        WsRequest::Announce {
            params: WsAnnounceParams {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
                previous_peer_id: None,
                connection: ConnectionRef {
                    worker: 0,
                    connection: u64::from(n),
                },
                bytes_left: Some(1),
                event: AnnounceEvent::Started,
                numwant: offers,
            },
            offers: (0..offers)
                .map(|i| Offer {
                    offer_id: OfferId([i as u8; 20]),
                    offer: RawValue::from_string(sdp.clone()).unwrap(),
                })
                .collect(),
            account: None,
        }
    }

    #[test]
    fn weights_count_the_session_descriptions() {
        let light = announce(0, 1, 100);
        let heavy = announce(0, 10, 6000);
        assert_eq!(
            heavy.weight() - light.weight(),
            9 * size_of::<Offer>() + 10 * 6000 - 100
        );
        // The heaviest announce that fits a message is within the bound.
        assert!(announce(0, 10, 6500).weight() <= max_weight(LIMITS));
        let relayed = WsResponse::Offer {
            connection: 1,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            offer_id: OfferId([3; 20]),
            offer: RawValue::from_string(format!(r#""{}""#, "y".repeat(998))).unwrap(),
        };
        assert_eq!(relayed.weight(), size_of::<WsResponse>() + 1000);
        let mut batch = WsResponses::default();
        batch.push(relayed);
        assert_eq!(batch.weight(), size_of::<WsResponse>() + 1000);
        assert_eq!(batch.empty_like().weight(), 0);
    }

    /// In a channel of the smallest byte budget the config accepts, with no request
    /// worker reading, announces with ten 6 KB offers are queued until the budget is
    /// used and every further one comes back refused (the socket worker answers it
    /// `overloaded` and counts it dropped), rather than queued: counted by number, all
    /// 200 (12 MB) would have been. Every batch weighs at most the channel's largest
    /// batch, and the bytes queued are exactly those of the announces taken.
    #[test]
    fn heavy_offers_are_refused_once_the_byte_budget_is_used() {
        let capacity = 4 * max_weight(LIMITS);
        let (sender, receiver) = bounded::<RequestBatch<WsRequest>>(ChannelBound::Bytes(capacity));
        let mut outbox = RequestOutbox::weighed(0, vec![sender.clone()], WsRequest::weight);
        let mut refused = Vec::new();
        for n in 0..200 {
            refused.extend(outbox.push(0, announce(n, 10, 6000)));
        }
        refused.extend(outbox.flush());
        let weight = announce(0, 10, 6000).weight();
        assert!(sender.queued() <= capacity);
        let taken = 200 - refused.len();
        assert!(taken >= capacity / weight - 2 * max_batch_bytes(capacity) / weight);
        assert!(refused.len() > 150, "{} refused", refused.len());
        let mut received = 0;
        let mut bytes = 0;
        while let Ok(batch) = receiver.try_recv() {
            let batch_bytes: usize = batch.requests.iter().map(WsRequest::weight).sum();
            assert!(batch_bytes <= max_batch_bytes(capacity));
            received += batch.requests.len();
            bytes += batch_bytes;
        }
        assert_eq!((received, bytes), (taken, taken * weight));
        assert_eq!(sender.queued(), 0);
        // Room again: taken at once.
        assert!(outbox.push(0, announce(0, 10, 6000)).is_empty());
        assert!(outbox.flush().is_empty());
        assert_eq!(sender.queued(), weight);
    }
}
