//! `shardcar consume`: read a stream back, deaggregated, one JSON line per user record.

use anyhow::{Context, Result, bail};
use base64_simd::STANDARD as BASE64;
use clap::Args;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::endpoint::EndpointArgs;
use crate::consume::{ConsumeOptions, StartFrom, consume};

/// Read every shard of a stream (parents before children), deaggregate, print one JSON line per user record.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The stream to read.
    stream: String,
    /// Where to start: trim-horizon, latest, or at-timestamp=2024-05-01T12:00:00Z.
    #[arg(long, default_value = "trim-horizon")]
    from: String,
    /// Keep reading new records instead of stopping at the end.
    #[arg(long)]
    follow: bool,
    /// Enhanced fan-out: register a consumer for this read (deregistered after it) and
    /// have each shard's records pushed by SubscribeToShard instead of polling.
    #[arg(long)]
    efo: bool,
    /// Stop after this many user records.
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

fn start_from(text: &str) -> Result<StartFrom> {
    match text {
        "trim-horizon" => Ok(StartFrom::TrimHorizon),
        "latest" => Ok(StartFrom::Latest),
        _ => match text.strip_prefix("at-timestamp=") {
            Some(time) => crate::time::parse_rfc3339(time)
                .map(StartFrom::AtTimestamp)
                .with_context(|| format!("--from at-timestamp={time}: expected an RFC 3339 time such as 2024-05-01T12:00:00Z")),
            None => bail!("--from {text:?}: expected trim-horizon, latest or at-timestamp=RFC3339"),
        },
    }
}

pub fn run(args: ConsumeArgs) -> Result<()> {
    let from = start_from(&args.from)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let client = args.endpoint.client().await?;
        let (tx, mut rx) = mpsc::channel(1024);
        let stream = args.stream.clone();
        let options = ConsumeOptions {
            from,
            follow: args.follow,
            efo: args.efo,
        };
        let reader = tokio::spawn(async move { consume(&client, &stream, options, tx).await });
        let mut printed = 0u64;
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        while let Some(record) = rx.recv().await {
            let mut line = Map::new();
            line.insert("shard_id".into(), json!(record.shard_id));
            line.insert("sequence_number".into(), json!(record.sequence_number));
            line.insert(
                "sub_sequence_number".into(),
                json!(record.sub_sequence_number),
            );
            line.insert("partition_key".into(), json!(record.partition_key));
            line.insert(
                "explicit_hash_key".into(),
                record
                    .explicit_hash_key
                    .map_or(Value::Null, |k| json!(k.to_string())),
            );
            line.insert(
                "arrival_time".into(),
                json!(crate::time::rfc3339_millis(record.arrival_ms)),
            );
            match std::str::from_utf8(&record.data) {
                Ok(text) => line.insert("data".into(), json!(text)),
                Err(_) => line.insert(
                    "data_base64".into(),
                    json!(BASE64.encode_to_string(&record.data)),
                ),
            };
            writeln!(stdout, "{}", Value::Object(line))?;
            printed += 1;
            if args.limit.is_some_and(|limit| printed >= limit) {
                reader.abort();
                return Ok(());
            }
        }
        let report = reader.await.context("the reader stopped")??;
        if report.dropped_aggregates > 0 {
            tracing::warn!(
                dropped = report.dropped_aggregates,
                "aggregates dropped for lying across shards, as a KCL 2.x consumer would"
            );
        }
        Ok(())
    })
}
