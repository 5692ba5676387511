//! Reading a whole stream back: every shard, parents before children, deaggregated
//! with the KCL's rules, within the shards' read limits.
//!
//! Shards are read concurrently, but a shard starts only once its parents were read
//! to their end, so records of one partition key come out in order across a reshard.
//! Reads poll GetRecords, or with `efo` are pushed by SubscribeToShard to a consumer
//! registered for the read (and deregistered after it), as a KCL 2.x fan-out
//! consumer reads.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{
    ConsumerStatus, Record, Shard, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::kinesis::aggregation::deaggregate_for_shard;
use crate::kinesis::{HashKey, HashKeyRange};
use crate::producer::topology;

/// Where to start reading each shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    TrimHorizon,
    Latest,
    /// Epoch milliseconds.
    AtTimestamp(i64),
}

/// One user record as a KCL 2.x consumer delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub shard_id: String,
    pub sequence_number: String,
    pub sub_sequence_number: u64,
    pub partition_key: String,
    pub explicit_hash_key: Option<HashKey>,
    pub arrival_ms: i64,
    pub data: Bytes,
    /// Whether it came out of a KPL aggregate.
    pub aggregated: bool,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("ListShards on {stream} failed: {message}")]
    ListShards { stream: String, message: String },
    #[error("reading shard {shard} of {stream} failed: {message}")]
    Read {
        stream: String,
        shard: String,
        message: String,
    },
    #[error("registering an enhanced fan-out consumer of {stream} failed: {message}")]
    Consumer { stream: String, message: String },
}

/// How a read goes.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeOptions {
    pub from: StartFrom,
    /// Keep reading open shards for new records instead of stopping at their tip.
    pub follow: bool,
    /// Enhanced fan-out: records pushed by SubscribeToShard instead of polled.
    pub efo: bool,
}

/// Aggregates a KCL 2.x consumer drops because their sub-records leave the shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumeReport {
    pub kinesis_records: u64,
    pub dropped_aggregates: u64,
}

const IDLE_POLL: Duration = Duration::from_millis(200);

async fn list_shards(client: &Client, stream: &str) -> Result<Vec<Shard>, ConsumeError> {
    topology::list_shards(client, stream)
        .await
        .map_err(|e| ConsumeError::ListShards {
            stream: stream.to_owned(),
            message: crate::aws::Failure::of(&e).to_string(),
        })
}

fn range_of(shard: &Shard) -> HashKeyRange {
    let parse = |t: &str| t.parse::<u128>().map(HashKey).unwrap_or(HashKey::MIN);
    shard
        .hash_key_range()
        .map_or(HashKeyRange::FULL, |r| HashKeyRange {
            start: parse(r.starting_hash_key()),
            end: parse(r.ending_hash_key()),
        })
}

/// How long a newly registered consumer may take to become ACTIVE.
const CONSUMER_ACTIVE_WITHIN: Duration = Duration::from_secs(60);

/// Registers a consumer for this read; its ARN once ACTIVE.
async fn register_consumer(client: &Client, stream: &str) -> Result<String, ConsumeError> {
    let failed = |message: String| ConsumeError::Consumer {
        stream: stream.to_owned(),
        message,
    };
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| failed(crate::aws::Failure::of(&e).to_string()))?;
    let stream_arn = summary
        .stream_description_summary()
        .map(|s| s.stream_arn().to_owned())
        .unwrap_or_default();
    let registered = client
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name(format!("shardcar-consume-{}", std::process::id()))
        .send()
        .await
        .map_err(|e| failed(crate::aws::Failure::of(&e).to_string()))?;
    let arn = registered
        .consumer()
        .map(|c| c.consumer_arn().to_owned())
        .ok_or_else(|| failed("RegisterStreamConsumer returned no consumer".into()))?;
    let deadline = tokio::time::Instant::now() + CONSUMER_ACTIVE_WITHIN;
    loop {
        let described = client
            .describe_stream_consumer()
            .consumer_arn(&arn)
            .send()
            .await
            .map_err(|e| failed(crate::aws::Failure::of(&e).to_string()))?;
        let status = described
            .consumer_description()
            .map(|d| d.consumer_status().clone());
        if status == Some(ConsumerStatus::Active) {
            return Ok(arn);
        }
        if tokio::time::Instant::now() >= deadline {
            deregister_consumer(client, &arn).await;
            return Err(failed(format!(
                "consumer {arn} was not ACTIVE within {} s",
                CONSUMER_ACTIVE_WITHIN.as_secs()
            )));
        }
        tokio::time::sleep(IDLE_POLL).await;
    }
}

async fn deregister_consumer(client: &Client, arn: &str) {
    if let Err(e) = client
        .deregister_stream_consumer()
        .consumer_arn(arn)
        .send()
        .await
    {
        tracing::warn!(consumer = arn, error = %crate::aws::Failure::of(&e), "cannot deregister the consumer this read registered");
    }
}

/// Reads `stream`, sending each user record to `out` (in order within a shard).
pub async fn consume(
    client: &Client,
    stream: &str,
    options: ConsumeOptions,
    out: mpsc::Sender<ConsumedRecord>,
) -> Result<ConsumeReport, ConsumeError> {
    let efo = match options.efo {
        true => Some(Arc::<str>::from(register_consumer(client, stream).await?)),
        false => None,
    };
    let read = read_all(client, stream, options, efo.clone(), out).await;
    if let Some(arn) = efo {
        deregister_consumer(client, &arn).await;
    }
    read
}

async fn read_all(
    client: &Client,
    stream: &str,
    options: ConsumeOptions,
    efo: Option<Arc<str>>,
    out: mpsc::Sender<ConsumedRecord>,
) -> Result<ConsumeReport, ConsumeError> {
    let mut done: HashSet<String> = HashSet::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut running = tokio::task::JoinSet::new();
    let mut report = ConsumeReport::default();
    loop {
        let shards = list_shards(client, stream).await?;
        let known: HashSet<String> = shards.iter().map(|s| s.shard_id().to_owned()).collect();
        for shard in &shards {
            let id = shard.shard_id().to_owned();
            if started.contains(&id) {
                continue;
            }
            // Parents that are gone (past retention) or already read do not hold it back.
            let parents_done = shard
                .parent_shard_id()
                .into_iter()
                .chain(shard.adjacent_parent_shard_id())
                .all(|p| done.contains(p) || !known.contains(p));
            if !parents_done {
                continue;
            }
            started.insert(id.clone());
            let client = client.clone();
            let stream = stream.to_owned();
            let range = range_of(shard);
            let out = out.clone();
            // A child whose parent was read to its end is read from its start.
            let parent_read = shard.parent_shard_id().is_some_and(|p| done.contains(p));
            let from = if parent_read {
                StartFrom::TrimHorizon
            } else {
                options.from
            };
            let efo = efo.clone();
            running.spawn(async move {
                let shard = ShardRead {
                    client: &client,
                    stream: &stream,
                    shard_id: &id,
                    range,
                    out,
                };
                let result = match efo {
                    None => read_shard(&shard, from, options.follow).await,
                    Some(consumer) => {
                        subscribe_shard(&shard, &consumer, from, options.follow).await
                    }
                };
                (id, result)
            });
        }
        if running.is_empty() {
            return Ok(report);
        }
        let Some(joined) = running.join_next().await else {
            return Ok(report);
        };
        match joined {
            Ok((id, Ok(shard_report))) => {
                report.kinesis_records += shard_report.kinesis_records;
                report.dropped_aggregates += shard_report.dropped_aggregates;
                done.insert(id);
            }
            Ok((_, Err(error))) => return Err(error),
            Err(join) => {
                return Err(ConsumeError::Read {
                    stream: stream.to_owned(),
                    shard: "?".into(),
                    message: join.to_string(),
                });
            }
        }
    }
}

/// One shard's read: where, and where its records go.
struct ShardRead<'a> {
    client: &'a Client,
    stream: &'a str,
    shard_id: &'a str,
    range: HashKeyRange,
    out: mpsc::Sender<ConsumedRecord>,
}

impl ShardRead<'_> {
    fn error(&self, message: String) -> ConsumeError {
        ConsumeError::Read {
            stream: self.stream.to_owned(),
            shard: self.shard_id.to_owned(),
            message,
        }
    }

    /// Deaggregates one Kinesis record and sends its user records; false once the
    /// receiver is gone.
    async fn emit(&self, record: &Record, report: &mut ConsumeReport) -> bool {
        report.kinesis_records += 1;
        let data = Bytes::copy_from_slice(record.data().as_ref());
        let outer_key = record.partition_key().unwrap_or_default();
        let (result, check) = deaggregate_for_shard(outer_key, &data, self.range);
        if check.is_err() {
            report.dropped_aggregates += 1;
            tracing::warn!(
                shard.id = self.shard_id,
                sequence = record.sequence_number(),
                "dropping an aggregate whose records lie outside this shard, as a KCL 2.x consumer does"
            );
        }
        let aggregated = result.is_aggregated();
        let arrival_ms = record
            .approximate_arrival_timestamp()
            .map_or(0, |t| t.to_millis().unwrap_or(0));
        for (sub, user) in result.records.into_iter().enumerate() {
            let consumed = ConsumedRecord {
                shard_id: self.shard_id.to_owned(),
                sequence_number: record.sequence_number().to_owned(),
                sub_sequence_number: sub as u64,
                partition_key: user.partition_key,
                explicit_hash_key: user.explicit_hash_key,
                arrival_ms,
                data: user.data,
                aggregated,
            };
            if self.out.send(consumed).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Reads a shard through SubscribeToShard, subscribing again (after the last record
/// seen) each time a subscription lapses, until the shard ends or, without `follow`,
/// until an event finds it caught up.
async fn subscribe_shard(
    shard: &ShardRead<'_>,
    consumer_arn: &str,
    from: StartFrom,
    follow: bool,
) -> Result<ConsumeReport, ConsumeError> {
    let position = |kind: ShardIteratorType| StartingPosition::builder().r#type(kind);
    let mut start = match from {
        StartFrom::TrimHorizon => position(ShardIteratorType::TrimHorizon),
        StartFrom::Latest => position(ShardIteratorType::Latest),
        StartFrom::AtTimestamp(ms) => {
            position(ShardIteratorType::AtTimestamp).timestamp(DateTime::from_millis(ms))
        }
    }
    .build()
    .map_err(|e| shard.error(e.to_string()))?;
    let mut report = ConsumeReport::default();
    loop {
        let mut subscription = shard
            .client
            .subscribe_to_shard()
            .consumer_arn(consumer_arn)
            .shard_id(shard.shard_id)
            .starting_position(start.clone())
            .send()
            .await
            .map_err(|e| shard.error(crate::aws::Failure::of(&e).to_string()))?;
        let mut continuation = None;
        loop {
            let event = match subscription.event_stream.recv().await {
                Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => event,
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => return Err(shard.error(format!("{e:?}"))),
            };
            for record in event.records() {
                if !shard.emit(record, &mut report).await {
                    return Ok(report);
                }
            }
            if !event.child_shards().is_empty() {
                return Ok(report);
            }
            continuation = Some(event.continuation_sequence_number().to_owned());
            if !follow && event.records().is_empty() && event.millis_behind_latest() == 0 {
                return Ok(report);
            }
        }
        if let Some(after) = continuation {
            start = position(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(after)
                .build()
                .map_err(|e| shard.error(e.to_string()))?;
        }
    }
}

async fn read_shard(
    shard: &ShardRead<'_>,
    from: StartFrom,
    follow: bool,
) -> Result<ConsumeReport, ConsumeError> {
    let request = shard
        .client
        .get_shard_iterator()
        .stream_name(shard.stream)
        .shard_id(shard.shard_id);
    let request = match from {
        StartFrom::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        StartFrom::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
        StartFrom::AtTimestamp(ms) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from_millis(ms)),
    };
    let mut iterator = request
        .send()
        .await
        .map_err(|e| shard.error(crate::aws::Failure::of(&e).to_string()))?
        .shard_iterator
        .ok_or_else(|| shard.error("no shard iterator returned".into()))?;
    let mut report = ConsumeReport::default();
    let mut throttled = 0u32;
    loop {
        let page = match shard
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(10_000)
            .send()
            .await
        {
            Ok(page) => page,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()) =>
            {
                // The shard's read limit: back off and try again, as a consumer must.
                throttled += 1;
                tokio::time::sleep(IDLE_POLL * throttled.min(10)).await;
                continue;
            }
            Err(e) => return Err(shard.error(crate::aws::Failure::of(&e).to_string())),
        };
        throttled = 0;
        for record in page.records() {
            if !shard.emit(record, &mut report).await {
                return Ok(report);
            }
        }
        let caught_up = page.millis_behind_latest().unwrap_or(0) == 0;
        let empty = page.records().is_empty();
        match page.next_shard_iterator {
            None => return Ok(report),
            Some(next) => iterator = next,
        }
        if empty && caught_up {
            if !follow {
                return Ok(report);
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}
