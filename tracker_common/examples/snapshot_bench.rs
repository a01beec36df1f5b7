//! Time and memory of swarm snapshots: fills one shard with 1M peers through the public
//! API, saves it to a file, and, in another process, loads it into an empty shard. The
//! figures go in documents/snapshot.md.
//!
//! Run (each step in a process of its own, so that the peak memory of one does not hide
//! the other's):
//!
//! ```sh
//! cargo run --release -p tracker_common --example snapshot_bench -- save /tmp/shoal.snapshot
//! cargo run --release -p tracker_common --example snapshot_bench -- load /tmp/shoal.snapshot
//! ```
//!
//! The swarm: 200,000 IPv4 torrents of 5 peers each (random ids, addresses and ports;
//! 2 seeders and 3 leechers), under the default limits.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_common::config::SwarmConfig;
use tracker_common::swarm::routing::ShardRouter;
use tracker_common::swarm::saved::SavedTorrent;
use tracker_common::swarm::snapshot::{self, LoadSink, SnapshotPart};
use tracker_common::swarm::{AnnounceParams, SwarmBudget, SwarmShard};
use tracker_common::time::SecondsSinceServerStart;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId, ResponsePeer};

mod common;
use common::{rss_bytes, status_bytes};

const TORRENTS: usize = 200_000;
const PEERS_PER_TORRENT: usize = 5;
const KEY: [u8; 16] = [42; 16];

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(what: &str, began: Instant) {
    println!(
        "{what}: {:.0} ms, resident {:.0} MiB, peak {:.0} MiB",
        began.elapsed().as_secs_f64() * 1000.0,
        mib(rss_bytes()),
        mib(status_bytes("VmHWM:"))
    );
}

fn empty_shard() -> SwarmShard {
    let limits = SwarmConfig::default().limits();
    SwarmShard::with_router(
        limits,
        Arc::new(SwarmBudget::new(&limits)),
        &ShardRouter::with_key(KEY, 1),
    )
}

fn save(path: &Path) {
    let mut shard = empty_shard();
    let mut rng = SmallRng::seed_from_u64(1);
    let mut out: Vec<ResponsePeer<Ipv4Addr>> = Vec::new();
    let began = Instant::now();
    for _ in 0..TORRENTS {
        let info_hash = InfoHash(rng.random());
        for p in 0..PEERS_PER_TORRENT {
            let params = AnnounceParams {
                info_hash,
                peer_id: PeerId(rng.random()),
                port: rng.random_range(1..=u16::MAX),
                bytes_left: u64::from(p >= 2),
                event: AnnounceEvent::Started,
                numwant: 0,
            };
            let ip = Ipv4Addr::from(rng.random::<u32>());
            shard.announce_ipv4(
                &params,
                ip,
                SecondsSinceServerStart(100),
                &mut rng,
                &mut out,
            );
        }
    }
    let peers = shard.num_seeders() + shard.num_leechers();
    report(
        &format!("filled {} torrents, {peers} peers", shard.num_torrents()),
        began,
    );

    let began = Instant::now();
    let mut part = SnapshotPart::new();
    shard.save(SecondsSinceServerStart(200), 2700, &mut part);
    report("encoded (the request worker's share)", began);
    let began = Instant::now();
    snapshot::write_file(path, KEY, &[part]).expect("write snapshot");
    let size = std::fs::metadata(path).expect("stat snapshot").len();
    report(&format!("written and synced, {:.1} MiB", mib(size)), began);
}

fn load(path: &Path) {
    struct Into(SwarmShard, usize);
    impl LoadSink for Into {
        fn torrent(&mut self, torrent: &SavedTorrent) {
            self.1 += self
                .0
                .restore_torrent(torrent, SecondsSinceServerStart(2700), 2700);
        }
        fn archived(&mut self, fingerprint: u64, completed: u32) {
            self.0.restore_archived(fingerprint, completed);
        }
    }
    report("before loading", Instant::now());
    let began = Instant::now();
    let file = snapshot::load(path).expect("a valid snapshot");
    report(
        &format!("read and checked ({} peers)", file.num_peers),
        began,
    );
    let began = Instant::now();
    let mut into = Into(empty_shard(), 0);
    file.read(&mut into).expect("records");
    report(
        &format!(
            "restored {} torrents, {} peers",
            into.0.num_torrents(),
            into.1
        ),
        began,
    );
    drop(file);
    report("file bytes freed", Instant::now());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("save"), Some(path)) => save(&PathBuf::from(path)),
        (Some("load"), Some(path)) => load(&PathBuf::from(path)),
        _ => eprintln!("usage: snapshot_bench save|load PATH"),
    }
}
