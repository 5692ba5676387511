//! Counters each flow keeps, read by the status line, the metrics exporter and tests.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct FlowStats {
    pub bytes_read: AtomicU64,
    pub records: AtomicU64,
    pub empty_lines: AtomicU64,
    pub oversize_records: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
    pub transform_failures: AtomicU64,
    pub key_fallbacks: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub delivered: AtomicU64,
    pub files_tracked: AtomicU64,
    pub bytes_behind: AtomicU64,
    pub unreadable_files: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowSnapshot {
    pub bytes_read: u64,
    pub records: u64,
    pub empty_lines: u64,
    pub oversize_records: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub transform_failures: u64,
    pub key_fallbacks: u64,
    pub dead_lettered: u64,
    pub delivered: u64,
    pub files_tracked: u64,
    pub bytes_behind: u64,
    pub unreadable_files: u64,
}

impl FlowStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> FlowSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FlowSnapshot {
            bytes_read: get(&self.bytes_read),
            records: get(&self.records),
            empty_lines: get(&self.empty_lines),
            oversize_records: get(&self.oversize_records),
            rotations: get(&self.rotations),
            truncations: get(&self.truncations),
            transform_failures: get(&self.transform_failures),
            key_fallbacks: get(&self.key_fallbacks),
            dead_lettered: get(&self.dead_lettered),
            delivered: get(&self.delivered),
            files_tracked: get(&self.files_tracked),
            bytes_behind: get(&self.bytes_behind),
            unreadable_files: get(&self.unreadable_files),
        }
    }
}
