//! Checkpoints: per file identity, the offset below which Kinesis accepted everything.
//!
//! Stored as versioned JSON in `state_dir`, written crash-safely: a temporary file,
//! fsync, rename over the old one, fsync of the directory. A leftover temporary file
//! (a crash mid-write) is ignored and removed; the previous checkpoint stands.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ledger::{ReadingName, Snapshot};
use super::tail::identity::FileIdentity;

const FILE_NAME: &str = "checkpoints.json";
const VERSION: u32 = 1;

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    pub flow: String,
    /// Where the file was last seen (informational; identity is what matches).
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub fingerprint: String,
    pub fingerprint_len: u64,
    pub offset: u64,
}

impl FileCheckpoint {
    pub fn identity(&self) -> FileIdentity {
        FileIdentity {
            dev: self.dev,
            ino: self.ino,
            fingerprint: self.fingerprint.clone(),
            fingerprint_len: self.fingerprint_len,
        }
    }
}

/// [`CheckpointFile`] as written: borrowed.
#[derive(Serialize)]
struct CheckpointFileRef<'a, F: Serialize> {
    version: u32,
    flows: &'a [String],
    files: &'a [F],
}

/// [`FileCheckpoint`] as written from the ledger's shared names: the same fields in
/// the same order, without a copy of the strings.
#[derive(Serialize)]
struct FileCheckpointRef<'a> {
    flow: &'a str,
    path: std::borrow::Cow<'a, str>,
    dev: u64,
    ino: u64,
    fingerprint: &'a str,
    fingerprint_len: u64,
    offset: u64,
}

/// One snapshot entry, serialized as a [`FileCheckpoint`].
struct SnapshotEntry<'a>(&'a (std::sync::Arc<ReadingName>, u64));

impl Serialize for SnapshotEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (name, offset) = self.0;
        FileCheckpointRef {
            flow: &name.flow,
            path: name.path.to_string_lossy(),
            dev: name.identity.dev,
            ino: name.identity.ino,
            fingerprint: &name.identity.fingerprint,
            fingerprint_len: name.identity.fingerprint_len,
            offset: *offset,
        }
        .serialize(serializer)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    /// Flows that have run, so `start_at` applies only to a flow's first start.
    #[serde(default)]
    flows: Vec<String>,
    files: Vec<FileCheckpoint>,
}

/// Everything the checkpoint file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoints {
    pub flows: Vec<String>,
    pub files: Vec<FileCheckpoint>,
}

/// Why the checkpoints could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the checkpoint file {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error(
        "the checkpoint file {} is corrupt ({reason}); shardcar will not guess where each file was. Start with --reset-checkpoints (or set [agent] on_corrupt_checkpoint = \"reset\") to move it aside and start over",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "cannot write checkpoints to {} ({source}); [agent] state_dir must be a directory the agent's user can write",
        path.display()
    )]
    Write { path: PathBuf, source: io::Error },
}

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    pub fn new(state_dir: &Path) -> Self {
        CheckpointStore {
            dir: state_dir.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn temp_path(&self) -> PathBuf {
        self.dir.join(format!("{FILE_NAME}.tmp"))
    }

    /// Loads the checkpoints; `Ok(None)` when there are none yet (a first start).
    pub fn load(&self) -> Result<Option<Checkpoints>, CheckpointError> {
        let _ = fs::remove_file(self.temp_path());
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Unreadable { path, source }),
        };
        let file: CheckpointFile =
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if file.version != VERSION {
            return Err(CheckpointError::Corrupt {
                path,
                reason: format!(
                    "version {} is not the version {VERSION} this shardcar writes",
                    file.version
                ),
            });
        }
        Ok(Some(Checkpoints {
            flows: file.flows,
            files: file.files,
        }))
    }

    /// Moves a corrupt checkpoint file aside (kept for inspection).
    pub fn reset(&self) -> io::Result<Option<PathBuf>> {
        let path = self.path();
        if !path.exists() {
            return Ok(None);
        }
        let aside = self
            .dir
            .join(format!("{FILE_NAME}.corrupt-{}", std::process::id()));
        fs::rename(&path, &aside)?;
        Ok(Some(aside))
    }

    /// Writes `checkpoints` atomically.
    pub fn persist(&self, checkpoints: &Checkpoints) -> Result<(), CheckpointError> {
        self.write(&CheckpointFileRef {
            version: VERSION,
            flows: &checkpoints.flows,
            files: &checkpoints.files,
        })
    }

    /// Writes the flows and the ledger's `snapshot` atomically, as [`persist`] writes
    /// the same checkpoints owned.
    ///
    /// [`persist`]: CheckpointStore::persist
    pub fn persist_snapshot(
        &self,
        flows: &[String],
        snapshot: &Snapshot,
    ) -> Result<(), CheckpointError> {
        let files: Vec<SnapshotEntry> = snapshot.iter().map(SnapshotEntry).collect();
        self.write(&CheckpointFileRef {
            version: VERSION,
            flows,
            files: &files,
        })
    }

    fn write(&self, file: &impl Serialize) -> Result<(), CheckpointError> {
        let write = || -> io::Result<()> {
            fs::create_dir_all(&self.dir)?;
            // Written as it is serialized: 10,000 files are megabytes of JSON, and
            // neither the list nor the text is worth a copy in memory.
            let temp = self.temp_path();
            {
                let mut out = io::BufWriter::with_capacity(64 * 1024, File::create(&temp)?);
                serde_json::to_writer_pretty(&mut out, file).map_err(io::Error::other)?;
                out.flush()?;
                out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            }
            fs::rename(&temp, self.path())?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|source| CheckpointError::Write {
            path: self.path(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            flow: "f".into(),
            path: "/a.log".into(),
            dev: 1,
            ino: 2,
            fingerprint: "00".into(),
            fingerprint_len: 1,
            offset,
        }
    }

    #[test]
    fn persists_and_loads_and_ignores_a_leftover_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let saved = Checkpoints {
            flows: vec!["f".into()],
            files: vec![checkpoint(10)],
        };
        store.persist(&saved).unwrap();
        std::fs::write(dir.path().join("checkpoints.json.tmp"), b"{half").unwrap();
        assert_eq!(store.load().unwrap(), Some(saved));
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    /// The checkpointer writes from the ledger's shared names; what it writes loads
    /// back as the owned checkpoints the ledger lists (same fields, same order).
    #[test]
    fn a_ledger_snapshot_is_written_as_its_checkpoints() {
        use super::super::ledger::Ledger;
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        let ledger = Ledger::default();
        let flow: std::sync::Arc<str> = "f".into();
        let identity = |ino| FileIdentity {
            dev: 1,
            ino,
            fingerprint: format!("{ino:032x}"),
            fingerprint_len: 7,
        };
        let a = ledger.begin(&flow, Path::new("/logs/b.log"), &identity(3), 5);
        let b = ledger.begin(&flow, Path::new("/logs/a.log"), &identity(4), 0);
        ledger.acknowledge(a, 5..20);
        ledger.acknowledge(b, 0..9);
        ledger.update_path(b, Path::new("/logs/a.log.1"));
        let flows = vec!["f".to_owned()];
        store.persist_snapshot(&flows, &ledger.snapshot()).unwrap();
        let expected = Checkpoints {
            flows,
            files: ledger.checkpoints(),
        };
        assert_eq!(expected.files.len(), 2);
        assert_eq!(expected.files[0].path, "/logs/a.log.1");
        assert_eq!(expected.files[1].offset, 20);
        assert_eq!(store.load().unwrap(), Some(expected));
    }

    #[test]
    fn corrupt_files_are_refused_and_can_be_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        std::fs::write(store.path(), b"{\"version\": 1, \"files\": [").unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("--reset-checkpoints"), "{err}");
        let aside = store.reset().unwrap().unwrap();
        assert!(aside.exists());
        assert_eq!(store.load().unwrap(), None);
        std::fs::write(store.path(), b"{\"version\": 9, \"files\": []}").unwrap();
        assert!(matches!(store.load(), Err(CheckpointError::Corrupt { .. })));
    }
}
