//! The raw mirror of `agent.toml`: only parses, never judges values.
//!
//! Every field is optional so that a missing key and a default are decided in one
//! place ([`super::validate`]). Each section is deserialized on its own, so one bad
//! section does not hide the problems of the others.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub state_dir: Option<String>,
    pub max_in_flight_bytes: Option<i64>,
    pub shutdown_grace_period_secs: Option<i64>,
    pub metrics_listen: Option<String>,
    pub scan_interval_ms: Option<i64>,
    pub on_corrupt_checkpoint: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKinesis {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    pub name: Option<String>,
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    pub stream: Option<String>,
    pub start_at: Option<String>,
    pub max_record_bytes: Option<i64>,
    pub oversize: Option<String>,
    pub split_marker: Option<String>,
    pub multiline_start: Option<String>,
    pub multiline_timeout_ms: Option<i64>,
    pub skip_header_lines: Option<i64>,
    pub flush_partial_line_after_ms: Option<i64>,
    /// Names (`"single_line"`, `"log_to_json:combined_apache"`) or tables; judged in validate.
    pub transforms: Option<Vec<toml::Value>>,
    /// A strategy name (`"random"`) or a table (`{ regex = "..." }`); judged in validate.
    pub partition_key: Option<toml::Value>,
    pub aggregation: Option<RawAggregation>,
    pub throttle: Option<RawThrottle>,
    pub kinesis: Option<RawKinesis>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAggregation {
    pub enabled: Option<bool>,
    pub max_bytes: Option<i64>,
    pub max_records: Option<i64>,
    pub linger_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThrottle {
    pub enabled: Option<bool>,
    pub records_per_second_per_shard: Option<i64>,
    pub bytes_per_second_per_shard: Option<i64>,
    pub share: Option<f64>,
    pub adaptive: Option<bool>,
}
