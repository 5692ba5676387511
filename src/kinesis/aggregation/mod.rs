//! The KPL aggregated-record format: many user records in one Kinesis record.
//!
//! Wire layout: magic `F3 89 9A C2`, a protobuf `AggregatedRecord`, then the MD5 of the
//! protobuf bytes (not of the magic). [`Aggregator`] builds them with exact size
//! accounting; [`deaggregate`] reads them back with the KCL's rules, including its
//! habit of passing anything malformed through as one plain record.

mod aggregator;
mod deaggregate;
pub mod proto;
mod sealed;

use bytes::Bytes;

use super::hash_key::HashKey;

pub use aggregator::{Aggregator, Pushed, RecordTooLarge};
pub use deaggregate::{
    Deaggregation, DeaggregationError, NotAggregated, Outcome, OutsideShard, deaggregate,
    deaggregate_for_shard, sub_records_within,
};
pub use sealed::{Sealed, complete_all};

/// The four bytes that open every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 trailer.
pub const DIGEST_LEN: usize = 16;

/// The partition key the KPL puts on an aggregate of two or more records. Routing is
/// done by the explicit hash key, so one byte is all the key needs to cost.
pub const AGGREGATE_PARTITION_KEY: &str = "a";

/// A record as the producer's user sees it: what goes in before aggregation and what
/// comes out of deaggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<HashKey>,
    pub data: Bytes,
}

impl UserRecord {
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UserRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// A record whose partition key only has to spread records over the shards (the
    /// agent's `random` strategy): it goes with an empty key, which Kinesis never
    /// accepts, and the producer gives it one of its pre-hashed keys for the current
    /// shards ([`SpreadKeys`](crate::kinesis::SpreadKeys)).
    pub fn spread(data: impl Into<Bytes>) -> Self {
        UserRecord::new(String::new(), data)
    }

    /// Whether the producer is to choose the key (see [`UserRecord::spread`]).
    pub fn is_spread(&self) -> bool {
        self.partition_key.is_empty() && self.explicit_hash_key.is_none()
    }

    /// Where Kinesis (and a KCL shard check) places this record: the explicit hash key
    /// when there is one, else the MD5 of the partition key.
    pub fn hash_key(&self) -> HashKey {
        self.explicit_hash_key
            .unwrap_or_else(|| HashKey::of_partition_key(&self.partition_key))
    }

    /// The size Kinesis counts against its record limit if this record is sent alone.
    pub fn kinesis_size(&self) -> usize {
        let key = if self.is_spread() {
            crate::kinesis::spread_keys::SPREAD_KEY_LEN
        } else {
            self.partition_key.len()
        };
        key + self.data.len()
    }
}

/// One entry of a PutRecords request, as the KPL would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    pub partition_key: String,
    /// Always set, so the record lands on the shard it was aggregated for.
    pub explicit_hash_key: HashKey,
    pub data: Bytes,
    /// How many user records this Kinesis record carries (1 when sent raw).
    pub user_records: usize,
}

impl KinesisRecord {
    /// A user record sent on its own, unaggregated, with its own keys.
    pub fn single(record: UserRecord) -> Self {
        let hash_key = record.hash_key();
        Self::single_routed(record, hash_key)
    }

    /// [`KinesisRecord::single`] for a record whose hash key is already known (it costs
    /// an MD5 to compute).
    pub fn single_routed(record: UserRecord, hash_key: HashKey) -> Self {
        KinesisRecord {
            partition_key: record.partition_key,
            explicit_hash_key: hash_key,
            data: record.data,
            user_records: 1,
        }
    }

    /// The size Kinesis counts against its record and throughput limits.
    pub fn kinesis_size(&self) -> usize {
        self.partition_key.len() + self.data.len()
    }

    pub fn is_aggregated(&self) -> bool {
        self.user_records > 1
    }
}
