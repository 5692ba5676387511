//! Account settings and warm throughput: DescribeAccountSettings,
//! UpdateAccountSettings and UpdateStreamWarmThroughput. Warm throughput needs an
//! ON_DEMAND stream in an account with the minimum throughput billing commitment
//! enabled, as on AWS; the scaling itself is the store's (`store::capacity`).

use serde::{Deserialize, Serialize};

use super::validate::{NamesStream, Violations};
use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;
use crate::server::store::account::AccountSettings;
use crate::server::store::capacity::MAX_WARM_THROUGHPUT_MIBPS;
use crate::server::store::stream::{Stream, StreamMode, lock};
use crate::server::wire::Timestamp;

#[derive(Debug, Deserialize)]
pub struct NoInput {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommitmentShape {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    earliest_allowed_end_at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountSettingsOutput {
    minimum_throughput_billing_commitment: CommitmentShape,
}

fn settings_output(settings: &AccountSettings, now_ms: i64) -> AccountSettingsOutput {
    let commitment = settings.commitment;
    AccountSettingsOutput {
        minimum_throughput_billing_commitment: CommitmentShape {
            status: settings.status(now_ms).as_str(),
            started_at: commitment.map(|c| Timestamp::from_millis(c.started_ms)),
            ended_at: commitment
                .and_then(|c| c.ended_ms)
                .map(Timestamp::from_millis),
            earliest_allowed_end_at: commitment.map(|c| Timestamp::from_millis(c.earliest_end_ms)),
        },
    }
}

pub fn describe_account_settings(
    store: &Store,
    _input: NoInput,
) -> OpResult<AccountSettingsOutput> {
    Ok(settings_output(&store.account_settings(), store.now_ms()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommitmentInput {
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAccountSettingsInput {
    minimum_throughput_billing_commitment: Option<CommitmentInput>,
}

pub fn update_account_settings(
    store: &Store,
    input: UpdateAccountSettingsInput,
) -> OpResult<AccountSettingsOutput> {
    let mut v = Violations::default();
    v.required(
        "minimumThroughputBillingCommitment",
        &input.minimum_throughput_billing_commitment,
    );
    let status = input
        .minimum_throughput_billing_commitment
        .as_ref()
        .map(|c| c.status.as_deref());
    if let Some(status) = status {
        v.required("minimumThroughputBillingCommitment.status", &status);
        v.one_of(
            "minimumThroughputBillingCommitment.status",
            status,
            &["ENABLED", "DISABLED"],
        );
    }
    v.finish()?;
    let now = store.now_ms();
    let enable = status.flatten() == Some("ENABLED");
    let settings = store.update_account(|account| {
        if enable {
            account.enable(now);
        } else {
            account.disable(now);
        }
    })?;
    Ok(settings_output(&settings, now))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WarmThroughputShape {
    #[serde(rename = "TargetMiBps")]
    pub target_mibps: u32,
    #[serde(rename = "CurrentMiBps")]
    pub current_mibps: u32,
}

/// The `WarmThroughput` DescribeStreamSummary shows: only for ON_DEMAND streams in an
/// account with the commitment enabled. A shard is 1 MiB/s of writes.
pub fn warm_throughput_of(store: &Store, stream: &Stream) -> Option<WarmThroughputShape> {
    let target = {
        let state = lock(&stream.state);
        if state.mode != StreamMode::OnDemand {
            return None;
        }
        state.warm_throughput_mibps
    };
    if !store.account_settings().commitment_enabled(store.now_ms()) {
        return None;
    }
    let current = stream.open_shards().shards.len() as u32;
    Some(WarmThroughputShape {
        target_mibps: target.unwrap_or(current),
        current_mibps: current,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamWarmThroughputInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    stream_id: Option<String>,
    #[serde(rename = "WarmThroughputMiBps")]
    warm_throughput_mibps: Option<i64>,
}

names_stream!(UpdateStreamWarmThroughputInput);

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamWarmThroughputOutput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_name: String,
    warm_throughput: WarmThroughputShape,
}

/// Checks that `stream` may take warm throughput of `mibps`.
pub fn check_warm_throughput(
    store: &Store,
    stream_name: &str,
    mode: StreamMode,
    mibps: i64,
) -> OpResult<()> {
    if mode != StreamMode::OnDemand {
        return Err(KinesisError::invalid_argument(format!(
            "Warm throughput is only supported for streams in ON_DEMAND mode. Stream {stream_name} under account {} is in PROVISIONED mode.",
            store.account_id()
        )));
    }
    if !store.account_settings().commitment_enabled(store.now_ms()) {
        return Err(KinesisError::invalid_argument(format!(
            "Warm throughput requires MinimumThroughputBillingCommitment to be enabled for account {}.",
            store.account_id()
        )));
    }
    if mibps > i64::from(MAX_WARM_THROUGHPUT_MIBPS) {
        return Err(KinesisError::limit_exceeded(format!(
            "Requested warm throughput of {mibps} MiBps for stream {stream_name} under account {} exceeds the limit of {MAX_WARM_THROUGHPUT_MIBPS} MiBps.",
            store.account_id()
        )));
    }
    Ok(())
}

pub fn update_stream_warm_throughput(
    store: &Store,
    input: UpdateStreamWarmThroughputInput,
) -> OpResult<UpdateStreamWarmThroughputOutput> {
    let mut v = Violations::default();
    input.target().check(&mut v);
    v.length("streamId", input.stream_id.as_deref(), 1, 24);
    v.required("warmThroughputMiBps", &input.warm_throughput_mibps);
    v.range(
        "warmThroughputMiBps",
        input.warm_throughput_mibps,
        0,
        i64::from(i32::MAX),
    );
    v.finish()?;
    let name = input.target().resolve(store)?;
    let mibps = input.warm_throughput_mibps.unwrap_or_default();
    let stream = {
        let (stream, _control) = store.active_stream(&name)?;
        let mode = lock(&stream.state).mode;
        check_warm_throughput(store, &name, mode, mibps)?;
        lock(&stream.state).warm_throughput_mibps = Some(mibps as u32);
        stream
    };
    store.warm_to(&stream, mibps as usize)?;
    store.begin_update(&stream);
    store.save_metadata()?;
    let current = stream.open_shards().shards.len() as u32;
    Ok(UpdateStreamWarmThroughputOutput {
        stream_arn: stream.arn.clone(),
        stream_name: stream.name.clone(),
        warm_throughput: WarmThroughputShape {
            target_mibps: mibps as u32,
            current_mibps: current,
        },
    })
}
