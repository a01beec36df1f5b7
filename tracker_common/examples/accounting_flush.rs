//! Measures how long the accounting database takes to commit large batches: each batch
//! holds `--credits` peer reports (one peer per user and torrent), like the writer's
//! batch after a busy flush interval; the database reads each peer's mark and its
//! (user, torrent)'s time marks, and writes both. The first batch inserts every row; the
//! later ones update the same rows, as a tracker's steady state does.
//!
//! ```text
//! cargo run --release -p tracker_common --example accounting_flush -- \
//!     --url sqlite:///tmp/flush.db [--credits 1000000] [--batches 3] [--seed 1]
//! ```
//!
//! Prints the seconds each batch took. Use a fresh database: the rows of an earlier run
//! are updated, not inserted. Two processes with different `--seed`s write different
//! peers (and users): two writers on one database.

use std::time::Instant;

use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_common::private::ledger::{CreditRules, PeerReport, Point};
use tracker_common::private::store::{self, Batch, BatchId, CommitOutcome, PeerKey, PeerState};
use tracker_common::types::{AnnounceEvent, InfoHash, PeerId};

/// Torrents per user: the credits are spread over `credits / TORRENTS_PER_USER` users.
const TORRENTS_PER_USER: usize = 100;

fn main() -> anyhow::Result<()> {
    let mut url = None;
    let mut credits: usize = 1_000_000;
    let mut batches: u64 = 3;
    let mut seed: u64 = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--credits" => credits = value()?.parse().context("--credits")?,
            "--batches" => batches = value()?.parse().context("--batches")?,
            "--seed" => seed = value()?.parse().context("--seed")?,
            _ => anyhow::bail!(
                "usage: accounting_flush --url URL [--credits N] [--batches N] [--seed N]"
            ),
        }
    }
    let url = url.context("--url is needed")?;
    let mut store = store::open(&url)?;

    // The same rows in every batch, in primary key order, as `make_batch` sorts them.
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut rows: Vec<PeerKey> = (0..credits)
        .map(|i| PeerKey {
            user: (i / TORRENTS_PER_USER) as i64 + (seed as i64) * 1_000_000_000,
            info_hash: InfoHash(rng.random()),
            peer_id: PeerId(rng.random()),
        })
        .collect();
    rows.sort_unstable();
    // Batch ids differ from run to run, so that a second run on the same database is
    // measured too (updating the rows the first one inserted).
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    println!("{url}: {batches} batches of {credits} peer reports");
    for n in 0..batches {
        let now = 1_700_000_000 + n * 5;
        let mut id = [0; 16];
        id[..8].copy_from_slice(&run.to_le_bytes());
        id[8..].copy_from_slice(&n.to_le_bytes());
        let batch = Batch {
            id: BatchId(id),
            reports: rows
                .iter()
                .map(|&key| {
                    PeerReport::new(
                        key,
                        Point {
                            at: now,
                            uploaded: Some((n + 1) << 20),
                            downloaded: Some((n + 1) << 19),
                            state: PeerState::Seeding,
                            event: if n == 0 {
                                AnnounceEvent::Started
                            } else {
                                AnnounceEvent::None
                            },
                        },
                    )
                })
                .collect(),
            rules: CreditRules {
                interval_secs: 1800,
                grace_secs: 300,
                flag_upload_bytes_per_sec: 0,
            },
            created_at: now,
        };
        let started = Instant::now();
        let outcome = store.commit(&batch)?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(outcome == CommitOutcome::Applied, "batch {n}: {outcome:?}");
        println!(
            "batch {n}: {secs:.2} s ({:.1} µs a report)",
            secs * 1e6 / credits as f64
        );
    }
    Ok(())
}
