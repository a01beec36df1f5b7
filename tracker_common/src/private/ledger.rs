//! The credit rules of private mode, applied by the database transaction.
//!
//! A tracker does not decide credit. It reports what its peers announced ([`PeerReport`]:
//! the first and last announce of a peer since its previous report, and what the
//! announces in between credited), and the batch's transaction computes the credit
//! against the committed state ([`apply`]), under the database's accounting lock. So
//! whatever number of processes or nodes saw a peer, its credit is decided once:
//!
//! - **Peer marks.** Each peer (user, torrent, peer id) has a high-water mark: its
//!   counters, state and time at the latest announce any committed batch reported. A
//!   report is credited against it: what its counters went beyond the mark, and the time
//!   since the mark. A report whose last announce is older than the mark (another
//!   tracker already reported later ones) credits nothing; one that overlaps it credits
//!   only what goes beyond it. A retried batch is found by its id and applies nothing.
//! - **Time marks.** Seeding and leeching time is credited per (user, torrent), in wall
//!   clock: each (user, torrent) has the time up to which its seeding (and its leeching)
//!   was credited, and a report adds only time after it. A hundred peer ids of one user
//!   seeding one torrent earn its wall-clock time once; two trackers reporting one peer
//!   the same.
//!
//! # Rules of one step (from a peer's previous announce to its next)
//! - BEP 3's `uploaded` and `downloaded` count from the client's `started`. A step is
//!   credited `new - previous` per direction, or `new` where the counter went backwards
//!   (the client counts anew), but never more than `new - previous` within one second
//!   (two trackers' reports of one second, in any order). A missing or negative counter
//!   is unchanged.
//! - `started`: counters from zero are credited, unless the peer is live (its mark is
//!   recent and not stopped) and its counters did not go backwards: that is the same
//!   session announcing `started` to a second tracker, credited like any other step.
//! - A peer without a mark that is not `started` (its state was lost or expired, or
//!   another tracker's report of its start is late) sets the mark and is credited
//!   nothing: its counters are *noted*. When the report of the `started` they count
//!   from arrives (even older than the mark), the noted counters are credited, once; a
//!   `started` of a new session drops them. One whose counters are missing sets
//!   nothing.
//! - Time since the previous announce is credited to the state the peer was in
//!   (seeding if its `left` was 0), only when that gap is at most the announce interval
//!   plus the grace, and never across a `stopped` (the stopped state is a mark too).
//! - A completion is `event=completed` with `left == 0` from a peer that was not seeding.
//! - A step whose upload over its gap (at least one second) exceeds the flag rate is
//!   flagged, never refused.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use hashbrown::HashMap;

use crate::private::store::{
    Batch, CreditRow, Factors, Ledger, PeerKey, PeerMark, PeerState, TimeMarks, UserTorrentKey,
};
use crate::types::{AnnounceEvent, InfoHash};

/// The numbers the rules use, from the tracker's configuration.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CreditRules {
    /// The announce interval clients are told, in seconds.
    pub interval_secs: u64,
    /// Seconds beyond the interval a gap may last and still be credited.
    pub grace_secs: u64,
    /// Upload bytes per second above which a step is flagged; 0 flags nothing.
    pub flag_upload_bytes_per_sec: u64,
}

impl CreditRules {
    /// The longest gap between two announces that is credited as time.
    pub fn max_gap(&self) -> u64 {
        self.interval_secs.saturating_add(self.grace_secs)
    }
}

/// One announce, as accounting sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// When it was, Unix seconds.
    pub at: u64,
    /// `uploaded`; `None` when it was missing or negative (unchanged).
    pub uploaded: Option<u64>,
    /// `downloaded`; `None` when it was missing or negative (unchanged).
    pub downloaded: Option<u64>,
    /// The state after it.
    pub state: PeerState,
    /// Its event.
    pub event: AnnounceEvent,
}

/// The mark a peer holds before a step: its counters (`None`: never known), time and
/// state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Previous {
    /// Counters at the previous announce.
    pub uploaded: Option<u64>,
    /// Counters at the previous announce.
    pub downloaded: Option<u64>,
    /// Its time.
    pub at: u64,
    /// The state after it.
    pub state: PeerState,
    /// Counters noted but never credited (see [`PeerMark::noted`]).
    pub noted: Option<(u64, u64)>,
}

impl From<PeerMark> for Previous {
    fn from(mark: PeerMark) -> Self {
        Self {
            uploaded: Some(mark.uploaded),
            downloaded: Some(mark.downloaded),
            at: mark.last_announce,
            state: mark.state,
            noted: mark.noted,
        }
    }
}

impl Previous {
    /// The mark after `next` was applied to it.
    pub fn after(&self, next: &Point) -> Self {
        let same_second = next.at <= self.at;
        let counter = |old: Option<u64>, new: Option<u64>| match (old, new) {
            (Some(old), Some(new)) if same_second => Some(old.max(new)),
            (old, new) => new.or(old),
        };
        Self {
            uploaded: counter(self.uploaded, next.uploaded),
            downloaded: counter(self.downloaded, next.downloaded),
            at: self.at.max(next.at),
            state: next.state,
            noted: self.noted,
        }
    }

    /// The mark a first announce sets (no previous mark): a `started`'s counters were
    /// credited; any other's are only noted.
    pub fn first(next: &Point) -> Self {
        let noted = match (next.event, next.uploaded, next.downloaded) {
            (AnnounceEvent::Started, ..) => None,
            (_, up, down) => Some((up.unwrap_or(0), down.unwrap_or(0))),
        };
        Self {
            uploaded: next.uploaded,
            downloaded: next.downloaded,
            at: next.at,
            state: next.state,
            noted,
        }
    }

    /// As stored, if its counters are known.
    pub fn to_mark(self) -> Option<PeerMark> {
        Some(PeerMark {
            uploaded: self.uploaded?,
            downloaded: self.downloaded?,
            last_announce: self.at,
            state: self.state,
            noted: self.noted,
        })
    }
}

/// What steps credited.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Credit {
    /// Bytes uploaded, as reported.
    pub uploaded: u64,
    /// Bytes downloaded, as reported.
    pub downloaded: u64,
    /// Seconds seeding.
    pub seed_seconds: u64,
    /// Seconds leeching.
    pub leech_seconds: u64,
    /// The first completion, Unix seconds.
    pub completed_at: Option<u64>,
    /// Steps flagged for their upload speed.
    pub flagged: u64,
}

impl Credit {
    /// Adds `other` to this.
    pub fn add(&mut self, other: &Credit) {
        self.uploaded = self.uploaded.saturating_add(other.uploaded);
        self.downloaded = self.downloaded.saturating_add(other.downloaded);
        self.seed_seconds = self.seed_seconds.saturating_add(other.seed_seconds);
        self.leech_seconds = self.leech_seconds.saturating_add(other.leech_seconds);
        self.completed_at = earliest(self.completed_at, other.completed_at);
        self.flagged = self.flagged.saturating_add(other.flagged);
    }
}

fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a counter that moved from `old` to `new` credits.
fn counter_step(old: Option<u64>, new: Option<u64>, same_second: bool) -> u64 {
    match (old, new) {
        (Some(old), Some(new)) if new >= old => new - old,
        // Backwards: the client counts anew, unless both are of one second.
        (Some(_), Some(new)) if !same_second => new,
        _ => 0,
    }
}

/// What one step from `previous` (none: the peer has no mark) to `next` credits.
pub fn step(previous: Option<&Previous>, next: &Point, rules: &CreditRules) -> Credit {
    let mut credit = Credit::default();
    let completes = |was_seeding: bool| {
        (next.event == AnnounceEvent::Completed && next.state == PeerState::Seeding && !was_seeding)
            .then_some(next.at)
    };
    let Some(previous) = previous else {
        if next.event == AnnounceEvent::Started {
            credit.uploaded = next.uploaded.unwrap_or(0);
            credit.downloaded = next.downloaded.unwrap_or(0);
            credit.flagged = u64::from(too_fast(rules, credit.uploaded, 1));
        }
        credit.completed_at = completes(false);
        return credit;
    };
    let same_second = next.at <= previous.at;
    let gap = next.at.saturating_sub(previous.at);
    let live = previous.state != PeerState::Stopped && gap <= rules.max_gap();
    let backwards = matches!((previous.uploaded, next.uploaded), (Some(o), Some(n)) if n < o)
        || matches!((previous.downloaded, next.downloaded), (Some(o), Some(n)) if n < o);
    // A started credited from zero: a new session (the peer stopped, went silent, or
    // counts anew); a live peer that did not count anew is the same session.
    let new_session = !live || backwards;
    if next.event == AnnounceEvent::Started && !same_second && new_session {
        credit.uploaded = next.uploaded.unwrap_or(0);
        credit.downloaded = next.downloaded.unwrap_or(0);
    } else {
        credit.uploaded = counter_step(previous.uploaded, next.uploaded, same_second);
        credit.downloaded = counter_step(previous.downloaded, next.downloaded, same_second);
    }
    if gap > 0 && gap <= rules.max_gap() {
        match previous.state {
            PeerState::Seeding => credit.seed_seconds = gap,
            PeerState::Leeching => credit.leech_seconds = gap,
            PeerState::Stopped => {}
        }
    }
    credit.completed_at = completes(previous.state == PeerState::Seeding);
    credit.flagged = u64::from(too_fast(rules, credit.uploaded, gap));
    credit
}

/// Whether `uploaded` bytes over `secs` seconds (at least one) exceed the flag rate.
fn too_fast(rules: &CreditRules, uploaded: u64, secs: u64) -> bool {
    let rate = rules.flag_upload_bytes_per_sec;
    rate > 0 && uploaded / secs.max(1) > rate
}

/// A peer's announces since its previous report, merged: what a tracker holds for a
/// peer, and what a batch carries. Its size does not grow with the announces merged.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerReport {
    /// The peer.
    pub key: PeerKey,
    /// The first announce merged: applied against the committed mark.
    pub first: Point,
    /// The mark after the last announce merged.
    pub last: Previous,
    /// What the steps from the first announce to the last credited (computed by the
    /// tracker, each against the one before, with [`step`]).
    pub middle: Credit,
}

impl PeerReport {
    /// A report of one announce.
    pub fn new(key: PeerKey, first: Point) -> Self {
        Self {
            key,
            first,
            last: Previous::first(&first),
            middle: Credit::default(),
        }
    }

    /// Merges the peer's next announce in.
    pub fn merge(&mut self, next: &Point, rules: &CreditRules) {
        let credit = step(Some(&self.last), next, rules);
        self.middle.add(&credit);
        self.last = self.last.after(next);
    }

    /// Merges a later report of the same peer in (its first announce is a step from this
    /// one's last).
    pub fn merge_report(&mut self, later: &PeerReport, rules: &CreditRules) {
        self.merge(&later.first, rules);
        self.middle.add(&later.middle);
        self.last = later.last;
    }
}

/// Credits at most `amount` seconds lying in `from..to` (Unix seconds) beyond `until`,
/// and moves `until` to `to` if anything was credited.
fn clip(amount: u64, from: u64, to: u64, until: &mut u64) -> u64 {
    if amount == 0 {
        return 0;
    }
    let credited = amount.min(to.saturating_sub(from.max(*until)));
    *until = (*until).max(to);
    credited
}

/// What [`apply`] did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Reports applied (all of them, each credited what it was owed, perhaps nothing).
    pub reports: u64,
    /// Reports older than their peer's mark: credited nothing.
    pub stale: u64,
    /// Reports that overlapped their peer's mark: credited only what went beyond it.
    pub overlapping: u64,
    /// `shoal_credits` rows added to.
    pub credit_rows: u64,
}

/// The bytes credited for `raw` under two factors, in percent.
fn factored(raw: u64, torrent: u32, global: u32) -> u64 {
    let value = u128::from(raw) * u128::from(torrent) * u128::from(global) / 10_000;
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// Applies `batch` in the transaction `ledger`: reads the marks of its peers and
/// (user, torrent)s and the factors, computes every credit against them, and writes the
/// new marks and the credits. The caller has taken the accounting lock and recorded the
/// batch id.
///
/// # Errors
/// A read or write failed; the caller rolls back.
pub fn apply(ledger: &mut dyn Ledger, batch: &Batch) -> anyhow::Result<Applied> {
    let rules = &batch.rules;
    // In time order within each (user, torrent): the time marks move forward.
    let mut reports: Vec<&PeerReport> = batch.reports.iter().collect();
    reports.sort_by_key(|r| (r.key.user_torrent(), r.last.at, r.key.peer_id, r.first.at));

    let mut peer_keys: Vec<PeerKey> = reports.iter().map(|r| r.key).collect();
    peer_keys.sort_unstable();
    peer_keys.dedup();
    let mut marks: HashMap<PeerKey, Option<Previous>> = peer_keys
        .iter()
        .copied()
        .zip(ledger.peer_marks(&peer_keys)?)
        .map(|(key, mark)| (key, mark.map(Previous::from)))
        .collect();

    let mut torrent_keys: Vec<UserTorrentKey> =
        peer_keys.iter().map(|k| k.user_torrent()).collect();
    torrent_keys.dedup();
    let mut times: HashMap<UserTorrentKey, TimeMarks> = torrent_keys
        .iter()
        .copied()
        .zip(ledger.time_marks(&torrent_keys)?)
        .map(|(key, marks)| (key, marks.unwrap_or_default()))
        .collect();

    let mut hashes: Vec<InfoHash> = torrent_keys.iter().map(|k| k.info_hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let (global, per_torrent) = ledger.factors(&hashes)?;
    let factors: HashMap<InfoHash, Factors> = hashes
        .iter()
        .copied()
        .zip(per_torrent)
        .map(|(hash, f)| (hash, f.unwrap_or_default()))
        .collect();

    let mut applied = Applied::default();
    let mut rows: HashMap<UserTorrentKey, CreditRow> = HashMap::new();
    for report in reports {
        applied.reports += 1;
        let Some(mark) = marks.get_mut(&report.key) else {
            continue;
        };
        let time = times.entry(report.key.user_torrent()).or_default();
        let mut credit = Credit::default();
        let (mut seed, mut leech) = (0, 0);
        let first_at = report.first.at;
        let last_at = report.last.at;
        // The report of the start of a peer whose mark was set without it: the noted
        // counters are credited if this start is of the session they count from.
        let (noted_credit, start_seen) = match *mark {
            Some(previous)
                if report.first.event == AnnounceEvent::Started && previous.noted.is_some() =>
            {
                let gap = first_at.saturating_sub(previous.at);
                let live = previous.state != PeerState::Stopped && gap <= rules.max_gap();
                let backwards = matches!(
                    (previous.uploaded, report.first.uploaded),
                    (Some(o), Some(n)) if n < o
                ) || matches!(
                    (previous.downloaded, report.first.downloaded),
                    (Some(o), Some(n)) if n < o
                );
                let same_session = first_at <= previous.at || (live && !backwards);
                (previous.noted.filter(|_| same_session), true)
            }
            _ => (None, false),
        };
        let new_mark = match *mark {
            Some(previous) if last_at < previous.at => {
                applied.stale += 1;
                if !start_seen {
                    continue;
                }
                Some(Previous {
                    noted: None,
                    ..previous
                })
            }
            Some(previous) if first_at < previous.at => {
                // Another tracker reported announces within this report's span: only
                // what goes beyond its mark counts, never a counter reset.
                applied.overlapping += 1;
                let forward = |old: Option<u64>, new: Option<u64>| match (old, new) {
                    (Some(old), Some(new)) => new.saturating_sub(old),
                    _ => 0,
                };
                credit.uploaded = forward(previous.uploaded, report.last.uploaded);
                credit.downloaded = forward(previous.downloaded, report.last.downloaded);
                credit.completed_at = report.middle.completed_at;
                credit.flagged = report.middle.flagged;
                seed += clip(
                    report.middle.seed_seconds,
                    previous.at,
                    last_at,
                    &mut time.seed_until,
                );
                leech += clip(
                    report.middle.leech_seconds,
                    previous.at,
                    last_at,
                    &mut time.leech_until,
                );
                let mut after = previous;
                after.uploaded = previous.uploaded.max(report.last.uploaded);
                after.downloaded = previous.downloaded.max(report.last.downloaded);
                after.at = last_at;
                after.state = report.last.state;
                if start_seen {
                    after.noted = None;
                }
                Some(after)
            }
            previous => {
                let first = step(previous.as_ref(), &report.first, rules);
                let from = previous.map_or(first_at, |p| p.at);
                seed += clip(first.seed_seconds, from, first_at, &mut time.seed_until);
                leech += clip(first.leech_seconds, from, first_at, &mut time.leech_until);
                seed += clip(
                    report.middle.seed_seconds,
                    first_at,
                    last_at,
                    &mut time.seed_until,
                );
                leech += clip(
                    report.middle.leech_seconds,
                    first_at,
                    last_at,
                    &mut time.leech_until,
                );
                credit = first;
                credit.add(&report.middle);
                if let Some(previous) = previous
                    && first_at <= previous.at
                {
                    // The first announce is of the mark's second but counted less (the
                    // other tracker's report of that second got further): the steps
                    // after it are credited only beyond the mark.
                    let behind = |mark: Option<u64>, first: Option<u64>| match (mark, first) {
                        (Some(mark), Some(first)) => mark.saturating_sub(first),
                        _ => 0,
                    };
                    credit.uploaded = credit
                        .uploaded
                        .saturating_sub(behind(previous.uploaded, report.first.uploaded));
                    credit.downloaded = credit
                        .downloaded
                        .saturating_sub(behind(previous.downloaded, report.first.downloaded));
                }
                Some(match previous {
                    Some(previous) => {
                        let mut after = merge_last(previous.after(&report.first), &report.last);
                        if start_seen {
                            after.noted = None;
                        }
                        after
                    }
                    None => Previous {
                        noted: Previous::first(&report.first).noted.map(|(up, down)| {
                            (
                                report
                                    .first
                                    .uploaded
                                    .or(report.last.uploaded)
                                    .map_or(up, |v| v),
                                report
                                    .first
                                    .downloaded
                                    .or(report.last.downloaded)
                                    .map_or(down, |v| v),
                            )
                        }),
                        ..report.last
                    },
                })
            }
        };
        let Some(new_mark) = new_mark else {
            continue;
        };
        *mark = Some(new_mark);
        if let Some((up, down)) = noted_credit {
            credit.uploaded = credit.uploaded.saturating_add(up);
            credit.downloaded = credit.downloaded.saturating_add(down);
        }
        let factor = factors
            .get(&report.key.info_hash)
            .copied()
            .unwrap_or_default();
        let row = rows
            .entry(report.key.user_torrent())
            .or_insert_with(|| CreditRow::zero(report.key.user_torrent(), first_at, last_at));
        row.uploaded_raw = row.uploaded_raw.saturating_add(credit.uploaded);
        row.downloaded_raw = row.downloaded_raw.saturating_add(credit.downloaded);
        row.uploaded = row.uploaded.saturating_add(factored(
            credit.uploaded,
            factor.upload_percent,
            global.upload_percent,
        ));
        row.downloaded = row.downloaded.saturating_add(factored(
            credit.downloaded,
            factor.download_percent,
            global.download_percent,
        ));
        row.seed_seconds = row.seed_seconds.saturating_add(seed);
        row.leech_seconds = row.leech_seconds.saturating_add(leech);
        row.completed_at = earliest(row.completed_at, credit.completed_at);
        row.first_announce = row.first_announce.min(first_at);
        row.last_announce = row.last_announce.max(last_at);
        row.flagged_announces = row.flagged_announces.saturating_add(credit.flagged);
        row.seed_until = time.seed_until;
        row.leech_until = time.leech_until;
    }

    let mut new_marks: Vec<(PeerKey, PeerMark)> = marks
        .into_iter()
        .filter_map(|(key, mark)| Some((key, mark?.to_mark()?)))
        .collect();
    new_marks.sort_unstable_by_key(|(key, _)| *key);
    let mut credit_rows: Vec<CreditRow> = rows.into_values().collect();
    credit_rows.sort_unstable_by_key(|row| row.key);
    applied.credit_rows = credit_rows.len() as u64;
    ledger.put_peer_marks(&new_marks)?;
    ledger.add_credits(&credit_rows)?;
    Ok(applied)
}

/// The mark after a report's last announce, following the mark after its first: the
/// last announce's counters, or, within the second of that mark (two trackers' reports
/// of one second), the higher of each.
fn merge_last(after_first: Previous, last: &Previous) -> Previous {
    let same_second = last.at <= after_first.at;
    let counter = |old: Option<u64>, new: Option<u64>| match (old, new) {
        (Some(old), Some(new)) if same_second => Some(old.max(new)),
        (old, new) => new.or(old),
    };
    Previous {
        uploaded: counter(after_first.uploaded, last.uploaded),
        downloaded: counter(after_first.downloaded, last.downloaded),
        at: after_first.at.max(last.at),
        state: last.state,
        noted: after_first.noted,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::private::accounting::{AccountAnnounce, AccountingRules, AccountingShard};
    use crate::private::store::memory::MemoryDatabase;
    use crate::private::store::{BatchId, CommitOutcome, UserId};
    use crate::private::writer::make_batch;
    use crate::types::PeerId;

    const T0: u64 = 1_800_000_000;

    fn rules() -> CreditRules {
        CreditRules {
            interval_secs: 1800,
            grace_secs: 300,
            flag_upload_bytes_per_sec: 0,
        }
    }

    fn point(at: u64, uploaded: u64, state: PeerState, event: AnnounceEvent) -> Point {
        Point {
            at,
            uploaded: Some(uploaded),
            downloaded: Some(0),
            state,
            event,
        }
    }

    fn mark(at: u64, uploaded: u64, state: PeerState) -> Previous {
        Previous {
            uploaded: Some(uploaded),
            downloaded: Some(0),
            at,
            state,
            noted: None,
        }
    }

    use AnnounceEvent::{Completed, Started, Stopped};
    use PeerState::{Leeching, Seeding};

    #[test]
    fn a_step_follows_the_rules() {
        let r = rules();
        let none = AnnounceEvent::None;
        // No mark: a started is credited from zero; anything else only sets the mark.
        assert_eq!(
            step(None, &point(T0, 70, Leeching, Started), &r).uploaded,
            70
        );
        assert_eq!(
            step(None, &point(T0, 70, Leeching, none), &r),
            Credit::default()
        );
        // The difference, and the time in the previous state within interval + grace.
        let c = step(
            Some(&mark(T0, 100, Seeding)),
            &point(T0 + 2100, 150, Seeding, none),
            &r,
        );
        assert_eq!((c.uploaded, c.seed_seconds, c.leech_seconds), (50, 2100, 0));
        let c = step(
            Some(&mark(T0, 100, Leeching)),
            &point(T0 + 2101, 150, Seeding, none),
            &r,
        );
        assert_eq!(
            (c.uploaded, c.leech_seconds),
            (50, 0),
            "a gap too long earns no time"
        );
        // Backwards: the client counts anew; but not within one second.
        assert_eq!(
            step(
                Some(&mark(T0, 100, Seeding)),
                &point(T0 + 5, 30, Seeding, none),
                &r
            )
            .uploaded,
            30
        );
        assert_eq!(
            step(
                Some(&mark(T0, 100, Seeding)),
                &point(T0, 30, Seeding, none),
                &r
            )
            .uploaded,
            0
        );
        // A missing counter is unchanged.
        let mut missing = point(T0 + 5, 0, Seeding, none);
        missing.uploaded = None;
        assert_eq!(
            step(Some(&mark(T0, 100, Seeding)), &missing, &r).uploaded,
            0
        );
        assert_eq!(mark(T0, 100, Seeding).after(&missing).uploaded, Some(100));
        // A started of a live peer that did not count anew is the same session (a second
        // tracker's started): the difference only.
        assert_eq!(
            step(
                Some(&mark(T0, 100, Seeding)),
                &point(T0 + 3, 120, Seeding, Started),
                &r
            )
            .uploaded,
            20
        );
        // After a stop, or counting anew, a started is credited from zero.
        assert_eq!(
            step(
                Some(&mark(T0, 100, PeerState::Stopped)),
                &point(T0 + 3, 120, Seeding, Started),
                &r
            )
            .uploaded,
            120
        );
        assert_eq!(
            step(
                Some(&mark(T0, 100, Seeding)),
                &point(T0 + 3, 5, Seeding, Started),
                &r
            )
            .uploaded,
            5
        );
        // No time across a stop; a completion only from a peer that was not seeding.
        let c = step(
            Some(&mark(T0, 100, PeerState::Stopped)),
            &point(T0 + 60, 100, Seeding, Completed),
            &r,
        );
        assert_eq!(
            (c.seed_seconds, c.leech_seconds, c.completed_at),
            (0, 0, Some(T0 + 60))
        );
        assert_eq!(
            step(
                Some(&mark(T0, 100, Seeding)),
                &point(T0 + 60, 100, Seeding, Completed),
                &r
            )
            .completed_at,
            None
        );
        let c = step(
            Some(&mark(T0, 100, Leeching)),
            &point(T0 + 60, 100, PeerState::Stopped, Stopped),
            &r,
        );
        assert_eq!(c.leech_seconds, 60, "the time up to the stop counts");
    }

    #[test]
    fn a_flag_is_raised_not_a_refusal() {
        let r = CreditRules {
            flag_upload_bytes_per_sec: 1_000,
            ..rules()
        };
        let c = step(
            Some(&mark(T0, 0, Seeding)),
            &point(T0 + 10, 10_001 * 10, Seeding, AnnounceEvent::None),
            &r,
        );
        assert_eq!((c.uploaded, c.flagged), (100_010, 1));
    }

    #[test]
    fn factors_multiply_and_saturate() {
        assert_eq!(factored(1_000, 100, 100), 1_000);
        assert_eq!(factored(1_000, 0, 100), 0);
        assert_eq!(factored(1_000, 200, 150), 3_000);
        assert_eq!(factored(u64::MAX, 200, 100), u64::MAX);
    }

    #[test]
    fn clip_credits_only_beyond_the_mark() {
        let mut until = 0;
        assert_eq!(clip(100, 1000, 1100, &mut until), 100);
        assert_eq!(until, 1100);
        assert_eq!(clip(100, 1050, 1150, &mut until), 50);
        assert_eq!(clip(100, 900, 1000, &mut until), 0);
        assert_eq!(until, 1150);
        assert_eq!(clip(0, 2000, 3000, &mut until), 0);
        assert_eq!(until, 1150, "nothing credited, nothing moved");
    }

    // The model: peers of one user on a few torrents, each one session (started, then
    // announces with counters that never go back, maybe a stop), announced to one or
    // several trackers ("writers"), each of which merges reports in its shard and hands
    // batches to the database at random moments, in any order between writers (in order
    // within one), some lost in crashes, some retried. The truth is written from what the peers did: each peer's bytes are its
    // last counter; the seeding (and the leeching) time per torrent is at most the wall
    // clock between the first and the last announce of that torrent.

    #[derive(Clone, Debug)]
    struct Announce {
        peer: usize,
        torrent: u8,
        at: u64,
        uploaded: u64,
        seeding: bool,
        event: AnnounceEvent,
        /// Which writers see it (bit set; never empty).
        writers: u8,
    }

    #[derive(Clone, Debug)]
    enum Action {
        Deliver(usize),
        /// A writer hands its reports over (a batch is queued to the database).
        Flush(usize),
        /// The database commits a writer's oldest queued batch; the reply may be lost
        /// (the batch is retried).
        Commit(usize, bool),
        /// A writer crashes: its shard and queued batches are gone.
        Crash(usize),
    }

    const WRITERS: usize = 3;

    fn scenario() -> impl Strategy<Value = (Vec<Announce>, Vec<(u8, u8)>)> {
        // Per peer: torrent, gaps between announces, upload per step, seeding flags.
        let peer = (
            0..3u8,
            proptest::collection::vec((1..2_200u64, 0..10_000u64, any::<bool>(), 1..8u8), 1..8),
            any::<bool>(),
        );
        (
            proptest::collection::vec(peer, 1..6),
            proptest::collection::vec((0..4u8, 0..WRITERS as u8), 0..80),
        )
            .prop_map(|(peers, actions)| {
                let mut announces = Vec::new();
                for (index, (torrent, steps, stops)) in peers.into_iter().enumerate() {
                    let mut at = T0 + index as u64 * 7;
                    let mut uploaded = 0;
                    // Started goes to every writer: each tracker gets its own.
                    announces.push(Announce {
                        peer: index,
                        torrent,
                        at,
                        uploaded,
                        seeding: false,
                        event: Started,
                        writers: (1 << WRITERS) - 1,
                    });
                    let last = steps.len() - 1;
                    for (n, (gap, up, seeding, writers)) in steps.into_iter().enumerate() {
                        at += gap;
                        uploaded += up;
                        let event = if n == last && stops {
                            Stopped
                        } else {
                            AnnounceEvent::None
                        };
                        announces.push(Announce {
                            peer: index,
                            torrent,
                            at,
                            uploaded,
                            seeding,
                            event,
                            writers: writers & ((1 << WRITERS) - 1) | 1,
                        });
                    }
                }
                announces.sort_by_key(|a| (a.at, a.peer));
                (announces, actions)
            })
    }

    struct Writer {
        shard: AccountingShard,
        queued: std::collections::VecDeque<Batch>,
    }

    fn shard() -> AccountingShard {
        AccountingShard::new(AccountingRules {
            credit: rules(),
            max_peers: 1_000,
            max_peers_per_user: 1_000,
        })
    }

    /// Which writers may crash.
    #[derive(Copy, Clone, PartialEq, Eq)]
    enum Crashes {
        None,
        /// Writers 1 and 2 (the first sees every announce and survives).
        Others,
        /// Any writer.
        Any,
    }

    /// Runs a scenario; returns the database and the truth per torrent (bytes, first and
    /// last announce).
    fn run(
        announces: &[Announce],
        actions: &[(u8, u8)],
        crashes: Crashes,
    ) -> (MemoryDatabase, BTreeMap<u8, (u64, u64, u64)>) {
        let user: UserId = 9;
        let mut db = MemoryDatabase::default();
        let mut writers: Vec<Writer> = (0..WRITERS)
            .map(|_| Writer {
                shard: shard(),
                queued: Default::default(),
            })
            .collect();
        let mut next_batch = 0u64;
        let flush = |w: &mut Writer, next_batch: &mut u64| {
            let mut reports = Vec::new();
            w.shard.take_pending(&mut reports, usize::MAX);
            if !reports.is_empty() {
                *next_batch += 1;
                let mut id = [0; 16];
                id[..8].copy_from_slice(&next_batch.to_be_bytes());
                w.queued
                    .push_back(make_batch(BatchId(id), reports, rules(), T0));
            }
        };
        let mut plan: Vec<Action> = Vec::new();
        let mut actions = actions.iter();
        for (i, _) in announces.iter().enumerate() {
            plan.push(Action::Deliver(i));
            // Between announces, a few random actions.
            for _ in 0..2 {
                if let Some(&(kind, w)) = actions.next() {
                    let w = usize::from(w);
                    plan.push(match kind {
                        0 | 1 => Action::Flush(w),
                        2 => Action::Commit(w, i % 3 == 0),
                        _ if crashes == Crashes::Any || (crashes == Crashes::Others && w > 0) => {
                            Action::Crash(w)
                        }
                        _ => Action::Commit(w, false),
                    });
                }
            }
        }
        for action in plan {
            match action {
                Action::Deliver(i) => {
                    let a = &announces[i];
                    for (w, writer) in writers.iter_mut().enumerate() {
                        if a.writers & (1 << w) == 0 {
                            continue;
                        }
                        // A second tracker sees it a second later.
                        let at = a.at + u64::from(w > 0 && a.writers & 1 != 0);
                        writer.shard.announce(
                            &AccountAnnounce {
                                key: PeerKey {
                                    user,
                                    info_hash: InfoHash([a.torrent; 20]),
                                    peer_id: PeerId([a.peer as u8; 20]),
                                },
                                uploaded: Some(a.uploaded),
                                downloaded: Some(0),
                                left: if a.seeding { 0 } else { 1 },
                                event: a.event,
                            },
                            at,
                        );
                    }
                }
                Action::Flush(w) => flush(&mut writers[w], &mut next_batch),
                Action::Commit(w, lost) => {
                    if let Some(batch) = writers[w].queued.front() {
                        let outcome = db.commit(batch).unwrap();
                        if lost {
                            // The reply was lost: retried, found applied.
                            assert_eq!(db.commit(batch).unwrap(), CommitOutcome::AlreadyApplied);
                        }
                        assert_eq!(outcome, CommitOutcome::Applied);
                        writers[w].queued.pop_front();
                    }
                }
                Action::Crash(w) => {
                    writers[w] = Writer {
                        shard: shard(),
                        queued: Default::default(),
                    };
                }
            }
        }
        // Whatever survived is committed, as it is within seconds; then every peer
        // announces once more to the first tracker.
        for writer in &mut writers {
            flush(writer, &mut next_batch);
            while let Some(batch) = writer.queued.pop_front() {
                db.commit(&batch).unwrap();
            }
        }
        let mut last: BTreeMap<usize, &Announce> = BTreeMap::new();
        for a in announces {
            last.insert(a.peer, a);
        }
        let end = announces.last().map_or(T0, |a| a.at) + 10;
        for a in last.values() {
            if a.event == Stopped {
                continue;
            }
            writers[0].shard.announce(
                &AccountAnnounce {
                    key: PeerKey {
                        user,
                        info_hash: InfoHash([a.torrent; 20]),
                        peer_id: PeerId([a.peer as u8; 20]),
                    },
                    uploaded: Some(a.uploaded),
                    downloaded: Some(0),
                    left: if a.seeding { 0 } else { 1 },
                    event: AnnounceEvent::None,
                },
                end,
            );
        }
        for writer in &mut writers {
            flush(writer, &mut next_batch);
            while let Some(batch) = writer.queued.pop_front() {
                db.commit(&batch).unwrap();
            }
        }
        let mut truth: BTreeMap<u8, (u64, u64, u64)> = BTreeMap::new();
        for a in last.values() {
            let entry = truth.entry(a.torrent).or_insert((0, u64::MAX, 0));
            entry.0 += a.uploaded;
        }
        for a in announces {
            let entry = truth.entry(a.torrent).or_insert((0, u64::MAX, 0));
            entry.1 = entry.1.min(a.at);
            entry.2 = entry.2.max(a.at + 1).max(end);
        }
        (db, truth)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Several writers, reordered batches, lost replies: every byte once, time never
        /// beyond the wall clock.
        #[test]
        fn several_writers_credit_every_byte_once((announces, actions) in scenario()) {
            let (db, truth) = run(&announces, &actions, Crashes::None);
            for (torrent, (bytes, first, last)) in &truth {
                let row = db.credits.iter().find(|(k, _)| k.info_hash == InfoHash([*torrent; 20]));
                let (uploaded, seconds) = row.map_or((0, 0), |(_, r)| (r.uploaded, r.seed_seconds + r.leech_seconds));
                prop_assert_eq!(uploaded, *bytes, "torrent {}", torrent);
                // Seeding and leeching each within the wall clock of the torrent.
                let seed = row.map_or(0, |(_, r)| r.seed_seconds);
                let leech = row.map_or(0, |(_, r)| r.leech_seconds);
                prop_assert!(seed <= last - first && leech <= last - first, "{} {} {}", seed, leech, last - first);
                let _ = seconds;
            }
        }

        /// A tracker that crashes loses its reports; the one that saw every announce
        /// and survives has them all credited, each byte once.
        #[test]
        fn a_crashed_writer_loses_nothing_the_others_saw((announces, actions) in scenario()) {
            let (db, truth) = run(&announces, &actions, Crashes::Others);
            for (torrent, (bytes, first, last)) in &truth {
                let row = db.credits.iter().find(|(k, _)| k.info_hash == InfoHash([*torrent; 20]));
                prop_assert_eq!(row.map_or(0, |(_, r)| r.uploaded), *bytes, "torrent {}", torrent);
                prop_assert!(row.map_or(0, |(_, r)| r.seed_seconds) <= last - first);
            }
        }

        /// When every tracker may crash, a peer whose every report of its start was lost
        /// is credited from its next committed mark on: less, never more.
        #[test]
        fn crashes_never_double((announces, actions) in scenario()) {
            let (db, truth) = run(&announces, &actions, Crashes::Any);
            for (torrent, (bytes, first, last)) in &truth {
                let row = db.credits.iter().find(|(k, _)| k.info_hash == InfoHash([*torrent; 20]));
                prop_assert!(row.map_or(0, |(_, r)| r.uploaded) <= *bytes, "torrent {}", torrent);
                prop_assert!(row.map_or(0, |(_, r)| r.seed_seconds) <= last - first);
            }
        }
    }

    #[test]
    fn a_start_reported_late_credits_the_noted_counters_once() {
        let key = PeerKey {
            user: 1,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([1; 20]),
        };
        let batch = |id: u8, report: PeerReport| Batch {
            id: BatchId([id; 16]),
            reports: vec![report],
            rules: rules(),
            created_at: T0,
        };
        let none = AnnounceEvent::None;
        let mut db = MemoryDatabase::default();
        // The tracker that saw the start is behind: another's later report comes first,
        // and its counters are only noted.
        db.commit(&batch(
            1,
            PeerReport::new(key, point(T0 + 60, 500, Leeching, none)),
        ))
        .unwrap();
        assert_eq!(db.credits[&key.user_torrent()].uploaded, 0);
        assert_eq!(db.marks[&key].noted, Some((500, 0)));
        db.commit(&batch(
            2,
            PeerReport::new(key, point(T0 + 120, 800, Leeching, none)),
        ))
        .unwrap();
        assert_eq!(db.credits[&key.user_torrent()].uploaded, 300);
        // The start arrives, older than the mark: the noted 500 are credited, once.
        let mut start = PeerReport::new(key, point(T0, 0, Leeching, Started));
        start.merge(&point(T0 + 60, 500, Leeching, none), &rules());
        db.commit(&batch(3, start)).unwrap();
        assert_eq!(db.credits[&key.user_torrent()].uploaded, 800);
        assert_eq!(db.marks[&key].noted, None);
        db.commit(&batch(
            4,
            PeerReport::new(key, point(T0, 0, Leeching, Started)),
        ))
        .unwrap();
        assert_eq!(db.credits[&key.user_torrent()].uploaded, 800, "once");

        // A start of a new session (after a stop) drops the noted counters: they count
        // from a start that may have been credited under a mark since forgotten.
        let other = PeerKey {
            peer_id: PeerId([2; 20]),
            ..key
        };
        db.commit(&batch(
            5,
            PeerReport::new(other, point(T0, 900, Leeching, none)),
        ))
        .unwrap();
        let stop = PeerReport::new(other, point(T0 + 10, 950, PeerState::Stopped, Stopped));
        db.commit(&batch(6, stop)).unwrap();
        db.commit(&batch(
            7,
            PeerReport::new(other, point(T0 + 20, 0, Leeching, Started)),
        ))
        .unwrap();
        assert_eq!(
            db.credits[&key.user_torrent()].uploaded,
            850,
            "800 + the 50 after the mark"
        );
        assert_eq!(db.marks[&other].noted, None);
    }

    #[test]
    fn one_writer_in_order_credits_the_exact_time() {
        // One peer, one tracker, every announce its own batch.
        let mut db = MemoryDatabase::default();
        let key = PeerKey {
            user: 1,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([1; 20]),
        };
        let steps = [
            (0, Leeching, Started),
            (1800, Leeching, AnnounceEvent::None),
            (3000, Seeding, Completed),
            (4800, Seeding, AnnounceEvent::None),
            (9000, Seeding, AnnounceEvent::None), // gap too long: no time
            (10_000, PeerState::Stopped, Stopped),
        ];
        for (n, (offset, state, event)) in steps.into_iter().enumerate() {
            let batch = Batch {
                id: BatchId([n as u8; 16]),
                reports: vec![PeerReport::new(key, point(T0 + offset, 0, state, event))],
                rules: rules(),
                created_at: T0,
            };
            db.commit(&batch).unwrap();
        }
        let row = db.credits[&key.user_torrent()];
        assert_eq!(row.leech_seconds, 3000);
        assert_eq!(row.seed_seconds, 1800 + 1000);
        assert_eq!(row.completed_at, Some(T0 + 3000));
        assert_eq!(db.marks[&key].state, PeerState::Stopped);
    }
}
