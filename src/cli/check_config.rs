//! `shardcar check-config`: validates agent.toml with the same code `run` uses.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::config::{Config, DEFAULT_CONFIG_PATH};

/// Validate an agent config and list every problem in it (exit 78 if any).
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The config file to check.
    #[arg(short, long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

pub fn run(args: CheckConfigArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}: ok ({} flow{})",
        args.config.display(),
        config.flows.len(),
        if config.flows.len() == 1 { "" } else { "s" }
    )?;
    for flow in &config.flows {
        writeln!(
            stdout,
            "  flow {:?} -> {} {:?}: {}",
            flow.name,
            match flow.destination {
                crate::config::Destination::Stream(_) => "stream",
                crate::config::Destination::DeliveryStream(_) => "delivery stream",
            },
            flow.destination.name(),
            flow.include.join(", ")
        )?;
    }
    Ok(())
}
