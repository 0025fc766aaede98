#!/usr/bin/env bash
# Every benchmark of wwatchd in one run, written as markdown to docs/benchmarks.md (the README
# links it): scan throughput, live capacity and latency, host overhead of the kernel rules,
# memory; with the machine, the date, the commit and the command that reproduces them.
#
#   sudo tools/bench-all.sh [--out FILE] [--quick]
#
# The live and overhead benchmarks use kernel audit (auditd is started and stopped as the
# end-to-end tests do). On a machine where other users of kernel audit take a lock, set
# WW_KERNEL_LOCK=/path/to/lockfile: only those two parts then run under `flock`, the scan part
# does not. --quick runs smaller sizes (for trying the script; not for figures).
set -euo pipefail
cd "$(dirname "$0")/.."

OUTMD=docs/benchmarks.md
QUICK=0
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUTMD=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "usage: $0 [--out FILE] [--quick]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-all: run as root (kernel audit rules, auditd)" >&2; exit 77; }

if [ "$QUICK" = 1 ]; then
    SCAN_RECORDS=100000
    LIVE_ARGS=(500 4)
    OVH_ARGS=(--iterations 2000 --rounds 3)
else
    SCAN_RECORDS=600000
    LIVE_ARGS=(2000 20)
    OVH_ARGS=(--iterations 10000 --rounds 9)
fi
COMMAND="sudo tools/bench-all.sh"
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

echo "== scan throughput ($SCAN_RECORDS records)" >&2
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
def run(extra):
    """Median wall time of 5 runs, the largest peak RSS (KiB), alerts, bytes of JSON."""
    times, rss = [], 0
    for _ in range(5):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            p = subprocess.Popen([binary, "scan", "--no-progress", *extra, corpus],
                                 stdout=out, stderr=err)
            _, status, usage = os.wait4(p.pid, 0)
            times.append(time.perf_counter() - t0)
            p.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            summary = err.read().decode(errors="replace").strip()
            if p.returncode != 0:
                sys.exit(f"bench-all: wwatchd scan exited {p.returncode}: {summary[-500:]}")
            rss = max(rss, usage.ru_maxrss)
            out_bytes = out.tell()
    alerts = int(re.search(r"alerts (\d+)", summary).group(1))
    return statistics.median(times), rss, alerts, out_bytes
t, rss, alerts, out = run([])
t0, rss0, alerts0, out0 = run(["--rule", os.path.join(w, "nomatch.toml")])
print(f"FIGURES scan records={records} seconds={t:.3f} rate={records / t:.0f} alerts={alerts} "
      f"json_bytes={out} rss_kib={rss} nomatch_seconds={t0:.3f} nomatch_rate={records / t0:.0f} "
      f"nomatch_alerts={alerts0} nomatch_rss_kib={rss0}")
EOF
cat "$W/scan.txt" >&2

echo "== live capacity (tools/bench-live.sh ${LIVE_ARGS[*]})" >&2
kernel bash tools/bench-live.sh "${LIVE_ARGS[@]}" >"$W/live.txt" 2>&1 || true
cat "$W/live.txt" >&2

echo "== host overhead (tools/bench-overhead.sh ${OVH_ARGS[*]})" >&2
kernel bash tools/bench-overhead.sh "${OVH_ARGS[@]}" --markdown "$W/overhead.md" >"$W/overhead.txt" 2>&1 || true
cat "$W/overhead.txt" >&2

python3 - "$W" "$OUTMD" "$COMMAND" "$QUICK" "${LIVE_ARGS[*]}" "${OVH_ARGS[*]}" "$COMMIT" <<'EOF'
import datetime, os, platform, re, subprocess, sys
w, outmd, command, quick, live_args, ovh_args, commit = sys.argv[1:8]

def figures(name, text):
    for line in text.splitlines():
        if line.startswith(f"FIGURES {name} "):
            return dict(kv.split("=", 1) for kv in line.split()[2:])
    return None

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"

cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
osname = "?"
if os.path.exists("/etc/os-release"):
    osname = dict(l.rstrip().split("=", 1) for l in open("/etc/os-release") if "=" in l).get(
        "PRETTY_NAME", "?").strip('"')
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

md = ["# wwatchd benchmarks", "",
      "Generated by `tools/bench-all.sh`; do not edit by hand.", "",
      "| | |", "|---|---|",
      f"| date | {now} |", f"| commit | `{commit}` |",
      f"| machine | {os.cpu_count()} CPUs, {cpu}, {int(mem) / 1048576:.1f} GiB RAM |",
      f"| kernel | Linux {platform.release()} |", f"| OS | {osname} |",
      f"| Rust | {sh('rustc', '--version')} |",
      f"| command | `{command}`{' (--quick: not for figures)' if quick == '1' else ''} |", ""]

scan = figures("scan", open(os.path.join(w, "scan.txt")).read())
corpus = open(os.path.join(w, "corpus.txt")).read().strip()
md += ["## Scan throughput", "",
       f"`wwatchd scan` over `tools/bench-corpus.py` output ({corpus.split(': ', 1)[-1]}: the "
       "real-kernel captures of `tests/fixtures` repeated with fresh serials, an alert-heavy "
       "corpus). Median wall time of 5 runs, single thread.", ""]
if scan:
    r = lambda k: f"{int(scan[k]) / 1e6:.2f} M records/s"
    md += ["| measure | figure |", "|---|---|",
           f"| with the shipped rule: {int(scan['alerts']):,} alerts, "
           f"{int(scan['json_bytes']) / 1e6:.0f} MB of JSON | {r('rate')} ({float(scan['seconds']):.2f} s) |",
           f"| a rule that matches nothing (no JSON written) | {r('nomatch_rate')} "
           f"({float(scan['nomatch_seconds']):.2f} s) |",
           f"| peak RSS | {int(scan['rss_kib']) / 1024:.1f} MiB |", ""]
else:
    md += ["Scan benchmark failed; see `target/bench-all/scan.txt`.", ""]

live_txt = open(os.path.join(w, "live.txt")).read()
live = figures("live", live_txt)
rss = re.search(r"wwatchd peak RSS: (\d+) kB", live_txt)
n, b = live_args.split()
md += ["## Live capacity and latency", "",
       f"`tools/bench-live.sh {live_args}`: {int(n) * int(b):,} files created in /tmp by uid "
       f"65534, {n} per process, as fast as the kernel lets them; half by a copy of touch "
       "named `rsync` (these alert), auditd running, alerts over UDP to rsyslog.", ""]
if live:
    md += ["| measure | figure |", "|---|---|",
           f"| created / seen by wwatchd | {int(live['created']):,} / {int(live['seen']):,} "
           f"({int(live['created']) / float(live['seconds']):,.0f} creations/s) |",
           f"| lost: ENOBUFS, channel drops, serial gaps, kernel lost, sink drops | "
           f"{live['enobufs']}, {live['channel_drops']}, {live['serial_gaps']}, "
           f"{live['kernel_lost']}, {live['sink_drops']} |",
           f"| alerts / delivered to rsyslog | {int(live['alerts']):,} / {int(live['delivered']):,} |",
           f"| wwatchd CPU / auditd CPU | {float(live['cpu_ratio']):.2f} |",
           f"| creation → rsyslog, p50 / p99 / max | {live['p50_ms']} / {live['p99_ms']} / "
           f"{live['max_ms']} ms |"]
    if rss:
        md.append(f"| wwatchd peak RSS | {int(rss.group(1)) / 1024:.1f} MiB |")
    md.append("")
else:
    md += ["bench-live.sh gave no figures; its output:", "", "```",
           live_txt.strip()[-3000:], "```", ""]

ovh_md = os.path.join(w, "overhead.md")
md += ["## Host overhead of the kernel rules", "",
       f"`tools/bench-overhead.sh {ovh_args}`: a fixed workload (per iteration getpid, getuid, "
       "getppid, stat, then create, write, close, stat and unlink one file; "
       "`tools/overhead-workload.c`) as root outside the watched directories, as root in "
       "/tmp, and as uid 65534 in /tmp, at nice -20; auditd running throughout; every round "
       "runs each condition once, in shuffled order. `-w` is `-w DIR -p wa` on /tmp, "
       "/var/tmp, /dev/shm and /home.", ""]
if os.path.exists(ovh_md) and os.path.getsize(ovh_md) > 0:
    md += [open(ovh_md).read().strip(), ""]
else:
    md += ["bench-overhead.sh gave no figures; its output:", "", "```",
           open(os.path.join(w, "overhead.txt")).read().strip()[-3000:], "```", ""]

mem = []
if scan:
    mem.append(f"| `wwatchd scan` of {int(scan['records']):,} records | {int(scan['rss_kib']) / 1024:.1f} MiB |")
ovh = figures("overhead", open(os.path.join(w, "overhead.txt")).read())
if ovh and "daemon_hwm_kib" in ovh:
    mem.append(f"| `wwatchd run` through the overhead storms (events, no alerts) | "
               f"{int(ovh['daemon_hwm_kib']) / 1024:.1f} MiB |")
if rss:
    mem.append(f"| `wwatchd run` through the live burst (alerts queued for the sink) | "
               f"{int(rss.group(1)) / 1024:.1f} MiB |")
md += ["## Memory (peak RSS)", "", "| run | peak RSS |", "|---|---|", *mem, ""]

os.makedirs(os.path.dirname(outmd) or ".", exist_ok=True)
with open(outmd, "w") as f:
    f.write("\n".join(md))
print(f"bench-all: wrote {outmd}")
EOF
