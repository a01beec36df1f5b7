//! Gathering datagrams on a busy UDP socket before reading it again
//! (`network.gather_micros`).
//!
//! A worker that reads its socket as soon as it has answered the last round does so
//! in rounds of a handful of datagrams when requests arrive at a steady few hundred
//! thousand a second: each round pays its system calls, its wake-ups and, where socket
//! and request workers share a core, two thread switches, whatever it carries. After a
//! round that brought in a few datagrams but not many ([`GATHER_FROM`] to
//! [`GATHER_BELOW`] − 1), the worker waits until the gather time has passed since that
//! round began before it reads again, so that the next round is larger. A quiet socket
//! (fewer than [`GATHER_FROM`]: waiting would only add latency and a wake-up) and a
//! busy one whose rounds are large already are read again at once.
//!
//! The wait adds at most the gather time to an answer's latency. Datagrams that arrive
//! meanwhile wait in the socket's receive buffer: in the default 500 µs, even a
//! million a second fill less than a tenth of the default 8 MiB.
//! See "Gathering rounds" in documents/udp-benchmark.md for what it gives.

use std::time::{Duration, Instant};

/// Rounds with fewer datagrams than this are not followed by a wait: the socket is
/// quiet, and a wait would cost a wake-up for nothing.
pub const GATHER_FROM: usize = 4;
/// Rounds with this many datagrams or more are not followed by a wait: they fill a
/// whole `recvmmsg` batch of the UDP socket worker, and what a round costs whatever it
/// carries (system calls, two thread switches) is shared out well enough. Waiting
/// after larger rounds as well slows a client that keeps a fixed number of requests
/// in flight (12 % fewer answers under tracker_load_test with 128 here).
pub const GATHER_BELOW: usize = 64;

/// The longest gather time a config may ask for, in microseconds.
pub const MAX_GATHER_MICROS: u64 = 10_000;

/// How long to wait before reading again, after a round that read `read` datagrams
/// and began `since_round_began` ago, with a gather time of `gather`: the rest of the
/// gather time after a round of [`GATHER_FROM`] to [`GATHER_BELOW`] − 1 datagrams,
/// nothing otherwise.
pub fn wait_before_read(read: usize, since_round_began: Duration, gather: Duration) -> Duration {
    if (GATHER_FROM..GATHER_BELOW).contains(&read) {
        gather.saturating_sub(since_round_began)
    } else {
        Duration::ZERO
    }
}

/// A socket worker's rounds of reads, for [`wait_before_read`].
#[derive(Debug)]
pub struct Gather {
    gather: Duration,
    round_began: Instant,
    last_round: usize,
}

impl Gather {
    /// `gather`: the gather time; zero never waits.
    pub fn new(gather: Duration) -> Self {
        Self {
            gather,
            round_began: Instant::now(),
            last_round: 0,
        }
    }

    /// How long to wait before the next round of reads begins (zero: read now).
    pub fn wait(&self) -> Duration {
        if self.gather.is_zero() {
            return Duration::ZERO;
        }
        wait_before_read(self.last_round, self.round_began.elapsed(), self.gather)
    }

    /// A round of reads begins now.
    pub fn begin_round(&mut self) {
        if !self.gather.is_zero() {
            self.round_began = Instant::now();
        }
    }

    /// The round that began last read `read` datagrams.
    pub fn end_round(&mut self, read: usize) {
        self.last_round = read;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The rule: after a round of 4 to 63 datagrams, the next read begins no earlier
        /// than the gather time after that round began, and no later than needed for
        /// that; after any other round it is not delayed.
        #[test]
        fn waits_only_after_small_busy_rounds(
            read in 0usize..200,
            since_us in 0u64..20_000,
            gather_us in 0u64..=MAX_GATHER_MICROS,
        ) {
            let since = Duration::from_micros(since_us);
            let gather = Duration::from_micros(gather_us);
            let wait = wait_before_read(read, since, gather);
            let busy_but_small = (4..64).contains(&read);
            if busy_but_small && since < gather {
                prop_assert_eq!(since + wait, gather);
            } else {
                prop_assert_eq!(wait, Duration::ZERO);
            }
        }
    }

    #[test]
    fn zero_gather_never_waits() {
        let mut gather = Gather::new(Duration::ZERO);
        gather.begin_round();
        gather.end_round(10);
        assert_eq!(gather.wait(), Duration::ZERO);
    }

    #[test]
    fn a_small_round_is_followed_by_a_wait_that_ends_at_the_gather_time() {
        let mut gather = Gather::new(Duration::from_secs(60));
        gather.begin_round();
        gather.end_round(10);
        let wait = gather.wait();
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        gather.end_round(GATHER_BELOW);
        assert_eq!(gather.wait(), Duration::ZERO);
        gather.end_round(GATHER_FROM - 1);
        assert_eq!(gather.wait(), Duration::ZERO);
    }
}
