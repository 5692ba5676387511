//! shardcar: a Kinesis agent that tails files, aggregates records per predicted shard
//! and throttles per shard, plus a Kinesis-compatible shard server to run it against.
//!
//! Crate map:
//! - [`kinesis`]: the Kinesis domain with no I/O (hash keys, shard maps, limits, names,
//!   the KPL aggregated-record format). Everything else builds on it.
//! - [`config`]: `agent.toml`, parsed into a raw mirror and validated into [`config::Config`].
//! - [`cli`]: the `shardcar` command line; `main.rs` only calls [`cli::main`].

pub mod agent;
pub mod aws;
pub mod cli;
pub mod config;
pub mod consume;
pub mod demo;
pub mod kinesis;
pub mod producer;
pub mod server;
pub mod time;
