//! Fitting a record to the limit the stream takes, by the flow's `oversize` policy.
//!
//! The framer already cuts lines to `max_record_bytes`; this is the second gate, for
//! what it cannot know: the stream's own limit (learned from the stream, possibly lower
//! than the config's), the partition key's share of it, and records that transforms
//! made longer. Without it such records would reach the producer and be dead-lettered
//! for a size the config accepted.

use bytes::{Bytes, BytesMut};

use crate::config::Oversize;

/// What a record became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fitted {
    /// One record to send: nearly every line, and no allocation for it.
    One(Bytes),
    /// Several records to send, in order, all under one partition key.
    Parts(Vec<Bytes>),
    /// Dropped by `oversize = "skip"`.
    Skipped,
}

/// Fits `data`, sent under a key of `key_len` bytes, to `limit` bytes (key plus data).
/// `continued` says the record is a split piece with more to come: it ends with
/// `marker`, and so does every piece it is cut into. Returns what to send and whether
/// the record was over the limit.
pub fn fit(
    data: Bytes,
    key_len: usize,
    limit: usize,
    policy: Oversize,
    marker: &[u8],
    continued: bool,
) -> (Fitted, bool) {
    let room = limit.saturating_sub(key_len);
    let tail = if continued { marker.len() } else { 0 };
    if data.len() + tail <= room {
        let record = if continued {
            with_marker(&data, marker)
        } else {
            data
        };
        return (Fitted::One(record), false);
    }
    let fitted = match policy {
        Oversize::Skip => Fitted::Skipped,
        Oversize::Truncate => Fitted::One(data.slice(..room.saturating_sub(tail))),
        Oversize::Split => {
            let piece = room.saturating_sub(marker.len()).max(1);
            let count = data.len().div_ceil(piece);
            let records = (0..count)
                .map(|i| {
                    let chunk = data.slice(i * piece..((i + 1) * piece).min(data.len()));
                    if i + 1 < count || continued {
                        with_marker(&chunk, marker)
                    } else {
                        chunk
                    }
                })
                .collect();
            Fitted::Parts(records)
        }
    };
    (fitted, true)
}

fn with_marker(data: &[u8], marker: &[u8]) -> Bytes {
    let mut joined = BytesMut::with_capacity(data.len() + marker.len());
    joined.extend_from_slice(data);
    joined.extend_from_slice(marker);
    joined.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARK: &[u8] = b"<+>";

    fn records(fitted: Fitted) -> Vec<Vec<u8>> {
        match fitted {
            Fitted::One(record) => vec![record.to_vec()],
            Fitted::Parts(records) => records.into_iter().map(|r| r.to_vec()).collect(),
            Fitted::Skipped => panic!("skipped"),
        }
    }

    #[test]
    fn a_record_within_the_limit_is_unchanged() {
        let (fitted, over) = fit(
            Bytes::from_static(b"abcdef"),
            4,
            10,
            Oversize::Split,
            MARK,
            false,
        );
        assert!(!over);
        assert_eq!(records(fitted), [b"abcdef".to_vec()]);
    }

    #[test]
    fn split_pieces_fit_with_their_marker_and_join_back() {
        let data = Bytes::from(b"0123456789abcdefghij".to_vec());
        // 16 bytes with a 4-byte key leave 12 for data: pieces of 9 plus the marker.
        let (fitted, over) = fit(data.clone(), 4, 16, Oversize::Split, MARK, false);
        assert!(over);
        let pieces = records(fitted);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p.len() + 4 <= 16));
        assert!(pieces[..2].iter().all(|p| p.ends_with(MARK)));
        assert!(!pieces[2].ends_with(MARK));
        let joined: Vec<u8> = pieces
            .iter()
            .flat_map(|p| p.strip_suffix(MARK).unwrap_or(p).to_vec())
            .collect();
        assert_eq!(joined, data.to_vec());
    }

    #[test]
    fn a_piece_with_more_to_come_keeps_its_marker_when_cut_again() {
        let (fitted, _) = fit(
            Bytes::from_static(b"0123456789"),
            0,
            8,
            Oversize::Split,
            MARK,
            true,
        );
        let pieces = records(fitted);
        assert!(
            pieces.iter().all(|p| p.ends_with(MARK) && p.len() <= 8),
            "{pieces:?}"
        );
        // Under the limit, a continued piece still gets its marker.
        let (fitted, over) = fit(Bytes::from_static(b"01"), 0, 8, Oversize::Split, MARK, true);
        assert!(!over);
        assert_eq!(records(fitted), [b"01<+>".to_vec()]);
    }

    #[test]
    fn truncate_and_skip() {
        let data = Bytes::from_static(b"0123456789");
        let (fitted, over) = fit(data.clone(), 2, 8, Oversize::Truncate, MARK, false);
        assert!(over);
        assert_eq!(records(fitted), [b"012345".to_vec()]);
        assert_eq!(
            fit(data, 2, 8, Oversize::Skip, MARK, false).0,
            Fitted::Skipped
        );
    }
}
