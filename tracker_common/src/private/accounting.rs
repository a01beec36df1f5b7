//! What one request worker holds for accounting: each peer's report since the last
//! hand-over to the `accounting` thread.
//!
//! Pure and deterministic: no clock (times are Unix seconds given as arguments), no
//! database, no threads. The request worker owns an [`AccountingShard`] beside its swarm
//! shard and applies every accepted announce to it. The shard decides no credit: it
//! merges a peer's announces into one [`PeerReport`] (see [`crate::private::ledger`]),
//! and the database decides the credit against the committed marks.
//!
//! # State and limits
//! - A peer has state here only while it has a report not yet handed over: once its
//!   report is handed over, the shard forgets it (the committed mark is the database's).
//!   A stopped peer is forgotten with its report. Nothing is kept of dead peer ids.
//! - Memory is bounded: at most `max_peers` reports in the shard, and at most
//!   `max_peers_per_user` of one user. A new peer beyond either takes the place of a
//!   least recently seen peer (of the shard, or of that user), as a clock finds it (see
//!   `Clock`: the first peer, in the order they came, not announced since the clock's
//!   hand last passed it): its report goes, counted as an eviction, and the new peer is
//!   credited. An evicted report loses its time, its completion, its flags, and the
//!   bytes that only it showed (a `started`'s counters, or the last counters of a
//!   `stopped` peer that does not come back); a peer that announces again has the rest
//!   of its bytes credited against its committed mark.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use crate::private::ledger::{CreditRules, PeerReport, Point};
use crate::private::store::{PeerKey, PeerState, UserId};
use crate::types::{AnnounceEvent, InfoHash, PeerId};

/// The numbers one shard goes by.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AccountingRules {
    /// The credit rules (for merging announces).
    pub credit: CreditRules,
    /// The most reports this shard holds.
    pub max_peers: usize,
    /// The most reports of one user this shard holds.
    pub max_peers_per_user: usize,
}

impl AccountingRules {
    /// One shard's share of whole-tracker limits: `max_peers` and `max_peers_per_user`
    /// split over `shards`, at least 1 each, so that all shards together never hold more.
    pub fn shard_share(
        credit: CreditRules,
        max_peers: usize,
        max_peers_per_user: usize,
        shards: usize,
    ) -> Self {
        let shards = shards.max(1);
        Self {
            credit,
            max_peers: (max_peers / shards).max(1),
            max_peers_per_user: (max_peers_per_user / shards).max(1),
        }
    }
}

/// What an accepted private-mode announce carries to its request worker besides the
/// swarm's parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    /// The user (the socket worker found it by the passkey).
    pub user: UserId,
    /// Bytes uploaded since the client's `started`; `None` if missing or negative.
    pub uploaded: Option<u64>,
    /// Bytes downloaded since the client's `started`; `None` if missing or negative.
    pub downloaded: Option<u64>,
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
            key: PeerKey {
                user: self.user,
                info_hash,
                peer_id,
            },
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            left,
            event,
        }
    }
}

/// One accepted announce, as accounting sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AccountAnnounce {
    /// The peer.
    pub key: PeerKey,
    /// Bytes uploaded since the client's `started`.
    pub uploaded: Option<u64>,
    /// Bytes downloaded since the client's `started`.
    pub downloaded: Option<u64>,
    /// Bytes left; 0 is a seeder.
    pub left: u64,
    /// The event.
    pub event: AnnounceEvent,
}

impl AccountAnnounce {
    /// The announce at `now` as a [`Point`].
    pub fn point(&self, now: u64) -> Point {
        let state = if self.event == AnnounceEvent::Stopped {
            PeerState::Stopped
        } else if self.left == 0 {
            PeerState::Seeding
        } else {
            PeerState::Leeching
        };
        Point {
            at: now,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            state,
            event: self.event,
        }
    }
}

/// What one announce did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// Merged into the peer's report.
    Merged,
    /// A new report, and no peer had to go.
    New,
    /// A new report, in place of the least recently seen peer's (of the shard, or of the
    /// user), whose report went.
    Evicted,
}

/// A [`PeerReport`] as a shard holds it, in 136 bytes rather than 224: times as `u32`
/// Unix seconds (until 2106), a missing counter as `u64::MAX` (so a counter of
/// `u64::MAX` reads as missing, that is unchanged), the middle's seconds, completion
/// and flags as `u32`, and none of what the database works out for itself. A shard of
/// a million waiting reports is the most memory private mode takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct CompactReport {
    key: PeerKey,
    first_uploaded: u64,
    first_downloaded: u64,
    last_uploaded: u64,
    last_downloaded: u64,
    middle_uploaded: u64,
    middle_downloaded: u64,
    first_at: u32,
    last_at: u32,
    middle_seed_seconds: u32,
    middle_leech_seconds: u32,
    /// 0: none.
    middle_completed_at: u32,
    middle_flagged: u32,
    first_state: PeerState,
    first_event: AnnounceEvent,
    last_state: PeerState,
}

const MISSING: u64 = u64::MAX;

fn pack(counter: Option<u64>) -> u64 {
    counter.unwrap_or(MISSING)
}

fn unpack(counter: u64) -> Option<u64> {
    (counter != MISSING).then_some(counter)
}

fn secs32(secs: u64) -> u32 {
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl CompactReport {
    fn of(report: &PeerReport) -> Self {
        Self {
            key: report.key,
            first_uploaded: pack(report.first.uploaded),
            first_downloaded: pack(report.first.downloaded),
            last_uploaded: pack(report.last.uploaded),
            last_downloaded: pack(report.last.downloaded),
            middle_uploaded: report.middle.uploaded,
            middle_downloaded: report.middle.downloaded,
            first_at: secs32(report.first.at),
            last_at: secs32(report.last.at),
            middle_seed_seconds: secs32(report.middle.seed_seconds),
            middle_leech_seconds: secs32(report.middle.leech_seconds),
            middle_completed_at: report.middle.completed_at.map_or(0, secs32),
            middle_flagged: secs32(report.middle.flagged),
            first_state: report.first.state,
            first_event: report.first.event,
            last_state: report.last.state,
        }
    }

    /// Merges the peer's next announce in, as [`PeerReport::merge`] does, without
    /// expanding the rest; returns whether the step was flagged.
    fn merge(&mut self, next: &Point, rules: &CreditRules) -> bool {
        let last = crate::private::ledger::Previous {
            uploaded: unpack(self.last_uploaded),
            downloaded: unpack(self.last_downloaded),
            at: u64::from(self.last_at),
            state: self.last_state,
            noted: None,
        };
        let credit = crate::private::ledger::step(Some(&last), next, rules);
        self.middle_uploaded = self.middle_uploaded.saturating_add(credit.uploaded);
        self.middle_downloaded = self.middle_downloaded.saturating_add(credit.downloaded);
        self.middle_seed_seconds = self
            .middle_seed_seconds
            .saturating_add(secs32(credit.seed_seconds));
        self.middle_leech_seconds = self
            .middle_leech_seconds
            .saturating_add(secs32(credit.leech_seconds));
        if let Some(at) = credit.completed_at.map(secs32)
            && (self.middle_completed_at == 0 || at < self.middle_completed_at)
        {
            self.middle_completed_at = at;
        }
        self.middle_flagged = self.middle_flagged.saturating_add(secs32(credit.flagged));
        let after = last.after(next);
        self.last_uploaded = pack(after.uploaded);
        self.last_downloaded = pack(after.downloaded);
        self.last_at = secs32(after.at);
        self.last_state = after.state;
        credit.flagged > 0
    }

    fn expand(&self) -> PeerReport {
        let first = Point {
            at: u64::from(self.first_at),
            uploaded: unpack(self.first_uploaded),
            downloaded: unpack(self.first_downloaded),
            state: self.first_state,
            event: self.first_event,
        };
        PeerReport {
            key: self.key,
            first,
            last: crate::private::ledger::Previous {
                uploaded: unpack(self.last_uploaded),
                downloaded: unpack(self.last_downloaded),
                at: u64::from(self.last_at),
                state: self.last_state,
                noted: None,
            },
            middle: crate::private::ledger::Credit {
                uploaded: self.middle_uploaded,
                downloaded: self.middle_downloaded,
                seed_seconds: u64::from(self.middle_seed_seconds),
                leech_seconds: u64::from(self.middle_leech_seconds),
                completed_at: (self.middle_completed_at != 0)
                    .then_some(u64::from(self.middle_completed_at)),
                flagged: u64::from(self.middle_flagged),
            },
        }
    }
}

const _: () = assert!(size_of::<CompactReport>() <= 136);

/// Bits of [`Held::seen`]: announced since the shard's clock hand last passed the
/// report, and since its user's clock hand did.
const SEEN_BY_SHARD: u8 = 1;
const SEEN_BY_USER: u8 = 2;

/// A report, and what the clocks need of it.
struct Held {
    report: CompactReport,
    /// A number no other report of the shard had: its entries in the clocks carry it.
    id: u64,
    /// Whether its loss in a crash would lose credit no later announce brings back: a
    /// `started`, a completion or a `stopped` in it.
    urgent: bool,
    /// [`SEEN_BY_SHARD`] and [`SEEN_BY_USER`].
    seen: u8,
}

/// A clock (second chance) over reports: a ring of (hash, id), in the order the
/// reports came, that a hand goes round when one must go. A report announced since the
/// hand last passed it is passed again (to the back, its bit cleared); the first one
/// not announced since goes. An entry whose report has gone (handed over, or gone by
/// the other clock) is a hole: skipped when met, counted, and swept out once holes
/// outnumber the reports.
///
/// An announce of a held report only sets two bits in it: the clocks cost nothing per
/// re-announce, where a queue of exact least recently seen order costs an entry per
/// announce and a lookup per entry to drop the stale ones.
#[derive(Default)]
struct Clock {
    ring: VecDeque<(u64, u64)>,
    holes: usize,
}

impl Clock {
    /// Sweeps the holes out once they outnumber `live` entries by more than `slack`.
    fn tidy(&mut self, live: usize, slack: usize, reports: &HashTable<Held>) {
        if self.holes > live + slack {
            self.ring
                .retain(|&(hash, id)| reports.find(hash, |h| h.id == id).is_some());
            self.holes = 0;
        }
    }

    /// One report that had an entry here has gone, taken from the other clock: its
    /// entry goes if it is the next one, and is a hole otherwise.
    fn forget(&mut self, hash: u64, id: u64) {
        if self.ring.front() == Some(&(hash, id)) {
            self.ring.pop_front();
        } else {
            self.holes += 1;
        }
    }
}

/// A user's reports in a shard.
#[derive(Default)]
struct UserReports {
    count: usize,
    clock: Clock,
}

/// Which clock an entry was taken from.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Hand {
    Shard,
    User,
}

/// The reports of one request worker's torrents.
pub struct AccountingShard {
    rules: AccountingRules,
    reports: HashTable<Held>,
    hasher: DefaultHashBuilder,
    /// Every report, in the order they came.
    clock: Clock,
    /// Per user with reports: how many, and their clock.
    users: HashMap<UserId, UserReports>,
    next_id: u64,
    urgent: usize,
    evicted: u64,
    flagged: u64,
    /// The most reports held at a hand-over lately (it decays by a quarter at each):
    /// the tables keep room for that many, rather than growing again from nothing
    /// after every hand-over.
    recent_peak: usize,
}

impl AccountingShard {
    /// An empty shard under `rules`.
    pub fn new(rules: AccountingRules) -> Self {
        Self {
            rules,
            reports: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            clock: Clock::default(),
            users: HashMap::new(),
            next_id: 0,
            urgent: 0,
            evicted: 0,
            flagged: 0,
            recent_peak: 0,
        }
    }

    /// Applies one accepted announce at `now` (Unix seconds).
    pub fn announce(&mut self, announce: &AccountAnnounce, now: u64) -> AnnounceOutcome {
        let point = announce.point(now);
        let key = announce.key;
        let urgent = matches!(
            announce.event,
            AnnounceEvent::Started | AnnounceEvent::Completed | AnnounceEvent::Stopped
        );
        let hash = self.hasher.hash_one(key);
        let hasher = &self.hasher;
        match self.reports.entry(
            hash,
            |h| h.report.key == key,
            |h| hasher.hash_one(h.report.key),
        ) {
            Entry::Occupied(mut occupied) => {
                let held = occupied.get_mut();
                if held.report.merge(&point, &self.rules.credit) {
                    self.flagged = self.flagged.saturating_add(1);
                }
                held.seen = SEEN_BY_SHARD | SEEN_BY_USER;
                if urgent && !held.urgent {
                    held.urgent = true;
                    self.urgent += 1;
                }
                AnnounceOutcome::Merged
            }
            Entry::Vacant(_) => {
                let outcome = if self.make_room(key.user) {
                    AnnounceOutcome::Evicted
                } else {
                    AnnounceOutcome::New
                };
                let report = CompactReport::of(&PeerReport::new(key, point));
                self.insert(hash, report, urgent, false);
                outcome
            }
        }
    }

    /// Before a new report of `user`: if the user or the shard is at its cap, evicts
    /// by that clock; whether a report went.
    fn make_room(&mut self, user: UserId) -> bool {
        let of_user = self.users.get(&user).map_or(0, |u| u.count);
        if of_user >= self.rules.max_peers_per_user {
            self.evict(Hand::User, user)
        } else if self.reports.len() >= self.rules.max_peers {
            self.evict(Hand::Shard, user)
        } else {
            false
        }
    }

    /// Holds a new report, its entries at the back of the clocks (or at the front,
    /// `first`: the next to go).
    fn insert(&mut self, hash: u64, report: CompactReport, urgent: bool, first: bool) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let user = report.key.user;
        let hasher = &self.hasher;
        self.reports.insert_unique(
            hash,
            Held {
                report,
                id,
                urgent,
                seen: 0,
            },
            |h| hasher.hash_one(h.report.key),
        );
        if urgent {
            self.urgent += 1;
        }
        let reports = self.users.entry(user).or_default();
        reports.count += 1;
        for ring in [&mut self.clock.ring, &mut reports.clock.ring] {
            if first {
                ring.push_front((hash, id));
            } else {
                ring.push_back((hash, id));
            }
        }
    }

    /// Removes the report that the shard's clock (`Hand::Shard`) or `user`'s
    /// (`Hand::User`) shows next, not announced since the hand last passed it, counted
    /// as an eviction; whether one went.
    fn evict(&mut self, hand: Hand, user: UserId) -> bool {
        let bit = match hand {
            Hand::Shard => SEEN_BY_SHARD,
            Hand::User => SEEN_BY_USER,
        };
        loop {
            let clock = match hand {
                Hand::Shard => &mut self.clock,
                Hand::User => match self.users.get_mut(&user) {
                    Some(reports) => &mut reports.clock,
                    None => return false,
                },
            };
            let Some((hash, id)) = clock.ring.pop_front() else {
                return false;
            };
            match self.reports.find_mut(hash, |h| h.id == id) {
                Some(held) if held.seen & bit != 0 => {
                    held.seen &= !bit;
                    clock.ring.push_back((hash, id));
                }
                Some(_) => {
                    self.remove_taken(hash, id, hand);
                    self.evicted = self.evicted.saturating_add(1);
                    return true;
                }
                None => clock.holes = clock.holes.saturating_sub(1),
            }
        }
    }

    /// Removes the report of the entry (`hash`, `id`) just taken from `hand`'s clock,
    /// if it is not a hole; its entry in the other clock goes too.
    fn remove_taken(&mut self, hash: u64, id: u64, hand: Hand) -> Option<Held> {
        let Ok(found) = self.reports.find_entry(hash, |h| h.id == id) else {
            // A hole (`evict` meets its own before it gets here).
            if hand == Hand::Shard {
                self.clock.holes = self.clock.holes.saturating_sub(1);
            }
            return None;
        };
        let (held, _) = found.remove();
        if held.urgent {
            self.urgent = self.urgent.saturating_sub(1);
        }
        let user = held.report.key.user;
        if let Some(reports) = self.users.get_mut(&user) {
            reports.count = reports.count.saturating_sub(1);
            if reports.count == 0 {
                self.users.remove(&user);
            } else if hand == Hand::Shard {
                reports.clock.forget(hash, id);
                reports.clock.tidy(reports.count, 16, &self.reports);
            }
        }
        if hand == Hand::User {
            self.clock.forget(hash, id);
            self.clock.tidy(self.reports.len(), 1024, &self.reports);
        }
        Some(held)
    }

    /// Moves at most `max` reports (those that came first, first) into `out`,
    /// forgetting them. Returns how many were moved.
    pub fn take_pending(&mut self, out: &mut Vec<PeerReport>, max: usize) -> usize {
        let before = out.len();
        self.recent_peak = self
            .reports
            .len()
            .max(self.recent_peak - self.recent_peak / 4);
        while out.len() - before < max {
            let Some((hash, id)) = self.clock.ring.pop_front() else {
                break;
            };
            if let Some(held) = self.remove_taken(hash, id, Hand::Shard) {
                out.push(held.report.expand());
            }
        }
        if self.reports.is_empty() {
            self.clock.ring.clear();
            self.clock.holes = 0;
            self.users.clear();
            self.shrink();
        }
        out.len() - before
    }

    /// Moves every report into `out` (a stopping worker's last hand-over).
    pub fn take_all(&mut self, out: &mut Vec<PeerReport>) -> usize {
        self.take_pending(out, usize::MAX)
    }

    /// After a burst (every peer announcing within one hand-over, as after a restart)
    /// the tables would keep room for all of them: they keep room for the recent peak.
    fn shrink(&mut self) {
        let keep = self.recent_peak;
        if self.reports.capacity() > 2 * keep + 1024 {
            self.reports
                .shrink_to(keep, |h| self.hasher.hash_one(h.report.key));
        }
        if self.clock.ring.capacity() > 2 * keep + 1024 {
            self.clock.ring.shrink_to(keep);
        }
        if self.users.capacity() > 2 * keep + 1024 {
            self.users.shrink_to(keep);
        }
    }

    /// Puts reports that could not be handed over back. A peer that announced since
    /// keeps one report: the one put back, followed by the newer. One that did not is
    /// held again like a new peer (within the caps, evicting by the clocks), at the
    /// front of the clocks.
    pub fn put_back(&mut self, reports: Vec<PeerReport>) {
        for mut report in reports {
            let key = report.key;
            let hash = self.hasher.hash_one(key);
            let urgent = report.first.event != AnnounceEvent::None
                || report.middle.completed_at.is_some()
                || report.last.state == PeerState::Stopped;
            if let Some(held) = self.reports.find_mut(hash, |h| h.report.key == key) {
                report.merge_report(&held.report.expand(), &self.rules.credit);
                held.report = CompactReport::of(&report);
                if urgent && !held.urgent {
                    held.urgent = true;
                    self.urgent += 1;
                }
                continue;
            }
            // Within the caps like a new peer; came first, so first to go again.
            self.make_room(key.user);
            self.insert(hash, CompactReport::of(&report), urgent, true);
        }
    }

    /// Reports held.
    pub fn num_peers(&self) -> usize {
        self.reports.len()
    }

    /// Whether some report is urgent (a `started`, a completion or a `stopped`).
    pub fn has_urgent(&self) -> bool {
        self.urgent > 0
    }

    /// Reports evicted by a limit, since the shard was made.
    pub fn num_evicted(&self) -> u64 {
        self.evicted
    }

    /// Announces flagged for their upload speed while merging, since the shard was
    /// made (the database flags the first step of each report).
    pub fn num_flagged(&self) -> u64 {
        self.flagged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn rules(max_peers: usize, per_user: usize) -> AccountingRules {
        AccountingRules {
            credit: CreditRules {
                interval_secs: 1800,
                grace_secs: 300,
                flag_upload_bytes_per_sec: 0,
            },
            max_peers,
            max_peers_per_user: per_user,
        }
    }

    fn ann(user: UserId, peer: u8, uploaded: u64, event: AnnounceEvent) -> AccountAnnounce {
        AccountAnnounce {
            key: PeerKey {
                user,
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([peer; 20]),
            },
            uploaded: Some(uploaded),
            downloaded: Some(0),
            left: 0,
            event,
        }
    }

    fn take(shard: &mut AccountingShard) -> Vec<PeerReport> {
        let mut out = Vec::new();
        shard.take_pending(&mut out, usize::MAX);
        out.sort_by_key(|r| r.key);
        out
    }

    #[test]
    fn announces_of_one_peer_merge_into_one_report_and_hand_over_forgets_it() {
        let mut shard = AccountingShard::new(rules(10, 10));
        assert_eq!(
            shard.announce(&ann(1, 1, 0, AnnounceEvent::Started), T0),
            AnnounceOutcome::New
        );
        assert_eq!(
            shard.announce(&ann(1, 1, 500, AnnounceEvent::None), T0 + 60),
            AnnounceOutcome::Merged
        );
        assert!(shard.has_urgent());
        let reports = take(&mut shard);
        assert_eq!(reports.len(), 1);
        let r = reports[0];
        assert_eq!(r.first.at, T0);
        assert_eq!(r.last.at, T0 + 60);
        assert_eq!(r.middle.uploaded, 500);
        assert_eq!(r.middle.seed_seconds, 60);
        assert_eq!(shard.num_peers(), 0);
        assert!(!shard.has_urgent());
        assert!(take(&mut shard).is_empty());
    }

    #[test]
    fn a_new_peer_over_the_user_cap_takes_the_place_of_that_users_least_recently_seen() {
        let mut shard = AccountingShard::new(rules(100, 3));
        for peer in 1..=3 {
            shard.announce(
                &ann(1, peer, 0, AnnounceEvent::Started),
                T0 + u64::from(peer),
            );
        }
        // Peer 1 seen again: peer 2 is now the least recently seen.
        shard.announce(&ann(1, 1, 10, AnnounceEvent::None), T0 + 10);
        // Another user is not touched.
        shard.announce(&ann(2, 9, 0, AnnounceEvent::Started), T0 + 11);
        assert_eq!(
            shard.announce(&ann(1, 4, 0, AnnounceEvent::Started), T0 + 12),
            AnnounceOutcome::Evicted
        );
        assert_eq!(shard.num_evicted(), 1);
        let peers: Vec<(UserId, u8)> = take(&mut shard)
            .iter()
            .map(|r| (r.key.user, r.key.peer_id.0[0]))
            .collect();
        assert_eq!(peers, vec![(1, 1), (1, 3), (1, 4), (2, 9)]);
    }

    #[test]
    fn a_new_peer_over_the_shard_cap_takes_the_place_of_the_least_recently_seen() {
        let mut shard = AccountingShard::new(rules(2, 10));
        shard.announce(&ann(1, 1, 0, AnnounceEvent::Started), T0);
        shard.announce(&ann(2, 2, 0, AnnounceEvent::Started), T0 + 1);
        shard.announce(&ann(1, 1, 5, AnnounceEvent::None), T0 + 2);
        assert_eq!(
            shard.announce(&ann(3, 3, 0, AnnounceEvent::Started), T0 + 3),
            AnnounceOutcome::Evicted
        );
        let users: Vec<UserId> = take(&mut shard).iter().map(|r| r.key.user).collect();
        assert_eq!(users, vec![1, 3]);
    }

    #[test]
    fn thousands_of_peer_ids_over_restarts_never_fill_the_shard() {
        // A seedbox of 1,000 torrents restarted 30 times: each restart is a new peer id
        // per torrent. With the reports handed over after each restart, nothing stays.
        let mut shard = AccountingShard::new(rules(1_000_000, 2_000));
        for restart in 0..30u64 {
            for torrent in 0..1_000u32 {
                let mut a = ann(1, 0, 0, AnnounceEvent::Started);
                a.key.info_hash.0[..4].copy_from_slice(&torrent.to_be_bytes());
                a.key.peer_id.0[..8].copy_from_slice(&restart.to_be_bytes());
                assert_eq!(
                    shard.announce(&a, T0 + restart * 3600),
                    AnnounceOutcome::New
                );
            }
            assert_eq!(take(&mut shard).len(), 1_000);
        }
        assert_eq!(shard.num_evicted(), 0);
        assert_eq!(shard.num_peers(), 0);
    }

    #[test]
    fn merges_add_no_clock_entries() {
        let mut shard = AccountingShard::new(rules(100, 100));
        for i in 0..100_000u64 {
            shard.announce(&ann(1, (i % 7) as u8, i, AnnounceEvent::None), T0 + i);
        }
        assert_eq!(shard.clock.ring.len(), 7);
        assert_eq!(shard.users[&1].clock.ring.len(), 7);
        assert_eq!(take(&mut shard).len(), 7);
    }

    #[test]
    fn clocks_stay_bounded_under_evictions_of_both_kinds() {
        // Users 1..=4, each over its cap of 3 in turn, in a shard capped at 8: both
        // clocks evict, each leaving holes in the other.
        let mut shard = AccountingShard::new(rules(8, 3));
        for i in 0..20_000u64 {
            let user = 1 + (i % 4) as i64;
            let peer = (i / 4 % 251) as u8;
            shard.announce(&ann(user, peer, i, AnnounceEvent::None), T0 + i);
            assert!(shard.num_peers() <= 8);
            let live = shard.num_peers();
            assert_eq!(shard.clock.ring.len(), live + shard.clock.holes);
            assert!(shard.clock.holes <= live + 1024);
            for reports in shard.users.values() {
                assert!(reports.count <= 3);
                assert_eq!(
                    reports.clock.ring.len(),
                    reports.count + reports.clock.holes
                );
                assert!(reports.clock.holes <= reports.count + 16);
            }
        }
        assert!(shard.num_evicted() > 0);
    }

    #[test]
    fn put_back_keeps_one_report_older_first() {
        let mut shard = AccountingShard::new(rules(10, 10));
        shard.announce(&ann(1, 1, 0, AnnounceEvent::Started), T0);
        let taken = take(&mut shard);
        shard.announce(&ann(1, 1, 300, AnnounceEvent::None), T0 + 100);
        shard.put_back(taken);
        let reports = take(&mut shard);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].first.at, T0);
        assert_eq!(reports[0].first.event, AnnounceEvent::Started);
        assert_eq!(reports[0].last.at, T0 + 100);
        assert_eq!(reports[0].middle.uploaded, 300);
        assert_eq!(reports[0].middle.seed_seconds, 100);
    }

    proptest::proptest! {
        /// A report held compact comes back as it went in, for counters below
        /// `u64::MAX` and times before 2106.
        #[test]
        fn a_compact_report_round_trips(
            counters in proptest::array::uniform6(proptest::option::of(0..u64::MAX)),
            times in proptest::array::uniform4(0..u64::from(u32::MAX)),
            middle in proptest::array::uniform2(0..u64::MAX),
            completed in proptest::option::of(1..u64::from(u32::MAX)),
            events in (0..4u8, 0..3u8, 0..3u8),
        ) {
            let state = |n: u8| match n {
                0 => PeerState::Leeching,
                1 => PeerState::Seeding,
                _ => PeerState::Stopped,
            };
            let event = match events.0 {
                0 => AnnounceEvent::None,
                1 => AnnounceEvent::Started,
                2 => AnnounceEvent::Completed,
                _ => AnnounceEvent::Stopped,
            };
            let report = PeerReport {
                key: PeerKey { user: -5, info_hash: InfoHash([3; 20]), peer_id: PeerId([4; 20]) },
                first: Point {
                    at: times[0],
                    uploaded: counters[0],
                    downloaded: counters[1],
                    state: state(events.1),
                    event,
                },
                last: crate::private::ledger::Previous {
                    uploaded: counters[2],
                    downloaded: counters[3],
                    at: times[1],
                    state: state(events.2),
                    noted: None,
                },
                middle: crate::private::ledger::Credit {
                    uploaded: middle[0],
                    downloaded: middle[1],
                    seed_seconds: times[2],
                    leech_seconds: times[3],
                    completed_at: completed,
                    flagged: counters[4].unwrap_or(0) % 1000,
                },
            };
            proptest::prop_assert_eq!(CompactReport::of(&report).expand(), report);
        }
    }

    #[test]
    fn a_compact_merge_is_the_report_merge() {
        let credit = rules(1, 1).credit;
        let key = ann(1, 1, 0, AnnounceEvent::Started).key;
        let steps = [
            (AnnounceEvent::None, Some(500), 0, 60),
            (AnnounceEvent::Completed, Some(900), 0, 400),
            (AnnounceEvent::None, None, 0, 500),
            (AnnounceEvent::None, Some(100), 5, 3000),
            (AnnounceEvent::Stopped, Some(200), 5, 3100),
        ];
        let mut full = PeerReport::new(key, ann(1, 1, 0, AnnounceEvent::Started).point(T0));
        let mut compact = CompactReport::of(&full);
        for (event, uploaded, left, offset) in steps {
            let mut a = ann(1, 1, 0, event);
            a.uploaded = uploaded;
            a.left = left;
            let point = a.point(T0 + offset);
            full.merge(&point, &credit);
            compact.merge(&point, &credit);
            full.last.noted = None;
            assert_eq!(compact.expand(), full, "after {event:?} at +{offset}");
        }
    }

    /// The clock rule on its own, for the model test: per scope a ring of peers in the
    /// order they came; an announce of a held peer marks it seen in both rings; a new
    /// peer over a cap sends that scope's hand round, passing (to the back, unmarked)
    /// the peers seen since it last passed them, and the first one not seen goes,
    /// from both rings. A hand-over takes the shard ring's first peers; a put-back
    /// peer goes to the front of both.
    #[derive(Default)]
    struct ClockModel {
        shard: Vec<(UserId, u8)>,
        users: std::collections::BTreeMap<UserId, Vec<(UserId, u8)>>,
        seen_shard: std::collections::BTreeSet<(UserId, u8)>,
        seen_user: std::collections::BTreeSet<(UserId, u8)>,
    }

    impl ClockModel {
        fn held(&self, peer: (UserId, u8)) -> bool {
            self.shard.contains(&peer)
        }

        fn drop_peer(&mut self, peer: (UserId, u8)) {
            self.shard.retain(|p| *p != peer);
            if let Some(ring) = self.users.get_mut(&peer.0) {
                ring.retain(|p| *p != peer);
            }
            self.seen_shard.remove(&peer);
            self.seen_user.remove(&peer);
        }

        /// The scope's hand goes round; the peer that goes.
        fn hand(&mut self, user: Option<UserId>) -> (UserId, u8) {
            loop {
                let (ring, seen) = match user {
                    Some(u) => (self.users.entry(u).or_default(), &mut self.seen_user),
                    None => (&mut self.shard, &mut self.seen_shard),
                };
                let first = ring.remove(0);
                if seen.remove(&first) {
                    ring.push(first);
                } else {
                    self.drop_peer(first);
                    return first;
                }
            }
        }

        fn announce(&mut self, peer: (UserId, u8), max_peers: usize, per_user: usize) {
            if self.held(peer) {
                self.seen_shard.insert(peer);
                self.seen_user.insert(peer);
                return;
            }
            self.make_room(peer.0, max_peers, per_user);
            self.shard.push(peer);
            self.users.entry(peer.0).or_default().push(peer);
        }

        /// Whether a peer went.
        fn make_room(&mut self, user: UserId, max_peers: usize, per_user: usize) -> bool {
            if self.users.get(&user).map_or(0, Vec::len) >= per_user {
                self.hand(Some(user));
                true
            } else if self.shard.len() >= max_peers {
                self.hand(None);
                true
            } else {
                false
            }
        }

        fn take(&mut self, max: usize) -> Vec<(UserId, u8)> {
            let taken: Vec<_> = self.shard.iter().copied().take(max).collect();
            for peer in &taken {
                self.drop_peer(*peer);
            }
            taken
        }

        /// How many peers went.
        fn put_back(&mut self, peers: &[(UserId, u8)], max_peers: usize, per_user: usize) -> u64 {
            let mut evicted = 0;
            for peer in peers {
                if !self.held(*peer) {
                    evicted += u64::from(self.make_room(peer.0, max_peers, per_user));
                    self.shard.insert(0, *peer);
                    self.users.entry(peer.0).or_default().insert(0, *peer);
                }
            }
            evicted
        }
    }

    fn peer_of(report: &CompactReport) -> (UserId, u8) {
        (report.key.user, report.key.peer_id.0[0])
    }

    /// The shard's rings, holes skipped, with the peers marked seen in each.
    #[allow(clippy::type_complexity)]
    fn rings_of(
        shard: &AccountingShard,
    ) -> (
        Vec<(UserId, u8)>,
        Vec<(UserId, u8)>,
        std::collections::BTreeMap<UserId, Vec<(UserId, u8)>>,
        Vec<(UserId, u8)>,
    ) {
        let live = |ring: &VecDeque<(u64, u64)>| -> Vec<&Held> {
            ring.iter()
                .filter_map(|&(hash, id)| shard.reports.find(hash, |h| h.id == id))
                .collect()
        };
        let ring = live(&shard.clock.ring);
        let seen_shard = ring
            .iter()
            .filter(|h| h.seen & SEEN_BY_SHARD != 0)
            .map(|h| peer_of(&h.report))
            .collect();
        let mut users = std::collections::BTreeMap::new();
        let mut seen_user = Vec::new();
        for (user, reports) in &shard.users {
            let ring = live(&reports.clock.ring);
            seen_user.extend(
                ring.iter()
                    .filter(|h| h.seen & SEEN_BY_USER != 0)
                    .map(|h| peer_of(&h.report)),
            );
            users.insert(*user, ring.iter().map(|h| peer_of(&h.report)).collect());
        }
        seen_user.sort_unstable();
        (
            ring.iter().map(|h| peer_of(&h.report)).collect(),
            seen_shard,
            users,
            seen_user,
        )
    }

    #[derive(Debug, Clone)]
    enum Op {
        Announce(UserId, u8),
        Take(usize),
        PutBack,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (1..=3i64, 0..6u8).prop_map(|(u, p)| Op::Announce(u, p)),
            1 => (0..6usize).prop_map(Op::Take),
            1 => Just(Op::PutBack),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]
        #[test]
        fn the_clocks_follow_the_rule(
            max_peers in 1..9usize,
            per_user in 1..6usize,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut shard = AccountingShard::new(rules(max_peers, per_user));
            let mut model = ClockModel::default();
            let mut in_flight: Vec<PeerReport> = Vec::new();
            let mut evictions = 0u64;
            for (t, op) in ops.into_iter().enumerate() {
                let now = T0 + t as u64;
                match op {
                    Op::Announce(user, peer) => {
                        let outcome =
                            shard.announce(&ann(user, peer, t as u64, AnnounceEvent::None), now);
                        let held_before = model.held((user, peer));
                        let before = model.shard.len();
                        model.announce((user, peer), max_peers, per_user);
                        let expected = if held_before {
                            AnnounceOutcome::Merged
                        } else if model.shard.len() == before {
                            AnnounceOutcome::Evicted
                        } else {
                            AnnounceOutcome::New
                        };
                        proptest::prop_assert_eq!(outcome, expected);
                        evictions += u64::from(outcome == AnnounceOutcome::Evicted);
                    }
                    Op::Take(max) => {
                        let mut out = Vec::new();
                        shard.take_pending(&mut out, max);
                        let taken: Vec<(UserId, u8)> = out
                            .iter()
                            .map(|r| (r.key.user, r.key.peer_id.0[0]))
                            .collect();
                        proptest::prop_assert_eq!(taken, model.take(max));
                        in_flight.extend(out);
                    }
                    Op::PutBack => {
                        let peers: Vec<(UserId, u8)> = in_flight
                            .iter()
                            .map(|r| (r.key.user, r.key.peer_id.0[0]))
                            .collect();
                        shard.put_back(std::mem::take(&mut in_flight));
                        evictions += model.put_back(&peers, max_peers, per_user);
                    }
                }
                let (ring, seen_shard, users, seen_user) = rings_of(&shard);
                proptest::prop_assert_eq!(&ring, &model.shard);
                proptest::prop_assert_eq!(
                    seen_shard.iter().copied().collect::<std::collections::BTreeSet<_>>(),
                    model.seen_shard.clone()
                );
                let model_users: std::collections::BTreeMap<_, _> = model
                    .users
                    .iter()
                    .filter(|(_, r)| !r.is_empty())
                    .map(|(u, r)| (*u, r.clone()))
                    .collect();
                proptest::prop_assert_eq!(users, model_users);
                proptest::prop_assert_eq!(
                    seen_user,
                    model.seen_user.iter().copied().collect::<Vec<_>>()
                );
                proptest::prop_assert!(ring.len() <= max_peers);
                proptest::prop_assert_eq!(shard.num_peers(), ring.len());
                proptest::prop_assert_eq!(shard.num_evicted(), evictions);
            }
        }
    }

    #[test]
    fn shard_share_splits_and_never_reaches_zero() {
        let credit = rules(1, 1).credit;
        let r = AccountingRules::shard_share(credit, 4_000_000, 2_000, 3);
        assert_eq!((r.max_peers, r.max_peers_per_user), (1_333_333, 666));
        let r = AccountingRules::shard_share(credit, 1, 1, 8);
        assert_eq!((r.max_peers, r.max_peers_per_user), (1, 1));
    }
}
