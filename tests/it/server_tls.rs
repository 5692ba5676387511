//! The shard server over HTTPS with a CA it made itself: the AWS CLI trusts it through
//! `AWS_CA_BUNDLE`, the agent through `ca_file`.

use std::time::Duration;

use crate::agent_support::{append, lines};
use crate::server_python::aws_command as aws;
use crate::support::ServerProcess;

fn https_server(dir: &std::path::Path) -> (ServerProcess, String, std::path::PathBuf) {
    let tls_dir = dir.join("tls");
    // Signatures are verified too: the CLI (botocore's signer) and the agent must both
    // sign as AWS expects.
    let credentials = dir.join("credentials");
    std::fs::write(&credentials, "test test\nshardcar-local shardcar-local\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let audit = dir.join("audit.jsonl");
    let server = ServerProcess::start(&[
        "--audit-log",
        audit.to_str().unwrap_or_else(|| panic!("utf-8 path")),
        "--audit-data-events",
        "--tls-self-signed",
        tls_dir.to_str().unwrap_or_else(|| panic!("utf-8 path")),
        "--credentials-file",
        credentials.to_str().unwrap_or_else(|| panic!("utf-8 path")),
        "--create-delay-ms",
        "0",
    ]);
    let endpoint = server.endpoint.replacen("http://", "https://", 1);
    (server, endpoint, tls_dir.join("ca.pem"))
}

/// The CLI refuses the server's certificate until told to trust its CA, and then
/// creates a stream over HTTPS, its signature verified; the agent ships lines to that
/// stream with `ca_file`, and `consume --efo` reads them back pushed by
/// SubscribeToShard over the same HTTPS.
#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_and_the_agent_reach_a_self_signed_https_server_through_its_ca() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_server, endpoint, ca) = https_server(dir.path());

    let untrusted = aws(&endpoint, None, &["list-streams"]);
    assert!(
        !untrusted.status.success(),
        "a certificate nobody trusts was accepted"
    );
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("SSL"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    let created = aws(
        &endpoint,
        Some(&ca),
        &[
            "create-stream",
            "--stream-name",
            "tls",
            "--shard-count",
            "2",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("{e}"));
    let sent = lines("over tls", 2_000);
    append(&logs.join("app.log"), &sent);
    let config = format!(
        "[agent]\nstate_dir = \"{}\"\nshutdown_grace_period_secs = 5\n[kinesis]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\nca_file = \"{}\"\n[[flows]]\nname = \"tls\"\nstream = \"tls\"\nstart_at = \"start\"\ninclude = [\"{}/*.log\"]\n",
        dir.path().join("state").display(),
        ca.display(),
        logs.display(),
    );
    let config =
        shardcar::config::Config::parse(&config, "test config").unwrap_or_else(|e| panic!("{e}"));
    let agent = shardcar::agent::Agent::start(config, Default::default())
        .await
        .unwrap_or_else(|e| panic!("agent: {e}"));
    let settings = shardcar::config::KinesisConfig {
        endpoint_url: Some(endpoint.clone()),
        region: Some("us-east-1".to_owned()),
        ca_file: Some(ca.clone()),
        ..Default::default()
    };
    let client = shardcar::aws::kinesis_client(&settings, shardcar::aws::Purpose::General)
        .await
        .unwrap_or_else(|e| panic!("client: {e}"));
    let expected: std::collections::HashSet<Vec<u8>> = sent.into_iter().collect();
    crate::support::eventually(Duration::from_secs(30), async || {
        let (users, _) =
            crate::support::kcl_user_records(&crate::support::read_stream(&client, "tls").await);
        let got: std::collections::HashSet<Vec<u8>> =
            users.into_iter().map(|(_, u)| u.data.to_vec()).collect();
        (got == expected).then_some(())
    })
    .await;
    agent.stop().await;

    let consumed = std::process::Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args(["consume", "tls", "--efo", "--endpoint-url", &endpoint])
        .env("AWS_CA_BUNDLE", &ca)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let read: std::collections::HashSet<Vec<u8>> = String::from_utf8_lossy(&consumed.stdout)
        .lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            value["data"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        })
        .collect();
    assert_eq!(
        read, expected,
        "consume --efo read other lines than were shipped"
    );
    // The trail is written out once a second.
    crate::support::eventually_explained(Duration::from_secs(10), async || {
        let trail = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default();
        let called = |name: &str| trail.contains(&format!("\"eventName\":\"{name}\""));
        match [
            "RegisterStreamConsumer",
            "SubscribeToShard",
            "DeregisterStreamConsumer",
        ]
        .into_iter()
        .find(|name| !called(name))
        {
            None => Ok(()),
            Some(missing) => Err(format!("no {missing} in the audit trail")),
        }
    })
    .await;
}
