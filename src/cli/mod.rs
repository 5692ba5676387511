//! The `shardcar` command line: parses flags, runs one command, owns exit codes.
//!
//! Library modules return typed errors; this is the one place they become `anyhow`
//! chains and process exit codes (0 ok, 1 runtime failure, 78 bad configuration, so
//! systemd's `RestartPreventExitStatus=78` stops a restart loop on a broken config).
//! Commands hold no logic of their own beyond flags and output: the work is in the
//! library modules.

mod check_config;
mod consume;
mod decode;
mod demo;
mod endpoint;
mod predict;
mod run;
mod server;
mod signals;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, LogOutput};

/// Exit code for a bad configuration (sysexits.h `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "shardcar",
    version,
    about = "A Kinesis agent that aggregates per predicted shard and throttles per shard, with a bundled Kinesis-compatible server."
)]
struct Cli {
    /// How log lines are written to stderr: `text` (colour only at a terminal) or `json`
    /// (one object per line). For `run`, overrides [agent] log_format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogOutput {
    fn from(arg: LogFormatArg) -> LogOutput {
        match arg {
            LogFormatArg::Text => LogOutput::Text,
            LogFormatArg::Json => LogOutput::Json,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    Demo(demo::DemoArgs),
    Run(run::RunArgs),
    Server(Box<server::ServerArgs>),
    Consume(consume::ConsumeArgs),
    Decode(decode::DecodeArgs),
    Predict(predict::PredictArgs),
    CheckConfig(check_config::CheckConfigArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format.map(LogOutput::from);
    // `run` sets its logging up once its config (which may choose the format) is read.
    match &cli.command {
        Command::Run(_) => {}
        // The demo prints its own progress; its components log only problems by default.
        Command::Demo(_) => init_logging("warn", format.unwrap_or_default()),
        _ => init_logging("info", format.unwrap_or_default()),
    }
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Predict(args) => predict::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Server(args) => server::run(*args),
        Command::Run(args) => run::run(args, format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped reading (`| head`) is not a failure of the command.
        Err(error) if closed_stdout(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            exit_code_for(&error)
        }
    }
}

fn closed_stdout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn exit_code_for(error: &anyhow::Error) -> ExitCode {
    // A corrupt checkpoint or an unusable state directory, like a bad config, needs an
    // operator: restarting won't help.
    let needs_operator = |cause: &(dyn std::error::Error + 'static)| {
        cause.is::<ConfigError>()
            // The server's own configuration files.
            || cause.is::<crate::server::policy::PolicyFileError>()
            || cause.is::<crate::server::auth::CredentialsFileError>()
            // A data directory the server cannot open as it is (a missing or wrong
            // master key, unreadable metadata): restarting won't help either.
            || cause
                .downcast_ref::<crate::server::ServerError>()
                .is_some_and(|e| matches!(e, crate::server::ServerError::DataDir { .. }))
            || cause
                .downcast_ref::<crate::agent::AgentError>()
                .is_some_and(crate::agent::AgentError::needs_operator)
    };
    if error.chain().any(needs_operator) {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}

/// Libraries whose own logs stay at WARN unless `RUST_LOG` names them: the AWS SDK
/// and the HTTP stack log every request at INFO and DEBUG.
const QUIET: &[&str] = &[
    "aws_config=warn",
    "aws_runtime=warn",
    "aws_sdk_kinesis=warn",
    "aws_sdk_sts=warn",
    "aws_sdk_sso=warn",
    "aws_sdk_ssooidc=warn",
    "aws_smithy_runtime=warn",
    "aws_smithy_runtime_api=warn",
    "aws_smithy_http_client=warn",
    "aws_smithy_observability=warn",
    "hyper=warn",
    "hyper_util=warn",
    "h2=warn",
    "rustls=warn",
    "notify=warn",
];

/// Never logged, whatever `RUST_LOG` asks: at DEBUG and TRACE these print signed
/// requests, headers and loaded credentials, which carry the access key id.
const NEVER: &[&str] = &[
    "aws_sigv4=off",
    "aws_credential_types=off",
    "aws_config=info",
    "aws_runtime=info",
    "aws_smithy_runtime=info",
    "aws_smithy_runtime_api=info",
    "aws_smithy_http_client=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
];

/// Logs go to stderr, so commands that print JSON lines keep stdout clean. Colour only
/// for a person at a terminal (and never with `NO_COLOR`); journald and files get text.
pub(crate) fn init_logging(default_level: &str, format: LogOutput) {
    use tracing_subscriber::EnvFilter;
    let mut filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(
            std::iter::once(default_level)
                .chain(QUIET.iter().copied())
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    for directive in NEVER {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogOutput::Text => builder.with_ansi(colour).try_init(),
        LogOutput::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
