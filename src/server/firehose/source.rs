//! A delivery stream reading a Kinesis stream of this server
//! (`KinesisStreamAsSource`): every shard from its start (or, for the shards open when
//! the delivery stream was created, from their end, if asked), a parent to its end
//! before its children, KPL aggregates cut back into their records (and, as a KCL
//! does, an aggregate dropped whole when a record in it lies outside its shard).
//!
//! The read position (the next record of each shard, or "done" for a shard read to
//! its end) travels with the records in the buffer file, as its marker, so after a
//! restart reading resumes just past the last record the buffer kept.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::kinesis::aggregation::deaggregate_for_shard;
use crate::server::store::Store;
use crate::server::store::stream::lock;

/// Most records read from one shard in one pass.
const READ_AT_MOST: usize = 10_000;
const READ_BYTES_AT_MOST: usize = 10 * 1024 * 1024;

/// Where reading is in each shard, by shard index.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Positions {
    shards: BTreeMap<u32, Next>,
    /// Whether the shards open at creation have been placed (at their start or end).
    placed: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
enum Next {
    /// The position of the next record to read.
    At(u64),
    /// Read to its end (a closed shard).
    Done,
}

/// What one pass read.
#[derive(Debug, Default)]
pub struct Read {
    /// The records, deaggregated, in shard order.
    pub records: Vec<Bytes>,
    /// Whether any position moved (the buffer must keep the new positions).
    pub moved: bool,
}

impl Positions {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Positions> {
        serde_json::from_slice(bytes).ok()
    }

    /// Reads what `stream` holds past the positions, moving them.
    pub fn read(&mut self, store: &Store, stream: &str, from_latest: bool) -> Read {
        let mut read = Read::default();
        let Ok(stream) = store.readable_stream(stream) else {
            return read;
        };
        let shards = lock(&stream.state).shards.clone();
        if !self.placed {
            for shard in &shards {
                let state = lock(&shard.state);
                let next = if from_latest {
                    if state.closed.is_some() {
                        Next::Done
                    } else {
                        Next::At(state.log.next_position())
                    }
                } else {
                    Next::At(state.log.first_position())
                };
                self.shards.insert(shard.index, next);
            }
            self.placed = true;
            read.moved = true;
        }
        let done = |positions: &BTreeMap<u32, Next>, id: &crate::kinesis::ShardId| {
            id.index().is_none_or(|index| {
                positions.get(&(index as u32)) == Some(&Next::Done)
                    || !shards.iter().any(|s| u64::from(s.index) == index)
            })
        };
        for shard in &shards {
            let ready = shard.parent.as_ref().is_none_or(|p| done(&self.shards, p))
                && shard
                    .adjacent_parent
                    .as_ref()
                    .is_none_or(|p| done(&self.shards, p));
            if !ready {
                continue;
            }
            let state = lock(&shard.state);
            let next = match self.shards.get(&shard.index) {
                Some(Next::Done) => continue,
                Some(Next::At(position)) => *position,
                // A child, or a shard that appeared later: from its start.
                None => state.log.first_position(),
            };
            let from = next.max(state.log.first_position());
            let records = state.log.read(from, READ_AT_MOST, READ_BYTES_AT_MOST);
            let after = records.last().map_or(from, |r| r.position + 1);
            let finished = state.closed.is_some_and(|c| after >= c.end_position);
            drop(state);
            for record in &records {
                // As a KCL reads them: an aggregate holding a record outside its shard
                // (written across a reshard, and sent again by its producer) is dropped.
                let (users, _) =
                    deaggregate_for_shard(&record.partition_key, &record.data, shard.range);
                read.records
                    .extend(users.records.into_iter().map(|u| u.data));
            }
            let now = if finished {
                Next::Done
            } else {
                Next::At(after)
            };
            if self.shards.insert(shard.index, now) != Some(now) {
                read.moved = true;
            }
        }
        read
    }
}
