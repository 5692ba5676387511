#!/usr/bin/env bash
# Scale figures: 4 and 500 shards (TLS off and on), 10, 1,000 and 10,000 files (idle
# and at 5,000 lines/s). Prints two tables.
# Usage: bench/scale.sh [megabytes, default 1000] [seconds per phase, default 20] [shards|files]
# Before/after in one run: SHARDCAR_BEFORE=/path/to/older/shardcar bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shardcar --example scale_load --features bench-tools
bins=./target/release/shardcar
if [ -n "${SHARDCAR_BEFORE:-}" ]; then bins="$bins,$SHARDCAR_BEFORE"; fi
./target/release/examples/scale_load "$bins" "$@"
