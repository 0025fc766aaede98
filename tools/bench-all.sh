#!/usr/bin/env bash
# Every benchmark of wwatchd in one run, written as markdown to docs/benchmarks.md (the README
# links it): scan throughput beside laurel and ausearch on the same corpus, live latency per
# load (tools/bench-latency.sh, UDP and TCP), wwatchd's CPU against auditd's in the same runs
# and against the floor (tools/bench-floor.c: the least a multicast reader that alerts can do),
# capacity, host overhead of the kernel rules, memory; with the machine, its load, the date,
# the commit and the command that reproduces them; a perf profile of the worker at 100/s (when
# perf is installed); instruction counts per record with callgrind
# (tools/bench-callgrind.sh, when valgrind is installed). Each live measurement runs --runs times
# (default 3); the tables give medians and the spread. tools/bench-report.py writes the file.
#
#   sudo tools/bench-all.sh [--out FILE] [--runs N] [--quick]
#
# The live and overhead benchmarks use kernel audit (auditd is started and stopped as the
# end-to-end tests do). On a machine where other users of kernel audit take a lock, set
# WW_KERNEL_LOCK=/path/to/lockfile: each kernel part then runs under `flock` on its own, the
# scan part does not. Peers: laurel (LAUREL=path; default `laurel` on PATH or
# /opt/peers/bin/laurel, from `cargo install laurel --version 0.8.2`) and ausearch (auditd's
# package); a missing one is reported, not fatal. --quick runs smaller sizes (for trying the
# script; not for figures).
set -euo pipefail
cd "$(dirname "$0")/.."

OUTMD=docs/benchmarks.md
QUICK=0
RUNS=3
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUTMD=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "usage: $0 [--out FILE] [--runs N] [--quick]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-all: run as root (kernel audit rules, auditd)" >&2; exit 77; }

if [ "$QUICK" = 1 ]; then
    SCAN_RECORDS=100000
    LAT_ARGS=(--seconds 3 --burst 500 4)
    FLOOR_LOADS="100"
    PROF_SECS=5
    CAP_ARGS=(--capacity "2000 4000 max" --cap-seconds 3 --cap-max-count 5000)
    OVH_ARGS=(--iterations 2000 --rounds 3)
else
    SCAN_RECORDS=600000
    LAT_ARGS=(--seconds 30 --burst 2000 20)
    FLOOR_LOADS="10 100 1000"
    PROF_SECS=20
    CAP_ARGS=(--capacity "1000 2000 4000 max" --cap-seconds 10 --cap-max-count 20000)
    OVH_ARGS=(--iterations 10000 --rounds 9)
fi
COMMAND="sudo tools/bench-all.sh"
[ "$RUNS" = 3 ] || COMMAND="$COMMAND --runs $RUNS"
LAUREL=${LAUREL:-$(command -v laurel || echo /opt/peers/bin/laurel)}
kernel() { # run a kernel-touching part, under the lock when one is named
    if [ -n "${WW_KERNEL_LOCK:-}" ]; then flock "$WW_KERNEL_LOCK" "$@"; else "$@"; fi
}

cargo build --release --quiet
# The commit measured, taken now: edits made while the benchmarks run do not change the binary.
COMMIT=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
BIN=target/release/wwatchd
W=target/bench-all
rm -rf "$W"
mkdir -p "$W"
# The machine's load when each part starts, for the reader to weigh the figures.
load() { echo "$1 $(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$W/load.txt"; }

echo "== scan throughput ($SCAN_RECORDS records)" >&2
load scan
python3 tools/bench-corpus.py "$SCAN_RECORDS" "$W/corpus.log" >"$W/corpus.txt"
# A rule that can never match: the same query with an impossible user.id, so the scan does all
# the work but writes no JSON.
sed 's/user.id != "0"/user.id == "no such user"/' rules/remote_file_creation_world_writeable.toml \
    >"$W/nomatch.toml"
grep -q 'no such user' "$W/nomatch.toml" || { echo "bench-all: could not build the no-match rule" >&2; exit 1; }
chmod 644 "$W/nomatch.toml"
python3 - "$BIN" "$W" >"$W/scan.txt" <<'EOF'
import os, re, statistics, subprocess, sys, tempfile, time
binary, w = sys.argv[1], sys.argv[2]
corpus = os.path.join(w, "corpus.log")
records = int(re.search(r"(\d+) records", open(os.path.join(w, "corpus.txt")).read()).group(1))
# Peak RSS through /usr/bin/time: a child forked from this Python process reports Python's
# own resident size as its ru_maxrss (the kernel keeps the pre-exec high-water mark).
RSS_FILE = tempfile.NamedTemporaryFile(delete=False).name
TIME = ["/usr/bin/time", "-f", "%M", "-o", RSS_FILE] if os.access("/usr/bin/time", os.X_OK) else []
def maxrss():
    try:
        return int(open(RSS_FILE).read().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0
def run(extra):
    """Median, fastest and slowest wall time of 5 runs, the largest peak RSS (KiB), alerts,
    bytes of JSON."""
    times, cpus, rss = [], [], 0
    for _ in range(5):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(TIME + [binary, "scan", "--no-progress", *extra, corpus],
                                 stdout=out, stderr=err)
            _, status, usage = os.wait4(p.pid, 0)
            times.append(time.perf_counter() - t0)
            p.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            summary = err.read().decode(errors="replace").strip()
            if p.returncode != 0:
                sys.exit(f"bench-all: wwatchd scan exited {p.returncode}: {summary[-500:]}")
            rss = max(rss, maxrss())
            cpus.append(usage.ru_utime + usage.ru_stime)
            out_bytes = out.tell()
    alerts = int(re.search(r"alerts (\d+)", summary).group(1))
    return (statistics.median(times), min(times), max(times), rss, alerts, out_bytes,
            statistics.median(cpus))
t, tmin, tmax, rss, alerts, out, cpu = run([])
t0, t0min, t0max, rss0, alerts0, out0, cpu0 = run(["--rule", os.path.join(w, "nomatch.toml")])
print(f"FIGURES scan records={records} seconds={t:.3f} min={tmin:.3f} max={tmax:.3f} "
      f"cpu={cpu:.3f} rate={records / t:.0f} alerts={alerts} json_bytes={out} rss_kib={rss} "
      f"nomatch_seconds={t0:.3f} nomatch_min={t0min:.3f} nomatch_max={t0max:.3f} "
      f"nomatch_cpu={cpu0:.3f} nomatch_rate={records / t0:.0f} nomatch_alerts={alerts0} "
      f"nomatch_rss_kib={rss0}")
EOF
cat "$W/scan.txt" >&2

echo "== instruction counts (tools/bench-callgrind.sh; no kernel)" >&2
load callgrind
if command -v valgrind >/dev/null; then
    CG_RECORDS=300000
    [ "$QUICK" = 1 ] && CG_RECORDS=30000
    bash tools/bench-callgrind.sh --records "$CG_RECORDS" --out "$W/callgrind" \
        --markdown "$W/callgrind.md" >"$W/callgrind.txt" 2>&1 || true
    grep FIGURES "$W/callgrind.txt" >&2 || tail -5 "$W/callgrind.txt" >&2
else
    echo "bench-all: valgrind not found; no instruction counts" >&2
fi

echo "== peers: laurel ($LAUREL) and ausearch on the same corpus" >&2
python3 - "$LAUREL" "$W" >"$W/peers.txt" <<'EOF'
import os, shutil, statistics, subprocess, sys, tempfile, time
laurel, w = sys.argv[1], sys.argv[2]
corpus = os.path.join(w, "corpus.log")
# Peak RSS through /usr/bin/time: a child forked from this Python process reports Python's
# own resident size as its ru_maxrss (the kernel keeps the pre-exec high-water mark).
RSS_FILE = tempfile.NamedTemporaryFile(delete=False).name
TIME = ["/usr/bin/time", "-f", "%M", "-o", RSS_FILE] if os.access("/usr/bin/time", os.X_OK) else []
def maxrss():
    try:
        return int(open(RSS_FILE).read().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0
def timed(cmd, stdin=None, before=lambda: None):
    """Median, fastest and slowest wall time of 3 runs, the largest peak RSS (KiB) and the
    median CPU time (user + system)."""
    times, cpus, rss = [], [], 0
    for _ in range(3):
        before()
        with open(stdin or os.devnull, "rb") as i, tempfile.TemporaryFile() as out:
            t0 = time.perf_counter()
            p = subprocess.Popen(TIME + cmd, stdin=i, stdout=out, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(p.pid, 0)
            times.append(time.perf_counter() - t0)
            if os.waitstatus_to_exitcode(status) != 0:
                return None
            rss = max(rss, maxrss())
            cpus.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(times), min(times), max(times), rss, statistics.median(cpus)
if os.access(laurel, os.X_OK):
    d = os.path.join(w, "laurel")
    os.makedirs(d, exist_ok=True)
    # laurel as auditd runs it (a plugin reading records on stdin), writing its JSON log of
    # every event; no enrichment from /proc (the corpus's processes are long gone).
    cfg = os.path.join(d, "laurel.toml")
    with open(cfg, "w") as f:
        f.write(f'directory = "{d}"\nuser = "root"\nstatusreport-period = 0\ninput = "stdin"\n'
                '[auditlog]\nfile = "audit.log"\nsize = 10000000000\ngenerations = 1\n'
                '[translate]\nuniversal = false\nuser-db = false\ndrop-raw = false\n'
                '[enrich]\npid = false\nppid-verbose = false\nspawned-by = false\n'
                'execve-env = []\ncontainer = false\ncontainer_info = false\nsystemd = false\n'
                'script = false\nuser-groups = false\n')
    log = os.path.join(d, "audit.log")
    r = timed([laurel, "-c", cfg], stdin=corpus,
              before=lambda: os.path.exists(log) and os.remove(log))
    version = subprocess.run([laurel, "--version"], capture_output=True, text=True).stdout
    if r:
        events = sum(1 for _ in open(log, "rb"))
        print(f"FIGURES laurel seconds={r[0]:.3f} min={r[1]:.3f} max={r[2]:.3f} rss_kib={r[3]} "
              f"cpu={r[4]:.3f} "
              f"events={events} version={version.split()[0] if version.split() else '?'}")
    else:
        print("laurel failed")
    shutil.rmtree(d, ignore_errors=True)
else:
    print(f"laurel: {laurel} not found")
aus = shutil.which("ausearch")
if aus:
    r = timed([aus, "-if", corpus, "-sc", "openat"])
    if r:
        print(f"FIGURES ausearch seconds={r[0]:.3f} min={r[1]:.3f} max={r[2]:.3f} rss_kib={r[3]} "
              f"cpu={r[4]:.3f}")
    else:
        print("ausearch failed")
else:
    print("ausearch: not found")
EOF
cat "$W/peers.txt" >&2

for t in udp tcp; do
    # The floor reader sends UDP: its phases run in the UDP runs.
    floor=()
    [ "$t" = udp ] && floor=(--floor "$FLOOR_LOADS")
    for i in $(seq "$RUNS"); do
        echo "== latency, $t, run $i of $RUNS (tools/bench-latency.sh --transport $t ${LAT_ARGS[*]} ${floor[*]})" >&2
        load "latency-$t-$i"
        kernel bash tools/bench-latency.sh --transport "$t" "${LAT_ARGS[@]}" "${floor[@]}" --out "$W/lat-$t-$i" \
            >"$W/lat-$t-$i.txt" 2>&1 || true
        grep FIGURES "$W/lat-$t-$i.txt" >&2 || tail -5 "$W/lat-$t-$i.txt" >&2
    done
done
# Where the worker's time goes at 100/s: perf samples of a binary with line tables, in a run
# of its own (perf's sampling costs the daemon CPU, so no figure is taken from it but the shares).
echo "== profile of the worker at 100/s, UDP (perf)" >&2
load profile
if command -v perf >/dev/null; then
    CARGO_TARGET_DIR=target/bench-prof CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --release --quiet
    WWATCHD_BIN=target/bench-prof/release/wwatchd WWATCHD_PERF="$W/perf.data" \
        kernel bash tools/bench-latency.sh --idle 0 --loads 100 --seconds "$PROF_SECS" --burst 0 0 \
        --out "$W/prof" >"$W/prof.txt" 2>&1 || true
    report() { perf report -i "$W/perf.data" --comm wwatchd-worker --stdio -g none "$@" 2>/dev/null; }
    report --no-children --sort dso >"$W/profile-dso.txt" || true
    report --children --sort sym >"$W/profile-children.txt" || true
    report --no-children --sort sym >"$W/profile-self.txt" || true
    perf report -i "$W/perf.data" --no-children --sort comm --stdio -g none >"$W/profile-comm.txt" 2>/dev/null || true
else
    echo "perf: not found" >"$W/profile-dso.txt"
fi

for i in $(seq "$RUNS"); do
    echo "== capacity, run $i of $RUNS (tools/bench-latency.sh ${CAP_ARGS[*]})" >&2
    load "capacity-$i"
    kernel bash tools/bench-latency.sh --loads "" --burst 0 0 "${CAP_ARGS[@]}" --out "$W/cap-$i" \
        >"$W/cap-$i.txt" 2>&1 || true
    grep FIGURES "$W/cap-$i.txt" >&2 || tail -5 "$W/cap-$i.txt" >&2
done

echo "== host overhead (tools/bench-overhead.sh ${OVH_ARGS[*]})" >&2
load overhead
kernel bash tools/bench-overhead.sh "${OVH_ARGS[@]}" --markdown "$W/overhead.md" >"$W/overhead.txt" 2>&1 || true
cat "$W/overhead.txt" >&2

python3 tools/bench-report.py "$W" "$OUTMD" "$COMMAND" "$QUICK" "${LAT_ARGS[*]} --floor '$FLOOR_LOADS' (UDP)" \
    "${CAP_ARGS[*]}" "${OVH_ARGS[*]}" "$COMMIT" "$RUNS"
