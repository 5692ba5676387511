//! The shard server: a Kinesis-compatible API with real shard limits.
//!
//! Layers, each using only the next: [`http`] (framing, the error mapping) ->
//! `ops` (one function per action, validation as Kinesis does it) -> [`store`]
//! (streams, shards, record logs, iterators, persistence) -> [`limits`].
//! The server builds on [`crate::kinesis`] and never on the agent or the producer.

pub mod audit;
pub mod auth;
pub mod clock;
mod connections;
pub mod error;
pub mod firehose;
mod http;
pub mod limits;
mod ops;
pub mod policy;
mod protocol;
pub mod regions;
pub mod store;
pub mod tls;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use store::stream::StreamMode;
pub use store::{Store, StoreConfig};

/// Everything `shardcar server` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub store: StoreConfig,
    /// Keep streams and records here across restarts; in memory only when `None`.
    pub data_dir: Option<PathBuf>,
    /// Streams to create, ACTIVE at once, when the server starts (if they do not exist).
    pub create_streams: Vec<(String, u32)>,
    /// How often shard files are fsynced.
    pub fsync_interval: Duration,
    pub max_connections: usize,
    /// The clock the store runs on; tests freeze it.
    pub clock: Clock,
    /// HTTPS when set (see [`tls`]); plain HTTP otherwise.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// An HTTP/1.1 connection that has not sent a complete request head for this long
    /// (idle between requests, or a head that trickles in) is closed.
    pub idle_timeout: Duration,
    /// A request whose body has not arrived whole within this long is answered 408 and
    /// its connection closed.
    pub body_timeout: Duration,
    /// The master key for encrypted streams' records; `DATA_DIR/master.key` (created
    /// when absent) when `None`.
    pub kms_key_file: Option<PathBuf>,
    /// Where Firehose delivers S3 objects (`arn:aws:s3:::NAME` is `S3_DIR/NAME`).
    pub s3_dir: Option<PathBuf>,
    /// Delivery streams reading a Kinesis stream start at the end of its open shards
    /// (LATEST) rather than at their start (TRIM_HORIZON).
    pub firehose_from_latest: bool,
    /// Who may sign requests; `None` serves every request unchecked.
    pub identities: Option<Arc<auth::Identities>>,
    /// Who may do what (see [`policy`]); `None` allows every call.
    pub policies: Option<Arc<policy::Policies>>,
    /// Where every API call is recorded (see [`audit`]).
    pub audit: Option<Arc<audit::AuditLog>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            store: StoreConfig::default(),
            data_dir: None,
            create_streams: Vec::new(),
            fsync_interval: Duration::from_secs(1),
            max_connections: 1024,
            clock: Clock::default(),
            tls: None,
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            kms_key_file: None,
            s3_dir: None,
            firehose_from_latest: false,
            identities: None,
            policies: None,
            audit: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create stream {name}: {source}")]
    CreateStream {
        name: String,
        source: error::KinesisError,
    },
}

/// Answers one API call without HTTP: the decoding, validation and store layers the
/// HTTP handler uses. Fuzz and property tests feed it arbitrary bodies.
pub fn call(
    store: &Store,
    action: &str,
    format: wire::Format,
    body: &[u8],
) -> Result<Vec<u8>, error::KinesisError> {
    ops::dispatch(store, action, format, body)
}

/// Longest a client may take to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The actions the server answers, sorted by name.
pub fn actions() -> Vec<&'static str> {
    ops::names().collect()
}

pub struct Server;

/// A server accepting connections; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    local_addr: SocketAddr,
    https: bool,
    regions: Arc<regions::Regions>,
    firehose: Arc<firehose::Firehose>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Opens the store, creates the requested streams, binds `addr` and starts serving.
    pub async fn bind(
        addr: SocketAddr,
        config: ServerConfig,
    ) -> Result<RunningServer, ServerError> {
        let persist = match &config.data_dir {
            Some(dir) => Some(
                store::persist::Persist::new(dir, config.kms_key_file.as_deref()).map_err(
                    |source| ServerError::DataDir {
                        path: dir.clone(),
                        source,
                    },
                )?,
            ),
            None => None,
        };
        let store =
            Store::new(config.store.clone(), config.clock.clone(), persist).map_err(|source| {
                ServerError::DataDir {
                    path: config.data_dir.clone().unwrap_or_default(),
                    source,
                }
            })?;
        for (name, shards) in &config.create_streams {
            if store.stream(name).is_ok() {
                continue;
            }
            store
                .create_stream(
                    name,
                    *shards,
                    StreamMode::Provisioned,
                    Default::default(),
                    true,
                )
                .map_err(|source| ServerError::CreateStream {
                    name: name.clone(),
                    source,
                })?;
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let (stop, stopped) = watch::channel(false);
        let regions = Arc::new(
            regions::Regions::open(
                store,
                config.clock.clone(),
                config.data_dir.as_deref(),
                config.kms_key_file.as_deref(),
            )
            .map_err(|source| ServerError::DataDir {
                path: config.data_dir.clone().unwrap_or_default(),
                source,
            })?,
        );
        let firehose = Arc::new(
            firehose::Firehose::open(firehose::FirehoseConfig {
                clock: config.clock.clone(),
                store: &config.store,
                s3_dir: config.s3_dir.clone(),
                data_dir: config.data_dir.as_deref(),
                kinesis: regions.home().clone(),
                from_latest: config.firehose_from_latest,
            })
            .map_err(|source| ServerError::DataDir {
                path: config.data_dir.clone().unwrap_or_default(),
                source,
            })?,
        );
        let https = config.tls.is_some();
        let task = tokio::spawn(serve(
            listener,
            regions.clone(),
            firehose.clone(),
            config,
            stopped,
        ));
        Ok(RunningServer {
            local_addr,
            https,
            regions,
            firehose,
            stop,
            task,
        })
    }
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS), for clients' endpoint URL.
    pub fn endpoint_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The home region's store.
    pub fn store(&self) -> &Store {
        self.regions.home()
    }

    /// The server clock, which tests advance to expire iterators and records.
    pub fn clock(&self) -> &Clock {
        self.regions.home().clock()
    }

    /// Stops accepting, lets requests in progress finish (up to 5 s), syncs files.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let firehose = self.firehose.clone();
        let _ = tokio::task::spawn_blocking(move || firehose.flush_all()).await;
        for store in self.regions.all() {
            if let Err(error) = store.sync_files() {
                tracing::error!(%error, "cannot sync shard files at shutdown");
            }
        }
    }
}

async fn serve(
    listener: TcpListener,
    regions: Arc<regions::Regions>,
    firehose: Arc<firehose::Firehose>,
    config: ServerConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let connections = connections::Connections::new();
    let acceptor = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that shuts down its sending side after the request still gets its answer.
    // The head timeout also runs while a connection waits for its next request, so it
    // is the idle timeout too.
    builder
        .http1()
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(config.idle_timeout);
    let settings = Arc::new(http::Settings {
        body_timeout: config.body_timeout,
        identities: config.identities.clone(),
        policies: config.policies.clone(),
        audit: config.audit.clone(),
        firehose: firehose.clone(),
    });
    // Upkeep runs on its own, whatever the accept loop is doing.
    let upkeep = tokio::spawn(upkeep(
        regions.clone(),
        firehose,
        config.audit.clone(),
        config.fsync_interval,
        config.data_dir.is_some(),
        stopped.clone(),
    ));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        // At the limit the connection idle longest makes room; when none is idle the
        // new one is answered 503 and closed at once, not left waiting in the backlog.
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) if connections.reclaim_idle() => {
                let freed =
                    tokio::time::timeout(Duration::from_secs(1), permits.clone().acquire_owned())
                        .await;
                match freed {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        tokio::spawn(refuse(stream));
                        continue;
                    }
                }
            }
            Err(_) => {
                tokio::spawn(refuse(stream));
                continue;
            }
        };
        let registration = connections.register();
        let _ = stream.set_nodelay(true);
        let regions = regions.clone();
        let settings = settings.clone();
        let connection = registration.connection.clone();
        let tracker = connections.clone();
        let idle_tracker = connections.clone();
        let service = hyper::service::service_fn(move |request| {
            let busy = tracker.busy(&connection);
            let answer = http::handle(regions.clone(), request, settings.clone(), peer);
            async move {
                let answered = answer.await;
                answered.map(|response| response.map(|body| connections::Guarded { body, busy }))
            }
        });
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let idle_timeout = config.idle_timeout;
        tokio::spawn(async move {
            let _slot = permit;
            let closing = registration.connection.clone();
            let _registered = registration;
            let idle_watch = idle_tracker;
            let serving = async move {
                match acceptor {
                    // Before its first byte a connection is not yet HTTP/1 or HTTP/2 (the
                    // server looks for the HTTP/2 preface), and no HTTP timeout runs: a
                    // socket that sends nothing is closed after the idle timeout here.
                    None => {
                        let mut first = [0u8; 1];
                        let peeked =
                            tokio::time::timeout(idle_timeout, stream.peek(&mut first)).await;
                        if let Ok(Ok(1..)) = peeked {
                            let connection =
                                builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(connection.into_owned()).await;
                        }
                    }
                    // The handshake runs in the connection's task, with a deadline, so a
                    // client that never finishes it holds its own slot only, and only so long.
                    Some(acceptor) => {
                        let accepted =
                            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await;
                        match accepted {
                            Ok(Ok(tls)) => {
                                let connection =
                                    builder.serve_connection(TokioIo::new(tls), service);
                                let _ = watcher.watch(connection.into_owned()).await;
                            }
                            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    }
                }
            };
            // Dropping the connection closes its socket.
            tokio::select! {
                () = serving => {}
                () = closing.closing() => tracing::debug!("closed an idle connection to make room"),
                () = idle_watch.idle_past(&closing, idle_timeout) => {
                    tracing::debug!("closed a connection idle past the idle timeout");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 5 s after shutdown began; closing them");
    }
    let _ = upkeep.await;
}

/// Answers a connection over the limit with 503 and closes it (over TLS the
/// handshake is not even begun: the client sees the connection close).
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    tracing::debug!("connection limit reached; refusing a connection");
    let answer =
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Runs [`maintain`] every `interval` until `stopped`.
async fn upkeep(
    regions: Arc<regions::Regions>,
    firehose: Arc<firehose::Firehose>,
    audit: Option<Arc<audit::AuditLog>>,
    interval: Duration,
    persistent: bool,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sync_audit = |audit: Option<Arc<audit::AuditLog>>| async move {
        if let Some(audit) = audit {
            let _ = tokio::task::spawn_blocking(move || audit.sync()).await;
        }
    };
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                for store in regions.all() {
                    maintain(&store, persistent).await;
                }
                let firehose = firehose.clone();
                let _ = tokio::task::spawn_blocking(move || firehose.tick()).await;
                sync_audit(audit.clone()).await;
            }
            _ = stopped.changed() => {
                sync_audit(audit).await;
                return;
            }
        }
    }
}

/// Periodic upkeep: drop expired records, scale ON_DEMAND streams that throttled,
/// fsync shard files.
async fn maintain(store: &Store, persistent: bool) {
    let store = store.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.trim_expired();
        store.scale_on_demand();
        if persistent {
            store.sync_files()
        } else {
            Ok(())
        }
    })
    .await;
    if let Ok(Err(error)) = result {
        tracing::error!(%error, "cannot fsync shard files");
    }
}
