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

pub fn store(dir: &Path, all: &[Saved]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(".streams.json.tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&serde_json::to_vec_pretty(all).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}
