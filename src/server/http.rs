//! HTTP framing: every action is `POST /` with `X-Amz-Target: Kinesis_20131202.<Action>`.
//!
//! This is the one place where a [`KinesisError`] becomes a response: status 400 (500
//! for InternalFailure), `x-amzn-ErrorType`, and a `{"__type", "message"}` body in the
//! request's format. Signatures are accepted without checking, and so are unsigned
//! requests.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::error::KinesisError;
use super::ops;
use super::store::Store;
use super::wire::{self, ErrorBody, Format};

/// Largest request body: a full PutRecords (5 MiB of data), or one 10 MiB record on a
/// stream that takes them, base64-encoded, with room.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

const TARGET_PREFIX: &str = "Kinesis_20131202.";

pub async fn handle(
    store: Store,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let format = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_content_type);
    let response = match answer(store, request, format).await {
        Ok(body) => respond(StatusCode::OK, format.unwrap_or(Format::Json), body, None),
        Err(error) => error_response(format.unwrap_or(Format::Json), &error),
    };
    Ok(response)
}

async fn answer(
    store: Store,
    request: Request<Incoming>,
    format: Option<Format>,
) -> Result<Vec<u8>, KinesisError> {
    if request.method() != http::Method::POST {
        return Err(KinesisError {
            kind: super::error::ErrorKind::AccessDenied,
            message: "Unable to determine service/operation name to be authorized".into(),
        });
    }
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(action) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(KinesisError::unknown_operation(format!(
            "X-Amz-Target {target:?} does not name a Kinesis_20131202 operation."
        )));
    };
    let action = action.to_owned();
    let Some(format) = format else {
        let given = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| "nothing".into());
        return Err(KinesisError::serialization(format!(
            "Content-Type must be application/x-amz-json-1.1 or application/x-amz-cbor-1.1, not {given}."
        )));
    };
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return Err(if error.is::<http_body_util::LengthLimitError>() {
                KinesisError::serialization(format!(
                    "The request body exceeds the {MAX_BODY_BYTES}-byte limit."
                ))
            } else {
                KinesisError::serialization(format!("The request body could not be read: {error}"))
            });
        }
    };
    ops::dispatch(&store, &action, format, &body)
}

fn respond(
    status: StatusCode,
    format: Format,
    body: Vec<u8>,
    error_type: Option<&'static str>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert("x-amzn-RequestId", request_id());
    if let Some(kind) = error_type {
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
    }
    response
}

/// The single mapping from [`KinesisError`] to an HTTP response.
pub fn error_response(format: Format, error: &KinesisError) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(error.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = wire::encode(
        format,
        &ErrorBody {
            kind: error.kind.wire_name(),
            message: error.message.clone(),
        },
    );
    if status.is_server_error() {
        tracing::warn!(error = %error, "answering an internal failure");
    }
    respond(status, format, body, Some(error.kind.wire_name()))
}

fn request_id() -> HeaderValue {
    let id: u128 = rand::random();
    HeaderValue::from_str(&format!("{id:032x}")).unwrap_or_else(|_| HeaderValue::from_static("0"))
}
