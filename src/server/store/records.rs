//! Data plane: writing records, shard iterators and reading records back.

use std::sync::Arc;

use rand::RngExt;

use super::Store;
use super::iterator::IteratorToken;
use super::log::{Position, StoredRecord};
use super::sequence;
use super::stream::{Shard, Stream, lock};
use crate::kinesis::{HashKey, ShardId, limits};
use crate::server::clock::{Millis, format_utc};
use crate::server::error::{KinesisError, OpResult};
use crate::server::limits::InjectedFault;

/// Where a new shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    TrimHorizon,
    Latest,
    AtSequence(String),
    AfterSequence(String),
    AtTimestamp(Millis),
}

/// A record accepted by a shard.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub shard: Arc<Shard>,
    pub sequence_number: String,
}

/// A shard whose parent (or adjacent parent) is the shard just read to its end.
#[derive(Debug, Clone)]
pub struct ChildShard {
    pub shard_id: ShardId,
    pub parents: Vec<ShardId>,
    pub range: crate::kinesis::HashKeyRange,
}

#[derive(Debug)]
pub struct GetRecordsOutput {
    pub records: Vec<(String, StoredRecord)>,
    /// `None` once a closed shard has been read to its end.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: Millis,
    pub child_shards: Option<Vec<ChildShard>>,
}

impl Store {
    fn throughput_error(&self, shard: &ShardId, stream: &str) -> KinesisError {
        KinesisError::throughput_exceeded(format!(
            "Rate exceeded for shard {shard} in stream {stream} under account {}.",
            self.account_id()
        ))
    }

    /// Writes one record to the open shard that owns `hash_key`, within the shard's limits.
    pub fn put(
        &self,
        stream: &Stream,
        partition_key: &str,
        hash_key: HashKey,
        data: &[u8],
    ) -> OpResult<PutOutcome> {
        let faults = self.config().faults;
        if faults.is_active() {
            match faults.decide(rand::rng().random::<f64>()) {
                InjectedFault::None => {}
                InjectedFault::Throttle => {
                    let open = stream.open_shards();
                    return Err(self.throughput_error(&open.route(hash_key).id, &stream.name));
                }
                InjectedFault::Internal => {
                    return Err(KinesisError::internal("Internal service failure."));
                }
            }
            if self.take_drop() {
                // Answer success without storing: a deliberately lossy server.
                let open = stream.open_shards();
                let shard = open.route(hash_key).clone();
                let position = lock(&shard.state).log.next_position();
                return Ok(PutOutcome {
                    sequence_number: sequence::format(
                        shard.index,
                        shard.created_ms,
                        position,
                        self.now_ms(),
                    ),
                    shard,
                });
            }
        }
        let size = partition_key.len() + data.len();
        // A reshard can close the routed shard between the lookup and the lock; the
        // next snapshot of the open shards then routes to its child.
        for _ in 0..1000 {
            let open = stream.open_shards();
            let shard = open.route(hash_key);
            let now = self.now_ms();
            let mut state = lock(&shard.state);
            if state.closed.is_some() {
                drop(state);
                std::thread::yield_now();
                continue;
            }
            if self.config().limits && !state.limits.admit_write(size, now) {
                return Err(self.throughput_error(&shard.id, &stream.name));
            }
            let sealing = stream.sealing();
            let (position, arrival_ms) = state.log.append_sealed(partition_key, data, now, sealing);
            if let Some(file) = state.file.as_mut() {
                file.append(partition_key, data, arrival_ms, sealing)
                    .map_err(|e| {
                        KinesisError::internal(format!("Internal service failure: {e}"))
                    })?;
            }
            drop(state);
            shard.announce_append();
            return Ok(PutOutcome {
                shard: shard.clone(),
                sequence_number: sequence::format(
                    shard.index,
                    shard.created_ms,
                    position,
                    arrival_ms,
                ),
            });
        }
        Err(KinesisError::internal(
            "Internal service failure: the stream is resharding",
        ))
    }

    /// Hands the buffered writes of these shards to the OS before a response is sent,
    /// so an acknowledged record survives the server being killed.
    pub fn flush(&self, shards: &[Arc<Shard>]) -> OpResult<()> {
        for shard in shards {
            if let Some(file) = lock(&shard.state).file.as_mut() {
                file.flush().map_err(|e| {
                    KinesisError::internal(format!("Internal service failure: {e}"))
                })?;
            }
        }
        Ok(())
    }

    /// Records that arrived before this time have outlived the stream's retention.
    /// Reads trim first, so expired records go without waiting for the periodic sweep.
    fn retention_cutoff(&self, stream: &Stream) -> Millis {
        self.now_ms() - i64::from(lock(&stream.state).retention_hours) * 3_600_000
    }

    fn shard_by_id(&self, stream: &Stream, shard_id: &str) -> OpResult<Arc<Shard>> {
        let Some(index) = ShardId::resolve_index(shard_id) else {
            return Err(KinesisError::not_found(format!(
                "Could not find shard {shard_id} in stream {} under account {}.",
                stream.name,
                self.account_id()
            )));
        };
        stream.shard(index).ok_or_else(|| {
            KinesisError::not_found(format!(
                "Shard {} in stream {} under account {} does not exist",
                ShardId::from_index(u64::from(index)),
                stream.name,
                self.account_id()
            ))
        })
    }

    pub fn shard_iterator(
        &self,
        stream_name: &str,
        shard_id: &str,
        start: IteratorStart,
    ) -> OpResult<String> {
        // Kinesis names the shard, not the stream, when the stream is missing.
        let stream =
            self.readable_stream(stream_name).map_err(|error| {
                match ShardId::resolve_index(shard_id) {
                    Some(index)
                        if error.kind == crate::server::error::ErrorKind::ResourceNotFound =>
                    {
                        KinesisError::not_found(format!(
                            "Shard {} in stream {stream_name} under account {} does not exist",
                            ShardId::from_index(u64::from(index)),
                            self.account_id()
                        ))
                    }
                    _ => error,
                }
            })?;
        let shard = self.shard_by_id(&stream, shard_id)?;
        let cutoff = self.retention_cutoff(&stream);
        let mut state = lock(&shard.state);
        state.log.trim_before(cutoff);
        let end = state.log.next_position();
        let position = match start {
            IteratorStart::TrimHorizon => state.log.first_position(),
            IteratorStart::Latest => end,
            IteratorStart::AtTimestamp(ms) => state.log.position_at_timestamp(ms),
            IteratorStart::AtSequence(ref text) | IteratorStart::AfterSequence(ref text) => {
                let Some((index, position)) = sequence::parse(text) else {
                    return Err(KinesisError::invalid_argument(format!(
                        "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {stream_name} under account {} is invalid.",
                        shard.id,
                        self.account_id()
                    )));
                };
                if index != shard.index {
                    return Err(KinesisError::invalid_argument(format!(
                        "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                        ShardId::from_index(u64::from(index)),
                        shard.id
                    )));
                }
                let position = if matches!(start, IteratorStart::AfterSequence(_)) {
                    position.saturating_add(1)
                } else {
                    position
                };
                position.clamp(state.log.first_position(), end)
            }
        };
        Ok(IteratorToken {
            stream: stream.name.clone(),
            stream_created_ms: stream.created_ms,
            shard_index: shard.index,
            position,
            issued_ms: self.now_ms(),
        }
        .encode())
    }

    pub fn get_records(&self, iterator: &str, limit: usize) -> OpResult<GetRecordsOutput> {
        self.read_records(iterator, limit, true)
    }

    /// Reads as GetRecords does; `metered` charges the shard's read limits (a
    /// SubscribeToShard push has its own 2 MiB/s per consumer and is not metered).
    pub fn read_records(
        &self,
        iterator: &str,
        limit: usize,
        metered: bool,
    ) -> OpResult<GetRecordsOutput> {
        let invalid = || KinesisError::invalid_argument("Invalid ShardIterator.");
        let token = IteratorToken::decode(iterator).ok_or_else(invalid)?;
        let now = self.now_ms();
        let ttl = limits::SHARD_ITERATOR_TTL.as_millis() as i64;
        if now - token.issued_ms > ttl {
            return Err(KinesisError::expired_iterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl} milliseconds.",
                format_utc(token.issued_ms),
                format_utc(now)
            )));
        }
        let shard_id = ShardId::from_index(u64::from(token.shard_index));
        let missing = || {
            KinesisError::not_found(format!(
                "Shard {shard_id} in stream {} under account {} does not exist",
                token.stream,
                self.account_id()
            ))
        };
        let stream = self.readable_stream(&token.stream).map_err(|_| missing())?;
        if stream.created_ms != token.stream_created_ms {
            return Err(missing());
        }
        let shard = stream.shard(token.shard_index).ok_or_else(missing)?;

        let cutoff = self.retention_cutoff(&stream);
        let mut state = lock(&shard.state);
        state.log.trim_before(cutoff);
        if metered && self.config().limits && !state.limits.admit_read(now) {
            return Err(self.throughput_error(&shard.id, &stream.name));
        }
        let records = state
            .log
            .read(token.position, limit, limits::GET_RECORDS_MAX_BYTES);
        let bytes: usize = records
            .iter()
            .map(|r| r.partition_key.len() + r.data.len())
            .sum();
        if metered && self.config().limits {
            state.limits.charge_read(bytes);
        }
        let next_position: Position = records
            .last()
            .map_or(token.position.max(state.log.first_position()), |r| {
                r.position + 1
            });
        let millis_behind_latest = if next_position >= state.log.next_position() {
            0
        } else {
            state
                .log
                .read(next_position, 1, 0)
                .first()
                .map_or(0, |r| (now - r.arrival_ms).max(0))
        };
        let finished = state
            .closed
            .is_some_and(|c| next_position >= c.end_position);
        drop(state);

        let (next_iterator, child_shards) = if finished {
            (None, Some(self.child_shards(&stream, &shard.id)))
        } else {
            let next = IteratorToken {
                position: next_position,
                issued_ms: now,
                ..token
            };
            (Some(next.encode()), None)
        };
        Ok(GetRecordsOutput {
            records: records
                .into_iter()
                .map(|r| {
                    let number =
                        sequence::format(shard.index, shard.created_ms, r.position, r.arrival_ms);
                    (number, r)
                })
                .collect(),
            next_iterator,
            millis_behind_latest,
            child_shards,
        })
    }

    fn child_shards(&self, stream: &Stream, parent: &ShardId) -> Vec<ChildShard> {
        let shards = lock(&stream.state).shards.clone();
        shards
            .iter()
            .filter(|s| {
                s.parent.as_ref() == Some(parent) || s.adjacent_parent.as_ref() == Some(parent)
            })
            .map(|s| ChildShard {
                shard_id: s.id.clone(),
                parents: s
                    .parent
                    .iter()
                    .chain(s.adjacent_parent.iter())
                    .cloned()
                    .collect(),
                range: s.range,
            })
            .collect()
    }
}
