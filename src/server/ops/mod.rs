//! One function per API action: parse the input, validate it as Kinesis does, run it
//! against the store, encode the output.

mod records;
mod reshard;
mod shapes;
mod streams;
mod validate;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{KinesisError, OpResult};
use super::store::Store;
use super::wire::{self, Format};

/// Every action this server answers, by its `X-Amz-Target` name.
pub const ACTIONS: &[&str] = &[
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteStream",
    "DescribeStream",
    "DescribeStreamSummary",
    "GetRecords",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreams",
    "ListTagsForStream",
    "MergeShards",
    "PutRecord",
    "PutRecords",
    "RemoveTagsFromStream",
    "SplitShard",
    "UpdateMaxRecordSize",
    "UpdateShardCount",
    "UpdateStreamMode",
];

fn run<I: DeserializeOwned, O: Serialize>(
    store: &Store,
    format: Format,
    body: &[u8],
    action: impl FnOnce(&Store, I) -> OpResult<O>,
) -> OpResult<Vec<u8>> {
    let input = wire::decode(format, body)?;
    let output = action(store, input)?;
    Ok(wire::encode(format, &output))
}

/// Runs `action` on `body` and returns the encoded response body.
pub fn dispatch(store: &Store, action: &str, format: Format, body: &[u8]) -> OpResult<Vec<u8>> {
    match action {
        "CreateStream" => run(store, format, body, streams::create_stream),
        "DeleteStream" => run(store, format, body, streams::delete_stream),
        "DescribeStream" => run(store, format, body, streams::describe_stream),
        "DescribeStreamSummary" => run(store, format, body, streams::describe_stream_summary),
        "ListStreams" => run(store, format, body, streams::list_streams),
        "ListShards" => run(store, format, body, streams::list_shards),
        "IncreaseStreamRetentionPeriod" => run(store, format, body, |s, i| {
            streams::change_retention(s, i, true)
        }),
        "DecreaseStreamRetentionPeriod" => run(store, format, body, |s, i| {
            streams::change_retention(s, i, false)
        }),
        "AddTagsToStream" => run(store, format, body, streams::add_tags),
        "RemoveTagsFromStream" => run(store, format, body, streams::remove_tags),
        "ListTagsForStream" => run(store, format, body, streams::list_tags),
        "UpdateStreamMode" => run(store, format, body, streams::update_stream_mode),
        "UpdateMaxRecordSize" => run(store, format, body, streams::update_max_record_size),
        "PutRecord" => run(store, format, body, records::put_record),
        "PutRecords" => run(store, format, body, records::put_records),
        "GetShardIterator" => run(store, format, body, records::get_shard_iterator),
        "GetRecords" => run(store, format, body, records::get_records),
        "SplitShard" => run(store, format, body, reshard::split_shard),
        "MergeShards" => run(store, format, body, reshard::merge_shards),
        "UpdateShardCount" => run(store, format, body, reshard::update_shard_count),
        _ => Err(KinesisError::unknown_operation(format!(
            "Unknown operation {action}. This server answers: {}.",
            ACTIONS.join(", ")
        ))),
    }
}
