#!/usr/bin/env bash
# End-to-end test: wwatchd's netlink sockets cannot be jammed (issue 15, item 3).
#
# A process running as nobody with only CAP_NET_ADMIN (tests/e2e/nlflood.py) floods both
# of the daemon's NETLINK_AUDIT ports (found in /proc/net/netlink through the daemon's
# socket inodes) with forged 4 KiB ACKs. Both sockets are connect()ed to the kernel, so the
# kernel refuses every datagram (ECONNREFUSED) and none reaches the daemon. During the
# flood: a creation still alerts (multicast arrives), SIGHUP reloads, one of our rules
# deleted by key (as auditd's reload would) is reconciled back, and SIGTERM exits 0 leaving
# no wwatchd-d-* rule; the status file's `foreign` counter stays 0.
#
# Run as root under the kernel lock (flock /run/wwatchd-kernel.lock). Prints
# "control_flood: N passed, M failed" and exits non-zero on any failure.
#   WW_FLOOD_SECONDS  how long the flood lasts (default 12)
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
SECS=${WW_FLOOD_SECONDS:-12}
OUT=$(mktemp -d /run/wwatchd-e2e-cflood.XXXXXX)
ALERTS=$OUT/alerts.jsonl
LOG=$OUT/wwatchd.log
T=$$
waited() { local i; for ((i = 0; i < ${WAIT:-100}; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
logged() { grep -qF -- "$1" "$LOG" 2>/dev/null; }

WW=
FLOOD=
cleanup() {
    [ -n "$FLOOD" ] && kill "$FLOOD" 2>/dev/null && wait "$FLOOD" 2>/dev/null
    ww_end_daemon
    ww_stop_all >/dev/null 2>&1
    rm -f /tmp/wwcflood-"$T"
}
trap cleanup EXIT

{ ww_install_packages && ww_start_auditd; } >"$OUT/env.log" 2>&1 ||
    { cat "$OUT/env.log"; echo "control_flood: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet

chmod 755 "$OUT"
mkdir -p "$OUT/bin"
cp /usr/bin/touch "$OUT/bin/scp"
cp tests/e2e/nlflood.py "$OUT/nlflood.py"
chmod 755 "$OUT/bin" "$OUT/bin/scp" "$OUT/nlflood.py"
printf '# control_flood\n' >"$OUT/wwatchd.toml"
chmod 644 "$OUT/wwatchd.toml"

WANT=$("$BIN" rules print | grep -c '^-a ')
ww__close_lock_fds
"$BIN" run --config "$OUT/wwatchd.toml" --output stdout --spool-dir none \
    --status-file "$OUT/status.json" >"$ALERTS" 2>"$LOG" &
WW=$!
started() { logged 'wwatchd: started: ' && [ "$(ours)" -ge "$WANT" ]; }
check "wwatchd starts and loads its $WANT rules" waited started

# The daemon's NETLINK_AUDIT (protocol 9) sockets: their port ids, through their inodes.
ports() {
    local inodes
    inodes=$(for f in /proc/"$WW"/fd/*; do readlink "$f"; done 2>/dev/null |
        sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | sort -u)
    awk -v inodes="$inodes" 'BEGIN { n = split(inodes, a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1 }
        NR > 1 && $2 == 9 && ($10 in want) { print $3 }' /proc/net/netlink
}
PORTS=$(ports | tr '\n' ' ')
echo "daemon's audit netlink ports: $PORTS"
check "both of the daemon's audit sockets are found" [ "$(echo "$PORTS" | wc -w)" = 2 ]

# The flood: nobody, with CAP_NET_ADMIN only (ambient), no audit capability.
# shellcheck disable=SC2086
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+net_admin \
    --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin \
    /usr/bin/python3 "$OUT/nlflood.py" "$SECS" $PORTS >"$OUT/flood.json" 2>"$OUT/flood.err" &
FLOOD=$!
sleep 1

# Multicast still arrives: a creation alerts.
setpriv --reuid=65534 --regid=65534 --clear-groups "$OUT/bin/scp" "/tmp/wwcflood-$T"
alerted() { grep -q "\"path\":\"/tmp/wwcflood-$T\"" "$ALERTS"; }
check "a creation during the flood alerts (the multicast stream still arrives)" waited alerted

# SIGHUP reload lists and applies our kernel rules: it must get its replies.
printf '[budget]\nmax_alerts = 7\n' >"$OUT/wwatchd.toml"
kill -HUP "$WW"
check "SIGHUP reloads during the flood" waited logged "SIGHUP: reloaded"
check "the reload had no netlink error" bash -c "! grep -E 'ENOBUFS|no reply within|SIGHUP: .*(failed|error)' '$LOG'"

# An auditd-style removal of one of our rules, by key: reconciled back within 2 s.
auditctl -D -k wwatchd-d-tmp-b64 >/dev/null
back() { [ "$(ours)" -ge "$WANT" ]; }
back_within_2s() { WAIT=20 waited back; }
check "a removed rule is loaded again within 2 s during the flood" back_within_2s

# SIGTERM while the flood still runs.
check "the flood is still running at SIGTERM" kill -0 "$FLOOD"
kill -TERM "$WW"
wait "$WW"
rc=$?
WW=
check "wwatchd exits 0 at SIGTERM during the flood" [ "$rc" = 0 ]
check "no wwatchd-d-* rule is left" [ "$(ours)" = 0 ]
check "its removal reported no error" bash -c "! grep -q 'cannot remove our kernel rules' '$LOG'"
wait "$FLOOD"
FLOOD=
echo "flood: $(cat "$OUT/flood.json" 2>/dev/null) $(cat "$OUT/flood.err" 2>/dev/null)"
flood_refused() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["refused"] > 0 and d["sent"] == 0 and d["full"] == 0 else 1)' "$OUT/flood.json"
}
check "the kernel refused every forged datagram (ECONNREFUSED), none was queued" flood_refused
foreign_zero() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("status: foreign", d["counters"]["foreign"], "state", d["state"]); sys.exit(0 if d["counters"]["foreign"] == 0 and d["state"] == "stopped" else 1)' "$OUT/status.json"
}
check "the status file has foreign = 0" foreign_zero

echo "control_flood: $pass passed, $fail failed"
[ "$fail" = 0 ]
