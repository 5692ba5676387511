#!/usr/bin/env bash
# Builds the .deb and .rpm from this checkout into target/packages/.
# Installs cargo-deb and cargo-generate-rpm if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo-deb cargo-generate-rpm; do
    command -v "$tool" >/dev/null || cargo install --quiet "$tool"
done
cargo build --profile dist --quiet --bin shardcar
mkdir -p target/packaging target/packages
# Help text stands in for a man page: every command's --help, installed under doc/.
{
    ./target/dist/shardcar --help
    for command in run check-config server demo consume decode predict; do
        printf '\n\n==== shardcar %s ====\n\n' "$command"
        ./target/dist/shardcar "$command" --help
    done
} > target/packaging/shardcar-help.txt
cargo deb --no-build --no-strip --quiet --output target/packages/
cargo generate-rpm --payload-compress gzip --output target/packages/
ls -1 target/packages/
