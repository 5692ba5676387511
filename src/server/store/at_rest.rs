//! Encryption at rest for streams under StartStreamEncryption: their records are
//! written to the shard files sealed with AES-256-GCM.
//!
//! Keys come in two levels, as with KMS envelope encryption: one master key per data
//! directory (`--kms-key-file`, or `DATA_DIR/master.key` created with mode 0600), and
//! a fresh data key per segment (a run of sealed records in one shard file), stored
//! in the file wrapped by the master key. The metadata keeps a fingerprint of the
//! master key once any stream was encrypted, so a missing or wrong key is refused at
//! start, before any file is read, and never yields plaintext or silent loss.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::kinesis::digest::hex;

const KEY_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
pub use aws_lc_rs::aead::NONCE_LEN;
/// A wrapped data key: nonce, key, tag.
pub const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
/// The master key file the server creates when none is given.
pub const DEFAULT_KEY_FILE: &str = "master.key";

/// The data directory's master key.
pub struct MasterKey {
    key: LessSafeKey,
    fingerprint: String,
    path: PathBuf,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("fingerprint", &self.fingerprint)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn random<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| io::Error::other("the system's random source failed"))?;
    Ok(bytes)
}

impl MasterKey {
    /// The key of a data directory: from `explicit` when given (it must exist), else
    /// `DATA_DIR/master.key`, created when absent and nothing was encrypted before.
    /// `expected` is the fingerprint the metadata recorded, if any.
    pub fn open(
        data_dir: &Path,
        explicit: Option<&Path>,
        expected: Option<&str>,
    ) -> io::Result<MasterKey> {
        let path = explicit.map_or_else(|| data_dir.join(DEFAULT_KEY_FILE), Path::to_owned);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound && explicit.is_none() => {
                if expected.is_some() {
                    return Err(invalid(format!(
                        "{} holds encrypted records but its master key {} is missing; restore it or give it with --kms-key-file",
                        data_dir.display(),
                        path.display()
                    )));
                }
                return MasterKey::create(&path);
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read the master key {}: {e}", path.display()),
                ));
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let key = decode_hex_key(text.trim()).ok_or_else(|| {
            invalid(format!(
                "the master key {} must be {} hex digits (a 256-bit key)",
                path.display(),
                KEY_LEN * 2
            ))
        })?;
        let master = MasterKey::from_bytes(&key, path)?;
        if let Some(expected) = expected
            && expected != master.fingerprint
        {
            return Err(invalid(format!(
                "the master key {} (fingerprint {}) is not the one this data directory's records were encrypted with (fingerprint {expected})",
                master.path.display(),
                master.fingerprint
            )));
        }
        Ok(master)
    }

    fn create(path: &Path) -> io::Result<MasterKey> {
        let key: [u8; KEY_LEN] = random()?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create the master key {}: {e}", path.display()),
                )
            })?;
        file.write_all(format!("{}\n", hex(&key)).as_bytes())?;
        file.sync_all()?;
        tracing::info!(path = %path.display(), "created a master key for encryption at rest");
        MasterKey::from_bytes(&key, path.to_owned())
    }

    fn from_bytes(key: &[u8], path: PathBuf) -> io::Result<MasterKey> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .map_err(|_| invalid("bad master key length".into()))?;
        mac.update(b"shardcar master key fingerprint");
        let fingerprint = hex(&mac.finalize().into_bytes()[..8]);
        Ok(MasterKey {
            key: aead_key(key)?,
            fingerprint,
            path,
        })
    }

    /// Where the key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A short, non-secret name of the key, recorded in the metadata.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A new data key, and its wrapped form to store beside the records it seals.
    pub fn new_data_key(&self) -> io::Result<(DataKey, [u8; WRAPPED_LEN])> {
        let key: [u8; KEY_LEN] = random()?;
        let nonce: [u8; NONCE_LEN] = random()?;
        let mut sealed = key.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| io::Error::other("cannot wrap a data key"))?;
        let mut wrapped = [0u8; WRAPPED_LEN];
        wrapped[..NONCE_LEN].copy_from_slice(&nonce);
        wrapped[NONCE_LEN..].copy_from_slice(&sealed);
        Ok((DataKey::new(&key)?, wrapped))
    }

    /// The data key a wrapped key holds; `None` when this master key did not wrap it.
    pub fn unwrap_data_key(&self, wrapped: &[u8]) -> Option<DataKey> {
        let (nonce, sealed) = wrapped.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let key = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .ok()?;
        DataKey::new(key).ok()
    }
}

fn aead_key(key: &[u8]) -> io::Result<LessSafeKey> {
    let unbound = UnboundKey::new(&AES_256_GCM, key)
        .map_err(|_| invalid("an AES-256 key is 32 bytes".into()))?;
    Ok(LessSafeKey::new(unbound))
}

fn decode_hex_key(text: &str) -> Option<[u8; KEY_LEN]> {
    if text.len() != KEY_LEN * 2 {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(key)
}

/// One segment's data key. Nonces are a counter: each key seals one segment only.
pub struct DataKey {
    key: LessSafeKey,
    sealed: u64,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("sealed", &self.sealed)
            .finish_non_exhaustive()
    }
}

/// Records sealed under one data key before the next segment starts with a new one,
/// far inside what AES-GCM allows for one key.
pub const RECORDS_PER_DATA_KEY: u64 = 1 << 24;

impl DataKey {
    fn new(key: &[u8]) -> io::Result<DataKey> {
        Ok(DataKey {
            key: aead_key(key)?,
            sealed: 0,
        })
    }

    /// Whether this key has sealed its share and a new segment should begin.
    pub fn spent(&self) -> bool {
        self.sealed >= RECORDS_PER_DATA_KEY
    }

    /// Seals `plaintext` in place (the tag appended), bound to `aad`; the nonce used.
    pub fn seal(&mut self, aad: &[u8], plaintext: &mut Vec<u8>) -> io::Result<[u8; NONCE_LEN]> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[4..].copy_from_slice(&self.sealed.to_le_bytes());
        self.sealed += 1;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                plaintext,
            )
            .map_err(|_| io::Error::other("cannot seal a record"))?;
        Ok(nonce)
    }

    /// Opens a sealed record in place; `None` if it was not sealed by this key with
    /// this nonce and `aad` (tampered with, or another key).
    pub fn open<'a>(&self, nonce: &[u8], aad: &[u8], sealed: &'a mut [u8]) -> Option<&'a [u8]> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        self.key
            .open_in_place(nonce, Aad::from(aad), sealed)
            .ok()
            .map(|plain| &*plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_key_wrapped_by_one_master_key_is_opened_by_it_and_by_no_other() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let master = MasterKey::open(dir.path(), None, None).unwrap_or_else(|e| panic!("{e}"));
        let mode = fs::metadata(dir.path().join(DEFAULT_KEY_FILE))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or_default();
        assert_eq!(mode, 0o600);
        let (mut key, wrapped) = master.new_data_key().unwrap_or_else(|e| panic!("{e}"));
        let mut record = b"payload".to_vec();
        let nonce = key
            .seal(b"aad", &mut record)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!record.windows(7).any(|w| w == b"payload"));

        let reopened = MasterKey::open(dir.path(), None, Some(master.fingerprint()))
            .unwrap_or_else(|e| panic!("{e}"));
        let key = reopened
            .unwrap_data_key(&wrapped)
            .unwrap_or_else(|| panic!("the same master key must unwrap"));
        assert_eq!(
            key.open(&nonce, b"aad", &mut record.clone()),
            Some(&b"payload"[..])
        );
        assert_eq!(key.open(&nonce, b"other", &mut record.clone()), None);

        let other_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let other = MasterKey::open(other_dir.path(), None, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(other.unwrap_data_key(&wrapped).is_none());
        let wrong = MasterKey::open(
            dir.path(),
            Some(&other_dir.path().join(DEFAULT_KEY_FILE)),
            Some(master.fingerprint()),
        )
        .unwrap_err();
        assert!(wrong.to_string().contains("is not the one"), "{wrong}");
    }

    #[test]
    fn a_missing_master_key_is_an_error_once_records_were_encrypted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = MasterKey::open(dir.path(), None, Some("0011223344556677")).unwrap_err();
        assert!(missing.to_string().contains("is missing"), "{missing}");
        assert!(!dir.path().join(DEFAULT_KEY_FILE).exists());
        let explicit =
            MasterKey::open(dir.path(), Some(&dir.path().join("none.key")), None).unwrap_err();
        assert!(
            explicit.to_string().contains("cannot read the master key"),
            "{explicit}"
        );
    }
}
