#!/usr/bin/env bash
# End-to-end test of the per-user alert budget (issue 15): one user's flood must not hide
# another user's drop.
#
# With the default budget (100 alerts per rule and user per 300 s), `nobody` runs a copy of
# touch named `scp` over 110 files in /tmp: 100 alerts, then a `started` budget summary at
# once that names nobody. Then wwalice, with her own `scp`-named copy, drops
# /tmp/zzz-victim-*: it must get its own alert (not be counted in nobody's summary), and the
# test prints how long after the drop it arrived. At SIGTERM the closing summary reports the
# totals: 101 sent, 10 held back, all of them nobody's.
#
# Run as root under the kernel lock (flock /run/wwatchd-kernel.lock). Prints
# "budget_flood: N passed, M failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
OUT=$(mktemp -d /run/wwatchd-e2e-flood.XXXXXX)
ALERTS=$OUT/alerts.jsonl
T=$$

WW=
cleanup() {
    ww_end_daemon
    ww_stop_all >/dev/null 2>&1
    rm -f /tmp/wwflood-"$T"-* /tmp/zzz-victim-"$T"
}
trap cleanup EXIT

{ ww_install_packages && ww_start_auditd && ww_users; } >"$OUT/env.log" 2>&1 ||
    { cat "$OUT/env.log"; echo "budget_flood: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet

chmod 755 "$OUT"
mkdir -p "$OUT/bin-nobody" "$OUT/bin-alice"
cp /usr/bin/touch "$OUT/bin-nobody/scp"
cp /usr/bin/touch "$OUT/bin-alice/scp"
chmod 755 "$OUT"/bin-* "$OUT"/bin-*/scp
printf '# budget_flood: the defaults (100 alerts per rule and user per 300 s)\n' >"$OUT/wwatchd.toml"
chmod 644 "$OUT/wwatchd.toml"

ww__close_lock_fds
"$BIN" run --config "$OUT/wwatchd.toml" --output stdout --spool-dir none \
    --status-file "$OUT/status.json" >"$ALERTS" 2>"$OUT/wwatchd.log" &
WW=$!
started() { grep -q '^wwatchd: started: ' "$OUT/wwatchd.log" && [ "$(ours)" -ge 8 ]; }
waited() { local i; for ((i = 0; i < ${WAIT:-100}; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
check "wwatchd starts with the default budget" waited started

# The flood: 110 creations by nobody's `scp` in one process.
# shellcheck disable=SC2046
setpriv --reuid=65534 --regid=65534 --clear-groups "$OUT/bin-nobody/scp" \
    $(seq -f "/tmp/wwflood-$T-%03g" 110)

count() { # KIND: alerts for the flood's files, or budget summaries of a phase
    python3 - "$ALERTS" "$T" "$1" <<'EOF'
import json, sys
path, t, kind = sys.argv[1], sys.argv[2], sys.argv[3]
n = 0
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d["event"]["action"] == "alert-budget-summary":
        b = d["wwatchd"]["budget"]
        if kind == "started" and b["phase"] == "started" and b.get("actor") == "nobody (65534)":
            n += 1
    elif kind == "flood" and d["file"]["path"].startswith(f"/tmp/wwflood-{t}-"):
        n += 1
print(n)
EOF
}
flood_done() { [ "$(count flood)" -ge 100 ] && [ "$(count started)" -ge 1 ]; }
WAIT=100 waited flood_done
check "nobody's flood: 100 alerts sent" [ "$(count flood)" = 100 ]
check "a budget summary said at once that nobody's further alerts are held back" \
    [ "$(count started)" = 1 ]

# The victim: another user, while nobody's budget is spent.
t0=$(date +%s%N)
setpriv --reuid=wwalice --regid=wwalice --init-groups "$OUT/bin-alice/scp" "/tmp/zzz-victim-$T"
victim() { grep -q "\"path\":\"/tmp/zzz-victim-$T\"" "$ALERTS"; }
if WAIT=100 waited victim; then
    t1=$(date +%s%N)
    ok "the victim's drop has its own alert (arrived $(((t1 - t0) / 1000000)) ms after the drop)"
else
    bad "the victim's drop has its own alert"
fi
check "the victim's alert names wwalice" \
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("file", {}).get("path") == sys.argv[2]:
        sys.exit(0 if d["user"]["name"] == "wwalice" else 1)
sys.exit(1)' "$ALERTS" "/tmp/zzz-victim-$T"

# SIGTERM: the closing summary has the totals.
kill -TERM "$WW"
wait "$WW"
rc=$?
WW=
check "wwatchd exits 0 at SIGTERM" [ "$rc" = 0 ]
check "no wwatchd-d-* rule is left" [ "$(ours)" = 0 ]
closing() {
    python3 - "$ALERTS" <<'EOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d["event"]["action"] != "alert-budget-summary":
        continue
    b = d["wwatchd"]["budget"]
    if b["phase"] != "closed":
        continue
    actors = b["actors"]["top"]
    ok = (b["sent"], b["suppressed"]) == (101, 10) and actors == [
        {"actor": "nobody (65534)", "sent": 100, "suppressed": 10}]
    print(f"closing summary: sent {b['sent']} suppressed {b['suppressed']} actors {actors}")
    sys.exit(0 if ok else 1)
sys.exit(1)
EOF
}
check "the closing summary: 101 sent, 10 held back, all nobody's" closing

echo "budget_flood: $pass passed, $fail failed"
[ "$fail" = 0 ]
