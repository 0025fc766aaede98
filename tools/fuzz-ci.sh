#!/usr/bin/env bash
# Fuzz every target of fuzz/ for a short, bounded time (issue 5): record, correlator, eql,
# kql, rule_file. Fails on any crash, hang (-timeout) or memory blow-up (-rss_limit_mb). The long
# runs and their figures are in fuzz/README.md.
#   usage: tools/fuzz-ci.sh [TARGET...]     FUZZ_SECONDS=N sets the time per target (20)
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record correlator eql kql rule_file)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# libfuzzer-sys compiles libFuzzer, which is C++.
command -v c++ >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++; }
# cargo fuzz passes nightly-only flags (-Zsanitizer=..., -Cllvm-args=-sanitizer-coverage-*)
# to rustc. The machine has only the stable toolchain, which accepts them with
# RUSTC_BOOTSTRAP=1. No sanitizer: the fuzzed code is safe Rust (the core forbids unsafe),
# so AddressSanitizer finds nothing there and makes the targets 5-7 times slower; overflow
# checks and debug assertions stay on (cargo fuzz's default).
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --codegen-units 16)

cargo fuzz build "${flags[@]}"
fuzz/make-corpus.sh "${targets[@]}"

failed=0
for t in "${targets[@]}"; do
    case $t in
    record) extra=(-dict=fuzz/dicts/audit.dict) ;;
    correlator) extra=(-dict=fuzz/dicts/audit.dict -max_len=4096) ;;
    eql) extra=(-dict=fuzz/dicts/eql.dict) ;;
    kql) extra=(-dict=fuzz/dicts/kql.dict) ;;
    rule_file) extra=(-dict=fuzz/dicts/toml.dict) ;;
    *) echo "fuzz-ci: unknown target $t" >&2; exit 2 ;;
    esac
    log=$(mktemp)
    if cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" -- "${extra[@]}" \
        -max_total_time="$secs" -rss_limit_mb=512 -timeout=5 -print_final_stats=1 >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
        echo "fuzz-ci: $t: ok, $execs runs in ${secs}s, $cov, peak rss ${rss} MB"
    else
        failed=$((failed + 1))
        echo "fuzz-ci: $t: FAILED; the input that failed is under fuzz/artifacts/$t/:" >&2
        # The panic message (the backtrace after it is long), then libFuzzer's summary.
        grep -A 4 -E 'panicked at|ERROR: libFuzzer' "$log" | head -n 30 >&2 || true
        grep -v -E '^#[0-9]+\s' "$log" | tail -n 20 >&2 || true
    fi
    rm -f "$log"
done
echo "fuzz: $(( ${#targets[@]} - failed )) passed, $failed failed"
[ "$failed" = 0 ]
