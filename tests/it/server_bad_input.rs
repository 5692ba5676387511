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

/// name, method, extra headers, body, claimed Content-Length (0: the real one), status, `__type`.
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, String)>,
    Vec<u8>,
    usize,
    u16,
    &'a str,
);

const JSON: (&str, &str) = ("Content-Type", "application/x-amz-json-1.1");

fn target(action: &str) -> String {
    format!("Kinesis_20131202.{action}")
}

#[tokio::test(flavor = "multi_thread")]
async fn each_malformed_request_gets_its_error_type() {
    let server = start_server(test_server_config()).await;
    let addr = server.local_addr();
    let huge = vec![b'x'; 9 * 1024 * 1024];
    let ok_stream = br#"{"StreamName":"ok","ShardCount":1}"#;
    let cases: Vec<Case> = vec![
        ("malformed json", "POST", vec![("X-Amz-Target", target("CreateStream"))], b"{\"StreamName\":".to_vec(), 0, 400, "SerializationException"),
        ("unknown action", "POST", vec![("X-Amz-Target", target("MakeCoffee"))], b"{}".to_vec(), 0, 400, "UnknownOperationException"),
        ("unsigned", "POST", vec![("Authorization", "-".into()), ("X-Amz-Target", target("ListStreams"))], b"{}".to_vec(), 0, 403, "MissingAuthenticationTokenException"),
        ("signature without its parts", "POST", vec![("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST".into()), ("X-Amz-Target", target("ListStreams"))], b"{}".to_vec(), 0, 400, "IncompleteSignatureException"),
        ("no target", "POST", vec![], b"{}".to_vec(), 0, 400, "UnknownOperationException"),
        ("wrong service", "POST", vec![("X-Amz-Target", "DynamoDB_20120810.ListTables".into())], b"{}".to_vec(), 0, 400, "UnknownOperationException"),
        ("wrong method", "GET", vec![("X-Amz-Target", target("ListStreams"))], vec![], 0, 400, "AccessDeniedException"),
        ("wrong type", "POST", vec![("X-Amz-Target", target("CreateStream"))], br#"{"StreamName":"s","ShardCount":"two"}"#.to_vec(), 0, 400, "SerializationException"),
        ("bad base64", "POST", vec![("X-Amz-Target", target("PutRecord"))], br#"{"StreamName":"ok","PartitionKey":"k","Data":"***"}"#.to_vec(), 0, 400, "SerializationException"),
        ("validation", "POST", vec![("X-Amz-Target", target("CreateStream"))], br#"{"StreamName":"s","ShardCount":0}"#.to_vec(), 0, 400, "ValidationException"),
        ("missing stream", "POST", vec![("X-Amz-Target", target("DescribeStream"))], br#"{"StreamName":"nope"}"#.to_vec(), 0, 400, "ResourceNotFoundException"),
        ("hash key too big", "POST", vec![("X-Amz-Target", target("PutRecord"))], br#"{"StreamName":"ok","PartitionKey":"k","Data":"eA==","ExplicitHashKey":"999999999999999999999999999999999999999"}"#.to_vec(), 0, 400, "InvalidArgumentException"),
        ("iterator without sequence", "POST", vec![("X-Amz-Target", target("GetShardIterator"))], br#"{"StreamName":"ok","ShardId":"shardId-000000000000","ShardIteratorType":"AT_SEQUENCE_NUMBER"}"#.to_vec(), 0, 400, "InvalidArgumentException"),
        ("unknown shard", "POST", vec![("X-Amz-Target", target("GetShardIterator"))], br#"{"StreamName":"ok","ShardId":"shardId-000000000009","ShardIteratorType":"LATEST"}"#.to_vec(), 0, 400, "ResourceNotFoundException"),
        ("bad iterator", "POST", vec![("X-Amz-Target", target("GetRecords"))], br#"{"ShardIterator":"AAAA"}"#.to_vec(), 0, 400, "InvalidArgumentException"),
        ("stream exists", "POST", vec![("X-Amz-Target", target("CreateStream"))], ok_stream.to_vec(), 0, 400, "ResourceInUseException"),
        ("too many shards", "POST", vec![("X-Amz-Target", target("CreateStream"))], br#"{"StreamName":"big","ShardCount":100000}"#.to_vec(), 0, 400, "LimitExceededException"),
        ("huge body", "POST", vec![("X-Amz-Target", target("PutRecords"))], huge.clone(), huge.len(), 400, "SerializationException"),
        ("truncated body", "POST", vec![("X-Amz-Target", target("PutRecords"))], b"{\"Stre".to_vec(), 500, 400, "SerializationException"),
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

    for (name, method, headers, body, claimed_len, want_status, want_type) in cases {
        let mut all: Vec<(&str, &str)> = vec![JSON];
        all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
        let len = if claimed_len > 0 {
            claimed_len
        } else {
            body.len()
        };
        let (status, response) = raw_request(addr, method, &all, &body, len);
        assert_eq!(status, want_status, "{name}: {response}");
        assert!(
            response.contains(&format!("\"__type\":\"{want_type}\"")),
            "{name}: {response}"
        );
        assert!(response.contains("\"message\""), "{name}: {response}");
    }

    let wrong_content = raw_request(
        addr,
        "POST",
        &[
            ("Content-Type", "text/plain"),
            ("X-Amz-Target", &target("ListStreams")),
        ],
        b"{}",
        2,
    );
    assert_eq!(wrong_content.0, 400);
    assert!(
        wrong_content.1.contains("SerializationException"),
        "{}",
        wrong_content.1
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
