//! One shard's records: an append-only log in fixed-size segments.
//!
//! Records are packed back to back (partition key, then data) in segments of about
//! 1 MiB, each with a small index entry, so memory stays close to the payload and
//! does not grow with the number of records beyond 16 bytes each. Retention drops
//! whole segments, which returns their memory at once.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::server::clock::Millis;

/// Bytes reserved per segment; a larger record gets a segment of its own size.
const SEGMENT_BYTES: usize = 1024 * 1024;

/// Position of a record in its shard: 0 for the first record ever written.
pub type Position = u64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    partition_key_len: u16,
    /// Written while the stream was encrypted (`EncryptionType: KMS`); fits in what
    /// would otherwise be padding, so it costs no memory.
    sealed: bool,
    arrival_ms: Millis,
}

#[derive(Debug)]
struct Segment {
    first_position: Position,
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Segment {
    fn new(first_position: Position, capacity: usize) -> Self {
        Segment {
            first_position,
            bytes: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    fn end_position(&self) -> Position {
        self.first_position + self.entries.len() as u64
    }

    fn record(&self, index: usize) -> StoredRecord {
        let entry = self.entries[index];
        let end = self
            .entries
            .get(index + 1)
            .map_or(self.bytes.len(), |next| next.start as usize);
        let start = entry.start as usize;
        let key_end = start + usize::from(entry.partition_key_len);
        StoredRecord {
            position: self.first_position + index as u64,
            arrival_ms: entry.arrival_ms,
            sealed: entry.sealed,
            partition_key: String::from_utf8_lossy(&self.bytes[start..key_end]).into_owned(),
            data: Bytes::copy_from_slice(&self.bytes[key_end..end]),
        }
    }

    fn last_arrival_ms(&self) -> Option<Millis> {
        self.entries.last().map(|e| e.arrival_ms)
    }
}

/// A record as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub position: Position,
    pub arrival_ms: Millis,
    pub sealed: bool,
    pub partition_key: String,
    pub data: Bytes,
}

/// The records of one shard, oldest first.
#[derive(Debug, Default)]
pub struct ShardLog {
    segments: VecDeque<Segment>,
    /// Position the next appended record gets; also the number ever appended.
    next_position: Position,
    /// Arrival times never go backwards, so AT_TIMESTAMP can binary-search.
    last_arrival_ms: Millis,
    /// Records below this position have expired even if their segment is still held.
    horizon: Position,
    stored_bytes: usize,
}

impl ShardLog {
    /// A log whose first record will get `next_position` (after a restart or trim).
    pub fn starting_at(next_position: Position) -> Self {
        ShardLog {
            next_position,
            ..ShardLog::default()
        }
    }

    /// Appends a record written in the clear; returns its position and arrival time.
    pub fn append(
        &mut self,
        partition_key: &str,
        data: &[u8],
        now_ms: Millis,
    ) -> (Position, Millis) {
        self.append_sealed(partition_key, data, now_ms, false)
    }

    /// Appends a record, noting whether it was written encrypted; returns its
    /// position and the arrival time recorded.
    pub fn append_sealed(
        &mut self,
        partition_key: &str,
        data: &[u8],
        now_ms: Millis,
        sealed: bool,
    ) -> (Position, Millis) {
        let arrival_ms = now_ms.max(self.last_arrival_ms);
        self.append_at(partition_key, data, arrival_ms, sealed);
        (self.next_position - 1, arrival_ms)
    }

    /// Appends with a given arrival time (replay from disk keeps the original one).
    pub fn append_at(
        &mut self,
        partition_key: &str,
        data: &[u8],
        arrival_ms: Millis,
        sealed: bool,
    ) {
        let size = partition_key.len() + data.len();
        let fits = self.segments.back().is_some_and(|s| {
            s.bytes.capacity() - s.bytes.len() >= size && s.bytes.len() + size <= u32::MAX as usize
        });
        if !fits {
            self.segments
                .push_back(Segment::new(self.next_position, SEGMENT_BYTES.max(size)));
        }
        let Some(segment) = self.segments.back_mut() else {
            unreachable!("a segment was just ensured");
        };
        segment.entries.push(Entry {
            start: segment.bytes.len() as u32,
            partition_key_len: partition_key.len() as u16,
            sealed,
            arrival_ms,
        });
        segment.bytes.extend_from_slice(partition_key.as_bytes());
        segment.bytes.extend_from_slice(data);
        self.next_position += 1;
        self.last_arrival_ms = self.last_arrival_ms.max(arrival_ms);
        self.stored_bytes += size;
    }

    /// Position of the oldest record still kept (the trim horizon).
    pub fn first_position(&self) -> Position {
        self.segments
            .front()
            .map_or(self.next_position, |s| s.first_position)
            .max(self.horizon)
    }

    pub fn next_position(&self) -> Position {
        self.next_position
    }

    pub fn last_arrival_ms(&self) -> Millis {
        self.last_arrival_ms
    }

    /// Payload bytes held (partition keys plus data).
    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes
    }

    /// Reads up to `max_records` records and about `max_bytes` bytes from `from`
    /// (at least one record if there is one, so a large record is never stuck).
    pub fn read(&self, from: Position, max_records: usize, max_bytes: usize) -> Vec<StoredRecord> {
        let from = from.max(self.first_position());
        let mut out = Vec::new();
        let mut bytes = 0;
        let first_segment = self.segments.partition_point(|s| s.end_position() <= from);
        for segment in self.segments.range(first_segment..) {
            let skip = from.saturating_sub(segment.first_position) as usize;
            for index in skip..segment.entries.len() {
                if out.len() >= max_records {
                    return out;
                }
                let record = segment.record(index);
                bytes += record.partition_key.len() + record.data.len();
                if bytes > max_bytes && !out.is_empty() {
                    return out;
                }
                out.push(record);
            }
        }
        out
    }

    /// The first position whose arrival time is at or after `timestamp_ms`.
    pub fn position_at_timestamp(&self, timestamp_ms: Millis) -> Position {
        let segment_index = self
            .segments
            .partition_point(|s| s.last_arrival_ms().is_some_and(|t| t < timestamp_ms));
        match self.segments.get(segment_index) {
            None => self.next_position,
            Some(segment) => {
                let index = segment
                    .entries
                    .partition_point(|e| e.arrival_ms < timestamp_ms);
                (segment.first_position + index as u64).max(self.first_position())
            }
        }
    }

    /// Expires every record that arrived before `cutoff_ms`. Memory is returned a whole
    /// segment at a time; expired records in a partly expired segment are hidden.
    pub fn trim_before(&mut self, cutoff_ms: Millis) {
        while let Some(front) = self.segments.front() {
            if front.last_arrival_ms().is_some_and(|t| t < cutoff_ms) {
                self.stored_bytes -= front.bytes.len();
                self.horizon = self.horizon.max(front.end_position());
                self.segments.pop_front();
            } else {
                let expired = front.entries.partition_point(|e| e.arrival_ms < cutoff_ms);
                self.horizon = self.horizon.max(front.first_position + expired as u64);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encryption_flag_costs_no_memory_per_record() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        let mut log = ShardLog::default();
        log.append_sealed("k", b"secret", 1, true);
        log.append("k", b"plain", 2);
        let read = log.read(0, 10, 1 << 20);
        assert_eq!(
            read.iter().map(|r| r.sealed).collect::<Vec<_>>(),
            [true, false]
        );
    }

    #[test]
    fn appended_records_read_back_in_order() {
        let mut log = ShardLog::default();
        for i in 0..10u8 {
            log.append(&format!("k{i}"), &[i; 3], 1000 + i64::from(i));
        }
        let records = log.read(3, 4, usize::MAX);
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].position, 3);
        assert_eq!(records[0].partition_key, "k3");
        assert_eq!(records[0].data.as_ref(), &[3, 3, 3]);
        assert_eq!(log.read(10, 5, usize::MAX), vec![]);
    }

    #[test]
    fn byte_limit_stops_reading_but_never_before_the_first_record() {
        let mut log = ShardLog::default();
        log.append("k", &[0; 100], 0);
        log.append("k", &[0; 100], 0);
        assert_eq!(log.read(0, 10, 50).len(), 1);
        assert_eq!(log.read(0, 10, 202).len(), 2);
    }

    #[test]
    fn large_records_get_their_own_segment() {
        let mut log = ShardLog::default();
        log.append("a", &[1; 10], 0);
        log.append("b", &vec![2; SEGMENT_BYTES * 2], 0);
        log.append("c", &[3; 10], 0);
        let records = log.read(0, 10, usize::MAX);
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].data.len(), SEGMENT_BYTES * 2);
        assert_eq!(records[2].partition_key, "c");
    }

    #[test]
    fn timestamps_find_the_first_record_at_or_after() {
        let mut log = ShardLog::default();
        for t in [10, 20, 20, 30] {
            log.append("k", b"x", t);
        }
        assert_eq!(log.position_at_timestamp(5), 0);
        assert_eq!(log.position_at_timestamp(20), 1);
        assert_eq!(log.position_at_timestamp(21), 3);
        assert_eq!(log.position_at_timestamp(31), 4);
        // Arrival never goes backwards even if the clock does.
        let (_, arrival) = log.append("k", b"x", 1);
        assert_eq!(arrival, 30);
    }

    #[test]
    fn trimming_drops_old_segments_and_keeps_positions() {
        let mut log = ShardLog::default();
        let big = vec![0; SEGMENT_BYTES / 2 + 1];
        log.append("k", &big, 100);
        log.append("k", &big, 200);
        log.append("k", b"new", 300);
        log.trim_before(250);
        assert_eq!(log.first_position(), 2);
        assert_eq!(log.read(0, 10, usize::MAX)[0].position, 2);
        // The first segment (record 0) is freed; record 1 shares a segment with record 2.
        assert_eq!(log.stored_bytes(), big.len() + 1 + 4);
        assert_eq!(log.next_position(), 3);
    }

    #[test]
    fn trimming_hides_expired_records_inside_a_kept_segment() {
        let mut log = ShardLog::default();
        log.append("k", b"old", 100);
        log.append("k", b"new", 300);
        log.trim_before(200);
        assert_eq!(log.first_position(), 1);
        assert_eq!(log.read(0, 10, usize::MAX)[0].data.as_ref(), b"new");
        assert_eq!(log.position_at_timestamp(0), 1);
    }
}
