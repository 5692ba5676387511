//! Raw mirror -> [`Config`], collecting every problem instead of stopping at the first:
//! unknown keys (with the nearest known one), wrong types, and values out of range,
//! each named by its full key path.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{Nested, RawAgent, RawConfig, RawService};
use super::{
    AgentConfig, BodyFormat, Config, KinesisConfig, LogOutput, OnCorruptCheckpoint, Problem,
};
use crate::kinesis::limits;

use super::checker::{Checker, key_path, unknown_key};
use super::flow::{MIB, flow_config};
pub(super) fn validate(text: &str) -> Result<Config, Vec<Problem>> {
    let mut check = Checker::default();
    let document: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            let e: toml::de::Error = e;
            let at = e
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].lines().count().max(1);
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            check.problem(
                "(file)",
                None,
                format!("is not valid TOML{at}: {}", e.message().trim()),
            );
            return Err(check.problems);
        }
    };
    let mut unknown = Vec::new();
    let raw: RawConfig = match serde_ignored::deserialize(toml::Value::Table(document), |path| {
        unknown.push(key_path(&path))
    }) {
        Ok(raw) => raw,
        Err(e) => {
            check.problem("(file)", None, format!("cannot be read: {e}"));
            return Err(check.problems);
        }
    };
    for key in unknown {
        let message = unknown_key(&key);
        check.problem(key, None, message);
    }

    let raw_agent: RawAgent = check.section("agent", raw.agent);
    let raw_kinesis: RawService = check.section("kinesis", raw.kinesis);
    let raw_firehose: RawService = check.section("firehose", raw.firehose);
    let agent = agent_config(&mut check, raw_agent);
    let kinesis = service_config(
        &mut check,
        "kinesis",
        raw_kinesis,
        &KinesisConfig::default(),
    );
    let firehose = service_config(
        &mut check,
        "firehose",
        raw_firehose,
        &KinesisConfig::default(),
    );
    let flows = match raw.flows.map(|list| list.0) {
        None => {
            check.problem(
                "flows",
                None,
                "at least one [[flows]] table is required (include = [globs], stream = \"name\")",
            );
            Vec::new()
        }
        Some(Nested::Ok(tables)) => tables
            .into_iter()
            .enumerate()
            .filter_map(|(i, table)| {
                let key = format!("flows[{i}]");
                match table {
                    Nested::Ok(raw) => {
                        Some(flow_config(&mut check, &key, i, raw, (&kinesis, &firehose)))
                    }
                    Nested::Bad(found) => {
                        check.bad(&key, found, "must be a table: write [[flows]]");
                        None
                    }
                }
            })
            .collect(),
        Some(Nested::Bad(found)) => {
            check.bad(
                "flows",
                found,
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
            firehose,
            flows,
        })
    } else {
        Err(check.problems)
    }
}

fn agent_config(check: &mut Checker, raw: RawAgent) -> AgentConfig {
    let state_dir = match check.leaf("agent.state_dir", raw.state_dir) {
        None => PathBuf::from(AgentConfig::DEFAULT_STATE_DIR),
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
        AgentConfig::DEFAULT_MAX_IN_FLIGHT_BYTES as i64,
        // At least one largest record must fit, or nothing could ever be sent.
        (limits::DEFAULT_MAX_RECORD_BYTES as i64)..=(4096 * MIB),
        "bytes (1 MiB to 4 GiB)",
    );
    let grace = check.int_in(
        "agent.shutdown_grace_period_secs",
        raw.shutdown_grace_period_secs,
        AgentConfig::DEFAULT_SHUTDOWN_GRACE_PERIOD.as_secs() as i64,
        0..=3600,
        "seconds",
    );
    let metrics_listen = check
        .leaf("agent.metrics_listen", raw.metrics_listen)
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
    let ready_after = check.int_in(
        "agent.ready_after_failing_secs",
        raw.ready_after_failing_secs,
        AgentConfig::DEFAULT_READY_AFTER_FAILING.as_secs() as i64,
        1..=86_400,
        "seconds",
    );
    let scan_interval = check.duration_ms(
        "agent.scan_interval_ms",
        raw.scan_interval_ms,
        AgentConfig::DEFAULT_SCAN_INTERVAL,
        10..=600_000,
    );
    let on_corrupt_checkpoint = check.one_of(
        "agent.on_corrupt_checkpoint",
        raw.on_corrupt_checkpoint,
        OnCorruptCheckpoint::Refuse,
        &[
            ("refuse", OnCorruptCheckpoint::Refuse),
            ("reset", OnCorruptCheckpoint::Reset),
        ],
    );
    let log_format = check.one_of(
        "agent.log_format",
        raw.log_format,
        LogOutput::Text,
        &[("text", LogOutput::Text), ("json", LogOutput::Json)],
    );
    AgentConfig {
        state_dir,
        max_in_flight_bytes: max_in_flight_bytes as usize,
        shutdown_grace_period: Duration::from_secs(grace as u64),
        metrics_listen,
        ready_after_failing: Duration::from_secs(ready_after as u64),
        scan_interval,
        on_corrupt_checkpoint,
        log_format,
    }
}

fn check_region(check: &mut Checker, key: &str, region: &Option<String>) {
    if let Some(region) = region
        && (region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        check.bad(
            key,
            format!("\"{region}\""),
            "must be an AWS region name such as \"us-east-1\"",
        );
    }
}

fn check_url(check: &mut Checker, key: &str, url: &Option<String>, example: &str) {
    if let Some(url) = url {
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        let host = url.split_once("://").map_or("", |(_, rest)| rest);
        if !scheme_ok || host.is_empty() || host.contains(char::is_whitespace) {
            check.bad(
                key,
                format!("\"{url}\""),
                format!("must be an http:// or https:// URL such as \"{example}\""),
            );
        }
    }
}

/// `[kinesis]`, or a flow's `[flows.kinesis]` over `base`.
pub(super) fn service_config(
    check: &mut Checker,
    prefix: &str,
    raw: RawService,
    base: &KinesisConfig,
) -> KinesisConfig {
    let at = |field: &str| format!("{prefix}.{field}");
    let region = check.leaf(&at("region"), raw.region);
    check_region(check, &at("region"), &region);
    let endpoint_url = check.leaf(&at("endpoint_url"), raw.endpoint_url);
    let example = if prefix.ends_with("firehose") {
        "https://firehose.us-east-1.amazonaws.com"
    } else {
        "https://kinesis.us-east-1.amazonaws.com"
    };
    check_url(check, &at("endpoint_url"), &endpoint_url, example);
    let role_arn = check.leaf(&at("role_arn"), raw.role_arn);
    if let Some(arn) = &role_arn
        && !(arn.starts_with("arn:") && arn.contains(":role/"))
    {
        check.bad(
            &at("role_arn"),
            format!("\"{arn}\""),
            "must be an IAM role ARN such as \"arn:aws:iam::123456789012:role/shardcar\"",
        );
    }
    let profile = check.leaf(&at("profile"), raw.profile);
    if profile.as_deref() == Some("") {
        check.bad(
            &at("profile"),
            "\"\"",
            "must name a profile, or be left out",
        );
    }
    let external_id = check.leaf(&at("external_id"), raw.external_id);
    if let Some(id) = &external_id
        && !(2..=1224).contains(&id.len())
    {
        check.bad(
            &at("external_id"),
            format!("\"{id}\""),
            "must be 2 to 1224 characters (as IAM allows)",
        );
    }
    let sts_endpoint_url = check.leaf(&at("sts_endpoint_url"), raw.sts_endpoint_url);
    check_url(
        check,
        &at("sts_endpoint_url"),
        &sts_endpoint_url,
        "https://sts.us-east-1.amazonaws.com",
    );
    let sts_region = check.leaf(&at("sts_region"), raw.sts_region);
    check_region(check, &at("sts_region"), &sts_region);
    let ca_file = check.leaf(&at("ca_file"), raw.ca_file).and_then(|path| {
        if path.starts_with('/') {
            Some(PathBuf::from(path))
        } else {
            check.bad(
                &at("ca_file"),
                format!("\"{path}\""),
                "must be an absolute path to a PEM file of CA certificates",
            );
            None
        }
    });
    let connect_timeout = check.duration_ms(
        &at("connect_timeout_ms"),
        raw.connect_timeout_ms,
        base.connect_timeout,
        100..=600_000,
    );
    let request_timeout = check.duration_ms(
        &at("request_timeout_ms"),
        raw.request_timeout_ms,
        base.request_timeout,
        100..=3_600_000,
    );
    let retry_base = check.duration_ms(
        &at("retry_base_ms"),
        raw.retry_base_ms,
        base.retry_base,
        1..=60_000,
    );
    let retry_max = check.duration_ms(
        &at("retry_max_ms"),
        raw.retry_max_ms,
        base.retry_max,
        1..=3_600_000,
    );
    if retry_max < retry_base {
        check.bad(
            &at("retry_max_ms"),
            retry_max.as_millis(),
            format!(
                "must be at least retry_base_ms ({})",
                retry_base.as_millis()
            ),
        );
    }
    let body_format = check.one_of(
        &at("body_format"),
        raw.body_format,
        base.body_format,
        &[("cbor", BodyFormat::Cbor), ("json", BodyFormat::Json)],
    );
    KinesisConfig {
        region: region.or_else(|| base.region.clone()),
        endpoint_url: endpoint_url.or_else(|| base.endpoint_url.clone()),
        profile: profile.or_else(|| base.profile.clone()),
        role_arn: role_arn.or_else(|| base.role_arn.clone()),
        external_id: external_id.or_else(|| base.external_id.clone()),
        sts_endpoint_url: sts_endpoint_url.or_else(|| base.sts_endpoint_url.clone()),
        sts_region: sts_region.or_else(|| base.sts_region.clone()),
        ca_file: ca_file.or_else(|| base.ca_file.clone()),
        connect_timeout,
        request_timeout,
        retry_base,
        retry_max,
        body_format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AggregationConfig, PartitionKeyStrategy, StartAt, ThrottleConfig};

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

    /// A flow to a delivery stream gets Firehose's defaults and its own service
    /// section; Kinesis-only keys on it (and Firehose-only keys on a stream flow) are
    /// problems naming what to write instead.
    #[test]
    fn a_delivery_stream_flow_gets_firehoses_defaults_and_section() {
        let text = r#"
            [kinesis]
            region = "us-east-1"
            [firehose]
            region = "eu-west-1"
            endpoint_url = "http://127.0.0.1:4567"
            [[flows]]
            include = ["/var/log/a/*.log"]
            delivery_stream = "audit"
        "#;
        let config = validate(text).unwrap_or_else(|p| panic!("{p:#?}"));
        let flow = &config.flows[0];
        assert_eq!(flow.name, "audit");
        assert!(flow.destination.is_firehose());
        assert_eq!(flow.service.region.as_deref(), Some("eu-west-1"));
        assert_eq!(flow.aggregation, AggregationConfig::FIREHOSE);
        assert_eq!(flow.throttle, ThrottleConfig::FIREHOSE);
        assert_eq!(flow.max_record_bytes, 1000 * 1024 - 256);

        let text = r#"
            [[flows]]
            include = ["/a/*.log"]
            delivery_stream = "audit"
            stream = "logs"
            [[flows]]
            include = ["/b/*.log"]
            delivery_stream = "audit"
            partition_key = "line_hash"
            [flows.throttle]
            records_per_second_per_shard = 10
            [flows.kinesis]
            region = "us-east-1"
            [[flows]]
            include = ["/c/*.log"]
            stream = "logs"
            [flows.throttle]
            bytes_per_second = 2048
        "#;
        let problems = validate(text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "flows[0].delivery_stream",
                "flows[1].partition_key",
                "flows[1].throttle.records_per_second_per_shard",
                "flows[1].kinesis",
                "flows[2].throttle.bytes_per_second",
            ],
            "{problems:#?}"
        );
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
        for expected in [
            "agent.stat_dir: unknown key in [agent]; did you mean state_dir?",
            "kinesis.regoin: unknown key in [kinesis]; did you mean region?",
            "extra: unknown key at the top level; expected one of agent, kinesis, firehose, flows",
            "flows[0].lingr_ms: unknown key in [flows[]]; expected one of",
        ] {
            assert!(
                text.iter().any(|t| t.starts_with(expected)),
                "no {expected:?} in {text:#?}"
            );
        }
    }

    /// One wrong type or unknown key does not stop the checking of its section.
    #[test]
    fn wrong_types_are_named_with_their_key_and_value_and_checking_goes_on() {
        let text = r#"
            [agent]
            max_in_flight_bytes = "8MiB"
            shutdown_grace_period_secs = 99999
            state_dir = 5
            [[flows]]
            include = "/a/*.log"
            stream = "s"
            start_at = "middle"
            [flows.aggregation]
            enabled = "yes"
            linger_ms = 1.5
        "#;
        let problems = validate(text).unwrap_err();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        for expected in [
            "agent.max_in_flight_bytes = \"8MiB\": must be a whole number",
            "agent.shutdown_grace_period_secs = 99999: must be between 0 and 3600",
            "agent.state_dir = 5: must be a string",
            "flows[0].include = \"/a/*.log\": must be a list of strings",
            "flows[0].start_at = \"middle\": must be one of \"end\", \"start\"",
            "flows[0].aggregation.enabled = \"yes\": must be true or false",
            "flows[0].aggregation.linger_ms = 1.5: must be a whole number",
        ] {
            assert!(
                text.iter().any(|t| t.starts_with(expected)),
                "no {expected:?} in {text:#?}"
            );
        }
    }

    #[test]
    fn a_section_of_the_wrong_shape_is_a_problem_not_the_end() {
        let problems = validate(
            "agent = 5
flows = 3
",
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("agent = the integer 5: must be a table")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("flows = the integer 3: must be an array of tables")),
            "{text:#?}"
        );
        let problems = validate(
            "[flows]
stream = \"s\"
",
        )
        .unwrap_err();
        assert!(
            problems[0]
                .to_string()
                .contains("write [[flows]], not [flows]"),
            "{problems:?}"
        );
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
        assert_eq!(config.flows[0].service.region.as_deref(), Some("us-east-2"));
        assert_eq!(
            config.flows[0].service.endpoint_url.as_deref(),
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

    /// The key list comes from the parser itself, so a key added there and not here
    /// fails this test.
    #[test]
    fn the_example_documents_every_key_the_parser_accepts() {
        let documented = |key: &str| {
            EXAMPLE.lines().any(|line| {
                let line = line.trim_start_matches('#').trim_start();
                line.starts_with(&format!("{key} ="))
                    || line.starts_with(&format!("[{key}]"))
                    || line.starts_with(&format!("[[{key}]]"))
                    || line.starts_with(&format!("[flows.{key}]"))
            })
        };
        let mut missing = Vec::new();
        for (section, keys) in crate::config::raw::sections() {
            for key in keys {
                if !documented(key) {
                    missing.push(format!("{section}.{key}"));
                }
            }
        }
        assert!(missing.is_empty(), "not in agent.toml.example: {missing:?}");
        assert!(
            crate::config::raw::sections()[2]
                .1
                .contains(&"sts_endpoint_url")
        );
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
        assert_eq!(config.flows[0].service.region.as_deref(), Some("eu-west-1"));
    }
}
