//! Choosing each record's partition key, which decides its shard.

use crate::config::PartitionKeyStrategy;
use crate::kinesis::digest::md5_hex;
use crate::kinesis::limits;

/// A key, and whether the strategy had to fall back to spreading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenKey {
    /// `None`: any key that spreads records will do, and the producer picks one of its
    /// pre-hashed keys ([`UserRecord::spread`](crate::kinesis::UserRecord::spread)).
    pub key: Option<String>,
    pub fell_back: bool,
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

/// The key for one record of `file` read on `host`; `random`, and a strategy that
/// finds nothing to use, leave the key to the producer.
pub fn choose(strategy: &PartitionKeyStrategy, data: &[u8], file: &str, host: &str) -> ChosenKey {
    let extracted = match strategy {
        PartitionKeyStrategy::Random => {
            return ChosenKey {
                key: None,
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
    ChosenKey {
        fell_back: extracted.is_none(),
        key: extracted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(strategy: PartitionKeyStrategy, data: &[u8]) -> ChosenKey {
        choose(&strategy, data, "/var/log/app.log", "web-1")
    }

    fn text(chosen: ChosenKey) -> String {
        chosen.key.unwrap_or_else(|| panic!("no key chosen"))
    }

    #[test]
    fn each_strategy_and_its_fallback() {
        assert_eq!(
            key(PartitionKeyStrategy::Random, b"x"),
            ChosenKey {
                key: None,
                fell_back: false
            },
            "random keys are the producer's to pick"
        );
        assert_eq!(
            text(key(PartitionKeyStrategy::LineHash, b"same")),
            text(key(PartitionKeyStrategy::LineHash, b"same"))
        );
        assert_eq!(text(key(PartitionKeyStrategy::Hostname, b"x")), "web-1");
        assert_eq!(
            text(key(PartitionKeyStrategy::File, b"x")),
            "/var/log/app.log"
        );
        assert_eq!(
            text(key(PartitionKeyStrategy::Fixed("k".into()), b"x")),
            "k"
        );

        let regex = || PartitionKeyStrategy::Regex(regex::Regex::new(r"user=(\w+)").unwrap());
        assert_eq!(
            key(regex(), b"login user=alice ok"),
            ChosenKey {
                key: Some("alice".into()),
                fell_back: false
            }
        );
        assert_eq!(
            key(regex(), b"no user here"),
            ChosenKey {
                key: None,
                fell_back: true
            },
            "a fallback spreads"
        );
        assert!(key(regex(), b"\xff user=\xfe").fell_back, "not text");

        let pointer = || PartitionKeyStrategy::JsonPointer("/user/id".into());
        assert_eq!(text(key(pointer(), br#"{"user":{"id":"u7"}}"#)), "u7");
        assert_eq!(text(key(pointer(), br#"{"user":{"id":42}}"#)), "42");
        assert!(key(pointer(), br#"{"user":{}}"#).fell_back);
        assert!(key(pointer(), b"not json").fell_back);
        let long = format!(r#"{{"user":{{"id":"{}"}}}}"#, "x".repeat(300));
        assert_eq!(
            text(key(pointer(), long.as_bytes())).len(),
            32,
            "a long key is hashed"
        );
    }
}
