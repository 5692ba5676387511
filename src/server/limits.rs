//! Per-shard throughput limits, as Kinesis enforces them, and fault injection.
//!
//! Each shard has two write buckets (records/s and bytes/s) that must both have room
//! for a record to be accepted, and two read buckets for GetRecords. Governor, used
//! by the agent, cannot take from two buckets as one decision, so the server keeps
//! this small bucket of its own, run on the server clock so tests can refill it by
//! advancing time.

use crate::kinesis::limits;
use crate::server::clock::Millis;

/// A token bucket holding at most one second of its rate.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: f64,
    tokens: f64,
    updated_ms: Millis,
}

impl TokenBucket {
    pub fn new(rate_per_sec: u64, now_ms: Millis) -> Self {
        TokenBucket {
            rate_per_sec: rate_per_sec as f64,
            tokens: rate_per_sec as f64,
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: Millis) {
        let elapsed = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.rate_per_sec);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    pub fn has(&mut self, amount: f64, now_ms: Millis) -> bool {
        self.refill(now_ms);
        self.tokens >= amount
    }

    /// Takes `amount`, allowing the balance to go negative (a debt later calls repay).
    pub fn take(&mut self, amount: f64) {
        self.tokens -= amount;
    }
}

/// The write and read limits of one shard.
#[derive(Debug, Clone)]
pub struct ShardLimits {
    write_records: TokenBucket,
    write_bytes: TokenBucket,
    read_calls: TokenBucket,
    read_bytes: TokenBucket,
    /// Writes since the last [`ShardLimits::take_load`]: what makes an ON_DEMAND
    /// stream split this shard.
    load: Load,
}

/// The writes a shard took, and whether it refused any, over a span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub bytes: u64,
    pub records: u64,
    pub throttled: bool,
}

impl Load {
    /// Whether a shard with this load over `elapsed_ms` ran at or near its write
    /// limits (90% of either) or refused writes.
    pub fn is_hot(&self, elapsed_ms: i64) -> bool {
        let seconds = elapsed_ms.max(1) as f64 / 1000.0;
        self.throttled
            || self.bytes as f64 / seconds >= 0.9 * limits::SHARD_WRITE_BYTES_PER_SEC as f64
            || self.records as f64 / seconds >= 0.9 * limits::SHARD_WRITE_RECORDS_PER_SEC as f64
    }
}

impl ShardLimits {
    pub fn new(now_ms: Millis) -> Self {
        ShardLimits {
            write_records: TokenBucket::new(limits::SHARD_WRITE_RECORDS_PER_SEC, now_ms),
            write_bytes: TokenBucket::new(limits::SHARD_WRITE_BYTES_PER_SEC, now_ms),
            read_calls: TokenBucket::new(limits::SHARD_READ_CALLS_PER_SEC, now_ms),
            read_bytes: TokenBucket::new(limits::SHARD_READ_BYTES_PER_SEC, now_ms),
            load: Load::default(),
        }
    }

    /// Admits one record of `bytes` (partition key + data) if both write buckets have room.
    /// A record larger than a second of the byte rate (a stream that takes records over
    /// 1 MiB) goes in when the bucket is full, and the shard then owes the rest.
    pub fn admit_write(&mut self, bytes: usize, now_ms: Millis) -> bool {
        let bytes = bytes as f64;
        let room = bytes.min(self.write_bytes.rate_per_sec);
        if self.write_records.has(1.0, now_ms) && self.write_bytes.has(room, now_ms) {
            self.write_records.take(1.0);
            self.write_bytes.take(bytes);
            self.load.bytes += bytes as u64;
            self.load.records += 1;
            true
        } else {
            self.load.throttled = true;
            false
        }
    }

    /// The load since the last call, which starts a new span.
    pub fn take_load(&mut self) -> Load {
        std::mem::take(&mut self.load)
    }

    /// Admits one GetRecords call if the shard has calls left and is not in byte debt.
    pub fn admit_read(&mut self, now_ms: Millis) -> bool {
        if self.read_calls.has(1.0, now_ms) && self.read_bytes.has(0.0, now_ms) {
            self.read_calls.take(1.0);
            true
        } else {
            false
        }
    }

    /// Charges the bytes a GetRecords call returned; a 10 MiB read blocks the shard's
    /// reads for several seconds, as in Kinesis.
    pub fn charge_read(&mut self, bytes: usize) {
        self.read_bytes.take(bytes as f64);
    }
}

/// A Firehose delivery stream's write quota: records, bytes and calls per second.
#[derive(Debug, Clone)]
pub struct DeliveryLimits {
    records: TokenBucket,
    bytes: TokenBucket,
    calls: TokenBucket,
}

impl DeliveryLimits {
    pub fn new(now_ms: Millis) -> Self {
        DeliveryLimits {
            records: TokenBucket::new(limits::FIREHOSE_RECORDS_PER_SEC, now_ms),
            bytes: TokenBucket::new(limits::FIREHOSE_BYTES_PER_SEC, now_ms),
            calls: TokenBucket::new(limits::FIREHOSE_CALLS_PER_SEC, now_ms),
        }
    }

    /// Admits one call (PutRecord or PutRecordBatch) if the stream has calls left.
    pub fn admit_call(&mut self, now_ms: Millis) -> bool {
        let admitted = self.calls.has(1.0, now_ms);
        if admitted {
            self.calls.take(1.0);
        }
        admitted
    }

    /// Admits one record of `bytes` if both write buckets have room.
    pub fn admit_record(&mut self, bytes: usize, now_ms: Millis) -> bool {
        let bytes = bytes as f64;
        let room = bytes.min(self.bytes.rate_per_sec);
        if self.records.has(1.0, now_ms) && self.bytes.has(room, now_ms) {
            self.records.take(1.0);
            self.bytes.take(bytes);
            true
        } else {
            false
        }
    }
}

/// Fails a share of PutRecords entries on purpose, so producers' retry paths run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultInjection {
    /// Share of entries answered `ProvisionedThroughputExceededException`.
    pub throttle_ratio: f64,
    /// Share of entries answered `InternalFailure`.
    pub internal_ratio: f64,
    /// Records acknowledged but not stored (a lossy server), so end-to-end checks are
    /// shown to catch a loss. For tests only.
    pub drop_records: u64,
}

/// What fault injection decided for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    None,
    Throttle,
    Internal,
}

impl FaultInjection {
    pub fn is_active(&self) -> bool {
        self.throttle_ratio > 0.0 || self.internal_ratio > 0.0 || self.drop_records > 0
    }

    /// Draws the fault for one entry from a uniform number in [0, 1).
    pub fn decide(&self, draw: f64) -> InjectedFault {
        if draw < self.throttle_ratio {
            InjectedFault::Throttle
        } else if draw < self.throttle_ratio + self.internal_ratio {
            InjectedFault::Internal
        } else {
            InjectedFault::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_takes_one_second_of_records_then_refills() {
        let mut limits = ShardLimits::new(0);
        let admitted = (0..1500).filter(|_| limits.admit_write(10, 0)).count();
        assert_eq!(admitted, 1000);
        assert!(!limits.admit_write(10, 0));
        assert!(limits.admit_write(10, 1));
        // 999 ms later, 999 more.
        assert_eq!(
            (0..2000).filter(|_| limits.admit_write(10, 1000)).count(),
            999
        );
    }

    #[test]
    fn bytes_are_limited_to_one_mebibyte_per_second() {
        let mut limits = ShardLimits::new(0);
        let admitted = (0..20)
            .filter(|_| limits.admit_write(100 * 1024, 0))
            .count();
        assert_eq!(admitted, 10);
        // A refused record takes nothing from the records bucket.
        assert_eq!((0..990).filter(|_| limits.admit_write(0, 0)).count(), 990);
    }

    #[test]
    fn a_large_read_blocks_reads_until_repaid() {
        let mut limits = ShardLimits::new(0);
        assert!(limits.admit_read(0));
        limits.charge_read(10 * 1024 * 1024);
        // 10 MiB against 2 MiB/s, less the 2 MiB the bucket held: blocked for 4 s.
        assert!(!limits.admit_read(1000));
        assert!(!limits.admit_read(3900));
        assert!(limits.admit_read(4100));
    }

    #[test]
    fn five_read_calls_per_second() {
        let mut limits = ShardLimits::new(0);
        assert_eq!((0..10).filter(|_| limits.admit_read(0)).count(), 5);
        assert!(limits.admit_read(200));
    }
}
