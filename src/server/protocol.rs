//! The checks a request meets before it is an API call, in the order Kinesis makes
//! them, with the answers Kinesis gives. Clients and other emulators' suites depend
//! on both: a request with no `X-Amz-Target` is `UnknownOperationException` even when
//! it is unsigned, an empty body is `SerializationException` before the signature is
//! looked at, and these protocol errors carry no message.
//!
//! 1. A method other than POST, or a content type that is neither
//!    `application/x-amz-json-1.1` nor `application/x-amz-cbor-1.1` (nor the old
//!    `application/json`): 403 with an XML body, `MissingAuthenticationTokenException`
//!    when the request is unsigned, `AccessDeniedException` otherwise.
//! 2. `application/json`, the protocol's deprecated form: 200 with an `Output`
//!    wrapper holding `SerializationException` (a body that is not JSON) or
//!    `UnknownOperationException` (anything else); no call is ever made.
//! 3. No body: `SerializationException` for a known action, else
//!    `UnknownOperationException`.
//! 4. A body that is not a JSON object (or CBOR map): `SerializationException`
//!    (for a known action the first byte is checked here, the rest by its decoding).
//! 5. A target that is not `Kinesis_20131202.<action this server answers>`:
//!    `UnknownOperationException`.
//!
//! Signatures, policies and field validation follow, in `http`, `auth` and `ops`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::error::{ErrorKind, KinesisError};
use super::http::Body;
use super::ops;
use super::wire::Format;

pub const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// The content type of the deprecated JSON protocol.
const DEPRECATED_JSON: &str = "application/json";

/// The service a call is for: Kinesis Data Streams, or Firehose on the same port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Kinesis,
    Firehose,
}

/// What a request that passed the checks asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub format: Format,
    pub action: String,
    pub service: Service,
}

/// A request refused before it became a call, with the answer Kinesis gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 403 with an XML body: the service could not even tell what was asked.
    Xml {
        kind: ErrorKind,
        message: &'static str,
    },
    /// 400 with a body holding only `__type`, in the request's format.
    Bare { format: Format, kind: ErrorKind },
    /// 200 with the deprecated protocol's `Output` wrapper.
    Deprecated { kind: ErrorKind },
}

/// The parts of a request the checks read.
#[derive(Debug, Clone, Copy)]
pub struct Front<'a> {
    pub method: &'a http::Method,
    pub content_type: Option<&'a str>,
    pub target: Option<&'a str>,
    pub body: &'a [u8],
    /// An `Authorization` header or an `X-Amz-Algorithm` query parameter is present.
    pub signed: bool,
}

/// Runs the checks of the module's doc in order.
pub fn check(front: Front<'_>) -> Result<Call, Refusal> {
    let refused = || Refusal::Xml {
        kind: if front.signed {
            ErrorKind::AccessDenied
        } else {
            ErrorKind::MissingAuthenticationToken
        },
        message: if front.signed {
            "Unable to determine service/operation name to be authorized"
        } else {
            "Missing Authentication Token"
        },
    };
    if front.method != http::Method::POST {
        return Err(refused());
    }
    let content_type = front
        .content_type
        .map(|v| v.split(';').next().unwrap_or("").trim());
    if content_type == Some(DEPRECATED_JSON) {
        let kind = if front.body.is_empty() || is_json_object(front.body) {
            ErrorKind::UnknownOperation
        } else {
            ErrorKind::Serialization
        };
        return Err(Refusal::Deprecated { kind });
    }
    let Some(format) = content_type.and_then(Format::from_content_type) else {
        return Err(refused());
    };
    let action = front.target.and_then(|target| {
        if let Some(action) = target.strip_prefix(TARGET_PREFIX) {
            ops::names()
                .any(|name| name == action)
                .then_some((action, Service::Kinesis))
        } else {
            let action = target.strip_prefix(super::firehose::TARGET_PREFIX)?;
            super::firehose::ACTIONS
                .contains(&action)
                .then_some((action, Service::Firehose))
        }
    });
    if front.body.is_empty() {
        let kind = match action {
            Some(_) => ErrorKind::Serialization,
            None => ErrorKind::UnknownOperation,
        };
        return Err(Refusal::Bare { format, kind });
    }
    // For a known action only the body's first byte is looked at here: the action's
    // own decoding reads the rest once, and answers a malformed body the same way
    // (see `wire::decode`). An unknown action's body is read whole, as Kinesis
    // reports a malformed one before the unknown operation.
    let well_formed = match (format, action) {
        (Format::Json, Some(_)) => opens_json_object(front.body),
        (Format::Json, None) => is_json_object(front.body),
        (Format::Cbor, Some(_)) => opens_cbor_map(front.body),
        (Format::Cbor, None) => is_cbor_map(front.body),
    };
    if !well_formed {
        return Err(Refusal::Bare {
            format,
            kind: ErrorKind::Serialization,
        });
    }
    match action {
        Some((action, service)) => Ok(Call {
            format,
            action: action.to_owned(),
            service,
        }),
        None => Err(Refusal::Bare {
            format,
            kind: ErrorKind::UnknownOperation,
        }),
    }
}

fn opens_json_object(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// CBOR major type 5 (a map), definite or indefinite length.
fn opens_cbor_map(body: &[u8]) -> bool {
    body.first().is_some_and(|b| b >> 5 == 5)
}

fn is_json_object(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
        && body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{')
}

fn is_cbor_map(body: &[u8]) -> bool {
    matches!(
        ciborium::from_reader::<ciborium::Value, _>(body),
        Ok(ciborium::Value::Map(_))
    )
}

impl Refusal {
    /// The error as the audit trail and logs see it.
    pub fn error(&self) -> KinesisError {
        match self {
            Refusal::Xml { kind, message } => KinesisError {
                kind: *kind,
                message: (*message).to_owned(),
            },
            Refusal::Bare { kind, .. } | Refusal::Deprecated { kind } => KinesisError {
                kind: *kind,
                message: String::new(),
            },
        }
    }

    pub fn response(&self) -> Response<Body> {
        let (status, content_type, body) = match self {
            Refusal::Xml { kind, message } => {
                let name = kind.wire_name();
                (
                    StatusCode::FORBIDDEN,
                    None,
                    format!("<{name}>\n  <Message>{message}</Message>\n</{name}>\n").into_bytes(),
                )
            }
            Refusal::Bare { format, kind } => {
                let error = KinesisError {
                    kind: *kind,
                    message: String::new(),
                };
                (
                    StatusCode::BAD_REQUEST,
                    Some(format.content_type()),
                    super::wire::encode(*format, &super::wire::ErrorBody::of(&error)),
                )
            }
            Refusal::Deprecated { kind } => {
                // The old protocol names the message member differently per type.
                let message_key = match kind {
                    ErrorKind::Serialization => "Message",
                    _ => "message",
                };
                let body = serde_json::json!({
                    "Output": {
                        "__type": format!("com.amazon.coral.service#{}", kind.wire_name()),
                        message_key: null,
                    },
                    "Version": "1.0",
                });
                (
                    StatusCode::OK,
                    Some(DEPRECATED_JSON),
                    body.to_string().into_bytes(),
                )
            }
        };
        let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
        *response.status_mut() = status;
        if let Some(content_type) = content_type {
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = "application/x-amz-json-1.1";

    fn front<'a>(
        method: &'a http::Method,
        content_type: Option<&'a str>,
        target: Option<&'a str>,
        body: &'a [u8],
        signed: bool,
    ) -> Front<'a> {
        Front {
            method,
            content_type,
            target,
            body,
            signed,
        }
    }

    fn xml(kind: ErrorKind) -> Result<Call, Refusal> {
        Err(Refusal::Xml {
            kind,
            message: if kind == ErrorKind::AccessDenied {
                "Unable to determine service/operation name to be authorized"
            } else {
                "Missing Authentication Token"
            },
        })
    }

    fn bare(kind: ErrorKind) -> Result<Call, Refusal> {
        Err(Refusal::Bare {
            format: Format::Json,
            kind,
        })
    }

    #[test]
    fn each_check_answers_in_kinesis_order() {
        let post = http::Method::POST;
        let get = http::Method::GET;
        let list = Some("Kinesis_20131202.ListStreams");
        use ErrorKind::*;
        let cases: Vec<(&str, Front<'_>, Result<Call, Refusal>)> = vec![
            (
                "GET unsigned",
                front(&get, None, None, b"", false),
                xml(MissingAuthenticationToken),
            ),
            (
                "GET signed",
                front(&get, Some(JSON), list, b"{}", true),
                xml(AccessDenied),
            ),
            (
                "no content type",
                front(&post, None, list, b"{}", true),
                xml(AccessDenied),
            ),
            (
                "json 1.0",
                front(&post, Some("application/x-amz-json-1.0"), list, b"{}", true),
                xml(AccessDenied),
            ),
            (
                "no target, unsigned",
                front(&post, Some(JSON), None, b"{}", false),
                bare(UnknownOperation),
            ),
            (
                "no target, no body",
                front(&post, Some(JSON), None, b"", true),
                bare(UnknownOperation),
            ),
            (
                "no body",
                front(&post, Some(JSON), list, b"", false),
                bare(Serialization),
            ),
            (
                "not JSON",
                front(&post, Some(JSON), list, b"hello", false),
                bare(Serialization),
            ),
            (
                "a JSON array",
                front(&post, Some(JSON), list, b"[1]", false),
                bare(Serialization),
            ),
            (
                "not JSON, unknown target",
                front(&post, Some(JSON), Some("x.y"), b"hello", false),
                bare(Serialization),
            ),
            (
                "unknown action",
                front(
                    &post,
                    Some(JSON),
                    Some("Kinesis_20131202.ListStream"),
                    b"{}",
                    true,
                ),
                bare(UnknownOperation),
            ),
            (
                "other service",
                front(
                    &post,
                    Some(JSON),
                    Some("DynamoDB_20120810.ListTables"),
                    b"{}",
                    true,
                ),
                bare(UnknownOperation),
            ),
            (
                "firehose",
                front(
                    &post,
                    Some(JSON),
                    Some("Firehose_20150804.ListDeliveryStreams"),
                    b"{}",
                    true,
                ),
                Ok(Call {
                    format: Format::Json,
                    action: "ListDeliveryStreams".into(),
                    service: Service::Firehose,
                }),
            ),
            (
                "firehose, a Kinesis action",
                front(
                    &post,
                    Some(JSON),
                    Some("Firehose_20150804.ListStreams"),
                    b"{}",
                    true,
                ),
                bare(UnknownOperation),
            ),
            (
                "deprecated",
                front(&post, Some("application/json"), list, b"{}", true),
                Err(Refusal::Deprecated {
                    kind: UnknownOperation,
                }),
            ),
            (
                "deprecated, no body",
                front(&post, Some("application/json"), list, b"", true),
                Err(Refusal::Deprecated {
                    kind: UnknownOperation,
                }),
            ),
            (
                "deprecated, not JSON",
                front(&post, Some("application/json"), list, b"hello", true),
                Err(Refusal::Deprecated {
                    kind: Serialization,
                }),
            ),
            (
                "a call",
                front(
                    &post,
                    Some("application/x-amz-json-1.1; charset=utf-8"),
                    list,
                    b" {} ",
                    false,
                ),
                Ok(Call {
                    format: Format::Json,
                    action: "ListStreams".into(),
                    service: Service::Kinesis,
                }),
            ),
        ];
        for (name, front, expected) in cases {
            assert_eq!(check(front), expected, "{name}");
        }
    }

    #[test]
    fn cbor_calls_need_a_cbor_map() {
        let post = http::Method::POST;
        let cbor = Some("application/x-amz-cbor-1.1");
        let list = Some("Kinesis_20131202.ListStreams");
        assert_eq!(
            check(front(&post, cbor, list, &[0xa0], false)),
            Ok(Call {
                format: Format::Cbor,
                action: "ListStreams".into(),
                service: Service::Kinesis,
            })
        );
        assert_eq!(
            check(front(&post, cbor, list, b"{}", false)),
            Err(Refusal::Bare {
                format: Format::Cbor,
                kind: ErrorKind::Serialization
            })
        );
    }

    #[test]
    fn protocol_errors_carry_no_message_and_the_deprecated_form_wraps_them() {
        let bare = Refusal::Bare {
            format: Format::Json,
            kind: ErrorKind::UnknownOperation,
        };
        let body = super::super::wire::encode(
            Format::Json,
            &super::super::wire::ErrorBody::of(&bare.error()),
        );
        assert_eq!(body, br#"{"__type":"UnknownOperationException"}"#);
        let response = Refusal::Deprecated {
            kind: ErrorKind::Serialization,
        }
        .response();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
