//! The raw mirror of `agent.toml`: every key typed, nothing judged.
//!
//! Parsing never stops at a wrong type or an unknown key, so that `check-config` can
//! list every problem at once: a leaf that is not of its type is kept as
//! [`Checked::Bad`] with the value found, a section that is not a table as
//! [`Nested::Bad`], and unknown keys are collected by `serde_ignored` with their
//! path. [`super::validate`] turns all of that, and the values, into problems.

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

/// A leaf value of type `T`, or the TOML value found where a `T` was expected.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked<T> {
    Ok(T),
    Bad(toml::Value),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        Ok(match T::deserialize(value.clone()) {
            Ok(parsed) => Checked::Ok(parsed),
            Err(_) => Checked::Bad(value),
        })
    }
}

/// A section (a table, or for `[[flows]]` a list of tables), or what was found instead.
/// Parsed in place, so unknown keys inside it are still seen.
#[derive(Debug, Clone, PartialEq)]
pub enum Nested<T> {
    Ok(T),
    Bad(String),
}

/// What a [`Nested`] value must be.
enum Shape {
    Table,
    List,
}

struct ShapeVisitor<T> {
    shape: Shape,
    marker: std::marker::PhantomData<T>,
}

macro_rules! found {
    ($($method:ident: $ty:ty => $kind:expr),* $(,)?) => {
        $(fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            Ok(Nested::Bad(format!("{} {value}", $kind)))
        })*
    };
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<T> {
    type Value = Nested<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table or an array of tables")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match self.shape {
            Shape::Table => {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Nested::Ok)
            }
            Shape::List => {
                // Read to its end (as values, so its keys are not reported as unknown).
                while map.next_entry::<String, toml::Value>()?.is_some() {}
                Ok(Nested::Bad("a table".into()))
            }
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        match self.shape {
            Shape::List => {
                T::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Nested::Ok)
            }
            Shape::Table => {
                while seq.next_element::<toml::Value>()?.is_some() {}
                Ok(Nested::Bad("a list".into()))
            }
        }
    }
    found! {
        visit_bool: bool => "the boolean",
        visit_i64: i64 => "the integer",
        visit_u64: u64 => "the integer",
        visit_f64: f64 => "the number",
        visit_str: &str => "the string",
    }
}

/// A table (`[section]` or `key = { ... }`).
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor {
            shape: Shape::Table,
            marker: std::marker::PhantomData,
        })
    }
}

/// A list of tables (`[[flows]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct NestedList<T>(pub Nested<Vec<T>>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NestedList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ShapeVisitor {
                shape: Shape::List,
                marker: std::marker::PhantomData,
            })
            .map(NestedList)
    }
}

type Leaf<T> = Option<Checked<T>>;
type Section<T> = Option<Nested<T>>;

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    pub agent: Section<RawAgent>,
    pub kinesis: Section<RawService>,
    pub firehose: Section<RawService>,
    pub flows: Option<NestedList<Nested<RawFlow>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAgent {
    pub state_dir: Leaf<String>,
    pub max_in_flight_bytes: Leaf<i64>,
    pub shutdown_grace_period_secs: Leaf<i64>,
    pub metrics_listen: Leaf<String>,
    pub ready_after_failing_secs: Leaf<i64>,
    pub scan_interval_ms: Leaf<i64>,
    pub on_corrupt_checkpoint: Leaf<String>,
    pub log_format: Leaf<String>,
}

/// `[kinesis]`, `[firehose]` and a flow's `[flows.kinesis]`/`[flows.firehose]`: where
/// and as whom to call.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawService {
    pub region: Leaf<String>,
    pub endpoint_url: Leaf<String>,
    pub profile: Leaf<String>,
    pub role_arn: Leaf<String>,
    pub external_id: Leaf<String>,
    pub sts_endpoint_url: Leaf<String>,
    pub sts_region: Leaf<String>,
    pub ca_file: Leaf<String>,
    pub connect_timeout_ms: Leaf<i64>,
    pub request_timeout_ms: Leaf<i64>,
    pub retry_base_ms: Leaf<i64>,
    pub retry_max_ms: Leaf<i64>,
    pub body_format: Leaf<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawFlow {
    pub name: Leaf<String>,
    pub include: Leaf<Vec<String>>,
    pub exclude: Leaf<Vec<String>>,
    pub stream: Leaf<String>,
    pub delivery_stream: Leaf<String>,
    pub start_at: Leaf<String>,
    pub max_record_bytes: Leaf<i64>,
    pub oversize: Leaf<String>,
    pub split_marker: Leaf<String>,
    pub multiline_start: Leaf<String>,
    pub multiline_timeout_ms: Leaf<i64>,
    pub skip_header_lines: Leaf<i64>,
    pub flush_partial_line_after_ms: Leaf<i64>,
    pub transforms: Leaf<Vec<Checked<RawTransform>>>,
    pub partition_key: Leaf<RawPartitionKey>,
    pub aggregation: Section<RawAggregation>,
    pub throttle: Section<RawThrottle>,
    pub kinesis: Section<RawService>,
    pub firehose: Section<RawService>,
}

/// One step of `transforms`: a name (`"single_line"`, `"log_to_json:syslog"`) or a
/// table with options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawTransform {
    Named(String),
    Table(RawTransformTable),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawTransformTable {
    CsvToJson(RawCsv),
    AddMetadata(RawMetadata),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCsv {
    pub field_names: Option<Vec<String>>,
    pub delimiter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetadata {
    pub key: Option<String>,
}

/// `partition_key`: a strategy's name, or a table naming one with its argument.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawPartitionKey {
    Named(KeyName),
    Table(RawKeyTable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyName {
    Random,
    LineHash,
    Hostname,
    File,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawKeyTable {
    Fixed(String),
    Regex(String),
    JsonPointer(String),
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAggregation {
    pub enabled: Leaf<bool>,
    pub max_bytes: Leaf<i64>,
    pub max_records: Leaf<i64>,
    pub linger_ms: Leaf<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawThrottle {
    pub enabled: Leaf<bool>,
    pub records_per_second_per_shard: Leaf<i64>,
    pub bytes_per_second_per_shard: Leaf<i64>,
    pub records_per_second: Leaf<i64>,
    pub bytes_per_second: Leaf<i64>,
    pub share: Leaf<f64>,
    pub adaptive: Leaf<bool>,
}

/// The keys a struct of the raw mirror accepts, read from its `Deserialize` impl (so
/// the list cannot drift from the parser): for suggestions and the example's test.
pub fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields found")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

/// The sections of the file, by path (`[]` for any element of an array), and the keys
/// each accepts.
pub fn sections() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("", keys_of::<RawConfig>()),
        ("agent", keys_of::<RawAgent>()),
        ("kinesis", keys_of::<RawService>()),
        ("firehose", keys_of::<RawService>()),
        ("flows[]", keys_of::<RawFlow>()),
        ("flows[].aggregation", keys_of::<RawAggregation>()),
        ("flows[].throttle", keys_of::<RawThrottle>()),
        ("flows[].kinesis", keys_of::<RawService>()),
        ("flows[].firehose", keys_of::<RawService>()),
    ]
}
