//! Raw mirror -> [`Config`], collecting every problem instead of stopping at the first.

use std::collections::HashSet;
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::raw::{RawAgent, RawAggregation, RawFlow, RawKinesis, RawThrottle};
use super::{
    AgentConfig, AggregationConfig, BytesPattern, Config, DEFAULT_METADATA_KEY,
    DEFAULT_SPLIT_MARKER, FlowConfig, KinesisConfig, LogFormat, OnCorruptCheckpoint, Oversize,
    PartitionKeyStrategy, Problem, StartAt, ThrottleConfig, Transform,
};
use crate::kinesis::{StreamName, limits};

const MIB: i64 = 1024 * 1024;

/// Largest `max_record_bytes`: the largest record a stream can accept, less room for
/// the longest partition key, so a record of that size is still sendable.
const MAX_RECORD_BYTES: i64 =
    (limits::MAX_RECORD_BYTES_UPPER_BOUND - limits::MAX_PARTITION_KEY_CHARS) as i64;
const DEFAULT_MAX_RECORD_BYTES: i64 =
    (limits::DEFAULT_MAX_RECORD_BYTES - limits::MAX_PARTITION_KEY_CHARS) as i64;

/// Collects problems while building values, so every check runs.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(
        &mut self,
        key: impl Into<String>,
        value: Option<String>,
        expected: impl Into<String>,
    ) {
        self.problems.push(Problem {
            key: key.into(),
            value,
            expected: expected.into(),
        });
    }

    fn bad(&mut self, key: &str, value: impl Display, expected: impl Into<String>) {
        self.problem(key, Some(value.to_string()), expected);
    }

    /// Deserializes one section on its own, reporting a parse error under its key.
    /// `None` when the section did not parse: its values are then not judged, so a
    /// misspelt key is not also reported as a missing one.
    fn section<T: DeserializeOwned + Default>(
        &mut self,
        key: &str,
        value: Option<toml::Value>,
    ) -> Option<T> {
        let Some(value) = value else {
            return Some(T::default());
        };
        match T::deserialize(value) {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                let message = e.message().trim().to_owned();
                self.problem(key, None, message);
                None
            }
        }
    }

    fn int_in(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: i64,
        range: RangeInclusive<i64>,
        unit: &str,
    ) -> i64 {
        match value {
            None => default,
            Some(v) if range.contains(&v) => v,
            Some(v) => {
                self.bad(
                    key,
                    v,
                    format!(
                        "must be between {} and {} {unit}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    fn one_of<T: Copy>(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: T,
        choices: &[(&str, T)],
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        match choices.iter().find(|(name, _)| *name == value) {
            Some((_, chosen)) => *chosen,
            None => {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                self.bad(
                    key,
                    format!("\"{value}\""),
                    format!("must be one of {}", names.join(", ")),
                );
                default
            }
        }
    }
}

pub(super) fn validate(text: &str) -> Result<Config, Vec<Problem>> {
    let mut check = Checker::default();
    let mut document: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            let e: toml::de::Error = e;
            check.problem(
                "(file)",
                None,
                format!("is not valid TOML: {}", e.message().trim()),
            );
            return Err(check.problems);
        }
    };

    let raw_agent: RawAgent = check
        .section("agent", document.remove("agent"))
        .unwrap_or_default();
    let raw_kinesis: RawKinesis = check
        .section("kinesis", document.remove("kinesis"))
        .unwrap_or_default();
    let raw_flows = document.remove("flows");
    for unknown in document.keys() {
        check.problem(
            unknown.clone(),
            None,
            "unknown section; expected [agent], [kinesis] or [[flows]]",
        );
    }

    let agent = agent_config(&mut check, raw_agent);
    let kinesis = kinesis_config(
        &mut check,
        "kinesis",
        raw_kinesis,
        &KinesisConfig::default(),
    );
    let flows = match raw_flows {
        None => {
            check.problem(
                "flows",
                None,
                "at least one [[flows]] table is required (include = [globs], stream = \"name\")",
            );
            Vec::new()
        }
        Some(toml::Value::Array(tables)) => tables
            .into_iter()
            .enumerate()
            .filter_map(|(i, table)| {
                let key = format!("flows[{i}]");
                let raw: RawFlow = check.section(&key, Some(table))?;
                Some(flow_config(&mut check, &key, i, raw, &kinesis))
            })
            .collect(),
        Some(_) => {
            check.problem(
                "flows",
                None,
                "must be an array of tables: write [[flows]], not [flows]",
            );
            Vec::new()
        }
    };

    let mut names = HashSet::new();
    for (i, flow) in flows.iter().enumerate() {
        if !names.insert(flow.name.clone()) {
            check.bad(
                &format!("flows[{i}].name"),
                format!("\"{}\"", flow.name),
                "is used by an earlier flow; give each flow a unique name",
            );
        }
    }

    if check.problems.is_empty() {
        Ok(Config {
            agent,
            kinesis,
            flows,
        })
    } else {
        Err(check.problems)
    }
}

fn agent_config(check: &mut Checker, raw: RawAgent) -> AgentConfig {
    let state_dir = match raw.state_dir {
        None => PathBuf::from("/var/lib/shardcar"),
        Some(dir) if dir.starts_with('/') => PathBuf::from(dir),
        Some(dir) => {
            check.bad(
                "agent.state_dir",
                format!("\"{dir}\""),
                "must be an absolute path",
            );
            PathBuf::new()
        }
    };
    let max_in_flight_bytes = check.int_in(
        "agent.max_in_flight_bytes",
        raw.max_in_flight_bytes,
        8 * MIB,
        // At least one largest record must fit, or nothing could ever be sent.
        (limits::DEFAULT_MAX_RECORD_BYTES as i64)..=(4096 * MIB),
        "bytes (1 MiB to 4 GiB)",
    );
    let grace = check.int_in(
        "agent.shutdown_grace_period_secs",
        raw.shutdown_grace_period_secs,
        10,
        0..=3600,
        "seconds",
    );
    let metrics_listen = raw
        .metrics_listen
        .and_then(|text| match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                check.bad(
                    "agent.metrics_listen",
                    format!("\"{text}\""),
                    "must be an IP address and port such as \"127.0.0.1:9464\"",
                );
                None
            }
        });
    let scan_interval_ms = check.int_in(
        "agent.scan_interval_ms",
        raw.scan_interval_ms,
        1000,
        10..=600_000,
        "milliseconds",
    );
    let on_corrupt_checkpoint = check.one_of(
        "agent.on_corrupt_checkpoint",
        raw.on_corrupt_checkpoint.as_deref(),
        OnCorruptCheckpoint::Refuse,
        &[
            ("refuse", OnCorruptCheckpoint::Refuse),
            ("reset", OnCorruptCheckpoint::Reset),
        ],
    );
    AgentConfig {
        state_dir,
        max_in_flight_bytes: max_in_flight_bytes as usize,
        shutdown_grace_period: Duration::from_secs(grace as u64),
        metrics_listen,
        scan_interval: Duration::from_millis(scan_interval_ms as u64),
        on_corrupt_checkpoint,
    }
}

fn kinesis_config(
    check: &mut Checker,
    prefix: &str,
    raw: RawKinesis,
    base: &KinesisConfig,
) -> KinesisConfig {
    if let Some(region) = &raw.region
        && (region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        check.bad(
            &format!("{prefix}.region"),
            format!("\"{region}\""),
            "must be an AWS region name such as \"us-east-1\"",
        );
    }
    if let Some(url) = &raw.endpoint_url {
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        let host = url.split_once("://").map_or("", |(_, rest)| rest);
        if !scheme_ok || host.is_empty() || host.contains(char::is_whitespace) {
            check.bad(
                &format!("{prefix}.endpoint_url"),
                format!("\"{url}\""),
                "must be an http:// or https:// URL such as \"https://kinesis.us-east-1.amazonaws.com\"",
            );
        }
    }
    if let Some(arn) = &raw.role_arn
        && !(arn.starts_with("arn:") && arn.contains(":role/"))
    {
        check.bad(
            &format!("{prefix}.role_arn"),
            format!("\"{arn}\""),
            "must be an IAM role ARN such as \"arn:aws:iam::123456789012:role/shardcar\"",
        );
    }
    if let Some(profile) = &raw.profile
        && profile.is_empty()
    {
        check.bad(
            &format!("{prefix}.profile"),
            "\"\"",
            "must name a profile, or be left out",
        );
    }
    KinesisConfig {
        region: raw.region.or_else(|| base.region.clone()),
        endpoint_url: raw.endpoint_url.or_else(|| base.endpoint_url.clone()),
        profile: raw.profile.or_else(|| base.profile.clone()),
        role_arn: raw.role_arn.or_else(|| base.role_arn.clone()),
    }
}

fn flow_config(
    check: &mut Checker,
    key: &str,
    index: usize,
    raw: RawFlow,
    kinesis: &KinesisConfig,
) -> FlowConfig {
    let at = |field: &str| format!("{key}.{field}");

    let stream = match raw.stream.as_deref() {
        None => {
            check.problem(
                at("stream"),
                None,
                "is required: the name of the Kinesis stream to send to",
            );
            None
        }
        Some(name) => match StreamName::new(name) {
            Ok(stream) => Some(stream),
            Err(e) => {
                check.bad(
                    &at("stream"),
                    format!("\"{name}\""),
                    format!("must be {}", e.constraint),
                );
                None
            }
        },
    };
    let name = raw.name.unwrap_or_else(|| {
        stream
            .as_ref()
            .map_or_else(|| format!("flow-{index}"), |s| s.as_str().to_owned())
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

    let include = raw.include.unwrap_or_default();
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
    let exclude = raw.exclude.unwrap_or_default();
    for (i, pattern) in exclude.iter().enumerate() {
        check_glob(check, &format!("{key}.exclude[{i}]"), pattern);
    }

    let start_at = check.one_of(
        &at("start_at"),
        raw.start_at.as_deref(),
        StartAt::End,
        &[("end", StartAt::End), ("start", StartAt::Start)],
    );
    let max_record_bytes = check.int_in(
        &at("max_record_bytes"),
        raw.max_record_bytes,
        DEFAULT_MAX_RECORD_BYTES,
        1..=MAX_RECORD_BYTES,
        "bytes (a stream's record limit less 256 bytes for the partition key)",
    ) as usize;
    let oversize = check.one_of(
        &at("oversize"),
        raw.oversize.as_deref(),
        Oversize::Split,
        &[
            ("split", Oversize::Split),
            ("truncate", Oversize::Truncate),
            ("skip", Oversize::Skip),
        ],
    );
    let split_marker = raw
        .split_marker
        .unwrap_or_else(|| DEFAULT_SPLIT_MARKER.to_owned());
    if split_marker.len() >= max_record_bytes.min(1024) {
        check.bad(
            &at("split_marker"),
            format!("\"{split_marker}\""),
            "must be shorter than max_record_bytes and than 1024 bytes (\"\" for none)",
        );
    }
    let multiline_start =
        raw.multiline_start
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
    let multiline_timeout_ms = check.int_in(
        &at("multiline_timeout_ms"),
        raw.multiline_timeout_ms,
        1000,
        1..=600_000,
        "milliseconds",
    );
    let skip_header_lines = check.int_in(
        &at("skip_header_lines"),
        raw.skip_header_lines,
        0,
        0..=1_000_000,
        "lines",
    );
    let flush_partial_ms = check.int_in(
        &at("flush_partial_line_after_ms"),
        raw.flush_partial_line_after_ms,
        5000,
        1..=3_600_000,
        "milliseconds",
    );
    let transforms = raw
        .transforms
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, value)| transform(check, &format!("{key}.transforms[{i}]"), value))
        .collect();
    let partition_key = partition_key_strategy(check, &at("partition_key"), raw.partition_key);
    let aggregation = aggregation_config(
        check,
        &at("aggregation"),
        raw.aggregation.unwrap_or_default(),
    );
    let throttle = throttle_config(check, &at("throttle"), raw.throttle.unwrap_or_default());
    let kinesis = kinesis_config(
        check,
        &at("kinesis"),
        raw.kinesis.unwrap_or_default(),
        kinesis,
    );

    FlowConfig {
        name,
        include,
        exclude,
        stream: stream
            .unwrap_or_else(|| StreamName::new("invalid").unwrap_or_else(|_| unreachable!())),
        start_at,
        max_record_bytes,
        oversize,
        split_marker,
        multiline_start,
        multiline_timeout: Duration::from_millis(multiline_timeout_ms as u64),
        skip_header_lines: skip_header_lines as u64,
        flush_partial_line_after: Duration::from_millis(flush_partial_ms as u64),
        transforms,
        partition_key,
        aggregation,
        throttle,
        kinesis,
    }
}

const TRANSFORMS: &str = "must be \"single_line\", \"add_metadata\", \"log_to_json:FORMAT\" (FORMAT: common_apache, combined_apache, apache_error, syslog, rfc5424), \"csv_to_json\" or { csv_to_json = { field_names = [...], delimiter = \",\" } }";

fn transform(check: &mut Checker, key: &str, value: &toml::Value) -> Option<Transform> {
    let log_format = |name: &str| match name {
        "common_apache" => Some(LogFormat::CommonApache),
        "combined_apache" => Some(LogFormat::CombinedApache),
        "apache_error" => Some(LogFormat::ApacheError),
        "syslog" => Some(LogFormat::Syslog),
        "rfc5424" => Some(LogFormat::Rfc5424),
        _ => None,
    };
    match value {
        toml::Value::String(text) => match text.split_once(':') {
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
        toml::Value::Table(table) if table.len() == 1 && table.contains_key("add_metadata") => {
            let at = format!("{key}.add_metadata");
            let options = table.get("add_metadata").and_then(|v| v.as_table());
            let Some(options) = options else {
                check.bad(&at, value, "must be a table such as { key = \"agent\" }");
                return None;
            };
            if let Some(unknown) = options.keys().find(|k| k.as_str() != "key") {
                check.bad(
                    &format!("{at}.{unknown}"),
                    value,
                    "unknown option; expected key",
                );
                return None;
            }
            match options.get("key") {
                None => Some(Transform::AddMetadata {
                    key: DEFAULT_METADATA_KEY.to_owned(),
                }),
                Some(toml::Value::String(name)) if !name.is_empty() && name != "message" => {
                    Some(Transform::AddMetadata { key: name.clone() })
                }
                Some(other) => {
                    check.bad(
                        &format!("{at}.key"),
                        other,
                        "must be a non-empty field name other than \"message\" (which holds a text record)",
                    );
                    None
                }
            }
        }
        toml::Value::Table(table) => match table.get("csv_to_json").and_then(|v| v.as_table()) {
            Some(options) if table.len() == 1 => {
                let field_names = match options.get("field_names") {
                    None => Some(Vec::new()),
                    Some(toml::Value::Array(names)) => names
                        .iter()
                        .map(|n| n.as_str().map(str::to_owned))
                        .collect(),
                    Some(_) => None,
                };
                let Some(field_names) = field_names else {
                    check.bad(
                        &format!("{key}.csv_to_json.field_names"),
                        value,
                        "must be a list of strings",
                    );
                    return None;
                };
                let delimiter = match options.get("delimiter") {
                    None => Some(b','),
                    Some(toml::Value::String(d)) if d.len() == 1 => d.bytes().next(),
                    Some(_) => None,
                };
                let Some(delimiter) = delimiter else {
                    check.bad(
                        &format!("{key}.csv_to_json.delimiter"),
                        value,
                        "must be a single ASCII character such as \",\" or \"\\t\"",
                    );
                    return None;
                };
                if let Some(unknown) = options
                    .keys()
                    .find(|k| !matches!(k.as_str(), "field_names" | "delimiter"))
                {
                    check.bad(
                        &format!("{key}.csv_to_json.{unknown}"),
                        value,
                        "unknown option; expected field_names or delimiter",
                    );
                    return None;
                }
                Some(Transform::CsvToJson {
                    field_names,
                    delimiter,
                })
            }
            _ => {
                check.bad(key, value, TRANSFORMS);
                None
            }
        },
        _ => {
            check.bad(key, value, TRANSFORMS);
            None
        }
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
    raw: Option<toml::Value>,
) -> PartitionKeyStrategy {
    const EXPECTED: &str = "must be \"random\", \"line_hash\", \"hostname\", \"file\", or a table with one of fixed = \"...\", regex = \"...\" or json_pointer = \"/...\"";
    let Some(value) = raw else {
        return PartitionKeyStrategy::Random;
    };
    match &value {
        toml::Value::String(name) => match name.as_str() {
            "random" => PartitionKeyStrategy::Random,
            "line_hash" => PartitionKeyStrategy::LineHash,
            "hostname" => PartitionKeyStrategy::Hostname,
            "file" => PartitionKeyStrategy::File,
            _ => {
                check.bad(key, format!("\"{name}\""), EXPECTED);
                PartitionKeyStrategy::Random
            }
        },
        toml::Value::Table(table) if table.len() == 1 => {
            let (kind, arg) = table
                .iter()
                .next()
                .unwrap_or_else(|| unreachable!("len is 1"));
            let sub_key = format!("{key}.{kind}");
            let Some(arg) = arg.as_str() else {
                check.bad(&sub_key, arg, "must be a string");
                return PartitionKeyStrategy::Random;
            };
            match kind.as_str() {
                "fixed" => match crate::kinesis::PartitionKey::new(arg) {
                    Ok(_) => PartitionKeyStrategy::Fixed(arg.to_owned()),
                    Err(e) => {
                        check.bad(
                            &sub_key,
                            format!("\"{arg}\""),
                            format!("must be {}", e.constraint),
                        );
                        PartitionKeyStrategy::Random
                    }
                },
                "regex" => match regex::Regex::new(arg) {
                    Ok(re) if re.captures_len() >= 2 => PartitionKeyStrategy::Regex(re),
                    Ok(_) => {
                        check.bad(
                            &sub_key,
                            format!("\"{arg}\""),
                            "must have a capture group: the key is the first group's match",
                        );
                        PartitionKeyStrategy::Random
                    }
                    Err(e) => {
                        check.bad(
                            &sub_key,
                            format!("\"{arg}\""),
                            format!("is not a valid regex: {e}"),
                        );
                        PartitionKeyStrategy::Random
                    }
                },
                "json_pointer" if arg.is_empty() || arg.starts_with('/') => {
                    PartitionKeyStrategy::JsonPointer(arg.to_owned())
                }
                "json_pointer" => {
                    check.bad(
                        &sub_key,
                        format!("\"{arg}\""),
                        "must be a JSON pointer starting with / such as \"/user/id\"",
                    );
                    PartitionKeyStrategy::Random
                }
                _ => {
                    check.bad(key, &value, EXPECTED);
                    PartitionKeyStrategy::Random
                }
            }
        }
        _ => {
            check.bad(key, &value, EXPECTED);
            PartitionKeyStrategy::Random
        }
    }
}

fn aggregation_config(check: &mut Checker, key: &str, raw: RawAggregation) -> AggregationConfig {
    let at = |field: &str| format!("{key}.{field}");
    let max_bytes = check.int_in(
        &at("max_bytes"),
        raw.max_bytes,
        51_200,
        // Room for the 1-byte outer key, magic and trailer plus one small record.
        64..=(limits::MAX_RECORD_BYTES_UPPER_BOUND as i64),
        "bytes (at most the stream's record limit; 51200 is the KPL's default)",
    );
    let max_records = check.int_in(
        &at("max_records"),
        raw.max_records,
        10_000,
        1..=1_000_000,
        "records",
    );
    let linger_ms = check.int_in(
        &at("linger_ms"),
        raw.linger_ms,
        100,
        0..=60_000,
        "milliseconds",
    );
    AggregationConfig {
        enabled: raw.enabled.unwrap_or(true),
        max_bytes: max_bytes as usize,
        max_records: max_records as usize,
        linger: Duration::from_millis(linger_ms as u64),
    }
}

fn throttle_config(check: &mut Checker, key: &str, raw: RawThrottle) -> ThrottleConfig {
    let at = |field: &str| format!("{key}.{field}");
    let records = check.int_in(
        &at("records_per_second_per_shard"),
        raw.records_per_second_per_shard,
        limits::SHARD_WRITE_RECORDS_PER_SEC as i64,
        1..=(limits::SHARD_WRITE_RECORDS_PER_SEC as i64),
        "records per second (a shard accepts at most 1000)",
    );
    let bytes = check.int_in(
        &at("bytes_per_second_per_shard"),
        raw.bytes_per_second_per_shard,
        limits::SHARD_WRITE_BYTES_PER_SEC as i64,
        1024..=(limits::SHARD_WRITE_BYTES_PER_SEC as i64),
        "bytes per second (a shard accepts at most 1048576)",
    );
    let share = match raw.share {
        None => 1.0,
        Some(s) if s > 0.0 && s <= 1.0 => s,
        Some(s) => {
            check.bad(&at("share"), s, "must be greater than 0 and at most 1.0 (the fraction of each shard this agent may use)");
            1.0
        }
    };
    ThrottleConfig {
        enabled: raw.enabled.unwrap_or(true),
        records_per_second_per_shard: records as u32,
        bytes_per_second_per_shard: bytes as u32,
        share,
        adaptive: raw.adaptive.unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[flows]]
        include = ["/var/log/app/*.log"]
        stream = "logs"
    "#;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let config = validate(MINIMAL).unwrap();
        let flow = &config.flows[0];
        assert_eq!(flow.name, "logs");
        assert_eq!(flow.start_at, StartAt::End);
        assert_eq!(flow.aggregation.max_bytes, 51_200);
        assert_eq!(flow.aggregation.linger, Duration::from_millis(100));
        assert_eq!(flow.throttle.records_per_second_per_shard, 1000);
        assert_eq!(config.agent.max_in_flight_bytes, 8 * 1024 * 1024);
        assert_eq!(config.agent.state_dir, PathBuf::from("/var/lib/shardcar"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
            [agent]
            max_in_flight_bytes = 10
            [[flows]]
            include = ["relative/*.log"]
            stream = "bad name"
            [flows.aggregation]
            linger_ms = -1
        "#;
        let problems = validate(text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "agent.max_in_flight_bytes",
                "flows[0].stream",
                "flows[0].include[0]",
                "flows[0].aggregation.linger_ms"
            ]
        );
        assert_eq!(problems[0].value.as_deref(), Some("10"));
    }

    #[test]
    fn unknown_keys_are_named_per_section() {
        let text = r#"
            [agent]
            stat_dir = "/tmp"
            [kinesis]
            regoin = "us-east-1"
            [[flows]]
            include = ["/a"]
            stream = "s"
            lingr_ms = 5
            [extra]
        "#;
        let problems = validate(text).unwrap_err();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{text:#?}");
        assert!(text[0].contains("stat_dir"), "{}", text[0]);
        assert!(text[1].contains("regoin"), "{}", text[1]);
        assert!(text[2].contains("extra"), "{}", text[2]);
        assert!(text[3].contains("lingr_ms"), "{}", text[3]);
    }

    #[test]
    fn flow_kinesis_overrides_inherit_the_global_section() {
        let text = r#"
            [kinesis]
            region = "eu-west-1"
            endpoint_url = "http://127.0.0.1:4567"
            [[flows]]
            include = ["/a"]
            stream = "s"
            [flows.kinesis]
            region = "us-east-2"
        "#;
        let config = validate(text).unwrap();
        assert_eq!(config.flows[0].kinesis.region.as_deref(), Some("us-east-2"));
        assert_eq!(
            config.flows[0].kinesis.endpoint_url.as_deref(),
            Some("http://127.0.0.1:4567")
        );
    }

    #[test]
    fn partition_key_strategies_parse_and_reject() {
        let with = |pk: &str| {
            validate(&format!(
                "[[flows]]\ninclude=[\"/a\"]\nstream=\"s\"\npartition_key = {pk}\n"
            ))
        };
        assert_eq!(
            with("\"hostname\"").unwrap().flows[0].partition_key,
            PartitionKeyStrategy::Hostname
        );
        assert!(matches!(
            with("{ regex = \"user=(\\\\w+)\" }").unwrap().flows[0].partition_key,
            PartitionKeyStrategy::Regex(_)
        ));
        assert_eq!(
            with("{ json_pointer = \"/user/id\" }").unwrap().flows[0].partition_key,
            PartitionKeyStrategy::JsonPointer("/user/id".into())
        );
        assert!(with("\"sometimes\"").is_err());
        assert!(with("{ regex = \"no group\" }").is_err());
        assert!(with("{ regex = \"(\" }").is_err());
        assert!(with("{ json_pointer = \"user\" }").is_err());
        assert!(with("{ fixed = \"\" }").is_err());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../agent.toml.example");

    #[test]
    fn the_example_parses_with_its_stated_defaults() {
        let config = validate(EXAMPLE).unwrap_or_else(|p| panic!("{p:#?}"));
        let defaults = validate("[[flows]]\ninclude = [\"/a\"]\nstream = \"s\"").unwrap();
        let (example, default) = (&config.flows[0], &defaults.flows[0]);
        assert_eq!(config.agent, defaults.agent);
        assert_eq!(example.aggregation, default.aggregation);
        assert_eq!(example.throttle, default.throttle);
        assert_eq!(example.max_record_bytes, default.max_record_bytes);
        assert_eq!(example.start_at, default.start_at);
        assert_eq!(example.oversize, default.oversize);
        assert_eq!(example.partition_key, default.partition_key);
        assert_eq!(
            example.flush_partial_line_after,
            default.flush_partial_line_after
        );
        assert_eq!(example.multiline_timeout, default.multiline_timeout);
    }

    #[test]
    fn the_example_commented_keys_are_valid_when_uncommented() {
        let uncommented: String = EXAMPLE
            .lines()
            .map(|line| {
                let rest = line.strip_prefix("# ").unwrap_or(line);
                let is_setting = rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    });
                if is_setting { rest } else { line }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = validate(&uncommented).unwrap_or_else(|p| panic!("{p:#?}"));
        assert!(config.agent.metrics_listen.is_some());
        assert!(config.kinesis.role_arn.is_some());
        assert_eq!(config.flows[0].kinesis.region.as_deref(), Some("eu-west-1"));
    }
}
