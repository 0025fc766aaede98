#!/usr/bin/env bash
# End-to-end test of `wwatchd run` on the real kernel, beside a real auditd, with real
# scp/sftp/rsync/FTP sessions over loopback by non-root users, delivering to a real rsyslog.
# Run as root (tools/test-all.sh does). Prints "N passed, N failed" and exits non-zero on
# any failure. Touches only rules keyed wwatchd-d-*, except the one `auditctl -D` that
# simulates auditd's reload.
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
OUT=$(mktemp -d /run/wwatchd-e2e-live.XXXXXX)
COLLECT=$OUT/collect.log
theirs() { auditctl -l | grep -v -e 'key=wwatchd-d-' -e '^No rules' || true; }

WW=
cleanup() {
    ww_end_daemon
    ww_stop_all >/dev/null 2>&1
    rm -f /tmp/wwe2e-* /var/tmp/wwe2e-* /dev/shm/wwe2e-* /home/wwalice/wwe2e-* 2>/dev/null
    rm -rf /tmp/wwe2e-sftpdir-* /tmp/.wwe2e-* 2>/dev/null
}
trap cleanup EXIT

ww_start_all >"$OUT/env.log" 2>&1 || { cat "$OUT/env.log"; echo "0 passed, 1 failed"; exit 1; }
ww_start_rsyslog "$COLLECT" >>"$OUT/env.log" 2>&1 || { cat "$OUT/env.log"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet

AUDITD_PID=$(auditctl -s | awk '/^pid/{print $2}')
THEIRS_BEFORE=$(theirs)
CONF=$OUT/wwatchd.toml
# How many kernel rules the defaults give (three per watched directory and arch).
printf '# e2e: the defaults\n' >"$CONF"
chmod 644 "$CONF"
NRULES=$(ww_kernel_rules "$CONF") || { echo "0 passed, 1 failed"; exit 1; }
start() {
    "$BIN" run --config "$CONF" --output "tcp://127.0.0.1:$WW_SYSLOG_PORT" --status-file "$OUT/status.json" \
        --spool-dir "$OUT/spool" >>"$OUT/wwatchd.log" 2>&1 &
    WW=$!
    for _ in $(seq 50); do [ "$(ours)" -ge "$NRULES" ] && return 0; sleep 0.1; done
    return 1
}
check "wwatchd run starts and loads its $NRULES kernel rules" start
check "auditd keeps its pid ($AUDITD_PID)" [ "$(auditctl -s | awk '/^pid/{print $2}')" = "$AUDITD_PID" ]

T=$$
src=$OUT/src.bin
head -c 4096 /dev/urandom >"$src"
chmod 644 "$src"
chmod 755 "$OUT"
SSH=(-q -F "$WW_SSH_CONFIG")

# Positives: each must give exactly one alert, with the session's source address where the
# file was created inside an sshd session.
ww_as wwalice scp "${SSH[@]}" "$src" "wwalice@127.0.0.1:/tmp/wwe2e-scp-$T.bin"
ww_as wwalice scp -O "${SSH[@]}" "$src" "wwalice@127.0.0.1:/var/tmp/wwe2e-scpO-$T.bin"
printf 'put %s /dev/shm/wwe2e-sftp-%s.bin\nmkdir /tmp/wwe2e-sftpdir-%s\nsymlink /etc/hostname /tmp/wwe2e-sftplink-%s\n' \
    "$src" "$T" "$T" "$T" >"$OUT/batch"
chmod 644 "$OUT/batch"
ww_as wwalice sftp "${SSH[@]}" -b "$OUT/batch" wwalice@127.0.0.1 >/dev/null
ww_as wwalice rsync -e "ssh ${SSH[*]}" "$src" "wwalice@127.0.0.1:/tmp/wwe2e-rsync-$T.bin"
ww_as wwalice lftp -u "wwalice,$WW_PASSWORD" -p "$WW_FTP_PORT" \
    -e "set ftp:passive-mode on; put $src -o /tmp/wwe2e-ftpup-$T.bin; bye" 127.0.0.1 >/dev/null
(cd /tmp && printf 'user wwalice %s\nbinary\nget %s wwe2e-ftpget-%s.bin\nbye\n' "$WW_PASSWORD" "$src" "$T" |
    ww_as wwalice ftp -n -p 127.0.0.1 "$WW_FTP_PORT" >/dev/null)
ww_as wwalice ssh-agent bash -c "ssh-add -q $WW_E2E_DIR/keys/wwalice/id_ed25519 && ssh -A ${SSH[*]} wwalice@127.0.0.1 true"
# Negatives.
scp "${SSH[@]}" -i "$WW_E2E_DIR/keys/root/id_ed25519" "$src" "root@127.0.0.1:/tmp/wwe2e-root-$T.bin" 2>/dev/null
ww_as wwbob cp "$src" "/tmp/wwe2e-cp-$T.bin"
ww_as wwalice scp "${SSH[@]}" "$src" "wwalice@127.0.0.1:wwe2e-home-$T.bin"
sleep 2.5 # the correlator's 2 s time-out and the sink

python3 - "$COLLECT" "$T" >"$OUT/verdicts" <<'EOF'
import fnmatch, json, sys
collect, t = sys.argv[1], sys.argv[2]
docs, bad = [], 0
for line in open(collect, encoding="utf-8", errors="replace"):
    # rsyslog writes the raw message: "<PRI>1 TS HOST wwatchd PID MSGID - JSON"
    if " wwatchd " not in line or " alert - " not in line:
        continue
    try:
        docs.append(json.loads(line.split(" alert - ", 1)[1]))
    except ValueError:
        bad += 1
print("json", "ok" if bad == 0 else "bad")
want = [  # (path glob, process.name, needs source.ip)
    (f"/tmp/wwe2e-scp-{t}.bin", "sftp-server", True),
    (f"/var/tmp/wwe2e-scpO-{t}.bin", "scp", True),
    (f"/dev/shm/wwe2e-sftp-{t}.bin", "sftp-server", True),
    (f"/tmp/wwe2e-sftpdir-{t}", "sftp-server", True),
    (f"/tmp/wwe2e-sftplink-{t}", "sftp-server", True),
    (f"/tmp/.wwe2e-rsync-{t}.bin.*", "rsync", True),
    (f"/tmp/wwe2e-ftpup-{t}.bin", "vsftpd", True),  # by pid: vsftpd gives no audit session
    (f"/tmp/wwe2e-ftpget-{t}.bin", "ftp", False),
]
for glob, proc, src in want:
    hits = [d for d in docs if fnmatch.fnmatchcase(d.get("file", {}).get("path", ""), glob)]
    good = len(hits) == 1 and hits[0]["process"]["name"] == proc
    if good and src:
        good = hits[0].get("source", {}).get("ip") == "127.0.0.1"
    print("alert", glob, proc, "ok" if good else f"bad({len(hits)} hits: {[h.get('process', {}).get('name') for h in hits]}, source {[h.get('source') for h in hits]})")
agent = [d for d in docs if d["process"]["name"] == "sshd" and fnmatch.fnmatchcase(d["file"]["path"], "/tmp/ssh-*")
         and d.get("source", {}).get("ip") == "127.0.0.1"]
print("alert", "/tmp/ssh-*", "sshd", "ok" if len(agent) >= 1 else "bad(0)")
for neg in (f"/tmp/wwe2e-root-{t}.bin", f"/tmp/wwe2e-cp-{t}.bin", f"/home/wwalice/wwe2e-home-{t}.bin"):
    n = sum(1 for d in docs if d.get("file", {}).get("path") == neg)
    print("none", neg, "ok" if n == 0 else f"bad({n})")
extra = [d["file"]["path"] for d in docs if f"-{t}" not in d.get("file", {}).get("path", "")
         and not d["file"]["path"].startswith("/tmp/ssh-")]
print("extra", "ok" if not extra else f"bad({extra})")
EOF
while read -r kind a b c; do
    case "$kind" in
    json) check "every collected alert is one valid JSON message" [ "$a" = ok ] ;;
    alert) check "alert for $a by $b with its source" [ "$c" = ok ] ;;
    none) check "no alert for $a" [ "$b" = ok ] ;;
    extra) check "no unexpected alerts" [ "$a" = ok ] ;;
    esac
done <"$OUT/verdicts"
grep -q ' bad' "$OUT/verdicts" && { echo "--- verdicts"; cat "$OUT/verdicts"; }

# SIGHUP reloads the whole configuration: an exception takes effect at once and is counted;
# a broken configuration is refused with FILE:LINE and the running one kept.
logged() { for _ in $(seq 50); do grep -qF -- "$1" "$OUT/wwatchd.log" && return 0; sleep 0.1; done; return 1; }
printf '[[exception]]\nname = "e2e-sftp-excepted"\nprocess = "sftp-server"\npath = "/tmp/wwe2e-excepted-*"\n' >"$CONF"
kill -HUP "$WW"
check "SIGHUP reloads the configuration" logged "SIGHUP: reloaded $CONF: 2 detection rules, 1 exceptions"
ww_as wwalice scp "${SSH[@]}" "$src" "wwalice@127.0.0.1:/tmp/wwe2e-excepted-$T.bin"
ww_as wwalice scp "${SSH[@]}" "$src" "wwalice@127.0.0.1:/tmp/wwe2e-notexcepted-$T.bin"
sleep 2.5
check "an exception loaded by SIGHUP suppresses its alert" [ "$(grep -c "wwe2e-excepted-$T" "$COLLECT")" = 0 ]
check "a drop the exception does not name still alerts" [ "$(grep -c "wwe2e-notexcepted-$T" "$COLLECT")" = 1 ]
counted() {
    for _ in $(seq 70); do
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["exceptions"].get("e2e-sftp-excepted") == 1 and d["counters"]["exception_suppressed"] == 1 else 1)' "$OUT/status.json" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
check "the status file counts the suppressed alert under the exception's name" counted
# The alert budget, live: 1 alert per 3 s window; suppression starting is said at once (a
# `started` summary naming wwalice), the window closes on the clock (no later alert needed)
# and one `closed` summary alert reports the 2 held back.
printf '[budget]\nmax_alerts = 1\nwindow = 3\n' >"$CONF"
kill -HUP "$WW"
check "SIGHUP loads the budget" logged "budget 1 alerts per 3 s per rule"
printf 'put %s /tmp/wwe2e-budget-1-%s.bin\nput %s /tmp/wwe2e-budget-2-%s.bin\nput %s /tmp/wwe2e-budget-3-%s.bin\n' \
    "$src" "$T" "$src" "$T" "$src" "$T" >"$OUT/batch2"
chmod 644 "$OUT/batch2"
ww_as wwalice sftp "${SSH[@]}" -b "$OUT/batch2" wwalice@127.0.0.1 >/dev/null
budget_verdict() {
    python3 - "$COLLECT" "$T" <<'EOF'
import json, sys
collect, t = sys.argv[1], sys.argv[2]
alerts = summaries = started = 0
for line in open(collect, encoding="utf-8", errors="replace"):
    if " wwatchd " not in line or " alert - " not in line:
        continue
    d = json.loads(line.split(" alert - ", 1)[1])
    if d["event"]["action"] == "alert-budget-summary":
        b = d["wwatchd"]["budget"]
        paths = [x["value"] for x in b["file.path"]["top"]]
        if not all(f"-{t}.bin" in p for p in paths):
            continue
        if b["phase"] == "started" and b["actor"].startswith("wwalice") and b["suppressed"] == 1:
            started += 1
        elif b["phase"] == "closed" and b["suppressed"] == 2 and b["sent"] == 1 and len(paths) == 2:
            summaries += 1
    elif f"/tmp/wwe2e-budget-" in d["file"]["path"] and d["file"]["path"].endswith(f"-{t}.bin"):
        alerts += 1
sys.exit(0 if (alerts, started, summaries) == (1, 1, 1) else 1)
EOF
}
waited() { for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done; return 1; }
check "the budget sends 1 of 3 alerts, says at once that wwalice's are held back, then one summary of the 2" waited budget_verdict
printf '[budget]\nwindow = 0\n' >"$CONF"
kill -HUP "$WW"
check "a broken configuration is refused with file, line and key" \
    logged "SIGHUP: configuration not reloaded, keeping the running one: $CONF:2: key \`budget.window\`"
check "the daemon keeps running after a refused reload" kill -0 "$WW"
printf '# e2e: the defaults\n' >"$CONF"

check "auditd's pid is unchanged" [ "$(auditctl -s | awk '/^pid/{print $2}')" = "$AUDITD_PID" ]
check "auditd's own rules are untouched" [ "$(theirs)" = "$THEIRS_BEFORE" ]

# auditd's reload deletes every rule (-D): ours must be back within 2 s.
auditctl -D >/dev/null
back=no
for _ in $(seq 20); do sleep 0.1; [ "$(ours)" -ge "$NRULES" ] && { back=yes; break; }; done
check "our rules are back within 2 s after auditctl -D" [ "$back" = yes ]

# A crash leaves the rules; a restart must not duplicate them.
kill -KILL "$WW"; wait "$WW" 2>/dev/null; WW=
check "rules stay after SIGKILL ($NRULES)" [ "$(ours)" = "$NRULES" ]
check "restart after SIGKILL" start
check "no duplicate rules after the restart" [ "$(ours)" = "$NRULES" ]

kill -TERM "$WW"; wait "$WW"; rc=$?; WW=
check "SIGTERM exits 0" [ "$rc" = 0 ]
check "our rules are gone after SIGTERM" [ "$(ours)" = 0 ]
check "auditd's pid is still unchanged" [ "$(auditctl -s | awk '/^pid/{print $2}')" = "$AUDITD_PID" ]

if [ "$fail" -gt 0 ]; then
    echo "--- wwatchd log"; tail -30 "$OUT/wwatchd.log"
fi
echo "e2e: $pass passed, $fail failed"
[ "$fail" = 0 ]
