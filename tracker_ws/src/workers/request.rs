//! The WebSocket tracker's part of the request workers: announces, the relay of offers
//! and answers, departures and scrapes. The loop is `tracker_common::runtime::request_worker`.

use tracker_common::runtime::request_worker::{RequestHandler, Swarm};
use tracker_common::swarm::ws::{ConnectionRef, WsSwarmShard};
use tracker_common::types::PeerId;

use crate::messages::{WsRequest, WsResponse, WsResponses};

/// Applies WebTorrent requests to a shard.
#[derive(Default)]
pub(crate) struct WsHandler {
    /// The peers an announce's offers go to (cleared by the shard first).
    targets: Vec<(PeerId, ConnectionRef)>,
}

impl RequestHandler for WsHandler {
    type Shard = WsSwarmShard;
    type Request = WsRequest;
    type Responses = WsResponses;

    fn handle(
        &mut self,
        swarm: &mut Swarm<WsSwarmShard>,
        from: usize,
        request: WsRequest,
        out: &mut [WsResponses],
    ) {
        match request {
            WsRequest::Announce {
                params,
                offers,
                account,
            } => {
                let outcome =
                    swarm
                        .shard
                        .announce(&params, swarm.now, &mut swarm.rng, &mut self.targets);
                // An unknown size (`left: null`) is a leecher, as in the swarm.
                swarm.account(
                    account.as_ref(),
                    params.info_hash,
                    params.peer_id,
                    params.bytes_left.unwrap_or(u64::MAX),
                    params.event,
                );
                if let Some(batch) = out.get_mut(from) {
                    batch.push(WsResponse::Announce {
                        connection: params.connection.connection,
                        info_hash: params.info_hash,
                        counts: outcome.counts,
                    });
                }
                // Only a peer the swarm holds may make offers: answers to them must find
                // their way back to it.
                if outcome.stored {
                    for ((_, target), offer) in self.targets.drain(..).zip(offers) {
                        if let Some(batch) = out.get_mut(usize::from(target.worker)) {
                            batch.push(WsResponse::Offer {
                                connection: target.connection,
                                info_hash: params.info_hash,
                                peer_id: params.peer_id,
                                offer_id: offer.offer_id,
                                offer: offer.offer,
                            });
                        }
                    }
                }
            }
            WsRequest::Answer {
                info_hash,
                peer_id,
                connection,
                answer,
            } => {
                // Only a peer may answer as itself: the answering connection must own the
                // peer id the answer carries, or anyone in the swarm could answer in
                // another peer's name.
                if swarm.shard.connection_of(&info_hash, &peer_id) == Some(connection)
                    && let Some(target) = swarm.shard.connection_of(&info_hash, &answer.to_peer_id)
                    && let Some(batch) = out.get_mut(usize::from(target.worker))
                {
                    batch.push(WsResponse::Answer {
                        connection: target.connection,
                        info_hash,
                        peer_id,
                        offer_id: answer.offer_id,
                        answer: answer.answer,
                    });
                }
                if let Some(batch) = out.get_mut(from) {
                    match batch.0.last_mut() {
                        Some(WsResponse::AnswerTaken {
                            connection: last,
                            count,
                        }) if *last == connection.connection && *count < u32::MAX => {
                            *count += 1;
                        }
                        _ => batch.push(WsResponse::AnswerTaken {
                            connection: connection.connection,
                            count: 1,
                        }),
                    }
                }
            }
            WsRequest::Leave {
                info_hash,
                peer_id,
                connection,
            } => swarm
                .shard
                .remove_connection_peer(&info_hash, &peer_id, connection),
            WsRequest::Scrape {
                part,
                pending_id,
                connection,
            } => {
                if let Some(batch) = out.get_mut(from) {
                    let files = part
                        .iter()
                        .map(|(pos, hash)| (*pos, *hash, swarm.shard.scrape(hash)))
                        .collect();
                    batch.push(WsResponse::Scrape {
                        connection,
                        pending_id,
                        files,
                    });
                }
            }
            WsRequest::FullScrape { limit } => {
                if let Some(batch) = out.get_mut(from) {
                    batch.push(WsResponse::FullScrape {
                        files: swarm.shard.busiest_torrents(limit),
                    });
                }
            }
        }
    }
}
