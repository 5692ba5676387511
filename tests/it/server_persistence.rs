//! `--data-dir`: acknowledged records survive `kill -9` of the server.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::support::{ServerProcess, kinesis_client};

async fn read_shard(client: &aws_sdk_kinesis::Client, shard_id: &str) -> Vec<(String, Vec<u8>)> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name("durable")
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut out = Vec::new();
    loop {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap();
        out.extend(
            page.records()
                .iter()
                .map(|r| (r.sequence_number().to_owned(), r.data().as_ref().to_vec())),
        );
        match page.next_shard_iterator {
            Some(next) if !page.records().is_empty() => iterator = next,
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_records_survive_kill_9_and_sequence_numbers_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let server = ServerProcess::start(&[
        "--data-dir",
        data_dir,
        "--create-stream",
        "durable:2",
        "--no-limits",
    ]);
    let client = kinesis_client(&server.endpoint);
    let mut acknowledged = Vec::new();
    for batch in 0..10 {
        let entries: Vec<PutRecordsRequestEntry> = (0..500)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{i}"))
                    .data(Blob::new(format!("batch {batch} record {i}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let result = client
            .put_records()
            .stream_name("durable")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(result.failed_record_count, Some(0));
        acknowledged.extend(result.records().iter().map(|r| {
            (
                r.shard_id().unwrap().to_owned(),
                r.sequence_number().unwrap().to_owned(),
            )
        }));
    }
    // Kill right after the last acknowledgement: no flush at shutdown can help.
    server.kill_9();

    let restarted = ServerProcess::start(&[
        "--data-dir",
        data_dir,
        "--create-stream",
        "durable:2",
        "--no-limits",
    ]);
    let client = kinesis_client(&restarted.endpoint);
    let mut stored = Vec::new();
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        stored.extend(
            read_shard(&client, shard)
                .await
                .into_iter()
                .map(|(seq, _)| (shard.to_owned(), seq)),
        );
    }
    acknowledged.sort();
    stored.sort();
    assert_eq!(stored.len(), 5000);
    assert_eq!(
        stored, acknowledged,
        "every acknowledged record is back, under its sequence number"
    );

    let after = client
        .put_record()
        .stream_name("durable")
        .partition_key("key-0")
        .data(Blob::new("after restart"))
        .send()
        .await
        .unwrap();
    let before_max = acknowledged
        .iter()
        .filter(|(s, _)| *s == after.shard_id)
        .map(|(_, q)| q.clone())
        .max()
        .unwrap();
    assert!(after.sequence_number > before_max);
}

#[tokio::test(flavor = "multi_thread")]
async fn resharded_streams_and_retention_come_back_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let server = ServerProcess::start(&[
        "--data-dir",
        data_dir,
        "--create-stream",
        "durable:1",
        "--no-limits",
        "--create-delay-ms",
        "0",
    ]);
    let client = kinesis_client(&server.endpoint);
    client
        .put_record()
        .stream_name("durable")
        .partition_key("k")
        .data(Blob::new("in parent"))
        .send()
        .await
        .unwrap();
    client
        .split_shard()
        .stream_name("durable")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    client
        .increase_stream_retention_period()
        .stream_name("durable")
        .retention_period_hours(72)
        .send()
        .await
        .unwrap();
    server.kill_9();

    let restarted = ServerProcess::start(&["--data-dir", data_dir, "--no-limits"]);
    let client = kinesis_client(&restarted.endpoint);
    let described = client
        .describe_stream()
        .stream_name("durable")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(described.retention_period_hours, 72);
    assert_eq!(described.shards.len(), 3);
    assert!(
        described.shards[0]
            .sequence_number_range
            .as_ref()
            .unwrap()
            .ending_sequence_number
            .is_some()
    );
    assert_eq!(read_shard(&client, "shardId-000000000000").await.len(), 1);
    let child = client
        .put_record()
        .stream_name("durable")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_ne!(child.shard_id, "shardId-000000000000");
}

/// Each region a client is configured for is its own namespace of streams, as on
/// AWS: the same name in two regions is two streams with their own ARNs and records,
/// and with `--data-dir` both come back after a kill -9.
#[tokio::test(flavor = "multi_thread")]
async fn each_region_is_its_own_namespace_and_survives_a_restart() {
    use crate::support::kinesis_client_in;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let args = [
        "--data-dir",
        data_dir,
        "--no-limits",
        "--create-delay-ms",
        "0",
    ];
    let server = ServerProcess::start(&args);
    let east = kinesis_client_in(&server.endpoint, "us-east-1");
    let west = kinesis_client_in(&server.endpoint, "eu-west-1");
    for (client, shards) in [(&east, 1), (&west, 3)] {
        client
            .create_stream()
            .stream_name("durable")
            .shard_count(shards)
            .send()
            .await
            .unwrap();
    }
    for (client, text) in [(&east, "east"), (&west, "west")] {
        client
            .put_record()
            .stream_name("durable")
            .partition_key("k")
            .explicit_hash_key("0")
            .data(Blob::new(text))
            .send()
            .await
            .unwrap();
    }
    let check = async |server: &ServerProcess| {
        let east = kinesis_client_in(&server.endpoint, "us-east-1");
        let west = kinesis_client_in(&server.endpoint, "eu-west-1");
        let summary = |client: aws_sdk_kinesis::Client| async move {
            client
                .describe_stream_summary()
                .stream_name("durable")
                .send()
                .await
                .unwrap()
                .stream_description_summary
                .unwrap()
        };
        let (e, w) = (summary(east.clone()).await, summary(west.clone()).await);
        assert_eq!(
            e.stream_arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/durable"
        );
        assert_eq!(
            w.stream_arn,
            "arn:aws:kinesis:eu-west-1:000000000000:stream/durable"
        );
        assert_eq!((e.open_shard_count, w.open_shard_count), (1, 3));
        let data = |records: Vec<(String, Vec<u8>)>| {
            records.into_iter().map(|(_, d)| d).collect::<Vec<_>>()
        };
        assert_eq!(
            data(read_shard(&east, "shardId-000000000000").await),
            [b"east".to_vec()]
        );
        assert_eq!(
            data(read_shard(&west, "shardId-000000000000").await),
            [b"west".to_vec()]
        );
        let other = kinesis_client_in(&server.endpoint, "ap-south-1");
        let names = other.list_streams().send().await.unwrap().stream_names;
        assert!(names.is_empty(), "{names:?}");
    };
    check(&server).await;
    server.kill_9();
    let restarted = ServerProcess::start(&args);
    check(&restarted).await;
}
