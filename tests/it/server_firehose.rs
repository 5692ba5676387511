//! Firehose across a kill -9 of the real server binary with `--data-dir`: buffered
//! records and a Kinesis source's read position survive, so every record is delivered
//! after the restart, and only records not yet delivered before the kill can arrive
//! twice.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use aws_sdk_firehose::types::{
    BufferingHints, DeliveryStreamType, ExtendedS3DestinationConfiguration,
    KinesisStreamSourceConfiguration, ProcessingConfiguration, Processor, ProcessorType,
};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::support::{ServerProcess, eventually_explained, firehose_client, kinesis_client};

const ROLE: &str = "arn:aws:iam::000000000000:role/firehose";

fn destination(bucket: &str, interval_secs: i32) -> ExtendedS3DestinationConfiguration {
    ExtendedS3DestinationConfiguration::builder()
        .role_arn(ROLE)
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .buffering_hints(
            BufferingHints::builder()
                .interval_in_seconds(interval_secs)
                .size_in_mbs(64)
                .build(),
        )
        .processing_configuration(
            ProcessingConfiguration::builder()
                .enabled(true)
                .processors(
                    Processor::builder()
                        .r#type(ProcessorType::AppendDelimiterToRecord)
                        .build()
                        .unwrap_or_else(|e| panic!("{e}")),
                )
                .build(),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every line of every object under `bucket`, with how often it arrived.
fn delivered(bucket: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut dirs = vec![bucket.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if !entry.file_name().to_string_lossy().ends_with(".tmp") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for line in text.lines() {
                    *counts.entry(line.to_owned()).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

async fn put_source(client: &aws_sdk_kinesis::Client, tag: &str, n: usize) -> Vec<String> {
    let lines: Vec<String> = (0..n).map(|i| format!("{tag} {i:05}")).collect();
    for chunk in lines.chunks(500) {
        let entries: Vec<PutRecordsRequestEntry> = chunk
            .iter()
            .map(|line| {
                PutRecordsRequestEntry::builder()
                    .partition_key(line.clone())
                    .data(Blob::new(line.clone()))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let out = client
            .put_records()
            .stream_name("src")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(out.failed_record_count(), Some(0));
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn buffered_records_and_a_source_position_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data_dir = dir.path().join("data");
    let s3_dir = dir.path().join("s3");
    let args_owned = [
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--s3-dir".to_owned(),
        s3_dir.display().to_string(),
        "--create-stream".to_owned(),
        "src:2".to_owned(),
        "--no-limits".to_owned(),
    ];
    let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&args);
    let firehose = firehose_client(&server.endpoint);
    let kinesis = kinesis_client(&server.endpoint);
    let account = "000000000000";

    // A DirectPut stream that holds its records (15 minutes, 64 MiB).
    firehose
        .create_delivery_stream()
        .delivery_stream_name("held")
        .extended_s3_destination_configuration(destination("held", 900))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let held: Vec<String> = (0..1000).map(|i| format!("held {i:04}")).collect();
    for chunk in held.chunks(250) {
        let records: Vec<aws_sdk_firehose::types::Record> = chunk
            .iter()
            .map(|line| {
                aws_sdk_firehose::types::Record::builder()
                    .data(aws_sdk_firehose::primitives::Blob::new(line.clone()))
                    .build()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let out = firehose
            .put_record_batch()
            .delivery_stream_name("held")
            .set_records(Some(records))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(out.failed_put_count(), 0);
    }

    // A stream reading "src", delivering every second.
    firehose
        .create_delivery_stream()
        .delivery_stream_name("tail")
        .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
        .kinesis_stream_source_configuration(
            KinesisStreamSourceConfiguration::builder()
                .kinesis_stream_arn(format!("arn:aws:kinesis:us-east-1:{account}:stream/src"))
                .role_arn(ROLE)
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .extended_s3_destination_configuration(destination("tail", 1))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let first = put_source(&kinesis, "first", 2000).await;
    let tail_bucket = s3_dir.join("tail");
    eventually_explained(Duration::from_secs(30), async || {
        let got = delivered(&tail_bucket);
        match first.iter().filter(|l| !got.contains_key(*l)).count() {
            0 => Ok(()),
            missing => Err(format!("{missing} of the first records not delivered")),
        }
    })
    .await;
    // More records, then the kill: some may be read and buffered, none delivered yet.
    let second = put_source(&kinesis, "second", 2000).await;
    server.kill_9();

    let restarted = ServerProcess::start(&args);
    let firehose = firehose_client(&restarted.endpoint);
    // The held stream is still there, its records with it: deliver them now.
    let version = firehose
        .describe_delivery_stream()
        .delivery_stream_name("held")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .delivery_stream_description()
        .map(|d| d.version_id().to_owned())
        .unwrap_or_default();
    firehose
        .update_destination()
        .delivery_stream_name("held")
        .current_delivery_stream_version_id(version)
        .destination_id("destinationId-000000000001")
        .extended_s3_destination_update(
            aws_sdk_firehose::types::ExtendedS3DestinationUpdate::builder()
                .buffering_hints(
                    BufferingHints::builder()
                        .interval_in_seconds(1)
                        .size_in_mbs(64)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let held_bucket = s3_dir.join("held");
    let got = eventually_explained(Duration::from_secs(30), async || {
        let got = delivered(&held_bucket);
        match held.iter().filter(|l| !got.contains_key(*l)).count() {
            0 => Ok(got),
            missing => Err(format!("{missing} held records not delivered")),
        }
    })
    .await;
    assert_eq!(got.len(), held.len(), "only the records put");
    assert!(got.values().all(|n| *n == 1), "held records delivered once");

    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let got = eventually_explained(Duration::from_secs(30), async || {
        let got = delivered(&tail_bucket);
        match all.iter().filter(|l| !got.contains_key(*l)).count() {
            0 => Ok(got),
            missing => Err(format!("{missing} source records not delivered")),
        }
    })
    .await;
    assert_eq!(got.len(), all.len(), "only the records put");
    let first_twice = first.iter().filter(|l| got[*l] > 1).count();
    assert_eq!(
        first_twice, 0,
        "records delivered before the kill are not delivered again"
    );
    println!(
        "after the restart: {} of the second records twice",
        second.iter().filter(|l| got[*l] > 1).count()
    );
}
