//! Validated names the Kinesis API passes around.
//!
//! Each newtype can only be built through a check that mirrors the API's own
//! constraint, so code that holds one never re-validates it.

use std::fmt;

use super::limits;

/// Why a name was refused; carries the constraint in words so the message is actionable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: {constraint}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub constraint: &'static str,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(text: &str) -> Result<Self, NameError> {
                $name::new(text)
            }
        }
    };
}

string_newtype!(
    /// A stream name: 1 to 128 characters of `[a-zA-Z0-9_.-]`.
    StreamName
);
string_newtype!(
    /// A shard id such as `shardId-000000000000`.
    ShardId
);
string_newtype!(
    /// A partition key: 1 to 256 Unicode characters.
    PartitionKey
);
string_newtype!(
    /// A sequence number: a decimal integer of up to 129 digits, increasing within a shard.
    SequenceNumber
);

impl StreamName {
    pub fn new(text: &str) -> Result<Self, NameError> {
        let len = text.chars().count();
        if !(1..=limits::MAX_STREAM_NAME_CHARS).contains(&len) || !text.chars().all(is_name_char) {
            return Err(NameError {
                what: "stream name",
                value: text.to_owned(),
                constraint: "1 to 128 characters from [a-zA-Z0-9_.-]",
            });
        }
        Ok(StreamName(text.to_owned()))
    }
}

impl ShardId {
    pub fn new(text: &str) -> Result<Self, NameError> {
        let len = text.chars().count();
        if !(1..=limits::MAX_SHARD_ID_CHARS).contains(&len) || !text.chars().all(is_name_char) {
            return Err(NameError {
                what: "shard id",
                value: text.to_owned(),
                constraint: "1 to 128 characters from [a-zA-Z0-9_.-]",
            });
        }
        Ok(ShardId(text.to_owned()))
    }

    /// The id Kinesis gives the shard created as number `index` of a stream.
    pub fn from_index(index: u64) -> Self {
        ShardId(format!("shardId-{index:012}"))
    }

    /// The shard index a request's shard id names, read as Kinesis reads it: the text
    /// after the first `-` (or all of it), a decimal number up to 2^31 - 1. So
    /// `shardId-000000000005`, `anything-5` and `5` all name shard 5.
    pub fn resolve_index(text: &str) -> Option<u32> {
        let digits = text
            .split('-')
            .nth(1)
            .filter(|d| !d.is_empty())
            .unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u32>().ok().filter(|i| *i <= i32::MAX as u32)
    }

    /// The number in a Kinesis-style id (`shardId-000000000007` -> 7), if it has one.
    pub fn index(&self) -> Option<u64> {
        self.0.strip_prefix("shardId-")?.parse().ok()
    }
}

impl PartitionKey {
    pub fn new(text: &str) -> Result<Self, NameError> {
        let len = text.chars().count();
        if !(1..=limits::MAX_PARTITION_KEY_CHARS).contains(&len) {
            return Err(NameError {
                what: "partition key",
                value: text.to_owned(),
                constraint: "1 to 256 Unicode characters",
            });
        }
        Ok(PartitionKey(text.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl SequenceNumber {
    pub fn new(text: &str) -> Result<Self, NameError> {
        let well_formed = match text.as_bytes() {
            [b'0'] => true,
            [first, rest @ ..] => {
                (b'1'..=b'9').contains(first)
                    && rest.len() <= 128
                    && rest.iter().all(u8::is_ascii_digit)
            }
            [] => false,
        };
        if !well_formed {
            return Err(NameError {
                what: "sequence number",
                value: text.to_owned(),
                constraint: "a decimal integer matching 0|([1-9]\\d{0,128})",
            });
        }
        Ok(SequenceNumber(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_the_api_pattern() {
        assert!(StreamName::new("my-stream_1.0").is_ok());
        assert!(StreamName::new("").is_err());
        assert!(StreamName::new("has space").is_err());
        assert!(StreamName::new(&"a".repeat(128)).is_ok());
        assert!(StreamName::new(&"a".repeat(129)).is_err());
    }

    #[test]
    fn partition_keys_count_characters_not_bytes() {
        assert!(PartitionKey::new(&"é".repeat(256)).is_ok());
        assert!(PartitionKey::new(&"é".repeat(257)).is_err());
        assert!(PartitionKey::new("").is_err());
    }

    #[test]
    fn shard_ids_are_zero_padded_to_twelve_digits() {
        let id = ShardId::from_index(7);
        assert_eq!(id.as_str(), "shardId-000000000007");
        assert_eq!(ShardId::resolve_index("shardId-000000000005"), Some(5));
        assert_eq!(ShardId::resolve_index("anything-5"), Some(5));
        assert_eq!(ShardId::resolve_index("5"), Some(5));
        assert_eq!(ShardId::resolve_index("shardId-5-extra"), Some(5));
        assert_eq!(ShardId::resolve_index("shardId-"), None);
        assert_eq!(ShardId::resolve_index("shardId-x"), None);
        assert_eq!(ShardId::resolve_index("2147483648"), None);
        assert_eq!(id.index(), Some(7));
    }

    #[test]
    fn sequence_numbers_are_decimal() {
        assert!(SequenceNumber::new("0").is_ok());
        assert!(
            SequenceNumber::new("49590338271490256608559692538361571095921575989136588898").is_ok()
        );
        assert!(SequenceNumber::new("012").is_err());
        assert!(SequenceNumber::new("x").is_err());
    }
}
