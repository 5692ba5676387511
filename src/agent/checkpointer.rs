//! The checkpointer: writes the ledger's checkpoints to `state_dir` every second
//! (when they changed) and once more at the end of a stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::checkpoint::{CheckpointStore, Checkpoints};
use super::ledger::Ledger;

const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Writes checkpoints every second until `stop` changes.
pub async fn run(
    ledger: Ledger,
    store: CheckpointStore,
    known: Arc<Mutex<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = Checkpoints::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        last = write(&ledger, &store, &known, last).await;
    }
}

/// Writes the current checkpoints if they differ from `last` (on a blocking thread:
/// the write is fsynced); returns what is now on disk.
pub async fn write(
    ledger: &Ledger,
    store: &CheckpointStore,
    known: &std::sync::Mutex<Vec<String>>,
    last: Checkpoints,
) -> Checkpoints {
    let current = Checkpoints {
        flows: known.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        files: ledger.checkpoints(),
    };
    if current == last {
        return last;
    }
    let store = store.clone();
    let to_write = current.clone();
    match tokio::task::spawn_blocking(move || store.persist(&to_write)).await {
        Ok(Ok(())) => current,
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot write checkpoints; will retry");
            last
        }
        Err(error) => {
            tracing::error!(%error, "checkpoint writer failed; will retry");
            last
        }
    }
}
