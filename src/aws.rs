//! Building AWS clients from `[kinesis]` and `[firehose]` settings, and saying in one line what went
//! wrong with a call.
//!
//! Credentials and region come from the SDK's default chain (environment, profile,
//! web identity, container, IMDS) unless the config names a profile or a role to
//! assume. `endpoint_url` applies to Kinesis only: the AssumeRole call goes to
//! `sts_endpoint_url`, or the regional STS endpoint. Against a loopback endpoint (the
//! bundled shard server) with no credentials configured, static placeholder
//! credentials are used, since a server without a credentials file does not check them.

use std::path::PathBuf;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{Credentials, Region};

use crate::config::KinesisConfig;

/// What the client is for, which decides its retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// PutRecords: the producer retries per entry itself, so the SDK must not retry.
    Producer,
    /// Reads and control-plane calls: the SDK's standard retries.
    General,
}

/// Why a client could not be built (an operator must fix the config or the file).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA bundle {} (ca_file): {source}", path.display())]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA bundle {} (ca_file) holds no PEM certificate", path.display())]
    CaEmpty { path: PathBuf },
}

fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.starts_with("127.") || endpoint.contains("://[::1]")
}

/// An HTTPS client that trusts `ca_file` besides the system's roots.
fn http_client(
    settings: &KinesisConfig,
) -> Result<Option<aws_sdk_kinesis::config::SharedHttpClient>, ClientError> {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let Some(path) = &settings.ca_file else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
        path: path.clone(),
        source,
    })?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(ClientError::CaEmpty { path: path.clone() });
    }
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::default().with_pem_certificate(pem))
        .build()
        .map_err(|_| ClientError::CaEmpty { path: path.clone() })?;
    Ok(Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https(),
    ))
}

/// The SDK settings every client of one `[kinesis]` section shares: region,
/// credentials (the assumed role's when `role_arn` is set), timeouts, HTTP client.
/// `endpoint_url` is not in it: it is the service's own.
pub async fn sdk_config(settings: &KinesisConfig) -> Result<aws_config::SdkConfig, ClientError> {
    let http = http_client(settings)?;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(settings.connect_timeout)
        .operation_attempt_timeout(settings.request_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(http) = &http {
        loader = loader.http_client(http.clone());
    }
    let local = settings.endpoint_url.as_deref().is_some_and(is_loopback);
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    let no_credentials_configured = settings.profile.is_none()
        && settings.role_arn.is_none()
        && std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
        && std::env::var_os("AWS_PROFILE").is_none();
    if local && no_credentials_configured {
        loader = loader.credentials_provider(Credentials::new(
            "shardcar-local",
            "shardcar-local",
            None,
            None,
            "shardcar-local",
        ));
    }
    let mut config = loader.load().await;
    if config.region().is_none() && local {
        // A local server ignores the region, but the signer needs one.
        config = config.to_builder().region(Region::new("us-east-1")).build();
    }
    if let Some(role_arn) = &settings.role_arn {
        // AssumeRole goes to STS (its own endpoint and region if set), signed with the
        // chain's credentials; never to the Kinesis endpoint.
        let mut sts = config.to_builder();
        sts.set_endpoint_url(settings.sts_endpoint_url.clone());
        if let Some(region) = settings.sts_region.as_ref().or(settings.region.as_ref()) {
            sts.set_region(Some(Region::new(region.clone())));
        }
        let sts = sts.build();
        let mut role =
            aws_config::sts::AssumeRoleProvider::builder(role_arn).session_name("shardcar");
        if let Some(external_id) = &settings.external_id {
            role = role.external_id(external_id);
        }
        let provider = role.configure(&sts).build().await;
        config = config
            .to_builder()
            .credentials_provider(aws_sdk_kinesis::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build();
    }
    Ok(config)
}

/// Builds a Kinesis client; `settings` unset fields fall back to the default chain.
pub async fn kinesis_client(
    settings: &KinesisConfig,
    purpose: Purpose,
) -> Result<aws_sdk_kinesis::Client, ClientError> {
    let sdk_config = sdk_config(settings).await?;
    let mut builder = aws_sdk_kinesis::config::Builder::from(&sdk_config);
    if let Some(endpoint) = &settings.endpoint_url {
        builder = builder.endpoint_url(endpoint);
    }
    if purpose == Purpose::Producer {
        builder = builder.retry_config(RetryConfig::disabled());
    }
    Ok(aws_sdk_kinesis::Client::from_conf(builder.build()))
}

/// Builds a Firehose client from a `[firehose]` section, as [`kinesis_client`] does.
pub async fn firehose_client(
    settings: &KinesisConfig,
    purpose: Purpose,
) -> Result<aws_sdk_firehose::Client, ClientError> {
    let sdk_config = sdk_config(settings).await?;
    let mut builder = aws_sdk_firehose::config::Builder::from(&sdk_config);
    if let Some(endpoint) = &settings.endpoint_url {
        builder = builder.endpoint_url(endpoint);
    }
    if purpose == Purpose::Producer {
        builder = builder.retry_config(RetryConfig::disabled());
    }
    Ok(aws_sdk_firehose::Client::from_conf(builder.build()))
}

/// Where the credentials come from, for a message about refused or missing ones.
pub fn credentials_source(settings: &KinesisConfig) -> String {
    let chain = match &settings.profile {
        Some(profile) => format!(
            "profile \"{profile}\" (in {}, {})",
            std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| "~/.aws/config".into()),
            std::env::var("AWS_SHARED_CREDENTIALS_FILE")
                .unwrap_or_else(|_| "~/.aws/credentials".into())
        ),
        None => "the default chain: environment (AWS_ACCESS_KEY_ID), profile (AWS_PROFILE or \"default\" in ~/.aws/config and ~/.aws/credentials), web identity (AWS_WEB_IDENTITY_TOKEN_FILE), container credentials (ECS, EKS Pod Identity), EC2 instance metadata".to_owned(),
    };
    match &settings.role_arn {
        Some(role) => format!("role {role}, assumed with {chain}"),
        None => chain,
    }
}

/// Whether a profile the config names exists in the AWS files (a typo otherwise shows
/// up only as a failed call, reported by the last provider of the chain tried).
pub fn profile_exists(profile: &str) -> bool {
    let home = std::env::var("HOME").unwrap_or_default();
    let files = [
        std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| format!("{home}/.aws/config")),
        std::env::var("AWS_SHARED_CREDENTIALS_FILE")
            .unwrap_or_else(|_| format!("{home}/.aws/credentials")),
    ];
    files.iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().any(|line| {
                let header = line
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim();
                line.trim().starts_with('[')
                    && (header == profile
                        || header.strip_prefix("profile").map(str::trim) == Some(profile))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_endpoints_are_recognised() {
        assert!(is_loopback("http://127.0.0.1:4567"));
        assert!(is_loopback("http://localhost:4567/"));
        assert!(is_loopback("http://[::1]:4567"));
        assert!(!is_loopback("https://kinesis.us-east-1.amazonaws.com"));
        assert!(!is_loopback("http://10.0.0.5:4567"));
    }
}

/// What kind of trouble a call to AWS ran into, which decides what an operator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trouble {
    /// No answer: connection refused, DNS, TLS, timeouts.
    Unreachable,
    /// No credentials, or the service refused them or the permissions.
    Credentials,
    /// The stream (or delivery stream) does not exist.
    StreamMissing,
    /// Anything else the service said.
    Service,
}

impl Trouble {
    /// What to do about it, in a few words for the log line.
    pub fn advice(self) -> &'static str {
        match self {
            Trouble::Unreachable => {
                "check endpoint_url and region, the network, and HTTPS_PROXY/NO_PROXY"
            }
            Trouble::Credentials => {
                "check the credentials (environment, profile, role_arn) and that the IAM policy allows the call"
            }
            Trouble::StreamMissing => "create the stream, or fix the flow's stream name and region",
            Trouble::Service => "see the error; the call is retried",
        }
    }

    pub const ALL: [Trouble; 4] = [
        Trouble::Unreachable,
        Trouble::Credentials,
        Trouble::StreamMissing,
        Trouble::Service,
    ];

    /// The value of a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Trouble::Unreachable => "unreachable",
            Trouble::Credentials => "credentials",
            Trouble::StreamMissing => "stream_missing",
            Trouble::Service => "service",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trouble::Unreachable => "endpoint unreachable",
            Trouble::Credentials => "credentials refused",
            Trouble::StreamMissing => "stream missing",
            Trouble::Service => "service error",
        }
    }
}

/// One failed call, summed up in one line: its error code and the innermost message
/// (the SDK's own `Display` nests five levels of context, and `Debug` is kilobytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub trouble: Trouble,
    pub code: String,
    pub message: String,
}

const CREDENTIAL_CODES: &[&str] = &[
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

impl Failure {
    pub fn of<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> Failure
    where
        E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        use aws_sdk_kinesis::error::SdkError;
        let innermost = innermost_message(error);
        match error {
            SdkError::ServiceError(service) => {
                let code = service.err().code().unwrap_or("Unknown").to_owned();
                let message = one_line(service.err().message().unwrap_or_default());
                let trouble = if code == "ResourceNotFoundException" {
                    Trouble::StreamMissing
                } else if CREDENTIAL_CODES.contains(&code.as_str()) {
                    Trouble::Credentials
                } else {
                    Trouble::Service
                };
                Failure {
                    trouble,
                    code,
                    message,
                }
            }
            SdkError::TimeoutError(_) => Failure {
                trouble: Trouble::Unreachable,
                code: "Timeout".into(),
                message: innermost,
            },
            _ if innermost.contains("credentials") || innermost.contains("Credentials") => {
                Failure {
                    trouble: Trouble::Credentials,
                    code: "NoCredentials".into(),
                    message: innermost,
                }
            }
            SdkError::DispatchFailure(_) => Failure {
                trouble: Trouble::Unreachable,
                code: "ConnectionError".into(),
                message: innermost,
            },
            SdkError::ResponseError(_) => Failure {
                trouble: Trouble::Service,
                code: "ResponseError".into(),
                message: innermost,
            },
            _ => Failure {
                trouble: Trouble::Service,
                code: "RequestFailed".into(),
                message: innermost,
            },
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// The message of the deepest error in the chain, where the cause is named
/// ("Connection refused (os error 111)", "the credentials provider was not enabled"),
/// on one line.
fn innermost_message(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() {
            message = text;
        }
        source = cause.source();
    }
    one_line(&message)
}

/// Messages from the SDK can span lines (a list of the providers tried); a log event
/// is one line.
fn one_line(text: &str) -> String {
    let mut joined = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !joined.is_empty() {
            joined.push_str(if joined.ends_with(':') { " " } else { "; " });
        }
        joined.push_str(line);
    }
    joined
}
