//! The connections the server is serving, so that at the connection limit the one
//! idle longest can be closed to make room: a flood of idle sockets then costs the
//! oldest idle client its connection (which HTTP clients reopen), never a working
//! client its answer. Only when every connection is busy is a new one refused.
//! The same bookkeeping closes a connection idle past the idle timeout whatever its
//! protocol (hyper's own timeout covers HTTP/1.1 only).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A connection that finished a request less than this ago is not closed to make
/// room: its answer may still be on its way out.
const MIN_IDLE_TO_RECLAIM: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Connections {
    started: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
}

/// One connection's state as the accept loop sees it.
#[derive(Debug)]
pub struct Connection {
    /// Requests being answered now.
    busy: AtomicUsize,
    /// When it last finished a request (or was accepted), in ms since the server began.
    idle_since_ms: AtomicU64,
    /// Whether it has answered a request; never-used ones are reclaimed first.
    served: std::sync::atomic::AtomicBool,
    /// Fired to close it.
    close: Notify,
}

/// Keeps a connection registered while its task runs.
pub struct Registration {
    id: u64,
    connections: Arc<Connections>,
    pub connection: Arc<Connection>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
    }
}

/// Marks a connection busy while a request is answered.
pub struct Busy(Arc<Connection>, Instant);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(self.1.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.0.served.store(true, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    pub fn new() -> Arc<Connections> {
        Arc::new(Connections {
            started: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            served: std::sync::atomic::AtomicBool::new(false),
            close: Notify::new(),
        });
        self.lock().insert(id, connection.clone());
        Registration {
            id,
            connections: self.clone(),
            connection,
        }
    }

    /// Marks `connection` busy until the guard drops.
    pub fn busy(&self, connection: &Arc<Connection>) -> Busy {
        connection.busy.fetch_add(1, Ordering::AcqRel);
        // The guard measures from the server's start, as `idle_since_ms` does.
        Busy(connection.clone(), self.started)
    }

    /// Asks the connection idle longest (and at least [`MIN_IDLE_TO_RECLAIM`]) to
    /// close; false when every connection is busy or only just idle.
    pub fn reclaim_idle(&self) -> bool {
        let newest_allowed = self
            .now_ms()
            .saturating_sub(MIN_IDLE_TO_RECLAIM.as_millis() as u64);
        let open = self.lock();
        // Never-used connections first, then those idle longest.
        let oldest = open
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0)
            .map(|c| {
                let served = c.served.load(Ordering::Relaxed);
                ((served, c.idle_since_ms.load(Ordering::Relaxed)), c)
            })
            .filter(|((served, since), _)| !served || *since <= newest_allowed)
            .min_by_key(|(key, _)| *key);
        match oldest {
            Some((_, connection)) => {
                // Taken out of the pool at once: the next reclaim picks another.
                connection.busy.fetch_add(1, Ordering::AcqRel);
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Connection {
    /// Resolves when the connection is to be closed to make room.
    pub async fn closing(&self) {
        self.close.notified().await;
    }
}

impl Connections {
    /// Resolves once `connection` has been idle (no request in progress) for
    /// `timeout`; checks again each time it could first have run out.
    pub async fn idle_past(&self, connection: &Connection, timeout: Duration) {
        loop {
            let wait = if connection.busy.load(Ordering::Acquire) > 0 {
                timeout
            } else {
                let idle = self
                    .now_ms()
                    .saturating_sub(connection.idle_since_ms.load(Ordering::Relaxed));
                match timeout.checked_sub(Duration::from_millis(idle)) {
                    None => return,
                    Some(left) if left.is_zero() => return,
                    Some(left) => left,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A response body that keeps its connection busy until it has been sent whole: a
/// SubscribeToShard stream lasts minutes after its handler returned, and must count
/// as a request in progress for the idle timeout and for making room.
pub struct Guarded<B> {
    pub body: B,
    /// Held, never read: dropping it marks the connection idle.
    #[allow(dead_code, reason = "held for its Drop")]
    pub busy: Busy,
}

impl<B: http_body::Body + Unpin> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
