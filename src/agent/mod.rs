//! The agent: flows of files into Kinesis, with checkpoints that move only on
//! acknowledgement.
//!
//! Each flow has a reader (`flow`, on a thread of its own) feeding a producer, and an ack task moving
//! acknowledged byte ranges into the shared `ledger`; the checkpointer writes the
//! ledger to `state_dir` every second and at shutdown. All flows draw on one
//! in-flight byte budget. Stopping is phased: stop reading, let the producers drain
//! within the grace period, write the final checkpoint.
//!
//! Here: start-up, flow wiring, the phased stop. In their own modules: the reader
//! (`flow`), records from frames (`records`), the checkpointer, the status loop,
//! reload, the HTTP endpoint. Not here: anything of Kinesis's wire or limits (the
//! producer), or of the server. A little over 500 lines: start-up, wiring and the
//! phased stop all act on the running agent's state.

pub mod ack;
pub mod checkpoint;
mod checkpointer;
pub mod flow;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod partition;
pub mod producer_config;
mod reader;
pub mod records;
mod reload;
pub mod sizing;
pub mod stats;
mod status;
pub mod tail;
pub mod transform;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Config, FlowConfig, OnCorruptCheckpoint};
use crate::producer::{Budget, Outcome, Producer, ProducerHandle, StatsSnapshot};
use checkpoint::{CheckpointError, CheckpointStore, Checkpoints, FileCheckpoint};
use flow::{Flow, FlowStart, Token};
use ledger::Ledger;
use stats::{FlowSnapshot, FlowStats};

/// Time a reader is always given to notice it must stop.
const READER_STOP: Duration = Duration::from_millis(500);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "cannot use the state directory {} ({source}); give [agent] state_dir a directory the agent's user can create and write",
        path.display()
    )]
    StateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("flow {flow}: {source}")]
    Pattern {
        flow: String,
        source: tail::discovery::PatternError,
    },
    #[error("flow {flow}: {source}")]
    Client {
        flow: String,
        source: crate::aws::ClientError,
    },
    #[error("cannot serve metrics on {addr}: {reason}")]
    Metrics {
        addr: std::net::SocketAddr,
        reason: String,
    },
}

impl AgentError {
    /// Whether an operator must act before a restart can succeed (a corrupt or
    /// unreadable checkpoint file, an unusable state directory): the process then
    /// exits with EX_CONFIG, which the systemd unit does not restart on.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            AgentError::Checkpoint(_)
                | AgentError::StateDir { .. }
                | AgentError::Pattern { .. }
                | AgentError::Client { .. }
        )
    }
}

pub use flow::FileEvents;

/// Options given on the command line rather than in the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Move a corrupt checkpoint file aside and start over.
    pub reset_checkpoints: bool,
    /// Whether file change events drive reading (tests turn them off, or drop them, to
    /// check that scans and sweeps alone lose nothing).
    pub file_events: FileEvents,
}

/// What was left when the agent stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    pub unacknowledged_records: u64,
    pub grace_exceeded: bool,
    /// Per flow, by name.
    pub flows: BTreeMap<String, FlowStopReport>,
}

/// What one flow left when it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStopReport {
    /// Records handed to the producer whose outcome never came: they are above the
    /// checkpoint and are read again at the next start.
    pub unacknowledged_records: u64,
    pub grace_exceeded: bool,
}

struct RunningFlow {
    config: FlowConfig,
    stop: watch::Sender<bool>,
    reader: reader::Reader,
    acks: JoinHandle<()>,
    producer: ProducerHandle<Token>,
    stats: Arc<FlowStats>,
}

pub struct Agent;

/// A running agent; [`RunningAgent::stop`] stops it in phases.
pub struct RunningAgent {
    config: Config,
    ledger: Ledger,
    store: CheckpointStore,
    budget: Budget,
    host: String,
    flows: BTreeMap<String, RunningFlow>,
    known_flows: Arc<std::sync::Mutex<Vec<String>>>,
    background_stop: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
    readiness: http::Readiness,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    endpoint: Option<JoinHandle<()>>,
    endpoint_stop: watch::Sender<bool>,
    file_events: FileEvents,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

impl Agent {
    /// Loads checkpoints, finds every flow's files, records the start durably (so a
    /// crash in the first second is not taken for another first start), then starts
    /// the readers, the checkpointer, the status line and (if configured) the metrics
    /// endpoint.
    pub async fn start(config: Config, options: RunOptions) -> Result<RunningAgent, AgentError> {
        let state_dir = config.agent.state_dir.clone();
        std::fs::create_dir_all(&state_dir).map_err(|source| AgentError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        let store = CheckpointStore::new(&state_dir);
        let loaded = match store.load() {
            Ok(loaded) => loaded,
            Err(error @ CheckpointError::Corrupt { .. })
                if options.reset_checkpoints
                    || config.agent.on_corrupt_checkpoint == OnCorruptCheckpoint::Reset =>
            {
                let aside = store.reset().map_err(|source| AgentError::StateDir {
                    path: state_dir.clone(),
                    source,
                })?;
                tracing::warn!(%error, moved_to = ?aside, "starting without checkpoints; files are read as on a first start");
                None
            }
            Err(error) => return Err(error.into()),
        };
        let readiness = http::Readiness::new(config.agent.ready_after_failing);
        let (endpoint_stop, endpoint_stopped) = watch::channel(false);
        let mut endpoint = None;
        // Without an endpoint to serve them, metrics are not recorded at all: every
        // counter update on the hot path is then a no-op.
        let metrics = config
            .agent
            .metrics_listen
            .and_then(|_| metrics::recorder());
        if let Some(addr) = config.agent.metrics_listen {
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| AgentError::Metrics {
                        addr,
                        reason: e.to_string(),
                    })?;
            let bound = listener.local_addr().unwrap_or(addr);
            tracing::info!(listen = %bound, "serving /metrics, /health and /ready");
            endpoint = Some(tokio::spawn(http::serve(
                listener,
                metrics.clone(),
                readiness.clone(),
                endpoint_stopped,
            )));
        }
        let loaded = loaded.unwrap_or_default();
        let budget = Budget::new(config.agent.max_in_flight_bytes);
        let (background_stop, _) = watch::channel(false);
        let mut agent = RunningAgent {
            ledger: Ledger::default(),
            store,
            budget,
            host: hostname(),
            flows: BTreeMap::new(),
            known_flows: Arc::new(std::sync::Mutex::new(loaded.flows.clone())),
            background_stop,
            background: Vec::new(),
            config: config.clone(),
            readiness,
            metrics,
            endpoint,
            endpoint_stop,
            file_events: options.file_events,
        };
        let mut prepared = Vec::new();
        for flow in &config.flows {
            let checkpoints: Vec<FileCheckpoint> = loaded
                .files
                .iter()
                .filter(|c| c.flow == flow.name)
                .cloned()
                .collect();
            let first_run = !loaded.flows.contains(&flow.name);
            prepared.push(
                agent
                    .prepare_flow(
                        flow.clone(),
                        FlowStart {
                            checkpoints,
                            first_run,
                        },
                    )
                    .await?,
            );
        }
        agent.persist_start()?;
        for flow in prepared {
            agent.launch(flow);
        }
        agent.start_background();
        Ok(agent)
    }
}

/// A flow whose files are found and registered in the ledger, not yet reading.
struct PreparedFlow {
    config: FlowConfig,
    flow: Flow,
    producer: ProducerHandle<Token>,
    acks: crate::producer::Acks<Token>,
    stats: Arc<FlowStats>,
}

impl RunningAgent {
    /// Starts a flow's producer and finds its files (the first scan registers each file
    /// with the offset it starts from); nothing is read yet.
    async fn prepare_flow(
        &mut self,
        config: FlowConfig,
        start: FlowStart,
    ) -> Result<PreparedFlow, AgentError> {
        if let Some(profile) = &config.service.profile
            && !crate::aws::profile_exists(profile)
        {
            tracing::warn!(flow = %config.name, profile = %profile, "the profile is in neither the AWS config file nor the credentials file (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, ~/.aws/); calls will fail until it is");
        }
        let producer_config = producer_config::for_flow(&config, &self.config.agent);
        let client_error = |source| AgentError::Client {
            flow: config.name.clone(),
            source,
        };
        let purpose = crate::aws::Purpose::Producer;
        let (producer, acks) = if config.destination.is_firehose() {
            let client = crate::aws::firehose_client(&config.service, purpose)
                .await
                .map_err(client_error)?;
            Producer::start_firehose::<Token>(producer_config, client, self.budget.clone())
        } else {
            let client = crate::aws::kinesis_client(&config.service, purpose)
                .await
                .map_err(client_error)?;
            Producer::start_with_budget::<Token>(producer_config, client, self.budget.clone())
        };
        let stats = Arc::new(FlowStats::default());
        let mut flow = match Flow::new(
            config.clone(),
            producer.clone(),
            self.ledger.clone(),
            stats.clone(),
            self.host.clone(),
            self.config.agent.scan_interval,
        ) {
            Ok(flow) => flow,
            Err(source) => {
                producer.shutdown(Duration::ZERO).await;
                return Err(AgentError::Pattern {
                    flow: config.name.clone(),
                    source,
                });
            }
        };
        flow.set_file_events(self.file_events);
        flow.begin(start);
        {
            let mut known = self.known_flows.lock().unwrap_or_else(|p| p.into_inner());
            if !known.contains(&config.name) {
                known.push(config.name.clone());
            }
        }
        Ok(PreparedFlow {
            config,
            flow,
            producer,
            acks,
            stats,
        })
    }

    /// Writes the flows that have started and where each of their files starts, before
    /// anything is read: a restart after a crash then knows `start_at` was applied,
    /// and only lines older than the very first start are skipped. Failing here means
    /// the state directory is unusable, which an operator must fix.
    fn persist_start(&self) -> Result<(), AgentError> {
        let current = Checkpoints {
            flows: self
                .known_flows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            files: self.ledger.checkpoints(),
        };
        self.store.persist(&current).map_err(AgentError::from)
    }

    /// Starts a prepared flow's reader and its acknowledgement task.
    fn launch(&mut self, prepared: PreparedFlow) {
        let PreparedFlow {
            config,
            flow,
            producer,
            acks,
            stats,
        } = prepared;
        let (stop, stopped) = watch::channel(false);
        let reader = reader::Reader::start(&config.name, flow.run(stopped));
        let acks = tokio::spawn(apply_acks(acks, self.ledger.clone(), stats.clone()));
        self.readiness
            .add(&config.name, config.destination.name(), producer.clone());
        tracing::info!(flow = %config.name, destination = %config.destination, include = ?config.include, "flow started");
        self.flows.insert(
            config.name.clone(),
            RunningFlow {
                config,
                stop,
                reader,
                acks,
                producer,
                stats,
            },
        );
    }

    fn start_background(&mut self) {
        let stop = self.background_stop.subscribe();
        self.background.push(tokio::spawn(checkpointer::run(
            self.ledger.clone(),
            self.store.clone(),
            self.known_flows.clone(),
            stop,
        )));
        let flows = self
            .flows
            .iter()
            .map(|(name, flow)| status::Watched {
                name: name.clone(),
                stats: flow.stats.clone(),
                producer: flow.producer.clone(),
            })
            .collect();
        self.background.push(tokio::spawn(status::run(
            flows,
            self.budget.clone(),
            self.readiness.clone(),
            self.metrics.clone(),
            self.background_stop.subscribe(),
        )));
    }

    async fn stop_background(&mut self) {
        let _ = self.background_stop.send(true);
        for task in self.background.drain(..) {
            let _ = task.await;
        }
    }

    /// Counters of one flow.
    pub fn flow_stats(&self, flow: &str) -> Option<FlowSnapshot> {
        self.flows.get(flow).map(|f| f.stats.snapshot())
    }

    /// Counters of one flow's producer.
    pub fn producer_stats(&self, flow: &str) -> Option<StatsSnapshot> {
        self.flows.get(flow).map(|f| f.producer.stats())
    }

    /// Bytes of the shared in-flight budget taken now.
    pub fn in_flight_bytes(&self) -> usize {
        self.budget.in_use()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Stops reading, drains every producer within the grace period, writes the final
    /// checkpoint and reports what was left unacknowledged (it will be read again).
    pub async fn stop(self) -> StopReport {
        let deadline = Instant::now() + self.config.agent.shutdown_grace_period;
        self.stop_by(deadline).await
    }

    /// Whether each flow is delivering or idle (what `/ready` answers).
    pub fn readiness(&self) -> Vec<http::FlowReadiness> {
        self.readiness.flows()
    }

    /// [`stop`](RunningAgent::stop) with a deadline for the producers to drain.
    pub async fn stop_by(mut self, deadline: Instant) -> StopReport {
        let flows: Vec<(String, RunningFlow)> =
            std::mem::take(&mut self.flows).into_iter().collect();
        let reports = stop_flows(flows, deadline).await;
        self.stop_background().await;
        let _ = self.endpoint_stop.send(true);
        if let Some(endpoint) = self.endpoint.take() {
            let _ = endpoint.await;
        }
        checkpointer::write(&self.ledger, &self.store, &self.known_flows).await;
        let report = StopReport {
            unacknowledged_records: reports.values().map(|r| r.unacknowledged_records).sum(),
            grace_exceeded: reports.values().any(|r| r.grace_exceeded),
            flows: reports,
        };
        for (name, flow) in &report.flows {
            log_flow_stop(name, flow);
        }
        if !report.grace_exceeded {
            tracing::info!("stopped; final checkpoint written");
        }
        report
    }
}

fn log_flow_stop(name: &str, report: &FlowStopReport) {
    if report.unacknowledged_records > 0 || report.grace_exceeded {
        tracing::warn!(
            flow = %name,
            unacknowledged_records = report.unacknowledged_records,
            grace_exceeded = report.grace_exceeded,
            "flow stopped with records unacknowledged; they will be read again at the next start"
        );
    } else {
        tracing::info!(flow = %name, "flow stopped; everything it read was acknowledged");
    }
}

/// Stops flows side by side, each by `deadline`.
async fn stop_flows(
    flows: Vec<(String, RunningFlow)>,
    deadline: Instant,
) -> BTreeMap<String, FlowStopReport> {
    let tasks: Vec<(String, JoinHandle<FlowStopReport>)> = flows
        .into_iter()
        .map(|(name, flow)| (name, tokio::spawn(stop_flow(flow, deadline))))
        .collect();
    let mut reports = BTreeMap::new();
    for (name, task) in tasks {
        let report = task.await.unwrap_or(FlowStopReport {
            unacknowledged_records: 0,
            grace_exceeded: true,
        });
        reports.insert(name, report);
    }
    reports
}

/// Stops one flow: its reader at once (it also leaves a wait on the budget), then its
/// producer by `deadline`. A producer stopped at the deadline returns its budget.
async fn stop_flow(flow: RunningFlow, deadline: Instant) -> FlowStopReport {
    let _ = flow.stop.send(true);
    // A reader leaves at once when told; the moment given here only matters when the
    // deadline has already passed (a flow started by a reload that a SIGTERM cut short).
    let reader_deadline = deadline.max(Instant::now() + READER_STOP);
    if !flow.reader.stop_by(reader_deadline).await {
        // A read blocked in the kernel (a hung network filesystem): leave it behind.
        tracing::warn!(flow = %flow.config.name, "the flow's reader did not stop in time");
    }
    let report = flow.producer.shutdown_by(deadline).await;
    let _ = flow.acks.await;
    FlowStopReport {
        unacknowledged_records: report.unacknowledged_records,
        grace_exceeded: report.grace_exceeded,
    }
}

/// Moves a flow's acknowledged byte ranges into the ledger (a record split in pieces
/// counts once its last piece is acknowledged) and counts the outcomes.
async fn apply_acks(mut acks: crate::producer::Acks<Token>, ledger: Ledger, stats: Arc<FlowStats>) {
    while let Some(batch) = acks.recv().await {
        let mut delivered = 0;
        let mut dead = 0;
        let ranges: Vec<_> = batch
            .into_iter()
            .filter_map(|ack| {
                match ack.outcome {
                    Outcome::Delivered { .. } => delivered += 1,
                    Outcome::DeadLettered { .. } => dead += 1,
                }
                ack.token
                    .completes()
                    .then_some((ack.token.reading, ack.token.range))
            })
            .collect();
        ledger.acknowledge_all(ranges);
        FlowStats::add(&stats.delivered, delivered);
        FlowStats::add(&stats.dead_lettered, dead);
    }
}
