//! The transform chain a flow applies to each record before it is sent.
//!
//! A record a transform cannot handle (not CSV, not the log format, not text) is sent
//! as it was and counted: nothing is dropped because it did not parse.

use std::sync::OnceLock;

use bytes::Bytes;
use regex::Regex;
use serde_json::{Map, Value};

use crate::config::{LogFormat, Transform};

/// What the record is, for `add_metadata`.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub host: &'a str,
    pub file: &'a str,
    pub offset: u64,
    pub time_ms: i64,
}

/// The result of the chain: the record to send, and how many steps could not apply.
#[derive(Debug)]
pub struct Transformed {
    pub data: Bytes,
    pub failures: u32,
}

/// Runs `transforms` in order; a failing step leaves the record as it was.
pub fn apply(transforms: &[Transform], data: Bytes, origin: &Origin<'_>) -> Transformed {
    let mut data = data;
    let mut failures = 0;
    for transform in transforms {
        match apply_one(transform, &data, origin) {
            Some(next) => data = next,
            None => failures += 1,
        }
    }
    Transformed { data, failures }
}

fn apply_one(transform: &Transform, data: &Bytes, origin: &Origin<'_>) -> Option<Bytes> {
    match transform {
        Transform::SingleLine => Some(single_line(data)),
        Transform::CsvToJson {
            field_names,
            delimiter,
        } => csv_to_json(data, field_names, *delimiter),
        Transform::LogToJson(format) => log_to_json(std::str::from_utf8(data).ok()?, *format),
        Transform::AddMetadata { key } => add_metadata(data, key, origin),
    }
}

/// Joins the lines of a record with single spaces, each trimmed.
fn single_line(data: &[u8]) -> Bytes {
    if !data.contains(&b'\n') {
        return Bytes::copy_from_slice(data);
    }
    let parts: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .map(|line| line.trim_ascii())
        .filter(|line| !line.is_empty())
        .collect();
    Bytes::from(parts.join(&b' '))
}

fn to_json(object: Map<String, Value>) -> Option<Bytes> {
    serde_json::to_vec(&Value::Object(object))
        .ok()
        .map(Bytes::from)
}

fn csv_to_json(data: &[u8], field_names: &[String], delimiter: u8) -> Option<Bytes> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(data);
    let record = reader.records().next()?.ok()?;
    let mut object = Map::new();
    for (i, field) in record.iter().enumerate() {
        let name = field_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("field{i}"));
        object.insert(name, Value::String(field.to_owned()));
    }
    to_json(object)
}

struct LogPattern {
    regex: Regex,
    fields: &'static [&'static str],
}

fn pattern(format: LogFormat) -> &'static LogPattern {
    static PATTERNS: OnceLock<Vec<LogPattern>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let compile = |re: &str, fields| LogPattern {
            regex: Regex::new(re).unwrap_or_else(|e| unreachable!("built-in pattern: {e}")),
            fields,
        };
        vec![
            compile(
                r#"^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\S+)$"#,
                &["host", "ident", "authuser", "datetime", "request", "response", "bytes"],
            ),
            compile(
                r#"^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\S+) "([^"]*)" "([^"]*)"$"#,
                &["host", "ident", "authuser", "datetime", "request", "response", "bytes", "referer", "agent"],
            ),
            compile(
                r"^\[([^\]]+)\] \[([^\]]+)\] (?:\[pid (\d+)(?::tid (\d+))?\] )?(?:\[client ([^\]]+)\] )?(.*)$",
                &["timestamp", "level", "pid", "tid", "client", "message"],
            ),
            compile(
                r"^(?:<(\d{1,3})>)?([A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}) (\S+) ([^:\[\s]+)(?:\[(\d+)\])?: ?(.*)$",
                &["priority", "timestamp", "hostname", "program", "processid", "message"],
            ),
            compile(
                r"^<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?$",
                &["priority", "version", "timestamp", "hostname", "app_name", "procid", "msgid", "structured_data", "message"],
            ),
        ]
    });
    let index = match format {
        LogFormat::CommonApache => 0,
        LogFormat::CombinedApache => 1,
        LogFormat::ApacheError => 2,
        LogFormat::Syslog => 3,
        LogFormat::Rfc5424 => 4,
    };
    &patterns[index]
}

fn log_to_json(line: &str, format: LogFormat) -> Option<Bytes> {
    let pattern = pattern(format);
    let captures = pattern.regex.captures(line)?;
    let mut object = Map::new();
    for (i, name) in pattern.fields.iter().enumerate() {
        if let Some(value) = captures.get(i + 1)
            && value.as_str() != "-"
        {
            object.insert((*name).to_owned(), Value::String(value.as_str().to_owned()));
        }
    }
    to_json(object)
}

/// Puts the record's origin under `key`, never over a field the record has: a parsed
/// `host` (an access log's client address) must survive, since partition keys and
/// queries are built on it.
fn add_metadata(data: &[u8], key: &str, origin: &Origin<'_>) -> Option<Bytes> {
    let mut object = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(object)) => object,
        _ => {
            let mut object = Map::new();
            object.insert(
                "message".into(),
                Value::String(std::str::from_utf8(data).ok()?.to_owned()),
            );
            object
        }
    };
    if object.contains_key(key) {
        return None;
    }
    let mut metadata = Map::new();
    metadata.insert("host".into(), Value::String(origin.host.to_owned()));
    metadata.insert("file".into(), Value::String(origin.file.to_owned()));
    metadata.insert("offset".into(), Value::from(origin.offset));
    metadata.insert(
        "timestamp".into(),
        Value::String(crate::time::rfc3339_millis(origin.time_ms)),
    );
    object.insert(key.to_owned(), Value::Object(metadata));
    to_json(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        host: "web-1",
        file: "/var/log/a.log",
        offset: 42,
        time_ms: 0,
    };

    fn run(transforms: &[Transform], input: &[u8]) -> (Value, u32) {
        let out = apply(transforms, Bytes::copy_from_slice(input), &ORIGIN);
        let value = serde_json::from_slice(&out.data)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&out.data).into_owned()));
        (value, out.failures)
    }

    #[test]
    fn single_line_joins_trimmed_lines() {
        let (value, failures) = run(
            &[Transform::SingleLine],
            b"Exception: boom\n    at a.b(C.java:1)\n    at d\n",
        );
        assert_eq!(value, "Exception: boom at a.b(C.java:1) at d");
        assert_eq!(failures, 0);
    }

    #[test]
    fn csv_handles_quotes_and_names_fields() {
        let csv = Transform::CsvToJson {
            field_names: vec!["id".into(), "note".into()],
            delimiter: b',',
        };
        let (value, failures) = run(std::slice::from_ref(&csv), br#"7,"hello, ""world""",extra"#);
        assert_eq!(failures, 0);
        assert_eq!(value["id"], "7");
        assert_eq!(value["note"], r#"hello, "world""#);
        assert_eq!(value["field2"], "extra");
        let tsv = Transform::CsvToJson {
            field_names: vec![],
            delimiter: b'\t',
        };
        assert_eq!(run(&[tsv], b"a\tb").0["field1"], "b");
        let (_, failures) = run(&[csv], b"\"unterminated");
        assert_eq!(failures, 0, "csv is lenient about a missing closing quote");
    }

    #[test]
    fn apache_common_and_combined() {
        let common = br#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
        let (value, failures) = run(&[Transform::LogToJson(LogFormat::CommonApache)], common);
        assert_eq!(failures, 0);
        assert_eq!(value["authuser"], "frank");
        assert_eq!(value["response"], "200");
        assert!(value.get("ident").is_none(), "'-' fields are left out");
        let combined = [&common[..], br#" "http://example.com/" "Mozilla/4.08""#].concat();
        let (value, _) = run(
            &[Transform::LogToJson(LogFormat::CombinedApache)],
            &combined,
        );
        assert_eq!(value["agent"], "Mozilla/4.08");
        let (_, failures) = run(&[Transform::LogToJson(LogFormat::CombinedApache)], common);
        assert_eq!(failures, 1, "a common line is not combined");
    }

    #[test]
    fn apache_error_and_syslogs() {
        let error = b"[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration";
        let (value, _) = run(&[Transform::LogToJson(LogFormat::ApacheError)], error);
        assert_eq!(value["level"], "error");
        assert_eq!(value["client"], "127.0.0.1");
        let error24 = b"[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist";
        let (value, _) = run(&[Transform::LogToJson(LogFormat::ApacheError)], error24);
        assert_eq!(value["pid"], "35708");
        let syslog =
            b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8";
        let (value, _) = run(&[Transform::LogToJson(LogFormat::Syslog)], syslog);
        assert_eq!(value["program"], "su");
        assert_eq!(value["processid"], "230");
        let rfc5424 = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event"#;
        let (value, failures) = run(&[Transform::LogToJson(LogFormat::Rfc5424)], rfc5424);
        assert_eq!(failures, 0);
        assert_eq!(value["app_name"], "evntslog");
        assert_eq!(value["message"], "An application event");
        let (_, failures) = run(&[Transform::LogToJson(LogFormat::Syslog)], b"not syslog");
        assert_eq!(failures, 1);
    }

    fn metadata() -> Transform {
        Transform::AddMetadata {
            key: "metadata".into(),
        }
    }

    #[test]
    fn metadata_wraps_text_and_extends_json_under_its_own_key() {
        let (value, _) = run(&[metadata()], b"plain");
        assert_eq!(value["message"], "plain");
        assert_eq!(value["metadata"]["host"], "web-1");
        assert_eq!(value["metadata"]["offset"], 42);
        assert_eq!(value["metadata"]["timestamp"], "1970-01-01T00:00:00.000Z");
        let (value, _) = run(
            &[Transform::LogToJson(LogFormat::Syslog), metadata()],
            b"Oct 11 22:14:15 m app: hi",
        );
        assert_eq!(value["program"], "app");
        assert_eq!(value["metadata"]["file"], "/var/log/a.log");
        let (value, failures) = run(&[metadata()], b"\xff\xfe");
        assert_eq!(failures, 1, "binary data is not text: sent as it was");
        assert!(value.is_string());
    }

    /// The client address parsed from an access log is the record's `host`; the agent's
    /// host name must not replace it (a `/host` partition key would send every record
    /// of this machine to one shard).
    #[test]
    fn metadata_never_overwrites_a_parsed_field() {
        let combined =
            br#"203.0.113.9 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "-" "curl""#;
        let (value, failures) = run(
            &[Transform::LogToJson(LogFormat::CombinedApache), metadata()],
            combined,
        );
        assert_eq!(failures, 0);
        assert_eq!(value["host"], "203.0.113.9");
        assert_eq!(value["metadata"]["host"], ORIGIN.host);
        // A record that already has the metadata key keeps it, and the step counts.
        let (value, failures) = run(&[metadata()], br#"{"metadata": "mine"}"#);
        assert_eq!(failures, 1);
        assert_eq!(value["metadata"], "mine");
        let custom = Transform::AddMetadata {
            key: "agent".into(),
        };
        let (value, _) = run(&[custom], br#"{"host": "h"}"#);
        assert_eq!(value["host"], "h");
        assert_eq!(value["agent"]["host"], ORIGIN.host);
    }
}
