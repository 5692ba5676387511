//! `shardcar predict`: the shard each partition key (or hash key) lands on.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use crate::kinesis::{HashKey, ShardMap, limits};

/// Print the shard each partition key lands on, one JSON line per key: for a live stream
/// (`shardcar predict STREAM KEY...`, from ListShards) or an even split (`--shards N KEY...`).
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Predict for an evenly split stream of this many shards (as CreateStream makes)
    /// instead of asking a live stream.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(limits::MAX_SHARDS_PER_STREAM * 20)))]
    shards: Option<u32>,
    /// Treat each KEY as an explicit hash key (a decimal integer) instead of a partition key.
    #[arg(long)]
    explicit_hash_key: bool,
    /// STREAM then keys, or with --shards only keys (with --explicit-hash-key: hash keys).
    #[arg(required = true, value_name = "[STREAM] KEY")]
    args: Vec<String>,
    #[command(flatten)]
    endpoint: super::endpoint::EndpointArgs,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let (map, keys) = match args.shards {
        Some(shards) => (ShardMap::even(shards), &args.args[..]),
        None => {
            let Some((stream, keys)) = args.args.split_first().filter(|(_, keys)| !keys.is_empty())
            else {
                bail!("give a stream and at least one key (or --shards N and keys)");
            };
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let topology = runtime.block_on(async {
                let client = args.endpoint.client().await?;
                anyhow::Ok(crate::producer::topology::fetch(&client, stream).await?)
            })?;
            (topology.open, keys)
        }
    };
    let mut stdout = std::io::stdout().lock();
    for key in keys {
        let line = if args.explicit_hash_key {
            let hash_key =
                HashKey::parse_explicit(key).context("invalid --explicit-hash-key value")?;
            json!({
                "explicit_hash_key": key,
                "hash_key": hash_key.to_string(),
                "shard_id": map.predict(hash_key).shard_id.as_str(),
            })
        } else {
            if key.is_empty() || key.chars().count() > limits::MAX_PARTITION_KEY_CHARS {
                bail!("partition key {key:?} must be 1 to 256 characters");
            }
            let hash_key = HashKey::of_partition_key(key);
            json!({
                "partition_key": key,
                "hash_key": hash_key.to_string(),
                "shard_id": map.predict(hash_key).shard_id.as_str(),
            })
        };
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}
