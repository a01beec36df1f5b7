//! The per-peer swarm rules, decided here once so that every kind of shard applies the
//! same ones: a peer's status from its bytes left, when an announce counts a completed
//! download (and the flag that keeps it from counting twice), when a re-announce comes
//! too soon to be applied, and when a peer has been silent for too long.
//!
//! What the shards share beyond single peers (limits, the whole-tracker budget, totals,
//! the archive, and the operations over a whole torrent table) is in [`super::ledger`].

use crate::time::SecondsSinceServerStart;
use crate::types::AnnounceEvent;

/// Seeder or leecher: which of a torrent's two stores a peer is (or would be) in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Seeder,
    Leecher,
}

impl Status {
    /// `left == 0` means seeder (BEP 3).
    pub(super) fn from_bytes_left(bytes_left: u64) -> Self {
        if bytes_left == 0 {
            Self::Seeder
        } else {
            Self::Leecher
        }
    }

    /// The same rule where `left` may be missing (WebTorrent clients may leave it out):
    /// unknown means leecher, so that a peer is a seeder only if it says it has everything.
    pub(super) fn from_optional_bytes_left(bytes_left: Option<u64>) -> Self {
        bytes_left.map_or(Self::Leecher, Self::from_bytes_left)
    }
}

/// When a peer was last seen, whether its completion has been counted, and whether it
/// came from another node of a cluster, in 32 bits.
///
/// The low 30 bits are whole seconds since the server started (saturating: 2^30 seconds
/// are 34 years). The top bit says that this stored peer's `event=completed` was counted,
/// so that it is never counted again while the peer stays stored. The next bit marks a
/// remote peer: one stored from another node's change (see `SwarmShard::apply_remote`),
/// until an announce to this node takes it over. Packing the flags here keeps the IP
/// swarm's per-peer data at 24 bytes with the peer id and 4 without.
///
/// Kept as two `u16` halves rather than a `u32`, so that it is aligned to 2 bytes: after
/// an endpoint of 6 bytes (IPv4) or 18 (IPv6), a stored peer without its id is then 10 or
/// 22 bytes instead of 12 or 24, a sixth less for every IPv4 peer of the UDP tracker.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct LastSeen([u16; 2]);

impl LastSeen {
    const COUNTED: u32 = 1 << 31;
    const REMOTE: u32 = 1 << 30;
    const TIME: u32 = Self::REMOTE - 1;

    fn from_bits(bits: u32) -> Self {
        Self([bits as u16, (bits >> 16) as u16])
    }

    fn bits(self) -> u32 {
        u32::from(self.0[0]) | (u32::from(self.0[1]) << 16)
    }

    /// Seen at `now`, with the completion flag `counted`, not remote. A new peer starts
    /// with `false`.
    pub(super) fn new(now: SecondsSinceServerStart, counted: bool) -> Self {
        let secs = now.0.min(Self::TIME);
        Self::from_bits(if counted { secs | Self::COUNTED } else { secs })
    }

    /// The same, marked remote or not.
    pub(super) fn with_remote(self, remote: bool) -> Self {
        if remote {
            Self::from_bits(self.bits() | Self::REMOTE)
        } else {
            Self::from_bits(self.bits() & !Self::REMOTE)
        }
    }

    /// The time part.
    pub(super) fn time(self) -> SecondsSinceServerStart {
        SecondsSinceServerStart(self.bits() & Self::TIME)
    }

    /// Whether this peer's completion has been counted.
    pub(super) fn completion_counted(self) -> bool {
        self.bits() & Self::COUNTED != 0
    }

    /// Whether this peer was stored from another node's change and has not announced to
    /// this node since.
    pub(super) fn is_remote(self) -> bool {
        self.bits() & Self::REMOTE != 0
    }

    /// Another node saw this stored peer at `seen` and, if `completed`, counted its
    /// completion: the later of the two times (a change that took long to arrive never
    /// moves it back), the flag set if either counted, the remote mark as it was (a peer
    /// that announced here stays this node's until it expires or leaves).
    pub(super) fn seen_remotely(self, seen: SecondsSinceServerStart, completed: bool) -> Self {
        let time = self.time().max(seen);
        Self::new(time, self.completion_counted() || completed).with_remote(self.is_remote())
    }

    /// The completion rule, for a stored peer of status `stored` that announces `announced`
    /// with `event` at `now`: its new `LastSeen`, and whether the torrent's completed count
    /// grows by one.
    ///
    /// It grows only when a stored leecher becomes a seeder through `event=completed`, and
    /// only if this stored peer's completion was not counted before. The flag is kept
    /// whatever the move (seeder to leecher and back, or a new peer id taking over the
    /// entry), so that cycles never count again; only a peer that is removed and comes
    /// back starts with a clear flag ([`Self::new`]). The remote mark is cleared: the peer
    /// announced here.
    pub(super) fn reannounced(
        self,
        now: SecondsSinceServerStart,
        stored: Status,
        announced: Status,
        event: AnnounceEvent,
    ) -> (Self, bool) {
        let counted_before = self.completion_counted();
        let counts = stored == Status::Leecher
            && announced == Status::Seeder
            && event == AnnounceEvent::Completed
            && !counted_before;
        (Self::new(now, counted_before || counts), counts)
    }

    /// [`Self::reannounced`] for a peer whose status stays what it was, where nothing can
    /// count: seen at `now`, flag kept, remote mark cleared. Separate so that the common
    /// re-announce is one store of a `u32`.
    pub(super) fn refreshed(self, now: SecondsSinceServerStart) -> Self {
        Self::new(now, self.completion_counted())
    }

    /// The minimum-interval rule, for the stored peer last seen as `self` that announces
    /// with `event` at `now`, where a peer must wait `min_interval_secs` between two
    /// applied announces (0 = off): whether this announce comes too soon, and so is
    /// answered without being applied.
    ///
    /// Only a plain re-announce (no event) can come too soon, and only if less than
    /// `min_interval_secs` passed since the peer was last seen; one with an event
    /// (started, completed, stopped) always applies. So does the first announce here of
    /// a remote peer: its time is another node's sighting, and the announce is what makes
    /// it this node's.
    pub(super) fn too_soon(
        self,
        now: SecondsSinceServerStart,
        event: AnnounceEvent,
        min_interval_secs: u32,
    ) -> bool {
        min_interval_secs > 0
            && event == AnnounceEvent::None
            && !self.is_remote()
            && now.0.saturating_sub(self.time().0) < min_interval_secs
    }

    /// Whether the peer was seen at or after `cutoff` ([`expiry_cutoff`]), so that
    /// cleaning keeps it.
    pub(super) fn seen_since(self, cutoff: SecondsSinceServerStart) -> bool {
        self.time() >= cutoff
    }
}

/// The earliest last-seen time that a cleaning at `now` keeps for peers allowed to be
/// silent for `max_peer_age_secs`: a peer last seen exactly that long ago stays.
///
/// `last_seen + age < now` is the same as `last_seen < now - age`; computing the cutoff
/// once saves an addition per peer, and saturating at 0 keeps everyone early on.
pub(super) fn expiry_cutoff(
    now: SecondsSinceServerStart,
    max_peer_age_secs: u32,
) -> SecondsSinceServerStart {
    now.sub_secs(max_peer_age_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: [Status; 2] = [Status::Seeder, Status::Leecher];
    const EVENTS: [AnnounceEvent; 4] = [
        AnnounceEvent::None,
        AnnounceEvent::Completed,
        AnnounceEvent::Started,
        AnnounceEvent::Stopped,
    ];

    #[test]
    fn status_from_bytes_left() {
        assert_eq!(Status::from_bytes_left(0), Status::Seeder);
        assert_eq!(Status::from_bytes_left(1), Status::Leecher);
        assert_eq!(Status::from_bytes_left(u64::MAX), Status::Leecher);
        assert_eq!(Status::from_optional_bytes_left(Some(0)), Status::Seeder);
        assert_eq!(Status::from_optional_bytes_left(Some(7)), Status::Leecher);
        assert_eq!(Status::from_optional_bytes_left(None), Status::Leecher);
    }

    /// Every (stored, announced, event, flag): only leecher → seeder through completed
    /// with a clear flag counts; the flag is set after a count and never cleared.
    #[test]
    fn completion_counts_only_leecher_to_seeder_once() {
        let now = SecondsSinceServerStart(42);
        for stored in STATUSES {
            for announced in STATUSES {
                for event in EVENTS {
                    for counted in [false, true] {
                        let before = LastSeen::new(SecondsSinceServerStart(1), counted);
                        let (after, counts) = before.reannounced(now, stored, announced, event);
                        let expected = stored == Status::Leecher
                            && announced == Status::Seeder
                            && event == AnnounceEvent::Completed
                            && !counted;
                        assert_eq!(counts, expected, "{stored:?} {announced:?} {event:?}");
                        assert_eq!(after.completion_counted(), counted || expected);
                        assert_eq!(after.time(), now);
                        if stored == announced {
                            // The shortcut for an unchanged status is the same rule.
                            assert_eq!(before.refreshed(now), after);
                        }
                    }
                }
            }
        }
    }

    /// The remote mark and the completion flag are independent bits beside a 30-bit
    /// time; an announce here clears the mark, another node's change keeps it.
    #[test]
    fn remote_mark_beside_time_and_flag() {
        let t = SecondsSinceServerStart(77);
        for counted in [false, true] {
            let remote = LastSeen::new(t, counted).with_remote(true);
            assert!(remote.is_remote());
            assert_eq!(remote.completion_counted(), counted);
            assert_eq!(remote.time(), t);
            assert_eq!(remote.with_remote(false), LastSeen::new(t, counted));
            assert!(!remote.refreshed(t).is_remote());
            for stored in STATUSES {
                for event in EVENTS {
                    let (after, _) = remote.reannounced(t, stored, Status::Seeder, event);
                    assert!(!after.is_remote());
                }
            }
        }
        // Times beyond 30 bits saturate instead of setting either flag.
        let late = LastSeen::new(SecondsSinceServerStart(u32::MAX), false);
        assert!(!late.is_remote() && !late.completion_counted());
        assert_eq!(late.time(), SecondsSinceServerStart((1 << 30) - 1));
    }

    /// Another node's sighting: the later time, the flag if either counted, the mark kept.
    #[test]
    fn seen_remotely_takes_the_later_time_and_keeps_the_mark() {
        let at = SecondsSinceServerStart;
        for remote in [false, true] {
            for counted in [false, true] {
                let stored = LastSeen::new(at(50), counted).with_remote(remote);
                for (seen, completed) in [(at(40), false), (at(60), false), (at(50), true)] {
                    let after = stored.seen_remotely(seen, completed);
                    assert_eq!(after.time(), at(seen.0.max(50)));
                    assert_eq!(after.completion_counted(), counted || completed);
                    assert_eq!(after.is_remote(), remote);
                }
            }
        }
    }

    /// Too soon: a plain re-announce of a local peer less than the interval after it
    /// was last seen, and nothing else; never with the interval 0.
    #[test]
    fn too_soon_only_for_early_plain_reannounces() {
        let at = SecondsSinceServerStart;
        for counted in [false, true] {
            let seen = LastSeen::new(at(100), counted);
            for event in EVENTS {
                for (now, min) in [(100, 10), (109, 10), (110, 10), (500, 10), (105, 0)] {
                    let expected = event == AnnounceEvent::None && min > 0 && now < 100 + min;
                    assert_eq!(
                        seen.too_soon(at(now), event, min),
                        expected,
                        "{event:?} at {now}, interval {min}"
                    );
                    // A remote peer's first announce here always applies.
                    assert!(!seen.with_remote(true).too_soon(at(now), event, min));
                }
            }
        }
        // A time ahead of now (none should be): too soon, and no underflow.
        assert!(LastSeen::new(at(50), false).too_soon(at(40), AnnounceEvent::None, 1));
        // The largest interval, a peer seen at the start.
        let start = LastSeen::new(at(0), false);
        assert!(start.too_soon(at(u32::MAX - 1), AnnounceEvent::None, u32::MAX));
        assert!(!start.too_soon(at(u32::MAX), AnnounceEvent::None, u32::MAX));
    }

    #[test]
    fn cutoff_keeps_a_peer_seen_exactly_max_age_ago() {
        let cutoff = expiry_cutoff(SecondsSinceServerStart(200), 100);
        let seen = |secs, counted| LastSeen::new(SecondsSinceServerStart(secs), counted);
        assert!(seen(100, false).seen_since(cutoff));
        assert!(seen(100, true).seen_since(cutoff));
        assert!(!seen(99, true).seen_since(cutoff));
        // Early on, nobody is old enough.
        let early = expiry_cutoff(SecondsSinceServerStart(5), 100);
        assert!(seen(0, false).seen_since(early));
    }
}
