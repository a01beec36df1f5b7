//! Counters kept by the workers and the periodic statistics line in the log.
//!
//! Each worker owns one cache-line-padded block of counters and is its only writer, so a
//! count is a relaxed load and store (no locked instruction, no cache-line ping-pong).
//! The statistics thread sums the blocks once per interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::supervisor::ShutdownFlag;

/// Adds `n` to a counter that only the calling thread writes.
#[inline]
pub fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Requests and responses counted by one socket worker: what every protocol has.
/// Protocol-specific counts (UDP connects, say) are kept by the tracker itself.
#[derive(Debug, Default)]
pub struct SocketCounters {
    /// Announce requests received.
    pub announce: AtomicU64,
    /// Scrape requests received.
    pub scrape: AtomicU64,
    /// Responses sent, errors included.
    pub responses: AtomicU64,
    /// Error responses sent.
    pub error_responses: AtomicU64,
    /// Requests dropped because a channel to a request worker was full, or a response
    /// could not be sent.
    pub dropped: AtomicU64,
    /// Requests that could not be parsed, or were refused before reaching a request
    /// worker (an invalid UDP connection id, say).
    pub bad_requests: AtomicU64,
    /// Requests refused by the access list.
    pub access_denied: AtomicU64,
}

/// What one request worker publishes: the size of its shard, and what it dropped.
#[derive(Debug, Default)]
pub struct RequestWorkerGauges {
    /// Torrents in this worker's shard (distinct info hashes).
    pub torrents: AtomicU64,
    /// Seeders in this worker's shard.
    pub seeders: AtomicU64,
    /// Leechers in this worker's shard.
    pub leechers: AtomicU64,
    /// Announces not stored because a limit was reached (a running total).
    pub rejected_by_limits: AtomicU64,
    /// Emptied torrents whose completed count is kept.
    pub archived_torrents: AtomicU64,
    /// Bytes the archive of completed counts takes.
    pub archive_bytes: AtomicU64,
    /// Responses this worker dropped because the channel back to a socket worker was full.
    pub dropped: AtomicU64,
}

/// All workers' counters.
#[derive(Debug)]
pub struct Statistics {
    socket: Box<[CachePadded<SocketCounters>]>,
    request: Box<[CachePadded<RequestWorkerGauges>]>,
}

/// The sum of every worker's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Announce requests received.
    pub announce: u64,
    /// Scrape requests received.
    pub scrape: u64,
    /// Responses sent.
    pub responses: u64,
    /// Error responses sent.
    pub error_responses: u64,
    /// Requests or responses dropped on full channels.
    pub dropped: u64,
    /// Bad packets.
    pub bad_requests: u64,
    /// Requests refused by the access list.
    pub access_denied: u64,
    /// Torrents tracked.
    pub torrents: u64,
    /// Seeders tracked.
    pub seeders: u64,
    /// Leechers tracked.
    pub leechers: u64,
    /// Announces not stored because a limit was reached.
    pub rejected_by_limits: u64,
    /// Emptied torrents whose completed count is kept.
    pub archived_torrents: u64,
    /// Bytes the archive of completed counts takes.
    pub archive_bytes: u64,
}

impl Statistics {
    /// Counters for the given numbers of workers.
    pub fn new(socket_workers: usize, request_workers: usize) -> Self {
        Self {
            socket: (0..socket_workers)
                .map(|_| CachePadded::default())
                .collect(),
            request: (0..request_workers)
                .map(|_| CachePadded::default())
                .collect(),
        }
    }

    /// Socket worker `index`'s counters.
    ///
    /// # Panics
    /// If `index` is out of range: worker indexes are fixed at start-up.
    pub fn socket(&self, index: usize) -> &SocketCounters {
        &self.socket[index]
    }

    /// Request worker `index`'s gauges.
    ///
    /// # Panics
    /// If `index` is out of range: worker indexes are fixed at start-up.
    pub fn request_worker(&self, index: usize) -> &RequestWorkerGauges {
        &self.request[index]
    }

    /// Sums every worker's counters.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = Snapshot::default();
        for c in self.socket.iter() {
            s.announce += get(&c.announce);
            s.scrape += get(&c.scrape);
            s.responses += get(&c.responses);
            s.error_responses += get(&c.error_responses);
            s.dropped += get(&c.dropped);
            s.bad_requests += get(&c.bad_requests);
            s.access_denied += get(&c.access_denied);
        }
        for g in self.request.iter() {
            s.torrents += get(&g.torrents);
            s.seeders += get(&g.seeders);
            s.leechers += get(&g.leechers);
            s.rejected_by_limits += get(&g.rejected_by_limits);
            s.archived_torrents += get(&g.archived_torrents);
            s.archive_bytes += get(&g.archive_bytes);
            s.dropped += get(&g.dropped);
        }
        s
    }
}

/// Lets a warning through at most once per interval and counts what it held back, so
/// that a flood of drops cannot flood the log.
#[derive(Debug)]
pub struct RateLimitedWarning {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimitedWarning {
    /// A limiter that lets one warning through per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// Whether to log now; if so, how many occurrences were held back since the last
    /// logged one.
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// A tracker's own parts of the statistics line; an empty part is left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolLine {
    /// Its own request rates, put first among the requests (UDP's `connect 50`).
    pub requests: String,
    /// Its own response rates, put after the responses (WebSocket's relayed offers).
    pub responses: String,
    /// Its own state and totals, put last (open connections, say).
    pub state: String,
}

/// The statistics line for the interval between two snapshots, with the tracker's own
/// parts where they belong.
pub fn format_line(
    prev: &Snapshot,
    now: &Snapshot,
    elapsed: Duration,
    protocol: &ProtocolLine,
) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let own = |part: &str, before: &str, after: &str| {
        if part.is_empty() {
            String::new()
        } else {
            format!("{before}{part}{after}")
        }
    };
    format!(
        "requests/s: {}announce {:.0}, scrape {:.0}; responses/s {:.0} (errors {:.0}){}; \
         torrents {}, seeders {}, leechers {}, archived {} ({} bytes); \
         since last: dropped {}, bad requests {}, access denied {}, rejected by limits {}{}",
        own(&protocol.requests, "", ", "),
        rate(prev.announce, now.announce),
        rate(prev.scrape, now.scrape),
        rate(prev.responses, now.responses),
        rate(prev.error_responses, now.error_responses),
        own(&protocol.responses, ", ", ""),
        now.torrents,
        now.seeders,
        now.leechers,
        now.archived_torrents,
        now.archive_bytes,
        now.dropped.saturating_sub(prev.dropped),
        now.bad_requests.saturating_sub(prev.bad_requests),
        now.access_denied.saturating_sub(prev.access_denied),
        now.rejected_by_limits
            .saturating_sub(prev.rejected_by_limits),
        own(&protocol.state, "; ", ""),
    )
}

/// The statistics thread's loop: logs a line every `interval` until shutdown.
/// `protocol` gives the tracker's own part of the line for the time since its last call.
///
/// # Errors
/// None so far; the signature matches the other workers.
pub fn run_statistics_logger(
    stats: &Statistics,
    interval: Duration,
    shutdown: &ShutdownFlag,
    mut protocol: impl FnMut(Duration) -> ProtocolLine,
) -> anyhow::Result<()> {
    let mut prev = stats.snapshot();
    let mut last = Instant::now();
    let _ = protocol(Duration::ZERO);
    while !shutdown.is_set() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= interval {
            let now = stats.snapshot();
            let elapsed = last.elapsed();
            log::info!("{}", format_line(&prev, &now, elapsed, &protocol(elapsed)));
            prev = now;
            last = Instant::now();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_workers() {
        let stats = Statistics::new(2, 2);
        // A distinct value per counter and worker, so a counter summed into the wrong
        // field, or a worker left out, shows.
        for (i, scale) in [(0, 1), (1, 100)] {
            let c = stats.socket(i);
            add(&c.announce, 2 * scale);
            add(&c.scrape, 3 * scale);
            add(&c.responses, 4 * scale);
            add(&c.error_responses, 5 * scale);
            add(&c.dropped, 6 * scale);
            add(&c.bad_requests, 7 * scale);
            add(&c.access_denied, 8 * scale);
            let g = stats.request_worker(i);
            g.torrents.store(9 * scale, Ordering::Relaxed);
            g.seeders.store(10 * scale, Ordering::Relaxed);
            g.leechers.store(11 * scale, Ordering::Relaxed);
            add(&g.dropped, 12 * scale);
            g.rejected_by_limits.store(13 * scale, Ordering::Relaxed);
            g.archived_torrents.store(14 * scale, Ordering::Relaxed);
            g.archive_bytes.store(15 * scale, Ordering::Relaxed);
        }
        assert_eq!(
            stats.snapshot(),
            Snapshot {
                announce: 202,
                scrape: 303,
                responses: 404,
                error_responses: 505,
                // Socket and request worker drops add up.
                dropped: 606 + 1212,
                bad_requests: 707,
                access_denied: 808,
                torrents: 909,
                seeders: 1010,
                leechers: 1111,
                rejected_by_limits: 1313,
                archived_torrents: 1414,
                archive_bytes: 1515,
            }
        );
    }

    #[test]
    fn warnings_are_rate_limited() {
        let mut w = RateLimitedWarning::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.check(t0), Some(0));
        assert_eq!(w.check(t0 + Duration::from_secs(1)), None);
        assert_eq!(w.check(t0 + Duration::from_secs(9)), None);
        assert_eq!(w.check(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(w.check(t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn line_shows_rates_gauges_and_deltas() {
        let prev = Snapshot {
            dropped: 10,
            bad_requests: 1,
            ..Snapshot::default()
        };
        let now = Snapshot {
            announce: 200,
            scrape: 20,
            responses: 300,
            error_responses: 4,
            torrents: 9,
            seeders: 3,
            leechers: 5,
            archived_torrents: 2,
            archive_bytes: 32,
            dropped: 13,
            bad_requests: 8,
            access_denied: 6,
            rejected_by_limits: 7,
        };
        let udp = ProtocolLine {
            requests: "connect 50".into(),
            ..ProtocolLine::default()
        };
        let line = format_line(&prev, &now, Duration::from_secs(2), &udp);
        assert_eq!(
            line,
            "requests/s: connect 50, announce 100, scrape 10; responses/s 150 (errors 2); \
             torrents 9, seeders 3, leechers 5, archived 2 (32 bytes); since last: dropped 3, \
             bad requests 7, access denied 6, rejected by limits 7"
        );
        let ws = ProtocolLine {
            requests: String::new(),
            responses: "offers relayed 40".into(),
            state: "connections 12".into(),
        };
        assert_eq!(
            format_line(&prev, &now, Duration::from_secs(1), &ws),
            "requests/s: announce 200, scrape 20; responses/s 300 (errors 4), offers relayed \
             40; torrents 9, seeders 3, leechers 5, archived 2 (32 bytes); since last: \
             dropped 3, bad requests 7, access denied 6, rejected by limits 7; connections 12"
        );
    }
}
