//! Where a flow's reader runs: on a thread of its own, so that a read that blocks in
//! the kernel (a slow disk, a hung network mount) holds up that flow only, never the
//! async workers the producers, acknowledgements and signals run on. Vector runs its
//! file server on its own thread for the same reason.
//!
//! The thread drives the flow's future with the runtime's handle: timers, file events
//! and the producer's channels work as on a worker. Handing each read to another
//! thread instead (`block_in_place`) was measured at a quarter more CPU per GB and
//! 40% more memory. A current-thread runtime (some tests and tools) cannot be driven
//! from another thread, so there the reader is an ordinary task.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A running reader.
pub enum Reader {
    Thread(oneshot::Receiver<()>),
    Task(JoinHandle<()>),
}

impl Reader {
    /// Starts `work` on a thread named after the flow, or as a task where a thread
    /// cannot drive it (a current-thread runtime, or no thread could be started).
    pub fn start(flow: &str, work: impl Future<Output = ()> + Send + 'static) -> Reader {
        let handle = Handle::current();
        if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
            return Reader::Task(tokio::spawn(work));
        }
        // Kept where the caller can take it back if the thread does not start.
        let slot = Arc::new(Mutex::new(Some(work)));
        let (done, finished) = oneshot::channel();
        let taken = slot.clone();
        let started = std::thread::Builder::new()
            .name(format!("read-{flow}"))
            .spawn(move || {
                let work = taken.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(work) = work {
                    handle.block_on(work);
                }
                let _ = done.send(());
            });
        match started {
            Ok(_) => Reader::Thread(finished),
            Err(error) => {
                tracing::warn!(flow, %error, "cannot start a reader thread; reading on the async workers");
                let work = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                Reader::Task(tokio::spawn(async move {
                    if let Some(work) = work {
                        work.await;
                    }
                }))
            }
        }
    }

    /// Waits for the reader to end, until `deadline`; returns whether it ended. A task
    /// still running then is aborted; a thread blocked in the kernel is left behind
    /// (it ends with the process).
    pub async fn stop_by(self, deadline: Instant) -> bool {
        match self {
            Reader::Thread(finished) => tokio::time::timeout_at(deadline, finished).await.is_ok(),
            Reader::Task(mut task) => {
                let ended = tokio::time::timeout_at(deadline, &mut task).await.is_ok();
                if !ended {
                    task.abort();
                }
                ended
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// On a multi-threaded runtime the reader runs on its own thread, and its timers
    /// and channels work there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_runs_on_its_own_thread_with_the_runtimes_timers() {
        let (tx, rx) = oneshot::channel();
        let reader = Reader::start("t", async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        });
        assert!(matches!(reader, Reader::Thread(_)));
        let name = rx.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.as_deref(), Some("read-t"));
        assert!(
            reader
                .stop_by(Instant::now() + Duration::from_secs(5))
                .await
        );
    }

    /// A reader blocked in a system call does not stall the workers, and a stop
    /// leaves it behind at its deadline.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocked_reader_stalls_neither_the_workers_nor_the_stop() {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let reader = Reader::start("blocked", async move {
            // Stands for a read from a hung mount: a blocking call that does not return.
            let _ = blocked.recv();
        });
        // The only worker is free: a task on it runs. (Waited for on this thread, not
        // on the runtime, so a stalled worker fails the test instead of hanging it.)
        let (ran, worker) = std::sync::mpsc::channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = ran.send(());
        });
        let worker_free = worker.recv_timeout(Duration::from_secs(5)).is_ok();
        let left_behind = worker_free
            && !reader
                .stop_by(Instant::now() + Duration::from_millis(50))
                .await;
        let _ = release.send(());
        assert!(worker_free, "the reader stalled the only worker");
        assert!(left_behind, "the stop waited for a blocked reader");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_current_thread_runtime_the_reader_is_a_task() {
        let reader = Reader::start("c", async {});
        assert!(matches!(reader, Reader::Task(_)));
        assert!(
            reader
                .stop_by(Instant::now() + Duration::from_secs(1))
                .await
        );
    }
}
