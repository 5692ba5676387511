//! Data-plane actions: PutRecord, PutRecords, GetShardIterator, GetRecords.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::shapes::HashKeyRangeShape;
use super::validate::{HASH_KEY_PATTERN, NamesStream, SEQUENCE_PATTERN, Violations, is_decimal};
use crate::kinesis::{HashKey, limits};
use crate::server::error::{ErrorKind, KinesisError, OpResult};
use crate::server::store::stream::Shard;
use crate::server::store::{IteratorStart, Store};
use crate::server::wire::{Blob, Timestamp};

/// Checks one record's key, hash key and size; `at` is the field prefix for messages.
fn check_record(
    v: &mut Violations,
    at: &str,
    data: &Option<Blob>,
    partition_key: Option<&str>,
    explicit_hash_key: Option<&str>,
) {
    v.required(&format!("{at}data"), data);
    if let Some(data) = data {
        v.blob_length(
            &format!("{at}data"),
            data.0.len(),
            limits::MAX_RECORD_BYTES_UPPER_BOUND,
        );
    }
    v.required(&format!("{at}partitionKey"), &partition_key);
    v.length(
        &format!("{at}partitionKey"),
        partition_key,
        1,
        limits::MAX_PARTITION_KEY_CHARS,
    );
    v.pattern(
        &format!("{at}explicitHashKey"),
        explicit_hash_key,
        HASH_KEY_PATTERN,
        |k| is_decimal(k, 39),
    );
}

/// The hash key a record routes by, and a check of the record's total size against
/// the stream's limit.
fn route(
    partition_key: &str,
    explicit_hash_key: Option<&str>,
    data_len: usize,
    max_record_bytes: usize,
) -> OpResult<HashKey> {
    let size = partition_key.len() + data_len;
    if size > max_record_bytes {
        return Err(KinesisError::invalid_argument(format!(
            "Record size of {size} bytes (partition key plus data) exceeds the {max_record_bytes}-byte limit."
        )));
    }
    match explicit_hash_key {
        None => Ok(HashKey::of_partition_key(partition_key)),
        Some(text) => HashKey::parse_explicit(text).map_err(|_| {
            KinesisError::invalid_argument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
            ))
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    shard_id: String,
    sequence_number: String,
    encryption_type: &'static str,
}

pub fn put_record(store: &Store, input: PutRecordInput) -> OpResult<PutRecordOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    check_record(
        &mut v,
        "",
        &input.data,
        input.partition_key.as_deref(),
        input.explicit_hash_key.as_deref(),
    );
    v.pattern(
        "sequenceNumberForOrdering",
        input.sequence_number_for_ordering.as_deref(),
        SEQUENCE_PATTERN,
        |s| is_decimal(s, 129),
    );
    v.finish()?;
    let name = input.target().resolve(store)?;
    let partition_key = input.partition_key.unwrap_or_default();
    let data = input.data.unwrap_or_default();
    let stream = store.readable_stream(&name)?;
    let hash_key = route(
        &partition_key,
        input.explicit_hash_key.as_deref(),
        data.0.len(),
        stream.max_record_bytes(),
    )?;
    let outcome = store.put(&stream, &partition_key, hash_key, &data.0)?;
    store.flush(std::slice::from_ref(&outcome.shard))?;
    Ok(PutRecordOutput {
        shard_id: outcome.shard.id.to_string(),
        sequence_number: outcome.sequence_number,
        encryption_type: stream.encryption_type(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsEntry {
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    records: Option<Vec<PutRecordsEntry>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsOutput {
    failed_record_count: usize,
    records: Vec<PutRecordsResultEntry>,
    encryption_type: &'static str,
}

pub fn put_records(store: &Store, input: PutRecordsInput) -> OpResult<PutRecordsOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("records", &input.records);
    let entries = input.records.as_deref().unwrap_or_default();
    if input.records.is_some() {
        // Each entry shows as the Java object it is: its class and a hash.
        v.count(
            "records",
            entries.len(),
            1,
            limits::PUT_RECORDS_MAX_ENTRIES,
            || {
                let shown: Vec<String> = entries
                    .iter()
                    .map(|e| {
                        use std::hash::{Hash, Hasher};
                        let mut hasher = std::collections::hash_map::DefaultHasher::new();
                        e.partition_key.hash(&mut hasher);
                        format!(
                            "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@{:08x}",
                            hasher.finish() as u32
                        )
                    })
                    .collect();
                super::validate::java_list(&shown)
            },
        );
    }
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("records.{}.member.", i + 1);
        check_record(
            &mut v,
            &at,
            &entry.data,
            entry.partition_key.as_deref(),
            entry.explicit_hash_key.as_deref(),
        );
    }
    v.finish()?;
    let name = input.target().resolve(store)?;
    let stream = store.readable_stream(&name)?;
    let max_record_bytes = stream.max_record_bytes();
    // A stream that takes records over the request limit takes one such record per call.
    let max_request_bytes = limits::PUT_RECORDS_MAX_BYTES.max(max_record_bytes);
    let mut routed = Vec::with_capacity(entries.len());
    let mut total = 0;
    for entry in entries {
        let partition_key = entry.partition_key.as_deref().unwrap_or_default();
        let data = entry.data.as_ref().map_or(&[][..], |d| &d.0[..]);
        total += partition_key.len() + data.len();
        routed.push(route(
            partition_key,
            entry.explicit_hash_key.as_deref(),
            data.len(),
            max_record_bytes,
        )?);
    }
    if total > max_request_bytes {
        return Err(KinesisError::invalid_argument(format!(
            "Records size exceeds {} MB limit",
            max_request_bytes >> 20
        )));
    }

    let mut results = Vec::with_capacity(entries.len());
    let mut touched: Vec<Arc<Shard>> = Vec::new();
    let mut failed = 0;
    for (entry, hash_key) in entries.iter().zip(routed) {
        let partition_key = entry.partition_key.as_deref().unwrap_or_default();
        let data = entry.data.as_ref().map_or(&[][..], |d| &d.0[..]);
        match store.put(&stream, partition_key, hash_key, data) {
            Ok(outcome) => {
                if !touched.iter().any(|s| Arc::ptr_eq(s, &outcome.shard)) {
                    touched.push(outcome.shard.clone());
                }
                results.push(PutRecordsResultEntry {
                    sequence_number: Some(outcome.sequence_number),
                    shard_id: Some(outcome.shard.id.to_string()),
                    error_code: None,
                    error_message: None,
                });
            }
            Err(error)
                if matches!(
                    error.kind,
                    ErrorKind::ProvisionedThroughputExceeded | ErrorKind::InternalFailure
                ) =>
            {
                failed += 1;
                results.push(PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some(error.kind.wire_name()),
                    error_message: Some(error.message),
                });
            }
            Err(error) => return Err(error),
        }
    }
    store.flush(&touched)?;
    Ok(PutRecordsOutput {
        failed_record_count: failed,
        records: results,
        encryption_type: stream.encryption_type(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorOutput {
    shard_iterator: String,
}

pub fn get_shard_iterator(
    store: &Store,
    input: GetShardIteratorInput,
) -> OpResult<GetShardIteratorOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("shardId", &input.shard_id);
    v.shard_id("shardId", input.shard_id.as_deref());
    v.required("shardIteratorType", &input.shard_iterator_type);
    v.one_of(
        "shardIteratorType",
        input.shard_iterator_type.as_deref(),
        &[
            "AFTER_SEQUENCE_NUMBER",
            "LATEST",
            "AT_TIMESTAMP",
            "TRIM_HORIZON",
            "AT_SEQUENCE_NUMBER",
        ],
    );
    v.pattern(
        "startingSequenceNumber",
        input.starting_sequence_number.as_deref(),
        SEQUENCE_PATTERN,
        |s| is_decimal(s, 129),
    );
    v.finish()?;
    let name = input.target().resolve(store)?;
    let kind = input.shard_iterator_type.as_deref().unwrap_or_default();
    let sequence = input.starting_sequence_number;
    let start = match (kind, sequence) {
        ("TRIM_HORIZON" | "LATEST", Some(_)) => {
            return Err(KinesisError::invalid_argument(format!(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and also a StartingSequenceNumber."
            )));
        }
        ("TRIM_HORIZON", None) => IteratorStart::TrimHorizon,
        ("LATEST", None) => IteratorStart::Latest,
        ("AT_SEQUENCE_NUMBER", Some(s)) => IteratorStart::AtSequence(s),
        ("AFTER_SEQUENCE_NUMBER", Some(s)) => IteratorStart::AfterSequence(s),
        ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => {
            return Err(KinesisError::invalid_argument(format!(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and no StartingSequenceNumber."
            )));
        }
        (_, _) => match input.timestamp {
            Some(t) => IteratorStart::AtTimestamp(t.millis()),
            None => {
                return Err(KinesisError::invalid_argument(
                    "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.",
                ));
            }
        },
    };
    let shard_id = input.shard_id.unwrap_or_default();
    Ok(GetShardIteratorOutput {
        shard_iterator: store.shard_iterator(&name, &shard_id, start)?,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsInput {
    shard_iterator: Option<String>,
    limit: Option<i64>,
    #[serde(rename = "StreamARN")]
    #[allow(dead_code)]
    stream_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordShape {
    pub(super) sequence_number: String,
    approximate_arrival_timestamp: Timestamp,
    data: Blob,
    partition_key: String,
    encryption_type: &'static str,
}

impl RecordShape {
    /// The partition key and data bytes the record carries.
    pub fn payload_bytes(&self) -> usize {
        self.partition_key.len() + self.data.0.len()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShardShape {
    shard_id: String,
    parent_shards: Vec<String>,
    hash_key_range: HashKeyRangeShape,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput {
    pub(super) records: Vec<RecordShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) next_shard_iterator: Option<String>,
    pub(super) millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) child_shards: Option<Vec<ChildShardShape>>,
}

pub fn get_records(store: &Store, input: GetRecordsInput) -> OpResult<GetRecordsOutput> {
    let mut v = Violations::default();
    v.required("shardIterator", &input.shard_iterator);
    v.length("shardIterator", input.shard_iterator.as_deref(), 1, 512);
    v.range(
        "limit",
        input.limit,
        1,
        limits::GET_RECORDS_MAX_RECORDS as i64,
    );
    v.finish()?;
    let limit = input
        .limit
        .unwrap_or(limits::GET_RECORDS_MAX_RECORDS as i64) as usize;
    let output = store.get_records(input.shard_iterator.as_deref().unwrap_or_default(), limit)?;
    Ok(records_output(output))
}

/// The answer's shape of what the store read (GetRecords, and SubscribeToShard's events).
pub(super) fn records_output(
    output: crate::server::store::records::GetRecordsOutput,
) -> GetRecordsOutput {
    GetRecordsOutput {
        records: output
            .records
            .into_iter()
            .map(|(sequence_number, r)| RecordShape {
                sequence_number,
                approximate_arrival_timestamp: Timestamp::from_millis(r.arrival_ms),
                data: Blob(r.data),
                partition_key: r.partition_key,
                encryption_type: if r.sealed { "KMS" } else { "NONE" },
            })
            .collect(),
        next_shard_iterator: output.next_iterator,
        millis_behind_latest: output.millis_behind_latest,
        child_shards: output.child_shards.map(|children| {
            children
                .into_iter()
                .map(|c| ChildShardShape {
                    shard_id: c.shard_id.to_string(),
                    parent_shards: c.parents.iter().map(ToString::to_string).collect(),
                    hash_key_range: c.range.into(),
                })
                .collect()
        }),
    }
}

names_stream!(PutRecordInput, PutRecordsInput, GetShardIteratorInput);
