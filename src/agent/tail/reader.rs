//! One file being read: its handle, where reading is, and its framer.
//!
//! A file can be replaced in place: `copytruncate` empties it and the writer fills it
//! again, often past the old offset before the reader looks (during an outage or a busy
//! spell). Size alone cannot tell; the file's first bytes can. The reader keeps a hash
//! of them and checks them after every read and before framing it, so bytes of the new
//! content read from the old offset never become a record (they would be half a line).

use std::fs::File;
use std::hash::BuildHasher;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use bytes::Bytes;
use tokio::time::Instant;

use super::framing::{Framed, Framer, FramingConfig};
use super::identity::{FINGERPRINT_BYTES, FileIdentity, read_prefix};
use crate::agent::ack::ReadingId;
use crate::kinesis::digest::{Md5Digest, md5};

/// The most first bytes kept track of, as a buffer length.
const PREFIX_MAX: usize = FINGERPRINT_BYTES as usize;

/// The hash the first bytes are checked against after every read: keyed per process
/// (a writer cannot simply pick colliding content) and a few times cheaper than MD5, which 10,000 busy
/// files made a visible cost. MD5 is still taken when the prefix grows, for the
/// identity's fingerprint.
static PREFIX_HASHER: LazyLock<foldhash::quality::RandomState> =
    LazyLock::new(foldhash::quality::RandomState::default);

fn prefix_hash(bytes: &[u8]) -> u64 {
    PREFIX_HASHER.hash_one(bytes)
}

/// How many of a file's first bytes were read (up to `FINGERPRINT_BYTES`), their hash
/// (checked after every read) and their MD5 (the identity's fingerprint): digests
/// rather than the bytes, which at 10,000 files would be 2.5 MiB held only to be
/// compared.
#[derive(Debug)]
struct Prefix {
    len: usize,
    hash: u64,
    md5: Md5Digest,
}

impl Prefix {
    fn of(bytes: &[u8]) -> Prefix {
        Prefix {
            len: bytes.len(),
            hash: prefix_hash(bytes),
            md5: md5(bytes),
        }
    }

    /// The identity of the file `(dev, ino)` that starts with these bytes.
    fn identity(&self, dev: u64, ino: u64) -> FileIdentity {
        FileIdentity::from_digest(dev, ino, &self.md5, self.len)
    }
}

/// Why a file is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// At its path, growing.
    Active,
    /// Renamed away, deleted, or found under another name after a restart: read to
    /// its end, then released.
    Draining,
}

/// What one read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// This many bytes were read and framed.
    Read(usize),
    /// Nothing more to read now.
    End,
    /// The file was truncated or its first bytes changed (copytruncate): nothing was
    /// framed, and it must be read again from the start.
    Replaced,
}

#[derive(Debug)]
pub struct TrackedFile {
    pub reading: ReadingId,
    pub path: PathBuf,
    pub identity: FileIdentity,
    pub lifecycle: Lifecycle,
    file: File,
    framer: Framer,
    prefix: Prefix,
    /// Next byte to read.
    offset: u64,
    /// When a read last returned data.
    pub last_data: Instant,
    /// The size of the open file when it was last looked at (opened or read).
    seen_size: u64,
}

impl TrackedFile {
    /// Opens `path` for reading from `offset`. Only regular files are read (a path can
    /// match a glob and be a directory, a FIFO or a device).
    pub fn open(
        path: &Path,
        offset: u64,
        framing: FramingConfig,
        reading: ReadingId,
    ) -> io::Result<TrackedFile> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let prefix = Prefix::of(&read_prefix(&file, meta.len().min(FINGERPRINT_BYTES))?);
        let identity = prefix.identity(meta.dev(), meta.ino());
        Ok(TrackedFile {
            reading,
            path: path.to_owned(),
            identity,
            lifecycle: Lifecycle::Active,
            file,
            framer: Framer::new(framing, offset),
            prefix,
            offset,
            last_data: Instant::now(),
            seen_size: meta.len(),
        })
    }

    /// Starts over from the first byte of the same open file (it was replaced in
    /// place); the caller gives the new reading its id.
    pub fn restart(&mut self) -> io::Result<()> {
        let meta = self.file.metadata()?;
        self.prefix = Prefix::of(&read_prefix(&self.file, meta.len().min(FINGERPRINT_BYTES))?);
        self.identity = self.prefix.identity(meta.dev(), meta.ino());
        self.framer.restart(0);
        self.offset = 0;
        self.last_data = Instant::now();
        self.seen_size = meta.len();
        Ok(())
    }

    /// Next byte to read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The size of the open file when it was last opened or read: what a gauge can
    /// use without a system call per file.
    pub fn seen_size(&self) -> u64 {
        self.seen_size
    }

    /// The size of the open file (not of whatever is at its path now).
    ///
    /// Asked by seeking to the end: a sweep asks every file every interval, and a
    /// seek costs the kernel a fraction of a `stat` (reads are `pread`s, so the
    /// position it leaves does not matter).
    pub fn size(&self) -> io::Result<u64> {
        use std::io::Seek;
        (&self.file).seek(io::SeekFrom::End(0))
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

    /// Whether the file still starts with the bytes it started with; `first` then
    /// holds them.
    fn prefix_unchanged(&self, first: &mut [u8; PREFIX_MAX]) -> io::Result<bool> {
        if self.prefix.len == 0 {
            return Ok(true);
        }
        let now = &mut first[..self.prefix.len];
        let mut read = 0;
        while read < now.len() {
            match self.file.read_at(&mut now[read..], read as u64)? {
                0 => return Ok(false),
                n => read += n,
            }
        }
        Ok(prefix_hash(now) == self.prefix.hash)
    }

    /// Reads what fits in `scratch` and, if the file was not replaced meanwhile,
    /// frames it.
    ///
    /// The bytes are copied out of `scratch` into a buffer of exactly their size that the
    /// records framed from it share: a fresh full-size buffer per read would cost page
    /// faults on every read, and a short read from one of many files would pin a whole
    /// buffer in memory until its records are acknowledged.
    pub fn read_chunk(&mut self, scratch: &mut [u8], out: &mut Framed) -> io::Result<Chunk> {
        // The size first: a quiet file costs this one call, not a read too.
        let size = self.size()?;
        self.seen_size = size;
        if size < self.offset {
            // Emptied and not refilled past the offset yet.
            return Ok(Chunk::Replaced);
        }
        if size == self.offset {
            return Ok(Chunk::End);
        }
        let n = self.file.read_at(scratch, self.offset)?;
        if n == 0 {
            // Truncated since the size was taken: the next look sees it.
            return Ok(Chunk::End);
        }
        let mut first = [0u8; PREFIX_MAX];
        if !self.prefix_unchanged(&mut first)? {
            return Ok(Chunk::Replaced);
        }
        let read = &scratch[..n];
        self.extend_prefix(&mut first, read);
        self.offset += n as u64;
        self.framer.feed(&Bytes::copy_from_slice(read), out);
        self.last_data = Instant::now();
        Ok(Chunk::Read(n))
    }

    /// A file shorter than the fingerprint when opened gets a longer prefix from the
    /// bytes just read at its end (checked above, so they belong to the same content).
    /// `first` holds the prefix as checked.
    fn extend_prefix(&mut self, first: &mut [u8; PREFIX_MAX], read: &[u8]) {
        let have = self.prefix.len;
        if have >= PREFIX_MAX || self.offset > have as u64 {
            return;
        }
        let from = have - self.offset as usize;
        let want = PREFIX_MAX - have;
        let take = &read[from.min(read.len())..read.len().min(from + want)];
        if take.is_empty() {
            return;
        }
        first[have..have + take.len()].copy_from_slice(take);
        self.prefix = Prefix::of(&first[..have + take.len()]);
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
    pub fn refresh_identity(&mut self) -> bool {
        if self.identity.fingerprint_len >= self.prefix.len as u64 {
            return false;
        }
        self.identity = self.prefix.identity(self.identity.dev, self.identity.ino);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Oversize;
    use std::io::Write;

    fn framing() -> FramingConfig {
        FramingConfig {
            max_record_bytes: 1024,
            split_marker_len: 0,
            oversize: Oversize::Split,
            multiline_start: None,
            skip_header_lines: 0,
        }
    }

    fn lines(framed: &Framed) -> Vec<String> {
        framed
            .frames
            .iter()
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
            .collect()
    }

    /// copytruncate where the writer refills the file past the old offset before the
    /// reader looks: the size never drops below the offset, only the first bytes tell.
    #[test]
    fn a_file_refilled_past_its_offset_is_seen_as_replaced_and_nothing_is_framed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, b"old 1\nold 2\n").unwrap();
        let mut tracked = TrackedFile::open(&path, 0, framing(), 1).unwrap();
        let mut scratch = vec![0; 4096];
        let mut out = Framed::default();
        assert_eq!(
            tracked.read_chunk(&mut scratch, &mut out).unwrap(),
            Chunk::Read(12)
        );
        assert_eq!(lines(&out), ["old 1", "old 2"]);
        // Truncate in place, then write more than before.
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(0).unwrap();
        file.write_all(b"new line 1\nnew line 2\n").unwrap();
        let mut out = Framed::default();
        assert_eq!(
            tracked.read_chunk(&mut scratch, &mut out).unwrap(),
            Chunk::Replaced
        );
        assert!(
            out.frames.is_empty(),
            "no fragment of the new content: {:?}",
            lines(&out)
        );
        tracked.restart().unwrap();
        let mut out = Framed::default();
        assert_eq!(
            tracked.read_chunk(&mut scratch, &mut out).unwrap(),
            Chunk::Read(22)
        );
        assert_eq!(lines(&out), ["new line 1", "new line 2"]);
    }

    #[test]
    fn a_short_prefix_grows_with_the_file_and_still_catches_a_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, b"a\n").unwrap();
        let mut tracked = TrackedFile::open(&path, 0, framing(), 1).unwrap();
        let mut scratch = vec![0; 4096];
        let mut out = Framed::default();
        tracked.read_chunk(&mut scratch, &mut out).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&[b'x'; 400]).unwrap();
        file.write_all(b"\n").unwrap();
        tracked.read_chunk(&mut scratch, &mut out).unwrap();
        assert_eq!(tracked.prefix.len as u64, FINGERPRINT_BYTES);
        assert!(tracked.refresh_identity());
        assert_eq!(
            tracked.identity,
            FileIdentity::of(&File::open(&path).unwrap()).unwrap()
        );
        // The grown prefix is what later reads are checked against: more lines are
        // read, not taken for a replacement.
        file.write_all(b"more\n").unwrap();
        assert_eq!(
            tracked.read_chunk(&mut scratch, &mut out).unwrap(),
            Chunk::Read(5)
        );
        // Same first two bytes, different content after them: still a replacement.
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(0).unwrap();
        file.write_all(b"a\n").unwrap();
        file.write_all(&[b'y'; 900]).unwrap();
        assert_eq!(
            tracked.read_chunk(&mut scratch, &mut out).unwrap(),
            Chunk::Replaced
        );
    }
}
