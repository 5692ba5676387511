//! Kinesis Data Streams and Firehose service limits, as named constants.
//!
//! The agent sizes its batches and throttles by these, and the shard server enforces
//! them, so both sides agree on what "too big" and "too fast" mean.

use std::time::Duration;

/// Longest partition key, in Unicode characters (shortest is 1).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Longest stream name, in characters.
pub const MAX_STREAM_NAME_CHARS: usize = 128;

/// Longest shard id, in characters.
pub const MAX_SHARD_ID_CHARS: usize = 128;

/// Default largest record a stream accepts: partition key bytes plus data bytes.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Largest record size a stream can be configured to accept.
pub const MAX_RECORD_BYTES_UPPER_BOUND: usize = 10 * 1024 * 1024;

/// Most entries in one PutRecords request.
pub const PUT_RECORDS_MAX_ENTRIES: usize = 500;

/// Most bytes (partition keys plus data) in one PutRecords request.
pub const PUT_RECORDS_MAX_BYTES: usize = 5 * 1024 * 1024;

/// Write limit per provisioned shard: bytes of partition key plus data per second.
pub const SHARD_WRITE_BYTES_PER_SEC: u64 = 1024 * 1024;

/// Write limit per provisioned shard: records per second (an aggregate counts once).
pub const SHARD_WRITE_RECORDS_PER_SEC: u64 = 1000;

/// Read limit per shard: GetRecords bytes per second.
pub const SHARD_READ_BYTES_PER_SEC: u64 = 2 * 1024 * 1024;

/// Read limit per shard: GetRecords calls per second.
pub const SHARD_READ_CALLS_PER_SEC: u64 = 5;

/// Most records one GetRecords call returns.
pub const GET_RECORDS_MAX_RECORDS: usize = 10_000;

/// Most bytes one GetRecords call returns.
pub const GET_RECORDS_MAX_BYTES: usize = 10 * 1024 * 1024;

/// How long a shard iterator stays valid after it was issued.
pub const SHARD_ITERATOR_TTL: Duration = Duration::from_secs(300);

/// Default and minimum retention period, in hours.
pub const MIN_RETENTION_HOURS: u32 = 24;

/// Longest retention period, in hours (365 days).
pub const MAX_RETENTION_HOURS: u32 = 8760;

/// Most shards a stream may be created with by default (account quota in most regions).
pub const MAX_SHARDS_PER_STREAM: u32 = 500;

/// Write capacity an on-demand stream starts with: bytes per second.
pub const ON_DEMAND_INITIAL_WRITE_BYTES_PER_SEC: u64 = 4 * 1024 * 1024;

/// Write capacity an on-demand stream starts with: records per second.
pub const ON_DEMAND_INITIAL_WRITE_RECORDS_PER_SEC: u64 = 4000;

/// Shards an on-demand stream starts with.
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

/// Most tags on one stream.
pub const MAX_TAGS_PER_STREAM: usize = 50;

/// Most tags one AddTagsToStream call may set.
pub const MAX_TAGS_PER_CALL: usize = 10;

/// Firehose: largest record (data only, before base64): 1,000 KiB.
pub const FIREHOSE_MAX_RECORD_BYTES: usize = 1000 * 1024;

/// Firehose: most records in one PutRecordBatch.
pub const FIREHOSE_BATCH_MAX_RECORDS: usize = 500;

/// Firehose: most bytes of record data in one PutRecordBatch (4 MiB).
pub const FIREHOSE_BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Firehose: a delivery stream's default write quota, records per second, as the
/// API reference states it (PutRecord and PutRecordBatch together).
pub const FIREHOSE_RECORDS_PER_SEC: u64 = 5_000;

/// Firehose: a delivery stream's default write quota, bytes per second (5 MiB).
pub const FIREHOSE_BYTES_PER_SEC: u64 = 5 * 1024 * 1024;

/// Firehose: a delivery stream's default quota of calls per second.
pub const FIREHOSE_CALLS_PER_SEC: u64 = 2_000;

/// Longest Firehose delivery stream name, in characters.
pub const MAX_DELIVERY_STREAM_NAME_CHARS: usize = 64;
