//! SubscribeToShard: enhanced fan-out. A registered consumer's subscription to one
//! shard is an HTTP response that does not end: an AWS event stream (binary frames,
//! `application/vnd.amazon.eventstream`) carrying an `initial-response` event, then
//! a `SubscribeToShardEvent` whenever records arrive (and at least once a second),
//! for five minutes, or until a closed shard has been read to its end (the last
//! event names its child shards). Records are pushed as they are stored, unmetered
//! by the shard's GetRecords limits, as each consumer has its own read throughput:
//! 2 MiB/s per shard. One subscription per consumer and shard is live at a time
//! (`store::subscriptions`); one taken over ends with a ResourceInUseException event.

use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::records::{ChildShardShape, RecordShape, records_output};
use super::streams::shard_index;
use super::validate::{SEQUENCE_PATTERN, Violations, is_decimal};
use crate::kinesis::limits;
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;
use crate::server::store::records::IteratorStart;
use crate::server::store::stream::{Listening, lock};
use crate::server::wire::{self, Format, Timestamp};

/// How long one subscription lasts, as on Kinesis.
const SUBSCRIPTION: Duration = Duration::from_secs(5 * 60);
/// How long a quiet subscription waits for an append before it looks at the shard
/// anyway (appends wake it at once; this is the safety net).
const POLL: Duration = Duration::from_millis(250);
/// Longest gap between events when nothing arrives.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A consumer's read throughput per shard.
const PUSH_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeInput {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_id: Option<String>,
    starting_position: Option<StartingPosition>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartingPosition {
    #[serde(rename = "Type")]
    kind: Option<String>,
    sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeToShardEvent {
    records: Vec<RecordShape>,
    continuation_sequence_number: String,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_shards: Option<Vec<ChildShardShape>>,
}

/// Checks the call and starts the subscription; the frames of its event stream.
pub fn subscribe(store: &Store, format: Format, body: &[u8]) -> OpResult<mpsc::Receiver<Bytes>> {
    let input: SubscribeInput = wire::decode(format, body)?;
    let mut v = Violations::default();
    v.required("consumerARN", &input.consumer_arn);
    v.consumer_arn("consumerARN", input.consumer_arn.as_deref());
    v.required("shardId", &input.shard_id);
    v.shard_id("shardId", input.shard_id.as_deref());
    v.required("startingPosition", &input.starting_position);
    if let Some(position) = &input.starting_position {
        v.required("startingPosition.type", &position.kind);
        v.one_of(
            "startingPosition.type",
            position.kind.as_deref(),
            &[
                "AT_SEQUENCE_NUMBER",
                "AFTER_SEQUENCE_NUMBER",
                "TRIM_HORIZON",
                "LATEST",
                "AT_TIMESTAMP",
            ],
        );
        v.pattern(
            "startingPosition.sequenceNumber",
            position.sequence_number.as_deref(),
            SEQUENCE_PATTERN,
            |s| is_decimal(s, 129),
        );
    }
    v.finish()?;
    let consumer_arn = input.consumer_arn.unwrap_or_default();
    let (stream_arn, rest) = consumer_arn.split_once("/consumer/").ok_or_else(|| {
        KinesisError::invalid_argument(format!("{consumer_arn} is not a consumer ARN."))
    })?;
    let stream_name = store
        .name_from_arn(stream_arn)
        .ok_or_else(|| KinesisError::not_found(format!("Consumer {consumer_arn} not found.")))?;
    let stream = store.readable_stream(&stream_name)?;
    let consumer_name = rest.rsplit_once(':').map_or(rest, |(name, _)| name);
    let active = lock(&stream.state)
        .consumers
        .iter()
        .find(|c| c.arn == consumer_arn)
        .map(|c| c.status(store.now_ms()) == "ACTIVE");
    match active {
        None => {
            return Err(KinesisError::not_found(format!(
                "Consumer {consumer_name} under stream {stream_name} not found for account {}.",
                store.account_id()
            )));
        }
        Some(false) => {
            return Err(KinesisError::in_use(format!(
                "Consumer {consumer_arn} is not ACTIVE."
            )));
        }
        Some(true) => {}
    }
    let shard_id = input.shard_id.unwrap_or_default();
    let position = input.starting_position.unwrap_or(StartingPosition {
        kind: None,
        sequence_number: None,
        timestamp: None,
    });
    let start = match (position.kind.as_deref(), position.sequence_number) {
        (Some("AT_SEQUENCE_NUMBER"), Some(s)) => IteratorStart::AtSequence(s),
        (Some("AFTER_SEQUENCE_NUMBER"), Some(s)) => IteratorStart::AfterSequence(s),
        (Some("TRIM_HORIZON"), _) => IteratorStart::TrimHorizon,
        (Some("LATEST"), _) => IteratorStart::Latest,
        (Some("AT_TIMESTAMP"), _) => match position.timestamp {
            Some(t) => IteratorStart::AtTimestamp(t.millis()),
            None => {
                return Err(KinesisError::invalid_argument(
                    "StartingPosition of type AT_TIMESTAMP needs a Timestamp.",
                ));
            }
        },
        (kind, _) => {
            return Err(KinesisError::invalid_argument(format!(
                "StartingPosition of type {} needs a SequenceNumber.",
                kind.unwrap_or_default()
            )));
        }
    };
    let iterator = store.shard_iterator(&stream_name, &shard_id, start)?;
    let index = shard_index(&shard_id).unwrap_or_default();
    let starting = stream
        .shard(index)
        .map(|shard| shard.starting_sequence_number())
        .unwrap_or_default();
    let subscription = store.subscribe(&consumer_arn, &shard_id, index)?;
    let listening = stream.shard(index).map(Listening::new);
    let (frames, receiver) = mpsc::channel(4);
    tokio::spawn(push(
        store.clone(),
        format,
        iterator,
        starting,
        frames,
        (subscription, listening),
    ));
    Ok(receiver)
}

/// The frame that ends a subscription another one took over.
fn taken_over() -> Option<Bytes> {
    let error = KinesisError::in_use("Another subscription for this consumer and shard took over.");
    let message = Message::new(wire::encode(Format::Json, &wire::ErrorBody::of(&error)))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(error.kind.wire_name().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut bytes = Vec::new();
    write_message_to(&message, &mut bytes).ok()?;
    Some(Bytes::from(bytes))
}

/// One event-stream frame.
fn frame(event_type: &'static str, format: Format, payload: Vec<u8>) -> Option<Bytes> {
    let content_type = match format {
        Format::Json => "application/json",
        Format::Cbor => "application/cbor",
    };
    let message = Message::new(payload)
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String(content_type.into()),
        ));
    let mut bytes = Vec::new();
    write_message_to(&message, &mut bytes).ok()?;
    Some(Bytes::from(bytes))
}

/// Sends the subscription's events until it lapses, the shard ends, the client goes
/// or another subscription takes over.
async fn push(
    store: Store,
    format: Format,
    mut iterator: String,
    mut continuation: String,
    frames: mpsc::Sender<Bytes>,
    (subscription, listening): (
        crate::server::store::subscriptions::Subscription,
        Option<Listening>,
    ),
) {
    let Some(initial) = frame(
        "initial-response",
        format,
        wire::encode(format, &serde_json::json!({})),
    ) else {
        return;
    };
    if frames.send(initial).await.is_err() {
        return;
    }
    let started = tokio::time::Instant::now();
    let ends = started + SUBSCRIPTION;
    let mut last_event = started;
    let mut pushed_bytes = 0usize;
    while tokio::time::Instant::now() < ends {
        // Armed before the read, so an append between the read and the wait wakes it.
        let mut appended =
            std::pin::pin!(listening.as_ref().map(|l| l.shard().appended.notified()));
        if let Some(notified) = appended.as_mut().as_pin_mut() {
            notified.enable();
        }
        if !subscription.is_current() {
            if let Some(bytes) = taken_over() {
                let _ = frames.send(bytes).await;
            }
            return;
        }
        let read = match store.read_records(&iterator, limits::GET_RECORDS_MAX_RECORDS, false) {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, "a subscription ends: its shard cannot be read");
                return;
            }
        };
        let output = records_output(read);
        let done = output.next_shard_iterator.is_none();
        let quiet = output.records.is_empty();
        if let Some(last) = output.records.last() {
            continuation = last.sequence_number.clone();
        }
        pushed_bytes += output
            .records
            .iter()
            .map(RecordShape::payload_bytes)
            .sum::<usize>();
        if !quiet || done || last_event.elapsed() >= HEARTBEAT {
            let event = SubscribeToShardEvent {
                records: output.records,
                continuation_sequence_number: continuation.clone(),
                millis_behind_latest: output.millis_behind_latest,
                child_shards: output.child_shards,
            };
            let Some(bytes) = frame(
                "SubscribeToShardEvent",
                format,
                wire::encode(format, &event),
            ) else {
                return;
            };
            if frames.send(bytes).await.is_err() {
                return;
            }
            last_event = tokio::time::Instant::now();
        }
        match output.next_shard_iterator {
            Some(next) => iterator = next,
            None => return,
        }
        // Paced to the consumer's throughput: what was pushed, at 2 MiB/s, sets when
        // the next read may go (one second of it may go at once).
        let due = Duration::from_secs_f64(pushed_bytes as f64 / PUSH_BYTES_PER_SEC);
        let allowed = started.elapsed() + HEARTBEAT;
        if due > allowed {
            tokio::select! {
                () = tokio::time::sleep(due - allowed) => {}
                () = frames.closed() => return,
            }
        }
        if quiet {
            let woken = async {
                match appended.as_mut().as_pin_mut() {
                    Some(notified) => notified.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(POLL) => {}
                () = frames.closed() => return,
            }
        }
    }
}
