//! SplitShard, MergeShards and UpdateShardCount: close parents, open children.
//!
//! Parents are closed before the new open-shard map is published, so no record for
//! a hash key can land in a parent after one landed in its child: a consumer that
//! reads parents before children sees each key's records in order.

use std::sync::Arc;

use super::Store;
use super::stream::{OpenShards, Shard, Stream, StreamMode, StreamState, lock};
use crate::kinesis::{HashKey, HashKeyRange, ShardId};
use crate::server::error::{KinesisError, OpResult};

/// UpdateShardCount may run this many times per stream in [`SCALING_WINDOW_MS`].
const SCALINGS_PER_WINDOW: usize = 10;
const SCALING_WINDOW_MS: i64 = 24 * 3_600_000;

impl Store {
    pub(super) fn add_shard(
        &self,
        stream: &Stream,
        state: &mut StreamState,
        range: HashKeyRange,
        parents: (Option<ShardId>, Option<ShardId>),
    ) -> OpResult<Arc<Shard>> {
        let shard = Arc::new(Shard::new(
            state.next_shard_index,
            range,
            parents,
            self.now_ms(),
        ));
        state.next_shard_index += 1;
        if let Some(persist) = self.persist() {
            persist
                .attach_shard_file(&stream.name, &shard)
                .map_err(|e| KinesisError::internal(format!("cannot create shard storage: {e}")))?;
        }
        state.shards.push(shard.clone());
        Ok(shard)
    }

    pub(super) fn publish(&self, stream: &Stream) -> OpResult<()> {
        let open: Vec<Arc<Shard>> = lock(&stream.state)
            .shards
            .iter()
            .filter(|s| s.is_open())
            .cloned()
            .collect();
        let open = OpenShards::new(open).map_err(|e| {
            KinesisError::internal(format!("open shards do not cover the key space: {e}"))
        })?;
        stream.set_open_shards(open);
        self.begin_update(stream);
        self.save_metadata()
    }

    fn open_shard(&self, stream: &Stream, shard_id: &str, operation: &str) -> OpResult<Arc<Shard>> {
        let index = ShardId::resolve_index(shard_id);
        let shard = index.and_then(|i| stream.shard(i)).ok_or_else(|| {
            KinesisError::not_found(format!(
                "Could not find shard {shard_id} in stream {} under account {}.",
                stream.name,
                self.account_id()
            ))
        })?;
        if !shard.is_open() {
            return Err(KinesisError::in_use(format!(
                "Shard {} in stream {} under account {} has already been merged or split, and thus is not eligible for {operation}.",
                shard.id,
                stream.name,
                self.account_id()
            )));
        }
        Ok(shard)
    }

    pub fn split_shard(
        &self,
        stream_name: &str,
        shard_id: &str,
        new_starting_hash_key: HashKey,
    ) -> OpResult<()> {
        let (stream, _control) = self.active_stream(stream_name)?;
        let parent = self.open_shard(&stream, shard_id, "splitting")?;
        let range = parent.range;
        let key = new_starting_hash_key.0;
        if key <= range.start.0.saturating_add(1) || key >= range.end.0 {
            return Err(KinesisError::invalid_argument(format!(
                "NewStartingHashKey {key} used in SplitShard() on shard {} in stream {stream_name} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                parent.id,
                self.account_id(),
                range.start,
                range.end
            )));
        }
        self.check_shard_limit(1)?;
        {
            let mut state = lock(&stream.state);
            let parents = (Some(parent.id.clone()), None);
            self.add_shard(
                &stream,
                &mut state,
                HashKeyRange {
                    start: range.start,
                    end: HashKey(key - 1),
                },
                parents.clone(),
            )?;
            self.add_shard(
                &stream,
                &mut state,
                HashKeyRange {
                    start: HashKey(key),
                    end: range.end,
                },
                parents,
            )?;
        }
        parent.close(self.now_ms());
        self.publish(&stream)
    }

    pub fn merge_shards(
        &self,
        stream_name: &str,
        shard_id: &str,
        adjacent_id: &str,
    ) -> OpResult<()> {
        let (stream, _control) = self.active_stream(stream_name)?;
        let first = self.open_shard(&stream, shard_id, "merging")?;
        let second = self.open_shard(&stream, adjacent_id, "merging")?;
        let (low, high) = if first.range.start < second.range.start {
            (&first, &second)
        } else {
            (&second, &first)
        };
        if low.range.end.0.checked_add(1) != Some(high.range.start.0) {
            return Err(KinesisError::invalid_argument(format!(
                "Shards {} and {} in stream {stream_name} under account {} are not an adjacent pair of shards eligible for merging",
                first.id,
                second.id,
                self.account_id()
            )));
        }
        {
            let mut state = lock(&stream.state);
            let range = HashKeyRange {
                start: low.range.start,
                end: high.range.end,
            };
            self.add_shard(
                &stream,
                &mut state,
                range,
                (Some(first.id.clone()), Some(second.id.clone())),
            )?;
        }
        let now = self.now_ms();
        first.close(now);
        second.close(now);
        self.publish(&stream)
    }

    /// Reshards to `target` evenly split shards with a sequence of splits and merges,
    /// as Kinesis does; the intermediate shards exist, closed and empty, so every
    /// shard has at most two parents and consumers can follow the lineage.
    pub fn update_shard_count(&self, stream_name: &str, target: u32) -> OpResult<u32> {
        let (stream, _control) = self.active_stream(stream_name)?;
        if lock(&stream.state).mode == StreamMode::OnDemand {
            return Err(KinesisError::validation(format!(
                "UpdateShardCount is not supported for stream {stream_name} under account {} because it is in ON_DEMAND mode.",
                self.account_id()
            )));
        }
        let current: Vec<Arc<Shard>> = stream.open_shards().shards.clone();
        let count = current.len() as u32;
        let limit_message = |what: &str| {
            KinesisError::invalid_argument(format!(
                "UpdateShardCount failed for stream {stream_name} under account {}. {what} Current open shard count: {count} Target shard count: {target}",
                self.account_id()
            ))
        };
        if target > count.saturating_mul(2) {
            return Err(limit_message(
                "Cannot scale up over double your current open shard count.",
            ));
        }
        if target < count.div_ceil(2) {
            return Err(limit_message(
                "Cannot scale down below half your current open shard count.",
            ));
        }
        if target == count {
            return Ok(count);
        }
        let now = self.now_ms();
        {
            let mut state = lock(&stream.state);
            state.scalings_ms.retain(|at| now - at < SCALING_WINDOW_MS);
            if state.scalings_ms.len() >= SCALINGS_PER_WINDOW {
                return Err(KinesisError::limit_exceeded(format!(
                    "UpdateShardCount failed for stream {stream_name} under account {}. Rate exceeded: a stream may be scaled {SCALINGS_PER_WINDOW} times per rolling 24 hours.",
                    self.account_id()
                )));
            }
            state.scalings_ms.push(now);
        }
        self.check_shard_limit((target as usize).saturating_sub(count as usize))?;
        let targets = HashKeyRange::even_split(target);
        let mut to_close: Vec<Arc<Shard>> = Vec::new();
        {
            let mut state = lock(&stream.state);
            // 1. Split every old shard at each new boundary inside it.
            let mut pieces: Vec<Arc<Shard>> = Vec::new();
            for shard in &current {
                let cuts: Vec<u128> = targets
                    .iter()
                    .map(|r| r.start.0)
                    .filter(|&b| b > shard.range.start.0 && b <= shard.range.end.0)
                    .collect();
                let mut rest = shard.clone();
                for cut in cuts {
                    let parents = (Some(rest.id.clone()), None);
                    let low = self.add_shard(
                        &stream,
                        &mut state,
                        HashKeyRange {
                            start: rest.range.start,
                            end: HashKey(cut - 1),
                        },
                        parents.clone(),
                    )?;
                    let high = self.add_shard(
                        &stream,
                        &mut state,
                        HashKeyRange {
                            start: HashKey(cut),
                            end: rest.range.end,
                        },
                        parents,
                    )?;
                    to_close.push(rest);
                    pieces.push(low);
                    rest = high;
                }
                pieces.push(rest);
            }
            // 2. Merge the pieces inside each target range, left to right.
            for target_range in &targets {
                let mut inside = pieces
                    .iter()
                    .filter(|p| target_range.contains(p.range.start))
                    .cloned();
                let Some(mut merged) = inside.next() else {
                    continue;
                };
                for next in inside {
                    let range = HashKeyRange {
                        start: merged.range.start,
                        end: next.range.end,
                    };
                    let child = self.add_shard(
                        &stream,
                        &mut state,
                        range,
                        (Some(merged.id.clone()), Some(next.id.clone())),
                    )?;
                    to_close.push(merged);
                    to_close.push(next);
                    merged = child;
                }
            }
        }
        for shard in &to_close {
            shard.close(now);
        }
        self.publish(&stream)?;
        Ok(target)
    }
}
