//! Counting and reporting: per-second reports from the workers, the line printed each
//! second, the final summary (printed, and written as JSON with `--json FILE`), and the
//! tracker's CPU time over the measured window.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Serialize;

use tracker_common::config_section;

use crate::histogram::Histogram;

config_section! {
    /// How long the load runs and with how many threads.
    pub struct RunConfig {
        /// Seconds of measured load, after the warm-up.
        pub duration_secs: u32,
        /// Seconds of load before measuring starts; not counted in the summary.
        pub warmup_secs: u32,
        /// Load worker threads; each keeps many requests in flight.
        pub workers: usize,
        /// Process id of the tracker under test, to report its CPU time (user + system,
        /// from /proc) over the measured window and the responses per CPU second;
        /// 0 = do not measure.
        pub tracker_pid: u32,
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            duration_secs: 10,
            warmup_secs: 2,
            workers: 1,
            tracker_pid: 0,
        }
    }
}

impl RunConfig {
    /// Checks the values, naming the key of the first bad one.
    ///
    /// # Errors
    /// A message naming the key and what is wrong with it.
    pub fn validate(&self, section: &str) -> anyhow::Result<()> {
        if !(1..=86_400).contains(&self.duration_secs) {
            anyhow::bail!("{section}.duration_secs: must be between 1 and 86400");
        }
        if self.warmup_secs > 3600 {
            anyhow::bail!("{section}.warmup_secs: must be at most 3600");
        }
        if !(1..=256).contains(&self.workers) {
            anyhow::bail!("{section}.workers: must be between 1 and 256");
        }
        Ok(())
    }

    /// Seconds of the whole run, warm-up included.
    pub fn total_secs(&self) -> u32 {
        self.warmup_secs + self.duration_secs
    }
}

/// What a worker counted in one second.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests handed to the kernel.
    pub sent: u64,
    /// Requests the kernel refused to send (a full send buffer).
    pub send_failed: u64,
    /// Well-formed connect responses.
    pub connect: u64,
    /// Well-formed announce responses.
    pub announce: u64,
    /// Well-formed scrape responses.
    pub scrape: u64,
    /// Well-formed error responses.
    pub error: u64,
    /// Relayed WebRTC offers received (WebSocket).
    pub offer: u64,
    /// Relayed WebRTC answers received (WebSocket).
    pub answer: u64,
    /// Answers sent to relayed offers (WebSocket; also counted in `sent`).
    pub answers_sent: u64,
    /// Announce and scrape replies that match no request in flight on their
    /// connection: late ones, or replies to answer messages, which aquatic_ws sends and
    /// the reference server (npm `bittorrent-tracker`) does not (WebSocket).
    pub unmatched: u64,
    /// Answers that were not a well-formed, plausible response to the request they
    /// name.
    pub malformed: u64,
    /// Requests that got no answer within the timeout.
    pub unanswered: u64,
    /// Answers that came after their request had timed out, or twice.
    pub late: u64,
    /// Peers in all announce responses.
    pub peers: u64,
    /// Announce responses with more peers than the request asked for (a stopping
    /// client asks for 0): wasteful, but well-formed.
    pub over_numwant: u64,
    /// TCP connections opened (HTTP).
    pub connections: u64,
    /// TCP connections that failed: not accepted, reset, or closed by the server with
    /// requests unanswered (HTTP; those requests count as unanswered too).
    pub connection_errors: u64,
    /// TLS connections whose TCP connect succeeded and whose TLS handshake then failed
    /// (a refused certificate, a TLS alert, a close mid-handshake): counted here and
    /// not among `connection_errors` (HTTPS).
    pub tls_handshake_failures: u64,
    /// Round-trip times of the answered requests, in nanoseconds.
    pub latency: Histogram,
}

impl Counters {
    /// Adds another worker's or second's counts.
    pub fn merge(&mut self, other: &Counters) {
        self.sent += other.sent;
        self.send_failed += other.send_failed;
        self.connect += other.connect;
        self.announce += other.announce;
        self.scrape += other.scrape;
        self.error += other.error;
        self.offer += other.offer;
        self.answer += other.answer;
        self.answers_sent += other.answers_sent;
        self.unmatched += other.unmatched;
        self.malformed += other.malformed;
        self.unanswered += other.unanswered;
        self.late += other.late;
        self.peers += other.peers;
        self.over_numwant += other.over_numwant;
        self.connections += other.connections;
        self.connection_errors += other.connection_errors;
        self.tls_handshake_failures += other.tls_handshake_failures;
        self.latency.merge(&other.latency);
    }

    /// All well-formed responses (over WebSocket: all messages received, relayed
    /// offers and answers included).
    pub fn responses(&self) -> u64 {
        self.connect + self.announce + self.scrape + self.error + self.offer + self.answer
    }

    /// Share of the requests settled in this period (answered, malformed or timed
    /// out) that got no answer.
    pub fn no_answer_share(&self) -> f64 {
        let settled = self.responses() + self.malformed + self.unanswered;
        if settled == 0 {
            0.0
        } else {
            self.unanswered as f64 / settled as f64
        }
    }

    /// Average peers per announce response.
    pub fn peers_per_announce(&self) -> f64 {
        if self.announce == 0 {
            0.0
        } else {
            self.peers as f64 / self.announce as f64
        }
    }
}

/// One worker's counts for one second of the run.
#[derive(Debug)]
pub struct TickReport {
    /// Seconds since the start of the run (0 = the first second).
    pub tick: u32,
    /// What was counted in it.
    pub counters: Counters,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Latency {
    fn of(h: &Histogram) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            p50_us: us(h.quantile(0.5)),
            p99_us: us(h.quantile(0.99)),
            p999_us: us(h.quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// The result of a run over its measured window: what `--json` writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// "udp", "udp-ceiling", ...
    pub protocol: String,
    /// Address of the server under test.
    pub server_address: String,
    /// Load worker threads.
    pub workers: usize,
    /// Seconds measured (the warm-up excluded).
    pub measured_secs: f64,
    /// Requests sent in the measured window.
    pub requests_sent: u64,
    /// Requests sent per second.
    pub requests_per_sec: f64,
    /// Well-formed responses received.
    pub responses: u64,
    /// Well-formed responses per second: the headline figure.
    pub responses_per_sec: f64,
    /// Connect responses per second.
    pub connect_per_sec: f64,
    /// Announce responses per second.
    pub announce_per_sec: f64,
    /// Scrape responses per second.
    pub scrape_per_sec: f64,
    /// Error responses per second.
    pub error_per_sec: f64,
    /// Relayed offers received per second (WebSocket; 0 otherwise).
    pub offer_per_sec: f64,
    /// Relayed answers received per second (WebSocket; 0 otherwise).
    pub answer_per_sec: f64,
    /// Answers sent to relayed offers per second (WebSocket; 0 otherwise).
    pub answers_sent_per_sec: f64,
    /// Replies that matched no request in flight (WebSocket; 0 otherwise).
    pub unmatched: u64,
    /// Average peers per announce response.
    pub peers_per_announce: f64,
    /// Share of settled requests that got no answer.
    pub no_answer_share: f64,
    /// Answers that were malformed or implausible.
    pub malformed: u64,
    /// Answers that came after their timeout.
    pub late: u64,
    /// Requests the kernel refused to send.
    pub send_failed: u64,
    /// Announce answers with more peers than asked for.
    pub over_numwant: u64,
    /// TCP connections opened (HTTP; 0 for UDP).
    pub connections_opened: u64,
    /// TCP connections that failed (HTTP; 0 for UDP).
    pub connection_errors: u64,
    /// TLS handshakes that failed after the TCP connect (HTTPS; 0 otherwise).
    pub tls_handshake_failures: u64,
    /// Round-trip latency.
    pub latency: Latency,
    /// The tracker's CPU seconds (user + system) in the measured window, if its pid
    /// was given.
    pub tracker_cpu_secs: Option<f64>,
    /// Responses per second of tracker CPU time, if its pid was given.
    pub responses_per_tracker_cpu_sec: Option<f64>,
}

impl Summary {
    /// Prints the summary for people.
    pub fn print(&self) {
        println!();
        println!("# shoal load test summary ({})", self.protocol);
        println!(
            "server {}, {} worker(s), {:.1} s measured",
            self.server_address, self.workers, self.measured_secs
        );
        let ws = self.protocol.starts_with("ws");
        if ws {
            println!(
                "messages received per second: {:.0}",
                self.responses_per_sec
            );
        } else {
            println!("responses per second: {:.0}", self.responses_per_sec);
        }
        if self.protocol.starts_with("udp") {
            println!("  connect:  {:.0}", self.connect_per_sec);
        }
        println!("  announce: {:.0}", self.announce_per_sec);
        if ws {
            println!("  offer:    {:.0}", self.offer_per_sec);
            println!("  answer:   {:.0}", self.answer_per_sec);
        }
        println!("  scrape:   {:.0}", self.scrape_per_sec);
        println!("  error:    {:.0}", self.error_per_sec);
        if ws {
            println!(
                "messages sent per second: {:.0} (answers {:.0})",
                self.requests_per_sec, self.answers_sent_per_sec
            );
            println!("replies matching no request in flight: {}", self.unmatched);
        } else {
            println!("requests per second: {:.0}", self.requests_per_sec);
            println!(
                "peers per announce: {:.1}   answers with more peers than asked: {}",
                self.peers_per_announce, self.over_numwant
            );
        }
        println!(
            "no answer: {:.3} %   malformed: {}   late: {}   send failed: {}",
            self.no_answer_share * 100.0,
            self.malformed,
            self.late,
            self.send_failed
        );
        if self.connections_opened > 0 || self.connection_errors > 0 {
            println!(
                "connections opened: {}   connection errors: {}",
                self.connections_opened, self.connection_errors
            );
        }
        if self.tls_handshake_failures > 0 {
            println!("TLS handshake failures: {}", self.tls_handshake_failures);
        }
        println!(
            "latency: p50 {:.0} us   p99 {:.0} us   p99.9 {:.0} us   max {:.0} us",
            self.latency.p50_us, self.latency.p99_us, self.latency.p999_us, self.latency.max_us
        );
        if let (Some(cpu), Some(per_cpu)) =
            (self.tracker_cpu_secs, self.responses_per_tracker_cpu_sec)
        {
            println!("tracker CPU: {cpu:.2} s, {per_cpu:.0} responses per CPU second");
        }
    }

    /// Writes the summary as JSON to `path`.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialize summary")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("write summary to {}", path.display()))
    }
}

fn print_tick(tick: u32, warmup: u32, c: &Counters) {
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut line = format!(
        "{:>4}s{} {:>8} resp/s (connect {}, announce {}, scrape {}, error {}) | {:.1} peers/announce | \
         no answer {:.2}% | p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms | malformed {}",
        tick + 1,
        if tick < warmup { " warm-up" } else { "" },
        c.responses(),
        c.connect,
        c.announce,
        c.scrape,
        c.error,
        c.peers_per_announce(),
        c.no_answer_share() * 100.0,
        ms(c.latency.quantile(0.5)),
        ms(c.latency.quantile(0.99)),
        ms(c.latency.quantile(0.999)),
        c.malformed
    );
    if c.connections > 0 || c.connection_errors > 0 {
        line += &format!(
            " | connections opened {}, failed {}",
            c.connections, c.connection_errors
        );
    }
    if c.tls_handshake_failures > 0 {
        line += &format!(" | TLS handshakes failed {}", c.tls_handshake_failures);
    }
    if c.offer > 0 || c.answer > 0 || c.answers_sent > 0 {
        line += &format!(
            " | offers in {}, answers in {}, answers out {}",
            c.offer, c.answer, c.answers_sent
        );
    }
    if c.unmatched > 0 {
        line += &format!(" | replies matching nothing in flight {}", c.unmatched);
    }
    println!("{line}");
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
///
/// # Errors
/// The process is gone or the file is not as expected.
pub fn process_cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path}: no command name"))?;
    // Counting from the state field (3): utime is field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> anyhow::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{path}: no utime / stime"))
    };
    let ticks = next()? + next()?;
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok(ticks as f64 / hz)
}

/// Gathers the workers' per-second reports until every worker has hung up, printing a
/// line per second, and returns the measured window's counts and the tracker's CPU
/// seconds over it.
pub(crate) fn collect(
    receiver: &Receiver<TickReport>,
    workers: usize,
    run: &RunConfig,
    start: Instant,
) -> (Counters, Option<f64>) {
    let total_ticks = run.total_secs() as usize;
    let mut ticks: Vec<(usize, Counters)> = vec![(0, Counters::default()); total_ticks];
    let mut next_print = 0;
    let mut measured = Counters::default();

    let window_start = start + Duration::from_secs(u64::from(run.warmup_secs));
    let window_end = window_start + Duration::from_secs(u64::from(run.duration_secs));
    let mut cpu_at_start = None;
    let mut cpu_at_end = None;
    let sample = |pid: u32| match process_cpu_secs(pid) {
        Ok(secs) => Some(secs),
        Err(err) => {
            log::warn!("tracker CPU time: {err:#}");
            None
        }
    };

    loop {
        let now = Instant::now();
        if run.tracker_pid != 0 {
            if cpu_at_start.is_none() && now >= window_start {
                cpu_at_start = Some(sample(run.tracker_pid));
            }
            if cpu_at_end.is_none() && now >= window_end {
                cpu_at_end = Some(sample(run.tracker_pid));
            }
        }
        let deadline = [window_start, window_end]
            .into_iter()
            .filter(|d| *d > now)
            .min()
            .unwrap_or(now + Duration::from_millis(200));
        let report = match receiver.recv_timeout(deadline.saturating_duration_since(now)) {
            Ok(report) => report,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let tick = report.tick as usize;
        let Some((reported, counters)) = ticks.get_mut(tick) else {
            continue;
        };
        *reported += 1;
        counters.merge(&report.counters);
        if report.tick >= run.warmup_secs {
            measured.merge(&report.counters);
        }
        while let Some((reported, counters)) = ticks.get_mut(next_print) {
            if *reported < workers {
                break;
            }
            print_tick(next_print as u32, run.warmup_secs, counters);
            // The second is printed; its histogram is no longer needed.
            *counters = Counters::default();
            next_print += 1;
        }
    }
    let cpu = match (cpu_at_start.flatten(), cpu_at_end.flatten()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    (measured, cpu)
}

/// Builds the summary of a measured window.
pub(crate) fn summarize(
    protocol: &str,
    server_address: String,
    run: &RunConfig,
    measured: &Counters,
    tracker_cpu_secs: Option<f64>,
) -> Summary {
    let secs = f64::from(run.duration_secs);
    let per_sec = |n: u64| n as f64 / secs;
    let responses = measured.responses();
    Summary {
        protocol: protocol.to_string(),
        server_address,
        workers: run.workers,
        measured_secs: secs,
        requests_sent: measured.sent,
        requests_per_sec: per_sec(measured.sent),
        responses,
        responses_per_sec: per_sec(responses),
        connect_per_sec: per_sec(measured.connect),
        announce_per_sec: per_sec(measured.announce),
        scrape_per_sec: per_sec(measured.scrape),
        error_per_sec: per_sec(measured.error),
        offer_per_sec: per_sec(measured.offer),
        answer_per_sec: per_sec(measured.answer),
        answers_sent_per_sec: per_sec(measured.answers_sent),
        unmatched: measured.unmatched,
        peers_per_announce: measured.peers_per_announce(),
        no_answer_share: measured.no_answer_share(),
        malformed: measured.malformed,
        late: measured.late,
        send_failed: measured.send_failed,
        over_numwant: measured.over_numwant,
        connections_opened: measured.connections,
        connection_errors: measured.connection_errors,
        tls_handshake_failures: measured.tls_handshake_failures,
        latency: Latency::of(&measured.latency),
        tracker_cpu_secs,
        responses_per_tracker_cpu_sec: tracker_cpu_secs
            .filter(|cpu| *cpu > 0.0)
            .map(|cpu| responses as f64 / cpu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable() {
        let before = process_cpu_secs(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_secs(std::process::id()).unwrap() >= before);
        assert!(process_cpu_secs(u32::MAX).is_err());
    }

    #[test]
    fn shares_and_averages() {
        let c = Counters {
            announce: 8,
            connect: 1,
            malformed: 1,
            unanswered: 10,
            peers: 40,
            ..Counters::default()
        };
        assert_eq!(c.responses(), 9);
        assert_eq!(c.no_answer_share(), 0.5);
        assert_eq!(c.peers_per_announce(), 5.0);
        assert_eq!(Counters::default().no_answer_share(), 0.0);
    }

    #[test]
    fn collect_counts_only_the_measured_window() {
        let run = RunConfig {
            duration_secs: 1,
            warmup_secs: 1,
            workers: 2,
            tracker_pid: 0,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        for tick in 0..2 {
            for _ in 0..2 {
                let counters = Counters {
                    announce: 10 * (u64::from(tick) + 1),
                    ..Counters::default()
                };
                tx.send(TickReport { tick, counters }).unwrap();
            }
        }
        drop(tx);
        let (measured, cpu) = collect(&rx, 2, &run, Instant::now());
        assert_eq!(measured.announce, 40);
        assert_eq!(cpu, None);
        let summary = summarize("udp", "127.0.0.1:1".into(), &run, &measured, Some(2.0));
        assert_eq!(summary.responses_per_sec, 40.0);
        assert_eq!(summary.responses_per_tracker_cpu_sec, Some(20.0));
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["responses_per_sec"], 40.0);
    }
}
