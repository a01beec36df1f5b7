//! The `accounting` thread, and each request worker's side of it.
//!
//! Reports wait in the request workers' shards, one per peer (see [`AccountingShard`]).
//! A worker hands at most [`MAX_BATCH_REPORTS`] reports over every
//! `flush_interval_secs`, or at its next check (each second) when some are urgent, but
//! only once the thread has committed its previous hand-over: a worker has at most one
//! hand-over outstanding. So the thread holds at most one hand-over per worker, and a
//! thread that is behind (a busy CPU, a slow or absent database) costs the workers
//! nothing: their reports keep merging in place, bounded by the shard's limits, and
//! announces are answered throughout.
//!
//! The thread commits what it holds as one [`Batch`] with a fresh id once every worker
//! with reports has handed over or the oldest hand-over has waited [`GATHER`]. A batch
//! whose commit fails is kept and retried, id and content unchanged, until the store
//! says it is applied (now, or by an earlier attempt whose reply was lost). The database
//! decides each credit in the batch's transaction (see [`crate::private::ledger`]).
//!
//! The database need not be there at start: the thread opens it when it can, retrying
//! every flush interval, and commits what waited once it is back. It also re-reads the
//! site's tables (passkeys, users who may not leech, registered torrents) every
//! `refresh_secs` and when asked (SIGUSR1), keeps a local cache of them for a start
//! while the database is down, and deletes peer marks older than the retention once an
//! hour.
//!
//! At shutdown the request workers hand over everything and drop their senders; the
//! thread then commits what it holds, retrying for a bounded time.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::observe::statistics::RateLimitedWarning;
use crate::private::accounting::{AccountAnnounce, AccountingShard, AnnounceOutcome};
use crate::private::ledger::{CreditRules, PeerReport};
use crate::private::passkey::{ChangeLock, PasskeySet, SharedPasskeys, hold};
use crate::private::site_cache;
use crate::private::stats::PrivateStatistics;
use crate::private::store::{AccountingStore, Batch, BatchId, CommitOutcome};
use crate::time::{SecondsSinceServerStart, UnixClock};

/// How often a request worker checks whether to hand reports over.
pub const HAND_OVER_CHECK: Duration = Duration::from_secs(1);
/// Hand-overs the channel holds per request worker: the one outstanding, and the last
/// one a stopping worker sends.
pub const CHANNEL_ROUNDS: usize = 2;
/// How long the thread keeps retrying its last commit at shutdown.
pub const FINAL_COMMIT_DEADLINE: Duration = Duration::from_secs(20);
/// The most reports one batch (one transaction) holds, and one hand-over but a stopping
/// worker's last (which the thread then commits batch after batch).
pub const MAX_BATCH_REPORTS: usize = 100_000;
/// How long the thread waits, after the first hand-over arrives, for the other
/// workers' before it commits: the workers' flush times are aligned, so that one
/// transaction usually takes them all.
pub const GATHER: Duration = Duration::from_secs(1);
/// A worker whose hand-over has been outstanding this long says so in the log.
const OUTSTANDING_WARNING_AFTER: Duration = Duration::from_secs(60);
/// Time between deletions of expired marks.
const FORGET_INTERVAL: Duration = Duration::from_secs(3600);

/// One request worker's reports, handed to the `accounting` thread.
#[derive(Debug)]
pub struct HandOver {
    /// The request worker's index.
    pub worker: usize,
    /// The reports, each peer once.
    pub reports: Vec<PeerReport>,
}

/// Per request worker: whether the `accounting` thread holds a hand-over of it not yet
/// committed. Set by the worker as it hands over, cleared by the thread once the
/// hand-over's last report is committed.
pub type Outstanding = Arc<[AtomicBool]>;

/// The outstanding flags of `workers` request workers, all clear.
pub fn outstanding_flags(workers: usize) -> Outstanding {
    (0..workers).map(|_| AtomicBool::new(false)).collect()
}

/// A request worker's accounting: its shard, the clock, and the channel to the
/// `accounting` thread.
pub struct AccountingDuty {
    /// The reports of the worker's torrents.
    pub shard: AccountingShard,
    sender: Sender<HandOver>,
    outstanding: Outstanding,
    clock: UnixClock,
    /// The instant the workers' flush times count from, shared by all of them.
    epoch: Instant,
    flush_interval: Duration,
    /// Time between checks ([`HAND_OVER_CHECK`]).
    check_interval: Duration,
    next_check: Instant,
    next_flush: Instant,
    handed_over_at: Instant,
    stats: Arc<PrivateStatistics>,
    index: usize,
    behind_warning: RateLimitedWarning,
}

/// What a request worker's [`AccountingDuty`] is made of.
pub struct DutyParts {
    /// The request worker's index.
    pub index: usize,
    /// Its shard.
    pub shard: AccountingShard,
    /// To the `accounting` thread.
    pub sender: Sender<HandOver>,
    /// The workers' outstanding flags.
    pub outstanding: Outstanding,
    /// The one clock.
    pub clock: UnixClock,
    /// What flush times count from.
    pub epoch: Instant,
    /// Time between hand-overs.
    pub flush_interval: Duration,
    /// The counters.
    pub stats: Arc<PrivateStatistics>,
}

impl AccountingDuty {
    /// The duty of request worker `parts.index`; its flush times are `epoch` plus whole
    /// multiples of `flush_interval`.
    pub fn new(parts: DutyParts) -> Self {
        let now = Instant::now();
        let flush_interval = parts.flush_interval.max(Duration::from_millis(1));
        Self {
            shard: parts.shard,
            sender: parts.sender,
            outstanding: parts.outstanding,
            clock: parts.clock,
            epoch: parts.epoch,
            flush_interval,
            check_interval: HAND_OVER_CHECK,
            next_check: now + HAND_OVER_CHECK,
            next_flush: next_multiple(parts.epoch, flush_interval, now),
            handed_over_at: now,
            stats: parts.stats,
            index: parts.index,
            behind_warning: RateLimitedWarning::new(OUTSTANDING_WARNING_AFTER),
        }
    }

    /// Applies an accepted announce.
    pub fn announce(
        &mut self,
        announce: &AccountAnnounce,
        now: SecondsSinceServerStart,
    ) -> AnnounceOutcome {
        self.shard.announce(announce, self.clock.at(now))
    }

    fn flag(&self) -> Option<&AtomicBool> {
        self.outstanding.get(self.index)
    }

    /// Hands reports over when due and publishes the gauges. Called by the request
    /// worker's loop.
    pub fn tick(&mut self) {
        let instant = Instant::now();
        if instant < self.next_check {
            return;
        }
        self.next_check = instant + self.check_interval;
        let due = instant >= self.next_flush || self.shard.has_urgent();
        if due && self.shard.num_peers() > 0 {
            if self.flag().is_some_and(|f| f.load(Ordering::Acquire)) {
                if instant.duration_since(self.handed_over_at) >= OUTSTANDING_WARNING_AFTER
                    && let Some(held_back) = self.behind_warning.check(instant)
                {
                    log::warn!(
                        "request-{:02}: the accounting thread has not committed this worker's \
                         last reports for {} s (the database is slow or down, or the CPU \
                         busy); {} peers' reports wait here ({held_back} more times since \
                         the last warning)",
                        self.index + 1,
                        instant.duration_since(self.handed_over_at).as_secs(),
                        self.shard.num_peers()
                    );
                }
            } else {
                self.hand_over(instant);
            }
        }
        if let Some(gauges) = self.stats.shard(self.index) {
            let set = |g: &std::sync::atomic::AtomicU64, v: u64| g.store(v, Ordering::Relaxed);
            set(&gauges.peers, self.shard.num_peers() as u64);
            set(&gauges.flagged, self.shard.num_flagged());
            set(&gauges.evicted, self.shard.num_evicted());
        }
    }

    fn hand_over(&mut self, instant: Instant) {
        let mut reports = Vec::new();
        if self.shard.take_pending(&mut reports, MAX_BATCH_REPORTS) == 0 {
            return;
        }
        self.next_flush = next_multiple(self.epoch, self.flush_interval, instant);
        self.handed_over_at = instant;
        if let Some(flag) = self.flag() {
            flag.store(true, Ordering::Release);
        }
        let hand_over = HandOver {
            worker: self.index,
            reports,
        };
        match self.sender.try_send(hand_over) {
            Ok(()) => {}
            // Neither happens while the thread runs (the channel has room for every
            // worker's outstanding hand-over); the reports stay here either way.
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => {
                if let Some(flag) = self.flag() {
                    flag.store(false, Ordering::Release);
                }
                self.shard.put_back(back.reports);
            }
        }
    }

    /// Hands everything over as the worker stops, waiting a little for room.
    pub fn finish(&mut self) {
        let mut reports = Vec::new();
        if self.shard.take_all(&mut reports) == 0 {
            return;
        }
        let hand_over = HandOver {
            worker: self.index,
            reports,
        };
        if self
            .sender
            .send_timeout(hand_over, Duration::from_secs(2))
            .is_err()
        {
            log::warn!(
                "request-{:02}: the accounting thread took no last reports; the peers' bytes \
                 are credited at their next announces, against their committed marks",
                self.index + 1
            );
        }
    }
}

/// The first instant after `now` that is `epoch` plus a whole multiple of `interval`.
fn next_multiple(epoch: Instant, interval: Duration, now: Instant) -> Instant {
    let elapsed = now.saturating_duration_since(epoch).as_nanos();
    let step = interval.as_nanos().max(1);
    let steps = u32::try_from(elapsed / step + 1).unwrap_or(u32::MAX);
    epoch + interval.saturating_mul(steps)
}

/// Where the site's tables come from and go.
pub struct SiteRefresh {
    /// The set in force.
    pub shared: SharedPasskeys,
    /// Time between reads.
    pub interval: Duration,
    /// Set by SIGUSR1: read now.
    pub requested: Arc<AtomicBool>,
    /// Held from the read of the site's tables to the swap, so that a change of the
    /// admin API made meanwhile is not undone by a set read before it.
    pub lock: ChangeLock,
    /// Whether the passkeys come from a file (then only the users who may not leech and
    /// the registered torrents are read from the database).
    pub passkeys_from_file: bool,
    /// The local cache of the last read, if any.
    pub cache: Option<PathBuf>,
    /// One warning per [`SITE_CACHE_WARNING_INTERVAL`] when the cache cannot be written
    /// (a path the service may not write is met at every read).
    pub cache_warning: RateLimitedWarning,
}

/// The accounting database, opened when it can be.
pub enum StoreSlot {
    /// Open.
    Open(Box<dyn AccountingStore>),
    /// Not yet: opened by URL at the next try.
    Closed {
        /// The accounting URL.
        url: String,
    },
}

/// The `accounting` thread.
pub struct AccountingWriter {
    /// The database.
    pub store: StoreSlot,
    /// Reports from the request workers; disconnected once they all stopped.
    pub receiver: Receiver<HandOver>,
    /// The request workers' outstanding flags, cleared here.
    pub outstanding: Outstanding,
    /// Time between retries of a batch that failed, or of opening the database.
    pub flush_interval: Duration,
    /// Marks older than this many seconds are deleted.
    pub retention_secs: u64,
    /// The site's tables.
    pub site: SiteRefresh,
    /// The credit rules batches carry.
    pub rules: CreditRules,
    /// The one clock.
    pub clock: UnixClock,
    /// The counters.
    pub stats: Arc<PrivateStatistics>,
}

/// A batch being committed.
struct InFlight {
    batch: Batch,
    /// Workers whose hand-over ends in it: their flags clear once it is applied.
    completes: Vec<usize>,
}

/// The thread's working state.
struct WriterState {
    /// Hand-overs not yet in a batch, with when they arrived: at most two per worker.
    queue: VecDeque<(Instant, HandOver)>,
    in_flight: Option<InFlight>,
    /// When the batch in flight may be tried again.
    retry_at: Instant,
    rng: StdRng,
    failure_warning: RateLimitedWarning,
}

impl WriterState {
    fn new(rng: StdRng) -> Self {
        Self {
            queue: VecDeque::new(),
            in_flight: None,
            retry_at: Instant::now(),
            rng,
            failure_warning: RateLimitedWarning::new(Duration::from_secs(30)),
        }
    }

    fn push(&mut self, hand_over: HandOver) {
        self.queue.push_back((Instant::now(), hand_over));
    }

    /// Reports queued.
    fn queued(&self) -> usize {
        self.queue.iter().map(|(_, h)| h.reports.len()).sum()
    }

    /// Reports held, queued or in flight.
    fn held(&self) -> usize {
        self.queued() + self.in_flight.as_ref().map_or(0, |f| f.batch.reports.len())
    }

    /// Whether to commit now: a batch to retry whose time has come, or a full batch's
    /// worth queued, or every worker's hand-over, or one that waited [`GATHER`].
    fn commit_due(&self, workers: usize, now: Instant) -> bool {
        if self.in_flight.is_some() {
            return now >= self.retry_at;
        }
        let Some((oldest, _)) = self.queue.front() else {
            return false;
        };
        self.queued() >= MAX_BATCH_REPORTS
            || self.queue.len() >= workers
            || now.saturating_duration_since(*oldest) >= GATHER
    }

    /// When the loop must wake next for a commit, if it must.
    fn next_commit(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return Some(self.retry_at);
        }
        self.queue.front().map(|(oldest, _)| *oldest + GATHER)
    }

    /// Makes the next batch of at most [`MAX_BATCH_REPORTS`] reports from the queue,
    /// oldest first, unless one is in flight.
    fn take_batch(&mut self, rules: CreditRules, created_at: u64) {
        if self.in_flight.is_some() || self.queue.is_empty() {
            return;
        }
        let mut reports: Vec<PeerReport> = Vec::new();
        let mut completes = Vec::new();
        while reports.len() < MAX_BATCH_REPORTS {
            let room = MAX_BATCH_REPORTS - reports.len();
            let Some((_, front)) = self.queue.front_mut() else {
                break;
            };
            if front.reports.len() > room {
                // A hand-over holds each peer once, in no particular order: its tail
                // goes, without moving the rest.
                let at = front.reports.len() - room;
                reports.extend(front.reports.split_off(at));
                break;
            }
            if let Some((_, whole)) = self.queue.pop_front() {
                if reports.is_empty() {
                    reports = whole.reports;
                } else {
                    reports.extend(whole.reports);
                }
                completes.push(whole.worker);
            }
        }
        let mut id = [0u8; 16];
        self.rng.fill_bytes(&mut id);
        self.in_flight = Some(InFlight {
            batch: make_batch(BatchId(id), reports, rules, created_at),
            completes,
        });
    }
}

impl AccountingWriter {
    /// Runs until every request worker has stopped, then commits what it holds.
    ///
    /// # Errors
    /// Never: database errors are retried and logged. (The signature is the
    /// supervisor's.)
    pub fn run(mut self) -> anyhow::Result<()> {
        lower_priority();
        let mut state = WriterState::new(StdRng::from_os_rng());
        let workers = self.outstanding.len().max(1);
        let mut next_refresh = Instant::now() + self.site.interval;
        let mut next_forget = Instant::now();
        // A tracker that started without its database reads the site's tables as soon
        // as the database is there.
        let mut site_loaded = self.stats.site_loaded_unix_secs.load(Ordering::Relaxed) > 0;
        loop {
            // Wake at least once a second, for a SIGUSR1 reload.
            let mut wake = Instant::now() + Duration::from_secs(1);
            if let Some(commit) = state.next_commit() {
                wake = wake.min(commit);
            }
            match self.receiver.recv_deadline(wake) {
                Ok(hand_over) => state.push(hand_over),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Take what else is there without waiting.
            while let Ok(hand_over) = self.receiver.try_recv() {
                state.push(hand_over);
            }
            self.stats
                .writer_pending
                .store(state.held() as u64, Ordering::Relaxed);
            // A backlog (a burst, or the database back after an outage) goes out batch
            // after batch.
            while state.commit_due(workers, Instant::now()) {
                if !self.flush(&mut state) {
                    break;
                }
            }
            self.stats
                .writer_pending
                .store(state.held() as u64, Ordering::Relaxed);
            let now = Instant::now();
            let requested = self.site.requested.swap(false, Ordering::Relaxed);
            if requested || now >= next_refresh || (!site_loaded && self.database_ready()) {
                site_loaded |= self.refresh_site();
                next_refresh = Instant::now() + self.site.interval;
            }
            if now >= next_forget && self.database_ready() {
                let before = self.clock.now().saturating_sub(self.retention_secs);
                if let StoreSlot::Open(store) = &mut self.store {
                    match store.forget_before(before) {
                        Ok(n) if n > 0 => log::info!("accounting: forgot {n} expired peer marks"),
                        Ok(_) => {}
                        Err(err) => log::warn!("accounting: deleting expired peer marks: {err:#}"),
                    }
                }
                next_forget = now + FORGET_INTERVAL;
            }
        }
        // Every request worker has stopped and handed its reports over.
        let deadline = Instant::now() + FINAL_COMMIT_DEADLINE;
        while state.in_flight.is_some() || !state.queue.is_empty() {
            let committed = self.flush(&mut state);
            if Instant::now() >= deadline {
                log::error!(
                    "accounting: the database took no last batch; {} peers' bytes are \
                     credited at their next announces, against their committed marks",
                    state.held()
                );
                break;
            }
            if !committed {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        self.stats.writer_pending.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The store, opening it if it is closed (at most once per flush interval).
    fn open_store(&mut self) -> anyhow::Result<&mut dyn AccountingStore> {
        if let StoreSlot::Closed { url } = &self.store {
            match crate::private::store::open(url) {
                Ok(store) => {
                    log::info!("accounting: database opened");
                    self.store = StoreSlot::Open(store);
                }
                Err(err) => {
                    self.stats.database_up.store(0, Ordering::Relaxed);
                    return Err(err);
                }
            }
        }
        match &mut self.store {
            StoreSlot::Open(store) => Ok(store.as_mut()),
            StoreSlot::Closed { .. } => anyhow::bail!("the accounting database is not open"),
        }
    }

    /// Whether the database is open.
    fn database_ready(&self) -> bool {
        matches!(self.store, StoreSlot::Open(_))
    }

    /// Commits the batch in flight, or makes one of the queued reports and commits it.
    /// Whether it was committed.
    fn flush(&mut self, state: &mut WriterState) -> bool {
        state.take_batch(self.rules, self.clock.now());
        let Some(in_flight) = &state.in_flight else {
            return false;
        };
        let reports = in_flight.batch.reports.len();
        let began = Instant::now();
        let result = match self.open_store() {
            Ok(store) => store.commit_counted(&in_flight.batch),
            Err(err) => Err(err),
        };
        let batch = &in_flight.batch;
        match result {
            Ok((outcome, applied)) => {
                let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.stats
                    .reports_stale
                    .fetch_add(applied.stale, Ordering::Relaxed);
                self.stats
                    .reports_overlapping
                    .fetch_add(applied.overlapping, Ordering::Relaxed);
                let counter = match outcome {
                    CommitOutcome::Applied => &self.stats.batches_committed,
                    CommitOutcome::AlreadyApplied => &self.stats.batches_already_applied,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .credits_committed
                    .fetch_add(reports as u64, Ordering::Relaxed);
                self.stats
                    .flush_micros_total
                    .fetch_add(micros, Ordering::Relaxed);
                self.stats
                    .last_flush_micros
                    .store(micros, Ordering::Relaxed);
                self.stats
                    .last_commit_unix_secs
                    .store(self.clock.now(), Ordering::Relaxed);
                self.stats
                    .commit_failures_in_a_row
                    .store(0, Ordering::Relaxed);
                self.stats.database_up.store(1, Ordering::Relaxed);
                log::debug!(
                    "accounting: batch {} {:?}: {} peers' reports, {} ms",
                    batch.id.to_hex(),
                    outcome,
                    reports,
                    micros / 1000
                );
                for worker in &in_flight.completes {
                    if let Some(flag) = self.outstanding.get(*worker) {
                        flag.store(false, Ordering::Release);
                    }
                }
                state.in_flight = None;
                true
            }
            Err(err) => {
                self.stats.database_up.store(0, Ordering::Relaxed);
                self.stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .commit_failures_in_a_row
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(held_back) = state.failure_warning.check(Instant::now()) {
                    log::error!(
                        "accounting: batch {} of {} peers not committed, will retry it: {err:#} \
                         ({held_back} more failures since the last message)",
                        batch.id.to_hex(),
                        reports
                    );
                }
                state.retry_at = Instant::now() + self.flush_interval;
                false
            }
        }
    }

    /// Reads the site's tables and swaps them in, writing the cache; whether it worked.
    /// Holds the change lock throughout: an admin API change waits for the swap, or
    /// was written to the database before the read.
    pub(crate) fn refresh_site(&mut self) -> bool {
        let lock = self.site.lock.clone();
        let _held = hold(&lock);
        let site = match self.open_store().and_then(|store| store.load_site()) {
            Ok(site) => site,
            Err(err) => {
                log::warn!(
                    "accounting: reading the site's tables failed, keeping those in force: \
                     {err:#}"
                );
                return false;
            }
        };
        let current = self.site.shared.load();
        let file_keys = self.site.passkeys_from_file.then_some(&**current);
        let set = PasskeySet::of_site(&site, file_keys);
        if let Some(path) = &self.site.cache
            && let Err(err) = site_cache::write(path, &set.to_site())
            && let Some(held_back) = self.site.cache_warning.check(Instant::now())
        {
            log::warn!(
                "accounting: writing the site cache {}: {err:#} ({held_back} more failures \
                 since the last warning; set private.site_cache_path to a path the tracker \
                 may write, or to \"\" for no cache)",
                path.display()
            );
        }
        let (keys, torrents) = (set.len(), set.num_torrents());
        self.site.shared.store(Arc::new(set));
        self.stats
            .passkeys_loaded
            .store(keys as u64, Ordering::Relaxed);
        self.stats
            .site_loaded_unix_secs
            .store(self.clock.now(), Ordering::Relaxed);
        log::debug!("accounting: {keys} passkeys and {torrents} registered torrents in force");
        true
    }
}

/// How often a site cache that cannot be written is warned about.
pub const SITE_CACHE_WARNING_INTERVAL: Duration = Duration::from_secs(3600);

/// The nice value of the `accounting` thread.
pub const ACCOUNTING_NICE: i32 = 19;

/// Lowers this thread's scheduling priority to [`ACCOUNTING_NICE`], the lowest: when
/// the CPU is short, announces come first and the reports wait (merged per peer, so
/// bounded), rather than every announce waiting for the database. On a core the
/// serving threads keep busy, the thread still gets about 0.7 % of it (the weight of
/// nice 19 beside two threads at nice 0): 7 ms a second, some 700 reports a second on
/// SQLite (about 10 µs each), the announces of 1.2 million peers at a 30-minute
/// interval. When the CPU is not short, the nice value changes nothing. On Linux a
/// nice value is per thread.
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments, and
    // PRIO_PROCESS with a thread id changes that thread's nice value (Linux).
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, ACCOUNTING_NICE)
    };
    if result != 0 {
        log::warn!(
            "accounting: could not lower the thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A batch of reports: one per peer, a peer that came twice (a stopping worker's last
/// hand-over after its outstanding one) merged, older first.
pub fn make_batch(
    id: BatchId,
    mut reports: Vec<PeerReport>,
    rules: CreditRules,
    created_at: u64,
) -> Batch {
    reports.sort_by_key(|r| (r.key, r.first.at));
    let mut merged: Vec<PeerReport> = Vec::with_capacity(reports.len());
    for report in reports {
        match merged.last_mut() {
            Some(last) if last.key == report.key => last.merge_report(&report, &rules),
            _ => merged.push(report),
        }
    }
    Batch {
        id,
        reports: merged,
        rules,
        created_at,
    }
}

/// Makes the shared passkeys of a loaded set.
pub fn shared_passkeys(set: PasskeySet) -> SharedPasskeys {
    Arc::new(ArcSwap::from_pointee(set))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::private::ledger::Point;
    use crate::private::store::memory::{Failure, MemoryDatabase, MemoryStore};
    use crate::private::store::{PeerKey, PeerState, UserTorrentKey};
    use crate::time::ServerStartInstant;
    use crate::types::{AnnounceEvent, InfoHash, PeerId};

    const T0: u64 = 1_800_000_000;

    fn rules() -> CreditRules {
        CreditRules {
            interval_secs: 1800,
            grace_secs: 300,
            flag_upload_bytes_per_sec: 0,
        }
    }

    fn key(peer: u8) -> PeerKey {
        PeerKey {
            user: 7,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([peer; 20]),
        }
    }

    fn started(peer: u8, uploaded: u64, at: u64) -> PeerReport {
        PeerReport::new(
            key(peer),
            Point {
                at,
                uploaded: Some(uploaded),
                downloaded: Some(0),
                state: PeerState::Leeching,
                event: AnnounceEvent::Started,
            },
        )
    }

    fn writer(
        memory: &Arc<Mutex<MemoryDatabase>>,
        workers: usize,
    ) -> (Sender<HandOver>, Outstanding, AccountingWriter) {
        let (sender, receiver) = crossbeam_channel::bounded(workers * CHANNEL_ROUNDS);
        let outstanding = outstanding_flags(workers);
        let writer = AccountingWriter {
            store: StoreSlot::Open(Box::new(MemoryStore(memory.clone()))),
            receiver,
            outstanding: outstanding.clone(),
            flush_interval: Duration::from_millis(20),
            retention_secs: 3600,
            site: SiteRefresh {
                shared: shared_passkeys(PasskeySet::default()),
                interval: Duration::from_secs(3600),
                requested: Arc::default(),
                lock: ChangeLock::default(),
                passkeys_from_file: true,
                cache: None,
                cache_warning: RateLimitedWarning::new(SITE_CACHE_WARNING_INTERVAL),
            },
            rules: rules(),
            clock: UnixClock::at_start(ServerStartInstant::new(), T0),
            stats: Arc::new(PrivateStatistics::new(workers)),
        };
        (sender, outstanding, writer)
    }

    /// Hands `reports` over as worker `worker` does: once its previous hand-over is
    /// committed.
    fn hand_over(
        sender: &Sender<HandOver>,
        outstanding: &Outstanding,
        worker: usize,
        reports: Vec<PeerReport>,
    ) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while outstanding[worker].load(Ordering::Acquire) {
            assert!(
                Instant::now() < deadline,
                "the hand-over was never committed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        outstanding[worker].store(true, Ordering::Release);
        sender.send(HandOver { worker, reports }).unwrap();
    }

    fn uploaded(memory: &Arc<Mutex<MemoryDatabase>>) -> u64 {
        memory
            .lock()
            .unwrap()
            .credits
            .get(&UserTorrentKey {
                user: 7,
                info_hash: InfoHash([1; 20]),
            })
            .map_or(0, |row| row.uploaded)
    }

    #[test]
    fn a_batch_whose_reply_was_lost_is_applied_once() {
        let memory = Arc::new(Mutex::new(MemoryDatabase {
            failures: vec![Failure::Refuse, Failure::Lose, Failure::Refuse],
            ..MemoryDatabase::default()
        }));
        let (sender, outstanding, writer) = writer(&memory, 2);
        let stats = writer.stats.clone();
        let thread = std::thread::spawn(move || writer.run());
        hand_over(&sender, &outstanding, 0, vec![started(1, 100, T0)]);
        hand_over(&sender, &outstanding, 1, vec![started(2, 10, T0)]);
        drop(sender);
        thread.join().unwrap().unwrap();
        assert_eq!(uploaded(&memory), 110, "applied once");
        let m = memory.lock().unwrap();
        assert!(m.commits >= 4, "refused, lost, refused, then found applied");
        assert_eq!(stats.batches_already_applied.load(Ordering::Relaxed), 1);
        assert_eq!(stats.batches_failed.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_database_missing_at_start_is_opened_later_and_takes_what_waited() {
        let dir = crate::testing::temp_dir("writer-late-open");
        let path = dir.join("later").join("accounting.db");
        let memory = Arc::new(Mutex::new(MemoryDatabase::default()));
        let (sender, outstanding, mut writer) = writer(&memory, 1);
        writer.store = StoreSlot::Closed {
            url: format!("sqlite://{}", path.display()),
        };
        let stats = writer.stats.clone();
        let thread = std::thread::spawn(move || writer.run());
        hand_over(
            &sender,
            &Arc::clone(&outstanding),
            0,
            vec![started(1, 5, T0)],
        );
        // The directory is missing: opening fails, and the batch waits.
        let deadline = Instant::now() + Duration::from_secs(20);
        while stats.batches_failed.load(Ordering::Relaxed) < 2 {
            assert!(Instant::now() < deadline, "no failed attempt");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(stats.database_up.load(Ordering::Relaxed), 0);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        hand_over(&sender, &outstanding, 0, vec![started(2, 6, T0)]);
        drop(sender);
        thread.join().unwrap().unwrap();
        assert_eq!(stats.database_up.load(Ordering::Relaxed), 1);
        let db = rusqlite::Connection::open(&path).unwrap();
        let up: i64 = db
            .query_row("SELECT SUM(uploaded) FROM shoal_credits", [], |r| r.get(0))
            .unwrap();
        assert_eq!(up, 11);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A peer's report of two announces, at `from` (`up_from` bytes uploaded) and at
    /// `to` (`up_to`).
    fn span(from: u64, up_from: u64, to: u64, up_to: u64) -> PeerReport {
        let point = |at, uploaded| Point {
            at,
            uploaded: Some(uploaded),
            downloaded: Some(0),
            state: PeerState::Leeching,
            event: AnnounceEvent::None,
        };
        let mut report = PeerReport::new(key(1), point(from, up_from));
        report.merge(&point(to, up_to), &rules());
        report
    }

    #[test]
    fn stale_and_overlapping_reports_are_counted() {
        let memory = Arc::new(Mutex::new(MemoryDatabase::default()));
        let (sender, outstanding, writer) = writer(&memory, 1);
        let stats = writer.stats.clone();
        let thread = std::thread::spawn(move || writer.run());
        // The mark: the peer at T0 + 100, 100 bytes.
        hand_over(&sender, &outstanding, 0, vec![span(T0, 0, T0 + 100, 100)]);
        // Another tracker's report of T0 + 50 to T0 + 150: overlapping, 50 bytes beyond.
        hand_over(
            &sender,
            &outstanding,
            0,
            vec![span(T0 + 50, 50, T0 + 150, 150)],
        );
        // And one of T0 + 20 to T0 + 30: stale.
        hand_over(
            &sender,
            &outstanding,
            0,
            vec![span(T0 + 20, 20, T0 + 30, 30)],
        );
        drop(sender);
        thread.join().unwrap().unwrap();
        assert_eq!(uploaded(&memory), 150, "every byte once");
        assert_eq!(stats.reports_overlapping.load(Ordering::Relaxed), 1);
        assert_eq!(stats.reports_stale.load(Ordering::Relaxed), 1);
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.reports_stale, snapshot.reports_overlapping),
            (1, 1)
        );
    }

    #[test]
    fn every_workers_hand_over_goes_in_one_transaction() {
        let memory = Arc::new(Mutex::new(MemoryDatabase::default()));
        let (sender, outstanding, writer) = writer(&memory, 3);
        let thread = std::thread::spawn(move || writer.run());
        for worker in 0..3 {
            hand_over(
                &sender,
                &outstanding,
                worker,
                vec![started(worker as u8, 1, T0)],
            );
        }
        drop(sender);
        thread.join().unwrap().unwrap();
        assert_eq!(memory.lock().unwrap().commits, 1);
        assert_eq!(uploaded(&memory), 3);
    }

    #[test]
    fn a_batch_merges_a_peer_that_came_twice_older_first() {
        let mut later = started(1, 0, T0 + 60);
        later.first.event = AnnounceEvent::None;
        later.first.uploaded = Some(500);
        let batch = make_batch(
            BatchId([0; 16]),
            vec![later, started(1, 0, T0)],
            rules(),
            T0,
        );
        assert_eq!(batch.reports.len(), 1);
        let r = batch.reports[0];
        assert_eq!(r.first.at, T0);
        assert_eq!(r.last.at, T0 + 60);
        assert_eq!(r.middle.uploaded, 500);
        assert_eq!(r.middle.leech_seconds, 60);
    }

    #[test]
    fn a_backlog_goes_out_in_bounded_batches_each_once() {
        let memory = Arc::new(Mutex::new(MemoryDatabase::default()));
        let (sender, _outstanding, writer) = writer(&memory, 1);
        let thread = std::thread::spawn(move || writer.run());
        let n = MAX_BATCH_REPORTS * 2 + 10;
        let reports: Vec<PeerReport> = (0..n)
            .map(|i| {
                let mut r = started(0, 1, T0);
                r.key.peer_id.0[..8].copy_from_slice(&(i as u64).to_be_bytes());
                r
            })
            .collect();
        sender.send(HandOver { worker: 0, reports }).unwrap();
        drop(sender);
        thread.join().unwrap().unwrap();
        let m = memory.lock().unwrap();
        assert_eq!(m.commits, 3);
        assert_eq!(m.marks.len(), n);
        drop(m);
        assert_eq!(uploaded(&memory), n as u64);
    }

    fn nice_of(tid: libc::pid_t) -> i32 {
        // SAFETY: getpriority only reads its arguments.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) }
    }

    #[test]
    fn lower_priority_lowers_this_thread_only() {
        // SAFETY: gettid has no preconditions.
        let main = unsafe { libc::gettid() };
        let before = nice_of(main);
        let nice = std::thread::spawn(|| {
            lower_priority();
            // SAFETY: as above.
            nice_of(unsafe { libc::gettid() })
        })
        .join()
        .unwrap();
        // A nice value only goes up without privileges: at least ACCOUNTING_NICE.
        assert!(nice >= ACCOUNTING_NICE, "{nice}");
        assert_eq!(
            nice_of(main),
            before,
            "the calling thread's own priority is unchanged"
        );
    }
}
