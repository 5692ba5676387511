//! The Kinesis domain, without I/O: hash keys, shard maps, service limits, names, and
//! the KPL aggregated-record format.
//!
//! Both the agent and the shard server build on this module and never on each other,
//! so the agent's shard prediction and the server's routing share one hash function.
//! Not here: sending, throttling or retrying (the producer), storing (the server).

pub mod aggregation;
pub mod digest;
pub mod hash_key;
pub mod limits;
pub mod names;
pub mod shard_map;
pub mod spread_keys;

pub use aggregation::{Aggregator, KinesisRecord, UserRecord};
pub use hash_key::{HashKey, HashKeyError};
pub use names::{NameError, PartitionKey, SequenceNumber, ShardId, StreamName};
pub use shard_map::{HashKeyRange, ShardMap, ShardMapError, ShardRange};
pub use spread_keys::SpreadKeys;
