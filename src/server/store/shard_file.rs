//! One shard's log file, appended to as records are accepted: the write side of the
//! data directory. [`persist`](super::persist) lays the files out and replays them
//! at start; the shard's state holds the open file. Kept apart so that neither of
//! those modules needs the other for this type.
//!
//! Three kinds of frame, told apart by the top bits of their first word (the length
//! of what follows it):
//! - a record: `[u32 length][i64 arrival ms][u16 key length][key][data]`;
//! - a data key ([`DATA_KEY`]): `[u32][wrapped key]`, which begins a segment of an
//!   encrypted stream (see [`at_rest`](super::at_rest));
//! - a sealed record ([`SEALED`]): `[u32][i64 arrival ms][nonce][AES-256-GCM of
//!   (u16 key length, key, data)][tag]`, under the segment's key, bound to its arrival.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use super::at_rest::{DataKey, MasterKey, WRAPPED_LEN};
use crate::server::clock::Millis;

/// The bytes before a record's key: length, arrival time, key length.
pub const HEADER_LEN: usize = 4 + 8 + 2;
/// Marks a sealed record's length word.
pub const SEALED: u32 = 1 << 31;
/// Marks a data key frame's length word.
pub const DATA_KEY: u32 = 1 << 30;
/// The length within a length word.
pub const LENGTH_MASK: u32 = DATA_KEY - 1;

/// An append handle to one shard's log file.
#[derive(Debug)]
pub struct ShardFile {
    writer: BufWriter<File>,
    /// A second descriptor of the same file, so fsync runs without the shard's lock.
    sync: Arc<File>,
    /// Wraps each segment's data key; `None` when the data directory has none.
    master: Option<Arc<MasterKey>>,
    /// The current segment's key, once this file has sealed a record.
    segment: Option<DataKey>,
    /// Where a sealed record is built.
    scratch: Vec<u8>,
}

impl ShardFile {
    pub fn open(path: &Path, master: Option<Arc<MasterKey>>) -> io::Result<ShardFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let sync = Arc::new(file.try_clone()?);
        Ok(ShardFile {
            writer: BufWriter::with_capacity(256 * 1024, file),
            sync,
            master,
            segment: None,
            scratch: Vec::new(),
        })
    }

    /// Appends a record, sealed when its stream is encrypted.
    pub fn append(
        &mut self,
        partition_key: &str,
        data: &[u8],
        arrival_ms: Millis,
        seal: bool,
    ) -> io::Result<()> {
        if seal {
            return self.append_sealed(partition_key, data, arrival_ms);
        }
        let rest = 8 + 2 + partition_key.len() + data.len();
        self.writer.write_all(&(rest as u32).to_le_bytes())?;
        self.writer.write_all(&arrival_ms.to_le_bytes())?;
        self.writer
            .write_all(&(partition_key.len() as u16).to_le_bytes())?;
        self.writer.write_all(partition_key.as_bytes())?;
        self.writer.write_all(data)
    }

    fn append_sealed(
        &mut self,
        partition_key: &str,
        data: &[u8],
        arrival_ms: Millis,
    ) -> io::Result<()> {
        let segment = match self.segment.take() {
            Some(segment) if !segment.spent() => segment,
            _ => {
                let master = self.master.as_ref().ok_or_else(|| {
                    io::Error::other("an encrypted stream's record, but no master key")
                })?;
                let (segment, wrapped) = master.new_data_key()?;
                self.writer
                    .write_all(&(DATA_KEY | WRAPPED_LEN as u32).to_le_bytes())?;
                self.writer.write_all(&wrapped)?;
                segment
            }
        };
        let segment = self.segment.insert(segment);
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(partition_key.len() as u16).to_le_bytes());
        self.scratch.extend_from_slice(partition_key.as_bytes());
        self.scratch.extend_from_slice(data);
        let arrival = arrival_ms.to_le_bytes();
        let nonce = segment.seal(&arrival, &mut self.scratch)?;
        let rest = (arrival.len() + nonce.len() + self.scratch.len()) as u32;
        self.writer.write_all(&(SEALED | rest).to_le_bytes())?;
        self.writer.write_all(&arrival)?;
        self.writer.write_all(&nonce)?;
        self.writer.write_all(&self.scratch)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    pub fn handle(&self) -> Arc<File> {
        self.sync.clone()
    }
}
