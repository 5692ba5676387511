//! Sequence numbers: decimal strings that increase within a shard.
//!
//! Ours encode the shard's index and the record's position in the shard, so a
//! sequence number can be checked against the shard it is used with, as Kinesis does
//! ("It encodes shardId-000000000001, while it was used in a call to a shard with
//! shardId-000000000000"). Fixed width keeps string order and numeric order equal.

use super::log::Position;

const PREFIX: &str = "49";
const SHARD_DIGITS: usize = 12;
const POSITION_DIGITS: usize = 20;
const LEN: usize = PREFIX.len() + SHARD_DIGITS + POSITION_DIGITS;

/// The sequence number of the record at `position` in shard number `shard_index`.
pub fn format(shard_index: u32, position: Position) -> String {
    format!("{PREFIX}{shard_index:0SHARD_DIGITS$}{position:0POSITION_DIGITS$}")
}

/// The (shard index, position) a sequence number encodes, if it is one of ours.
pub fn parse(text: &str) -> Option<(u32, Position)> {
    if text.len() != LEN || !text.starts_with(PREFIX) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shard = text[PREFIX.len()..PREFIX.len() + SHARD_DIGITS]
        .parse()
        .ok()?;
    let position = text[PREFIX.len() + SHARD_DIGITS..].parse().ok()?;
    Some((shard, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders_numerically() {
        let a = format(3, 9);
        let b = format(3, 10);
        assert_eq!(parse(&a), Some((3, 9)));
        assert!(a < b);
        assert_eq!(a.len(), b.len());
        assert!(crate::kinesis::SequenceNumber::new(&a).is_ok());
        assert_eq!(parse("12"), None);
        assert_eq!(parse(&format!("{a}0")), None);
    }
}
