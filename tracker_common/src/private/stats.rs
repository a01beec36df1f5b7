//! Private mode's counters: written by the socket workers (refusals), the request
//! workers (their accounting shards' sizes and flags) and the `accounting` thread
//! (batches), read by the statistics line and the metrics endpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::private::passkey::Refusal;

/// Private mode's counters, all relaxed atomics.
#[derive(Debug, Default)]
pub struct PrivateStatistics {
    enabled: AtomicBool,
    /// Requests refused, by [`Refusal::index`].
    refused: [CachePadded<AtomicU64>; 5],
    /// Per request worker: peers with a report waiting, flagged announces, reports
    /// evicted by a limit.
    shards: Box<[CachePadded<ShardGauges>]>,
    /// Passkeys in force.
    pub passkeys_loaded: AtomicU64,
    /// Peers' credit the `accounting` thread holds (handed over, not yet committed).
    pub writer_pending: AtomicU64,
    /// Batches committed.
    pub batches_committed: AtomicU64,
    /// Commit attempts that failed (each retried with the same batch).
    pub batches_failed: AtomicU64,
    /// Retries that found their batch already applied.
    pub batches_already_applied: AtomicU64,
    /// Peer credits committed.
    pub credits_committed: AtomicU64,
    /// Microseconds spent in commits that succeeded, summed, and their count is
    /// `batches_committed + batches_already_applied`.
    pub flush_micros_total: AtomicU64,
    /// Microseconds the last successful commit took.
    pub last_flush_micros: AtomicU64,
    /// Unix seconds of the last successful commit.
    pub last_commit_unix_secs: AtomicU64,
    /// Commit attempts that failed since the last one that succeeded: 0 while the
    /// database takes the batches (or none was tried yet).
    pub commit_failures_in_a_row: AtomicU64,
    /// 1 while the accounting database is open and its last use worked, else 0.
    pub database_up: AtomicU64,
    /// Unix seconds of the last read of the site's tables (0: none yet; the local cache
    /// or the passkey file is in force).
    pub site_loaded_unix_secs: AtomicU64,
    /// Committed reports that were behind their peer's mark (credited nothing).
    pub reports_stale: AtomicU64,
    /// Committed reports that overlapped their peer's mark (credited beyond it only).
    pub reports_overlapping: AtomicU64,
}

/// One request worker's accounting gauges.
#[derive(Debug, Default)]
pub struct ShardGauges {
    /// Peers with a report not yet handed to the `accounting` thread.
    pub peers: AtomicU64,
    /// Announces flagged for their upload speed.
    pub flagged: AtomicU64,
    /// Reports evicted by a limit (a new peer took their place).
    pub evicted: AtomicU64,
}

/// Private mode's figures at one moment (all zero when it is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrivateSnapshot {
    /// Whether private mode is on.
    pub enabled: bool,
    /// Passkeys in force.
    pub passkeys_loaded: u64,
    /// Peers with a report in the request workers.
    pub peers: u64,
    /// Reports waiting to be committed (in the request workers or the `accounting`
    /// thread; a peer may be counted in both).
    pub credits_pending: u64,
    /// Batches committed.
    pub batches_committed: u64,
    /// Commit attempts that failed.
    pub batches_failed: u64,
    /// Retries that found their batch already applied.
    pub batches_already_applied: u64,
    /// Peer credits committed.
    pub credits_committed: u64,
    /// Microseconds spent in successful commits, summed.
    pub flush_micros_total: u64,
    /// Microseconds the last successful commit took.
    pub last_flush_micros: u64,
    /// Unix seconds of the last successful commit.
    pub last_commit_unix_secs: u64,
    /// Commit attempts that failed since the last one that succeeded.
    pub commit_failures_in_a_row: u64,
    /// Whether the accounting database is open and its last use worked.
    pub database_up: bool,
    /// Unix seconds of the last read of the site's tables (0: none yet).
    pub site_loaded_unix_secs: u64,
    /// Requests refused, by [`Refusal::index`].
    pub refused: [u64; 5],
    /// Announces flagged for their upload speed.
    pub flagged: u64,
    /// Reports evicted by a limit.
    pub evicted: u64,
    /// Committed reports behind their peer's mark.
    pub reports_stale: u64,
    /// Committed reports that overlapped their peer's mark.
    pub reports_overlapping: u64,
}

impl PrivateSnapshot {
    /// Requests refused for `cause`.
    pub fn refused_for(&self, cause: Refusal) -> u64 {
        self.refused.get(cause.index()).copied().unwrap_or(0)
    }
}

impl PrivateStatistics {
    /// Counters for `request_workers` shards.
    pub fn new(request_workers: usize) -> Self {
        Self {
            shards: (0..request_workers)
                .map(|_| CachePadded::default())
                .collect(),
            ..Self::default()
        }
    }

    /// Marks private mode as on (the figures are reported from then on).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Counts a refused request.
    pub fn refused(&self, cause: Refusal) {
        if let Some(counter) = self.refused.get(cause.index()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Request worker `index`'s gauges, if there is such a worker.
    pub fn shard(&self, index: usize) -> Option<&ShardGauges> {
        self.shards.get(index).map(|g| &**g)
    }

    /// The figures now.
    pub fn snapshot(&self) -> PrivateSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = PrivateSnapshot {
            enabled: self.enabled.load(Ordering::Relaxed),
            passkeys_loaded: get(&self.passkeys_loaded),
            credits_pending: get(&self.writer_pending),
            batches_committed: get(&self.batches_committed),
            batches_failed: get(&self.batches_failed),
            batches_already_applied: get(&self.batches_already_applied),
            credits_committed: get(&self.credits_committed),
            flush_micros_total: get(&self.flush_micros_total),
            last_flush_micros: get(&self.last_flush_micros),
            last_commit_unix_secs: get(&self.last_commit_unix_secs),
            commit_failures_in_a_row: get(&self.commit_failures_in_a_row),
            database_up: get(&self.database_up) == 1,
            site_loaded_unix_secs: get(&self.site_loaded_unix_secs),
            reports_stale: get(&self.reports_stale),
            reports_overlapping: get(&self.reports_overlapping),
            ..PrivateSnapshot::default()
        };
        for (sum, counter) in s.refused.iter_mut().zip(&self.refused) {
            *sum = get(counter);
        }
        for g in self.shards.iter() {
            s.peers += get(&g.peers);
            s.credits_pending += get(&g.peers);
            s.flagged += get(&g.flagged);
            s.evicted += get(&g.evicted);
        }
        s
    }
}
