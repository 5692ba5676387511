//! Account-level and monitoring actions: DescribeLimits, and
//! Enable/DisableEnhancedMonitoring (the shard-level metrics are recorded and shown
//! as Kinesis shows them; this server publishes no CloudWatch metrics).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::validate::{NamesStream, Violations};
use crate::server::error::OpResult;
use crate::server::store::Store;
use crate::server::store::stream::lock;

/// ON_DEMAND streams an account may have (AWS's default quota).
const ON_DEMAND_STREAM_LIMIT: usize = 50;

#[derive(Debug, Deserialize)]
pub struct NoInput {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsOutput {
    shard_limit: u32,
    open_shard_count: usize,
    on_demand_stream_count: usize,
    on_demand_stream_count_limit: usize,
}

pub fn describe_limits(store: &Store, _input: NoInput) -> OpResult<DescribeLimitsOutput> {
    Ok(DescribeLimitsOutput {
        shard_limit: store.config().shard_limit,
        open_shard_count: store.total_open_shards(),
        on_demand_stream_count: store.on_demand_streams(),
        on_demand_stream_count_limit: ON_DEMAND_STREAM_LIMIT,
    })
}

/// The metrics EnableEnhancedMonitoring takes; `ALL` stands for the rest.
const METRICS: &[&str] = &[
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_level_metrics: Option<Vec<String>>,
}

names_stream!(MonitoringInput);

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringOutput {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    current_shard_level_metrics: Vec<String>,
    desired_shard_level_metrics: Vec<String>,
}

fn change_monitoring(
    store: &Store,
    input: MonitoringInput,
    enable: bool,
) -> OpResult<MonitoringOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.required("shardLevelMetrics", &input.shard_level_metrics);
    if let Some(metrics) = &input.shard_level_metrics {
        v.count("shardLevelMetrics", metrics.len(), 1, 7, || {
            super::validate::java_list(metrics)
        });
        for (i, metric) in metrics.iter().enumerate() {
            let mut allowed: Vec<&str> = METRICS.to_vec();
            allowed.push("ALL");
            v.one_of(
                &format!("shardLevelMetrics.{}.member", i + 1),
                Some(metric),
                &allowed,
            );
        }
    }
    v.finish()?;
    let name = input.target().resolve(store)?;
    let (stream, _control) = store.active_stream(&name)?;
    let asked: BTreeSet<String> = input
        .shard_level_metrics
        .unwrap_or_default()
        .into_iter()
        .flat_map(|m| {
            if m == "ALL" {
                METRICS.iter().map(|m| (*m).to_owned()).collect()
            } else {
                vec![m]
            }
        })
        .collect();
    let (current, desired) = {
        let mut state = lock(&stream.state);
        let current: Vec<String> = state.shard_level_metrics.iter().cloned().collect();
        if enable {
            state.shard_level_metrics.extend(asked);
        } else {
            state.shard_level_metrics.retain(|m| !asked.contains(m));
        }
        (current, state.shard_level_metrics.iter().cloned().collect())
    };
    store.save_metadata()?;
    Ok(MonitoringOutput {
        stream_name: stream.name.clone(),
        stream_arn: stream.arn.clone(),
        current_shard_level_metrics: current,
        desired_shard_level_metrics: desired,
    })
}

pub fn enable_enhanced_monitoring(
    store: &Store,
    input: MonitoringInput,
) -> OpResult<MonitoringOutput> {
    change_monitoring(store, input, true)
}

pub fn disable_enhanced_monitoring(
    store: &Store,
    input: MonitoringInput,
) -> OpResult<MonitoringOutput> {
    change_monitoring(store, input, false)
}
