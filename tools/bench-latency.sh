#!/usr/bin/env bash
# Latency, loss, CPU and capacity of `wwatchd run` beside auditd, measured at a collector
# written for the benchmark (a benchmark, not a test: it asserts nothing and prints figures).
#
#   flock /run/wwatchd-kernel.lock tools/bench-latency.sh [--transport udp|tcp]
#       [--seconds S] [--loads "10 100 1000"] [--burst N B] [--capacity "R1 R2 ..."]
#       [--cap-seconds S] [--cap-procs P] [--cap-max-count N] [--idle S] [--floor "R ..."]
#       [--collector-rt]
#       [--out DIR]
#
# Phases, one after the other, against one daemon:
#   idle          --idle S seconds (default 10, 0: none) with no load: the daemon's wake-ups
#                 per second, per thread (context switches from /proc), printed as
#                 FIGURES idle seconds=S total_per_s=W THREAD=W...
#   steady loads  bench-creator (tools/bench-creator.c) run as uid 65534 under the name `rsync`
#                 (a listed tool: every creation alerts) creates R files per second in /tmp for
#                 S seconds (default 30), on a fixed schedule;
#   floor         for each rate R of --floor (default none), R files per second for S seconds
#                 as in the steady loads, with tools/bench-floor.c running beside the daemon:
#                 the least a multicast reader that alerts can do (poll, one recvmmsg of all
#                 queued records, one datagram per event, the size of wwatchd's median alert so
#                 far, to the same collector). The phase (fR) gives the daemon's CPU, the floor
#                 reader's and auditd's in the same seconds, and both latencies;
#   burst         B batches of N files as fast as the kernel lets them (default 20 × 2000, as
#                 tools/bench-live.sh), even batches by `rsync` (alert), odd ones by a copy named
#                 `wwplain` (do not);
#   capacity      for each rate R of --capacity, P creators (default 2) of R/P files per second
#                 each for --cap-seconds (default 10): does the daemon keep up, and where does
#                 the kernel start to slow the producers? The rate `max` runs P creators
#                 as fast as they can (--cap-max-count files each, default 40000), and a
#                 last step (`recovery`, 100/s for 5 s) shows whether the daemon is clean after.
#                 With `max`, once the daemon has stopped, a baseline: the same creators flat
#                 out with the daemon's derived kernel rules loaded by auditctl and auditd
#                 running, no wwatchd (FIGURES capacity-baseline created=.. seconds=..
#                 achieved=.. kernel_lost=.. backlog_wait_actual=..); the rules it added (not
#                 one already loaded) are deleted by their keys after it.
# Alerts go over --transport to tools/bench-collector.py on 127.0.0.1, which stamps each on
# receipt (kernel receive time, µs); each file's name carries its creation time, so latency is
# creation syscall → alert received. No alert budget. For every phase it prints one line
#   FIGURES latency phase=NAME transport=T rate=R created=N sent=N received=N p50_us=.. p99_us=..
#       max_us=.. floor_received=.. floor_p50_us=.. floor_p99_us=.. wwatchd_ticks=..
#       thread_ticks=THREAD:TICKS,... auditd_ticks=..
#       wwatchd_cpu_us=.. thread_cpu_us=THREAD:US,... auditd_cpu_us=.. floor_cpu_us=..
#       floor_bytes=.. wwatchd_wakes=.. auditd_wakes=.. floor_wakes=.. (voluntary context
#       switches: sleeps that ended) creations=.. alerts=.. losses=..
#       kernel_lost=.. backlog_wait_actual=.. late_p99_us=.. achieved=..
# where creations/alerts/losses are the daemon's own counter increases over the phase (losses:
# enobufs + serial_gaps + sink drops + UDP datagrams refused), kernel_lost and backlog_wait_actual
# the kernel's (`auditctl -s`), *_ticks CPU in clock ticks (/proc/PID/stat: sampled at each
# 4 ms scheduler tick, coarse for a thread that runs for microseconds at a time), *_cpu_us the
# scheduler's exact on-CPU time (/proc/PID/task/*/schedstat, ns) summed over the threads,
# late_p99_us how far behind schedule the creators ran (the
# machine's load or the kernel's backlog wait) and achieved the creation rate reached.
set -u
cd "$(dirname "$0")/.."
. tests/e2e/env.sh

TRANSPORT=udp
SECS=30
LOADS="10 100 1000"
BURST_N=2000
BURST_B=20
CAPACITY=""
CAP_SECS=10
CAP_PROCS=2
CAP_MAX_COUNT=40000
IDLE=10
COLLECTOR_RT=
FLOORS=""
KEEP=
while [ $# -gt 0 ]; do
    case $1 in
    --transport) TRANSPORT=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --loads) LOADS=$2; shift 2 ;;
    --burst) BURST_N=$2; BURST_B=$3; shift 3 ;;
    --capacity) CAPACITY=$2; shift 2 ;;
    --cap-seconds) CAP_SECS=$2; shift 2 ;;
    --cap-procs) CAP_PROCS=$2; shift 2 ;;
    --cap-max-count) CAP_MAX_COUNT=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --floor) FLOORS=$2; shift 2 ;;
    --collector-rt) COLLECTOR_RT=1; shift ;;
    --out) KEEP=$2; shift 2 ;;
    *) echo "usage: $0 [--transport udp|tcp] [--seconds S] [--loads \"R...\"] [--burst N B] [--capacity \"R...\"] [--cap-seconds S] [--cap-procs P] [--cap-max-count N] [--idle S] [--floor \"R...\"] [--collector-rt] [--out DIR]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-latency: run as root (under flock /run/wwatchd-kernel.lock)" >&2; exit 77; }
case $TRANSPORT in udp | tcp) ;; *) echo "bench-latency: --transport udp or tcp" >&2; exit 2 ;; esac

BIN=${WWATCHD_BIN:-target/release/wwatchd}
[ -x "$BIN" ] || cargo build --release --quiet
OUT=${KEEP:-$(mktemp -d /run/wwatchd-bench-lat.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
chmod 755 "$OUT"
# A reused --out directory: its figures are this run's only.
rm -f "$OUT/phases" "$OUT/collect.txt" "$OUT"/*.creator "$OUT"/*.threads[01] "$OUT"/*.cpu[01] "$OUT"/idle[01] "$OUT/collector.ready"
PORT=${WW_BENCH_PORT:-5516}
gcc -O2 -Wall -o "$OUT/rsync" tools/bench-creator.c || exit 1
cp "$OUT/rsync" "$OUT/wwplain"
if [ -n "$FLOORS" ]; then
    gcc -O2 -Wall -o "$OUT/bench-floor" tools/bench-floor.c || exit 1
fi
chmod 755 "$OUT/rsync" "$OUT/wwplain"
DIR=$(mktemp -d /tmp/wwbench-lat.XXXXXX)
chmod 1777 "$DIR"

WW= COLL= PERF= FLOOR= BASE_KEYS=
# Deletes the rules the baseline step loaded, by key (only ours).
base_rules_off() {
    local k
    for k in $BASE_KEYS; do auditctl -D -k "$k" >/dev/null 2>&1; done
    BASE_KEYS=
}
cleanup() {
    base_rules_off
    [ -n "$FLOOR" ] && kill -TERM "$FLOOR" 2>/dev/null && wait "$FLOOR" 2>/dev/null
    [ -n "$PERF" ] && kill -INT "$PERF" 2>/dev/null && wait "$PERF" 2>/dev/null
    [ -n "$WW" ] && kill -TERM "$WW" 2>/dev/null && wait "$WW" 2>/dev/null
    [ -n "$COLL" ] && kill -TERM "$COLL" 2>/dev/null && wait "$COLL" 2>/dev/null
    ww_stop_all >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT

ww_install_packages >/dev/null 2>&1
ww_start_auditd >"$OUT/env.log" 2>&1 || { cat "$OUT/env.log"; exit 1; }
ww__close_lock_fds
# The collector runs at the normal priority, as rsyslog does. A UDP datagram's receive time
# is the kernel's, whenever the collector reads it. A TCP read gives the newest segment's time
# to every message it takes, so a collector that falls behind reports later times, never
# earlier ones. --collector-rt runs it real-time (SCHED_FIFO 10), so it reads each message as
# it arrives; but then every alert wakes it on the sender's CPU, where it preempts the daemon
# (measured at 1,000/s: about one involuntary context switch per alert), which no collector
# running at the normal priority does.
COLL_PRIO=()
[ -n "$COLLECTOR_RT" ] && COLL_PRIO=(chrt -f 10)
"${COLL_PRIO[@]}" python3 tools/bench-collector.py "$PORT" "$OUT/collect.txt" "$OUT/collector.ready" 9>&- &
COLL=$!
ww__wait "[ -e '$OUT/collector.ready' ]" 50 || { echo "bench-latency: the collector did not start" >&2; exit 1; }

printf '[budget]\nmax_alerts = 0\n' >"$OUT/wwatchd.toml"
chmod 644 "$OUT/wwatchd.toml"
"$BIN" run --config "$OUT/wwatchd.toml" --output "$TRANSPORT://127.0.0.1:$PORT" \
    --status-file "$OUT/status.json" --spool-dir "$OUT/spool" 2>"$OUT/wwatchd.log" 9>&- &
WW=$!
ww__wait "[ -s '$OUT/status.json' ]" 100 || { echo "bench-latency: wwatchd did not start" >&2; cat "$OUT/wwatchd.log" >&2; exit 1; }
sleep 1
# WWATCHD_PERF=FILE: profile the daemon with perf over all phases (symbols need
# CARGO_PROFILE_RELEASE_DEBUG=line-tables-only at build time).
if [ -n "${WWATCHD_PERF:-}" ]; then
    perf record -q -g -o "$WWATCHD_PERF" -p "$WW" 2>/dev/null 9>&- &
    PERF=$!
    sleep 0.5
fi
AUDITD=$(auditctl -s | awk '$1 == "pid" {print $2}')

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Exact on-CPU time of every thread of a process, µs (the scheduler's runtime, not tick samples).
cpu_us() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{n += $1} END {printf "%d\n", n / 1000}'; }
# The floor reader's, 0 when it is not running.
floor_us() { if [ -n "$FLOOR" ]; then cpu_us "$FLOOR"; else echo 0; fi; }
# Wake-ups of a process: its threads' voluntary context switches (each one a sleep that ended).
wakes() { if [ -n "$1" ]; then cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {n += $2} END {print n + 0}'; else echo 0; fi; }
per_thread() { # FILE AWK: "THREAD VALUE" per thread of the daemon, AWK run on /proc/…/task/T/FILE
    local t name
    for t in /proc/"$WW"/task/*; do
        name=$(cat "$t/comm")
        [ "${t##*/}" = "$WW" ] && name=main
        echo "$name $(awk "$2" "$t/$1")"
    done
}
# CPU per thread (user + system clock ticks).
threads() { per_thread stat '{print $14 + $15}'; }
threads_us() { per_thread schedstat '{printf "%d\n", $1 / 1000}'; }
kstat() { auditctl -s | awk '$1 == "lost" {l = $2} $1 == "backlog_wait_time_actual" {w = $2} END {print l + 0, w + 0}'; }
# The daemon's counters, from a status file written after the phase ended (every 5 s).
counters() {
    local since=$1 i
    for i in $(seq 120); do
        [ "$(stat -c %Y "$OUT/status.json" 2>/dev/null || echo 0)" -gt "$since" ] && break
        sleep 0.1
    done
    python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["counters"]
loss = (c["enobufs"] + c["serial_gaps"] + c["sink_drops"] + c["sink_channel_drops"]
        + c.get("sink_refused", 0))
print(c["creations"], c["alerts"], loss)' "$OUT/status.json"
}

# phase NAME RATE -- COMMAND...: runs the creators (COMMAND, in the background each, their
# output to $OUT/NAME.creator) and records the phase's figures in $OUT/phases.
phase() {
    local name=$1 rate=$2
    shift 3
    local w0 a0 k0 c0 t0 t1 w1 a1 k1 c1 wu0 au0 wu1 au1 fu0 fu1 ww0 aw0 fw0 ww1 aw1 fw1
    w0=$(cpu "$WW") a0=$(cpu "$AUDITD") k0=$(kstat) c0=$(counters 0)
    wu0=$(cpu_us "$WW") au0=$(cpu_us "$AUDITD") fu0=$(floor_us)
    ww0=$(wakes "$WW") aw0=$(wakes "$AUDITD") fw0=$(wakes "$FLOOR")
    threads >"$OUT/$name.threads0"
    threads_us >"$OUT/$name.cpu0"
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    # Let the last alerts arrive, then a status file written after that.
    sleep 1
    w1=$(cpu "$WW") a1=$(cpu "$AUDITD") k1=$(kstat) c1=$(counters "$(date +%s)")
    wu1=$(cpu_us "$WW") au1=$(cpu_us "$AUDITD") fu1=$(floor_us)
    ww1=$(wakes "$WW") aw1=$(wakes "$AUDITD") fw1=$(wakes "$FLOOR")
    threads >"$OUT/$name.threads1"
    threads_us >"$OUT/$name.cpu1"
    echo "$name $rate $t0 $t1 $((w1 - ${w0})) $((a1 - a0)) $k0 $k1 $c0 $c1 $((wu1 - wu0)) $((au1 - au0)) $((fu1 - fu0)) ${FLOOR_BYTES:-0} $((ww1 - ww0)) $((aw1 - aw0)) $((fw1 - fw0))" >>"$OUT/phases"
    find "$DIR" -mindepth 1 -delete
}
creators() { # TAG RATE COUNT PROCS [NAME]: PROCS creators in parallel, RATE/PROCS each
    local tag=$1 rate=$2 count=$3 procs=$4 prog=${5:-rsync} p pids=()
    for p in $(seq 0 $((procs - 1))); do
        (cd "$DIR" && setpriv --reuid=65534 --regid=65534 --clear-groups "$OUT/$prog" "$DIR" \
            "${tag}p$p" "$(python3 -c "print($rate / $procs)")" "$count" >"$OUT/${tag}p$p.creator") &
        pids+=($!)
    done
    wait "${pids[@]}"
}
burst() {
    local b prog
    for b in $(seq "$BURST_B"); do
        if [ $((b % 2)) = 0 ]; then prog=rsync; else prog=wwplain; fi
        creators "burst$b" 0 "$BURST_N" 1 "$prog"
    done
}

# Warm-up, outside every phase: three alerting creations, and their alerts at the collector
# (at most 5 s). The first event of a process and the first alert pay one-off costs (user and
# group lookups, a UDP socket's error for a datagram refused before the collector listened);
# they are not the steady state the phases measure.
creators warm 10 3 1
warm=0
for _ in $(seq 50); do
    warm=$(grep -c ' warmp0 ' "$OUT/collect.txt" 2>/dev/null)
    [ "${warm:-0}" -ge 3 ] && break
    sleep 0.1
done
echo "bench-latency: warm-up: ${warm:-0} of 3 alerts at the collector" >&2
find "$DIR" -mindepth 1 -delete

# Context switches per thread (voluntary + involuntary).
switches() { per_thread status '/ctxt_switches/ {n += $2} END {print n}'; }
if [ "$IDLE" -gt 0 ]; then
    echo "bench-latency: idle for $IDLE s" >&2
    switches >"$OUT/idle0"
    sleep "$IDLE"
    switches >"$OUT/idle1"
    python3 -c '
import sys
a = dict(l.rsplit(" ", 1) for l in open(sys.argv[1]).read().splitlines())
b = dict(l.rsplit(" ", 1) for l in open(sys.argv[2]).read().splitlines())
s = float(sys.argv[3])
per = {k.replace(" ", "_"): (int(b[k]) - int(a.get(k, 0))) / s for k in b}
print(f"FIGURES idle seconds={s:.0f} total_per_s={sum(per.values()):.1f} "
      + " ".join(f"{k}={v:.1f}" for k, v in sorted(per.items())))
' "$OUT/idle0" "$OUT/idle1" "$IDLE"
fi
for r in $LOADS; do
    echo "bench-latency: $TRANSPORT, $r creations/s for $SECS s" >&2
    phase "r$r" "$r" -- creators "r$r" "$r" $((r * SECS)) 1
done
if [ -n "$FLOORS" ]; then
    # The size of the floor's datagrams: the median length of the daemon's alerts so far.
    FLOOR_BYTES=$(awk '$3 != "-" {print $6}' "$OUT/collect.txt" | sort -n |
        awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 3000}')
    "$OUT/bench-floor" "$PORT" "$FLOOR_BYTES" 9>&- &
    FLOOR=$!
    sleep 0.5
    kill -0 "$FLOOR" || { echo "bench-latency: bench-floor did not start" >&2; exit 1; }
    for r in $FLOORS; do
        echo "bench-latency: $TRANSPORT, $r creations/s for $SECS s, the floor reader beside ($FLOOR_BYTES-byte datagrams)" >&2
        phase "f$r" "$r" -- creators "f$r" "$r" $((r * SECS)) 1
    done
    kill -TERM "$FLOOR"; wait "$FLOOR" 2>/dev/null; FLOOR=
    FLOOR_BYTES=
fi
if [ "$BURST_B" -gt 0 ]; then
    echo "bench-latency: $TRANSPORT, burst of $BURST_B × $BURST_N" >&2
    phase burst 0 -- burst
fi
for r in $CAPACITY; do
    if [ "$r" = max ]; then
        # Past the limit: the creators as fast as they can, each as many files as the
        # highest paced step made in all.
        echo "bench-latency: $TRANSPORT, capacity step: $CAP_PROCS creators as fast as they can" >&2
        phase cmax 0 -- creators cmax 0 "$CAP_MAX_COUNT" "$CAP_PROCS"
    else
        echo "bench-latency: $TRANSPORT, capacity step $r creations/s for $CAP_SECS s ($CAP_PROCS creators)" >&2
        phase "c$r" "$r" -- creators "c$r" "$r" $((r * CAP_SECS / CAP_PROCS)) "$CAP_PROCS"
    fi
done
if [ -n "$CAPACITY" ]; then
    # After the capacity steps: is the daemon back to a clean state?
    echo "bench-latency: $TRANSPORT, recovery: 100 creations/s for 5 s" >&2
    phase recovery 100 -- creators recovery 100 500 1
fi

HWM=$(awk '/^VmHWM/{print $2}' "/proc/$WW/status")
[ -n "$PERF" ] && kill -INT "$PERF" && wait "$PERF"
PERF=
kill -TERM "$WW"; wait "$WW"; WW=
sleep 0.5
if [[ " $CAPACITY " == *" max "* ]]; then
    # The same creators flat out with the daemon's kernel rules (`wwatchd rules print`) loaded
    # by auditctl, auditd running, and no wwatchd: what the kernel and auditd alone let the
    # creators reach on this machine, the ceiling of the `max` step.
    echo "bench-latency: capacity baseline: $CAP_PROCS creators as fast as they can, the derived rules without wwatchd" >&2
    "$BIN" rules print --config "$OUT/wwatchd.toml" | grep '^-a ' >"$OUT/base.rules"
    # One rule at a time; only the keys of the rules this step added are deleted after it (a
    # rule already loaded, by augenrules from an installed rules.d file, is someone else's).
    while read -r -a rule; do
        if auditctl "${rule[@]}" >/dev/null 2>&1; then
            BASE_KEYS+=" $(printf '%s\n' "${rule[@]}" | sed -n 's/^key=//p')"
        else
            echo "bench-latency: baseline: not added (already loaded?): ${rule[*]}" >&2
        fi
    done <"$OUT/base.rules"
    k0=$(kstat)
    t0=$(date +%s.%N)
    creators base 0 "$CAP_MAX_COUNT" "$CAP_PROCS"
    t1=$(date +%s.%N)
    k1=$(kstat)
    base_rules_off
    find "$DIR" -mindepth 1 -delete
    # shellcheck disable=SC2086 # two numbers each
    python3 - "$OUT" "$t0" "$t1" $k0 $k1 <<'EOF'
import glob, os, sys
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
k0l, k0w, k1l, k1w = map(int, sys.argv[4:8])
created = sum(int(dict(kv.split("=", 1) for kv in open(f).read().split() if "=" in kv)["created"])
              for f in glob.glob(os.path.join(out, "basep*.creator")))
print(f"FIGURES capacity-baseline created={created} seconds={t1 - t0:.2f} "
      f"achieved={created / (t1 - t0):.0f} kernel_lost={k1l - k0l} backlog_wait_actual={k1w - k0w}")
EOF
fi
kill -TERM "$COLL"; wait "$COLL"; COLL=
python3 - "$OUT" "$TRANSPORT" "$HWM" <<'EOF'
import collections, glob, json, os, re, sys
out, transport, hwm = sys.argv[1], sys.argv[2], sys.argv[3]
lat = collections.defaultdict(list)
seen = collections.Counter()
other = 0
for line in open(os.path.join(out, "collect.txt")):
    recv_ns, user_ns, tag, i, us, _ = line.split()
    if tag == "-":
        other += 1
        continue
    key = (tag, i)
    seen[key] += 1
    if seen[key] > 1:
        continue
    phase = re.sub(r"p\d+$", "", tag)
    phase = "burst" if phase.startswith("burst") else phase
    lat[phase].append(int(recv_ns) / 1000 - int(us))
dups = sum(n - 1 for n in seen.values())
creat = {}
for f in glob.glob(os.path.join(out, "*.creator")):
    tag = os.path.basename(f)[: -len(".creator")]
    txt = open(f).read().split()
    creat[tag] = dict(kv.split("=", 1) for kv in txt if "=" in kv)
def pct(v, q):
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")
for line in open(os.path.join(out, "phases")):
    f = line.split()
    name, rate, t0, t1, wt, at = f[0], f[1], float(f[2]), float(f[3]), int(f[4]), int(f[5])
    k0l, k0w, k1l, k1w = map(int, f[6:10])
    c0, a0, l0, c1, a1, l1 = map(int, f[10:16])
    wus, aus, fus, fbytes = int(f[16]), int(f[17]), int(f[18]), int(f[19])
    wwk, awk_, fwk = int(f[20]), int(f[21]), int(f[22])
    tags = [t for t in creat if re.sub(r"p\d+$", "", t) == name
            or (name == "burst" and t.startswith("burst"))]
    alerting = [t for t in tags if not (name == "burst" and int(re.sub(r"\D", "", t.split("p")[0]) or 0) % 2)]
    sent = sum(int(creat[t]["created"]) for t in alerting)
    created = sum(int(creat[t]["created"]) for t in tags)
    late = max((int(creat[t]["late_p99_us"]) for t in tags), default=0)
    v = sorted(lat.get(name, []))
    fv = sorted(lat.get("F" + name, []))
    achieved = created / (t1 - t0) if t1 > t0 else 0
    def ticks(suffix):
        try:
            return dict(l.rsplit(" ", 1) for l in open(os.path.join(out, name + suffix)).read().splitlines())
        except OSError:
            return {}
    def per(suffix0, suffix1):
        a, b = ticks(suffix0), ticks(suffix1)
        return ",".join(f"{k.replace(' ', '_')}:{int(v) - int(a.get(k, 0))}" for k, v in sorted(b.items()))
    per_thread = per(".threads0", ".threads1")
    per_thread_us = per(".cpu0", ".cpu1")
    print(f"FIGURES latency phase={name} transport={transport} rate={rate} created={created} "
          f"sent={sent} received={len(v)} "
          f"p50_us={pct(v, 0.5):.0f} p99_us={pct(v, 0.99):.0f} max_us={v[-1] if v else float('nan'):.0f} "
          f"floor_received={len(fv)} floor_p50_us={pct(fv, 0.5):.0f} floor_p99_us={pct(fv, 0.99):.0f} "
          f"wwatchd_ticks={wt} thread_ticks={per_thread or '-'} auditd_ticks={at} "
          f"wwatchd_cpu_us={wus} thread_cpu_us={per_thread_us or '-'} auditd_cpu_us={aus} "
          f"floor_cpu_us={fus} floor_bytes={fbytes} "
          f"wwatchd_wakes={wwk} auditd_wakes={awk_} floor_wakes={fwk} "
          f"creations={c1 - c0} alerts={a1 - a0} "
          f"losses={l1 - l0} kernel_lost={k1l - k0l} backlog_wait_actual={k1w - k0w} "
          f"late_p99_us={late} seconds={t1 - t0:.2f} achieved={achieved:.0f}")
st = json.load(open(os.path.join(out, "status.json")))["counters"]
reports = sum(1 for l in open(os.path.join(out, "wwatchd.log"), errors="replace") if "wwatchd: loss:" in l)
print(f"FIGURES latency-total transport={transport} duplicates={dups} other_messages={other} "
      f"loss_reports={reports} "
      f"rss_kib={hwm} " + " ".join(f"{k}={st.get(k, 0)}" for k in
      ("creations", "alerts", "enobufs", "serial_gaps", "kernel_lost",
       "sink_drops", "sink_channel_drops", "sink_refused", "timed_out", "evicted")))
EOF
tail -3 "$OUT/wwatchd.log" >&2
