//! The optional data directory: streams and records that survive a restart.
//!
//! Layout: `streams.json` holds every stream's metadata (written to a temporary file,
//! fsynced, renamed over the old one, directory fsynced) after each control-plane
//! change; `s-<stream>/<shard index>.log` holds each shard's records, appended as
//! `[u32 length][i64 arrival ms][u16 key length][key][data]`.
//!
//! Durability rule: a PutRecord(s) response is sent only after the records were
//! written to the OS (`write(2)`), so they survive the server being killed, even with
//! `kill -9`. Shard files are fsynced once a second, so a power loss can take at most
//! the last second of records. On start, a torn record at the end of a file (from a
//! crash in the middle of a write) is cut off.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::StoreConfig;
use super::log::ShardLog;
use super::shard_file::{HEADER_LEN, ShardFile};
use super::stream::{
    Closed, OpenShards, Shard, Stream, StreamMode, StreamState, StreamStatus, lock,
};
use crate::kinesis::{HashKey, HashKeyRange, ShardId};
use crate::server::clock::{Clock, Millis};

const METADATA_FILE: &str = "streams.json";
const METADATA_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Metadata {
    version: u32,
    streams: Vec<StreamRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StreamRecord {
    name: String,
    created_ms: Millis,
    retention_hours: u32,
    tags: BTreeMap<String, String>,
    mode: StreamMode,
    next_shard_index: u32,
    shards: Vec<ShardRecord>,
    /// Absent in data directories written before streams could take larger records.
    #[serde(default)]
    max_record_size_kib: Option<u32>,
    /// The stream's resource policy, as PutResourcePolicy was given it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_policy: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ShardRecord {
    index: u32,
    starting_hash_key: String,
    ending_hash_key: String,
    parent: Option<String>,
    adjacent_parent: Option<String>,
    created_ms: Millis,
    closed_ms: Option<Millis>,
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct Persist {
    dir: PathBuf,
    /// Serialises metadata writes.
    write: Arc<Mutex<()>>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Persist {
    pub fn new(dir: &Path) -> io::Result<Persist> {
        fs::create_dir_all(dir)?;
        Ok(Persist {
            dir: dir.to_owned(),
            write: Arc::new(Mutex::new(())),
        })
    }

    /// Stream directories carry a prefix so that names like `..` stay inside the data dir.
    fn stream_dir(&self, name: &str) -> PathBuf {
        self.dir.join(format!("s-{name}"))
    }

    fn shard_path(&self, stream: &str, index: u32) -> PathBuf {
        self.stream_dir(stream).join(format!("{index:012}.log"))
    }

    pub fn create_stream_dir(&self, stream: &Stream) -> io::Result<()> {
        fs::create_dir_all(self.stream_dir(&stream.name))?;
        for shard in lock(&stream.state).shards.iter() {
            self.attach_shard_file(&stream.name, shard)?;
        }
        Ok(())
    }

    pub fn attach_shard_file(&self, stream: &str, shard: &Shard) -> io::Result<()> {
        let file = ShardFile::open(&self.shard_path(stream, shard.index))?;
        lock(&shard.state).file = Some(file);
        Ok(())
    }

    pub fn remove_stream_dir(&self, name: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.stream_dir(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn save_metadata(&self, streams: &[Arc<Stream>]) -> io::Result<()> {
        let _write = lock(&self.write);
        let records = streams
            .iter()
            .filter_map(|stream| {
                let state = lock(&stream.state);
                if state.status == StreamStatus::Deleting {
                    return None;
                }
                Some(StreamRecord {
                    name: stream.name.clone(),
                    created_ms: stream.created_ms,
                    retention_hours: state.retention_hours,
                    tags: state.tags.clone(),
                    resource_policy: state.resource_policy.as_ref().map(|p| p.text.clone()),
                    mode: state.mode,
                    next_shard_index: state.next_shard_index,
                    max_record_size_kib: Some((stream.max_record_bytes() / 1024) as u32),
                    shards: state
                        .shards
                        .iter()
                        .map(|s| ShardRecord {
                            index: s.index,
                            starting_hash_key: s.range.start.to_string(),
                            ending_hash_key: s.range.end.to_string(),
                            parent: s.parent.as_ref().map(|p| p.to_string()),
                            adjacent_parent: s.adjacent_parent.as_ref().map(|p| p.to_string()),
                            created_ms: s.created_ms,
                            closed_ms: lock(&s.state).closed.map(|c| c.at_ms),
                        })
                        .collect(),
                })
            })
            .collect();
        let metadata = Metadata {
            version: METADATA_VERSION,
            streams: records,
        };
        let bytes = serde_json::to_vec_pretty(&metadata).map_err(io::Error::other)?;
        let temp = self.dir.join(format!("{METADATA_FILE}.tmp"));
        {
            let mut file = File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        fs::rename(&temp, self.dir.join(METADATA_FILE))?;
        File::open(&self.dir)?.sync_all()
    }

    /// Rebuilds every stream from the data directory.
    pub fn load(
        &self,
        clock: &Clock,
        config: &StoreConfig,
    ) -> io::Result<BTreeMap<String, Arc<Stream>>> {
        let path = self.dir.join(METADATA_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e),
        };
        let metadata: Metadata = serde_json::from_slice(&text).map_err(|e| {
            invalid(format!(
                "{} is not valid stream metadata: {e}",
                path.display()
            ))
        })?;
        if metadata.version != METADATA_VERSION {
            return Err(invalid(format!(
                "{} has version {}, this server reads version {METADATA_VERSION}",
                path.display(),
                metadata.version
            )));
        }
        let now = clock.now_ms();
        let mut streams = BTreeMap::new();
        for record in metadata.streams {
            let stream = self.load_stream(record, now, config)?;
            streams.insert(stream.name.clone(), Arc::new(stream));
        }
        Ok(streams)
    }

    fn load_stream(
        &self,
        record: StreamRecord,
        now: Millis,
        config: &StoreConfig,
    ) -> io::Result<Stream> {
        let cutoff = now - i64::from(record.retention_hours) * 3_600_000;
        let mut shards = Vec::new();
        for s in record.shards {
            let parse = |text: &str| {
                text.parse::<u128>().map(HashKey).map_err(|_| {
                    invalid(format!("bad hash key {text:?} in stream {}", record.name))
                })
            };
            let range = HashKeyRange {
                start: parse(&s.starting_hash_key)?,
                end: parse(&s.ending_hash_key)?,
            };
            let parent_id = |p: Option<String>| p.and_then(|p| ShardId::new(&p).ok());
            let mut shard = Shard::new(
                s.index,
                range,
                (parent_id(s.parent), parent_id(s.adjacent_parent)),
                s.created_ms,
            );
            shard.created_ms = s.created_ms;
            let path = self.shard_path(&record.name, s.index);
            let mut log = replay(&path)?;
            log.trim_before(cutoff);
            {
                let mut state = lock(&shard.state);
                state.closed = s.closed_ms.map(|at_ms| Closed {
                    at_ms,
                    end_position: log.next_position(),
                });
                state.log = log;
                state.limits = crate::server::limits::ShardLimits::new(now);
                state.file = Some(ShardFile::open(&path)?);
            }
            shards.push(Arc::new(shard));
        }
        let open: Vec<Arc<Shard>> = shards.iter().filter(|s| s.is_open()).cloned().collect();
        let open = OpenShards::new(open)
            .map_err(|e| invalid(format!("stream {} has unusable shards: {e}", record.name)))?;
        let arn = format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            config.region, config.account_id, record.name
        );
        let resource_policy = match record.resource_policy {
            None => None,
            Some(text) => Some(
                super::stream::ResourcePolicy::parse(text).map_err(|problems| {
                    invalid(format!(
                        "stream {} has a resource policy this server cannot read: {}",
                        record.name,
                        problems.join("; ")
                    ))
                })?,
            ),
        };
        Ok(Stream {
            arn,
            created_ms: record.created_ms,
            state: Mutex::new(StreamState {
                status: StreamStatus::Active,
                pending: None,
                retention_hours: record.retention_hours,
                tags: record.tags,
                resource_policy,
                mode: record.mode,
                shards,
                next_shard_index: record.next_shard_index,
            }),
            open: RwLock::new(Arc::new(open)),
            name: record.name,
            max_record_bytes: std::sync::atomic::AtomicUsize::new(
                record
                    .max_record_size_kib
                    .map_or(crate::kinesis::limits::DEFAULT_MAX_RECORD_BYTES, |kib| {
                        kib as usize * 1024
                    }),
            ),
        })
    }
}

/// Reads a shard file back into a log, cutting off a torn last record.
fn replay(path: &Path) -> io::Result<ShardLog> {
    let mut log = ShardLog::default();
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(log),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER_LEN) {
        let rest = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let arrival = i64::from_le_bytes(header[4..12].try_into().unwrap_or_default());
        let key_len = usize::from(u16::from_le_bytes([header[12], header[13]]));
        let end = at + 4 + rest;
        if rest < 10 + key_len || end > bytes.len() {
            break;
        }
        let key_start = at + HEADER_LEN;
        let key = String::from_utf8_lossy(&bytes[key_start..key_start + key_len]);
        log.append_at(&key, &bytes[key_start + key_len..end], arrival);
        at = end;
    }
    if at < bytes.len() {
        tracing::warn!(file.path = %path.display(), bytes = bytes.len() - at, "cutting off a torn record at the end of a shard file");
        file.set_len(at as u64)?;
        file.seek(SeekFrom::End(0))?;
    }
    Ok(log)
}
