//! End-to-end agent benchmark: files on disk -> `shardcar run` -> `shardcar server
//! --no-limits`, both as processes. Run through `bench/agent.sh`; prints tables.
//!
//! Throughput: 10 files of 200-byte lines (1 GB in all by default) read from the
//! start; done when the checkpoints reach every file's end (everything acknowledged).
//! Memory with 1,000 tracked files. Latency at light load: line written -> arrival
//! time at the server.

#[path = "agent_files.rs"]
mod agent_files;
#[path = "metered_agent.rs"]
mod metered_agent;
#[path = "process.rs"]
mod process;
#[path = "server_process.rs"]
mod server_process;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_files::{acknowledged, write_files};
use metered_agent::Agent;
use server_process::{ServerProcess, start_server};
use shardcar::config::KinesisConfig;

fn server(bin: &str) -> ServerProcess {
    start_server(
        bin,
        "127.0.0.1:0",
        &["--no-limits", "--create-stream", "bench:4"],
    )
}

fn agent(bin: &str, dir: &Path, endpoint: &str, include: &str) -> Agent {
    metered_agent::spawn(
        bin,
        dir,
        &format!(
            "[kinesis]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n[[flows]]\nname = \"bench\"\nstream = \"bench\"\nstart_at = \"start\"\ninclude = [\"{include}\"]\n[flows.throttle]\nenabled = false\n"
        ),
    )
}

fn throughput(bin: &str, megabytes: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let total = write_files(&logs, 10, megabytes * 1_000_000 / 10);
    let server = server(bin);
    let endpoint = server.endpoint.clone();
    let start = Instant::now();
    let agent = agent(
        bin,
        dir.path(),
        &endpoint,
        &format!("{}/*.log", logs.display()),
    );
    let pid = agent.pid();
    let mut cpu = 0.0;
    while acknowledged(dir.path()) < total {
        cpu = process::cpu_seconds(Some(pid));
        std::thread::sleep(Duration::from_millis(100));
        assert!(start.elapsed() < Duration::from_secs(900), "did not finish");
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu.max(process::cpu_seconds(Some(pid)));
    let rss = process::status_kib(Some(pid), "VmHWM:");
    let server_cpu = process::cpu_seconds(Some(server.child.id()));
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| data | {:.2} GB in 10 files of 200-byte lines |",
        total as f64 / 1e9
    );
    println!(
        "| lines/s (to acknowledged) | {:.0} |",
        total as f64 / 200.0 / secs
    );
    println!("| MB/s | {:.1} |", total as f64 / 1e6 / secs);
    println!(
        "| agent CPU-seconds per GB | {:.2} |",
        cpu / (total as f64 / 1e9)
    );
    println!(
        "| server CPU-seconds per GB | {:.2} |",
        server_cpu / (total as f64 / 1e9)
    );
    println!(
        "| agent peak RSS (default settings) | {:.1} MiB |",
        rss as f64 / 1024.0
    );
    drop(agent);
    drop(server);
}

fn many_files(bin: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("many");
    std::fs::create_dir_all(&logs).expect("dir");
    for f in 0..1000 {
        std::fs::write(
            logs.join(format!("f{f:04}.log")),
            format!("file {f} first line\n"),
        )
        .expect("write");
    }
    let server = server(bin);
    let endpoint = server.endpoint.clone();
    let agent = agent(
        bin,
        dir.path(),
        &endpoint,
        &format!("{}/*.log", logs.display()),
    );
    let start = Instant::now();
    while acknowledged(dir.path()) < 1000 * 20 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // A while of appending to all of them.
    for round in 0..5 {
        for f in 0..1000 {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(logs.join(format!("f{f:04}.log")))
                .expect("open");
            writeln!(file, "file {f} round {round} {}", "z".repeat(150)).expect("append");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "| agent peak RSS with 1,000 tracked files | {:.1} MiB |",
        process::status_kib(Some(agent.pid()), "VmHWM:") as f64 / 1024.0
    );
    drop(agent);
    drop(server);
}

async fn latency(bin: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("dir");
    let path: PathBuf = logs.join("app.log");
    std::fs::write(&path, b"").expect("create");
    let server = server(bin);
    let endpoint = server.endpoint.clone();
    let agent = agent(bin, dir.path(), &endpoint, &path.display().to_string());
    std::thread::sleep(Duration::from_secs(1));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    let lines = 200;
    for i in 0..lines {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_millis();
        writeln!(file, "latency {i} t={now}").expect("write");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let settings = KinesisConfig {
        endpoint_url: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        ..KinesisConfig::default()
    };
    let client = shardcar::aws::kinesis_client(&settings, shardcar::aws::Purpose::General)
        .await
        .expect("client");
    let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
    let reader = tokio::spawn(async move {
        shardcar::consume::consume(
            &client,
            "bench",
            shardcar::consume::ConsumeOptions {
                from: shardcar::consume::StartFrom::TrimHorizon,
                follow: false,
                efo: false,
            },
            tx,
        )
        .await
    });
    let mut latencies = Vec::new();
    while let Some(record) = rx.recv().await {
        let text = String::from_utf8_lossy(&record.data).into_owned();
        if let Some(t) = text.split("t=").nth(1).and_then(|t| t.parse::<i64>().ok()) {
            latencies.push(record.arrival_ms - t);
        }
    }
    let _ = reader.await;
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or(-1)
    };
    println!(
        "| line written -> readable at the server, 20 lines/s: p50 / p99 / max | {} / {} / {} ms ({} lines) |",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies.len()
    );
    drop(agent);
    drop(server);
}

#[tokio::main]
async fn main() {
    let bin = std::env::args()
        .nth(1)
        .expect("usage: agent_load SHARDCAR_BINARY [megabytes]");
    let megabytes = std::env::args()
        .nth(2)
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    throughput(&bin, megabytes);
    many_files(&bin);
    latency(&bin).await;
}
