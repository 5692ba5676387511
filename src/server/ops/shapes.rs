//! Wire shapes shared by several actions.

use serde::Serialize;

use crate::kinesis::HashKeyRange;
use crate::server::store::stream::Shard;
use crate::server::wire::Timestamp;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRangeShape {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

impl From<HashKeyRange> for HashKeyRangeShape {
    fn from(range: HashKeyRange) -> Self {
        HashKeyRangeShape {
            starting_hash_key: range.start.to_string(),
            ending_hash_key: range.end.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRangeShape {
    pub starting_sequence_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShardShape {
    pub shard_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_range: HashKeyRangeShape,
    pub sequence_number_range: SequenceNumberRangeShape,
}

impl From<&Shard> for ShardShape {
    fn from(shard: &Shard) -> Self {
        ShardShape {
            shard_id: shard.id.to_string(),
            parent_shard_id: shard.parent.as_ref().map(ToString::to_string),
            adjacent_parent_shard_id: shard.adjacent_parent.as_ref().map(ToString::to_string),
            hash_key_range: shard.range.into(),
            sequence_number_range: SequenceNumberRangeShape {
                starting_sequence_number: shard.starting_sequence_number(),
                ending_sequence_number: shard.ending_sequence_number(),
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetailsShape {
    pub stream_mode: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMetricsShape {
    pub shard_level_metrics: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummaryShape {
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_status: &'static str,
    pub stream_mode_details: StreamModeDetailsShape,
    pub stream_creation_timestamp: Timestamp,
}

/// The empty output of actions that return nothing.
#[derive(Debug, Serialize)]
pub struct Empty {}
