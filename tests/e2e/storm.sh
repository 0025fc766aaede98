#!/usr/bin/env bash
# End-to-end storm and fault test of `wwatchd run` on the real kernel, beside a real auditd
# that logs every execve on the host, delivering to a real rsyslog.
#
# A creation storm runs in every phase: processes named after listed tools (copies of touch
# named rsync, scp and sftp-server, run as uid 65534), whose creations in a /tmp directory
# alert, and plain touch and cp, whose creations do not. During the storm a fault is injected:
#
#   p1  none; the alert budget (50 per 10 s) holds alerts back and a summary reports them
#   p2  auditctl -D (auditd's reload): our rules are back within 2 s, the test restores its own
#   p3  auditd is stopped and started again (its augenrules -D included)
#   p4  an administrator's `auditctl -e 0`, then `auditctl -e 1`
#   p5  SIGKILL of wwatchd, and a restart
#   p6  SIGTERM
#   p7  a tiny receive buffer (--rcvbuf 4096): ENOBUFS
#   p8  the syslog socket (a stand-in for /dev/log) is missing, then appears
#
# The test lists what was created (the directory itself, with each file's mtime) and accounts
# for every listed-tool file: it has an alert, or the budget held it back (the summaries'
# counts), or it was created while no detection was possible (a fault window the test marks,
# and the daemon diagnosed), or the daemon counted a loss and said so in syslog. Anything else
# is a failure, as is any alert for a plain creation, a duplicate alert, a wwatchd RSS over
# WW_STORM_MAX_RSS_KB, a change to auditd's pid (outside p3) or to its rules, or our rules
# left behind. Run as root. Prints a per-phase accounting table and "storm: N passed, M
# failed"; exits non-zero on any failure.
#   WW_STORM_SECONDS   storm length of each phase (default 6)
#   WW_STORM_MAX_RSS_KB  bound on wwatchd's RSS (default 65536)
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
SECS=${WW_STORM_SECONDS:-6}
MAX_RSS=${WW_STORM_MAX_RSS_KB:-65536}
K=10 # files per process
OUT=$(mktemp -d /run/wwatchd-e2e-storm.XXXXXX)
DROP=$(mktemp -d /tmp/wwstorm.XXXXXX)
COLLECT=$OUT/collect.log
UCOLLECT=$OUT/collect-unix.log
USOCK=$OUT/devlog/log
STATUS=$OUT/status.json
CONF=$OUT/wwatchd.toml
MARKS=$OUT/marks
EXEC_KEY=wwstorm-exec
# Every rule that is not ours, as auditctl lists it.
theirs() { auditctl -l | grep -v -e 'key=wwatchd-d-' -e '^No rules' || true; }
auditd_pid() { auditctl -s | awk '$1 == "pid" {print $2}'; }
enabled() { auditctl -s | awk '$1 == "enabled" {print $2}'; }
mark() { echo "$1 $2 $(date +%s%N)" >>"$MARKS"; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

WW=
STORM=
SAMPLER=
cleanup() {
    [ -n "$STORM" ] && kill "$STORM" 2>/dev/null && wait "$STORM" 2>/dev/null
    [ -n "$WW" ] && kill -TERM "$WW" 2>/dev/null && wait "$WW" 2>/dev/null
    touch "$OUT/stop-rss"
    [ -n "$SAMPLER" ] && wait "$SAMPLER" 2>/dev/null
    "$BIN" rules remove >/dev/null 2>&1
    auditctl -D -k "$EXEC_KEY" >/dev/null 2>&1
    ww_stop_all >/dev/null 2>&1
    rm -rf "$DROP"
}
trap cleanup EXIT

{ ww_install_packages && ww_start_auditd && ww_start_rsyslog "$COLLECT"; } >"$OUT/env.log" 2>&1 ||
    { cat "$OUT/env.log"; echo "storm: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet
# How many kernel rules the defaults give (three per watched directory and arch).

# auditd logs every execve on the host during the storm: the test's own rules, by key.
ORIG_THEIRS=$(theirs)
for arch in b64 b32; do
    auditctl -a always,exit -F arch=$arch -S execve -k "$EXEC_KEY" >/dev/null
done
THEIRS_BEFORE=$(theirs)
theirs >"$OUT/theirs.rules"
AUDITD_PID=$(auditd_pid)
ENABLED_BEFORE=$(enabled)
WE_STARTED_AUDITD=no
[ -e "$WW_E2E_DIR/auditd.started" ] && WE_STARTED_AUDITD=yes

# The listed tools are copies of touch under their names; the storm runs as nobody.
chmod 755 "$OUT"
mkdir -p "$OUT/bin"
for t in rsync scp sftp-server; do cp /usr/bin/touch "$OUT/bin/$t"; done
chmod 755 "$OUT/bin" "$OUT"/bin/*
chmod 1777 "$DROP"
head -c 512 /dev/urandom >"$OUT/src.bin"
chmod 644 "$OUT/src.bin"
TOOLS=(rsync scp sftp-server)
# PHASE: create files until $OUT/stop-PHASE exists. Each round: K files by a listed tool
# (PHASE-L-ROUND-J), K by touch (PHASE-P-ROUND-J) and one by cp (PHASE-C-ROUND): three
# processes, six execve (setpriv and the program) that auditd logs too.
storm() {
    local ph=$1 i=0
    while [ ! -e "$OUT/stop-$ph" ]; do
        i=$((i + 1))
        # shellcheck disable=SC2046
        as_nobody "$OUT/bin/${TOOLS[i % 3]}" $(seq -f "$DROP/$ph-L-$i-%g" "$K")
        # shellcheck disable=SC2046
        as_nobody /usr/bin/touch $(seq -f "$DROP/$ph-P-$i-%g" "$K")
        as_nobody /bin/cp "$OUT/src.bin" "$DROP/$ph-C-$i"
    done
}
storm_start() { mark "$1" storm-start; storm "$1" & STORM=$!; }
storm_stop() { touch "$OUT/stop-$1"; wait "$STORM"; STORM=; mark "$1" storm-stop; }

# NAME OUTPUT SPOOL [ARGS...]: start wwatchd and wait until it says it started.
start() {
    local name=$1 output=$2 spool=$3 i
    shift 3
    "$BIN" run --config "$CONF" --output "$output" --status-file "$STATUS" --spool-dir "$spool" \
        --summary-interval 5 "$@" >>"$OUT/wwatchd-$name.log" 2>&1 &
    WW=$!
    echo "$WW" >"$OUT/ww.pid"
    echo "$name $WW" >>"$OUT/instances"
    for ((i = 0; i < 100; i++)); do
        grep -q '^wwatchd: started: ' "$OUT/wwatchd-$name.log" && [ "$(ours)" -ge "$NRULES" ] && return 0
        kill -0 "$WW" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
stop_term() { # SIGTERM, and the exit status is 0
    local rc
    kill -TERM "$WW"
    wait "$WW"
    rc=$?
    WW=
    [ "$rc" = 0 ]
}

# Wait until nothing new reached either collector for 3 s (at most 60 s), then for a status
# file written after that, and keep it as status-PHASE.json.
settle() {
    local ph=$1 last= now i t0
    for ((i = 0; i < 600; i++)); do
        now=$(cat "$COLLECT" "$UCOLLECT" 2>/dev/null | wc -c)
        if [ "$now" = "$last" ]; then
            [ $((i - ${t0:-i})) -ge 30 ] && break
        else
            last=$now
            t0=$i
        fi
        sleep 0.1
    done
    snapshot "$ph"
}
snapshot() { # PHASE: a status file written from now on, kept as status-PHASE.json
    local since i
    since=$(date +%s.%N)
    for ((i = 0; i < 80; i++)); do
        if [ -n "$WW" ] && python3 -c 'import os,sys; sys.exit(0 if os.stat(sys.argv[1]).st_mtime > float(sys.argv[2]) else 1)' \
            "$STATUS" "$since" 2>/dev/null; then
            cp "$STATUS" "$OUT/status-$1.json"
            return 0
        fi
        sleep 0.1
    done
    cp "$STATUS" "$OUT/status-$1.json" 2>/dev/null
    return 1
}
# Our rules are loaded again within 2 s.
back_within_2s() {
    local i
    for ((i = 0; i < 20; i++)); do
        [ "$(ours)" -ge "$NRULES" ] && return 0
        sleep 0.1
    done
    return 1
}
restore_theirs() { # as auditd's reload would: the rules it had, ours excepted
    auditctl -R "$OUT/theirs.rules" >/dev/null
}
logged() { # FILE TEXT [TENTHS]: TEXT appears in FILE within TENTHS/10 s
    local i
    for ((i = 0; i < ${3:-100}; i++)); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# wwatchd's resident memory, sampled while it runs.
rss_sampler() {
    local p
    while [ ! -e "$OUT/stop-rss" ]; do
        p=$(cat "$OUT/ww.pid" 2>/dev/null)
        [ -n "$p" ] && awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null >>"$OUT/rss"
        sleep 0.2
    done
}
rss_sampler &
SAMPLER=$!

T0=$(date +%s)
printf '[budget]\nmax_alerts = 50\nwindow = 10\n' >"$CONF"
chmod 644 "$CONF"
NRULES=$(ww_kernel_rules "$CONF") || { echo "storm: 0 passed, 1 failed"; exit 1; }

# --- p1: the budget holds alerts back; one summary per window says how many.
check "wwatchd starts beside auditd (pid $AUDITD_PID) and loads its $NRULES rules" \
    start A "tcp://127.0.0.1:$WW_SYSLOG_PORT" "$OUT/spool"
storm_start p1
sleep "$SECS"
storm_stop p1
budget_summarised() { # the summaries' counts add up to the status file's budget_suppressed
    python3 - "$COLLECT" "$STATUS" <<'EOF'
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if '"alert-budget-summary"' in line:
        b = json.loads(line[line.index("{"):])["wwatchd"]["budget"]
        # The closing summaries hold the totals; a `started` one is said at once, midway.
        if b["phase"] == "closed":
            n += b["suppressed"]
s = json.load(open(sys.argv[2]))["counters"]["budget_suppressed"]
sys.exit(0 if n > 0 and n == s else 1)
EOF
}
waited() { local i; for ((i = 0; i < ${WAIT:-300}; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
check "the budget window closes with a summary" waited budget_summarised
settle p1
# From here on no budget, so every listed creation is accounted for file by file.
printf '[budget]\nmax_alerts = 0\n' >"$CONF"
kill -HUP "$WW"
check "SIGHUP: no budget from now on" logged "$OUT/wwatchd-A.log" "SIGHUP: reloaded $CONF: 2 detection rules, 0 exceptions, no alert budget"

# --- p2: auditctl -D during the storm (auditd's reload does this).
storm_start p2
sleep 2
check "auditd's pid is unchanged before auditctl -D" [ "$(auditd_pid)" = "$AUDITD_PID" ]
mark p2 fault-begin
auditctl -D >/dev/null
check "our rules are back within 2 s after auditctl -D, during the storm" back_within_2s
mark p2 fault-end
restore_theirs
sleep 2
storm_stop p2
settle p2

# --- p3: auditd stops and starts again, as `systemctl restart auditd` does (augenrules -D).
storm_start p3
sleep 2
mark p3 fault-begin
ww__term "$AUDITD_PID"
check "auditd is gone" [ "$(auditd_pid)" = 0 ]
mark p3 auditd-down
ww_start_auditd >>"$OUT/env.log" 2>&1
mark p3 auditd-up
check "our rules are back within 2 s after auditd's start (its -D)" back_within_2s
mark p3 fault-end
restore_theirs
[ "$WE_STARTED_AUDITD" = no ] && rm -f "$WW_E2E_DIR/auditd.started" "$WW_E2E_DIR/auditd.enabled_before"
NEW_AUDITD=$(auditd_pid)
restarted() { [ "$NEW_AUDITD" != 0 ] && [ "$NEW_AUDITD" != "$AUDITD_PID" ]; }
check "auditd runs again (pid $NEW_AUDITD)" restarted
AUDITD_PID=$NEW_AUDITD
check "wwatchd still runs after auditd's restart" kill -0 "$WW"
sleep 2
storm_stop p3
settle p3

# --- p4: an administrator disables audit, then enables it again.
storm_start p4
sleep 2
mark p4 fault-begin
auditctl -e 0 >/dev/null
mark p4 off
check "wwatchd warns that audit was disabled by someone else" \
    logged "$COLLECT" "kernel audit was disabled by someone else" 50
check "its periodic summary keeps warning while audit is off" \
    logged "$COLLECT" "KERNEL AUDIT DISABLED by someone else" 100
check "wwatchd leaves audit disabled (the administrator's decision)" [ "$(enabled)" = 0 ]
mark p4 on
auditctl -e 1 >/dev/null
mark p4 fault-end
check "wwatchd notices that audit is enabled again" logged "$COLLECT" "kernel audit is enabled again" 50
sleep 2
storm_stop p4
settle p4

# --- p5: SIGKILL during the storm, then a restart.
storm_start p5
sleep 2
cp "$STATUS" "$OUT/status-p5-killed.json"
mark p5 fault-begin
kill -KILL "$WW"
wait "$WW" 2>/dev/null
WW=
mark p5 killed
check "our rules stay after SIGKILL ($NRULES)" [ "$(ours)" = "$NRULES" ]
sleep 1
mark p5 relaunch
check "wwatchd starts again after SIGKILL, during the storm" \
    start B "tcp://127.0.0.1:$WW_SYSLOG_PORT" "$OUT/spool"
mark p5 fault-end
check "no duplicate rules after the restart" [ "$(ours)" = "$NRULES" ]
check "the restarted wwatchd reports that the previous run did not stop cleanly" \
    logged "$COLLECT" "did not stop cleanly" 50
sleep 2
storm_stop p5
settle p5

# --- p6: SIGTERM during the storm.
storm_start p6
sleep 2
mark p6 fault-begin
check "SIGTERM during the storm exits 0" stop_term
mark p6 stopped
cp "$STATUS" "$OUT/status-p6.json"
check "our rules are gone after SIGTERM" [ "$(ours)" = 0 ]
check "audit stays enabled (as found)" [ "$(enabled)" = 1 ]
sleep 1
storm_stop p6

# --- p7: a tiny receive buffer: ENOBUFS, counted and reported.
check "wwatchd starts with --rcvbuf 4096" \
    start C "tcp://127.0.0.1:$WW_SYSLOG_PORT" "$OUT/spool" --rcvbuf 4096
storm_start p7
sleep "$SECS"
storm_stop p7
settle p7
check "the tiny buffer overflowed (enobufs > 0 in the status file)" \
    python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["counters"]["enobufs"] > 0 else 1)' "$OUT/status-p7.json"
check "a loss: diagnostic reports ENOBUFS in syslog" logged "$COLLECT" "loss: enobufs +" 100
check "SIGTERM after the overflow exits 0" stop_term
cp "$STATUS" "$OUT/status-p7.json"

# --- p8: the syslog socket is missing; alerts wait in the spool; then it appears.
rm -rf "$OUT/devlog"
mkdir -p "$OUT/devlog"
check "wwatchd starts with its syslog socket missing" \
    start D "unix:$USOCK?format=rfc5424" "$OUT/spool-unix"
storm_start p8
sleep 3
check "wwatchd runs on without its socket" kill -0 "$WW"
spooled() { python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["counters"]["spooled"] > 0 else 1)' "$STATUS"; }
check "alerts go to the disk spool while the socket is missing" waited spooled
mark p8 socket-up
ww_start_rsyslog_unix "$USOCK" "$UCOLLECT" >>"$OUT/env.log" 2>&1
sleep 2
storm_stop p8
all_p8() { # every p8 listed file has reached the collector
    local want got
    want=$(find "$DROP" -name 'p8-L-*' | wc -l)
    got=$(grep -c "$DROP/p8-L-" "$UCOLLECT" 2>/dev/null)
    [ "$got" -ge "$want" ]
}
WAIT=600 check "after the socket appears the spooled and new alerts arrive" waited all_p8
settle p8
check "the spool is empty" python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["counters"]["spool_pending"] == 0 else 1)' "$OUT/status-p8.json"
check "final SIGTERM exits 0" stop_term
cp "$STATUS" "$OUT/status-p8.json"
ww_stop_rsyslog_unix

# --- The end: audit exactly as found.
check "our rules are gone at exit" [ "$(ours)" = 0 ]
check "auditd's pid is unchanged since its restart in p3" [ "$(auditd_pid)" = "$AUDITD_PID" ]
check "auditd's rules are as before the storm" [ "$(theirs)" = "$THEIRS_BEFORE" ]
auditctl -D -k "$EXEC_KEY" >/dev/null
check "the test's execve rules are deleted by key" [ "$(theirs)" = "$ORIG_THEIRS" ]
check "audit enabled as found ($ENABLED_BEFORE)" [ "$(enabled)" = "$ENABLED_BEFORE" ]
touch "$OUT/stop-rss"
wait "$SAMPLER"
SAMPLER=
max_rss=$(sort -n "$OUT/rss" | tail -1)
bounded() { [ -n "$max_rss" ] && [ "$max_rss" -lt "$MAX_RSS" ]; }
check "wwatchd's RSS stays under $MAX_RSS kB (max ${max_rss:-?} kB, $(wc -l <"$OUT/rss") samples)" bounded

# --- Accounting, from the files themselves and what reached the collectors.
NRULES=$NRULES python3 - "$OUT" "$DROP" >"$OUT/verdicts" <<'EOF'
import json, os, re, sys
out, drop = sys.argv[1], sys.argv[2]
# File times (and the kernel's event stamps) come from a coarse clock: at most one tick behind
# the time date +%s%N gives, never ahead. So a file whose mtime is after a mark was created
# after it, and one whose mtime is more than FUZZ before a mark was created before it.
FUZZ = 20_000_000  # ns

marks = {}
for line in open(f"{out}/marks"):
    ph, name, t = line.split()
    marks[(ph, name)] = int(t)
pids = {}
for line in open(f"{out}/instances"):
    name, pid = line.split()
    pids[name] = pid

files = {}  # phase -> kind -> {path: mtime_ns}
for name in os.listdir(drop):
    m = re.fullmatch(r"(p\d)-([LPC])-.*", name)
    if not m:
        continue
    st = os.stat(os.path.join(drop, name))
    files.setdefault(m[1], {}).setdefault(m[2], {})[os.path.join(drop, name)] = st.st_mtime_ns

alerts, summaries, diags, foreign, badjson = {}, [], [], [], 0
for coll in ("collect.log", "collect-unix.log"):
    try:
        lines = open(f"{out}/{coll}", encoding="utf-8", errors="replace").read().splitlines()
    except FileNotFoundError:
        continue
    for line in lines:
        parts = line.split(" ", 7)
        if len(parts) < 8 or parts[3] != "wwatchd":
            continue
        pid, msgid, msg = parts[4], parts[5], parts[7]
        if msgid == "diag":
            diags.append((pid, msg))
            continue
        try:
            doc = json.loads(msg)
        except ValueError:
            badjson += 1
            continue
        if doc["event"]["action"] == "alert-budget-summary":
            if doc["wwatchd"]["budget"]["phase"] == "closed":
                summaries.append(doc["wwatchd"]["budget"])
            continue
        path = doc["file"]["path"]
        if path.startswith(drop + "/"):
            alerts[path] = alerts.get(path, 0) + 1
        else:
            foreign.append(path)

def counters(name):
    try:
        return json.load(open(f"{out}/status-{name}.json"))["counters"]
    except (OSError, ValueError):
        return {}

LOSS = ["enobufs", "serial_gaps", "kernel_lost", "sink_drops",
        "sink_channel_drops", "spool_dropped", "spool_corrupt", "shutdown_unread"]
def delta(after, before):
    a, b = counters(after), counters(before) if before else {}
    return {k: a.get(k, 0) - b.get(k, 0) for k in LOSS + ["rule_reinstalls", "budget_suppressed"]}
# Loss counters per phase: differences of the status files of the same daemon.
deltas = {
    "p1": delta("p1", None), "p2": delta("p2", "p1"), "p3": delta("p3", "p2"),
    "p4": delta("p4", "p3"),
    "p5": {k: delta("p5-killed", "p4")[k] + delta("p5", None)[k] for k in delta("p5", None)},
    "p6": delta("p6", "p5"), "p7": delta("p7", None), "p8": delta("p8", None),
}
def diag_mentions(instance, text):
    return any(p == pids.get(instance) and text in m for p, m in diags)
def reported(instance, counter):  # a loss diagnostic of that daemon names the counter
    if counter == "shutdown_unread":
        return diag_mentions(instance, "kernel's backlog still held")
    return diag_mentions(instance, f"{counter} +")
inst = {"p1": "A", "p2": "A", "p3": "A", "p4": "A", "p5": "B", "p6": "B", "p7": "C", "p8": "D"}

def verdict(ok, what):
    print(("ok" if ok else "FAIL"), what)

rows = []
total_unaccounted = 0
for ph in ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"]:
    L = files.get(ph, {}).get("L", {})
    plain = {**files.get(ph, {}).get("P", {}), **files.get(ph, {}).get("C", {})}
    alerted = {p for p in L if alerts.get(p, 0) >= 1}
    dups = sum(1 for p in L if alerts.get(p, 0) > 1)
    false = sum(1 for p in plain if p in alerts)
    missing = {p: t for p, t in L.items() if p not in alerted}
    supp = sum(s["suppressed"] for s in summaries
               if s["file.path"]["top"] and os.path.basename(s["file.path"]["top"][0]["value"]).startswith(ph + "-"))
    d = deltas[ph]
    losses = {k: v for k, v in d.items() if k in LOSS and v > 0}
    nodetect, inflight, lost, unacc, cls = 0, 0, 0, 0, ""
    fb, fe = marks.get((ph, "fault-begin")), marks.get((ph, "fault-end"))
    if ph == "p1":
        # Counted, not per file: the budget decides which ones, the summary says how many.
        verdict(d["budget_suppressed"] == supp, f"p1: the summaries' suppressed counts ({supp}) equal budget_suppressed ({d['budget_suppressed']})")
        rest = len(missing) - supp
        if rest > 0 and losses:
            lost = rest
        else:
            unacc = rest
    else:
        verdict(d["budget_suppressed"] == 0 and supp == 0, f"{ph}: no budget, nothing held back")
        for p, t in missing.items():
            if ph == "p5" and t < marks[("p5", "fault-begin")]:
                inflight += 1
            elif fb is not None and fb - FUZZ <= t <= (fe if fe is not None else 1 << 63):
                nodetect += 1
            elif losses:
                lost += 1
            else:
                unacc += 1
        cls = {"p2": "rules deleted", "p3": "auditd restart", "p4": "audit off",
               "p5": "daemon killed", "p6": "after SIGTERM"}.get(ph, "")
    if ph == "p5":
        # Only the newest creations before SIGKILL may miss their alert: those still in flight.
        pre = [t for p, t in L.items() if t < marks[("p5", "fault-begin")]]
        last_ok = max((t for p, t in L.items() if p in alerted and t < marks[("p5", "fault-begin")]), default=0)
        first_miss = min((t for p, t in missing.items() if t < marks[("p5", "fault-begin")]), default=1 << 63)
        verdict(first_miss > last_ok - FUZZ, f"p5: before SIGKILL only the newest creations miss alerts ({inflight} in flight, of {len(pre)})")
        verdict(diag_mentions("B", "did not stop cleanly"), "p5: the restarted daemon diagnosed the unclean stop")
        inside = [p for p, t in L.items() if marks[("p5", "killed")] < t < marks[("p5", "relaunch")] - FUZZ]
        verdict(not any(p in alerted for p in inside), f"p5: no alert for the {len(inside)} files created while no wwatchd ran")
    if ph == "p4":
        inside = [p for p, t in L.items() if marks[("p4", "off")] < t < marks[("p4", "on")] - FUZZ]
        verdict(len(inside) > 0 and not any(p in alerted for p in inside), f"p4: no alert for the {len(inside)} files created while audit was off")
        verdict(diag_mentions("A", "kernel audit was disabled by someone else"), "p4: the warning came from the running daemon")
        verdict(counters("p4").get("audit_disabled") == 1 and counters("p4").get("audit_enabled") == 1,
                "p4: the status file counts audit_disabled 1, and audit_enabled is 1 again")
    if ph in ("p2", "p3"):
        verdict(d["rule_reinstalls"] >= int(os.environ["NRULES"]) and diag_mentions("A", "rule_reinstalls +"), f"{ph}: rule_reinstalls +{d['rule_reinstalls']}, reported in a loss: diagnostic")
    if ph == "p7":
        verdict(all(reported("C", k) for k in losses), f"p7: every loss counter that rose ({', '.join(f'{k} +{v}' for k, v in losses.items())}) is in a loss: diagnostic")
    if ph == "p8":
        verdict(not missing, f"p8: every alert of the {len(L)} listed creations arrived after the socket appeared")
    for k, v in losses.items():
        verdict(reported(inst[ph], k) or (ph == "p5" and reported("A", k)),
                f"{ph}: {k} +{v} is reported in a loss: diagnostic")
    verdict(len(L) > 0 and len(plain) > 0, f"{ph}: the storm created files ({len(L)} listed, {len(plain)} plain)")
    verdict(dups == 0, f"{ph}: no duplicate alerts ({dups})")
    verdict(false == 0, f"{ph}: no alert for the {len(plain)} plain creations ({false})")
    verdict(unacc == 0, f"{ph}: every listed creation is accounted for ({unacc} unaccounted)")
    total_unaccounted += unacc
    rows.append((ph, len(L), len(alerted), supp, nodetect, cls, inflight, lost,
                 ", ".join(f"{k} +{v}" for k, v in losses.items()) or "-", unacc, len(plain), false))
verdict(badjson == 0, f"every collected alert is valid JSON ({badjson} bad)")
verdict(not foreign, f"no alert outside the storm's directory ({foreign[:3]})")
# Every loss a daemon counted reached syslog: its last word (the stopping summary) says so.
for name in ("B", "C", "D"):
    c = counters({"B": "p6", "C": "p7", "D": "p8"}[name])
    stopping = [m for p, m in diags if p == pids.get(name) and m.startswith("stopping:")]
    said = dict(kv.split("=", 1) for kv in stopping[-1].split("; ", 1)[1].split() if "=" in kv) if stopping else {}
    verdict(bool(stopping) and all(str(c.get(k)) == said.get(k) for k in LOSS),
            f"instance {name}: the stopping diagnostic repeats the status file's loss counters")
with open(f"{out}/table", "w") as f:
    head = ["phase", "listed", "alerted", "budget-held", "no-detection (why)", "in-flight",
            "lost (counted)", "loss counters", "unaccounted", "plain", "false alerts"]
    f.write("\t".join(head) + "\n")
    for r in rows:
        cells = [r[0], r[1], r[2], r[3], f"{r[4]} ({r[5] or '-'})", r[6], r[7], r[8], r[9], r[10], r[11]]
        f.write("\t".join(str(c) for c in cells) + "\n")
EOF
while read -r v what; do
    if [ "$v" = ok ]; then ok "$what"; else bad "$what"; fi
done <"$OUT/verdicts"
echo "--- accounting per phase (listed-tool creations; plain ones must never alert)"
column -t -s "$(printf '\t')" "$OUT/table" 2>/dev/null || cat "$OUT/table"
if [ "$fail" -gt 0 ]; then
    for f in "$OUT"/wwatchd-*.log; do echo "--- $f"; tail -15 "$f"; done
fi
echo "     $(($(date +%s) - T0)) s; max RSS ${max_rss:-?} kB"
# The collected messages and spools are large (tens of MB in /run); kept only on failure.
[ "$fail" = 0 ] && rm -rf "$COLLECT" "$UCOLLECT" "$OUT/spool" "$OUT/spool-unix"
echo "storm: $pass passed, $fail failed (logs in $OUT)"
[ "$fail" = 0 ]
