//! shardcar: a Kinesis agent that tails files, aggregates records per predicted shard
//! and throttles per shard, plus a Kinesis-compatible shard server to run it against.
//!
//! Crate map, each module with its one job; arrows point the way dependencies go
//! (`agent -> producer -> kinesis`, `server -> kinesis`, never back):
//! - [`kinesis`]: the Kinesis domain with no I/O (hash keys, shard maps, limits, names,
//!   the KPL aggregated-record format). Everything else builds on it.
//! - [`config`]: `agent.toml`, parsed into a raw mirror and validated into
//!   [`config::Config`], the only config type the rest of the program sees.
//! - [`aws`]: building SDK clients from `[kinesis]` settings (region, credentials,
//!   STS, TLS) and naming in one line what went wrong with a call.
//! - [`producer`]: user records in, PutRecords out, one acknowledgement per record;
//!   knows nothing of files.
//! - [`agent`]: flows of files into producers, checkpoints moved only by
//!   acknowledgements, reload and the phased stop; knows nothing of the server.
//! - [`server`]: the Kinesis-compatible shard server (HTTP, actions, store, limits);
//!   knows nothing of the agent or the producer.
//! - [`consume`]: reading a whole stream back, deaggregated, parents before children.
//! - [`demo`]: the whole system in one process, checking nothing was lost.
//! - [`time`]: RFC 3339 timestamps for records and logs.
//! - [`cli`]: the `shardcar` command line and its exit codes; `main.rs` only calls
//!   [`cli::main`].

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
