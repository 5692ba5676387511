//! HTTP framing: every action is `POST /` with `X-Amz-Target: Kinesis_20131202.<Action>`.
//!
//! This is the one place where a [`KinesisError`] becomes a response: status 400 (500
//! for InternalFailure), `x-amzn-ErrorType`, and a `{"__type", "message"}` body in the
//! request's format. Signatures are accepted without checking, and so are unsigned
//! requests.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::audit::{AuditLog, Call};
use super::auth::{self, Identities, Signed};
use super::error::KinesisError;
use super::ops;
use super::policy::{self, Policies};
use super::protocol;
use super::wire::{self, ErrorBody, Format};

/// Largest request body: a full PutRecords (5 MiB of data), or one 10 MiB record on a
/// stream that takes them, base64-encoded, with room.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A response body: whole, or SubscribeToShard's event stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// An event stream's frames as they come.
struct Events(mpsc::Receiver<Bytes>);

impl http_body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|frame| frame.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

/// What a call came to: an answer, or a subscription's event stream.
enum Answer {
    Body(Vec<u8>),
    Events(mpsc::Receiver<Bytes>),
}

/// What every request is handled with.
#[derive(Debug)]
pub struct Settings {
    pub body_timeout: Duration,
    /// Who may sign requests; `None` checks no signature.
    pub identities: Option<Arc<Identities>>,
    /// Where every call is recorded, when set.
    pub audit: Option<Arc<AuditLog>>,
    /// Who may do what; `None` allows every call.
    pub policies: Option<Arc<Policies>>,
    /// The delivery streams Firehose calls work on.
    pub firehose: Arc<super::firehose::Firehose>,
}

/// What an audited call showed of itself.
#[derive(Default)]
struct Seen {
    action: Option<String>,
    body: Bytes,
    headers: http::HeaderMap,
}

pub async fn handle(
    regions: Arc<super::regions::Regions>,
    request: Request<Incoming>,
    settings: Arc<Settings>,
    peer: std::net::SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let body_timeout = settings.body_timeout;
    let format = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_content_type);
    // A body larger than any valid request is refused before it is read.
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Ok(too_large());
    }
    let mut seen = Seen::default();
    let answered = answer(&regions, request, format, &settings, &mut seen).await;
    if let (Some(audit), Some(action)) = (&settings.audit, &seen.action) {
        let request_id = format!("{:032x}", rand::random::<u128>());
        audit.record(&Call {
            action,
            format,
            body: &seen.body,
            peer,
            headers: &seen.headers,
            request_id: &request_id,
            error: match &answered {
                Err(Failed::Kinesis(error)) => Some(error.clone()),
                Err(Failed::Refused(refusal)) => Some(refusal.error()),
                _ => None,
            }
            .as_ref(),
        });
        let mut response = respond_to(answered, format, body_timeout);
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-amzn-RequestId", id);
        }
        return Ok(response);
    }
    Ok(respond_to(answered, format, body_timeout))
}

/// The HTTP answer to what [`answer`] came to.
fn respond_to(
    answered: Result<Answer, Failed>,
    format: Option<Format>,
    body_timeout: Duration,
) -> Response<Body> {
    match answered {
        Ok(Answer::Body(body)) => {
            respond(StatusCode::OK, format.unwrap_or(Format::Json), body, None)
        }
        Ok(Answer::Events(frames)) => {
            let mut response = Response::new(Events(frames).boxed());
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            headers.insert("x-amzn-RequestId", request_id());
            response
        }
        Err(Failed::Kinesis(error)) => error_response(format.unwrap_or(Format::Json), &error),
        Err(Failed::Refused(refusal)) => {
            let mut response = refusal.response();
            response
                .headers_mut()
                .insert("x-amzn-RequestId", request_id());
            response
        }
        Err(Failed::TooLarge) => too_large(),
        Err(Failed::BodyTimeout) => closing(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "The request body did not arrive within {} s.",
                body_timeout.as_secs_f64()
            ),
        ),
    }
}

/// What [`answer`] can end in besides a Kinesis answer: a body that did not come.
enum Failed {
    Kinesis(KinesisError),
    /// Refused before it was a call (see `protocol`).
    Refused(protocol::Refusal),
    BodyTimeout,
    TooLarge,
}

impl From<KinesisError> for Failed {
    fn from(error: KinesisError) -> Self {
        Failed::Kinesis(error)
    }
}

fn too_large() -> Response<Body> {
    closing(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request must be smaller than {MAX_BODY_BYTES} bytes."),
    )
}

/// A plain answer that ends the connection (the request could not be read whole).
fn closing(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(message)).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}

async fn answer(
    regions: &super::regions::Regions,
    request: Request<Incoming>,
    format: Option<Format>,
    settings: &Settings,
    seen: &mut Seen,
) -> Result<Answer, Failed> {
    let (parts, body) = request.into_parts();
    let body = if parts.method == http::Method::POST {
        let collecting = Limited::new(body, MAX_BODY_BYTES).collect();
        match tokio::time::timeout(settings.body_timeout, collecting).await {
            Err(_) => return Err(Failed::BodyTimeout),
            Ok(Ok(collected)) => collected.to_bytes(),
            // A body without a Content-Length that runs past the limit: refused as one
            // that declared its size would have been.
            Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(Failed::TooLarge);
            }
            Ok(Err(_)) => {
                return Err(Failed::Refused(protocol::Refusal::Bare {
                    format: format.unwrap_or(Format::Json),
                    kind: super::error::ErrorKind::Serialization,
                }));
            }
        }
    } else {
        Bytes::new()
    };
    if settings.audit.is_some() {
        seen.body = body.clone();
        seen.headers = parts.headers.clone();
    }
    let signed = Signed {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        authority: parts.uri.authority().map(|a| a.as_str()),
        headers: &parts.headers,
        body: &body,
    };
    // A presigned call carries its parameters in the query instead of a body.
    let presigned_body = match auth::presigned_parameters(signed.query) {
        Some(parameters) if body.is_empty() => Some(Bytes::from(parameters)),
        _ => None,
    };
    let call_body = presigned_body.as_ref().unwrap_or(&body);
    let header =
        |name: http::header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let call = protocol::check(protocol::Front {
        method: &parts.method,
        content_type: header(http::header::CONTENT_TYPE),
        target: header(http::header::HeaderName::from_static("x-amz-target")),
        body: call_body,
        signed: presigned_body.is_some() || parts.headers.contains_key(http::header::AUTHORIZATION),
    })
    .map_err(Failed::Refused)?;
    let (format, action) = (call.format, call.action);
    if call.service == protocol::Service::Firehose {
        if settings.audit.is_some() {
            seen.action = Some(action.clone());
        }
        match &settings.identities {
            Some(identities) => {
                identities.verify(&signed, std::time::SystemTime::now())?;
            }
            None => auth::check_shape(&signed)?,
        }
        return Ok(Answer::Body(
            settings.firehose.dispatch(&action, call_body)?,
        ));
    }
    let store = regions.store(auth::claimed_region(&signed).as_deref())?;
    if settings.audit.is_some() {
        seen.action = Some(action.clone());
    }
    let signer = match &settings.identities {
        Some(identities) => Some(identities.verify(&signed, std::time::SystemTime::now())?),
        None => {
            auth::check_shape(&signed)?;
            None
        }
    };
    let body = call_body;
    if let Some(policies) = &settings.policies {
        // Unverified (no credentials file), the key a request claims is who it is.
        let access_key_id = signer
            .map(|i| i.access_key_id.as_str())
            .map(str::to_owned)
            .or_else(|| auth::claimed_access_key(&signed))
            .unwrap_or_else(|| "anonymous".to_owned());
        let account_id = signer
            .and_then(|i| i.account_id.as_deref())
            .unwrap_or(store.account_id());
        if let Some((resource, resource_policy)) = ops::resource_of(&store, format, body) {
            let call = policy::Call {
                access_key_id: &access_key_id,
                account_id,
                action: &action,
                resource: &resource,
            };
            policies
                .authorize(&call, resource_policy.as_ref().map(|p| &*p.document))
                .map_err(|denied| KinesisError {
                    kind: super::error::ErrorKind::AccessDenied,
                    message: denied.message,
                })?;
        }
    }
    if action == "SubscribeToShard" {
        return Ok(Answer::Events(ops::subscribe(&store, format, body)?));
    }
    Ok(Answer::Body(ops::dispatch(&store, &action, format, body)?))
}

fn respond(
    status: StatusCode,
    format: Format,
    body: Vec<u8>,
    error_type: Option<&'static str>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
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
pub fn error_response(format: Format, error: &KinesisError) -> Response<Body> {
    let status = StatusCode::from_u16(error.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = wire::encode(format, &ErrorBody::of(error));
    if status.is_server_error() {
        tracing::warn!(error = %error, "answering an internal failure");
    }
    respond(status, format, body, Some(error.kind.wire_name()))
}

fn request_id() -> HeaderValue {
    let id: u128 = rand::random();
    HeaderValue::from_str(&format!("{id:032x}")).unwrap_or_else(|_| HeaderValue::from_static("0"))
}
