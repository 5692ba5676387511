//! Partition keys for records whose key carries no meaning, only the wish to spread
//! (the agent's default `random` strategy).
//!
//! A fresh random key per record costs an MD5 to place it and its full length in every
//! aggregate, and buys nothing a small pool cannot: keys are drawn from a pool built
//! for the current shard map, a few per shard, each hashed once. A record first picks
//! a shard with the probability a random key would land there (its share of the hash
//! space), then one of that shard's keys, so the spread over shards is exactly that of
//! random keys. An aggregate then holds a handful of distinct keys (its key table
//! stays small and each record refers to it with one or two bytes), and the producer
//! looks the hash up instead of computing it.

use rand::{Rng, RngExt};

use super::{HashKey, ShardMap};

/// Keys per shard: enough that no one key carries a shard's traffic, few enough that an
/// aggregate's key table stays a few hundred bytes.
pub const KEYS_PER_SHARD: usize = 16;

/// The length of every spread key (and of [`random_key`]'s).
pub const SPREAD_KEY_LEN: usize = 16;

/// A random key that spreads evenly: 64 random bits as 16 hex digits. MD5 spreads any
/// distinct keys evenly, so more bits would only add bytes.
pub fn random_key(rng: &mut impl Rng) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut value = rng.random::<u64>();
    // Built digit by digit: formatting machinery cost more than the random number.
    let mut key = String::with_capacity(16);
    for _ in 0..16 {
        key.push(char::from(HEX[(value >> 60) as usize]));
        value <<= 4;
    }
    key
}

/// A pool of pre-hashed keys per shard of one shard map.
#[derive(Debug)]
pub struct SpreadKeys {
    map: ShardMap,
    /// Keys whose hash falls in each shard, with that hash, by the map's shard order.
    /// A shard too narrow to be hit while building may have none; `pick` then
    /// returns `None`.
    per_shard: Vec<Vec<(String, HashKey)>>,
}

impl SpreadKeys {
    /// Draws random keys until every shard has `per_shard` of them, or gives up on
    /// shards too narrow to be hit within a bounded number of draws.
    pub fn new(map: &ShardMap, per_shard: usize, rng: &mut impl Rng) -> Self {
        let shards = map.len();
        let mut pools: Vec<Vec<(String, HashKey)>> = vec![Vec::with_capacity(per_shard); shards];
        let mut missing = shards * per_shard;
        let mut draws_left = (shards * per_shard).saturating_mul(32).max(1024);
        while missing > 0 && draws_left > 0 {
            draws_left -= 1;
            let key = random_key(rng);
            let hash = HashKey::of_partition_key(&key);
            // A key drawn twice hashes into the same shard: that pool is where to look.
            let pool = &mut pools[map.predict_index(hash)];
            if pool.len() < per_shard && !pool.iter().any(|(k, _)| *k == key) {
                pool.push((key, hash));
                missing -= 1;
            }
        }
        SpreadKeys {
            map: map.clone(),
            per_shard: pools,
        }
    }

    /// A key for one record: a shard chosen as a random key would choose it, then one
    /// of its keys. `None` when that shard got no keys (the caller makes a fresh one).
    pub fn pick(&self, rng: &mut impl Rng) -> Option<&str> {
        let shard = self.pick_shard(rng);
        self.key_in(shard, rng).map(|(key, _)| key)
    }

    /// A shard index of the map, chosen with the probability a random key would land
    /// there (its share of the hash space).
    pub fn pick_shard(&self, rng: &mut impl Rng) -> usize {
        self.map.predict_index(HashKey(rng.random::<u128>()))
    }

    /// One of the keys of the shard at `index`, with its hash; `None` when that shard
    /// got no keys.
    pub fn key_in(&self, index: usize, rng: &mut impl Rng) -> Option<(&str, HashKey)> {
        let pool = self.per_shard.get(index)?;
        if pool.is_empty() {
            return None;
        }
        let (key, hash) = pool.get(rng.random_range(0..pool.len()))?;
        Some((key, *hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::{HashKeyRange, ShardId, ShardRange};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn every_shard_gets_its_keys_and_every_key_hashes_into_its_shard() {
        let mut rng = StdRng::seed_from_u64(7);
        let map = ShardMap::even(8);
        let keys = SpreadKeys::new(&map, KEYS_PER_SHARD, &mut rng);
        for (index, pool) in keys.per_shard.iter().enumerate() {
            assert_eq!(pool.len(), KEYS_PER_SHARD, "shard {index}");
            for (key, hash) in pool {
                assert_eq!(*hash, HashKey::of_partition_key(key), "{key}");
                assert_eq!(map.predict_index(*hash), index, "{key}");
            }
            let mut distinct: Vec<&String> = pool.iter().map(|(k, _)| k).collect();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), pool.len(), "shard {index}: a key twice");
        }
    }

    /// A map of shards owning the given inclusive hash-key ranges, in order.
    fn map_of(ranges: &[(u128, u128)]) -> ShardMap {
        let shards = ranges
            .iter()
            .enumerate()
            .map(|(i, &(start, end))| ShardRange {
                shard_id: ShardId::from_index(i as u64),
                range: HashKeyRange::new(HashKey(start), HashKey(end)).expect("range"),
            })
            .collect();
        ShardMap::new(shards).expect("map")
    }

    #[test]
    fn picks_spread_over_shards_as_random_keys_would() {
        // Shard 0 owns half the hash space, shards 1 and 2 a quarter each.
        let half = u128::MAX / 2;
        let three_quarters = half + u128::MAX / 4;
        let map = map_of(&[
            (0, half),
            (half + 1, three_quarters),
            (three_quarters + 1, u128::MAX),
        ]);
        let mut rng = StdRng::seed_from_u64(11);
        let keys = SpreadKeys::new(&map, KEYS_PER_SHARD, &mut rng);
        let mut counts = [0usize; 3];
        let draws = 40_000;
        for _ in 0..draws {
            let key = keys.pick(&mut rng).expect("every shard has keys");
            counts[map.predict_index(HashKey::of_partition_key(key))] += 1;
        }
        let shares = counts.map(|c| c as f64 / draws as f64);
        assert!((shares[0] - 0.5).abs() < 0.02, "{shares:?}");
        assert!((shares[1] - 0.25).abs() < 0.02, "{shares:?}");
        assert!((shares[2] - 0.25).abs() < 0.02, "{shares:?}");
    }

    #[test]
    fn a_shard_too_narrow_to_hit_gets_no_keys_and_building_still_ends() {
        let map = map_of(&[(0, 0), (1, u128::MAX)]);
        let mut rng = StdRng::seed_from_u64(3);
        let keys = SpreadKeys::new(&map, KEYS_PER_SHARD, &mut rng);
        assert!(keys.per_shard[0].is_empty());
        assert_eq!(keys.per_shard[1].len(), KEYS_PER_SHARD);
        // Shard 0 is picked with probability 2^-128: every pick comes from shard 1.
        assert!(keys.pick(&mut rng).is_some());
    }
}
