//! Cases a real host produces where a line could be lost, sent twice or the agent could
//! hang: each test is named after the case and fails on the bug it guards.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent_support::{Setup, append, copy_truncate, lines, parse_config};
use crate::support::{
    Reaped, ServerProcess, eventually, kcl_user_records, kinesis_client, read_stream,
};

/// An address nothing listens on: connections are refused at once.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";

/// The agent as a process, its log read line by line on a thread.
pub struct AgentProcess {
    /// Killed and reaped with the `AgentProcess`.
    pub child: Reaped,
    log: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl AgentProcess {
    pub fn start(config: &Path) -> AgentProcess {
        AgentProcess::start_with_env(config, &[])
    }

    /// Starts the agent with extra environment variables.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> AgentProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shardcar"))
            .args(["run", "-c", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        AgentProcess {
            child: Reaped(child),
            log: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `text`; panics after `within`.
    pub fn wait_for_log(&mut self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?} within {within:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The port the agent's HTTP endpoint bound (configured as `127.0.0.1:0`), from
    /// its start-up log line.
    pub fn metrics_port(&mut self) -> u16 {
        let line = self.wait_for_log("serving /metrics", Duration::from_secs(20));
        let after = line
            .split("127.0.0.1:")
            .nth(1)
            .unwrap_or_else(|| panic!("no bound address in {line:?}"));
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no port in {line:?}"))
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; `None` if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every log line so far (drains what the thread has read).
    pub fn log_lines(&mut self) -> Vec<String> {
        while let Ok(line) = self.log.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

/// A config file for one flow over `logs/*.log`.
fn write_config(dir: &Path, endpoint: &str, agent_extra: &str, flow_extra: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            r#"[agent]
state_dir = "{state}"
scan_interval_ms = 100
{agent_extra}
[kinesis]
endpoint_url = "{endpoint}"
region = "us-east-1"
[[flows]]
name = "app"
stream = "logs"
include = ["{logs}/*.log"]
{flow_extra}
[flows.aggregation]
linger_ms = 20
"#,
            state = dir.join("state").display(),
            logs = dir.join("logs").display(),
        ),
    )
    .unwrap();
    path
}

fn numbered(tag: &str, from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to)
        .map(|i| format!("{tag} line {i:07} {}", "z".repeat(60)).into_bytes())
        .collect()
}

/// Every user record in `stream`, counted by content.
async fn arrived(client: &aws_sdk_kinesis::Client) -> std::collections::HashMap<Vec<u8>, usize> {
    let (users, _) = kcl_user_records(&read_stream(client, "logs").await);
    let mut counts = std::collections::HashMap::new();
    for (_, user) in users {
        *counts.entry(user.data.to_vec()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn start_at_end_killed_in_its_first_second_skips_only_lines_older_than_the_first_start() {
    let server = ServerProcess::start(&[
        "--no-limits",
        "--create-stream",
        "logs:1",
        "--create-delay-ms",
        "0",
    ]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/app.log");
    let old = numbered("old", 0, 100);
    append(&log, &old);
    let config = write_config(dir.path(), &server.endpoint, "", "start_at = \"end\"");
    let mut agent = AgentProcess::start(&config);
    agent.wait_for_log("agent running", Duration::from_secs(20));
    // Killed at once: well within the first second, before any periodic checkpoint.
    agent.kill_9();
    let new = numbered("new", 0, 300);
    append(&log, &new);
    let mut agent = AgentProcess::start(&config);
    let client = kinesis_client(&server.endpoint);
    let counts = eventually(Duration::from_secs(30), async || {
        let counts = arrived(&client).await;
        new.iter().all(|l| counts.contains_key(l)).then_some(counts)
    })
    .await;
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(20));
    assert!(
        old.iter().all(|l| !counts.contains_key(l)),
        "a line older than the first start was sent"
    );
    assert_eq!(
        counts.len(),
        new.len(),
        "only the lines written after the first start"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copytruncate_refilled_past_the_old_offset_is_read_again_and_ships_no_fragment() {
    // The server comes up only after the rotation: until then the agent's reader waits
    // on its full budget, part-way through the file, as in an outage.
    // The server holds its port from the start but is stopped (SIGSTOP): calls connect
    // and get no answer until it is continued, as in an outage of a hung endpoint.
    let server = ServerProcess::start(&[
        "--no-limits",
        "--create-stream",
        "logs:2",
        "--create-delay-ms",
        "0",
    ]);
    let endpoint = server.endpoint.clone();
    server.signal("STOP");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/app.log");
    let before = numbered("before", 0, 30_000); // about 2.4 MB
    append(&log, &before);
    let agent_keys = "metrics_listen = \"127.0.0.1:0\"\nmax_in_flight_bytes = 1048576";
    let config = write_config(dir.path(), &endpoint, agent_keys, "start_at = \"start\"");
    let mut agent = AgentProcess::start(&config);
    let metrics_port = agent.metrics_port();
    agent.wait_for_log("agent running", Duration::from_secs(20));
    wait_for_full_budget(metrics_port).await;
    // copytruncate, then the writer refills the file past where the reader stands.
    copy_truncate(&log, &dir.path().join("logs/app.log.1"));
    let after = numbered("after", 0, 60_000); // about 4.8 MB
    append(&log, &after);
    server.signal("CONT");
    let client = kinesis_client(&endpoint);
    let counts = eventually(Duration::from_secs(60), async || {
        let counts = arrived(&client).await;
        after
            .iter()
            .all(|l| counts.contains_key(l))
            .then_some(counts)
    })
    .await;
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(20));
    let whole: std::collections::HashSet<&Vec<u8>> = before.iter().chain(&after).collect();
    let fragments: Vec<String> = counts
        .keys()
        .filter(|l| !whole.contains(l))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .take(3)
        .collect();
    assert!(
        fragments.is_empty(),
        "records that are not whole lines: {fragments:?}"
    );
    assert!(
        after.iter().all(|l| counts[l] == 1),
        "a line of the new content sent twice"
    );
}

/// Waits until the agent's in-flight budget (1 MiB) is nearly full.
async fn wait_for_full_budget(metrics_port: u16) {
    eventually(Duration::from_secs(30), async || {
        let body = fetch_metrics(metrics_port)?;
        let in_flight: f64 = body
            .lines()
            .find_map(|l| l.strip_prefix("shardcar_in_flight_bytes "))?
            .trim()
            .parse()
            .ok()?;
        (in_flight > 900_000.0).then_some(())
    })
    .await;
}

fn fetch_metrics(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).ok()?;
    Some(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_and_a_symlink_to_it_under_one_glob_ship_each_line_once() {
    let setup = Setup::new(2).await;
    let logs = setup.logs();
    std::fs::create_dir_all(logs.join("links")).unwrap();
    let first = lines("first", 300);
    append(&logs.join("app.log"), &first);
    std::os::unix::fs::symlink(logs.join("app.log"), logs.join("links/app-link.log")).unwrap();
    let config = setup.config(&["**/*.log"], &[], "");
    let agent = setup.start(config.clone()).await;
    setup.wait_for(&first, Duration::from_secs(20)).await;
    // Stopping drains what is in flight: after it, nothing more can arrive.
    agent.stop().await;
    let counts = setup.arrived().await;
    assert!(first.iter().all(|l| counts[l] == 1), "a line sent twice");
    // And once more after a restart: the checkpoint is per file, not per path.
    let agent = setup.start(config).await;
    let second = lines("second", 300);
    append(&logs.join("app.log"), &second);
    setup.wait_for(&second, Duration::from_secs(20)).await;
    agent.stop().await;
    let counts = setup.arrived().await;
    let twice = first
        .iter()
        .chain(&second)
        .filter(|l| counts[*l] != 1)
        .count();
    assert_eq!(twice, 0, "lines sent more than once after a restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_with_a_full_budget_completes_and_the_stopped_flow_returns_its_budget() {
    let setup = Setup::new(2).await;
    let path = setup.logs().join("app.log");
    let all = lines("budget", 40_000); // about 2.4 MB, over twice the budget
    append(&path, &all);
    let good = setup.config_text(&["app.log"], &[], "").replace(
        "shutdown_grace_period_secs = 10",
        "shutdown_grace_period_secs = 2\nmax_in_flight_bytes = 1048576",
    );
    let dead = good.replace(&setup.server.endpoint_url(), DEAD_ENDPOINT);
    let mut agent = setup.start(parse_config(&dead)).await;
    eventually(Duration::from_secs(20), async || {
        (agent.in_flight_bytes() > 900_000).then_some(())
    })
    .await;
    // The endpoint is fixed in the new config; the reload must not wait on the reader.
    let reloaded =
        tokio::time::timeout(Duration::from_secs(8), agent.reload(parse_config(&good))).await;
    assert!(
        reloaded.is_ok(),
        "the reload did not complete within the grace period plus margin"
    );
    setup.wait_for(&all, Duration::from_secs(60)).await;
    eventually(Duration::from_secs(20), async || {
        (agent.in_flight_bytes() == 0).then_some(())
    })
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_during_an_outage_reports_what_is_unacknowledged_per_flow() {
    let setup = Setup::new(1).await;
    let written = lines("outage", 1000);
    append(&setup.logs().join("app.log"), &written);
    let dead = setup
        .config_text(&["app.log"], &[], "")
        .replace(&setup.server.endpoint_url(), DEAD_ENDPOINT)
        .replace(
            "shutdown_grace_period_secs = 10",
            "shutdown_grace_period_secs = 1",
        );
    let agent = setup.start(parse_config(&dead)).await;
    eventually(Duration::from_secs(20), async || {
        let stats = agent.producer_stats("test")?;
        (stats.handed_records == 1000).then_some(())
    })
    .await;
    let report = agent.stop().await;
    assert_eq!(
        report.unacknowledged_records, 1000,
        "nothing was sent, so all 1000 are unacknowledged"
    );
    assert_eq!(report.flows["test"].unacknowledged_records, 1000);
    assert!(report.grace_exceeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_behind_counts_unacknowledged_bytes_and_stays_current_during_an_outage() {
    let setup = Setup::new(1).await;
    let path = setup.logs().join("app.log");
    append(&path, &lines("behind", 50_000)); // about 3 MB, three budgets
    let dead = setup
        .config_text(&["app.log"], &[], "")
        .replace(&setup.server.endpoint_url(), DEAD_ENDPOINT)
        .replace(
            "shutdown_grace_period_secs = 10",
            "shutdown_grace_period_secs = 1\nmax_in_flight_bytes = 1048576",
        );
    let agent = setup.start(parse_config(&dead)).await;
    let size = || std::fs::metadata(&path).unwrap().len();
    let first = size();
    eventually(Duration::from_secs(20), async || {
        (agent.flow_stats("test")?.bytes_behind == first).then_some(())
    })
    .await;
    // The reader is held by the full budget; the file keeps growing.
    append(&path, &lines("more", 10_000));
    let second = size();
    eventually(Duration::from_secs(20), async || {
        (agent.flow_stats("test")?.bytes_behind == second).then_some(())
    })
    .await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_reload_with_a_full_budget_ends_the_process_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    append(
        &dir.path().join("logs/app.log"),
        &numbered("held", 0, 30_000),
    );
    let agent_keys = "metrics_listen = \"127.0.0.1:0\"\nmax_in_flight_bytes = 1048576\nshutdown_grace_period_secs = 2";
    let config = write_config(
        dir.path(),
        DEAD_ENDPOINT,
        agent_keys,
        "start_at = \"start\"",
    );
    let mut agent = AgentProcess::start(&config);
    let metrics_port = agent.metrics_port();
    agent.wait_for_log("agent running", Duration::from_secs(20));
    wait_for_full_budget(metrics_port).await;
    // The flow changes (still unreachable), so the reload stops it; SIGTERM follows.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("linger_ms = 20", "linger_ms = 30");
    std::fs::write(&config, text).unwrap();
    agent.signal("HUP");
    agent.wait_for_log("stopping flow for the new config", Duration::from_secs(10));
    let signalled = Instant::now();
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(15));
    let took = signalled.elapsed();
    assert!(
        status.is_some(),
        "still running 15 s after SIGTERM:\n{}",
        agent.log_lines().join("\n")
    );
    assert!(
        took < Duration::from_secs(2 + 5),
        "SIGTERM took {took:?}, more than the 2 s grace period plus a few seconds"
    );
    let log = agent.log_lines().join("\n");
    assert!(
        log.contains("flow=app") && log.contains("unacknowledged_records="),
        "{log}"
    );
}

/// Runs `shardcar run` to its exit and returns the code and what it printed.
fn run_to_exit(config: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["run", "-c", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_corrupt_or_empty_checkpoint_file_or_an_unusable_state_dir_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let config = write_config(dir.path(), DEAD_ENDPOINT, "", "");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let checkpoints = state.join("checkpoints.json");
    for content in [
        &b""[..],
        b"{\"version\": 1, \"files\": [",
        b"\x00\x01binary",
    ] {
        std::fs::write(&checkpoints, content).unwrap();
        let (code, stderr) = run_to_exit(&config);
        assert_eq!(code, Some(78), "checkpoint {content:?}: {stderr}");
        assert!(
            stderr.contains(&checkpoints.display().to_string()),
            "names the file: {stderr}"
        );
        assert!(
            stderr.contains("--reset-checkpoints"),
            "names the way out: {stderr}"
        );
    }
    // The checkpoint file cannot be read at all.
    std::fs::remove_file(&checkpoints).unwrap();
    std::fs::create_dir(&checkpoints).unwrap();
    let (code, stderr) = run_to_exit(&config);
    assert_eq!(code, Some(78), "unreadable checkpoint file: {stderr}");
    // A state directory that cannot be created.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &state.display().to_string(),
        &blocker.join("state").display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = run_to_exit(&config);
    assert_eq!(code, Some(78), "unusable state_dir: {stderr}");
    assert!(stderr.contains("state_dir"), "names the key: {stderr}");
}

/// The user records of the stream with their shard and key, in stream order per shard.
async fn records_with_keys(setup: &Setup) -> Vec<(String, String, Vec<u8>)> {
    let (users, _) = kcl_user_records(&read_stream(&setup.client, "logs").await);
    users
        .into_iter()
        .map(|(shard, user)| (shard, user.partition_key, user.data.to_vec()))
        .collect()
}

/// Where a piece was read from: its shard and partition key.
type Place = (String, String);
/// A line joined from pieces, and where each piece was.
type Joined = (Vec<u8>, Vec<Place>);

/// Joins split pieces back into lines: a record ending in `marker` continues with the
/// next record of the same key on the same shard. Returns the lines and, per line,
/// the (shard, key) of every piece.
fn join_pieces(records: &[(String, String, Vec<u8>)], marker: &[u8]) -> Vec<Joined> {
    let mut open: std::collections::HashMap<Place, Joined> = std::collections::HashMap::new();
    let mut lines = Vec::new();
    for (shard, key, data) in records {
        let slot = (shard.clone(), key.clone());
        let entry = open.entry(slot.clone()).or_default();
        entry.1.push(slot.clone());
        match data.strip_suffix(marker) {
            Some(piece) => entry.0.extend_from_slice(piece),
            None => {
                entry.0.extend_from_slice(data);
                if let Some(done) = open.remove(&slot) {
                    lines.push(done);
                }
            }
        }
    }
    assert!(open.is_empty(), "pieces never completed: {}", open.len());
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn split_pieces_keep_one_partition_key_and_end_with_the_marker() {
    let setup = Setup::new(4).await;
    let long: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("long {i:03} {}", "y".repeat(3500)).into_bytes())
        .collect();
    append(&setup.logs().join("app.log"), &long);
    let config = setup.config(
        &["app.log"],
        &[],
        "max_record_bytes = 1000\nsplit_marker = \"<<split>>\"",
    );
    let agent = setup.start(config).await;
    let expected_pieces = 40 * 4;
    eventually(Duration::from_secs(30), async || {
        (records_with_keys(&setup).await.len() >= expected_pieces).then_some(())
    })
    .await;
    agent.stop().await;
    let records = records_with_keys(&setup).await;
    assert_eq!(
        records.len(),
        expected_pieces,
        "each 3.5 KB line in four pieces"
    );
    assert!(
        records
            .iter()
            .all(|(_, key, data)| key.len() + data.len() <= 1000 + 256)
    );
    let lines = join_pieces(&records, b"<<split>>");
    let joined: std::collections::HashSet<Vec<u8>> = lines.iter().map(|(l, _)| l.clone()).collect();
    assert_eq!(
        joined,
        long.iter().cloned().collect(),
        "the pieces join back into the lines"
    );
    for (_, pieces) in &lines {
        assert_eq!(pieces.len(), 4);
        assert!(
            pieces.windows(2).all(|w| w[0] == w[1]),
            "one shard and one key per line: {pieces:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_max_record_bytes_above_the_streams_limit_splits_records_instead_of_dead_lettering_them()
{
    let setup = Setup::new(1).await;
    let big = format!("big {}", "b".repeat(1_500_000)).into_bytes();
    let small = lines("small", 10);
    append(
        &setup.logs().join("app.log"),
        &[vec![big.clone()], small.clone()].concat(),
    );
    let config = setup.config(&["app.log"], &[], "max_record_bytes = 2097152");
    assert_eq!(config.flows[0].max_record_bytes, 2_097_152);
    let agent = setup.start(config).await;
    setup.wait_for(&small, Duration::from_secs(30)).await;
    let stats = agent.flow_stats("test").unwrap();
    agent.stop().await;
    assert_eq!(
        stats.dead_lettered, 0,
        "nothing dead-lettered for a size the config accepted"
    );
    let records = records_with_keys(&setup).await;
    assert!(
        records
            .iter()
            .all(|(_, key, data)| key.len() + data.len() <= 1024 * 1024)
    );
    let lines = join_pieces(&records, config_marker().as_bytes());
    assert!(
        lines
            .iter()
            .any(|(line, pieces)| *line == big && pieces.len() == 2),
        "the 1.5 MB line arrived in two pieces"
    );
}

fn config_marker() -> String {
    shardcar::config::DEFAULT_SPLIT_MARKER.to_owned()
}

/// UpdateMaxRecordSize on the setup's stream.
async fn raise_record_limit(setup: &Setup, kib: i32) {
    let arn = setup
        .client
        .describe_stream_summary()
        .stream_name("logs")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    setup
        .client
        .update_max_record_size()
        .stream_arn(&arn)
        .max_record_size_in_kib(kib)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_takes_two_mib_records_gets_a_one_and_a_half_mib_line_whole() {
    let setup = Setup::new(1).await;
    raise_record_limit(&setup, 2048).await;
    let big = format!("big {}", "c".repeat(1_500_000)).into_bytes();
    append(&setup.logs().join("app.log"), std::slice::from_ref(&big));
    let agent = setup
        .start(setup.config(&["app.log"], &[], "max_record_bytes = 2097152"))
        .await;
    let arrived = setup
        .wait_for(std::slice::from_ref(&big), Duration::from_secs(30))
        .await;
    agent.stop().await;
    assert_eq!(arrived[&big], 1);
}

/// A stream raised to 10 MiB records (UpdateMaxRecordSize 10240) takes 8 MiB lines
/// from the agent as single records, and `shardcar consume` reads them back whole.
#[tokio::test(flavor = "multi_thread")]
async fn eight_mib_lines_ship_as_single_records_to_a_ten_mib_stream_and_consume_reads_them_whole() {
    let setup = Setup::new(1).await;
    raise_record_limit(&setup, 10240).await;
    let eight_mib = 8 * 1024 * 1024;
    let big: Vec<Vec<u8>> = ["first", "second"]
        .iter()
        .map(|tag| {
            let mut line = format!("{tag} ").into_bytes();
            line.resize(eight_mib, b'z');
            line
        })
        .collect();
    append(&setup.logs().join("app.log"), &big);
    let agent = setup
        .start(setup.config(
            &["app.log"],
            &[],
            "max_record_bytes = 10485504\n[flows.throttle]\nenabled = false",
        ))
        .await;
    let arrived = setup.wait_for(&big, Duration::from_secs(60)).await;
    agent.stop().await;
    assert!(big.iter().all(|line| arrived[line] == 1), "each line once");
    // One Kinesis record per line: no line was split.
    let stored = crate::support::read_stream(&setup.client, "logs").await;
    let sizes: Vec<usize> = stored.iter().map(|r| r.data.len()).collect();
    assert!(sizes.iter().all(|size| *size >= eight_mib), "{sizes:?}");
    let endpoint = setup.server.endpoint_url();
    let output = tokio::task::spawn_blocking(move || {
        crate::support::shardcar(&["consume", "logs", "--endpoint-url", &endpoint], b"")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Vec<Vec<u8>> = crate::support::json_lines(&output)
        .iter()
        .map(|line| {
            line["data"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        })
        .collect();
    assert_eq!(read.len(), 2);
    assert!(
        read == big,
        "consume read the 8 MiB lines back whole and in order"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_regular_files_match_and_double_star_is_the_way_into_directories() {
    let setup = Setup::new(1).await;
    let logs = setup.logs();
    // A directory, a symlink to a directory and a FIFO, all named like the glob.
    std::fs::create_dir_all(logs.join("dir.log")).unwrap();
    append(&logs.join("dir.log/inner.log"), &lines("inside", 5));
    append(&logs.join("dir.log/inner"), &lines("inside-plain", 5));
    let elsewhere = setup.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    append(&elsewhere.join("other.log"), &lines("linked-dir", 5));
    std::os::unix::fs::symlink(&elsewhere, logs.join("link.log")).unwrap();
    let fifo = logs.join("pipe.log");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let top = lines("top", 20);
    append(&logs.join("app.log"), &top);
    let agent = setup.start(setup.config(&["*.log"], &[], "")).await;
    setup.wait_for(&top, Duration::from_secs(20)).await;
    agent.stop().await;
    let arrived = setup.arrived().await;
    assert_eq!(
        arrived.len(),
        top.len(),
        "only app.log was read: {:?}",
        arrived
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .filter(|k| !k.starts_with("top"))
            .collect::<Vec<_>>()
    );
    // `**` goes into directories (not through directory symlinks, which could loop).
    let agent = setup.start(setup.config(&["**/*.log"], &[], "")).await;
    let inside = lines("inside", 5);
    setup.wait_for(&inside, Duration::from_secs(20)).await;
    agent.stop().await;
    let arrived = setup.arrived().await;
    assert!(
        arrived
            .keys()
            .all(|l| l.starts_with(b"top") || l.starts_with(b"inside line"))
    );
}

/// A long line read before the stream has been listed (the endpoint is slow to
/// answer) is cut to the stream's limit once known, not to the 1 MiB default: with a
/// stream that takes 2 MiB records, a 1.5 MB line arrives whole, in one record.
#[tokio::test(flavor = "multi_thread")]
async fn a_line_read_before_the_stream_is_listed_waits_for_the_streams_record_limit() {
    let server = crate::support::ServerProcess::start(&["--create-delay-ms", "0", "--no-limits"]);
    let client = crate::support::kinesis_client(&server.endpoint);
    client
        .create_stream()
        .stream_name("logs")
        .shard_count(1)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    client
        .update_max_record_size()
        .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/logs")
        .max_record_size_in_kib(2048)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let big = format!("big {}", "d".repeat(1_500_000)).into_bytes();
    append(&dir.path().join("app.log"), std::slice::from_ref(&big));
    // Frozen: the agent's calls connect and wait, so it reads before it lists.
    server.signal("STOP");
    let config = format!(
        "[agent]\nstate_dir = \"{}\"\nshutdown_grace_period_secs = 5\n[kinesis]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\n[[flows]]\nname = \"test\"\nstream = \"logs\"\nstart_at = \"start\"\ninclude = [\"{}\"]\nmax_record_bytes = 2097152\n",
        dir.path().join("state").display(),
        server.endpoint,
        dir.path().join("app.log").display(),
    );
    let agent = shardcar::agent::Agent::start(parse_config(&config), Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Reading has begun while the stream cannot be listed.
    eventually(Duration::from_secs(20), async || {
        (agent.flow_stats("test")?.bytes_read > 0).then_some(())
    })
    .await;
    server.signal("CONT");
    let records = eventually(Duration::from_secs(30), async || {
        let (users, _) =
            crate::support::kcl_user_records(&crate::support::read_stream(&client, "logs").await);
        let data: Vec<Vec<u8>> = users.into_iter().map(|(_, u)| u.data.to_vec()).collect();
        (data.iter().map(Vec::len).sum::<usize>() >= big.len()).then_some(data)
    })
    .await;
    agent.stop().await;
    assert_eq!(
        records.len(),
        1,
        "the line was cut into {} records",
        records.len()
    );
    assert!(records[0] == big, "the record is not the line");
}
