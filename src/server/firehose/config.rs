//! A delivery stream's destination as CreateDeliveryStream and UpdateDestination
//! give it (the wire shapes, checked), and as the server keeps and describes it.
//!
//! Two destinations: S3 (`ExtendedS3DestinationConfiguration` or
//! `S3DestinationConfiguration`), delivered as files under `--s3-dir`, and an HTTP
//! endpoint (`HttpEndpointDestinationConfiguration`) with its S3 bucket for backups.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::delivery::{self, Compression};
use crate::server::error::{KinesisError, OpResult};
use crate::server::ops::validate::Violations;

/// Firehose's defaults: 5 MiB or 300 s for S3, 5 MiB or 300 s for HTTP endpoints too.
const DEFAULT_SIZE_MB: i64 = 5;
const DEFAULT_INTERVAL_SECS: i64 = 300;
/// How long an HTTP endpoint is retried before its records are backed up.
const DEFAULT_RETRY_SECS: i64 = 300;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BufferingHints {
    #[serde(rename = "SizeInMBs")]
    pub size_in_mbs: Option<i64>,
    pub interval_in_seconds: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3Input {
    #[serde(rename = "RoleARN")]
    pub role_arn: Option<String>,
    #[serde(rename = "BucketARN")]
    pub bucket_arn: Option<String>,
    pub prefix: Option<String>,
    pub error_output_prefix: Option<String>,
    pub buffering_hints: Option<BufferingHints>,
    pub compression_format: Option<String>,
    pub processing_configuration: Option<ProcessingInput>,
}

/// `ProcessingConfiguration`: of Firehose's processors, `AppendDelimiterToRecord` (a
/// delimiter after every record, `\n` unless its `Delimiter` parameter says otherwise)
/// is the one this server runs.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessingInput {
    pub enabled: Option<bool>,
    pub processors: Option<Vec<ProcessorInput>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessorInput {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub parameters: Option<Vec<ParameterInput>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterInput {
    pub parameter_name: Option<String>,
    pub parameter_value: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInput {
    pub url: Option<String>,
    pub name: Option<String>,
    pub access_key: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryOptions {
    pub duration_in_seconds: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpInput {
    pub endpoint_configuration: Option<EndpointInput>,
    pub buffering_hints: Option<BufferingHints>,
    #[serde(rename = "RoleARN")]
    pub role_arn: Option<String>,
    pub retry_options: Option<RetryOptions>,
    #[serde(rename = "S3BackupMode")]
    pub s3_backup_mode: Option<String>,
    pub s3_configuration: Option<S3Input>,
}

/// An S3 destination as the server keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct S3 {
    pub role_arn: String,
    pub bucket_arn: String,
    pub prefix: String,
    pub error_prefix: Option<String>,
    pub size_bytes: usize,
    pub interval_ms: i64,
    pub compression: Compression,
    /// Appended to every record (the `AppendDelimiterToRecord` processor).
    #[serde(default)]
    pub delimiter: Option<String>,
}

/// Which records an HTTP endpoint destination also writes to its S3 bucket.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum BackupMode {
    FailedDataOnly,
    AllData,
}

impl BackupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMode::FailedDataOnly => "FailedDataOnly",
            BackupMode::AllData => "AllData",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Http {
    pub url: String,
    pub name: Option<String>,
    /// Sent as `X-Amz-Firehose-Access-Key`; never described back (Firehose omits it).
    pub access_key: Option<String>,
    pub role_arn: Option<String>,
    pub size_bytes: usize,
    pub interval_ms: i64,
    pub retry_ms: i64,
    pub backup: BackupMode,
    pub s3: S3,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Destination {
    S3(S3),
    Http(Http),
}

impl Destination {
    /// When a buffer is delivered: this many bytes, or its first record this old.
    pub fn hints(&self) -> (usize, i64) {
        match self {
            Destination::S3(s3) => (s3.size_bytes, s3.interval_ms),
            Destination::Http(http) => (http.size_bytes, http.interval_ms),
        }
    }

    /// The bucket objects (or backups) go to.
    pub fn s3(&self) -> &S3 {
        match self {
            Destination::S3(s3) => s3,
            Destination::Http(http) => &http.s3,
        }
    }

    /// What is appended to every record taken in, if anything.
    pub fn delimiter(&self) -> Option<&[u8]> {
        match self {
            Destination::S3(s3) => s3.delimiter.as_deref().map(str::as_bytes),
            Destination::Http(_) => None,
        }
    }

    /// The `Destinations[0]` member DescribeDeliveryStream answers with.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Destination::S3(s3) => {
                let plain = describe_s3(s3);
                let mut extended = plain.clone();
                extended["S3BackupMode"] = "Disabled".into();
                if let Some(delimiter) = &s3.delimiter {
                    extended["ProcessingConfiguration"] = serde_json::json!({
                        "Enabled": true,
                        "Processors": [{
                            "Type": "AppendDelimiterToRecord",
                            "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": delimiter}],
                        }],
                    });
                }
                serde_json::json!({
                    "DestinationId": DESTINATION_ID,
                    "S3DestinationDescription": plain,
                    "ExtendedS3DestinationDescription": extended,
                })
            }
            Destination::Http(http) => serde_json::json!({
                "DestinationId": DESTINATION_ID,
                "HttpEndpointDestinationDescription": {
                    "EndpointConfiguration": {"Url": http.url, "Name": http.name},
                    "BufferingHints": {
                        "SizeInMBs": http.size_bytes / MIB,
                        "IntervalInSeconds": http.interval_ms / 1000,
                    },
                    "RoleARN": http.role_arn,
                    "RetryOptions": {"DurationInSeconds": http.retry_ms / 1000},
                    "S3BackupMode": http.backup.as_str(),
                    "S3DestinationDescription": describe_s3(&http.s3),
                    "RequestConfiguration": {"ContentEncoding": "NONE"},
                },
            }),
        }
    }
}

/// The one destination's id, as Firehose numbers its first.
pub const DESTINATION_ID: &str = "destinationId-000000000001";

const MIB: usize = 1024 * 1024;

fn describe_s3(s3: &S3) -> serde_json::Value {
    serde_json::json!({
        "RoleARN": s3.role_arn,
        "BucketARN": s3.bucket_arn,
        "Prefix": s3.prefix,
        "ErrorOutputPrefix": s3.error_prefix,
        "BufferingHints": {
            "SizeInMBs": s3.size_bytes / MIB,
            "IntervalInSeconds": s3.interval_ms / 1000,
        },
        "CompressionFormat": s3.compression.as_str(),
        "EncryptionConfiguration": {"NoEncryptionConfig": "NoEncryption"},
    })
}

/// Checks an S3 destination's members under `field`.
pub fn check_s3(v: &mut Violations, field: &str, d: &S3Input, required: bool) {
    if required {
        v.required(&format!("{field}.roleARN"), &d.role_arn);
        v.required(&format!("{field}.bucketARN"), &d.bucket_arn);
    }
    v.length(
        &format!("{field}.bucketARN"),
        d.bucket_arn.as_deref(),
        1,
        2048,
    );
    v.length(&format!("{field}.prefix"), d.prefix.as_deref(), 0, 1024);
    v.length(
        &format!("{field}.errorOutputPrefix"),
        d.error_output_prefix.as_deref(),
        0,
        1024,
    );
    v.one_of(
        &format!("{field}.compressionFormat"),
        d.compression_format.as_deref(),
        &["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"],
    );
    check_hints(v, field, d.buffering_hints.as_ref(), 128);
    if let Some(processing) = &d.processing_configuration {
        for (i, processor) in processing.processors.iter().flatten().enumerate() {
            let at = format!(
                "{field}.processingConfiguration.processors.{}.member.type",
                i + 1
            );
            v.required(&at, &processor.kind);
            v.one_of(
                &at,
                processor.kind.as_deref(),
                &[
                    "RecordDeAggregation",
                    "Decompression",
                    "CloudWatchLogProcessing",
                    "Lambda",
                    "MetadataExtraction",
                    "AppendDelimiterToRecord",
                ],
            );
        }
    }
}

/// The delimiter the `AppendDelimiterToRecord` processor appends, when it is on.
fn delimiter(processing: &ProcessingInput) -> OpResult<Option<String>> {
    if processing.enabled == Some(false) {
        return Ok(None);
    }
    let mut delimiter = None;
    for processor in processing.processors.iter().flatten() {
        match processor.kind.as_deref() {
            Some("AppendDelimiterToRecord") => {
                let given = processor
                    .parameters
                    .iter()
                    .flatten()
                    .find(|p| p.parameter_name.as_deref() == Some("Delimiter"))
                    .and_then(|p| p.parameter_value.clone());
                delimiter = Some(given.map_or_else(|| "\n".to_owned(), |d| unescape(&d)));
            }
            Some(other) => {
                return Err(KinesisError::invalid_argument(format!(
                    "Processor type {other} is not run by this server (AppendDelimiterToRecord is)."
                )));
            }
            None => {}
        }
    }
    Ok(delimiter)
}

/// Firehose's delimiter parameter writes `\n` and `\t` as escapes.
fn unescape(text: &str) -> String {
    text.replace("\\n", "\n").replace("\\t", "\t")
}

fn check_hints(v: &mut Violations, field: &str, hints: Option<&BufferingHints>, max_mb: i64) {
    if let Some(hints) = hints {
        v.range(
            &format!("{field}.bufferingHints.sizeInMBs"),
            hints.size_in_mbs,
            1,
            max_mb,
        );
        v.range(
            &format!("{field}.bufferingHints.intervalInSeconds"),
            hints.interval_in_seconds,
            0,
            900,
        );
    }
}

/// Checks an HTTP endpoint destination's members under `field`.
pub fn check_http(v: &mut Violations, field: &str, d: &HttpInput, required: bool) {
    let endpoint = d.endpoint_configuration.clone().unwrap_or_default();
    if required {
        v.required(
            &format!("{field}.endpointConfiguration"),
            &d.endpoint_configuration,
        );
        if d.endpoint_configuration.is_some() {
            v.required(&format!("{field}.endpointConfiguration.url"), &endpoint.url);
        }
        v.required(&format!("{field}.s3Configuration"), &d.s3_configuration);
    }
    v.length(
        &format!("{field}.endpointConfiguration.url"),
        endpoint.url.as_deref(),
        1,
        1000,
    );
    v.length(
        &format!("{field}.endpointConfiguration.accessKey"),
        endpoint.access_key.as_deref(),
        0,
        4096,
    );
    check_hints(v, field, d.buffering_hints.as_ref(), 64);
    if let Some(retry) = &d.retry_options {
        v.range(
            &format!("{field}.retryOptions.durationInSeconds"),
            retry.duration_in_seconds,
            0,
            7200,
        );
    }
    v.one_of(
        &format!("{field}.s3BackupMode"),
        d.s3_backup_mode.as_deref(),
        &["FailedDataOnly", "AllData"],
    );
    if let Some(s3) = &d.s3_configuration {
        check_s3(v, &format!("{field}.s3Configuration"), s3, required);
    }
}

/// Builds an S3 destination from checked input, over `base` (UpdateDestination).
pub fn s3(input: S3Input, base: Option<&S3>, s3_dir: Option<&Path>) -> OpResult<S3> {
    let bucket_arn = input
        .bucket_arn
        .or_else(|| base.map(|b| b.bucket_arn.clone()))
        .unwrap_or_default();
    bucket(s3_dir, &bucket_arn)?;
    let compression = match input.compression_format.as_deref() {
        None => base.map_or(Compression::Uncompressed, |b| b.compression),
        Some(format) => Compression::parse(format).ok_or_else(|| {
            KinesisError::invalid_argument(format!(
                "CompressionFormat {format} is not supported by this server (UNCOMPRESSED and GZIP are)."
            ))
        })?,
    };
    let (size_bytes, interval_ms) = hints(
        input.buffering_hints,
        base.map(|b| (b.size_bytes, b.interval_ms)),
    );
    let delimiter = match &input.processing_configuration {
        Some(processing) => delimiter(processing)?,
        None => base.and_then(|b| b.delimiter.clone()),
    };
    Ok(S3 {
        delimiter,
        role_arn: input
            .role_arn
            .or_else(|| base.map(|b| b.role_arn.clone()))
            .unwrap_or_default(),
        bucket_arn,
        prefix: input
            .prefix
            .or_else(|| base.map(|b| b.prefix.clone()))
            .unwrap_or_default(),
        error_prefix: input
            .error_output_prefix
            .or_else(|| base.and_then(|b| b.error_prefix.clone())),
        size_bytes,
        interval_ms,
        compression,
    })
}

/// Builds an HTTP endpoint destination from checked input, over `base`.
pub fn http(input: HttpInput, base: Option<&Http>, s3_dir: Option<&Path>) -> OpResult<Http> {
    let endpoint = input.endpoint_configuration.unwrap_or_default();
    let url = endpoint
        .url
        .or_else(|| base.map(|b| b.url.clone()))
        .unwrap_or_default();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(KinesisError::invalid_argument(format!(
            "Url {url} is not an http:// or https:// URL."
        )));
    }
    let s3 = match (input.s3_configuration, base) {
        (Some(s3_input), base) => s3(s3_input, base.map(|b| &b.s3), s3_dir)?,
        (None, Some(base)) => base.s3.clone(),
        (None, None) => {
            return Err(KinesisError::invalid_argument(
                "S3Configuration is required: failed records are backed up there.",
            ));
        }
    };
    let (size_bytes, interval_ms) = hints(
        input.buffering_hints,
        base.map(|b| (b.size_bytes, b.interval_ms)),
    );
    let backup = match input.s3_backup_mode.as_deref() {
        Some("AllData") => BackupMode::AllData,
        Some(_) => BackupMode::FailedDataOnly,
        None => base.map_or(BackupMode::FailedDataOnly, |b| b.backup),
    };
    Ok(Http {
        url,
        name: endpoint.name.or_else(|| base.and_then(|b| b.name.clone())),
        access_key: endpoint
            .access_key
            .or_else(|| base.and_then(|b| b.access_key.clone())),
        role_arn: input
            .role_arn
            .or_else(|| base.and_then(|b| b.role_arn.clone())),
        size_bytes,
        interval_ms,
        retry_ms: input
            .retry_options
            .and_then(|r| r.duration_in_seconds)
            .map_or_else(
                || base.map_or(DEFAULT_RETRY_SECS * 1000, |b| b.retry_ms),
                |s| s * 1000,
            ),
        backup,
        s3,
    })
}

fn hints(hints: Option<BufferingHints>, base: Option<(usize, i64)>) -> (usize, i64) {
    let (size, interval) =
        base.unwrap_or((DEFAULT_SIZE_MB as usize * MIB, DEFAULT_INTERVAL_SECS * 1000));
    let hints = hints.unwrap_or_default();
    (
        hints.size_in_mbs.map_or(size, |mb| mb as usize * MIB),
        hints.interval_in_seconds.map_or(interval, |s| s * 1000),
    )
}

/// The directory of `bucket_arn` under the server's S3 directory.
pub fn bucket(s3_dir: Option<&Path>, bucket_arn: &str) -> OpResult<PathBuf> {
    let Some(s3_dir) = s3_dir else {
        return Err(KinesisError::invalid_argument(
            "This server delivers to S3 only when started with --s3-dir DIR.",
        ));
    };
    delivery::bucket_dir(s3_dir, bucket_arn).ok_or_else(|| {
        KinesisError::invalid_argument(format!(
            "BucketARN {bucket_arn} does not name an S3 bucket."
        ))
    })
}
