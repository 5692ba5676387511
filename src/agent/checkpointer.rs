//! The checkpointer: writes the ledger's checkpoints to `state_dir` every second
//! (when they changed) and once more at the end of a stop.
//!
//! What changed is told by the ledger's version and the list of flows, not by
//! comparing with what was written: with 10,000 files, keeping the last list to
//! compare against doubled the memory checkpoints take. Each write serializes a
//! snapshot of shared names and offsets (see [`Ledger::snapshot`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::checkpoint::CheckpointStore;
use super::ledger::Ledger;

const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Writes checkpoints every second until `stop` changes.
pub async fn run(
    ledger: Ledger,
    store: CheckpointStore,
    known: Arc<Mutex<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut written: Option<(u64, Vec<String>)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        // Nothing acknowledged, begun or ended, and the same flows: nothing to write.
        let version = ledger.version();
        let flows = known.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if written
            .as_ref()
            .is_some_and(|(v, f)| *v == version && *f == flows)
        {
            continue;
        }
        if write(&ledger, &store, &known).await {
            written = Some((version, flows));
        }
    }
}

/// Writes the current checkpoints (on a blocking thread: the write is fsynced);
/// returns whether they are on disk (false: the write failed, and is logged).
pub async fn write(
    ledger: &Ledger,
    store: &CheckpointStore,
    known: &std::sync::Mutex<Vec<String>>,
) -> bool {
    let flows = known.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let snapshot = ledger.snapshot();
    let store = store.clone();
    let written =
        tokio::task::spawn_blocking(move || store.persist_snapshot(&flows, &snapshot)).await;
    match written {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot write checkpoints; will retry");
            false
        }
        Err(error) => {
            tracing::error!(%error, "checkpoint writer failed; will retry");
            false
        }
    }
}
