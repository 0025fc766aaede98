#!/usr/bin/env bash
# Records per 1,000 read-only opens in /tmp by a non-root user, beside a running auditd and
# wwatchd (issue 15, item 4): what our kernel rules make the kernel write for opens that
# create nothing, for wwatchd and for auditd's disk log alike.
#
# As nobody, on an existing file in /tmp: N read-only opens through each of openat (what
# glibc's open() and fopen() use), open(2) and openat2, then 10 mkdir (creations, which must
# still be recorded). Counts, in the part of auditd's log written meanwhile, the events that
# carry one of our keys (wwatchd-d-*) for each syscall and all their records, and the
# daemon's own `records` counter. Prints one line per syscall: records per 1,000 opens.
# Run as root under the kernel lock:  flock /run/wwatchd-kernel.lock tools/bench-readonly-opens.sh
#   WWATCHD_BIN  the binary (default target/release/wwatchd)   N  opens per kind (1000)
set -u
cd "$(dirname "$0")/.."
. tests/e2e/env.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
N=${N:-1000}
OUT=$(mktemp -d /run/wwatchd-bench-ro.XXXXXX)
DIR=/tmp/wwro-$$
LOG=/var/log/audit/audit.log
WW=
cleanup() {
    [ -n "$WW" ] && kill -TERM "$WW" 2>/dev/null && wait "$WW" 2>/dev/null
    "$BIN" rules remove >/dev/null 2>&1
    ww_stop_all >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT
ours() { auditctl -l | grep -c 'key=wwatchd-d-' || true; }

{ ww_install_packages && ww_start_auditd; } >"$OUT/env.log" 2>&1 || { cat "$OUT/env.log"; exit 1; }
mkdir -p "$DIR" && chmod 1777 "$DIR"
echo x >"$DIR/f" && chmod 644 "$DIR/f"
chmod 755 "$OUT"

ww__close_lock_fds
"$BIN" run --output stdout --spool-dir none --status-file "$OUT/status.json" \
    >"$OUT/alerts.jsonl" 2>"$OUT/wwatchd.log" &
WW=$!
for _ in $(seq 100); do grep -q '^wwatchd: started: ' "$OUT/wwatchd.log" && break; sleep 0.1; done
echo "kernel rules loaded: $(ours)"
sleep 1
START=$(date +%s.%N)

setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 - "$DIR" "$N" <<'EOF'
import ctypes, os, struct, sys
d, n = sys.argv[1], int(sys.argv[2])
f = (d + "/f").encode()
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long
for _ in range(n):  # openat (glibc)
    os.close(os.open(f, os.O_RDONLY))
for _ in range(n):  # open(2), x86_64 nr 2
    fd = libc.syscall(2, f, os.O_RDONLY, 0)
    os.close(fd)
how = ctypes.create_string_buffer(struct.pack("=QQQ", os.O_RDONLY, 0, 0), 24)
for _ in range(n):  # openat2, nr 437
    fd = libc.syscall(437, -100, f, how, 24)
    if fd < 0:
        sys.exit(f"openat2: errno {ctypes.get_errno()}")
    os.close(fd)
for i in range(10):  # creations
    os.mkdir(f"{d}/m{i}")
EOF
sleep 2.5
kill -TERM "$WW"
wait "$WW"
WW=
python3 - "$LOG" "$START" "$N" "$OUT/status.json" <<'EOF'
import json, re, sys
log, start, n, status = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
# auditd may rotate its log meanwhile (8 MiB by default): read the last rotation too, and
# keep what was written since the start.
start = float(start)
lines = []
for path in (log + ".1", log):
    try:
        with open(path, "rb") as fh:
            lines += fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        pass
stamp = re.compile(r"msg=audit\(([0-9.]+):")
lines = [l for l in lines if (m := stamp.search(l)) and float(m.group(1)) >= start]
serial = re.compile(r"msg=audit\([0-9.]+:([0-9]+)\)")
events, records = {}, {}
for l in lines:
    m = serial.search(l)
    if not m:
        continue
    s = m.group(1)
    records[s] = records.get(s, 0) + 1
    if l.startswith("type=SYSCALL") and 'key="wwatchd-d-' in l and " uid=65534 " in l:
        nr = re.search(r" syscall=([0-9]+) ", l).group(1)
        events[s] = {"2": "open", "257": "openat", "437": "openat2", "83": "mkdir"}.get(nr, nr)
for kind in ["openat", "open", "openat2", "mkdir"]:
    ev = [s for s, k in events.items() if k == kind]
    recs = sum(records[s] for s in ev)
    per = "" if kind == "mkdir" else f", {recs * 1000 // n} records per 1,000 read-only opens"
    print(f"{kind}: {len(ev)} events with our key, {recs} records in auditd's log{per}")
c = json.load(open(status))["counters"]
print(f"wwatchd: records {c['records']} events {c['events']} creations {c['creations']}")
EOF
