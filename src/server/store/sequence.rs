//! Sequence numbers: 56 decimal digits, as Kinesis's are, increasing within a shard.
//!
//! Ours encode, in order: `49`, the shard's creation time (seconds), the shard's
//! index, the record's position in the shard, and its arrival time (ms). Clients
//! compare them as numbers (the KCL as BigIntegers) and as strings; within a shard
//! everything before the position is fixed, so both orders are the records' order.
//! A sequence number can thus be checked against the shard it is used with, as
//! Kinesis does ("It encodes shardId-000000000001, while it was used in a call to a
//! shard with shardId-000000000000").

use super::log::Position;
use crate::server::clock::Millis;

const PREFIX: &str = "49";
const CREATED_DIGITS: usize = 10;
const SHARD_DIGITS: usize = 12;
const POSITION_DIGITS: usize = 19;
const ARRIVAL_DIGITS: usize = 13;
const SHARD_AT: usize = PREFIX.len() + CREATED_DIGITS;
const POSITION_AT: usize = SHARD_AT + SHARD_DIGITS;
const LEN: usize = POSITION_AT + POSITION_DIGITS + ARRIVAL_DIGITS;
const _: () = assert!(LEN == 56);

/// The sequence number of the record at `position` in shard number `shard_index`
/// (created at `shard_created_ms`), which arrived at `arrival_ms`.
pub fn format(
    shard_index: u32,
    shard_created_ms: Millis,
    position: Position,
    arrival_ms: Millis,
) -> String {
    let created = (shard_created_ms.max(0) / 1000) % 10i64.pow(CREATED_DIGITS as u32);
    let position = position % 10u64.pow(POSITION_DIGITS as u32);
    let arrival = arrival_ms.max(0) % 10i64.pow(ARRIVAL_DIGITS as u32);
    format!(
        "{PREFIX}{created:0CREATED_DIGITS$}{shard_index:0SHARD_DIGITS$}{position:0POSITION_DIGITS$}{arrival:0ARRIVAL_DIGITS$}"
    )
}

/// The (shard index, position) a sequence number encodes, if it is one of ours.
pub fn parse(text: &str) -> Option<(u32, Position)> {
    if text.len() != LEN || !text.starts_with(PREFIX) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shard = text[SHARD_AT..POSITION_AT].parse().ok()?;
    let position = text[POSITION_AT..POSITION_AT + POSITION_DIGITS]
        .parse()
        .ok()?;
    Some((shard, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_six_digits_that_round_trip_and_order_by_position_whatever_the_clock() {
        let created = 1_764_000_000_123;
        let a = format(3, created, 9, 1_764_000_100_000);
        // A later record whose arrival clock went backwards still sorts after.
        let b = format(3, created, 10, 1_764_000_000_500);
        assert_eq!(a.len(), 56);
        assert_eq!(parse(&a), Some((3, 9)));
        assert_eq!(parse(&b), Some((3, 10)));
        // Equal-length digit strings: string order is numeric order.
        assert!(a < b);
        assert!(crate::kinesis::SequenceNumber::new(&a).is_ok());
        assert_eq!(parse("12"), None);
        assert_eq!(parse(&format!("{a}0")), None);
    }
}
