//! How ON_DEMAND streams grow: by splitting shards, as Kinesis does.
//!
//! An ON_DEMAND stream starts with four shards (4 MiB/s and 4,000 records/s of
//! writes). Each shard keeps its own limits, so a burst above the stream's capacity is
//! throttled; the next upkeep pass then splits every shard that refused writes or ran
//! at 90% of a limit since the last pass (a producer that paces itself to the shard
//! limits, as shardcar's does, is never throttled, yet needs the room). A pass at
//! most doubles a stream's capacity: the stream takes up to twice its previous peak
//! at once, and a larger burst is throttled again until the following pass (AWS
//! documents the same doubling, over minutes rather than seconds). Warm throughput (UpdateStreamWarmThroughput) splits ahead of the load
//! until the stream has a shard per MiB/s asked for.
//!
//! Splits are ordinary SplitShards: parents close, children open, ListShards shows
//! the lineage, and producers and consumers follow it.

use std::sync::Arc;

use super::Store;
use super::stream::{Shard, Stream, StreamMode, StreamStatus, lock};
use crate::kinesis::{HashKey, HashKeyRange};
use crate::server::error::OpResult;

/// Most write capacity, in MiB/s, an ON_DEMAND stream reaches by itself (AWS's
/// default quota; warm throughput may ask for up to [`MAX_WARM_THROUGHPUT_MIBPS`]).
pub const ON_DEMAND_MAX_MIBPS: u32 = 200;

/// Most warm throughput a stream may ask for (10 GiB/s).
pub const MAX_WARM_THROUGHPUT_MIBPS: u32 = 10_240;

/// The hash key that cuts `range` in two equal halves, if the range is wide enough.
fn midpoint(range: HashKeyRange) -> Option<HashKey> {
    let key = range.start.0 + (range.end.0 - range.start.0) / 2 + 1;
    (key > range.start.0.saturating_add(1) && key < range.end.0).then_some(HashKey(key))
}

impl Store {
    /// Splits the hot shards of every ACTIVE ON_DEMAND stream (see the module's doc).
    /// Returns the number of shards split.
    pub fn scale_on_demand(&self) -> usize {
        let now = self.now_ms();
        let elapsed = now
            - self
                .inner
                .last_scaling_ms
                .swap(now, std::sync::atomic::Ordering::Relaxed);
        let streams: Vec<Arc<Stream>> = self.read_streams().values().cloned().collect();
        let mut split = 0;
        for stream in streams {
            let on_demand = {
                let mut state = lock(&stream.state);
                state.settle(self.now_ms());
                state.mode == StreamMode::OnDemand && state.status == StreamStatus::Active
            };
            if !on_demand {
                continue;
            }
            let hot: Vec<Arc<Shard>> = stream
                .open_shards()
                .shards
                .iter()
                .filter(|s| lock(&s.state).limits.take_load().is_hot(elapsed))
                .cloned()
                .collect();
            let room = (ON_DEMAND_MAX_MIBPS as usize)
                .saturating_sub(stream.open_shards().shards.len())
                .min(hot.len());
            if room == 0 {
                continue;
            }
            match self.split_in_halves(&stream, &hot[..room]) {
                Ok(n) => {
                    tracing::info!(stream = %stream.name, shards_split = n, "on-demand stream scaled out");
                    split += n;
                }
                Err(error) => {
                    tracing::warn!(stream = %stream.name, %error, "on-demand stream could not scale out")
                }
            }
        }
        split
    }

    /// Splits the widest open shards until the stream has `shards` open shards (one
    /// MiB/s each), for warm throughput. Returns the open shard count after.
    pub fn warm_to(&self, stream: &Stream, shards: usize) -> OpResult<usize> {
        loop {
            let mut open: Vec<Arc<Shard>> = stream.open_shards().shards.clone();
            if open.len() >= shards {
                return Ok(open.len());
            }
            open.sort_by_key(|s| std::cmp::Reverse(s.range.end.0 - s.range.start.0));
            open.truncate(shards - open.len());
            if self.split_in_halves(stream, &open)? == 0 {
                return Ok(stream.open_shards().shards.len());
            }
        }
    }

    /// Splits each of `parents` at its midpoint in one reshard; returns how many split.
    fn split_in_halves(&self, stream: &Stream, parents: &[Arc<Shard>]) -> OpResult<usize> {
        let _control = lock(&self.inner.control);
        let cuts: Vec<(Arc<Shard>, HashKey)> = parents
            .iter()
            .filter(|p| p.is_open())
            .filter_map(|p| midpoint(p.range).map(|key| (p.clone(), key)))
            .collect();
        if cuts.is_empty() {
            return Ok(0);
        }
        self.check_shard_limit(cuts.len())?;
        {
            let mut state = lock(&stream.state);
            for (parent, key) in &cuts {
                let parents = (Some(parent.id.clone()), None);
                let halves = [
                    HashKeyRange {
                        start: parent.range.start,
                        end: HashKey(key.0 - 1),
                    },
                    HashKeyRange {
                        start: *key,
                        end: parent.range.end,
                    },
                ];
                for range in halves {
                    self.add_shard(stream, &mut state, range, parents.clone())?;
                }
            }
        }
        let now = self.now_ms();
        for (parent, _) in &cuts {
            parent.close(now);
        }
        self.publish(stream)?;
        Ok(cuts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::clock::Clock;
    use crate::server::store::StoreConfig;

    fn store() -> (Store, Clock) {
        let clock = Clock::frozen();
        let config = StoreConfig {
            status_delay_ms: 0,
            ..StoreConfig::default()
        };
        let store = Store::new(config, clock.clone(), None).unwrap_or_else(|e| panic!("{e}"));
        (store, clock)
    }

    /// Writes 1 KiB records with keys spread over the whole key space until `count`
    /// were offered; returns how many were throttled.
    fn burst(store: &Store, stream: &Stream, count: u128) -> usize {
        let step = u128::MAX / count;
        (0..count)
            .filter(|i| {
                store
                    .put(stream, "k", HashKey(i * step), &[0u8; 1024])
                    .is_err()
            })
            .count()
    }

    #[test]
    fn an_on_demand_stream_that_throttles_doubles_its_shards_and_then_takes_the_burst() {
        let (store, clock) = store();
        store
            .create_stream("od", 4, StreamMode::OnDemand, Default::default(), true)
            .unwrap_or_else(|e| panic!("{e}"));
        let stream = store.stream("od").unwrap_or_else(|e| panic!("{e}"));
        // 8,000 records of 1 KiB in one second: twice the 4 MiB/s a new stream takes.
        let throttled = burst(&store, &stream, 8000);
        assert!(throttled > 3000, "{throttled} throttled");
        clock.advance(std::time::Duration::from_secs(1));
        assert_eq!(store.scale_on_demand(), 4);
        assert_eq!(stream.open_shards().shards.len(), 8);
        assert_eq!(lock(&stream.state).shards.len(), 12, "parents stay, closed");
        clock.advance(std::time::Duration::from_secs(1));
        assert_eq!(burst(&store, &stream, 7000), 0);
        // Nothing throttled, and 7 MiB over two seconds on 8 shards is half their room.
        clock.advance(std::time::Duration::from_secs(2));
        assert_eq!(store.scale_on_demand(), 0);
    }

    #[test]
    fn shards_run_near_their_limit_split_though_nothing_was_refused() {
        let (store, clock) = store();
        store
            .create_stream("paced", 4, StreamMode::OnDemand, Default::default(), true)
            .unwrap_or_else(|e| panic!("{e}"));
        let stream = store.stream("paced").unwrap_or_else(|e| panic!("{e}"));
        clock.advance(std::time::Duration::from_secs(1));
        store.scale_on_demand();
        // 3,800 records of 1 KiB in a second: 95% of four shards, none refused.
        assert_eq!(burst(&store, &stream, 3800), 0);
        clock.advance(std::time::Duration::from_secs(1));
        assert_eq!(store.scale_on_demand(), 4);
    }

    #[test]
    fn a_provisioned_stream_never_scales_by_itself() {
        let (store, _clock) = store();
        store
            .create_stream("p", 1, StreamMode::Provisioned, Default::default(), true)
            .unwrap_or_else(|e| panic!("{e}"));
        let stream = store.stream("p").unwrap_or_else(|e| panic!("{e}"));
        assert!(burst(&store, &stream, 3000) > 0);
        assert_eq!(store.scale_on_demand(), 0);
        assert_eq!(stream.open_shards().shards.len(), 1);
    }

    #[test]
    fn warm_throughput_splits_the_widest_shards_until_there_is_a_shard_per_mibps() {
        let (store, _clock) = store();
        store
            .create_stream("w", 4, StreamMode::OnDemand, Default::default(), true)
            .unwrap_or_else(|e| panic!("{e}"));
        let stream = store.stream("w").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.warm_to(&stream, 11).unwrap_or_else(|e| panic!("{e}")),
            11
        );
        let open = stream.open_shards();
        let widths: Vec<u128> = open
            .shards
            .iter()
            .map(|s| s.range.end.0 - s.range.start.0)
            .collect();
        let (min, max) = (widths.iter().min(), widths.iter().max());
        assert!(max.zip(min).is_some_and(|(a, b)| a / b <= 2), "{widths:?}");
    }
}
