#!/usr/bin/env bash
# End-to-end producer figures: throughput, per-shard utilisation under real limits,
# latency, and memory through an outage. The server runs as its own process.
# Usage: bench/producer.sh [throughput|utilisation|latency|outage]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shardcar --example producer_load --features bench-tools
RUST_LOG=${RUST_LOG:-error} ./target/release/examples/producer_load ./target/release/shardcar "$@"
