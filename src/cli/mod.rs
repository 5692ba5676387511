//! The `shardcar` command line: parses flags, runs one command, owns exit codes.
//!
//! Library modules return typed errors; this is the one place they become `anyhow`
//! chains and process exit codes (0 ok, 1 runtime failure, 78 bad configuration, so
//! systemd's `RestartPreventExitStatus=78` stops a restart loop on a broken config).

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

use crate::config::ConfigError;

/// Exit code for a bad configuration (sysexits.h `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "shardcar",
    version,
    about = "A Kinesis agent that aggregates per predicted shard and throttles per shard, with a bundled Kinesis-compatible server."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Demo(demo::DemoArgs),
    Run(run::RunArgs),
    Server(server::ServerArgs),
    Consume(consume::ConsumeArgs),
    Decode(decode::DecodeArgs),
    Predict(predict::PredictArgs),
    CheckConfig(check_config::CheckConfigArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own progress; its components log only problems by default.
    init_logging(if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    });
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Predict(args) => predict::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Server(args) => server::run(args),
        Command::Run(args) => run::run(args),
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

/// Logs go to stderr, so commands that print JSON lines keep stdout clean.
fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour only for a person at a terminal: journald and log files get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}
