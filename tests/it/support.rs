//! Shared test plumbing: paths to test data and running the real binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub fn data_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(relative)
}

pub fn read_json(relative: &str) -> serde_json::Value {
    let path = data_path(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn b64(text: &str) -> Vec<u8> {
    base64_simd::STANDARD
        .decode_to_vec(text)
        .unwrap_or_else(|e| panic!("bad base64 in test data {text:?}: {e}"))
}

/// Runs the real `shardcar` binary with `args`, feeding `stdin`.
pub fn shardcar(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardcar");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait for shardcar")
}

/// The JSON lines a command printed on stdout.
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use shardcar::server::{RunningServer, Server, ServerConfig};

/// Starts the real shard server in-process on a free loopback port.
pub async fn start_server(config: ServerConfig) -> RunningServer {
    Server::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("start shard server")
}

/// A real `aws-sdk-kinesis` client pointed at `endpoint`, with static test credentials.
pub fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    kinesis_client_in(endpoint, "us-east-1")
}

/// [`kinesis_client`] configured for `region` (which its signatures then name).
pub fn kinesis_client_in(endpoint: &str, region: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A real `aws-sdk-firehose` client pointed at `endpoint`, with the test credentials.
pub fn firehose_client(endpoint: &str) -> aws_sdk_firehose::Client {
    let config = aws_sdk_firehose::Config::builder()
        .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
        .region(aws_sdk_firehose::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_firehose::Client::from_conf(config)
}

/// A real client signing as `key`/`secret` (and `session_token`), without retries, so
/// that a refusal is seen as the server gave it.
pub fn kinesis_client_as(
    endpoint: &str,
    key: &str,
    secret: &str,
    session_token: Option<&str>,
) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            key,
            secret,
            session_token.map(str::to_owned),
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// Server config for API tests: no status delay, no throughput limits (tests of the
/// limits turn them on with a frozen clock, so refills happen only when advanced).
pub fn test_server_config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.store.status_delay_ms = 0;
    config.store.limits = false;
    config
}

/// [`test_server_config`] that verifies every request's signature: the test clients'
/// key (`AKIDTEST`) and the agent's for a loopback endpoint (`shardcar-local`) are
/// known, so a signing bug fails here as it would on AWS.
pub fn verifying_server_config() -> ServerConfig {
    let mut config = test_server_config();
    config.identities = Some(std::sync::Arc::new(
        shardcar::server::auth::Identities::new([
            ("AKIDTEST", "secret"),
            ("shardcar-local", "shardcar-local"),
        ]),
    ));
    config
}

/// Limits on, on a clock that moves only when the test advances it.
pub fn limited_server_config() -> ServerConfig {
    let mut config = test_server_config();
    config.store.limits = true;
    config.clock = shardcar::server::Clock::frozen();
    config
}

/// Polls `check` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T>(
    deadline: std::time::Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    eventually_explained(deadline, async || check().await.ok_or("not yet")).await
}

/// Polls `check` until it returns `Ok`, or panics after `deadline` with what the last
/// `Err` said (how far it got).
pub async fn eventually_explained<T, E: std::fmt::Display>(
    deadline: std::time::Duration,
    mut check: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(why) => assert!(
                start.elapsed() < deadline,
                "condition not met within {deadline:?}: {why}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The real `shardcar server` binary, as a child process.
pub struct ServerProcess {
    /// Killed and reaped with the `ServerProcess`.
    pub child: Reaped,
    pub endpoint: String,
}

impl ServerProcess {
    /// Starts `shardcar server --listen 127.0.0.1:0 ARGS...` and waits for `listening on`.
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::start_on("127.0.0.1:0", args)
    }

    /// Starts the server on a given address (to come back on the same port).
    pub fn start_on(listen: &str, args: &[&str]) -> ServerProcess {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_shardcar"))
            .args(["server", "--listen", listen])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn shardcar server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        ServerProcess {
            child: Reaped(child),
            endpoint: format!("http://{addr}"),
        }
    }

    /// Sends a signal by name (`STOP` freezes the server with its port held: calls
    /// connect and wait, as against a hung endpoint; `CONT` resumes it).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -{name}: {e}"));
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process (a server or agent the test started) that is killed and reaped
/// when dropped: a test that fails before stopping it must not leave it running.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        // After a wait this does nothing: std never signals a reaped child.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One Kinesis record as read back, with the shard it was read from.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub shard_id: String,
    pub range: shardcar::kinesis::HashKeyRange,
    pub partition_key: String,
    pub data: bytes::Bytes,
}

/// Reads every shard of `stream` (open and closed) from TRIM_HORIZON to its end or tip.
pub async fn read_stream(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<ReadRecord> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    use shardcar::kinesis::{HashKey, HashKeyRange};
    let mut out = Vec::new();
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("list shards");
    for shard in shards.shards() {
        let range = shard.hash_key_range().expect("range");
        let range = HashKeyRange {
            start: HashKey(range.starting_hash_key().parse().expect("start")),
            end: HashKey(range.ending_hash_key().parse().expect("end")),
        };
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator
            .expect("iterator string");
        loop {
            let page = match client.get_records().shard_iterator(&iterator).send().await {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()) =>
                {
                    // The shard's read limit (5 calls, 2 MiB per second): wait as a consumer must.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => panic!("get records: {e:?}"),
            };
            for record in page.records() {
                out.push(ReadRecord {
                    shard_id: shard.shard_id().to_owned(),
                    range,
                    partition_key: record.partition_key().unwrap_or_default().to_owned(),
                    data: bytes::Bytes::copy_from_slice(record.data().as_ref()),
                });
            }
            match page.next_shard_iterator {
                Some(next) if !page.records().is_empty() => iterator = next,
                _ => break,
            }
        }
    }
    out
}

/// The user records a KCL 2.x consumer would deliver from `records`: deaggregated, with
/// any aggregate whose sub-records leave its shard's range dropped whole.
pub fn kcl_user_records(
    records: &[ReadRecord],
) -> (Vec<(String, shardcar::kinesis::UserRecord)>, usize) {
    use shardcar::kinesis::aggregation::deaggregate_for_shard;
    let mut out = Vec::new();
    let mut dropped = 0;
    for record in records {
        let (result, check) =
            deaggregate_for_shard(&record.partition_key, &record.data, record.range);
        if check.is_err() {
            dropped += 1;
        }
        out.extend(
            result
                .records
                .into_iter()
                .map(|r| (record.shard_id.clone(), r)),
        );
    }
    (out, dropped)
}
