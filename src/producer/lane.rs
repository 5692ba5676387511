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
    pub fn add(&mut self, member: Member<T>, aggregation: &AggregationConfig, now: Instant) {
        let Some(record) = member.record.clone() else {
            tracing::error!("a record without data reached a lane; it cannot be sent");
            return;
        };
        if !aggregation.enabled || record.kinesis_size() > aggregation.max_bytes {
            let record = KinesisRecord::single(record);
            self.queue
                .push_back(Entry::new(record, vec![member], &self.shard_id, now));
            return;
        }
        match self.aggregator.push(record) {
            Ok(Pushed::Added) => {
                self.members.push(member);
                self.opened_at.get_or_insert(now);
                if self.members.len() >= aggregation.max_records {
                    self.seal(now);
                }
            }
            Ok(Pushed::Full(_)) => {
                self.seal(now);
                self.add(member, aggregation, now);
            }
            Err(refused) => {
                // Cannot happen (the size was checked above); send it alone anyway.
                let record = KinesisRecord::single(refused.record);
                self.queue
                    .push_back(Entry::new(record, vec![member], &self.shard_id, now));
            }
        }
    }

    /// Closes the open aggregate and queues it.
    pub fn seal(&mut self, now: Instant) {
        self.opened_at = None;
        let mut members = std::mem::take(&mut self.members);
        if let Some(record) = self.aggregator.finish() {
            if record.is_aggregated() {
                // The aggregate now holds the bytes; keeping them twice would double memory.
                for member in &mut members {
                    member.record = None;
                }
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

    /// Everything not yet sent: open-aggregate members and queued entries.
    pub fn take_unsent(&mut self) -> (Vec<Member<T>>, Vec<Entry<T>>) {
        let _ = self.aggregator.finish();
        self.opened_at = None;
        (
            std::mem::take(&mut self.members),
            self.queue.drain(..).collect(),
        )
    }
}
