//! The last hour of figures, for the metrics page's charts: a ring buffer of samples of
//! the [`Snapshot`], taken by the metrics thread at a fixed interval.
//!
//! Rules it keeps:
//! - Bounded: it holds at most [`History::capacity`] samples (an hour's worth), the
//!   oldest dropped first, so its memory does not grow with the uptime.
//! - Ordered: samples come out oldest first, in the order they were pushed.
//! - Rates from deltas: requests per second between two samples is the counters'
//!   difference over the time between them; the first sample has no rate, and a counter
//!   that went backwards (it cannot, but a clock can) gives 0, never a negative rate.
//! - Private mode's series (credits committed, batches by outcome, refusals by cause)
//!   only when private mode is on: a sample taken while it was off has none, and a rate
//!   needs both of its samples to have them.
//!
//! It takes the time as an argument and does no I/O. Only the metrics thread holds it:
//! sampling reads the workers' counters as a scrape does, and takes no lock.

use std::collections::VecDeque;
use std::time::Duration;

use crate::observe::statistics::{Protocol, RequestKind, Snapshot};
use crate::private::passkey::Refusal;
use crate::private::stats::PrivateSnapshot;

/// How far back the history reaches.
pub const SPAN: Duration = Duration::from_secs(3600);

/// One sample: the time and the figures the charts show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    /// When, in Unix milliseconds.
    unix_ms: u64,
    /// Requests received so far by kind (`[RequestKind as usize]`), both families.
    requests: [u64; 3],
    torrents: u64,
    seeders: u64,
    leechers: u64,
    /// Private mode's counters, if it is on.
    private: Option<PrivateSample>,
}

/// The labels of [`PrivateSample::batches`], as the metrics endpoint names the outcomes.
const BATCH_OUTCOMES: [&str; 3] = ["committed", "already_applied", "failed"];

/// Private mode's counters in one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PrivateSample {
    /// Peer reports committed so far.
    credits_committed: u64,
    /// Batches so far by outcome, in [`BATCH_OUTCOMES`] order.
    batches: [u64; 3],
    /// Requests refused so far, by [`Refusal::index`].
    refused: [u64; 5],
}

impl PrivateSample {
    fn of(p: &PrivateSnapshot) -> Option<Self> {
        p.enabled.then_some(PrivateSample {
            credits_committed: p.credits_committed,
            batches: [
                p.batches_committed,
                p.batches_already_applied,
                p.batches_failed,
            ],
            refused: p.refused,
        })
    }
}

/// The samples of the last [`SPAN`], oldest first.
#[derive(Debug)]
pub struct History {
    interval: Duration,
    capacity: usize,
    samples: VecDeque<Sample>,
}

impl History {
    /// A history sampled every `interval` (at least a second is assumed: a shorter one
    /// counts as one second), holding [`SPAN`] of samples and at least two.
    pub fn new(interval: Duration) -> Self {
        let secs = interval.as_secs().max(1);
        let capacity = usize::try_from(SPAN.as_secs() / secs)
            .unwrap_or(usize::MAX)
            .max(2);
        History {
            interval: Duration::from_secs(secs),
            capacity,
            samples: VecDeque::with_capacity(capacity),
        }
    }

    /// The time between two samples.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The most samples it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether it holds no sample yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Adds the figures of `snapshot`, taken at `unix_ms`, dropping the oldest sample
    /// when full.
    pub fn push(&mut self, unix_ms: u64, snapshot: &Snapshot) {
        if self.samples.len() >= self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            unix_ms,
            requests: snapshot.requests.map(|[v4, v6]| v4.saturating_add(v6)),
            torrents: snapshot.torrents,
            seeders: snapshot.seeders,
            leechers: snapshot.leechers,
            private: PrivateSample::of(&snapshot.private),
        });
    }

    /// Requests of `kind` per second from the sample before each sample to it, oldest
    /// first; `None` for the first sample held (nothing before it).
    pub fn request_rates(&self, kind: RequestKind) -> Vec<Option<f64>> {
        self.rates(|s| s.requests.get(kind as usize).copied())
    }

    /// The per-second rate of `counter` from the sample before each sample to it, oldest
    /// first; `None` for the first sample and where either sample has no such counter.
    fn rates(&self, counter: impl Fn(&Sample) -> Option<u64>) -> Vec<Option<f64>> {
        let mut rates = Vec::with_capacity(self.samples.len());
        let mut previous: Option<&Sample> = None;
        for sample in &self.samples {
            rates.push(previous.and_then(|p| {
                let ms = sample.unix_ms.saturating_sub(p.unix_ms);
                Some(rate(counter(p)?, counter(sample)?, ms))
            }));
            previous = Some(sample);
        }
        rates
    }

    /// Private mode's rates, if a sample held has them: credits committed, batches by
    /// outcome and refusals by cause, per second.
    fn private_json(&self) -> Option<serde_json::Value> {
        if self.samples.iter().all(|s| s.private.is_none()) {
            return None;
        }
        let batches =
            serde_json::Map::from_iter(BATCH_OUTCOMES.iter().enumerate().map(|(i, &outcome)| {
                let rates = self.rates(|s| s.private?.batches.get(i).copied());
                (outcome.to_owned(), rates.into())
            }));
        let refused = serde_json::Map::from_iter(Refusal::ALL.into_iter().map(|cause| {
            let rates = self.rates(|s| s.private?.refused.get(cause.index()).copied());
            (cause.label().to_owned(), rates.into())
        }));
        Some(serde_json::json!({
            "credits_committed_per_sec": self.rates(|s| Some(s.private?.credits_committed)),
            "batches_per_sec": batches,
            "refused_per_sec": refused,
        }))
    }

    /// The history as the page reads it: the times in Unix seconds, and per time the
    /// request rates of the protocol's kinds, the torrents, seeders and leechers; in
    /// private mode also `private`, its rates (`null` where a sample was taken before
    /// private mode was on).
    pub fn to_json(&self, protocol: Protocol) -> serde_json::Value {
        let timestamps: Vec<f64> = self
            .samples
            .iter()
            .map(|s| s.unix_ms as f64 / 1000.0)
            .collect();
        let rates = serde_json::Map::from_iter(
            protocol
                .request_kinds()
                .iter()
                .map(|&kind| (kind.label().to_owned(), self.request_rates(kind).into())),
        );
        let series = |f: fn(&Sample) -> u64| self.samples.iter().map(f).collect::<Vec<u64>>();
        let mut json = serde_json::json!({
            "protocol": protocol.label(),
            "interval_secs": self.interval.as_secs(),
            "capacity": self.capacity,
            "timestamps": timestamps,
            "requests_per_sec": rates,
            "torrents": series(|s| s.torrents),
            "seeders": series(|s| s.seeders),
            "leechers": series(|s| s.leechers),
        });
        if let (Some(map), Some(private)) = (json.as_object_mut(), self.private_json()) {
            map.insert("private".into(), private);
        }
        json
    }
}

/// A counter's rate per second from `before` to `after`, `ms` apart: 0 when no time
/// passed or the counter went backwards.
fn rate(before: u64, after: u64, ms: u64) -> f64 {
    if ms == 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 * 1000.0 / ms as f64
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn snapshot(announces: u64, torrents: u64) -> Snapshot {
        Snapshot {
            // ipv4 and ipv6 are summed.
            requests: [[1, 1], [announces, 0], [0, 3]],
            torrents,
            seeders: torrents * 2,
            leechers: torrents * 3,
            ..Snapshot::default()
        }
    }

    #[test]
    fn holds_an_hour_and_at_least_two() {
        assert_eq!(History::new(Duration::from_secs(10)).capacity(), 360);
        assert_eq!(History::new(Duration::from_secs(1)).capacity(), 3600);
        assert_eq!(History::new(Duration::ZERO).capacity(), 3600);
        assert_eq!(History::new(Duration::from_secs(3600)).capacity(), 2);
        assert_eq!(History::new(Duration::from_secs(100_000)).capacity(), 2);
    }

    #[test]
    fn is_bounded_and_keeps_the_newest_in_order() {
        let mut history = History::new(Duration::from_secs(1200));
        assert_eq!(history.capacity(), 3);
        assert!(history.is_empty());
        for i in 0..10u64 {
            history.push(i * 1000, &snapshot(i, i));
            assert!(history.len() <= 3);
        }
        assert_eq!(history.len(), 3);
        let json = history.to_json(Protocol::Udp);
        assert_eq!(json["timestamps"], serde_json::json!([7.0, 8.0, 9.0]));
        assert_eq!(json["torrents"], serde_json::json!([7, 8, 9]));
        assert_eq!(json["seeders"], serde_json::json!([14, 16, 18]));
        assert_eq!(json["leechers"], serde_json::json!([21, 24, 27]));
        assert_eq!(json["capacity"], 3);
        assert_eq!(json["interval_secs"], 1200);
    }

    #[test]
    fn rates_are_counter_deltas_over_time() {
        let mut history = History::new(Duration::from_secs(10));
        history.push(10_000, &snapshot(0, 1));
        history.push(20_000, &snapshot(50, 1));
        // A late sample: 100 more over 12.5 s.
        history.push(32_500, &snapshot(150, 1));
        // No time passed: no rate rather than a division by zero.
        history.push(32_500, &snapshot(160, 1));
        // A counter that went backwards gives 0.
        history.push(40_000, &snapshot(10, 1));
        assert_eq!(
            history.request_rates(RequestKind::Announce),
            [None, Some(5.0), Some(8.0), Some(0.0), Some(0.0)]
        );
        // Constant counters: 0 per second, whatever their value.
        assert_eq!(
            history.request_rates(RequestKind::Scrape),
            [None, Some(0.0), Some(0.0), Some(0.0), Some(0.0)]
        );
        let json = history.to_json(Protocol::Udp);
        assert_eq!(
            json["requests_per_sec"]["announce"],
            serde_json::json!([null, 5.0, 8.0, 0.0, 0.0])
        );
    }

    #[test]
    fn json_has_the_protocols_kinds_only() {
        let mut history = History::new(Duration::from_secs(10));
        history.push(0, &snapshot(0, 0));
        let udp = history.to_json(Protocol::Udp);
        assert_eq!(udp["protocol"], "udp");
        assert!(udp["requests_per_sec"].get("connect").is_some());
        let http = history.to_json(Protocol::Http);
        assert!(http["requests_per_sec"].get("connect").is_none());
        assert_eq!(
            http["requests_per_sec"]["scrape"],
            serde_json::json!([null])
        );
        assert!(http.get("private").is_none(), "{http}");
    }

    fn private_snapshot(credits: u64, committed: u64, unknown_passkey: u64) -> Snapshot {
        let mut s = snapshot(0, 0);
        s.private = PrivateSnapshot {
            enabled: true,
            credits_committed: credits,
            batches_committed: committed,
            batches_already_applied: 1,
            batches_failed: 2,
            refused: [3, unknown_passkey, 0, 0, 0],
            ..PrivateSnapshot::default()
        };
        s
    }

    #[test]
    fn private_rates_need_private_mode_in_both_samples() {
        let mut history = History::new(Duration::from_secs(10));
        history.push(0, &snapshot(0, 0));
        history.push(10_000, &snapshot(0, 0));
        assert!(history.to_json(Protocol::Udp).get("private").is_none());
        // Private mode came on between the second sample and the third.
        history.push(20_000, &private_snapshot(100, 5, 7));
        history.push(30_000, &private_snapshot(300, 7, 17));
        history.push(35_000, &private_snapshot(350, 8, 17));
        let json = history.to_json(Protocol::Udp);
        let private = &json["private"];
        assert_eq!(
            private["credits_committed_per_sec"],
            serde_json::json!([null, null, null, 20.0, 10.0])
        );
        assert_eq!(
            private["batches_per_sec"]["committed"],
            serde_json::json!([null, null, null, 0.2, 0.2])
        );
        assert_eq!(
            private["batches_per_sec"]["already_applied"],
            serde_json::json!([null, null, null, 0.0, 0.0])
        );
        assert_eq!(
            private["batches_per_sec"]["failed"],
            serde_json::json!([null, null, null, 0.0, 0.0])
        );
        assert_eq!(
            private["refused_per_sec"]["unknown_passkey"],
            serde_json::json!([null, null, null, 1.0, 0.0])
        );
        // Every cause, by its metrics label.
        let causes: BTreeSet<&str> = private["refused_per_sec"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let labels: BTreeSet<&str> = Refusal::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(causes, labels);
        // Once the samples before it are gone, every rate but the first is a number.
        let mut short = History::new(Duration::from_secs(1800));
        for (i, credits) in [0, 10, 40].into_iter().enumerate() {
            short.push(i as u64 * 1000, &private_snapshot(credits, 0, 0));
        }
        assert_eq!(
            short.to_json(Protocol::Http)["private"]["credits_committed_per_sec"],
            serde_json::json!([null, 30.0])
        );
    }
}
