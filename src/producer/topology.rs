//! The stream's shards as the producer knows them: the open ones to route to, and
//! every listed one's range to check where a record really landed.

use std::collections::HashMap;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::list_shards::ListShardsError;
use aws_sdk_kinesis::types::Shard;

use crate::aws::Failure;
use crate::kinesis::{HashKey, HashKeyRange, ShardId, ShardMap, ShardRange, limits};

#[derive(Debug, Clone)]
pub struct Topology {
    pub open: ShardMap,
    /// Every shard ListShards returned, open or closed.
    pub ranges: HashMap<String, HashKeyRange>,
    /// The stream's record limit (partition key plus data) from DescribeStreamSummary;
    /// `None` when it could not be read (the 1 MiB every stream takes then applies).
    pub max_record_bytes: Option<usize>,
}

/// Why the shard list could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("ListShards failed: {0}")]
    ListShards(Failure),
    #[error("DescribeDeliveryStream failed: {0}")]
    DeliveryStream(Failure),
    #[error("the shard listing task failed: {0}")]
    Task(String),
    #[error("ListShards returned a shard with an unreadable hash-key range: {0}")]
    BadRange(String),
    #[error("the open shards do not form a usable map: {0}")]
    Map(#[from] crate::kinesis::ShardMapError),
}

/// Every shard of `stream`, open and closed, following NextToken.
pub async fn list_shards(
    client: &Client,
    stream: &str,
) -> Result<Vec<Shard>, SdkError<ListShardsError>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(stream),
        };
        let page = request.send().await?;
        shards.extend(page.shards().iter().cloned());
        match page.next_token {
            Some(next) => token = Some(next),
            None => return Ok(shards),
        }
    }
}

/// The stream's record limit: 1 MiB unless raised (UpdateMaxRecordSize). A stream
/// summary without the field (an older endpoint) means the 1 MiB limit. `None` when
/// the summary cannot be read at all (a policy without DescribeStreamSummary).
async fn record_limit(client: &Client, stream: &str) -> Option<usize> {
    match client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
    {
        Ok(output) => Some(
            output
                .stream_description_summary()
                .and_then(|s| s.max_record_size_in_kib())
                .filter(|kib| *kib > 0)
                .map_or(limits::DEFAULT_MAX_RECORD_BYTES, |kib| kib as usize * 1024),
        ),
        Err(error) => {
            tracing::warn!(stream.name = %stream, error = %Failure::of(&error), "cannot read the stream's record limit (DescribeStreamSummary); assuming 1 MiB");
            None
        }
    }
}

/// Lists every shard of `stream`, builds the map and reads the stream's record limit.
pub async fn fetch(client: &Client, stream: &str) -> Result<Topology, TopologyError> {
    let mut open = Vec::new();
    let mut ranges = HashMap::new();
    let shards = list_shards(client, stream)
        .await
        .map_err(|e| TopologyError::ListShards(Failure::of(&e)))?;
    for shard in &shards {
        let Some(range) = shard.hash_key_range() else {
            return Err(TopologyError::BadRange(shard.shard_id().to_owned()));
        };
        let parse = |text: &str| {
            HashKey::parse_explicit(text)
                .map_err(|_| TopologyError::BadRange(format!("{}: {text}", shard.shard_id())))
        };
        let range = HashKeyRange::new(
            parse(range.starting_hash_key())?,
            parse(range.ending_hash_key())?,
        )
        .map_err(|e| TopologyError::BadRange(e.to_string()))?;
        ranges.insert(shard.shard_id().to_owned(), range);
        let closed = shard
            .sequence_number_range()
            .is_some_and(|r| r.ending_sequence_number().is_some());
        if !closed {
            let shard_id = ShardId::new(shard.shard_id())
                .map_err(|e| TopologyError::BadRange(e.to_string()))?;
            open.push(ShardRange { shard_id, range });
        }
    }
    Ok(Topology {
        open: ShardMap::new(open)?,
        ranges,
        max_record_bytes: record_limit(client, stream).await,
    })
}
