#!/usr/bin/env bash
# PutRecords and GetRecords throughput of `shardcar server --no-limits`, with the load
# generator on the same machine. Prints markdown tables.
# Before/after in one run: SHARDCAR_BEFORE=/path/to/older/shardcar bench/server.sh
# (the builds take turns, this one first).
# Usage: bench/server.sh [--clients 4] [--millions 3] [--record-bytes 100]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shardcar --example server_load --features bench-tools
bins="./target/release/shardcar"
if [ -n "${SHARDCAR_BEFORE:-}" ]; then bins="$bins $SHARDCAR_BEFORE"; fi
for bin in $bins; do
  echo
  echo "### $bin"
  out=$(mktemp)
  "$bin" server --listen 127.0.0.1:0 --no-limits --create-delay-ms 0 >"$out" 2>/dev/null &
  server=$!
  for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.05; done
  addr=$(sed -n 's/^listening on //p' "$out")
  ./target/release/examples/server_load --addr "$addr" --pid "$server" "$@"
  kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -f "$out"
done
