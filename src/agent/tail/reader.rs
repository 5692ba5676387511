//! One file being read: its handle, where reading is, and its framer.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::time::Instant;

use super::framing::{Framed, Framer, FramingConfig};
use super::identity::FileIdentity;
use crate::agent::ack::ReadingId;

/// Why a file is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// At its path, growing.
    Active,
    /// Renamed away, deleted, or found under another name after a restart: read to
    /// its end, then released.
    Draining,
}

#[derive(Debug)]
pub struct TrackedFile {
    pub reading: ReadingId,
    pub path: PathBuf,
    pub identity: FileIdentity,
    pub lifecycle: Lifecycle,
    file: File,
    framer: Framer,
    /// Next byte to read.
    offset: u64,
    /// When a read last returned data.
    pub last_data: Instant,
}

impl TrackedFile {
    /// Opens `path` for reading from `offset`.
    pub fn open(
        path: &Path,
        offset: u64,
        framing: FramingConfig,
        reading: ReadingId,
    ) -> io::Result<TrackedFile> {
        let file = File::open(path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let identity = FileIdentity::of(&file)?;
        Ok(TrackedFile {
            reading,
            path: path.to_owned(),
            identity,
            lifecycle: Lifecycle::Active,
            file,
            framer: Framer::new(framing, offset),
            offset,
            last_data: Instant::now(),
        })
    }

    /// Next byte to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The size of the open file (not of whatever is at its path now).
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Whether everything the open file holds has been read. A file that cannot be
    /// stat'ed counts as read to its end: there is nothing more to get from it.
    pub fn at_end(&self) -> bool {
        self.size().map_or(true, |size| size <= self.offset)
    }

    /// Whether the open file is the one at `path` now (same device and inode).
    pub fn is_at(&self, path: &Path) -> io::Result<bool> {
        let meta = std::fs::metadata(path)?;
        Ok(meta.dev() == self.identity.dev && meta.ino() == self.identity.ino)
    }

    /// Reads what fits in `scratch` and frames it; returns the bytes read (0 at the end).
    ///
    /// The bytes are copied out of `scratch` into a buffer of exactly their size that the
    /// records framed from it share: a fresh full-size buffer per read would cost page
    /// faults on every read, and a short read from one of many files would pin a whole
    /// buffer in memory until its records are acknowledged.
    pub fn read_chunk(&mut self, scratch: &mut [u8], out: &mut Framed) -> io::Result<usize> {
        let n = self.file.read_at(scratch, self.offset)?;
        if n > 0 {
            self.offset += n as u64;
            self.framer
                .feed(&Bytes::copy_from_slice(&scratch[..n]), out);
            self.last_data = Instant::now();
        }
        Ok(n)
    }

    /// Emits what waits on idleness: an open multi-line record, and with `partial` a last
    /// line without newline.
    pub fn flush_idle(&mut self, partial: bool, out: &mut Framed) {
        self.framer.flush_idle(partial, out);
    }

    /// Bytes held that are not yet part of a record.
    pub fn pending_bytes(&self) -> usize {
        self.framer.pending_bytes()
    }

    /// A longer fingerprint once a short file has grown, for a stronger identity.
    pub fn refresh_identity(&mut self) -> io::Result<bool> {
        if self.identity.fingerprint_len >= super::identity::FINGERPRINT_BYTES
            || self.offset <= self.identity.fingerprint_len
        {
            return Ok(false);
        }
        let extended = self.identity.extended(&self.file)?;
        let changed = extended != self.identity;
        self.identity = extended;
        Ok(changed)
    }
}
