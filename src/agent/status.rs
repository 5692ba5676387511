//! Once a second: each flow's counters exported as metrics (and the exporter's
//! upkeep); every 30 seconds: one status line per flow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::flow::Token;
use super::stats::{FlowSnapshot, FlowStats};
use super::{http, metrics};
use crate::producer::{Budget, ProducerHandle};

const STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// A flow as the status loop sees it.
pub struct Watched {
    pub name: String,
    pub stats: Arc<FlowStats>,
    pub producer: ProducerHandle<Token>,
}

/// Exports and reports until `stop` changes.
pub async fn run(
    flows: Vec<Watched>,
    budget: Budget,
    readiness: http::Readiness,
    recorder: Option<metrics_exporter_prometheus::PrometheusHandle>,
    mut stop: watch::Receiver<bool>,
) {
    let mut previous: BTreeMap<String, FlowSnapshot> = BTreeMap::new();
    let mut since_status = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        since_status += Duration::from_secs(1);
        let ready: BTreeMap<String, bool> = readiness
            .flows()
            .into_iter()
            .map(|f| (f.flow, f.ready))
            .collect();
        for watched in &flows {
            let (name, stats, producer) = (&watched.name, &watched.stats, &watched.producer);
            let now = stats.snapshot();
            let produced = producer.stats();
            let flow_ready = ready.get(name).copied().unwrap_or(true);
            metrics::export_flow(name, &now, &produced, flow_ready, budget.in_use());
            if since_status >= STATUS_INTERVAL {
                let before = previous.get(name).copied().unwrap_or_default();
                let health = producer.health();
                tracing::info!(
                    flow = %name,
                    files = now.files_tracked,
                    read_records = now.records,
                    read_bytes = now.bytes_read,
                    delivered_records = now.delivered,
                    unacknowledged_records = produced.unacknowledged_records(),
                    unacknowledged_bytes = produced.unacknowledged_bytes(),
                    bytes_behind = now.bytes_behind,
                    records_per_sec = (now.records - before.records) / STATUS_INTERVAL.as_secs(),
                    throttled = produced.throttled_entries,
                    dead_lettered = now.dead_lettered,
                    ready = flow_ready,
                    last_error = health.last_error.as_deref().unwrap_or("none"),
                    "status"
                );
                previous.insert(name.clone(), now);
            }
        }
        if let Some(recorder) = &recorder {
            recorder.run_upkeep();
        }
        if since_status >= STATUS_INTERVAL {
            since_status = Duration::ZERO;
        }
    }
}
