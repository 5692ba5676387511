//! The PutRecords request body, written directly rather than through the SDK's
//! serializer.
//!
//! At full speed the SDK's path cost about a tenth of the producer's CPU: every
//! record's data copied into a `Blob`, a body buffer grown by doubling (and copied each
//! time), then base64 in a separate pass. Here the body is sized once and each record
//! is base64-encoded straight into it. The SDK still signs and sends the request (the
//! body is swapped in before signing), so credentials, region, endpoint resolution,
//! HTTPS and error parsing are the SDK's, unchanged.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
use bytes::Bytes;

use crate::config::BodyFormat;
use crate::kinesis::HashKey;

/// One PutRecords entry as it goes on the wire.
#[derive(Debug, Clone)]
pub struct WireEntry {
    pub partition_key: String,
    pub explicit_hash_key: HashKey,
    pub data: Bytes,
}

/// The JSON 1.1 body of a PutRecords call (the shape the SDK writes).
pub fn encode(stream: &str, entries: &[WireEntry]) -> Bytes {
    let capacity = 64
        + stream.len()
        + entries
            .iter()
            .map(|e| 96 + e.partition_key.len() + e.data.len().div_ceil(3) * 4)
            .sum::<usize>();
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(b"{\"StreamName\":");
    push_json_string(&mut body, stream);
    body.extend_from_slice(b",\"Records\":[");
    for (index, entry) in entries.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"Data\":\"");
        base64_simd::STANDARD.encode_append(&entry.data, &mut body);
        body.extend_from_slice(b"\",\"PartitionKey\":");
        push_json_string(&mut body, &entry.partition_key);
        body.extend_from_slice(b",\"ExplicitHashKey\":\"");
        body.extend_from_slice(entry.explicit_hash_key.0.to_string().as_bytes());
        body.extend_from_slice(b"\"}");
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

/// Sends a body from [`encode`] as a PutRecords call. The SDK serializes an empty
/// call; the body replaces it before signing (`mutate_request` runs in
/// `modify_before_signing`), so the signature covers the real body.
///
/// A CBOR body goes with its content type, and the answer, in CBOR too, is read
/// through [`CborAnswers`](super::cbor_body::CborAnswers).
pub async fn put_records(
    client: &Client,
    stream: String,
    body: Bytes,
    format: BodyFormat,
) -> Result<PutRecordsOutput, SdkError<PutRecordsError>> {
    let call = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(Vec::new()))
        .customize()
        .mutate_request(move |request| {
            request
                .headers_mut()
                .insert("Content-Length", body.len().to_string());
            if format == BodyFormat::Cbor {
                request
                    .headers_mut()
                    .insert("Content-Type", super::cbor_body::CONTENT_TYPE);
            }
            *request.body_mut() = body.clone().into();
        });
    match format {
        BodyFormat::Cbor => call.interceptor(super::cbor_body::CborAnswers).send().await,
        BodyFormat::Json => call.send().await,
    }
}

/// Appends `text` as a JSON string: quotes, backslashes and control characters
/// escaped, everything else (UTF-8 included) as it is.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..index]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{byte:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        clean_from = index + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An entry for the body tests (here and in `cbor_body`).
    pub(in crate::producer) fn entry(key: &str, hash: u128, data: &[u8]) -> WireEntry {
        WireEntry {
            partition_key: key.to_owned(),
            explicit_hash_key: HashKey(hash),
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn body_is_json_with_every_entry_intact() {
        let entries = vec![
            entry("plain", 0, b""),
            entry("q\"uo\\te\n\u{1}é", u128::MAX, &[0, 255, 10, 34, 92]),
            entry("k", 12345, &vec![7u8; 1000]),
        ];
        let body = encode("my \"stream\"", &entries);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(value["StreamName"], "my \"stream\"");
        let records = value["Records"].as_array().expect("Records");
        assert_eq!(records.len(), entries.len());
        for (sent, wire) in records.iter().zip(&entries) {
            assert_eq!(sent["PartitionKey"], wire.partition_key.as_str());
            assert_eq!(
                sent["ExplicitHashKey"],
                wire.explicit_hash_key.0.to_string().as_str()
            );
            let data = base64_simd::STANDARD
                .decode_to_vec(sent["Data"].as_str().expect("Data"))
                .expect("base64");
            assert_eq!(data, wire.data);
        }
    }

    /// The same entries through the SDK's own serializer, captured before signing
    /// (nothing is sent: the endpoint refuses connections), parse to the same JSON.
    #[tokio::test]
    async fn body_matches_what_the_sdk_serializes() {
        use aws_sdk_kinesis::primitives::Blob;
        use aws_sdk_kinesis::types::PutRecordsRequestEntry;
        use std::sync::{Arc, Mutex};

        let entries = vec![
            entry("a-key", 1, b"hello"),
            entry("\u{7f}\"\\\u{1f}ü", u128::MAX, &[0, 1, 2, 255]),
        ];
        let settings = crate::config::KinesisConfig {
            endpoint_url: Some("http://127.0.0.1:9".to_owned()),
            ..Default::default()
        };
        let client = crate::aws::kinesis_client(&settings, crate::aws::Purpose::Producer)
            .await
            .unwrap();
        let sdk_entries = entries
            .iter()
            .map(|e| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&e.partition_key)
                    .explicit_hash_key(e.explicit_hash_key.to_string())
                    .data(Blob::new(e.data.to_vec()))
                    .build()
                    .expect("entry")
            })
            .collect();
        let captured = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&captured);
        let _refused = client
            .put_records()
            .stream_name("s")
            .set_records(Some(sdk_entries))
            .customize()
            .mutate_request(move |request| {
                *sink.lock().expect("lock") = request.body().bytes().map(<[u8]>::to_vec);
            })
            .send()
            .await;
        let sdk_body = captured
            .lock()
            .expect("lock")
            .take()
            .expect("captured body");
        let sdk: serde_json::Value = serde_json::from_slice(&sdk_body).expect("SDK JSON");
        let ours: serde_json::Value =
            serde_json::from_slice(&encode("s", &entries)).expect("our JSON");
        assert_eq!(ours, sdk);
    }

    /// What the signer is handed and what goes on the wire, seen by a client-level
    /// interceptor: `read_before_signing` runs after every `modify_before_signing`.
    #[derive(Debug, Default)]
    struct Seen {
        signed_body: Option<Vec<u8>>,
        content_length: Option<String>,
        authorization: bool,
    }

    #[derive(Debug)]
    struct Watch(std::sync::Arc<std::sync::Mutex<Seen>>);

    use aws_sdk_kinesis::config::interceptors::BeforeTransmitInterceptorContextRef as Context;
    use aws_sdk_kinesis::config::{ConfigBag, Intercept, RuntimeComponents};
    type HookResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

    impl Intercept for Watch {
        fn name(&self) -> &'static str {
            "Watch"
        }

        fn read_before_signing(
            &self,
            context: &Context<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> HookResult {
            let mut seen = self.0.lock().expect("lock");
            seen.signed_body = context.request().body().bytes().map(<[u8]>::to_vec);
            seen.content_length = context
                .request()
                .headers()
                .get("Content-Length")
                .map(str::to_owned);
            Ok(())
        }

        fn read_before_transmit(
            &self,
            context: &Context<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> HookResult {
            self.0.lock().expect("lock").authorization =
                context.request().headers().get("Authorization").is_some();
            Ok(())
        }
    }

    /// The signature must cover the body that is sent: a body swapped in after signing
    /// would be refused by Kinesis (the bundled server does not check signatures).
    #[tokio::test]
    async fn the_signer_sees_our_body_and_its_length() {
        let settings = crate::config::KinesisConfig {
            endpoint_url: Some("http://127.0.0.1:9".to_owned()),
            ..Default::default()
        };
        let client = crate::aws::kinesis_client(&settings, crate::aws::Purpose::Producer)
            .await
            .unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        let config = client
            .config()
            .to_builder()
            .interceptor(Watch(seen.clone()))
            .build();
        let client = Client::from_conf(config);
        let body = encode("s", &[entry("k", 5, b"payload")]);
        let _refused = put_records(&client, "s".to_owned(), body.clone(), BodyFormat::Json).await;
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.signed_body.as_deref(), Some(&body[..]));
        assert_eq!(seen.content_length, Some(body.len().to_string()));
        assert!(seen.authorization, "the request was signed");
    }

    /// Both formats against the real server: records stored as sent, per-entry
    /// failures read entry by entry (injected throttling), and a call refused as a
    /// whole read with its error code, for the CBOR answers as for the JSON ones.
    #[tokio::test]
    async fn both_formats_store_records_and_read_results_and_errors_alike() {
        use aws_sdk_kinesis::error::ProvideErrorMetadata;
        let mut config = crate::server::ServerConfig::default();
        config.store.status_delay_ms = 0;
        config.store.limits = false;
        config.store.faults.throttle_ratio = 0.5;
        let server = crate::server::Server::bind(([127, 0, 0, 1], 0).into(), config)
            .await
            .unwrap_or_else(|e| panic!("server: {e}"));
        let settings = crate::config::KinesisConfig {
            endpoint_url: Some(server.endpoint_url()),
            region: Some("us-east-1".to_owned()),
            ..Default::default()
        };
        let client = crate::aws::kinesis_client(&settings, crate::aws::Purpose::Producer)
            .await
            .unwrap_or_else(|e| panic!("client: {e}"));
        client
            .create_stream()
            .stream_name("s")
            .shard_count(1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
        let entries: Vec<WireEntry> = (0..200u32)
            .map(|i| entry(&format!("k{i}"), 7, &i.to_be_bytes()))
            .collect();
        for format in [BodyFormat::Cbor, BodyFormat::Json] {
            let body = match format {
                BodyFormat::Cbor => crate::producer::cbor_body::encode("s", &entries),
                BodyFormat::Json => encode("s", &entries),
            };
            let output = put_records(&client, "s".to_owned(), body, format)
                .await
                .unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
            let results = output.records();
            assert_eq!(results.len(), entries.len(), "{format:?}");
            let throttled = results
                .iter()
                .filter(|r| r.error_code() == Some("ProvisionedThroughputExceededException"))
                .count();
            let stored = results
                .iter()
                .filter(|r| r.sequence_number().is_some())
                .count();
            assert_eq!(throttled + stored, entries.len(), "{format:?}");
            assert_eq!(
                output.failed_record_count(),
                Some(throttled as i32),
                "{format:?}"
            );
            assert!(
                throttled > 0 && stored > 0,
                "{format:?}: {throttled} throttled"
            );

            let body = match format {
                BodyFormat::Cbor => crate::producer::cbor_body::encode("missing", &entries),
                BodyFormat::Json => encode("missing", &entries),
            };
            let error = put_records(&client, "missing".to_owned(), body, format)
                .await
                .err()
                .unwrap_or_else(|| panic!("{format:?}: a missing stream was accepted"));
            let service = error
                .as_service_error()
                .unwrap_or_else(|| panic!("{format:?}: {error:?}"));
            assert_eq!(
                service.code(),
                Some("ResourceNotFoundException"),
                "{format:?}"
            );
            assert!(
                service.message().is_some_and(|m| m.contains("missing")),
                "{format:?}"
            );
        }
        server.shutdown().await;
    }

    #[test]
    fn empty_call_is_still_valid_json() {
        let value: serde_json::Value =
            serde_json::from_slice(&encode("s", &[])).expect("valid JSON");
        assert_eq!(value["Records"], serde_json::json!([]));
    }
}
