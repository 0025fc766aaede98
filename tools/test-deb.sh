#!/usr/bin/env bash
# Build the .deb with cargo-deb, install it on this machine, check what it installed, run the
# installed binary, verify the installed systemd unit, then remove and purge it and check
# that nothing of it is left. Root only; exits non-zero on the first failure.
#
# It does not touch kernel audit: nothing here starts the daemon (the machine has no
# running systemd, so postinst only enables the unit), and `wwatchd check`, `rules print`
# and `--version` read no audit state.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "test-deb: run as root (dpkg -i)" >&2
    exit 77
fi
if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' wwatchd 2>/dev/null) == [ir][ic]* ]]; then
    echo "test-deb: a wwatchd package is already on this machine; remove it first (dpkg -P wwatchd)" >&2
    exit 1
fi

fails=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
installed=
cleanup() {
    if [ -n "$installed" ]; then
        dpkg -P wwatchd >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet

echo "== cargo deb"
# -a: opening /dev/stderr without O_APPEND would truncate a log file that stderr is
# redirected to (the CI log lost everything before this line that way).
deb=$(cargo deb 2>&1 | tee -a /dev/stderr | tail -n 1)
[ -f "$deb" ] || { echo "test-deb: cargo deb printed no package path (got: $deb)" >&2; exit 1; }
echo "package: $deb"
dpkg-deb -c "$deb"

# What must be installed: path in the package -> file in this tree it must equal ("" when
# it is built, or rewritten).
declare -A want=(
    [/usr/bin/wwatchd]=""
    [/etc/audit/rules.d/40-wwatchd.rules]=rules.d/40-wwatchd.rules
    [/etc/wwatchd/wwatchd.toml]=etc/wwatchd.toml
    [/usr/lib/systemd/system/wwatchd.service]=debian/wwatchd.service
    [/usr/share/doc/wwatchd/README.md]=README.md
)
pages=()
for page in man/*.[1-8]; do
    [ -e "$page" ] || continue
    sec=${page##*.}
    want[/usr/share/man/man$sec/$(basename "$page").gz]=$page
    pages+=("$page")
done
conffiles=(/etc/audit/rules.d/40-wwatchd.rules /etc/wwatchd/wwatchd.toml)

echo "== dpkg -i"
installed=1
dpkg -i "$deb"
listed=$(dpkg -L wwatchd)
for path in "${!want[@]}"; do
    src=${want[$path]}
    if ! grep -qxF "$path" <<<"$listed"; then
        fail "$path is not in dpkg -L wwatchd"
        continue
    fi
    [ -f "$path" ] || { fail "$path is listed but not installed"; continue; }
    if [ -z "$src" ]; then
        pass "$path installed"
    elif [[ $path == *.gz ]]; then
        # Debian policy: man pages compressed, with gzip -9n (no name, no time stamp).
        if gzip -t "$path" && zcat "$path" | cmp -s - "$src"; then
            pass "$path installed, gzip of $src"
        else
            fail "$path is not a gzip of $src"
        fi
    else
        check "$path installed, equal to $src" cmp -s "$path" "$src"
    fi
done
for c in "${conffiles[@]}"; do
    check "$c is a conffile" grep -q "^ $c " <<<"$(dpkg-query -W -f='${Conffiles}\n' wwatchd)"
done
check "/lib/systemd/system/wwatchd.service resolves (usrmerge)" test -f /lib/systemd/system/wwatchd.service
check "rules file is mode 0640, like auditd's" test "$(stat -c %a /etc/audit/rules.d/40-wwatchd.rules)" = 640
check "system user wwatchd exists, no login shell" \
    test "$(getent passwd wwatchd | cut -d: -f7)" = /usr/sbin/nologin
check "its uid is a system uid (< 1000)" test "$(id -u wwatchd)" -lt 1000
check "unit enabled (multi-user.target.wants)" \
    test -L /etc/systemd/system/multi-user.target.wants/wwatchd.service

echo "== the installed binary"
check "wwatchd check" /usr/bin/wwatchd check
check "wwatchd --version" /usr/bin/wwatchd --version
check "installed rules.d file equals 'wwatchd rules print'" \
    cmp -s <(/usr/bin/wwatchd rules print) /etc/audit/rules.d/40-wwatchd.rules
check "man -w wwatchd" man -w wwatchd
for page in "${pages[@]}"; do
    name=$(basename "$page")
    check "man -w ${name%.*} (section ${name##*.})" man -w "${name##*.}" "${name%.*}"
done
echo "== systemd-analyze verify (the installed unit, its real ExecStart and man page)"
verify=$(systemd-analyze verify /lib/systemd/system/wwatchd.service 2>&1) && [ -z "$verify" ] &&
    pass "systemd-analyze verify: clean" || fail "systemd-analyze verify: $verify"

echo "== dpkg -r"
dpkg -r wwatchd
for path in "${!want[@]}"; do
    if printf '%s\n' "${conffiles[@]}" | grep -qxF "$path"; then
        check "$path (conffile) kept after remove" test -f "$path"
    else
        check "$path gone after remove" test ! -e "$path"
    fi
done
check "package in state config-files" \
    test "$(dpkg-query -W -f='${db:Status-Abbrev}' wwatchd)" = "rc "

echo "== dpkg -P"
dpkg -P wwatchd
installed=
for c in "${conffiles[@]}"; do
    check "$c gone after purge" test ! -e "$c"
done
check "/etc/wwatchd gone" test ! -e /etc/wwatchd
check "/var/lib/wwatchd (state, spool) gone" test ! -e /var/lib/wwatchd
left=$(find /etc/systemd /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked -name '*wwatchd*' 2>/dev/null || true)
check "no systemd enable or mask links left${left:+: $left}" test -z "$left"
check "dpkg knows no wwatchd" bash -c '! dpkg-query -W wwatchd >/dev/null 2>&1'
# Debian leaves system users in place on purge: a later user given the same uid would
# otherwise own what the daemon left behind.
check "system user wwatchd kept (Debian practice)" getent passwd wwatchd

if [ "$fails" -gt 0 ]; then
    echo "test-deb: $fails failed"
    exit 1
fi
echo "test-deb: all passed"
