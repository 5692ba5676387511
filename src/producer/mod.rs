//! The producer: user records in, PutRecords out, and one acknowledgement back for
//! every record, exactly once.
//!
//! `send` waits while the in-flight byte budget is full (backpressure); the router
//! task predicts each record's shard, aggregates per shard (KPL format), paces each
//! shard through its throttle, packs PutRecords calls and judges every entry of every
//! response. Nothing expires: failures are retried until Kinesis accepts the record,
//! or, for a record it will never accept, dead-lettered and acknowledged as such.
//!
//! It knows nothing of files: the agent builds on it, and so can any other source.
//!
//! Modules: `router` (the task's select loop: taking records in, packing calls),
//! `lane` (per-shard aggregation and queue), `throttle`/`bucket` (pacing), `judge`
//! (what an answer means), `delivery` (acks and the budget), `reshard` (following
//! the shard map), `alerts`/`health` (what operators see), `service` (the stream
//! behind a trait; `SdkService` is Kinesis), `put_body` (the request body).

mod alerts;
mod backoff;
mod bucket;
mod cbor_body;
mod dead_letter;
mod delivery;
mod firehose;
pub mod health;
mod judge;
mod lane;
mod packer;
mod put_body;
mod reshard;
mod router;
mod service;
mod stats;
pub mod throttle;
pub mod topology;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use stats::{ProducerStats, StatsSnapshot};

use crate::config::{AggregationConfig, BodyFormat, ThrottleConfig};
use crate::kinesis::{UserRecord, limits};

/// How a producer behaves. `ProducerConfig::new` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub stream: String,
    /// Who sends (the agent's flow name), named in log lines; the stream if unset.
    pub name: String,
    /// Where the credentials come from, named when they are refused.
    pub credentials: String,
    /// How long to wait before retrying a call that failed as a whole: exponential
    /// from `retry_base` to `retry_max`, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub aggregation: AggregationConfig,
    pub throttle: ThrottleConfig,
    /// Bytes (partition key + data) accepted by `send` but not yet acknowledged.
    pub max_in_flight_bytes: usize,
    /// PutRecords calls in flight at once.
    pub max_concurrent_requests: usize,
    /// The largest record (partition key + data) the owner allows. The limit applied is
    /// the smaller of this and the stream's own (read from DescribeStreamSummary, 1 MiB
    /// until known); larger records are dead-lettered, so a source that must not lose
    /// them sizes its records by [`ProducerHandle::max_record_bytes`].
    pub max_record_bytes: usize,
    /// Where records Kinesis will never accept are written (JSON lines); log only if `None`.
    pub dead_letter_path: Option<PathBuf>,
    /// How PutRecords bodies are written.
    pub body_format: BodyFormat,
    /// Most bytes of records in one call: PutRecords takes 5 MiB, Firehose's
    /// PutRecordBatch 4 MiB.
    pub max_request_bytes: usize,
}

impl ProducerConfig {
    /// Enough calls in flight to keep several shards busy while some wait on retries.
    pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 8;

    pub fn new(stream: &str) -> Self {
        ProducerConfig {
            stream: stream.to_owned(),
            name: stream.to_owned(),
            credentials: "the default credential chain".to_owned(),
            retry_base: crate::config::KinesisConfig::DEFAULT_RETRY_BASE,
            retry_max: crate::config::KinesisConfig::DEFAULT_RETRY_MAX,
            aggregation: AggregationConfig::DEFAULT,
            throttle: ThrottleConfig::DEFAULT,
            max_in_flight_bytes: crate::config::AgentConfig::DEFAULT_MAX_IN_FLIGHT_BYTES,
            max_concurrent_requests: Self::DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_record_bytes: limits::DEFAULT_MAX_RECORD_BYTES,
            dead_letter_path: None,
            body_format: BodyFormat::Cbor,
            max_request_bytes: limits::PUT_RECORDS_MAX_BYTES,
        }
    }
}

/// The final outcome of one user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Where Kinesis stored the record's entry, shared by every record of one
    /// aggregate (one count to move per record, not two).
    Delivered {
        stored: Arc<Stored>,
        /// Position inside its aggregate (0 for a record sent alone).
        sub_sequence_number: u64,
    },
    DeadLettered {
        reason: String,
    },
}

/// The shard and sequence number Kinesis stored an entry under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub shard_id: String,
    pub sequence_number: String,
}

/// A user record's token, handed back with its outcome.
#[derive(Debug, Clone)]
pub struct Ack<T> {
    pub token: T,
    pub outcome: Outcome,
    /// From `send` to the outcome.
    pub latency: Duration,
}

/// The stream of acknowledgements, in batches. It must be read: the producer waits
/// for room in it.
pub struct Acks<T> {
    receiver: mpsc::Receiver<Vec<Ack<T>>>,
}

impl<T> Acks<T> {
    /// The next batch, or `None` once the producer has stopped.
    pub async fn recv(&mut self) -> Option<Vec<Ack<T>>> {
        self.receiver.recv().await
    }
}

/// The producer is no longer accepting records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the producer has stopped")]
pub struct ProducerClosed;

/// What was left when the producer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    pub unacknowledged_records: u64,
    pub grace_exceeded: bool,
}

pub(crate) struct Input<T> {
    record: UserRecord,
    token: T,
    size: usize,
    received: Instant,
}

/// Records handed over together (`send_batch`): one channel message, one budget
/// acquisition and one clock read for all of them. They travel in the sender's own
/// list, not copied into one of [`Input`]s; the router works out each record's share
/// of the budget again as it takes it in ([`record_permits`]).
pub(crate) struct Batch<T> {
    records: Vec<(UserRecord, T)>,
    received: Instant,
    /// The budget the batch holds: `record_permits` summed over its records.
    permits: usize,
    /// The budget's size, which each record's share is clamped to.
    budget_total: usize,
}

/// What travels to the router: one record, or a batch.
pub(crate) enum Inputs<T> {
    One(Input<T>),
    Many(Batch<T>),
}

impl<T> Inputs<T> {
    fn len(&self) -> usize {
        match self {
            Inputs::One(_) => 1,
            Inputs::Many(batch) => batch.records.len(),
        }
    }

    /// The budget these records hold.
    fn permits(&self) -> usize {
        match self {
            Inputs::One(input) => input.size,
            Inputs::Many(batch) => batch.permits,
        }
    }

    /// Partition key and data bytes of these records, as given.
    fn kinesis_bytes(&self) -> usize {
        match self {
            Inputs::One(input) => input.record.kinesis_size(),
            Inputs::Many(batch) => batch.records.iter().map(|(r, _)| r.kinesis_size()).sum(),
        }
    }
}

/// The budget a record holds, out of a budget of `budget_total`: a memory cap, so its
/// bytes plus its bookkeeping.
fn record_permits(record: &UserRecord, budget_total: usize) -> u32 {
    let size = record.kinesis_size() + PER_RECORD_OVERHEAD;
    size.clamp(1, budget_total).min(u32::MAX as usize) as u32
}

/// Sends records to a running producer. Cheap to clone.
pub struct ProducerHandle<T> {
    input: mpsc::Sender<Inputs<T>>,
    budget: Arc<Semaphore>,
    budget_total: usize,
    stats: Arc<ProducerStats>,
    drain: Arc<watch::Sender<bool>>,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
    record_limit: Arc<std::sync::atomic::AtomicUsize>,
    limit_known: Arc<watch::Sender<bool>>,
    health: health::Health,
}

impl<T> Clone for ProducerHandle<T> {
    fn clone(&self) -> Self {
        ProducerHandle {
            input: self.input.clone(),
            budget: self.budget.clone(),
            budget_total: self.budget_total,
            stats: self.stats.clone(),
            drain: self.drain.clone(),
            task: self.task.clone(),
            record_limit: self.record_limit.clone(),
            limit_known: self.limit_known.clone(),
            health: self.health.clone(),
        }
    }
}

/// Memory a held record costs beyond its partition key and data (its token, key,
/// timestamps and allocations), measured at about 150 to 250 bytes; without it a
/// budget of small records would hold twice the memory it claims.
pub const PER_RECORD_OVERHEAD: usize = 200;

/// Bytes in flight that one or more producers share (the agent has one for all flows).
#[derive(Debug, Clone)]
pub struct Budget {
    semaphore: Arc<Semaphore>,
    total: usize,
}

impl Budget {
    /// At least one largest record, so any record can always be sent.
    pub fn new(bytes: usize) -> Budget {
        let total = bytes.max(limits::DEFAULT_MAX_RECORD_BYTES);
        Budget {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes taken now.
    pub fn in_use(&self) -> usize {
        self.total - self.semaphore.available_permits()
    }
}

pub struct Producer;

impl Producer {
    /// Starts the producer's task with a budget of its own (`max_in_flight_bytes`); its
    /// first act is listing the stream's shards.
    pub fn start<T: Send + 'static>(
        config: ProducerConfig,
        client: aws_sdk_kinesis::Client,
    ) -> (ProducerHandle<T>, Acks<T>) {
        let budget = Budget::new(config.max_in_flight_bytes);
        Producer::start_with_budget(config, client, budget)
    }

    /// Starts a producer drawing on a shared in-flight budget.
    pub fn start_with_budget<T: Send + 'static>(
        config: ProducerConfig,
        client: aws_sdk_kinesis::Client,
        shared: Budget,
    ) -> (ProducerHandle<T>, Acks<T>) {
        let format = config.body_format;
        Producer::start_on(config, service::SdkService { client, format }, shared)
    }

    /// Starts a producer for a Firehose delivery stream (`config.stream` names it),
    /// drawing on a shared in-flight budget. `config.aggregation` should pack
    /// end to end ([`PackFormat::Concatenated`](crate::config::PackFormat)).
    pub fn start_firehose<T: Send + 'static>(
        config: ProducerConfig,
        client: aws_sdk_firehose::Client,
        shared: Budget,
    ) -> (ProducerHandle<T>, Acks<T>) {
        Producer::start_on(config, firehose::FirehoseService { client }, shared)
    }

    /// Starts a producer that talks to `service`.
    fn start_on<T: Send + 'static, S: service::StreamService>(
        config: ProducerConfig,
        service: S,
        shared: Budget,
    ) -> (ProducerHandle<T>, Acks<T>) {
        let (input_tx, input_rx) = mpsc::channel(4096);
        let (ack_tx, ack_rx) = mpsc::channel(1024);
        let budget_total = shared.total;
        let budget = shared.semaphore;
        let stats = Arc::new(ProducerStats::default());
        let (drain_tx, drain_rx) = watch::channel(false);
        let router = router::Router::new(
            config,
            service,
            input_rx,
            ack_tx,
            budget.clone(),
            stats.clone(),
            drain_rx,
        );
        let record_limit = router.record_limit();
        let limit_known = router.limit_known();
        let health = router.health();
        let task = tokio::spawn(router.run());
        let handle = ProducerHandle {
            input: input_tx,
            record_limit,
            limit_known,
            health,
            budget,
            budget_total,
            stats,
            drain: Arc::new(drain_tx),
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        };
        (handle, Acks { receiver: ack_rx })
    }
}

impl<T: Send + 'static> ProducerHandle<T> {
    /// The largest record (partition key + data) the producer sends now: the smaller of
    /// the configured limit and the stream's. It can grow once the stream is known.
    pub fn max_record_bytes(&self) -> usize {
        self.record_limit.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether [`Self::max_record_bytes`] includes the stream's own limit yet. Until the
    /// stream has been listed once it is the smaller of the configured limit and 1 MiB.
    pub fn record_limit_known(&self) -> bool {
        *self.limit_known.borrow()
    }

    /// Resolves once the stream's record limit is known (see [`Self::record_limit_known`]).
    pub async fn stream_record_limit(&self) {
        let mut known = self.limit_known.subscribe();
        let _ = known.wait_for(|known| *known).await;
    }

    /// Hands a record to the producer, waiting while the in-flight budget is full.
    /// Its outcome arrives on the ack stream with `token`.
    pub async fn send(&self, record: UserRecord, token: T) -> Result<(), ProducerClosed> {
        let permits = self.permits(&record);
        self.acquire(permits).await?;
        let input = Input {
            record,
            token,
            size: permits as usize,
            received: Instant::now(),
        };
        self.forward(Inputs::One(input), permits).await
    }

    /// Hands over many records at once, in order; the same as calling [`send`] for
    /// each, at a fraction of the cost per record. A source that reads in chunks (the
    /// agent) sends each chunk's records this way.
    ///
    /// [`send`]: ProducerHandle::send
    pub async fn send_batch(
        &self,
        records: impl IntoIterator<Item = (UserRecord, T)>,
    ) -> Result<(), ProducerClosed> {
        // A list handed over as one is not copied (collecting a vector's own iterator
        // gives the vector back).
        let records: Vec<(UserRecord, T)> = records.into_iter().collect();
        if records.is_empty() {
            return Ok(());
        }
        // A part never holds more than a quarter of the budget, so one large batch
        // cannot wait for the whole budget while smaller senders starve behind it.
        let most = (self.budget_total / 4).max(1) as u64;
        let total: u64 = records
            .iter()
            .map(|(record, _)| u64::from(self.permits(record)))
            .sum();
        if total <= most || records.len() == 1 {
            return self.send_part(records, total).await;
        }
        let mut part: Vec<(UserRecord, T)> = Vec::new();
        let mut part_permits = 0u64;
        for (record, token) in records {
            let permits = self.permits(&record);
            if !part.is_empty() && part_permits + u64::from(permits) > most {
                let capacity = part.len();
                let full = std::mem::replace(&mut part, Vec::with_capacity(capacity));
                self.send_part(full, part_permits).await?;
                part_permits = 0;
            }
            part_permits += u64::from(permits);
            part.push((record, token));
        }
        if !part.is_empty() {
            self.send_part(part, part_permits).await?;
        }
        Ok(())
    }

    async fn send_part(
        &self,
        records: Vec<(UserRecord, T)>,
        permits: u64,
    ) -> Result<(), ProducerClosed> {
        // Each record's permits are clamped to the budget, and a part holds more than
        // one record only while it stays under a quarter of it: this fits in a u32.
        let permits = permits.min(u64::from(u32::MAX)) as u32;
        self.acquire(permits).await?;
        let batch = Batch {
            records,
            // Latency counts from when the budget let the records in, as for `send`.
            received: Instant::now(),
            permits: permits as usize,
            budget_total: self.budget_total,
        };
        self.forward(Inputs::Many(batch), permits).await
    }

    /// The budget a record holds (see [`record_permits`]).
    fn permits(&self, record: &UserRecord) -> u32 {
        record_permits(record, self.budget_total)
    }

    async fn acquire(&self, permits: u32) -> Result<(), ProducerClosed> {
        let permit = self
            .budget
            .acquire_many(permits)
            .await
            .map_err(|_| ProducerClosed)?;
        permit.forget();
        Ok(())
    }

    async fn forward(&self, inputs: Inputs<T>, permits: u32) -> Result<(), ProducerClosed> {
        let records = inputs.len() as u64;
        if self.input.send(inputs).await.is_err() {
            self.budget.add_permits(permits as usize);
            return Err(ProducerClosed);
        }
        ProducerStats::add(&self.stats.handed_records, records);
        ProducerStats::add(&self.stats.handed_bytes, u64::from(permits));
        Ok(())
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Whether calls are failing, since when, and the last failure.
    pub fn health(&self) -> health::HealthSnapshot {
        self.health.snapshot()
    }

    /// Bytes accepted by `send` and not yet acknowledged (by every producer sharing
    /// this one's budget).
    pub fn in_flight_bytes(&self) -> usize {
        self.budget_total - self.budget.available_permits()
    }

    /// Stops taking records, sends what is held (aggregates go out at once), and waits
    /// up to `grace` for their acknowledgements.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.shutdown_by(Instant::now() + grace).await
    }

    /// [`shutdown`](ProducerHandle::shutdown) with a deadline: past it, what is still
    /// held is dropped unacknowledged (it is read again at the next start) and its
    /// budget is returned.
    pub async fn shutdown_by(&self, deadline: Instant) -> ShutdownReport {
        let _ = self.drain.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut grace_exceeded = false;
        if let Some(mut task) = task
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            grace_exceeded = true;
            task.abort();
            let _ = task.await;
        }
        ShutdownReport {
            unacknowledged_records: self.stats.snapshot().unacknowledged_records(),
            grace_exceeded,
        }
    }
}
