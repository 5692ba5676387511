//! `agent.toml`: read, parsed into the raw mirror ([`raw`]), then validated into
//! [`Config`], the only type the rest of the program sees.
//!
//! Validation reports every problem at once, each naming the key, the bad value and
//! what would be accepted, because an operator fixing a config on a host should not
//! have to iterate one error at a time. `run` and `check-config` share this code.
//!
//! Here: the validated types and their defaults (as constants). `raw`: the serde
//! mirror; `checker`: problem collection and key paths; `validate`: the agent and
//! service sections; `flow`: the flows. Not here: turning a flow into a producer's
//! settings (`agent::producer_config`), or building AWS clients (`aws`).

mod checker;
mod flow;
pub mod raw;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::kinesis::StreamName;

/// Where `run` and `check-config` look when no `-c` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/shardcar/agent.toml";

/// A validated agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub agent: AgentConfig,
    pub kinesis: KinesisConfig,
    /// `[firehose]`: the same keys as `[kinesis]`, for flows to delivery streams.
    pub firehose: KinesisConfig,
    pub flows: Vec<FlowConfig>,
}

/// `[agent]`: process-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub state_dir: PathBuf,
    pub max_in_flight_bytes: usize,
    pub shutdown_grace_period: Duration,
    pub metrics_listen: Option<SocketAddr>,
    /// How long a flow's calls may fail before `/ready` says it is not ready.
    pub ready_after_failing: Duration,
    /// How often discovery lists the files again (notify events also trigger it).
    pub scan_interval: Duration,
    pub on_corrupt_checkpoint: OnCorruptCheckpoint,
    pub log_format: LogOutput,
}

impl AgentConfig {
    pub const DEFAULT_STATE_DIR: &str = "/var/lib/shardcar";
    /// Memory for records read but not yet acknowledged, across all flows.
    pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;
    pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(10);
    pub const DEFAULT_READY_AFTER_FAILING: Duration = Duration::from_secs(30);
    pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(1);
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogOutput {
    /// One line of text per event (colour only at a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// How PutRecords bodies are written. CBOR (what the AWS SDK for Java sends) carries
/// record data as raw bytes; JSON (what the other SDKs send) as base64, which costs a
/// pass over every byte and a third more bytes to sign and encrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    #[default]
    Cbor,
    Json,
}

/// What to do when the checkpoint file cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCorruptCheckpoint {
    /// Refuse to start and say so (the default): an operator decides.
    Refuse,
    /// Move the file aside and start without checkpoints.
    Reset,
}

/// `[kinesis]` (and a flow's `[flows.kinesis]` override): where and as whom to send.
/// Unset values fall back to the AWS SDK's default chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    /// Passed to AssumeRole when the role's trust policy asks for one.
    pub external_id: Option<String>,
    /// Where AssumeRole goes: the regional STS endpoint unless set (never the
    /// Kinesis `endpoint_url`, which would break VPC endpoints).
    pub sts_endpoint_url: Option<String>,
    pub sts_region: Option<String>,
    /// A PEM bundle of CA certificates for HTTPS endpoints and proxies, trusted in
    /// addition to the system's.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Longest a single call attempt may take.
    pub request_timeout: Duration,
    /// Retry backoff of failed calls: exponential from base to max, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// The PutRecords body format.
    pub body_format: BodyFormat,
}

impl KinesisConfig {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(100);
    pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);
}

impl Default for KinesisConfig {
    fn default() -> Self {
        KinesisConfig {
            region: None,
            endpoint_url: None,
            profile: None,
            role_arn: None,
            external_id: None,
            sts_endpoint_url: None,
            sts_region: None,
            ca_file: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            retry_base: Self::DEFAULT_RETRY_BASE,
            retry_max: Self::DEFAULT_RETRY_MAX,
            body_format: BodyFormat::Cbor,
        }
    }
}

/// Where a flow's records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Kinesis data stream (`stream = "..."`).
    Stream(StreamName),
    /// A Firehose delivery stream (`delivery_stream = "..."`): lines keep their
    /// newline and are packed, several to a Firehose record, since the objects Firehose
    /// writes are the concatenation of its records.
    DeliveryStream(StreamName),
}

impl Destination {
    /// The stream's or delivery stream's name.
    pub fn name(&self) -> &str {
        match self {
            Destination::Stream(name) | Destination::DeliveryStream(name) => name.as_str(),
        }
    }

    pub fn is_firehose(&self) -> bool {
        matches!(self, Destination::DeliveryStream(_))
    }

    /// The service, for messages.
    pub fn service(&self) -> &'static str {
        match self {
            Destination::Stream(_) => "Kinesis",
            Destination::DeliveryStream(_) => "Firehose",
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Stream(name) => write!(f, "stream {name}"),
            Destination::DeliveryStream(name) => write!(f, "delivery stream {name}"),
        }
    }
}

/// One `[[flows]]` table: a set of files shipped to one stream or delivery stream.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowConfig {
    pub name: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub destination: Destination,
    pub start_at: StartAt,
    pub max_record_bytes: usize,
    pub oversize: Oversize,
    /// Appended to every piece of a split record but the last, so a consumer can tell
    /// a piece from a line and join the pieces (which share one partition key).
    pub split_marker: String,
    /// A line matching this starts a new record; other lines join the current one.
    pub multiline_start: Option<BytesPattern>,
    pub multiline_timeout: Duration,
    pub skip_header_lines: u64,
    /// A last line without a newline is sent after the file was idle this long.
    pub flush_partial_line_after: Duration,
    pub transforms: Vec<Transform>,
    pub partition_key: PartitionKeyStrategy,
    pub aggregation: AggregationConfig,
    pub throttle: ThrottleConfig,
    /// The service's settings: the global `[kinesis]` (or, for a delivery stream,
    /// `[firehose]`) section with this flow's overrides applied.
    pub service: KinesisConfig,
}

impl FlowConfig {
    /// The 1 MiB every stream takes, less room for the longest partition key.
    pub const DEFAULT_MAX_RECORD_BYTES: usize = crate::kinesis::limits::DEFAULT_MAX_RECORD_BYTES
        - crate::kinesis::limits::MAX_PARTITION_KEY_CHARS;
    pub const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);
    pub const DEFAULT_FLUSH_PARTIAL_LINE_AFTER: Duration = Duration::from_secs(5);
    /// A Firehose record's limit (1,000 KiB), less the room the Kinesis default keeps
    /// for a partition key, so one line never outgrows its record.
    pub const DEFAULT_FIREHOSE_MAX_RECORD_BYTES: usize =
        crate::kinesis::limits::FIREHOSE_MAX_RECORD_BYTES
            - crate::kinesis::limits::MAX_PARTITION_KEY_CHARS;
}

/// Where to start reading a file the agent has never seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Start,
    End,
}

/// A regex over raw bytes (log lines need not be UTF-8), compared by its source.
#[derive(Debug, Clone)]
pub struct BytesPattern(pub regex::bytes::Regex);

impl PartialEq for BytesPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// What ends every piece of a split record but the last, unless configured.
pub const DEFAULT_SPLIT_MARKER: &str = "<<split>>";

/// Where `add_metadata` puts its object unless told otherwise.
pub const DEFAULT_METADATA_KEY: &str = "metadata";

/// One step of a flow's transform chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    /// Joins a multi-line record into one line (newlines and surrounding blanks removed).
    SingleLine,
    /// Parses a CSV line into a JSON object with these field names.
    CsvToJson {
        field_names: Vec<String>,
        delimiter: u8,
    },
    /// Parses a known log format into a JSON object.
    LogToJson(LogFormat),
    /// Adds an object of host, file, offset and timestamp under `key` (a text record
    /// becomes `{"message": ..., key: {...}}`); a record that already has `key` keeps
    /// its own field and the step counts as failed, so a parsed field is never
    /// overwritten.
    AddMetadata { key: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    CommonApache,
    CombinedApache,
    ApacheError,
    Syslog,
    Rfc5424,
}

/// What to do with a record longer than `max_record_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    Split,
    Truncate,
    Skip,
}

/// How a record's partition key is chosen.
#[derive(Debug, Clone)]
pub enum PartitionKeyStrategy {
    Random,
    LineHash,
    Hostname,
    File,
    Fixed(String),
    /// The first capture group of the regex.
    Regex(regex::Regex),
    /// An RFC 6901 pointer into the record parsed as JSON.
    JsonPointer(String),
}

impl PartialEq for PartitionKeyStrategy {
    fn eq(&self, other: &Self) -> bool {
        use PartitionKeyStrategy::*;
        match (self, other) {
            (Regex(a), Regex(b)) => a.as_str() == b.as_str(),
            (Fixed(a), Fixed(b)) | (JsonPointer(a), JsonPointer(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// How records are packed into one service record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackFormat {
    /// A KPL aggregate (protobuf with an MD5 trailer), for Kinesis streams.
    Kpl,
    /// The records' data end to end, for Firehose: its objects are the concatenation
    /// of its records anyway, so packing changes nothing a reader sees.
    Concatenated,
}

/// `[flows.aggregation]`: KPL aggregation per predicted shard, or for a delivery
/// stream, packing of lines into Firehose records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregationConfig {
    pub enabled: bool,
    pub format: PackFormat,
    pub max_bytes: usize,
    pub max_records: usize,
    pub linger: Duration,
}

impl AggregationConfig {
    /// The KPL's defaults: 51,200-byte aggregates, 100 ms of linger.
    pub const DEFAULT: AggregationConfig = AggregationConfig {
        enabled: true,
        format: PackFormat::Kpl,
        max_bytes: 51_200,
        max_records: 10_000,
        linger: Duration::from_millis(100),
    };

    /// For delivery streams: records as close to Firehose's 1,000 KiB limit as a
    /// second's lines fill (Firehose bills each record rounded up to 5 KB, and buffers
    /// for a minute or more before delivering, so a second of linger costs nothing a
    /// reader sees).
    pub const FIREHOSE: AggregationConfig = AggregationConfig {
        enabled: true,
        format: PackFormat::Concatenated,
        max_bytes: crate::kinesis::limits::FIREHOSE_MAX_RECORD_BYTES,
        max_records: 100_000,
        linger: Duration::from_secs(1),
    };
}

/// `[flows.throttle]`: the per-shard rate this producer allows itself; for a delivery
/// stream, the rate of the whole delivery stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Per shard, or per delivery stream (`records_per_second`).
    pub records_per_second_per_shard: u32,
    /// Per shard, or per delivery stream (`bytes_per_second`).
    pub bytes_per_second_per_shard: u32,
    pub share: f64,
    pub adaptive: bool,
}

impl ThrottleConfig {
    /// A shard's whole write limit, adapted down when the service throttles.
    pub const DEFAULT: ThrottleConfig = ThrottleConfig {
        enabled: true,
        records_per_second_per_shard: crate::kinesis::limits::SHARD_WRITE_RECORDS_PER_SEC as u32,
        bytes_per_second_per_shard: crate::kinesis::limits::SHARD_WRITE_BYTES_PER_SEC as u32,
        share: 1.0,
        adaptive: true,
    };

    /// A delivery stream's default quota as Firehose's API reference states it (5,000
    /// records/s, 5 MiB/s), adapted down when Firehose throttles (some regions grant
    /// 1 MiB/s).
    pub const FIREHOSE: ThrottleConfig = ThrottleConfig {
        enabled: true,
        records_per_second_per_shard: crate::kinesis::limits::FIREHOSE_RECORDS_PER_SEC as u32,
        bytes_per_second_per_shard: crate::kinesis::limits::FIREHOSE_BYTES_PER_SEC as u32,
        share: 1.0,
        adaptive: true,
    };
}

/// One thing wrong with a config: the key, the value found, and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path such as `flows[1].aggregation.linger_ms`.
    pub key: String,
    /// The value as written, or `None` when the key is missing.
    pub value: Option<String>,
    /// What would be accepted, phrased as the fix.
    pub expected: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} = {}: {}", self.key, value, self.expected),
            None => write!(f, "{}: {}", self.key, self.expected),
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} has {} problem{}:\n{}", origin, problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Validates config text; `origin` names it in messages (usually the file path).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        validate::validate(text).map_err(|problems| ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        })
    }
}
