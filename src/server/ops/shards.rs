//! ListShards: the shards of a stream, filtered and paged as Kinesis does, with
//! NextTokens that carry the stream's identity and expire.

use std::sync::Arc;

use base64_simd::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::shapes::ShardShape;
use super::streams::{retained_shards, shard_index};
use super::validate::{NamesStream, Violations};
use crate::server::clock::Millis;
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;
use crate::server::store::stream::{Shard, Stream, lock};
use crate::server::wire::Timestamp;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShardFilter {
    r#type: Option<String>,
    shard_id: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    #[allow(dead_code)]
    stream_creation_timestamp: Option<Timestamp>,
    shard_filter: Option<ShardFilter>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsOutput {
    shards: Vec<ShardShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// A ListShards page token: which stream (and which incarnation of it), and the last shard listed.
fn list_shards_token(stream: &Stream, last_index: u32) -> String {
    BASE64.encode_to_string(format!(
        "{}|{}|{}",
        stream.created_ms, last_index, stream.name
    ))
}

fn parse_list_shards_token(token: &str) -> Option<(Millis, u32, String)> {
    let text = String::from_utf8(BASE64.decode_to_vec(token).ok()?).ok()?;
    let mut parts = text.splitn(3, '|');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.to_owned(),
    ))
}

pub fn list_shards(store: &Store, input: ListShardsInput) -> OpResult<ListShardsOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.range("maxResults", input.max_results, 1, 10_000);
    v.length("nextToken", input.next_token.as_deref(), 1, 1_048_576);
    v.shard_id(
        "exclusiveStartShardId",
        input.exclusive_start_shard_id.as_deref(),
    );
    let filter_type = input
        .shard_filter
        .as_ref()
        .and_then(|f| f.r#type.as_deref());
    if input.shard_filter.is_some() {
        v.required("shardFilter.type", &filter_type);
    }
    v.one_of(
        "shardFilter.type",
        filter_type,
        &[
            "AFTER_SHARD_ID",
            "AT_TRIM_HORIZON",
            "FROM_TRIM_HORIZON",
            "AT_LATEST",
            "AT_TIMESTAMP",
            "FROM_TIMESTAMP",
        ],
    );
    v.finish()?;

    let (stream, after) = if let Some(token) = &input.next_token {
        if input.stream_name.is_some() || input.stream_arn.is_some() {
            return Err(KinesisError::invalid_argument(
                "NextToken and StreamName cannot be provided together.",
            ));
        }
        let (created_ms, last, name) = parse_list_shards_token(token)
            .ok_or_else(|| KinesisError::invalid_argument("Invalid ShardId in NextToken."))?;
        let stream = store.stream(&name)?;
        if stream.created_ms != created_ms {
            return Err(KinesisError::invalid_argument(
                "The NextToken was issued for an older stream of this name.",
            ));
        }
        (stream, Some(last))
    } else {
        let name = input.target().resolve(store)?;
        (
            store.stream(&name)?,
            input
                .exclusive_start_shard_id
                .as_deref()
                .and_then(shard_index),
        )
    };

    let mut shards = retained_shards(store, &stream);
    if let Some(filter) = &input.shard_filter {
        shards = apply_filter(store, filter, shards)?;
    }
    let limit = input.max_results.unwrap_or(1000) as usize;
    let mut page: Vec<Arc<Shard>> = shards
        .into_iter()
        .filter(|s| after.is_none_or(|a| s.index > a))
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next_token = more
        .then(|| page.last().map(|s| list_shards_token(&stream, s.index)))
        .flatten();
    Ok(ListShardsOutput {
        shards: page.iter().map(|s| ShardShape::from(s.as_ref())).collect(),
        next_token,
    })
}

fn apply_filter(
    store: &Store,
    filter: &ShardFilter,
    shards: Vec<Arc<Shard>>,
) -> OpResult<Vec<Arc<Shard>>> {
    let closed_at = |s: &Shard| lock(&s.state).closed.map(|c| c.at_ms);
    let open_at = |s: &Shard, t: Millis| s.created_ms <= t && closed_at(s).is_none_or(|c| c > t);
    let ids: Vec<String> = shards.iter().map(|s| s.id.to_string()).collect();
    let has_retained_parent = |s: &Shard| {
        s.parent
            .iter()
            .chain(s.adjacent_parent.iter())
            .any(|p| ids.contains(&p.to_string()))
    };
    let timestamp = || {
        filter.timestamp.map(Timestamp::millis).ok_or_else(|| {
            KinesisError::invalid_argument(
                "Timestamp must be given for ShardFilter types AT_TIMESTAMP and FROM_TIMESTAMP.",
            )
        })
    };
    let kept = match filter.r#type.as_deref() {
        Some("AFTER_SHARD_ID") => {
            let after = filter
                .shard_id
                .as_deref()
                .and_then(shard_index)
                .ok_or_else(|| {
                    KinesisError::invalid_argument(
                        "ShardId must be given for ShardFilter type AFTER_SHARD_ID.",
                    )
                })?;
            shards.into_iter().filter(|s| s.index > after).collect()
        }
        Some("AT_TRIM_HORIZON") => shards
            .iter()
            .filter(|s| !has_retained_parent(s))
            .cloned()
            .collect(),
        Some("AT_LATEST") => shards.into_iter().filter(|s| s.is_open()).collect(),
        Some("AT_TIMESTAMP") => {
            let t = timestamp()?;
            let oldest = shards.iter().map(|s| s.created_ms).min().unwrap_or(t);
            let t = t.max(oldest);
            shards.into_iter().filter(|s| open_at(s, t)).collect()
        }
        Some("FROM_TIMESTAMP") => {
            let t = timestamp()?;
            shards
                .into_iter()
                .filter(|s| open_at(s, t) || s.created_ms > t)
                .collect()
        }
        _ => shards,
    };
    let _ = store;
    Ok(kept)
}

names_stream!(ListShardsInput);
