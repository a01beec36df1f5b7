//! The `accounting` thread, and each request worker's side of it.
//!
//! Request workers hand their shards' pending credit over about once a second
//! ([`AccountingDuty::tick`]) on a bounded channel; credit that does not fit goes back
//! to the shard, merged per peer, to go with the next hand-over. The thread merges what arrives
//! per peer, and every `flush_interval_secs` commits it as one [`Batch`] with a fresh id.
//! A batch whose commit fails is kept and retried, id and content unchanged, until the
//! store says it is applied (now, or by an earlier attempt whose reply was lost); new
//! credit meanwhile keeps merging per peer. So what waits is bounded by the number of
//! peers (at most the in-flight batch, the merged credit and what the channel holds),
//! and announces are answered throughout.
//!
//! When passkeys come from the database, the thread also re-reads `shoal_passkeys`
//! every `refresh_secs` and when asked (SIGUSR1), and it deletes baselines older than
//! the retention once an hour.
//!
//! At shutdown the request workers hand over everything and drop their senders; the
//! thread then commits what it holds, retrying for a bounded time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Cache};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use hashbrown::HashMap;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::private::accounting::{AccountAnnounce, AccountingShard, AnnounceOutcome, PeerCredit};
use crate::private::passkey::Passkey;
use crate::private::passkey::{PasskeySet, SharedPasskeys};
use crate::private::stats::PrivateStatistics;
use crate::private::store::{AccountingStore, Batch, BatchId, CommitOutcome, UserTorrentCredit};
use crate::statistics::{RateLimitedWarning, unix_now_secs};
use crate::time::{SecondsSinceServerStart, ServerStartInstant};
use crate::types::{InfoHash, PeerId};

/// How often a request worker hands its pending credit over.
pub const HAND_OVER_INTERVAL: Duration = Duration::from_secs(1);
/// Hand-overs the channel holds per request worker before a worker keeps its credit.
pub const CHANNEL_ROUNDS: usize = 4;
/// How long the thread keeps retrying its last commit at shutdown.
pub const FINAL_COMMIT_DEADLINE: Duration = Duration::from_secs(20);
/// The most peers' credit one batch (one transaction) holds.
pub const MAX_BATCH_CREDITS: usize = 100_000;
/// The least time between two batches when urgent credit forces one.
const URGENT_MIN_GAP: Duration = Duration::from_secs(1);
/// Time between deletions of expired baselines.
const FORGET_INTERVAL: Duration = Duration::from_secs(3600);

/// A request worker's accounting: its shard, the clock, and the channel to the
/// `accounting` thread.
pub struct AccountingDuty {
    /// The accounting of the worker's torrents.
    pub shard: AccountingShard,
    passkeys: Cache<SharedPasskeys, Arc<PasskeySet>>,
    sender: Sender<Vec<PeerCredit>>,
    /// Unix seconds at the server's start: `now` in Unix seconds is this plus
    /// [`SecondsSinceServerStart`].
    unix_at_start: u64,
    next_hand_over: Instant,
    stats: Arc<PrivateStatistics>,
    index: usize,
    full_warning: RateLimitedWarning,
}

impl AccountingDuty {
    /// The duty of request worker `index`.
    pub fn new(
        index: usize,
        shard: AccountingShard,
        passkeys: SharedPasskeys,
        sender: Sender<Vec<PeerCredit>>,
        start: ServerStartInstant,
        stats: Arc<PrivateStatistics>,
    ) -> Self {
        let elapsed = u64::from(start.seconds_elapsed().0);
        Self {
            shard,
            passkeys: Cache::new(passkeys),
            sender,
            unix_at_start: unix_now_secs().saturating_sub(elapsed),
            next_hand_over: Instant::now() + HAND_OVER_INTERVAL,
            stats,
            index,
            full_warning: RateLimitedWarning::new(Duration::from_secs(10)),
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

    /// Hands pending credit over when due and publishes the gauges. Called by the
    /// request worker's loop.
    pub fn tick(&mut self) {
        let instant = Instant::now();
        if instant >= self.next_hand_over {
            self.hand_over();
            self.next_hand_over = instant + HAND_OVER_INTERVAL;
        }
        if let Some(gauges) = self.stats.shard(self.index) {
            let set = |g: &std::sync::atomic::AtomicU64, v: u64| g.store(v, Ordering::Relaxed);
            set(&gauges.peers, self.shard.num_peers() as u64);
            set(&gauges.pending, self.shard.num_pending() as u64);
            set(&gauges.flagged, self.shard.num_flagged());
            set(&gauges.over_limit, self.shard.num_over_limit());
        }
    }

    fn hand_over(&mut self) {
        let mut credits = Vec::new();
        if self.shard.take_pending(&mut credits) == 0 {
            return;
        }
        match self.sender.try_send(credits) {
            Ok(()) => {}
            Err(TrySendError::Full(credits)) => {
                if let Some(held_back) = self.full_warning.check(Instant::now()) {
                    log::warn!(
                        "request-{:02}: the accounting thread is behind (the database is slow \
                         or down); keeping {} peers' credit ({held_back} more times since the \
                         last warning)",
                        self.index + 1,
                        credits.len()
                    );
                }
                self.shard.put_back(credits);
            }
            Err(TrySendError::Disconnected(credits)) => self.shard.put_back(credits),
        }
    }

    /// Hands everything over as the worker stops (see [`AccountingShard::take_all`]),
    /// waiting a little for room.
    pub fn finish(&mut self) {
        let mut credits = Vec::new();
        if self.shard.take_all(&mut credits) == 0 {
            return;
        }
        if self
            .sender
            .send_timeout(credits, Duration::from_secs(2))
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

/// The key of a peer's credit in the thread's merge.
type PeerKey = (InfoHash, Passkey, PeerId);

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
    pub receiver: Receiver<Vec<PeerCredit>>,
    /// Time between batches.
    pub flush_interval: Duration,
    /// Baselines older than this many seconds are deleted.
    pub retention_secs: u64,
    /// Passkeys from the database, if that is where they come from.
    pub passkeys: Option<PasskeyRefresh>,
    /// The counters.
    pub stats: Arc<PrivateStatistics>,
}

/// The thread's working state.
struct WriterState {
    pending: HashMap<PeerKey, PeerCredit>,
    /// The batch being committed, with the number of peer credits it holds.
    in_flight: Option<(Batch, usize)>,
    rng: StdRng,
    failure_warning: RateLimitedWarning,
}

impl AccountingWriter {
    /// Runs until every request worker has stopped, then commits what it holds.
    ///
    /// # Errors
    /// Never: database errors are retried and logged. (The signature is the
    /// supervisor's.)
    pub fn run(mut self) -> anyhow::Result<()> {
        lower_priority();
        let mut state = WriterState {
            pending: HashMap::new(),
            in_flight: None,
            rng: StdRng::from_os_rng(),
            failure_warning: RateLimitedWarning::new(Duration::from_secs(30)),
        };
        let mut next_flush = Instant::now() + self.flush_interval;
        let mut next_refresh = self.passkeys.as_ref().map(|p| Instant::now() + p.interval);
        let mut next_forget = Instant::now();
        let mut last_flush = Instant::now();
        loop {
            // Wake at least once a second, for a SIGUSR1 reload.
            let wake = next_flush.min(Instant::now() + Duration::from_secs(1));
            let mut urgent = false;
            match self.receiver.recv_deadline(wake) {
                Ok(credits) => urgent |= state.merge(credits),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Drain what else is there without waiting.
            while let Ok(credits) = self.receiver.try_recv() {
                urgent |= state.merge(credits);
            }
            // Credit that a crash would lose for good goes out at once, at most one
            // batch a second; the rest waits for the interval.
            if urgent && state.in_flight.is_none() && last_flush.elapsed() >= URGENT_MIN_GAP {
                next_flush = Instant::now();
            }
            self.stats
                .writer_pending
                .store(state.pending.len() as u64, Ordering::Relaxed);
            let now = Instant::now();
            if now >= next_flush {
                self.flush(&mut state);
                last_flush = Instant::now();
                next_flush = last_flush + self.flush_interval;
                // A backlog beyond one batch (after a burst or an outage) goes out batch
                // after batch, not one per interval.
                if state.in_flight.is_none() && state.pending.len() >= MAX_BATCH_CREDITS {
                    next_flush = last_flush;
                }
            }
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
        while state.in_flight.is_some() || !state.pending.is_empty() {
            self.flush(&mut state);
            if Instant::now() >= deadline {
                log::error!(
                    "accounting: the database took no last batch; {} peers' credit is \
                     recovered from the committed baselines at their next announces",
                    state.pending.len() + state.in_flight.as_ref().map_or(0, |(_, n)| *n)
                );
                break;
            }
            if state.in_flight.is_some() {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        self.stats.writer_pending.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Commits the batch in flight, or makes one of the merged credit and commits it.
    fn flush(&mut self, state: &mut WriterState) {
        if state.in_flight.is_none() && !state.pending.is_empty() {
            // At most MAX_BATCH_CREDITS peers a transaction: a short transaction, and a
            // batch in flight (kept whole until it is known to be applied) that is small
            // beside the credit still merging. A peer's credit goes whole into one batch.
            let mut taken = 0;
            let credits: Vec<PeerCredit> = state
                .pending
                .extract_if(|_, _| {
                    taken += 1;
                    taken <= MAX_BATCH_CREDITS
                })
                .map(|(_, c)| c)
                .collect();
            // After a burst the map would keep room for all of it.
            if state.pending.capacity() > 4 * state.pending.len() + 16 * 1024 {
                state.pending.shrink_to(state.pending.len());
            }
            let mut id = [0u8; 16];
            state.rng.fill_bytes(&mut id);
            state.in_flight = Some((
                make_batch(BatchId(id), &credits, unix_now_secs()),
                credits.len(),
            ));
        }
        let Some((batch, peer_credits)) = &state.in_flight else {
            return;
        };
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
                    .fetch_add(*peer_credits as u64, Ordering::Relaxed);
                self.stats
                    .flush_micros_total
                    .fetch_add(micros, Ordering::Relaxed);
                self.stats
                    .last_flush_micros
                    .store(micros, Ordering::Relaxed);
                self.stats
                    .last_commit_unix_secs
                    .store(unix_now_secs(), Ordering::Relaxed);
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
                state.in_flight = None;
            }
            Err(err) => {
                self.stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                if let Some(held_back) = state.failure_warning.check(Instant::now()) {
                    log::error!(
                        "accounting: batch {} of {} peers not committed, will retry it: {err:#} \
                         ({held_back} more failures since the last message)",
                        batch.id.to_hex(),
                        peer_credits
                    );
                }
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

impl WriterState {
    /// Merges credits per peer; whether one of them is urgent.
    fn merge(&mut self, credits: Vec<PeerCredit>) -> bool {
        let mut urgent = false;
        for credit in credits {
            urgent |= credit.urgent;
            let b = &credit.baseline;
            let key = (b.info_hash, b.passkey, b.peer_id);
            match self.pending.entry(key) {
                hashbrown::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(&credit),
                hashbrown::hash_map::Entry::Vacant(e) => {
                    e.insert(credit);
                }
            }
        }
        urgent
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
    baselines.sort_unstable_by_key(|b| (b.passkey, b.info_hash, b.peer_id));
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
    use crate::private::store::PeerBaseline;

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

    fn writer(memory: &Arc<Mutex<Memory>>) -> (Sender<Vec<PeerCredit>>, AccountingWriter) {
        let (sender, receiver) = crossbeam_channel::bounded(4);
        let writer = AccountingWriter {
            store: Box::new(MemoryStore(memory.clone())),
            receiver,
            flush_interval: Duration::from_millis(20),
            retention_secs: 3600,
            passkeys: None,
            stats: Arc::new(PrivateStatistics::new(1)),
        };
        (sender, writer)
    }

    #[test]
    fn a_batch_whose_reply_was_lost_is_applied_once() {
        let memory = Arc::new(Mutex::new(Memory {
            failures: vec![Failure::Refuse, Failure::Lose, Failure::Refuse],
            ..Memory::default()
        }));
        let (sender, writer) = writer(&memory);
        let stats = writer.stats.clone();
        let thread = std::thread::spawn(move || writer.run());
        sender
            .send(vec![credit(1, 100, 100), credit(2, 50, 50)])
            .unwrap();
        // While the first batch is retried, more credit for the same peers merges.
        sender.send(vec![credit(1, 7, 107)]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        sender.send(vec![credit(2, 3, 53)]).unwrap();
        drop(sender);
        thread.join().unwrap().unwrap();
        let m = memory.lock().unwrap();
        let key = (Passkey([b'k'; 32]), InfoHash([1; 20]));
        assert_eq!(m.uploaded[&key], 160, "every credit once");
        let peer = |p: u8| m.baselines[&(InfoHash([1; 20]), Passkey([b'k'; 32]), PeerId([p; 20]))];
        assert_eq!(peer(1).uploaded, 107);
        assert_eq!(peer(2).uploaded, 53);
        let s = stats.snapshot();
        assert_eq!(s.batches_failed, 3);
        assert_eq!(s.batches_already_applied, 1, "the lost reply's retry");
        assert!(s.batches_committed >= 1);
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
    fn merged_credit_is_one_entry_per_peer() {
        let mut state = WriterState {
            pending: HashMap::new(),
            in_flight: None,
            rng: StdRng::seed_from_u64(1),
            failure_warning: RateLimitedWarning::new(Duration::from_secs(1)),
        };
        for round in 0..1000u64 {
            let urgent = state.merge(vec![credit(1, 1, round), credit(2, 2, round)]);
            assert!(!urgent);
        }
        assert_eq!(state.pending.len(), 2, "bounded by peers, not announces");
        let mut urgent = credit(3, 0, 0);
        urgent.urgent = true;
        assert!(state.merge(vec![urgent]));
        let batch = make_batch(
            BatchId([0; 16]),
            &state.pending.values().copied().collect::<Vec<_>>(),
            5,
        );
        assert_eq!(batch.credits.len(), 1, "one row per (passkey, info hash)");
        assert_eq!(batch.credits[0].uploaded, 3000);
        assert_eq!(batch.baselines.len(), 3);
    }

    #[test]
    fn a_backlog_goes_out_in_bounded_batches_each_once() {
        let memory = Arc::new(Mutex::new(Memory::default()));
        let (sender, writer) = writer(&memory);
        let peers = MAX_BATCH_CREDITS * 2 + 10;
        let thread = std::thread::spawn(move || writer.run());
        let credits: Vec<PeerCredit> = (0..peers)
            .map(|i| {
                let mut c = credit(0, 1, 1);
                c.baseline.peer_id.0[..8].copy_from_slice(&(i as u64).to_le_bytes());
                c
            })
            .collect();
        sender.send(credits).unwrap();
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
