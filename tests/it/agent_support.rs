//! Plumbing for agent tests: a server, an agent on a temp directory, and reading back
//! which lines arrived.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shardcar::agent::{Agent, RunOptions, RunningAgent};
use shardcar::config::Config;
use shardcar::server::RunningServer;

use crate::support::{
    eventually_explained, kcl_user_records, kinesis_client, read_stream, start_server,
    verifying_server_config,
};

pub struct Setup {
    pub server: RunningServer,
    pub client: aws_sdk_kinesis::Client,
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub async fn new(shards: i32) -> Setup {
        Setup::on(verifying_server_config(), shards).await
    }

    /// A setup whose server runs with `config` (which must know the test keys).
    pub async fn on(config: shardcar::server::ServerConfig, shards: i32) -> Setup {
        Setup::with_stream(config, Some(shards)).await
    }

    /// A setup whose stream is ON_DEMAND (four shards to start with).
    pub async fn on_demand(config: shardcar::server::ServerConfig) -> Setup {
        Setup::with_stream(config, None).await
    }

    /// `shards` for a PROVISIONED stream, `None` for an ON_DEMAND one.
    async fn with_stream(config: shardcar::server::ServerConfig, shards: Option<i32>) -> Setup {
        use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails};
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let server = start_server(config).await;
        let client = kinesis_client(&server.endpoint_url());
        let create = client.create_stream().stream_name("logs");
        let create = match shards {
            Some(shards) => create.shard_count(shards),
            None => create.stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::OnDemand)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
        };
        create.send().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        Setup {
            server,
            client,
            dir,
        }
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A config for one flow over `include` (relative to the logs directory) with extra
    /// flow settings appended.
    pub fn config(&self, include: &[&str], exclude: &[&str], extra: &str) -> Config {
        parse_config(&self.config_text(include, exclude, extra))
    }

    /// The text of [`Setup::config`], for tests that change its defaults.
    pub fn config_text(&self, include: &[&str], exclude: &[&str], extra: &str) -> String {
        let list = |patterns: &[&str]| {
            patterns
                .iter()
                .map(|p| format!("\"{}/{p}\"", self.logs().display()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            r#"
[agent]
state_dir = "{state}"
scan_interval_ms = 100
shutdown_grace_period_secs = 10
[kinesis]
endpoint_url = "{endpoint}"
region = "us-east-1"
[[flows]]
name = "test"
stream = "logs"
start_at = "start"
include = [{include}]
exclude = [{exclude}]
flush_partial_line_after_ms = 300
{extra}
[flows.aggregation]
linger_ms = 20
"#,
            state = self.state().display(),
            endpoint = self.server.endpoint_url(),
            include = list(include),
            exclude = list(exclude),
        )
    }

    pub async fn start(&self, config: Config) -> RunningAgent {
        self.start_with(config, RunOptions::default()).await
    }

    pub async fn start_with(&self, config: Config, options: RunOptions) -> RunningAgent {
        Agent::start(config, options).await.expect("agent starts")
    }

    /// Every user record in the stream, as text, with how often each arrived.
    pub async fn arrived(&self) -> HashMap<Vec<u8>, usize> {
        let (users, _) = kcl_user_records(&read_stream(&self.client, "logs").await);
        let mut counts = HashMap::new();
        for (_, user) in users {
            *counts.entry(user.data.to_vec()).or_insert(0) += 1;
        }
        counts
    }

    /// Waits until every one of `lines` arrived at least once; returns the counts.
    pub async fn wait_for(&self, lines: &[Vec<u8>], within: Duration) -> HashMap<Vec<u8>, usize> {
        eventually_explained(within, async || {
            let arrived = self.arrived().await;
            match lines.iter().filter(|l| !arrived.contains_key(*l)).count() {
                0 => Ok(arrived),
                missing => Err(format!("{missing} of {} lines missing", lines.len())),
            }
        })
        .await
    }
}

pub fn parse_config(text: &str) -> Config {
    Config::parse(text, "test config").unwrap_or_else(|e| panic!("{e}"))
}

/// Appends lines to a file (creating it), each ending in a newline.
pub fn append(path: &Path, lines: &[Vec<u8>]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        file.write_all(line).unwrap();
        file.write_all(b"\n").unwrap();
    }
}

/// Rotates as logrotate's `copytruncate` does: copies the file to `copy`, then
/// truncates it in place while its writer keeps it open.
pub fn copy_truncate(path: &Path, copy: &Path) {
    std::fs::copy(path, copy).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// `n` distinct lines tagged with `tag`.
pub fn lines(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{tag} line {i:06} {}", "x".repeat(40)).into_bytes())
        .collect()
}
