//! Firehose benchmark: the agent shipping to a delivery stream next to the agent
//! shipping to a Kinesis stream, and the server delivering to its S3 directory. Runs
//! `shardcar run` against `shardcar server --no-limits --s3-dir DIR`, both as
//! processes, and prints one table (through `bench/firehose.sh`):
//!
//! - Kinesis: 1 GB (by default) of 200-byte lines in 10 files into a 4-shard stream;
//!   done when every line is acknowledged.
//! - Firehose: the same files into a DirectPut delivery stream (lines packed into
//!   Firehose records); the agent's figures when every line is acknowledged, the
//!   delivery figure when every byte is in the S3 directory's objects.
//! - Kinesis as source: a delivery stream created on the stream the Kinesis row
//!   filled, reading it from the trim horizon; done when every byte is in the objects.
//!   This is the server alone: it reads its own shards, deaggregates and writes.
//!
//! Each row runs with TLS off and, when the server terminates TLS itself, on.

#[path = "agent_files.rs"]
mod agent_files;
#[path = "metered_agent.rs"]
mod metered_agent;
#[path = "process.rs"]
mod process;
#[path = "server_process.rs"]
mod server_process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_firehose::types::{
    BufferingHints, DeliveryStreamType, ExtendedS3DestinationConfiguration,
    KinesisStreamSourceConfiguration, ProcessingConfiguration, Processor, ProcessorType,
};
use shardcar::config::KinesisConfig;

use agent_files::write_files;
use metered_agent::Agent;
use server_process::{ServerProcess, start_server};

const ROLE: &str = "arn:aws:iam::000000000000:role/bench";

/// Bytes in the finished objects under `dir` (files still being written end in `.tmp`).
fn bytes_in_objects(dir: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if !entry.file_name().to_string_lossy().ends_with(".tmp") {
                total += meta.len();
            }
        }
    }
    total
}

struct Server {
    process: ServerProcess,
    /// The endpoint and the `ca_file` line that reaches it.
    endpoint: String,
    ca_line: String,
    s3: PathBuf,
}

fn server(bin: &str, dir: &Path, tls: bool) -> Option<Server> {
    let s3 = dir.join("s3");
    let s3_arg = s3.display().to_string();
    let tls_dir = dir.join("tls").display().to_string();
    let mut args = vec![
        "--no-limits",
        "--create-stream",
        "bench:4",
        "--s3-dir",
        s3_arg.as_str(),
    ];
    if tls {
        args.extend(["--tls-self-signed", tls_dir.as_str()]);
    }
    let process = start_server(bin, "127.0.0.1:0", &args);
    let mut endpoint = process.endpoint.clone();
    let mut ca_line = String::new();
    if tls {
        let ca = dir.join("tls/ca.pem");
        if !ca.exists() {
            return None;
        }
        endpoint = endpoint.replacen("http://", "https://", 1);
        ca_line = format!("ca_file = \"{}\"\n", ca.display());
    }
    Some(Server {
        process,
        endpoint,
        ca_line,
        s3,
    })
}

impl Server {
    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    fn settings(&self, dir: &Path) -> KinesisConfig {
        KinesisConfig {
            endpoint_url: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            ca_file: (!self.ca_line.is_empty()).then(|| dir.join("tls/ca.pem")),
            ..KinesisConfig::default()
        }
    }

    /// Creates delivery stream `name` into bucket `name`, flushing each second or at
    /// 128 MB, reading the stream `bench` from its trim horizon when `from_stream`
    /// (appending the newline the Kinesis flow's records do not carry, so the objects
    /// are the lines as written).
    async fn create_delivery_stream(&self, dir: &Path, name: &str, from_stream: bool) {
        let settings = self.settings(dir);
        let client = shardcar::aws::firehose_client(&settings, shardcar::aws::Purpose::General)
            .await
            .expect("firehose client");
        let mut destination = ExtendedS3DestinationConfiguration::builder()
            .role_arn(ROLE)
            .bucket_arn(format!("arn:aws:s3:::{name}"))
            .buffering_hints(
                BufferingHints::builder()
                    .interval_in_seconds(1)
                    .size_in_mbs(128)
                    .build(),
            );
        if from_stream {
            let newline = Processor::builder()
                .r#type(ProcessorType::AppendDelimiterToRecord)
                .build()
                .expect("processor");
            destination = destination.processing_configuration(
                ProcessingConfiguration::builder()
                    .enabled(true)
                    .processors(newline)
                    .build(),
            );
        }
        let destination = destination.build().expect("destination");
        let mut create = client
            .create_delivery_stream()
            .delivery_stream_name(name)
            .extended_s3_destination_configuration(destination);
        if from_stream {
            let kinesis = shardcar::aws::kinesis_client(&settings, shardcar::aws::Purpose::General)
                .await
                .expect("kinesis client");
            let arn = kinesis
                .describe_stream_summary()
                .stream_name("bench")
                .send()
                .await
                .expect("DescribeStreamSummary")
                .stream_description_summary
                .map(|s| s.stream_arn)
                .expect("a stream summary");
            create = create
                .delivery_stream_type(DeliveryStreamType::KinesisStreamAsSource)
                .kinesis_stream_source_configuration(
                    KinesisStreamSourceConfiguration::builder()
                        .kinesis_stream_arn(arn)
                        .role_arn(ROLE)
                        .build()
                        .expect("source"),
                );
        }
        create.send().await.expect("CreateDeliveryStream");
    }
}

fn agent(bin: &str, dir: &Path, server: &Server, include: &str, firehose: bool) -> Agent {
    let (section, destination) = if firehose {
        ("firehose", "delivery_stream = \"direct\"")
    } else {
        ("kinesis", "stream = \"bench\"")
    };
    metered_agent::spawn(
        bin,
        dir,
        &format!(
            "[{section}]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\n{}\n[[flows]]\nname = \"bench\"\n{destination}\nstart_at = \"start\"\ninclude = [\"{include}\"]\n[flows.throttle]\nenabled = false\n",
            server.endpoint, server.ca_line
        ),
    )
}

/// Waits until `done` holds, polling every 100 ms; the seconds it took from `start`.
fn wait_for(start: Instant, what: &str, mut done: impl FnMut() -> bool) -> f64 {
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "{what}: not done in 20 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed().as_secs_f64()
}

/// One row per destination for one server, TLS off or on.
async fn rows(bin: &str, megabytes: u64, tls: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let tls_label = if tls { "on" } else { "off" };
    let Some(server) = server(bin, dir.path(), tls) else {
        println!("| all | {tls_label} | the server did not write a CA | | | | | | |");
        return;
    };
    let total = write_files(&logs, 10, megabytes * 1_000_000 / 10);
    let include = format!("{}/*.log", logs.display());
    let gb = total as f64 / 1e9;
    let lines = (total / 200) as f64;
    server
        .create_delivery_stream(dir.path(), "direct", false)
        .await;

    for firehose in [false, true] {
        let state = dir.path().join(if firehose {
            "to-firehose"
        } else {
            "to-kinesis"
        });
        std::fs::create_dir_all(&state).expect("state dir");
        let server_cpu_from = process::cpu_seconds(Some(server.pid()));
        let start = Instant::now();
        let agent = agent(bin, &state, &server, &include, firehose);
        let mut cpu = 0.0;
        let secs = wait_for(start, "agent", || {
            cpu = process::cpu_seconds(Some(agent.pid()));
            agent.counter("shardcar_flow_delivered_records_total") >= lines
        });
        let cpu = cpu.max(process::cpu_seconds(Some(agent.pid())));
        let rss = process::status_kib(Some(agent.pid()), "VmHWM:") as f64 / 1024.0;
        let packed = agent.counter("shardcar_flow_records_total")
            / agent.counter("shardcar_kinesis_records_total").max(1.0);
        let calls = agent.counter("shardcar_put_requests_total");
        drop(agent);
        let delivery = if firehose {
            let bucket = server.s3.join("direct");
            let secs = wait_for(start, "delivery", || bytes_in_objects(&bucket) >= total);
            let server_cpu = process::cpu_seconds(Some(server.pid())) - server_cpu_from;
            format!(
                "{:.1} MB/s, {:.2} server CPU-s/GB",
                total as f64 / 1e6 / secs,
                server_cpu / gb
            )
        } else {
            "-".to_owned()
        };
        println!(
            "| agent -> {} | {tls_label} | {:.1} | {:.2} | {:.1} | {:.0} | {:.0} | {delivery} |",
            if firehose {
                "Firehose (DirectPut) -> S3 dir"
            } else {
                "Kinesis (4 shards)"
            },
            total as f64 / 1e6 / secs,
            cpu / gb,
            rss,
            packed,
            calls,
        );
    }

    // The stream holds every line now: a delivery stream reads it from the start.
    let server_cpu_from = process::cpu_seconds(Some(server.pid()));
    let start = Instant::now();
    server
        .create_delivery_stream(dir.path(), "from-stream", true)
        .await;
    let bucket = server.s3.join("from-stream");
    let secs = wait_for(start, "source delivery", || {
        bytes_in_objects(&bucket) >= total
    });
    let server_cpu = process::cpu_seconds(Some(server.pid())) - server_cpu_from;
    println!(
        "| Kinesis stream -> Firehose (source) -> S3 dir | {tls_label} | - | - | - | - | - | {:.1} MB/s, {:.2} server CPU-s/GB |",
        total as f64 / 1e6 / secs,
        server_cpu / gb
    );
}

#[tokio::main]
async fn main() {
    let bin = std::env::args()
        .nth(1)
        .expect("usage: firehose_load SHARDCAR_BINARY [megabytes]");
    let megabytes: u64 = std::env::args()
        .nth(2)
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    println!(
        "{megabytes} MB of 200-byte lines in 10 files, server --no-limits; delivery streams flush every second or at 128 MB"
    );
    println!();
    println!(
        "| path | TLS | agent MB/s | agent CPU-s/GB | agent peak RSS MiB | lines per service record | put calls | to the S3 directory |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    rows(&bin, megabytes, false).await;
    if server_process::has_tls(&bin) {
        rows(&bin, megabytes, true).await;
    } else {
        println!("| all | on | not run: this server has no TLS | | | | | |");
    }
}
