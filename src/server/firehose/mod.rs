//! Kinesis Data Firehose on the shard server's port (`X-Amz-Target:
//! Firehose_20150804.<Action>`): DirectPut delivery streams that buffer records and
//! deliver them as objects to an S3-style directory (`--s3-dir`), as Firehose does.
//!
//! Answered: CreateDeliveryStream, DescribeDeliveryStream, ListDeliveryStreams,
//! DeleteDeliveryStream, PutRecord and PutRecordBatch. A buffer is flushed when it
//! holds `BufferingHints.SizeInMBs` or its first record is `IntervalInSeconds` old,
//! whichever comes first (the upkeep pass checks the interval every second).

pub mod delivery;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use rand::RngExt;

use super::clock::{Clock, Millis};
use super::error::{KinesisError, OpResult};
use super::limits::{DeliveryLimits, FaultInjection, InjectedFault};
use super::ops::validate::{Violations, is_name};
use super::store::StoreConfig;
use super::store::stream::lock;
use super::wire::{self, Blob, Format, Timestamp};
use crate::kinesis::limits;
use delivery::Compression;

pub const TARGET_PREFIX: &str = "Firehose_20150804.";

/// The actions answered, sorted.
pub const ACTIONS: &[&str] = &[
    "CreateDeliveryStream",
    "DeleteDeliveryStream",
    "DescribeDeliveryStream",
    "ListDeliveryStreams",
    "PutRecord",
    "PutRecordBatch",
];

/// Largest record, and largest PutRecordBatch, as Firehose limits them.
const MAX_RECORD_BYTES: usize = limits::FIREHOSE_MAX_RECORD_BYTES;
const MAX_BATCH_BYTES: usize = limits::FIREHOSE_BATCH_MAX_BYTES;
const MAX_BATCH_RECORDS: usize = limits::FIREHOSE_BATCH_MAX_RECORDS;

#[derive(Debug)]
struct DeliveryStream {
    name: String,
    arn: String,
    created_ms: Millis,
    bucket_arn: String,
    bucket: PathBuf,
    prefix: String,
    error_prefix: Option<String>,
    role_arn: String,
    size_bytes: usize,
    interval_ms: Millis,
    compression: Compression,
    buffer: Mutex<Buffer>,
    /// The delivery stream's write quota (when the server enforces limits).
    quota: Mutex<DeliveryLimits>,
}

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    first_ms: Option<Millis>,
}

/// Every delivery stream of the server.
#[derive(Debug)]
pub struct Firehose {
    clock: Clock,
    region: String,
    account_id: String,
    s3_dir: Option<PathBuf>,
    /// Whether each delivery stream's quota is enforced (`--no-limits` turns it off).
    limits: bool,
    faults: FaultInjection,
    streams: Mutex<BTreeMap<String, Arc<DeliveryStream>>>,
}

impl Firehose {
    /// Delivery streams in `store`'s region and account, with its limits and faults.
    pub fn new(clock: Clock, store: &StoreConfig, s3_dir: Option<PathBuf>) -> Self {
        Firehose {
            clock,
            region: store.region.clone(),
            account_id: store.account_id.clone(),
            s3_dir,
            limits: store.limits,
            faults: store.faults,
            streams: Mutex::new(BTreeMap::new()),
        }
    }

    fn stream(&self, name: &str) -> OpResult<Arc<DeliveryStream>> {
        lock(&self.streams).get(name).cloned().ok_or_else(|| {
            KinesisError::not_found(format!(
                "Firehose {name} under account {} not found.",
                self.account_id
            ))
        })
    }

    /// Delivers every buffer whose interval has passed (the upkeep pass calls this).
    pub fn flush_due(&self) {
        let now = self.clock.now_ms();
        let streams: Vec<Arc<DeliveryStream>> = lock(&self.streams).values().cloned().collect();
        for stream in streams {
            let due = lock(&stream.buffer)
                .first_ms
                .is_some_and(|first| now - first >= stream.interval_ms);
            if due && let Err(error) = flush(&stream) {
                tracing::error!(delivery_stream = %stream.name, %error, "cannot deliver a Firehose buffer");
            }
        }
    }

    /// Delivers every buffer now (at shutdown).
    pub fn flush_all(&self) {
        let streams: Vec<Arc<DeliveryStream>> = lock(&self.streams).values().cloned().collect();
        for stream in streams {
            if let Err(error) = flush(&stream) {
                tracing::error!(delivery_stream = %stream.name, %error, "cannot deliver a Firehose buffer");
            }
        }
    }

    /// Answers one Firehose action (its name without the target prefix).
    pub fn dispatch(&self, action: &str, body: &[u8]) -> OpResult<Vec<u8>> {
        let json = |value: serde_json::Value| Ok(wire::encode(Format::Json, &value));
        match action {
            "CreateDeliveryStream" => json(self.create(wire::decode(Format::Json, body)?)?),
            "DeleteDeliveryStream" => json(self.delete(wire::decode(Format::Json, body)?)?),
            "DescribeDeliveryStream" => json(self.describe(wire::decode(Format::Json, body)?)?),
            "ListDeliveryStreams" => json(self.list(wire::decode(Format::Json, body)?)?),
            "PutRecord" => json(self.put_record(wire::decode(Format::Json, body)?)?),
            "PutRecordBatch" => json(self.put_record_batch(wire::decode(Format::Json, body)?)?),
            _ => Err(KinesisError::unknown_operation("")),
        }
    }
}

/// Writes a stream's buffer as one object and empties it.
fn flush(stream: &DeliveryStream) -> std::io::Result<()> {
    let (bytes, first_ms) = {
        let mut buffer = lock(&stream.buffer);
        let Some(first_ms) = buffer.first_ms.take() else {
            return Ok(());
        };
        (std::mem::take(&mut buffer.bytes), first_ms)
    };
    let key = delivery::object_key(&stream.prefix, &stream.name, first_ms, stream.compression);
    delivery::write_object(&stream.bucket, &key, &bytes, stream.compression).map(|_| ())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BufferingHints {
    #[serde(rename = "SizeInMBs")]
    size_in_mbs: Option<i64>,
    interval_in_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3Destination {
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    #[serde(rename = "BucketARN")]
    bucket_arn: Option<String>,
    prefix: Option<String>,
    error_output_prefix: Option<String>,
    buffering_hints: Option<BufferingHints>,
    compression_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    delivery_stream_name: Option<String>,
    delivery_stream_type: Option<String>,
    extended_s3_destination_configuration: Option<S3Destination>,
    s3_destination_configuration: Option<S3Destination>,
}

impl Firehose {
    fn create(&self, input: CreateInput) -> OpResult<serde_json::Value> {
        let mut v = Violations::default();
        let name = input.delivery_stream_name.as_deref();
        v.required("deliveryStreamName", &input.delivery_stream_name);
        v.pattern("deliveryStreamName", name, "[a-zA-Z0-9_.-]+", is_name);
        v.length("deliveryStreamName", name, 1, 64);
        v.one_of(
            "deliveryStreamType",
            input.delivery_stream_type.as_deref(),
            &[
                "DirectPut",
                "KinesisStreamAsSource",
                "MSKAsSource",
                "DatabaseAsSource",
            ],
        );
        let destination = input
            .extended_s3_destination_configuration
            .or(input.s3_destination_configuration);
        let (field, d) = ("extendedS3DestinationConfiguration", destination.as_ref());
        if let Some(d) = d {
            v.required(&format!("{field}.roleARN"), &d.role_arn);
            v.required(&format!("{field}.bucketARN"), &d.bucket_arn);
            v.one_of(
                &format!("{field}.compressionFormat"),
                d.compression_format.as_deref(),
                &["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"],
            );
            if let Some(hints) = &d.buffering_hints {
                v.range(
                    &format!("{field}.bufferingHints.sizeInMBs"),
                    hints.size_in_mbs,
                    1,
                    128,
                );
                v.range(
                    &format!("{field}.bufferingHints.intervalInSeconds"),
                    hints.interval_in_seconds,
                    0,
                    900,
                );
            }
        }
        v.finish()?;
        let name = input.delivery_stream_name.unwrap_or_default();
        if input
            .delivery_stream_type
            .as_deref()
            .is_some_and(|t| t != "DirectPut")
        {
            return Err(KinesisError::invalid_argument(
                "This server's delivery streams take records by DirectPut only.",
            ));
        }
        let Some(destination) = destination else {
            return Err(KinesisError::invalid_argument(
                "Exactly one destination configuration must be given: this server delivers to S3 (ExtendedS3DestinationConfiguration or S3DestinationConfiguration).",
            ));
        };
        let Some(s3_dir) = &self.s3_dir else {
            return Err(KinesisError::invalid_argument(
                "This server delivers to S3 only when started with --s3-dir DIR.",
            ));
        };
        let bucket_arn = destination.bucket_arn.unwrap_or_default();
        let bucket = delivery::bucket_dir(s3_dir, &bucket_arn).ok_or_else(|| {
            KinesisError::invalid_argument(format!(
                "BucketARN {bucket_arn} does not name an S3 bucket."
            ))
        })?;
        let compression = match destination.compression_format.as_deref() {
            None => Compression::Uncompressed,
            Some(format) => Compression::parse(format).ok_or_else(|| {
                KinesisError::invalid_argument(format!(
                    "CompressionFormat {format} is not supported by this server (UNCOMPRESSED and GZIP are)."
                ))
            })?,
        };
        let hints = destination.buffering_hints.unwrap_or_default();
        let stream = DeliveryStream {
            arn: format!(
                "arn:aws:firehose:{}:{}:deliverystream/{name}",
                self.region, self.account_id
            ),
            name: name.clone(),
            created_ms: self.clock.now_ms(),
            bucket_arn,
            bucket,
            prefix: destination.prefix.unwrap_or_default(),
            error_prefix: destination.error_output_prefix,
            role_arn: destination.role_arn.unwrap_or_default(),
            size_bytes: hints.size_in_mbs.unwrap_or(5) as usize * 1024 * 1024,
            interval_ms: hints.interval_in_seconds.unwrap_or(300) * 1000,
            compression,
            buffer: Mutex::new(Buffer::default()),
            quota: Mutex::new(DeliveryLimits::new(self.clock.now_ms())),
        };
        let mut streams = lock(&self.streams);
        if streams.contains_key(&name) {
            return Err(KinesisError::in_use(format!(
                "Firehose {name} under accountId {} already exists",
                self.account_id
            )));
        }
        let arn = stream.arn.clone();
        streams.insert(name, Arc::new(stream));
        Ok(serde_json::json!({ "DeliveryStreamARN": arn }))
    }

    fn delete(&self, input: NameInput) -> OpResult<serde_json::Value> {
        let name = input.checked()?;
        let stream = self.stream(&name)?;
        lock(&self.streams).remove(&name);
        if let Err(error) = flush(&stream) {
            tracing::error!(delivery_stream = %name, %error, "cannot deliver a deleted stream's buffer");
        }
        Ok(serde_json::json!({}))
    }

    fn describe(&self, input: NameInput) -> OpResult<serde_json::Value> {
        let stream = self.stream(&input.checked()?)?;
        let s3 = serde_json::json!({
            "RoleARN": stream.role_arn,
            "BucketARN": stream.bucket_arn,
            "Prefix": stream.prefix,
            "ErrorOutputPrefix": stream.error_prefix,
            "BufferingHints": {
                "SizeInMBs": stream.size_bytes / (1024 * 1024),
                "IntervalInSeconds": stream.interval_ms / 1000,
            },
            "CompressionFormat": stream.compression.as_str(),
            "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"},
        });
        let mut extended = s3.clone();
        extended["S3BackupMode"] = "Disabled".into();
        Ok(serde_json::json!({
            "DeliveryStreamDescription": {
                "DeliveryStreamName": stream.name,
                "DeliveryStreamARN": stream.arn,
                "DeliveryStreamStatus": "ACTIVE",
                "DeliveryStreamType": "DirectPut",
                "DeliveryStreamEncryptionConfiguration": {"Status": "DISABLED"},
                "VersionId": "1",
                "CreateTimestamp": Timestamp::from_millis(stream.created_ms).0,
                "Destinations": [{
                    "DestinationId": "destinationId-000000000001",
                    "S3DestinationDescription": s3,
                    "ExtendedS3DestinationDescription": extended,
                }],
                "HasMoreDestinations": false,
            }
        }))
    }

    fn list(&self, input: ListInput) -> OpResult<serde_json::Value> {
        let mut v = Violations::default();
        v.range("limit", input.limit, 1, 10_000);
        v.finish()?;
        let limit = input.limit.unwrap_or(10) as usize;
        let names: Vec<String> = lock(&self.streams)
            .keys()
            .filter(|n| {
                input
                    .exclusive_start_delivery_stream_name
                    .as_ref()
                    .is_none_or(|s| *n > s)
            })
            .cloned()
            .collect();
        let more = names.len() > limit;
        Ok(serde_json::json!({
            "DeliveryStreamNames": names.into_iter().take(limit).collect::<Vec<_>>(),
            "HasMoreDeliveryStreams": more,
        }))
    }

    /// Buffers records; flushes when the buffer reaches its size hint.
    fn buffer(&self, stream: &DeliveryStream, records: &[&[u8]]) -> OpResult<()> {
        let full = {
            let mut buffer = lock(&stream.buffer);
            for record in records {
                buffer.bytes.extend_from_slice(record);
            }
            if buffer.first_ms.is_none() {
                buffer.first_ms = Some(self.clock.now_ms());
            }
            buffer.bytes.len() >= stream.size_bytes
        };
        if full {
            flush(stream)
                .map_err(|e| KinesisError::internal(format!("Internal service failure: {e}")))?;
        }
        Ok(())
    }

    fn put_record(&self, input: PutRecordInput) -> OpResult<serde_json::Value> {
        let mut v = Violations::default();
        check_name(&mut v, input.delivery_stream_name.as_deref());
        v.required("record", &input.record);
        if let Some(record) = &input.record {
            v.required("record.data", &record.data);
            if let Some(data) = &record.data {
                v.blob_length("record.data", data.0.len(), MAX_RECORD_BYTES);
            }
        }
        v.finish()?;
        let stream = self.stream(&input.delivery_stream_name.unwrap_or_default())?;
        let data = input.record.and_then(|r| r.data).unwrap_or_default();
        self.admit_call(&stream)?;
        match self.admit_record(&stream, data.0.len()) {
            None => {}
            Some(("ServiceUnavailableException", message)) => {
                return Err(KinesisError::service_unavailable(message));
            }
            Some((_, message)) => return Err(KinesisError::internal(message)),
        }
        self.buffer(&stream, &[&data.0])?;
        Ok(serde_json::json!({ "RecordId": record_id(), "Encrypted": false }))
    }

    fn put_record_batch(&self, input: PutRecordBatchInput) -> OpResult<serde_json::Value> {
        let mut v = Violations::default();
        check_name(&mut v, input.delivery_stream_name.as_deref());
        v.required("records", &input.records);
        let records = input.records.unwrap_or_default();
        v.count("records", records.len(), 1, MAX_BATCH_RECORDS, || {
            format!("{} members", records.len())
        });
        for (i, record) in records.iter().enumerate() {
            let field = format!("records.{}.member.data", i + 1);
            v.required(&field, &record.data);
            if let Some(data) = &record.data {
                v.blob_length(&field, data.0.len(), MAX_RECORD_BYTES);
            }
        }
        v.finish()?;
        let total: usize = records
            .iter()
            .filter_map(|r| r.data.as_ref())
            .map(|d| d.0.len())
            .sum();
        if total > MAX_BATCH_BYTES {
            return Err(KinesisError::invalid_argument(format!(
                "Records size exceeds {} MB limit",
                MAX_BATCH_BYTES >> 20
            )));
        }
        let stream = self.stream(&input.delivery_stream_name.unwrap_or_default())?;
        self.admit_call(&stream)?;
        let mut accepted: Vec<&[u8]> = Vec::with_capacity(records.len());
        let mut failed = 0;
        let responses: Vec<serde_json::Value> = records
            .iter()
            .filter_map(|r| r.data.as_ref())
            .map(|data| match self.admit_record(&stream, data.0.len()) {
                None => {
                    accepted.push(&data.0[..]);
                    serde_json::json!({ "RecordId": record_id() })
                }
                Some((code, message)) => {
                    failed += 1;
                    serde_json::json!({ "ErrorCode": code, "ErrorMessage": message })
                }
            })
            .collect();
        self.buffer(&stream, &accepted)?;
        Ok(serde_json::json!({
            "FailedPutCount": failed,
            "Encrypted": false,
            "RequestResponses": responses,
        }))
    }
}

impl Firehose {
    /// Refuses a call past the delivery stream's calls-per-second quota.
    fn admit_call(&self, stream: &DeliveryStream) -> OpResult<()> {
        if self.limits && !lock(&stream.quota).admit_call(self.clock.now_ms()) {
            return Err(KinesisError::service_unavailable("Slow down."));
        }
        Ok(())
    }

    /// Why one record of `bytes` is refused (its error code and message), or `None`
    /// when it is taken: an injected fault, or the delivery stream's quota.
    fn admit_record(
        &self,
        stream: &DeliveryStream,
        bytes: usize,
    ) -> Option<(&'static str, &'static str)> {
        if self.faults.is_active() {
            match self.faults.decide(rand::rng().random::<f64>()) {
                InjectedFault::None => {}
                InjectedFault::Throttle => {
                    return Some(("ServiceUnavailableException", "Slow down."));
                }
                InjectedFault::Internal => {
                    return Some(("InternalFailure", "Internal service failure."));
                }
            }
        }
        if self.limits && !lock(&stream.quota).admit_record(bytes, self.clock.now_ms()) {
            return Some(("ServiceUnavailableException", "Slow down."));
        }
        None
    }
}

/// A record id in Firehose's shape (a long opaque string).
fn record_id() -> String {
    let id: u128 = rand::random();
    let more: u128 = rand::random();
    format!("{id:032x}{more:032x}")
}

fn check_name(v: &mut Violations, name: Option<&str>) {
    v.required("deliveryStreamName", &name);
    v.pattern("deliveryStreamName", name, "[a-zA-Z0-9_.-]+", is_name);
    v.length("deliveryStreamName", name, 1, 64);
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameInput {
    delivery_stream_name: Option<String>,
}

impl NameInput {
    fn checked(self) -> OpResult<String> {
        let mut v = Violations::default();
        check_name(&mut v, self.delivery_stream_name.as_deref());
        v.finish()?;
        Ok(self.delivery_stream_name.unwrap_or_default())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    limit: Option<i64>,
    exclusive_start_delivery_stream_name: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RecordInput {
    data: Option<Blob>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput {
    delivery_stream_name: Option<String>,
    record: Option<RecordInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordBatchInput {
    delivery_stream_name: Option<String>,
    records: Option<Vec<RecordInput>>,
}
