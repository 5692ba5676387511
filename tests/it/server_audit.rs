//! The audit trail: one CloudTrail-shaped line per call, errors with their codes,
//! data events only when asked for, and never a byte of record data.

use aws_sdk_kinesis::operation::RequestId;
use aws_sdk_kinesis::primitives::Blob;
use shardcar::server::audit::AuditLog;

use crate::support::{kinesis_client, start_server, test_server_config};

async fn audited_calls(data_events: bool) -> (Vec<serde_json::Value>, String, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("audit.jsonl");
    let mut config = test_server_config();
    config.audit = Some(std::sync::Arc::new(
        AuditLog::open(&path, data_events, "us-east-1", "000000000000")
            .unwrap_or_else(|e| panic!("{e}")),
    ));
    let server = start_server(config).await;
    let client = kinesis_client(&server.endpoint_url());
    let created = client
        .create_stream()
        .stream_name("audited")
        .shard_count(1)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let created_id = created.request_id().unwrap_or_default().to_owned();
    client
        .put_record()
        .stream_name("audited")
        .partition_key("pk-1")
        .data(Blob::new("top secret payload"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let _missing = client
        .describe_stream_summary()
        .stream_name("missing")
        .send()
        .await;
    server.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (events, text, created_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_management_call_is_recorded_with_who_what_and_how_it_ended() {
    let (events, text, created_id) = audited_calls(false).await;
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["eventName"].as_str())
        .collect();
    assert_eq!(names, ["CreateStream", "DescribeStreamSummary"], "{text}");
    let created = &events[0];
    assert_eq!(created["eventSource"], "kinesis.amazonaws.com");
    assert_eq!(created["awsRegion"], "us-east-1");
    assert_eq!(created["sourceIPAddress"], "127.0.0.1");
    assert_eq!(created["userIdentity"]["accessKeyId"], "AKIDTEST");
    assert_eq!(created["requestParameters"]["streamName"], "audited");
    assert_eq!(created["requestID"], created_id.as_str());
    assert_eq!(created["eventCategory"], "Management");
    assert!(created.get("errorCode").is_none());
    let failed = &events[1];
    assert_eq!(failed["errorCode"], "ResourceNotFoundException");
    assert!(
        failed["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("missing"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn data_events_are_recorded_when_asked_for_and_never_hold_record_data() {
    let (events, text, _) = audited_calls(true).await;
    let put = events
        .iter()
        .find(|e| e["eventName"] == "PutRecord")
        .unwrap_or_else(|| panic!("no PutRecord event: {text}"));
    assert_eq!(put["eventCategory"], "Data");
    assert_eq!(put["requestParameters"]["partitionKey"], "pk-1");
    assert!(put["requestParameters"].get("data").is_none());
    assert!(!text.contains("top secret"), "record data in the trail");
    assert!(
        !text.contains("dG9wIHNlY3JldCBwYXlsb2Fk"),
        "base64 record data in the trail"
    );
}
