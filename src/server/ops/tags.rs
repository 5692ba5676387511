//! Stream tags: add, remove and list, within Kinesis's limits on count, length and
//! characters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::shapes::Empty;
use super::validate::{NamesStream, Violations};
use crate::kinesis::limits;
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;
use crate::server::store::stream::lock;

pub(super) fn check_tags(tags: &BTreeMap<String, String>) -> OpResult<()> {
    let valid = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_./=+-%@:".contains(c))
    };
    for (key, value) in tags {
        if key.is_empty()
            || key.chars().count() > 128
            || value.chars().count() > 256
            || !valid(key)
            || !valid(value)
        {
            return Err(KinesisError::invalid_argument(
                "Some tags contain invalid characters or lengths. Valid characters: Unicode letters, digits, white space, _ . / = + - % @. Keys are 1 to 128 characters, values 0 to 256.",
            ));
        }
    }
    if tags.len() > limits::MAX_TAGS_PER_STREAM {
        return Err(KinesisError::invalid_argument(format!(
            "A stream cannot have more than {} tags associated with it.",
            limits::MAX_TAGS_PER_STREAM
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub fn add_tags(store: &Store, input: AddTagsInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("tags", &input.tags);
    if let Some(tags) = &input.tags {
        v.count("tags", tags.len(), 1, limits::MAX_TAGS_PER_CALL, || {
            super::validate::java_map(tags)
        });
    }
    v.finish()?;
    let name = input.target().resolve(store)?;
    let stream = store.readable_stream(&name)?;
    {
        let mut state = lock(&stream.state);
        let mut merged = state.tags.clone();
        merged.extend(input.tags.unwrap_or_default());
        check_tags(&merged)?;
        state.tags = merged;
    }
    store.save_metadata()?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTagsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub fn remove_tags(store: &Store, input: RemoveTagsInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("tagKeys", &input.tag_keys);
    if let Some(keys) = &input.tag_keys {
        v.count("tagKeys", keys.len(), 1, limits::MAX_TAGS_PER_CALL, || {
            super::validate::java_list(keys)
        });
    }
    v.finish()?;
    let name = input.target().resolve(store)?;
    let stream = store.readable_stream(&name)?;
    {
        let mut state = lock(&stream.state);
        for key in input.tag_keys.unwrap_or_default() {
            state.tags.remove(&key);
        }
    }
    store.save_metadata()?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagShape {
    key: String,
    value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsOutput {
    tags: Vec<TagShape>,
    has_more_tags: bool,
}

pub fn list_tags(store: &Store, input: ListTagsInput) -> OpResult<ListTagsOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.range("limit", input.limit, 1, 50);
    v.length(
        "exclusiveStartTagKey",
        input.exclusive_start_tag_key.as_deref(),
        1,
        128,
    );
    v.finish()?;
    let name = input.target().resolve(store)?;
    let stream = store.stream(&name)?;
    let limit = input.limit.unwrap_or(50) as usize;
    let state = lock(&stream.state);
    let mut tags: Vec<TagShape> = state
        .tags
        .iter()
        .filter(|(k, _)| {
            input
                .exclusive_start_tag_key
                .as_ref()
                .is_none_or(|s| *k > s)
        })
        .map(|(key, value)| TagShape {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    let has_more_tags = tags.len() > limit;
    tags.truncate(limit);
    Ok(ListTagsOutput {
        tags,
        has_more_tags,
    })
}

names_stream!(AddTagsInput, RemoveTagsInput, ListTagsInput);

/// TagResource, UntagResource and ListTagsForResource: the same tags, named by the
/// stream's ARN (consumers, which take tags on AWS too, are not registered here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    tags: Vec<TagShape>,
}

fn check_resource(v: &mut Violations, arn: &Option<String>) {
    v.required("resourceARN", arn);
    v.resource_arn("resourceARN", arn.as_deref());
}

pub fn tag_resource(store: &Store, input: TagResourceInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    check_resource(&mut v, &input.resource_arn);
    v.finish()?;
    add_tags(
        store,
        AddTagsInput {
            stream_name: None,
            stream_arn: input.resource_arn,
            tags: input.tags,
        },
    )
}

pub fn untag_resource(store: &Store, input: UntagResourceInput) -> OpResult<Empty> {
    let mut v = Violations::default();
    check_resource(&mut v, &input.resource_arn);
    v.finish()?;
    remove_tags(
        store,
        RemoveTagsInput {
            stream_name: None,
            stream_arn: input.resource_arn,
            tag_keys: input.tag_keys,
        },
    )
}

pub fn list_tags_for_resource(
    store: &Store,
    input: ListTagsForResourceInput,
) -> OpResult<ListTagsForResourceOutput> {
    let mut v = Violations::default();
    check_resource(&mut v, &input.resource_arn);
    v.finish()?;
    let listed = list_tags(
        store,
        ListTagsInput {
            stream_name: None,
            stream_arn: input.resource_arn,
            exclusive_start_tag_key: None,
            limit: Some(limits::MAX_TAGS_PER_STREAM as i64),
        },
    )?;
    Ok(ListTagsForResourceOutput { tags: listed.tags })
}
