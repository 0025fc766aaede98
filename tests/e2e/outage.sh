#!/usr/bin/env bash
# End-to-end test of the disk spool: `wwatchd run` beside a real auditd, delivering over TCP to
# a real rsyslog that goes away and comes back, and a wwatchd that is restarted (SIGTERM) and
# killed (SIGKILL) while alerts wait in its spool. Alerts come from files numbered 1, 2, 3...
# created one after the other by a non-root process named `rsync`; every one must reach rsyslog
# exactly once and in creation order. Run as root. Prints figures (outage length, spool bytes,
# time to replay), "N passed, N failed", and exits non-zero on any failure.
#   WW_OUTAGE_SECONDS  length of the collector outage in the first phase (default 60)
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
OUTAGE=${WW_OUTAGE_SECONDS:-60}
OUT=$(mktemp -d /run/wwatchd-e2e-outage.XXXXXX)
COLLECT=$OUT/collect.log
SPOOL=$OUT/spool
STATUS=$OUT/status.json
DROP=$(mktemp -d /tmp/wwoutage.XXXXXX)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

WW=
cleanup() {
    ww_end_daemon
    ww_stop_all >/dev/null 2>&1
    rm -rf "$DROP"
}
trap cleanup EXIT

{ ww_install_packages && ww_start_auditd && ww_start_rsyslog "$COLLECT"; } >"$OUT/env.log" 2>&1 ||
    { cat "$OUT/env.log"; echo "e2e outage: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet
# How many kernel rules the defaults give (three per watched directory and arch).

# A copy of touch named rsync, run as nobody: each file it creates in /tmp is one alert.
chmod 755 "$OUT"
cp /usr/bin/touch "$OUT/rsync"
chmod 755 "$OUT/rsync"
chmod 1777 "$DROP"
N=0
mk() { # COUNT [PAUSE]: create the next COUNT files, PAUSE seconds apart
    local i
    for ((i = 0; i < $1; i++)); do
        N=$((N + 1))
        (cd "$DROP" && setpriv --reuid=65534 --regid=65534 --clear-groups "$OUT/rsync" "$(printf 'f-%05d' "$N")")
        sleep "${2:-0.2}"
    done
}

# Every alert must arrive: no alert budget here (the storm test covers the budget).
CONF=$OUT/wwatchd.toml
printf '[budget]\nmax_alerts = 0\n' >"$CONF"
chmod 644 "$CONF"
NRULES=$(ww_kernel_rules "$CONF") || { echo "e2e outage: 0 passed, 1 failed"; exit 1; }

start() {
    "$BIN" run --config "$CONF" --output "tcp://127.0.0.1:$WW_SYSLOG_PORT" --status-file "$STATUS" \
        --spool-dir "$SPOOL" >>"$OUT/wwatchd.log" 2>&1 &
    WW=$!
    for _ in $(seq 100); do [ "$(ours)" -ge "$NRULES" ] && return 0; sleep 0.1; done
    return 1
}

# The numbers of our files in the order their alerts reached rsyslog, one per line.
delivered() {
    python3 - "$COLLECT" "$DROP" <<'EOF'
import json, sys
collect, drop = sys.argv[1], sys.argv[2] + "/f-"
for line in open(collect, encoding="utf-8", errors="replace"):
    if " wwatchd " not in line or " alert - " not in line:
        continue
    try:
        path = json.loads(line.split(" alert - ", 1)[1])["file"]["path"]
    except (ValueError, KeyError):
        print("bad-json")
        continue
    if path.startswith(drop):
        print(int(path[len(drop):]))
EOF
}

# Every delivered alert of our files carries an event.id (a UUID), all distinct: the ids of
# alerts replayed from the spool across outage, restart and SIGKILL are the ones rendered
# when the records were read (issue 12: a SIEM deduplicates on event.id).
ids_distinct() {
    python3 - "$COLLECT" "$DROP" "$N" <<'EOF'
import json, re, sys
collect, drop, n = sys.argv[1], sys.argv[2] + "/f-", int(sys.argv[3])
uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ids = []
for line in open(collect, encoding="utf-8", errors="replace"):
    if " wwatchd " not in line or " alert - " not in line:
        continue
    doc = json.loads(line.split(" alert - ", 1)[1])
    if doc.get("file", {}).get("path", "").startswith(drop):
        ids.append(doc["event"]["id"])
bad = [i for i in ids if not uuid.match(i)]
print(f"  {len(ids)} alerts, {len(set(ids))} distinct event.id, {len(bad)} malformed")
sys.exit(0 if len(ids) == n and len(set(ids)) == n and not bad else 1)
EOF
}

# Wait up to $1 seconds until $N alerts arrived.
wait_all() {
    local i
    for ((i = 0; i < $1 * 5; i++)); do
        [ "$(delivered | wc -l)" -ge "$N" ] && return 0
        sleep 0.2
    done
    return 1
}

# Every file 1..N has exactly one alert, in creation order.
in_order_once() {
    delivered >"$OUT/delivered"
    seq 1 "$N" | cmp -s - "$OUT/delivered" && return 0
    echo "  expected 1..$N, got $(wc -l <"$OUT/delivered") alerts; first difference:"
    seq 1 "$N" | diff - "$OUT/delivered" | head -5 | sed 's/^/  /'
    return 1
}

counter() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counters"][sys.argv[2]])' "$STATUS" "$1"; }
state() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$STATUS"; }
no_losses() {
    local c v rc=0
    for c in enobufs serial_gaps kernel_lost sink_drops sink_channel_drops spool_dropped spool_corrupt; do
        v=$(counter "$c")
        [ "$v" = 0 ] || { echo "  $c = $v"; rc=1; }
    done
    return $rc
}
spool_bytes() { cat "$SPOOL"/*.seg 2>/dev/null | wc -c; }
# Wait for the status file (written every 5 s) to show an empty spool.
status_drained() {
    for _ in $(seq 70); do [ "$(counter spool_pending)" = 0 ] && return 0; sleep 0.1; done
    return 1
}

T0=$(now)
# --- Phase 1: the collector is down for $OUTAGE s while alerts keep coming.
check "wwatchd run starts with a spool directory" start
check "the spool directory is created 0700" [ "$(stat -c %a "$SPOOL")" = 700 ]
mk 10
check "alerts flow while the collector is up (10)" wait_all 20
ww_stop_rsyslog
t_down=$(now)
while [ "$(secs "$t_down" "$(now)" | cut -d. -f1)" -lt "$OUTAGE" ]; do mk 1 0.5; done
n_outage=$((N - 10))
sleep 1
bytes_down=$(spool_bytes)
check "alerts created during the outage are on disk ($bytes_down bytes)" [ "$bytes_down" -gt 0 ]
ww_start_rsyslog "$COLLECT" >>"$OUT/env.log" 2>&1
t_up=$(now)
outage=$(secs "$t_down" "$t_up")
mk 10
check "after the outage every alert arrives" wait_all 90
replay_all=$(secs "$t_up" "$(now)")
check "1..$N: each alert exactly once, in creation order" in_order_once
check "the spool is empty once delivered" status_drained
check "no segment file is left" [ "$(spool_bytes)" = 0 ]
check "loss counters are 0" no_losses
echo "     outage ${outage} s, $n_outage alerts created during it, spool ${bytes_down} bytes;" \
    "all delivered ${replay_all} s after rsyslog came back (reconnect backoff included)"

# --- Phase 2: SIGTERM while the spool holds alerts; the next wwatchd delivers them first.
ww_stop_rsyslog
before=$N
mk 20
sleep 2
kill -TERM "$WW"; wait "$WW"; rc=$?; WW=
check "SIGTERM exits 0" [ "$rc" = 0 ]
bytes_term=$(spool_bytes)
pending_term=$(counter spool_pending)
held() { [ "$pending_term" -ge 20 ] && [ "$bytes_term" -gt 0 ]; }
check "the spool holds the alerts after exit ($pending_term messages, $bytes_term bytes)" held
check "the status file says stopped" [ "$(state)" = stopped ]
check "loss counters are 0 after SIGTERM" no_losses
check "wwatchd starts again on the same spool" start
ww_start_rsyslog "$COLLECT" >>"$OUT/env.log" 2>&1
t_up=$(now)
mk 10
check "the spooled and the new alerts arrive" wait_all 90
replay_restart=$(secs "$t_up" "$(now)")
check "1..$N: old before new, each once, in order" in_order_once
check "the restarted daemon reported the spool it found" \
    grep -q "left by an earlier run will be delivered first" "$OUT/wwatchd.log"
check "spool empty and loss counters 0 after the restart" status_drained
check "loss counters are 0 after the restart" no_losses
echo "     $((N - before - 10)) alerts spooled across the restart ($bytes_term bytes);" \
    "delivered with 10 new ones ${replay_restart} s after rsyslog came back"

# --- Phase 3: SIGKILL during an outage: write-through means the alerts are already on disk.
ww_stop_rsyslog
mk 10
sleep 2
check "loss counters are 0 before SIGKILL" no_losses
kill -KILL "$WW"; wait "$WW" 2>/dev/null; WW=
bytes_kill=$(spool_bytes)
check "the spool holds the alerts after SIGKILL ($bytes_kill bytes)" [ "$bytes_kill" -gt 0 ]
check "wwatchd starts again after SIGKILL" start
ww_start_rsyslog "$COLLECT" >>"$OUT/env.log" 2>&1
mk 5
check "the alerts from before SIGKILL arrive" wait_all 90
check "1..$N: each alert exactly once, in order, across outage, restart and kill" in_order_once
check "every alert has its own event.id, across outage, restart and kill" ids_distinct

kill -TERM "$WW"; wait "$WW"; rc=$?; WW=
check "final SIGTERM exits 0" [ "$rc" = 0 ]
check "final loss counters are 0" no_losses
check "our kernel rules are gone" [ "$(ours)" = 0 ]

if [ "$fail" -gt 0 ]; then
    echo "--- wwatchd log"; tail -30 "$OUT/wwatchd.log"
fi
echo "     the three phases took $(secs "$T0" "$(now)") s"
echo "e2e outage: $pass passed, $fail failed ($N alerts; logs in $OUT)"
[ "$fail" = 0 ]
