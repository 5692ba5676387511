//! Resharding actions: SplitShard, MergeShards, UpdateShardCount.

use serde::{Deserialize, Serialize};

use super::shapes::Empty;
use super::validate::{HASH_KEY_PATTERN, NamesStream, Violations, is_decimal};
use crate::kinesis::HashKey;
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SplitShardInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_split: Option<String>,
    new_starting_hash_key: Option<String>,
}

pub fn split_shard(store: &Store, input: SplitShardInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("shardToSplit", &input.shard_to_split);
    v.shard_id("shardToSplit", input.shard_to_split.as_deref());
    v.required("newStartingHashKey", &input.new_starting_hash_key);
    v.pattern(
        "newStartingHashKey",
        input.new_starting_hash_key.as_deref(),
        HASH_KEY_PATTERN,
        |k| is_decimal(k, 39),
    );
    v.finish()?;
    let name = input.target().resolve(store)?;
    let key_text = input.new_starting_hash_key.unwrap_or_default();
    let key = HashKey::parse_explicit(&key_text).map_err(|_| {
        KinesisError::invalid_argument(format!(
            "NewStartingHashKey {key_text} is larger than the largest hash key 2^128-1."
        ))
    })?;
    store.split_shard(&name, &input.shard_to_split.unwrap_or_default(), key)?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MergeShardsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_merge: Option<String>,
    adjacent_shard_to_merge: Option<String>,
}

pub fn merge_shards(store: &Store, input: MergeShardsInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    for (field, value) in [
        ("shardToMerge", &input.shard_to_merge),
        ("adjacentShardToMerge", &input.adjacent_shard_to_merge),
    ] {
        v.required(field, value);
        v.shard_id(field, value.as_deref());
    }
    v.finish()?;
    let name = input.target().resolve(store)?;
    store.merge_shards(
        &name,
        &input.shard_to_merge.unwrap_or_default(),
        &input.adjacent_shard_to_merge.unwrap_or_default(),
    )?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    target_shard_count: Option<i64>,
    scaling_type: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountOutput {
    stream_name: String,
    current_shard_count: usize,
    target_shard_count: u32,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

pub fn update_shard_count(
    store: &Store,
    input: UpdateShardCountInput,
) -> OpResult<UpdateShardCountOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("targetShardCount", &input.target_shard_count);
    v.range("targetShardCount", input.target_shard_count, 1, 100_000);
    v.required("scalingType", &input.scaling_type);
    v.one_of(
        "scalingType",
        input.scaling_type.as_deref(),
        &["UNIFORM_SCALING"],
    );
    v.finish()?;
    let name = input.target().resolve(store)?;
    let current = store.stream(&name)?.open_shards().shards.len();
    let target =
        store.update_shard_count(&name, input.target_shard_count.unwrap_or_default() as u32)?;
    Ok(UpdateShardCountOutput {
        stream_arn: store.arn(&name),
        stream_name: name,
        current_shard_count: current,
        target_shard_count: target,
    })
}

names_stream!(SplitShardInput, MergeShardsInput, UpdateShardCountInput);
