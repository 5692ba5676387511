#!/usr/bin/env bash
# Enhanced fan-out push latency (PutRecords acknowledged -> SubscribeToShard event
# received; the put's own round trip included) at a moderate load, against `shardcar server` with limits on.
# Before/after in one run: SHARDCAR_BEFORE=/path/to/older/shardcar bench/efo.sh
# Usage: bench/efo.sh [--seconds 10] [--rate 1000] [--shards 4]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shardcar --example efo_latency --features bench-tools
bins="./target/release/shardcar"
if [ -n "${SHARDCAR_BEFORE:-}" ]; then bins="$bins $SHARDCAR_BEFORE"; fi
echo "| server | records/s | records received | p50 ms | p99 ms | max ms | PutRecords p50 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for bin in $bins; do
  out=$(mktemp)
  "$bin" server --listen 127.0.0.1:0 --create-delay-ms 0 >"$out" 2>/dev/null &
  server=$!
  for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.05; done
  addr=$(sed -n 's/^listening on //p' "$out")
  label=$([ "$bin" = "./target/release/shardcar" ] && echo this || echo before)
  ./target/release/examples/efo_latency --endpoint "http://$addr" --label "$label" "$@" || true
  kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -f "$out"
done
