//! SigV4 verification in the shard server: the SDK's signed calls pass (the
//! producer's CBOR and JSON bodies included, swapped in before signing), and every
//! way to get a signature wrong gets AWS's error type and message.

use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use shardcar::config::BodyFormat;
use shardcar::kinesis::UserRecord;
use shardcar::producer::{Outcome, Producer, ProducerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{kinesis_client, start_server, verifying_server_config};

fn client_with(endpoint: &str, key: &str, secret: &str) -> aws_sdk_kinesis::Client {
    crate::support::kinesis_client_as(endpoint, key, secret, None)
}

/// The producer's PutRecords, in both body formats, pass verification: the body the
/// signature covers is the body sent, with its content type.
#[tokio::test(flavor = "multi_thread")]
async fn the_producers_signed_cbor_and_json_bodies_are_accepted() {
    let server = start_server(verifying_server_config()).await;
    let endpoint = server.endpoint_url();
    let admin = kinesis_client(&endpoint);
    admin
        .create_stream()
        .stream_name("signed")
        .shard_count(2)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    for format in [BodyFormat::Cbor, BodyFormat::Json] {
        let mut config = ProducerConfig::new("signed");
        config.body_format = format;
        config.throttle.enabled = false;
        let (handle, mut acks) =
            Producer::start::<u64>(config, client_with(&endpoint, "AKIDTEST", "secret"));
        handle
            .send_batch((0..500u64).map(|i| (UserRecord::spread(format!("signed {i}")), i)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut delivered = 0;
        while delivered < 500 {
            let batch = tokio::time::timeout(Duration::from_secs(30), acks.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{format:?}: {delivered} of 500 within 30 s; health {:?}",
                        handle.health()
                    )
                })
                .unwrap_or_else(|| panic!("{format:?}: the producer stopped"));
            for ack in batch {
                assert!(
                    matches!(ack.outcome, Outcome::Delivered { .. }),
                    "{format:?}: {:?}",
                    ack.outcome
                );
                delivered += 1;
            }
        }
        handle.shutdown(Duration::from_secs(5)).await;
    }
    server.shutdown().await;
}

/// A wrong secret, an unknown key: the SDK's calls are refused with AWS's answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_or_an_unknown_key_is_refused_as_aws_refuses_it() {
    let server = start_server(verifying_server_config()).await;
    let endpoint = server.endpoint_url();
    let refused = client_with(&endpoint, "AKIDTEST", "not-the-secret")
        .list_streams()
        .send()
        .await
        .err()
        .unwrap_or_else(|| panic!("a wrong secret was accepted"));
    assert_eq!(
        refused.code(),
        Some("InvalidSignatureException"),
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .is_some_and(|m| m.starts_with("The request signature we calculated does not match")),
        "{refused:?}"
    );
    let unknown = client_with(&endpoint, "AKIDUNKNOWN", "secret")
        .list_streams()
        .send()
        .await
        .err()
        .unwrap_or_else(|| panic!("an unknown key was accepted"));
    assert_eq!(
        unknown.code(),
        Some("UnrecognizedClientException"),
        "{unknown:?}"
    );
    assert_eq!(
        unknown.message(),
        Some("The security token included in the request is invalid.")
    );
    server.shutdown().await;
}

/// Raw requests: unsigned, half a header, an old date.
#[tokio::test(flavor = "multi_thread")]
async fn unsigned_malformed_and_expired_requests_get_awss_errors() {
    let server = start_server(verifying_server_config()).await;
    let addr = server.local_addr();
    let send = |extra: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 2\r\nConnection: close\r\n{extra}\r\n{{}}"
        )
    };
    let exchange = |request: String| async move {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        stream
            .write_all(request.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("no answer"))
            .unwrap_or_else(|e| panic!("{e}"));
        answer
    };
    let unsigned = exchange(send("")).await;
    assert!(unsigned.starts_with("HTTP/1.1 403"), "{unsigned}");
    assert!(
        unsigned.contains("MissingAuthenticationTokenException"),
        "{unsigned}"
    );

    let half = exchange(send("Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20261202/us-east-1/kinesis/aws4_request\r\nX-Amz-Date: 20261202T000000Z\r\n")).await;
    assert!(half.contains("IncompleteSignatureException"), "{half}");
    assert!(
        half.contains("Authorization header requires 'Signature' parameter."),
        "{half}"
    );

    let old = exchange(send("Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20200101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\nX-Amz-Date: 20200101T000000Z\r\n")).await;
    assert!(old.contains("InvalidSignatureException"), "{old}");
    assert!(
        old.contains("Signature expired: 20200101T000000Z is now earlier than"),
        "{old}"
    );
    server.shutdown().await;
}

/// A presigned GetRecords URL (botocore's query-string signer) is served while it
/// lives and refused once expired, against a server that knows the key.
#[test]
fn a_presigned_get_records_url_works_until_it_expires() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, "AKIDPRESIGN presign-secret\n").unwrap_or_else(|e| panic!("{e}"));
    let server = crate::support::ServerProcess::start(&[
        "--credentials-file",
        credentials.to_str().unwrap_or_default(),
        "--create-delay-ms",
        "0",
    ]);
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/presigned.py");
    let output = std::process::Command::new(crate::server_python::python_env().join("bin/python"))
        .arg(script)
        .args([server.endpoint.as_str(), "AKIDPRESIGN", "presign-secret"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("presigned ok"));
}

/// An identity with a session token (temporary credentials) must send it; a
/// long-term key must not send one.
#[tokio::test(flavor = "multi_thread")]
async fn temporary_credentials_are_accepted_only_with_their_session_token() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "ASIATEMP temp-secret 123456789012 FwoGZXIvYXdzEJr//token\nAKIDLONG long-secret\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut config = crate::support::test_server_config();
    config.identities = Some(std::sync::Arc::new(
        shardcar::server::auth::Identities::load(&credentials).unwrap_or_else(|e| panic!("{e}")),
    ));
    let server = start_server(config).await;
    let endpoint = server.endpoint_url();
    let with_token = |key: &str, secret: &str, token: Option<&str>| {
        crate::support::kinesis_client_as(&endpoint, key, secret, token)
    };
    let code = async |client: aws_sdk_kinesis::Client| {
        client
            .list_streams()
            .send()
            .await
            .err()
            .map(|e| e.code().unwrap_or("no code").to_owned())
    };
    let token = Some("FwoGZXIvYXdzEJr//token");
    assert_eq!(
        code(with_token("ASIATEMP", "temp-secret", token)).await,
        None
    );
    assert_eq!(
        code(with_token("ASIATEMP", "temp-secret", None))
            .await
            .as_deref(),
        Some("UnrecognizedClientException")
    );
    assert_eq!(
        code(with_token("ASIATEMP", "temp-secret", Some("another")))
            .await
            .as_deref(),
        Some("UnrecognizedClientException")
    );
    assert_eq!(
        code(with_token("AKIDLONG", "long-secret", None)).await,
        None
    );
    assert_eq!(
        code(with_token("AKIDLONG", "long-secret", token))
            .await
            .as_deref(),
        Some("UnrecognizedClientException")
    );
    server.shutdown().await;
}
