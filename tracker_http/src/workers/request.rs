//! The HTTP tracker's part of the request workers: what an announce or a scrape part
//! means for the shard. The loop is `tracker_common::request_worker`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tracker_common::request_worker::{RequestHandler, Swarm};
use tracker_common::scrape::answer_part;
use tracker_common::types::{Ip, ResponsePeerWithId};

use crate::messages::{HttpRequest, HttpResponse, HttpResponses, PeerRange};

/// Answers HTTP announces and scrape parts.
#[derive(Default)]
pub(crate) struct HttpHandler {
    scratch_v4: Vec<ResponsePeerWithId<Ipv4Addr>>,
    scratch_v6: Vec<ResponsePeerWithId<Ipv6Addr>>,
}

fn append<I: Ip>(
    buffer: &mut Vec<ResponsePeerWithId<I>>,
    peers: &[ResponsePeerWithId<I>],
    ipv6: bool,
) -> PeerRange {
    let start = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
    buffer.extend_from_slice(peers);
    PeerRange {
        ipv6,
        start,
        len: u32::try_from(peers.len()).unwrap_or(0),
    }
}

impl RequestHandler for HttpHandler {
    type Request = HttpRequest;
    type Responses = HttpResponses;

    fn handle(
        &mut self,
        swarm: &mut Swarm,
        from: usize,
        request: HttpRequest,
        out: &mut [HttpResponses],
    ) {
        let Some(batch) = out.get_mut(from) else {
            return;
        };
        let response = match request {
            HttpRequest::Announce {
                params,
                peer_ip,
                conn,
            } => {
                let (counts, peers) = match peer_ip {
                    IpAddr::V4(ip) => {
                        let counts = swarm.shard.announce_ipv4(
                            &params,
                            ip,
                            swarm.now,
                            &mut swarm.rng,
                            &mut self.scratch_v4,
                        );
                        (counts, append(&mut batch.peers_v4, &self.scratch_v4, false))
                    }
                    IpAddr::V6(ip) => {
                        let counts = swarm.shard.announce_ipv6(
                            &params,
                            ip,
                            swarm.now,
                            &mut swarm.rng,
                            &mut self.scratch_v6,
                        );
                        (counts, append(&mut batch.peers_v6, &self.scratch_v6, true))
                    }
                };
                HttpResponse::Announce {
                    conn,
                    counts,
                    peers,
                }
            }
            HttpRequest::Scrape {
                part,
                pending_id,
                conn,
            } => HttpResponse::Scrape {
                conn,
                pending_id,
                counts: answer_part(&part, |hash| swarm.shard.scrape(hash)),
            },
            HttpRequest::FullScrape { limit } => HttpResponse::FullScrape {
                files: swarm.shard.busiest_torrents(limit),
            },
        };
        batch.responses.push(response);
    }
}
