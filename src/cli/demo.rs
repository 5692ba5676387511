//! `shardcar demo`: the end-to-end demo on an in-process shard server.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::demo::{DemoOptions, run as run_demo};

/// Run everything on this machine: server, log writer with rotations, agent, consumer; prove nothing was lost.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Lines of sample log to write (Apache lines and multi-line stack traces).
    #[arg(long, default_value_t = 200_000)]
    lines: u64,
    /// Shards of the demo stream.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    shards: u32,
    /// Turn the server's shard limits off (and the agent's throttle) to see raw speed.
    #[arg(long)]
    no_limits: bool,
    /// Keep the directory with the log, the generated agent.toml and the checkpoints.
    #[arg(long)]
    keep: bool,
    /// Keep the shard server up on this address afterwards, to try the AWS CLI against it.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Ship to Firehose instead: agent -> Kinesis -> Firehose -> S3 directory, and agent -> Firehose -> S3 directory.
    #[arg(long)]
    firehose: bool,
    /// Make the server drop this many records after acknowledging them (shows the check fails).
    #[arg(long, default_value_t = 0, hide = true)]
    fault_drop_records: u64,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let options = DemoOptions {
        lines: args.lines,
        shards: args.shards,
        limits: !args.no_limits,
        keep: args.keep,
        listen: args.listen,
        drop_records: args.fault_drop_records,
    };
    if args.firehose {
        let report = runtime.block_on(crate::demo::firehose::run(
            options,
            super::signals::terminated(),
        ))?;
        if report.lost() > 0 {
            bail!(
                "{} of {} records were lost on the way to the objects",
                report.lost(),
                2 * report.records_written
            );
        }
        return Ok(());
    }
    let report = runtime.block_on(run_demo(options, super::signals::terminated()))?;
    if report.lost > 0 {
        bail!(
            "{} of {} records were lost",
            report.lost,
            report.records_written
        );
    }
    Ok(())
}
