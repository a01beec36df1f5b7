//! The `accounting` thread, and each request worker's side of it.
//!
//! Credit waits in the request workers' shards, merged in each peer's own state (see
//! [`AccountingShard`]). A worker hands the credit of at most [`MAX_BATCH_CREDITS`]
//! peers over every `flush_interval_secs`, or at its next check (each second) when some
//! of it is urgent, but only once the thread has committed its previous hand-over: a
//! worker has at most one hand-over outstanding. So the thread merges nothing, holds
//! at most one hand-over per worker, and a thread that is behind (a busy CPU, a slow or
//! absent database) costs the workers nothing: their credit keeps merging in place,
//! bounded by the number of peers, and announces are answered throughout.
//!
//! The thread commits what it holds as one [`Batch`] with a fresh id once every worker
//! with credit has handed over or the oldest hand-over has waited [`GATHER`]. A batch
//! whose commit fails is kept and retried, id and content unchanged, until the store
//! says it is applied (now, or by an earlier attempt whose reply was lost).
//!
//! When passkeys come from the database, the thread also re-reads `shoal_passkeys`
//! every `refresh_secs` and when asked (SIGUSR1), and it deletes baselines older than
//! the retention once an hour.
//!
//! At shutdown the request workers hand over everything and drop their senders; the
//! thread then commits what it holds, retrying for a bounded time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Cache};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use hashbrown::HashMap;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::observe::statistics::{RateLimitedWarning, unix_now_secs};
use crate::private::accounting::{AccountAnnounce, AccountingShard, AnnounceOutcome, PeerCredit};
use crate::private::passkey::Passkey;
use crate::private::passkey::{PasskeySet, SharedPasskeys};
use crate::private::stats::PrivateStatistics;
use crate::private::store::{AccountingStore, Batch, BatchId, CommitOutcome, UserTorrentCredit};
use crate::time::{SecondsSinceServerStart, ServerStartInstant};
use crate::types::InfoHash;

/// How often a request worker checks whether to hand credit over.
pub const HAND_OVER_CHECK: Duration = Duration::from_secs(1);
/// Hand-overs the channel holds per request worker: the one outstanding, and the last
/// one a stopping worker sends.
pub const CHANNEL_ROUNDS: usize = 2;
/// How long the thread keeps retrying its last commit at shutdown.
pub const FINAL_COMMIT_DEADLINE: Duration = Duration::from_secs(20);
/// The most peers' credit one batch (one transaction) holds, and one hand-over but a
/// stopping worker's last (which the thread then commits batch after batch).
pub const MAX_BATCH_CREDITS: usize = 100_000;
/// How long the thread waits, after the first hand-over arrives, for the other
/// workers' before it commits: the workers' flush times are aligned, so that one
/// transaction usually takes them all.
pub const GATHER: Duration = Duration::from_secs(1);
/// A worker whose hand-over has been outstanding this long says so in the log.
const OUTSTANDING_WARNING_AFTER: Duration = Duration::from_secs(60);
/// Time between deletions of expired baselines.
const FORGET_INTERVAL: Duration = Duration::from_secs(3600);

/// One request worker's pending credit, handed to the `accounting` thread.
#[derive(Debug)]
pub struct HandOver {
    /// The request worker's index.
    pub worker: usize,
    /// The credit, each peer once.
    pub credits: Vec<PeerCredit>,
}

/// Per request worker: whether the `accounting` thread holds a hand-over of it not yet
/// committed. Set by the worker as it hands over, cleared by the thread once the
/// hand-over's last credit is committed.
pub type Outstanding = Arc<[AtomicBool]>;

/// The outstanding flags of `workers` request workers, all clear.
pub fn outstanding_flags(workers: usize) -> Outstanding {
    (0..workers).map(|_| AtomicBool::new(false)).collect()
}

/// A request worker's accounting: its shard, the clock, and the channel to the
/// `accounting` thread.
pub struct AccountingDuty {
    /// The accounting of the worker's torrents.
    pub shard: AccountingShard,
    passkeys: Cache<SharedPasskeys, Arc<PasskeySet>>,
    sender: Sender<HandOver>,
    outstanding: Outstanding,
    /// Unix seconds at the server's start: `now` in Unix seconds is this plus
    /// [`SecondsSinceServerStart`].
    unix_at_start: u64,
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

impl AccountingDuty {
    /// The duty of request worker `index`; its flush times are `epoch` plus whole
    /// multiples of `flush_interval`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        shard: AccountingShard,
        passkeys: SharedPasskeys,
        sender: Sender<HandOver>,
        outstanding: Outstanding,
        epoch: Instant,
        flush_interval: Duration,
        start: ServerStartInstant,
        stats: Arc<PrivateStatistics>,
    ) -> Self {
        let elapsed = u64::from(start.seconds_elapsed().0);
        let now = Instant::now();
        let flush_interval = flush_interval.max(Duration::from_millis(1));
        Self {
            shard,
            passkeys: Cache::new(passkeys),
            sender,
            outstanding,
            unix_at_start: unix_now_secs().saturating_sub(elapsed),
            epoch,
            flush_interval,
            check_interval: HAND_OVER_CHECK,
            next_check: now + HAND_OVER_CHECK,
            next_flush: next_multiple(epoch, flush_interval, now),
            handed_over_at: now,
            stats,
            index,
            behind_warning: RateLimitedWarning::new(OUTSTANDING_WARNING_AFTER),
        }
    }

    /// `now` in Unix seconds.
    pub fn unix(&self, now: SecondsSinceServerStart) -> u64 {
        self.unix_at_start.saturating_add(u64::from(now.0))
    }

    /// Applies an accepted announce.
    pub fn announce(
        &mut self,
        announce: &AccountAnnounce,
        now: SecondsSinceServerStart,
    ) -> AnnounceOutcome {
        let unix = self.unix(now);
        let passkeys = &mut self.passkeys;
        self.shard.announce(announce, unix, || {
            passkeys.load().peer_count(&announce.passkey).map(|c| &**c)
        })
    }

    /// Removes the baselines older than the retention; the request worker calls it
    /// with its swarm's cleaning, on the same schedule.
    pub fn clean(&mut self, now: SecondsSinceServerStart) {
        let unix = self.unix(now);
        let passkeys = Arc::clone(self.passkeys.load());
        self.shard
            .clean(unix, |key| passkeys.peer_count(key).map(|c| &**c));
    }

    fn flag(&self) -> Option<&AtomicBool> {
        self.outstanding.get(self.index)
    }

    /// Hands pending credit over when due and publishes the gauges. Called by the
    /// request worker's loop.
    pub fn tick(&mut self) {
        let instant = Instant::now();
        if instant < self.next_check {
            return;
        }
        self.next_check = instant + self.check_interval;
        let due = instant >= self.next_flush || self.shard.has_urgent();
        if due && self.shard.num_pending() > 0 {
            if self.flag().is_some_and(|f| f.load(Ordering::Acquire)) {
                if instant.duration_since(self.handed_over_at) >= OUTSTANDING_WARNING_AFTER
                    && let Some(held_back) = self.behind_warning.check(instant)
                {
                    log::warn!(
                        "request-{:02}: the accounting thread has not committed this worker's \
                         last credit for {} s (the database is slow or down, or the CPU \
                         busy); {} peers' credit waits here ({held_back} more times since \
                         the last warning)",
                        self.index + 1,
                        instant.duration_since(self.handed_over_at).as_secs(),
                        self.shard.num_pending()
                    );
                }
            } else {
                self.hand_over(instant);
            }
        }
        if let Some(gauges) = self.stats.shard(self.index) {
            let set = |g: &std::sync::atomic::AtomicU64, v: u64| g.store(v, Ordering::Relaxed);
            set(&gauges.peers, self.shard.num_peers() as u64);
            set(&gauges.pending, self.shard.num_pending() as u64);
            set(&gauges.flagged, self.shard.num_flagged());
            set(&gauges.over_limit, self.shard.num_over_limit());
        }
    }

    fn hand_over(&mut self, instant: Instant) {
        let mut credits = Vec::new();
        if self.shard.take_pending(&mut credits, MAX_BATCH_CREDITS) == 0 {
            return;
        }
        self.next_flush = next_multiple(self.epoch, self.flush_interval, instant);
        self.handed_over_at = instant;
        if let Some(flag) = self.flag() {
            flag.store(true, Ordering::Release);
        }
        let hand_over = HandOver {
            worker: self.index,
            credits,
        };
        match self.sender.try_send(hand_over) {
            Ok(()) => {}
            // Neither happens while the thread runs (the channel has room for every
            // worker's outstanding hand-over); the credit stays here either way.
            Err(TrySendError::Full(back) | TrySendError::Disconnected(back)) => {
                if let Some(flag) = self.flag() {
                    flag.store(false, Ordering::Release);
                }
                self.shard.put_back(back.credits);
            }
        }
    }

    /// Hands everything over as the worker stops (see [`AccountingShard::take_all`]),
    /// waiting a little for room.
    pub fn finish(&mut self) {
        let mut credits = Vec::new();
        if self.shard.take_all(&mut credits) == 0 {
            return;
        }
        let hand_over = HandOver {
            worker: self.index,
            credits,
        };
        if self
            .sender
            .send_timeout(hand_over, Duration::from_secs(2))
            .is_err()
        {
            log::warn!(
                "request-{:02}: the accounting thread took no last credit; it is recovered \
                 from the committed baselines at the peers' next announces",
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

/// Where the thread's passkeys come from, when it reads them.
pub struct PasskeyRefresh {
    /// The set in force.
    pub shared: SharedPasskeys,
    /// Time between reads of `shoal_passkeys`.
    pub interval: Duration,
    /// Set by SIGUSR1: read now.
    pub requested: Arc<AtomicBool>,
}

/// The `accounting` thread.
pub struct AccountingWriter {
    /// The database.
    pub store: Box<dyn AccountingStore>,
    /// Credit from the request workers; disconnected once they all stopped.
    pub receiver: Receiver<HandOver>,
    /// The request workers' outstanding flags, cleared here.
    pub outstanding: Outstanding,
    /// Time between retries of a batch that failed.
    pub flush_interval: Duration,
    /// Baselines older than this many seconds are deleted.
    pub retention_secs: u64,
    /// Passkeys from the database, if that is where they come from.
    pub passkeys: Option<PasskeyRefresh>,
    /// The counters.
    pub stats: Arc<PrivateStatistics>,
}

/// A batch being committed.
struct InFlight {
    batch: Batch,
    /// Peer credits it holds.
    credits: usize,
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

    /// Peer credits queued.
    fn queued(&self) -> usize {
        self.queue.iter().map(|(_, h)| h.credits.len()).sum()
    }

    /// Peer credits held, queued or in flight.
    fn held(&self) -> usize {
        self.queued() + self.in_flight.as_ref().map_or(0, |f| f.credits)
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
        self.queued() >= MAX_BATCH_CREDITS
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

    /// Makes the next batch of at most [`MAX_BATCH_CREDITS`] peer credits from the
    /// queue, oldest first, unless one is in flight.
    fn take_batch(&mut self) {
        if self.in_flight.is_some() || self.queue.is_empty() {
            return;
        }
        let mut credits: Vec<PeerCredit> = Vec::new();
        let mut completes = Vec::new();
        while credits.len() < MAX_BATCH_CREDITS {
            let room = MAX_BATCH_CREDITS - credits.len();
            let Some((_, front)) = self.queue.front_mut() else {
                break;
            };
            if front.credits.len() > room {
                // A hand-over holds each peer once, in no particular order: its tail
                // goes, without moving the rest.
                let at = front.credits.len() - room;
                credits.extend(front.credits.split_off(at));
                break;
            }
            if let Some((_, whole)) = self.queue.pop_front() {
                if credits.is_empty() {
                    credits = whole.credits;
                } else {
                    credits.extend(whole.credits);
                }
                completes.push(whole.worker);
            }
        }
        let mut id = [0u8; 16];
        self.rng.fill_bytes(&mut id);
        self.in_flight = Some(InFlight {
            batch: make_batch(BatchId(id), &credits, unix_now_secs()),
            credits: credits.len(),
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
        let mut next_refresh = self.passkeys.as_ref().map(|p| Instant::now() + p.interval);
        let mut next_forget = Instant::now();
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
            if let Some(refresh) = &self.passkeys {
                let requested = refresh.requested.swap(false, Ordering::Relaxed);
                if requested || next_refresh.is_some_and(|due| now >= due) {
                    self.refresh_passkeys();
                    next_refresh = self.passkeys.as_ref().map(|p| Instant::now() + p.interval);
                }
            }
            if now >= next_forget {
                let before = unix_now_secs().saturating_sub(self.retention_secs);
                match self.store.forget_before(before) {
                    Ok(n) if n > 0 => log::info!("accounting: forgot {n} expired baselines"),
                    Ok(_) => {}
                    Err(err) => log::warn!("accounting: deleting expired baselines: {err:#}"),
                }
                next_forget = now + FORGET_INTERVAL;
            }
        }
        // Every request worker has stopped and handed its credit over.
        let deadline = Instant::now() + FINAL_COMMIT_DEADLINE;
        while state.in_flight.is_some() || !state.queue.is_empty() {
            let committed = self.flush(&mut state);
            if Instant::now() >= deadline {
                log::error!(
                    "accounting: the database took no last batch; {} peers' credit is \
                     recovered from the committed baselines at their next announces",
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

    /// Commits the batch in flight, or makes one of the queued credit and commits it.
    /// Whether it was committed.
    fn flush(&mut self, state: &mut WriterState) -> bool {
        state.take_batch();
        let Some(in_flight) = &state.in_flight else {
            return false;
        };
        let batch = &in_flight.batch;
        let peer_credits = in_flight.credits;
        let began = Instant::now();
        match self.store.commit(batch) {
            Ok(outcome) => {
                let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                let counter = match outcome {
                    CommitOutcome::Applied => &self.stats.batches_committed,
                    CommitOutcome::AlreadyApplied => &self.stats.batches_already_applied,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .credits_committed
                    .fetch_add(peer_credits as u64, Ordering::Relaxed);
                self.stats
                    .flush_micros_total
                    .fetch_add(micros, Ordering::Relaxed);
                self.stats
                    .last_flush_micros
                    .store(micros, Ordering::Relaxed);
                self.stats
                    .last_commit_unix_secs
                    .store(unix_now_secs(), Ordering::Relaxed);
                self.stats
                    .commit_failures_in_a_row
                    .store(0, Ordering::Relaxed);
                log::debug!(
                    "accounting: batch {} {:?}: {} peers' credit, {} user torrents, {} \
                     baselines, {} ms",
                    batch.id.to_hex(),
                    outcome,
                    peer_credits,
                    batch.credits.len(),
                    batch.baselines.len(),
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
                self.stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .commit_failures_in_a_row
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(held_back) = state.failure_warning.check(Instant::now()) {
                    log::error!(
                        "accounting: batch {} of {} peers not committed, will retry it: {err:#} \
                         ({held_back} more failures since the last message)",
                        batch.id.to_hex(),
                        peer_credits
                    );
                }
                state.retry_at = Instant::now() + self.flush_interval;
                false
            }
        }
    }

    fn refresh_passkeys(&mut self) {
        let Some(refresh) = &self.passkeys else {
            return;
        };
        match self.store.load_passkeys() {
            Ok(keys) => {
                let set = PasskeySet::new(keys).carry_over(&refresh.shared.load());
                let len = set.len();
                refresh.shared.store(Arc::new(set));
                self.stats
                    .passkeys_loaded
                    .store(len as u64, Ordering::Relaxed);
                log::debug!("accounting: {len} passkeys loaded from shoal_passkeys");
            }
            Err(err) => log::warn!(
                "accounting: reading shoal_passkeys failed, keeping the passkeys in force: \
                 {err:#}"
            ),
        }
    }
}

/// The nice value of the `accounting` thread.
pub const ACCOUNTING_NICE: i32 = 10;

/// Lowers this thread's scheduling priority to [`ACCOUNTING_NICE`]: when the CPU is
/// short, announces come first and the credit waits (merged per peer, so bounded),
/// rather than every announce waiting for the database. On Linux a nice value is per
/// thread.
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

/// A batch of peer credits: summed per (passkey, info hash), with every peer's baseline.
pub fn make_batch(id: BatchId, credits: &[PeerCredit], created_at: u64) -> Batch {
    let mut sums: HashMap<(Passkey, InfoHash), UserTorrentCredit> = HashMap::new();
    for c in credits {
        let b = &c.baseline;
        let entry = sums
            .entry((b.passkey, b.info_hash))
            .or_insert(UserTorrentCredit {
                passkey: b.passkey,
                info_hash: b.info_hash,
                uploaded: 0,
                downloaded: 0,
                seed_seconds: 0,
                leech_seconds: 0,
                completed_at: None,
                first_announce: c.first_announce,
                last_announce: b.last_announce,
                flagged_announces: 0,
            });
        entry.uploaded = entry.uploaded.saturating_add(c.uploaded);
        entry.downloaded = entry.downloaded.saturating_add(c.downloaded);
        entry.seed_seconds = entry.seed_seconds.saturating_add(c.seed_seconds);
        entry.leech_seconds = entry.leech_seconds.saturating_add(c.leech_seconds);
        entry.completed_at = match (entry.completed_at, c.completed_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        entry.first_announce = entry.first_announce.min(c.first_announce);
        entry.last_announce = entry.last_announce.max(b.last_announce);
        entry.flagged_announces = entry.flagged_announces.saturating_add(c.flagged_announces);
    }
    // In key order: both databases then walk their primary-key B-trees in order.
    let mut rows: Vec<UserTorrentCredit> = sums.into_values().collect();
    rows.sort_unstable_by_key(|a| (a.passkey, a.info_hash));
    let mut baselines: Vec<_> = credits
        .iter()
        .filter(|c| c.baseline_changed)
        .map(|c| c.baseline)
        .collect();
    // A peer may come twice (a stopping worker's last hand-over after its outstanding
    // one): the later baseline is the one to write. A stable sort keeps the order of
    // arrival within a peer; reversed, the dedup keeps the latest.
    baselines.sort_by_key(|b| (b.passkey, b.info_hash, b.peer_id));
    baselines.reverse();
    baselines.dedup_by_key(|b| (b.passkey, b.info_hash, b.peer_id));
    baselines.reverse();
    Batch {
        id,
        credits: rows,
        baselines,
        created_at,
    }
}

/// Makes the shared passkeys of a loaded set.
pub fn shared_passkeys(set: PasskeySet) -> SharedPasskeys {
    Arc::new(ArcSwap::from_pointee(set))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;
    use crate::private::accounting::{AccountingBudget, AccountingRules};
    use crate::private::store::PeerBaseline;
    use crate::types::{AnnounceEvent, PeerId};

    type PeerKey = (InfoHash, Passkey, PeerId);

    /// A store in memory that fails as told: `Lose` applies the batch and then reports
    /// an error (a commit whose reply was lost), `Refuse` applies nothing and errors.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Failure {
        Lose,
        Refuse,
    }

    #[derive(Default)]
    struct Memory {
        applied: HashSet<BatchId>,
        uploaded: HashMap<(Passkey, InfoHash), u64>,
        baselines: HashMap<PeerKey, PeerBaseline>,
        failures: Vec<Failure>,
        commits: usize,
    }

    struct MemoryStore(Arc<Mutex<Memory>>);

    impl AccountingStore for MemoryStore {
        fn load_baselines(
            &mut self,
            _since: u64,
            _sink: &mut dyn FnMut(PeerBaseline),
        ) -> anyhow::Result<()> {
            Ok(())
        }
        fn load_passkeys(&mut self) -> anyhow::Result<Vec<Passkey>> {
            Ok(Vec::new())
        }
        fn commit(&mut self, batch: &Batch) -> anyhow::Result<CommitOutcome> {
            let mut m = self.0.lock().unwrap();
            m.commits += 1;
            let failure = if m.failures.is_empty() {
                None
            } else {
                Some(m.failures.remove(0))
            };
            if failure == Some(Failure::Refuse) {
                anyhow::bail!("connection refused");
            }
            let outcome = if m.applied.insert(batch.id) {
                for c in &batch.credits {
                    *m.uploaded.entry((c.passkey, c.info_hash)).or_default() += c.uploaded;
                }
                for b in &batch.baselines {
                    m.baselines.insert((b.info_hash, b.passkey, b.peer_id), *b);
                }
                CommitOutcome::Applied
            } else {
                CommitOutcome::AlreadyApplied
            };
            if failure == Some(Failure::Lose) {
                anyhow::bail!("connection reset after commit");
            }
            Ok(outcome)
        }
        fn forget_before(&mut self, _before: u64) -> anyhow::Result<u64> {
            Ok(0)
        }
    }

    fn credit(peer: u8, uploaded: u64, baseline: u64) -> PeerCredit {
        PeerCredit {
            baseline: PeerBaseline {
                passkey: Passkey([b'k'; 32]),
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([peer; 20]),
                uploaded: baseline,
                downloaded: 0,
                last_announce: 100,
                seeding: false,
            },
            uploaded,
            downloaded: 0,
            seed_seconds: 0,
            leech_seconds: 0,
            completed_at: None,
            first_announce: 100,
            flagged_announces: 0,
            urgent: false,
            baseline_changed: true,
        }
    }

    fn writer(
        memory: &Arc<Mutex<Memory>>,
        workers: usize,
    ) -> (Sender<HandOver>, Outstanding, AccountingWriter) {
        let (sender, receiver) = crossbeam_channel::bounded(workers * CHANNEL_ROUNDS);
        let outstanding = outstanding_flags(workers);
        let writer = AccountingWriter {
            store: Box::new(MemoryStore(memory.clone())),
            receiver,
            outstanding: outstanding.clone(),
            flush_interval: Duration::from_millis(20),
            retention_secs: 3600,
            passkeys: None,
            stats: Arc::new(PrivateStatistics::new(workers)),
        };
        (sender, outstanding, writer)
    }

    /// Hands `credits` over as worker `worker` does: once its previous hand-over is
    /// committed.
    fn hand_over(
        sender: &Sender<HandOver>,
        outstanding: &Outstanding,
        worker: usize,
        credits: Vec<PeerCredit>,
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
        sender.send(HandOver { worker, credits }).unwrap();
    }

    #[test]
    fn a_batch_whose_reply_was_lost_is_applied_once() {
        let memory = Arc::new(Mutex::new(Memory {
            failures: vec![Failure::Refuse, Failure::Lose, Failure::Refuse],
            ..Memory::default()
        }));
        let (sender, outstanding, writer) = writer(&memory, 2);
        let stats = writer.stats.clone();
        let thread = std::thread::spawn(move || writer.run());
        hand_over(
            &sender,
            &outstanding,
            0,
            vec![credit(1, 100, 100), credit(2, 50, 50)],
        );
        // Worker 0's next hand-over waits until the first is applied; worker 1's goes
        // in meanwhile.
        hand_over(&sender, &outstanding, 1, vec![credit(3, 4, 4)]);
        hand_over(&sender, &outstanding, 0, vec![credit(1, 7, 107)]);
        hand_over(&sender, &outstanding, 0, vec![credit(2, 3, 53)]);
        drop(sender);
        thread.join().unwrap().unwrap();
        assert!(outstanding.iter().all(|f| !f.load(Ordering::Acquire)));
        let m = memory.lock().unwrap();
        let key = (Passkey([b'k'; 32]), InfoHash([1; 20]));
        assert_eq!(m.uploaded[&key], 164, "every credit once");
        let peer = |p: u8| m.baselines[&(InfoHash([1; 20]), Passkey([b'k'; 32]), PeerId([p; 20]))];
        assert_eq!(peer(1).uploaded, 107);
        assert_eq!(peer(2).uploaded, 53);
        let s = stats.snapshot();
        assert_eq!(s.batches_failed, 3);
        assert_eq!(s.batches_already_applied, 1, "the lost reply's retry");
        assert!(s.batches_committed >= 1);
    }

    /// What `/health` reads: failures count up until a commit works, which resets them.
    #[test]
    fn failures_in_a_row_count_until_a_commit_works() {
        let memory = Arc::new(Mutex::new(Memory {
            failures: vec![Failure::Refuse, Failure::Refuse],
            ..Memory::default()
        }));
        let (_sender, _outstanding, mut writer) = writer(&memory, 1);
        let mut state = WriterState::new(StdRng::seed_from_u64(1));
        state.push(HandOver {
            worker: 0,
            credits: vec![credit(1, 1, 1)],
        });
        let in_a_row = |w: &AccountingWriter| w.stats.snapshot().commit_failures_in_a_row;
        assert_eq!(in_a_row(&writer), 0);
        assert!(!writer.flush(&mut state));
        assert_eq!(in_a_row(&writer), 1);
        assert!(!writer.flush(&mut state));
        assert_eq!(in_a_row(&writer), 2);
        assert!(writer.flush(&mut state));
        assert_eq!(in_a_row(&writer), 0);
        assert_eq!(writer.stats.snapshot().batches_failed, 2);
    }

    #[test]
    fn every_workers_hand_over_goes_in_one_transaction() {
        let memory = Arc::new(Mutex::new(Memory::default()));
        let (sender, outstanding, writer) = writer(&memory, 2);
        hand_over(&sender, &outstanding, 0, vec![credit(1, 1, 1)]);
        hand_over(&sender, &outstanding, 1, vec![credit(2, 1, 1)]);
        drop(sender);
        writer.run().unwrap();
        let m = memory.lock().unwrap();
        assert_eq!(m.commits, 1);
        assert_eq!(m.baselines.len(), 2);
    }

    fn rules() -> AccountingRules {
        AccountingRules {
            interval_secs: 1800,
            grace_secs: 300,
            retention_secs: 3600,
            flag_upload_bytes_per_sec: 0,
            max_peers: 100,
            max_peers_per_passkey: 100,
        }
    }

    #[test]
    fn a_worker_keeps_its_credit_while_its_hand_over_is_outstanding() {
        let key = Passkey([b'k'; 32]);
        let passkeys = shared_passkeys(PasskeySet::new(vec![key]));
        let (sender, receiver) = crossbeam_channel::bounded(CHANNEL_ROUNDS);
        let outstanding = outstanding_flags(1);
        let mut duty = AccountingDuty::new(
            0,
            AccountingShard::new(rules(), Arc::new(AccountingBudget::default())),
            passkeys,
            sender,
            outstanding.clone(),
            Instant::now(),
            Duration::from_secs(3600),
            ServerStartInstant::new(),
            Arc::new(PrivateStatistics::new(1)),
        );
        duty.check_interval = Duration::ZERO;
        duty.next_check = Instant::now();
        let announce = |peer: u8, uploaded: u64| AccountAnnounce {
            passkey: key,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([peer; 20]),
            uploaded,
            downloaded: 0,
            left: 1,
            event: AnnounceEvent::Started,
        };
        let now = SecondsSinceServerStart(0);
        duty.announce(&announce(1, 10), now);
        duty.tick();
        let first = receiver.try_recv().expect("a new peer's credit is urgent");
        assert_eq!(first.credits.len(), 1);
        assert!(outstanding[0].load(Ordering::Acquire));
        // While that is outstanding, new credit, urgent or not, stays in the shard.
        duty.announce(&announce(2, 20), now);
        duty.announce(&announce(3, 30), now);
        duty.tick();
        assert!(
            receiver.try_recv().is_err(),
            "one hand-over outstanding at most"
        );
        assert_eq!(duty.shard.num_pending(), 2);
        // Committed: the next check hands the rest over.
        outstanding[0].store(false, Ordering::Release);
        duty.tick();
        let second = receiver
            .try_recv()
            .expect("handed over once the first is done");
        let mut uploaded: Vec<u64> = second.credits.iter().map(|c| c.uploaded).collect();
        uploaded.sort_unstable();
        assert_eq!(uploaded, [20, 30]);
        assert_eq!(duty.shard.num_pending(), 0);
    }

    /// The nice value of thread `tid`.
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

    #[test]
    fn a_batch_sums_per_user_torrent_and_keeps_each_peers_latest_baseline() {
        // Peer 1 twice (an outstanding hand-over and a stopping worker's last one).
        let credits = [credit(1, 10, 10), credit(2, 5, 5), credit(1, 3, 13)];
        let batch = make_batch(BatchId([0; 16]), &credits, 5);
        assert_eq!(batch.credits.len(), 1, "one row per (passkey, info hash)");
        assert_eq!(batch.credits[0].uploaded, 18);
        assert_eq!(batch.baselines.len(), 2, "one baseline per peer");
        let of = |p: u8| {
            batch
                .baselines
                .iter()
                .find(|b| b.peer_id == PeerId([p; 20]))
                .unwrap()
                .uploaded
        };
        assert_eq!(of(1), 13, "the later baseline");
        assert_eq!(of(2), 5);
    }

    #[test]
    fn a_backlog_goes_out_in_bounded_batches_each_once() {
        let memory = Arc::new(Mutex::new(Memory::default()));
        let (sender, _outstanding, writer) = writer(&memory, 1);
        let peers = MAX_BATCH_CREDITS * 2 + 10;
        let thread = std::thread::spawn(move || writer.run());
        let credits: Vec<PeerCredit> = (0..peers)
            .map(|i| {
                let mut c = credit(0, 1, 1);
                c.baseline.peer_id.0[..8].copy_from_slice(&(i as u64).to_le_bytes());
                c
            })
            .collect();
        // A stopping worker's last hand-over may hold more than one batch.
        sender.send(HandOver { worker: 0, credits }).unwrap();
        drop(sender);
        thread.join().unwrap().unwrap();
        let m = memory.lock().unwrap();
        assert_eq!(m.commits, 3, "three batches of at most MAX_BATCH_CREDITS");
        assert_eq!(m.baselines.len(), peers);
        assert_eq!(
            m.uploaded[&(Passkey([b'k'; 32]), InfoHash([1; 20]))],
            peers as u64
        );
    }
}
