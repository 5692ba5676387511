//! One shard's log file, appended to as records are accepted: the write side of the
//! data directory. [`persist`](super::persist) lays the files out and replays them
//! at start; the shard's state holds the open file. Kept apart so that neither of
//! those modules needs the other for this type.
//!
//! Each record is `[u32 length][i64 arrival ms][u16 key length][key][data]`, the
//! length counting what follows it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use crate::server::clock::Millis;

/// The bytes before a record's key: length, arrival time, key length.
pub const HEADER_LEN: usize = 4 + 8 + 2;

/// An append handle to one shard's log file.
#[derive(Debug)]
pub struct ShardFile {
    writer: BufWriter<File>,
    /// A second descriptor of the same file, so fsync runs without the shard's lock.
    sync: Arc<File>,
}

impl ShardFile {
    pub fn open(path: &Path) -> io::Result<ShardFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let sync = Arc::new(file.try_clone()?);
        Ok(ShardFile {
            writer: BufWriter::with_capacity(256 * 1024, file),
            sync,
        })
    }

    pub fn append(
        &mut self,
        partition_key: &str,
        data: &[u8],
        arrival_ms: Millis,
    ) -> io::Result<()> {
        let rest = 8 + 2 + partition_key.len() + data.len();
        self.writer.write_all(&(rest as u32).to_le_bytes())?;
        self.writer.write_all(&arrival_ms.to_le_bytes())?;
        self.writer
            .write_all(&(partition_key.len() as u16).to_le_bytes())?;
        self.writer.write_all(partition_key.as_bytes())?;
        self.writer.write_all(data)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    pub fn handle(&self) -> Arc<File> {
        self.sync.clone()
    }
}
