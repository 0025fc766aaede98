#!/usr/bin/env bash
# End-to-end test of the kernel rules' argument tests (issue 15, item 4): every way to create
# a name still alerts live, and read-only opens make no audit record.
#
# A copy of python3 named `scp` (a listed process name), run as nobody in a /tmp directory,
# creates one name per kind: openat(O_CREAT|O_RDONLY), openat(O_CREAT|O_WRONLY), open(2) with
# O_CREAT, creat, O_TMPFILE then linkat, mkdir, mknod (FIFO), symlink, link. Each must give
# exactly one alert. Then 500 read-only openat and open(2) of an existing file: auditd's log
# must hold no event with our key for them.
#
# Run as root under the kernel lock (flock /run/wwatchd-kernel.lock). Prints
# "creation_kinds: N passed, M failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
OUT=$(mktemp -d /run/wwatchd-e2e-kinds.XXXXXX)
ALERTS=$OUT/alerts.jsonl
DIR=/tmp/wwkinds-$$
WW=
cleanup() {
    ww_end_daemon
    ww_stop_all >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT

{ ww_install_packages && ww_start_auditd; } >"$OUT/env.log" 2>&1 ||
    { cat "$OUT/env.log"; echo "creation_kinds: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet
chmod 755 "$OUT"
mkdir -p "$OUT/bin" "$DIR"
cp "$(readlink -f /usr/bin/python3)" "$OUT/bin/scp"
chmod 755 "$OUT/bin" "$OUT/bin/scp"
chmod 1777 "$DIR"
echo x >"$DIR/existing" && chmod 644 "$DIR/existing"

WANT=$("$BIN" rules print | grep -c '^-a ')
ww__close_lock_fds
"$BIN" run --output stdout --spool-dir none --status-file "$OUT/status.json" \
    >"$ALERTS" 2>"$OUT/wwatchd.log" &
WW=$!
started() { grep -q '^wwatchd: started: ' "$OUT/wwatchd.log" && [ "$(ours)" -ge "$WANT" ]; }
waited() { local i; for ((i = 0; i < ${WAIT:-100}; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
check "wwatchd starts with its $WANT kernel rules" waited started

START=$(date +%s.%N)
setpriv --reuid=65534 --regid=65534 --clear-groups "$OUT/bin/scp" - "$DIR" <<'EOF'
import ctypes, os, stat, sys
d = sys.argv[1]
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long
os.close(os.open(f"{d}/k-openat-rdonly", os.O_CREAT | os.O_RDONLY, 0o644))
os.close(os.open(f"{d}/k-openat-wronly", os.O_CREAT | os.O_WRONLY, 0o644))
os.close(libc.syscall(2, f"{d}/k-open".encode(), os.O_CREAT | os.O_RDONLY, 0o644))  # open(2)
os.close(libc.syscall(85, f"{d}/k-creat".encode(), 0o644))  # creat(2)
fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o644)
# linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, name, AT_SYMLINK_FOLLOW), as open(2) documents
if libc.linkat(-100, f"/proc/self/fd/{fd}".encode(), -100, f"{d}/k-tmpfile-linkat".encode(), 0x400):
    sys.exit(f"linkat: errno {ctypes.get_errno()}")
os.close(fd)
os.mkdir(f"{d}/k-mkdir")
os.mkfifo(f"{d}/k-mknod")
os.symlink("/etc/hostname", f"{d}/k-symlink")
os.link(f"{d}/k-creat", f"{d}/k-link")
for _ in range(500):
    os.close(os.open(f"{d}/existing", os.O_RDONLY))
    os.close(libc.syscall(2, f"{d}/existing".encode(), os.O_RDONLY, 0))
EOF
sleep 2.5
KINDS="k-openat-rdonly k-openat-wronly k-open k-creat k-tmpfile-linkat k-mkdir k-mknod k-symlink k-link"
for k in $KINDS; do
    n=$(grep -c "\"path\":\"$DIR/$k\"" "$ALERTS")
    check "one alert for $k" [ "$n" = 1 ]
done
readonly_events() {
    python3 - "$START" "$DIR/existing" /var/log/audit/audit.log.1 /var/log/audit/audit.log <<'EOF'
import re, sys
start, name = float(sys.argv[1]), sys.argv[2]
stamp = re.compile(r"msg=audit\(([0-9.]+):([0-9]+)\)")
ours, named = set(), set()
for path in sys.argv[3:]:
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        continue
    for l in lines:
        m = stamp.search(l)
        if not m or float(m.group(1)) < start:
            continue
        if l.startswith("type=SYSCALL") and 'key="wwatchd-d-' in l:
            ours.add(m.group(2))
        if l.startswith("type=PATH") and f'name="{name}"' in l:
            named.add(m.group(2))
print(len(ours & named))
EOF
}
n=$(readonly_events)
check "1000 read-only opens of an existing file: $n audit events with our key (want 0)" [ "$n" = 0 ]
kill -TERM "$WW"
wait "$WW"
rc=$?
WW=
check "wwatchd exits 0" [ "$rc" = 0 ]
check "no wwatchd-d-* rule is left" [ "$(ours)" = 0 ]
echo "creation_kinds: $pass passed, $fail failed"
[ "$fail" = 0 ]
