//! The agent shipping to a Firehose delivery stream of the real server, which
//! delivers objects to an S3 directory: every line once in the objects, packed many to
//! a Firehose record, and still every line once when the server fails or throttles a
//! share of the records.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_firehose::types::{BufferingHints, ExtendedS3DestinationConfiguration};
use shardcar::server::{RunningServer, ServerConfig};

use crate::agent_support::{append, lines, parse_config};
use crate::support::{eventually_explained, start_server, verifying_server_config};

struct FirehoseSetup {
    server: RunningServer,
    dir: tempfile::TempDir,
}

impl FirehoseSetup {
    /// A server delivering to `DIR/s3`, with a delivery stream "audit" writing to the
    /// bucket "logs" every second (or every MiB).
    async fn new(mut config: ServerConfig) -> FirehoseSetup {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        config.s3_dir = Some(dir.path().join("s3"));
        let server = start_server(config).await;
        let client = crate::support::firehose_client(&server.endpoint_url());
        let destination = ExtendedS3DestinationConfiguration::builder()
            .role_arn("arn:aws:iam::000000000000:role/firehose")
            .bucket_arn("arn:aws:s3:::logs")
            .buffering_hints(
                BufferingHints::builder()
                    .interval_in_seconds(1)
                    .size_in_mbs(1)
                    .build(),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .create_delivery_stream()
            .delivery_stream_name("audit")
            .extended_s3_destination_configuration(destination)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        std::fs::create_dir_all(dir.path().join("logs")).unwrap_or_else(|e| panic!("{e}"));
        FirehoseSetup { server, dir }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn config_text(&self) -> String {
        format!(
            r#"
[agent]
state_dir = "{state}"
scan_interval_ms = 100
[firehose]
endpoint_url = "{endpoint}"
region = "us-east-1"
[[flows]]
name = "audit"
delivery_stream = "audit"
start_at = "start"
include = ["{logs}/*.log"]
[flows.aggregation]
linger_ms = 100
"#,
            state = self.dir.path().join("state").display(),
            endpoint = self.server.endpoint_url(),
            logs = self.logs().display(),
        )
    }

    /// Every line of every object in the bucket, with how often it arrived.
    fn delivered(&self) -> HashMap<Vec<u8>, usize> {
        let mut counts = HashMap::new();
        for object in objects(&self.dir.path().join("s3").join("logs")) {
            assert!(
                object.ends_with(b"\n"),
                "an object ends inside a line: {} bytes",
                object.len()
            );
            for line in object.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                *counts.entry(line.to_vec()).or_insert(0) += 1;
            }
        }
        counts
    }

    async fn wait_for(&self, written: &[Vec<u8>]) -> HashMap<Vec<u8>, usize> {
        eventually_explained(Duration::from_secs(60), async || {
            let delivered = self.delivered();
            match written
                .iter()
                .filter(|l| !delivered.contains_key(*l))
                .count()
            {
                0 => Ok(delivered),
                missing => Err(format!("{missing} of {} lines missing", written.len())),
            }
        })
        .await
    }
}

/// The contents of every object file under `bucket` (temporary files excluded).
fn objects(bucket: &Path) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
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
                found.push(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    found
}

/// 100,000 lines in two files reach the objects once each, whole, and packed: the
/// agent sends a few hundred Firehose records, not a hundred thousand.
#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_thousand_lines_reach_the_delivery_streams_objects_once_each_packed() {
    let setup = FirehoseSetup::new(verifying_server_config()).await;
    let first = lines("fh-a", 50_000);
    let second = lines("fh-b", 50_000);
    append(&setup.logs().join("a.log"), &first);
    append(&setup.logs().join("b.log"), &second);
    let agent = shardcar::agent::Agent::start(
        parse_config(&setup.config_text()),
        shardcar::agent::RunOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let written: Vec<Vec<u8>> = first.iter().chain(&second).cloned().collect();
    let delivered = setup.wait_for(&written).await;
    assert_eq!(delivered.len(), written.len(), "only the lines written");
    let twice = delivered.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "lines delivered more than once");
    let stats = agent
        .producer_stats("audit")
        .unwrap_or_else(|| panic!("the flow's stats"));
    let per_record = stats.user_records as f64 / stats.kinesis_records.max(1) as f64;
    println!(
        "{} lines in {} Firehose records ({per_record:.0} per record) in {} calls",
        stats.user_records, stats.kinesis_records, stats.put_requests
    );
    assert!(
        per_record >= 100.0,
        "lines are packed into Firehose records: {per_record:.1} per record"
    );
    agent.stop().await;
}

/// With a fifth of the records failed (InternalFailure) and a tenth refused for
/// throughput (ServiceUnavailableException), every line still arrives, once: a
/// refused record is sent again and a delivered one never is.
#[tokio::test(flavor = "multi_thread")]
async fn with_failed_and_throttled_records_every_line_still_arrives_once() {
    let mut config = verifying_server_config();
    config.store.faults.internal_ratio = 0.2;
    config.store.faults.throttle_ratio = 0.1;
    let setup = FirehoseSetup::new(config).await;
    let written = lines("fh-fault", 20_000);
    append(&setup.logs().join("a.log"), &written);
    // Small records, so that there are many to fail.
    let text = setup
        .config_text()
        .replace("linger_ms = 100", "linger_ms = 20\nmax_bytes = 8192");
    let agent =
        shardcar::agent::Agent::start(parse_config(&text), shardcar::agent::RunOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let delivered = setup.wait_for(&written).await;
    assert_eq!(delivered.len(), written.len(), "only the lines written");
    let twice = delivered.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "lines delivered more than once");
    let stats = agent
        .producer_stats("audit")
        .unwrap_or_else(|| panic!("the flow's stats"));
    assert!(stats.failed_entries > 0, "some records failed: {stats:?}");
    assert!(
        stats.throttled_entries > 0,
        "some records were throttled: {stats:?}"
    );
    agent.stop().await;
}

/// The agent ships to a Kinesis stream (KPL aggregates), and a delivery stream reading
/// that stream (KinesisStreamAsSource, a newline appended to every record) delivers
/// the lines to S3. The stream is split while lines flow: the parent is read to its end
/// and its children after it, and every line arrives once.
#[tokio::test(flavor = "multi_thread")]
async fn through_a_kinesis_stream_as_source_every_line_arrives_once_across_a_split() {
    use aws_sdk_firehose::types::{
        DeliveryStreamType, KinesisStreamSourceConfiguration, ProcessingConfiguration, Processor,
        ProcessorType,
    };
    let setup = FirehoseSetup::new(verifying_server_config()).await;
    let kinesis = crate::support::kinesis_client(&setup.server.endpoint_url());
    kinesis
        .create_stream()
        .stream_name("logs")
        .shard_count(2)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let firehose = crate::support::firehose_client(&setup.server.endpoint_url());
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn("arn:aws:iam::000000000000:role/firehose")
        .bucket_arn("arn:aws:s3:::from-kinesis")
        .buffering_hints(
            BufferingHints::builder()
                .interval_in_seconds(1)
                .size_in_mbs(1)
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
        .unwrap_or_else(|e| panic!("{e}"));
    let account = setup.server.store().account_id().to_owned();
    firehose
        .create_delivery_stream()
        .delivery_stream_name("from-logs")
        .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
        .kinesis_stream_source_configuration(
            KinesisStreamSourceConfiguration::builder()
                .kinesis_stream_arn(format!("arn:aws:kinesis:us-east-1:{account}:stream/logs"))
                .role_arn("arn:aws:iam::000000000000:role/firehose")
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .extended_s3_destination_configuration(destination)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let before = lines("src-before", 50_000);
    let after = lines("src-after", 50_000);
    append(&setup.logs().join("a.log"), &before);
    let text = setup
        .config_text()
        .replace("[firehose]", "[kinesis]")
        .replace("delivery_stream = \"audit\"", "stream = \"logs\"");
    let agent =
        shardcar::agent::Agent::start(parse_config(&text), shardcar::agent::RunOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let in_bucket = |written: &[Vec<u8>]| {
        let bucket = setup.dir.path().join("s3").join("from-kinesis");
        let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
        for object in objects(&bucket) {
            for line in object.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                *counts.entry(line.to_vec()).or_insert(0) += 1;
            }
        }
        let missing = written.iter().filter(|l| !counts.contains_key(*l)).count();
        (counts, missing)
    };
    eventually_explained(Duration::from_secs(60), async || match in_bucket(&before) {
        (_, 0) => Ok(()),
        (_, missing) => Err(format!("{missing} lines missing before the split")),
    })
    .await;
    kinesis
        .split_shard()
        .stream_name("logs")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((u128::MAX / 4).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    append(&setup.logs().join("a.log"), &after);
    let written: Vec<Vec<u8>> = before.iter().chain(&after).cloned().collect();
    let counts = eventually_explained(Duration::from_secs(60), async || {
        match in_bucket(&written) {
            (counts, 0) => Ok(counts),
            (_, missing) => Err(format!("{missing} of {} lines missing", written.len())),
        }
    })
    .await;
    assert_eq!(counts.len(), written.len(), "only the lines written");
    let twice = counts.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "lines delivered more than once");
    agent.stop().await;
}
