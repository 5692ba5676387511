//! A Firehose delivery stream as the router sees a stream: one lane (a "shard" that
//! owns the whole key space, so every record routes to it), PutRecordBatch for
//! PutRecords, DescribeDeliveryStream for the shard listing.
//!
//! The router then does for a delivery stream what it does for a shard: packs
//! records (end to end, [`super::packer`]), paces them to the delivery stream's quota,
//! and judges every entry of every answer the way it judges PutRecords: an entry
//! Firehose refused for throughput (`ServiceUnavailableException`) is retried with
//! backoff and slows the lane down; any other entry error is retried; a batch refused
//! as invalid is split to find the bad record, which alone is dead-lettered.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_firehose::Client;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{DeliveryStreamStatus, Record};

use super::judge::{EntryVerdict, entry_verdicts};
use super::put_body::WireEntry;
use super::service::{PutAnswer, RequestFailure, StreamService};
use super::topology::{Topology, TopologyError};
use crate::aws::Failure;
use crate::kinesis::{HashKeyRange, ShardId, ShardMap, ShardRange, limits};

/// The one lane's name. Acknowledgements carry it as their shard and Firehose's
/// `RecordId` as their sequence number.
pub const LANE: &str = "shardId-000000000000";

/// Firehose through the AWS SDK.
#[derive(Clone)]
pub struct FirehoseService {
    pub client: Client,
}

impl StreamService for FirehoseService {
    fn put_records(
        &self,
        stream: String,
        entries: Vec<WireEntry>,
    ) -> impl Future<Output = PutAnswer> + Send + 'static {
        let client = self.client.clone();
        async move {
            let sent = entries.len();
            let records = entries
                .into_iter()
                .map(|entry| {
                    Record::builder()
                        .data(Blob::new(entry.data.to_vec()))
                        .build()
                })
                .collect::<Result<Vec<Record>, _>>();
            let records = match records {
                Ok(records) => records,
                Err(error) => {
                    // Only a record without data fails to build; data is always set.
                    return Err(RequestFailure {
                        verdict: super::judge::RequestVerdict::Invalid {
                            code: "ConstructionFailure".into(),
                            message: error.to_string(),
                        },
                        failure: Failure {
                            trouble: crate::aws::Trouble::Service,
                            code: "ConstructionFailure".into(),
                            message: error.to_string(),
                        },
                    });
                }
            };
            let call = client
                .put_record_batch()
                .delivery_stream_name(stream)
                .set_records(Some(records))
                .send()
                .await;
            match call {
                Ok(output) => Ok(entry_verdicts(
                    output.request_responses(),
                    sent,
                    entry_verdict,
                )),
                Err(error) => Err(RequestFailure::of(&error)),
            }
        }
    }

    fn topology(
        &self,
        stream: String,
    ) -> impl Future<Output = Result<Topology, TopologyError>> + Send + 'static {
        let client = self.client.clone();
        async move { describe(&client, &stream).await }
    }
}

/// One entry of a PutRecordBatch answer. Firehose refuses an entry for throughput
/// with `ServiceUnavailableException` (Kinesis says
/// `ProvisionedThroughputExceededException`).
fn entry_verdict(entry: &aws_sdk_firehose::types::PutRecordBatchResponseEntry) -> EntryVerdict {
    match (entry.error_code(), entry.record_id()) {
        (None, Some(record_id)) => EntryVerdict::Accepted {
            shard_id: LANE.to_owned(),
            sequence_number: record_id.to_owned(),
        },
        (Some("ServiceUnavailableException"), _) => EntryVerdict::Throttled,
        (Some(code), _) => EntryVerdict::Retry {
            code: code.to_owned(),
        },
        (None, None) => EntryVerdict::Retry {
            code: "IncompleteResponse".to_owned(),
        },
    }
}

/// The delivery stream as a one-shard topology once it is ACTIVE (or being updated,
/// when it still takes records); until then records wait, as for a missing stream.
async fn describe(client: &Client, stream: &str) -> Result<Topology, TopologyError> {
    let output = client
        .describe_delivery_stream()
        .delivery_stream_name(stream)
        .send()
        .await
        .map_err(|e| TopologyError::DeliveryStream(Failure::of(&e)))?;
    let status = output
        .delivery_stream_description()
        .map(|d| d.delivery_stream_status().clone());
    if !matches!(status, Some(DeliveryStreamStatus::Active)) {
        let status = status.map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned());
        return Err(TopologyError::DeliveryStream(Failure {
            trouble: crate::aws::Trouble::StreamMissing,
            code: "ResourceNotActive".into(),
            message: format!("delivery stream {stream} is {status}, not ACTIVE"),
        }));
    }
    let lane = ShardId::new(LANE).map_err(|e| TopologyError::BadRange(e.to_string()))?;
    Ok(Topology {
        open: ShardMap::new(vec![ShardRange {
            shard_id: lane,
            range: HashKeyRange::FULL,
        }])?,
        ranges: HashMap::from([(LANE.to_owned(), HashKeyRange::FULL)]),
        max_record_bytes: Some(limits::FIREHOSE_MAX_RECORD_BYTES),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_firehose::types::PutRecordBatchResponseEntry;

    #[test]
    fn entries_are_judged_as_firehose_words_them() {
        let ok = PutRecordBatchResponseEntry::builder()
            .record_id("abc")
            .build();
        assert_eq!(
            entry_verdict(&ok),
            EntryVerdict::Accepted {
                shard_id: LANE.into(),
                sequence_number: "abc".into()
            }
        );
        let throttled = PutRecordBatchResponseEntry::builder()
            .error_code("ServiceUnavailableException")
            .build();
        assert_eq!(entry_verdict(&throttled), EntryVerdict::Throttled);
        let internal = PutRecordBatchResponseEntry::builder()
            .error_code("InternalFailure")
            .build();
        assert_eq!(
            entry_verdict(&internal),
            EntryVerdict::Retry {
                code: "InternalFailure".into()
            }
        );
    }
}
