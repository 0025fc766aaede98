#!/usr/bin/env bash
# Live capacity benchmark of `wwatchd run` beside auditd (a benchmark, not a test: it asserts
# nothing and prints figures). Non-root processes create files in /tmp as fast as the kernel
# lets them: a copy of touch named `rsync` (these alert) and plain touch (these do not).
# Reports created vs seen, ENOBUFS, wwatchd's CPU against auditd's, creation→rsyslog latency
# and wwatchd's peak RSS. Usage (root): tools/bench-live.sh [FILES_PER_BATCH] [BATCHES]
set -u
cd "$(dirname "$0")/.."
. tests/e2e/env.sh
N=${1:-2000}
B=${2:-20}
BIN=${WWATCHD_BIN:-target/release/wwatchd}
[ -x "$BIN" ] || cargo build --release --quiet
OUT=$(mktemp -d /run/wwatchd-bench.XXXXXX)
d=$WW_E2E_DIR/rsyslog-bench
stop_collector() { [ -f "$d/rsyslogd.pid" ] && kill "$(cat "$d/rsyslogd.pid")" 2>/dev/null; rm -f "$d/rsyslogd.pid"; }
trap '[ -n "${WW:-}" ] && kill -TERM $WW 2>/dev/null; wait 2>/dev/null; stop_collector; ww_stop_all >/dev/null 2>&1; rm -rf /tmp/wwbench.*' EXIT
ww_install_packages >/dev/null 2>&1
ww_start_auditd >/dev/null 2>&1
# Precise receive times: the collector stamps each message with its own clock.
stop_collector
sleep 0.2
mkdir -p "$d/work"
cat >"$d/rsyslog.conf" <<EOF
global(workDirectory="$d/work" maxMessageSize="64k")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="5515")
template(name="t" type="string" string="%timegenerated:::date-unixtimestamp% %timegenerated:::date-rfc3339% %msg%\n")
action(type="omfile" file="$OUT/collect.log" template="t")
EOF
/usr/sbin/rsyslogd -f "$d/rsyslog.conf" -i "$d/rsyslogd.pid"
sleep 0.5

# Every alert counts here: no alert budget (the default sends 100 per rule per 5 minutes).
printf '[budget]\nmax_alerts = 0\n' >"$OUT/wwatchd.toml"
chmod 644 "$OUT/wwatchd.toml"
"$BIN" run --config "$OUT/wwatchd.toml" --output udp://127.0.0.1:5515 --status-file "$OUT/status.json" --spool-dir "$OUT/spool" 2>"$OUT/wwatchd.log" &
WW=$!
sleep 1.5
# WWATCHD_PERF=FILE: also profile the daemon with perf during the load (needs symbols:
# CARGO_PROFILE_RELEASE_DEBUG=line-tables-only).
if [ -n "${WWATCHD_PERF:-}" ]; then
    perf record -q -g -o "$WWATCHD_PERF" -p "$WW" 2>/dev/null &
    PERF=$!
    sleep 0.5
fi
AUDITD=$(auditctl -s | awk '/^pid/{print $2}')
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
w0=$(cpu $WW); a0=$(cpu "$AUDITD")
dir=$(mktemp -d /tmp/wwbench.XXXXXX)
chmod 1777 "$dir"
cp /usr/bin/touch "$OUT/rsync"
chmod 755 "$OUT" "$OUT/rsync"
t0=$(date +%s.%N)
for b in $(seq "$B"); do
    # Half the batches alert (comm rsync), half do not (comm touch).
    if [ $((b % 2)) = 0 ]; then prog=$OUT/rsync; else prog=/usr/bin/touch; fi
    (cd "$dir" && setpriv --reuid=65534 --regid=65534 --clear-groups "$prog" $(seq -f "b$b-%g" "$N"))
done
t1=$(date +%s.%N)
sleep 3
w1=$(cpu $WW); a1=$(cpu "$AUDITD")
HWM=$(awk '/^VmHWM/{print $2, $3}' /proc/$WW/status)
[ -n "${PERF:-}" ] && kill -INT "$PERF" && wait "$PERF"
kill -TERM $WW; wait $WW; WW=
python3 - "$OUT" "$N" "$B" "$t0" "$t1" "$((w1 - w0))" "$((a1 - a0))" <<'EOF'
import json, sys, datetime
out, n, b, t0, t1, wcpu, acpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
st = json.load(open(out + "/status.json"))["counters"]
lat = []
for line in open(out + "/collect.log", errors="replace"):
    parts = line.split(" ", 2)
    if len(parts) < 3 or '"@timestamp"' not in parts[2]:
        continue
    recv = datetime.datetime.fromisoformat(parts[1]).timestamp()
    try:
        doc = json.loads(parts[2][parts[2].index("{"):])
    except ValueError:
        continue
    if doc.get("event", {}).get("kind") != "alert":
        continue
    ts = datetime.datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00")).timestamp()
    lat.append((recv - ts) * 1000)
lat.sort()
created = n * b
alerting = n * (b // 2)
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
print(f"files created: {created} in {t1 - t0:.2f} s ({created / (t1 - t0):.0f}/s); of which alerting: {alerting}")
print(f"creations seen by wwatchd: {st['creations']} ({st['creations'] / created:.4f} of created); alerts: {st['alerts']}; delivered to rsyslog: {len(lat)}")
print(f"lost: enobufs {st['enobufs']} serial_gaps {st['serial_gaps']} kernel_lost {st['kernel_lost']} sink_drops {st['sink_drops']}")
print(f"CPU ticks: wwatchd {wcpu}, auditd {acpu}, ratio {wcpu / acpu if acpu else float('nan'):.2f}")
print(f"creation -> rsyslog latency (ms, 1 ms resolution of @timestamp): p50 {p(0.5):.1f} p99 {p(0.99):.1f} max {lat[-1] if lat else float('nan'):.1f}")
# One machine-readable line for tools/bench-all.sh.
print(f"FIGURES live created={created} seconds={t1 - t0:.3f} seen={st['creations']} alerts={st['alerts']} "
      f"delivered={len(lat)} enobufs={st['enobufs']} "
      f"serial_gaps={st['serial_gaps']} kernel_lost={st['kernel_lost']} sink_drops={st['sink_drops']} "
      f"cpu_ratio={wcpu / acpu if acpu else float('nan'):.3f} p50_ms={p(0.5):.1f} p99_ms={p(0.99):.1f} "
      f"max_ms={lat[-1] if lat else float('nan'):.1f}")
EOF
echo "wwatchd peak RSS: $HWM"
tail -2 "$OUT/wwatchd.log"
