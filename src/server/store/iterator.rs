//! Shard iterators: opaque tokens naming a stream, a shard, a position and an issue time.
//!
//! The token is base64 of a small binary layout with a checksum, so a mangled or
//! invented iterator is recognised and refused with `InvalidArgumentException`.

use crate::kinesis::digest::md5;
use base64_simd::STANDARD as BASE64;

use super::log::Position;
use crate::server::clock::Millis;

const VERSION: u8 = 1;
const CHECKSUM_LEN: usize = 8;

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
        let mut bytes = Vec::with_capacity(40 + self.stream.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.stream_created_ms.to_be_bytes());
        bytes.extend_from_slice(&self.shard_index.to_be_bytes());
        bytes.extend_from_slice(&self.position.to_be_bytes());
        bytes.extend_from_slice(&self.issued_ms.to_be_bytes());
        bytes.extend_from_slice(self.stream.as_bytes());
        let checksum = md5(&bytes);
        bytes.extend_from_slice(&checksum[..CHECKSUM_LEN]);
        BASE64.encode_to_string(bytes)
    }

    pub fn decode(text: &str) -> Option<IteratorToken> {
        let bytes = BASE64.decode_to_vec(text).ok()?;
        let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(CHECKSUM_LEN)?)?;
        if md5(body)[..CHECKSUM_LEN] != *checksum || body.first() != Some(&VERSION) {
            return None;
        }
        let field = |at: usize, len: usize| body.get(at..at + len);
        let stream_created_ms = i64::from_be_bytes(field(1, 8)?.try_into().ok()?);
        let shard_index = u32::from_be_bytes(field(9, 4)?.try_into().ok()?);
        let position = u64::from_be_bytes(field(13, 8)?.try_into().ok()?);
        let issued_ms = i64::from_be_bytes(field(21, 8)?.try_into().ok()?);
        let stream = String::from_utf8(body.get(29..)?.to_vec()).ok()?;
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
}
