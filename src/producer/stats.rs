//! Counters a producer keeps for its owner (status lines, tests, benchmarks); the same
//! events also go to the `metrics` registry for Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Records handed over by `send`/`send_batch` (some may still wait to be routed).
    pub handed_records: AtomicU64,
    /// Budget bytes of the records handed over, and of those whose outcome came back.
    pub handed_bytes: AtomicU64,
    pub released_bytes: AtomicU64,
    pub user_records: AtomicU64,
    pub user_bytes: AtomicU64,
    pub acknowledged_records: AtomicU64,
    pub kinesis_records: AtomicU64,
    pub kinesis_bytes: AtomicU64,
    pub put_requests: AtomicU64,
    pub entries_sent: AtomicU64,
    pub throttled_entries: AtomicU64,
    pub failed_entries: AtomicU64,
    pub failed_requests: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub map_refreshes: AtomicU64,
    pub misrouted_aggregates: AtomicU64,
    /// Times every open aggregate was sealed because together they held the budget.
    pub pressure_seals: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub handed_records: u64,
    pub handed_bytes: u64,
    pub released_bytes: u64,
    pub user_records: u64,
    pub user_bytes: u64,
    pub acknowledged_records: u64,
    pub kinesis_records: u64,
    pub kinesis_bytes: u64,
    pub put_requests: u64,
    pub entries_sent: u64,
    pub throttled_entries: u64,
    pub failed_entries: u64,
    pub failed_requests: u64,
    pub dead_lettered: u64,
    pub map_refreshes: u64,
    pub misrouted_aggregates: u64,
    pub pressure_seals: u64,
}

impl ProducerStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            handed_records: get(&self.handed_records),
            handed_bytes: get(&self.handed_bytes),
            released_bytes: get(&self.released_bytes),
            user_records: get(&self.user_records),
            user_bytes: get(&self.user_bytes),
            acknowledged_records: get(&self.acknowledged_records),
            kinesis_records: get(&self.kinesis_records),
            kinesis_bytes: get(&self.kinesis_bytes),
            put_requests: get(&self.put_requests),
            entries_sent: get(&self.entries_sent),
            throttled_entries: get(&self.throttled_entries),
            failed_entries: get(&self.failed_entries),
            failed_requests: get(&self.failed_requests),
            dead_lettered: get(&self.dead_lettered),
            map_refreshes: get(&self.map_refreshes),
            misrouted_aggregates: get(&self.misrouted_aggregates),
            pressure_seals: get(&self.pressure_seals),
        }
    }
}

impl StatsSnapshot {
    /// Bytes (budget: key, data and bookkeeping) of records whose outcome has not come back.
    pub fn unacknowledged_bytes(&self) -> u64 {
        self.handed_bytes.saturating_sub(self.released_bytes)
    }

    /// Records handed to the producer whose outcome has not been reported yet.
    pub fn unacknowledged_records(&self) -> u64 {
        self.handed_records
            .saturating_sub(self.acknowledged_records)
    }
}
