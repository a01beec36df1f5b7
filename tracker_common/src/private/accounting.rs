//! The credit rules of private mode, for the torrents of one request worker.
//!
//! Pure and deterministic: no clock (times are Unix seconds given as arguments), no
//! database, no threads. The request worker owns an [`AccountingShard`] beside its swarm
//! shard and applies every accepted announce to it; what is credited waits, merged in
//! the peer's own state, until [`AccountingShard::take_pending`] hands it to the
//! `accounting` thread.
//!
//! # Rules
//! - State is kept per (info hash, passkey, peer id), never per IP: the same peer
//!   announcing from two addresses is one peer, and two clients of one user on one
//!   torrent are two.
//! - BEP 3's `uploaded` and `downloaded` count from the client's `started` event. An
//!   announce of a peer with a stored baseline is credited `new - baseline` per
//!   direction, or `new` where the counter went backwards (the client counts anew). An
//!   announce with `event=started` is credited its counters from zero, except one whose
//!   counters equal the stored baseline: that is the same `started` again (a multi-homed
//!   client announcing twice), and is credited nothing. A peer without a baseline that
//!   is not `started` (its state was lost or expired) sets the baseline and is credited
//!   nothing. A `stopped` from a peer without a baseline stores nothing.
//! - Seeding and leeching seconds: the time since the peer's previous announce, credited
//!   to the state it was in (seeder if its `left` was 0), only when that gap is at most
//!   the announce interval plus the grace, and never across a `stopped`.
//! - A completion is recorded when a peer that was a leecher (or had no state) announces
//!   `event=completed` with `left == 0`; the database keeps the first completion time of
//!   each (passkey, info hash).
//! - An announce whose upload credit over the gap since the previous announce (at least
//!   one second) exceeds the flag rate is flagged (counted for the user's row), never
//!   refused.
//! - A baseline stays [`AccountingRules::retention_secs`] after the peer's last announce,
//!   whether or not the peer is still in the swarm.
//! - Memory is bounded: the whole tracker holds at most [`AccountingRules::max_peers`]
//!   peers with state, and one passkey at most
//!   [`AccountingRules::max_peers_per_passkey`]; a new peer beyond either is served but
//!   not credited, and counted. What waits to be written is merged per peer, so it
//!   never outgrows the number of peers.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::private::passkey::Passkey;
use crate::private::store::PeerBaseline;
use crate::types::{AnnounceEvent, InfoHash, PeerId};

/// Seconds after which an unchanged baseline is written again, so that the committed
/// `last_announce` (which the retention and the seconds after a restart go by) never
/// lags by more.
pub const BASELINE_REFRESH_SECS: u32 = 3600;

/// Room the queue of peers with pending credit keeps after a hand-over.
const PENDING_KEPT_CAPACITY: usize = 16 * 1024;

/// The numbers the rules use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AccountingRules {
    /// The announce interval clients are told, in seconds.
    pub interval_secs: u64,
    /// Seconds beyond the interval a gap may last and still be credited.
    pub grace_secs: u64,
    /// Seconds a baseline is kept after the peer's last announce.
    pub retention_secs: u64,
    /// Upload bytes per second above which an announce is flagged; 0 flags nothing.
    pub flag_upload_bytes_per_sec: u64,
    /// The most peers with state, whole tracker.
    pub max_peers: usize,
    /// The most peers with state under one passkey, whole tracker.
    pub max_peers_per_passkey: usize,
}

/// Peers with accounting state over all request workers, against
/// [`AccountingRules::max_peers`]. Shared by the shards; touched only when a peer's state
/// is created or removed.
#[derive(Debug, Default)]
pub struct AccountingBudget {
    peers: AtomicUsize,
}

impl AccountingBudget {
    /// Peers with state, over all shards.
    pub fn num_peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }
}

/// Takes one unit of `counter` unless it is at `max`.
fn try_acquire(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n.saturating_add(1))
        })
        .is_ok()
}

/// Gives back one unit of `counter`, never below 0.
fn release(counter: &AtomicUsize) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some(n.saturating_sub(1))
    });
}

/// One accepted announce, as accounting sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AccountAnnounce {
    /// The user.
    pub passkey: Passkey,
    /// The torrent.
    pub info_hash: InfoHash,
    /// The peer.
    pub peer_id: PeerId,
    /// Bytes uploaded since the client's `started`.
    pub uploaded: u64,
    /// Bytes downloaded since the client's `started`.
    pub downloaded: u64,
    /// Bytes left; 0 is a seeder.
    pub left: u64,
    /// The event.
    pub event: AnnounceEvent,
}

/// What an accepted private-mode announce carries to its request worker besides the
/// swarm's parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    /// The user (checked by the socket worker).
    pub passkey: Passkey,
    /// Bytes uploaded since the client's `started`.
    pub uploaded: u64,
    /// Bytes downloaded since the client's `started`.
    pub downloaded: u64,
}

impl AccountInfo {
    /// The announce as accounting sees it.
    pub fn announce(
        &self,
        info_hash: InfoHash,
        peer_id: PeerId,
        left: u64,
        event: AnnounceEvent,
    ) -> AccountAnnounce {
        AccountAnnounce {
            passkey: self.passkey,
            info_hash,
            peer_id,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            left,
            event,
        }
    }
}

/// What a peer's announces credited since the last [`AccountingShard::take_pending`], with
/// the baseline that covers them: one entry of what the `accounting` thread commits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerCredit {
    /// The peer's baseline after the last announce credited here (key included).
    pub baseline: PeerBaseline,
    /// Bytes uploaded credited.
    pub uploaded: u64,
    /// Bytes downloaded credited.
    pub downloaded: u64,
    /// Seconds seeding credited.
    pub seed_seconds: u64,
    /// Seconds leeching credited.
    pub leech_seconds: u64,
    /// The first completion among the announces, Unix seconds.
    pub completed_at: Option<u64>,
    /// The first announce credited here, Unix seconds.
    pub first_announce: u64,
    /// Announces flagged for their upload speed.
    pub flagged_announces: u64,
    /// Whether a crash before this is committed would lose credit that no later announce
    /// brings back: the peer's first credit (no committed baseline yet), a completion,
    /// or a `stopped` (the peer's last announce of its session). Such credit is handed
    /// over and committed within about a second rather than at the next flush interval.
    pub urgent: bool,
    /// Whether the baseline must be written: its counters or state changed since the
    /// last baseline handed over, or that was [`BASELINE_REFRESH_SECS`] or more before.
    /// An unchanged baseline (an idle seeder's) is not rewritten at every announce: the
    /// committed one still accounts for every byte committed, and only its
    /// `last_announce` lags, by less than the refresh.
    pub baseline_changed: bool,
}

impl PeerCredit {
    /// A credit of nothing, with `baseline`, first announced at `now`.
    fn nothing(baseline: PeerBaseline, now: u64) -> Self {
        Self {
            baseline,
            uploaded: 0,
            downloaded: 0,
            seed_seconds: 0,
            leech_seconds: 0,
            completed_at: None,
            first_announce: now,
            flagged_announces: 0,
            urgent: false,
            baseline_changed: false,
        }
    }
}

/// What one announce did to accounting.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// Applied (credit, possibly zero, waits to be handed over).
    Credited {
        /// The announce was flagged for its upload speed.
        flagged: bool,
    },
    /// A `stopped` from a peer without state: nothing to keep.
    Ignored,
    /// A new peer beyond `max_peers` or `max_peers_per_passkey`: not credited.
    OverLimit,
}

/// The key of a peer's state.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
struct AccountKey {
    info_hash: InfoHash,
    passkey: Passkey,
    peer_id: PeerId,
}

impl AccountKey {
    fn of(baseline: &PeerBaseline) -> Self {
        Self {
            info_hash: baseline.info_hash,
            passkey: baseline.passkey,
            peer_id: baseline.peer_id,
        }
    }
}

/// The state the peer was in after its last announce.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum PeerState {
    Leeching,
    Seeding,
    Stopped,
}

/// Flags of an [`Account`]'s pending credit.
const PENDING: u8 = 1;
const URGENT: u8 = 2;
const BASELINE_CHANGED: u8 = 4;

/// One peer's baseline, and its credit not yet handed over: 64 bytes beside its 72-byte
/// key.
///
/// The pending credit lives in the peer's own entry: an announce adds to it where the
/// look-up of the baseline already brought it into the cache, and a backlog (the
/// `accounting` thread behind, the database down) costs nothing more than the flag,
/// however many announces it spans. The `pending_*` fields mean something only with
/// the `PENDING` flag.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Account {
    uploaded: u64,
    downloaded: u64,
    /// Unix seconds; a `u32` lasts until 2106.
    last_announce: u32,
    /// When the baseline was last handed over to be written (Unix seconds).
    written_at: u32,
    state: PeerState,
    flags: u8,
    pending_uploaded: u64,
    pending_downloaded: u64,
    pending_seed_seconds: u32,
    pending_leech_seconds: u32,
    /// Unix seconds of the first announce credited.
    pending_first_announce: u32,
    /// Unix seconds of the first completion credited; 0 for none.
    pending_completed_at: u32,
    pending_flagged: u32,
}

const _: () = assert!(size_of::<Account>() <= 64);

impl Account {
    /// A peer with `baseline` and nothing pending.
    fn new(uploaded: u64, downloaded: u64, last_announce: u64, state: PeerState) -> Self {
        Self {
            uploaded,
            downloaded,
            last_announce: secs32(last_announce),
            written_at: secs32(last_announce),
            state,
            flags: 0,
            pending_uploaded: 0,
            pending_downloaded: 0,
            pending_seed_seconds: 0,
            pending_leech_seconds: 0,
            pending_first_announce: 0,
            pending_completed_at: 0,
            pending_flagged: 0,
        }
    }

    /// The peer's baseline as a credit carries it.
    fn baseline(&self, key: &AccountKey) -> PeerBaseline {
        PeerBaseline {
            passkey: key.passkey,
            info_hash: key.info_hash,
            peer_id: key.peer_id,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            last_announce: u64::from(self.last_announce),
            seeding: self.state == PeerState::Seeding,
        }
    }

    fn is_pending(&self) -> bool {
        self.flags & PENDING != 0
    }

    fn is_urgent(&self) -> bool {
        self.flags & URGENT != 0
    }

    /// Adds `credit` to the pending credit; whether something was pending before.
    fn add(&mut self, credit: &PeerCredit) -> bool {
        let was_pending = self.is_pending();
        if !was_pending {
            self.flags = PENDING;
            self.pending_uploaded = 0;
            self.pending_downloaded = 0;
            self.pending_seed_seconds = 0;
            self.pending_leech_seconds = 0;
            self.pending_first_announce = secs32(credit.first_announce);
            self.pending_completed_at = 0;
            self.pending_flagged = 0;
        }
        self.pending_uploaded = self.pending_uploaded.saturating_add(credit.uploaded);
        self.pending_downloaded = self.pending_downloaded.saturating_add(credit.downloaded);
        self.pending_seed_seconds = self
            .pending_seed_seconds
            .saturating_add(secs32(credit.seed_seconds));
        self.pending_leech_seconds = self
            .pending_leech_seconds
            .saturating_add(secs32(credit.leech_seconds));
        self.pending_first_announce = self
            .pending_first_announce
            .min(secs32(credit.first_announce));
        if let Some(at) = credit.completed_at.map(secs32) {
            self.pending_completed_at = match self.pending_completed_at {
                0 => at,
                earlier => earlier.min(at),
            };
        }
        self.pending_flagged = self
            .pending_flagged
            .saturating_add(secs32(credit.flagged_announces));
        if credit.urgent {
            self.flags |= URGENT;
        }
        if credit.baseline_changed {
            self.flags |= BASELINE_CHANGED;
        }
        was_pending
    }

    /// The pending credit with the current baseline, leaving nothing pending.
    fn take(&mut self, key: &AccountKey) -> PeerCredit {
        let flags = std::mem::take(&mut self.flags);
        PeerCredit {
            baseline: self.baseline(key),
            uploaded: self.pending_uploaded,
            downloaded: self.pending_downloaded,
            seed_seconds: u64::from(self.pending_seed_seconds),
            leech_seconds: u64::from(self.pending_leech_seconds),
            completed_at: (self.pending_completed_at != 0)
                .then_some(u64::from(self.pending_completed_at)),
            first_announce: u64::from(self.pending_first_announce),
            flagged_announces: u64::from(self.pending_flagged),
            urgent: flags & URGENT != 0,
            baseline_changed: flags & BASELINE_CHANGED != 0,
        }
    }
}

/// Whether `uploaded` bytes over `secs` seconds (at least one) exceed the flag rate.
fn too_fast(rules: &AccountingRules, uploaded: u64, secs: u64) -> bool {
    let rate = rules.flag_upload_bytes_per_sec;
    rate > 0 && uploaded / secs.max(1) > rate
}

/// Unix seconds (or a count of seconds) as stored in an [`Account`].
fn secs32(unix: u64) -> u32 {
    u32::try_from(unix).unwrap_or(u32::MAX)
}

/// The accounting state of one request worker's torrents.
pub struct AccountingShard {
    rules: AccountingRules,
    budget: Arc<AccountingBudget>,
    /// The peers' state, by key: a table whose hashes the shard computes, so that the
    /// queue below can name a peer by its hash, 8 bytes rather than its 72-byte key.
    accounts: HashTable<(AccountKey, Account)>,
    hasher: DefaultHashBuilder,
    /// The hashes of the peers with pending credit, one entry per such peer, oldest
    /// first. An entry takes any peer with that hash and pending credit: as many
    /// entries as pending peers share the hash, so each is taken once.
    pending: VecDeque<u64>,
    /// How many of them hold urgent credit.
    urgent: usize,
    flagged: u64,
    over_limit: u64,
}

impl AccountingShard {
    /// An empty shard under `rules`, sharing `budget` with the other shards.
    pub fn new(rules: AccountingRules, budget: Arc<AccountingBudget>) -> Self {
        Self {
            rules,
            budget,
            accounts: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            pending: VecDeque::new(),
            urgent: 0,
            flagged: 0,
            over_limit: 0,
        }
    }

    /// Applies one accepted announce at `now` (Unix seconds). `user_peers` finds the
    /// count of peers with state under the announce's passkey (see
    /// [`crate::private::passkey::PasskeySet::peer_count`]), asked only for a new peer;
    /// `None` if the passkey is no longer in force, in which case a new peer is not
    /// stored.
    pub fn announce<'a>(
        &mut self,
        announce: &AccountAnnounce,
        now: u64,
        user_peers: impl FnOnce() -> Option<&'a AtomicUsize>,
    ) -> AnnounceOutcome {
        let key = AccountKey {
            info_hash: announce.info_hash,
            passkey: announce.passkey,
            peer_id: announce.peer_id,
        };
        let state_after = if announce.event == AnnounceEvent::Stopped {
            PeerState::Stopped
        } else if announce.left == 0 {
            PeerState::Seeding
        } else {
            PeerState::Leeching
        };
        // The baseline is set once the announce is applied.
        let placeholder = PeerBaseline {
            passkey: key.passkey,
            info_hash: key.info_hash,
            peer_id: key.peer_id,
            uploaded: 0,
            downloaded: 0,
            last_announce: now,
            seeding: false,
        };
        let mut credit = PeerCredit::nothing(placeholder, now);
        let mut flagged = false;
        let hasher = &self.hasher;
        let hash = hasher.hash_one(key);
        let entry = self
            .accounts
            .entry(hash, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k));
        let account = match entry {
            Entry::Vacant(vacant) => {
                if announce.event == AnnounceEvent::Stopped {
                    return AnnounceOutcome::Ignored;
                }
                if !Self::acquire(&self.budget, &self.rules, user_peers()) {
                    self.over_limit = self.over_limit.saturating_add(1);
                    return AnnounceOutcome::OverLimit;
                }
                if announce.event == AnnounceEvent::Started {
                    credit.uploaded = announce.uploaded;
                    credit.downloaded = announce.downloaded;
                    flagged = too_fast(&self.rules, announce.uploaded, 1);
                }
                if announce.event == AnnounceEvent::Completed && announce.left == 0 {
                    credit.completed_at = Some(now);
                }
                credit.flagged_announces = u64::from(flagged);
                credit.urgent = true;
                credit.baseline_changed = true;
                let account =
                    Account::new(announce.uploaded, announce.downloaded, now, state_after);
                &mut vacant.insert((key, account)).into_mut().1
            }
            Entry::Occupied(occupied) => {
                let account = &mut occupied.into_mut().1;
                let same_counters = announce.uploaded == account.uploaded
                    && announce.downloaded == account.downloaded;
                if announce.event == AnnounceEvent::Started {
                    if !same_counters {
                        credit.uploaded = announce.uploaded;
                        credit.downloaded = announce.downloaded;
                    }
                } else {
                    credit.uploaded = delta(account.uploaded, announce.uploaded);
                    credit.downloaded = delta(account.downloaded, announce.downloaded);
                }
                let gap = now.saturating_sub(u64::from(account.last_announce));
                let credited_gap = gap
                    <= self
                        .rules
                        .interval_secs
                        .saturating_add(self.rules.grace_secs);
                match account.state {
                    PeerState::Seeding if credited_gap => credit.seed_seconds = gap,
                    PeerState::Leeching if credited_gap => credit.leech_seconds = gap,
                    _ => {}
                }
                if announce.event == AnnounceEvent::Completed
                    && announce.left == 0
                    && account.state != PeerState::Seeding
                {
                    credit.completed_at = Some(now);
                }
                flagged = too_fast(&self.rules, credit.uploaded, gap);
                credit.flagged_announces = u64::from(flagged);
                credit.urgent = credit.completed_at.is_some() || state_after == PeerState::Stopped;
                credit.baseline_changed = !same_counters || account.state != state_after;
                account.uploaded = announce.uploaded;
                account.downloaded = announce.downloaded;
                account.last_announce = account.last_announce.max(secs32(now));
                account.state = state_after;
                if credit.baseline_changed
                    || account.last_announce.saturating_sub(account.written_at)
                        >= BASELINE_REFRESH_SECS
                {
                    credit.baseline_changed = true;
                    account.written_at = account.last_announce;
                }
                account
            }
        };
        let was_urgent = account.is_urgent();
        if !account.add(&credit) {
            self.pending.push_back(hash);
        }
        if !was_urgent && credit.urgent {
            self.urgent = self.urgent.saturating_add(1);
        }
        if flagged {
            self.flagged = self.flagged.saturating_add(1);
        }
        AnnounceOutcome::Credited { flagged }
    }

    fn acquire(
        budget: &AccountingBudget,
        rules: &AccountingRules,
        user_peers: Option<&AtomicUsize>,
    ) -> bool {
        let Some(user_peers) = user_peers else {
            return false;
        };
        if !try_acquire(&budget.peers, rules.max_peers) {
            return false;
        }
        if !try_acquire(user_peers, rules.max_peers_per_passkey) {
            release(&budget.peers);
            return false;
        }
        true
    }

    /// Moves the pending credit of at most `max` peers (those pending longest), each
    /// with its baseline, into `out`. Returns how many were moved.
    pub fn take_pending(&mut self, out: &mut Vec<PeerCredit>, max: usize) -> usize {
        let before = out.len();
        while out.len() - before < max {
            let Some(hash) = self.pending.pop_front() else {
                break;
            };
            if let Some((key, account)) = self.accounts.find_mut(hash, |(_, a)| a.is_pending()) {
                let credit = account.take(key);
                if credit.urgent {
                    self.urgent = self.urgent.saturating_sub(1);
                }
                out.push(credit);
            }
        }
        self.shrink_pending();
        out.len() - before
    }

    /// After a burst (every peer announcing within one hand-over, as after a restart)
    /// the queue would keep room for all of them; between hand-overs it only needs room
    /// for the peers of a few seconds.
    fn shrink_pending(&mut self) {
        if self.pending.capacity() > PENDING_KEPT_CAPACITY.max(2 * self.pending.len()) {
            self.pending
                .shrink_to(PENDING_KEPT_CAPACITY.max(self.pending.len()));
        }
    }

    /// Everything a clean stop must write: the pending credit, and the baseline of every
    /// peer whose written `last_announce` lags (an idle peer's baseline is rewritten only
    /// hourly), as a credit of nothing, so that after the restart the gap to the peer's
    /// next announce is measured from its real last announce. Returns how many were
    /// moved into `out`.
    pub fn take_all(&mut self, out: &mut Vec<PeerCredit>) -> usize {
        let before = out.len();
        for (key, account) in self.accounts.iter_mut() {
            if account.is_pending() {
                let mut credit = account.take(key);
                credit.baseline_changed = true;
                out.push(credit);
            } else if account.written_at < account.last_announce {
                let mut credit =
                    PeerCredit::nothing(account.baseline(key), u64::from(account.last_announce));
                credit.baseline_changed = true;
                out.push(credit);
            }
            account.written_at = account.last_announce;
        }
        self.pending.clear();
        self.urgent = 0;
        self.shrink_pending();
        out.len() - before
    }

    /// Puts credits that could not be handed over back with the pending ones, so that
    /// they go with the next [`Self::take_pending`]. Adding credit is order-free (sums,
    /// earliest times, flags), and the baseline is the peer's current one either way.
    pub fn put_back(&mut self, credits: Vec<PeerCredit>) {
        for credit in credits {
            let key = AccountKey::of(&credit.baseline);
            let hash = self.hasher.hash_one(key);
            let Some((_, account)) = self.accounts.find_mut(hash, |(k, _)| *k == key) else {
                continue;
            };
            let was_urgent = account.is_urgent();
            if !account.add(&credit) {
                self.pending.push_front(hash);
            }
            if !was_urgent && account.is_urgent() {
                self.urgent = self.urgent.saturating_add(1);
            }
        }
    }

    /// Restores a committed baseline loaded at start, within the limits; `false` if it
    /// was not stored (a limit, or the peer already has state).
    pub fn restore(&mut self, baseline: &PeerBaseline, user_peers: Option<&AtomicUsize>) -> bool {
        let key = AccountKey::of(baseline);
        let hasher = &self.hasher;
        let hash = hasher.hash_one(key);
        if self.accounts.find(hash, |(k, _)| *k == key).is_some()
            || !Self::acquire(&self.budget, &self.rules, user_peers)
        {
            return false;
        }
        let state = if baseline.seeding {
            PeerState::Seeding
        } else {
            PeerState::Leeching
        };
        let account = Account::new(
            baseline.uploaded,
            baseline.downloaded,
            baseline.last_announce,
            state,
        );
        self.accounts
            .insert_unique(hash, (key, account), |(k, _)| hasher.hash_one(k));
        true
    }

    /// Removes the state of peers whose last announce is more than the retention before
    /// `now` and that have nothing pending; `count_of` finds a passkey's peer count (to
    /// give back). Returns how many were removed.
    pub fn clean<'a>(
        &mut self,
        now: u64,
        mut count_of: impl FnMut(&Passkey) -> Option<&'a AtomicUsize>,
    ) -> usize {
        let cutoff = now.saturating_sub(self.rules.retention_secs);
        let budget = &self.budget;
        let before = self.accounts.len();
        self.accounts.retain(|(key, account)| {
            let keep = u64::from(account.last_announce) >= cutoff || account.is_pending();
            if !keep {
                release(&budget.peers);
                if let Some(count) = count_of(&key.passkey) {
                    release(count);
                }
            }
            keep
        });
        before - self.accounts.len()
    }

    /// Peers with state in this shard.
    pub fn num_peers(&self) -> usize {
        self.accounts.len()
    }

    /// Peers with credit waiting to be handed over.
    pub fn num_pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether some pending credit is urgent (see [`PeerCredit::urgent`]).
    pub fn has_urgent(&self) -> bool {
        self.urgent > 0
    }

    /// Announces flagged for their upload speed, since the shard was made.
    pub fn num_flagged(&self) -> u64 {
        self.flagged
    }

    /// New peers not stored because of a limit, since the shard was made.
    pub fn num_over_limit(&self) -> u64 {
        self.over_limit
    }
}

/// What a counter that moved from `baseline` to `new` credits: the difference, or `new`
/// where it went backwards (the client counts anew).
fn delta(baseline: u64, new: u64) -> u64 {
    if new >= baseline { new - baseline } else { new }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashbrown::HashMap;
    use proptest::prelude::*;

    const ALICE: Passkey = Passkey(*b"alicealicealicealicealicealice01");
    const BOB: Passkey = Passkey(*b"bobbobbobbobbobbobbobbobbobbob01");
    const HASH: InfoHash = InfoHash([7; 20]);
    const T0: u64 = 1_800_000_000;

    fn rules() -> AccountingRules {
        AccountingRules {
            interval_secs: 1800,
            grace_secs: 300,
            retention_secs: 21 * 24 * 3600,
            flag_upload_bytes_per_sec: 1_000_000,
            max_peers: 100,
            max_peers_per_passkey: 10,
        }
    }

    struct Fixture {
        shard: AccountingShard,
        alice: AtomicUsize,
        bob: AtomicUsize,
    }

    impl Fixture {
        fn new(rules: AccountingRules) -> Self {
            Self {
                shard: AccountingShard::new(rules, Arc::default()),
                alice: AtomicUsize::new(0),
                bob: AtomicUsize::new(0),
            }
        }

        fn announce(&mut self, a: AccountAnnounce, now: u64) -> AnnounceOutcome {
            let count = if a.passkey == ALICE {
                &self.alice
            } else {
                &self.bob
            };
            self.shard.announce(&a, now, || Some(count))
        }

        fn take(&mut self) -> Vec<PeerCredit> {
            let mut out = Vec::new();
            self.shard.take_pending(&mut out, usize::MAX);
            out
        }
    }

    fn ann(
        passkey: Passkey,
        peer: u8,
        event: AnnounceEvent,
        uploaded: u64,
        downloaded: u64,
        left: u64,
    ) -> AccountAnnounce {
        AccountAnnounce {
            passkey,
            info_hash: HASH,
            peer_id: PeerId([peer; 20]),
            uploaded,
            downloaded,
            left,
            event,
        }
    }

    use AnnounceEvent::{Completed, None as Regular, Started, Stopped};

    fn sums(credits: &[PeerCredit]) -> (u64, u64, u64, u64) {
        credits.iter().fold((0, 0, 0, 0), |s, c| {
            (
                s.0 + c.uploaded,
                s.1 + c.downloaded,
                s.2 + c.seed_seconds,
                s.3 + c.leech_seconds,
            )
        })
    }

    #[test]
    fn started_credits_from_zero_then_differences() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 100, 200, 5), T0);
        f.announce(ann(ALICE, 1, Regular, 150, 260, 5), T0 + 60);
        let credits = f.take();
        assert_eq!(credits.len(), 1, "one entry per peer");
        assert_eq!(sums(&credits), (150, 260, 0, 60));
        assert_eq!(credits[0].first_announce, T0);
        assert_eq!(credits[0].baseline.uploaded, 150);
        assert_eq!(credits[0].baseline.downloaded, 260);
        assert_eq!(credits[0].baseline.last_announce, T0 + 60);
        assert!(!credits[0].baseline.seeding);
        assert!(f.take().is_empty(), "taken once");
    }

    #[test]
    fn counter_that_went_backwards_credits_the_new_value() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 5), T0);
        f.announce(ann(ALICE, 1, Regular, 1000, 500, 5), T0 + 10);
        f.announce(ann(ALICE, 1, Regular, 300, 800, 5), T0 + 20);
        assert_eq!(sums(&f.take()), (1000 + 300, 500 + 300, 0, 20));
    }

    #[test]
    fn no_baseline_and_no_started_sets_the_baseline_only() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Regular, 5000, 7000, 5), T0);
        assert_eq!(sums(&f.take()), (0, 0, 0, 0));
        f.announce(ann(ALICE, 1, Regular, 5100, 7000, 5), T0 + 30);
        assert_eq!(sums(&f.take()), (100, 0, 0, 30));
    }

    #[test]
    fn stopped_without_state_stores_nothing() {
        let mut f = Fixture::new(rules());
        assert_eq!(
            f.announce(ann(ALICE, 1, Stopped, 5, 5, 0), T0),
            AnnounceOutcome::Ignored
        );
        assert_eq!(f.shard.num_peers(), 0);
        assert!(f.take().is_empty());
    }

    #[test]
    fn duplicate_announce_is_credited_once() {
        // A multi-homed client sends the same announce from two addresses: same key.
        let mut f = Fixture::new(rules());
        for _ in 0..2 {
            f.announce(ann(ALICE, 1, Started, 0, 0, 5), T0);
        }
        for _ in 0..2 {
            f.announce(ann(ALICE, 1, Regular, 700, 0, 5), T0 + 100);
        }
        assert_eq!(sums(&f.take()), (700, 0, 0, 100));
        // A repeated `started` with counters already credited is the same announce.
        f.announce(ann(ALICE, 1, Started, 700, 0, 5), T0 + 100);
        assert_eq!(sums(&f.take()), (0, 0, 0, 0));
    }

    #[test]
    fn started_again_counts_from_zero() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 0), T0);
        f.announce(ann(ALICE, 1, Regular, 900, 0, 0), T0 + 60);
        // The client restarted its session (no stopped reached us).
        f.announce(ann(ALICE, 1, Started, 40, 0, 0), T0 + 120);
        assert_eq!(sums(&f.take()), (900 + 40, 0, 120, 0));
    }

    #[test]
    fn two_clients_of_one_user_and_two_users_stay_apart() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 5), T0);
        f.announce(ann(ALICE, 2, Started, 0, 0, 5), T0);
        f.announce(ann(BOB, 1, Started, 0, 0, 5), T0);
        f.announce(ann(ALICE, 1, Regular, 10, 0, 5), T0 + 1);
        f.announce(ann(ALICE, 2, Regular, 20, 0, 5), T0 + 1);
        f.announce(ann(BOB, 1, Regular, 40, 0, 5), T0 + 1);
        // Bob sending Alice's peer id changes nothing of Alice's.
        f.announce(ann(BOB, 2, Regular, 1, 0, 5), T0 + 2);
        let credits = f.take();
        let of = |key: Passkey| -> u64 {
            credits
                .iter()
                .filter(|c| c.baseline.passkey == key)
                .map(|c| c.uploaded)
                .sum()
        };
        assert_eq!(of(ALICE), 30);
        assert_eq!(of(BOB), 40);
        assert_eq!(f.shard.num_peers(), 4);
    }

    #[test]
    fn seconds_go_to_the_state_of_the_gap_within_interval_and_grace() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 5), T0);
        // Leeching for 1800 s, then completes: the gap was leeching.
        f.announce(ann(ALICE, 1, Completed, 0, 5, 0), T0 + 1800);
        // Seeding for 2100 s = interval + grace: still credited.
        f.announce(ann(ALICE, 1, Regular, 0, 5, 0), T0 + 3900);
        // 2101 s: not credited.
        f.announce(ann(ALICE, 1, Regular, 0, 5, 0), T0 + 6001);
        let credits = f.take();
        assert_eq!(sums(&credits), (0, 5, 2100, 1800));
    }

    #[test]
    fn no_seconds_across_a_stop() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 0), T0);
        f.announce(ann(ALICE, 1, Stopped, 10, 0, 0), T0 + 60);
        f.announce(ann(ALICE, 1, Started, 0, 0, 0), T0 + 120);
        f.announce(ann(ALICE, 1, Regular, 5, 0, 0), T0 + 180);
        assert_eq!(sums(&f.take()), (15, 0, 120, 0));
    }

    #[test]
    fn completion_once_from_a_leecher_with_left_zero() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 5), T0);
        f.announce(ann(ALICE, 1, Completed, 0, 5, 3), T0 + 1);
        assert_eq!(
            f.take()[0].completed_at,
            None,
            "left > 0 is not a completion"
        );
        f.announce(ann(ALICE, 1, Completed, 0, 5, 0), T0 + 2);
        f.announce(ann(ALICE, 1, Completed, 0, 5, 0), T0 + 3);
        let credits = f.take();
        assert_eq!(credits[0].completed_at, Some(T0 + 2));
        // A seeder repeating completed records nothing.
        f.announce(ann(ALICE, 1, Completed, 0, 5, 0), T0 + 4);
        assert_eq!(f.take()[0].completed_at, None);
        // A peer without state that completes (its state was lost) does record one; the
        // database keeps the user's first.
        f.announce(ann(ALICE, 9, Completed, 0, 5, 0), T0 + 5);
        assert_eq!(f.take()[0].completed_at, Some(T0 + 5));
    }

    #[test]
    fn fast_upload_is_flagged_not_refused() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 0), T0);
        // 1 MB/s over 10 s is at the bound: not flagged.
        let out = f.announce(ann(ALICE, 1, Regular, 10_000_000, 0, 0), T0 + 10);
        assert_eq!(out, AnnounceOutcome::Credited { flagged: false });
        let out = f.announce(ann(ALICE, 1, Regular, 30_000_001, 0, 0), T0 + 20);
        assert_eq!(out, AnnounceOutcome::Credited { flagged: true });
        let credits = f.take();
        assert_eq!(credits[0].uploaded, 30_000_001, "credited all the same");
        assert_eq!(credits[0].flagged_announces, 1);
        assert_eq!(f.shard.num_flagged(), 1);
        // Within the same second counts as one second.
        let out = f.announce(ann(ALICE, 1, Regular, 31_000_002, 0, 0), T0 + 20);
        assert_eq!(out, AnnounceOutcome::Credited { flagged: true });
    }

    #[test]
    fn limits_whole_tracker_and_per_passkey() {
        let budget = Arc::new(AccountingBudget::default());
        let rules = AccountingRules {
            max_peers: 3,
            max_peers_per_passkey: 2,
            ..rules()
        };
        let mut a = AccountingShard::new(rules, budget.clone());
        let mut b = AccountingShard::new(rules, budget.clone());
        let alice = AtomicUsize::new(0);
        let bob = AtomicUsize::new(0);
        let go = |s: &mut AccountingShard, key, peer, count| {
            s.announce(&ann(key, peer, Started, 0, 0, 1), T0, || Some(count))
        };
        assert!(matches!(
            go(&mut a, ALICE, 1, &alice),
            AnnounceOutcome::Credited { .. }
        ));
        assert!(matches!(
            go(&mut b, ALICE, 2, &alice),
            AnnounceOutcome::Credited { .. }
        ));
        // Alice's third peer, in either shard, is over her limit.
        assert_eq!(go(&mut a, ALICE, 3, &alice), AnnounceOutcome::OverLimit);
        assert_eq!(go(&mut b, ALICE, 3, &alice), AnnounceOutcome::OverLimit);
        assert!(matches!(
            go(&mut b, BOB, 1, &bob),
            AnnounceOutcome::Credited { .. }
        ));
        // The tracker is full now.
        assert_eq!(go(&mut a, BOB, 2, &bob), AnnounceOutcome::OverLimit);
        assert_eq!(budget.num_peers(), 3);
        assert_eq!(a.num_over_limit() + b.num_over_limit(), 3);
        // A known peer is always credited.
        assert!(matches!(
            go(&mut a, ALICE, 1, &alice),
            AnnounceOutcome::Credited { .. }
        ));
        // A passkey no longer in force gets no new state.
        assert_eq!(
            a.announce(&ann(BOB, 7, Started, 0, 0, 1), T0, || None),
            AnnounceOutcome::OverLimit
        );
    }

    #[test]
    fn baseline_kept_for_the_retention_then_removed() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 0), T0);
        f.announce(ann(ALICE, 1, Stopped, 100, 0, 0), T0 + 10);
        // Pending credit is never removed.
        let retention = rules().retention_secs;
        assert_eq!(f.shard.clean(T0 + 10 + retention + 1, |_| None), 0);
        f.take();
        assert_eq!(
            f.shard.clean(T0 + 10 + retention, |_| None),
            0,
            "exactly the retention stays"
        );
        let alice = &f.alice;
        assert_eq!(alice.load(Ordering::Relaxed), 1);
        assert_eq!(f.shard.clean(T0 + 11 + retention, |_| Some(alice)), 1);
        assert_eq!(alice.load(Ordering::Relaxed), 0);
        assert_eq!(f.shard.num_peers(), 0);
    }

    #[test]
    fn credit_a_crash_could_lose_is_urgent() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 5), T0);
        assert!(f.take()[0].urgent, "a new peer has no committed baseline");
        f.announce(ann(ALICE, 1, Regular, 10, 0, 5), T0 + 1);
        assert!(!f.take()[0].urgent, "a later announce carries it again");
        f.announce(ann(ALICE, 1, Completed, 10, 5, 0), T0 + 2);
        assert!(f.take()[0].urgent, "a completion is an event");
        f.announce(ann(ALICE, 1, Regular, 12, 5, 0), T0 + 3);
        f.announce(ann(ALICE, 1, Stopped, 20, 5, 0), T0 + 4);
        assert!(f.take()[0].urgent, "a stop is the session's last announce");
    }

    #[test]
    fn unchanged_baseline_is_rewritten_only_after_the_refresh() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 0), T0);
        assert!(f.take()[0].baseline_changed, "a new peer");
        // An idle seeder: same counters, same state.
        f.announce(ann(ALICE, 1, Regular, 0, 0, 0), T0 + 1800);
        let credit = f.take()[0];
        assert!(!credit.baseline_changed);
        assert_eq!(
            credit.seed_seconds, 1800,
            "its seconds are credited all the same"
        );
        f.announce(ann(ALICE, 1, Regular, 5, 0, 0), T0 + 1900);
        assert!(f.take()[0].baseline_changed, "counters moved");
        f.announce(ann(ALICE, 1, Regular, 5, 0, 7), T0 + 2000);
        assert!(f.take()[0].baseline_changed, "became a leecher");
        f.announce(ann(ALICE, 1, Regular, 5, 0, 7), T0 + 2000 + 3599);
        assert!(!f.take()[0].baseline_changed);
        f.announce(ann(ALICE, 1, Regular, 5, 0, 7), T0 + 2000 + 3600);
        assert!(f.take()[0].baseline_changed, "refreshed after an hour");
    }

    #[test]
    fn a_clean_stop_writes_every_lagging_baseline() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 0, 0, 0), T0);
        f.announce(ann(ALICE, 2, Started, 0, 0, 0), T0);
        f.take();
        // Peer 1 idles (its baseline is not rewritten); peer 2 has credit pending but an
        // unchanged baseline too.
        f.announce(ann(ALICE, 1, Regular, 0, 0, 0), T0 + 1800);
        f.take();
        f.announce(ann(ALICE, 2, Regular, 0, 0, 0), T0 + 1800);
        let mut out = Vec::new();
        assert_eq!(f.shard.take_all(&mut out), 2);
        out.sort_by_key(|c| c.baseline.peer_id);
        assert!(out.iter().all(|c| c.baseline_changed));
        assert!(out.iter().all(|c| c.baseline.last_announce == T0 + 1800));
        assert_eq!(
            out[0].seed_seconds, 0,
            "peer 1's seconds were handed over already"
        );
        assert_eq!(
            out[1].seed_seconds, 1800,
            "peer 2's pending credit goes too"
        );
        out.clear();
        assert_eq!(f.shard.take_all(&mut out), 0, "nothing lags any more");
    }

    #[test]
    fn put_back_goes_before_later_credit() {
        let mut f = Fixture::new(rules());
        f.announce(ann(ALICE, 1, Started, 10, 0, 5), T0);
        let taken = f.take();
        f.announce(ann(ALICE, 1, Completed, 25, 0, 0), T0 + 5);
        f.shard.put_back(taken);
        let credits = f.take();
        assert_eq!(credits.len(), 1);
        assert_eq!(sums(&credits), (25, 0, 0, 5));
        assert_eq!(credits[0].first_announce, T0);
        assert_eq!(credits[0].completed_at, Some(T0 + 5));
        assert_eq!(credits[0].baseline.uploaded, 25, "the latest baseline");
    }

    #[test]
    fn restored_baseline_credits_what_was_not_committed() {
        let mut f = Fixture::new(rules());
        let baseline = PeerBaseline {
            passkey: ALICE,
            info_hash: HASH,
            peer_id: PeerId([1; 20]),
            uploaded: 1000,
            downloaded: 10,
            last_announce: T0,
            seeding: true,
        };
        assert!(f.shard.restore(&baseline, Some(&f.alice)));
        assert!(!f.shard.restore(&baseline, Some(&f.alice)), "once");
        f.announce(ann(ALICE, 1, Regular, 4000, 10, 0), T0 + 100);
        assert_eq!(sums(&f.take()), (3000, 0, 100, 0));
    }

    // --- the model: nothing lost, nothing doubled, across restarts ---

    /// One step of a scripted run.
    #[derive(Clone, Debug)]
    enum Step {
        /// Peer `peer` transfers bytes, then announces (the announce may be lost on the
        /// way, or arrive twice).
        Transfer {
            peer: usize,
            up: u32,
            down: u32,
            lost: bool,
            twice: bool,
        },
        /// The tracker hands its pending credit to the database, which commits it.
        Commit,
        /// The tracker hands over the credit of at most this many peers, which the
        /// database commits.
        CommitSome(usize),
        /// A hand-over of at most this many peers that could not be sent: the credit
        /// goes back to the shard.
        Bounce(usize),
        /// The tracker crashes: all that was not committed is gone; at start it loads
        /// the committed baselines.
        Crash,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0..3usize, 0..5000u32, 0..5000u32, proptest::bool::weighted(0.2), proptest::bool::weighted(0.1))
                .prop_map(|(peer, up, down, lost, twice)| Step::Transfer { peer, up, down, lost, twice }),
            2 => Just(Step::Commit),
            1 => (1..3usize).prop_map(Step::CommitSome),
            1 => (1..3usize).prop_map(Step::Bounce),
            1 => Just(Step::Crash),
        ]
    }

    proptest! {
        /// Written from the rules' statement: a client's counters are cumulative since
        /// its `started`; whatever is lost, repeated or not yet committed when the
        /// tracker crashes, once every peer has announced again and the credit is
        /// committed, the database holds exactly the bytes each peer moved, but for
        /// one case the rules give up on: a peer with no committed baseline at a crash
        /// (its first commit had not happened) is credited nothing for the counters of
        /// its next announce that arrives.
        #[test]
        fn committed_credit_equals_the_bytes_moved(steps in proptest::collection::vec(step(), 0..60)) {
            let passkeys = [ALICE, BOB, ALICE];
            let count = AtomicUsize::new(0);
            let budget = Arc::new(AccountingBudget::default());
            let mut shard = AccountingShard::new(rules(), budget.clone());
            // Per peer: its cumulative counters, and whether its started got through.
            let mut counters = [(0u64, 0u64); 3];
            let mut started = [false; 3];
            let mut moved = [(0u64, 0u64); 3];
            let mut committed_credit = [(0u64, 0u64); 3];
            let mut committed_baselines: HashMap<PeerId, PeerBaseline> = HashMap::new();
            // Peers without a committed baseline at a crash, until their next announce
            // arrives, and the bytes the rules give up on for them.
            let mut orphaned = [false; 3];
            let mut given_up = [(0u64, 0u64); 3];
            // Per peer: the counters up to which bytes were committed or given up.
            let mut accounted_to = [(0u64, 0u64); 3];
            let mut now = T0;
            let announce = |shard: &mut AccountingShard, peer: usize, counters: (u64, u64), event, now| {
                let a = AccountAnnounce {
                    passkey: passkeys[peer],
                    info_hash: HASH,
                    peer_id: PeerId([peer as u8; 20]),
                    uploaded: counters.0,
                    downloaded: counters.1,
                    left: 1,
                    event,
                };
                shard.announce(&a, now, || Some(&count));
            };
            let commit = |shard: &mut AccountingShard, max: usize, committed_credit: &mut [(u64, u64); 3], baselines: &mut HashMap<PeerId, PeerBaseline>, accounted_to: &mut [(u64, u64); 3]| {
                let mut out = Vec::new();
                shard.take_pending(&mut out, max);
                for c in out {
                    let peer = usize::from(c.baseline.peer_id.0[0]);
                    committed_credit[peer].0 += c.uploaded;
                    committed_credit[peer].1 += c.downloaded;
                    accounted_to[peer] = (c.baseline.uploaded, c.baseline.downloaded);
                    // What the database gets: baselines that changed.
                    if c.baseline_changed {
                        baselines.insert(c.baseline.peer_id, c.baseline);
                    } else {
                        let committed = baselines.get(&c.baseline.peer_id).copied();
                        assert!(committed.is_some_and(|b| (b.uploaded, b.downloaded) == (c.baseline.uploaded, c.baseline.downloaded)), "an unchanged baseline differs from the committed one");
                    }
                }
            };
            for step in steps {
                now += 7;
                match step {
                    Step::Transfer { peer, up, down, lost, twice } => {
                        // A peer starts its session before moving anything.
                        if !started[peer] {
                            announce(&mut shard, peer, counters[peer], Started, now);
                            started[peer] = true;
                        }
                        counters[peer].0 += u64::from(up);
                        counters[peer].1 += u64::from(down);
                        moved[peer].0 += u64::from(up);
                        moved[peer].1 += u64::from(down);
                        if !lost {
                            if orphaned[peer] {
                                orphaned[peer] = false;
                                given_up[peer].0 += counters[peer].0 - accounted_to[peer].0;
                                given_up[peer].1 += counters[peer].1 - accounted_to[peer].1;
                                accounted_to[peer] = counters[peer];
                            }
                            announce(&mut shard, peer, counters[peer], Regular, now);
                            if twice {
                                announce(&mut shard, peer, counters[peer], Regular, now);
                            }
                        }
                    }
                    Step::Commit => commit(&mut shard, usize::MAX, &mut committed_credit, &mut committed_baselines, &mut accounted_to),
                    Step::CommitSome(max) => commit(&mut shard, max, &mut committed_credit, &mut committed_baselines, &mut accounted_to),
                    Step::Bounce(max) => {
                        let mut out = Vec::new();
                        shard.take_pending(&mut out, max);
                        shard.put_back(out);
                    }
                    Step::Crash => {
                        for peer in 0..3 {
                            let id = PeerId([peer as u8; 20]);
                            if started[peer] && !committed_baselines.contains_key(&id) {
                                orphaned[peer] = true;
                            }
                        }
                        count.store(0, Ordering::Relaxed);
                        shard = AccountingShard::new(rules(), Arc::new(AccountingBudget::default()));
                        for b in committed_baselines.values() {
                            shard.restore(b, Some(&count));
                        }
                    }
                }
            }
            // Every peer that started announces once more, and the credit is committed.
            now += 7;
            for peer in 0..3 {
                if started[peer] {
                    if orphaned[peer] {
                        given_up[peer].0 += counters[peer].0 - accounted_to[peer].0;
                        given_up[peer].1 += counters[peer].1 - accounted_to[peer].1;
                        accounted_to[peer] = counters[peer];
                    }
                    announce(&mut shard, peer, counters[peer], Regular, now);
                }
            }
            commit(&mut shard, usize::MAX, &mut committed_credit, &mut committed_baselines, &mut accounted_to);
            prop_assert_eq!(shard.num_pending(), 0);
            let expected: Vec<(u64, u64)> = (0..3)
                .map(|p| (moved[p].0 - given_up[p].0, moved[p].1 - given_up[p].1))
                .collect();
            prop_assert_eq!(committed_credit.to_vec(), expected);
        }
    }
}
