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
# tests/siem.rs runs etc/siem/rsyslog-elasticsearch.conf in a real rsyslogd (omelasticsearch);
# tests/journald.rs runs a real systemd-journald in private namespaces.
if ! [ -e /usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so ] || ! [ -x /lib/systemd/systemd-journald ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog-elasticsearch systemd
fi

# wwatchd refuses a configuration or rule file that its group or others may write; a checkout
# made under umask 002 has them 0664. The package installs them 0644: test them as installed.
chmod -R go-w etc rules rules.d

echo "== cargo fmt --check"
cargo fmt --check
# --workspace: also wwatchd-core's own targets (its tests), under core/clippy.toml.
echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib --quiet
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
# --workspace: without it cargo runs the root package's tests only, not wwatchd-core's.
echo "== cargo test --workspace (unit, golden fixtures, CLI, the root tier)"
cargo test --workspace --release -- --test-threads=1
echo "== wwatchd check on every shipped configuration and rule file"
target/release/wwatchd check --config etc/wwatchd.toml >/dev/null
for r in rules/*.toml; do
    target/release/wwatchd rules print --config etc/wwatchd.toml --rule "$r" >/dev/null
done
echo "== systemd-analyze verify debian/wwatchd.service"
# systemd need not run (it is not PID 1 here). verify checks that ExecStart exists, so this
# checks a copy whose ExecStart is the binary just built, without the man page check; the
# installed unit, with /usr/bin/wwatchd and the installed man page, is verified as it is by
# tools/test-deb.sh below.
command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd; }
unit_dir=$(mktemp -d)
sed "s|^ExecStart=/usr/bin/wwatchd |ExecStart=$PWD/target/release/wwatchd |" debian/wwatchd.service >"$unit_dir/wwatchd.service"
grep -q "^ExecStart=$PWD/target/release/wwatchd " "$unit_dir/wwatchd.service"
verify=$(systemd-analyze verify --man=no "$unit_dir/wwatchd.service" 2>&1) || { echo "$verify"; exit 1; }
[ -z "$verify" ] || { echo "systemd-analyze verify is not clean: $verify"; exit 1; }
rm -rf "$unit_dir"
echo "== Debian package: cargo deb, dpkg -i, checks, dpkg -r, dpkg -P"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
bash tools/test-deb.sh
echo "== fuzz: every target for a short bounded time (long runs: fuzz/README.md)"
bash tools/fuzz-ci.sh
echo "== end to end: wwatchd run beside auditd, real scp/sftp/rsync/FTP sessions, rsyslog"
bash tests/e2e/live.sh
echo "== end to end: collector outage, restart and SIGKILL with the disk spool, rsyslog"
bash tests/e2e/outage.sh
echo "== end to end: hostile filenames (sftp/scp/rsync) to rsyslog over TCP, UDP and a unix socket"
bash tests/e2e/hostile.sh
echo "== end to end: creation storm beside auditd's host-wide execve logging, with faults"
bash tests/e2e/storm.sh
echo "== end to end: one user's flood does not hide another user's drop (per-user budget)"
bash tests/e2e/budget_flood.sh
echo "== end to end: a CAP_NET_ADMIN flood at the netlink sockets; reload, reconcile and exit still clean"
bash tests/e2e/control_flood.sh
echo "== end to end: every kind of creation alerts, read-only opens make no audit record"
bash tests/e2e/creation_kinds.sh
echo "== end to end: a new_terms rule alerts on a tool's first upload only, and remembers it across a restart"
bash tests/e2e/new_terms.sh
echo "== end to end: Debian 13 chroot, OpenSSH 10 (sshd-session) with sftp-server and internal-sftp"
bash tests/e2e/trixie.sh
echo "== in VMs: the .deb under systemd on Debian 12 and 13, reboot, locked audit, no auditd"
# Disposable qemu VMs (TCG) built with debootstrap and cached in /var/cache/wwatchd-vm; the
# VMs' kernel audit is their own, so no machine-wide lock (tests/vm/run.sh).
bash tests/vm/run.sh
