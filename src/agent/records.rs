//! Frames into records: each whole line through the flow's transforms, a partition
//! key chosen (the pieces of a split line share their first piece's), and sized to
//! the stream's record limit by the `oversize` policy. For a Firehose delivery
//! stream, every line's record ends with its newline: Firehose's objects are its
//! records end to end, so they read back as the lines did. No I/O: the flow reads,
//! this decides what is sent, and what is dropped is acknowledged at once.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::ack::ReadingId;
use super::partition;
use super::sizing::{self, Fitted};
use super::stats::FlowStats;
use super::tail::framing::{Framed, Piece};
use super::transform::{self, Origin};
use crate::config::{FlowConfig, Oversize};
use crate::kinesis::UserRecord;
use crate::kinesis::spread_keys::{SPREAD_KEY_LEN, random_key};

/// What a record's acknowledgement moves: a byte range of one reading.
#[derive(Debug, Clone)]
pub struct Token {
    pub reading: ReadingId,
    pub range: Range<u64>,
    /// For a record cut into parts after framing (to fit the stream's limit): the
    /// parts not yet acknowledged. The range moves only with the last of them.
    pub group: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

impl Token {
    /// Whether this acknowledgement completes its range (always, unless it is one of
    /// several parts and others are still out).
    pub fn completes(&self) -> bool {
        self.group
            .as_ref()
            .is_none_or(|left| left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1)
    }
}

/// Where frames come from.
pub struct Source<'a> {
    pub reading: ReadingId,
    pub file: &'a str,
    /// When they were read (epoch ms), for transforms that stamp it.
    pub time_ms: i64,
}

/// What one batch of frames became.
#[derive(Debug, Default)]
pub struct Made {
    pub records: Vec<(UserRecord, Token)>,
    /// Ranges that produced no record (empty lines, skipped or dropped ones): done.
    pub handled: Vec<(ReadingId, Range<u64>)>,
}

pub struct RecordMaker {
    config: FlowConfig,
    host: String,
    stats: Arc<FlowStats>,
    /// The partition key of a split line whose next piece has not been read yet.
    split_keys: HashMap<ReadingId, String>,
}

impl RecordMaker {
    pub fn new(config: FlowConfig, host: String, stats: Arc<FlowStats>) -> Self {
        RecordMaker {
            config,
            host,
            stats,
            split_keys: HashMap::new(),
        }
    }

    /// Turns `out`'s frames into records no larger than `limit` (partition key plus
    /// data). Records whose key only has to spread them leave it to the producer.
    pub fn make(&mut self, source: &Source<'_>, out: Framed, limit: usize) -> Made {
        let newline = self.config.destination.is_firehose();
        // Room for the newline a Firehose record ends with.
        let limit = limit.saturating_sub(usize::from(newline)).max(1);
        FlowStats::add(&self.stats.oversize_records, out.oversize);
        let mut handled: Vec<(ReadingId, Range<u64>)> = out
            .dropped
            .into_iter()
            .map(|r| (source.reading, r))
            .collect();
        let mut batch = Vec::with_capacity(out.frames.len());
        for frame in out.frames {
            if frame.data.is_empty() {
                FlowStats::add(&self.stats.empty_lines, 1);
                handled.push((source.reading, frame.range));
                continue;
            }
            let piece = frame.piece;
            // The pieces of a split line are sent as read: a transform cannot parse half
            // a line, and the marker must stay at the end of what the consumer joins.
            let data = if piece == Piece::Whole {
                let origin = Origin {
                    host: &self.host,
                    file: source.file,
                    offset: frame.range.start,
                    time_ms: source.time_ms,
                };
                let transformed = transform::apply(&self.config.transforms, frame.data, &origin);
                if transformed.failures > 0 {
                    FlowStats::add(&self.stats.transform_failures, 1);
                }
                transformed.data
            } else {
                frame.data
            };
            // Every piece of a line goes under the key its first piece got: one shard,
            // in order.
            let kept = if piece.continues() {
                if piece.continued() {
                    self.split_keys.get(&source.reading).cloned()
                } else {
                    self.split_keys.remove(&source.reading)
                }
            } else {
                None
            };
            let mut key = match kept {
                Some(key) => Some(key),
                None => {
                    let chosen = partition::choose(
                        &self.config.partition_key,
                        &data,
                        source.file,
                        &self.host,
                    );
                    if chosen.fell_back {
                        FlowStats::add(&self.stats.key_fallbacks, 1);
                    }
                    chosen.key
                }
            };
            if piece == Piece::First {
                // Pieces must share a key, so a spread line gets a concrete one now.
                let first = key.get_or_insert_with(|| random_key(&mut rand::rng()));
                self.split_keys.insert(source.reading, first.clone());
            }
            let policy = if piece == Piece::Whole {
                self.config.oversize
            } else {
                Oversize::Split
            };
            let (fitted, over) = sizing::fit(
                data,
                key.as_ref().map_or(SPREAD_KEY_LEN, String::len),
                limit,
                policy,
                self.config.split_marker.as_bytes(),
                piece.continued(),
            );
            if over {
                FlowStats::add(&self.stats.oversize_records, 1);
            }
            let (mut one, mut parts);
            let records: &mut [bytes::Bytes] = match fitted {
                Fitted::Skipped => {
                    handled.push((source.reading, frame.range));
                    continue;
                }
                Fitted::One(record) => {
                    one = record;
                    std::slice::from_mut(&mut one)
                }
                Fitted::Parts(records) => {
                    parts = records;
                    &mut parts
                }
            };
            if newline
                && !piece.continued()
                && let Some(last) = records.last_mut()
            {
                *last = with_newline(last);
            }
            // Cut again, the parts cover one range: it is acknowledged with the last.
            let group = (records.len() > 1)
                .then(|| Arc::new(std::sync::atomic::AtomicUsize::new(records.len())));
            let token = || Token {
                reading: source.reading,
                range: frame.range.clone(),
                group: group.clone(),
            };
            if records.len() > 1 && key.is_none() {
                // The parts of one line go to one shard, in order: one key for all.
                key = Some(random_key(&mut rand::rng()));
            }
            for data in records.iter_mut().map(std::mem::take) {
                let record = match &key {
                    Some(key) => UserRecord::new(key.clone(), data),
                    None => UserRecord::spread(data),
                };
                batch.push((record, token()));
            }
        }
        FlowStats::add(&self.stats.records, batch.len() as u64);
        Made {
            records: batch,
            handled,
        }
    }
}

/// `data` and a newline, in one new buffer.
fn with_newline(data: &bytes::Bytes) -> bytes::Bytes {
    let mut line = bytes::BytesMut::with_capacity(data.len() + 1);
    line.extend_from_slice(data);
    line.extend_from_slice(b"\n");
    line.freeze()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::agent::tail::framing::Frame;
    use crate::config::Config;

    fn maker(flow: &str) -> RecordMaker {
        let text = format!(
            "[[flows]]\nname = \"f\"\nstream = \"s\"\ninclude = [\"/tmp/*.log\"]\n{flow}\n"
        );
        let config = Config::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"));
        RecordMaker::new(config.flows[0].clone(), "host-1".into(), Arc::default())
    }

    fn firehose_maker(flow: &str) -> RecordMaker {
        let text = format!(
            "[[flows]]\nname = \"f\"\ndelivery_stream = \"d\"\ninclude = [\"/tmp/*.log\"]\n{flow}\n"
        );
        let config = Config::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"));
        RecordMaker::new(config.flows[0].clone(), "host-1".into(), Arc::default())
    }

    /// A Firehose object is its records end to end, so each line's record ends with
    /// the newline, and a line cut to fit ends with it only after its last part.
    #[test]
    fn firehose_records_end_with_their_lines_newline() {
        let mut maker = firehose_maker("split_marker = \"\"");
        let out = Framed {
            frames: vec![
                frame("one", 0..4, Piece::Whole),
                frame("abcdefghij", 4..15, Piece::Whole),
            ],
            ..Framed::default()
        };
        let made = maker.make(&source(1), out, SPREAD_KEY_LEN + 7);
        let data: Vec<&[u8]> = made.records.iter().map(|(r, _)| &r.data[..]).collect();
        let joined: Vec<u8> = data.concat();
        assert_eq!(joined, b"one\nabcdefghij\n");
        assert_eq!(data[0], b"one\n");
        assert!(data.len() > 2, "the long line is cut: {data:?}");
        assert!(data[1..data.len() - 1].iter().all(|d| !d.ends_with(b"\n")));
        assert!(made.records.iter().all(|(_, token)| token.range.start < 15));
    }

    fn frame(data: &str, range: Range<u64>, piece: Piece) -> Frame {
        Frame {
            data: Bytes::from(data.to_owned()),
            range,
            piece,
        }
    }

    fn source(reading: ReadingId) -> Source<'static> {
        Source {
            reading,
            file: "/tmp/a.log",
            time_ms: 0,
        }
    }

    /// A line split in pieces across reads goes under one key (one shard, in order),
    /// and only its last piece's acknowledgement moves the checkpoint past it.
    #[test]
    fn pieces_of_a_split_line_share_their_first_pieces_key() {
        let mut maker = maker("partition_key = \"random\"");
        let first = Framed {
            frames: vec![frame("abc", 0..3, Piece::First)],
            ..Framed::default()
        };
        let middle = Framed {
            frames: vec![frame("de", 0..5, Piece::Middle)],
            ..Framed::default()
        };
        let last = Framed {
            frames: vec![
                frame("f", 0..7, Piece::Last),
                frame("next", 7..12, Piece::Whole),
            ],
            ..Framed::default()
        };
        let a = maker.make(&source(1), first, 1 << 20);
        let b = maker.make(&source(1), middle, 1 << 20);
        let c = maker.make(&source(1), last, 1 << 20);
        let keys: Vec<&str> = [&a, &b, &c]
            .into_iter()
            .flat_map(|made| &made.records)
            .map(|(r, _)| r.partition_key.as_str())
            .collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(keys[0], keys[1], "the pieces share a key");
        assert_eq!(keys[0], keys[2], "the pieces share a key");
        assert_ne!(keys[2], keys[3], "the next line gets a key of its own");
        assert!(
            maker.split_keys.is_empty(),
            "the key is forgotten with the last piece"
        );
    }

    #[test]
    fn a_random_key_is_left_to_the_producer() {
        let mut maker = maker("partition_key = \"random\"");
        let out = Framed {
            frames: vec![frame("x", 0..2, Piece::Whole)],
            ..Framed::default()
        };
        let made = maker.make(&source(1), out, 1 << 20);
        assert!(made.records[0].0.is_spread());
        let mut fixed = self::maker("partition_key = { fixed = \"k\" }");
        let out = Framed {
            frames: vec![frame("x", 0..2, Piece::Whole)],
            ..Framed::default()
        };
        assert_eq!(
            fixed.make(&source(1), out, 1 << 20).records[0]
                .0
                .partition_key,
            "k"
        );
    }

    #[test]
    fn empty_and_dropped_ranges_are_handled_at_once_and_send_nothing() {
        let mut maker = maker("");
        let out = Framed {
            frames: vec![
                frame("", 0..1, Piece::Whole),
                frame("x", 1..3, Piece::Whole),
            ],
            dropped: std::iter::once(3..10).collect(),
            oversize: 1,
        };
        let made = maker.make(&source(7), out, 1 << 20);
        assert_eq!(made.records.len(), 1);
        assert_eq!(made.records[0].1.range, 1..3);
        assert_eq!(made.handled, vec![(7, 3..10), (7, 0..1)]);
    }

    /// A record over the limit is cut by the `split` policy into parts that complete
    /// their range together.
    #[test]
    fn a_record_over_the_limit_is_cut_into_parts_that_complete_together() {
        let mut maker = maker("oversize = \"split\"");
        let line = "y".repeat(100);
        let out = Framed {
            frames: vec![frame(&line, 0..101, Piece::Whole)],
            ..Framed::default()
        };
        let key_room = 40;
        let made = maker.make(&source(1), out, key_room + 30);
        assert!(made.records.len() > 1, "{}", made.records.len());
        let key = &made.records[0].0.partition_key;
        assert!(!key.is_empty(), "the parts of a line get a concrete key");
        assert!(made.records.iter().all(|(r, _)| &r.partition_key == key));
        let done: Vec<bool> = made.records.iter().map(|(_, t)| t.completes()).collect();
        assert_eq!(done.iter().filter(|d| **d).count(), 1, "{done:?}");
        assert_eq!(done.last(), Some(&true));
    }
}
