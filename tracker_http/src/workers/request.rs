//! The HTTP tracker's part of the request workers: what an announce or a scrape part
//! means for the shard, and, in private mode, for the user's accounting. The loop is
//! `tracker_common::runtime::request_worker`.

use std::net::{Ipv4Addr, Ipv6Addr};

use tracker_common::runtime::request_worker::{Announcer, RequestHandler, Swarm};
use tracker_common::swarm::SwarmShard;
use tracker_common::swarm::scrape::answer_part;
use tracker_common::types::ResponsePeerWithId;

use crate::messages::{HttpRequest, HttpResponse, HttpResponses};

/// Answers HTTP announces, scrape parts and full-scrape parts.
#[derive(Default)]
pub(crate) struct HttpHandler {
    announcer: Announcer<ResponsePeerWithId<Ipv4Addr>, ResponsePeerWithId<Ipv6Addr>>,
}

impl RequestHandler for HttpHandler {
    type Shard = SwarmShard;
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
                account,
            } => {
                let (counts, peers) =
                    self.announcer
                        .announce(swarm, &params, peer_ip, &mut batch.peers);
                swarm.account(
                    account.as_ref(),
                    params.info_hash,
                    params.peer_id,
                    params.bytes_left,
                    params.event,
                );
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
