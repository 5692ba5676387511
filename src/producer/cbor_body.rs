//! PutRecords in CBOR 1.1 (`application/x-amz-cbor-1.1`), the format the AWS SDK for
//! Java sends Kinesis by default: the same operation and shapes as JSON 1.1, but
//! record data travels as raw bytes. No base64 pass, and a third fewer bytes to hash
//! for the signature and to encrypt for TLS.
//!
//! The AWS SDK for Rust speaks only JSON 1.1 to Kinesis, so it still builds, signs and
//! sends the call (the body and its content type are swapped in before signing, as
//! for the JSON body), and an interceptor turns Kinesis's CBOR answer (a result or an
//! error) into the JSON the SDK reads. Answers are small (a shard id and a sequence
//! number per record); the requests are what CBOR makes cheaper.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_kinesis::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_kinesis::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame};

use super::put_body::WireEntry;

/// What SDK hooks and bodies fail with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;

/// The CBOR body of a PutRecords call: `{StreamName, Records: [{Data, PartitionKey,
/// ExplicitHashKey}]}`, each record's data copied once, as a byte string.
pub fn encode(stream: &str, entries: &[WireEntry]) -> Bytes {
    let capacity = 32
        + stream.len()
        + entries
            .iter()
            .map(|e| 96 + e.partition_key.len() + e.data.len())
            .sum::<usize>();
    let mut body = Vec::with_capacity(capacity);
    head(&mut body, MAJOR_MAP, 2);
    text(&mut body, "StreamName");
    text(&mut body, stream);
    text(&mut body, "Records");
    head(&mut body, MAJOR_ARRAY, entries.len() as u64);
    let mut digits = String::with_capacity(40);
    for entry in entries {
        head(&mut body, MAJOR_MAP, 3);
        text(&mut body, "Data");
        head(&mut body, MAJOR_BYTES, entry.data.len() as u64);
        body.extend_from_slice(&entry.data);
        text(&mut body, "PartitionKey");
        text(&mut body, &entry.partition_key);
        text(&mut body, "ExplicitHashKey");
        digits.clear();
        use std::fmt::Write;
        let _ = write!(digits, "{}", entry.explicit_hash_key.0);
        text(&mut body, &digits);
    }
    Bytes::from(body)
}

/// A data item's head: its major type and its length (or count), shortest form.
fn head(out: &mut Vec<u8>, major: u8, len: u64) {
    let major = major << 5;
    match len {
        0..=23 => out.push(major | len as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, len as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

fn text(out: &mut Vec<u8>, value: &str) {
    head(out, MAJOR_TEXT, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

/// A CBOR answer as the JSON 1.1 the SDK reads: byte strings become base64 text,
/// tagged values (timestamps) their content, everything else its JSON twin.
pub fn answer_as_json(cbor: &[u8]) -> Result<Vec<u8>, AnswerError> {
    let value: ciborium::Value =
        ciborium::from_reader(cbor).map_err(|e| AnswerError(e.to_string()))?;
    serde_json::to_vec(&json_of(value)?).map_err(|e| AnswerError(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
#[error("a CBOR answer from Kinesis could not be read: {0}")]
pub struct AnswerError(String);

fn json_of(value: ciborium::Value) -> Result<serde_json::Value, AnswerError> {
    use ciborium::Value as C;
    use serde_json::Value as J;
    Ok(match value {
        C::Integer(integer) => {
            let n = i128::from(integer);
            match (i64::try_from(n), u64::try_from(n)) {
                (Ok(small), _) => J::from(small),
                (_, Ok(large)) => J::from(large),
                _ => J::from(n as f64),
            }
        }
        C::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        C::Bytes(bytes) => J::String(base64_simd::STANDARD.encode_to_string(&bytes)),
        C::Text(text) => J::String(text),
        C::Bool(b) => J::Bool(b),
        C::Null => J::Null,
        C::Tag(_, inner) => json_of(*inner)?,
        C::Array(items) => J::Array(items.into_iter().map(json_of).collect::<Result<_, _>>()?),
        C::Map(pairs) => {
            let mut object = serde_json::Map::with_capacity(pairs.len());
            for (key, value) in pairs {
                let C::Text(key) = key else {
                    return Err(AnswerError(format!("a map key that is not text: {key:?}")));
                };
                object.insert(key, json_of(value)?);
            }
            J::Object(object)
        }
        other => return Err(AnswerError(format!("an unexpected item: {other:?}"))),
    })
}

/// Turns CBOR answers into JSON before the SDK reads them; other answers (an HTML
/// error page from a proxy, JSON) pass as they are.
#[derive(Debug)]
pub struct CborAnswers;

impl Intercept for CborAnswers {
    fn name(&self) -> &'static str {
        "CborAnswers"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        let cbor = response
            .headers()
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/x-amz-cbor"));
        if !cbor {
            return Ok(());
        }
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        response.headers_mut().remove("content-length");
        let body = std::mem::replace(response.body_mut(), SdkBody::taken());
        *response.body_mut() = match body.bytes() {
            Some(bytes) => SdkBody::from(answer_as_json(bytes)?),
            None => SdkBody::from_body_1_x(WholeAnswer {
                inner: body,
                read: Vec::new(),
                done: false,
            }),
        };
        Ok(())
    }
}

/// A streamed answer read whole, then given as one frame of JSON.
struct WholeAnswer {
    inner: SdkBody,
    read: Vec<u8>,
    done: bool,
}

impl Body for WholeAnswer {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.read.extend_from_slice(&data);
                    }
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => {
                    this.done = true;
                    let json = answer_as_json(&this.read).map(Bytes::from);
                    return Poll::Ready(Some(json.map(Frame::data).map_err(Into::into)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::put_body::tests::entry;

    /// Every length class of the heads (tiny, one, two and four length bytes) and
    /// any bytes of data read back as sent.
    #[test]
    fn the_body_reads_back_as_the_put_records_shape() {
        let entries = vec![
            entry("k", 0, b""),
            entry("é\"\n", u128::MAX, &[0, 255, 10, 34, 92]),
            entry(&"p".repeat(200), 12345, &vec![7u8; 300]),
            entry("big", 1, &vec![1u8; 70_000]),
        ];
        let body = encode("my-stream", &entries);
        let value: ciborium::Value =
            ciborium::from_reader(&body[..]).unwrap_or_else(|e| panic!("{e}"));
        let map = value.as_map().unwrap_or_else(|| panic!("a map"));
        let field = |map: &[(ciborium::Value, ciborium::Value)], name: &str| {
            map.iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name}"))
        };
        assert_eq!(field(map, "StreamName").as_text(), Some("my-stream"));
        let records = field(map, "Records");
        let records = records.as_array().unwrap_or_else(|| panic!("an array"));
        assert_eq!(records.len(), entries.len());
        for (sent, wire) in records.iter().zip(&entries) {
            let sent = sent.as_map().unwrap_or_else(|| panic!("a record map"));
            assert_eq!(
                field(sent, "Data").as_bytes().map(Vec::as_slice),
                Some(&wire.data[..])
            );
            assert_eq!(
                field(sent, "PartitionKey").as_text(),
                Some(wire.partition_key.as_str())
            );
            assert_eq!(
                field(sent, "ExplicitHashKey").as_text(),
                Some(wire.explicit_hash_key.0.to_string().as_str())
            );
        }
    }

    /// An answer that arrives in pieces is read whole and given as one JSON frame.
    #[tokio::test]
    async fn a_streamed_answer_is_read_whole_then_converted() {
        use http_body_util::BodyExt;
        let value = ciborium::Value::Map(vec![(
            ciborium::Value::Text("FailedRecordCount".into()),
            ciborium::Value::Integer(0.into()),
        )]);
        let mut cbor = Vec::new();
        ciborium::into_writer(&value, &mut cbor).unwrap_or_else(|e| panic!("{e}"));
        let (first, second) = cbor.split_at(5);
        /// A body that gives its pieces one frame at a time.
        struct Pieces(std::collections::VecDeque<Bytes>);
        impl Body for Pieces {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                Poll::Ready(self.0.pop_front().map(|piece| Ok(Frame::data(piece))))
            }
        }
        let pieces = [first, second].map(Bytes::copy_from_slice);
        let streamed = SdkBody::from_body_1_x(Pieces(pieces.into_iter().collect()));
        assert!(streamed.bytes().is_none(), "a streamed body");
        let whole = WholeAnswer {
            inner: streamed,
            read: Vec::new(),
            done: false,
        };
        let json = whole
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .to_bytes();
        assert_eq!(&json[..], br#"{"FailedRecordCount":0}"#);
    }

    #[test]
    fn answers_and_errors_read_as_the_json_the_sdk_expects() {
        use ciborium::Value as C;
        let answer = C::Map(vec![
            (C::Text("FailedRecordCount".into()), C::Integer(1.into())),
            (
                C::Text("Records".into()),
                C::Array(vec![
                    C::Map(vec![
                        (C::Text("SequenceNumber".into()), C::Text("4960".into())),
                        (
                            C::Text("ShardId".into()),
                            C::Text("shardId-000000000001".into()),
                        ),
                    ]),
                    C::Map(vec![
                        (
                            C::Text("ErrorCode".into()),
                            C::Text("ProvisionedThroughputExceededException".into()),
                        ),
                        (
                            C::Text("ErrorMessage".into()),
                            C::Text("Rate exceeded".into()),
                        ),
                    ]),
                ]),
            ),
            (C::Text("Blob".into()), C::Bytes(vec![0, 255])),
            (C::Text("At".into()), C::Tag(1, Box::new(C::Float(1.5)))),
        ]);
        let mut cbor = Vec::new();
        ciborium::into_writer(&answer, &mut cbor).unwrap_or_else(|e| panic!("{e}"));
        let json: serde_json::Value =
            serde_json::from_slice(&answer_as_json(&cbor).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json,
            serde_json::json!({
                "FailedRecordCount": 1,
                "Records": [
                    {"SequenceNumber": "4960", "ShardId": "shardId-000000000001"},
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}
                ],
                "Blob": "AP8=",
                "At": 1.5
            })
        );
        assert!(answer_as_json(b"\xff\x00").is_err(), "not CBOR");
    }
}
