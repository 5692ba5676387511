//! The AWS CLI and boto3, installed from PyPI into a virtualenv, against the real binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::support::ServerProcess;

/// A virtualenv with awscli and boto3 under the target directory, made once.
pub fn python_env() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("aws-venv");
        if !venv.join("bin/aws").exists() {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("run python3 -m venv");
            assert!(made.success(), "python3 -m venv failed");
            let installed = Command::new(venv.join("bin/pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "awscli",
                    "boto3",
                ])
                .status()
                .expect("run pip");
            assert!(
                installed.success(),
                "pip install awscli boto3 failed (PyPI must be reachable)"
            );
        }
        venv
    })
    .clone()
}

/// Runs `aws kinesis ARGS` against `endpoint` with test credentials and no config
/// files; `ca` is the CA bundle to trust (`AWS_CA_BUNDLE`), for HTTPS endpoints.
pub fn aws_command(
    endpoint: &str,
    ca: Option<&std::path::Path>,
    args: &[&str],
) -> std::process::Output {
    let mut command = Command::new(python_env().join("bin/aws"));
    command
        .args(["kinesis", "--endpoint-url", endpoint, "--output", "json"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    if let Some(ca) = ca {
        command.env("AWS_CA_BUNDLE", ca);
    }
    command.output().expect("run aws")
}

fn aws(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let output = aws_command(endpoint, None, args);
    assert!(
        output.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&output.stdout).expect("aws printed JSON")
}

#[test]
fn aws_cli_writes_and_reads_back_a_record() {
    let server = ServerProcess::start(&["--create-delay-ms", "0"]);
    let endpoint = server.endpoint.as_str();
    aws(
        endpoint,
        &[
            "create-stream",
            "--stream-name",
            "test",
            "--shard-count",
            "1",
        ],
    );
    let put = aws(
        endpoint,
        &[
            "put-record",
            "--stream-name",
            "test",
            "--partition-key",
            "user1",
            "--data",
            "user signup",
        ],
    );
    assert_eq!(put["ShardId"], "shardId-000000000000");
    let described = aws(endpoint, &["describe-stream", "--stream-name", "test"]);
    assert_eq!(described["StreamDescription"]["StreamStatus"], "ACTIVE");
    let iterator = aws(
        endpoint,
        &[
            "get-shard-iterator",
            "--stream-name",
            "test",
            "--shard-id",
            "shardId-000000000000",
            "--shard-iterator-type",
            "TRIM_HORIZON",
        ],
    );
    let records = aws(
        endpoint,
        &[
            "get-records",
            "--shard-iterator",
            iterator["ShardIterator"].as_str().unwrap(),
        ],
    );
    let record = &records["Records"][0];
    let data = base64_simd::STANDARD
        .decode_to_vec(record["Data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, b"user signup");
    assert_eq!(record["PartitionKey"], "user1");
    assert_eq!(record["SequenceNumber"], put["SequenceNumber"]);
    let shards = aws(endpoint, &["list-shards", "--stream-name", "test"]);
    assert_eq!(shards["Shards"].as_array().unwrap().len(), 1);
}

/// Runs `tests/python/SCRIPT ARGS...` in the virtualenv; what it printed, after
/// checking that it exited 0.
fn run_python(script: &str, args: &[&str]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let output = Command::new(python_env().join("bin/python"))
        .arg(path)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn boto3_round_trip() {
    let server = ServerProcess::start(&[]);
    assert!(run_python("boto3_roundtrip.py", &[&server.endpoint]).contains("boto3 ok"));
}

/// boto3 calls every action the server answers (all 39 of the Kinesis Data Streams
/// API) with valid input, then a table of invalid inputs that must get Kinesis's
/// exact error types and messages (`tests/python/all_actions.py`).
#[test]
fn boto3_calls_every_action_and_gets_kinesis_errors_for_invalid_input() {
    let server = ServerProcess::start(&["--create-delay-ms", "0", "--account-id", "123456789012"]);
    let actions = shardcar::server::actions();
    assert_eq!(actions.len(), 39, "{actions:?}");
    let mut args = vec![server.endpoint.as_str(), "123456789012"];
    args.extend(&actions);
    assert!(run_python("all_actions.py", &args).contains("all actions ok"));
}

/// boto3's Firehose client: DirectPut delivery streams deliver GZIP objects on a 1 s
/// interval and plain ones when the size hint is reached, to `--s3-dir`
/// (`tests/python/firehose_s3.py`).
#[test]
fn boto3_firehose_delivers_objects_to_the_s3_directory() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s3_dir = dir.path().to_str().unwrap_or_default().to_owned();
    let server = ServerProcess::start(&["--s3-dir", &s3_dir]);
    assert!(run_python("firehose_s3.py", &[&server.endpoint, &s3_dir]).contains("firehose ok"));
}

/// boto3's Firehose client: an HTTP endpoint destination delivers to a local endpoint
/// with Firehose's protocol, a failing one ends in backup objects under the error
/// prefix, and every Firehose action is called with valid and invalid input
/// (`tests/python/firehose_api.py`).
#[test]
fn boto3_firehose_http_endpoints_and_every_action() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s3_dir = dir.path().to_str().unwrap_or_default().to_owned();
    let server = ServerProcess::start(&["--s3-dir", &s3_dir]);
    let mut args = vec![server.endpoint.as_str(), s3_dir.as_str()];
    args.extend(shardcar::server::firehose::ACTIONS);
    assert!(run_python("firehose_api.py", &args).contains("firehose api ok"));
}
