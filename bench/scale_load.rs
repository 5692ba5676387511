//! Scale benchmark: how the agent's cost grows with shards and with files. Runs
//! `shardcar run` against `shardcar server --no-limits`, both as processes, and prints
//! two tables in one run (through `bench/scale.sh`):
//!
//! - Shards: 1 GB (by default) of 200-byte lines in 10 files, read from the start,
//!   into a 4-shard and a 500-shard stream with the default in-flight budget. Done when
//!   every line is acknowledged (the agent's delivered-records counter).
//! - Files: 10, 1,000 and 10,000 tracked files, first idle (nothing written), then
//!   appended to at 5,000 lines per second in all, round robin. CPU is the agent's
//!   over each phase; a row ends when every line written is acknowledged.
//!
//! With a TLS-terminating server (`--tls-self-signed`) each shard row runs over HTTPS
//! too; without it the TLS rows say so.

#[path = "agent_files.rs"]
mod agent_files;
#[path = "metered_agent.rs"]
mod metered_agent;
#[path = "process.rs"]
mod process;
#[path = "server_process.rs"]
mod server_process;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use agent_files::{acknowledged, write_files};
use metered_agent::Agent;
use server_process::{ServerProcess, start_server};

fn agent(bin: &str, dir: &Path, endpoint: &str, include: &str, extra: &str) -> Agent {
    metered_agent::spawn(
        bin,
        dir,
        &format!(
            "[kinesis]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n{extra}\n[[flows]]\nname = \"bench\"\nstream = \"bench\"\nstart_at = \"start\"\ninclude = [\"{include}\"]\n[flows.throttle]\nenabled = false\n"
        ),
    )
}

fn wait_acknowledged(dir: &Path, total: u64, within: Duration) -> bool {
    let start = Instant::now();
    while acknowledged(dir) < total {
        if start.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

struct Server {
    /// Held for its lifetime: dropping it stops the server.
    _process: ServerProcess,
    /// The endpoint and the agent config lines that reach it.
    endpoint: String,
    agent_extra: String,
}

fn server(bin: &str, shards: u32, tls_dir: Option<&Path>) -> Option<Server> {
    let stream = format!("bench:{shards}");
    let mut args = vec!["--no-limits", "--create-stream", stream.as_str()];
    let tls_arg;
    if let Some(dir) = tls_dir {
        tls_arg = dir.display().to_string();
        args.extend(["--tls-self-signed", tls_arg.as_str()]);
    }
    let process = start_server(bin, "127.0.0.1:0", &args);
    let mut endpoint = process.endpoint.clone();
    let mut agent_extra = String::new();
    if let Some(dir) = tls_dir {
        let ca = dir.join("ca.pem");
        if !ca.exists() {
            return None;
        }
        endpoint = endpoint.replacen("http://", "https://", 1);
        agent_extra = format!("ca_file = \"{}\"\n", ca.display());
    }
    Some(Server {
        _process: process,
        endpoint,
        agent_extra,
    })
}

fn shards_row(bin: &str, megabytes: u64, shards: u32, tls: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let tls_dir = dir.path().join("tls");
    let Some(server) = server(bin, shards, tls.then_some(tls_dir.as_path())) else {
        println!("{shards} | on | the server did not write a CA | | | | |");
        return;
    };
    let total = write_files(&logs, 10, megabytes * 1_000_000 / 10);
    let start = Instant::now();
    let agent = agent(
        bin,
        dir.path(),
        &server.endpoint,
        &format!("{}/*.log", logs.display()),
        &server.agent_extra,
    );
    // Done when every line is acknowledged: the agent's delivered-records counter,
    // read every 200 ms (the checkpoint file is written once a second, too coarse
    // for a run of a few seconds).
    let lines = (total / 200) as f64;
    let mut cpu = 0.0;
    while agent.counter("shardcar_flow_delivered_records_total") < lines {
        cpu = process::cpu_seconds(Some(agent.pid()));
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "did not finish"
        );
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu.max(process::cpu_seconds(Some(agent.pid())));
    let rss = process::status_kib(Some(agent.pid()), "VmHWM:");
    let user_records = agent.counter("shardcar_flow_records_total");
    let kinesis_records = agent.counter("shardcar_kinesis_records_total");
    let calls = agent.counter("shardcar_put_requests_total");
    let gb = total as f64 / 1e9;
    println!(
        "{shards} | {} | {:.1} | {:.2} | {:.1} | {:.0} | {:.0} |",
        if tls { "on" } else { "off" },
        total as f64 / 1e6 / secs,
        cpu / gb,
        rss as f64 / 1024.0,
        user_records / kinesis_records.max(1.0),
        calls,
    );
    drop(agent);
    drop(server);
}

/// Appends `rate` lines per second in all, round robin over `files`, for `seconds`;
/// returns the bytes written.
fn append_round_robin(logs: &Path, files: usize, rate: u64, seconds: u64) -> u64 {
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let line = format!("{}\n", "y".repeat(150));
    let start = Instant::now();
    let mut next = 0usize;
    let mut written = 0u64;
    for round in 0..seconds * 100 {
        for _ in 0..per_tick {
            let path = logs.join(format!("f{next:05}.log"));
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .expect("open");
            file.write_all(line.as_bytes()).expect("append");
            written += line.len() as u64;
            next = (next + 1) % files;
        }
        let due = start + tick * (round as u32 + 1);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    written
}

fn files_row(bin: &str, files: usize, seconds: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("many");
    std::fs::create_dir_all(&logs).expect("dir");
    let mut total = 0u64;
    for f in 0..files {
        let first = format!("file {f} first line\n");
        std::fs::write(logs.join(format!("f{f:05}.log")), &first).expect("write");
        total += first.len() as u64;
    }
    let Some(server) = server(bin, 4, None) else {
        return;
    };
    let agent = agent(
        bin,
        dir.path(),
        &server.endpoint,
        &format!("{}/*.log", logs.display()),
        "",
    );
    if !wait_acknowledged(dir.path(), total, Duration::from_secs(120)) {
        println!("{files} | the first lines were not all acknowledged within 120 s | | | |");
        return;
    }
    // Settled: the first reads and checkpoint writes are done.
    std::thread::sleep(Duration::from_secs(2));
    let idle_from = process::cpu_seconds(Some(agent.pid()));
    std::thread::sleep(Duration::from_secs(seconds));
    let idle = (process::cpu_seconds(Some(agent.pid())) - idle_from) / seconds as f64;

    let busy_from = process::cpu_seconds(Some(agent.pid()));
    let rate = 5_000;
    total += append_round_robin(&logs, files, rate, seconds);
    let busy = (process::cpu_seconds(Some(agent.pid())) - busy_from) / seconds as f64;
    let delivered = wait_acknowledged(dir.path(), total, Duration::from_secs(60));
    println!(
        "{files} | {:.2}% | {:.1}% | {:.1} | {} |",
        idle * 100.0,
        busy * 100.0,
        process::status_kib(Some(agent.pid()), "VmHWM:") as f64 / 1024.0,
        if delivered { "yes" } else { "NO" },
    );
    drop(agent);
    drop(server);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bins: Vec<String> = args
        .next()
        .expect("usage: scale_load SHARDCAR_BINARY[,BEFORE_BINARY] [megabytes] [seconds per phase]")
        .split(',')
        .map(str::to_owned)
        .collect();
    let megabytes: u64 = args.next().and_then(|m| m.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    // "shards" or "files" runs one table only.
    let only = args.next().unwrap_or_default();
    // With two binaries, each row runs both in turn: one run, one machine state.
    let label = |i: usize| match (bins.len(), i) {
        (1, _) => String::new(),
        (_, 0) => "after | ".to_owned(),
        _ => "before | ".to_owned(),
    };
    let build_head = if bins.len() > 1 {
        ("build | ", "---|")
    } else {
        ("", "")
    };

    if only != "files" {
        shards_table(&bins, megabytes, &label, build_head);
    }
    if only != "shards" {
        files_table(&bins, seconds, &label, build_head);
    }
}

fn shards_table(
    bins: &[String],
    megabytes: u64,
    label: &dyn Fn(usize) -> String,
    build_head: (&str, &str),
) {
    println!(
        "Shards: {megabytes} MB of 200-byte lines in 10 files, default budget, server --no-limits"
    );
    println!();
    println!(
        "| {}shards | TLS | MB/s | agent CPU-s/GB | peak RSS MiB | records per aggregate | PutRecords calls |",
        build_head.0
    );
    println!("|{}---:|---|---:|---:|---:|---:|---:|", build_head.1);
    for shards in [4, 500] {
        for on in [false, true] {
            for (i, bin) in bins.iter().enumerate() {
                print!("| {}", label(i));
                if on && !server_process::has_tls(bin) {
                    println!("{shards} | on | not run: this server has no TLS | | | | |");
                    continue;
                }
                shards_row(bin, megabytes, shards, on);
            }
        }
    }
}

fn files_table(
    bins: &[String],
    seconds: u64,
    label: &dyn Fn(usize) -> String,
    build_head: (&str, &str),
) {
    println!();
    println!(
        "Files: {seconds} s idle, then {seconds} s at 5,000 lines/s in all (151-byte lines), 4 shards"
    );
    println!();
    println!(
        "| {}files | idle CPU (of a core) | CPU at 5,000 lines/s | peak RSS MiB | every line acknowledged |",
        build_head.0
    );
    println!("|{}---:|---:|---:|---:|---|", build_head.1);
    for files in [10, 1_000, 10_000] {
        for (i, bin) in bins.iter().enumerate() {
            print!("| {}", label(i));
            files_row(bin, files, seconds);
        }
    }
}
