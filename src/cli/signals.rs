//! Waiting for SIGTERM or SIGINT, the two ways a service is asked to stop.

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGTERM and SIGINT, installed once so that no signal between two waits is missed.
pub struct Terminate {
    term: Signal,
    int: Signal,
}

impl Terminate {
    pub fn install() -> Result<Terminate> {
        Ok(Terminate {
            term: signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?,
        })
    }

    /// Resolves at the next SIGTERM or SIGINT.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn terminated() {
    match Terminate::install() {
        Ok(mut terminate) => terminate.recv().await,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
