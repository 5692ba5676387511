//! Malformed requests get their Kinesis error type, and the server keeps serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use proptest::prelude::*;
use shardcar::server::wire::Format;
use shardcar::server::{Clock, Store, StoreConfig};

use crate::support::{start_server, test_server_config};

/// A SigV4 `Authorization` header in its shape (a server without a credentials file
/// checks only that), and the date it names.
pub const SIGNED_SHAPE: [(&str, &str); 2] = [
    (
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
    ),
    ("X-Amz-Date", "20260101T000000Z"),
];

/// Sends one raw HTTP/1.1 request and returns (status, body); `body_len` may lie.
/// The request is signed in shape unless it brings its own `Authorization` (`-`: none).
fn raw_request(
    addr: SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    body_len: usize,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {body_len}\r\n"
    );
    let own_authorization = headers.iter().any(|(name, _)| *name == "Authorization");
    let shape = if own_authorization {
        &[][..]
    } else {
        &SIGNED_SHAPE[..]
    };
    for (name, value) in headers.iter().chain(shape) {
        if *value != "-" {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may answer and close before a huge body is fully sent.
    let _ = stream.write_all(body);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// name, method, extra headers, body, claimed Content-Length (0: the real one), status,
/// error type, and the member its message is in (`""`: no message at all).
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, String)>,
    Vec<u8>,
    usize,
    u16,
    &'a str,
    &'a str,
);

const JSON: (&str, &str) = ("Content-Type", "application/x-amz-json-1.1");

fn target(action: &str) -> String {
    format!("Kinesis_20131202.{action}")
}

/// Each malformed request gets the error Kinesis gives it, in Kinesis's order of
/// checks: protocol errors (no target, no body, a body that is not JSON, an unknown
/// operation) name only their type; type errors say what could not be converted in
/// `Message`; everything later says why in `message`.
#[tokio::test(flavor = "multi_thread")]
async fn each_malformed_request_gets_its_error_type() {
    let server = start_server(test_server_config()).await;
    let addr = server.local_addr();
    let huge = vec![b'x'; 9 * 1024 * 1024];
    let ok_stream = br#"{"StreamName":"ok","ShardCount":1}"#;
    let cases: Vec<Case> = vec![
        ("malformed json", "POST", vec![("X-Amz-Target", target("CreateStream"))], b"{\"StreamName\":".to_vec(), 0, 400, "SerializationException", ""),
        ("no body", "POST", vec![("X-Amz-Target", target("ListStreams"))], vec![], 0, 400, "SerializationException", ""),
        ("no body, unknown action", "POST", vec![("X-Amz-Target", target("MakeCoffee"))], vec![], 0, 400, "UnknownOperationException", ""),
        ("unknown action", "POST", vec![("X-Amz-Target", target("MakeCoffee"))], b"{}".to_vec(), 0, 400, "UnknownOperationException", ""),
        ("unknown action, unsigned", "POST", vec![("Authorization", "-".into()), ("X-Amz-Target", target("MakeCoffee"))], b"{}".to_vec(), 0, 400, "UnknownOperationException", ""),
        ("unsigned", "POST", vec![("Authorization", "-".into()), ("X-Amz-Target", target("ListStreams"))], b"{}".to_vec(), 0, 403, "MissingAuthenticationTokenException", "message"),
        ("signature without its parts", "POST", vec![("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST".into()), ("X-Amz-Target", target("ListStreams"))], b"{}".to_vec(), 0, 400, "IncompleteSignatureException", "message"),
        ("no target", "POST", vec![], b"{}".to_vec(), 0, 400, "UnknownOperationException", ""),
        ("wrong service", "POST", vec![("X-Amz-Target", "DynamoDB_20120810.ListTables".into())], b"{}".to_vec(), 0, 400, "UnknownOperationException", ""),
        ("wrong type", "POST", vec![("X-Amz-Target", target("CreateStream"))], br#"{"StreamName":"s","ShardCount":"two"}"#.to_vec(), 0, 400, "SerializationException", "Message"),
        ("bad base64", "POST", vec![("X-Amz-Target", target("PutRecord"))], br#"{"StreamName":"ok","PartitionKey":"k","Data":"***"}"#.to_vec(), 0, 400, "SerializationException", "Message"),
        ("validation", "POST", vec![("X-Amz-Target", target("CreateStream"))], br#"{"StreamName":"s","ShardCount":0}"#.to_vec(), 0, 400, "ValidationException", "message"),
        ("missing stream", "POST", vec![("X-Amz-Target", target("DescribeStream"))], br#"{"StreamName":"nope"}"#.to_vec(), 0, 400, "ResourceNotFoundException", "message"),
        ("hash key too big", "POST", vec![("X-Amz-Target", target("PutRecord"))], br#"{"StreamName":"ok","PartitionKey":"k","Data":"eA==","ExplicitHashKey":"999999999999999999999999999999999999999"}"#.to_vec(), 0, 400, "InvalidArgumentException", "message"),
        ("iterator without sequence", "POST", vec![("X-Amz-Target", target("GetShardIterator"))], br#"{"StreamName":"ok","ShardId":"shardId-000000000000","ShardIteratorType":"AT_SEQUENCE_NUMBER"}"#.to_vec(), 0, 400, "InvalidArgumentException", "message"),
        ("unknown shard", "POST", vec![("X-Amz-Target", target("GetShardIterator"))], br#"{"StreamName":"ok","ShardId":"shardId-000000000009","ShardIteratorType":"LATEST"}"#.to_vec(), 0, 400, "ResourceNotFoundException", "message"),
        ("bad iterator", "POST", vec![("X-Amz-Target", target("GetRecords"))], br#"{"ShardIterator":"AAAA"}"#.to_vec(), 0, 400, "InvalidArgumentException", "message"),
        ("stream exists", "POST", vec![("X-Amz-Target", target("CreateStream"))], ok_stream.to_vec(), 0, 400, "ResourceInUseException", "message"),
        ("too many shards", "POST", vec![("X-Amz-Target", target("CreateStream"))], br#"{"StreamName":"big","ShardCount":100000}"#.to_vec(), 0, 400, "LimitExceededException", "message"),
        ("huge body", "POST", vec![("X-Amz-Target", target("PutRecords"))], huge.clone(), huge.len(), 400, "SerializationException", ""),
        ("truncated body", "POST", vec![("X-Amz-Target", target("PutRecords"))], b"{\"Stre".to_vec(), 500, 400, "SerializationException", ""),
    ];
    // The stream the cases that need one refer to.
    let (status, _) = raw_request(
        addr,
        "POST",
        &[JSON, ("X-Amz-Target", &target("CreateStream"))],
        ok_stream,
        ok_stream.len(),
    );
    assert_eq!(status, 200);

    for (name, method, headers, body, claimed_len, want_status, want_type, message_key) in cases {
        let mut all: Vec<(&str, &str)> = vec![JSON];
        all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
        let len = if claimed_len > 0 {
            claimed_len
        } else {
            body.len()
        };
        let (status, response) = raw_request(addr, method, &all, &body, len);
        assert_eq!(status, want_status, "{name}: {response}");
        let answer: serde_json::Value = serde_json::from_str(&response)
            .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {response}"));
        assert_eq!(answer["__type"], want_type, "{name}: {response}");
        let members: Vec<&String> = answer
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        let expected: Vec<&str> = if message_key.is_empty() {
            vec!["__type"]
        } else {
            vec![message_key, "__type"]
        };
        let mut members: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
        members.sort_unstable();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(members, expected, "{name}: {response}");
    }

    // Requests the service cannot even name an operation for: 403 with an XML body,
    // `AccessDeniedException` when signed, `MissingAuthenticationTokenException` when not.
    type XmlCase<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let xml_cases: [XmlCase; 4] = [
        (
            "GET, signed",
            "GET",
            vec![JSON, ("X-Amz-Target", "Kinesis_20131202.ListStreams")],
            "AccessDeniedException",
        ),
        (
            "GET, unsigned",
            "GET",
            vec![("Authorization", "-")],
            "MissingAuthenticationTokenException",
        ),
        (
            "text/plain",
            "POST",
            vec![
                ("Content-Type", "text/plain"),
                ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
            ],
            "AccessDeniedException",
        ),
        (
            "no content type",
            "POST",
            vec![("X-Amz-Target", "Kinesis_20131202.ListStreams")],
            "AccessDeniedException",
        ),
    ];
    for (name, method, headers, kind) in xml_cases {
        let (status, response) = raw_request(addr, method, &headers, b"{}", 2);
        assert_eq!(status, 403, "{name}: {response}");
        assert!(
            response.starts_with(&format!("<{kind}>\n  <Message>")),
            "{name}: {response}"
        );
    }

    // The deprecated `application/json` protocol never reaches an operation.
    let (status, response) = raw_request(
        addr,
        "POST",
        &[
            ("Content-Type", "application/json"),
            ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
        ],
        b"{}",
        2,
    );
    assert_eq!(status, 200, "{response}");
    let answer: serde_json::Value = serde_json::from_str(&response).unwrap_or_default();
    assert_eq!(
        answer,
        serde_json::json!({"Output": {"__type": "com.amazon.coral.service#UnknownOperationException", "message": null}, "Version": "1.0"})
    );

    // Still serving after all of that.
    let (status, body) = raw_request(
        addr,
        "POST",
        &[JSON, ("X-Amz-Target", &target("ListStreams"))],
        b"{}",
        2,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cbor_requests_and_errors_use_cbor() {
    let server = start_server(test_server_config()).await;
    let addr = server.local_addr();
    let cbor = ("Content-Type", "application/x-amz-cbor-1.1");
    let mut body = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("StreamName".into()),
                ciborium::Value::Text("c".into()),
            ),
            (
                ciborium::Value::Text("ShardCount".into()),
                ciborium::Value::Integer(1.into()),
            ),
        ]),
        &mut body,
    )
    .unwrap();
    let (status, _) = raw_request(
        addr,
        "POST",
        &[cbor, ("X-Amz-Target", &target("CreateStream"))],
        &body,
        body.len(),
    );
    assert_eq!(status, 200);
    let mut put = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("StreamName".into()),
                ciborium::Value::Text("c".into()),
            ),
            (
                ciborium::Value::Text("PartitionKey".into()),
                ciborium::Value::Text("k".into()),
            ),
            (
                ciborium::Value::Text("Data".into()),
                ciborium::Value::Bytes(vec![0, 255, 1]),
            ),
        ]),
        &mut put,
    )
    .unwrap();
    let (status, response) = raw_request(
        addr,
        "POST",
        &[cbor, ("X-Amz-Target", &target("PutRecord"))],
        &put,
        put.len(),
    );
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("shardId-000000000000"));
    let store = server.store();
    let records = store.stream("c").unwrap().open_shards().shards[0]
        .state
        .lock()
        .unwrap()
        .log
        .read(0, 10, usize::MAX);
    assert_eq!(records[0].data.as_ref(), [0, 255, 1]);

    let (status, response) = raw_request(
        addr,
        "POST",
        &[cbor, ("X-Amz-Target", &target("PutRecord"))],
        &[0xff, 0x13],
        2,
    );
    assert_eq!(status, 400);
    assert!(response.contains("SerializationException"));
    server.shutdown().await;
}

fn fuzz_store() -> Store {
    let store = Store::new(StoreConfig::default(), Clock::frozen(), None).unwrap();
    store
        .create_stream(
            "fuzz",
            2,
            shardcar::server::StreamMode::Provisioned,
            Default::default(),
            true,
        )
        .unwrap();
    store
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// No body, of any action, in either format, makes the server panic.
    #[test]
    fn random_bodies_never_panic(action in proptest::sample::select(shardcar::server::actions()), body in proptest::collection::vec(any::<u8>(), 0..300), cbor in any::<bool>()) {
        let store = fuzz_store();
        let format = if cbor { Format::Cbor } else { Format::Json };
        let _ = shardcar::server::call(&store, action, format, &body);
    }

    /// Structurally valid JSON with random values for the fields every action reads.
    #[test]
    fn random_field_values_never_panic(
        action in proptest::sample::select(shardcar::server::actions()),
        name in prop_oneof![Just("fuzz".to_owned()), ".{0,140}"],
        number in any::<i64>(),
        text in ".{0,60}",
    ) {
        let store = fuzz_store();
        let body = serde_json::json!({
            "StreamName": name, "ShardCount": number, "Limit": number, "MaxResults": number,
            "ShardId": text, "ShardToSplit": text, "NewStartingHashKey": text, "ShardToMerge": text,
            "AdjacentShardToMerge": text, "TargetShardCount": number, "ScalingType": "UNIFORM_SCALING",
            "ShardIteratorType": text, "StartingSequenceNumber": text, "ShardIterator": text,
            "PartitionKey": text, "Data": "eA==", "ExplicitHashKey": text, "RetentionPeriodHours": number,
            "Records": [{"PartitionKey": text, "Data": "eA==", "ExplicitHashKey": text}],
            "Tags": {text.clone(): text.clone()}, "TagKeys": [text.clone()], "NextToken": text,
            "ExclusiveStartShardId": text, "ShardFilter": {"Type": text, "ShardId": text, "Timestamp": number},
        });
        let _ = shardcar::server::call(&store, action, Format::Json, body.to_string().as_bytes());
    }
}
