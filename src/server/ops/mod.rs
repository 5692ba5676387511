//! One function per API action: parse the input, validate it as Kinesis does, run it
//! against the store, encode the output. [`ACTIONS`] is the one list of what is
//! answered. Not here: what an action is allowed to do to a stream (the store
//! decides), or HTTP (`http`).

/// Implements [`validate::NamesStream`] for inputs with the `StreamName` and
/// `StreamARN` pair. Defined before the modules below so that they can use it.
macro_rules! names_stream {
    ($($input:ty),+ $(,)?) => {
        $(impl super::validate::NamesStream for $input {
            fn target(&self) -> super::validate::StreamTarget<'_> {
                super::validate::StreamTarget {
                    name: self.stream_name.as_deref(),
                    arn: self.stream_arn.as_deref(),
                }
            }
        })+
    };
}

mod account;
mod capacity;
mod consumers;
mod encryption;
mod policies;
mod records;
mod reshard;
mod shapes;
mod shards;
mod streams;
mod subscribe;
mod tags;
pub(super) mod validate;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{KinesisError, OpResult};
use super::store::Store;
use super::wire::{self, Format};

/// One API action: its `X-Amz-Target` name and how it is answered.
pub struct Action {
    pub name: &'static str,
    answer: fn(&Store, Format, &[u8]) -> OpResult<Vec<u8>>,
}

/// Every action this server answers, sorted by name: the one list that both routing
/// and the "unknown operation" message read.
pub const ACTIONS: &[Action] = &[
    Action {
        name: "AddTagsToStream",
        answer: |s, f, b| run(s, f, b, tags::add_tags),
    },
    Action {
        name: "CreateStream",
        answer: |s, f, b| run(s, f, b, streams::create_stream),
    },
    Action {
        name: "DecreaseStreamRetentionPeriod",
        answer: |s, f, b| run(s, f, b, |s, i| streams::change_retention(s, i, false)),
    },
    Action {
        name: "DeleteResourcePolicy",
        answer: |s, f, b| run(s, f, b, policies::delete_resource_policy),
    },
    Action {
        name: "DeleteStream",
        answer: |s, f, b| run(s, f, b, streams::delete_stream),
    },
    Action {
        name: "DeregisterStreamConsumer",
        answer: |s, f, b| run(s, f, b, consumers::deregister),
    },
    Action {
        name: "DescribeAccountSettings",
        answer: |s, f, b| run(s, f, b, capacity::describe_account_settings),
    },
    Action {
        name: "DescribeLimits",
        answer: |s, f, b| run(s, f, b, account::describe_limits),
    },
    Action {
        name: "DescribeStream",
        answer: |s, f, b| run(s, f, b, streams::describe_stream),
    },
    Action {
        name: "DescribeStreamConsumer",
        answer: |s, f, b| run(s, f, b, consumers::describe),
    },
    Action {
        name: "DescribeStreamSummary",
        answer: |s, f, b| run(s, f, b, streams::describe_stream_summary),
    },
    Action {
        name: "DisableEnhancedMonitoring",
        answer: |s, f, b| run(s, f, b, account::disable_enhanced_monitoring),
    },
    Action {
        name: "EnableEnhancedMonitoring",
        answer: |s, f, b| run(s, f, b, account::enable_enhanced_monitoring),
    },
    Action {
        name: "GetRecords",
        answer: |s, f, b| run(s, f, b, records::get_records),
    },
    Action {
        name: "GetResourcePolicy",
        answer: |s, f, b| run(s, f, b, policies::get_resource_policy),
    },
    Action {
        name: "GetShardIterator",
        answer: |s, f, b| run(s, f, b, records::get_shard_iterator),
    },
    Action {
        name: "IncreaseStreamRetentionPeriod",
        answer: |s, f, b| run(s, f, b, |s, i| streams::change_retention(s, i, true)),
    },
    Action {
        name: "ListShards",
        answer: |s, f, b| run(s, f, b, shards::list_shards),
    },
    Action {
        name: "ListStreamConsumers",
        answer: |s, f, b| run(s, f, b, consumers::list),
    },
    Action {
        name: "ListStreams",
        answer: |s, f, b| run(s, f, b, streams::list_streams),
    },
    Action {
        name: "ListTagsForResource",
        answer: |s, f, b| run(s, f, b, tags::list_tags_for_resource),
    },
    Action {
        name: "ListTagsForStream",
        answer: |s, f, b| run(s, f, b, tags::list_tags),
    },
    Action {
        name: "MergeShards",
        answer: |s, f, b| run(s, f, b, reshard::merge_shards),
    },
    Action {
        name: "PutRecord",
        answer: |s, f, b| run(s, f, b, records::put_record),
    },
    Action {
        name: "PutRecords",
        answer: |s, f, b| run(s, f, b, records::put_records),
    },
    Action {
        name: "PutResourcePolicy",
        answer: |s, f, b| run(s, f, b, policies::put_resource_policy),
    },
    Action {
        name: "RegisterStreamConsumer",
        answer: |s, f, b| run(s, f, b, consumers::register),
    },
    Action {
        name: "RemoveTagsFromStream",
        answer: |s, f, b| run(s, f, b, tags::remove_tags),
    },
    Action {
        name: "SplitShard",
        answer: |s, f, b| run(s, f, b, reshard::split_shard),
    },
    Action {
        name: "StartStreamEncryption",
        answer: |s, f, b| run(s, f, b, encryption::start_stream_encryption),
    },
    Action {
        name: "StopStreamEncryption",
        answer: |s, f, b| run(s, f, b, encryption::stop_stream_encryption),
    },
    Action {
        name: "SubscribeToShard",
        // Answered over HTTP with an event stream (see `subscribe`), not a body.
        answer: |_, _, _| {
            Err(KinesisError::invalid_argument(
                "SubscribeToShard answers with an event stream; call it over HTTP.",
            ))
        },
    },
    Action {
        name: "TagResource",
        answer: |s, f, b| run(s, f, b, tags::tag_resource),
    },
    Action {
        name: "UntagResource",
        answer: |s, f, b| run(s, f, b, tags::untag_resource),
    },
    Action {
        name: "UpdateAccountSettings",
        answer: |s, f, b| run(s, f, b, capacity::update_account_settings),
    },
    Action {
        name: "UpdateMaxRecordSize",
        answer: |s, f, b| run(s, f, b, streams::update_max_record_size),
    },
    Action {
        name: "UpdateShardCount",
        answer: |s, f, b| run(s, f, b, reshard::update_shard_count),
    },
    Action {
        name: "UpdateStreamMode",
        answer: |s, f, b| run(s, f, b, streams::update_stream_mode),
    },
    Action {
        name: "UpdateStreamWarmThroughput",
        answer: |s, f, b| run(s, f, b, capacity::update_stream_warm_throughput),
    },
];

fn run<I: DeserializeOwned, O: Serialize>(
    store: &Store,
    format: Format,
    body: &[u8],
    action: impl FnOnce(&Store, I) -> OpResult<O>,
) -> OpResult<Vec<u8>> {
    let input = wire::decode(format, body)?;
    let output = action(store, input)?;
    // Actions that return nothing (a zero-sized output) answer with an empty body, as
    // Kinesis does, not with `{}`.
    if std::mem::size_of::<O>() == 0 {
        return Ok(Vec::new());
    }
    Ok(wire::encode(format, &output))
}

/// Runs `action` on `body` and returns the encoded response body.
pub fn dispatch(store: &Store, action: &str, format: Format, body: &[u8]) -> OpResult<Vec<u8>> {
    match ACTIONS.binary_search_by(|a| a.name.cmp(action)) {
        Ok(index) => (ACTIONS[index].answer)(store, format, body),
        // Kinesis names no reason for an unknown operation.
        Err(_) => Err(KinesisError::unknown_operation("")),
    }
}

pub use policies::resource_of;
pub use subscribe::subscribe;

/// The names of the actions, in order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|a| a.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_without_repeats_so_lookups_find_every_action() {
        assert!(ACTIONS.windows(2).all(|w| w[0].name < w[1].name));
        let store = Store::new(
            crate::server::store::StoreConfig::default(),
            crate::server::Clock::frozen(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for name in names() {
            let answer = dispatch(&store, name, Format::Json, b"{}");
            assert!(
                !matches!(&answer, Err(e) if e.kind == crate::server::error::ErrorKind::UnknownOperation),
                "{name} is not routed"
            );
        }
    }
}
