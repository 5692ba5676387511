//! Builds one aggregated record at a time, knowing its exact size before encoding.

use bytes::{BufMut, Bytes, BytesMut};
use foldhash::fast::RandomState;
use indexmap::IndexSet;
use prost::encoding::{encode_varint, encoded_len_varint};

use super::sealed::{self, Sealed};
use super::{AGGREGATE_PARTITION_KEY, DIGEST_LEN, KinesisRecord, MAGIC, UserRecord};
use crate::kinesis::hash_key::HashKey;

/// What happened to a record offered to [`Aggregator::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Added,
    /// The aggregate would exceed its limit with this record: finish it, then push again.
    Full(UserRecord),
}

/// A record that does not fit the limit even alone, returned so the caller decides
/// (send it unaggregated under a larger limit, or dead-letter it).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "record of {size} bytes (partition key + data) exceeds the limit of {limit} bytes even on its own"
)]
pub struct RecordTooLarge {
    pub record: UserRecord,
    pub size: usize,
    pub limit: usize,
}

/// Accumulates user records into one KPL aggregate.
///
/// The limit is on the Kinesis record that [`Aggregator::finish`] returns, counted as
/// Kinesis counts it: outer partition key plus data (magic, protobuf and MD5 trailer).
#[derive(Debug)]
pub struct Aggregator {
    max_bytes: usize,
    /// Key tables, deduplicated in first-seen order. The hasher is foldhash: SipHash's
    /// flood resistance buys nothing in a table that lives for one aggregate, and it
    /// cost a tenth of the aggregation time.
    partition_keys: IndexSet<String, RandomState>,
    explicit_hash_keys: IndexSet<String, RandomState>,
    records: Vec<Held>,
    /// Exact length of the protobuf `AggregatedRecord` built so far.
    protobuf_len: usize,
    /// Records and keys the last aggregate held: what the next one reserves.
    expected: (usize, usize),
}

/// A record in the open aggregate: its places in the key tables and its data.
///
/// Encoded by hand, not through prost's `Record`: prost writes a `Bytes` field by
/// cloning it (an atomic increment and decrement per record, on a count the reading
/// thread shares), and its message carries a tags vector no record uses. The bytes
/// are the same as prost's (a test holds them to it).
#[derive(Debug)]
struct Held {
    partition_key_index: u32,
    explicit_hash_key_index: Option<u32>,
    data: Bytes,
}

impl Held {
    /// The length of the encoded `Record` message, without its own tag and length.
    fn message_len(&self) -> usize {
        record_message_len(
            self.partition_key_index as usize,
            self.explicit_hash_key_index.map(|i| i as usize),
            self.data.len(),
        )
    }
}

/// Field tags (field number << 3 | wire type) of the messages in `proto`.
const TAG_PARTITION_KEY_TABLE: u8 = 1 << 3 | 2;
const TAG_EXPLICIT_HASH_KEY_TABLE: u8 = 2 << 3 | 2;
const TAG_RECORDS: u8 = 3 << 3 | 2;
const TAG_PARTITION_KEY_INDEX: u8 = 1 << 3;
const TAG_EXPLICIT_HASH_KEY_INDEX: u8 = 2 << 3;
const TAG_DATA: u8 = 3 << 3 | 2;

fn record_message_len(pk_index: usize, ehk_index: Option<usize>, data_len: usize) -> usize {
    varint_field_len(pk_index as u64)
        + ehk_index.map_or(0, |i| varint_field_len(i as u64))
        + delimited_field_len(data_len)
}

fn put_delimited(out: &mut BytesMut, tag: u8, bytes: &[u8]) {
    out.put_u8(tag);
    encode_varint(bytes.len() as u64, out);
    out.put_slice(bytes);
}

/// Bytes a length-delimited field of `len` bytes costs, with its one-byte tag.
fn delimited_field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Bytes a varint field costs, with its one-byte tag.
fn varint_field_len(value: u64) -> usize {
    1 + encoded_len_varint(value)
}

impl Aggregator {
    /// An empty aggregator whose output never exceeds `max_bytes` (partition key + data).
    pub fn new(max_bytes: usize) -> Self {
        Aggregator {
            max_bytes,
            partition_keys: IndexSet::default(),
            explicit_hash_keys: IndexSet::default(),
            records: Vec::new(),
            protobuf_len: 0,
            expected: (0, 0),
        }
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Number of user records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The size Kinesis will count for the record [`Aggregator::finish`] returns now.
    pub fn kinesis_size(&self) -> usize {
        match self.records.len() {
            0 => 0,
            1 => self.partition_keys[0].len() + self.first_data_len(),
            _ => Self::aggregate_size(self.protobuf_len),
        }
    }

    /// Bytes the aggregate can still grow by before it reaches `max_bytes`: a record of
    /// `n` bytes (partition key + data) fits if `n` plus a few bytes of framing per
    /// record and key is at most this.
    pub fn room(&self) -> usize {
        let used = match self.records.len() {
            0 => Self::aggregate_size(0),
            _ => Self::aggregate_size(self.protobuf_len),
        };
        self.max_bytes.saturating_sub(used)
    }

    fn first_data_len(&self) -> usize {
        self.records[0].data.len()
    }

    fn aggregate_size(protobuf_len: usize) -> usize {
        AGGREGATE_PARTITION_KEY.len() + MAGIC.len() + protobuf_len + DIGEST_LEN
    }

    /// Adds a record if the aggregate stays within its limit.
    pub fn push(&mut self, record: UserRecord) -> Result<Pushed, RecordTooLarge> {
        self.push_keyed(record, None)
    }

    /// [`Aggregator::push`] for a record whose partition key is `key`, not its own
    /// (a spread record given a pool key, see
    /// [`SpreadKeys`](crate::kinesis::SpreadKeys)): the key goes into the key table
    /// once per aggregate instead of into a string per record. A record returned
    /// (full, too large) is returned as given, without the key.
    pub fn push_keyed(
        &mut self,
        record: UserRecord,
        key: Option<&str>,
    ) -> Result<Pushed, RecordTooLarge> {
        let alone = record.kinesis_size();
        if self.records.is_empty() && alone > self.max_bytes {
            return Err(RecordTooLarge {
                record,
                size: alone,
                limit: self.max_bytes,
            });
        }

        let explicit_hash_key = record.explicit_hash_key.map(|k| k.to_string());
        let partition_key = key.unwrap_or(&record.partition_key);
        let (pk_index, pk_cost) = match self.partition_keys.get_index_of(partition_key) {
            Some(i) => (i, 0),
            None => (
                self.partition_keys.len(),
                delimited_field_len(partition_key.len()),
            ),
        };
        let (ehk_index, ehk_cost) = match &explicit_hash_key {
            None => (None, 0),
            Some(key) => match self.explicit_hash_keys.get_index_of(key) {
                Some(i) => (Some(i), 0),
                None => (
                    Some(self.explicit_hash_keys.len()),
                    delimited_field_len(key.len()),
                ),
            },
        };
        let record_len = record_message_len(pk_index, ehk_index, record.data.len());
        let grown = self.protobuf_len + pk_cost + ehk_cost + delimited_field_len(record_len);

        if !self.records.is_empty() && Self::aggregate_size(grown) > self.max_bytes {
            return Ok(Pushed::Full(record));
        }

        self.protobuf_len = grown;
        if self.records.capacity() == 0 {
            self.records.reserve_exact(self.expected.0);
            self.partition_keys.reserve(self.expected.1);
        }
        if pk_cost > 0 {
            match key {
                Some(key) => self.partition_keys.insert(key.to_owned()),
                None => self.partition_keys.insert(record.partition_key),
            };
        }
        if let (Some(key), true) = (explicit_hash_key, ehk_cost > 0) {
            self.explicit_hash_keys.insert(key);
        }
        self.records.push(Held {
            partition_key_index: pk_index as u32,
            explicit_hash_key_index: ehk_index.map(|i| i as u32),
            data: record.data,
        });
        Ok(Pushed::Added)
    }

    /// Encodes the held records as one aggregated record (magic, protobuf, MD5), whatever
    /// their number; this is what `aws-kinesis-agg` produces. Does not reset.
    pub fn encode_aggregate(&self) -> Bytes {
        sealed::trailed(Self::encode_unhashed(
            &self.partition_keys,
            &self.explicit_hash_keys,
            &self.records,
            self.protobuf_len,
        ))
    }

    /// Magic and the `AggregatedRecord` protobuf (key tables, then records, as prost
    /// orders them), in a buffer with room left for the trailer.
    fn encode_unhashed(
        partition_keys: &IndexSet<String, RandomState>,
        explicit_hash_keys: &IndexSet<String, RandomState>,
        records: &[Held],
        protobuf_len: usize,
    ) -> BytesMut {
        let mut out = BytesMut::with_capacity(MAGIC.len() + protobuf_len + DIGEST_LEN);
        out.put_slice(&MAGIC);
        for key in partition_keys {
            put_delimited(&mut out, TAG_PARTITION_KEY_TABLE, key.as_bytes());
        }
        for key in explicit_hash_keys {
            put_delimited(&mut out, TAG_EXPLICIT_HASH_KEY_TABLE, key.as_bytes());
        }
        for record in records {
            out.put_u8(TAG_RECORDS);
            encode_varint(record.message_len() as u64, &mut out);
            out.put_u8(TAG_PARTITION_KEY_INDEX);
            encode_varint(u64::from(record.partition_key_index), &mut out);
            if let Some(index) = record.explicit_hash_key_index {
                out.put_u8(TAG_EXPLICIT_HASH_KEY_INDEX);
                encode_varint(u64::from(index), &mut out);
            }
            put_delimited(&mut out, TAG_DATA, &record.data);
        }
        debug_assert_eq!(out.len(), MAGIC.len() + protobuf_len);
        out
    }

    /// Takes the held records back out, unencoded and in order, and resets: for a
    /// caller that must regroup them (the stream's shards changed).
    pub fn take_records(&mut self) -> Vec<UserRecord> {
        let records = std::mem::take(&mut self.records);
        let partition_keys = std::mem::take(&mut self.partition_keys);
        let explicit_hash_keys = std::mem::take(&mut self.explicit_hash_keys);
        self.protobuf_len = 0;
        records
            .into_iter()
            .map(|record| UserRecord {
                partition_key: partition_keys
                    .get_index(record.partition_key_index as usize)
                    .cloned()
                    .unwrap_or_default(),
                explicit_hash_key: record
                    .explicit_hash_key_index
                    .and_then(|i| explicit_hash_keys.get_index(i as usize))
                    .and_then(|key| key.parse().ok()),
                data: record.data,
            })
            .collect()
    }

    /// Takes the held records out as the Kinesis record the KPL would send and resets.
    /// For many aggregates, [`Aggregator::seal`] and one
    /// [`complete_all`](super::complete_all) hash them several times faster.
    pub fn finish(&mut self) -> Option<KinesisRecord> {
        self.seal().map(Sealed::complete)
    }

    /// Takes the held records out as the KPL would send them, all but the MD5 trailer
    /// of an aggregate, and resets.
    ///
    /// One record goes out raw with its own partition key; two or more go out as an
    /// aggregate with a 1-byte partition key. Either way the explicit hash key is the
    /// first record's hash key, so the record lands on the shard it was built for.
    pub fn seal(&mut self) -> Option<Sealed> {
        // The next aggregate is likely to hold as many records: it starts at that size
        // rather than growing through every power of two again, but only once its
        // first record comes (a producer has an aggregator per shard, and most of
        // 500 can be idle).
        self.expected = (self.records.len(), self.partition_keys.len());
        let records = std::mem::take(&mut self.records);
        let partition_keys = std::mem::take(&mut self.partition_keys);
        let explicit_hash_keys = std::mem::take(&mut self.explicit_hash_keys);
        let protobuf_len = std::mem::replace(&mut self.protobuf_len, 0);

        let first = records.first()?;
        let first_pk = &partition_keys[0];
        let first_hash_key = match first.explicit_hash_key_index {
            // Table entries were rendered from a HashKey, so they parse back.
            Some(i) => explicit_hash_keys[i as usize]
                .parse()
                .unwrap_or_else(|e| unreachable!("rendered from a HashKey: {e}")),
            None => HashKey::of_partition_key(first_pk),
        };
        if records.len() == 1 {
            let data = first.data.clone();
            return Some(Sealed::from(KinesisRecord {
                partition_key: partition_keys.into_iter().next().unwrap_or_default(),
                explicit_hash_key: first_hash_key,
                data,
                user_records: 1,
            }));
        }
        let body =
            Self::encode_unhashed(&partition_keys, &explicit_hash_keys, &records, protobuf_len);
        Some(Sealed::unhashed(
            AGGREGATE_PARTITION_KEY.to_owned(),
            first_hash_key,
            body,
            records.len(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_goes_out_raw_with_its_own_keys() {
        let mut agg = Aggregator::new(1024);
        assert_eq!(
            agg.push(UserRecord::new("pk-1", "hello")),
            Ok(Pushed::Added)
        );
        assert_eq!(agg.kinesis_size(), 9);
        let out = agg.finish().unwrap();
        assert_eq!(out.partition_key, "pk-1");
        assert_eq!(out.data, Bytes::from_static(b"hello"));
        assert_eq!(out.explicit_hash_key, HashKey::of_partition_key("pk-1"));
        assert!(agg.is_empty());
        assert_eq!(agg.finish(), None);
    }

    /// Spread records given pool keys: the aggregate's key table holds each key
    /// once, every record refers to its key, and a record sealed alone goes out with
    /// its key; the size predicted with lent keys is the size encoded.
    #[test]
    fn records_pushed_with_lent_keys_carry_those_keys() {
        let mut agg = Aggregator::new(1 << 20);
        let keys = ["0123456789abcdef", "fedcba9876543210"];
        let mut expected = Vec::new();
        for i in 0..10 {
            let key = keys[i % 2];
            let data = format!("line {i}\n");
            agg.push_keyed(UserRecord::spread(data.clone()), Some(key))
                .unwrap();
            expected.push(UserRecord::new(key, data));
            if agg.len() > 1 {
                assert_eq!(agg.kinesis_size(), 1 + agg.encode_aggregate().len());
            }
        }
        assert_eq!(agg.partition_keys.len(), 2);
        let aggregate = agg.finish().unwrap();
        let back =
            crate::kinesis::aggregation::deaggregate(&aggregate.partition_key, &aggregate.data);
        assert_eq!(back.records, expected);
        assert_eq!(
            aggregate.explicit_hash_key,
            HashKey::of_partition_key(keys[0])
        );

        agg.push_keyed(UserRecord::spread("alone"), Some(keys[1]))
            .unwrap();
        let alone = agg.finish().unwrap();
        assert_eq!(alone.partition_key, keys[1]);
        assert_eq!(alone.explicit_hash_key, HashKey::of_partition_key(keys[1]));
    }

    /// The hand encoding is prost's, byte for byte: records with and without explicit
    /// hash keys, key tables, data whose lengths take one to three varint bytes.
    #[test]
    fn the_hand_encoding_is_prosts_encoding() {
        use prost::Message;
        let mut agg = Aggregator::new(1 << 24);
        let mut message = super::super::proto::AggregatedRecord::default();
        let mut keys = IndexSet::<String, RandomState>::default();
        let mut hash_keys = IndexSet::<String, RandomState>::default();
        for i in 0..200usize {
            let mut record = UserRecord::new(format!("key-{}", i % 9), vec![b'x'; i * 97 % 20_000]);
            if i % 3 == 0 {
                record.explicit_hash_key = Some(HashKey(i as u128 * 1_000_000_007));
            }
            let (pk_index, _) = keys.insert_full(record.partition_key.clone());
            let ehk_index = record
                .explicit_hash_key
                .map(|k| hash_keys.insert_full(k.to_string()).0 as u64);
            message.records.push(super::super::proto::Record {
                partition_key_index: Some(pk_index as u64),
                explicit_hash_key_index: ehk_index,
                data: Some(record.data.clone()),
                tags: Vec::new(),
            });
            assert_eq!(agg.push(record), Ok(Pushed::Added));
        }
        message.partition_key_table = keys.into_iter().collect();
        message.explicit_hash_key_table = hash_keys.into_iter().collect();
        let mut expected = MAGIC.to_vec();
        expected.extend_from_slice(&message.encode_to_vec());
        let encoded = agg.encode_aggregate();
        let encoded = &encoded[..encoded.len() - DIGEST_LEN];
        let first_difference = encoded.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(
            (first_difference, encoded.len()),
            (None, expected.len()),
            "near {:?}",
            first_difference.map(|i| (
                &encoded[i.saturating_sub(8)..i + 8],
                &expected[i.saturating_sub(8)..i + 8]
            ))
        );
    }

    #[test]
    fn taken_records_come_back_whole_and_in_order() {
        let mut agg = Aggregator::new(1 << 20);
        let mut pushed = Vec::new();
        for i in 0..20u128 {
            let mut record = UserRecord::new(format!("key-{}", i % 3), format!("data {i}"));
            if i % 4 == 0 {
                record.explicit_hash_key = Some(HashKey(i * 77));
            }
            pushed.push(record.clone());
            agg.push(record).unwrap();
        }
        assert_eq!(agg.take_records(), pushed);
        assert!(agg.is_empty());
        assert_eq!(agg.kinesis_size(), 0);
    }

    #[test]
    fn predicted_size_equals_encoded_size() {
        let mut agg = Aggregator::new(1 << 20);
        for i in 0..300 {
            let mut record = UserRecord::new(format!("key-{}", i % 7), vec![b'x'; i]);
            if i % 5 == 0 {
                record.explicit_hash_key = Some(HashKey(i as u128 * 1_000_000_007));
            }
            agg.push(record).unwrap();
            if agg.len() > 1 {
                assert_eq!(agg.kinesis_size(), 1 + agg.encode_aggregate().len());
            }
        }
        let size = agg.kinesis_size();
        let out = agg.finish().unwrap();
        assert_eq!(out.kinesis_size(), size);
        assert_eq!(out.user_records, 300);
    }

    #[test]
    fn full_aggregate_hands_the_record_back() {
        let mut agg = Aggregator::new(150);
        assert_eq!(
            agg.push(UserRecord::new("k", vec![0; 40])),
            Ok(Pushed::Added)
        );
        assert_eq!(
            agg.push(UserRecord::new("k", vec![0; 40])),
            Ok(Pushed::Added)
        );
        let third = UserRecord::new("k", vec![0; 40]);
        assert_eq!(agg.push(third.clone()), Ok(Pushed::Full(third)));
        assert_eq!(agg.kinesis_size(), 116);
    }

    #[test]
    fn a_record_over_the_limit_alone_is_refused() {
        let mut agg = Aggregator::new(10);
        let err = agg.push(UserRecord::new("key", vec![0; 8])).unwrap_err();
        assert_eq!((err.size, err.limit), (11, 10));
        assert!(agg.is_empty());
    }
}
