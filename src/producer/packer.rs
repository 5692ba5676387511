//! What a lane packs its records into: a KPL aggregate for a Kinesis stream, or, for a
//! Firehose delivery stream, the records' data end to end.
//!
//! Firehose writes the concatenation of its records as an object, so packing many
//! newline-terminated lines into one Firehose record leaves the objects byte for byte
//! the same while cutting the records (billed each rounded up to 5 KB) a
//! hundredfold. A packed record carries no partition key (Firehose has none); its
//! records are told apart again by their lengths, which their members keep
//! ([`Member::data_len`](super::lane::Member)).

use bytes::{Bytes, BytesMut};

use crate::config::{AggregationConfig, PackFormat};
use crate::kinesis::aggregation::{Aggregator, Pushed, RecordTooLarge, Sealed};
use crate::kinesis::{HashKey, KinesisRecord, UserRecord};

#[derive(Debug)]
pub enum Packer {
    Kpl(Aggregator),
    Concatenated(Concatenation),
}

impl Packer {
    pub fn new(aggregation: &AggregationConfig) -> Packer {
        match aggregation.format {
            PackFormat::Kpl => Packer::Kpl(Aggregator::new(aggregation.max_bytes)),
            PackFormat::Concatenated => {
                Packer::Concatenated(Concatenation::new(aggregation.max_bytes))
            }
        }
    }

    /// Adds a record; `key`, when given, is its partition key (see
    /// [`Aggregator::push_keyed`]; a concatenation keeps no keys).
    pub fn push(
        &mut self,
        record: UserRecord,
        key: Option<&str>,
    ) -> Result<Pushed, RecordTooLarge> {
        match self {
            Packer::Kpl(aggregator) => aggregator.push_keyed(record, key),
            Packer::Concatenated(concatenation) => concatenation.push(record),
        }
    }

    pub fn seal(&mut self) -> Option<Sealed> {
        match self {
            Packer::Kpl(aggregator) => aggregator.seal(),
            Packer::Concatenated(concatenation) => concatenation.seal(),
        }
    }

    /// Bytes the open record can still grow by (see [`Aggregator::room`]).
    pub fn room(&self) -> usize {
        match self {
            Packer::Kpl(aggregator) => aggregator.room(),
            Packer::Concatenated(concatenation) => concatenation.room(),
        }
    }

    /// The size the service counts for the open record.
    pub fn kinesis_size(&self) -> usize {
        match self {
            Packer::Kpl(aggregator) => aggregator.kinesis_size(),
            Packer::Concatenated(concatenation) => concatenation.data.len(),
        }
    }

    /// The held records, in order, and resets.
    pub fn take_records(&mut self) -> Vec<UserRecord> {
        match self {
            Packer::Kpl(aggregator) => aggregator.take_records(),
            Packer::Concatenated(concatenation) => concatenation.take_records(),
        }
    }
}

/// Records' data end to end, up to `max_bytes`.
#[derive(Debug)]
pub struct Concatenation {
    max_bytes: usize,
    data: BytesMut,
    lengths: Vec<u32>,
}

impl Concatenation {
    pub fn new(max_bytes: usize) -> Concatenation {
        Concatenation {
            max_bytes,
            data: BytesMut::new(),
            lengths: Vec::new(),
        }
    }

    /// Adds a record's data (its partition key is dropped: Firehose has none).
    pub fn push(&mut self, record: UserRecord) -> Result<Pushed, RecordTooLarge> {
        let len = record.data.len();
        if self.lengths.is_empty() && len > self.max_bytes {
            return Err(RecordTooLarge {
                size: len,
                limit: self.max_bytes,
                record,
            });
        }
        if !self.lengths.is_empty() && self.data.len() + len > self.max_bytes {
            return Ok(Pushed::Full(record));
        }
        if self.data.capacity() == 0 {
            // Reserved once per record, at its first line: most fill to the limit.
            self.data.reserve(self.max_bytes);
        }
        self.data.extend_from_slice(&record.data);
        self.lengths.push(len as u32);
        Ok(Pushed::Added)
    }

    pub fn room(&self) -> usize {
        self.max_bytes.saturating_sub(self.data.len())
    }

    /// The packed record: no partition key, the data of every record in order.
    pub fn seal(&mut self) -> Option<Sealed> {
        if self.lengths.is_empty() {
            return None;
        }
        let records = std::mem::take(&mut self.lengths).len();
        let data = std::mem::take(&mut self.data).freeze();
        Some(Sealed::from(packed(data, records)))
    }

    fn take_records(&mut self) -> Vec<UserRecord> {
        let lengths = std::mem::take(&mut self.lengths);
        let data = std::mem::take(&mut self.data).freeze();
        split(&data, lengths.into_iter().map(|l| l as usize))
    }
}

/// A Firehose record packed from `records` records.
fn packed(data: Bytes, records: usize) -> KinesisRecord {
    KinesisRecord {
        partition_key: String::new(),
        explicit_hash_key: HashKey(0),
        data,
        user_records: records,
    }
}

/// Whether `record` was packed by a [`Concatenation`] (Kinesis records always have a
/// partition key; packed ones never do).
pub fn is_concatenated(record: &KinesisRecord) -> bool {
    record.partition_key.is_empty()
}

/// The records of a concatenation, cut at `lengths`, as records whose key the
/// producer picks ([`UserRecord::spread`]). Lengths past the data give empty records.
pub fn split(data: &Bytes, lengths: impl IntoIterator<Item = usize>) -> Vec<UserRecord> {
    let mut start = 0;
    lengths
        .into_iter()
        .map(|len| {
            let end = (start + len).min(data.len());
            let piece = data.slice(start.min(end)..end);
            start = end;
            UserRecord::spread(piece)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concatenation_is_the_records_end_to_end_and_splits_back() {
        let mut packer = Concatenation::new(10);
        let lines = ["one\n", "two\n", "three\n"];
        assert_eq!(
            packer.push(UserRecord::new("k", lines[0])),
            Ok(Pushed::Added)
        );
        assert_eq!(packer.push(UserRecord::spread(lines[1])), Ok(Pushed::Added));
        assert_eq!(packer.room(), 2);
        // The third would pass 10 bytes: the record is full.
        assert!(matches!(
            packer.push(UserRecord::spread(lines[2])),
            Ok(Pushed::Full(_))
        ));
        let sealed = packer.seal().map(Sealed::complete);
        let record = sealed.unwrap_or_else(|| panic!("a sealed record"));
        assert_eq!(&record.data[..], b"one\ntwo\n");
        assert!(is_concatenated(&record));
        assert_eq!(record.user_records, 2);
        let back: Vec<Bytes> = split(&record.data, [4, 4])
            .into_iter()
            .map(|r| r.data)
            .collect();
        assert_eq!(back, [Bytes::from("one\n"), Bytes::from("two\n")]);
        assert!(packer.seal().is_none());
    }

    #[test]
    fn a_record_over_the_limit_alone_is_refused() {
        let mut packer = Concatenation::new(4);
        assert!(packer.push(UserRecord::spread("too long")).is_err());
        assert_eq!(packer.push(UserRecord::spread("ok\n")), Ok(Pushed::Added));
        let records = packer.take_records();
        assert_eq!(records, [UserRecord::spread("ok\n")]);
    }
}
