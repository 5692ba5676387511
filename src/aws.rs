//! Building the `aws-sdk-kinesis` client from `[kinesis]` settings.
//!
//! Credentials and region come from the SDK's default chain (environment, profile,
//! web identity, container, IMDS) unless the config names a profile or a role to
//! assume. Against a loopback endpoint (the bundled shard server) with no credentials
//! configured, static placeholder credentials are used, since the server does not check them.

use std::time::Duration;

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

fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "localhost" || host.starts_with("127.") || endpoint.contains("://[::1]")
}

/// Builds a client; `settings` unset fields fall back to the default chain.
pub async fn kinesis_client(settings: &KinesisConfig, purpose: Purpose) -> aws_sdk_kinesis::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    let local = settings.endpoint_url.as_deref().is_some_and(is_loopback);
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let no_credentials_configured = settings.profile.is_none()
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
    let sdk_config = loader.load().await;
    let mut builder = aws_sdk_kinesis::config::Builder::from(&sdk_config);
    if sdk_config.region().is_none() && local {
        // A local server ignores the region, but the signer needs one.
        builder = builder.region(Region::new("us-east-1"));
    }
    if let Some(role_arn) = &settings.role_arn {
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name("shardcar")
            .configure(&sdk_config)
            .build()
            .await;
        builder = builder.credentials_provider(provider);
    }
    builder = builder.timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .build(),
    );
    if purpose == Purpose::Producer {
        builder = builder.retry_config(RetryConfig::disabled());
    }
    aws_sdk_kinesis::Client::from_conf(builder.build())
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
