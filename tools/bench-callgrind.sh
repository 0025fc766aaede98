#!/usr/bin/env bash
# Instruction counts of wwatchd per audit record, with callgrind: repeatable whatever else
# the machine does (no kernel, no root, no timing). Two corpora from tools/bench-corpus.py:
#   mixed:    the captures of tests/fixtures with, per repetition, 300 host-wide execve
#             events and 60 read-only opens (records no rule matches), about 1% alerting;
#   captures: the captures alone (alert-heavy, the corpus of bench-all's scan figures).
# Measured: `wwatchd scan` with the built-in rules (alerts written), scan with a rule that
# can never match (no JSON), and the daemon's worker (the live path after the socket reads:
# batches → Record::from_netlink → Detector → sink channel) through the ignored
# unit test daemon::worker::tests::live_path_benchmark, counted inside worker() only.
#
#   tools/bench-callgrind.sh [--records N] [--out DIR] [--markdown FILE] [--top N]
#
# Prints `FIGURES callgrind name=... records=... ir=... ir_per_record=... alerts=...` lines;
# --markdown writes the "Instruction counts (callgrind)" section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=300000
OUT=target/bench-callgrind
MD=
TOP=15
while [ $# -gt 0 ]; do
    case $1 in
    --records) RECORDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --markdown) MD=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    *) echo "usage: $0 [--records N] [--out DIR] [--markdown FILE] [--top N]" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "bench-callgrind: valgrind not found (apt-get install valgrind)" >&2; exit 69; }

cargo build --release --quiet
TESTBIN=$(cargo test --release --lib --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "wwatchd" and m["profile"]["test"]:
        print(m["executable"])')
BIN=$PWD/target/release/wwatchd
mkdir -p "$OUT"
python3 tools/bench-corpus.py --execs 300 --reads 60 "$RECORDS" "$OUT/mixed.log" >"$OUT/corpus.txt"
python3 tools/bench-corpus.py "$((RECORDS * 2 / 3))" "$OUT/captures.log" >>"$OUT/corpus.txt"
sed 's/user.id != "0"/user.id == "no such user"/' rules/remote_file_creation_world_writeable.toml >"$OUT/nomatch.toml"
grep -q 'no such user' "$OUT/nomatch.toml" || { echo "bench-callgrind: no no-match rule" >&2; exit 1; }
chmod 644 "$OUT/nomatch.toml"
HOSTARGS=(--host bench --host-id 5f1f2d8a0c3b4e6f9a7d1c2b3e4f5a60)
CG=(valgrind --tool=callgrind --dump-instr=no)

# name, command...: one callgrind run; its output in $OUT/NAME.{cg,out,err}
run() {
    local name=$1
    shift
    "${CG[@]}" --callgrind-out-file="$OUT/$name.cg" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
}
for c in mixed captures; do
    run "scan-$c" "$BIN" scan --no-progress "${HOSTARGS[@]}" "$OUT/$c.log"
    WWATCHD_LIVE_CORPUS=$OUT/$c.log run "live-$c" --toggle-collect='wwatchd::daemon::worker::worker' \
        "$TESTBIN" --ignored --exact daemon::worker::tests::live_path_benchmark --test-threads=1 --nocapture
done
run scan-mixed-nomatch "$BIN" scan --no-progress "${HOSTARGS[@]}" --rule "$OUT/nomatch.toml" "$OUT/mixed.log"

python3 - "$OUT" "$MD" "$TOP" <<'EOF'
import os, re, subprocess, sys
out, md, top = sys.argv[1], sys.argv[2], int(sys.argv[3])
corpus = open(os.path.join(out, "corpus.txt")).read()
records = {m.group(1): int(m.group(2)) for m in re.finditer(r"/(\w+)\.log: (\d+) records", corpus)}
runs = [("scan-mixed", "mixed", "`scan`, built-in rules (alerts written)"),
        ("scan-mixed-nomatch", "mixed", "`scan`, a rule that never matches (no JSON)"),
        ("live-mixed", "mixed", "live worker, built-in rules (alerts to the sink channel)"),
        ("scan-captures", "captures", "`scan`, built-in rules (alerts written)"),
        ("live-captures", "captures", "live worker, built-in rules")]
rows, tops = [], []
for name, corp, what in runs:
    cg = os.path.join(out, name + ".cg")
    text = open(cg).read()
    ir = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
    err = open(os.path.join(out, name + ".err"), errors="replace").read()
    m = re.search(r"alerts (\d+)", err)
    alerts = int(m.group(1)) if m else 0
    n = records[corp]
    print(f"FIGURES callgrind name={name} records={n} ir={ir} ir_per_record={ir / n:.0f} alerts={alerts}")
    rows.append(f"| {corp} | {what} | {n:,} | {alerts:,} | {ir / 1e6:,.0f} M | {ir / n:,.0f} |")
    if name in ("scan-mixed", "scan-mixed-nomatch", "live-mixed"):
        ann = subprocess.run(["callgrind_annotate", cg], capture_output=True, text=True).stdout
        fns = []
        for line in ann.split("file:function", 1)[-1].splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)", line)
            if m and "PROGRAM TOTALS" not in line:
                fn = re.sub(r"^\S*?:", "", m.group(3).rsplit(" [", 1)[0], count=1)
                fns.append(f"| {m.group(2)}% | `{fn[:110]}` |")
            if len(fns) == top:
                break
        tops.append((name, fns))
if md:
    lines = ["## Instruction counts (callgrind)", "",
             "`tools/bench-callgrind.sh`: instructions counted by valgrind's callgrind, the same on a "
             "loaded machine as on an idle one (the whole process for `scan`, so start-up is in it: "
             "about 1.5 M instructions; only `worker()` for the live path, which runs the daemon's "
             "worker on batches of the records as the socket delivers them, without the kernel: the "
             "socket reads are not in it, and names are not looked up in /proc).", "",
             "| corpus | run | records | alerts | instructions | per record |",
             "|---|---|---:|---:|---:|---:|", *rows, ""]
    for name, fns in tops:
        lines += [f"Top {top} functions of `{name}` (exclusive):", "", "| share | function |",
                  "|---:|---|", *fns, ""]
    with open(md, "w") as f:
        f.write("\n".join(lines))
EOF
