//! Coarse server time: whole seconds since the server started.
//!
//! Peers carry a `u32` timestamp instead of an `Instant` (16 bytes), which keeps the swarm
//! maps small; a `u32` of seconds lasts 136 years.

use std::time::Instant;

/// The moment the server started; the zero of [`SecondsSinceServerStart`].
#[derive(Copy, Clone, Debug)]
pub struct ServerStartInstant(Instant);

impl ServerStartInstant {
    /// Takes the current moment as the server start.
    pub fn new() -> Self {
        Self(Instant::now())
    }

    /// A start `secs` seconds before now (or now, if the monotonic clock does not reach
    /// that far back): a clock that begins at `secs`, so that peers restored from a
    /// snapshot can be given last-seen times up to `secs` in the past.
    pub fn backdated(secs: u32) -> Self {
        let now = Instant::now();
        Self(
            now.checked_sub(std::time::Duration::from_secs(u64::from(secs)))
                .unwrap_or(now),
        )
    }

    /// Whole seconds elapsed since the server started.
    pub fn seconds_elapsed(&self) -> SecondsSinceServerStart {
        let secs = self.0.elapsed().as_secs();
        SecondsSinceServerStart(u32::try_from(secs).unwrap_or(u32::MAX))
    }
}

impl Default for ServerStartInstant {
    fn default() -> Self {
        Self::new()
    }
}

/// Whole seconds since the server started.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SecondsSinceServerStart(pub u32);

impl SecondsSinceServerStart {
    /// This time plus `secs`, saturating.
    pub fn add_secs(self, secs: u32) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// This time minus `secs`, saturating at zero.
    pub fn sub_secs(self, secs: u32) -> Self {
        Self(self.0.saturating_sub(secs))
    }
}

/// The one clock of private mode's accounting: Unix seconds, read from the wall clock
/// once, at the server's start, and counted on by the monotonic clock since. Announce
/// times, batch times and the retention all go by it, so that a step of the wall clock
/// while the server runs (NTP correcting, an operator's `date -s`) moves none of them.
#[derive(Copy, Clone, Debug)]
pub struct UnixClock {
    unix_at_start: u64,
    start: ServerStartInstant,
}

impl UnixClock {
    /// The clock of a server started at `start`: the wall clock now, less the seconds
    /// elapsed since `start`.
    pub fn new(start: ServerStartInstant) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::at_start(
            start,
            now.saturating_sub(u64::from(start.seconds_elapsed().0)),
        )
    }

    /// A clock that reads `unix_at_start` at `start`.
    pub fn at_start(start: ServerStartInstant, unix_at_start: u64) -> Self {
        Self {
            unix_at_start,
            start,
        }
    }

    /// Unix seconds at `since` seconds after the start.
    pub fn at(&self, since: SecondsSinceServerStart) -> u64 {
        self.unix_at_start.saturating_add(u64::from(since.0))
    }

    /// Unix seconds now.
    pub fn now(&self) -> u64 {
        self.at(self.start.seconds_elapsed())
    }
}
