//! Field validation with Kinesis's own messages: every violation is listed, as in
//! "2 validation errors detected: Value null at 'shardCount' failed to satisfy
//! constraint: Member must not be null; Value null at 'streamName' ...".
//!
//! Kinesis lists violations by member name, alphabetically (a list's members in
//! index order under their list), and within one member checks its pattern before
//! its length. `finish` sorts by member; the helpers check in that order.

use std::fmt::Display;

use crate::server::error::{KinesisError, OpResult};
use crate::server::store::Store;

pub const STREAM_NAME_PATTERN: &str = "[a-zA-Z0-9_.-]+";
pub const SHARD_ID_PATTERN: &str = "[a-zA-Z0-9_.-]+";
pub const HASH_KEY_PATTERN: &str = "0|([1-9]\\d{0,38})";
pub const SEQUENCE_PATTERN: &str = "0|([1-9]\\d{0,128})";

/// Collects violations, each with the top-level member it is under.
#[derive(Debug, Default)]
pub struct Violations {
    errors: Vec<(String, String)>,
}

/// A list as Java's `toString` shows it: `[a, b]`.
pub fn java_list<T: Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// A map as Java's `toString` shows it: `{k=v, k2=v2}`.
pub fn java_map(map: &std::collections::BTreeMap<String, String>) -> String {
    let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", entries.join(", "))
}

pub const STREAM_ARN_PATTERN: &str = "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+";
pub const RESOURCE_ARN_PATTERN: &str = "arn:aws.*:kinesis:.*:\\d{12}:.*(stream|channel|queue)/\\S+";
pub const CONSUMER_ARN_PATTERN: &str = "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/[a-zA-Z0-9_.-]+:[0-9]+";

/// Whether `text` matches `arn:aws.*:kinesis:.*:\d{12}:TAIL` for some split, with
/// `tail` judging what follows the account id: the shape every Kinesis ARN pattern
/// shares. (Patterns match whole values, as Kinesis's validation does.)
fn is_kinesis_arn(text: &str, tail: impl Fn(&str) -> bool) -> bool {
    if !text.starts_with("arn:aws") {
        return false;
    }
    let Some(service) = text.find(":kinesis:") else {
        return false;
    };
    let bytes = text.as_bytes();
    // The `:` before the account may be the one that ends `:kinesis:`.
    (service + ":kinesis".len()..bytes.len()).any(|at| {
        bytes[at] == b':'
            && bytes
                .get(at + 1..at + 13)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            && bytes.get(at + 13) == Some(&b':')
            && tail(&text[at + 14..])
    })
}

fn is_non_space(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(char::is_whitespace)
}

pub fn is_stream_arn(text: &str) -> bool {
    is_kinesis_arn(text, |tail| {
        tail.strip_prefix("stream/").is_some_and(is_non_space)
    })
}

pub fn is_resource_arn(text: &str) -> bool {
    is_kinesis_arn(text, |tail| {
        tail.char_indices().any(|(at, _)| {
            ["stream/", "channel/", "queue/"]
                .iter()
                .any(|kind| tail[at..].strip_prefix(kind).is_some_and(is_non_space))
        })
    })
}

pub fn is_consumer_arn(text: &str) -> bool {
    let consumer = |rest: &str| -> bool {
        let Some((stream, rest)) = rest.split_once("/consumer/") else {
            return false;
        };
        let Some((name, created)) = rest.rsplit_once(':') else {
            return false;
        };
        is_name(stream)
            && is_name(name)
            && !created.is_empty()
            && created.bytes().all(|b| b.is_ascii_digit())
    };
    is_kinesis_arn(text, |tail| {
        tail.char_indices()
            .any(|(at, _)| tail[at..].strip_prefix("stream/").is_some_and(consumer))
    })
}

pub fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub fn is_decimal(text: &str, max_digits: usize) -> bool {
    match text.as_bytes() {
        [b'0'] => true,
        [first, rest @ ..] => {
            (b'1'..=b'9').contains(first)
                && rest.len() < max_digits
                && rest.iter().all(u8::is_ascii_digit)
        }
        [] => false,
    }
}

impl Violations {
    fn push(&mut self, field: &str, value: Option<String>, constraint: impl Display) {
        let value = value.map_or_else(|| "null".to_owned(), |v| format!("'{v}'"));
        let member = field.split('.').next().unwrap_or(field).to_owned();
        self.errors.push((
            member,
            format!("Value {value} at '{field}' failed to satisfy constraint: Member {constraint}"),
        ));
    }

    pub fn required<T>(&mut self, field: &str, value: &Option<T>) {
        if value.is_none() {
            self.push(field, None, "must not be null");
        }
    }

    pub fn length(&mut self, field: &str, value: Option<&str>, min: usize, max: usize) {
        let Some(value) = value else { return };
        let len = value.chars().count();
        if len < min {
            self.push(
                field,
                Some(value.to_owned()),
                format!("must have length greater than or equal to {min}"),
            );
        } else if len > max {
            self.push(
                field,
                Some(value.to_owned()),
                format!("must have length less than or equal to {max}"),
            );
        }
    }

    pub fn pattern(
        &mut self,
        field: &str,
        value: Option<&str>,
        pattern: &str,
        matches: impl Fn(&str) -> bool,
    ) {
        if let Some(value) = value
            && !matches(value)
        {
            self.push(
                field,
                Some(value.to_owned()),
                format!("must satisfy regular expression pattern: {pattern}"),
            );
        }
    }

    pub fn range(&mut self, field: &str, value: Option<i64>, min: i64, max: i64) {
        let Some(value) = value else { return };
        if value < min {
            self.push(
                field,
                Some(value.to_string()),
                format!("must have value greater than or equal to {min}"),
            );
        } else if value > max {
            self.push(
                field,
                Some(value.to_string()),
                format!("must have value less than or equal to {max}"),
            );
        }
    }

    pub fn one_of(&mut self, field: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(value) = value
            && !allowed.contains(&value)
        {
            self.push(
                field,
                Some(value.to_owned()),
                format!("must satisfy enum value set: [{}]", allowed.join(", ")),
            );
        }
    }

    /// A list's or map's number of members. The value is shown as Java shows the
    /// collection (`[a, b]`, `{k=v}`), which `shown` renders only when it is reported.
    pub fn count(
        &mut self,
        field: &str,
        len: usize,
        min: usize,
        max: usize,
        shown: impl FnOnce() -> String,
    ) {
        if len < min {
            self.push(
                field,
                Some(shown()),
                format!("must have length greater than or equal to {min}"),
            );
        } else if len > max {
            self.push(
                field,
                Some(shown()),
                format!("must have length less than or equal to {max}"),
            );
        }
    }

    pub fn blob_length(&mut self, field: &str, len: usize, max: usize) {
        if len > max {
            self.push(
                field,
                Some(format!(
                    "java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]"
                )),
                format!("must have length less than or equal to {max}"),
            );
        }
    }

    /// Stream name and ARN rules shared by every action that names a stream.
    pub fn stream(&mut self, name: Option<&str>, arn: Option<&str>) {
        self.pattern("streamName", name, STREAM_NAME_PATTERN, is_name);
        self.length("streamName", name, 1, 128);
        self.stream_arn("streamARN", arn);
    }

    /// A stream ARN member: its pattern, then its length.
    pub fn stream_arn(&mut self, field: &str, value: Option<&str>) {
        self.pattern(field, value, STREAM_ARN_PATTERN, is_stream_arn);
        self.length(field, value, 1, 2048);
    }

    /// A consumer ARN member: its pattern, then its length.
    pub fn consumer_arn(&mut self, field: &str, value: Option<&str>) {
        self.pattern(field, value, CONSUMER_ARN_PATTERN, is_consumer_arn);
        self.length(field, value, 1, 2048);
    }

    /// A tagged or policy-holding resource's ARN: its pattern, then its length.
    pub fn resource_arn(&mut self, field: &str, value: Option<&str>) {
        self.pattern(field, value, RESOURCE_ARN_PATTERN, is_resource_arn);
        self.length(field, value, 1, 2048);
    }

    /// A shard id field: its pattern, then its length, as Kinesis checks them.
    pub fn shard_id(&mut self, field: &str, value: Option<&str>) {
        self.pattern(field, value, SHARD_ID_PATTERN, is_name);
        self.length(field, value, 1, 128);
    }

    pub fn finish(mut self) -> OpResult<()> {
        // Stable: a member's own checks, and a list's members, keep their order.
        self.errors.sort_by(|a, b| a.0.cmp(&b.0));
        match self.errors.len() {
            0 => Ok(()),
            n => Err(KinesisError::validation(format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                self.errors
                    .iter()
                    .map(|(_, e)| e.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }
}

/// The stream a request names: by `StreamName`, by `StreamARN`, or by both (which
/// must then agree). Every action on one stream takes this pair.
#[derive(Debug, Clone, Copy)]
pub struct StreamTarget<'a> {
    pub name: Option<&'a str>,
    pub arn: Option<&'a str>,
}

impl StreamTarget<'_> {
    /// Checks the fields' lengths and pattern, among the request's other violations.
    pub fn check(&self, v: &mut Violations) {
        v.stream(self.name, self.arn);
    }

    /// The stream's name, looked up by ARN when one is given.
    pub fn resolve(&self, store: &Store) -> OpResult<String> {
        stream_name(store, self.name, self.arn)
    }
}

/// An input that names its stream with the `StreamName`/`StreamARN` pair.
pub trait NamesStream {
    fn target(&self) -> StreamTarget<'_>;
}

/// The stream a request names, by StreamName or StreamARN.
pub fn stream_name(store: &Store, name: Option<&str>, arn: Option<&str>) -> OpResult<String> {
    match (name, arn) {
        (_, Some(arn)) => {
            let from_arn = store.name_from_arn(arn).ok_or_else(|| {
                KinesisError::not_found(format!("Stream with ARN {arn} not found."))
            })?;
            if let Some(name) = name
                && name != from_arn
            {
                return Err(KinesisError::invalid_argument(format!(
                    "StreamARN {arn} and StreamName {name} do not name the same stream."
                )));
            }
            Ok(from_arn)
        }
        (Some(name), None) => Ok(name.to_owned()),
        (None, None) => Err(KinesisError::invalid_argument(
            "Either StreamName or StreamARN should be provided.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_listed_by_member_and_a_members_pattern_before_its_length() {
        let mut v = Violations::default();
        v.stream(Some(""), None);
        v.range("shardCount", Some(0), 1, 100_000);
        let err = v.finish().unwrap_err();
        assert_eq!(
            err.message,
            "3 validation errors detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1; Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
    }

    #[test]
    fn arns_match_kinesis_patterns_as_whole_values() {
        assert!(is_stream_arn(
            "arn:aws:kinesis:us-east-1:123456789012:stream/s"
        ));
        assert!(is_stream_arn("arn:aws-cn:kinesis::123456789012:stream/a.b"));
        assert!(!is_stream_arn(
            "arn:aws:kinesis:us-east-1:12345678901:stream/s"
        ));
        assert!(!is_stream_arn(
            "arn:aws:kinesis:us-east-1:123456789012:stream/"
        ));
        assert!(!is_stream_arn("arn:aws:s3:us-east-1:123456789012:stream/s"));
        assert!(!is_stream_arn("not-an-arn"));
        assert!(is_resource_arn(
            "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1"
        ));
        assert!(!is_resource_arn(
            "arn:aws:kinesis:us-east-1:123456789012:table/s"
        ));
        assert!(is_consumer_arn(
            "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1700000000"
        ));
        assert!(!is_consumer_arn(
            "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c"
        ));
        assert!(!is_consumer_arn(
            "arn:aws:kinesis:us-east-1:123456789012:stream/s"
        ));
    }

    #[test]
    fn a_lists_members_keep_their_order_under_the_list() {
        let mut v = Violations::default();
        v.required::<String>("records.2.member.partitionKey", &None);
        v.required::<String>("records.10.member.partitionKey", &None);
        v.required::<String>("streamName", &None);
        v.count("records", 0, 1, 500, || "[]".into());
        let err = v.finish().unwrap_err();
        let order: Vec<&str> = err
            .message
            .split("; ")
            .map(|e| {
                e.split(" at '")
                    .nth(1)
                    .and_then(|rest| rest.split('\'').next())
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(
            order,
            [
                "records.2.member.partitionKey",
                "records.10.member.partitionKey",
                "records",
                "streamName"
            ]
        );
    }
}
