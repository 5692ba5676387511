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
    let mut written: Option<(u64, Vec<String>)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        // Nothing acknowledged, begun or ended, and the same flows: nothing to build.
        let version = ledger.version();
        let flows = known.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if written
            .as_ref()
            .is_some_and(|(v, f)| *v == version && *f == flows)
        {
            continue;
        }
        let on_disk;
        (last, on_disk) = persist(&ledger, &store, &known, last).await;
        if on_disk {
            written = Some((version, flows));
        }
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
    persist(ledger, store, known, last).await.0
}

/// [`write`], and whether the current checkpoints are on disk (false: the write
/// failed and `last` is still what is there).
async fn persist(
    ledger: &Ledger,
    store: &CheckpointStore,
    known: &std::sync::Mutex<Vec<String>>,
    last: Checkpoints,
) -> (Checkpoints, bool) {
    let current = Checkpoints {
        flows: known.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        files: ledger.checkpoints(),
    };
    if current == last {
        return (last, true);
    }
    let store = store.clone();
    let written = tokio::task::spawn_blocking(move || {
        let result = store.persist(&current);
        (current, result)
    });
    match written.await {
        Ok((current, Ok(()))) => (current, true),
        Ok((_, Err(error))) => {
            tracing::error!(%error, "cannot write checkpoints; will retry");
            (last, false)
        }
        Err(error) => {
            tracing::error!(%error, "checkpoint writer failed; will retry");
            (last, false)
        }
    }
}
