//! The UDP tracker's part of the request workers: what an announce or a scrape part
//! means for the shard (and, in private mode, for the accounting of its torrents), and
//! the responses they make. The loop itself (draining, batching, cleaning, gauges) is
//! `tracker_common::runtime::request_worker`.

use tracker_common::runtime::request_worker::{Announcer, RequestHandler, Swarm};
use tracker_common::swarm::scrape::answer_part;
use tracker_common::swarm::{NoPeerId, SwarmShard};
use tracker_common::types::ResponsePeer;

use crate::messages::{AnnounceHeader, UdpRequest, UdpResponse, UdpResponses};

/// Answers UDP announces and scrape parts.
pub(crate) struct UdpHandler {
    /// Seconds clients are told to wait between announces.
    interval: i32,
    announcer: Announcer<ResponsePeer<std::net::Ipv4Addr>, ResponsePeer<std::net::Ipv6Addr>>,
}

impl UdpHandler {
    pub(crate) fn new(interval: i32) -> Self {
        Self {
            interval,
            announcer: Announcer::default(),
        }
    }
}

fn saturating_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl RequestHandler for UdpHandler {
    // UDP answers never list peer ids (BEP 15): the shard keeps none.
    type Shard = SwarmShard<NoPeerId>;
    type Request = UdpRequest;
    type Responses = UdpResponses;

    fn prepare(&mut self, swarm: &Swarm<Self::Shard>, requests: &[UdpRequest]) {
        for request in requests {
            if let UdpRequest::Announce { params, .. } = request {
                swarm.shard.touch(&params.info_hash);
            }
        }
    }

    fn handle(
        &mut self,
        swarm: &mut Swarm<Self::Shard>,
        from: usize,
        request: UdpRequest,
        out: &mut [UdpResponses],
    ) {
        let Some(batch) = out.get_mut(from) else {
            return;
        };
        let response = match request {
            UdpRequest::Announce {
                params,
                transaction_id,
                peer_ip,
                addr,
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
                UdpResponse::Announce {
                    addr,
                    header: AnnounceHeader {
                        transaction_id,
                        announce_interval: self.interval,
                        leechers: saturating_i32(counts.leechers),
                        seeders: saturating_i32(counts.seeders),
                    },
                    peers,
                }
            }
            UdpRequest::Scrape {
                addr,
                transaction_id,
                pending_id,
                part,
            } => {
                let counts = answer_part(&part, |hash| swarm.shard.scrape(hash));
                match pending_id {
                    None => UdpResponse::Scrape {
                        addr,
                        transaction_id,
                        counts: counts.into_iter().map(|(_, c)| c).collect(),
                    },
                    Some(pending_id) => UdpResponse::ScrapePart { pending_id, counts },
                }
            }
        };
        batch.responses.push(response);
    }
}
