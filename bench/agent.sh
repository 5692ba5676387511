#!/usr/bin/env bash
# End-to-end agent figures: files -> `shardcar run` -> `shardcar server --no-limits`.
# Usage: bench/agent.sh [megabytes, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shardcar --example agent_load --features bench-tools
./target/release/examples/agent_load ./target/release/shardcar "$@"
