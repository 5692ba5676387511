//! `shardcar predict`: the shard each partition key (or hash key) lands on.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use crate::kinesis::{HashKey, ShardMap, limits};

/// Print the shard each partition key lands on, one JSON line per key.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Predict for an evenly split stream of this many shards (as CreateStream makes).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(limits::MAX_SHARDS_PER_STREAM * 20)))]
    shards: u32,
    /// Treat each KEY as an explicit hash key (a decimal integer) instead of a partition key.
    #[arg(long)]
    explicit_hash_key: bool,
    /// Partition keys (or, with --explicit-hash-key, hash keys).
    #[arg(required = true, value_name = "KEY", allow_hyphen_values = true)]
    keys: Vec<String>,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let map = ShardMap::even(args.shards);
    for key in &args.keys {
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
        println!("{line}");
    }
    Ok(())
}
