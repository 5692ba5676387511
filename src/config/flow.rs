//! `[[flows]]`: each flow's files, destination, framing, transforms, partition key,
//! aggregation, throttle and `[flows.kinesis]`/`[flows.firehose]` overrides, checked
//! value by value. A flow to a delivery stream gets Firehose's defaults (records of
//! up to 1,000 KiB of packed lines, the delivery stream's quota as its throttle).

use super::checker::{Checker, TRANSFORMS};
use super::raw::{
    Checked, KeyName, RawAggregation, RawFlow, RawKeyTable, RawPartitionKey, RawThrottle,
    RawTransform, RawTransformTable,
};
use super::validate::service_config;
use super::{
    AggregationConfig, BytesPattern, DEFAULT_METADATA_KEY, DEFAULT_SPLIT_MARKER, Destination,
    FlowConfig, KinesisConfig, Oversize, PartitionKeyStrategy, StartAt, ThrottleConfig, Transform,
};
use crate::kinesis::{StreamName, limits};

pub(super) const MIB: i64 = 1024 * 1024;

/// Largest `max_record_bytes`: the largest record a stream can accept, less room for
/// the longest partition key, so a record of that size is still sendable.
const MAX_RECORD_BYTES: i64 =
    (limits::MAX_RECORD_BYTES_UPPER_BOUND - limits::MAX_PARTITION_KEY_CHARS) as i64;

pub(super) fn flow_config(
    check: &mut Checker,
    key: &str,
    index: usize,
    raw: RawFlow,
    services: (&KinesisConfig, &KinesisConfig),
) -> FlowConfig {
    let at = |field: &str| format!("{key}.{field}");

    let destination = destination(check, key, raw.stream, raw.delivery_stream);
    let firehose = destination.as_ref().is_some_and(Destination::is_firehose);
    let name = check.leaf(&at("name"), raw.name).unwrap_or_else(|| {
        destination
            .as_ref()
            .map_or_else(|| format!("flow-{index}"), |d| d.name().to_owned())
    });
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        check.bad(
            &at("name"),
            format!("\"{name}\""),
            "must be 1 or more characters from [a-zA-Z0-9_.-]",
        );
    }

    let include = check.leaf(&at("include"), raw.include).unwrap_or_default();
    if include.is_empty() {
        check.problem(
            at("include"),
            None,
            "is required: a list of absolute glob patterns, such as [\"/var/log/app/*.log\"]",
        );
    }
    for (i, pattern) in include.iter().enumerate() {
        check_glob(check, &format!("{key}.include[{i}]"), pattern);
    }
    let exclude = check.leaf(&at("exclude"), raw.exclude).unwrap_or_default();
    for (i, pattern) in exclude.iter().enumerate() {
        check_glob(check, &format!("{key}.exclude[{i}]"), pattern);
    }

    let start_at = check.one_of(
        &at("start_at"),
        raw.start_at,
        StartAt::End,
        &[("end", StartAt::End), ("start", StartAt::Start)],
    );
    let max_record_bytes = if firehose {
        check.int_in(
            &at("max_record_bytes"),
            raw.max_record_bytes,
            FlowConfig::DEFAULT_FIREHOSE_MAX_RECORD_BYTES as i64,
            1..=(FlowConfig::DEFAULT_FIREHOSE_MAX_RECORD_BYTES as i64),
            "bytes (Firehose's record limit of 1,000 KiB less 256 bytes)",
        )
    } else {
        check.int_in(
            &at("max_record_bytes"),
            raw.max_record_bytes,
            FlowConfig::DEFAULT_MAX_RECORD_BYTES as i64,
            1..=MAX_RECORD_BYTES,
            "bytes (a stream's record limit less 256 bytes for the partition key)",
        )
    } as usize;
    let oversize = check.one_of(
        &at("oversize"),
        raw.oversize,
        Oversize::Split,
        &[
            ("split", Oversize::Split),
            ("truncate", Oversize::Truncate),
            ("skip", Oversize::Skip),
        ],
    );
    let split_marker = check
        .leaf(&at("split_marker"), raw.split_marker)
        .unwrap_or_else(|| DEFAULT_SPLIT_MARKER.to_owned());
    if split_marker.len() >= max_record_bytes.min(1024) {
        check.bad(
            &at("split_marker"),
            format!("\"{split_marker}\""),
            "must be shorter than max_record_bytes and than 1024 bytes (\"\" for none)",
        );
    }
    let multiline_start = check
        .leaf(&at("multiline_start"), raw.multiline_start)
        .and_then(|text| match regex::bytes::Regex::new(&text) {
            Ok(re) => Some(BytesPattern(re)),
            Err(e) => {
                check.bad(
                    &at("multiline_start"),
                    format!("\"{text}\""),
                    format!("is not a valid regex: {e}"),
                );
                None
            }
        });
    let multiline_timeout = check.duration_ms(
        &at("multiline_timeout_ms"),
        raw.multiline_timeout_ms,
        FlowConfig::DEFAULT_MULTILINE_TIMEOUT,
        1..=600_000,
    );
    let skip_header_lines = check.int_in(
        &at("skip_header_lines"),
        raw.skip_header_lines,
        0,
        0..=1_000_000,
        "lines",
    );
    let flush_partial_line_after = check.duration_ms(
        &at("flush_partial_line_after_ms"),
        raw.flush_partial_line_after_ms,
        FlowConfig::DEFAULT_FLUSH_PARTIAL_LINE_AFTER,
        1..=3_600_000,
    );
    let transforms = check
        .leaf(&at("transforms"), raw.transforms)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, value)| transform(check, &format!("{key}.transforms[{i}]"), value))
        .collect();
    let partition_key = match check.leaf(&at("partition_key"), raw.partition_key) {
        None => PartitionKeyStrategy::Random,
        Some(_) if firehose => {
            check.problem(
                at("partition_key"),
                None,
                "applies only to a flow to a Kinesis stream: Firehose records have no partition key; remove it",
            );
            PartitionKeyStrategy::Random
        }
        Some(raw) => partition_key_strategy(check, &at("partition_key"), raw),
    };
    let raw_aggregation = check.section(&at("aggregation"), raw.aggregation);
    let aggregation = aggregation_config(check, &at("aggregation"), raw_aggregation, firehose);
    let raw_throttle = check.section(&at("throttle"), raw.throttle);
    let throttle = throttle_config(check, &at("throttle"), raw_throttle, firehose);
    let (kinesis, firehose_base) = services;
    let (section, raw_service, base, other, other_given) = if firehose {
        let given = raw.kinesis.is_some();
        ("firehose", raw.firehose, firehose_base, "kinesis", given)
    } else {
        let given = raw.firehose.is_some();
        ("kinesis", raw.kinesis, kinesis, "firehose", given)
    };
    let raw_service = check.section(&at(section), raw_service);
    if other_given {
        let needs = if firehose {
            "stream"
        } else {
            "delivery_stream"
        };
        check.problem(
            at(other),
            None,
            format!("applies only to a flow with {needs} = \"...\"; this flow's service settings go in [flows.{section}]"),
        );
    }
    let service = service_config(check, &at(section), raw_service, base);

    FlowConfig {
        name,
        include,
        exclude,
        destination: destination.unwrap_or_else(|| {
            Destination::Stream(StreamName::new("invalid").unwrap_or_else(|_| unreachable!()))
        }),
        start_at,
        max_record_bytes,
        oversize,
        split_marker,
        multiline_start,
        multiline_timeout,
        skip_header_lines: skip_header_lines as u64,
        flush_partial_line_after,
        transforms,
        partition_key,
        aggregation,
        throttle,
        service,
    }
}

/// `stream` or `delivery_stream`: exactly one of them.
fn destination(
    check: &mut Checker,
    key: &str,
    stream: Option<Checked<String>>,
    delivery_stream: Option<Checked<String>>,
) -> Option<Destination> {
    let at = |field: &str| format!("{key}.{field}");
    let stream = check.leaf(&at("stream"), stream);
    let delivery_stream = check.leaf(&at("delivery_stream"), delivery_stream);
    let named =
        |check: &mut Checker, field: &str, name: String, longest: usize| match StreamName::new(
            &name,
        ) {
            Ok(valid) if name.len() <= longest => Some(valid),
            Ok(_) => {
                check.bad(
                    &at(field),
                    format!("\"{name}\""),
                    format!("must be 1 to {longest} characters from [a-zA-Z0-9_.-]"),
                );
                None
            }
            Err(e) => {
                check.bad(
                    &at(field),
                    format!("\"{name}\""),
                    format!("must be {}", e.constraint),
                );
                None
            }
        };
    match (stream, delivery_stream) {
        (Some(_), Some(delivery)) => {
            check.bad(
                &at("delivery_stream"),
                format!("\"{delivery}\""),
                "cannot be set with stream: a flow ships to one Kinesis stream or one Firehose delivery stream; split it into two flows",
            );
            None
        }
        (Some(name), None) => {
            named(check, "stream", name, limits::MAX_STREAM_NAME_CHARS).map(Destination::Stream)
        }
        (None, Some(name)) => named(
            check,
            "delivery_stream",
            name,
            limits::MAX_DELIVERY_STREAM_NAME_CHARS,
        )
        .map(Destination::DeliveryStream),
        (None, None) => {
            check.problem(
                at("stream"),
                None,
                "is required: the name of the Kinesis stream to send to (or delivery_stream = \"...\" for a Firehose delivery stream)",
            );
            None
        }
    }
}

fn transform(check: &mut Checker, key: &str, value: Checked<RawTransform>) -> Option<Transform> {
    let log_format = |name: &str| match name {
        "common_apache" => Some(super::LogFormat::CommonApache),
        "combined_apache" => Some(super::LogFormat::CombinedApache),
        "apache_error" => Some(super::LogFormat::ApacheError),
        "syslog" => Some(super::LogFormat::Syslog),
        "rfc5424" => Some(super::LogFormat::Rfc5424),
        _ => None,
    };
    let value = match value {
        Checked::Ok(value) => value,
        Checked::Bad(found) => {
            check.bad(key, found, TRANSFORMS);
            return None;
        }
    };
    match value {
        RawTransform::Named(text) => match text.split_once(':') {
            None if text == "single_line" => Some(Transform::SingleLine),
            None if text == "add_metadata" => Some(Transform::AddMetadata {
                key: DEFAULT_METADATA_KEY.to_owned(),
            }),
            None if text == "csv_to_json" => Some(Transform::CsvToJson {
                field_names: Vec::new(),
                delimiter: b',',
            }),
            Some(("log_to_json", format)) if log_format(format).is_some() => {
                log_format(format).map(Transform::LogToJson)
            }
            _ => {
                check.bad(key, format!("\"{text}\""), TRANSFORMS);
                None
            }
        },
        RawTransform::Table(RawTransformTable::CsvToJson(options)) => {
            let delimiter = match options.delimiter.as_deref() {
                None => b',',
                Some(d) if d.len() == 1 => d.as_bytes()[0],
                Some(d) => {
                    check.bad(
                        &format!("{key}.csv_to_json.delimiter"),
                        format!("\"{d}\""),
                        "must be a single ASCII character such as \",\" or \"\\t\"",
                    );
                    return None;
                }
            };
            Some(Transform::CsvToJson {
                field_names: options.field_names.unwrap_or_default(),
                delimiter,
            })
        }
        RawTransform::Table(RawTransformTable::AddMetadata(options)) => match options.key {
            None => Some(Transform::AddMetadata {
                key: DEFAULT_METADATA_KEY.to_owned(),
            }),
            Some(name) if !name.is_empty() && name != "message" => {
                Some(Transform::AddMetadata { key: name })
            }
            Some(name) => {
                check.bad(
                    &format!("{key}.add_metadata.key"),
                    format!("\"{name}\""),
                    "must be a non-empty field name other than \"message\" (which holds a text record)",
                );
                None
            }
        },
    }
}

fn check_glob(check: &mut Checker, key: &str, pattern: &str) {
    if !pattern.starts_with('/') {
        check.bad(
            key,
            format!("\"{pattern}\""),
            "must be an absolute path pattern (start with /)",
        );
        return;
    }
    if let Err(e) = globset::Glob::new(pattern) {
        check.bad(
            key,
            format!("\"{pattern}\""),
            format!("is not a valid glob: {}", e.kind()),
        );
    }
}

fn partition_key_strategy(
    check: &mut Checker,
    key: &str,
    raw: RawPartitionKey,
) -> PartitionKeyStrategy {
    match raw {
        RawPartitionKey::Named(KeyName::Random) => PartitionKeyStrategy::Random,
        RawPartitionKey::Named(KeyName::LineHash) => PartitionKeyStrategy::LineHash,
        RawPartitionKey::Named(KeyName::Hostname) => PartitionKeyStrategy::Hostname,
        RawPartitionKey::Named(KeyName::File) => PartitionKeyStrategy::File,
        RawPartitionKey::Table(RawKeyTable::Fixed(arg)) => {
            match crate::kinesis::PartitionKey::new(&arg) {
                Ok(_) => PartitionKeyStrategy::Fixed(arg),
                Err(e) => {
                    check.bad(
                        &format!("{key}.fixed"),
                        format!("\"{arg}\""),
                        format!("must be {}", e.constraint),
                    );
                    PartitionKeyStrategy::Random
                }
            }
        }
        RawPartitionKey::Table(RawKeyTable::Regex(arg)) => match regex::Regex::new(&arg) {
            Ok(re) if re.captures_len() >= 2 => PartitionKeyStrategy::Regex(re),
            Ok(_) => {
                check.bad(
                    &format!("{key}.regex"),
                    format!("\"{arg}\""),
                    "must have a capture group: the key is the first group's match",
                );
                PartitionKeyStrategy::Random
            }
            Err(e) => {
                check.bad(
                    &format!("{key}.regex"),
                    format!("\"{arg}\""),
                    format!("is not a valid regex: {e}"),
                );
                PartitionKeyStrategy::Random
            }
        },
        RawPartitionKey::Table(RawKeyTable::JsonPointer(arg))
            if arg.is_empty() || arg.starts_with('/') =>
        {
            PartitionKeyStrategy::JsonPointer(arg)
        }
        RawPartitionKey::Table(RawKeyTable::JsonPointer(arg)) => {
            check.bad(
                &format!("{key}.json_pointer"),
                format!("\"{arg}\""),
                "must be a JSON pointer starting with / such as \"/user/id\"",
            );
            PartitionKeyStrategy::Random
        }
    }
}

fn aggregation_config(
    check: &mut Checker,
    key: &str,
    raw: RawAggregation,
    firehose: bool,
) -> AggregationConfig {
    let at = |field: &str| format!("{key}.{field}");
    let (default, largest, what) = if firehose {
        (
            AggregationConfig::FIREHOSE,
            limits::FIREHOSE_MAX_RECORD_BYTES,
            "bytes (lines packed into one Firehose record; at most its limit of 1,000 KiB, the default)",
        )
    } else {
        (
            AggregationConfig::DEFAULT,
            limits::MAX_RECORD_BYTES_UPPER_BOUND,
            "bytes (at most the stream's record limit; 51200 is the KPL's default)",
        )
    };
    let max_bytes = check.int_in(
        &at("max_bytes"),
        raw.max_bytes,
        default.max_bytes as i64,
        // Room for the 1-byte outer key, magic and trailer plus one small record.
        64..=(largest as i64),
        what,
    );
    let max_records = check.int_in(
        &at("max_records"),
        raw.max_records,
        default.max_records as i64,
        1..=1_000_000,
        "records",
    );
    let linger = check.duration_ms(&at("linger_ms"), raw.linger_ms, default.linger, 0..=60_000);
    AggregationConfig {
        enabled: check
            .leaf(&at("enabled"), raw.enabled)
            .unwrap_or(default.enabled),
        format: default.format,
        max_bytes: max_bytes as usize,
        max_records: max_records as usize,
        linger,
    }
}

fn throttle_config(
    check: &mut Checker,
    key: &str,
    raw: RawThrottle,
    firehose: bool,
) -> ThrottleConfig {
    let at = |field: &str| format!("{key}.{field}");
    let misplaced = [
        (
            "records_per_second_per_shard",
            raw.records_per_second_per_shard.is_some(),
            false,
        ),
        (
            "bytes_per_second_per_shard",
            raw.bytes_per_second_per_shard.is_some(),
            false,
        ),
        ("records_per_second", raw.records_per_second.is_some(), true),
        ("bytes_per_second", raw.bytes_per_second.is_some(), true),
    ];
    for (field, set, for_firehose) in misplaced {
        if set && for_firehose != firehose {
            let (applies, instead) = if for_firehose {
                (
                    "a flow to a delivery stream",
                    "records_per_second_per_shard and bytes_per_second_per_shard",
                )
            } else {
                (
                    "a flow to a Kinesis stream",
                    "records_per_second and bytes_per_second (the delivery stream's quota)",
                )
            };
            check.problem(
                at(field),
                None,
                format!("applies only to {applies}; this flow's throttle takes {instead}"),
            );
        }
    }
    let (default, records, bytes) = if firehose {
        let default = ThrottleConfig::FIREHOSE;
        let records = check.int_in(
            &at("records_per_second"),
            raw.records_per_second,
            i64::from(default.records_per_second_per_shard),
            1..=10_000_000,
            "records per second (the delivery stream's quota: 5000 by default, more where AWS raised it)",
        );
        let bytes = check.int_in(
            &at("bytes_per_second"),
            raw.bytes_per_second,
            i64::from(default.bytes_per_second_per_shard),
            1024..=(u32::MAX as i64),
            "bytes per second (the delivery stream's quota: 5242880 by default, 1048576 in some regions)",
        );
        (default, records, bytes)
    } else {
        let default = ThrottleConfig::DEFAULT;
        let records = check.int_in(
            &at("records_per_second_per_shard"),
            raw.records_per_second_per_shard,
            i64::from(default.records_per_second_per_shard),
            1..=(limits::SHARD_WRITE_RECORDS_PER_SEC as i64),
            "records per second (a shard accepts at most 1000)",
        );
        let bytes = check.int_in(
            &at("bytes_per_second_per_shard"),
            raw.bytes_per_second_per_shard,
            i64::from(default.bytes_per_second_per_shard),
            1024..=(limits::SHARD_WRITE_BYTES_PER_SEC as i64),
            "bytes per second (a shard accepts at most 1048576)",
        );
        (default, records, bytes)
    };
    let share = match check.leaf(&at("share"), raw.share) {
        None => default.share,
        Some(s) if s > 0.0 && s <= 1.0 => s,
        Some(s) => {
            check.bad(&at("share"), s, "must be greater than 0 and at most 1.0 (the fraction of each shard this agent may use)");
            default.share
        }
    };
    ThrottleConfig {
        enabled: check
            .leaf(&at("enabled"), raw.enabled)
            .unwrap_or(default.enabled),
        records_per_second_per_shard: records as u32,
        bytes_per_second_per_shard: bytes as u32,
        share,
        adaptive: check
            .leaf(&at("adaptive"), raw.adaptive)
            .unwrap_or(default.adaptive),
    }
}
