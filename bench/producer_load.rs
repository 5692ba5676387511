//! End-to-end producer benchmark against `shardcar server` running as its own process.
//! Run through `bench/producer.sh`; prints one markdown table per scenario.
//!
//! Scenarios: raw throughput (server --no-limits, throttle off), per-shard
//! utilisation under real limits (aggregation on and off), send->ack latency at
//! moderate load, and memory at steady state and through a 30 s server outage.

#[path = "process.rs"]
mod process;
#[path = "server_process.rs"]
mod server_process;

use std::time::{Duration, Instant};

use server_process::{ServerProcess, start_server};
use shardcar::config::KinesisConfig;
use shardcar::kinesis::UserRecord;
use shardcar::producer::{Producer, ProducerConfig};

/// Records as a source would hand them over: a fresh partition key string each, data
/// from a pre-built pool (so the benchmark measures the producer, not the generator).
fn record(i: u64, bytes: usize) -> UserRecord {
    use std::sync::OnceLock;
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    static DATA: OnceLock<Vec<bytes::Bytes>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        (0..65_536u128)
            .map(|k| {
                format!(
                    "{:032x}",
                    k.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
                )
            })
            .collect()
    });
    let data = DATA.get_or_init(|| {
        [100usize, 200]
            .iter()
            .map(|&n| {
                bytes::Bytes::from((0..n).map(|j| b'a' + (j % 26) as u8).collect::<Vec<u8>>())
            })
            .collect()
    });
    let payload = if bytes <= 100 { &data[0] } else { &data[1] };
    UserRecord::new(keys[(i % 65_536) as usize].clone(), payload.clone())
}

async fn client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let settings = KinesisConfig {
        endpoint_url: Some(endpoint.to_owned()),
        ..KinesisConfig::default()
    };
    shardcar::aws::kinesis_client(&settings, shardcar::aws::Purpose::Producer)
        .await
        .expect("client")
}

/// Raw speed: as fast as the producer and the server can go on two cores, with records
/// handed over one `send` at a time or 500 per `send_batch`.
async fn throughput(bin: &str, records: u64) {
    let server = start_server(
        bin,
        "127.0.0.1:0",
        &[
            "--no-limits",
            "--create-stream",
            "fast:4",
            "--create-stream",
            "batched:4",
        ],
    );
    println!(
        "| scenario | records | seconds | records/s | MB/s (pk+data) | producer CPU-s per GB | aggregation ratio | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    throughput_run(&server, "fast", records, 1).await;
    throughput_run(&server, "batched", records, 500).await;
}

async fn throughput_run(server: &ServerProcess, stream: &str, records: u64, batch: u64) {
    // Peak RSS per run: 5 resets the process's high-water mark.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut config = ProducerConfig::new(stream);
    config.throttle.enabled = false;
    let (handle, mut acks) = Producer::start::<()>(config, client(&server.endpoint).await);
    let cpu_before = process::cpu_seconds(None);
    let start = Instant::now();
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move {
            if batch == 1 {
                for i in 0..records {
                    handle.send(record(i, 200), ()).await.expect("send");
                }
            } else {
                for first in (0..records).step_by(batch as usize) {
                    let last = (first + batch).min(records);
                    let part = (first..last).map(|i| (record(i, 200), ()));
                    handle.send_batch(part).await.expect("send_batch");
                }
            }
        }
    });
    let mut acked = 0u64;
    while acked < records {
        acked += acks.recv().await.expect("acks").len() as u64;
    }
    sender.await.expect("sender");
    let secs = start.elapsed().as_secs_f64();
    let cpu = process::cpu_seconds(None) - cpu_before;
    let stats = handle.stats();
    let gb = stats.user_bytes as f64 / 1e9;
    let how = if batch == 1 {
        "send".to_owned()
    } else {
        format!("send_batch of {batch}")
    };
    println!(
        "| --no-limits, 4 shards, 200 B, {how} | {records} | {secs:.2} | {:.0} | {:.1} | {:.2} | {:.0} | {:.1} |",
        records as f64 / secs,
        stats.user_bytes as f64 / secs / 1e6,
        cpu / gb,
        stats.user_records as f64 / stats.kinesis_records.max(1) as f64,
        process::status_kib(None, "VmHWM:") as f64 / 1024.0
    );
    handle.shutdown(Duration::from_secs(5)).await;
}

/// Per-shard utilisation of the write limits: offered load above capacity, measured
/// over the steady state after a warm-up.
async fn utilisation(
    bin: &str,
    aggregation: bool,
    record_bytes: usize,
    warmup: Duration,
    measure: Duration,
) {
    let server = start_server(bin, "127.0.0.1:0", &["--create-stream", "lim:4"]);
    let mut config = ProducerConfig::new("lim");
    config.aggregation.enabled = aggregation;
    let (handle, mut acks) = Producer::start::<()>(config, client(&server.endpoint).await);
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move {
            let mut i = 0;
            loop {
                if handle.send(record(i, record_bytes), ()).await.is_err() {
                    return;
                }
                i += 1;
            }
        }
    });
    let drain = tokio::spawn(async move { while acks.recv().await.is_some() {} });
    tokio::time::sleep(warmup).await;
    let before = handle.stats();
    tokio::time::sleep(measure).await;
    let after = handle.stats();
    let secs = measure.as_secs_f64();
    let bytes_per_shard = (after.kinesis_bytes - before.kinesis_bytes) as f64 / secs / 4.0;
    let records_per_shard = (after.kinesis_records - before.kinesis_records) as f64 / secs / 4.0;
    let sent = after.entries_sent - before.entries_sent;
    let throttled = after.throttled_entries - before.throttled_entries;
    println!(
        "| limits on, 4 shards, {record_bytes} B, aggregation {} | {:.0} | {:.1}% | {:.0} | {:.1}% | {:.2}% |",
        if aggregation { "on" } else { "off" },
        bytes_per_shard,
        bytes_per_shard / 1_048_576.0 * 100.0,
        records_per_shard,
        records_per_shard / 1000.0 * 100.0,
        throttled as f64 / sent.max(1) as f64 * 100.0
    );
    sender.abort();
    handle.shutdown(Duration::from_secs(2)).await;
    drain.abort();
    drop(server);
}

/// Send->ack latency at a moderate, steady load.
async fn latency(bin: &str, per_second: u64, seconds: u64) {
    let server = start_server(bin, "127.0.0.1:0", &["--create-stream", "lat:4"]);
    let (handle, mut acks) =
        Producer::start::<()>(ProducerConfig::new("lat"), client(&server.endpoint).await);
    let total = per_second * seconds;
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let per_tick = per_second / 100;
            let mut i = 0;
            while i < total {
                tick.tick().await;
                for _ in 0..per_tick {
                    handle.send(record(i, 200), ()).await.expect("send");
                    i += 1;
                }
            }
        }
    });
    let mut latencies = Vec::with_capacity(total as usize);
    while (latencies.len() as u64) < total {
        latencies.extend(
            acks.recv()
                .await
                .expect("acks")
                .into_iter()
                .map(|a| a.latency),
        );
    }
    sender.await.expect("sender");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!("| scenario | records | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| {per_second} records/s of 200 B, linger_ms 100, limits on | {total} | {:.1} | {:.1} | {:.1} | {:.1} |",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    handle.shutdown(Duration::from_secs(2)).await;
}

/// Memory at steady state and through a 30 s outage, with the default 16 MiB budget.
async fn outage(bin: &str) {
    let dir = std::env::temp_dir().join(format!("shardcar-bench-{}", std::process::id()));
    let data_dir = dir.to_str().expect("utf-8 temp dir").to_owned();
    let server = start_server(
        bin,
        "127.0.0.1:0",
        &[
            "--no-limits",
            "--data-dir",
            &data_dir,
            "--create-stream",
            "out:4",
        ],
    );
    let listen = server.endpoint.trim_start_matches("http://").to_owned();
    let mut config = ProducerConfig::new("out");
    config.throttle.enabled = false;
    let budget = config.max_in_flight_bytes;
    let (handle, mut acks) = Producer::start::<()>(config, client(&server.endpoint).await);
    let sender = tokio::spawn({
        let handle = handle.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut i = 0;
            loop {
                tick.tick().await;
                // 5 MB/s offered.
                for _ in 0..250 {
                    if handle.send(record(i, 200), ()).await.is_err() {
                        return;
                    }
                    i += 1;
                }
            }
        }
    });
    let drain = tokio::spawn(async move { while acks.recv().await.is_some() {} });
    tokio::time::sleep(Duration::from_secs(10)).await;
    let steady = process::status_kib(None, "VmRSS:");
    drop(server);
    let mut peak_in_flight = 0;
    let mut peak_rss = 0;
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(30) {
        peak_in_flight = peak_in_flight.max(handle.in_flight_bytes());
        peak_rss = peak_rss.max(process::status_kib(None, "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked_before = handle.stats().acknowledged_records;
    let _server = start_server(bin, &listen, &["--no-limits", "--data-dir", &data_dir]);
    let resumed = Instant::now();
    while handle.stats().acknowledged_records == acked_before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovery = resumed.elapsed();
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| in-flight budget | {:.1} MiB |",
        budget as f64 / 1_048_576.0
    );
    println!(
        "| RSS at steady state (5 MB/s) | {:.1} MiB |",
        steady as f64 / 1024.0
    );
    println!(
        "| peak RSS during a 30 s outage | {:.1} MiB |",
        peak_rss as f64 / 1024.0
    );
    println!(
        "| peak in-flight bytes during the outage | {:.1} MiB |",
        peak_in_flight as f64 / 1_048_576.0
    );
    println!(
        "| first ack after the server came back | {:.2} s |",
        recovery.as_secs_f64()
    );
    sender.abort();
    drain.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::main]
async fn main() {
    let bin = std::env::args()
        .nth(1)
        .expect("usage: producer_load SHARDCAR_BINARY [scenario]");
    let only = std::env::args().nth(2);
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if run("throughput") {
        throughput(&bin, 2_000_000).await;
        println!();
    }
    if run("utilisation") {
        println!(
            "| scenario | bytes/s per shard | of 1 MiB/s | records/s per shard | of 1000/s | throttled entries |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        utilisation(
            &bin,
            true,
            200,
            Duration::from_secs(10),
            Duration::from_secs(20),
        )
        .await;
        utilisation(
            &bin,
            false,
            100,
            Duration::from_secs(10),
            Duration::from_secs(20),
        )
        .await;
        println!();
    }
    if run("latency") {
        latency(&bin, 2000, 10).await;
        println!();
    }
    if run("outage") {
        outage(&bin).await;
    }
}
