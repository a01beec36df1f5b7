//! Memory and CPU of private mode's accounting, without a database: fills one
//! accounting shard with peers (random passkeys among 10,000 users, random info hashes
//! and peer ids) and prints the resident memory it took per peer, then times what the
//! tracker does with their credit before it reaches the database: the request worker's
//! hand-over (`take_pending`) and the batch the accounting thread makes of it.
//! The figures go in documents/private-benchmark.md.
//!
//! Run: `cargo run --release -p tracker_common --example accounting_memory -- 1000000`

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_common::private::accounting::{
    AccountAnnounce, AccountingBudget, AccountingRules, AccountingShard,
};
use tracker_common::private::passkey::Passkey;
use tracker_common::private::store::BatchId;
use tracker_common::private::writer::make_batch;
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};

mod common;
use common::rss_bytes;

fn main() {
    let peers: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("a number of peers"))
        .unwrap_or(1_000_000);
    let users = 10_000;
    let mut rng = SmallRng::seed_from_u64(1);
    let passkeys: Vec<Passkey> = (0..users)
        .map(|_| {
            let mut key = [0u8; 32];
            for b in &mut key {
                *b = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    [rng.random_range(0..62)];
            }
            Passkey(key)
        })
        .collect();
    let counts: Vec<AtomicUsize> = (0..users).map(|_| AtomicUsize::new(0)).collect();
    let rules = AccountingRules {
        interval_secs: 1800,
        grace_secs: 300,
        retention_secs: 21 * 24 * 3600,
        flag_upload_bytes_per_sec: 125_000_000,
        max_peers: usize::MAX,
        max_peers_per_passkey: usize::MAX,
    };
    let announces: Vec<(usize, AccountAnnounce)> = (0..peers)
        .map(|_| {
            let user = rng.random_range(0..users);
            (
                user,
                AccountAnnounce {
                    passkey: passkeys[user],
                    info_hash: InfoHash(rng.random()),
                    peer_id: PeerId(rng.random()),
                    uploaded: 0,
                    downloaded: 0,
                    left: rng.random_range(0..2) * 1_000_000,
                    event: AnnounceEvent::Started,
                },
            )
        })
        .collect();
    let mut shard = AccountingShard::new(rules, Arc::new(AccountingBudget::default()));
    let now = 1_800_000_000;

    // Every peer announces started, and its credit is handed over: what stays is the
    // baselines, the steady state between hand-overs.
    let before = rss_bytes();
    let began = Instant::now();
    for (user, announce) in &announces {
        shard.announce(announce, now, || Some(&counts[*user]));
    }
    let fill = began.elapsed();
    let mut credits = Vec::new();
    shard.take_pending(&mut credits, usize::MAX);
    drop(credits);
    let after = rss_bytes();
    println!(
        "{peers} peers with accounting state: {:.1} MiB resident, {:.0} bytes per peer \
         (filled in {:.2} s)",
        (after - before) as f64 / 1048576.0,
        (after - before) as f64 / peers as f64,
        fill.as_secs_f64()
    );

    // Every peer announces again with new counters, handed over every 10,000 announces
    // (a request worker answering 10,000 announces a second hands over once a second).
    let began = Instant::now();
    let mut handed = Vec::new();
    for (i, (user, announce)) in announces.iter().enumerate() {
        let again = AccountAnnounce {
            uploaded: 1_000,
            downloaded: 2_000,
            event: AnnounceEvent::None,
            ..*announce
        };
        shard.announce(&again, now + 60, || Some(&counts[*user]));
        if i % 10_000 == 9_999 {
            handed.clear();
            shard.take_pending(&mut handed, usize::MAX);
        }
    }
    let reannounce = began.elapsed();
    // Then all of them once more, in one hand-over: the most a hand-over can hold.
    for (user, announce) in &announces {
        let again = AccountAnnounce {
            uploaded: 3_000,
            downloaded: 4_000,
            event: AnnounceEvent::None,
            ..*announce
        };
        shard.announce(&again, now + 120, || Some(&counts[*user]));
    }
    let with_pending = rss_bytes();
    let began = Instant::now();
    let mut credits = Vec::with_capacity(peers);
    shard.take_pending(&mut credits, usize::MAX);
    let take = began.elapsed();
    let began = Instant::now();
    let batch = make_batch(BatchId([7; 16]), &credits, now + 60);
    let make = began.elapsed();
    println!(
        "re-announce of every peer, handed over every 10,000: {:.2} s ({:.0} ns each); \
         every peer's credit pending at once: {:.0} bytes per peer more",
        reannounce.as_secs_f64(),
        reannounce.as_nanos() as f64 / peers as f64,
        with_pending.saturating_sub(after) as f64 / peers as f64
    );
    println!(
        "hand-over of {peers} credits: {:.3} s; batch of {} user-torrent rows and {} \
         baselines made in {:.3} s",
        take.as_secs_f64(),
        batch.credits.len(),
        batch.baselines.len(),
        make.as_secs_f64()
    );
}
