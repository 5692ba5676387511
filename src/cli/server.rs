//! `shardcar server`: the bundled Kinesis-compatible server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::kinesis::StreamName;
use crate::server::limits::FaultInjection;
use crate::server::{Server, ServerConfig, StoreConfig};

/// Run a Kinesis-compatible server (any AWS SDK or CLI works with --endpoint-url).
///
/// Durability with --data-dir: a PutRecord(s) response is sent only after its records
/// were written to the OS, so they survive the server being killed (even kill -9);
/// shard files are fsynced every second, so a power loss can take the last second.
/// Without --data-dir everything is in memory.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:4567")]
    listen: SocketAddr,
    /// Keep streams and records in this directory across restarts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The master key (64 hex digits) that wraps the data keys of encrypted streams'
    /// records (StartStreamEncryption). Default: DATA_DIR/master.key, created with mode
    /// 0600 when absent. A missing or wrong key for a data directory that holds
    /// encrypted records is an error at start.
    #[arg(long, value_name = "FILE", requires = "data_dir")]
    kms_key_file: Option<PathBuf>,

    /// Deliver Firehose delivery streams' objects here: the bucket `arn:aws:s3:::NAME`
    /// is the directory DIR/NAME, an object a file at its Firehose key, written whole
    /// (temporary name, fsync, rename). Without it CreateDeliveryStream is refused
    #[arg(long, value_name = "DIR")]
    s3_dir: Option<PathBuf>,
    /// Where a delivery stream reading a Kinesis stream (KinesisStreamAsSource) starts
    /// in the shards open when it is created: their start, or their end. Shards that
    /// open later are always read from their start.
    #[arg(long, value_name = "POSITION", default_value = "trim-horizon", value_parser = ["trim-horizon", "latest"])]
    firehose_source_start: String,
    /// Create this stream (ACTIVE at once) at start if it does not exist; NAME or NAME:SHARDS.
    #[arg(long, value_name = "NAME[:SHARDS]")]
    create_stream: Vec<String>,
    /// Do not enforce per-shard throughput limits (to measure raw speed).
    #[arg(long)]
    no_limits: bool,
    /// How long streams stay CREATING, UPDATING or DELETING, in milliseconds.
    #[arg(long, default_value_t = 100)]
    create_delay_ms: u64,
    /// Fail this share (0 to 1) of PutRecords entries as ProvisionedThroughputExceededException.
    #[arg(long, default_value_t = 0.0)]
    fault_throttle_ratio: f64,
    /// Fail this share (0 to 1) of PutRecords entries as InternalFailure.
    #[arg(long, default_value_t = 0.0)]
    fault_internal_ratio: f64,
    /// Acknowledge this many records without storing them (tests of loss detection).
    #[arg(long, default_value_t = 0, hide = true)]
    fault_drop_records: u64,
    /// The home region: the one `--create-stream` creates in and unsigned requests
    /// use. Each request works in the region its credential scope names (one namespace
    /// of streams per region, as on AWS).
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    region: String,
    /// The account named in ARNs, messages and the audit trail (12 digits).
    #[arg(long, default_value = "000000000000", value_parser = parse_account)]
    account_id: String,
    /// Most open shards across all streams (the account quota).
    #[arg(long, default_value_t = 500)]
    shard_limit: u32,
    /// Serve HTTPS with this PEM certificate chain (server certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a local CA and a certificate for 127.0.0.1 and localhost, both
    /// written to DIR (ca.pem, server.pem, server.key) at every start; trust DIR/ca.pem
    /// (AWS_CA_BUNDLE, the agent's ca_file).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: Option<PathBuf>,
    /// Verify every request's SigV4 signature against these identities, one per line:
    /// ACCESS_KEY_ID SECRET_ACCESS_KEY [ACCOUNT_ID]. Without it no signature is checked.
    #[arg(long, value_name = "FILE")]
    credentials_file: Option<PathBuf>,
    /// Authorize every call with IAM-style policies: a JSON object mapping access key
    /// ids to {"UserName", "Policies": [policy documents]}, evaluated with the streams'
    /// resource policies (PutResourcePolicy). Without it every call is allowed.
    #[arg(long, value_name = "FILE")]
    policy_file: Option<PathBuf>,
    /// Append one JSON object per API call to FILE, in CloudTrail's shape (fsynced
    /// every second).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Record data events too (PutRecord(s), GetRecords, GetShardIterator,
    /// SubscribeToShard), as CloudTrail does when asked.
    #[arg(long, requires = "audit_log")]
    audit_data_events: bool,
    /// Most connections open at once; at the limit the connection idle longest is
    /// closed to make room, and when none is idle a new one is answered 503 and closed.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Close an HTTP/1.1 connection that sends no complete request head for this long
    /// (idle between requests, or headers that trickle in), in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout_secs: u64,
    /// Answer 408 and close when a request body has not arrived whole within this long,
    /// in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    body_timeout_secs: u64,
}

fn parse_account(text: &str) -> std::result::Result<String, String> {
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not an AWS account id: write 12 digits"
        ))
    }
}

fn parse_stream(spec: &str) -> Result<(String, u32)> {
    let (name, shards) = match spec.split_once(':') {
        Some((name, shards)) => (
            name,
            shards
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .with_context(|| {
                    format!("--create-stream {spec:?}: SHARDS must be a number from 1 to 100000")
                })?,
        ),
        None => (spec, 1),
    };
    StreamName::new(name).with_context(|| format!("--create-stream {spec:?}"))?;
    Ok((name.to_owned(), shards))
}

pub fn run(args: ServerArgs) -> Result<()> {
    for (flag, ratio) in [
        ("--fault-throttle-ratio", args.fault_throttle_ratio),
        ("--fault-internal-ratio", args.fault_internal_ratio),
    ] {
        if !(0.0..=1.0).contains(&ratio) {
            bail!("{flag} {ratio} must be between 0 and 1");
        }
    }
    let mut ca = None;
    let tls = match (&args.tls_cert, &args.tls_key, &args.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(crate::server::tls::from_files(cert, key)?),
        (_, _, Some(dir)) => {
            let written = crate::server::tls::self_signed(dir)?;
            let config = crate::server::tls::from_files(&written.certificate, &written.key)?;
            ca = Some(written.ca);
            Some(config)
        }
        _ => None,
    };
    let identities = match &args.credentials_file {
        Some(path) => Some(std::sync::Arc::new(crate::server::auth::Identities::load(
            path,
        )?)),
        None => None,
    };
    let policies = match &args.policy_file {
        Some(path) => {
            if identities.is_none() {
                tracing::warn!(
                    "--policy-file without --credentials-file: callers are who their unchecked Authorization header claims"
                );
            }
            Some(std::sync::Arc::new(crate::server::policy::Policies::load(
                path,
            )?))
        }
        None => None,
    };
    let audit = match &args.audit_log {
        Some(path) => Some(std::sync::Arc::new(crate::server::audit::AuditLog::open(
            path,
            args.audit_data_events,
            &args.region,
            &args.account_id,
        )?)),
        None => None,
    };
    let config = ServerConfig {
        store: StoreConfig {
            region: args.region,
            account_id: args.account_id,
            status_delay_ms: args.create_delay_ms as i64,
            limits: !args.no_limits,
            faults: FaultInjection {
                throttle_ratio: args.fault_throttle_ratio,
                internal_ratio: args.fault_internal_ratio,
                drop_records: args.fault_drop_records,
            },
            shard_limit: args.shard_limit,
        },
        data_dir: args.data_dir,
        kms_key_file: args.kms_key_file,
        s3_dir: args.s3_dir,
        firehose_from_latest: args.firehose_source_start == "latest",
        create_streams: args
            .create_stream
            .iter()
            .map(|s| parse_stream(s))
            .collect::<Result<_>>()?,
        fsync_interval: Duration::from_secs(1),
        tls,
        max_connections: args.max_connections as usize,
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        body_timeout: Duration::from_secs(args.body_timeout_secs),
        identities,
        policies,
        audit,
        ..ServerConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(args.listen, config).await?;
        // One write, errors ignored: whoever started the server may read the first
        // line and close the pipe.
        let mut banner = format!("listening on {}\n", server.local_addr());
        if let Some(ca) = &ca {
            banner.push_str(&format!("CA certificate: {}\n", ca.display()));
            tracing::info!(ca = %ca.display(), "serving HTTPS with a self-signed CA");
        }
        {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(banner.as_bytes());
            let _ = stdout.flush();
        }
        tracing::info!(listen = %server.local_addr(), limits = !args.no_limits, "shard server ready");
        super::signals::terminated().await;
        tracing::info!("stopping");
        server.shutdown().await;
        Ok(())
    })
}
