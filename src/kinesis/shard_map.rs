//! Hash-key ranges and the map from hash key to owning shard.
//!
//! A stream's open shards partition the hash-key space with no gap and no overlap.
//! [`ShardMap`] checks that when it is built, so prediction never has to guess; a
//! list of shards that does not cover the space is reported, not patched over.

use std::fmt;

use super::hash_key::HashKey;
use super::names::ShardId;

/// An inclusive range of hash keys, as `StartingHashKey`/`EndingHashKey` describe a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashKeyRange {
    pub start: HashKey,
    pub end: HashKey,
}

impl HashKeyRange {
    /// The whole key space, owned by a one-shard stream.
    pub const FULL: HashKeyRange = HashKeyRange {
        start: HashKey::MIN,
        end: HashKey::MAX,
    };

    pub fn new(start: HashKey, end: HashKey) -> Result<Self, ShardMapError> {
        if start > end {
            return Err(ShardMapError::Inverted { start, end });
        }
        Ok(HashKeyRange { start, end })
    }

    pub fn contains(&self, key: HashKey) -> bool {
        self.start <= key && key <= self.end
    }

    /// The ranges CreateStream gives `shards` new shards: step = floor(2^128 / N),
    /// shard i = [i*step, (i+1)*step - 1], the last shard ending at 2^128 - 1.
    pub fn even_split(shards: u32) -> Vec<HashKeyRange> {
        Self::even_split_of(Self::FULL, shards)
    }

    /// Splits `range` evenly into `parts` the same way (UpdateShardCount uses this on
    /// the whole space; tests use it on sub-ranges).
    pub fn even_split_of(range: HashKeyRange, parts: u32) -> Vec<HashKeyRange> {
        let parts = parts.max(1);
        if parts == 1 {
            return vec![range];
        }
        let width = range.end.0 - range.start.0;
        // The size of the range is width + 1, which overflows for the full space:
        // 2^128 / N is computed as (2^128 - 1) / N, corrected when N divides 2^128.
        let step = if range == Self::FULL {
            let step = u128::MAX / u128::from(parts);
            if parts.is_power_of_two() {
                step + 1
            } else {
                step
            }
        } else {
            (width + 1) / u128::from(parts)
        };
        (0..parts)
            .map(|i| {
                let start = range.start.0 + step * u128::from(i);
                let end = if i + 1 == parts {
                    range.end.0
                } else {
                    start + step - 1
                };
                HashKeyRange {
                    start: HashKey(start),
                    end: HashKey(end),
                }
            })
            .collect()
    }
}

impl fmt::Display for HashKeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.start, self.end)
    }
}

/// One open shard: its id and the hash keys it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRange {
    pub shard_id: ShardId,
    pub range: HashKeyRange,
}

/// The open shards of a stream, sorted by hash key, covering the whole space exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<ShardRange>,
    /// `shards[i].range.end`, kept apart so the binary search walks one dense array.
    ends: Vec<u128>,
}

/// Why a list of shards is not a usable map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    #[error("the stream has no open shards")]
    Empty,
    #[error("hash key range starts at {start} but ends before it at {end}")]
    Inverted { start: HashKey, end: HashKey },
    #[error("no open shard owns hash keys {from}..={to}")]
    Uncovered { from: HashKey, to: HashKey },
    #[error("shards {first} and {second} both own hash keys {from}..={to}")]
    Overlap {
        first: ShardId,
        second: ShardId,
        from: HashKey,
        to: HashKey,
    },
}

impl ShardMap {
    /// Builds the map from the open shards in any order; refuses gaps and overlaps.
    pub fn new(mut shards: Vec<ShardRange>) -> Result<Self, ShardMapError> {
        if shards.is_empty() {
            return Err(ShardMapError::Empty);
        }
        shards.sort_by_key(|s| s.range.start);
        let mut expected_start = Some(0u128);
        for (i, shard) in shards.iter().enumerate() {
            let start = shard.range.start.0;
            match expected_start {
                Some(expected) if start > expected => {
                    return Err(ShardMapError::Uncovered {
                        from: HashKey(expected),
                        to: HashKey(start - 1),
                    });
                }
                Some(expected) if start < expected => {
                    let previous = &shards[i - 1];
                    return Err(ShardMapError::Overlap {
                        first: previous.shard_id.clone(),
                        second: shard.shard_id.clone(),
                        from: shard.range.start,
                        to: previous.range.end.min(shard.range.end),
                    });
                }
                Some(_) => {}
                None => {
                    // The previous shard already ended at 2^128-1.
                    let previous = &shards[i - 1];
                    return Err(ShardMapError::Overlap {
                        first: previous.shard_id.clone(),
                        second: shard.shard_id.clone(),
                        from: shard.range.start,
                        to: shard.range.end,
                    });
                }
            }
            expected_start = shard.range.end.0.checked_add(1);
        }
        if let Some(expected) = expected_start {
            return Err(ShardMapError::Uncovered {
                from: HashKey(expected),
                to: HashKey::MAX,
            });
        }
        let ends = shards.iter().map(|s| s.range.end.0).collect();
        Ok(ShardMap { shards, ends })
    }

    /// A map of `count` evenly split shards with Kinesis ids, as a new stream has.
    pub fn even(count: u32) -> Self {
        let shards = HashKeyRange::even_split(count)
            .into_iter()
            .enumerate()
            .map(|(i, range)| ShardRange {
                shard_id: ShardId::from_index(i as u64),
                range,
            })
            .collect();
        ShardMap::new(shards)
            .unwrap_or_else(|e| unreachable!("an even split covers the space: {e}"))
    }

    /// The position (in hash-key order) of the shard that owns `key`.
    pub fn predict_index(&self, key: HashKey) -> usize {
        // The ranges cover the whole space, so the first end >= key always exists.
        self.ends.partition_point(|&end| end < key.0)
    }

    /// The shard that owns `key`.
    pub fn predict(&self, key: HashKey) -> &ShardRange {
        &self.shards[self.predict_index(key)]
    }

    pub fn shards(&self) -> &[ShardRange] {
        &self.shards
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The position of a shard by id, for callers that learn the id from a response.
    pub fn index_of(&self, shard_id: &ShardId) -> Option<usize> {
        self.shards.iter().position(|s| &s.shard_id == shard_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: u64, start: u128, end: u128) -> ShardRange {
        ShardRange {
            shard_id: ShardId::from_index(id),
            range: HashKeyRange {
                start: HashKey(start),
                end: HashKey(end),
            },
        }
    }

    #[test]
    fn one_shard_owns_everything() {
        assert_eq!(HashKeyRange::even_split(1), vec![HashKeyRange::FULL]);
    }

    #[test]
    fn three_shards_match_published_values() {
        let ranges = HashKeyRange::even_split(3);
        assert_eq!(
            ranges[0].end.to_string(),
            "113427455640312821154458202477256070484"
        );
        assert_eq!(ranges[2].end, HashKey::MAX);
    }

    #[test]
    fn even_split_covers_the_space_for_many_counts() {
        for n in 1..=64 {
            let map = ShardMap::even(n);
            assert_eq!(map.len(), n as usize);
        }
    }

    #[test]
    fn gaps_and_overlaps_are_reported() {
        let gap = ShardMap::new(vec![shard(0, 0, 10), shard(1, 12, u128::MAX)]);
        assert_eq!(
            gap,
            Err(ShardMapError::Uncovered {
                from: HashKey(11),
                to: HashKey(11)
            })
        );
        let overlap = ShardMap::new(vec![shard(0, 0, 10), shard(1, 9, u128::MAX)]);
        assert!(matches!(overlap, Err(ShardMapError::Overlap { .. })));
        let short = ShardMap::new(vec![shard(0, 0, 10)]);
        assert!(matches!(short, Err(ShardMapError::Uncovered { .. })));
        let late_start = ShardMap::new(vec![shard(0, 1, u128::MAX)]);
        assert!(matches!(late_start, Err(ShardMapError::Uncovered { .. })));
        let duplicate = ShardMap::new(vec![shard(0, 0, u128::MAX), shard(1, 0, u128::MAX)]);
        assert!(matches!(duplicate, Err(ShardMapError::Overlap { .. })));
        assert_eq!(ShardMap::new(vec![]), Err(ShardMapError::Empty));
    }

    #[test]
    fn unsorted_input_is_accepted() {
        let map = ShardMap::new(vec![shard(1, 100, u128::MAX), shard(0, 0, 99)]).unwrap();
        assert_eq!(map.predict(HashKey(99)).shard_id, ShardId::from_index(0));
        assert_eq!(map.predict(HashKey(100)).shard_id, ShardId::from_index(1));
    }
}
