//! The optional data directory: streams and records that survive a restart.
//!
//! Layout: `streams.json` holds every stream's metadata (written to a temporary file,
//! fsynced, renamed over the old one, directory fsynced) after each control-plane
//! change; `s-<stream>/<shard index>.log` holds each shard's records, appended as
//! `[u32 length][i64 arrival ms][u16 key length][key][data]`, or sealed for an
//! encrypted stream (see [`shard_file`](super::shard_file) and
//! [`at_rest`](super::at_rest)); `master.key` is the master key when none is given.
//!
//! Durability rule: a PutRecord(s) response is sent only after the records were
//! written to the OS (`write(2)`), so they survive the server being killed, even with
//! `kill -9`. Shard files are fsynced once a second, so a power loss can take at most
//! the last second of records. On start, a torn record at the end of a file (from a
//! crash in the middle of a write) is cut off.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::StoreConfig;
use super::account::AccountSettings;
use super::at_rest::{DataKey, MasterKey, NONCE_LEN};
use super::log::ShardLog;
use super::shard_file::{DATA_KEY, HEADER_LEN, LENGTH_MASK, SEALED, ShardFile};
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
    /// The fingerprint of the master key, once any stream was encrypted: records
    /// sealed under it may be in the shard files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master_key: Option<String>,
    /// Account-level settings (absent in directories written before they existed).
    #[serde(default)]
    account: AccountSettings,
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
    /// The KMS key id of StartStreamEncryption while the stream is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption_key_id: Option<String>,
    /// EnableEnhancedMonitoring's shard-level metrics.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    shard_level_metrics: BTreeSet<String>,
    /// Registered enhanced fan-out consumers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    consumers: Vec<super::stream::Consumer>,
    /// UpdateStreamWarmThroughput's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warm_throughput_mibps: Option<u32>,
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
    master: Arc<MasterKey>,
    /// Whether any stream was ever encrypted here (the metadata then names the key).
    sealed_ever: Arc<AtomicBool>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Persist {
    /// Opens the data directory with its master key (`key_file`, else `master.key`
    /// in it); a key that is missing or not the one its records were sealed with is
    /// an error here, before anything is read.
    pub fn new(dir: &Path, key_file: Option<&Path>) -> io::Result<Persist> {
        fs::create_dir_all(dir)?;
        let expected = read_metadata(&dir.join(METADATA_FILE))?.and_then(|m| m.master_key);
        let master = MasterKey::open(dir, key_file, expected.as_deref())?;
        Ok(Persist {
            dir: dir.to_owned(),
            write: Arc::new(Mutex::new(())),
            master: Arc::new(master),
            sealed_ever: Arc::new(AtomicBool::new(expected.is_some())),
        })
    }

    /// Records that a stream is now encrypted: from here on the metadata names the
    /// master key, so the data directory is never opened without it.
    pub fn note_encryption(&self) {
        self.sealed_ever.store(true, Ordering::Relaxed);
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
        let file = ShardFile::open(
            &self.shard_path(stream, shard.index),
            Some(self.master.clone()),
        )?;
        lock(&shard.state).file = Some(file);
        Ok(())
    }

    pub fn remove_stream_dir(&self, name: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.stream_dir(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn save_metadata(
        &self,
        streams: &[Arc<Stream>],
        account: &AccountSettings,
    ) -> io::Result<()> {
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
                    encryption_key_id: state.encryption_key_id.clone(),
                    shard_level_metrics: state.shard_level_metrics.clone(),
                    consumers: state.consumers.clone(),
                    warm_throughput_mibps: state.warm_throughput_mibps,
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
            master_key: self
                .sealed_ever
                .load(Ordering::Relaxed)
                .then(|| self.master.fingerprint().to_owned()),
            account: account.clone(),
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

    /// The account settings last saved.
    pub fn load_account(&self) -> io::Result<AccountSettings> {
        Ok(read_metadata(&self.dir.join(METADATA_FILE))?
            .map(|m| m.account)
            .unwrap_or_default())
    }

    /// Rebuilds every stream from the data directory.
    pub fn load(
        &self,
        clock: &Clock,
        config: &StoreConfig,
    ) -> io::Result<BTreeMap<String, Arc<Stream>>> {
        let Some(metadata) = read_metadata(&self.dir.join(METADATA_FILE))? else {
            return Ok(BTreeMap::new());
        };
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
            let mut log = replay(&path, &self.master)?;
            log.trim_before(cutoff);
            {
                let mut state = lock(&shard.state);
                state.closed = s.closed_ms.map(|at_ms| Closed {
                    at_ms,
                    end_position: log.next_position(),
                });
                state.log = log;
                state.limits = crate::server::limits::ShardLimits::new(now);
                state.file = Some(ShardFile::open(&path, Some(self.master.clone()))?);
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
                encryption_key_id: record.encryption_key_id.clone(),
                shard_level_metrics: record.shard_level_metrics,
                consumers: record.consumers,
                warm_throughput_mibps: record.warm_throughput_mibps,
                scalings_ms: Vec::new(),
                mode: record.mode,
                shards,
                next_shard_index: record.next_shard_index,
            }),
            open: RwLock::new(Arc::new(open)),
            name: record.name,
            sealing: std::sync::atomic::AtomicBool::new(record.encryption_key_id.is_some()),
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

/// The metadata file, if there is one.
fn read_metadata(path: &Path) -> io::Result<Option<Metadata>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
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
    Ok(Some(metadata))
}

/// Reads a shard file back into a log, cutting off a torn last record. Sealed records
/// are opened with their segment's data key, which `master` unwraps; a frame that
/// is whole but does not open is an error, never skipped.
fn replay(path: &Path, master: &MasterKey) -> io::Result<ShardLog> {
    let mut log = ShardLog::default();
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(log),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut segment: Option<DataKey> = None;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 4) {
        let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        let end = at + 4 + (word & LENGTH_MASK) as usize;
        let Some(frame) = bytes.get(at + 4..end) else {
            break;
        };
        let unreadable = |what: &str| {
            invalid(format!(
                "{} at byte {at}: {what} (master key {}, fingerprint {})",
                path.display(),
                master.path().display(),
                master.fingerprint()
            ))
        };
        if word & DATA_KEY != 0 {
            segment = Some(master.unwrap_data_key(frame).ok_or_else(|| {
                unreadable("a data key this master key did not wrap (another master key?)")
            })?);
        } else if word & SEALED != 0 {
            let key = segment
                .as_ref()
                .ok_or_else(|| unreadable("a sealed record before any data key"))?;
            let (arrival, rest) = frame
                .split_at_checked(8)
                .ok_or_else(|| unreadable("a sealed record too short to hold one"))?;
            let (nonce, sealed) = rest
                .split_at_checked(NONCE_LEN)
                .ok_or_else(|| unreadable("a sealed record too short to hold one"))?;
            let mut sealed = sealed.to_vec();
            let plain = key
                .open(nonce, arrival, &mut sealed)
                .ok_or_else(|| unreadable("a sealed record that does not open (altered?)"))?;
            let key_len = plain
                .get(..2)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
                .filter(|len| 2 + len <= plain.len())
                .ok_or_else(|| unreadable("a sealed record whose key overruns it"))?;
            let partition_key = String::from_utf8_lossy(&plain[2..2 + key_len]);
            let arrival = i64::from_le_bytes(arrival.try_into().unwrap_or_default());
            log.append_at(&partition_key, &plain[2 + key_len..], arrival, true);
        } else {
            let Some(header) = bytes.get(at..at + HEADER_LEN) else {
                break;
            };
            let arrival = i64::from_le_bytes(header[4..12].try_into().unwrap_or_default());
            let key_len = usize::from(u16::from_le_bytes([header[12], header[13]]));
            if frame.len() < 10 + key_len {
                break;
            }
            let key_start = at + HEADER_LEN;
            let key = String::from_utf8_lossy(&bytes[key_start..key_start + key_len]);
            log.append_at(&key, &bytes[key_start + key_len..end], arrival, false);
        }
        at = end;
    }
    if at < bytes.len() {
        tracing::warn!(file.path = %path.display(), bytes = bytes.len() - at, "cutting off a torn record at the end of a shard file");
        file.set_len(at as u64)?;
        file.seek(SeekFrom::End(0))?;
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(dir: &Path, master: &Arc<MasterKey>) -> (PathBuf, Vec<u64>) {
        let path = dir.join("000000000000.log");
        let mut file =
            ShardFile::open(&path, Some(master.clone())).unwrap_or_else(|e| panic!("{e}"));
        let mut ends = Vec::new();
        for i in 0..6 {
            // Plain, then sealed, then plain again: StartStreamEncryption and Stop.
            let seal = (2..5).contains(&i);
            file.append(&format!("k{i}"), format!("record-{i}").as_bytes(), i, seal)
                .unwrap_or_else(|e| panic!("{e}"));
            file.flush().unwrap_or_else(|e| panic!("{e}"));
            ends.push(fs::metadata(&path).map(|m| m.len()).unwrap_or_default());
        }
        (path, ends)
    }

    fn data(log: &ShardLog) -> Vec<String> {
        log.read(0, 100, usize::MAX)
            .iter()
            .map(|r| String::from_utf8_lossy(&r.data).into_owned())
            .collect()
    }

    #[test]
    fn plain_and_sealed_records_replay_in_order_and_a_torn_sealed_one_is_cut_off() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let master =
            Arc::new(MasterKey::open(dir.path(), None, None).unwrap_or_else(|e| panic!("{e}")));
        let (path, ends) = written(dir.path(), &master);
        let log = replay(&path, &master).unwrap_or_else(|e| panic!("{e}"));
        let all: Vec<String> = (0..6).map(|i| format!("record-{i}")).collect();
        assert_eq!(data(&log), all);
        let bytes = fs::read(&path).unwrap_or_default();
        assert!(!bytes.windows(8).any(|w| w == b"record-3"));

        // Torn in the middle of the last sealed record (index 4): 0-3 survive.
        let torn = ends[3] + (ends[4] - ends[3]) / 2;
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        file.set_len(torn).unwrap_or_else(|e| panic!("{e}"));
        let log = replay(&path, &master).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data(&log), all[..4]);
        assert_eq!(
            fs::metadata(&path).map(|m| m.len()).unwrap_or_default(),
            ends[3]
        );
    }

    #[test]
    fn an_altered_sealed_record_is_an_error_not_a_skip() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let master =
            Arc::new(MasterKey::open(dir.path(), None, None).unwrap_or_else(|e| panic!("{e}")));
        let (path, ends) = written(dir.path(), &master);
        let mut bytes = fs::read(&path).unwrap_or_default();
        // The last byte of sealed record 3 (its tag).
        bytes[ends[3] as usize - 1] ^= 1;
        fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let error = replay(&path, &master).unwrap_err();
        assert!(error.to_string().contains("does not open"), "{error}");
    }
}
