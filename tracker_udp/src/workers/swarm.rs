//! Request (swarm) worker: owns one shard of the torrents and answers announces and
//! scrapes for it. No locks: nothing else touches the shard.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use mio::Waker;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use tracker_common::config::SwarmConfig;
use tracker_common::statistics::{RateLimitedWarning, Statistics, add};
use tracker_common::supervisor::ShutdownFlag;
use tracker_common::swarm::{AnnounceParams, NumWantPolicy, SwarmBudget, SwarmShard};
use tracker_common::time::ServerStartInstant;
use tracker_common::types::{InfoHash, Ip, ResponsePeer};
use tracker_udp_protocol::{AnnounceRequest, Response, TorrentScrapeStatistics};

use crate::messages::{
    AnnounceHeader, PeerRange, ResponseBatch, SwarmRequest, SwarmRequestBatch, SwarmResponse,
    SwarmWorkerIndex,
};

/// How long to block on the request channel before checking shutdown and cleaning.
const RECV_TIMEOUT: Duration = Duration::from_millis(50);
/// Batches handled before responses are flushed, to amortize sends and wake-ups.
const MAX_BATCHES_PER_FLUSH: usize = 64;
/// One request worker and everything it owns.
pub(crate) struct SwarmWorker {
    pub(crate) index: SwarmWorkerIndex,
    pub(crate) receiver: Receiver<SwarmRequestBatch>,
    pub(crate) senders: Vec<Sender<ResponseBatch>>,
    pub(crate) wakers: Vec<Arc<Waker>>,
    /// How many request workers share the torrents (for the archive's share per shard).
    pub(crate) num_shards: usize,
    /// The whole tracker's torrents and peers, shared by the request workers.
    pub(crate) budget: Arc<SwarmBudget>,
    pub(crate) config: SwarmConfig,
    pub(crate) start: ServerStartInstant,
    pub(crate) statistics: Arc<Statistics>,
    pub(crate) shutdown: ShutdownFlag,
    pub(crate) full_warning: RateLimitedWarning,
}

fn saturating_i32(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

fn scrape_stats(shard: &SwarmShard, info_hash: &InfoHash) -> TorrentScrapeStatistics {
    let counts = shard.scrape(info_hash);
    TorrentScrapeStatistics {
        seeders: saturating_i32(counts.seeders),
        completed: saturating_i32(counts.completed),
        leechers: saturating_i32(counts.leechers),
    }
}

struct Handler {
    shard: SwarmShard,
    rng: SmallRng,
    numwant: NumWantPolicy,
    interval: i32,
    /// Reused for every announce: the swarm fills them, the batch copies them.
    scratch_v4: Vec<ResponsePeer<Ipv4Addr>>,
    scratch_v6: Vec<ResponsePeer<Ipv6Addr>>,
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

impl Handler {
    fn announce(
        &mut self,
        request: &AnnounceRequest,
        peer_ip: IpAddr,
        now: tracker_common::time::SecondsSinceServerStart,
        batch: &mut ResponseBatch,
    ) -> (AnnounceHeader, PeerRange) {
        let params = AnnounceParams {
            info_hash: request.info_hash,
            peer_id: request.peer_id,
            port: request.port,
            // A negative `left` is nonsense; treat the peer as a leecher rather than
            // promote it to seeder.
            bytes_left: u64::try_from(request.bytes_left).unwrap_or(u64::MAX),
            event: request.event,
            numwant: self.numwant.resolve(Some(i64::from(request.peers_wanted))),
        };
        let (counts, peers) = match peer_ip {
            IpAddr::V4(ip) => {
                let counts =
                    self.shard
                        .announce_ipv4(&params, ip, now, &mut self.rng, &mut self.scratch_v4);
                (counts, append(&mut batch.peers_v4, &self.scratch_v4, false))
            }
            IpAddr::V6(ip) => {
                let counts =
                    self.shard
                        .announce_ipv6(&params, ip, now, &mut self.rng, &mut self.scratch_v6);
                (counts, append(&mut batch.peers_v6, &self.scratch_v6, true))
            }
        };
        let header = AnnounceHeader {
            transaction_id: request.transaction_id,
            announce_interval: self.interval,
            leechers: saturating_i32(counts.leechers),
            seeders: saturating_i32(counts.seeders),
        };
        (header, peers)
    }

    fn handle(
        &mut self,
        request: SwarmRequest,
        now: tracker_common::time::SecondsSinceServerStart,
        batch: &mut ResponseBatch,
    ) {
        let response = match request {
            SwarmRequest::Announce {
                request,
                peer_ip,
                addr,
            } => {
                let (header, peers) = self.announce(&request, peer_ip, now, batch);
                SwarmResponse::Announce {
                    addr,
                    header,
                    peers,
                }
            }
            SwarmRequest::Scrape {
                addr,
                transaction_id,
                pending_id,
                info_hashes,
            } => match pending_id {
                None => SwarmResponse::Ready {
                    addr,
                    response: Response::Scrape(tracker_udp_protocol::ScrapeResponse {
                        transaction_id,
                        torrent_stats: info_hashes
                            .iter()
                            .map(|(_, hash)| scrape_stats(&self.shard, hash))
                            .collect(),
                    }),
                },
                Some(pending_id) => SwarmResponse::ScrapePart {
                    pending_id,
                    stats: info_hashes
                        .iter()
                        .map(|(pos, hash)| (*pos, scrape_stats(&self.shard, hash)))
                        .collect(),
                },
            },
        };
        batch.responses.push(response);
    }
}

impl SwarmWorker {
    /// Runs until shutdown.
    ///
    /// # Errors
    /// The request channel closed while no shutdown was asked for.
    pub(crate) fn run(mut self) -> anyhow::Result<()> {
        let mut handler = Handler {
            shard: SwarmShard::new(self.config.limits(), self.budget.clone(), self.num_shards),
            rng: SmallRng::from_os_rng(),
            numwant: NumWantPolicy {
                default: self.config.numwant_default,
                max: self.config.numwant_max,
            },
            interval: saturating_i32(self.config.announce_interval_secs),
            scratch_v4: Vec::new(),
            scratch_v6: Vec::new(),
        };
        let statistics = self.statistics.clone();
        let gauges = statistics.swarm(self.index.0);
        let cleaning_interval = Duration::from_secs(u64::from(self.config.cleaning_interval_secs));
        let mut next_cleaning = Instant::now() + cleaning_interval;
        let mut outgoing: Vec<ResponseBatch> = self
            .senders
            .iter()
            .map(|_| ResponseBatch::default())
            .collect();

        while !self.shutdown.is_set() {
            let first = match self.receiver.recv_timeout(RECV_TIMEOUT) {
                Ok(batch) => Some(batch),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    if self.shutdown.is_set() {
                        return Ok(());
                    }
                    anyhow::bail!("request channel closed");
                }
            };
            if let Some(first) = first {
                let now = self.start.seconds_elapsed();
                let mut batches = 0;
                let mut next = Some(first);
                while let Some((from, requests)) = next {
                    if let Some(out) = outgoing.get_mut(from.0) {
                        out.responses.reserve(requests.len());
                        for request in requests {
                            handler.handle(request, now, out);
                        }
                    }
                    batches += 1;
                    next = if batches < MAX_BATCHES_PER_FLUSH {
                        self.receiver.try_recv().ok()
                    } else {
                        None
                    };
                }
                self.flush(&mut outgoing);
            }

            if Instant::now() >= next_cleaning {
                let now = self.start.seconds_elapsed();
                let cleaned = handler.shard.clean(now, self.config.max_peer_age_secs);
                log::trace!(
                    "swarm-{:02}: removed {} peers and {} torrents",
                    self.index.0 + 1,
                    cleaned.removed_peers,
                    cleaned.removed_torrents
                );
                next_cleaning = Instant::now() + cleaning_interval;
            }
            gauges
                .torrents
                .store(handler.shard.num_torrents() as u64, Ordering::Relaxed);
            gauges
                .seeders
                .store(handler.shard.num_seeders() as u64, Ordering::Relaxed);
            gauges
                .leechers
                .store(handler.shard.num_leechers() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn flush(&mut self, outgoing: &mut [ResponseBatch]) {
        let gauges = self.statistics.swarm(self.index.0);
        for ((out, sender), waker) in outgoing.iter_mut().zip(&self.senders).zip(&self.wakers) {
            if out.is_empty() {
                continue;
            }
            // The next batch will be about as large: one allocation now instead of a
            // series of doublings while it fills.
            let batch = std::mem::replace(out, ResponseBatch::with_capacity_of(out));
            let len = batch.responses.len() as u64;
            match sender.try_send(batch) {
                Ok(()) => {
                    if let Err(err) = waker.wake() {
                        log::warn!("wake socket worker: {err}");
                    }
                }
                Err(TrySendError::Full(_)) => {
                    add(&gauges.dropped, len);
                    if let Some(held_back) = self.full_warning.check(Instant::now()) {
                        log::warn!(
                            "response channel full: dropped {len} responses (and {held_back} \
                             more batches since the last warning); socket workers are overloaded"
                        );
                    }
                }
                // The socket worker is gone: the supervisor is already shutting down.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}
