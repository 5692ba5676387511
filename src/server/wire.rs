//! Request and response bodies: JSON 1.1 (blobs as base64, timestamps as epoch
//! seconds) and CBOR 1.1 (blobs as byte strings, timestamps as tag 1), from the same
//! serde types. [`Blob`] and [`Timestamp`] pick their encoding from the format.

use base64_simd::STANDARD as BASE64;
use bytes::Bytes;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::KinesisError;

/// The body formats the API speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Cbor,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/x-amz-json-1.1",
            Format::Cbor => "application/x-amz-cbor-1.1",
        }
    }

    /// The format a Content-Type names; `application/json` is accepted as JSON.
    pub fn from_content_type(value: &str) -> Option<Format> {
        match value.split(';').next().unwrap_or("").trim() {
            "application/x-amz-json-1.1" | "application/json" | "application/x-amz-json-1.0" => {
                Some(Format::Json)
            }
            "application/x-amz-cbor-1.1" | "application/cbor" => Some(Format::Cbor),
            _ => None,
        }
    }
}

/// Parses a request body into the action's input type.
pub fn decode<T: DeserializeOwned>(format: Format, body: &[u8]) -> Result<T, KinesisError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) && format == Format::Json {
        // The SDKs send `{}` for empty inputs; an empty body means the same.
        &b"{}"[..]
    } else {
        body
    };
    match format {
        Format::Json => serde_json::from_slice(body)
            .map_err(|e| KinesisError::serialization(serialization_message(&e.to_string()))),
        Format::Cbor => ciborium::from_reader(body)
            .map_err(|e| KinesisError::serialization(serialization_message(&e.to_string()))),
    }
}

fn serialization_message(detail: &str) -> String {
    format!("Unable to parse the request body: {detail}")
}

/// Encodes a response body.
pub fn encode<T: Serialize>(format: Format, value: &T) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(value).unwrap_or_else(|e| {
            // Our response types always serialize; if one ever did not, say so on the wire.
            format!(r#"{{"__type":"InternalFailure","message":"cannot encode the response: {e}"}}"#)
                .into_bytes()
        }),
        Format::Cbor => {
            let mut out = Vec::new();
            if let Err(e) = ciborium::into_writer(value, &mut out) {
                out.clear();
                let fallback = ErrorBody {
                    kind: "InternalFailure",
                    message: format!("cannot encode the response: {e}"),
                };
                let _ = ciborium::into_writer(&fallback, &mut out);
            }
            out
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    #[serde(rename = "__type")]
    pub kind: &'static str,
    pub message: String,
}

/// Binary data: base64 text in JSON, a byte string in CBOR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Bytes);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&BASE64.encode_to_string(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string or a byte string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
                BASE64.decode_to_vec(v).map(|b| Blob(Bytes::from(b))).map_err(|_| {
                    let why = if v.len().is_multiple_of(4) {
                        "Base64 encoded data holds a character outside the alphabet or bad padding".to_owned()
                    } else {
                        format!(
                            "Base64 encoded length is expected a multiple of 4 bytes but found: {}",
                            v.len()
                        )
                    };
                    E::custom(format!(
                        "'{}' can not be converted to a Blob: {why}",
                        truncate(v)
                    ))
                })
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(Bytes::from(v)))
            }
        }
        deserializer.deserialize_any(BlobVisitor)
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// A point in time: epoch seconds (with fraction) in JSON, tag 1 in CBOR.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timestamp(pub f64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms as f64 / 1000.0)
    }

    pub fn millis(self) -> i64 {
        (self.0 * 1000.0).round() as i64
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.0)
        } else {
            ciborium::tag::Required::<f64, 1>(self.0).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            struct SecondsVisitor;
            impl Visitor<'_> for SecondsVisitor {
                type Value = Timestamp;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("epoch seconds")
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                    Ok(Timestamp(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                    Ok(Timestamp(v as f64))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                    Ok(Timestamp(v as f64))
                }
            }
            deserializer.deserialize_any(SecondsVisitor)
        } else {
            let tagged = ciborium::tag::Captured::<f64>::deserialize(deserializer)?;
            // Tag 1 is seconds; the Java SDK has also sent plain milliseconds untagged.
            Ok(match tagged.0 {
                Some(_) => Timestamp(tagged.1),
                None => Timestamp(tagged.1 / 1000.0),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Sample {
        data: Blob,
        at: Timestamp,
    }

    #[test]
    fn json_uses_base64_and_seconds() {
        let sample = Sample {
            data: Blob(Bytes::from_static(b"hi")),
            at: Timestamp(1.5),
        };
        let json = encode(Format::Json, &sample);
        assert_eq!(json, br#"{"Data":"aGk=","At":1.5}"#);
        assert_eq!(decode::<Sample>(Format::Json, &json).unwrap(), sample);
    }

    #[test]
    fn cbor_uses_bytes_and_tag_1() {
        let sample = Sample {
            data: Blob(Bytes::from_static(b"\xff\x00")),
            at: Timestamp(2.0),
        };
        let cbor = encode(Format::Cbor, &sample);
        // The raw bytes appear in the body (major type 2, length 2).
        assert!(cbor.windows(3).any(|w| w == [0x42, 0xff, 0x00]));
        assert!(cbor.contains(&0xc1), "tag 1");
        assert_eq!(decode::<Sample>(Format::Cbor, &cbor).unwrap(), sample);
    }

    #[test]
    fn bad_bodies_are_serialization_errors() {
        let err = decode::<Sample>(Format::Json, b"{\"Data\": 5").unwrap_err();
        assert_eq!(err.kind, crate::server::error::ErrorKind::Serialization);
        let err = decode::<Sample>(Format::Json, b"{\"Data\": \"!!\", \"At\": 1}").unwrap_err();
        assert!(
            err.message.contains("can not be converted to a Blob"),
            "{}",
            err.message
        );
        assert!(decode::<Sample>(Format::Cbor, &[0xff, 0x00]).is_err());
    }
}
