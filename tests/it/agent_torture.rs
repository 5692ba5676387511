//! Everything at once, on a seeded schedule: several files written for 30 s with
//! rename and copytruncate rotations (growing past the old offset), a symlink beside
//! its target, the agent killed with SIGKILL three times and reloaded with SIGHUP
//! twice, the server killed for 10 s (its data kept), and 30% throttled plus 10%
//! failed entries throughout. Every line must arrive; no record may be anything but a
//! whole line; duplicates are counted and printed.
//!
//! `SHARDCAR_TORTURE_SEED=N` replays a schedule; the seed is printed on every run.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent_safety::AgentProcess;
use crate::support::{ServerProcess, kcl_user_records, kinesis_client, read_stream};

const FILES: [&str; 3] = ["alpha", "beta", "gamma"];
const WRITE_FOR: Duration = Duration::from_secs(30);

/// A small deterministic generator (xorshift64*), so a failure replays from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("SHARDCAR_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Line `seq` of the run: its number first (distinct first bytes after every
/// rotation), a length that varies with the seed.
fn line(seq: u64, file: usize, rng: &mut Rng) -> String {
    let pad = 20 + rng.below(280) as usize;
    format!("{seq:09} {} {}", FILES[file], "w".repeat(pad))
}

struct Writer {
    dir: PathBuf,
    rotations: u64,
    written: Vec<String>,
}

impl Writer {
    fn path(&self, file: usize) -> PathBuf {
        self.dir.join(format!("{}.log", FILES[file]))
    }

    fn append(&mut self, file: usize, lines: &[String]) {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(file))
            .unwrap();
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        out.write_all(text.as_bytes()).unwrap();
        self.written.extend_from_slice(lines);
    }

    /// Rename rotation: the file moves to a name the glob also matches, and a new file
    /// takes its place.
    fn rename(&mut self, file: usize) {
        self.rotations += 1;
        let to = self
            .dir
            .join(format!("{}.log.{}", FILES[file], self.rotations));
        let _ = std::fs::rename(self.path(file), to);
    }

    /// copytruncate: copied (the copy matches the glob, so nothing the agent had not
    /// read yet is lost; what it had read arrives twice), then truncated in place.
    fn copy_truncate(&mut self, file: usize) {
        self.rotations += 1;
        let path = self.path(file);
        let copy = self
            .dir
            .join(format!("{}-copy.log.{}", FILES[file], self.rotations));
        if std::fs::copy(&path, copy).is_ok() {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0));
        }
    }
}

fn write_config(dir: &Path, endpoint: &str, linger_ms: u64) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"[agent]
state_dir = "{state}"
max_in_flight_bytes = 1048576
shutdown_grace_period_secs = 2
scan_interval_ms = 200
[kinesis]
endpoint_url = "{endpoint}"
region = "us-east-1"
[[flows]]
name = "torture"
stream = "logs"
start_at = "start"
include = ["{logs}/**/*.log*"]
flush_partial_line_after_ms = 60000
[flows.aggregation]
linger_ms = {linger_ms}
"#,
            state = dir.join("state").display(),
            logs = dir.join("logs").display(),
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn torture_every_line_arrives_through_rotations_kills_reloads_an_outage_and_faults() {
    let seed = seed();
    eprintln!("torture seed {seed} (replay with SHARDCAR_TORTURE_SEED={seed})");
    let mut rng = Rng::new(seed);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let faults = [
        "--fault-throttle-ratio",
        "0.3",
        "--fault-internal-ratio",
        "0.1",
        "--no-limits",
        "--create-delay-ms",
        "0",
        "--data-dir",
        &data_dir,
    ];
    let mut first_args = vec!["--create-stream", "logs:3"];
    first_args.extend(faults);
    let server = ServerProcess::start(&first_args);
    let listen = server.endpoint.trim_start_matches("http://").to_owned();
    let endpoint = server.endpoint.clone();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("links")).unwrap();
    std::os::unix::fs::symlink(logs.join("beta.log"), logs.join("links/beta-link.log")).unwrap();
    let config = write_config(dir.path(), &endpoint, 20);

    // The writer: bursts into a random file, a rotation now and then; after a
    // copytruncate, often a burst larger than the file was.
    let writer = Arc::new(Mutex::new(Writer {
        dir: logs.clone(),
        rotations: 0,
        written: Vec::new(),
    }));
    let writing = Arc::new(AtomicBool::new(true));
    let writer_thread = {
        let writer = writer.clone();
        let writing = writing.clone();
        let mut rng = Rng::new(seed ^ 0xA5A5);
        std::thread::spawn(move || {
            let mut seq = 0u64;
            let started = Instant::now();
            while started.elapsed() < WRITE_FOR {
                let file = rng.below(FILES.len() as u64) as usize;
                let mut writer = writer.lock().unwrap();
                match rng.below(100) {
                    0..=1 => writer.rename(file),
                    2..=3 => {
                        let before = std::fs::metadata(writer.path(file)).map_or(0, |m| m.len());
                        writer.copy_truncate(file);
                        // Refill past the old offset before the agent can look.
                        let mut refill = Vec::new();
                        let mut size = 0;
                        while size <= before + 4096 {
                            let l = line(seq, file, &mut rng);
                            size += l.len() as u64 + 1;
                            refill.push(l);
                            seq += 1;
                        }
                        writer.append(file, &refill);
                    }
                    _ => {
                        let n = 1 + rng.below(20);
                        let burst: Vec<String> =
                            (0..n).map(|i| line(seq + i, file, &mut rng)).collect();
                        seq += n;
                        writer.append(file, &burst);
                    }
                }
                drop(writer);
                std::thread::sleep(Duration::from_millis(10 + rng.below(30)));
            }
            writing.store(false, Ordering::SeqCst);
        })
    };

    // The disruptions, at seeded moments within the 30 s of writing.
    let mut events: Vec<(u64, &str)> = vec![
        (2_000 + rng.below(6_000), "kill"),
        (9_000 + rng.below(3_000), "hup"),
        (12_000, "server-down"),
        (16_000 + rng.below(2_000), "kill"),
        (22_000, "server-up"),
        (23_000 + rng.below(3_000), "hup"),
        (26_000 + rng.below(3_000), "kill"),
    ];
    events.sort();
    eprintln!("torture schedule (ms): {events:?}");
    let mut agent = AgentProcess::start(&config);
    let mut server = Some(server);
    let started = Instant::now();
    let mut linger = 20;
    for (at, what) in events {
        let due = started + Duration::from_millis(at);
        tokio::time::sleep_until(due.into()).await;
        match what {
            "kill" => {
                agent.kill_9();
                agent = AgentProcess::start(&config);
            }
            "hup" => {
                linger += 5;
                write_config(dir.path(), &endpoint, linger);
                agent.signal("HUP");
            }
            "server-down" => {
                if let Some(server) = server.take() {
                    server.kill_9();
                }
            }
            "server-up" => {
                server = Some(ServerProcess::start_on(&listen, &faults));
            }
            _ => unreachable!(),
        }
    }
    writer_thread.join().unwrap();
    assert!(!writing.load(Ordering::SeqCst));
    let written: Vec<String> = writer.lock().unwrap().written.clone();
    let rotations = writer.lock().unwrap().rotations;
    let expected: HashMap<&[u8], ()> = written.iter().map(|l| (l.as_bytes(), ())).collect();

    let client = kinesis_client(&endpoint);
    let deadline = Instant::now() + Duration::from_secs(120);
    let counts = loop {
        let counts = arrived(&client).await;
        let missing = written
            .iter()
            .filter(|l| !counts.contains_key(l.as_bytes()))
            .count();
        if missing == 0 {
            break counts;
        }
        if Instant::now() >= deadline {
            let log = agent.log_lines();
            eprintln!(
                "agent log, last lines:\n{}",
                log[log.len().saturating_sub(40)..].join("\n")
            );
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: {missing} of {} lines never arrived, e.g. {:?}",
            written.len(),
            written
                .iter()
                .find(|l| !counts.contains_key(l.as_bytes()))
                .map(|l| &l[..20])
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    agent.signal("TERM");
    assert!(
        agent.wait_exit(Duration::from_secs(10)).is_some(),
        "the agent did not stop on SIGTERM"
    );
    let fragments: Vec<String> = counts
        .keys()
        .filter(|r| !expected.contains_key(r.as_slice()))
        .take(3)
        .map(|r| String::from_utf8_lossy(&r[..r.len().min(40)]).into_owned())
        .collect();
    assert!(
        fragments.is_empty(),
        "seed {seed}: records that are not whole lines: {fragments:?}"
    );
    let duplicated = counts.values().filter(|n| **n > 1).count();
    let extra: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "torture seed {seed}: {} lines in {rotations} rotations, all arrived; {duplicated} arrived more than once ({extra} extra copies: copies made by copytruncate and lines in flight at the three kills)",
        written.len()
    );
    drop(server);
}

async fn arrived(client: &aws_sdk_kinesis::Client) -> HashMap<Vec<u8>, usize> {
    let (users, _) = kcl_user_records(&read_stream(client, "logs").await);
    let mut counts = HashMap::new();
    for (_, user) in users {
        *counts.entry(user.data.to_vec()).or_insert(0) += 1;
    }
    counts
}
