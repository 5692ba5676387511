//! One shard's lane: the aggregate being filled, the entries ready to send, and the
//! shard's throttle.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::throttle::ShardThrottle;
use crate::config::AggregationConfig;
use crate::kinesis::aggregation::deaggregate;
use crate::kinesis::aggregation::{Aggregator, Pushed};
use crate::kinesis::{HashKey, KinesisRecord, UserRecord};

/// A user record the producer holds until its outcome is known.
#[derive(Debug)]
pub struct Member<T> {
    /// The record itself until it is sealed into an aggregate; then the aggregate holds
    /// the only copy of its bytes, and [`Entry::into_members`] recovers it when needed.
    pub record: Option<UserRecord>,
    /// Where it routes (explicit hash key, else MD5 of its partition key).
    pub hash_key: HashKey,
    /// Whether `hash_key` was given explicitly (so a recovered record keeps it).
    pub explicit: bool,
    pub token: T,
    /// Bytes of in-flight budget it holds.
    pub size: usize,
    pub received: Instant,
}

/// One PutRecords entry and the user records inside it.
#[derive(Debug)]
pub struct Entry<T> {
    pub record: KinesisRecord,
    pub members: Vec<Member<T>>,
    /// The shard it was built for.
    pub predicted: String,
    pub attempts: u32,
    pub not_before: Instant,
    /// Send in a request of its own (to find which entry a request was refused for).
    pub alone: bool,
}

impl<T> Entry<T> {
    /// The members with their records, recovered from the aggregate if they were
    /// dropped at sealing (re-routing and dead-lettering are rare; memory is not).
    pub fn into_members(self) -> Vec<Member<T>> {
        if self.members.iter().all(|m| m.record.is_some()) {
            return self.members;
        }
        let recovered = deaggregate(&self.record.partition_key, &self.record.data).records;
        self.members
            .into_iter()
            .zip(
                recovered
                    .into_iter()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None)),
            )
            .map(|(mut member, record)| {
                member.record = member.record.or(record);
                member
            })
            .collect()
    }

    fn new(record: KinesisRecord, members: Vec<Member<T>>, predicted: &str, now: Instant) -> Self {
        Entry {
            record,
            members,
            predicted: predicted.to_owned(),
            attempts: 0,
            not_before: now,
            alone: false,
        }
    }
}

#[derive(Debug)]
pub struct Lane<T> {
    pub shard_id: String,
    aggregator: Aggregator,
    members: Vec<Member<T>>,
    opened_at: Option<Instant>,
    pub queue: VecDeque<Entry<T>>,
    pub throttle: ShardThrottle,
}

impl<T> Lane<T> {
    pub fn new(shard_id: &str, aggregation: &AggregationConfig, throttle: ShardThrottle) -> Self {
        Lane {
            shard_id: shard_id.to_owned(),
            aggregator: Aggregator::new(aggregation.max_bytes),
            members: Vec::new(),
            opened_at: None,
            queue: VecDeque::new(),
            throttle,
        }
    }

    /// Adds a record: into the open aggregate, or alone when aggregation is off or it
    /// is larger than an aggregate may be.
    pub fn add(&mut self, mut member: Member<T>, aggregation: &AggregationConfig, now: Instant) {
        let Some(record) = member.record.take() else {
            tracing::error!("a record without data reached a lane; it cannot be sent");
            return;
        };
        if !aggregation.enabled || record.kinesis_size() > aggregation.max_bytes {
            self.queue_alone(record, member, now);
            return;
        }
        // The aggregator takes the record's only copy; sealing gives it back when the
        // aggregate turns out to hold this one record alone.
        match self.aggregator.push(record) {
            Ok(Pushed::Added) => {
                self.members.push(member);
                self.opened_at.get_or_insert(now);
                if self.members.len() >= aggregation.max_records {
                    self.seal(now);
                }
            }
            Ok(Pushed::Full(record)) => {
                self.seal(now);
                member.record = Some(record);
                self.add(member, aggregation, now);
            }
            Err(refused) => {
                // Cannot happen (the size was checked above); send it alone anyway.
                self.queue_alone(refused.record, member, now);
            }
        }
    }

    /// Queues a record as a Kinesis record of its own, keeping it in its member (a
    /// record sent alone has no aggregate to recover it from).
    fn queue_alone(&mut self, record: UserRecord, mut member: Member<T>, now: Instant) {
        let kinesis = KinesisRecord::single_routed(record.clone(), member.hash_key);
        member.record = Some(record);
        self.queue
            .push_back(Entry::new(kinesis, vec![member], &self.shard_id, now));
    }

    /// Closes the open aggregate and queues it.
    pub fn seal(&mut self, now: Instant) {
        self.opened_at = None;
        let mut members = std::mem::take(&mut self.members);
        if let Some(record) = self.aggregator.finish() {
            if !record.is_aggregated()
                && let [only] = members.as_mut_slice()
            {
                // One record goes out raw: it is its own copy.
                only.record = Some(UserRecord {
                    partition_key: record.partition_key.clone(),
                    explicit_hash_key: only.explicit.then_some(only.hash_key),
                    data: record.data.clone(),
                });
            }
            self.queue
                .push_back(Entry::new(record, members, &self.shard_id, now));
        }
    }

    /// When the open aggregate must go out even if not full.
    pub fn linger_deadline(&self, aggregation: &AggregationConfig) -> Option<Instant> {
        self.opened_at.map(|t| t + aggregation.linger)
    }

    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.queue.is_empty()
    }

    /// Everything not yet sent: open-aggregate members (with their records given back)
    /// and queued entries.
    pub fn take_unsent(&mut self) -> (Vec<Member<T>>, Vec<Entry<T>>) {
        self.opened_at = None;
        let records = self.aggregator.take_records();
        let mut members = std::mem::take(&mut self.members);
        for (member, record) in members.iter_mut().zip(records) {
            member.record = Some(record);
        }
        (members, self.queue.drain(..).collect())
    }
}
