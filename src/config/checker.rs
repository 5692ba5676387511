//! The checker that validation runs every value through: it records a problem (key
//! path, bad value, what is accepted) and carries on, so one pass finds every
//! mistake. Also the key paths and "did you mean" suggestions for unknown keys.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::Problem;
use super::raw::{Checked, Nested, RawPartitionKey, RawTransform, sections};

/// What a value of each raw type must look like, for type problems.
pub(super) trait Expected {
    const WHAT: &'static str;
}
impl Expected for i64 {
    const WHAT: &'static str = "must be a whole number (no quotes, no unit)";
}
impl Expected for f64 {
    const WHAT: &'static str = "must be a number";
}
impl Expected for bool {
    const WHAT: &'static str = "must be true or false";
}
impl Expected for String {
    const WHAT: &'static str = "must be a string in quotes";
}
impl Expected for Vec<String> {
    const WHAT: &'static str = "must be a list of strings such as [\"/var/log/app/*.log\"]";
}
impl Expected for Vec<Checked<RawTransform>> {
    const WHAT: &'static str = "must be a list of transforms such as [\"single_line\"]";
}
impl Expected for RawPartitionKey {
    const WHAT: &'static str = PARTITION_KEYS;
}

pub(super) const PARTITION_KEYS: &str = "must be \"random\", \"line_hash\", \"hostname\", \"file\", or a table with one of fixed = \"...\", regex = \"...\" or json_pointer = \"/...\"";
pub(super) const TRANSFORMS: &str = "must be \"single_line\", \"add_metadata\", \"log_to_json:FORMAT\" (FORMAT: common_apache, combined_apache, apache_error, syslog, rfc5424), \"csv_to_json\", { csv_to_json = { field_names = [...], delimiter = \",\" } } or { add_metadata = { key = \"...\" } }";

/// Collects problems while building values, so every check runs.
#[derive(Default)]
pub(super) struct Checker {
    pub(super) problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn problem(
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

    pub(super) fn bad(&mut self, key: &str, value: impl Display, expected: impl Into<String>) {
        self.problem(key, Some(value.to_string()), expected);
    }

    /// A leaf's value, or a problem naming what was found instead of its type.
    pub(super) fn leaf<T: Expected>(&mut self, key: &str, value: Option<Checked<T>>) -> Option<T> {
        match value? {
            Checked::Ok(value) => Some(value),
            Checked::Bad(found) => {
                self.bad(key, found, T::WHAT);
                None
            }
        }
    }

    /// A section's contents, or a problem when it is not a table.
    pub(super) fn section<T: Default>(&mut self, key: &str, value: Option<Nested<T>>) -> T {
        match value {
            None => T::default(),
            Some(Nested::Ok(section)) => section,
            Some(Nested::Bad(found)) => {
                self.bad(
                    key,
                    found,
                    format!("must be a table: a [{key}] section (or {key} = {{ ... }})"),
                );
                T::default()
            }
        }
    }

    pub(super) fn int_in(
        &mut self,
        key: &str,
        value: Option<Checked<i64>>,
        default: i64,
        range: RangeInclusive<i64>,
        unit: &str,
    ) -> i64 {
        match self.leaf(key, value) {
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

    /// A duration in whole units of `unit` (1 for seconds, 1/1000 for milliseconds).
    pub(super) fn duration_ms(
        &mut self,
        key: &str,
        value: Option<Checked<i64>>,
        default: Duration,
        range_ms: RangeInclusive<i64>,
    ) -> Duration {
        let ms = self.int_in(
            key,
            value,
            default.as_millis() as i64,
            range_ms,
            "milliseconds",
        );
        Duration::from_millis(ms as u64)
    }

    pub(super) fn one_of<T: Copy>(
        &mut self,
        key: &str,
        value: Option<Checked<String>>,
        default: T,
        choices: &[(&str, T)],
    ) -> T {
        let Some(value) = self.leaf(key, value) else {
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

/// `flows.0.aggregation.x` (serde_ignored's path) as the file names it:
/// `flows[0].aggregation.x`.
pub(super) fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => {
            let parent = key_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}

/// The problem for an unknown key: its section's keys, and the nearest one.
pub(super) fn unknown_key(key: &str) -> String {
    let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
    let pattern: String = {
        let mut out = String::new();
        let mut chars = section.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '[' {
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
                out.push_str("[]");
            } else {
                out.push(c);
            }
        }
        out
    };
    let known: &[&str] = sections()
        .into_iter()
        .find(|(path, _)| *path == pattern)
        .map_or(&[], |(_, keys)| keys);
    let nearest = known
        .iter()
        .map(|k| (strsim::levenshtein(k, name), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min();
    let place = if section.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in [{pattern}]")
    };
    match nearest {
        Some((_, k)) => format!("unknown key {place}; did you mean {k}?"),
        None => format!("unknown key {place}; expected one of {}", known.join(", ")),
    }
}
