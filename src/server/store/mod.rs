//! The server's state: streams, shards and their records, with Kinesis semantics.
//!
//! This layer decides what is allowed (stream exists, is ACTIVE, shard limits) and
//! returns typed [`KinesisError`]s; request parsing and field validation live in
//! `ops`, and the HTTP framing in `http`.

pub mod account;
pub mod at_rest;
pub mod capacity;
pub mod iterator;
pub mod log;
pub mod persist;
pub mod records;
mod reshard;
pub mod sequence;
pub mod shard_file;
pub mod stream;
pub mod subscriptions;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

pub use iterator::IteratorToken;
pub use records::{GetRecordsOutput, IteratorStart, PutOutcome};
use stream::{OpenShards, Shard, Stream, StreamMode, StreamState, StreamStatus, lock};

use crate::kinesis::{HashKeyRange, limits};
use crate::server::clock::{Clock, Millis};
use crate::server::error::{KinesisError, OpResult};
use crate::server::limits::FaultInjection;
use persist::Persist;

/// How the store behaves; the server's command-line flags end up here.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub region: String,
    pub account_id: String,
    /// How long CREATING, UPDATING and DELETING last.
    pub status_delay_ms: Millis,
    /// Enforce per-shard throughput limits.
    pub limits: bool,
    pub faults: FaultInjection,
    /// Most shards across all streams (the account quota).
    pub shard_limit: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            status_delay_ms: 100,
            limits: true,
            faults: FaultInjection::default(),
            shard_limit: limits::MAX_SHARDS_PER_STREAM,
        }
    }
}

/// A cheap handle to the shared store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    config: StoreConfig,
    clock: Clock,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    persist: Option<Persist>,
    /// Serialises control-plane changes so the metadata file is written in order.
    control: Mutex<()>,
    /// Records still to drop under `faults.drop_records`.
    drops_left: std::sync::atomic::AtomicU64,
    account: Mutex<account::AccountSettings>,
    /// When ON_DEMAND streams were last looked at for scaling.
    last_scaling_ms: std::sync::atomic::AtomicI64,
    subscriptions: subscriptions::Subscriptions,
}

impl Store {
    pub fn new(
        config: StoreConfig,
        clock: Clock,
        persist: Option<Persist>,
    ) -> std::io::Result<Store> {
        let started_ms = clock.now_ms();
        let (streams, account) = match &persist {
            Some(p) => (p.load(&clock, &config)?, p.load_account()?),
            None => (BTreeMap::new(), account::AccountSettings::default()),
        };
        Ok(Store {
            inner: Arc::new(StoreInner {
                config: config.clone(),
                clock,
                streams: RwLock::new(streams),
                drops_left: std::sync::atomic::AtomicU64::new(config.faults.drop_records),
                persist,
                control: Mutex::new(()),
                account: Mutex::new(account),
                last_scaling_ms: std::sync::atomic::AtomicI64::new(started_ms),
                subscriptions: Default::default(),
            }),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn now_ms(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    pub fn persist(&self) -> Option<&Persist> {
        self.inner.persist.as_ref()
    }

    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            self.inner.config.region, self.inner.config.account_id, name
        )
    }

    /// The stream name an ARN names, if the ARN is for this region and account.
    pub fn name_from_arn(&self, arn: &str) -> Option<String> {
        let prefix = format!(
            "arn:aws:kinesis:{}:{}:stream/",
            self.inner.config.region, self.inner.config.account_id
        );
        arn.strip_prefix(&prefix).map(str::to_owned)
    }

    pub fn not_found(&self, name: &str) -> KinesisError {
        KinesisError::not_found(format!(
            "Stream {name} under account {} not found.",
            self.inner.config.account_id
        ))
    }

    /// Takes one record from the drop budget (fault injection); true if it must be dropped.
    pub fn take_drop(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.inner
            .drops_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn account_id(&self) -> &str {
        &self.inner.config.account_id
    }

    fn read_streams(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.inner.streams.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_streams(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.inner
            .streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The stream by name, in any status except one whose deletion has completed.
    pub fn stream(&self, name: &str) -> OpResult<Arc<Stream>> {
        let stream = self.read_streams().get(name).cloned();
        let Some(stream) = stream else {
            return Err(self.not_found(name));
        };
        let gone = {
            let mut state = lock(&stream.state);
            state.settle(self.now_ms());
            state.status == StreamStatus::Deleting && state.pending.is_none()
        };
        if gone {
            self.forget(&stream);
            return Err(self.not_found(name));
        }
        Ok(stream)
    }

    /// The stream, which must be ACTIVE or UPDATING to take reads and writes.
    pub fn readable_stream(&self, name: &str) -> OpResult<Arc<Stream>> {
        let stream = self.stream(name)?;
        let status = lock(&stream.state).status;
        match status {
            StreamStatus::Active | StreamStatus::Updating => Ok(stream),
            StreamStatus::Creating | StreamStatus::Deleting => Err(self.not_found(name)),
        }
    }

    /// The stream, which must be ACTIVE for a control-plane change.
    pub fn active_stream(
        &self,
        name: &str,
    ) -> OpResult<(Arc<Stream>, std::sync::MutexGuard<'_, ()>)> {
        let control = lock(&self.inner.control);
        let stream = self.stream(name)?;
        let status = lock(&stream.state).status;
        if status != StreamStatus::Active {
            return Err(KinesisError::in_use(format!(
                "Stream {name} under account {} not ACTIVE, instead in state {}",
                self.inner.config.account_id,
                status.as_str()
            )));
        }
        Ok((stream, control))
    }

    fn forget(&self, stream: &Arc<Stream>) {
        let mut streams = self.write_streams();
        if streams
            .get(&stream.name)
            .is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            streams.remove(&stream.name);
        }
    }

    /// Names of all streams (deleted ones settle out first).
    pub fn stream_names(&self) -> Vec<String> {
        let names: Vec<String> = self.read_streams().keys().cloned().collect();
        names
            .into_iter()
            .filter(|n| self.stream(n).is_ok())
            .collect()
    }

    /// Open shards across every stream (the account's shard quota counts these).
    pub fn total_open_shards(&self) -> usize {
        self.read_streams()
            .values()
            .map(|s| lock(&s.state).open_shard_count())
            .sum()
    }

    /// Streams in ON_DEMAND mode.
    pub fn on_demand_streams(&self) -> usize {
        self.read_streams()
            .values()
            .filter(|s| lock(&s.state).mode == StreamMode::OnDemand)
            .count()
    }

    /// Fails with LimitExceededException if `additional` more open shards would pass the quota.
    pub fn check_shard_limit(&self, additional: usize) -> OpResult<()> {
        let current = self.total_open_shards();
        let limit = self.inner.config.shard_limit as usize;
        if current + additional > limit {
            return Err(KinesisError::limit_exceeded(format!(
                "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {current}. Limit: {limit}. Number of additional shards that would have resulted from this request: {additional}. Refer to the AWS Service Limits page (https://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
                self.inner.config.account_id, self.inner.config.region
            )));
        }
        Ok(())
    }

    /// Creates a stream of `shard_count` evenly split shards. `immediately` skips CREATING
    /// (for streams created at server start).
    pub fn create_stream(
        &self,
        name: &str,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
        immediately: bool,
    ) -> OpResult<()> {
        let _control = lock(&self.inner.control);
        if self.stream(name).is_ok() {
            return Err(KinesisError::in_use(format!(
                "Stream {name} under account {} already exists.",
                self.inner.config.account_id
            )));
        }
        self.check_shard_limit(shard_count as usize)?;
        let now = self.now_ms();
        let shards: Vec<Arc<Shard>> = HashKeyRange::even_split(shard_count)
            .into_iter()
            .enumerate()
            .map(|(i, range)| Arc::new(Shard::new(i as u32, range, (None, None), now)))
            .collect();
        let open = OpenShards::new(shards.clone()).map_err(|e| {
            KinesisError::internal(format!("even split did not cover the key space: {e}"))
        })?;
        let (status, pending) = if immediately || self.inner.config.status_delay_ms == 0 {
            (StreamStatus::Active, None)
        } else {
            (
                StreamStatus::Creating,
                Some((
                    now + self.inner.config.status_delay_ms,
                    StreamStatus::Active,
                )),
            )
        };
        let stream = Arc::new(Stream {
            name: name.to_owned(),
            arn: self.arn(name),
            created_ms: now,
            state: Mutex::new(StreamState {
                status,
                pending,
                retention_hours: limits::MIN_RETENTION_HOURS,
                tags,
                resource_policy: None,
                encryption_key_id: None,
                shard_level_metrics: Default::default(),
                consumers: Vec::new(),
                warm_throughput_mibps: None,
                scalings_ms: Vec::new(),
                mode,
                next_shard_index: shard_count,
                shards,
            }),
            open: RwLock::new(Arc::new(open)),
            max_record_bytes: std::sync::atomic::AtomicUsize::new(limits::DEFAULT_MAX_RECORD_BYTES),
            sealing: std::sync::atomic::AtomicBool::new(false),
        });
        if let Some(persist) = &self.inner.persist {
            persist.create_stream_dir(&stream).map_err(|e| {
                KinesisError::internal(format!("cannot create stream storage: {e}"))
            })?;
        }
        self.write_streams().insert(name.to_owned(), stream);
        self.save_metadata()
    }

    /// Starts deleting a stream; it answers DELETING until the status delay passes.
    pub fn delete_stream(&self, name: &str) -> OpResult<()> {
        let _control = lock(&self.inner.control);
        let stream = self.stream(name)?;
        let now = self.now_ms();
        {
            let mut state = lock(&stream.state);
            state.status = StreamStatus::Deleting;
            state.pending = Some((
                now + self.inner.config.status_delay_ms,
                StreamStatus::Deleting,
            ));
            state.settle(now);
        }
        if let Some(persist) = &self.inner.persist {
            persist.remove_stream_dir(name).map_err(|e| {
                KinesisError::internal(format!("cannot remove stream storage: {e}"))
            })?;
        }
        if self.inner.config.status_delay_ms == 0 {
            self.forget(&stream);
        }
        self.save_metadata()
    }

    /// Marks the stream UPDATING until the status delay passes.
    pub fn begin_update(&self, stream: &Stream) {
        let now = self.now_ms();
        let mut state = lock(&stream.state);
        if self.inner.config.status_delay_ms > 0 {
            state.status = StreamStatus::Updating;
            state.pending = Some((
                now + self.inner.config.status_delay_ms,
                StreamStatus::Active,
            ));
        }
    }

    pub fn account_settings(&self) -> account::AccountSettings {
        lock(&self.inner.account).clone()
    }

    /// Changes the account settings and saves them; returns them as changed.
    pub fn update_account(
        &self,
        change: impl FnOnce(&mut account::AccountSettings),
    ) -> OpResult<account::AccountSettings> {
        let _control = lock(&self.inner.control);
        let settings = {
            let mut account = lock(&self.inner.account);
            change(&mut account);
            account.clone()
        };
        self.save_metadata()?;
        Ok(settings)
    }

    /// Writes stream metadata to the data directory, if there is one.
    pub fn save_metadata(&self) -> OpResult<()> {
        let Some(persist) = &self.inner.persist else {
            return Ok(());
        };
        let streams: Vec<Arc<Stream>> = self.read_streams().values().cloned().collect();
        let account = self.account_settings();
        persist
            .save_metadata(&streams, &account)
            .map_err(|e| KinesisError::internal(format!("cannot save stream metadata: {e}")))
    }

    /// Drops records older than each stream's retention period.
    pub fn trim_expired(&self) {
        let now = self.now_ms();
        let streams: Vec<Arc<Stream>> = self.read_streams().values().cloned().collect();
        for stream in streams {
            let (retention_hours, shards) = {
                let state = lock(&stream.state);
                (state.retention_hours, state.shards.clone())
            };
            let cutoff = now - i64::from(retention_hours) * 3_600_000;
            for shard in shards {
                lock(&shard.state).log.trim_before(cutoff);
            }
        }
    }

    /// Flushes buffered writes of every shard file to the OS, then fsyncs them.
    pub fn sync_files(&self) -> std::io::Result<()> {
        let streams: Vec<Arc<Stream>> = self.read_streams().values().cloned().collect();
        for stream in streams {
            let shards = lock(&stream.state).shards.clone();
            for shard in shards {
                let file = lock(&shard.state).file.as_ref().map(|f| f.handle());
                if let Some(file) = file {
                    file.sync_data()?;
                }
            }
        }
        Ok(())
    }

    /// Payload bytes held by each open shard of `stream`, in hash-key order: what a
    /// shard was written, for reports of how much of its write limit a run used.
    pub fn open_shard_bytes(&self, stream: &str) -> OpResult<Vec<(String, usize)>> {
        let stream = self.stream(stream)?;
        Ok(stream
            .open_shards()
            .shards
            .iter()
            .map(|shard| (shard.id.to_string(), lock(&shard.state).log.stored_bytes()))
            .collect())
    }

    /// Payload bytes held in memory across all streams.
    pub fn stored_bytes(&self) -> usize {
        let streams: Vec<Arc<Stream>> = self.read_streams().values().cloned().collect();
        streams
            .iter()
            .flat_map(|s| lock(&s.state).shards.clone())
            .map(|shard| lock(&shard.state).log.stored_bytes())
            .sum()
    }
}
