//! `shardcar run`: the agent, until SIGTERM or SIGINT; SIGHUP reloads the config.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::agent::{Agent, RunOptions};
use crate::config::{Config, DEFAULT_CONFIG_PATH};

/// Run the agent: tail the configured files into Kinesis (SIGHUP reloads the config).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent config.
    #[arg(short, long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Move a corrupt checkpoint file aside and start as if for the first time.
    #[arg(long)]
    reset_checkpoints: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    // The config is validated before anything starts: a bad one exits 78 at once.
    let config = Config::load(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut agent = Agent::start(config, RunOptions { reset_checkpoints: args.reset_checkpoints }).await?;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(config = %args.config.display(), "agent running");
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        loop {
            tokio::select! {
                _ = super::signals::terminated() => break,
                _ = hangup.recv() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                    match Config::load(&args.config) {
                        Ok(new_config) => {
                            if let Err(error) = agent.reload(new_config).await {
                                tracing::error!(error = %error, "reload failed; flows that could not start are stopped");
                            }
                        }
                        Err(error) => tracing::error!(error = %error, "reload refused: the new config is invalid; the running config stays"),
                    }
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                }
            }
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!("stopping: no more reading, sending what was read");
        let report = agent.stop().await;
        if report.unacknowledged_records > 0 {
            tracing::warn!(records = report.unacknowledged_records, "left unacknowledged; they will be read again at the next start");
        }
        Ok(())
    })
}
