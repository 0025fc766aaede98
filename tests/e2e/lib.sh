# shellcheck shell=bash
# lib.sh: what every end-to-end suite shares, as a library to source after env.sh:
# the pass/fail tally and the count of wwatchd's kernel audit rules.
#
#   check "what is checked" CMD ARGS...   runs CMD; "ok   what" or "FAIL what"
#   ok WHAT / bad WHAT                    count a result by hand
#   ours                                  wwatchd-d-* rules loaded now
#   ww_kernel_rules [CONFIG]              how many `wwatchd run` loads (needs $BIN)
#
# Each suite ends with `echo "NAME: $pass passed, $fail failed"` and `[ "$fail" = 0 ]`.

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# Our kernel audit rules loaded now (every key starts with wwatchd-d-).
ours() { auditctl -l | grep -c 'key=wwatchd-d-' || true; }

# The number of kernel audit rules `wwatchd run [--config CONFIG]` loads, from
# `wwatchd rules print` with the same configuration: one `-a` line each. Only rules for
# hidden directories under /home are added at run time beyond these (none exist on the
# test machines). Fails, with a message, when the command fails or prints no rule, so a
# suite never compares with 0.
ww_kernel_rules() {
    local n
    n=$("$BIN" rules print ${1:+--config "$1"} | grep -c '^-a ') || true
    if [[ ! $n =~ ^[1-9][0-9]*$ ]]; then
        echo "lib.sh: \`$BIN rules print${1:+ --config $1}\` gave no kernel rules" >&2
        return 1
    fi
    echo "$n"
}

# Ends the daemon a suite started in the background (its pid in $WW; none if empty) with
# SIGTERM, waits for it, then removes whatever kernel rules it left (`rules remove`, by key).
ww_end_daemon() {
    if [ -n "${WW:-}" ]; then
        kill -TERM "$WW" 2>/dev/null && wait "$WW" 2>/dev/null
    fi
    WW=
    "$BIN" rules remove >/dev/null 2>&1
}
