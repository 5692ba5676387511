//! Delivery to an HTTP endpoint with Firehose's request and response protocol.
//!
//! One POST per batch: a JSON body `{"requestId", "timestamp", "records": [{"data":
//! base64}]}` with the headers `X-Amz-Firehose-Protocol-Version: 1.0`,
//! `X-Amz-Firehose-Request-Id`, `X-Amz-Firehose-Source-Arn` and, when configured,
//! `X-Amz-Firehose-Access-Key`. Only a 200 whose JSON body echoes the `requestId`
//! counts as delivered; anything else (another status, a body that does not echo
//! it, no answer within 3 minutes) is a failure, retried for the destination's retry
//! duration, after which the records are backed up to its S3 bucket.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::buffer::Batch;
use super::config::Http;

/// How long an endpoint has to answer one request, as Firehose allows it.
const ANSWER_WITHIN: Duration = Duration::from_secs(180);

/// Why a delivery attempt failed, worded as Firehose's error log words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    pub code: &'static str,
    pub message: String,
}

/// A client for HTTP and HTTPS endpoints (the system's CA certificates).
#[derive(Clone)]
pub struct Endpoints {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Endpoints {
    pub fn new() -> Endpoints {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
        let connector = match tls {
            Ok(tls) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .build(),
            Err(error) => {
                tracing::error!(%error, "no TLS for HTTPS endpoints; only http:// endpoints can be delivered to");
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(
                        rustls::ClientConfig::builder_with_provider(Arc::new(
                            rustls::crypto::aws_lc_rs::default_provider(),
                        ))
                        .with_protocol_versions(&[&rustls::version::TLS13])
                        .unwrap_or_else(|_| unreachable!("TLS 1.3 is in every provider"))
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                    )
                    .https_or_http()
                    .enable_http1()
                    .build()
            }
        };
        Endpoints {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// One attempt to deliver `batch` to `http`'s endpoint.
    pub async fn post(
        &self,
        http: &Http,
        source_arn: &str,
        batch: &Batch,
        now_ms: i64,
    ) -> Result<(), AttemptFailure> {
        let request_id = request_id();
        let body = body(&request_id, now_ms, batch);
        let mut request = hyper::Request::post(&http.url)
            .header("Content-Type", "application/json")
            .header("X-Amz-Firehose-Protocol-Version", "1.0")
            .header("X-Amz-Firehose-Request-Id", &request_id)
            .header("X-Amz-Firehose-Source-Arn", source_arn);
        if let Some(key) = &http.access_key {
            request = request.header("X-Amz-Firehose-Access-Key", key);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AttemptFailure {
                code: "HttpEndpoint.InvalidUrl",
                message: format!("The URL {} cannot be requested: {e}", http.url),
            })?;
        let answer = tokio::time::timeout(ANSWER_WITHIN, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| AttemptFailure {
                    code: "HttpEndpoint.ConnectionFailed",
                    message: format!("Firehose was unable to connect to the endpoint: {e}"),
                })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, AttemptFailure>((status, body))
        })
        .await
        .map_err(|_| AttemptFailure {
            code: "HttpEndpoint.RequestTimeout",
            message: format!(
                "The endpoint did not answer within {} seconds.",
                ANSWER_WITHIN.as_secs()
            ),
        })??;
        let (status, body) = answer;
        let shown = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
        if status != 200 {
            return Err(AttemptFailure {
                code: "HttpEndpoint.DestinationException",
                message: format!(
                    "The following response was received from the endpoint destination. {status}: {shown}"
                ),
            });
        }
        let echoed = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("requestId")
                    .and_then(|r| r.as_str())
                    .map(str::to_owned)
            });
        if echoed.as_deref() != Some(request_id.as_str()) {
            return Err(AttemptFailure {
                code: "HttpEndpoint.InvalidResponseFromDestination",
                message: format!(
                    "The response received from the endpoint is invalid: its requestId does not match {request_id}. 200: {shown}"
                ),
            });
        }
        Ok(())
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints::new()
    }
}

/// The request body: every record of the batch, in order, as base64.
fn body(request_id: &str, now_ms: i64, batch: &Batch) -> Vec<u8> {
    use base64_simd::STANDARD;
    let mut out = Vec::with_capacity(batch.data.len() * 4 / 3 + batch.len() * 16 + 128);
    out.extend_from_slice(
        format!("{{\"requestId\":\"{request_id}\",\"timestamp\":{now_ms},\"records\":[").as_bytes(),
    );
    for (index, record) in batch.records().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"data\":\"");
        out.extend_from_slice(STANDARD.encode_to_string(record).as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// A GUID-shaped request id.
fn request_id() -> String {
    let id: u128 = rand::random();
    let hex = format!("{id:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
