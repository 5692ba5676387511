//! A delivery stream's buffer: the records taken and not yet delivered, in memory and,
//! with `--data-dir`, in a file beside it, so a restart (even kill -9) delivers them.
//!
//! The file is a run of frames (a 4-byte little-endian length, then the record),
//! appended before a put is answered. Delivery takes the buffer whole: its file is
//! renamed `inflight` and a new one begun, and `inflight` is removed once the
//! destination has the records. A restart reads `inflight` and then `buffer` back, so
//! a record is delivered at least once: twice only if the server stopped between
//! writing an object and removing `inflight`.
//!
//! A frame whose length has the top bit set is a marker, not a record: a delivery
//! stream reading a Kinesis stream writes its read position that way, in the same
//! write as the records read up to it, so a restart resumes after the last record
//! it kept. (A write cut short by a crash keeps its whole frames; records kept
//! without their marker are read again: delivered twice, never lost.) The latest
//! marker opens every new buffer file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::server::clock::Millis;

const BUFFER: &str = "buffer";
const INFLIGHT: &str = "inflight";
/// The top bit of a frame's length: a marker frame.
const MARKER: u32 = 1 << 31;

#[derive(Debug, Default)]
pub struct Buffer {
    data: Vec<u8>,
    ends: Vec<usize>,
    first_ms: Option<Millis>,
    /// Where records are kept across restarts (`None`: memory only).
    dir: Option<PathBuf>,
    file: Option<File>,
    /// The latest marker, written again at the head of each new file.
    marker: Option<Vec<u8>>,
}

/// Records taken out for delivery.
#[derive(Debug)]
pub struct Batch {
    pub data: Vec<u8>,
    ends: Vec<usize>,
    /// When its first record arrived (its objects' keys carry this hour).
    pub first_ms: Millis,
    inflight: Option<PathBuf>,
}

impl Batch {
    /// The records, in the order they were taken.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let record = &self.data[start..end];
            start = end;
            record
        })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The destination has every record: the batch's file goes.
    pub fn delivered(self) -> std::io::Result<()> {
        match &self.inflight {
            Some(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

impl Buffer {
    /// A buffer kept in `dir` (created if missing), holding what an earlier run left
    /// there undelivered; in memory only without `dir`.
    pub fn open(dir: Option<&Path>, now_ms: Millis) -> std::io::Result<Buffer> {
        let mut buffer = Buffer::default();
        let Some(dir) = dir else {
            return Ok(buffer);
        };
        std::fs::create_dir_all(dir)?;
        let mut records: Vec<Vec<u8>> = Vec::new();
        for name in [INFLIGHT, BUFFER] {
            let mut bytes = Vec::new();
            match File::open(dir.join(name)) {
                Ok(mut file) => file.read_to_end(&mut bytes)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e),
            };
            for frame in frames(&bytes) {
                match frame {
                    Frame::Record(record) => records.push(record.to_vec()),
                    Frame::Marker(marker) => buffer.marker = Some(marker.to_vec()),
                }
            }
        }
        // Rewritten as one buffer file, then the old ones go.
        let mut rewritten = Vec::new();
        if let Some(marker) = &buffer.marker {
            rewritten.extend_from_slice(&(marker.len() as u32 | MARKER).to_le_bytes());
            rewritten.extend_from_slice(marker);
        }
        for record in &records {
            rewritten.extend_from_slice(&(record.len() as u32).to_le_bytes());
            rewritten.extend_from_slice(record);
            buffer.data.extend_from_slice(record);
            buffer.ends.push(buffer.data.len());
        }
        let temp = dir.join(".buffer.tmp");
        std::fs::write(&temp, &rewritten)?;
        std::fs::rename(&temp, dir.join(BUFFER))?;
        let _ = std::fs::remove_file(dir.join(INFLIGHT));
        if !records.is_empty() {
            buffer.first_ms = Some(now_ms);
            tracing::info!(records = records.len(), dir = %dir.display(), "Firehose records buffered before the restart will be delivered");
        }
        buffer.file = Some(OpenOptions::new().append(true).open(dir.join(BUFFER))?);
        buffer.dir = Some(dir.to_owned());
        Ok(buffer)
    }

    /// Takes `records`: written to the file first, so an answered put survives a crash.
    pub fn push(&mut self, records: &[&[u8]], now_ms: Millis) -> std::io::Result<()> {
        self.push_marked(records, None, now_ms)
    }

    /// Takes `records` and, in the same write, `marker` (see the module's doc).
    pub fn push_marked(
        &mut self,
        records: &[&[u8]],
        marker: Option<&[u8]>,
        now_ms: Millis,
    ) -> std::io::Result<()> {
        if records.is_empty() && marker.is_none() {
            return Ok(());
        }
        if let Some(file) = &mut self.file {
            let mut frames = Vec::with_capacity(
                records.iter().map(|r| r.len() + 4).sum::<usize>()
                    + marker.map_or(0, |m| m.len() + 4),
            );
            for record in records {
                frames.extend_from_slice(&(record.len() as u32).to_le_bytes());
                frames.extend_from_slice(record);
            }
            if let Some(marker) = marker {
                frames.extend_from_slice(&(marker.len() as u32 | MARKER).to_le_bytes());
                frames.extend_from_slice(marker);
            }
            file.write_all(&frames)?;
        }
        if let Some(marker) = marker {
            self.marker = Some(marker.to_vec());
        }
        if records.is_empty() {
            return Ok(());
        }
        for record in records {
            self.data.extend_from_slice(record);
            self.ends.push(self.data.len());
        }
        self.first_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// The latest marker (what an earlier run left, after [`Buffer::open`]).
    pub fn marker(&self) -> Option<&[u8]> {
        self.marker.as_deref()
    }

    /// Bytes of records held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// When the oldest record held arrived.
    pub fn first_ms(&self) -> Option<Millis> {
        self.first_ms
    }

    /// Everything held, for delivery (`None` when empty). Its file becomes the
    /// batch's; a new one takes the records that come next.
    pub fn take(&mut self) -> std::io::Result<Option<Batch>> {
        let Some(first_ms) = self.first_ms.take() else {
            return Ok(None);
        };
        let mut inflight = None;
        if let Some(dir) = &self.dir {
            self.file = None;
            std::fs::rename(dir.join(BUFFER), dir.join(INFLIGHT))?;
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(BUFFER))?;
            if let Some(marker) = &self.marker {
                let mut frame = (marker.len() as u32 | MARKER).to_le_bytes().to_vec();
                frame.extend_from_slice(marker);
                file.write_all(&frame)?;
            }
            self.file = Some(file);
            inflight = Some(dir.join(INFLIGHT));
        }
        Ok(Some(Batch {
            data: std::mem::take(&mut self.data),
            ends: std::mem::take(&mut self.ends),
            first_ms,
            inflight,
        }))
    }

    /// The file's contents, for an fsync at upkeep.
    pub fn sync(&self) -> std::io::Result<()> {
        match &self.file {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }
}

enum Frame<'a> {
    Record(&'a [u8]),
    Marker(&'a [u8]),
}

/// The whole frames of `bytes`; a frame cut short at the end (a crash mid-write) is
/// left out.
fn frames(bytes: &[u8]) -> Vec<Frame<'_>> {
    let mut complete = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 4) {
        let word = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let len = (word & !MARKER) as usize;
        let Some(body) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        complete.push(if word & MARKER != 0 {
            Frame::Marker(body)
        } else {
            Frame::Record(body)
        });
        at += 4 + len;
    }
    complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart_until_delivered_and_a_torn_frame_is_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut buffer = Buffer::open(Some(dir.path()), 1).unwrap_or_else(|e| panic!("{e}"));
        buffer
            .push(&[b"one\n", b"two\n"], 5)
            .unwrap_or_else(|e| panic!("{e}"));
        let batch = buffer.take().unwrap_or_default();
        let batch = batch.unwrap_or_else(|| panic!("a batch"));
        buffer
            .push(&[b"three\n"], 6)
            .unwrap_or_else(|e| panic!("{e}"));
        drop(buffer);
        // A crash now: the batch was not delivered. A torn frame follows "three".
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(BUFFER))
            .unwrap_or_else(|e| panic!("{e}"));
        file.write_all(&[9, 0, 0, 0, b'x'])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut again = Buffer::open(Some(dir.path()), 7).unwrap_or_else(|e| panic!("{e}"));
        let back = again.take().unwrap_or_default();
        let back = back.unwrap_or_else(|| panic!("records back"));
        let records: Vec<&[u8]> = back.records().collect();
        assert_eq!(records, [&b"one\n"[..], b"two\n", b"three\n"]);
        back.delivered().unwrap_or_else(|e| panic!("{e}"));
        drop(batch);
        drop(again);
        let empty = Buffer::open(Some(dir.path()), 8).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(empty.bytes(), 0);
    }
}
