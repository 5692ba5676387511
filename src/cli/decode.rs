//! `shardcar decode`: the user records inside one Kinesis record.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64_simd::STANDARD as BASE64;
use bytes::Bytes;
use clap::Args;
use serde_json::{Map, Value, json};

use crate::kinesis::aggregation::{Outcome, deaggregate};

/// Print the user records inside a Kinesis record (KPL aggregate or plain), one JSON line each.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// File holding the record's data; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// The input is base64 text; each non-empty line is one record.
    #[arg(long)]
    base64: bool,
    /// Always print data as `data_base64`, even when it is valid UTF-8.
    #[arg(long)]
    data_base64: bool,
    /// The Kinesis record's own partition key, reported for records that are not aggregates.
    #[arg(long)]
    partition_key: Option<String>,
}

pub fn run(args: DecodeArgs) -> Result<()> {
    let input = read_input(args.file.as_ref())?;
    let records: Vec<Bytes> = if args.base64 {
        let text = std::str::from_utf8(&input).context("--base64 input is not text")?;
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, line)| {
                BASE64
                    .decode_to_vec(line)
                    .map(Bytes::from)
                    .with_context(|| format!("line {} is not valid base64", i + 1))
            })
            .collect::<Result<_>>()?
    } else {
        vec![Bytes::from(input)]
    };
    if records.iter().all(Bytes::is_empty) {
        bail!("the input is empty: there is no record to decode");
    }

    let mut stdout = std::io::stdout().lock();
    for data in &records {
        let outer_key = args.partition_key.as_deref().unwrap_or("");
        let result = deaggregate(outer_key, data);
        if let Outcome::Partial(error) = &result.outcome {
            tracing::warn!(%error, "aggregate is damaged; printing the records before the damage, as the KCL does");
        }
        let aggregated = result.is_aggregated();
        for (sub_sequence, record) in result.records.iter().enumerate() {
            let mut line = Map::new();
            line.insert("aggregated".into(), json!(aggregated));
            line.insert("sub_sequence_number".into(), json!(sub_sequence));
            let partition_key = if aggregated || args.partition_key.is_some() {
                json!(record.partition_key)
            } else {
                Value::Null
            };
            line.insert("partition_key".into(), partition_key);
            line.insert(
                "explicit_hash_key".into(),
                record
                    .explicit_hash_key
                    .map_or(Value::Null, |k| json!(k.to_string())),
            );
            match std::str::from_utf8(&record.data) {
                Ok(text) if !args.data_base64 => line.insert("data".into(), json!(text)),
                _ => line.insert(
                    "data_base64".into(),
                    json!(BASE64.encode_to_string(&record.data)),
                ),
            };
            use std::io::Write;
            writeln!(stdout, "{}", Value::Object(line))?;
        }
    }
    Ok(())
}

fn read_input(file: Option<&PathBuf>) -> Result<Vec<u8>> {
    let mut buffer = Vec::new();
    match file {
        Some(path) if path.as_os_str() != "-" => {
            buffer =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut buffer)
                .context("cannot read standard input")?;
        }
    }
    Ok(buffer)
}
