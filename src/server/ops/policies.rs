//! Resource policies: PutResourcePolicy, GetResourcePolicy and DeleteResourcePolicy on
//! a stream, and the resource every call acts on, which authorization
//! ([`crate::server::policy`]) checks policies against.

use serde::{Deserialize, Serialize};

use super::shapes::Empty;
use super::validate::Violations;
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;
use crate::server::store::iterator::IteratorToken;
use crate::server::store::stream::{ResourcePolicy, Stream, lock};
use crate::server::wire::{self, Format};

/// Longest policy document Kinesis takes (20 KiB).
const MAX_POLICY_CHARS: usize = 20_480;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutResourcePolicyInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceArnInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyOutput {
    policy: String,
}

fn check_arn(v: &mut Violations, arn: &Option<String>) {
    v.required("resourceARN", arn);
    v.resource_arn("resourceARN", arn.as_deref());
}

/// The stream a resource ARN names; consumers have no policies here, as they have no
/// registration yet.
fn stream_of(store: &Store, arn: &str) -> OpResult<std::sync::Arc<Stream>> {
    let name = store
        .name_from_arn(arn)
        .ok_or_else(|| KinesisError::not_found(format!("Resource {arn} not found.")))?;
    store.readable_stream(&name)
}

pub fn put_resource_policy(store: &Store, input: PutResourcePolicyInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    check_arn(&mut v, &input.resource_arn);
    v.required("policy", &input.policy);
    v.length("policy", input.policy.as_deref(), 1, MAX_POLICY_CHARS);
    v.finish()?;
    let (Some(arn), Some(text)) = (input.resource_arn, input.policy) else {
        return Err(KinesisError::validation(
            "resourceARN and policy are required",
        ));
    };
    let stream = stream_of(store, &arn)?;
    let policy = ResourcePolicy::parse(text).map_err(|problems| {
        KinesisError::invalid_argument(format!(
            "Policy is not a valid resource policy: {}",
            problems.join("; ")
        ))
    })?;
    lock(&stream.state).resource_policy = Some(policy);
    store.save_metadata()?;
    Ok(Empty {})
}

pub fn get_resource_policy(
    store: &Store,
    input: ResourceArnInput,
) -> OpResult<GetResourcePolicyOutput> {
    let mut v = Violations::default();
    check_arn(&mut v, &input.resource_arn);
    v.finish()?;
    let arn = input.resource_arn.unwrap_or_default();
    let stream = stream_of(store, &arn)?;
    let policy = lock(&stream.state)
        .resource_policy
        .as_ref()
        .map_or_else(|| "{}".to_owned(), |p| p.text.clone());
    Ok(GetResourcePolicyOutput { policy })
}

pub fn delete_resource_policy(store: &Store, input: ResourceArnInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    check_arn(&mut v, &input.resource_arn);
    v.finish()?;
    let arn = input.resource_arn.unwrap_or_default();
    let stream = stream_of(store, &arn)?;
    let had = lock(&stream.state).resource_policy.take();
    if had.is_none() {
        return Err(KinesisError::not_found(format!(
            "No resource policy found for resource ARN {arn}."
        )));
    }
    store.save_metadata()?;
    Ok(Empty {})
}

/// The fields of any request that name what it acts on.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Names {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_iterator: Option<String>,
}

/// What authorization needs of a call: the ARN it acts on (`*` for actions on no
/// resource, such as ListStreams), and that stream's resource policy. `None` when the
/// body cannot be read: the call then fails on its own with the error the action gives.
pub fn resource_of(
    store: &Store,
    format: Format,
    body: &[u8],
) -> Option<(String, Option<ResourcePolicy>)> {
    let names: Names = wire::decode(format, body).ok()?;
    let arn = if let Some(arn) = names.resource_arn.or(names.consumer_arn) {
        arn
    } else if let Some(arn) = names.stream_arn {
        arn
    } else if let Some(name) = names.stream_name {
        store.arn(&name)
    } else if let Some(token) = names.shard_iterator {
        // GetRecords acts on the stream its iterator reads.
        match IteratorToken::decode(&token) {
            Some(token) => store.arn(&token.stream),
            None => return None,
        }
    } else {
        "*".to_owned()
    };
    // A consumer's ARN is the stream's with `/consumer/...`: its stream's policy applies.
    let stream_arn = arn.split("/consumer/").next().unwrap_or(&arn);
    let policy = store
        .name_from_arn(stream_arn)
        .and_then(|name| store.stream(&name).ok())
        .and_then(|stream| lock(&stream.state).resource_policy.clone());
    Some((arn, policy))
}
