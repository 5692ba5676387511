//! One shard's lane: the aggregate being filled, the entries ready to send, and the
//! shard's throttle. A delivery stream is one lane, its records packed end to end
//! ([`Packer`]).

use std::collections::VecDeque;

use tokio::time::Instant;

use super::packer::{self, Packer};
use super::throttle::ShardThrottle;
use crate::config::AggregationConfig;
use crate::kinesis::aggregation::deaggregate;
use crate::kinesis::aggregation::{Pushed, Sealed, complete_all};
use crate::kinesis::{HashKey, KinesisRecord, UserRecord};

/// A user record the producer holds until its outcome is known.
#[derive(Debug)]
pub struct Member<T> {
    /// The record itself until a lane takes it; from then on the aggregator or the
    /// entry holds the only copy, and [`Entry::into_members`] recovers it when needed.
    pub record: Option<UserRecord>,
    /// Where it routes (explicit hash key, else MD5 of its partition key).
    pub hash_key: HashKey,
    /// Whether `hash_key` was given explicitly (so a recovered record keeps it).
    pub explicit: bool,
    /// The record's data length, by which a packed Firehose record is cut back into
    /// its records (it sits in padding: the member is no larger for it).
    pub data_len: u32,
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
    /// The members with their records, recovered from the entry's record (re-routing
    /// and dead-lettering are rare; holding every record twice is not).
    pub fn into_members(self) -> Vec<Member<T>> {
        if self.members.iter().all(|m| m.record.is_some()) {
            return self.members;
        }
        if packer::is_concatenated(&self.record) {
            let lengths: Vec<usize> = self.members.iter().map(|m| m.data_len as usize).collect();
            let records = packer::split(&self.record.data, lengths);
            return self
                .members
                .into_iter()
                .zip(records)
                .map(|(mut member, record)| {
                    member.record = member.record.or(Some(record));
                    member
                })
                .collect();
        }
        if !self.record.is_aggregated() {
            // Sent raw: the entry's record is its one member's record.
            let KinesisRecord {
                partition_key,
                data,
                ..
            } = self.record;
            return self
                .members
                .into_iter()
                .map(|mut member| {
                    member.record = member.record.or_else(|| {
                        Some(UserRecord {
                            partition_key: partition_key.clone(),
                            explicit_hash_key: member.explicit.then_some(member.hash_key),
                            data: data.clone(),
                        })
                    });
                    member
                })
                .collect();
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

/// `record` with `key` as its partition key, when one is given.
pub fn with_key(mut record: UserRecord, key: Option<&str>) -> UserRecord {
    if let Some(key) = key {
        record.partition_key = key.to_owned();
    }
    record
}

#[derive(Debug)]
pub struct Lane<T> {
    pub shard_id: String,
    packer: Packer,
    members: Vec<Member<T>>,
    /// Members of the last aggregate sealed: the next one's list starts at that size
    /// rather than growing (and being copied) through every power of two.
    expected_members: usize,
    opened_at: Option<Instant>,
    /// Closed aggregates waiting for their MD5 trailers, which [`Lane::complete_sealed`]
    /// computes for every lane at once.
    sealed: Vec<(Sealed, Vec<Member<T>>)>,
    /// Entries ready to send, in order.
    pub queue: VecDeque<Entry<T>>,
    pub throttle: ShardThrottle,
}

impl<T> Lane<T> {
    pub fn new(shard_id: &str, aggregation: &AggregationConfig, throttle: ShardThrottle) -> Self {
        Lane {
            shard_id: shard_id.to_owned(),
            packer: Packer::new(aggregation),
            members: Vec::new(),
            expected_members: 0,
            opened_at: None,
            sealed: Vec::new(),
            queue: VecDeque::new(),
            throttle,
        }
    }

    /// Adds a record: into the open aggregate, or alone when aggregation is off or it
    /// is larger than an aggregate may be. `key`, when given, is the record's partition
    /// key (a spread record's pool key): an aggregate holds it in its key table, and
    /// only a record sent alone gets a string of its own.
    pub fn add(
        &mut self,
        mut member: Member<T>,
        key: Option<&str>,
        aggregation: &AggregationConfig,
        now: Instant,
    ) {
        let Some(record) = member.record.take() else {
            tracing::error!("a record without data reached a lane; it cannot be sent");
            return;
        };
        if !aggregation.enabled || record.kinesis_size() > aggregation.max_bytes {
            self.queue_alone(with_key(record, key), member);
            return;
        }
        // The aggregator takes the record's only copy; sealing gives it back when the
        // aggregate turns out to hold this one record alone.
        match self.packer.push(record, key) {
            Ok(Pushed::Added) => {
                if self.members.capacity() == 0 {
                    // Only once a record comes: most of 500 lanes can be idle.
                    self.members.reserve_exact(self.expected_members);
                }
                self.members.push(member);
                self.opened_at.get_or_insert(now);
                if self.members.len() >= aggregation.max_records {
                    self.seal();
                }
            }
            Ok(Pushed::Full(record)) => {
                self.seal();
                member.record = Some(record);
                self.add(member, key, aggregation, now);
            }
            Err(refused) => {
                // Cannot happen (the size was checked above); send it alone anyway.
                self.queue_alone(with_key(refused.record, key), member);
            }
        }
    }

    /// Queues a record as a Kinesis record of its own, the entry holding its only copy,
    /// behind the aggregates sealed before it.
    fn queue_alone(&mut self, record: UserRecord, member: Member<T>) {
        let kinesis = KinesisRecord::single_routed(record, member.hash_key);
        self.sealed.push((Sealed::from(kinesis), vec![member]));
    }

    /// Puts records back at the front of the queue, each as a Kinesis record of its
    /// own sent in a call of its own: how the records of an aggregate refused as
    /// invalid are tried one by one, so that only a bad one is dead-lettered.
    pub fn requeue_singly(&mut self, members: Vec<Member<T>>, now: Instant) {
        for mut member in members.into_iter().rev() {
            let Some(record) = member.record.take() else {
                tracing::error!("a record without data was put back in a lane; it cannot be sent");
                continue;
            };
            let kinesis = KinesisRecord::single_routed(record, member.hash_key);
            let mut entry = Entry::new(kinesis, vec![member], &self.shard_id, now);
            entry.alone = true;
            self.queue.push_front(entry);
        }
    }

    /// Closes the open aggregate; it is queued once [`Lane::complete_sealed`] has
    /// hashed it.
    pub fn seal(&mut self) {
        self.opened_at = None;
        let members = std::mem::take(&mut self.members);
        self.expected_members = members.len();
        if let Some(sealed) = self.packer.seal() {
            self.sealed.push((sealed, members));
        }
    }

    /// Hashes the sealed aggregates of all `lanes` in one batch and queues them behind
    /// the entries already queued.
    pub fn complete_sealed(lanes: &mut [Lane<T>], now: Instant) {
        let (sealed, owners): (Vec<Sealed>, Vec<_>) = lanes
            .iter_mut()
            .enumerate()
            .flat_map(|(index, lane)| lane.sealed.drain(..).map(move |(s, m)| (s, (index, m))))
            .unzip();
        for (record, (index, members)) in complete_all(sealed).into_iter().zip(owners) {
            let lane = &mut lanes[index];
            lane.queue
                .push_back(Entry::new(record, members, &lane.shard_id, now));
        }
    }

    /// Bytes the open aggregate can still take (see [`Packer::room`]).
    pub fn room(&self) -> usize {
        self.packer.room()
    }

    /// Bytes (partition key + data, framed) held in the open aggregate.
    pub fn open_bytes(&self) -> usize {
        self.packer.kinesis_size()
    }

    /// Entries waiting to be sent: a lane that cannot send as fast as it is given
    /// records (its shard throttled, its calls failing) has more.
    pub fn backlog(&self) -> usize {
        self.queue.len() + self.sealed.len()
    }

    /// When the open aggregate must go out even if not full.
    pub fn linger_deadline(&self, aggregation: &AggregationConfig) -> Option<Instant> {
        self.opened_at.map(|t| t + aggregation.linger)
    }

    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.sealed.is_empty() && self.queue.is_empty()
    }

    /// Everything not yet sent: open-aggregate members (with their records given back)
    /// and queued entries.
    pub fn take_unsent(&mut self, now: Instant) -> (Vec<Member<T>>, Vec<Entry<T>>) {
        self.opened_at = None;
        Lane::complete_sealed(std::slice::from_mut(self), now);
        let records = self.packer.take_records();
        let mut members = std::mem::take(&mut self.members);
        for (member, record) in members.iter_mut().zip(records) {
            member.record = Some(record);
        }
        (members, self.queue.drain(..).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::producer::throttle::ShardRates;

    fn lane(aggregate: bool) -> (Lane<u32>, AggregationConfig) {
        let aggregation = AggregationConfig {
            enabled: aggregate,
            format: crate::config::PackFormat::Kpl,
            max_bytes: 51_200,
            max_records: 10_000,
            linger: Duration::from_millis(100),
        };
        let rates = ShardRates {
            records_per_sec: 1000.0,
            bytes_per_sec: 1_048_576.0,
            adaptive: false,
        };
        let lane = Lane::new(
            "shardId-000000000000",
            &aggregation,
            ShardThrottle::new(rates),
        );
        (lane, aggregation)
    }

    fn member(record: UserRecord, token: u32) -> Member<u32> {
        Member {
            hash_key: record.hash_key(),
            explicit: record.explicit_hash_key.is_some(),
            data_len: record.data.len() as u32,
            record: Some(record),
            token,
            size: 1,
            received: Instant::now(),
        }
    }

    /// Sealed aggregates wait, unsendable but not idle, until one batch completes the
    /// aggregates of every lane; each lane then queues its own, in the order sealed.
    #[tokio::test]
    async fn sealed_aggregates_queue_in_order_once_completed_together() {
        let (mut first, aggregation) = lane(true);
        let (mut second, _) = lane(true);
        let now = Instant::now();
        let mut expected = vec![Vec::new(), Vec::new()];
        for round in 0..3u32 {
            for (index, lane) in [&mut first, &mut second].into_iter().enumerate() {
                let records: Vec<UserRecord> = (0..4)
                    .map(|i| UserRecord::new(format!("k{i}"), format!("{index}/{round}/{i}")))
                    .collect();
                for (i, record) in records.iter().enumerate() {
                    lane.add(member(record.clone(), i as u32), None, &aggregation, now);
                }
                lane.seal();
                expected[index].push(records);
            }
        }
        assert!(first.queue.is_empty() && !first.is_idle());
        let mut lanes = [first, second];
        Lane::complete_sealed(&mut lanes, now);
        for (lane, expected) in lanes.iter_mut().zip(expected) {
            let queued: Vec<Vec<UserRecord>> = lane
                .queue
                .drain(..)
                .map(|entry| {
                    entry
                        .into_members()
                        .into_iter()
                        .filter_map(|m| m.record)
                        .collect()
                })
                .collect();
            assert_eq!(queued, expected, "{}", lane.shard_id);
            assert!(lane.is_idle());
        }
    }

    /// Whatever way a record went out, the lane keeps one copy of it and an entry
    /// gives every record back whole.
    #[tokio::test]
    async fn entries_give_their_records_back_whole() {
        let mut with_key = UserRecord::new("b", "two");
        with_key.explicit_hash_key = Some(HashKey(42));
        let sent = [UserRecord::new("a", "one"), with_key];
        for aggregate in [false, true] {
            let (mut lane, aggregation) = lane(aggregate);
            let now = Instant::now();
            for (token, record) in sent.iter().enumerate() {
                lane.add(
                    member(record.clone(), token as u32),
                    None,
                    &aggregation,
                    now,
                );
            }
            lane.seal();
            Lane::complete_sealed(std::slice::from_mut(&mut lane), now);
            let mut back = Vec::new();
            for entry in lane.queue.drain(..) {
                assert!(entry.members.iter().all(|m| m.record.is_none()));
                back.extend(entry.into_members());
            }
            let records: Vec<UserRecord> = back.into_iter().filter_map(|m| m.record).collect();
            assert_eq!(records, sent, "aggregation {aggregate}");
        }
    }
}
