//! The Firehose API: each action's input checked as Firehose checks it, then applied.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rand::RngExt;
use serde::Deserialize;

use super::buffer::Buffer;
use super::config::{self, Destination, HttpInput, S3Input};
use super::source::Positions;
use super::{DeliveryStream, Firehose, KinesisSource, Settings};
use crate::kinesis::limits;
use crate::server::error::{KinesisError, OpResult};
use crate::server::limits::{DeliveryLimits, InjectedFault};
use crate::server::ops::validate::{Violations, is_name};
use crate::server::store::stream::lock;
use crate::server::wire::{self, Blob, Format, Timestamp};

/// The actions answered, sorted.
pub const ACTIONS: &[&str] = &[
    "CreateDeliveryStream",
    "DeleteDeliveryStream",
    "DescribeDeliveryStream",
    "ListDeliveryStreams",
    "ListTagsForDeliveryStream",
    "PutRecord",
    "PutRecordBatch",
    "StartDeliveryStreamEncryption",
    "StopDeliveryStreamEncryption",
    "TagDeliveryStream",
    "UntagDeliveryStream",
    "UpdateDestination",
];

const MAX_RECORD_BYTES: usize = limits::FIREHOSE_MAX_RECORD_BYTES;
const MAX_BATCH_BYTES: usize = limits::FIREHOSE_BATCH_MAX_BYTES;
const MAX_BATCH_RECORDS: usize = limits::FIREHOSE_BATCH_MAX_RECORDS;
const MAX_TAGS: usize = 50;

type Answer = OpResult<serde_json::Value>;

impl Firehose {
    /// Answers one Firehose action (its name without the target prefix).
    pub fn dispatch(&self, action: &str, body: &[u8]) -> OpResult<Vec<u8>> {
        let answer = match action {
            "CreateDeliveryStream" => self.create(wire::decode(Format::Json, body)?),
            "DeleteDeliveryStream" => self.delete(wire::decode(Format::Json, body)?),
            "DescribeDeliveryStream" => self.describe(wire::decode(Format::Json, body)?),
            "ListDeliveryStreams" => self.list(wire::decode(Format::Json, body)?),
            "PutRecord" => self.put_record(wire::decode(Format::Json, body)?),
            "PutRecordBatch" => self.put_record_batch(wire::decode(Format::Json, body)?),
            "UpdateDestination" => self.update_destination(wire::decode(Format::Json, body)?),
            "TagDeliveryStream" => self.tag(wire::decode(Format::Json, body)?),
            "UntagDeliveryStream" => self.untag(wire::decode(Format::Json, body)?),
            "ListTagsForDeliveryStream" => self.list_tags(wire::decode(Format::Json, body)?),
            "StartDeliveryStreamEncryption" => {
                self.start_encryption(wire::decode(Format::Json, body)?)
            }
            "StopDeliveryStreamEncryption" => {
                self.stop_encryption(wire::decode(Format::Json, body)?)
            }
            _ => Err(KinesisError::unknown_operation("")),
        }?;
        Ok(wire::encode(Format::Json, &answer))
    }
}

fn check_name(v: &mut Violations, name: Option<&str>) {
    v.required("deliveryStreamName", &name);
    v.pattern("deliveryStreamName", name, "[a-zA-Z0-9_.-]+", is_name);
    v.length("deliveryStreamName", name, 1, 64);
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: Option<String>,
    value: Option<String>,
}

fn check_tags(v: &mut Violations, field: &str, tags: &[Tag]) {
    v.count(field, tags.len(), 1, MAX_TAGS, || {
        format!("{} members", tags.len())
    });
    for (i, tag) in tags.iter().enumerate() {
        let at = format!("{field}.{}.member", i + 1);
        v.required(&format!("{at}.key"), &tag.key);
        v.length(&format!("{at}.key"), tag.key.as_deref(), 1, 128);
        v.length(&format!("{at}.value"), tag.value.as_deref(), 0, 256);
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SourceInput {
    #[serde(rename = "KinesisStreamARN")]
    kinesis_stream_arn: Option<String>,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    delivery_stream_name: Option<String>,
    delivery_stream_type: Option<String>,
    kinesis_stream_source_configuration: Option<SourceInput>,
    extended_s3_destination_configuration: Option<S3Input>,
    s3_destination_configuration: Option<S3Input>,
    http_endpoint_destination_configuration: Option<HttpInput>,
    tags: Option<Vec<Tag>>,
    delivery_stream_encryption_configuration_input: Option<EncryptionInput>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptionInput {
    #[serde(rename = "KeyARN")]
    key_arn: Option<String>,
    key_type: Option<String>,
}

fn check_encryption(v: &mut Violations, field: &str, input: &EncryptionInput) {
    v.required(&format!("{field}.keyType"), &input.key_type);
    v.one_of(
        &format!("{field}.keyType"),
        input.key_type.as_deref(),
        &["AWS_OWNED_CMK", "CUSTOMER_MANAGED_CMK"],
    );
    v.length(&format!("{field}.keyARN"), input.key_arn.as_deref(), 1, 512);
}

fn encryption(input: EncryptionInput) -> OpResult<(String, Option<String>)> {
    let key_type = input.key_type.unwrap_or_default();
    match (key_type.as_str(), &input.key_arn) {
        ("CUSTOMER_MANAGED_CMK", None) => Err(KinesisError::invalid_argument(
            "KeyARN is required when KeyType is CUSTOMER_MANAGED_CMK.",
        )),
        ("AWS_OWNED_CMK", Some(_)) => Err(KinesisError::invalid_argument(
            "KeyARN must not be given when KeyType is AWS_OWNED_CMK.",
        )),
        _ => Ok((key_type, input.key_arn)),
    }
}

impl Firehose {
    fn create(&self, input: CreateInput) -> Answer {
        let mut v = Violations::default();
        let name = input.delivery_stream_name.as_deref();
        check_name(&mut v, name);
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
        if let Some(source) = &input.kinesis_stream_source_configuration {
            v.required(
                "kinesisStreamSourceConfiguration.kinesisStreamARN",
                &source.kinesis_stream_arn,
            );
            v.required("kinesisStreamSourceConfiguration.roleARN", &source.role_arn);
        }
        if let Some(d) = &input.extended_s3_destination_configuration {
            config::check_s3(&mut v, "extendedS3DestinationConfiguration", d, true);
        }
        if let Some(d) = &input.s3_destination_configuration {
            config::check_s3(&mut v, "s3DestinationConfiguration", d, true);
        }
        if let Some(d) = &input.http_endpoint_destination_configuration {
            config::check_http(&mut v, "httpEndpointDestinationConfiguration", d, true);
        }
        if let Some(tags) = &input.tags {
            check_tags(&mut v, "tags", tags);
        }
        if let Some(e) = &input.delivery_stream_encryption_configuration_input {
            check_encryption(&mut v, "deliveryStreamEncryptionConfigurationInput", e);
        }
        v.finish()?;
        let name = input.delivery_stream_name.unwrap_or_default();
        let kind = input.delivery_stream_type.as_deref().unwrap_or("DirectPut");
        let source = match (kind, input.kinesis_stream_source_configuration) {
            ("DirectPut", None) => None,
            ("DirectPut", Some(_)) => {
                return Err(KinesisError::invalid_argument(
                    "KinesisStreamSourceConfiguration is only for the KinesisStreamAsSource delivery stream type.",
                ));
            }
            ("KinesisStreamAsSource", Some(source)) => Some(self.source(source)?),
            ("KinesisStreamAsSource", None) => {
                return Err(KinesisError::invalid_argument(
                    "KinesisStreamSourceConfiguration is required for the KinesisStreamAsSource delivery stream type.",
                ));
            }
            (other, _) => {
                return Err(KinesisError::invalid_argument(format!(
                    "This server's delivery streams take DirectPut or KinesisStreamAsSource, not {other}."
                )));
            }
        };
        let encryption = match input.delivery_stream_encryption_configuration_input {
            Some(_) if source.is_some() => {
                return Err(KinesisError::invalid_argument(
                    "Server-side encryption is not supported for a delivery stream whose source is a Kinesis stream: encrypt the source stream.",
                ));
            }
            Some(e) => Some(encryption(e)?),
            None => None,
        };
        let given = [
            input.extended_s3_destination_configuration.is_some(),
            input.s3_destination_configuration.is_some(),
            input.http_endpoint_destination_configuration.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(KinesisError::invalid_argument(
                "Exactly one destination configuration must be given: ExtendedS3DestinationConfiguration, S3DestinationConfiguration or HttpEndpointDestinationConfiguration.",
            ));
        }
        let s3_dir = self.s3_dir.as_deref();
        let destination = match (
            input.extended_s3_destination_configuration,
            input.s3_destination_configuration,
            input.http_endpoint_destination_configuration,
        ) {
            (Some(d), _, _) | (_, Some(d), _) => Destination::S3(config::s3(d, None, s3_dir)?),
            (_, _, Some(d)) => Destination::Http(config::http(d, None, s3_dir)?),
            (None, None, None) => unreachable!("exactly one destination was checked above"),
        };
        let tags: BTreeMap<String, String> = input
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        let now = self.clock.now_ms();
        let arn = format!(
            "arn:aws:firehose:{}:{}:deliverystream/{name}",
            self.region, self.account_id
        );
        let mut streams = lock(&self.streams);
        if streams.contains_key(&name) {
            return Err(KinesisError::in_use(format!(
                "Firehose {name} under accountId {} already exists",
                self.account_id
            )));
        }
        let buffer = Buffer::open(self.stream_dir(&name).as_deref(), now).map_err(|e| {
            KinesisError::internal(format!(
                "Internal service failure: cannot keep a buffer: {e}"
            ))
        })?;
        let stream = DeliveryStream {
            name: name.clone(),
            arn: arn.clone(),
            created_ms: now,
            source,
            settings: Mutex::new(Settings {
                version: 1,
                destination,
                tags,
                encryption,
                updated_ms: now,
            }),
            buffer: Mutex::new(buffer),
            positions: Mutex::new(Positions::default()),
            quota: Mutex::new(DeliveryLimits::new(now)),
            delivering: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
        };
        streams.insert(name, Arc::new(stream));
        drop(streams);
        self.save()?;
        Ok(serde_json::json!({ "DeliveryStreamARN": arn }))
    }

    /// A Kinesis stream of this server's home region, by ARN.
    fn source(&self, input: SourceInput) -> OpResult<KinesisSource> {
        let arn = input.kinesis_stream_arn.unwrap_or_default();
        let stream_name = self.kinesis.name_from_arn(&arn).ok_or_else(|| {
            KinesisError::invalid_argument(format!(
                "KinesisStreamARN {arn} does not name a Kinesis stream of this server's region {} and account {}.",
                self.region, self.account_id
            ))
        })?;
        self.kinesis.stream(&stream_name).map_err(|_| {
            KinesisError::invalid_argument(format!("Kinesis stream {arn} was not found."))
        })?;
        Ok(KinesisSource {
            stream_arn: arn,
            stream_name,
            role_arn: input.role_arn.unwrap_or_default(),
            from_latest: self.from_latest,
            started_ms: self.clock.now_ms(),
        })
    }

    fn delete(&self, input: NameInput) -> Answer {
        let name = input.checked()?;
        let stream = self.stream(&name)?;
        lock(&self.streams).remove(&name);
        stream.deleted.store(true, Ordering::Release);
        self.save()?;
        if let Some(dir) = self.stream_dir(&name) {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(serde_json::json!({}))
    }

    fn describe(&self, input: NameInput) -> Answer {
        let stream = self.stream(&input.checked()?)?;
        let settings = stream.settings();
        let encryption = match &settings.encryption {
            Some((key_type, key_arn)) => serde_json::json!({
                "Status": "ENABLED", "KeyType": key_type, "KeyARN": key_arn,
            }),
            None => serde_json::json!({"Status": "DISABLED"}),
        };
        let mut description = serde_json::json!({
            "DeliveryStreamName": stream.name,
            "DeliveryStreamARN": stream.arn,
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": if stream.source.is_some() { "KinesisStreamAsSource" } else { "DirectPut" },
            "DeliveryStreamEncryptionConfiguration": encryption,
            "VersionId": settings.version.to_string(),
            "CreateTimestamp": Timestamp::from_millis(stream.created_ms).0,
            "LastUpdateTimestamp": Timestamp::from_millis(settings.updated_ms).0,
            "Destinations": [settings.destination.describe()],
            "HasMoreDestinations": false,
        });
        if let Some(source) = &stream.source {
            description["Source"] = serde_json::json!({
                "KinesisStreamSourceDescription": {
                    "KinesisStreamARN": source.stream_arn,
                    "RoleARN": source.role_arn,
                    "DeliveryStartTimestamp": Timestamp::from_millis(source.started_ms).0,
                }
            });
        }
        Ok(serde_json::json!({ "DeliveryStreamDescription": description }))
    }

    fn list(&self, input: ListInput) -> Answer {
        let mut v = Violations::default();
        v.range("limit", input.limit, 1, 10_000);
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
        v.finish()?;
        let limit = input.limit.unwrap_or(10) as usize;
        let names: Vec<String> = lock(&self.streams)
            .values()
            .filter(|s| {
                input
                    .exclusive_start_delivery_stream_name
                    .as_ref()
                    .is_none_or(|start| s.name > *start)
            })
            .filter(|s| {
                let kind = if s.source.is_some() {
                    "KinesisStreamAsSource"
                } else {
                    "DirectPut"
                };
                input
                    .delivery_stream_type
                    .as_deref()
                    .is_none_or(|t| t == kind)
            })
            .map(|s| s.name.clone())
            .collect();
        let more = names.len() > limit;
        Ok(serde_json::json!({
            "DeliveryStreamNames": names.into_iter().take(limit).collect::<Vec<_>>(),
            "HasMoreDeliveryStreams": more,
        }))
    }

    fn put_record(&self, input: PutRecordInput) -> Answer {
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
        let stream = self.direct(&input.delivery_stream_name.unwrap_or_default())?;
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
        Ok(serde_json::json!({ "RecordId": record_id(), "Encrypted": encrypted(&stream) }))
    }

    fn put_record_batch(&self, input: PutRecordBatchInput) -> Answer {
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
        let stream = self.direct(&input.delivery_stream_name.unwrap_or_default())?;
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
            "Encrypted": encrypted(&stream),
            "RequestResponses": responses,
        }))
    }

    /// A delivery stream that takes PutRecord(Batch).
    fn direct(&self, name: &str) -> OpResult<Arc<DeliveryStream>> {
        let stream = self.stream(name)?;
        if stream.source.is_some() {
            return Err(KinesisError::invalid_argument(format!(
                "This operation is not permitted on KinesisStreamAsSource delivery stream type. Delivery stream {name} under account {} reads a Kinesis stream.",
                self.account_id
            )));
        }
        Ok(stream)
    }

    /// Buffers records (to the buffer's file first); starts a delivery once the buffer
    /// reaches its size hint.
    fn buffer(&self, stream: &Arc<DeliveryStream>, records: &[&[u8]]) -> OpResult<()> {
        stream
            .take_in(records, None, self.clock.now_ms())
            .map_err(|e| KinesisError::internal(format!("Internal service failure: {e}")))?;
        let (size, _) = lock(&stream.settings).destination.hints();
        if lock(&stream.buffer).bytes() >= size {
            self.kick(stream);
        }
        Ok(())
    }

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

    fn update_destination(&self, input: UpdateInput) -> Answer {
        let mut v = Violations::default();
        check_name(&mut v, input.delivery_stream_name.as_deref());
        v.required(
            "currentDeliveryStreamVersionId",
            &input.current_delivery_stream_version_id,
        );
        v.length(
            "currentDeliveryStreamVersionId",
            input.current_delivery_stream_version_id.as_deref(),
            1,
            50,
        );
        v.required("destinationId", &input.destination_id);
        v.length("destinationId", input.destination_id.as_deref(), 1, 100);
        if let Some(d) = &input.extended_s3_destination_update {
            config::check_s3(&mut v, "extendedS3DestinationUpdate", d, false);
        }
        if let Some(d) = &input.s3_destination_update {
            config::check_s3(&mut v, "s3DestinationUpdate", d, false);
        }
        if let Some(d) = &input.http_endpoint_destination_update {
            config::check_http(&mut v, "httpEndpointDestinationUpdate", d, false);
        }
        v.finish()?;
        let name = input.delivery_stream_name.unwrap_or_default();
        let stream = self.stream(&name)?;
        let destination_id = input.destination_id.unwrap_or_default();
        if destination_id != config::DESTINATION_ID {
            return Err(KinesisError::invalid_argument(format!(
                "Destination Id {destination_id} not found for delivery stream {name}."
            )));
        }
        let mut settings = lock(&stream.settings);
        let current = input.current_delivery_stream_version_id.unwrap_or_default();
        if current != settings.version.to_string() {
            return Err(KinesisError::concurrent_modification(format!(
                "Cannot update delivery stream {name}: its version is {}, not {current}. Describe it and try again.",
                settings.version
            )));
        }
        let s3_dir = self.s3_dir.as_deref();
        let updated = match (
            input.extended_s3_destination_update,
            input.s3_destination_update,
            input.http_endpoint_destination_update,
        ) {
            (Some(d), None, None) | (None, Some(d), None) => {
                let base = match &settings.destination {
                    Destination::S3(s3) => Some(s3),
                    Destination::Http(_) => None,
                };
                if base.is_none() && d.bucket_arn.is_none() {
                    return Err(KinesisError::invalid_argument(
                        "BucketARN is required to change the destination to S3.",
                    ));
                }
                Destination::S3(config::s3(d, base, s3_dir)?)
            }
            (None, None, Some(d)) => {
                let base = match &settings.destination {
                    Destination::Http(http) => Some(http),
                    Destination::S3(_) => None,
                };
                Destination::Http(config::http(d, base, s3_dir)?)
            }
            _ => {
                return Err(KinesisError::invalid_argument(
                    "Exactly one destination update must be given: ExtendedS3DestinationUpdate, S3DestinationUpdate or HttpEndpointDestinationUpdate.",
                ));
            }
        };
        settings.destination = updated;
        settings.version += 1;
        settings.updated_ms = self.clock.now_ms();
        drop(settings);
        self.save()?;
        Ok(serde_json::json!({}))
    }

    fn tag(&self, input: TagInput) -> Answer {
        let mut v = Violations::default();
        check_name(&mut v, input.delivery_stream_name.as_deref());
        v.required("tags", &input.tags);
        check_tags(&mut v, "tags", input.tags.as_deref().unwrap_or_default());
        v.finish()?;
        let name = input.delivery_stream_name.unwrap_or_default();
        let stream = self.stream(&name)?;
        let mut settings = lock(&stream.settings);
        let mut tags = settings.tags.clone();
        for tag in input.tags.unwrap_or_default() {
            tags.insert(tag.key.unwrap_or_default(), tag.value.unwrap_or_default());
        }
        if tags.len() > MAX_TAGS {
            return Err(KinesisError::limit_exceeded(format!(
                "Delivery stream {name} would have {} tags; at most {MAX_TAGS} are allowed.",
                tags.len()
            )));
        }
        settings.tags = tags;
        drop(settings);
        self.save()?;
        Ok(serde_json::json!({}))
    }

    fn untag(&self, input: UntagInput) -> Answer {
        let mut v = Violations::default();
        check_name(&mut v, input.delivery_stream_name.as_deref());
        v.required("tagKeys", &input.tag_keys);
        let keys = input.tag_keys.unwrap_or_default();
        v.count("tagKeys", keys.len(), 1, MAX_TAGS, || {
            format!("{} members", keys.len())
        });
        v.finish()?;
        let stream = self.stream(&input.delivery_stream_name.unwrap_or_default())?;
        let mut settings = lock(&stream.settings);
        for key in keys {
            settings.tags.remove(&key);
        }
        drop(settings);
        self.save()?;
        Ok(serde_json::json!({}))
    }

    fn list_tags(&self, input: ListTagsInput) -> Answer {
        let mut v = Violations::default();
        check_name(&mut v, input.delivery_stream_name.as_deref());
        v.range("limit", input.limit, 1, 50);
        v.finish()?;
        let stream = self.stream(&input.delivery_stream_name.unwrap_or_default())?;
        let limit = input.limit.unwrap_or(50) as usize;
        let tags: Vec<(String, String)> = stream
            .settings()
            .tags
            .into_iter()
            .filter(|(k, _)| {
                input
                    .exclusive_start_tag_key
                    .as_ref()
                    .is_none_or(|start| k > start)
            })
            .collect();
        let more = tags.len() > limit;
        let shown: Vec<serde_json::Value> = tags
            .into_iter()
            .take(limit)
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect();
        Ok(serde_json::json!({"Tags": shown, "HasMoreTags": more}))
    }

    fn start_encryption(&self, input: StartEncryptionInput) -> Answer {
        let mut v = Violations::default();
        check_name(&mut v, input.delivery_stream_name.as_deref());
        if let Some(e) = &input.delivery_stream_encryption_configuration_input {
            check_encryption(&mut v, "deliveryStreamEncryptionConfigurationInput", e);
        }
        v.finish()?;
        let name = input.delivery_stream_name.unwrap_or_default();
        let stream = self.encryptable(&name)?;
        let chosen = encryption(
            input
                .delivery_stream_encryption_configuration_input
                .unwrap_or(EncryptionInput {
                    key_arn: None,
                    key_type: Some("AWS_OWNED_CMK".into()),
                }),
        )?;
        lock(&stream.settings).encryption = Some(chosen);
        self.save()?;
        Ok(serde_json::json!({}))
    }

    fn stop_encryption(&self, input: NameInput) -> Answer {
        let name = input.checked()?;
        let stream = self.encryptable(&name)?;
        lock(&stream.settings).encryption = None;
        self.save()?;
        Ok(serde_json::json!({}))
    }

    fn encryptable(&self, name: &str) -> OpResult<Arc<DeliveryStream>> {
        let stream = self.stream(name)?;
        if stream.source.is_some() {
            return Err(KinesisError::invalid_argument(format!(
                "Delivery stream {name} reads a Kinesis stream: server-side encryption applies to DirectPut delivery streams only (encrypt the source stream)."
            )));
        }
        Ok(stream)
    }
}

fn encrypted(stream: &DeliveryStream) -> bool {
    lock(&stream.settings).encryption.is_some()
}

/// A record id in Firehose's shape (a long opaque string).
fn record_id() -> String {
    let id: u128 = rand::random();
    let more: u128 = rand::random();
    format!("{id:032x}{more:032x}")
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
    delivery_stream_type: Option<String>,
    exclusive_start_delivery_stream_name: Option<String>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateInput {
    delivery_stream_name: Option<String>,
    current_delivery_stream_version_id: Option<String>,
    destination_id: Option<String>,
    extended_s3_destination_update: Option<S3Input>,
    s3_destination_update: Option<S3Input>,
    http_endpoint_destination_update: Option<HttpInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagInput {
    delivery_stream_name: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagInput {
    delivery_stream_name: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagsInput {
    delivery_stream_name: Option<String>,
    exclusive_start_tag_key: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartEncryptionInput {
    delivery_stream_name: Option<String>,
    delivery_stream_encryption_configuration_input: Option<EncryptionInput>,
}
