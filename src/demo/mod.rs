//! `shardcar demo`: the whole system on one machine, proving that nothing is lost.
//!
//! Starts a shard server in-process, writes a realistic log (Apache combined lines
//! and multi-line stack traces) while rotating it twice, runs the agent on it, reads
//! the stream back with the consumer, and checks every record arrived.

/// Prints a line to stdout; a reader that went away (`| head`) is not an error here.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod firehose;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::agent::{Agent, RunOptions};
use crate::config::Config;
use crate::consume::{self, ConsumeOptions, StartFrom};
use crate::kinesis::limits;
use crate::server::{RunningServer, Server, ServerConfig};

const STREAM: &str = "demo";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub lines: u64,
    pub shards: u32,
    pub limits: bool,
    pub keep: bool,
    pub listen: Option<SocketAddr>,
    /// Records the server acknowledges but drops, to show the check catches a loss.
    pub drop_records: u64,
}

/// What the demo found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoReport {
    pub lines_written: u64,
    pub records_written: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub lost: u64,
    pub kinesis_records: u64,
    pub throttled_entries: u64,
    pub shard_utilisation: Vec<(String, f64)>,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub peak_rss_mib: f64,
    pub seconds: f64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes `lines` lines of sample log to `dir/app.log`, renaming it away twice, at
/// `bytes_per_sec` (unpaced when `None`). Returns (records, lines) written.
fn write_log(
    dir: &Path,
    lines: u64,
    bytes_per_sec: Option<f64>,
    progress: &ProgressBar,
) -> std::io::Result<(u64, u64)> {
    let path = dir.join("app.log");
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
    };
    let mut file = std::io::BufWriter::new(open()?);
    let started = Instant::now();
    let (mut written_lines, mut records, mut bytes) = (0u64, 0u64, 0u64);
    let rotations = [lines / 3, 2 * lines / 3];
    let mut rotated = 0;
    while written_lines < lines {
        if rotated < rotations.len() && written_lines >= rotations[rotated] {
            file.flush()?;
            rotated += 1;
            // Rename-and-create, as logrotate does by default.
            let _ = std::fs::rename(dir.join("app.log.1"), dir.join("app.log.2"));
            std::fs::rename(&path, dir.join("app.log.1"))?;
            file = std::io::BufWriter::new(open()?);
        }
        let id = records;
        let t = now_ms();
        let text = if id % 10 == 7 {
            let depth = 3 + id % 4;
            let mut trace = format!(
                "{} ERROR [worker-{}] request failed id={id} t={t}\njava.lang.IllegalStateException: order {} is in state CANCELLED\n",
                crate::time::rfc3339_millis(t),
                id % 8,
                id * 31 % 100_000
            );
            for frame in 0..depth {
                trace.push_str(&format!(
                    "\tat com.example.shop.OrderService.step{frame}(OrderService.java:{})\n",
                    40 + frame * 7
                ));
            }
            trace
        } else {
            format!(
                "10.{}.{}.{} - - [{}] \"GET /catalog/item?id={id}&t={t} HTTP/1.1\" 200 {} \"https://shop.example.com/\" \"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0\"\n",
                id % 7,
                id % 251,
                id % 13,
                crate::time::rfc3339_millis(t),
                500 + id % 9000
            )
        };
        written_lines += text.bytes().filter(|&b| b == b'\n').count() as u64;
        bytes += text.len() as u64;
        records += 1;
        file.write_all(text.as_bytes())?;
        if records % 500 == 0 {
            file.flush()?;
            progress.set_position(written_lines.min(lines));
            if let Some(rate) = bytes_per_sec {
                let due = Duration::from_secs_f64(bytes as f64 / rate);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    file.flush()?;
    progress.set_position(lines);
    Ok((records, written_lines))
}

/// The id and write time embedded in a record.
fn parse_marker(data: &[u8]) -> Option<(u64, i64)> {
    let text = std::str::from_utf8(data).ok()?;
    let at = text.find("id=")? + 3;
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    let id = digits(&text[at..]).parse().ok()?;
    let t_at = text[at..].find("t=")? + at + 2;
    let t = digits(&text[t_at..]).parse().ok()?;
    Some((id, t))
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").map(|v| {
                v.trim()
                    .trim_end_matches(" kB")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn bar(total: u64, label: &str, interactive: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if interactive {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

fn agent_config(dir: &Path, endpoint: &str, limits: bool) -> String {
    format!(
        r#"# Generated by `shardcar demo`; run it yourself with
#   shardcar run -c {config}
[agent]
state_dir = "{state}"
shutdown_grace_period_secs = 30
scan_interval_ms = 200

[kinesis]
endpoint_url = "{endpoint}"
region = "us-east-1"

[[flows]]
name = "demo"
stream = "{STREAM}"
# Rotated files too: a file renamed before the agent saw it is still read.
include = ["{logs}/app.log*"]
start_at = "start"
# An Apache line or the first line of a stack trace starts a record.
multiline_start = '^(\d+\.\d+\.\d+\.\d+ |\d{{4}}-\d{{2}}-\d{{2}}T)'
partition_key = "random"

[flows.throttle]
enabled = {limits}
"#,
        config = dir.join("agent.toml").display(),
        state = dir.join("state").display(),
        logs = dir.join("logs").display(),
    )
}

/// Runs the demo and checks every record arrived. With `listen`, the server then
/// stays up until `stop` resolves (the command line passes SIGTERM or SIGINT).
pub async fn run(
    options: DemoOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<DemoReport> {
    let started = Instant::now();
    let interactive = std::io::stdout().is_terminal();
    let say = |line: String| {
        if !interactive {
            say!("{line}");
        }
    };
    let stage = Stage::start(&options, |_, _| {}).await?;
    let (dir, logs, endpoint) = (stage.dir.clone(), stage.logs(), stage.endpoint.clone());
    say(format!(
        "shard server on {endpoint}, stream {STREAM:?} with {} shards, limits {}",
        options.shards,
        if options.limits { "on" } else { "off" }
    ));

    let config_text = agent_config(&dir, &endpoint, options.limits);
    std::fs::write(dir.join("agent.toml"), &config_text)?;
    let config = Config::parse(&config_text, "demo config")?;
    let agent = Agent::start(config, RunOptions::default()).await?;

    // Paced under the stream's write capacity, so latency shows the pipeline rather than
    // a backlog; unpaced without limits.
    let rate = options
        .limits
        .then_some(options.shards as f64 * limits::SHARD_WRITE_BYTES_PER_SEC as f64 * 0.7);
    let write_bar = bar(options.lines, "written", interactive);
    let mut writer = {
        let logs = logs.clone();
        let bar = write_bar.clone();
        let lines = options.lines;
        tokio::task::spawn_blocking(move || write_log(&logs, lines, rate, &bar))
    };
    say(format!(
        "writing {} lines to {} (rotated twice) while the agent ships them",
        options.lines,
        logs.join("app.log").display()
    ));
    let deliver_bar = bar(options.lines / 2, "delivered", interactive);
    deliver_bar.set_message("records");
    let mut written: Option<(u64, u64)> = None;
    let mut last_say = Instant::now();
    // Give up once deliveries stall for 30 s after the writer finished (a loss).
    let mut last_progress = (0, Instant::now());
    loop {
        let stats = agent.flow_stats("demo").unwrap_or_default();
        if written.is_none() && writer.is_finished() {
            written = Some((&mut writer).await.context("writer task failed")??);
            write_bar.finish();
            if let Some((records, _)) = written {
                deliver_bar.set_length(records);
            }
            continue;
        }
        deliver_bar.set_position(stats.delivered);
        if let Some((records, _)) = written
            && stats.delivered + stats.dead_lettered >= records
        {
            break;
        }
        if stats.delivered != last_progress.0 {
            last_progress = (stats.delivered, Instant::now());
        } else if written.is_some() && last_progress.1.elapsed() > Duration::from_secs(30) {
            say("no deliveries for 30 s: checking what arrived".into());
            break;
        }
        if !interactive && last_say.elapsed() >= Duration::from_secs(2) {
            say(format!("delivered {} records so far", stats.delivered));
            last_say = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    deliver_bar.finish();
    let (records_written, lines_written) = written.unwrap_or_default();
    let producer = agent.producer_stats("demo").unwrap_or_default();
    let run_seconds = started.elapsed().as_secs_f64();
    agent.stop().await;

    // Per-shard use of the write limit, as the server measured it.
    let mut shard_utilisation = Vec::new();
    for (shard, bytes) in stage
        .server
        .store()
        .open_shard_bytes(STREAM)
        .unwrap_or_default()
    {
        shard_utilisation.push((
            shard,
            bytes as f64 / run_seconds / limits::SHARD_WRITE_BYTES_PER_SEC as f64,
        ));
    }

    say("reading the stream back and checking every record".into());
    let client = crate::aws::kinesis_client(
        &crate::config::KinesisConfig {
            endpoint_url: Some(endpoint.clone()),
            region: Some("us-east-1".into()),
            ..Default::default()
        },
        crate::aws::Purpose::General,
    )
    .await?;
    let (tx, mut rx) = mpsc::channel(10_000);
    let reader = tokio::spawn(async move {
        consume::consume(
            &client,
            STREAM,
            ConsumeOptions {
                from: StartFrom::TrimHorizon,
                follow: false,
                efo: false,
            },
            tx,
        )
        .await
    });
    let mut seen: HashMap<u64, u32> = HashMap::with_capacity(records_written as usize);
    let mut latencies = Vec::with_capacity(records_written as usize);
    while let Some(record) = rx.recv().await {
        if let Some((id, t)) = parse_marker(&record.data) {
            *seen.entry(id).or_default() += 1;
            latencies.push((record.arrival_ms - t).max(0));
        }
    }
    let consumed = reader.await.context("consumer task failed")??;
    latencies.sort_unstable();
    let percentile = |q: f64| {
        latencies
            .get(((latencies.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or(0) as f64
    };
    let delivered = (0..records_written)
        .filter(|id| seen.contains_key(id))
        .count() as u64;
    let report = DemoReport {
        lines_written,
        records_written,
        delivered,
        duplicates: seen.values().map(|&n| u64::from(n.saturating_sub(1))).sum(),
        lost: records_written - delivered,
        kinesis_records: consumed.kinesis_records,
        throttled_entries: producer.throttled_entries,
        shard_utilisation,
        latency_p50_ms: percentile(0.5),
        latency_p99_ms: percentile(0.99),
        peak_rss_mib: peak_rss_mib(),
        seconds: started.elapsed().as_secs_f64(),
    };
    print_report(&report, &producer);

    stage
        .finish(
            &options,
            "agent.toml, logs/, state/",
            &[
                format!("aws kinesis list-shards --stream-name {STREAM} --endpoint-url {endpoint}"),
                format!(
                    "aws kinesis get-shard-iterator --stream-name {STREAM} --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --endpoint-url {endpoint}"
                ),
                format!("shardcar consume {STREAM} --endpoint-url {endpoint} --limit 5"),
            ],
            stop,
        )
        .await;
    Ok(report)
}

/// The demo's directory (removed at the end unless kept, with its `logs/`) and its
/// in-process shard server.
struct Stage {
    dir: PathBuf,
    temp: Option<tempfile::TempDir>,
    server: RunningServer,
    endpoint: String,
}

impl Stage {
    /// `configure` adds to the server's configuration, given the directory.
    async fn start(
        options: &DemoOptions,
        configure: impl FnOnce(&mut ServerConfig, &Path),
    ) -> Result<Stage> {
        let temp = tempfile::Builder::new()
            .prefix("shardcar-demo-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        // With --keep the directory outlives the demo; otherwise it is removed at the end.
        let (dir, temp): (PathBuf, Option<tempfile::TempDir>) = if options.keep {
            (temp.keep(), None)
        } else {
            (temp.path().to_owned(), Some(temp))
        };
        std::fs::create_dir_all(dir.join("logs"))?;
        let mut server_config = ServerConfig::default();
        server_config.store.limits = options.limits;
        server_config.store.faults.drop_records = options.drop_records;
        server_config.create_streams = vec![(STREAM.to_owned(), options.shards)];
        configure(&mut server_config, &dir);
        let listen = options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let server = Server::bind(listen, server_config).await?;
        let endpoint = server.endpoint_url();
        Ok(Stage {
            dir,
            temp,
            server,
            endpoint,
        })
    }

    fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Says what was kept; with `--listen`, keeps the server up until `stop`, with
    /// `commands` to try against it. Then stops the server and removes the directory
    /// unless kept.
    async fn finish(
        self,
        options: &DemoOptions,
        kept: &str,
        commands: &[String],
        stop: impl std::future::Future<Output = ()>,
    ) {
        let endpoint = &self.endpoint;
        if options.keep {
            say!("\nkept {} ({kept})", self.dir.display());
            if options.listen.is_none() {
                say!(
                    "the agent.toml there points at this demo's server ({endpoint}), which stops now; \
                     run the demo with --keep --listen 127.0.0.1:4567 to keep a server at a fixed address"
                );
            }
        }
        if options.listen.is_some() {
            say!("\nthe shard server stays up at {endpoint}; try (Ctrl-C or SIGTERM to stop):");
            say!(
                "  export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1"
            );
            for command in commands {
                say!("  {command}");
            }
            stop.await;
        }
        self.server.shutdown().await;
        drop(self.temp);
    }
}

fn print_report(report: &DemoReport, producer: &crate::producer::StatsSnapshot) {
    let ratio = if report.kinesis_records == 0 {
        0.0
    } else {
        report.delivered as f64 / report.kinesis_records as f64
    };
    say!();
    say!("| measure | value |");
    say!("|---|---:|");
    say!("| lines written | {} |", report.lines_written);
    say!(
        "| records written (multi-line records count once) | {} |",
        report.records_written
    );
    say!("| records delivered | {} |", report.delivered);
    say!("| duplicates | {} |", report.duplicates);
    say!("| lost | {} |", report.lost);
    say!(
        "| Kinesis records (aggregation ratio) | {} ({ratio:.0} records each) |",
        report.kinesis_records
    );
    say!("| PutRecords calls | {} |", producer.put_requests);
    say!("| throttled entries | {} |", report.throttled_entries);
    for (shard, use_) in &report.shard_utilisation {
        say!("| {shard} write limit used | {:.0}% |", use_ * 100.0);
    }
    say!(
        "| delivery latency p50 / p99 | {:.0} ms / {:.0} ms |",
        report.latency_p50_ms,
        report.latency_p99_ms
    );
    say!(
        "| peak RSS (server, agent, consumer in one process) | {:.1} MiB |",
        report.peak_rss_mib
    );
    say!("| time | {:.1} s |", report.seconds);
    say!();
    if report.lost == 0 {
        say!("OK: every record arrived.");
    } else {
        say!("FAILED: {} records did not arrive.", report.lost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse_from_both_record_kinds() {
        assert_eq!(
            parse_marker(b"10.1.2.3 - - [x] \"GET /catalog/item?id=42&t=1700 HTTP/1.1\" 200"),
            Some((42, 1700))
        );
        assert_eq!(
            parse_marker(b"2026-01-01T00:00:00.000Z ERROR [w] request failed id=7 t=99\njava.lang"),
            Some((7, 99))
        );
        assert_eq!(parse_marker(b"nothing"), None);
    }
}
