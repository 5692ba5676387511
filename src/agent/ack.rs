//! Which bytes of each file Kinesis has accepted, and so how far its checkpoint may go.
//!
//! Records of one file are acknowledged out of order (different shards, retries); a
//! file's checkpoint only advances to the highest offset below which every byte was
//! acknowledged, so a restart never skips a record still in flight.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use foldhash::fast::RandomState;

/// Identifies one reading of one file (a new one after truncation).
pub type ReadingId = u64;

#[derive(Debug, Default)]
struct Progress {
    /// Every byte below this offset is acknowledged.
    committed: u64,
    /// Acknowledged ranges above `committed`, by start.
    ahead: BTreeMap<u64, u64>,
}

/// Acknowledged ranges per reading.
#[derive(Debug, Default)]
pub struct AckTracker {
    readings: HashMap<ReadingId, Progress, RandomState>,
}

impl AckTracker {
    /// Starts tracking a reading whose first unread byte is at `offset`.
    pub fn begin(&mut self, reading: ReadingId, offset: u64) {
        self.readings.insert(
            reading,
            Progress {
                committed: offset,
                ahead: BTreeMap::new(),
            },
        );
    }

    /// Marks `range` of `reading` as acknowledged (or deliberately dropped).
    pub fn acknowledge(&mut self, reading: ReadingId, range: Range<u64>) {
        let Some(progress) = self.readings.get_mut(&reading) else {
            return;
        };
        if range.end <= progress.committed {
            return;
        }
        if range.start <= progress.committed {
            progress.committed = range.end;
        } else if let Some((_, end)) = progress
            .ahead
            .range_mut(..=range.start)
            .next_back()
            .filter(|(_, end)| **end >= range.start)
        {
            // Records of one shard come back in file order: extending the range they
            // continue keeps the map at one entry per gap, not one per record.
            *end = (*end).max(range.end);
        } else {
            progress.ahead.insert(range.start, range.end);
        }
        while let Some((&start, &end)) = progress.ahead.first_key_value() {
            if start > progress.committed {
                break;
            }
            progress.ahead.pop_first();
            progress.committed = progress.committed.max(end);
        }
    }

    /// The offset a checkpoint of `reading` may record.
    pub fn committed(&self, reading: ReadingId) -> Option<u64> {
        self.readings.get(&reading).map(|p| p.committed)
    }

    /// Stops tracking a reading (file finished and fully acknowledged, or superseded).
    pub fn forget(&mut self, reading: ReadingId) {
        self.readings.remove(&reading);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_acks_advance_only_contiguously() {
        let mut tracker = AckTracker::default();
        tracker.begin(1, 100);
        tracker.acknowledge(1, 110..120);
        assert_eq!(tracker.committed(1), Some(100));
        tracker.acknowledge(1, 130..140);
        tracker.acknowledge(1, 100..110);
        assert_eq!(tracker.committed(1), Some(120));
        tracker.acknowledge(1, 120..130);
        assert_eq!(tracker.committed(1), Some(140));
        tracker.acknowledge(1, 100..110);
        assert_eq!(
            tracker.committed(1),
            Some(140),
            "a duplicate ack changes nothing"
        );
    }

    /// Acks arriving in any order (here: interleaved per-shard streams, each in file
    /// order, plus duplicates) commit exactly the acknowledged prefix.
    #[test]
    fn committed_is_always_the_acknowledged_prefix() {
        let ranges: Vec<Range<u64>> = (0..300u64).map(|i| i * 10..i * 10 + 10).collect();
        for shards in [1usize, 2, 3, 7] {
            let mut tracker = AckTracker::default();
            tracker.begin(1, 0);
            let mut order: Vec<usize> = Vec::new();
            for shard in (0..shards).rev() {
                order.extend((0..ranges.len()).filter(|i| i % shards == shard));
            }
            order.extend([5, 0, 299]);
            let mut acked = vec![false; ranges.len()];
            for i in order {
                tracker.acknowledge(1, ranges[i].clone());
                acked[i] = true;
                let prefix = acked.iter().take_while(|a| **a).count() as u64 * 10;
                assert_eq!(tracker.committed(1), Some(prefix), "{shards} shards");
            }
        }
    }

    #[test]
    fn unknown_readings_are_ignored() {
        let mut tracker = AckTracker::default();
        tracker.acknowledge(9, 0..10);
        assert_eq!(tracker.committed(9), None);
    }
}
