//! IAM-style authorization: identity policies from `--policy-file` and the streams'
//! resource policies decide who may call what, with AWS's AccessDeniedException.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use shardcar::server::ServerConfig;
use shardcar::server::audit::AuditLog;
use shardcar::server::auth::Identities;
use shardcar::server::policy::Policies;

use crate::agent_support::{Setup, append, lines};
use crate::support::{start_server, test_server_config};

/// The test keys, each a user of its own: `AKIDTEST` (the tests' admin),
/// `shardcar-local` (the agent) and `AKIDREADER`.
fn identities() -> Arc<Identities> {
    Arc::new(Identities::new([
        ("AKIDTEST", "secret"),
        ("shardcar-local", "shardcar-local"),
        ("AKIDREADER", "reader-secret"),
    ]))
}

fn policies(value: serde_json::Value) -> Arc<Policies> {
    Arc::new(Policies::from_value(&value).unwrap_or_else(|p| panic!("{p:?}")))
}

fn client_as(endpoint: &str, key: &str, secret: &str) -> aws_sdk_kinesis::Client {
    crate::support::kinesis_client_as(endpoint, key, secret, None)
}

const LOGS: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/logs";

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_ships_under_a_policy_that_denies_consume_its_reads_and_the_trail_shows_both() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let audit_path = dir.path().join("audit.jsonl");
    let mut config = test_server_config();
    config.identities = Some(identities());
    config.policies = Some(policies(serde_json::json!({
        "AKIDTEST": {"UserName": "admin", "Policies": [{"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]},
        "shardcar-local": {"UserName": "agent", "Policies": [{"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow",
                "Action": ["kinesis:PutRecords", "kinesis:DescribeStreamSummary", "kinesis:ListShards"],
                "Resource": LOGS}]}]},
        "AKIDREADER": {"UserName": "reader", "Policies": [{"Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "kinesis:GetRecords", "Resource": LOGS}]}]}
    })));
    config.audit = Some(Arc::new(
        AuditLog::open(&audit_path, true, "us-east-1", "000000000000")
            .unwrap_or_else(|e| panic!("{e}")),
    ));
    let setup = Setup::on(config, 2).await;
    let written = lines("policy-secret-line", 300);
    append(&setup.logs().join("app.log"), &written);
    let agent = setup.start(setup.config(&["*.log"], &[], "")).await;
    let arrived = setup.wait_for(&written, Duration::from_secs(30)).await;
    assert_eq!(arrived.len(), written.len());
    agent.stop().await;

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shardcar"))
        .args([
            "consume",
            "logs",
            "--endpoint-url",
            &setup.server.endpoint_url(),
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDREADER")
        .env("AWS_SECRET_ACCESS_KEY", "reader-secret")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "consume read a denied stream");
    assert!(output.stdout.is_empty(), "records came out: {stderr}");
    assert!(stderr.contains("AccessDeniedException"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "User: arn:aws:iam::000000000000:user/reader is not authorized to perform: kinesis:GetRecords on resource: {LOGS} with an explicit deny in an identity-based policy"
        )),
        "{stderr}"
    );

    setup.server.shutdown().await;
    let text = std::fs::read_to_string(&audit_path).unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let by = |name: &str, key: &str| {
        events
            .iter()
            .filter(|e| e["eventName"] == name && e["userIdentity"]["accessKeyId"] == key)
            .collect::<Vec<_>>()
    };
    let puts = by("PutRecords", "shardcar-local");
    assert!(!puts.is_empty(), "no PutRecords by the agent:\n{text}");
    assert!(puts.iter().all(|e| e.get("errorCode").is_none()), "{text}");
    let gets = by("GetRecords", "AKIDREADER");
    assert!(!gets.is_empty(), "no GetRecords by the reader:\n{text}");
    assert!(
        gets.iter()
            .all(|e| e["errorCode"] == "AccessDeniedException"),
        "{text}"
    );
    assert!(
        !text.contains("policy-secret-line"),
        "record data in the trail"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_policy_grants_a_user_without_identity_policy_until_it_is_deleted() {
    let mut config: ServerConfig = test_server_config();
    config.identities = Some(identities());
    config.policies = Some(policies(serde_json::json!({
        "AKIDTEST": {"UserName": "admin", "Policies": [{
            "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]},
        "AKIDREADER": {"UserName": "reader", "Policies": []}
    })));
    let server = start_server(config).await;
    let admin = client_as(&server.endpoint_url(), "AKIDTEST", "secret");
    let reader = client_as(&server.endpoint_url(), "AKIDREADER", "reader-secret");
    admin
        .create_stream()
        .stream_name("logs")
        .shard_count(1)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let describe = async || {
        reader
            .describe_stream_summary()
            .stream_name("logs")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| (e.code().map(str::to_owned), e.message().map(str::to_owned)))
    };
    let (code, message) = describe().await.unwrap_err();
    assert_eq!(code.as_deref(), Some("AccessDeniedException"));
    assert_eq!(
        message.as_deref(),
        Some(
            format!("User: arn:aws:iam::000000000000:user/reader is not authorized to perform: kinesis:DescribeStreamSummary on resource: {LOGS} because no identity-based policy allows the kinesis:DescribeStreamSummary action").as_str()
        )
    );

    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::000000000000:user/reader"},
        "Action": ["kinesis:DescribeStreamSummary"],
        "Resource": LOGS}]})
    .to_string();
    admin
        .put_resource_policy()
        .resource_arn(LOGS)
        .policy(&policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let stored = admin
        .get_resource_policy()
        .resource_arn(LOGS)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(stored.policy(), policy);
    describe().await.unwrap_or_else(|e| panic!("{e:?}"));

    admin
        .delete_resource_policy()
        .resource_arn(LOGS)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        describe().await.unwrap_err().0.as_deref(),
        Some("AccessDeniedException")
    );

    // A policy the server cannot evaluate is refused, not stored.
    let refused = admin
        .put_resource_policy()
        .resource_arn(LOGS)
        .policy(r#"{"Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("InvalidArgumentException"));
    assert!(
        refused
            .message()
            .is_some_and(|m| m.contains("Principal: missing")),
        "{refused:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_policy_survives_a_restart_of_a_server_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config = test_server_config();
    config.data_dir = Some(dir.path().to_owned());
    let policy = serde_json::json!({"Statement": [{"Effect": "Deny", "Principal": "*",
        "Action": "kinesis:DeleteStream", "Resource": LOGS}]})
    .to_string();
    let server = start_server(config.clone()).await;
    let client = client_as(&server.endpoint_url(), "AKIDTEST", "secret");
    client
        .create_stream()
        .stream_name("logs")
        .shard_count(1)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    client
        .put_resource_policy()
        .resource_arn(LOGS)
        .policy(&policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    server.shutdown().await;

    let server = start_server(config).await;
    let client = client_as(&server.endpoint_url(), "AKIDTEST", "secret");
    let stored = client
        .get_resource_policy()
        .resource_arn(LOGS)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(stored.policy(), policy);
    server.shutdown().await;
}
