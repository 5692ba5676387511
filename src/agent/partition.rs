//! Choosing each record's partition key, which decides its shard.

use crate::config::PartitionKeyStrategy;
use crate::kinesis::SpreadKeys;
use crate::kinesis::digest::md5_hex;
use crate::kinesis::limits;
use crate::kinesis::spread_keys::random_key;

/// A key, and whether the strategy had to fall back to a random one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenKey {
    pub key: String,
    pub fell_back: bool,
}

/// A key that only has to spread records: one of the pool's pre-hashed keys for the
/// current shards, or a fresh random key while the shard map is not known yet.
fn spread_key(spread: Option<&SpreadKeys>) -> String {
    let mut rng = rand::rng();
    match spread.and_then(|pool| pool.pick(&mut rng)) {
        Some(key) => key.to_owned(),
        None => random_key(&mut rng),
    }
}

/// A usable key from extracted text: empty is unusable; one over 256 characters is
/// replaced by its MD5, which keeps it deterministic.
fn usable(text: &str) -> Option<String> {
    if text.is_empty() {
        None
    } else if text.chars().count() > limits::MAX_PARTITION_KEY_CHARS {
        Some(md5_hex(text.as_bytes()))
    } else {
        Some(text.to_owned())
    }
}

/// The key for one record of `file` read on `host`; `spread` serves `random` keys and
/// fallbacks.
pub fn choose(
    strategy: &PartitionKeyStrategy,
    data: &[u8],
    file: &str,
    host: &str,
    spread: Option<&SpreadKeys>,
) -> ChosenKey {
    let extracted = match strategy {
        PartitionKeyStrategy::Random => {
            return ChosenKey {
                key: spread_key(spread),
                fell_back: false,
            };
        }
        PartitionKeyStrategy::LineHash => Some(md5_hex(data)),
        PartitionKeyStrategy::Hostname => usable(host),
        PartitionKeyStrategy::File => usable(file),
        PartitionKeyStrategy::Fixed(key) => Some(key.clone()),
        PartitionKeyStrategy::Regex(re) => std::str::from_utf8(data)
            .ok()
            .and_then(|text| re.captures(text))
            .and_then(|c| c.get(1))
            .and_then(|m| usable(m.as_str())),
        PartitionKeyStrategy::JsonPointer(pointer) => {
            serde_json::from_slice::<serde_json::Value>(data)
                .ok()
                .and_then(|value| match value.pointer(pointer)? {
                    serde_json::Value::String(s) => usable(s),
                    serde_json::Value::Null => None,
                    other @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                        usable(&other.to_string())
                    }
                    _ => None,
                })
        }
    };
    match extracted {
        Some(key) => ChosenKey {
            key,
            fell_back: false,
        },
        None => ChosenKey {
            key: spread_key(spread),
            fell_back: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(strategy: PartitionKeyStrategy, data: &[u8]) -> ChosenKey {
        choose(&strategy, data, "/var/log/app.log", "web-1", None)
    }

    #[test]
    fn random_keys_and_fallbacks_come_from_the_spread_pool_once_there_is_one() {
        let map = crate::kinesis::ShardMap::even(4);
        let pool = SpreadKeys::new(&map, 4, &mut rand::rng());
        let mut shards = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let chosen = choose(&PartitionKeyStrategy::Random, b"x", "f", "h", Some(&pool));
            let hash = pool.hash_of(&chosen.key).expect("a key from the pool");
            shards.insert(map.predict_index(hash));
        }
        assert_eq!(shards.len(), 4, "random keys still reach every shard");
        let no_match = PartitionKeyStrategy::Regex(regex::Regex::new(r"user=(\w+)").unwrap());
        let fallback = choose(&no_match, b"no user here", "f", "h", Some(&pool));
        assert!(fallback.fell_back);
        assert!(pool.hash_of(&fallback.key).is_some());
    }

    #[test]
    fn each_strategy_and_its_fallback() {
        let random = key(PartitionKeyStrategy::Random, b"x");
        assert_eq!(random.key.len(), 16);
        assert!(
            random
                .key
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(random.key, key(PartitionKeyStrategy::Random, b"x").key);
        assert_eq!(
            key(PartitionKeyStrategy::LineHash, b"same").key,
            key(PartitionKeyStrategy::LineHash, b"same").key
        );
        assert_eq!(key(PartitionKeyStrategy::Hostname, b"x").key, "web-1");
        assert_eq!(
            key(PartitionKeyStrategy::File, b"x").key,
            "/var/log/app.log"
        );
        assert_eq!(key(PartitionKeyStrategy::Fixed("k".into()), b"x").key, "k");

        let regex = || PartitionKeyStrategy::Regex(regex::Regex::new(r"user=(\w+)").unwrap());
        assert_eq!(
            key(regex(), b"login user=alice ok"),
            ChosenKey {
                key: "alice".into(),
                fell_back: false
            }
        );
        assert!(key(regex(), b"no user here").fell_back);
        assert!(key(regex(), b"\xff user=\xfe").fell_back, "not text");

        let pointer = || PartitionKeyStrategy::JsonPointer("/user/id".into());
        assert_eq!(key(pointer(), br#"{"user":{"id":"u7"}}"#).key, "u7");
        assert_eq!(key(pointer(), br#"{"user":{"id":42}}"#).key, "42");
        assert!(key(pointer(), br#"{"user":{}}"#).fell_back);
        assert!(key(pointer(), b"not json").fell_back);
        let long = format!(r#"{{"user":{{"id":"{}"}}}}"#, "x".repeat(300));
        assert_eq!(
            key(pointer(), long.as_bytes()).key.len(),
            32,
            "a long key is hashed"
        );
    }
}
