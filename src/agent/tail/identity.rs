//! File identity: device and inode, plus a fingerprint of the first bytes.
//!
//! Device and inode follow a file through a rename; the fingerprint tells a reused
//! inode (a new file after the old one was deleted) from the file a checkpoint was
//! written for. A file shorter than the fingerprint length is fingerprinted on what
//! it has, and the length is recorded, so it can still be matched and read.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// Bytes at the start of a file that make up its fingerprint.
pub const FINGERPRINT_BYTES: u64 = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    /// MD5 of the first `fingerprint_len` bytes, hex.
    pub fingerprint: String,
    pub fingerprint_len: u64,
}

/// Reads up to `len` bytes from the start of `file` (fewer if it is shorter).
pub fn read_prefix(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; len as usize];
    let mut read = 0;
    while read < buffer.len() {
        match file.read_at(&mut buffer[read..], read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    buffer.truncate(read);
    Ok(buffer)
}

use crate::kinesis::digest::Md5Digest;

fn fingerprint_of(prefix: &[u8]) -> String {
    crate::kinesis::digest::md5_hex(prefix)
}

impl FileIdentity {
    /// Identifies an open file from its metadata and first bytes.
    pub fn of(file: &File) -> io::Result<FileIdentity> {
        let meta = file.metadata()?;
        let prefix = read_prefix(file, meta.len().min(FINGERPRINT_BYTES))?;
        Ok(FileIdentity::from_prefix(meta.dev(), meta.ino(), &prefix))
    }

    /// The identity of the file `(dev, ino)` whose first bytes are `prefix`.
    pub fn from_prefix(dev: u64, ino: u64, prefix: &[u8]) -> FileIdentity {
        FileIdentity::from_digest(dev, ino, &crate::kinesis::digest::md5(prefix), prefix.len())
    }

    /// The identity of the file `(dev, ino)` whose first `len` bytes have the MD5
    /// `digest` (what [`FileIdentity::from_prefix`] computes from the bytes).
    pub fn from_digest(dev: u64, ino: u64, digest: &Md5Digest, len: usize) -> FileIdentity {
        FileIdentity {
            dev,
            ino,
            fingerprint: crate::kinesis::digest::hex(digest),
            fingerprint_len: len as u64,
        }
    }

    /// Whether `file` is the file this identity was taken of (same inode, same first bytes).
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        let meta = file.metadata()?;
        if meta.dev() != self.dev || meta.ino() != self.ino || meta.len() < self.fingerprint_len {
            return Ok(false);
        }
        Ok(fingerprint_of(&read_prefix(file, self.fingerprint_len)?) == self.fingerprint)
    }

    /// Device and inode: what one reader and one checkpoint are kept per, whatever
    /// paths (links, symlinks) lead to the file.
    pub fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn identity_survives_rename_and_catches_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"first line\n").unwrap();
        let identity = FileIdentity::of(&File::open(&path).unwrap()).unwrap();
        assert_eq!(identity.fingerprint_len, 11);
        let renamed = dir.path().join("a.log.1");
        std::fs::rename(&path, &renamed).unwrap();
        assert!(identity.matches(&File::open(&renamed).unwrap()).unwrap());
        // Growing keeps the match on the recorded prefix.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&renamed)
            .unwrap();
        file.write_all(b"more\n").unwrap();
        assert!(identity.matches(&File::open(&renamed).unwrap()).unwrap());
        // Another file is another identity.
        std::fs::write(&path, b"first line\n").unwrap();
        assert!(!identity.matches(&File::open(&path).unwrap()).unwrap());
    }
}
