//! Memory and CPU of private mode's accounting in a request worker, without a database:
//! fills one accounting shard with the reports of many peers (random users among
//! 10,000, random info hashes and peer ids), as it holds them while the database is
//! away, and prints the resident memory per peer; then times what the tracker does with
//! the reports before they reach the database: merging re-announces, the request
//! worker's hand-over (`take_pending`) and the batch the accounting thread makes.
//! The figures go in documents/private-benchmark.md.
//!
//! Run: `cargo run --release -p tracker_common --example accounting_memory -- 1000000`

use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_common::private::accounting::{AccountAnnounce, AccountingRules, AccountingShard};
use tracker_common::private::ledger::CreditRules;
use tracker_common::private::store::{BatchId, PeerKey};
use tracker_common::private::writer::make_batch;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};

mod common;
use common::rss_bytes;

fn main() {
    let peers: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("a number of peers"))
        .unwrap_or(1_000_000);
    let users: i64 = 10_000;
    let mut rng = SmallRng::seed_from_u64(1);
    let credit = CreditRules {
        interval_secs: 1800,
        grace_secs: 300,
        flag_upload_bytes_per_sec: 125_000_000,
    };
    let rules = AccountingRules {
        credit,
        max_peers: usize::MAX,
        max_peers_per_user: usize::MAX,
    };
    let announces: Vec<AccountAnnounce> = (0..peers)
        .map(|_| AccountAnnounce {
            key: PeerKey {
                user: rng.random_range(0..users),
                info_hash: InfoHash(rng.random()),
                peer_id: PeerId(rng.random()),
            },
            uploaded: Some(0),
            downloaded: Some(0),
            left: rng.random_range(0..2) * 1_000_000,
            event: AnnounceEvent::Started,
        })
        .collect();
    let mut shard = AccountingShard::new(rules);
    let now = 1_800_000_000;

    // Every peer announces started and nothing is handed over (the database is away):
    // the most the shard holds, one report per peer.
    let before = rss_bytes();
    let began = Instant::now();
    for announce in &announces {
        shard.announce(announce, now);
    }
    let fill = began.elapsed();
    let full = rss_bytes();
    println!(
        "{peers} peers' reports waiting: {:.1} MiB resident, {:.0} bytes per peer (filled \
         in {:.2} s)",
        (full - before) as f64 / 1048576.0,
        (full - before) as f64 / peers as f64,
        fill.as_secs_f64()
    );

    // Every peer announces again with new counters, merged into its report.
    let began = Instant::now();
    for announce in &announces {
        let again = AccountAnnounce {
            uploaded: Some(1_000),
            downloaded: Some(2_000),
            event: AnnounceEvent::None,
            ..*announce
        };
        shard.announce(&again, now + 60);
    }
    let merge = began.elapsed();
    let began = Instant::now();
    let mut reports = Vec::with_capacity(peers);
    shard.take_pending(&mut reports, usize::MAX);
    let take = began.elapsed();
    let after = rss_bytes();
    let began = Instant::now();
    let batch = make_batch(BatchId([7; 16]), reports, credit, now + 60);
    let make = began.elapsed();
    println!(
        "re-announce of every peer, merged: {:.2} s ({:.0} ns each); hand-over of {peers} \
         reports: {:.3} s; batch of {} reports made in {:.3} s; resident after the \
         hand-over: {:.1} MiB above the start",
        merge.as_secs_f64(),
        merge.as_nanos() as f64 / peers as f64,
        take.as_secs_f64(),
        batch.reports.len(),
        make.as_secs_f64(),
        after.saturating_sub(before) as f64 / 1048576.0
    );
}
