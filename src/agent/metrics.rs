//! The agent's Prometheus metrics: one description per family (the `# HELP` lines), and
//! the flow counters exported from [`FlowStats`] every second.
//!
//! Families are split by what they are about, so none counts the same thing twice:
//! `shardcar_flow_*{flow}` is the file side (bytes read, records, rotations, what was
//! delivered), the producer's `shardcar_*{stream,...}` families are the Kinesis side
//! (records and calls, throttling, failures by trouble, latency).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::stats::FlowSnapshot;
use crate::producer::StatsSnapshot;

/// PutRecords latency buckets, in seconds: from a fast local call to a slow retry.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process's metrics recorder once; later calls get the same handle.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("shardcar_put_records_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot install the metrics recorder; /metrics stays empty");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    let counters: &[(&str, Unit, &str)] = &[
        (
            "shardcar_flow_bytes_read_total",
            Unit::Bytes,
            "Bytes read from the flow's files.",
        ),
        (
            "shardcar_flow_records_total",
            Unit::Count,
            "Records the flow handed to its producer (lines, multi-line records and pieces of split lines).",
        ),
        (
            "shardcar_flow_empty_lines_total",
            Unit::Count,
            "Empty lines skipped.",
        ),
        (
            "shardcar_flow_oversize_records_total",
            Unit::Count,
            "Records over the record limit, split, truncated or skipped by the oversize policy.",
        ),
        (
            "shardcar_flow_rotations_total",
            Unit::Count,
            "Files renamed or deleted away from their path while read.",
        ),
        (
            "shardcar_flow_truncations_total",
            Unit::Count,
            "Files truncated or replaced in place (copytruncate) and read again from the start.",
        ),
        (
            "shardcar_flow_transform_failures_total",
            Unit::Count,
            "Records a transform could not apply to, sent as they were.",
        ),
        (
            "shardcar_flow_partition_key_fallbacks_total",
            Unit::Count,
            "Records whose partition key could not be extracted and got a random one.",
        ),
        (
            "shardcar_flow_unreadable_files_total",
            Unit::Count,
            "Matching files that could not be opened (permissions).",
        ),
        (
            "shardcar_flow_delivered_records_total",
            Unit::Count,
            "Records the service accepted (the checkpoint can move past them).",
        ),
        (
            "shardcar_kinesis_records_total",
            Unit::Count,
            "Kinesis records accepted per shard (an aggregate counts once).",
        ),
        (
            "shardcar_kinesis_bytes_total",
            Unit::Bytes,
            "Kinesis record bytes (partition key and data) accepted per shard.",
        ),
        (
            "shardcar_put_requests_total",
            Unit::Count,
            "PutRecords calls sent.",
        ),
        (
            "shardcar_throttled_entries_total",
            Unit::Count,
            "Entries refused with ProvisionedThroughputExceededException, per shard; retried.",
        ),
        (
            "shardcar_retried_entries_total",
            Unit::Count,
            "Entries failed inside an answered call, by error code; retried.",
        ),
        (
            "shardcar_failed_requests_total",
            Unit::Count,
            "Calls that failed as a whole (PutRecords, ListShards), by trouble: unreachable, credentials, stream_missing, service. Retried.",
        ),
        (
            "shardcar_dead_lettered_records_total",
            Unit::Count,
            "Records the service will never accept, written to the dead-letter file.",
        ),
        (
            "shardcar_shard_map_refreshes_total",
            Unit::Count,
            "Shard listings loaded.",
        ),
        (
            "shardcar_shard_listing_failures_total",
            Unit::Count,
            "Shard listings (ListShards, DescribeStreamSummary) that failed.",
        ),
    ];
    for (name, unit, help) in counters {
        describe_counter!(*name, *unit, *help);
    }
    let gauges: &[(&str, Unit, &str)] = &[
        (
            "shardcar_flow_files_tracked",
            Unit::Count,
            "Files the flow is reading or finishing.",
        ),
        (
            "shardcar_flow_bytes_behind",
            Unit::Bytes,
            "Bytes of the flow's files not yet acknowledged by the service.",
        ),
        (
            "shardcar_flow_unacknowledged_records",
            Unit::Count,
            "Records handed to the producer whose outcome has not come back.",
        ),
        (
            "shardcar_flow_ready",
            Unit::Count,
            "1 when the flow is delivering or idle, 0 when its calls have been failing for ready_after_failing_secs.",
        ),
        (
            "shardcar_flow_aggregation_ratio",
            Unit::Count,
            "User records per Kinesis record.",
        ),
        (
            "shardcar_in_flight_bytes",
            Unit::Bytes,
            "Bytes of the shared in-flight budget taken.",
        ),
        (
            "shardcar_build_info",
            Unit::Count,
            "Always 1; the version is a label.",
        ),
    ];
    for (name, unit, help) in gauges {
        describe_gauge!(*name, *unit, *help);
    }
    describe_histogram!(
        "shardcar_put_records_seconds",
        Unit::Seconds,
        "PutRecords call latency, from sending to the answer."
    );
    metrics::gauge!("shardcar_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Exports one flow's counters and gauges.
pub fn export_flow(
    flow: &str,
    stats: &FlowSnapshot,
    producer: &StatsSnapshot,
    ready: bool,
    in_flight: usize,
) {
    let flow = flow.to_owned();
    let counters = [
        ("shardcar_flow_bytes_read_total", stats.bytes_read),
        ("shardcar_flow_records_total", stats.records),
        ("shardcar_flow_empty_lines_total", stats.empty_lines),
        (
            "shardcar_flow_oversize_records_total",
            stats.oversize_records,
        ),
        ("shardcar_flow_rotations_total", stats.rotations),
        ("shardcar_flow_truncations_total", stats.truncations),
        (
            "shardcar_flow_transform_failures_total",
            stats.transform_failures,
        ),
        (
            "shardcar_flow_partition_key_fallbacks_total",
            stats.key_fallbacks,
        ),
        (
            "shardcar_flow_unreadable_files_total",
            stats.unreadable_files,
        ),
        ("shardcar_flow_delivered_records_total", stats.delivered),
    ];
    for (name, value) in counters {
        metrics::counter!(name, "flow" => flow.clone()).absolute(value);
    }
    let gauges = [
        ("shardcar_flow_files_tracked", stats.files_tracked as f64),
        ("shardcar_flow_bytes_behind", stats.bytes_behind as f64),
        (
            "shardcar_flow_unacknowledged_records",
            producer.unacknowledged_records() as f64,
        ),
        ("shardcar_flow_ready", if ready { 1.0 } else { 0.0 }),
        (
            "shardcar_flow_aggregation_ratio",
            if producer.kinesis_records == 0 {
                0.0
            } else {
                producer.user_records as f64 / producer.kinesis_records as f64
            },
        ),
    ];
    for (name, value) in gauges {
        metrics::gauge!(name, "flow" => flow.clone()).set(value);
    }
    metrics::gauge!("shardcar_in_flight_bytes").set(in_flight as f64);
}
