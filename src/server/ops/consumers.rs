//! Enhanced fan-out consumers: RegisterStreamConsumer, DeregisterStreamConsumer,
//! DescribeStreamConsumer and ListStreamConsumers, with Kinesis's limits (20
//! consumers per stream) and states (CREATING, then ACTIVE after the status delay).
//! A consumer's ARN is its stream's with `/consumer/NAME:CREATION_SECONDS`.

use serde::{Deserialize, Serialize};

use super::validate::{self, Violations, is_name};
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;
use crate::server::store::stream::{Consumer, Stream, lock};
use crate::server::wire::Timestamp;

/// Consumers one stream may have registered at once.
const MAX_CONSUMERS_PER_STREAM: usize = 20;
const CONSUMER_NAME_PATTERN: &str = "[a-zA-Z0-9_.-]+";

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerShape {
    consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    consumer_status: &'static str,
    consumer_creation_timestamp: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerDescription {
    consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    consumer_status: &'static str,
    consumer_creation_timestamp: Timestamp,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

fn shape(store: &Store, consumer: &Consumer) -> ConsumerShape {
    ConsumerShape {
        consumer_name: consumer.name.clone(),
        consumer_arn: consumer.arn.clone(),
        consumer_status: consumer.status(store.now_ms()),
        consumer_creation_timestamp: Timestamp::from_millis(consumer.created_ms),
    }
}

fn check_name(v: &mut Violations, name: Option<&str>) {
    v.pattern("consumerName", name, CONSUMER_NAME_PATTERN, is_name);
    v.length("consumerName", name, 1, 128);
}

fn stream_by_arn(store: &Store, arn: Option<&str>) -> OpResult<std::sync::Arc<Stream>> {
    let name = validate::stream_name(store, None, arn)?;
    store.readable_stream(&name)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterOutput {
    consumer: ConsumerShape,
}

pub fn register(store: &Store, input: RegisterInput) -> OpResult<RegisterOutput> {
    let mut v = Violations::default();
    v.required("streamARN", &input.stream_arn);
    v.stream_arn("streamARN", input.stream_arn.as_deref());
    v.required("consumerName", &input.consumer_name);
    check_name(&mut v, input.consumer_name.as_deref());
    v.finish()?;
    let stream = stream_by_arn(store, input.stream_arn.as_deref())?;
    let name = input.consumer_name.unwrap_or_default();
    let now = store.now_ms();
    let consumer = {
        let mut state = lock(&stream.state);
        if state.consumers.iter().any(|c| c.name == name) {
            return Err(KinesisError::in_use(format!(
                "Consumer {name} under stream {} already exists for account {}.",
                stream.name,
                store.account_id()
            )));
        }
        if state.consumers.len() >= MAX_CONSUMERS_PER_STREAM {
            return Err(KinesisError::limit_exceeded(format!(
                "Stream {} under account {} already has {MAX_CONSUMERS_PER_STREAM} consumers, the most it may have.",
                stream.name,
                store.account_id()
            )));
        }
        let consumer = Consumer {
            arn: format!("{}/consumer/{name}:{}", stream.arn, now / 1000),
            name,
            created_ms: now,
            active_ms: now + store.config().status_delay_ms,
        };
        state.consumers.push(consumer.clone());
        consumer
    };
    store.save_metadata()?;
    Ok(RegisterOutput {
        consumer: shape(store, &consumer),
    })
}

/// A consumer named by its ARN, or by its stream's ARN and its name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
}

/// The stream and the consumer's index in it.
fn find(store: &Store, input: &ConsumerInput) -> OpResult<(std::sync::Arc<Stream>, String)> {
    let mut v = Violations::default();
    v.stream_arn("streamARN", input.stream_arn.as_deref());
    check_name(&mut v, input.consumer_name.as_deref());
    v.consumer_arn("consumerARN", input.consumer_arn.as_deref());
    v.finish()?;
    let (stream_arn, name) = match (&input.consumer_arn, &input.stream_arn, &input.consumer_name) {
        (Some(arn), _, _) => {
            let (stream_arn, rest) = arn.split_once("/consumer/").ok_or_else(|| {
                KinesisError::invalid_argument(format!("{arn} is not a consumer ARN."))
            })?;
            let name = rest.rsplit_once(':').map_or(rest, |(name, _)| name);
            (stream_arn.to_owned(), name.to_owned())
        }
        (None, Some(stream_arn), Some(name)) => (stream_arn.clone(), name.clone()),
        _ => {
            return Err(KinesisError::invalid_argument(
                "Either ConsumerARN or both ConsumerName and StreamARN must be provided.",
            ));
        }
    };
    let stream = stream_by_arn(store, Some(&stream_arn))?;
    let known = lock(&stream.state)
        .consumers
        .iter()
        .any(|c| c.name == name && input.consumer_arn.as_ref().is_none_or(|arn| *arn == c.arn));
    if !known {
        return Err(KinesisError::not_found(format!(
            "Consumer {name} under stream {} not found for account {}.",
            stream.name,
            store.account_id()
        )));
    }
    Ok((stream, name))
}

pub fn deregister(store: &Store, input: ConsumerInput) -> OpResult<super::shapes::Empty> {
    let (stream, name) = find(store, &input)?;
    lock(&stream.state).consumers.retain(|c| c.name != name);
    store.save_metadata()?;
    Ok(super::shapes::Empty {})
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeOutput {
    consumer_description: ConsumerDescription,
}

pub fn describe(store: &Store, input: ConsumerInput) -> OpResult<DescribeOutput> {
    let (stream, name) = find(store, &input)?;
    let state = lock(&stream.state);
    let consumer = state
        .consumers
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| KinesisError::not_found(format!("Consumer {name} not found.")))?;
    Ok(DescribeOutput {
        consumer_description: ConsumerDescription {
            consumer_name: consumer.name.clone(),
            consumer_arn: consumer.arn.clone(),
            consumer_status: consumer.status(store.now_ms()),
            consumer_creation_timestamp: Timestamp::from_millis(consumer.created_ms),
            stream_arn: stream.arn.clone(),
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    /// Accepted as Kinesis accepts it; a name names one stream here.
    #[serde(rename = "StreamCreationTimestamp")]
    _stream_creation_timestamp: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListOutput {
    consumers: Vec<ConsumerShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub fn list(store: &Store, input: ListInput) -> OpResult<ListOutput> {
    let mut v = Violations::default();
    v.required("streamARN", &input.stream_arn);
    v.stream_arn("streamARN", input.stream_arn.as_deref());
    v.range("maxResults", input.max_results, 1, 10_000);
    v.length("nextToken", input.next_token.as_deref(), 1, 1048576);
    v.finish()?;
    let stream = stream_by_arn(store, input.stream_arn.as_deref())?;
    // The token is the index of the next consumer, in registration order.
    let start = match &input.next_token {
        None => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            KinesisError::invalid_argument(format!("NextToken {token} is not valid."))
        })?,
    };
    let limit = input.max_results.unwrap_or(100) as usize;
    let state = lock(&stream.state);
    let consumers: Vec<ConsumerShape> = state
        .consumers
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| shape(store, c))
        .collect();
    let next = start + consumers.len();
    Ok(ListOutput {
        consumers,
        next_token: (next < state.consumers.len()).then(|| next.to_string()),
    })
}
