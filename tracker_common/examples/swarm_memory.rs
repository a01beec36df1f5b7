//! Memory of the swarm: fills one shard through the public API and prints the resident
//! memory it took, per torrent and per peer. The figures go in documents/swarm-memory.md.
//!
//! Run: `cargo run --release -p tracker_common --example swarm_memory -- all` (each case
//! for each kind of shard in a process of its own, so that one case's freed memory does
//! not hide another's), or name one case instead of `all`, optionally followed by the
//! kind: `http` (peer ids kept, `SwarmShard<PeerId>`, the default) or `udp` (none kept,
//! `SwarmShard<NoPeerId>`). Cases:
//!
//! - `v4_1peer`, `v6_1peer`: 1M torrents of one peer (the long tail of a public tracker).
//! - `v4_20peers`, `v6_20peers`: 50k torrents of 20 peers (10 seeders, 10 leechers).
//! - `v4_10peers`: 100k torrents of 10 peers (5 seeders, 5 leechers).
//! - `v4_fill`: the memory fill of `scripts/compare-udp.sh` (tracker_load_test's model):
//!   1M peers, each drawn into one of 100k torrents by popularity (a Lomax law of shape 1
//!   and scale 100 torrents, so that about 16.5k torrents get peers and the hottest
//!   thousands), one in four a seeder, all from one address with random ports, arriving
//!   in random order.
//! - `v4_huge`, `v6_huge`: 4 torrents of 250k peers.
//! - `flood_v4`, `flood_v6`: a flood of random info hashes, peer ids, addresses and ports
//!   under the default limits (`SwarmConfig::default()`): new torrents until
//!   `max_torrents`, then new peers into the fewest torrents that hold them
//!   (`max_peers_per_torrent` each) until `max_peers`. Large stores cost the most per
//!   peer, so this is the most memory the defaults allow.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_common::config::SwarmConfig;
use tracker_common::swarm::{
    AnnounceParams, NoPeerId, StoredPeerId, SwarmBudget, SwarmLimits, SwarmShard,
};
use tracker_common::time::SecondsSinceServerStart;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId, ResponsePeer};

mod common;
use common::rss_bytes;

const CASES: [&str; 10] = [
    "v4_1peer",
    "v6_1peer",
    "v4_10peers",
    "v4_fill",
    "v4_20peers",
    "v6_20peers",
    "v4_huge",
    "v6_huge",
    "flood_v4",
    "flood_v6",
];

/// The kinds of shard, by what their peers keep of their ids.
const KINDS: [&str; 2] = ["http", "udp"];

struct Filler<D: StoredPeerId> {
    shard: SwarmShard<D>,
    budget: Arc<SwarmBudget>,
    rng: SmallRng,
    out4: Vec<ResponsePeer<Ipv4Addr>>,
    out6: Vec<ResponsePeer<Ipv6Addr>>,
    v6: bool,
}

impl<D: StoredPeerId> Filler<D> {
    fn new(limits: SwarmLimits, v6: bool) -> Self {
        let budget = Arc::new(SwarmBudget::new(&limits));
        Self {
            shard: SwarmShard::new(limits, budget.clone(), 1),
            budget,
            rng: SmallRng::seed_from_u64(1),
            out4: Vec::new(),
            out6: Vec::new(),
            v6,
        }
    }

    /// A new peer (random id, address and port) announces to `info_hash`.
    fn announce(&mut self, info_hash: InfoHash, seeder: bool) {
        let peer_id = PeerId(self.rng.random());
        let port = self.rng.random_range(1..=u16::MAX);
        let params = params(info_hash, seeder, peer_id, port);
        let now = SecondsSinceServerStart(0);
        if self.v6 {
            let ip = Ipv6Addr::from(self.rng.random::<u128>());
            self.shard
                .announce_ipv6(&params, ip, now, &mut self.rng, &mut self.out6);
        } else {
            let ip = Ipv4Addr::from(self.rng.random::<u32>());
            self.shard
                .announce_ipv4(&params, ip, now, &mut self.rng, &mut self.out4);
        }
    }

    /// A peer at `ip`:`port` (random id) announces to `info_hash`.
    fn announce_from(&mut self, info_hash: InfoHash, seeder: bool, ip: Ipv4Addr, port: u16) {
        let params = params(info_hash, seeder, PeerId(self.rng.random()), port);
        let now = SecondsSinceServerStart(0);
        self.shard
            .announce_ipv4(&params, ip, now, &mut self.rng, &mut self.out4);
    }

    fn num_peers(&self) -> usize {
        self.shard.num_seeders() + self.shard.num_leechers()
    }
}

/// A "started" announce of a seeder or a leecher, asking for no peers.
fn params(info_hash: InfoHash, seeder: bool, peer_id: PeerId, port: u16) -> AnnounceParams {
    AnnounceParams {
        info_hash,
        peer_id,
        port,
        bytes_left: if seeder { 0 } else { 1 },
        event: AnnounceEvent::Started,
        numwant: 0,
    }
}

/// Room for everything a case stores: only the flood cases meet their limits.
fn roomy() -> SwarmLimits {
    SwarmLimits {
        max_torrents: usize::MAX,
        max_peers: usize::MAX,
        max_peers_per_torrent: usize::MAX,
        max_peers_per_ip: usize::MAX,
        max_archived_torrents: 0,
        min_announce_interval_secs: 0,
    }
}

fn run_case<D: StoredPeerId>(case: &str, kind: &str) {
    let v6 = case.contains("v6");
    let before = rss_bytes();
    let started = Instant::now();
    let (limits, sizes) = match case {
        "v4_1peer" | "v6_1peer" => (roomy(), vec![1usize; 1_000_000]),
        "v4_10peers" => (roomy(), vec![10; 100_000]),
        "v4_fill" => (roomy(), vec![0; 100_000]),
        "v4_20peers" | "v6_20peers" => (roomy(), vec![20; 50_000]),
        "v4_huge" | "v6_huge" => (roomy(), vec![250_000; 4]),
        "flood_v4" | "flood_v6" => (SwarmConfig::default().limits(), Vec::new()),
        _ => panic!("unknown case {case}; one of {CASES:?} or all"),
    };
    let mut filler = Filler::<D>::new(limits, v6);
    // Drawn before measuring, so that they are not counted as the swarm's.
    let hashes: Vec<InfoHash> = sizes
        .iter()
        .map(|_| InfoHash(filler.rng.random()))
        .collect();
    // The archive is allocated but untouched (no torrent empties here): count it apart.
    let archive_bytes = filler.shard.archive_memory_bytes();
    let before = before.max(rss_bytes());
    if case == "v4_fill" {
        // The arrivals drawn before measuring too: (torrent, port, seeder).
        let arrivals: Vec<(usize, u16, bool)> = (0..1_000_000)
            .map(|_| {
                let torrent = loop {
                    let u: f64 = filler.rng.random();
                    let rank = 100.0 * ((1.0 - u).powf(-1.0) - 1.0);
                    if rank.is_finite() && rank < hashes.len() as f64 {
                        break rank as usize;
                    }
                };
                let port = filler.rng.random_range(1024..65024);
                (torrent, port, filler.rng.random_bool(0.25))
            })
            .collect();
        let before = before.max(rss_bytes());
        for &(torrent, port, seeder) in &arrivals {
            filler.announce_from(hashes[torrent], seeder, Ipv4Addr::LOCALHOST, port);
        }
        report(case, kind, &filler, before, started, archive_bytes);
        return;
    }
    if case.starts_with("flood") {
        // New torrents until the limit; each a random hash with one random peer.
        let mut first = Vec::new();
        while filler.shard.num_torrents() < limits.max_torrents {
            let hash = InfoHash(filler.rng.random());
            let seeder = filler.rng.random_bool(0.5);
            filler.announce(hash, seeder);
            if first.len() < 64 {
                first.push(hash);
            }
        }
        // Then the remaining peers into as few of them as hold them.
        for &hash in &first {
            if filler.budget.num_peers() >= limits.max_peers {
                break;
            }
            for _ in 0..limits.max_peers_per_torrent {
                let seeder = filler.rng.random_bool(0.5);
                filler.announce(hash, seeder);
                if filler.budget.num_peers() >= limits.max_peers {
                    break;
                }
            }
        }
        // One more of each is rejected: the limits hold.
        let rejected = filler.shard.num_rejected_by_limits();
        let new_hash = InfoHash(filler.rng.random());
        filler.announce(new_hash, true);
        filler.announce(first[0], true);
        assert_eq!(filler.shard.num_rejected_by_limits(), rejected + 2);
    } else {
        // Interleaved arrival, as in production: round-robin over the torrents.
        let max = sizes.iter().copied().max().unwrap_or(0);
        for round in 0..max {
            for (hash, &size) in hashes.iter().zip(&sizes) {
                if round < size {
                    filler.announce(*hash, round % 2 == 0);
                }
            }
        }
        assert_eq!(filler.num_peers(), sizes.iter().sum::<usize>());
    }
    report(case, kind, &filler, before, started, archive_bytes);
}

/// Prints what the shard of `filler` grew by since `before` (resident bytes).
fn report<D: StoredPeerId>(
    case: &str,
    kind: &str,
    filler: &Filler<D>,
    before: u64,
    started: Instant,
    archive_bytes: usize,
) {
    let after = rss_bytes();
    let torrents = filler.shard.num_torrents();
    let peers = filler.num_peers();
    let grown = after.saturating_sub(before);
    println!(
        "{case:<11} {kind:<4} torrents {torrents:>9} peers {peers:>9} rss_before {:>7.1} MiB \
         rss_after {:>7.1} MiB grown {:>7.1} MiB  {:>6.1} B/torrent {:>6.1} B/peer \
         (archive {:.1} MiB allocated, untouched) {:.1} s",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        grown as f64 / 1048576.0,
        grown as f64 / torrents as f64,
        grown as f64 / peers as f64,
        archive_bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64(),
    );
}

fn main() {
    let case = std::env::args().nth(1).unwrap_or_else(|| "all".to_string());
    let kind = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "http".to_string());
    if case == "all" {
        let exe = std::env::current_exe().expect("own path");
        for case in CASES {
            for kind in KINDS {
                let status = std::process::Command::new(&exe)
                    .args([case, kind])
                    .status()
                    .expect("run a case");
                assert!(status.success(), "case {case} ({kind}) failed");
            }
        }
    } else {
        match kind.as_str() {
            "http" => run_case::<PeerId>(&case, &kind),
            "udp" => run_case::<NoPeerId>(&case, &kind),
            _ => panic!("unknown kind {kind}; one of {KINDS:?}"),
        }
    }
}
