//! The demo as a user runs it, `consume` across a reshard, and live `predict`.

use std::process::Command;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType};

use crate::support::{ServerProcess, json_lines, kinesis_client, shardcar};

/// `shardcar demo ARGS`: its exit code, stdout and stderr.
fn demo(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .arg("demo")
        .args(args)
        .output()
        .expect("run demo");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_demo_proves_nothing_was_lost() {
    let (code, stdout, stderr) = demo(&["--lines", "20000"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("| lost | 0 |"), "{stdout}");
    assert!(stdout.contains("| lines written | 20000 |"), "{stdout}");
    assert!(stdout.contains("OK: every record arrived."));
}

#[test]
fn the_demo_fails_when_the_server_loses_a_record() {
    let (code, stdout, stderr) = demo(&[
        "--lines",
        "5000",
        "--no-limits",
        "--fault-drop-records",
        "1",
    ]);
    // The server dropped one Kinesis record: a whole aggregate of user records.
    assert_eq!(code, Some(1), "{stdout}");
    assert!(!stdout.contains("| lost | 0 |"), "{stdout}");
    assert!(stdout.contains("FAILED:"), "{stdout}");
    assert!(stderr.contains("records were lost"), "{stderr}");
}

#[test]
fn the_firehose_demo_finds_every_record_once_in_both_buckets() {
    let (code, stdout, stderr) = demo(&["--firehose", "--lines", "20000"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| records written | 12500 | 12500 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| records in the objects | 12500 | 12500 |"),
        "{stdout}"
    );
    assert!(stdout.contains("| duplicates | 0 | 0 |"), "{stdout}");
    assert!(stdout.contains("OK: every record arrived in both buckets."));
}

#[test]
fn the_firehose_demo_fails_when_the_server_loses_a_record() {
    let (code, stdout, _) = demo(&[
        "--firehose",
        "--lines",
        "5000",
        "--no-limits",
        "--fault-drop-records",
        "1",
    ]);
    // One Kinesis record dropped: the delivery stream reading it never sees its records.
    assert_eq!(code, Some(1), "{stdout}");
    assert!(!stdout.contains("| lost | 0 | 0 |"), "{stdout}");
    assert!(stdout.contains("FAILED:"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn consume_reads_every_record_once_parents_before_children() {
    let server = ServerProcess::start(&[
        "--create-stream",
        "cs:2",
        "--no-limits",
        "--create-delay-ms",
        "0",
    ]);
    let client = kinesis_client(&server.endpoint);
    let put = async |batch: u32| {
        let entries: Vec<PutRecordsRequestEntry> = (0..200)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{}", i % 20))
                    .data(Blob::new(format!("{batch}:{i}")))
                    .build()
                    .unwrap()
            })
            .collect();
        client
            .put_records()
            .stream_name("cs")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
    };
    put(0).await;
    client
        .update_shard_count()
        .stream_name("cs")
        .target_shard_count(3)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    put(1).await;
    client
        .update_shard_count()
        .stream_name("cs")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    put(2).await;

    let endpoint = server.endpoint.clone();
    let output = tokio::task::spawn_blocking(move || {
        shardcar(&["consume", "cs", "--endpoint-url", &endpoint], b"")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 600, "every record once");
    // Per partition key, the batches come out in the order they were written.
    let mut last_batch: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for line in &lines {
        let key = line["partition_key"].as_str().unwrap().to_owned();
        let batch: u32 = line["data"]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let previous = last_batch.insert(key.clone(), batch).unwrap_or(0);
        assert!(
            batch >= previous,
            "key {key}: batch {batch} after {previous}"
        );
    }
    let limited = shardcar(
        &[
            "consume",
            "cs",
            "--endpoint-url",
            &server.endpoint,
            "--limit",
            "5",
        ],
        b"",
    );
    assert_eq!(json_lines(&limited).len(), 5);
    let bad = shardcar(
        &[
            "consume",
            "cs",
            "--endpoint-url",
            &server.endpoint,
            "--from",
            "yesterday",
        ],
        b"",
    );
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn predict_asks_a_live_stream() {
    let server = ServerProcess::start(&["--create-stream", "p:7"]);
    let vectors = crate::support::read_json("vectors/shard_prediction.json");
    let key = &vectors["partition_keys"][3];
    let output = shardcar(
        &[
            "predict",
            "p",
            key["partition_key"].as_str().unwrap(),
            "--endpoint-url",
            &server.endpoint,
        ],
        b"",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(json_lines(&output)[0]["shard_id"], key["shard_id_7"]);
    let missing = shardcar(
        &["predict", "nope", "k", "--endpoint-url", &server.endpoint],
        b"",
    );
    assert_eq!(missing.status.code(), Some(1));
}
