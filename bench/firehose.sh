#!/usr/bin/env bash
# Firehose figures: the agent to a delivery stream next to the agent to a 4-shard
# Kinesis stream (MB/s, CPU-s/GB, RSS, lines per record), and the server's delivery to
# its S3 directory, DirectPut and reading a Kinesis stream; TLS off and on. One table.
# Usage: bench/firehose.sh [megabytes, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shardcar --example firehose_load --features bench-tools
./target/release/examples/firehose_load ./target/release/shardcar "$@"
