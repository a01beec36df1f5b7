//! Cost of one announce on a populated swarm shard, through the public API the request
//! workers use (`SwarmShard::announce_ipv4`).
//!
//! Each bench builds its state once, then measures re-announces of stored peers (event
//! none, status unchanged, numwant 30), so the state stays the same however long it runs.
//! The announces are drawn up front and replayed in order: one sequential walk over a few
//! MiB, which the prefetcher hides, instead of random draws timed with the announce.
//!
//! - `swarm/announce/1M_peers_100k_torrents`: a large shard with Zipf-like popularity
//!   (a few torrents with tens of thousands of peers, a long tail of one-peer torrents).
//!   Announcers are drawn uniformly among the peers, so busy torrents get most of the
//!   announces, as they do in production. Covers the torrent lookup, the peer upsert and
//!   the peer selection, each a likely cache miss.
//! - `swarm/announce/50k_peers_1_torrent`: one big torrent, where picking the 30 response
//!   peers out of a large map dominates.
//! - `swarm/announce/400k_torrents_1_to_3_peers`: the common case of a public tracker (and
//!   of aquatic's load tester), many torrents with one to three peers each. Every announce
//!   is a likely miss on the torrent table and on the torrent's small peer stores; the
//!   response is the torrent's other peers, returned whole.
//! - `swarm/announce/40k_torrents_of_24_peers`: mid-sized torrents, whose seeders and
//!   leechers (about 12 each) are near the size where a torrent's peer store switches from
//!   a short vector searched linearly to a hash map; the bench behind that threshold.
//! - `swarm/batch/1M_torrents_1_to_3_peers/{plain,touched}`: the same kind of swarm at a
//!   million torrents, announces handled 16 in a row, as a request worker handles a
//!   batch; `touched` first runs `SwarmShard::touch` over the 16, as the UDP request
//!   workers do, so that their table and store reads overlap. Reported per announce.
//!
//! Run: `cargo bench -p tracker_common --bench swarm`; compare with
//! `-- --save-baseline NAME` and `-- --baseline NAME`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tracker_common::config::SwarmConfig;
use tracker_common::swarm::{AnnounceParams, SwarmBudget, SwarmShard};
use tracker_common::time::SecondsSinceServerStart;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId, ResponsePeer};

/// A shard with the tracker's default limits, which the bench states stay well inside
/// (`populate` checks that every peer was stored).
fn new_shard() -> SwarmShard {
    let limits = SwarmConfig::default().limits();
    SwarmShard::new(limits, Arc::new(SwarmBudget::new(&limits)), 1)
}

/// What clients usually ask for (and the common tracker default).
const NUMWANT: usize = 30;

/// Announces drawn up front and replayed in a loop (a power of two).
const NUM_ANNOUNCES: usize = 1 << 16;

/// Half the peers are seeders: a seeder's response comes from the leechers only, a
/// leecher's from both maps, and both paths get exercised.
const SEEDER_PROBABILITY: f64 = 0.5;

/// One stored peer, enough to announce again as itself.
#[derive(Copy, Clone)]
struct StoredPeer {
    torrent: u32,
    number: u32,
    seeder: bool,
}

impl StoredPeer {
    fn params(
        &self,
        info_hashes: &[InfoHash],
        event: AnnounceEvent,
        numwant: usize,
    ) -> AnnounceParams {
        let mut peer_id = *b"-SH0100-000000000000";
        peer_id[8..12].copy_from_slice(&self.number.to_le_bytes());
        AnnounceParams {
            info_hash: info_hashes[self.torrent as usize],
            peer_id: PeerId(peer_id),
            port: 6881,
            bytes_left: if self.seeder { 0 } else { 1_000_000 },
            event,
            numwant,
        }
    }

    fn ip(&self) -> Ipv4Addr {
        // Distinct per peer and spread over the address space, like real peers.
        Ipv4Addr::from(self.number.wrapping_mul(0x9e37_79b9))
    }
}

/// A populated shard and the announces to replay on it.
struct Scenario {
    shard: SwarmShard,
    announces: Vec<(AnnounceParams, Ipv4Addr)>,
}

/// Peers per torrent: every torrent has at least one, and the others are spread with
/// weight 1 / rank (Zipf, s = 1). For 1M peers over 100k torrents the busiest torrent
/// gets about 80k peers, the tenth about 8k, the thousandth about 80; most have one or
/// two.
fn zipf_sizes(num_torrents: usize, num_peers: usize) -> Vec<usize> {
    let harmonic: f64 = (1..=num_torrents).map(|rank| 1.0 / rank as f64).sum();
    let spread = num_peers.saturating_sub(num_torrents) as f64;
    let mut sizes: Vec<usize> = (1..=num_torrents)
        .map(|rank| 1 + (spread / (rank as f64 * harmonic)) as usize)
        .collect();
    // Rounding down left a few peers over: one more each for the most popular torrents.
    let short = num_peers.saturating_sub(sizes.iter().sum());
    for size in sizes.iter_mut().take(short) {
        *size += 1;
    }
    sizes
}

fn populate(sizes: &[usize], rng: &mut SmallRng) -> Scenario {
    let info_hashes: Vec<InfoHash> = sizes.iter().map(|_| InfoHash(rng.random())).collect();
    let mut peers = Vec::with_capacity(sizes.iter().sum());
    for (torrent, &size) in sizes.iter().enumerate() {
        for _ in 0..size {
            peers.push(StoredPeer {
                torrent: u32::try_from(torrent).expect("fewer than 2^32 torrents"),
                number: u32::try_from(peers.len()).expect("fewer than 2^32 peers"),
                seeder: rng.random_bool(SEEDER_PROBABILITY),
            });
        }
    }
    // Arrival order interleaves the torrents, as it does in production, so that the small
    // maps end up scattered over the heap rather than allocated one after the other.
    peers.shuffle(rng);

    let mut shard = new_shard();
    let mut out = Vec::<ResponsePeer<Ipv4Addr>>::new();
    let now = SecondsSinceServerStart(0);
    for peer in &peers {
        // numwant 0: building the state should not pay for responses nobody reads.
        let params = peer.params(&info_hashes, AnnounceEvent::Started, 0);
        shard.announce_ipv4(&params, peer.ip(), now, rng, &mut out);
    }
    assert_eq!(shard.num_torrents(), sizes.len());
    assert_eq!(
        shard.num_seeders() + shard.num_leechers(),
        peers.len(),
        "every peer stored"
    );

    // A uniformly chosen peer announces again: torrents are hit in proportion to their
    // size, which is the skew real announce traffic has.
    let announces = (0..NUM_ANNOUNCES)
        .map(|_| {
            let peer = peers[rng.random_range(0..peers.len())];
            (
                peer.params(&info_hashes, AnnounceEvent::None, NUMWANT),
                peer.ip(),
            )
        })
        .collect();
    Scenario { shard, announces }
}

fn bench_announce(c: &mut Criterion, name: &str, scenario: Scenario) {
    let Scenario {
        mut shard,
        announces,
    } = scenario;
    let mut rng = SmallRng::seed_from_u64(2);
    // Reused, as a request worker reuses its buffer.
    let mut out = Vec::<ResponsePeer<Ipv4Addr>>::with_capacity(NUMWANT);
    let now = SecondsSinceServerStart(1);
    let mut next = 0usize;
    c.bench_function(name, |b| {
        b.iter(|| {
            let (params, ip) = &announces[next];
            next = (next + 1) % NUM_ANNOUNCES;
            let counts = shard.announce_ipv4(black_box(params), *ip, now, &mut rng, &mut out);
            black_box((counts, out.len()))
        })
    });
}

/// Announces a request worker handles in a row: `touch` first, as the UDP request
/// workers do ([`SwarmShard::touch`]), or not; measured per announce.
const BATCH: usize = 16;

fn bench_batch(c: &mut Criterion, name: &str, scenario: &mut Scenario, touch: bool) {
    let Scenario { shard, announces } = scenario;
    let mut rng = SmallRng::seed_from_u64(2);
    let mut out = Vec::<ResponsePeer<Ipv4Addr>>::with_capacity(NUMWANT);
    let now = SecondsSinceServerStart(1);
    let mut next = 0usize;
    let mut group = c.benchmark_group("swarm/batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let batch = &announces[next..next + BATCH];
            next = (next + BATCH) % NUM_ANNOUNCES;
            if touch {
                for (params, _) in batch {
                    shard.touch(black_box(&params.info_hash));
                }
            }
            for (params, ip) in batch {
                let counts = shard.announce_ipv4(black_box(params), *ip, now, &mut rng, &mut out);
                black_box((counts, out.len()));
            }
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(1);
    let sizes = zipf_sizes(100_000, 1_000_000);
    bench_announce(
        c,
        "swarm/announce/1M_peers_100k_torrents",
        populate(&sizes, &mut rng),
    );
    bench_announce(
        c,
        "swarm/announce/50k_peers_1_torrent",
        populate(&[50_000], &mut rng),
    );
    let sizes: Vec<usize> = (0..400_000).map(|_| rng.random_range(1..=3)).collect();
    bench_announce(
        c,
        "swarm/announce/400k_torrents_1_to_3_peers",
        populate(&sizes, &mut rng),
    );
    bench_announce(
        c,
        "swarm/announce/40k_torrents_of_24_peers",
        populate(&[24; 40_000], &mut rng),
    );
    let sizes: Vec<usize> = (0..1_000_000).map(|_| rng.random_range(1..=3)).collect();
    let mut scenario = populate(&sizes, &mut rng);
    bench_batch(c, "1M_torrents_1_to_3_peers/plain", &mut scenario, false);
    bench_batch(c, "1M_torrents_1_to_3_peers/touched", &mut scenario, true);
}

criterion_group!(swarm, benches);
criterion_main!(swarm);
