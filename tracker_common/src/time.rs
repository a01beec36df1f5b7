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
