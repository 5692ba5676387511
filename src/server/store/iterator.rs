//! Shard iterators: opaque tokens naming a stream, a shard, a position and an issue time.
//!
//! The token is base64 of a small binary layout with a checksum, so a mangled or
//! invented iterator is recognised and refused with `InvalidArgumentException`. It
//! has the shape of Kinesis's own: eight bytes `0 0 0 0 0 0 0 1`, then (padded)
//! `152 + 16 * ((name length + 2) / 16)` bytes in all, so clients that size or check
//! iterators see what they would from AWS.

use crate::kinesis::digest::md5;
use base64_simd::STANDARD as BASE64;

use super::log::Position;
use crate::server::clock::Millis;

/// Kinesis's iterators begin with these bytes (a version, it seems).
const PREFIX: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 1];
const CHECKSUM_LEN: usize = 8;
/// Where the stream name's length is; the name follows it.
const NAME_AT: usize = 36;

/// The decoded length of Kinesis's iterator for a stream name of `name_len` bytes.
fn kinesis_length(name_len: usize) -> usize {
    152 + (name_len + 2) / 16 * 16
}

/// What a shard iterator points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorToken {
    pub stream: String,
    /// Distinguishes a stream from an older one of the same name.
    pub stream_created_ms: Millis,
    pub shard_index: u32,
    pub position: Position,
    pub issued_ms: Millis,
}

impl IteratorToken {
    pub fn encode(&self) -> String {
        let name = self.stream.as_bytes();
        let length = kinesis_length(name.len()).max(NAME_AT + 2 + name.len() + CHECKSUM_LEN);
        let mut bytes = Vec::with_capacity(length);
        bytes.extend_from_slice(&PREFIX);
        bytes.extend_from_slice(&self.stream_created_ms.to_be_bytes());
        bytes.extend_from_slice(&self.shard_index.to_be_bytes());
        bytes.extend_from_slice(&self.position.to_be_bytes());
        bytes.extend_from_slice(&self.issued_ms.to_be_bytes());
        bytes.extend_from_slice(&(name.len() as u16).to_be_bytes());
        bytes.extend_from_slice(name);
        bytes.resize(length - CHECKSUM_LEN, 0);
        let checksum = md5(&bytes);
        bytes.extend_from_slice(&checksum[..CHECKSUM_LEN]);
        BASE64.encode_to_string(bytes)
    }

    pub fn decode(text: &str) -> Option<IteratorToken> {
        let bytes = BASE64.decode_to_vec(text).ok()?;
        let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(CHECKSUM_LEN)?)?;
        if md5(body)[..CHECKSUM_LEN] != *checksum || body.get(..8) != Some(&PREFIX[..]) {
            return None;
        }
        let field = |at: usize, len: usize| body.get(at..at + len);
        let stream_created_ms = i64::from_be_bytes(field(8, 8)?.try_into().ok()?);
        let shard_index = u32::from_be_bytes(field(16, 4)?.try_into().ok()?);
        let position = u64::from_be_bytes(field(20, 8)?.try_into().ok()?);
        let issued_ms = i64::from_be_bytes(field(28, 8)?.try_into().ok()?);
        let name_len = usize::from(u16::from_be_bytes(field(NAME_AT, 2)?.try_into().ok()?));
        let stream = String::from_utf8(field(NAME_AT + 2, name_len)?.to_vec()).ok()?;
        Some(IteratorToken {
            stream,
            stream_created_ms,
            shard_index,
            position,
            issued_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let token = IteratorToken {
            stream: "logs".into(),
            stream_created_ms: 1,
            shard_index: 2,
            position: 3,
            issued_ms: 4,
        };
        let text = token.encode();
        assert_eq!(IteratorToken::decode(&text), Some(token));
        let mut tampered = text.into_bytes();
        tampered[5] ^= 1;
        assert_eq!(
            IteratorToken::decode(&String::from_utf8_lossy(&tampered)),
            None
        );
        assert_eq!(IteratorToken::decode(""), None);
        assert_eq!(IteratorToken::decode("AAAA"), None);
    }

    #[test]
    fn tokens_have_the_length_and_prefix_of_kinesis_iterators() {
        for name in ["s", "a-stream-name-of-29-characters", &"n".repeat(128)] {
            let token = IteratorToken {
                stream: name.to_owned(),
                stream_created_ms: 1,
                shard_index: 2,
                position: 3,
                issued_ms: 4,
            };
            let bytes = BASE64.decode_to_vec(token.encode()).unwrap_or_default();
            assert_eq!(bytes.len(), 152 + (name.len() + 2) / 16 * 16, "{name}");
            assert_eq!(bytes[..8], [0, 0, 0, 0, 0, 0, 0, 1]);
            assert_eq!(IteratorToken::decode(&token.encode()), Some(token));
        }
    }
}
