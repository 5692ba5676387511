//! Turning a file's bytes into records: lines, multi-line records, size limits.
//!
//! The framer is fed chunks as they are read and keeps only what it must (the current
//! unfinished line or record), so memory stays bounded whatever the line length: a
//! 5 MB line is split, truncated or skipped as it streams past, never held whole.
//! Bytes are shipped as they are; only a trailing `\r` before `\n` is dropped.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::config::Oversize;

/// A framed record and the byte range of the file it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub data: Bytes,
    pub range: Range<u64>,
    pub piece: Piece,
}

impl Frame {
    fn whole(data: Bytes, range: Range<u64>) -> Frame {
        Frame {
            data,
            range,
            piece: Piece::Whole,
        }
    }
}

/// Where a frame sits in a line that `oversize = "split"` cut into pieces: the pieces
/// of one line go out with one partition key (one shard, in order) and every piece but
/// the last carries the split marker, so a consumer can join them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Piece {
    #[default]
    Whole,
    First,
    Middle,
    Last,
}

impl Piece {
    /// More pieces of the same line follow.
    pub fn continued(self) -> bool {
        matches!(self, Piece::First | Piece::Middle)
    }

    /// A piece came before this one.
    pub fn continues(self) -> bool {
        matches!(self, Piece::Middle | Piece::Last)
    }
}

/// What the framer produced from a chunk: records, and ranges dropped on purpose
/// (oversize skip/truncate, header lines) that still count as handled for checkpoints.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Framed {
    pub frames: Vec<Frame>,
    pub dropped: Vec<Range<u64>>,
    pub oversize: u64,
}

/// Settings that shape records.
#[derive(Debug, Clone)]
pub struct FramingConfig {
    pub max_record_bytes: usize,
    /// Bytes the sender appends to every split piece but the last: pieces are cut
    /// this much shorter, so a piece with its marker still fits.
    pub split_marker_len: usize,
    pub oversize: Oversize,
    pub multiline_start: Option<regex::bytes::Regex>,
    pub skip_header_lines: u64,
}

/// The state between chunks.
#[derive(Debug)]
pub struct Framer {
    config: FramingConfig,
    /// Bytes of the current line not yet ended by `\n`.
    line: BytesMut,
    /// File offset where `line` starts.
    line_start: u64,
    /// The current line passed the limit: how it is being handled.
    oversized: Option<OversizedLine>,
    /// A multi-line record being built, and where it started.
    record: BytesMut,
    record_range: Option<Range<u64>>,
    lines_seen: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OversizedLine {
    /// Emitting chunks of `max_record_bytes` (split).
    Splitting,
    /// The first `max_record_bytes` were emitted; discarding the rest (truncate).
    Discarding { from: u64 },
    /// Discarding the whole line, which started at `from` (skip).
    Skipping { from: u64 },
}

impl Framer {
    /// A framer for a file whose next byte is at `offset`.
    pub fn new(config: FramingConfig, offset: u64) -> Self {
        Framer {
            config,
            line: BytesMut::new(),
            line_start: offset,
            oversized: None,
            record: BytesMut::new(),
            record_range: None,
            lines_seen: if offset == 0 { 0 } else { u64::MAX },
        }
    }

    /// Starts over at `offset` with the same configuration, forgetting what was held
    /// (the file was replaced in place).
    pub fn restart(&mut self, offset: u64) {
        *self = Framer::new(self.config.clone(), offset);
    }

    /// Offset just past the last byte fed.
    pub fn offset(&self) -> u64 {
        self.line_start + self.line.len() as u64
    }

    /// Bytes held that are not yet part of an emitted record.
    pub fn pending_bytes(&self) -> usize {
        self.line.len() + self.record.len()
    }

    /// Feeds the next bytes of the file. A line that lies whole within the chunk becomes
    /// a slice of it (no copy, no allocation); only lines spanning chunks are copied.
    ///
    /// Lines are cut from `chunk` by position: one count on the shared buffer per line,
    /// not a slice of the rest per line as well.
    pub fn feed(&mut self, chunk: &Bytes, out: &mut Framed) {
        let mut from = 0;
        for at in memchr::memchr_iter(b'\n', chunk) {
            if self.line.is_empty() && self.oversized.is_none() && at - from <= self.max() + 1 {
                self.complete_line(chunk.slice(from..at), out);
            } else {
                self.take_line_bytes(&chunk[from..at], out);
                self.end_line(out);
            }
            from = at + 1;
        }
        self.take_line_bytes(&chunk[from..], out);
    }

    /// A whole line (without its `\n`) that starts at `self.line_start` and never passed
    /// the limit while streaming.
    fn complete_line(&mut self, mut line: Bytes, out: &mut Framed) {
        let start = self.line_start;
        let end = start + line.len() as u64 + 1;
        self.line_start = end;
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        self.lines_seen = self.lines_seen.saturating_add(1);
        if line.len() > self.max() {
            // Exactly one byte over after dropping '\r': apply the policy to the whole line.
            out.oversize += 1;
            self.flush_record(out);
            let max = self.max();
            match self.config.oversize {
                Oversize::Skip => out.dropped.push(start..end),
                Oversize::Truncate => {
                    out.frames
                        .push(Frame::whole(line.slice(..max), start..start + max as u64));
                    out.dropped.push(start + max as u64..end);
                }
                Oversize::Split => {
                    let cut = self.piece_bytes();
                    out.frames.push(Frame {
                        data: line.slice(..cut),
                        range: start..start + cut as u64,
                        piece: Piece::First,
                    });
                    out.frames.push(Frame {
                        data: line.slice(cut..),
                        range: start + cut as u64..end,
                        piece: Piece::Last,
                    });
                }
            }
            return;
        }
        if self.lines_seen <= self.config.skip_header_lines {
            out.dropped.push(start..end);
            return;
        }
        self.add_line(line, start..end, out);
    }

    fn max(&self) -> usize {
        self.config.max_record_bytes.max(1)
    }

    /// The length of a split piece before its marker.
    fn piece_bytes(&self) -> usize {
        self.max()
            .saturating_sub(self.config.split_marker_len)
            .max(1)
    }

    /// Adds bytes of the current (unfinished) line, applying the size limit as they come.
    fn take_line_bytes(&mut self, bytes: &[u8], out: &mut Framed) {
        if bytes.is_empty() {
            return;
        }
        match self.oversized {
            Some(OversizedLine::Discarding { .. }) | Some(OversizedLine::Skipping { .. }) => {
                self.line_start += bytes.len() as u64;
                return;
            }
            Some(OversizedLine::Splitting) | None => {}
        }
        self.line.extend_from_slice(bytes);
        // Keep one byte beyond the limit in hand: it may be the '\r' of "\r\n".
        while self.line.len() > self.max() + 1 {
            let max = self.max();
            let first = self.oversized.is_none();
            if first {
                out.oversize += 1;
                self.flush_record(out);
            }
            match self.config.oversize {
                Oversize::Split => {
                    self.oversized = Some(OversizedLine::Splitting);
                    let piece = if first { Piece::First } else { Piece::Middle };
                    self.emit_first(self.piece_bytes(), piece, out);
                }
                Oversize::Truncate => {
                    self.emit_first(max, Piece::Whole, out);
                    self.oversized = Some(OversizedLine::Discarding {
                        from: self.line_start,
                    });
                    self.line_start += self.line.len() as u64;
                    self.line.clear();
                    return;
                }
                Oversize::Skip => {
                    self.oversized = Some(OversizedLine::Skipping {
                        from: self.line_start,
                    });
                    self.line_start += self.line.len() as u64;
                    self.line.clear();
                    return;
                }
            }
        }
    }

    /// A `\n` ended the current line (the newline byte is at `self.offset()`).
    /// Sends the first `max` bytes of an oversized line as a record of their own.
    fn emit_first(&mut self, max: usize, piece: Piece, out: &mut Framed) {
        let data = self.line.split_to(max).freeze();
        let start = self.line_start;
        self.line_start += max as u64;
        out.frames.push(Frame {
            data,
            range: start..self.line_start,
            piece,
        });
    }

    fn end_line(&mut self, out: &mut Framed) {
        let end = self.offset() + 1;
        let oversized = self.oversized.take();
        let line = std::mem::take(&mut self.line).freeze();
        match oversized {
            Some(OversizedLine::Skipping { from }) | Some(OversizedLine::Discarding { from }) => {
                self.line_start = end;
                self.lines_seen = self.lines_seen.saturating_add(1);
                out.dropped.push(from..end);
            }
            Some(OversizedLine::Splitting) => {
                // The last piece of a split line (possibly empty: the newline alone).
                let start = self.line_start;
                self.line_start = end;
                self.lines_seen = self.lines_seen.saturating_add(1);
                let mut line = line;
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                // Never empty: a piece is cut only while two or more bytes follow it.
                out.frames.push(Frame {
                    data: line,
                    range: start..end,
                    piece: Piece::Last,
                });
            }
            None => self.complete_line(line, out),
        }
    }

    /// Adds a complete line to the multi-line record, or emits it as its own record.
    fn add_line(&mut self, line: Bytes, range: Range<u64>, out: &mut Framed) {
        let Some(start_pattern) = &self.config.multiline_start else {
            out.frames.push(Frame::whole(line, range));
            return;
        };
        let starts_record = start_pattern.is_match(&line);
        if starts_record || self.record_range.is_none() {
            self.flush_record(out);
            self.record = BytesMut::from(&line[..]);
            self.record_range = Some(range);
            return;
        }
        if self.record.len() + 1 + line.len() > self.max() {
            // The record would pass the limit: it ends here, the line starts the next one.
            out.oversize += 1;
            self.flush_record(out);
            self.record = BytesMut::from(&line[..]);
            self.record_range = Some(range);
            return;
        }
        self.record.extend_from_slice(b"\n");
        self.record.extend_from_slice(&line);
        if let Some(r) = self.record_range.as_mut() {
            r.end = range.end;
        }
    }

    /// Emits the multi-line record being built, if any.
    pub fn flush_record(&mut self, out: &mut Framed) {
        if let Some(range) = self.record_range.take() {
            let data = std::mem::take(&mut self.record).freeze();
            out.frames.push(Frame::whole(data, range));
        }
    }

    /// The file has been idle: emit the open multi-line record, and with `partial`
    /// also a last line that has no newline yet.
    pub fn flush_idle(&mut self, partial: bool, out: &mut Framed) {
        self.flush_record(out);
        if partial && !self.line.is_empty() && self.oversized.is_none() {
            let line = std::mem::take(&mut self.line).freeze();
            let start = self.line_start;
            self.line_start += line.len() as u64;
            out.frames.push(Frame::whole(line, start..self.line_start));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize, oversize: Oversize) -> FramingConfig {
        FramingConfig {
            max_record_bytes: max,
            split_marker_len: 0,
            oversize,
            multiline_start: None,
            skip_header_lines: 0,
        }
    }

    fn frame_all(framer: &mut Framer, chunks: &[&[u8]]) -> Framed {
        let mut out = Framed::default();
        for chunk in chunks {
            framer.feed(&Bytes::copy_from_slice(chunk), &mut out);
        }
        out
    }

    fn texts(out: &Framed) -> Vec<String> {
        out.frames
            .iter()
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
            .collect()
    }

    /// Every byte of the input is covered exactly once by frames and dropped ranges.
    fn assert_covers(out: &Framed, from: u64, to: u64) {
        let mut ranges: Vec<Range<u64>> = out
            .frames
            .iter()
            .map(|f| f.range.clone())
            .chain(out.dropped.iter().cloned())
            .collect();
        ranges.sort_by_key(|r| r.start);
        let mut at = from;
        for r in ranges {
            assert_eq!(r.start, at, "gap or overlap at {at}");
            at = r.end;
        }
        assert_eq!(at, to);
    }

    #[test]
    fn lines_split_across_chunks_and_crlf() {
        let mut framer = Framer::new(config(100, Oversize::Split), 0);
        let out = frame_all(&mut framer, &[b"one\r\ntw", b"o\nthr", b"ee"]);
        assert_eq!(texts(&out), ["one", "two"]);
        assert_eq!(out.frames[1].range, 5..9);
        assert_eq!(framer.offset(), 14);
        let mut idle = Framed::default();
        framer.flush_idle(true, &mut idle);
        assert_eq!(texts(&idle), ["three"]);
        assert_eq!(idle.frames[0].range, 9..14);
    }

    #[test]
    fn invalid_utf8_and_binary_pass_through() {
        let mut framer = Framer::new(config(100, Oversize::Split), 0);
        let out = frame_all(&mut framer, &[b"\xff\xfe\x00bin\n"]);
        assert_eq!(out.frames[0].data.as_ref(), b"\xff\xfe\x00bin");
    }

    #[test]
    fn oversize_split_truncate_skip() {
        let line = [b"a".repeat(25), b"\n".to_vec(), b"ok\n".to_vec()].concat();
        let mut split = Framer::new(config(10, Oversize::Split), 0);
        let out = frame_all(&mut split, &[&line[..7], &line[7..]]);
        assert_eq!(texts(&out), ["aaaaaaaaaa", "aaaaaaaaaa", "aaaaa", "ok"]);
        assert_eq!(out.oversize, 1);
        assert_covers(&out, 0, 29);

        let mut truncate = Framer::new(config(10, Oversize::Truncate), 0);
        let out = frame_all(&mut truncate, &[&line]);
        assert_eq!(texts(&out), ["aaaaaaaaaa", "ok"]);
        assert_covers(&out, 0, 29);

        let mut skip = Framer::new(config(10, Oversize::Skip), 0);
        let out = frame_all(&mut skip, &[&line[..3], &line[3..20], &line[20..]]);
        assert_eq!(texts(&out), ["ok"]);
        assert_eq!(out.oversize, 1);
        assert_covers(&out, 0, 29);
    }

    /// The pieces of a split line say where they sit, and leave room for the marker.
    #[test]
    fn split_pieces_are_marked_first_middle_last_and_leave_room_for_the_marker() {
        let mut cfg = config(10, Oversize::Split);
        cfg.split_marker_len = 3;
        let line = [b"a".repeat(20), b"\n".to_vec(), b"ok\n".to_vec()].concat();
        let out = frame_all(&mut Framer::new(cfg.clone(), 0), &[&line[..5], &line[5..]]);
        let pieces: Vec<(usize, Piece)> =
            out.frames.iter().map(|f| (f.data.len(), f.piece)).collect();
        assert_eq!(
            pieces,
            [
                (7, Piece::First),
                (7, Piece::Middle),
                (6, Piece::Last),
                (2, Piece::Whole)
            ]
        );
        assert_covers(&out, 0, 24);
        // One byte over, seen whole in one chunk.
        let out = frame_all(&mut Framer::new(cfg, 0), &[b"abcdefghijk\n"]);
        let pieces: Vec<(usize, Piece)> =
            out.frames.iter().map(|f| (f.data.len(), f.piece)).collect();
        assert_eq!(pieces, [(7, Piece::First), (4, Piece::Last)]);
    }

    #[test]
    fn a_line_at_the_limit_with_crlf_is_not_oversize() {
        let mut framer = Framer::new(config(3, Oversize::Skip), 0);
        let out = frame_all(&mut framer, &[b"abc\r\nabcd\n"]);
        assert_eq!(texts(&out), ["abc"]);
        assert_eq!(out.oversize, 1);
        assert_covers(&out, 0, 10);
    }

    #[test]
    fn a_five_megabyte_line_streams_through_bounded_memory() {
        for policy in [Oversize::Split, Oversize::Truncate, Oversize::Skip] {
            let mut framer = Framer::new(config(1 << 20, policy), 0);
            let mut out = Framed::default();
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            for _ in 0..80 {
                framer.feed(&chunk, &mut out);
                assert!(
                    framer.pending_bytes() <= (1 << 20) + 1 + chunk.len(),
                    "{policy:?}"
                );
            }
            framer.feed(&Bytes::from_static(b"\n"), &mut out);
            let emitted: usize = out.frames.iter().map(|f| f.data.len()).sum();
            match policy {
                Oversize::Split => assert_eq!(emitted, 80 * 64 * 1024),
                Oversize::Truncate => assert_eq!(emitted, 1 << 20),
                Oversize::Skip => assert_eq!(emitted, 0),
            }
            assert_eq!(out.oversize, 1);
            assert_covers(&out, 0, 80 * 64 * 1024 + 1);
        }
    }

    #[test]
    fn multiline_records_start_at_the_pattern() {
        let mut cfg = config(1000, Oversize::Split);
        cfg.multiline_start = Some(regex::bytes::Regex::new(r"^\d{4}-").unwrap());
        let mut framer = Framer::new(cfg, 0);
        let input = b"2024-01-01 error\n  at a\n  at b\n2024-01-01 ok\n";
        let out = frame_all(&mut framer, &[input]);
        assert_eq!(texts(&out), ["2024-01-01 error\n  at a\n  at b"]);
        let mut idle = Framed::default();
        framer.flush_idle(false, &mut idle);
        assert_eq!(texts(&idle), ["2024-01-01 ok"]);
        let mut all = out;
        all.frames.extend(idle.frames);
        assert_covers(&all, 0, input.len() as u64);
    }

    #[test]
    fn header_lines_are_skipped_from_the_start_only() {
        let mut cfg = config(100, Oversize::Split);
        cfg.skip_header_lines = 1;
        let out = frame_all(&mut Framer::new(cfg.clone(), 0), &[b"a,b\n1,2\n"]);
        assert_eq!(texts(&out), ["1,2"]);
        assert_covers(&out, 0, 8);
        let resumed = frame_all(&mut Framer::new(cfg, 4), &[b"3,4\n"]);
        assert_eq!(texts(&resumed), ["3,4"]);
    }
}
