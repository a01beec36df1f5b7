//! Measures how long the accounting database takes to commit large batches: each batch
//! holds `--credits` credits (one per user and torrent) and as many baselines (one peer
//! each), like the writer's batch after a busy flush interval. The first batch inserts
//! every row; the later ones update the same rows, as a tracker's steady state does.
//!
//! ```text
//! cargo run --release -p tracker_common --example accounting_flush -- \
//!     --url sqlite:///tmp/flush.db [--credits 1000000] [--batches 3]
//! ```
//!
//! Prints the seconds each batch took. Use a fresh database: the rows of an earlier run
//! are updated, not inserted.

use std::time::Instant;

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_common::private::passkey::Passkey;
use tracker_common::private::store::{
    self, Batch, BatchId, CommitOutcome, PeerBaseline, UserTorrentCredit,
};
use tracker_common::types::{InfoHash, PeerId};

/// Torrents per user: the credits are spread over `credits / TORRENTS_PER_USER` users.
const TORRENTS_PER_USER: usize = 100;

fn main() -> anyhow::Result<()> {
    let mut url = None;
    let mut credits: usize = 1_000_000;
    let mut batches: u64 = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--credits" => credits = value()?.parse().context("--credits")?,
            "--batches" => batches = value()?.parse().context("--batches")?,
            _ => anyhow::bail!("usage: accounting_flush --url URL [--credits N] [--batches N]"),
        }
    }
    let url = url.context("--url is needed")?;
    let mut store = store::open(&url)?;

    // The same rows in every batch, in primary key order, as `make_batch` sorts them.
    let mut rng = SmallRng::seed_from_u64(1);
    let mut rows: Vec<(Passkey, InfoHash, PeerId)> = (0..credits)
        .map(|i| {
            let user = i / TORRENTS_PER_USER;
            let passkey =
                Passkey::parse(format!("{user:0>32}").as_bytes()).context("a generated passkey")?;
            Ok((passkey, InfoHash(rng.random()), PeerId(rng.random())))
        })
        .collect::<anyhow::Result<_>>()?;
    rows.sort_unstable();
    // Batch ids differ from run to run, so that a second run on the same database is
    // measured too (updating the rows the first one inserted).
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    println!("{url}: {batches} batches of {credits} credits and {credits} baselines");
    for n in 0..batches {
        let now = 1_700_000_000 + n * 5;
        let mut id = [0; 16];
        id[..8].copy_from_slice(&run.to_le_bytes());
        id[8..].copy_from_slice(&n.to_le_bytes());
        let batch = Batch {
            id: BatchId(id),
            credits: rows
                .iter()
                .map(|&(passkey, info_hash, _)| UserTorrentCredit {
                    passkey,
                    info_hash,
                    uploaded: 1 << 20,
                    downloaded: 1 << 19,
                    seed_seconds: 5,
                    leech_seconds: 0,
                    completed_at: None,
                    first_announce: now,
                    last_announce: now,
                    flagged_announces: 0,
                })
                .collect(),
            baselines: rows
                .iter()
                .map(|&(passkey, info_hash, peer_id)| PeerBaseline {
                    passkey,
                    info_hash,
                    peer_id,
                    uploaded: (n + 1) << 20,
                    downloaded: (n + 1) << 19,
                    last_announce: now,
                    seeding: true,
                })
                .collect(),
            created_at: now,
        };
        let started = Instant::now();
        let outcome = store.commit(&batch)?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(outcome == CommitOutcome::Applied, "batch {n}: {outcome:?}");
        println!("batch {n}: {secs:.2} s");
    }
    Ok(())
}
