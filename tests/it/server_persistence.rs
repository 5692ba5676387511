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
