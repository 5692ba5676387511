//! Hash keys: a record's position in a stream's 128-bit key space.
//!
//! Kinesis places a record by the MD5 of its partition key (UTF-8 bytes, read as a
//! big-endian unsigned 128-bit integer), unless the producer supplies an explicit hash
//! key. The agent's shard prediction and the server's routing both go through
//! [`HashKey::of_partition_key`], so they cannot disagree.

use std::fmt;
use std::str::FromStr;

use super::digest::{md5, md5_each};

/// A point in the 0..=2^128-1 hash-key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashKey(pub u128);

impl HashKey {
    /// The smallest hash key.
    pub const MIN: HashKey = HashKey(0);
    /// The largest hash key, 2^128 - 1.
    pub const MAX: HashKey = HashKey(u128::MAX);

    /// The hash key Kinesis derives from a partition key: MD5 of its UTF-8 bytes.
    /// No Unicode normalisation: NFC and NFD spellings are different keys.
    pub fn of_partition_key(partition_key: &str) -> HashKey {
        HashKey(u128::from_be_bytes(md5(partition_key.as_bytes())))
    }

    /// [`HashKey::of_partition_key`] of each key, in order, hashed side by side.
    pub fn of_partition_keys(partition_keys: &[&str]) -> Vec<HashKey> {
        let messages: Vec<&[u8]> = partition_keys.iter().map(|k| k.as_bytes()).collect();
        md5_each(&messages)
            .into_iter()
            .map(|digest| HashKey(u128::from_be_bytes(digest)))
            .collect()
    }

    /// Parses an explicit hash key as the Kinesis API accepts it: the pattern
    /// `0|([1-9]\d{0,38})`, with a value of at most 2^128 - 1.
    pub fn parse_explicit(text: &str) -> Result<HashKey, HashKeyError> {
        let well_formed = match text.as_bytes() {
            [] => false,
            [b'0'] => true,
            [first, rest @ ..] => {
                (b'1'..=b'9').contains(first)
                    && rest.len() <= 38
                    && rest.iter().all(u8::is_ascii_digit)
            }
        };
        if !well_formed {
            return Err(HashKeyError::Malformed {
                value: text.to_owned(),
            });
        }
        text.parse::<u128>()
            .map(HashKey)
            .map_err(|_| HashKeyError::OutOfRange {
                value: text.to_owned(),
            })
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for HashKey {
    type Err = HashKeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        HashKey::parse_explicit(text)
    }
}

/// Why a text is not an explicit hash key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashKeyError {
    #[error(
        "explicit hash key {value:?} must be a decimal integer without sign or leading zeros (pattern 0|([1-9]\\d{{0,38}}))"
    )]
    Malformed { value: String },
    #[error("explicit hash key {value} is larger than the largest hash key 2^128-1")]
    OutOfRange { value: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_partition_key_reads_big_endian() {
        // md5("user-0") = b01a0e23da718a08989311b8b2dfb069
        assert_eq!(
            HashKey::of_partition_key("user-0"),
            HashKey(0xb01a0e23da718a08989311b8b2dfb069)
        );
    }

    #[test]
    fn keys_hashed_together_hash_as_each_alone() {
        let keys: Vec<String> = (0..300)
            .map(|i| "k".repeat(i % 90 + 1) + &i.to_string())
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let alone: Vec<HashKey> = keys.iter().map(|k| HashKey::of_partition_key(k)).collect();
        assert_eq!(HashKey::of_partition_keys(&keys), alone);
        assert_eq!(
            HashKey::of_partition_keys(&["user-0"]),
            vec![HashKey(0xb01a0e23da718a08989311b8b2dfb069)]
        );
    }

    #[test]
    fn explicit_hash_keys_follow_the_kinesis_pattern() {
        assert_eq!(HashKey::parse_explicit("0"), Ok(HashKey(0)));
        assert_eq!(
            HashKey::parse_explicit("340282366920938463463374607431768211455"),
            Ok(HashKey::MAX)
        );
        for bad in ["", "00", "01", "-1", "+1", "1.0", " 1", "1e3", "abc"] {
            assert!(
                matches!(
                    HashKey::parse_explicit(bad),
                    Err(HashKeyError::Malformed { .. })
                ),
                "{bad:?} should be malformed"
            );
        }
        assert!(matches!(
            HashKey::parse_explicit("340282366920938463463374607431768211456"),
            Err(HashKeyError::OutOfRange { .. })
        ));
        // 40 digits does not match the pattern at all.
        assert!(matches!(
            HashKey::parse_explicit("1000000000000000000000000000000000000000"),
            Err(HashKeyError::Malformed { .. })
        ));
    }

    #[test]
    fn display_is_decimal_and_round_trips() {
        let key = HashKey(170141183460469231731687303715884105728);
        assert_eq!(key.to_string(), "170141183460469231731687303715884105728");
        assert_eq!(key.to_string().parse::<HashKey>(), Ok(key));
    }
}
