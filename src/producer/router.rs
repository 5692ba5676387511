//! The producer's task: routes records to shard lanes, paces and packs PutRecords
//! calls, and judges every entry of every response.
//!
//! One task owns all of this state, so nothing is locked; the PutRecords calls run
//! in their own tasks (up to `max_concurrent_requests`) and come back here to be judged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::dead_letter::DeadLetters;
use super::health::Health;
use super::judge::{EntryVerdict, RequestVerdict, entry_verdict, request_verdict};
use super::lane::{Entry, Lane, Member};
use super::put_body::{self, WireEntry};
use super::stats::ProducerStats;
use super::throttle::{ShardRates, ShardThrottle, TokioClock};
use super::topology::{self, Topology, TopologyError};
use super::{Ack, Input, Inputs, Outcome, ProducerConfig};
use crate::aws::{Failure, Trouble};
use crate::kinesis::spread_keys::{KEYS_PER_SHARD, SpreadKeys};
use crate::kinesis::{HashKey, HashKeyRange, UserRecord, limits};

type PutResult = Result<PutRecordsOutput, SdkError<PutRecordsError>>;

/// Repeated warnings of one kind become one line every few seconds, with counts.
struct LogLimiter {
    window_start: Instant,
    counts: BTreeMap<String, u64>,
}

const LOG_WINDOW: Duration = Duration::from_secs(5);
/// A failure that lasts is logged again this often.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

impl LogLimiter {
    fn note(&mut self, what: &str, n: u64) {
        *self.counts.entry(what.to_owned()).or_default() += n;
    }

    fn emit_due(&mut self, stream: &str, now: Instant) {
        if self.counts.is_empty() || now.duration_since(self.window_start) < LOG_WINDOW {
            return;
        }
        let summary: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        tracing::warn!(stream.name = %stream, window_secs = LOG_WINDOW.as_secs(), counts = %summary.join(" "), "entries retried (nothing lost)");
        self.counts.clear();
        self.window_start = now;
    }
}

pub struct Router<T> {
    config: ProducerConfig,
    client: Client,
    input: mpsc::Receiver<Inputs<T>>,
    input_open: bool,
    acks: mpsc::Sender<Vec<Ack<T>>>,
    pending_acks: Vec<Ack<T>>,
    budget: Arc<Semaphore>,
    /// Budget bytes of the records this router holds (accepted, not yet released):
    /// returned when it stops, however it stops (see `Drop`).
    held: usize,
    stats: Arc<ProducerStats>,
    drain: watch::Receiver<bool>,
    draining: bool,
    topology: Option<Topology>,
    lanes: Vec<Lane<T>>,
    lane_by_shard: HashMap<String, usize>,
    clock: TokioClock,
    in_flight: JoinSet<PutResult>,
    sent: HashMap<tokio::task::Id, (Vec<Entry<T>>, Instant)>,
    refresh: Option<JoinHandle<Result<Topology, TopologyError>>>,
    /// When the refresh in flight listed the shards: a shard created later is not in it.
    refresh_started: Instant,
    refresh_due: Option<Instant>,
    refresh_failures: u32,
    unverified: Vec<Landed<T>>,
    dead_letters: DeadLetters,
    retries: LogLimiter,
    wake_at: Option<Instant>,
    cursor: usize,
    /// Pre-hashed keys for the current map, shared with senders that want spread.
    spread: Option<Arc<SpreadKeys>>,
    spread_tx: watch::Sender<Option<Arc<SpreadKeys>>>,
    /// The record limit applied now (configured and stream limits, the smaller),
    /// shared with the handles so sources can size records to it.
    record_limit: Arc<AtomicUsize>,
    health: Health,
    /// When each kind of trouble was last logged.
    trouble_logged: HashMap<Trouble, Instant>,
}

impl<T: Send + 'static> Router<T> {
    pub fn new(
        config: ProducerConfig,
        client: Client,
        input: mpsc::Receiver<Inputs<T>>,
        acks: mpsc::Sender<Vec<Ack<T>>>,
        budget: Arc<Semaphore>,
        stats: Arc<ProducerStats>,
        drain: watch::Receiver<bool>,
    ) -> Self {
        let dead_letters = DeadLetters::new(config.dead_letter_path.clone(), &config.stream);
        let record_limit = Arc::new(AtomicUsize::new(
            config
                .max_record_bytes
                .min(limits::DEFAULT_MAX_RECORD_BYTES),
        ));
        Router {
            config,
            client,
            input,
            input_open: true,
            acks,
            pending_acks: Vec::new(),
            budget,
            held: 0,
            stats,
            drain,
            draining: false,
            topology: None,
            lanes: Vec::new(),
            lane_by_shard: HashMap::new(),
            clock: TokioClock::default(),
            in_flight: JoinSet::new(),
            sent: HashMap::new(),
            refresh: None,
            refresh_started: Instant::now(),
            refresh_due: Some(Instant::now()),
            refresh_failures: 0,
            unverified: Vec::new(),
            dead_letters,
            retries: LogLimiter {
                window_start: Instant::now(),
                counts: BTreeMap::new(),
            },
            wake_at: None,
            cursor: 0,
            spread: None,
            spread_tx: watch::Sender::new(None),
            record_limit,
            health: Health::default(),
            trouble_logged: HashMap::new(),
        }
    }

    /// Error series exist from the start, at 0, so a rate or an alert on them works
    /// before the first error.
    fn register_metrics(&self) {
        let stream = self.config.stream.clone();
        for trouble in Trouble::ALL {
            metrics::counter!("shardcar_failed_requests_total", "stream" => stream.clone(), "trouble" => trouble.label()).increment(0);
        }
        metrics::counter!("shardcar_retried_entries_total", "stream" => stream.clone(), "code" => "InternalFailure").increment(0);
        metrics::counter!("shardcar_dead_lettered_records_total", "stream" => stream.clone())
            .increment(0);
        metrics::counter!("shardcar_shard_listing_failures_total", "stream" => stream.clone())
            .increment(0);
        metrics::counter!("shardcar_put_requests_total", "stream" => stream).increment(0);
    }

    /// The record limit applied now, shared.
    pub fn record_limit(&self) -> Arc<AtomicUsize> {
        self.record_limit.clone()
    }

    /// Whether calls are failing, shared.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    fn failure_backoff(&self) -> Backoff {
        Backoff {
            base: self.config.retry_base,
            cap: self.config.retry_max,
        }
    }

    /// A call failed as a whole. An operator hears of it at once, then at most once a
    /// minute while it lasts (with how long it has): one line naming the flow, the
    /// stream, the trouble and what to do.
    fn failing(&mut self, call: &str, failure: Failure) {
        metrics::counter!("shardcar_failed_requests_total", "stream" => self.config.stream.clone(), "trouble" => failure.trouble.label()).increment(1);
        let failing_for = self.health.failed(&failure);
        let now = Instant::now();
        let due = self
            .trouble_logged
            .get(&failure.trouble)
            .is_none_or(|last| now.duration_since(*last) >= FAILURE_LOG_EVERY);
        if !due {
            return;
        }
        self.trouble_logged.insert(failure.trouble, now);
        let trouble = failure.trouble;
        match trouble {
            Trouble::Credentials => tracing::error!(
                flow = %self.config.name,
                stream.name = %self.config.stream,
                call,
                trouble = trouble.as_str(),
                error = %failure,
                credentials = %self.config.credentials,
                failing_secs = failing_for.as_secs(),
                "cannot deliver; records wait in their files (nothing lost): {}",
                trouble.advice()
            ),
            Trouble::StreamMissing => tracing::error!(
                flow = %self.config.name,
                stream.name = %self.config.stream,
                call,
                trouble = trouble.as_str(),
                error = %failure,
                failing_secs = failing_for.as_secs(),
                "cannot deliver; records wait in their files (nothing lost): {}",
                trouble.advice()
            ),
            Trouble::Unreachable | Trouble::Service => tracing::warn!(
                flow = %self.config.name,
                stream.name = %self.config.stream,
                call,
                trouble = trouble.as_str(),
                error = %failure,
                failing_secs = failing_for.as_secs(),
                "cannot deliver; records wait in their files (nothing lost): {}",
                trouble.advice()
            ),
        }
    }

    /// A call succeeded: a failing spell, if any, is over.
    fn recovered(&mut self) {
        if let Some(spell) = self.health.succeeded() {
            self.trouble_logged.clear();
            tracing::info!(flow = %self.config.name, stream.name = %self.config.stream, failed_secs = spell.as_secs(), "delivering again");
        }
    }

    /// Where the pool of spread keys for the current shard map is published.
    pub fn spread_keys(&self) -> watch::Receiver<Option<Arc<SpreadKeys>>> {
        self.spread_tx.subscribe()
    }

    pub async fn run(mut self) {
        self.register_metrics();
        loop {
            let now = Instant::now();
            if self.refresh_due.is_some_and(|due| due <= now) {
                self.start_refresh();
            }
            let wake = self.next_wake(now);
            let accepting = self.input_open && self.topology.is_some();
            tokio::select! {
                Some(joined) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    match joined {
                        Ok((id, result)) => self.judge(id, result),
                        Err(error) => self.sender_failed(error),
                    }
                }
                refreshed = async { self.refresh.as_mut().expect("guarded by is_some").await }, if self.refresh.is_some() => {
                    self.refresh = None;
                    match refreshed {
                        Ok(result) => self.apply_refresh(result),
                        Err(error) => self.apply_refresh(Err(TopologyError::Task(error.to_string()))),
                    }
                }
                input = self.input.recv(), if accepting => match input {
                    Some(first) => {
                        // Take what is waiting, up to a bound, before sealing and sending.
                        let now = Instant::now();
                        let mut taken = first.len();
                        self.accept_all(first, now);
                        while taken < 4096 {
                            match self.input.try_recv() {
                                Ok(more) => {
                                    taken += more.len();
                                    self.accept_all(more, now);
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    None => self.input_open = false,
                },
                changed = self.drain.changed(), if !self.draining => {
                    if changed.is_err() || *self.drain.borrow() {
                        self.draining = true;
                        self.input.close();
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            self.seal_due(now);
            self.pump(now);
            self.flush_acks().await;
            self.retries.emit_due(&self.config.stream, now);
            if self.finished() {
                break;
            }
        }
    }

    /// Done once no more input can come and nothing is held.
    fn finished(&self) -> bool {
        let no_more_input =
            !self.input_open || (self.draining && self.input.is_empty() && self.input.is_closed());
        if !no_more_input {
            return false;
        }
        if self.topology.is_none() {
            // Never got a map: nothing was accepted, nothing is held.
            return self.draining || !self.input_open;
        }
        self.in_flight.is_empty()
            && self.unverified.is_empty()
            && self.lanes.iter().all(Lane::is_idle)
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_secs(1);
        for lane in &self.lanes {
            if let Some(deadline) = lane.linger_deadline(&self.config.aggregation) {
                wake = wake.min(deadline);
            }
        }
        if let Some(at) = self.wake_at {
            wake = wake.min(at);
        }
        if let Some(due) = self.refresh_due {
            wake = wake.min(due);
        }
        wake.max(now + Duration::from_millis(1))
    }

    fn accept_all(&mut self, inputs: Inputs<T>, now: Instant) {
        self.held += inputs.permits();
        match inputs {
            Inputs::One(input) => {
                let hash_key = self
                    .known_hash_key(&input.record)
                    .unwrap_or_else(|| input.record.hash_key());
                self.accept(input, hash_key, now);
            }
            Inputs::Many(batch) => {
                let hash_keys = self.hash_keys(&batch);
                for (input, hash_key) in batch.into_iter().zip(hash_keys) {
                    self.accept(input, hash_key, now);
                }
            }
        }
    }

    /// A record's hash key when it costs no MD5: explicit, or a key from the spread
    /// pool (hashed when the pool was built).
    fn known_hash_key(&self, record: &UserRecord) -> Option<HashKey> {
        record
            .explicit_hash_key
            .or_else(|| self.spread.as_ref()?.hash_of(&record.partition_key))
    }

    /// The hash key of every record of a batch, in order; the partition keys that
    /// must be hashed are hashed side by side.
    fn hash_keys(&self, batch: &[Input<T>]) -> Vec<HashKey> {
        let mut hash_keys = Vec::with_capacity(batch.len());
        let mut unknown = Vec::new();
        for (index, input) in batch.iter().enumerate() {
            let known = self.known_hash_key(&input.record);
            if known.is_none() {
                unknown.push(index);
            }
            hash_keys.push(known.unwrap_or(HashKey::MIN));
        }
        let keys: Vec<&str> = unknown
            .iter()
            .map(|&index| batch[index].record.partition_key.as_str())
            .collect();
        for (index, hash_key) in unknown.iter().zip(HashKey::of_partition_keys(&keys)) {
            hash_keys[*index] = hash_key;
        }
        hash_keys
    }

    fn accept(&mut self, input: Input<T>, hash_key: HashKey, now: Instant) {
        ProducerStats::add(&self.stats.user_records, 1);
        ProducerStats::add(&self.stats.user_bytes, input.record.kinesis_size() as u64);
        let member = Member {
            hash_key,
            explicit: input.record.explicit_hash_key.is_some(),
            record: Some(input.record),
            token: input.token,
            size: input.size,
            received: input.received,
        };
        let Some(record) = &member.record else { return };
        // Counting characters is only needed when the bytes could exceed the limit.
        let key = &record.partition_key;
        let key_chars = if key.len() <= limits::MAX_PARTITION_KEY_CHARS {
            key.len()
        } else {
            key.chars().count()
        };
        if !(1..=limits::MAX_PARTITION_KEY_CHARS).contains(&key_chars) {
            self.dead_letter(
                vec![member],
                &format!("partition key of {key_chars} characters; Kinesis accepts 1 to 256"),
            );
            return;
        }
        let limit = self.record_limit.load(Ordering::Relaxed);
        if record.kinesis_size() > limit {
            let reason = format!(
                "record of {} bytes (partition key + data) exceeds the record limit of {limit} bytes",
                record.kinesis_size(),
            );
            self.dead_letter(vec![member], &reason);
            return;
        }
        self.route(member, now);
    }

    fn route(&mut self, member: Member<T>, now: Instant) {
        let Some(topology) = &self.topology else {
            unreachable!("records are only accepted once the shard map is known");
        };
        let index = topology.open.predict_index(member.hash_key);
        self.lanes[index].add(member, &self.config.aggregation, now);
    }

    fn seal_due(&mut self, now: Instant) {
        let aggregation = self.config.aggregation;
        let everything = self.draining || !self.input_open;
        for lane in &mut self.lanes {
            if lane
                .linger_deadline(&aggregation)
                .is_some_and(|d| everything || d <= now)
            {
                lane.seal();
            }
        }
    }

    /// Sends as many PutRecords calls as there are free slots and admissible entries.
    fn pump(&mut self, now: Instant) {
        self.wake_at = None;
        let slots = self.config.max_concurrent_requests.max(1);
        if self.in_flight.len() >= slots {
            // No call can go out now: let sealed aggregates gather, so that more of
            // them are hashed side by side when a slot frees.
            return;
        }
        Lane::complete_sealed(&mut self.lanes, now);
        while self.in_flight.len() < slots {
            let batch = self.collect_batch(now);
            if batch.is_empty() {
                break;
            }
            self.dispatch(batch);
        }
    }

    fn note_wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn collect_batch(&mut self, now: Instant) -> Vec<Entry<T>> {
        let lanes = self.lanes.len();
        let mut batch: Vec<Entry<T>> = Vec::new();
        let mut bytes = 0;
        let throttle = self.config.throttle.enabled;
        for step in 0..lanes {
            let index = (self.cursor + step) % lanes;
            loop {
                let lane = &mut self.lanes[index];
                let Some(front) = lane.queue.front() else {
                    break;
                };
                if front.not_before > now {
                    let at = front.not_before;
                    self.note_wake(at);
                    break;
                }
                if front.alone && !batch.is_empty() {
                    break;
                }
                let size = front.record.kinesis_size();
                // A record over the request limit (a stream that takes large records)
                // goes in a call of its own.
                if batch.len() >= limits::PUT_RECORDS_MAX_ENTRIES
                    || (!batch.is_empty() && bytes + size > limits::PUT_RECORDS_MAX_BYTES)
                {
                    self.cursor = index;
                    return batch;
                }
                if throttle && let Err(wait) = lane.throttle.admit(size) {
                    self.note_wake(now + wait);
                    break;
                }
                let Some(entry) = lane.queue.pop_front() else {
                    break;
                };
                let alone = entry.alone;
                bytes += size;
                batch.push(entry);
                if alone {
                    return batch;
                }
            }
        }
        self.cursor = (self.cursor + 1) % lanes.max(1);
        batch
    }

    fn dispatch(&mut self, batch: Vec<Entry<T>>) {
        ProducerStats::add(&self.stats.put_requests, 1);
        metrics::counter!("shardcar_put_requests_total", "stream" => self.config.stream.clone())
            .increment(1);
        ProducerStats::add(&self.stats.entries_sent, batch.len() as u64);
        let wire: Vec<WireEntry> = batch
            .iter()
            .map(|e| WireEntry {
                partition_key: e.record.partition_key.clone(),
                explicit_hash_key: e.record.explicit_hash_key,
                data: e.record.data.clone(),
            })
            .collect();
        let client = self.client.clone();
        let stream = self.config.stream.clone();
        let handle = self.in_flight.spawn(async move {
            let body = put_body::encode(&stream, &wire);
            drop(wire);
            put_body::put_records(&client, stream, body).await
        });
        self.sent.insert(handle.id(), (batch, Instant::now()));
    }

    fn lane_mut(&mut self, shard_id: &str) -> Option<&mut Lane<T>> {
        let index = *self.lane_by_shard.get(shard_id)?;
        self.lanes.get_mut(index)
    }

    /// Puts entries back at the front of their lanes, in their original order; entries
    /// whose shard is gone are split up and routed again.
    fn requeue(&mut self, entries: Vec<Entry<T>>) {
        let now = Instant::now();
        for entry in entries.into_iter().rev() {
            match self.lane_by_shard.get(&entry.predicted).copied() {
                Some(index) => self.lanes[index].queue.push_front(entry),
                None => {
                    for member in entry.into_members() {
                        self.route(member, now);
                    }
                }
            }
        }
    }

    fn retry_later(&mut self, mut entry: Entry<T>, backoff: Backoff, now: Instant) -> Entry<T> {
        entry.attempts += 1;
        entry.not_before = now + backoff.delay(entry.attempts);
        entry
    }

    fn judge(&mut self, id: tokio::task::Id, result: PutResult) {
        let Some((entries, started)) = self.sent.remove(&id) else {
            return;
        };
        let now = Instant::now();
        metrics::histogram!("shardcar_put_records_seconds", "stream" => self.config.stream.clone())
            .record(now.duration_since(started).as_secs_f64());
        match result {
            Ok(output) => {
                self.recovered();
                self.judge_entries(entries, output, now)
            }
            Err(error) => self.judge_request(entries, &error, now),
        }
    }

    fn judge_entries(&mut self, entries: Vec<Entry<T>>, output: PutRecordsOutput, now: Instant) {
        let mut again = Vec::new();
        let results = output.records();
        let mut refresh = false;
        for (index, entry) in entries.into_iter().enumerate() {
            let verdict = results.get(index).map_or(
                EntryVerdict::Retry {
                    code: "MissingResult".into(),
                },
                entry_verdict,
            );
            match verdict {
                EntryVerdict::Accepted {
                    shard_id,
                    sequence_number,
                } => {
                    if shard_id == entry.predicted {
                        let size = entry.record.kinesis_size();
                        if let Some(lane) = self.lane_mut(&shard_id) {
                            lane.throttle.accepted(size);
                        }
                        self.deliver(entry, &shard_id, &sequence_number);
                    } else {
                        // The map is stale (a reshard). A single record is fine wherever
                        // it landed; an aggregate must lie wholly inside its shard.
                        refresh = true;
                        if entry.members.len() == 1 {
                            self.deliver(entry, &shard_id, &sequence_number);
                        } else {
                            self.unverified.push(Landed {
                                entry,
                                shard_id,
                                sequence_number,
                                judged: now,
                            });
                        }
                    }
                }
                EntryVerdict::Throttled => {
                    ProducerStats::add(&self.stats.throttled_entries, 1);
                    metrics::counter!("shardcar_throttled_entries_total", "stream" => self.config.stream.clone(), "shard" => entry.predicted.clone()).increment(1);
                    self.retries
                        .note("ProvisionedThroughputExceededException", 1);
                    if let Some(lane) = self.lane_mut(&entry.predicted) {
                        lane.throttle.throttled();
                    }
                    again.push(self.retry_later(entry, Backoff::THROTTLED, now));
                }
                EntryVerdict::Retry { code } => {
                    ProducerStats::add(&self.stats.failed_entries, 1);
                    metrics::counter!("shardcar_retried_entries_total", "stream" => self.config.stream.clone(), "code" => code.clone()).increment(1);
                    self.retries.note(&code, 1);
                    again.push(self.retry_later(entry, self.failure_backoff(), now));
                }
            }
        }
        self.requeue(again);
        if refresh {
            self.request_refresh(now);
        }
    }

    fn judge_request(
        &mut self,
        entries: Vec<Entry<T>>,
        error: &SdkError<PutRecordsError>,
        now: Instant,
    ) {
        ProducerStats::add(&self.stats.failed_requests, 1);
        match request_verdict(error) {
            RequestVerdict::RetryAll {
                code,
                refresh_map,
                operator,
            } => {
                let _ = (code, operator);
                self.failing("PutRecords", Failure::of(error));
                if refresh_map {
                    self.request_refresh(now);
                }
                let again = entries
                    .into_iter()
                    .map(|e| self.retry_later(e, self.failure_backoff(), now))
                    .collect();
                self.requeue(again);
            }
            RequestVerdict::Invalid { code, message } => {
                if entries.len() == 1 {
                    let reason = format!("{code}: {message}");
                    for entry in entries {
                        self.dead_letter(entry.into_members(), &reason);
                    }
                } else {
                    tracing::warn!(stream.name = %self.config.stream, code, message, entries = entries.len(), "PutRecords refused as invalid; sending its entries one by one to find the bad one");
                    let again = entries
                        .into_iter()
                        .map(|mut e| {
                            e.alone = true;
                            e
                        })
                        .collect();
                    self.requeue(again);
                }
            }
        }
    }

    fn sender_failed(&mut self, error: tokio::task::JoinError) {
        tracing::error!(%error, "a PutRecords task failed; its entries are sent again");
        if let Some((entries, _)) = self.sent.remove(&error.id()) {
            let now = Instant::now();
            let again = entries
                .into_iter()
                .map(|e| self.retry_later(e, self.failure_backoff(), now))
                .collect();
            self.requeue(again);
        }
    }

    fn deliver(&mut self, entry: Entry<T>, shard_id: &str, sequence_number: &str) {
        ProducerStats::add(&self.stats.kinesis_records, 1);
        ProducerStats::add(
            &self.stats.kinesis_bytes,
            entry.record.kinesis_size() as u64,
        );
        metrics::counter!("shardcar_kinesis_records_total", "stream" => self.config.stream.clone(), "shard" => shard_id.to_owned()).increment(1);
        metrics::counter!("shardcar_kinesis_bytes_total", "stream" => self.config.stream.clone(), "shard" => shard_id.to_owned())
            .increment(entry.record.kinesis_size() as u64);
        let aggregated = entry.record.is_aggregated();
        let now = Instant::now();
        let mut released = 0;
        let (shard_id, sequence_number): (Arc<str>, Arc<str>) =
            (shard_id.into(), sequence_number.into());
        for (position, member) in entry.members.into_iter().enumerate() {
            released += member.size;
            self.pending_acks.push(Ack {
                token: member.token,
                outcome: Outcome::Delivered {
                    shard_id: shard_id.clone(),
                    sequence_number: sequence_number.clone(),
                    sub_sequence_number: if aggregated { position as u64 } else { 0 },
                },
                latency: now.duration_since(member.received),
            });
        }
        self.release(released);
    }

    fn dead_letter(&mut self, members: Vec<Member<T>>, reason: &str) {
        let now = Instant::now();
        let mut released = 0;
        for member in members {
            ProducerStats::add(&self.stats.dead_lettered, 1);
            if let Some(record) = &member.record {
                self.dead_letters.write(record, reason);
            }
            released += member.size;
            self.pending_acks.push(Ack {
                token: member.token,
                outcome: Outcome::DeadLettered {
                    reason: reason.to_owned(),
                },
                latency: now.duration_since(member.received),
            });
        }
        self.release(released);
    }

    fn release(&mut self, bytes: usize) {
        self.held -= bytes;
        ProducerStats::add(&self.stats.released_bytes, bytes as u64);
        self.budget.add_permits(bytes);
    }

    async fn flush_acks(&mut self) {
        if self.pending_acks.is_empty() {
            return;
        }
        // The next batch is likely as large: start it at that size.
        let capacity = self.pending_acks.len();
        let batch = std::mem::replace(&mut self.pending_acks, Vec::with_capacity(capacity));
        ProducerStats::add(&self.stats.acknowledged_records, batch.len() as u64);
        // A dropped ack stream means nobody is listening; the records were still handled.
        let _ = self.acks.send(batch).await;
    }

    fn request_refresh(&mut self, now: Instant) {
        if self.refresh.is_none() && self.refresh_due.is_none() {
            self.refresh_due = Some(now);
        }
    }

    fn start_refresh(&mut self) {
        self.refresh_due = None;
        if self.refresh.is_some() {
            return;
        }
        let client = self.client.clone();
        let stream = self.config.stream.clone();
        self.refresh_started = Instant::now();
        self.refresh = Some(tokio::spawn(async move {
            topology::fetch(&client, &stream).await
        }));
    }

    fn apply_refresh(&mut self, result: Result<Topology, TopologyError>) {
        let now = Instant::now();
        let topology = match result {
            Ok(topology) => topology,
            Err(error) => {
                self.refresh_failures += 1;
                let delay = self.failure_backoff().delay(self.refresh_failures);
                metrics::counter!("shardcar_shard_listing_failures_total", "stream" => self.config.stream.clone()).increment(1);
                let failure = match error {
                    TopologyError::ListShards(failure) => failure,
                    other => Failure {
                        trouble: crate::aws::Trouble::Service,
                        code: "ListShards".into(),
                        message: other.to_string(),
                    },
                };
                self.failing("ListShards", failure);
                tracing::debug!(stream.name = %self.config.stream, attempt = self.refresh_failures, retry_in_ms = delay.as_millis() as u64, "shard listing retried");
                self.refresh_due = Some(now + delay);
                return;
            }
        };
        self.refresh_failures = 0;
        self.recovered();
        ProducerStats::add(&self.stats.map_refreshes, 1);
        let limit = topology
            .max_record_bytes
            .unwrap_or(limits::DEFAULT_MAX_RECORD_BYTES)
            .min(self.config.max_record_bytes);
        if self.record_limit.swap(limit, Ordering::Relaxed) != limit {
            tracing::info!(stream.name = %self.config.stream, bytes = limit, "record limit");
        }
        metrics::counter!("shardcar_shard_map_refreshes_total", "stream" => self.config.stream.clone()).increment(1);
        let changed = self
            .topology
            .as_ref()
            .is_none_or(|t| t.open != topology.open);
        if changed {
            self.rebuild_lanes(topology, now);
        } else {
            self.topology = Some(topology);
        }
        self.verify_misrouted(now);
    }

    fn rebuild_lanes(&mut self, topology: Topology, now: Instant) {
        tracing::info!(stream.name = %self.config.stream, shards = topology.open.len(), "shard map loaded");
        let spread = Arc::new(SpreadKeys::new(
            &topology.open,
            KEYS_PER_SHARD,
            &mut rand::rng(),
        ));
        self.spread = Some(spread.clone());
        self.spread_tx.send_replace(Some(spread));
        let mut old: HashMap<String, Lane<T>> = self
            .lanes
            .drain(..)
            .map(|lane| (lane.shard_id.clone(), lane))
            .collect();
        let throttle = self.config.throttle;
        let rates = ShardRates {
            records_per_sec: f64::from(throttle.records_per_second_per_shard) * throttle.share,
            bytes_per_sec: f64::from(throttle.bytes_per_second_per_shard) * throttle.share,
            adaptive: throttle.adaptive,
        };
        let mut leftovers = Vec::new();
        let mut lanes = Vec::new();
        for shard in topology.open.shards() {
            let id = shard.shard_id.as_str();
            metrics::counter!("shardcar_throttled_entries_total", "stream" => self.config.stream.clone(), "shard" => id.to_owned()).increment(0);
            let lane = match old.remove(id) {
                Some(mut lane) => {
                    let (members, entries) = lane.take_unsent(now);
                    leftovers.push((members, entries));
                    lane
                }
                None => Lane::new(
                    id,
                    &self.config.aggregation,
                    ShardThrottle::new(rates, self.clock),
                ),
            };
            lanes.push(lane);
        }
        for (_, mut lane) in old {
            leftovers.push(lane.take_unsent(now));
        }
        self.lane_by_shard = lanes
            .iter()
            .enumerate()
            .map(|(i, l)| (l.shard_id.clone(), i))
            .collect();
        self.lanes = lanes;
        self.topology = Some(topology);
        for (members, entries) in leftovers {
            for mut entry in entries {
                // An entry whose records all belong to one new shard keeps its place
                // (its explicit hash key lands it there); otherwise its records are regrouped.
                let map = &self.topology.as_ref().expect("just set").open;
                let indexes: Vec<usize> = entry
                    .members
                    .iter()
                    .map(|m| map.predict_index(m.hash_key))
                    .collect();
                if indexes.windows(2).all(|w| w[0] == w[1]) && !indexes.is_empty() {
                    entry.predicted = self.lanes[indexes[0]].shard_id.clone();
                    self.lanes[indexes[0]].queue.push_back(entry);
                } else {
                    for member in entry.into_members() {
                        self.route(member, now);
                    }
                }
            }
            for member in members {
                self.route(member, now);
            }
        }
    }

    /// Aggregates that landed on an unexpected shard: delivered if every record lies in
    /// that shard's range, else sent again, since a KCL 2.x consumer drops the whole
    /// aggregate there. A shard missing from a listing that began before the response
    /// came is too new for it: the aggregate waits for the next listing rather than
    /// being sent twice.
    fn verify_misrouted(&mut self, now: Instant) {
        let Some(topology) = &self.topology else {
            return;
        };
        let listed = self.refresh_started;
        let mut resend = Vec::new();
        let mut deliver = Vec::new();
        let mut wait = Vec::new();
        for landed in std::mem::take(&mut self.unverified) {
            match topology.ranges.get(&landed.shard_id) {
                Some(range) if landed.lies_within(range) => deliver.push(landed),
                None if landed.judged >= listed => wait.push(landed),
                _ => resend.push(landed.entry),
            }
        }
        for landed in deliver {
            self.deliver(landed.entry, &landed.shard_id, &landed.sequence_number);
        }
        if !wait.is_empty() {
            self.unverified = wait;
            self.request_refresh(now);
        }
        for entry in resend {
            ProducerStats::add(&self.stats.misrouted_aggregates, 1);
            tracing::warn!(stream.name = %self.config.stream, records = entry.members.len(), "an aggregate landed across a reshard boundary; its records are sent again on the new shards");
            for member in entry.into_members() {
                self.route(member, now);
            }
        }
    }
}

/// A router that stops, normally or aborted at the end of a shutdown grace period,
/// returns the budget of every record it still holds or that waits in its input, so
/// producers that share the budget (the agent's other flows, a restarted flow) get it.
impl<T> Drop for Router<T> {
    fn drop(&mut self) {
        // Closed first: a sender that had not handed its records over gets them back
        // with an error and returns their budget itself.
        self.input.close();
        let mut queued = 0;
        while let Ok(inputs) = self.input.try_recv() {
            queued += inputs.permits();
        }
        let unreleased = self.held + queued;
        if unreleased > 0 {
            self.budget.add_permits(unreleased);
        }
    }
}

/// An aggregate accepted on a shard other than the predicted one, until a shard listing
/// says whether that shard's range holds all of its records.
struct Landed<T> {
    entry: Entry<T>,
    shard_id: String,
    sequence_number: String,
    /// When its response was judged.
    judged: Instant,
}

impl<T> Landed<T> {
    /// Whether every record of the aggregate belongs to `range` (a KCL 2.x consumer
    /// reading that shard keeps it).
    fn lies_within(&self, range: &HashKeyRange) -> bool {
        self.entry
            .members
            .iter()
            .all(|m| range.contains(m.hash_key))
    }
}
