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

    /// The format a Content-Type names (the old `application/json` protocol is
    /// answered by `protocol`, not spoken).
    pub fn from_content_type(value: &str) -> Option<Format> {
        match value.split(';').next().unwrap_or("").trim() {
            "application/x-amz-json-1.1" => Some(Format::Json),
            "application/x-amz-cbor-1.1" => Some(Format::Cbor),
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
        // A body that is not JSON at all gets a bare SerializationException, as
        // Kinesis answers it; a member of the wrong type gets a message.
        Format::Json => serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                KinesisError::serialization("")
            }
            _ => KinesisError::serialization(serialization_message(&e.to_string())),
        }),
        Format::Cbor => ciborium::from_reader(body).map_err(|e| match e {
            ciborium::de::Error::Semantic(_, message) => {
                KinesisError::serialization(serialization_message(&message))
            }
            _ => KinesisError::serialization(""),
        }),
    }
}

/// The message of a body that parsed but holds a member of the wrong type, as
/// Kinesis's Java front end words it ("class java.lang.Boolean can not be converted
/// to an String"); other problems keep serde's description.
fn serialization_message(detail: &str) -> String {
    // serde_json appends where in the body it was; Kinesis does not say.
    let detail = match detail.rfind(" at line ") {
        Some(at) if detail[at..].contains(" column ") => &detail[..at],
        _ => detail,
    };
    if let Some(message) = java_type_message(detail) {
        return message;
    }
    if detail.contains("can not be converted to") {
        return detail.to_owned();
    }
    format!("Unable to parse the request body: {detail}")
}

/// What serde found where a member of another type belonged.
enum Found<'a> {
    Boolean,
    Number,
    Text(&'a str),
    List,
    Map,
}

fn java_type_message(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("invalid type: ")?;
    let (found, expected) = rest.split_once(", expected ")?;
    let expected = expected.split(" at line ").next().unwrap_or(expected);
    let found = match found {
        "sequence" => Found::List,
        "map" => Found::Map,
        f if f.starts_with("boolean") => Found::Boolean,
        f if f.starts_with("integer") || f.starts_with("floating point") => Found::Number,
        f if f.starts_with("string") => {
            let quoted = f.strip_prefix("string ")?;
            Found::Text(
                quoted
                    .strip_prefix('"')
                    .and_then(|q| q.strip_suffix('"'))
                    .unwrap_or(quoted),
            )
        }
        _ => return None,
    };
    let java = match expected {
        "a string" => "String",
        "i64" | "i32" | "u32" | "u64" => "Integer",
        "a boolean" => "Boolean",
        "a base64 string or a byte string" => "Blob",
        "a sequence" => "List",
        "a map" => "Map",
        e if e.starts_with("struct ") => "Structure",
        _ => return None,
    };
    let converted = |class: &str| {
        let article = if java == "Blob" { "a" } else { "an" };
        format!("{class} can not be converted to {article} {java}")
    };
    Some(match (found, java) {
        (Found::List, _) => "Start of list found where not expected".to_owned(),
        (Found::Map, "List") => "Start of structure or map found where not expected.".to_owned(),
        (Found::Map, _) => "Start of structure or map found where not expected.".to_owned(),
        (_, "List") => "Expected list or null".to_owned(),
        (_, "Map") => "Expected map or null".to_owned(),
        (_, "Structure") => "Expected null".to_owned(),
        (Found::Boolean, _) => converted("class java.lang.Boolean"),
        (Found::Number, _) => converted("class java.math.BigDecimal"),
        (Found::Text(text), "Boolean") => converted(&format!("'{}'", text.to_uppercase())),
        (Found::Text(_), _) => converted("class java.lang.String"),
    })
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
                let failure = KinesisError::internal(format!("cannot encode the response: {e}"));
                let _ = ciborium::into_writer(&ErrorBody::of(&failure), &mut out);
            }
            out
        }
    }
}

/// The body of every error response: `__type`, and the message unless there is none
/// (protocol errors carry none). Serialization errors name the member `Message`, the
/// rest `message`, as Kinesis writes them.
#[derive(Debug)]
pub struct ErrorBody<'a> {
    pub kind: &'static str,
    pub message: &'a str,
    message_key: &'static str,
}

impl<'a> ErrorBody<'a> {
    pub fn of(error: &'a KinesisError) -> Self {
        ErrorBody {
            kind: error.kind.wire_name(),
            message: &error.message,
            message_key: match error.kind {
                crate::server::error::ErrorKind::Serialization => "Message",
                _ => "message",
            },
        }
    }
}

impl Serialize for ErrorBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let with_message = !self.message.is_empty();
        let mut map = serializer.serialize_map(Some(1 + usize::from(with_message)))?;
        map.serialize_entry("__type", self.kind)?;
        if with_message {
            map.serialize_entry(self.message_key, self.message)?;
        }
        map.end()
    }
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
                    let why = if !v.len().is_multiple_of(4) {
                        format!(
                            "Base64 encoded length is expected a multiple of 4 bytes but found: {}",
                            v.len()
                        )
                    } else if let Some(bad) = first_bad_base64(v) {
                        format!("Invalid Base64 character: '{bad}'")
                    } else {
                        "Invalid last non-pad Base64 character dectected".to_owned()
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

/// The first character that cannot stand where it is in base64: outside the
/// alphabet, or anything after a `=` but another `=`.
fn first_bad_base64(text: &str) -> Option<char> {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')) {
            return Some(c);
        }
        if c == '=' && chars.peek().is_some_and(|next| *next != '=') {
            return Some(c);
        }
    }
    None
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

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code)]
    struct Typed {
        name: Option<String>,
        count: Option<i64>,
        flag: Option<bool>,
        data: Option<Blob>,
        list: Option<Vec<String>>,
        tags: Option<std::collections::BTreeMap<String, String>>,
        inner: Option<Sample>,
    }

    #[test]
    fn a_member_of_the_wrong_type_is_described_as_kinesis_does() {
        let cases = [
            (
                r#"{"Name":true}"#,
                "class java.lang.Boolean can not be converted to an String",
            ),
            (
                r#"{"Name":12}"#,
                "class java.math.BigDecimal can not be converted to an String",
            ),
            (r#"{"Name":[]}"#, "Start of list found where not expected"),
            (
                r#"{"Name":{}}"#,
                "Start of structure or map found where not expected.",
            ),
            (
                r#"{"Count":true}"#,
                "class java.lang.Boolean can not be converted to an Integer",
            ),
            (
                r#"{"Count":"two"}"#,
                "class java.lang.String can not be converted to an Integer",
            ),
            (
                r#"{"Flag":1}"#,
                "class java.math.BigDecimal can not be converted to an Boolean",
            ),
            (
                r#"{"Flag":"yes"}"#,
                "'YES' can not be converted to an Boolean",
            ),
            (
                r#"{"Data":false}"#,
                "class java.lang.Boolean can not be converted to a Blob",
            ),
            (
                r#"{"Data":"abc"}"#,
                "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 3",
            ),
            (
                r#"{"Data":"ab?d"}"#,
                "'ab?d' can not be converted to a Blob: Invalid Base64 character: '?'",
            ),
            (r#"{"List":"x"}"#, "Expected list or null"),
            (
                r#"{"List":{}}"#,
                "Start of structure or map found where not expected.",
            ),
            (r#"{"Tags":5}"#, "Expected map or null"),
            (r#"{"Tags":[]}"#, "Start of list found where not expected"),
            (r#"{"Inner":"x"}"#, "Expected null"),
        ];
        for (body, message) in cases {
            let error = decode::<Typed>(Format::Json, body.as_bytes()).unwrap_err();
            assert_eq!(error.kind, crate::server::error::ErrorKind::Serialization);
            assert_eq!(error.message, message, "{body}");
        }
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
