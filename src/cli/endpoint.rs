//! Where the commands that talk to Kinesis send their calls.

use clap::Args;

use crate::aws::{Purpose, kinesis_client};
use crate::config::KinesisConfig;

/// `--endpoint-url`, `--region`, `--profile`, with the AWS environment variables as defaults.
#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// A Kinesis-compatible endpoint, such as a `shardcar server` (http://127.0.0.1:4567).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// AWS region (else AWS_REGION or the profile's).
    #[arg(long)]
    region: Option<String>,
    /// Named AWS profile.
    #[arg(long)]
    profile: Option<String>,
    /// Trust the CA certificates in this PEM file for HTTPS (a private CA, or a
    /// `shardcar server --tls-self-signed` one), as `ca_file` does for the agent.
    #[arg(long, env = "AWS_CA_BUNDLE", value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
}

impl EndpointArgs {
    pub async fn client(&self) -> anyhow::Result<aws_sdk_kinesis::Client> {
        let settings = KinesisConfig {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            profile: self.profile.clone(),
            ca_file: self.ca_file.clone(),
            ..KinesisConfig::default()
        };
        Ok(kinesis_client(&settings, Purpose::General).await?)
    }
}
