//! Kinesis Data Firehose on the shard server's port (`X-Amz-Target:
//! Firehose_20150804.<Action>`): delivery streams that take records by PutRecord and
//! PutRecordBatch (DirectPut) or read a Kinesis stream of this server
//! (KinesisStreamAsSource), buffer them, and deliver them as objects to an S3-style
//! directory (`--s3-dir`) or by POST to an HTTP endpoint.
//!
//! A buffer is delivered when it holds its size hint or its first record is as old as
//! its interval hint, whichever comes first (upkeep looks every second). One delivery
//! per delivery stream runs at a time, in a task of its own: an S3 object is retried
//! until written; an HTTP endpoint is retried for its retry duration, then the
//! records are backed up to its bucket under the error prefix.
//!
//! Modules: `actions` (the API), `config` (destinations), `buffer` (what is held,
//! and its file), `delivery` (S3 objects), `endpoint` (HTTP endpoints), `source`
//! (reading a Kinesis stream), `saved` (delivery streams across restarts).

mod actions;
pub mod buffer;
mod config;
pub mod delivery;
mod endpoint;
mod saved;
mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::{Clock, Millis};
use super::error::{KinesisError, OpResult};
use super::limits::{DeliveryLimits, FaultInjection};
use super::store::stream::lock;
use super::store::{Store, StoreConfig};
use buffer::{Batch, Buffer};
use config::{BackupMode, Destination, Http, S3};
use endpoint::{AttemptFailure, Endpoints};
use source::Positions;

pub const TARGET_PREFIX: &str = "Firehose_20150804.";

pub use actions::ACTIONS;

/// Where a delivery stream's records come from, when not from PutRecord(Batch).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KinesisSource {
    pub stream_arn: String,
    pub stream_name: String,
    pub role_arn: String,
    pub from_latest: bool,
    pub started_ms: Millis,
}

/// What UpdateDestination, tags and encryption change (and what is saved).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub version: u64,
    pub destination: Destination,
    pub tags: BTreeMap<String, String>,
    /// `(KeyType, KeyARN)` while StartDeliveryStreamEncryption is in effect.
    pub encryption: Option<(String, Option<String>)>,
    pub updated_ms: Millis,
}

#[derive(Debug)]
pub struct DeliveryStream {
    pub name: String,
    pub arn: String,
    pub created_ms: Millis,
    pub source: Option<KinesisSource>,
    settings: Mutex<Settings>,
    buffer: Mutex<Buffer>,
    positions: Mutex<Positions>,
    quota: Mutex<DeliveryLimits>,
    /// A delivery task is running (at most one per delivery stream).
    delivering: AtomicBool,
    deleted: AtomicBool,
}

impl DeliveryStream {
    fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Buffers `records` (each with the destination's delimiter, if it has one) and,
    /// in the same write, `marker`.
    fn take_in(
        &self,
        records: &[&[u8]],
        marker: Option<&[u8]>,
        now_ms: Millis,
    ) -> std::io::Result<()> {
        let delimiter = lock(&self.settings)
            .destination
            .delimiter()
            .map(<[u8]>::to_vec);
        let mut buffer = lock(&self.buffer);
        match delimiter {
            None => buffer.push_marked(records, marker, now_ms),
            Some(delimiter) => {
                let delimited: Vec<Vec<u8>> = records
                    .iter()
                    .map(|r| [*r, &delimiter[..]].concat())
                    .collect();
                let refs: Vec<&[u8]> = delimited.iter().map(Vec::as_slice).collect();
                buffer.push_marked(&refs, marker, now_ms)
            }
        }
    }

    /// Whether the buffer is due: its size hint reached, or its interval passed.
    fn due(&self, now_ms: Millis) -> bool {
        let (size, interval) = lock(&self.settings).destination.hints();
        let buffer = lock(&self.buffer);
        buffer.bytes() >= size || buffer.first_ms().is_some_and(|t| now_ms - t >= interval)
    }
}

/// What a delivery task needs besides its stream.
#[derive(Clone)]
struct Context {
    clock: Clock,
    s3_dir: Option<PathBuf>,
    endpoints: Endpoints,
}

/// Every delivery stream of the server (the home region's).
pub struct Firehose {
    clock: Clock,
    region: String,
    account_id: String,
    s3_dir: Option<PathBuf>,
    /// `DATA_DIR/firehose`: delivery streams, their buffers and read positions.
    dir: Option<PathBuf>,
    /// Whether each delivery stream's quota is enforced (`--no-limits` turns it off).
    limits: bool,
    faults: FaultInjection,
    /// The home region's Kinesis streams, which KinesisStreamAsSource reads.
    kinesis: Store,
    /// Where new Kinesis-sourced delivery streams start: the end of the shards open
    /// at creation rather than their start.
    from_latest: bool,
    streams: Mutex<BTreeMap<String, Arc<DeliveryStream>>>,
    endpoints: Endpoints,
}

impl std::fmt::Debug for Firehose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firehose")
            .field("region", &self.region)
            .field("streams", &lock(&self.streams).len())
            .finish()
    }
}

/// How a Firehose is set up.
pub struct FirehoseConfig<'a> {
    pub clock: Clock,
    pub store: &'a StoreConfig,
    pub s3_dir: Option<PathBuf>,
    pub data_dir: Option<&'a Path>,
    pub kinesis: Store,
    pub from_latest: bool,
}

impl Firehose {
    /// Delivery streams in the store's region and account, with its limits and
    /// faults; with a data directory, those saved there, buffers included.
    pub fn open(config: FirehoseConfig<'_>) -> std::io::Result<Firehose> {
        let dir = config.data_dir.map(|d| d.join("firehose"));
        let firehose = Firehose {
            clock: config.clock,
            region: config.store.region.clone(),
            account_id: config.store.account_id.clone(),
            s3_dir: config.s3_dir,
            dir,
            limits: config.store.limits,
            faults: config.store.faults,
            kinesis: config.kinesis,
            from_latest: config.from_latest,
            streams: Mutex::new(BTreeMap::new()),
            endpoints: Endpoints::new(),
        };
        if let Some(dir) = &firehose.dir {
            for saved in saved::load(dir)? {
                let stream = firehose.revive(saved)?;
                lock(&firehose.streams).insert(stream.name.clone(), Arc::new(stream));
            }
        }
        Ok(firehose)
    }

    fn stream_dir(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("streams").join(name))
    }

    /// A delivery stream from what was saved, with its buffer and positions.
    fn revive(&self, saved: saved::Saved) -> std::io::Result<DeliveryStream> {
        let now = self.clock.now_ms();
        let buffer = Buffer::open(self.stream_dir(&saved.name).as_deref(), now)?;
        let positions = buffer
            .marker()
            .and_then(Positions::decode)
            .unwrap_or_default();
        Ok(DeliveryStream {
            name: saved.name,
            arn: saved.arn,
            created_ms: saved.created_ms,
            source: saved.source,
            settings: Mutex::new(saved.settings),
            buffer: Mutex::new(buffer),
            positions: Mutex::new(positions),
            quota: Mutex::new(DeliveryLimits::new(now)),
            delivering: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
        })
    }

    /// Writes every delivery stream's settings (after a change).
    fn save(&self) -> OpResult<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let all: Vec<saved::Saved> = lock(&self.streams)
            .values()
            .map(|s| saved::Saved {
                name: s.name.clone(),
                arn: s.arn.clone(),
                created_ms: s.created_ms,
                source: s.source.clone(),
                settings: s.settings(),
            })
            .collect();
        saved::store(dir, &all).map_err(|e| {
            KinesisError::internal(format!("Internal service failure: cannot save: {e}"))
        })
    }

    fn stream(&self, name: &str) -> OpResult<Arc<DeliveryStream>> {
        lock(&self.streams).get(name).cloned().ok_or_else(|| {
            KinesisError::not_found(format!(
                "Firehose {name} under account {} not found.",
                self.account_id
            ))
        })
    }

    fn context(&self) -> Context {
        Context {
            clock: self.clock.clone(),
            s3_dir: self.s3_dir.clone(),
            endpoints: self.endpoints.clone(),
        }
    }

    /// Starts delivering `stream`'s buffer unless a delivery already runs.
    fn kick(&self, stream: &Arc<DeliveryStream>) {
        if stream.delivering.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            stream.delivering.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(deliver(stream.clone(), self.context()));
    }

    /// Upkeep, every second: reads Kinesis sources into their buffers, and starts the
    /// delivery of every buffer that is due.
    pub fn tick(&self) {
        let now = self.clock.now_ms();
        let streams: Vec<Arc<DeliveryStream>> = lock(&self.streams).values().cloned().collect();
        for stream in streams {
            if let Some(source) = &stream.source {
                self.pump(&stream, source);
            }
            if stream.due(now) {
                self.kick(&stream);
            }
            if let Err(error) = lock(&stream.buffer).sync() {
                tracing::error!(delivery_stream = %stream.name, %error, "cannot fsync a Firehose buffer");
            }
        }
    }

    /// Moves what the source stream holds past the read position into the buffer, the
    /// new position with it.
    fn pump(&self, stream: &DeliveryStream, source: &KinesisSource) {
        let mut positions = lock(&stream.positions);
        let mut next = positions.clone();
        let read = next.read(&self.kinesis, &source.stream_name, source.from_latest);
        if !read.moved && read.records.is_empty() {
            return;
        }
        let records: Vec<&[u8]> = read.records.iter().map(|r| &r[..]).collect();
        let marker = next.encode();
        let pushed = stream.take_in(&records, Some(&marker), self.clock.now_ms());
        match pushed {
            Ok(()) => *positions = next,
            Err(error) => {
                tracing::error!(delivery_stream = %stream.name, %error, "cannot buffer records read from the source stream; they are read again");
            }
        }
    }

    /// Delivers every S3 buffer now, in this thread (at shutdown). An HTTP endpoint's
    /// buffer stays in its file (with `--data-dir`) for the next start.
    pub fn flush_all(&self) {
        let streams: Vec<Arc<DeliveryStream>> = lock(&self.streams).values().cloned().collect();
        for stream in streams {
            let Destination::S3(s3) = stream.settings().destination else {
                continue;
            };
            if stream.delivering.swap(true, Ordering::AcqRel) {
                continue;
            }
            let taken = lock(&stream.buffer).take();
            if let Ok(Some(batch)) = taken {
                let version = stream.settings().version;
                match write_raw(self.s3_dir.as_deref(), &stream.name, version, &s3, &batch) {
                    Ok(()) => {
                        let _ = batch.delivered();
                    }
                    Err(error) => {
                        tracing::error!(delivery_stream = %stream.name, %error, "cannot deliver a Firehose buffer at shutdown")
                    }
                }
            }
            stream.delivering.store(false, Ordering::Release);
        }
    }
}

/// Delivers what `stream` holds, batch by batch while the buffer stays full.
async fn deliver(stream: Arc<DeliveryStream>, context: Context) {
    loop {
        let taken = lock(&stream.buffer).take();
        let batch = match taken {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(error) => {
                tracing::error!(delivery_stream = %stream.name, %error, "cannot take a Firehose buffer for delivery");
                break;
            }
        };
        match stream.settings().destination {
            Destination::S3(s3) => write_until_done(&stream, &context, &s3, batch).await,
            Destination::Http(http) => post_until_done(&stream, &context, &http, batch).await,
        }
        let full = {
            let (size, _) = lock(&stream.settings).destination.hints();
            lock(&stream.buffer).bytes() >= size
        };
        if !full || stream.deleted.load(Ordering::Acquire) {
            break;
        }
    }
    stream.delivering.store(false, Ordering::Release);
}

/// The batch's records end to end as one object; retried every second until written
/// (a full disk, a bucket directory that cannot be made).
async fn write_until_done(stream: &DeliveryStream, context: &Context, s3: &S3, batch: Batch) {
    let batch = Arc::new(batch);
    loop {
        let (dir, name, s3c, b) = (
            context.s3_dir.clone(),
            stream.name.clone(),
            s3.clone(),
            batch.clone(),
        );
        let version = stream.settings().version;
        let written = tokio::task::spawn_blocking(move || {
            write_raw(dir.as_deref(), &name, version, &s3c, &b)
        })
        .await;
        match written {
            Ok(Ok(())) => break,
            Ok(Err(error)) => {
                tracing::error!(delivery_stream = %stream.name, %error, "cannot write an S3 object; retrying in 1 s")
            }
            Err(error) => {
                tracing::error!(delivery_stream = %stream.name, %error, "an S3 write failed")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if let Ok(batch) = Arc::try_unwrap(batch)
        && let Err(error) = batch.delivered()
    {
        tracing::error!(delivery_stream = %stream.name, %error, "cannot remove a delivered buffer file; its records will be delivered again at the next start");
    }
}

/// Object keys carry the delivery stream's version (1, then one more for each
/// UpdateDestination), as Firehose's do.
fn write_raw(
    s3_dir: Option<&Path>,
    name: &str,
    version: u64,
    s3: &S3,
    batch: &Batch,
) -> std::io::Result<()> {
    let bucket =
        config::bucket(s3_dir, &s3.bucket_arn).map_err(|e| std::io::Error::other(e.message))?;
    let key = delivery::object_key(&s3.prefix, name, version, batch.first_ms, s3.compression);
    delivery::write_object(&bucket, &key, &batch.data, s3.compression).map(|_| ())
}

/// POSTs the batch until the endpoint takes it or the retry duration runs out; then
/// the records are backed up. With `AllData`, they are also written to the bucket.
async fn post_until_done(stream: &DeliveryStream, context: &Context, http: &Http, batch: Batch) {
    let started = context.clock.now_ms();
    let mut attempts = 0u32;
    let mut pause = Duration::from_millis(500);
    let failure = loop {
        attempts += 1;
        let now = context.clock.now_ms();
        match context.endpoints.post(http, &stream.arn, &batch, now).await {
            Ok(()) => break None,
            Err(failure) => {
                let spent = context.clock.now_ms() - started;
                tracing::warn!(delivery_stream = %stream.name, code = failure.code, message = %failure.message, attempts, "HTTP endpoint delivery failed");
                if spent >= http.retry_ms || stream.deleted.load(Ordering::Acquire) {
                    break Some(failure);
                }
                let left = Duration::from_millis((http.retry_ms - spent).max(0) as u64);
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    };
    let version = stream.settings().version;
    let backups: Vec<(String, Vec<u8>)> = {
        let mut objects = Vec::new();
        if http.backup == BackupMode::AllData {
            let key = delivery::object_key(
                &http.s3.prefix,
                &stream.name,
                version,
                batch.first_ms,
                http.s3.compression,
            );
            objects.push((key, batch.data.clone()));
        }
        if let Some(failure) = &failure {
            let prefix = http
                .s3
                .error_prefix
                .clone()
                .unwrap_or_else(|| "http-endpoint-failed/".to_owned());
            let key = delivery::object_key(
                &prefix,
                &stream.name,
                version,
                batch.first_ms,
                http.s3.compression,
            );
            objects.push((
                key,
                failed_lines(&batch, failure, attempts, context.clock.now_ms()),
            ));
        }
        objects
    };
    for (key, bytes) in backups {
        loop {
            let (dir, bucket_arn, key, bytes, compression) = (
                context.s3_dir.clone(),
                http.s3.bucket_arn.clone(),
                key.clone(),
                bytes.clone(),
                http.s3.compression,
            );
            let written = tokio::task::spawn_blocking(move || {
                let bucket = config::bucket(dir.as_deref(), &bucket_arn)
                    .map_err(|e| std::io::Error::other(e.message))?;
                delivery::write_object(&bucket, &key, &bytes, compression)
            })
            .await;
            if let Ok(Ok(_)) = written {
                break;
            }
            tracing::error!(delivery_stream = %stream.name, "cannot write a backup object; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    if let Err(error) = batch.delivered() {
        tracing::error!(delivery_stream = %stream.name, %error, "cannot remove a delivered buffer file; its records will be delivered again at the next start");
    }
}

/// The failed records as Firehose backs them up: one JSON object per line.
fn failed_lines(batch: &Batch, failure: &AttemptFailure, attempts: u32, now_ms: Millis) -> Vec<u8> {
    let mut out = Vec::new();
    for record in batch.records() {
        let line = serde_json::json!({
            "attemptsMade": attempts,
            "arrivalTimestamp": batch.first_ms,
            "errorCode": failure.code,
            "errorMessage": failure.message,
            "attemptEndingTimestamp": now_ms,
            "rawData": base64_simd::STANDARD.encode_to_string(record),
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}
