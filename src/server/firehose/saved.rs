//! Delivery streams across restarts: `DATA_DIR/firehose/streams.json`, rewritten whole
//! (temporary file, fsync, rename) after every change. Buffers and read positions
//! live beside it, one directory per delivery stream (see [`super::buffer`]).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{KinesisSource, Settings};
use crate::server::clock::Millis;

const FILE: &str = "streams.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub name: String,
    pub arn: String,
    pub created_ms: Millis,
    pub source: Option<KinesisSource>,
    pub settings: Settings,
}

/// What `dir` holds (nothing on a first start).
pub fn load(dir: &Path) -> std::io::Result<Vec<Saved>> {
    match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not readable: {e}", dir.join(FILE).display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Readable by the server's user only: HTTP endpoint destinations carry their access
/// keys.
pub fn store(dir: &Path, all: &[Saved]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(".streams.json.tmp");
    // A leftover from a crash keeps its mode when reopened: start afresh.
    let _ = std::fs::remove_file(&temp);
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&serde_json::to_vec_pretty(all).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_saved_streams_are_readable_by_the_owner_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        store(dir.path(), &[]).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            load(dir.path())
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
    }
}
