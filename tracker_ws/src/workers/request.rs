//! The WebSocket tracker's part of the request workers: announces, the relay of offers
//! and answers, departures and scrapes. The loop is `tracker_common::runtime::request_worker`.

use serde_json::value::RawValue;
use tracker_common::cluster::{ClusterRelay, RelayKind};
use tracker_common::runtime::request_worker::{RequestHandler, Swarm};
use tracker_common::swarm::ws::{ConnectionRef, WsSwarmShard};
use tracker_common::types::PeerId;
use tracker_ws_protocol::OfferId;

use crate::messages::{WsRequest, WsResponse, WsResponses};

/// Applies WebTorrent requests to a shard.
///
/// On a cluster node, a peer of another node is an offer target like any other: an
/// offer for it, or an answer for an offerer on another node, goes to the `cluster`
/// thread ([`Swarm::relays`]), which publishes it to that node; there it comes back in
/// through [`RequestHandler::relay`] and goes to the peer's connection.
pub(crate) struct WsHandler {
    /// The peers an announce's offers go to (cleared by the shard first).
    targets: Vec<(PeerId, ConnectionRef)>,
    /// `ws.max_message_bytes`: an offer or answer from another node larger than this is
    /// dropped (its batch weight must stay within what the channels were sized for).
    max_sdp_bytes: usize,
}

impl WsHandler {
    /// A handler delivering offers and answers of at most `max_sdp_bytes` from other
    /// nodes.
    pub(crate) fn new(max_sdp_bytes: usize) -> Self {
        Self {
            targets: Vec::new(),
            max_sdp_bytes,
        }
    }
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
                    for ((target_id, target), offer) in self.targets.drain(..).zip(offers) {
                        if let Some(node) = target.remote_node() {
                            swarm.relays.push((
                                node,
                                ClusterRelay {
                                    kind: RelayKind::Offer,
                                    info_hash: params.info_hash,
                                    to: target_id,
                                    from: params.peer_id,
                                    offer_id: offer.offer_id.0,
                                    sdp: offer.offer.into(),
                                },
                            ));
                        } else if let Some(batch) = out.get_mut(usize::from(target.worker)) {
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
                {
                    if let Some(node) = target.remote_node() {
                        swarm.relays.push((
                            node,
                            ClusterRelay {
                                kind: RelayKind::Answer,
                                info_hash,
                                to: answer.to_peer_id,
                                from: peer_id,
                                offer_id: answer.offer_id.0,
                                sdp: answer.answer.into(),
                            },
                        ));
                    } else if let Some(batch) = out.get_mut(usize::from(target.worker)) {
                        batch.push(WsResponse::Answer {
                            connection: target.connection,
                            info_hash,
                            peer_id,
                            offer_id: answer.offer_id,
                            answer: answer.answer,
                        });
                    }
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

    /// An offer or answer from another node goes to the connection of its peer here, if
    /// the peer is on one of this node's connections; its session description must be a
    /// JSON object of at most `ws.max_message_bytes`, as a client's own must be.
    fn relay(
        &mut self,
        swarm: &mut Swarm<WsSwarmShard>,
        relay: ClusterRelay,
        out: &mut [WsResponses],
    ) -> bool {
        if relay.sdp.len() > self.max_sdp_bytes {
            return false;
        }
        let Some(target) = swarm.shard.connection_of(&relay.info_hash, &relay.to) else {
            return false;
        };
        if target.remote_node().is_some() {
            return false;
        }
        let Ok(sdp) = RawValue::from_string(relay.sdp.into_string()) else {
            return false;
        };
        if !sdp.get().starts_with('{') {
            return false;
        }
        let Some(batch) = out.get_mut(usize::from(target.worker)) else {
            return false;
        };
        let (info_hash, peer_id, offer_id) = (relay.info_hash, relay.from, OfferId(relay.offer_id));
        batch.push(match relay.kind {
            RelayKind::Offer => WsResponse::Offer {
                connection: target.connection,
                info_hash,
                peer_id,
                offer_id,
                offer: sdp,
            },
            RelayKind::Answer => WsResponse::Answer {
                connection: target.connection,
                info_hash,
                peer_id,
                offer_id,
                answer: sdp,
            },
        });
        true
    }
}
