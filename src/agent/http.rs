//! The agent's HTTP endpoint on `metrics_listen`: `/metrics` (Prometheus text),
//! `/health` (the process answers) and `/ready` (every flow is delivering or idle).
//!
//! A flow is not ready once its calls have been failing for `ready_after_failing_secs`
//! (stream missing, credentials refused, endpoint unreachable): `/ready` then answers
//! 503 with a JSON body naming the flows and why, so a load balancer or an
//! orchestrator can tell an agent that runs from one that delivers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::flow::Token;
use crate::producer::ProducerHandle;

/// Longest a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Per flow name: its stream and its producer.
type Flows = BTreeMap<String, (String, ProducerHandle<Token>)>;

/// The flows `/ready` judges, kept current across reloads.
#[derive(Clone)]
pub struct Readiness {
    flows: Arc<Mutex<Flows>>,
    after: Duration,
}

/// One flow's readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowReadiness {
    pub flow: String,
    pub stream: String,
    pub ready: bool,
    pub failing_secs: Option<u64>,
    pub trouble: Option<&'static str>,
    pub error: Option<String>,
}

impl Readiness {
    pub fn new(after: Duration) -> Readiness {
        Readiness {
            flows: Arc::default(),
            after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Flows> {
        self.flows.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, flow: &str, stream: &str, producer: ProducerHandle<Token>) {
        self.lock()
            .insert(flow.to_owned(), (stream.to_owned(), producer));
    }

    pub fn remove(&self, flow: &str) {
        self.lock().remove(flow);
    }

    /// Every flow's readiness now.
    pub fn flows(&self) -> Vec<FlowReadiness> {
        self.lock()
            .iter()
            .map(|(flow, (stream, producer))| {
                let health = producer.health();
                FlowReadiness {
                    flow: flow.clone(),
                    stream: stream.clone(),
                    ready: health.failing_for.is_none_or(|d| d < self.after),
                    failing_secs: health.failing_for.map(|d| d.as_secs()),
                    trouble: health.trouble.map(|t| t.as_str()),
                    error: health.last_error,
                }
            })
            .collect()
    }

    /// Whether one flow is ready (unknown flows are not).
    pub fn is_ready(&self, flow: &str) -> bool {
        self.flows().iter().any(|f| f.flow == flow && f.ready)
    }
}

/// Serves until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Option<PrometheusHandle>,
    readiness: Readiness,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let (socket, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "metrics endpoint: accept failed");
                continue;
            }
        };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = answer(&request, metrics.as_ref(), &readiness);
                    async move { Ok::<_, Infallible>(response) }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(socket), service);
            let _ = connection.await;
        });
    }
}

fn answer(
    request: &Request<hyper::body::Incoming>,
    metrics: Option<&PrometheusHandle>,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    let respond = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    };
    if request.method() != hyper::Method::GET {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => {
            let text = metrics.map(PrometheusHandle::render).unwrap_or_default();
            respond(StatusCode::OK, "text/plain; version=0.0.4", text)
        }
        "/health" => respond(
            StatusCode::OK,
            "application/json",
            "{\"alive\":true}\n".into(),
        ),
        "/ready" => {
            let flows = readiness.flows();
            let ready = flows.iter().all(|f| f.ready);
            let body = json!({
                "ready": ready,
                "flows": flows.iter().map(|f| json!({
                    "flow": f.flow,
                    "stream": f.stream,
                    "ready": f.ready,
                    "failing_secs": f.failing_secs,
                    "trouble": f.trouble,
                    "last_error": f.error,
                })).collect::<Vec<_>>(),
            });
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond(status, "application/json", format!("{body}\n"))
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics, /health or /ready\n".into(),
        ),
    }
}
