//! One shard's lane: the aggregate being filled, the entries ready to send, and the
//! shard's throttle.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::throttle::ShardThrottle;
use crate::config::AggregationConfig;
use crate::kinesis::aggregation::{Aggregator, Pushed};
use crate::kinesis::{KinesisRecord, UserRecord};

/// A user record the producer holds until its outcome is known.
#[derive(Debug)]
pub struct Member<T> {
    pub record: UserRecord,
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
        if !aggregation.enabled || member.record.kinesis_size() > aggregation.max_bytes {
            let record = KinesisRecord::single(member.record.clone());
            self.queue
                .push_back(Entry::new(record, vec![member], &self.shard_id, now));
            return;
        }
        match self.aggregator.push(member.record.clone()) {
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
            Err(_) => {
                // Cannot happen (the size was checked above); send it alone anyway.
                let record = KinesisRecord::single(member.record.clone());
                self.queue
                    .push_back(Entry::new(record, vec![member], &self.shard_id, now));
            }
        }
    }

    /// Closes the open aggregate and queues it.
    pub fn seal(&mut self, now: Instant) {
        self.opened_at = None;
        let members = std::mem::take(&mut self.members);
        if let Some(record) = self.aggregator.finish() {
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
