#!/usr/bin/env bash
# Install what the tests need on a fresh Debian machine, then run every check and test.
# Run as root: the end-to-end tests use the real kernel audit subsystem, auditd, sshd,
# vsftpd and rsyslog on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "test-all: run as root (the kernel tests install audit rules)" >&2
    exit 77
fi

# shellcheck source=tests/e2e/env.sh
if [ -f tests/e2e/env.sh ]; then
    . tests/e2e/env.sh
    ww_install_packages
fi
command -v mandoc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mandoc; }

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --quiet
echo "== cargo deny (licences, bans, sources)"
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked --quiet
# The advisory database is fetched from GitHub, which this workplace cannot reach; the
# advisories check runs where it can (cargo deny check advisories).
cargo deny check licenses bans sources
echo "== mandoc -Tlint man/*"
for page in man/*.[0-9]; do
    mandoc -Tlint -W warning "$page"
    man -l "$page" >/dev/null
done
echo "== cargo test (unit, golden fixtures, CLI)"
cargo test --release -- --test-threads=1
echo "== end to end: wwatchd run beside auditd, real scp/sftp/rsync/FTP sessions, rsyslog"
bash tests/e2e/live.sh
echo "== end to end: hostile filenames (sftp/scp/rsync) to rsyslog over TCP, UDP and a unix socket"
bash tests/e2e/hostile.sh
