//! Reads Kinesis records back into user records with the KCL's rules.
//!
//! The KCL never fails on a record: anything that is not a well-formed aggregate is
//! delivered as one plain record, and an aggregate that breaks part-way keeps the
//! sub-records decoded before the break. The shard-range check that KCL 2.x applies is
//! a separate step ([`sub_records_within`]) because it needs the shard's range.

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

use super::proto;
use super::{DIGEST_LEN, MAGIC, UserRecord};
use crate::kinesis::hash_key::HashKey;
use crate::kinesis::shard_map::HashKeyRange;

/// Why a Kinesis record was delivered as one plain record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAggregated {
    NoMagic,
    /// Magic present but no room for a protobuf and the trailer (KCL wants more than
    /// 16 bytes after the magic).
    TooShort,
    ChecksumMismatch,
    Unparsable,
    MissingRequiredField,
}

/// Why decoding stopped part-way through a well-formed aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeaggregationError {
    #[error(
        "sub-record {index} points at partition key {key_index}, but the table has {table_len}"
    )]
    PartitionKeyIndexOutOfRange {
        index: usize,
        key_index: u64,
        table_len: usize,
    },
    #[error(
        "sub-record {index} points at explicit hash key {key_index}, but the table has {table_len}"
    )]
    ExplicitHashKeyIndexOutOfRange {
        index: usize,
        key_index: u64,
        table_len: usize,
    },
    #[error("sub-record {index} has an invalid explicit hash key {value:?}")]
    InvalidExplicitHashKey { index: usize, value: String },
}

/// How a Kinesis record was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A KPL aggregate, every sub-record decoded (possibly zero of them).
    Aggregated,
    /// A KPL aggregate that broke part-way; the records before the break are kept.
    Partial(DeaggregationError),
    /// Not an aggregate: delivered unchanged as one record.
    NotAggregated(NotAggregated),
}

/// The user records inside one Kinesis record; a record's position is its
/// sub-sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deaggregation {
    pub records: Vec<UserRecord>,
    pub outcome: Outcome,
}

impl Deaggregation {
    fn passthrough(outer_partition_key: &str, data: &Bytes, reason: NotAggregated) -> Self {
        Deaggregation {
            records: vec![UserRecord {
                partition_key: outer_partition_key.to_owned(),
                explicit_hash_key: None,
                data: data.clone(),
            }],
            outcome: Outcome::NotAggregated(reason),
        }
    }

    pub fn is_aggregated(&self) -> bool {
        !matches!(self.outcome, Outcome::NotAggregated(_))
    }
}

/// Splits one Kinesis record (its partition key and data) into user records.
pub fn deaggregate(outer_partition_key: &str, data: &Bytes) -> Deaggregation {
    let passthrough = |reason| Deaggregation::passthrough(outer_partition_key, data, reason);
    if !data.starts_with(&MAGIC) {
        return passthrough(NotAggregated::NoMagic);
    }
    if data.len() <= MAGIC.len() + DIGEST_LEN {
        return passthrough(NotAggregated::TooShort);
    }
    let trailer_at = data.len() - DIGEST_LEN;
    let protobuf = data.slice(MAGIC.len()..trailer_at);
    if Md5::digest(&protobuf).as_slice() != &data[trailer_at..] {
        return passthrough(NotAggregated::ChecksumMismatch);
    }
    let Ok(message) = proto::AggregatedRecord::decode(protobuf) else {
        return passthrough(NotAggregated::Unparsable);
    };
    if !has_required_fields(&message) {
        return passthrough(NotAggregated::MissingRequiredField);
    }
    let (records, stopped) = sub_records(message);
    Deaggregation {
        records,
        outcome: stopped.map_or(Outcome::Aggregated, Outcome::Partial),
    }
}

/// Java's protobuf parser rejects a message missing a `required` field; prost does not.
fn has_required_fields(message: &proto::AggregatedRecord) -> bool {
    message.records.iter().all(|r| {
        r.partition_key_index.is_some()
            && r.data.is_some()
            && r.tags.iter().all(|t| t.key.is_some())
    })
}

fn sub_records(message: proto::AggregatedRecord) -> (Vec<UserRecord>, Option<DeaggregationError>) {
    let proto::AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = message;
    let mut out = Vec::with_capacity(records.len());
    for (index, record) in records.into_iter().enumerate() {
        let key_index = record.partition_key_index.unwrap_or_default();
        let Some(partition_key) = usize::try_from(key_index)
            .ok()
            .and_then(|i| partition_key_table.get(i))
        else {
            return (
                out,
                Some(DeaggregationError::PartitionKeyIndexOutOfRange {
                    index,
                    key_index,
                    table_len: partition_key_table.len(),
                }),
            );
        };
        let explicit_hash_key = match record.explicit_hash_key_index {
            None => None,
            Some(key_index) => {
                let Some(text) = usize::try_from(key_index)
                    .ok()
                    .and_then(|i| explicit_hash_key_table.get(i))
                else {
                    return (
                        out,
                        Some(DeaggregationError::ExplicitHashKeyIndexOutOfRange {
                            index,
                            key_index,
                            table_len: explicit_hash_key_table.len(),
                        }),
                    );
                };
                // The KCL computes every sub-record's effective hash key as a BigInteger,
                // so a non-numeric table entry ends decoding there.
                match text.parse::<u128>() {
                    Ok(value) => Some(HashKey(value)),
                    Err(_) => {
                        return (
                            out,
                            Some(DeaggregationError::InvalidExplicitHashKey {
                                index,
                                value: text.clone(),
                            }),
                        );
                    }
                }
            }
        };
        out.push(UserRecord {
            partition_key: partition_key.clone(),
            explicit_hash_key,
            data: record.data.unwrap_or_default(),
        });
    }
    (out, None)
}

/// A sub-record whose effective hash key lies outside the shard it was read from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sub-record {index} has hash key {hash_key}, outside the shard's range {range}")]
pub struct OutsideShard {
    pub index: usize,
    pub hash_key: HashKey,
    pub range: HashKeyRange,
}

/// The KCL 2.x check: every sub-record's effective hash key (explicit, else MD5 of its
/// partition key) must lie in the range of the shard the aggregate was read from.
pub fn sub_records_within(records: &[UserRecord], range: HashKeyRange) -> Result<(), OutsideShard> {
    records
        .iter()
        .enumerate()
        .find_map(|(index, r)| {
            let hash_key = r.hash_key();
            (!range.contains(hash_key)).then_some(OutsideShard {
                index,
                hash_key,
                range,
            })
        })
        .map_or(Ok(()), Err)
}

/// What a KCL 2.x consumer of the shard with `range` delivers: [`deaggregate`], then the
/// whole aggregate is dropped if any sub-record lies outside the shard.
pub fn deaggregate_for_shard(
    outer_partition_key: &str,
    data: &Bytes,
    range: HashKeyRange,
) -> (Deaggregation, Result<(), OutsideShard>) {
    let mut result = deaggregate(outer_partition_key, data);
    if !result.is_aggregated() {
        return (result, Ok(()));
    }
    let check = sub_records_within(&result.records, range);
    if check.is_err() {
        result.records.clear();
    }
    (result, check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::aggregation::Aggregator;

    #[test]
    fn aggregate_straddling_shards_is_dropped_by_the_shard_check() {
        let mut agg = Aggregator::new(1 << 20);
        // Hash keys of these two keys fall in different halves of the space.
        let low = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| HashKey::of_partition_key(k).0 < 1 << 127);
        let high = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| HashKey::of_partition_key(k).0 >= 1 << 127);
        agg.push(UserRecord::new(low.unwrap(), "a")).unwrap();
        agg.push(UserRecord::new(high.unwrap(), "b")).unwrap();
        let data = agg.encode_aggregate();
        let halves = HashKeyRange::even_split(2);
        let (result, check) = deaggregate_for_shard("a", &data, halves[0]);
        assert_eq!(check.unwrap_err().index, 1);
        assert!(result.records.is_empty());
        let (_, check) = deaggregate_for_shard("a", &data, HashKeyRange::FULL);
        assert_eq!(check, Ok(()));
    }
}
