//! The UDP tracker's part of the request workers: what an announce or a scrape part
//! means for the shard, and the responses they make. The loop itself (draining, batching,
//! cleaning, gauges) is `tracker_common::request_worker`.

use std::net::IpAddr;

use tracker_common::request_worker::{RequestHandler, Swarm};
use tracker_common::scrape::answer_part;
use tracker_common::types::{Ip, ResponsePeer};

use crate::messages::{AnnounceHeader, PeerRange, UdpRequest, UdpResponse, UdpResponses};

/// Answers UDP announces and scrape parts.
pub(crate) struct UdpHandler {
    /// Seconds clients are told to wait between announces.
    pub(crate) interval: i32,
    /// Reused for every announce: the swarm fills it, the batch copies it.
    pub(crate) scratch_v4: Vec<ResponsePeer<std::net::Ipv4Addr>>,
    pub(crate) scratch_v6: Vec<ResponsePeer<std::net::Ipv6Addr>>,
}

impl UdpHandler {
    pub(crate) fn new(interval: i32) -> Self {
        Self {
            interval,
            scratch_v4: Vec::new(),
            scratch_v6: Vec::new(),
        }
    }
}

fn saturating_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Appends `peers` to `buffer` and says where they went.
fn append<I: Ip>(
    buffer: &mut Vec<ResponsePeer<I>>,
    peers: &[ResponsePeer<I>],
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

impl RequestHandler for UdpHandler {
    type Request = UdpRequest;
    type Responses = UdpResponses;

    fn handle(
        &mut self,
        swarm: &mut Swarm,
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
