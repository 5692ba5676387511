//! `shardcar run`: the agent, until SIGTERM or SIGINT; SIGHUP reloads the config.
//!
//! The signals are watched on the main thread, apart from the agent's tasks, so a
//! reader stuck on a full budget or a hung file never keeps SIGTERM from working: the
//! process ends within `shutdown_grace_period_secs` plus a few seconds, whatever the
//! agent was doing (a reload included).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio::time::Instant;

use crate::agent::{Agent, RunOptions};
use crate::config::{Config, DEFAULT_CONFIG_PATH, LogOutput};

/// Past the grace period, how long the final steps (writing the last checkpoint) may
/// take before the process leaves anyway.
const FINAL_STEPS: Duration = Duration::from_secs(3);

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

pub fn run(args: RunArgs, log_format: Option<LogOutput>) -> Result<()> {
    // The config is validated before anything starts: a bad one exits 78 at once
    // (its problems are printed as the error, not logged).
    let config = Config::load(&args.config)?;
    super::init_logging("info", log_format.unwrap_or(config.agent.log_format));
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(args, config));
    // A task blocked in the kernel (a read from a hung network filesystem) must not
    // keep the process alive once the agent has stopped.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(args: RunArgs, config: Config) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = super::signals::Terminate::install()?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let mut grace = config.agent.shutdown_grace_period;
    let mut agent = Agent::start(
        config,
        RunOptions {
            reset_checkpoints: args.reset_checkpoints,
            file_events: crate::agent::FileEvents::Used,
        },
    )
    .await?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(config = %args.config.display(), "agent running");
    let terminated_at = loop {
        tokio::select! {
            _ = terminate.recv() => break Instant::now(),
            _ = hangup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                let new_config = match Config::load(&args.config) {
                    Ok(new_config) => new_config,
                    Err(error) => {
                        tracing::error!(error = %error, "reload refused: the new config is invalid; the running config stays");
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                        continue;
                    }
                };
                grace = new_config.agent.shutdown_grace_period;
                // A reload takes at most the grace period; a SIGTERM meanwhile is
                // honoured as soon as it ends, with the stop counted from the signal.
                let reload = agent.reload(new_config);
                tokio::pin!(reload);
                let mut signalled = None;
                let result = loop {
                    tokio::select! {
                        result = &mut reload => break result,
                        _ = terminate.recv(), if signalled.is_none() => {
                            tracing::info!("SIGTERM during a reload: stopping once the reload ends");
                            signalled = Some(Instant::now());
                        }
                    }
                };
                if let Err(error) = result {
                    tracing::error!(error = %error, "reload incomplete: flows that could not start are stopped");
                }
                if let Some(at) = signalled {
                    break at;
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    };
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping: no more reading, sending what was read");
    let deadline = terminated_at + grace;
    let stopping = agent.stop_by(deadline);
    match tokio::time::timeout_at(deadline + FINAL_STEPS, stopping).await {
        Ok(report) if report.unacknowledged_records > 0 => {
            tracing::warn!(
                records = report.unacknowledged_records,
                "left unacknowledged in all; they will be read again at the next start"
            );
        }
        Ok(_) => {}
        Err(_) => {
            tracing::error!(
                "the agent did not stop within the grace period; leaving without the final checkpoint (the last periodic one stands, so lines may be sent again, never lost)"
            );
        }
    }
    Ok(())
}
