//! The producer's task: routes records to shard lanes, paces and packs PutRecords
//! calls, and judges every entry of every answer.
//!
//! One task owns all of this state, so nothing is locked; the PutRecords calls run
//! in their own tasks (up to `max_concurrent_requests`) and come back here to be judged.
//! What happens to a record at the end (acknowledgement, dead letter, budget) is
//! [`Delivery`]'s; following reshards is [`reshard`]'s; what is logged about failures
//! is [`Alerts`]'; the service itself is behind [`StreamService`].
//!
//! About 700 lines, kept whole on purpose: the loop, the batching and the verdicts
//! read and write the same lanes and in-flight set, and split apart they would pass
//! that state back and forth. Its behaviour is tested through `producer::tests`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::alerts::Alerts;
use super::backoff::Backoff;
use super::dead_letter::DeadLetters;
use super::delivery::Delivery;
use super::health::Health;
use super::judge::{EntryVerdict, RequestVerdict};
use super::lane::{Entry, Lane, Member, with_key};
use super::put_body::WireEntry;
use super::reshard::{self, Landed, Refresh};
use super::service::{PutAnswer, RequestFailure, StreamService};
use super::stats::ProducerStats;
use super::throttle::{ShardRates, ShardThrottle};
use super::topology::{Topology, TopologyError};
use super::{Ack, Batch, Input, Inputs, ProducerConfig, record_permits};
use crate::aws::{Failure, Trouble};
use crate::kinesis::spread_keys::{KEYS_PER_SHARD, SPREAD_KEY_LEN, SpreadKeys, random_key};
use crate::kinesis::{HashKey, UserRecord, limits};

/// Bytes of aggregate framing a record may add beyond its partition key and data (its
/// record message's tags and lengths, and its key's entry in the key table).
const FRAMING_SLACK: usize = 16;

pub struct Router<T, S> {
    config: ProducerConfig,
    service: S,
    input: mpsc::Receiver<Inputs<T>>,
    input_open: bool,
    /// For the budget of records still in the input when the router stops.
    budget: Arc<Semaphore>,
    delivery: Delivery<T>,
    stats: Arc<ProducerStats>,
    drain: watch::Receiver<bool>,
    draining: bool,
    topology: Option<Topology>,
    lanes: Vec<Lane<T>>,
    lane_by_shard: HashMap<String, usize>,
    in_flight: JoinSet<PutAnswer>,
    sent: HashMap<tokio::task::Id, (Vec<Entry<T>>, Instant)>,
    refresh: Refresh,
    unverified: Vec<Landed<T>>,
    alerts: Alerts,
    wake_at: Option<Instant>,
    cursor: usize,
    /// Pre-hashed keys for the current map, given to records that ask to be spread.
    /// Shared so that a record can borrow its key while the router routes it.
    spread: Option<Arc<SpreadKeys>>,
    /// The lane whose open aggregate spread records fill now (see `accept_spread`).
    filling: Option<usize>,
    /// The record limit applied now (configured and stream limits, the smaller),
    /// shared with the handles so sources can size records to it.
    record_limit: Arc<AtomicUsize>,
    /// Whether `record_limit` includes the stream's own limit yet (true after the
    /// first successful shard listing).
    limit_known: Arc<tokio::sync::watch::Sender<bool>>,
}

impl<T: Send + 'static, S: StreamService> Router<T, S> {
    pub fn new(
        config: ProducerConfig,
        service: S,
        input: mpsc::Receiver<Inputs<T>>,
        acks: mpsc::Sender<Vec<Ack<T>>>,
        budget: Arc<Semaphore>,
        stats: Arc<ProducerStats>,
        drain: watch::Receiver<bool>,
    ) -> Self {
        let dead_letters = DeadLetters::new(config.dead_letter_path.clone(), &config.stream);
        let delivery = Delivery::new(
            &config.stream,
            acks,
            budget.clone(),
            stats.clone(),
            dead_letters,
        );
        let record_limit = Arc::new(AtomicUsize::new(
            config
                .max_record_bytes
                .min(limits::DEFAULT_MAX_RECORD_BYTES),
        ));
        let alerts = Alerts::new(&config.name, &config.stream, &config.credentials);
        let now = Instant::now();
        Router {
            config,
            service,
            input,
            input_open: true,
            budget,
            delivery,
            stats,
            drain,
            draining: false,
            topology: None,
            lanes: Vec::new(),
            lane_by_shard: HashMap::new(),
            in_flight: JoinSet::new(),
            sent: HashMap::new(),
            refresh: Refresh::new(now),
            unverified: Vec::new(),
            alerts,
            wake_at: None,
            cursor: 0,
            spread: None,
            filling: None,
            record_limit,
            limit_known: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Whether the record limit includes the stream's yet, shared.
    pub fn limit_known(&self) -> Arc<tokio::sync::watch::Sender<bool>> {
        self.limit_known.clone()
    }

    /// The record limit applied now, shared.
    pub fn record_limit(&self) -> Arc<AtomicUsize> {
        self.record_limit.clone()
    }

    /// Whether calls are failing, shared.
    pub fn health(&self) -> Health {
        self.alerts.health()
    }

    fn failure_backoff(&self) -> Backoff {
        Backoff {
            base: self.config.retry_base,
            cap: self.config.retry_max,
        }
    }

    pub async fn run(mut self) {
        self.alerts.register_metrics();
        loop {
            let now = Instant::now();
            self.refresh
                .start_if_due(&self.service, &self.config.stream, now);
            let wake = self.next_wake(now);
            let accepting = self.input_open && self.topology.is_some();
            let refreshing = self.refresh.is_running();
            tokio::select! {
                Some(joined) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    match joined {
                        Ok((id, answer)) => self.judge(id, answer),
                        Err(error) => self.sender_failed(error),
                    }
                }
                listed = self.refresh.finished(), if refreshing => self.apply_refresh(listed),
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
            self.delivery.flush().await;
            self.alerts.emit_due(now);
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
        if let Some(due) = self.refresh.due() {
            wake = wake.min(due);
        }
        wake.max(now + Duration::from_millis(1))
    }

    fn accept_all(&mut self, inputs: Inputs<T>, now: Instant) {
        self.delivery.hold(inputs.permits());
        // Counted once per batch: two shared counters moved per record showed in profiles.
        ProducerStats::add(&self.stats.user_records, inputs.len() as u64);
        ProducerStats::add(&self.stats.user_bytes, inputs.kinesis_bytes() as u64);
        match inputs {
            Inputs::One(input) => {
                if input.record.is_spread() {
                    let pool = self.spread.clone();
                    self.accept_spread(input, pool.as_deref(), &mut rand::rng(), now);
                } else {
                    let hash_key = input
                        .record
                        .explicit_hash_key
                        .unwrap_or_else(|| input.record.hash_key());
                    self.accept(input, hash_key, None, now);
                }
            }
            Inputs::Many(batch) => {
                let hash_keys = self.hash_keys(&batch.records);
                // Once per batch, not per record: the pool's count and the thread's
                // generator showed in profiles.
                let pool = self.spread.clone();
                let mut rng = rand::rng();
                let Batch {
                    records,
                    received,
                    budget_total,
                    ..
                } = batch;
                for ((record, token), hash_key) in records.into_iter().zip(hash_keys) {
                    let input = Input {
                        size: record_permits(&record, budget_total) as usize,
                        record,
                        token,
                        received,
                    };
                    match hash_key {
                        Some(hash_key) => self.accept(input, hash_key, None, now),
                        None => self.accept_spread(input, pool.as_deref(), &mut rng, now),
                    }
                }
            }
        }
        self.seal_under_pressure();
    }

    /// The hash key of every record of a batch that has a key of its own (explicit, or
    /// the MD5 of its partition key, hashed side by side); `None` for records that ask
    /// to be spread, which get theirs as they are routed.
    fn hash_keys(&self, batch: &[(UserRecord, T)]) -> Vec<Option<HashKey>> {
        let mut hash_keys = Vec::with_capacity(batch.len());
        let mut unknown = Vec::new();
        for (index, (record, _)) in batch.iter().enumerate() {
            if record.explicit_hash_key.is_none() && !record.is_spread() {
                unknown.push(index);
            }
            hash_keys.push(record.explicit_hash_key);
        }
        let keys: Vec<&str> = unknown
            .iter()
            .map(|&index| batch[index].0.partition_key.as_str())
            .collect();
        for (index, hash_key) in unknown.iter().zip(HashKey::of_partition_keys(&keys)) {
            hash_keys[*index] = Some(hash_key);
        }
        hash_keys
    }

    /// A record that only asks to be spread goes to the lane being filled, with one of
    /// that shard's pool keys (hashed when the pool was built), until the lane's
    /// aggregate is full; then that aggregate is sealed and another lane is filled.
    /// Aggregates are full however many shards there are, and the budget is held by
    /// one open aggregate rather than one per shard. A record the pool cannot serve (a
    /// shard too narrow to have keys) gets a fresh random key.
    ///
    /// `pool` is the router's spread pool (`self.spread`), held by the caller so that
    /// the key lent to the aggregate outlives the router's borrow.
    fn accept_spread(
        &mut self,
        mut input: Input<T>,
        pool: Option<&SpreadKeys>,
        rng: &mut impl rand::Rng,
        now: Instant,
    ) {
        let cost = input.record.data.len() + SPREAD_KEY_LEN + FRAMING_SLACK;
        let picked = self
            .fill_lane(cost, rng)
            .and_then(|index| pool?.key_in(index, rng));
        match picked {
            // The pool key is lent, not copied: an aggregate takes it into its key
            // table once (a string per record was a tenth of the routing time).
            Some((key, hash)) => self.accept(input, hash, Some(key), now),
            None => {
                input.record.partition_key = random_key(rng);
                let hash_key = input.record.hash_key();
                self.accept(input, hash_key, None, now);
            }
        }
    }

    /// The lane that a spread record of `cost` bytes goes to. The lane being filled
    /// while its aggregate has room; otherwise that aggregate is sealed and the next
    /// lane is the less backed-up of two shards picked as random keys would pick them
    /// (so idle shards share by hash space and throttled ones are passed over).
    /// `None` without a pool, and when records are not aggregated (each one then picks
    /// a shard on its own).
    fn fill_lane(&mut self, cost: usize, rng: &mut impl rand::Rng) -> Option<usize> {
        let aggregation = self.config.aggregation;
        let pool = self.spread.as_ref()?;
        if !aggregation.enabled || cost > aggregation.max_bytes {
            return Some(pool.pick_shard(rng));
        }
        if let Some(index) = self.filling {
            let lane = self.lanes.get_mut(index)?;
            if lane.room() >= cost {
                return Some(index);
            }
            lane.seal();
        }
        let (first, second) = (pool.pick_shard(rng), pool.pick_shard(rng));
        let backlog = |index: usize| self.lanes.get(index).map_or(usize::MAX, Lane::backlog);
        let index = if backlog(second) < backlog(first) {
            second
        } else {
            first
        };
        self.filling = Some(index);
        Some(index)
    }

    /// Seals every open aggregate when they hold most of the budget and the budget is
    /// nearly spent: records whose keys spread them over many shards fill many
    /// aggregates at once, and waiting for each to fill or linger out would leave the
    /// sources blocked on a budget that only sending can free.
    fn seal_under_pressure(&mut self) {
        let budget = self.config.max_in_flight_bytes;
        if self.budget.available_permits() >= budget / 4 {
            return;
        }
        let open: usize = self.lanes.iter().map(Lane::open_bytes).sum();
        if open < budget / 2 {
            return;
        }
        ProducerStats::add(&self.stats.pressure_seals, 1);
        for lane in &mut self.lanes {
            if lane.open_bytes() > 0 {
                lane.seal();
            }
        }
    }

    /// Takes a record in: checks what Kinesis would refuse, then routes it. `key`,
    /// when given, is its partition key, lent by the spread pool.
    fn accept(&mut self, input: Input<T>, hash_key: HashKey, key: Option<&str>, now: Instant) {
        let mut member = Member {
            hash_key,
            explicit: input.record.explicit_hash_key.is_some(),
            data_len: input.record.data.len() as u32,
            record: Some(input.record),
            token: input.token,
            size: input.size,
            received: input.received,
        };
        let Some(record) = &member.record else { return };
        // Counting characters is only needed when the bytes could exceed the limit.
        let partition_key = key.unwrap_or(&record.partition_key);
        let key_chars = if partition_key.len() <= limits::MAX_PARTITION_KEY_CHARS {
            partition_key.len()
        } else {
            partition_key.chars().count()
        };
        let limit = self.record_limit.load(Ordering::Relaxed);
        let size = record.kinesis_size();
        let refused = if !(1..=limits::MAX_PARTITION_KEY_CHARS).contains(&key_chars) {
            Some(format!(
                "partition key of {key_chars} characters; Kinesis accepts 1 to 256"
            ))
        } else if size > limit {
            Some(format!(
                "record of {size} bytes (partition key + data) exceeds the record limit of {limit} bytes",
            ))
        } else {
            None
        };
        if let Some(reason) = refused {
            member.record = member.record.take().map(|r| with_key(r, key));
            self.delivery.dead_letter(vec![member], &reason);
            return;
        }
        self.route(member, key, now);
    }

    fn route(&mut self, member: Member<T>, key: Option<&str>, now: Instant) {
        let Some(topology) = &self.topology else {
            // Records are only taken in once the shard map is known.
            tracing::error!(
                "a record reached the router before the shard map; it is dropped unacknowledged"
            );
            return;
        };
        let index = topology.open.predict_index(member.hash_key);
        self.lanes[index].add(member, key, &self.config.aggregation, now);
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
                    || (!batch.is_empty() && bytes + size > self.config.max_request_bytes)
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
        let call = self.service.put_records(self.config.stream.clone(), wire);
        let handle = self.in_flight.spawn(call);
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
                        self.route(member, None, now);
                    }
                }
            }
        }
    }

    fn judge(&mut self, id: tokio::task::Id, answer: PutAnswer) {
        let Some((entries, started)) = self.sent.remove(&id) else {
            return;
        };
        let now = Instant::now();
        metrics::histogram!("shardcar_put_records_seconds", "stream" => self.config.stream.clone())
            .record(now.duration_since(started).as_secs_f64());
        match answer {
            Ok(verdicts) => {
                self.alerts.recovered();
                self.judge_entries(entries, verdicts, now)
            }
            Err(failure) => self.judge_request(entries, failure, now),
        }
    }

    fn judge_entries(&mut self, entries: Vec<Entry<T>>, verdicts: Vec<EntryVerdict>, now: Instant) {
        let mut again = Vec::new();
        let mut refresh = false;
        let mut verdicts = verdicts.into_iter();
        for entry in entries {
            let verdict = verdicts.next().unwrap_or(EntryVerdict::Retry {
                code: "MissingResult".into(),
            });
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
                        self.delivery.deliver(entry, &shard_id, &sequence_number);
                    } else {
                        // The map is stale (a reshard). A single record is fine wherever
                        // it landed; an aggregate must lie wholly inside its shard.
                        refresh = true;
                        if entry.members.len() == 1 {
                            self.delivery.deliver(entry, &shard_id, &sequence_number);
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
                    self.alerts
                        .retried("ProvisionedThroughputExceededException", 1);
                    if let Some(lane) = self.lane_mut(&entry.predicted) {
                        lane.throttle.throttled();
                    }
                    again.push(retry_later(entry, Backoff::THROTTLED, now));
                }
                EntryVerdict::Retry { code } => {
                    ProducerStats::add(&self.stats.failed_entries, 1);
                    metrics::counter!("shardcar_retried_entries_total", "stream" => self.config.stream.clone(), "code" => code.clone()).increment(1);
                    self.alerts.retried(&code, 1);
                    again.push(retry_later(entry, self.failure_backoff(), now));
                }
            }
        }
        self.requeue(again);
        if refresh {
            self.refresh.request(now);
        }
    }

    fn judge_request(&mut self, entries: Vec<Entry<T>>, failure: RequestFailure, now: Instant) {
        ProducerStats::add(&self.stats.failed_requests, 1);
        match failure.verdict {
            RequestVerdict::RetryAll { refresh_map, .. } => {
                self.alerts.failing("PutRecords", failure.failure);
                if refresh_map {
                    self.refresh.request(now);
                }
                let backoff = self.failure_backoff();
                let again = entries
                    .into_iter()
                    .map(|e| retry_later(e, backoff, now))
                    .collect();
                self.requeue(again);
            }
            RequestVerdict::Invalid { code, message } => {
                if let [entry] = entries.as_slice()
                    && entry.members.len() > 1
                {
                    // An aggregate refused on its own: its records are tried one by
                    // one, so only the bad one is dead-lettered.
                    tracing::warn!(stream.name = %self.config.stream, code, message, records = entry.members.len(), "an aggregate was refused as invalid; sending its records one by one to find the bad one");
                    for entry in entries {
                        let predicted = entry.predicted.clone();
                        let members = entry.into_members();
                        match self.lane_mut(&predicted) {
                            Some(lane) => lane.requeue_singly(members, now),
                            None => {
                                for member in members {
                                    self.route(member, None, now);
                                }
                            }
                        }
                    }
                } else if entries.len() == 1 {
                    let reason = format!("{code}: {message}");
                    for entry in entries {
                        self.delivery.dead_letter(entry.into_members(), &reason);
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
            let backoff = self.failure_backoff();
            let again = entries
                .into_iter()
                .map(|e| retry_later(e, backoff, now))
                .collect();
            self.requeue(again);
        }
    }

    fn apply_refresh(&mut self, listed: Result<Topology, TopologyError>) {
        let now = Instant::now();
        let topology = match listed {
            Ok(topology) => topology,
            Err(error) => {
                let delay = self.refresh.failed(self.failure_backoff(), now);
                metrics::counter!("shardcar_shard_listing_failures_total", "stream" => self.config.stream.clone()).increment(1);
                let (call, failure) = match error {
                    TopologyError::ListShards(failure) => ("ListShards", failure),
                    TopologyError::DeliveryStream(failure) => ("DescribeDeliveryStream", failure),
                    other => (
                        "ListShards",
                        Failure {
                            trouble: Trouble::Service,
                            code: "ListShards".into(),
                            message: other.to_string(),
                        },
                    ),
                };
                self.alerts.failing(call, failure);
                tracing::debug!(stream.name = %self.config.stream, attempt = self.refresh.failures(), retry_in_ms = delay.as_millis() as u64, "shard listing retried");
                return;
            }
        };
        self.refresh.succeeded();
        self.alerts.recovered();
        ProducerStats::add(&self.stats.map_refreshes, 1);
        let limit = topology
            .max_record_bytes
            .unwrap_or(limits::DEFAULT_MAX_RECORD_BYTES)
            .min(self.config.max_record_bytes);
        if self.record_limit.swap(limit, Ordering::Relaxed) != limit {
            tracing::info!(stream.name = %self.config.stream, bytes = limit, "record limit");
        }
        self.limit_known.send_replace(true);
        metrics::counter!("shardcar_shard_map_refreshes_total", "stream" => self.config.stream.clone()).increment(1);
        let changed = self
            .topology
            .as_ref()
            .is_none_or(|t| t.open != topology.open);
        if changed {
            self.follow_map(topology, now);
        } else {
            self.topology = Some(topology);
        }
        self.verify_landed(now);
    }

    /// Lanes for a new shard map; what the old lanes held goes where it now belongs.
    fn follow_map(&mut self, topology: Topology, now: Instant) {
        tracing::info!(stream.name = %self.config.stream, shards = topology.open.len(), "shard map loaded");
        self.filling = None;
        self.spread = Some(Arc::new(SpreadKeys::new(
            &topology.open,
            KEYS_PER_SHARD,
            &mut rand::rng(),
        )));
        for shard in topology.open.shards() {
            metrics::counter!("shardcar_throttled_entries_total", "stream" => self.config.stream.clone(), "shard" => shard.shard_id.as_str().to_owned()).increment(0);
        }
        let throttle = self.config.throttle;
        let rates = ShardRates {
            records_per_sec: f64::from(throttle.records_per_second_per_shard) * throttle.share,
            bytes_per_sec: f64::from(throttle.bytes_per_second_per_shard) * throttle.share,
            adaptive: throttle.adaptive,
        };
        let (lanes, reroute) = reshard::rebuild_lanes(
            std::mem::take(&mut self.lanes),
            &topology.open,
            &self.config.aggregation,
            || ShardThrottle::new(rates),
            now,
        );
        self.lane_by_shard = lanes
            .iter()
            .enumerate()
            .map(|(i, l)| (l.shard_id.clone(), i))
            .collect();
        self.lanes = lanes;
        self.topology = Some(topology);
        for member in reroute {
            self.route(member, None, now);
        }
    }

    /// Aggregates that landed on an unexpected shard, judged by the listing just
    /// applied (see [`reshard::sort_landed`]).
    fn verify_landed(&mut self, now: Instant) {
        let Some(topology) = &self.topology else {
            return;
        };
        let sorted = reshard::sort_landed(
            std::mem::take(&mut self.unverified),
            topology,
            self.refresh.started(),
        );
        for landed in sorted.deliver {
            self.delivery
                .deliver(landed.entry, &landed.shard_id, &landed.sequence_number);
        }
        if !sorted.wait.is_empty() {
            self.unverified = sorted.wait;
            self.refresh.request(now);
        }
        for entry in sorted.resend {
            ProducerStats::add(&self.stats.misrouted_aggregates, 1);
            tracing::warn!(stream.name = %self.config.stream, records = entry.members.len(), "an aggregate landed across a reshard boundary; its records are sent again on the new shards");
            for member in entry.into_members() {
                self.route(member, None, now);
            }
        }
    }
}

fn retry_later<T>(mut entry: Entry<T>, backoff: Backoff, now: Instant) -> Entry<T> {
    entry.attempts += 1;
    entry.not_before = now + backoff.delay(entry.attempts);
    entry
}

/// A router that stops, normally or aborted at the end of a shutdown grace period,
/// returns the budget of the records that wait in its input ([`Delivery`] returns
/// that of the records it holds), so producers that share the budget get it.
impl<T, S> Drop for Router<T, S> {
    fn drop(&mut self) {
        // Closed first: a sender that had not handed its records over gets them back
        // with an error and returns their budget itself.
        self.input.close();
        let mut queued = 0;
        while let Ok(inputs) = self.input.try_recv() {
            queued += inputs.permits();
        }
        if queued > 0 {
            self.budget.add_permits(queued);
        }
    }
}
