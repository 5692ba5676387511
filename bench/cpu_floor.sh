#!/usr/bin/env bash
# The CPU floor of shipping a gigabyte on this machine: the steps no agent can skip
# (read, frame, aggregate with MD5, SHA-256 for SigV4, AES-GCM for TLS, socket
# writes), each timed alone on one thread. Prints one table.
# Usage: bench/cpu_floor.sh [megabytes, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example cpu_floor --features bench-tools
./target/release/examples/cpu_floor "$@"
