//! A stream and its shards: the state every operation reads or changes.
//!
//! Locking: a stream's control state sits behind one `std::sync::Mutex` (held only
//! for short, non-async sections), the open-shard map behind an `RwLock` that writes
//! take a cheap `Arc` clone of, and each shard's records behind their own mutex, so
//! writes to different shards never wait for each other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::log::{Position, ShardLog};
use super::sequence;
use super::shard_file::ShardFile;
use crate::kinesis::{HashKey, HashKeyRange, ShardId, ShardMap, ShardRange};
use crate::server::clock::Millis;
use crate::server::limits::ShardLimits;

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every
/// critical section here leaves the state consistent between statements.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Creating,
    Deleting,
    Active,
    Updating,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Deleting => "DELETING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// A shard that stopped taking writes (after a reshard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    pub at_ms: Millis,
    /// Position just past the last record the shard will ever hold.
    pub end_position: Position,
}

/// The mutable part of a shard.
#[derive(Debug)]
pub struct ShardState {
    pub log: ShardLog,
    pub closed: Option<Closed>,
    pub limits: ShardLimits,
    pub file: Option<ShardFile>,
}

#[derive(Debug)]
pub struct Shard {
    pub id: ShardId,
    pub index: u32,
    pub range: HashKeyRange,
    pub parent: Option<ShardId>,
    pub adjacent_parent: Option<ShardId>,
    pub created_ms: Millis,
    pub state: Mutex<ShardState>,
    /// Woken when a record is appended, for the subscriptions waiting on the shard.
    pub appended: tokio::sync::Notify,
    /// Subscriptions waiting on `appended`; a put wakes them only when there are any,
    /// so a shard nobody subscribes to pays one atomic load per record.
    pub listeners: AtomicUsize,
}

/// A subscription's claim on a shard's append notifications, given back on drop.
#[derive(Debug)]
pub struct Listening(Arc<Shard>);

impl Listening {
    pub fn new(shard: Arc<Shard>) -> Self {
        shard.listeners.fetch_add(1, Ordering::Relaxed);
        Listening(shard)
    }

    pub fn shard(&self) -> &Shard {
        &self.0
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shard {
    /// Wakes the subscriptions waiting for records, if any.
    pub fn announce_append(&self) {
        if self.listeners.load(Ordering::Relaxed) > 0 {
            self.appended.notify_waiters();
        }
    }

    pub fn new(
        index: u32,
        range: HashKeyRange,
        parents: (Option<ShardId>, Option<ShardId>),
        now_ms: Millis,
    ) -> Self {
        Shard {
            id: ShardId::from_index(u64::from(index)),
            index,
            range,
            parent: parents.0,
            adjacent_parent: parents.1,
            created_ms: now_ms,
            state: Mutex::new(ShardState {
                log: ShardLog::default(),
                closed: None,
                limits: ShardLimits::new(now_ms),
                file: None,
            }),
            appended: tokio::sync::Notify::new(),
            listeners: AtomicUsize::new(0),
        }
    }

    pub fn starting_sequence_number(&self) -> String {
        sequence::format(self.index, self.created_ms, 0, self.created_ms)
    }

    /// The last sequence number of a closed shard (its last record, or its start if empty).
    pub fn ending_sequence_number(&self) -> Option<String> {
        lock(&self.state).closed.map(|c| {
            let last = c.end_position.saturating_sub(1);
            sequence::format(self.index, self.created_ms, last, c.at_ms)
        })
    }

    pub fn is_open(&self) -> bool {
        lock(&self.state).closed.is_none()
    }

    /// Stops writes; returns false if the shard was already closed.
    pub fn close(&self, now_ms: Millis) -> bool {
        let mut state = lock(&self.state);
        if state.closed.is_some() {
            return false;
        }
        let end_position = state.log.next_position();
        if let Some(file) = state.file.as_mut()
            && let Err(error) = file.flush()
        {
            tracing::error!(shard.id = %self.id, %error, "cannot flush a closing shard's file");
        }
        state.closed = Some(Closed {
            at_ms: now_ms,
            end_position,
        });
        true
    }
}

/// The open shards in hash-key order, with the map that routes to them.
#[derive(Debug)]
pub struct OpenShards {
    pub map: ShardMap,
    /// `shards[i]` owns `map.shards()[i]`.
    pub shards: Vec<Arc<Shard>>,
}

impl OpenShards {
    pub fn new(open: Vec<Arc<Shard>>) -> Result<Self, crate::kinesis::ShardMapError> {
        let map = ShardMap::new(
            open.iter()
                .map(|s| ShardRange {
                    shard_id: s.id.clone(),
                    range: s.range,
                })
                .collect(),
        )?;
        let mut shards = open;
        shards.sort_by_key(|s| s.range.start);
        Ok(OpenShards { map, shards })
    }

    pub fn route(&self, hash_key: HashKey) -> &Arc<Shard> {
        &self.shards[self.map.predict_index(hash_key)]
    }
}

/// A stream's resource policy: the text GetResourcePolicy gives back, and the document
/// authorization evaluates (shared, so a call reads it without holding the state lock).
#[derive(Debug, Clone)]
pub struct ResourcePolicy {
    pub text: String,
    pub document: Arc<crate::server::policy::Document>,
}

impl ResourcePolicy {
    /// Reads a policy document as PutResourcePolicy takes it; its problems otherwise.
    pub fn parse(text: String) -> Result<ResourcePolicy, Vec<String>> {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| vec![format!("not JSON: {e}")])?;
        let document =
            crate::server::policy::Document::parse(&value, crate::server::policy::Kind::Resource)?;
        Ok(ResourcePolicy {
            text,
            document: Arc::new(document),
        })
    }
}

/// A registered enhanced fan-out consumer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Consumer {
    pub name: String,
    pub arn: String,
    pub created_ms: Millis,
    /// When it turns ACTIVE (it is CREATING until then).
    pub active_ms: Millis,
}

impl Consumer {
    pub fn status(&self, now_ms: Millis) -> &'static str {
        if now_ms >= self.active_ms {
            "ACTIVE"
        } else {
            "CREATING"
        }
    }
}

/// Control-plane state of a stream.
#[derive(Debug)]
pub struct StreamState {
    pub status: StreamStatus,
    /// A status change due at a time (CREATING -> ACTIVE, UPDATING -> ACTIVE, DELETING -> gone).
    pub pending: Option<(Millis, StreamStatus)>,
    pub retention_hours: u32,
    pub tags: BTreeMap<String, String>,
    /// The policy PutResourcePolicy attached, as given and as evaluated.
    pub resource_policy: Option<ResourcePolicy>,
    /// The KMS key id StartStreamEncryption named, while the stream is encrypted.
    pub encryption_key_id: Option<String>,
    /// The shard-level metrics EnableEnhancedMonitoring turned on.
    pub shard_level_metrics: std::collections::BTreeSet<String>,
    /// Registered consumers, in registration order.
    pub consumers: Vec<Consumer>,
    pub mode: StreamMode,
    /// The write throughput, in MiB/s, UpdateStreamWarmThroughput asked an ON_DEMAND
    /// stream to be ready for.
    pub warm_throughput_mibps: Option<u32>,
    /// When UpdateShardCount last ran (within its rolling 24-hour window).
    pub scalings_ms: Vec<Millis>,
    /// Every shard ever created, open or closed, in id order.
    pub shards: Vec<Arc<Shard>>,
    pub next_shard_index: u32,
}

impl StreamState {
    /// Applies a due status change.
    pub fn settle(&mut self, now_ms: Millis) {
        if let Some((due, next)) = self.pending
            && now_ms >= due
        {
            self.status = next;
            self.pending = None;
        }
    }

    pub fn open_shard_count(&self) -> usize {
        self.shards.iter().filter(|s| s.is_open()).count()
    }
}

#[derive(Debug)]
pub struct Stream {
    pub name: String,
    pub arn: String,
    pub created_ms: Millis,
    pub state: Mutex<StreamState>,
    pub open: RwLock<Arc<OpenShards>>,
    /// Largest record (partition key plus data) the stream takes: 1 MiB unless raised
    /// by UpdateMaxRecordSize. Read on every put, so kept outside the state lock.
    pub max_record_bytes: AtomicUsize,
    /// Whether records are sealed as they are written (StartStreamEncryption); read
    /// on every put, so kept outside the state lock like `max_record_bytes`.
    pub sealing: std::sync::atomic::AtomicBool,
}

impl Stream {
    pub fn sealing(&self) -> bool {
        self.sealing.load(Ordering::Relaxed)
    }

    /// `EncryptionType` as answers show it.
    pub fn encryption_type(&self) -> &'static str {
        if self.sealing() { "KMS" } else { "NONE" }
    }

    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes.load(Ordering::Relaxed)
    }

    pub fn set_max_record_bytes(&self, bytes: usize) {
        self.max_record_bytes.store(bytes, Ordering::Relaxed);
    }

    /// A snapshot of the open shards to route writes with.
    pub fn open_shards(&self) -> Arc<OpenShards> {
        self.open
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn set_open_shards(&self, open: OpenShards) {
        *self
            .open
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(open);
    }

    pub fn shard(&self, index: u32) -> Option<Arc<Shard>> {
        lock(&self.state).shards.get(index as usize).cloned()
    }
}
