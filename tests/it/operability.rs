//! What an operator sees: logs, `/health` and `/ready`, metrics, config errors, the AWS
//! settings for roles and STS, and commands in a pipeline. The real binary throughout.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent_safety::AgentProcess;
use crate::support::{Reaped, ServerProcess, eventually, kinesis_client, shardcar};

const DEAD_ENDPOINT: &str = "http://127.0.0.1:1";

fn write_config(dir: &Path, agent: &str, kinesis: &str, flow: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "[agent]\nstate_dir = \"{state}\"\nscan_interval_ms = 100\nshutdown_grace_period_secs = 1\n{agent}\n[kinesis]\nregion = \"us-east-1\"\n{kinesis}\n[[flows]]\nname = \"app\"\nstream = \"logs\"\nstart_at = \"start\"\ninclude = [\"{logs}/*.log\"]\n{flow}\n",
            state = dir.join("state").display(),
            logs = dir.join("logs").display(),
        ),
    )
    .unwrap();
    path
}

/// GET `path` on the agent's endpoint: the status and the body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The agent with stderr written to a file, as journald or a log file gets it.
fn agent_logging_to_file(config: &Path, log: &Path, args: &[&str]) -> Reaped {
    let child = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["run", "-c", config.to_str().unwrap()])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Reaped(child)
}

fn stop(mut child: Reaped) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn wait_for_file_text(path: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let content = std::fs::read_to_string(path).unwrap_or_default();
        if content.contains(text) {
            return content;
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the log within 20 s:\n{content}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn logs_to_a_file_have_no_escape_codes_and_json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "",
        &format!("endpoint_url = \"{DEAD_ENDPOINT}\""),
        "",
    );
    let text_log = dir.path().join("text.log");
    let agent = agent_logging_to_file(&config, &text_log, &[]);
    let content = wait_for_file_text(&text_log, "cannot deliver");
    stop(agent);
    assert!(
        !content.contains('\x1b'),
        "escape codes in a log file:\n{content}"
    );

    let json_log = dir.path().join("json.log");
    let agent = agent_logging_to_file(&config, &json_log, &["--log-format", "json"]);
    wait_for_file_text(&json_log, "cannot deliver");
    stop(agent);
    let content = std::fs::read_to_string(&json_log).unwrap();
    for line in content.lines().filter(|l| !l.is_empty()) {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        assert!(
            object["level"].is_string() && object["message"].is_string(),
            "{line}"
        );
    }
    let failure = content
        .lines()
        .find(|l| l.contains("cannot deliver"))
        .unwrap();
    let failure: serde_json::Value = serde_json::from_str(failure).unwrap();
    assert_eq!(failure["flow"], "app");
    assert_eq!(failure["stream.name"], "logs");
    assert_eq!(failure["trouble"], "endpoint unreachable");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_is_one_short_line_naming_flow_stream_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "metrics_listen = \"127.0.0.1:0\"",
        &format!("endpoint_url = \"{DEAD_ENDPOINT}\"\nretry_base_ms = 10\nretry_max_ms = 50"),
        "",
    );
    let mut agent = AgentProcess::start(&config);
    let port = agent.metrics_port();
    agent.wait_for_log("cannot deliver", Duration::from_secs(20));
    // Many failed calls later, still one line (the next is due a minute after).
    eventually(Duration::from_secs(20), async || {
        let (_, body) = get(port, "/metrics")?;
        let failures: f64 = body
            .lines()
            .find(|l| {
                l.starts_with("shardcar_failed_requests_total")
                    && l.contains("trouble=\"unreachable\"")
            })?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()?;
        (failures >= 20.0).then_some(())
    })
    .await;
    let lines: Vec<String> = agent
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("cannot deliver"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert!(line.len() < 600, "{} bytes: {line}", line.len());
    for part in [
        "flow=app",
        "stream.name=logs",
        "Connection refused",
        "endpoint_url",
    ] {
        assert!(line.contains(part), "no {part:?} in {line}");
    }
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_access_key_id_or_secret_in_any_log_even_at_trace() {
    let server = ServerProcess::start(&[
        "--no-limits",
        "--create-stream",
        "logs:1",
        "--create-delay-ms",
        "0",
    ]);
    const KEY_ID: &str = "AKIALEAKCHECK0000001";
    const SECRET: &str = "leak/check+secret/0000000000000000000000";
    let output = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args([
            "predict",
            "logs",
            "user-1",
            "--endpoint-url",
            &server.endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(" TRACE "),
        "trace logging was on:\n{stderr}"
    );
    assert!(!stderr.contains(KEY_ID), "access key id logged");
    assert!(!stderr.contains(SECRET), "secret logged");

    // And the agent, shipping a line with those credentials, at trace.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "",
        &format!("endpoint_url = \"{}\"", server.endpoint),
        "",
    );
    std::fs::write(dir.path().join("logs/app.log"), "one line\n").unwrap();
    let log = dir.path().join("agent.log");
    let agent = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["run", "-c", config.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .map(Reaped)
        .unwrap();
    let client = kinesis_client(&server.endpoint);
    eventually(Duration::from_secs(20), async || {
        let records = crate::support::read_stream(&client, "logs").await;
        (!records.is_empty()).then_some(())
    })
    .await;
    stop(agent);
    let content = std::fs::read_to_string(&log).unwrap();
    assert!(
        !content.contains(KEY_ID),
        "access key id logged by the agent"
    );
    assert!(!content.contains(SECRET), "secret logged by the agent");
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_while_the_stream_is_missing_and_200_once_it_exists() {
    let server = ServerProcess::start(&["--no-limits", "--create-delay-ms", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "metrics_listen = \"127.0.0.1:0\"\nready_after_failing_secs = 1",
        &format!("endpoint_url = \"{}\"\nretry_max_ms = 200", server.endpoint),
        "",
    );
    let mut agent = AgentProcess::start(&config);
    let port = agent.metrics_port();
    agent.wait_for_log("agent running", Duration::from_secs(20));
    assert_eq!(get(port, "/health").map(|r| r.0), Some(200));
    let body = eventually(Duration::from_secs(20), async || {
        get(port, "/ready")
            .filter(|(status, _)| *status == 503)
            .map(|r| r.1)
    })
    .await;
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["flows"][0]["flow"], "app");
    assert_eq!(ready["flows"][0]["stream"], "logs");
    assert_eq!(ready["flows"][0]["trouble"], "stream missing");
    assert!(
        agent
            .wait_for_log("stream missing", Duration::from_secs(1))
            .contains("ERROR")
    );
    kinesis_client(&server.endpoint)
        .create_stream()
        .stream_name("logs")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(20), async || {
        get(port, "/ready").filter(|(status, _)| *status == 200)
    })
    .await;
    agent.wait_for_log("delivering again", Duration::from_secs(5));
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_family_has_help_and_error_series_exist_from_the_start() {
    let server = ServerProcess::start(&[
        "--no-limits",
        "--create-stream",
        "logs:2",
        "--create-delay-ms",
        "0",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "metrics_listen = \"127.0.0.1:0\"",
        &format!("endpoint_url = \"{}\"", server.endpoint),
        "",
    );
    std::fs::write(dir.path().join("logs/app.log"), "a\nb\nc\n").unwrap();
    let mut agent = AgentProcess::start(&config);
    let port = agent.metrics_port();
    let body = eventually(Duration::from_secs(20), async || {
        get(port, "/metrics")
            .map(|r| r.1)
            .filter(|b| b.contains("shardcar_flow_delivered_records_total{flow=\"app\"} 3"))
    })
    .await;
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(10));
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.len() > 15, "{body}");
    for family in &families {
        assert!(
            body.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }
    let mut unique = families.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), families.len(), "a family declared twice");
    assert!(body.contains(&format!(
        "shardcar_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(
        body.contains("shardcar_failed_requests_total{stream=\"logs\",trouble=\"credentials\"} 0")
    );
    assert!(body.contains("shardcar_dead_lettered_records_total{stream=\"logs\"} 0"));
    assert!(body.contains("shardcar_put_records_seconds_bucket{stream=\"logs\",le="));
    assert!(
        !body.contains("shardcar_producer_throttled_entries_total"),
        "throttled entries are counted once, per stream and shard"
    );
}

#[test]
fn a_config_with_a_mistake_in_every_section_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        r#"
[agent]
max_in_flight_bytes = "8MiB"
metrics_listen = "localhost"

[kinesis]
regoin = "us-east-1"
endpoint_url = "ftp://kinesis"

[[flows]]
stream = "logs"
include = ["/var/log/*.log"]
partition_key = "sometimes"
transforms = ["log_to_json:nginx"]

[flows.aggregation]
lingr_ms = 5

[flows.throttle]
share = "half"
"#,
    )
    .unwrap();
    let output = shardcar(&["check-config", "-c", path.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "8 problems",
        "agent.max_in_flight_bytes = \"8MiB\": must be a whole number",
        "agent.metrics_listen = \"localhost\": must be an IP address and port",
        "kinesis.regoin: unknown key in [kinesis]; did you mean region?",
        "kinesis.endpoint_url = \"ftp://kinesis\": must be an http:// or https:// URL",
        "flows[0].partition_key = \"sometimes\": must be \"random\"",
        "flows[0].transforms[0] = \"log_to_json:nginx\": must be",
        "flows[0].aggregation.lingr_ms: unknown key in [flows[].aggregation]; did you mean linger_ms?",
        "flows[0].throttle.share = \"half\": must be a number",
    ] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn role_arn_sends_assume_role_to_the_sts_endpoint_not_the_kinesis_one() {
    let server = ServerProcess::start(&[
        "--no-limits",
        "--create-stream",
        "logs:1",
        "--create-delay-ms",
        "0",
    ]);
    let sts = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sts_port = sts.local_addr().unwrap().port();
    // A recording STS: it answers AssumeRole with temporary credentials.
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for connection in sts.incoming().flatten() {
            let mut reader = std::io::BufReader::new(connection);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            seen.lock()
                .unwrap()
                .push(format!("{head}\n{}", String::from_utf8_lossy(&body)));
            let expiry = "2099-01-01T00:00:00Z";
            let xml = format!(
                "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>ASIATEMPORARY</AccessKeyId><SecretAccessKey>temporary-secret</SecretAccessKey><SessionToken>token</SessionToken><Expiration>{expiry}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA:shardcar</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/shipper/shardcar</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"
            );
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "",
        &format!(
            "endpoint_url = \"{}\"\nrole_arn = \"arn:aws:iam::123456789012:role/shipper\"\nexternal_id = \"ext-42\"\nsts_endpoint_url = \"http://127.0.0.1:{sts_port}\"\nsts_region = \"eu-west-1\"",
            server.endpoint
        ),
        "",
    );
    std::fs::write(dir.path().join("logs/app.log"), "through a role\n").unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["run", "-c", config.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", "AKIASOURCE")
        .env("AWS_SECRET_ACCESS_KEY", "source-secret")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaped)
        .unwrap();
    let client = kinesis_client(&server.endpoint);
    eventually(Duration::from_secs(30), async || {
        let records = crate::support::read_stream(&client, "logs").await;
        records
            .iter()
            .any(|r| r.data.as_ref() == b"through a role")
            .then_some(())
    })
    .await;
    stop(agent);
    let requests = requests.lock().unwrap();
    let assume = requests
        .iter()
        .find(|r| r.contains("Action=AssumeRole"))
        .unwrap_or_else(|| panic!("no AssumeRole at the STS endpoint: {requests:#?}"));
    assert!(
        assume.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fshipper"),
        "{assume}"
    );
    assert!(assume.contains("ExternalId=ext-42"), "{assume}");
    assert!(
        assume.contains("/eu-west-1/sts/aws4_request"),
        "signed for sts_region: {assume}"
    );
}

#[test]
fn predict_and_decode_into_a_closed_pipe_end_quietly_with_exit_0() {
    let keys: Vec<String> = (0..20_000).map(|i| format!("key-{i}")).collect();
    let mut predict = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["predict", "--shards", "4"])
        .args(&keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(predict.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("shard_id"));
    let output = predict.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let record = base64_simd::STANDARD.encode_to_string(b"plain record");
    let input = format!("{record}\n").repeat(50_000);
    let mut decode = Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["decode", "--base64", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = decode.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut first = String::new();
    std::io::BufReader::new(decode.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = writer.join();
    let output = decode.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_unreadable_or_empty_ca_file_stops_the_agent_with_exit_78_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let config = write_config(
        dir.path(),
        "",
        &format!(
            "endpoint_url = \"https://127.0.0.1:1\"\nca_file = \"{}\"",
            missing.display()
        ),
        "",
    );
    let output = shardcar(&["run", "-c", config.to_str().unwrap()], b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("ca_file"),
        "{stderr}"
    );

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text\n").unwrap();
    let config = write_config(
        dir.path(),
        "",
        &format!(
            "endpoint_url = \"https://127.0.0.1:1\"\nca_file = \"{}\"",
            not_pem.display()
        ),
        "",
    );
    let output = shardcar(&["run", "-c", config.to_str().unwrap()], b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_profile_is_named_with_the_files_looked_in_and_the_providers() {
    let server = ServerProcess::start(&[
        "--no-limits",
        "--create-stream",
        "logs:1",
        "--create-delay-ms",
        "0",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let aws_config = dir.path().join("aws-config");
    std::fs::write(&aws_config, "[profile real]\nregion = us-east-1\n").unwrap();
    let config = write_config(
        dir.path(),
        "",
        &format!(
            "endpoint_url = \"{}\"\nprofile = \"ghost\"",
            server.endpoint
        ),
        "",
    );
    let mut agent = AgentProcess::start_with_env(
        &config,
        &[
            ("AWS_CONFIG_FILE", aws_config.to_str().unwrap()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("none").to_str().unwrap(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let warning = agent.wait_for_log("profile is in neither", Duration::from_secs(20));
    assert!(warning.contains("profile=ghost"), "{warning}");
    let refused = agent.wait_for_log("credentials refused", Duration::from_secs(30));
    assert!(
        refused.contains("profile \"ghost\"") && refused.contains("Ec2InstanceMetadata"),
        "names the profile asked for: {refused}"
    );
    assert!(
        refused.contains(aws_config.to_str().unwrap()),
        "names the file looked in: {refused}"
    );
    agent.signal("TERM");
    agent.wait_exit(Duration::from_secs(10));
}
