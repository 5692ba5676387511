#!/usr/bin/env bash
# Builds the .deb and the .rpm from this checkout into target/packages/.
#
# Every build of this project is compiled and linked for glibc 2.26 with zig (see
# .cargo/config.toml and packaging/zig/): Amazon Linux 2 has 2.26, Ubuntu 18.04 2.27,
# RHEL 8 and Debian 10 2.28. This script checks that the binary needs nothing newer.
# SHARDCAR_BINARY=path packages a binary already built (the package test uses the one
# `cargo test` built); otherwise the release binary is built here. Installs rpmbuild
# (a Debian package) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

GLIBC_FLOOR=2.26
say() { printf '==> %s\n' "$*" >&2; }

for tool in rpmbuild objdump; do
    if ! command -v "$tool" >/dev/null; then
        say "installing $tool"
        apt-get install -y -q rpm binutils >/dev/null
    fi
done

mkdir -p target/packaging target/packages
if [ -n "${SHARDCAR_BINARY:-}" ]; then
    say "packaging $SHARDCAR_BINARY"
    binary=target/packaging/shardcar
    objcopy --strip-debug "$SHARDCAR_BINARY" "$binary"
else
    say "building the release binary"
    cargo build --profile dist --quiet --bin shardcar
    binary=target/dist/shardcar
fi

say "checking that no symbol needs a glibc newer than $GLIBC_FLOOR"
newest=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_FLOOR" | sort -V | tail -1)" != "$GLIBC_FLOOR" ]; then
    say "the binary needs glibc $newest, newer than the $GLIBC_FLOOR it promises"
    exit 1
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
say "writing the help text (it stands in for a man page)"
{
    "$binary" --help
    for command in run check-config server demo consume decode predict; do
        printf '\n\n==== shardcar %s ====\n\n' "$command"
        "$binary" "$command" --help
    done
} > target/packaging/shardcar-help.txt

# The files both packages install; the unit's path and the environment file's name
# differ between the two families.
stage() {
    local root=$1 unit_dir=$2 environment=$3 license=$4
    rm -rf "$root"
    install -D -m 0755 "$binary" "$root/usr/bin/shardcar"
    install -D -m 0640 packaging/agent.toml "$root/etc/shardcar/agent.toml"
    install -D -m 0644 packaging/environment "$root$environment"
    install -D -m 0644 packaging/shardcar.service "$root$unit_dir/shardcar.service"
    install -d -m 0750 "$root/var/lib/shardcar"
    install -D -m 0644 README.md "$root/usr/share/doc/shardcar/README.md"
    install -D -m 0644 agent.toml.example "$root/usr/share/doc/shardcar/agent.toml.example"
    install -D -m 0644 target/packaging/shardcar-help.txt "$root/usr/share/doc/shardcar/shardcar-help.txt"
    install -D -m 0644 LICENSE "$root$license"
}

say "building the .deb"
deb=target/packaging/deb
stage "$deb" /lib/systemd/system /etc/default/shardcar /usr/share/doc/shardcar/copyright
install -d "$deb/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$deb/DEBIAN/"
printf '/etc/shardcar/agent.toml\n/etc/default/shardcar\n' > "$deb/DEBIAN/conffiles"
cat > "$deb/DEBIAN/control" <<EOF
Package: shardcar
Version: $version-1
Architecture: amd64
Maintainer: shardcar maintainers <shardcar@example.com>
Section: admin
Priority: optional
Depends: libc6 (>= $GLIBC_FLOOR), adduser
Installed-Size: $(du -sk "$deb" | cut -f1)
Description: tails log files into Amazon Kinesis Data Streams
 shardcar tails log files (globs, rotation, multi-line records) into Amazon
 Kinesis Data Streams. It predicts each record's shard, aggregates records per
 shard in the KPL format and keeps each shard under its limits; checkpoints move
 only when Kinesis has accepted a line. The binary also runs a Kinesis-compatible
 server.
EOF
dpkg-deb --root-owner-group --build "$deb" "target/packages/shardcar_${version}-1_amd64.deb" >/dev/null

say "building the .rpm"
rpm_root=target/packaging/rpm-root
stage "$rpm_root" /usr/lib/systemd/system /etc/sysconfig/shardcar /usr/share/licenses/shardcar/LICENSE
rpmbuild -bb --quiet \
    --define "_topdir $PWD/target/packaging/rpmbuild" \
    --define "staged $PWD/$rpm_root" \
    --define "version $version" \
    --define "glibc_floor $GLIBC_FLOOR" \
    packaging/rpm/shardcar.spec
cp target/packaging/rpmbuild/RPMS/x86_64/shardcar-"$version"-1.x86_64.rpm target/packages/

ls -1 target/packages/
