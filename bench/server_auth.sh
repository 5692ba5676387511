#!/usr/bin/env bash
# What SigV4 verification and TLS cost the shard server: the same PutRecords load
# (500 records of 100 bytes per call, `--clients` connections, `--millions` million
# records) against `shardcar server --no-limits` three ways, in one run. Prints a
# markdown table: put records/s and server CPU-seconds per million records.
# Usage: bench/server_auth.sh [--clients 4] [--millions 2]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin shardcar --example server_load --features bench-tools
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
echo "bench benchsecret" > "$work/credentials"
extra=()

# run LABEL "SERVER ARGS" "LOADER ARGS"
run() {
    local label=$1 server_args=$2 loader_args=$3
    ./target/release/shardcar server --listen 127.0.0.1:0 --no-limits --create-delay-ms 0 \
        $server_args >"$work/out" 2>/dev/null &
    local server=$!
    for _ in $(seq 200); do grep -q "listening on" "$work/out" && break; sleep 0.05; done
    local addr
    addr=$(sed -n 's/^listening on //p' "$work/out")
    ./target/release/examples/server_load --addr "$addr" --pid "$server" \
        --millions 2 "${extra[@]}" $loader_args --put-only "$label"
    kill "$server"
    wait "$server" 2>/dev/null || true
}

extra=("$@")
echo "| server | put records/s | server CPU-s per million records |"
echo "|---|---:|---:|"
run "no verification (shape only)" "" ""
run "SigV4 verified" "--credentials-file $work/credentials" "--sign bench:benchsecret"
run "SigV4 verified, TLS" "--credentials-file $work/credentials --tls-self-signed $work/tls" \
    "--sign bench:benchsecret --ca $work/tls/ca.pem"
