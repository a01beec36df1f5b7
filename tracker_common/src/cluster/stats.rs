//! The cluster's counters: written by the bus thread and the request workers, read by
//! the metrics endpoint and `/health`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

use crate::observe::statistics::add;

/// Upper bounds, in milliseconds, of the buckets of how long a change took from the
/// node that published it to this one (wall clocks of two machines: as good as NTP).
pub const DELAY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/// The cluster's counters; all zero when the cluster is off.
#[derive(Debug, Default)]
pub struct ClusterStatistics {
    /// Whether this tracker is a cluster node.
    pub enabled: AtomicBool,
    /// Whether the connection to NATS is up.
    pub bus_up: AtomicBool,
    /// Peer changes of this node's announces, published.
    pub changes_published: AtomicU64,
    /// Peer changes not published: the hand-off to the bus thread was full, or the bus
    /// was down.
    pub changes_dropped_outgoing: AtomicU64,
    /// Other nodes' changes applied to the shards (each one handed to its shard, whether
    /// it changed anything there or not).
    pub changes_applied: AtomicU64,
    /// Other nodes' changes dropped: a request worker's channel was full.
    pub changes_dropped_incoming: AtomicU64,
    /// Batches published (heartbeats included).
    pub batches_published: AtomicU64,
    /// Bytes published on the peers subjects.
    pub bytes_published: AtomicU64,
    /// Bytes received on the peers subjects.
    pub bytes_received: AtomicU64,
    /// Batches from other nodes that could not be read.
    pub bad_batches: AtomicU64,
    /// Gaps in another node's sequence: batches that never arrived.
    pub sequence_gaps: AtomicU64,
    /// Times the NATS server reported this node as a slow consumer.
    pub slow_consumer: AtomicU64,
    /// Resyncs started (at start, after a reconnect, a gap or a drop).
    pub resyncs: AtomicU64,
    /// Nodes that failed to answer a resync (no answer in time, an unreadable chunk).
    pub resyncs_failed: AtomicU64,
    /// Peers taken from other nodes by resyncs.
    pub resync_peers: AtomicU64,
    /// Resyncs this node answered for others.
    pub resyncs_served: AtomicU64,
    /// Resync requests of others not answered: too many were waiting.
    pub resyncs_refused: AtomicU64,
    /// Other nodes heard within the last few heartbeats.
    pub live_nodes: AtomicU64,
    /// WebTorrent offers and answers for peers on other nodes, published.
    pub relays_published: AtomicU64,
    /// Offers and answers for other nodes not published: the hand-off to the bus thread
    /// was full, the bus was down, or the node is unknown.
    pub relays_dropped_outgoing: AtomicU64,
    /// Offers and answers from other nodes handed to a connection here.
    pub relays_delivered: AtomicU64,
    /// Offers and answers from other nodes not delivered: unreadable, a request
    /// worker's channel was full, or the peer is not on a connection here (any more).
    pub relays_dropped_incoming: AtomicU64,
    /// How long changes took to arrive, by [`DELAY_BUCKETS_MS`] (the last bucket
    /// counts what took longer).
    pub delay_buckets: [AtomicU64; DELAY_BUCKETS_MS.len() + 1],
    /// Sum of those delays, in milliseconds.
    pub delay_sum_ms: AtomicU64,
}

/// What [`ClusterStatistics`] held at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterSnapshot {
    /// See [`ClusterStatistics::enabled`].
    pub enabled: bool,
    /// See [`ClusterStatistics::bus_up`].
    pub bus_up: bool,
    /// See [`ClusterStatistics::changes_published`].
    pub changes_published: u64,
    /// See [`ClusterStatistics::changes_dropped_outgoing`].
    pub changes_dropped_outgoing: u64,
    /// See [`ClusterStatistics::changes_applied`].
    pub changes_applied: u64,
    /// See [`ClusterStatistics::changes_dropped_incoming`].
    pub changes_dropped_incoming: u64,
    /// See [`ClusterStatistics::batches_published`].
    pub batches_published: u64,
    /// See [`ClusterStatistics::bytes_published`].
    pub bytes_published: u64,
    /// See [`ClusterStatistics::bytes_received`].
    pub bytes_received: u64,
    /// See [`ClusterStatistics::bad_batches`].
    pub bad_batches: u64,
    /// See [`ClusterStatistics::sequence_gaps`].
    pub sequence_gaps: u64,
    /// See [`ClusterStatistics::slow_consumer`].
    pub slow_consumer: u64,
    /// See [`ClusterStatistics::resyncs`].
    pub resyncs: u64,
    /// See [`ClusterStatistics::resyncs_failed`].
    pub resyncs_failed: u64,
    /// See [`ClusterStatistics::resync_peers`].
    pub resync_peers: u64,
    /// See [`ClusterStatistics::resyncs_served`].
    pub resyncs_served: u64,
    /// See [`ClusterStatistics::resyncs_refused`].
    pub resyncs_refused: u64,
    /// See [`ClusterStatistics::live_nodes`].
    pub live_nodes: u64,
    /// See [`ClusterStatistics::relays_published`].
    pub relays_published: u64,
    /// See [`ClusterStatistics::relays_dropped_outgoing`].
    pub relays_dropped_outgoing: u64,
    /// See [`ClusterStatistics::relays_delivered`].
    pub relays_delivered: u64,
    /// See [`ClusterStatistics::relays_dropped_incoming`].
    pub relays_dropped_incoming: u64,
    /// Peers stored from other nodes' changes (summed over the request workers).
    pub remote_peers: u64,
    /// Cumulative counts of changes that arrived within each of [`DELAY_BUCKETS_MS`].
    pub delay_buckets: [u64; DELAY_BUCKETS_MS.len()],
    /// Changes timed (the count of the histogram).
    pub delay_count: u64,
    /// See [`ClusterStatistics::delay_sum_ms`].
    pub delay_sum_ms: u64,
}

impl ClusterStatistics {
    /// Counts `n` changes that took `delay_ms` to arrive.
    pub fn record_delay(&self, delay_ms: u64, n: u64) {
        let bucket = DELAY_BUCKETS_MS
            .iter()
            .position(|bound| delay_ms <= *bound)
            .unwrap_or(DELAY_BUCKETS_MS.len());
        if let Some(counter) = self.delay_buckets.get(bucket) {
            add(counter, n);
        }
        add(&self.delay_sum_ms, delay_ms.saturating_mul(n));
    }

    /// Reads every counter; `remote_peers` comes from the request workers' gauges.
    pub fn snapshot(&self, remote_peers: u64) -> ClusterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut cumulative = 0u64;
        let mut delay_buckets = [0; DELAY_BUCKETS_MS.len()];
        for (bucket, counter) in delay_buckets.iter_mut().zip(&self.delay_buckets) {
            cumulative = cumulative.saturating_add(get(counter));
            *bucket = cumulative;
        }
        let delay_count = self
            .delay_buckets
            .iter()
            .map(get)
            .fold(0, u64::saturating_add);
        ClusterSnapshot {
            enabled: self.enabled.load(Ordering::Relaxed),
            bus_up: self.bus_up.load(Ordering::Relaxed),
            changes_published: get(&self.changes_published),
            changes_dropped_outgoing: get(&self.changes_dropped_outgoing),
            changes_applied: get(&self.changes_applied),
            changes_dropped_incoming: get(&self.changes_dropped_incoming),
            batches_published: get(&self.batches_published),
            bytes_published: get(&self.bytes_published),
            bytes_received: get(&self.bytes_received),
            bad_batches: get(&self.bad_batches),
            sequence_gaps: get(&self.sequence_gaps),
            slow_consumer: get(&self.slow_consumer),
            resyncs: get(&self.resyncs),
            resyncs_failed: get(&self.resyncs_failed),
            resync_peers: get(&self.resync_peers),
            resyncs_served: get(&self.resyncs_served),
            resyncs_refused: get(&self.resyncs_refused),
            live_nodes: get(&self.live_nodes),
            relays_published: get(&self.relays_published),
            relays_dropped_outgoing: get(&self.relays_dropped_outgoing),
            relays_delivered: get(&self.relays_delivered),
            relays_dropped_incoming: get(&self.relays_dropped_incoming),
            remote_peers,
            delay_buckets,
            delay_count,
            delay_sum_ms: get(&self.delay_sum_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_fall_in_the_first_bucket_that_holds_them() {
        let stats = ClusterStatistics::default();
        stats.record_delay(0, 1);
        stats.record_delay(1, 2);
        stats.record_delay(3, 4);
        stats.record_delay(100, 8);
        stats.record_delay(60_000, 16);
        let s = stats.snapshot(0);
        // Cumulative: <= 1 ms: 3; <= 2: 3; <= 5: 7; ... <= 100: 15; above 5000: not in any.
        assert_eq!(s.delay_buckets.first(), Some(&3));
        assert_eq!(s.delay_buckets.get(2), Some(&7));
        assert_eq!(s.delay_buckets.get(6), Some(&15));
        assert_eq!(s.delay_buckets.last(), Some(&15));
        assert_eq!(s.delay_count, 31);
        assert_eq!(s.delay_sum_ms, 2 + 12 + 800 + 960_000);
    }
}
