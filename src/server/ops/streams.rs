//! Stream lifecycle: create, delete, describe and list streams, retention, stream
//! mode and record size. Shard listing is in `shards`, tags in `tags`.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64_simd::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::shapes::{
    Empty, EnhancedMetricsShape, ShardShape, StreamModeDetailsShape, StreamSummaryShape,
};
use super::tags::check_tags;
use super::validate::{self, NamesStream, Violations};
use crate::kinesis::limits;
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;
use crate::server::store::stream::{Shard, Stream, StreamMode, lock};
use crate::server::wire::Timestamp;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    pub stream_mode: Option<String>,
}

fn parse_mode(details: &Option<StreamModeDetails>, v: &mut Violations) -> Option<StreamMode> {
    let mode = details.as_ref().and_then(|d| d.stream_mode.as_deref());
    v.one_of(
        "streamModeDetails.streamMode",
        mode,
        &["PROVISIONED", "ON_DEMAND"],
    );
    match mode {
        Some("ON_DEMAND") => Some(StreamMode::OnDemand),
        Some("PROVISIONED") => Some(StreamMode::Provisioned),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamInput {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "WarmThroughputMiBps")]
    warm_throughput_mibps: Option<i64>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

pub fn create_stream(store: &Store, input: CreateStreamInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    v.required("streamName", &input.stream_name);
    v.stream(input.stream_name.as_deref(), None);
    v.range("shardCount", input.shard_count, 1, 100_000);
    let mode = parse_mode(&input.stream_mode_details, &mut v);
    v.range(
        "warmThroughputMiBps",
        input.warm_throughput_mibps,
        0,
        i64::from(i32::MAX),
    );
    v.range(
        "maxRecordSizeInKiB",
        input.max_record_size_in_kib,
        (limits::DEFAULT_MAX_RECORD_BYTES / 1024) as i64,
        (limits::MAX_RECORD_BYTES_UPPER_BOUND / 1024) as i64,
    );
    v.finish()?;
    let name = input.stream_name.unwrap_or_default();
    let mode = mode.unwrap_or(StreamMode::Provisioned);
    let shards = match (mode, input.shard_count) {
        (StreamMode::Provisioned, Some(count)) => count as u32,
        (StreamMode::Provisioned, None) => {
            return Err(KinesisError::invalid_argument(
                "ShardCount is required for streams in PROVISIONED mode.",
            ));
        }
        (StreamMode::OnDemand, None) => limits::ON_DEMAND_INITIAL_SHARDS,
        (StreamMode::OnDemand, Some(_)) => {
            return Err(KinesisError::invalid_argument(
                "ShardCount must not be given for streams in ON_DEMAND mode.",
            ));
        }
    };
    let tags = input.tags.unwrap_or_default();
    check_tags(&tags)?;
    if let Some(mibps) = input.warm_throughput_mibps {
        super::capacity::check_warm_throughput(store, &name, mode, mibps)?;
    }
    store.create_stream(&name, shards, mode, tags, false)?;
    let stream = store.stream(&name)?;
    if let Some(kib) = input.max_record_size_in_kib {
        stream.set_max_record_bytes(kib as usize * 1024);
    }
    if let Some(mibps) = input.warm_throughput_mibps {
        lock(&stream.state).warm_throughput_mibps = Some(mibps as u32);
        store.warm_to(&stream, mibps as usize)?;
    }
    if input.max_record_size_in_kib.is_some() || input.warm_throughput_mibps.is_some() {
        store.save_metadata()?;
    }
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[allow(dead_code)]
    enforce_consumer_deletion: Option<bool>,
}

pub fn delete_stream(store: &Store, input: DeleteStreamInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.finish()?;
    let name = input.target().resolve(store)?;
    store.delete_stream(&name)?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescription {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetailsShape,
    shards: Vec<ShardShape>,
    has_more_shards: bool,
    retention_period_hours: u32,
    stream_creation_timestamp: Timestamp,
    enhanced_monitoring: Vec<EnhancedMetricsShape>,
    encryption_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    stream_description: StreamDescription,
}

pub(super) fn shard_index(id: &str) -> Option<u32> {
    crate::kinesis::ShardId::resolve_index(id)
}

/// Shards still within retention: a closed shard drops out once its last records expire.
pub(super) fn retained_shards(store: &Store, stream: &Stream) -> Vec<Arc<Shard>> {
    let state = lock(&stream.state);
    let cutoff = store.now_ms() - i64::from(state.retention_hours) * 3_600_000;
    state
        .shards
        .iter()
        .filter(|s| lock(&s.state).closed.is_none_or(|c| c.at_ms >= cutoff))
        .cloned()
        .collect()
}

pub fn describe_stream(
    store: &Store,
    input: DescribeStreamInput,
) -> OpResult<DescribeStreamOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.range("limit", input.limit, 1, 10_000);
    v.shard_id(
        "exclusiveStartShardId",
        input.exclusive_start_shard_id.as_deref(),
    );
    v.finish()?;
    let name = input.target().resolve(store)?;
    let stream = store.stream(&name)?;
    let after = input
        .exclusive_start_shard_id
        .as_deref()
        .and_then(shard_index);
    let limit = input.limit.unwrap_or(100) as usize;
    let mut shards: Vec<Arc<Shard>> = retained_shards(store, &stream)
        .into_iter()
        .filter(|s| after.is_none_or(|a| s.index > a))
        .collect();
    let has_more_shards = shards.len() > limit;
    shards.truncate(limit);
    let state = lock(&stream.state);
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_name: stream.name.clone(),
            stream_arn: stream.arn.clone(),
            stream_status: state.status.as_str(),
            stream_mode_details: StreamModeDetailsShape {
                stream_mode: state.mode.as_str(),
            },
            shards: shards
                .iter()
                .map(|s| ShardShape::from(s.as_ref()))
                .collect(),
            has_more_shards,
            retention_period_hours: state.retention_hours,
            stream_creation_timestamp: Timestamp::from_millis(stream.created_ms),
            enhanced_monitoring: vec![EnhancedMetricsShape {
                shard_level_metrics: state.shard_level_metrics.iter().cloned().collect(),
            }],
            encryption_type: stream.encryption_type(),
            key_id: state.encryption_key_id.clone(),
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescriptionSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetailsShape,
    retention_period_hours: u32,
    stream_creation_timestamp: Timestamp,
    enhanced_monitoring: Vec<EnhancedMetricsShape>,
    encryption_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    open_shard_count: usize,
    consumer_count: usize,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    warm_throughput: Option<super::capacity::WarmThroughputShape>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryOutput {
    stream_description_summary: StreamDescriptionSummary,
}

pub fn describe_stream_summary(
    store: &Store,
    input: DescribeStreamSummaryInput,
) -> OpResult<DescribeStreamSummaryOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.finish()?;
    let name = input.target().resolve(store)?;
    let stream = store.stream(&name)?;
    let warm_throughput = super::capacity::warm_throughput_of(store, &stream);
    let state = lock(&stream.state);
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_name: stream.name.clone(),
            stream_arn: stream.arn.clone(),
            stream_status: state.status.as_str(),
            stream_mode_details: StreamModeDetailsShape {
                stream_mode: state.mode.as_str(),
            },
            retention_period_hours: state.retention_hours,
            stream_creation_timestamp: Timestamp::from_millis(stream.created_ms),
            enhanced_monitoring: vec![EnhancedMetricsShape {
                shard_level_metrics: state.shard_level_metrics.iter().cloned().collect(),
            }],
            encryption_type: stream.encryption_type(),
            key_id: state.encryption_key_id.clone(),
            open_shard_count: state.open_shard_count(),
            consumer_count: state.consumers.len(),
            max_record_size_in_kib: stream.max_record_bytes() / 1024,
            warm_throughput,
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    stream_names: Vec<String>,
    has_more_streams: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
    stream_summaries: Vec<StreamSummaryShape>,
}

pub fn list_streams(store: &Store, input: ListStreamsInput) -> OpResult<ListStreamsOutput> {
    let mut v = Violations::default();
    v.range("limit", input.limit, 1, 10_000);
    v.stream(input.exclusive_start_stream_name.as_deref(), None);
    v.length("nextToken", input.next_token.as_deref(), 1, 1_048_576);
    v.finish()?;
    let after = match &input.next_token {
        Some(token) => Some(
            BASE64
                .decode_to_vec(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| KinesisError::invalid_argument("Invalid NextToken."))?,
        ),
        None => input.exclusive_start_stream_name,
    };
    let limit = input.limit.unwrap_or(100) as usize;
    let mut names: Vec<String> = store
        .stream_names()
        .into_iter()
        .filter(|n| after.as_ref().is_none_or(|a| n > a))
        .collect();
    let has_more_streams = names.len() > limit;
    names.truncate(limit);
    let stream_summaries = names
        .iter()
        .filter_map(|n| store.stream(n).ok())
        .map(|s| {
            let state = lock(&s.state);
            StreamSummaryShape {
                stream_name: s.name.clone(),
                stream_arn: s.arn.clone(),
                stream_status: state.status.as_str(),
                stream_mode_details: StreamModeDetailsShape {
                    stream_mode: state.mode.as_str(),
                },
                stream_creation_timestamp: Timestamp::from_millis(s.created_ms),
            }
        })
        .collect();
    let next_token = (has_more_streams)
        .then(|| names.last().map(|n| BASE64.encode_to_string(n)))
        .flatten();
    Ok(ListStreamsOutput {
        stream_names: names,
        has_more_streams,
        next_token,
        stream_summaries,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetentionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    retention_period_hours: Option<i64>,
}

pub fn change_retention(store: &Store, input: RetentionInput, increase: bool) -> OpResult<Empty> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("retentionPeriodHours", &input.retention_period_hours);
    v.range(
        "retentionPeriodHours",
        input.retention_period_hours,
        1,
        i64::from(i32::MAX),
    );
    v.finish()?;
    let name = input.target().resolve(store)?;
    let hours = input.retention_period_hours.unwrap_or_default();
    if hours < i64::from(limits::MIN_RETENTION_HOURS) {
        return Err(KinesisError::invalid_argument(format!(
            "Minimum allowed retention period is {} hours. Requested retention period ({hours} hours) is too short.",
            limits::MIN_RETENTION_HOURS
        )));
    }
    if hours > i64::from(limits::MAX_RETENTION_HOURS) {
        return Err(KinesisError::invalid_argument(format!(
            "Maximum allowed retention period is {} hours. Requested retention period ({hours} hours) is too long.",
            limits::MAX_RETENTION_HOURS
        )));
    }
    let (stream, _control) = store.active_stream(&name)?;
    {
        let mut state = lock(&stream.state);
        let current = i64::from(state.retention_hours);
        if increase && hours < current {
            return Err(KinesisError::invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
            )));
        }
        if !increase && hours > current {
            return Err(KinesisError::invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
            )));
        }
        state.retention_hours = hours as u32;
    }
    store.save_metadata()?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    stream_mode_details: Option<StreamModeDetails>,
}

pub fn update_stream_mode(store: &Store, input: UpdateStreamModeInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    v.required("streamARN", &input.stream_arn);
    v.stream_arn("streamARN", input.stream_arn.as_deref());
    v.required("streamModeDetails", &input.stream_mode_details);
    if let Some(details) = &input.stream_mode_details {
        v.required("streamModeDetails.streamMode", &details.stream_mode);
    }
    let mode = parse_mode(&input.stream_mode_details, &mut v);
    v.finish()?;
    let name = validate::stream_name(store, None, input.stream_arn.as_deref())?;
    let (stream, _control) = store.active_stream(&name)?;
    lock(&stream.state).mode = mode.unwrap_or(StreamMode::Provisioned);
    store.begin_update(&stream);
    store.save_metadata()?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateMaxRecordSizeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

/// UpdateMaxRecordSize: the largest record the stream takes, 1 to 10 MiB.
pub fn update_max_record_size(store: &Store, input: UpdateMaxRecordSizeInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    v.stream_arn("streamARN", input.stream_arn.as_deref());
    v.required("maxRecordSizeInKiB", &input.max_record_size_in_kib);
    v.range(
        "maxRecordSizeInKiB",
        input.max_record_size_in_kib,
        (limits::DEFAULT_MAX_RECORD_BYTES / 1024) as i64,
        (limits::MAX_RECORD_BYTES_UPPER_BOUND / 1024) as i64,
    );
    v.finish()?;
    let name = validate::stream_name(store, None, input.stream_arn.as_deref())?;
    let (stream, _control) = store.active_stream(&name)?;
    let kib = input.max_record_size_in_kib.unwrap_or_default() as usize;
    stream.set_max_record_bytes(kib * 1024);
    store.begin_update(&stream);
    store.save_metadata()?;
    Ok(Empty {})
}

names_stream!(
    DeleteStreamInput,
    DescribeStreamInput,
    DescribeStreamSummaryInput,
    RetentionInput
);
