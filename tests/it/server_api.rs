//! Every shard-server action through the real `aws-sdk-kinesis` client.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ScalingType, ShardFilter, ShardFilterType, ShardIteratorType,
    StreamMode, StreamModeDetails, StreamStatus,
};

use crate::support::{
    eventually, kinesis_client, limited_server_config, start_server, test_server_config,
};

async fn create(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create stream");
}

async fn read_all(client: &Client, stream: &str, shard_id: &str) -> Vec<(String, String)> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("iterator string");
    let mut out = Vec::new();
    loop {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .expect("get records");
        for record in page.records() {
            out.push((
                record.partition_key().unwrap_or_default().to_owned(),
                String::from_utf8_lossy(record.data().as_ref()).into_owned(),
            ));
        }
        match page.next_shard_iterator {
            Some(next) if !page.records().is_empty() => iterator = next,
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_describe_list_and_delete_a_stream() {
    let mut config = test_server_config();
    config.store.status_delay_ms = 50;
    let server = start_server(config).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "orders", 3).await;

    let described = client
        .describe_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    let description = described.stream_description.unwrap();
    assert_eq!(description.stream_status, StreamStatus::Creating);
    eventually(Duration::from_secs(5), async || {
        let summary = client
            .describe_stream_summary()
            .stream_name("orders")
            .send()
            .await
            .ok()?;
        let summary = summary.stream_description_summary?;
        (summary.stream_status == StreamStatus::Active && summary.open_shard_count == 3)
            .then_some(())
    })
    .await;
    assert_eq!(description.shards.len(), 3);
    assert_eq!(description.shards[0].shard_id, "shardId-000000000000");
    assert_eq!(
        description.shards[0]
            .hash_key_range
            .as_ref()
            .unwrap()
            .ending_hash_key,
        "113427455640312821154458202477256070484"
    );
    assert_eq!(description.retention_period_hours, 24);
    assert_eq!(
        description.stream_arn,
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
    );

    let again = client
        .create_stream()
        .stream_name("orders")
        .shard_count(1)
        .send()
        .await;
    let err = again.unwrap_err().into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");

    let streams = client.list_streams().send().await.unwrap();
    assert_eq!(streams.stream_names(), ["orders"]);

    client
        .delete_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(5), async || {
        let result = client.describe_stream().stream_name("orders").send().await;
        match result {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Some(())
            }
            _ => None,
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_read_back_with_every_iterator_type() {
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "s", 1).await;
    let mut sequence_numbers = Vec::new();
    for i in 0..5 {
        let put = client
            .put_record()
            .stream_name("s")
            .partition_key(format!("k{i}"))
            .data(Blob::new(format!("record {i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(put.shard_id, "shardId-000000000000");
        sequence_numbers.push(put.sequence_number);
    }
    assert!(
        sequence_numbers.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers increase"
    );

    let read_from =
        async |kind: ShardIteratorType, sequence: Option<&str>, at: Option<DateTime>| {
            let iterator = client
                .get_shard_iterator()
                .stream_name("s")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(kind)
                .set_starting_sequence_number(sequence.map(str::to_owned))
                .set_timestamp(at)
                .send()
                .await
                .unwrap()
                .shard_iterator
                .unwrap();
            let page = client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .unwrap();
            page.records()
                .iter()
                .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned())
                .collect::<Vec<_>>()
        };
    assert_eq!(
        read_from(ShardIteratorType::TrimHorizon, None, None)
            .await
            .len(),
        5
    );
    assert!(
        read_from(ShardIteratorType::Latest, None, None)
            .await
            .is_empty()
    );
    assert_eq!(
        read_from(
            ShardIteratorType::AtSequenceNumber,
            Some(&sequence_numbers[2]),
            None
        )
        .await,
        ["record 2", "record 3", "record 4"]
    );
    assert_eq!(
        read_from(
            ShardIteratorType::AfterSequenceNumber,
            Some(&sequence_numbers[2]),
            None
        )
        .await,
        ["record 3", "record 4"]
    );
    let past = DateTime::from_secs(1);
    assert_eq!(
        read_from(ShardIteratorType::AtTimestamp, None, Some(past))
            .await
            .len(),
        5
    );
    let future = DateTime::from_secs(i64::from(u32::MAX));
    assert!(
        read_from(ShardIteratorType::AtTimestamp, None, Some(future))
            .await
            .is_empty()
    );

    // A LATEST iterator sees what is written after it.
    let latest = client
        .get_shard_iterator()
        .stream_name("s")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    client
        .put_record()
        .stream_name("s")
        .partition_key("k")
        .data(Blob::new("late"))
        .send()
        .await
        .unwrap();
    let page = client
        .get_records()
        .shard_iterator(latest)
        .send()
        .await
        .unwrap();
    assert_eq!(page.records().len(), 1);
    assert_eq!(page.millis_behind_latest, Some(0));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_route_by_hash_key_like_the_agent_predicts() {
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "routed", 4).await;
    let vectors = crate::support::read_json("vectors/shard_prediction.json");
    let keys = vectors["partition_keys"].as_array().unwrap();
    let entries: Vec<PutRecordsRequestEntry> = keys
        .iter()
        .map(|k| {
            PutRecordsRequestEntry::builder()
                .partition_key(k["partition_key"].as_str().unwrap())
                .data(Blob::new("x"))
                .build()
                .unwrap()
        })
        .collect();
    let result = client
        .put_records()
        .stream_name("routed")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(result.failed_record_count, Some(0));
    for (entry, key) in result.records().iter().zip(keys) {
        assert_eq!(
            entry.shard_id(),
            key["shard_id_4"].as_str(),
            "{}",
            key["partition_key"]
        );
    }
    // Explicit hash keys override the partition key, at the range edges too.
    for case in vectors["explicit_hash_key_boundary_cases"]["4"]
        .as_array()
        .unwrap()
    {
        let put = client
            .put_record()
            .stream_name("routed")
            .partition_key("ignored")
            .explicit_hash_key(case["explicit_hash_key"].as_str().unwrap())
            .data(Blob::new("x"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.shard_id, case["shard_id"].as_str().unwrap());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_paginate() {
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "wide", 7).await;
    for name in ["a", "b", "c"] {
        create(&client, name, 1).await;
    }

    let mut shard_ids = Vec::new();
    let mut page = client
        .list_shards()
        .stream_name("wide")
        .max_results(3)
        .send()
        .await
        .unwrap();
    loop {
        shard_ids.extend(page.shards().iter().map(|s| s.shard_id.clone()));
        let Some(token) = page.next_token.clone() else {
            break;
        };
        page = client
            .list_shards()
            .next_token(token)
            .max_results(3)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(shard_ids.len(), 7);
    assert_eq!(shard_ids[6], "shardId-000000000006");

    let both = client
        .list_shards()
        .stream_name("wide")
        .next_token("x")
        .send()
        .await;
    assert!(
        both.unwrap_err()
            .into_service_error()
            .is_invalid_argument_exception()
    );

    let after = client
        .list_shards()
        .stream_name("wide")
        .exclusive_start_shard_id("shardId-000000000004")
        .send()
        .await
        .unwrap();
    assert_eq!(after.shards().len(), 2);

    let described = client
        .describe_stream()
        .stream_name("wide")
        .limit(4)
        .send()
        .await
        .unwrap();
    let description = described.stream_description.unwrap();
    assert!(description.has_more_shards);
    assert_eq!(description.shards.len(), 4);
    let rest = client
        .describe_stream()
        .stream_name("wide")
        .exclusive_start_shard_id("shardId-000000000003")
        .send()
        .await
        .unwrap();
    assert_eq!(rest.stream_description.unwrap().shards.len(), 3);

    let first = client.list_streams().limit(2).send().await.unwrap();
    assert_eq!(first.stream_names(), ["a", "b"]);
    assert!(first.has_more_streams);
    let second = client
        .list_streams()
        .next_token(first.next_token.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.stream_names(), ["c", "wide"]);
    assert!(!second.has_more_streams);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn split_then_merge_keeps_every_record_in_parent_then_child_order() {
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "re", 1).await;
    let put = async |key: &str, data: &str| {
        client
            .put_record()
            .stream_name("re")
            .partition_key(key)
            .data(Blob::new(data.to_owned()))
            .send()
            .await
            .unwrap()
            .shard_id
    };
    put("k", "before split").await;
    let middle = (1u128 << 127).to_string();
    client
        .split_shard()
        .stream_name("re")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(&middle)
        .send()
        .await
        .unwrap();
    let landed = put("k", "after split").await;
    assert!(["shardId-000000000001", "shardId-000000000002"].contains(&landed.as_str()));

    let shards = client.list_shards().stream_name("re").send().await.unwrap();
    let shards = shards.shards();
    assert_eq!(shards.len(), 3);
    assert!(
        shards[0]
            .sequence_number_range
            .as_ref()
            .unwrap()
            .ending_sequence_number
            .is_some()
    );
    assert_eq!(shards[1].parent_shard_id(), Some("shardId-000000000000"));

    // The parent, read to its end, names its children and ends the iterator.
    let mut iterator = client
        .get_shard_iterator()
        .stream_name("re")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut parent_records = Vec::new();
    let children = loop {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap();
        parent_records.extend(page.records().iter().map(|r| r.data().as_ref().to_vec()));
        match page.next_shard_iterator {
            Some(next) => iterator = next,
            None => break page.child_shards.unwrap(),
        }
    };
    assert_eq!(parent_records, [b"before split".to_vec()]);
    assert_eq!(children.len(), 2);

    client
        .merge_shards()
        .stream_name("re")
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .unwrap();
    let after_merge = put("k", "after merge").await;
    assert_eq!(after_merge, "shardId-000000000003");
    let merged = client.list_shards().stream_name("re").send().await.unwrap();
    let merged = &merged.shards()[3];
    assert_eq!(merged.parent_shard_id(), Some("shardId-000000000001"));
    assert_eq!(
        merged.adjacent_parent_shard_id(),
        Some("shardId-000000000002")
    );

    // Reading parents before children gives the key's records in write order.
    let mut in_order = Vec::new();
    for shard in [
        "shardId-000000000000",
        landed.as_str(),
        "shardId-000000000003",
    ] {
        in_order.extend(
            read_all(&client, "re", shard)
                .await
                .into_iter()
                .map(|(_, d)| d),
        );
    }
    assert_eq!(in_order, ["before split", "after split", "after merge"]);

    let not_adjacent = client
        .merge_shards()
        .stream_name("re")
        .shard_to_merge("shardId-000000000003")
        .adjacent_shard_to_merge("shardId-000000000000")
        .send()
        .await;
    assert!(
        not_adjacent
            .unwrap_err()
            .into_service_error()
            .is_resource_in_use_exception()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn update_shard_count_reshards_evenly_with_a_followable_lineage() {
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "u", 3).await;
    let out = client
        .update_shard_count()
        .stream_name("u")
        .target_shard_count(5)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (out.current_shard_count, out.target_shard_count),
        (Some(3), Some(5))
    );
    let open = client
        .list_shards()
        .stream_name("u")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut ranges: Vec<u128> = open
        .shards()
        .iter()
        .map(|s| {
            s.hash_key_range
                .as_ref()
                .unwrap()
                .starting_hash_key
                .parse()
                .unwrap()
        })
        .collect();
    ranges.sort();
    let expected: Vec<u128> = shardcar::kinesis::HashKeyRange::even_split(5)
        .iter()
        .map(|r| r.start.0)
        .collect();
    assert_eq!(ranges, expected);
    let all = client.list_shards().stream_name("u").send().await.unwrap();
    for shard in all.shards() {
        let parents = shard
            .parent_shard_id()
            .iter()
            .chain(shard.adjacent_parent_shard_id().iter())
            .count();
        assert!(parents <= 2);
    }
    let too_far = client
        .update_shard_count()
        .stream_name("u")
        .target_shard_count(11)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    assert!(
        too_far
            .unwrap_err()
            .into_service_error()
            .is_invalid_argument_exception()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn iterators_expire_after_five_minutes() {
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "e", 1).await;
    let iterator = client
        .get_shard_iterator()
        .stream_name("e")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    server.clock().advance(Duration::from_secs(301));
    let err = client
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_expired_iterator_exception(), "{err:?}");
    let garbage = client
        .get_records()
        .shard_iterator("bm90IGFuIGl0ZXJhdG9y")
        .send()
        .await;
    assert!(
        garbage
            .unwrap_err()
            .into_service_error()
            .is_invalid_argument_exception()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_trimmed_after_the_retention_period() {
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "r", 1).await;
    client
        .put_record()
        .stream_name("r")
        .partition_key("k")
        .data(Blob::new("old"))
        .send()
        .await
        .unwrap();
    client
        .increase_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    server.clock().advance(Duration::from_secs(25 * 3600));
    assert_eq!(
        read_all(&client, "r", "shardId-000000000000").await.len(),
        1,
        "kept under 48 h retention"
    );
    client
        .decrease_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(24)
        .send()
        .await
        .unwrap();
    client
        .put_record()
        .stream_name("r")
        .partition_key("k")
        .data(Blob::new("new"))
        .send()
        .await
        .unwrap();
    let left = read_all(&client, "r", "shardId-000000000000").await;
    assert_eq!(left, [("k".to_owned(), "new".to_owned())]);

    let short = client
        .decrease_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(12)
        .send()
        .await;
    assert!(
        short
            .unwrap_err()
            .into_service_error()
            .is_invalid_argument_exception()
    );
    let wrong_way = client
        .increase_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(24)
        .send()
        .await;
    assert!(wrong_way.is_ok(), "equal retention is allowed");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_entry_fails_alone_while_the_others_succeed() {
    let server = start_server(limited_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "hot", 2).await;
    // Shard 0 takes 1000 records per second; the 1001st in the same second is refused.
    let low_key = "0";
    let high_key = (u128::MAX - 1).to_string();
    let entry = |hash_key: &str| {
        PutRecordsRequestEntry::builder()
            .partition_key("k")
            .explicit_hash_key(hash_key)
            .data(Blob::new("x"))
            .build()
            .unwrap()
    };
    let mut first: Vec<_> = (0..500).map(|_| entry(low_key)).collect();
    client
        .put_records()
        .stream_name("hot")
        .set_records(Some(first.clone()))
        .send()
        .await
        .unwrap();
    first.truncate(499);
    first.push(entry(&high_key));
    let second = client
        .put_records()
        .stream_name("hot")
        .set_records(Some(first))
        .send()
        .await
        .unwrap();
    assert_eq!(second.failed_record_count, Some(0));
    let third: Vec<_> = vec![entry(low_key), entry(&high_key), entry(low_key)];
    let result = client
        .put_records()
        .stream_name("hot")
        .set_records(Some(third))
        .send()
        .await
        .unwrap();
    // The first entry was the 1000th record of shard 0, the third the 1001st.
    let codes: Vec<Option<&str>> = result.records().iter().map(|r| r.error_code()).collect();
    assert_eq!(
        codes,
        [None, None, Some("ProvisionedThroughputExceededException")]
    );
    assert_eq!(result.failed_record_count, Some(1));
    assert!(
        result.records()[2]
            .error_message()
            .unwrap()
            .contains("shardId-000000000000")
    );
    // A second later the shard takes records again.
    server.clock().advance(Duration::from_secs(1));
    let again = client
        .put_records()
        .stream_name("hot")
        .records(entry(low_key))
        .send()
        .await
        .unwrap();
    assert_eq!(again.failed_record_count, Some(0));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_mode_and_arn_addressing() {
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    client
        .create_stream()
        .stream_name("od")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/od";
    let summary = client
        .describe_stream_summary()
        .stream_arn(arn)
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary.unwrap();
    assert_eq!(summary.open_shard_count, 4);
    assert_eq!(
        summary.stream_mode_details.unwrap().stream_mode,
        StreamMode::OnDemand
    );

    client
        .add_tags_to_stream()
        .stream_name("od")
        .tags("team", "logs")
        .tags("env", "dev")
        .send()
        .await
        .unwrap();
    client
        .remove_tags_from_stream()
        .stream_arn(arn)
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_stream()
        .stream_name("od")
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key, "team");

    client
        .update_stream_mode()
        .stream_arn(arn)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::Provisioned)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let put = client
        .put_record()
        .stream_arn(arn)
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert!(put.shard_id.starts_with("shardId-"));
    let missing = client
        .describe_stream_summary()
        .stream_name("nope")
        .send()
        .await;
    assert!(
        missing
            .unwrap_err()
            .into_service_error()
            .is_resource_not_found_exception()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_records_is_limited_to_five_calls_per_second_per_shard() {
    let server = start_server(limited_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "reads", 1).await;
    let iterator = client
        .get_shard_iterator()
        .stream_name("reads")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    for _ in 0..5 {
        client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap();
    }
    let sixth = client.get_records().shard_iterator(&iterator).send().await;
    assert!(
        sixth
            .unwrap_err()
            .into_service_error()
            .is_provisioned_throughput_exceeded_exception()
    );
    server.clock().advance(Duration::from_millis(200));
    client
        .get_records()
        .shard_iterator(&iterator)
        .send()
        .await
        .unwrap();
    server.shutdown().await;
}

/// DescribeLimits, enhanced monitoring and the ARN-addressed tag actions, as the SDK
/// calls them; a void action answers with an empty body, as Kinesis does.
#[tokio::test(flavor = "multi_thread")]
async fn limits_monitoring_and_resource_tags() {
    use aws_sdk_kinesis::types::MetricsName;
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "watched", 3).await;
    let limits = client
        .describe_limits()
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(limits.open_shard_count(), 3);
    assert_eq!(limits.on_demand_stream_count(), 0);
    assert!(limits.shard_limit() >= 3);

    let enabled = client
        .enable_enhanced_monitoring()
        .stream_name("watched")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .shard_level_metrics(MetricsName::IteratorAgeMilliseconds)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(enabled.current_shard_level_metrics().is_empty());
    assert_eq!(enabled.desired_shard_level_metrics().len(), 2);
    let disabled = client
        .disable_enhanced_monitoring()
        .stream_name("watched")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        disabled.desired_shard_level_metrics(),
        [MetricsName::IteratorAgeMilliseconds]
    );
    let summary = client
        .describe_stream_summary()
        .stream_name("watched")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let shown: Vec<MetricsName> = summary
        .stream_description_summary()
        .map(|s| s.enhanced_monitoring().to_vec())
        .unwrap_or_default()
        .iter()
        .flat_map(|m| m.shard_level_metrics().to_vec())
        .collect();
    assert_eq!(shown, [MetricsName::IteratorAgeMilliseconds]);

    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/watched";
    client
        .tag_resource()
        .resource_arn(arn)
        .tags("team", "logs")
        .tags("tier", "gold")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    client
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("tier")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let tags = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let tags: Vec<(&str, &str)> = tags
        .tags()
        .iter()
        .map(|t| (t.key(), t.value().unwrap_or_default()))
        .collect();
    assert_eq!(tags, [("team", "logs")]);

    // A void action's raw answer: 200 with an empty body.
    let answer = raw_post(
        server.local_addr(),
        "IncreaseStreamRetentionPeriod",
        br#"{"StreamName":"watched","RetentionPeriodHours":48}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n"),
        "a body came with a void answer: {answer:?}"
    );
    server.shutdown().await;
}

/// One raw JSON call in SigV4's shape over HTTP/1.1; the whole answer as text.
fn raw_post(addr: std::net::SocketAddr, action: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    let head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.{action}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00\r\nX-Amz-Date: 20260101T000000Z\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("{e}"));
    answer
}

/// Enhanced fan-out consumers: registered (CREATING, then ACTIVE), listed in pages,
/// described by ARN or by stream and name, counted in the summary, refused past 20
/// per stream and when a name is taken, and deregistered.
#[tokio::test(flavor = "multi_thread")]
async fn consumers_register_list_describe_and_deregister() {
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    use aws_sdk_kinesis::types::ConsumerStatus;
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "fanned", 2).await;
    let stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/fanned";
    let mut arns = Vec::new();
    for i in 0..20 {
        let registered = client
            .register_stream_consumer()
            .stream_arn(stream_arn)
            .consumer_name(format!("app-{i:02}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let consumer = registered
            .consumer()
            .unwrap_or_else(|| panic!("no consumer in the answer"));
        assert!(
            consumer
                .consumer_arn()
                .starts_with(&format!("{stream_arn}/consumer/app-{i:02}:")),
            "{consumer:?}"
        );
        arns.push(consumer.consumer_arn().to_owned());
    }
    let taken = client
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name("app-00")
        .send()
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Some("ResourceInUseException"));
    let too_many = client
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name("app-20")
        .send()
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Some("LimitExceededException"));

    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_stream_consumers()
            .stream_arn(stream_arn)
            .max_results(7)
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        listed.extend(page.consumers().iter().map(|c| c.consumer_arn().to_owned()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(listed, arns);

    let by_arn = client
        .describe_stream_consumer()
        .consumer_arn(&arns[3])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let description = by_arn
        .consumer_description()
        .unwrap_or_else(|| panic!("no description"));
    assert_eq!(description.consumer_name(), "app-03");
    assert_eq!(description.consumer_status(), &ConsumerStatus::Active);
    assert_eq!(description.stream_arn(), stream_arn);
    let summary = client
        .describe_stream_summary()
        .stream_name("fanned")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        summary
            .stream_description_summary()
            .and_then(|s| s.consumer_count()),
        Some(20)
    );

    client
        .deregister_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name("app-03")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let gone = client
        .describe_stream_consumer()
        .consumer_arn(&arns[3])
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("ResourceNotFoundException"));
    server.shutdown().await;
}

/// SubscribeToShard through the SDK: the records already in the shard, then those
/// put while subscribed, pushed as events in order, each event's continuation
/// number being its last record's.
#[tokio::test(flavor = "multi_thread")]
async fn subscribe_to_shard_pushes_stored_then_new_records_in_order() {
    use aws_sdk_kinesis::types::{StartingPosition, SubscribeToShardEventStream};
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "pushed", 1).await;
    let put = async |range: std::ops::Range<u32>| {
        for i in range {
            client
                .put_record()
                .stream_name("pushed")
                .partition_key("k")
                .data(Blob::new(format!("event {i:03}")))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
        }
    };
    put(0..50).await;
    let consumer = client
        .register_stream_consumer()
        .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/pushed")
        .consumer_name("fan")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let consumer_arn = consumer
        .consumer()
        .map(|c| c.consumer_arn().to_owned())
        .unwrap_or_default();
    let mut subscription = client
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id("shardId-000000000000")
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::TrimHorizon)
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut seen = Vec::new();
    let mut put_more = true;
    while seen.len() < 80 {
        let Ok(received) =
            tokio::time::timeout(Duration::from_secs(10), subscription.event_stream.recv()).await
        else {
            panic!("no event within 10 s after {} records", seen.len());
        };
        let event = received
            .unwrap_or_else(|e| panic!("{e:?}"))
            .unwrap_or_else(|| panic!("the subscription ended after {} records", seen.len()));
        let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event else {
            panic!("unexpected event {event:?}");
        };
        if let Some(last) = event.records().last() {
            assert_eq!(event.continuation_sequence_number(), last.sequence_number());
        }
        seen.extend(
            event
                .records()
                .iter()
                .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()),
        );
        if put_more && seen.len() >= 50 {
            put_more = false;
            put(50..80).await;
        }
    }
    let expected: Vec<String> = (0..80).map(|i| format!("event {i:03}")).collect();
    assert_eq!(seen, expected);
    drop(subscription);
    server.shutdown().await;
}

/// The Rust SDK's `subscribe_to_shard` across a reshard: the parent's subscription
/// pushes its records, ends with an event naming both children once the split closed
/// it, and subscriptions to the children push what was written after the split.
/// A second subscription to the same shard while the first is young is refused.
#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_follow_a_split_from_parent_to_children_and_one_is_live_per_shard() {
    use aws_sdk_kinesis::types::{StartingPosition, SubscribeToShardEventStream};
    let server = start_server(test_server_config()).await;
    let client = kinesis_client(&server.endpoint_url());
    create(&client, "split", 1).await;
    let put = async |range: std::ops::Range<u32>| {
        for i in range {
            client
                .put_record()
                .stream_name("split")
                .partition_key(format!("key {i}"))
                .data(Blob::new(format!("event {i:03}")))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
        }
    };
    put(0..20).await;
    let register = async |name: &str| {
        client
            .register_stream_consumer()
            .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/split")
            .consumer_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .consumer()
            .map(|c| c.consumer_arn().to_owned())
            .unwrap_or_default()
    };
    let consumer_arn = register("follower").await;
    let subscribe = async |consumer: &str, shard: &str| {
        client
            .subscribe_to_shard()
            .consumer_arn(consumer)
            .shard_id(shard)
            .starting_position(
                StartingPosition::builder()
                    .r#type(ShardIteratorType::TrimHorizon)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .send()
            .await
    };
    // Reads one subscription until it ends; its records and the children it named.
    let drain = async |consumer: &str, shard: &str| {
        let mut subscription = subscribe(consumer, shard)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut records = Vec::new();
        loop {
            let Ok(received) =
                tokio::time::timeout(Duration::from_secs(10), subscription.event_stream.recv())
                    .await
            else {
                panic!("{shard}: no event within 10 s");
            };
            let received = received.unwrap_or_else(|e| panic!("{e:?}"));
            let Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) = received else {
                panic!("{shard}: ended without naming its children");
            };
            records.extend(
                event
                    .records()
                    .iter()
                    .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()),
            );
            if !event.child_shards().is_empty() {
                let children: Vec<String> = event
                    .child_shards()
                    .iter()
                    .map(|c| c.shard_id().to_owned())
                    .collect();
                return (records, children);
            }
        }
    };
    let parent = subscribe(&consumer_arn, "shardId-000000000000")
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let refused = subscribe(&consumer_arn, "shardId-000000000000")
        .await
        .unwrap_err();
    assert_eq!(
        refused.as_service_error().and_then(|e| e.meta().code()),
        Some("ResourceInUseException")
    );
    drop(parent);
    client
        .split_shard()
        .stream_name("split")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    put(20..40).await;
    // Another consumer-shard pair is its own subscription: a fresh consumer reads the
    // parent while the first consumer's young subscription would still refuse.
    let second_arn = register("second").await;
    let (mut seen, children) = drain(&second_arn, "shardId-000000000000").await;
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
    let expected_parent: Vec<String> = (0..20).map(|i| format!("event {i:03}")).collect();
    assert_eq!(
        seen, expected_parent,
        "the parent holds what came before the split"
    );
    for child in &children {
        let mut subscription = subscribe(&second_arn, child)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        // Everything a child holds is stored before the subscription: the events
        // carry it, and the first empty one (a heartbeat) says there is no more.
        loop {
            let Ok(received) =
                tokio::time::timeout(Duration::from_secs(10), subscription.event_stream.recv())
                    .await
            else {
                panic!("{child}: no event within 10 s");
            };
            let received = received.unwrap_or_else(|e| panic!("{e:?}"));
            let Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) = received else {
                panic!("{child}: ended");
            };
            if event.records().is_empty() {
                break;
            }
            seen.extend(
                event
                    .records()
                    .iter()
                    .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned()),
            );
        }
    }
    let mut after: Vec<String> = seen[20..].to_vec();
    after.sort();
    let expected_after: Vec<String> = (20..40).map(|i| format!("event {i:03}")).collect();
    assert_eq!(after, expected_after, "the children hold what came after");
    server.shutdown().await;
}
