#!/usr/bin/env bash
# new_terms rules end to end on the real kernel (issue 11): `wwatchd run` with one rule file of
# type new_terms (an EQL query for uploads to /tmp/wwnt-*, new_terms_fields =
# ["process.executable", "user.id"], window now-5d), alerts to stdout. wwalice's first scp
# upload alerts, her second (same executable, same user, within the window) does not and is
# counted as new_terms_known; after a daemon restart her third is still known (the terms came
# back from the store in the new_terms directory beside the spool), and wwbob's first alerts.
# Run as root, under the kernel lock. Prints "new_terms: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
OUT=$(mktemp -d /run/wwatchd-e2e-nt.XXXXXX)
T=$$
WW=
cleanup() {
    [ -n "$WW" ] && kill -TERM "$WW" 2>/dev/null && wait "$WW" 2>/dev/null
    "$BIN" rules remove >/dev/null 2>&1
    ww_stop_all >/dev/null 2>&1
    rm -f /tmp/wwnt-"$T"-* 2>/dev/null
}
trap cleanup EXIT

ww_start_all >"$OUT/env.log" 2>&1 || { cat "$OUT/env.log"; echo "new_terms: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet
chmod 755 "$OUT"

RULE=$OUT/nt.toml
cat >"$RULE" <<'EOF'
[rule]
name = "e2e new terms upload"
rule_id = "e2e-new-terms"
description = "First upload to /tmp/wwnt-* per executable and user in 5 days."
severity = "low"
risk_score = 21
type = "new_terms"
language = "eql"
query = '''
file where event.action == "creation" and file.path like "/tmp/wwnt-*" and user.id != "0"
'''

[rule.new_terms]
field = "new_terms_fields"
value = ["process.executable", "user.id"]

[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-5d"
EOF
chmod 644 "$RULE"
NRULES=$("$BIN" rules print --rule "$RULE" | grep -c '^-a ') || true
[[ $NRULES =~ ^[1-9][0-9]*$ ]] || { echo "new_terms: rules print gave no kernel rules"; echo "new_terms: 0 passed, 1 failed"; exit 1; }

start() { # LOG
    "$BIN" run --rule "$RULE" --output stdout --spool-dir "$OUT/spool" \
        --status-file "$OUT/status.json" >"$OUT/$1.jsonl" 2>"$OUT/$1.err" &
    WW=$!
    for _ in $(seq 50); do [ "$(ours)" -ge "$NRULES" ] && return 0; sleep 0.1; done
    return 1
}
stop() {
    kill -TERM "$WW" 2>/dev/null
    wait "$WW" 2>/dev/null
    WW=
}
# Alerts naming PATH in LOG.
alerts() { grep -c -- "$2" "$OUT/$1.jsonl" || true; }
known() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counters"]["new_terms_known"])' "$OUT/status.json" 2>/dev/null; }

src=$OUT/src.bin
head -c 1024 /dev/urandom >"$src"
chmod 644 "$src"
SSH=(-q -F "$WW_SSH_CONFIG")
up() { ww_as "$1" scp "${SSH[@]}" "$src" "$1@127.0.0.1:/tmp/wwnt-$T-$2.bin"; sleep 2.5; }

check "wwatchd run starts with the new_terms rule and loads its $NRULES kernel rules" start one
up wwalice 1
check "the first upload by wwalice's executable alerts" [ "$(alerts one "wwnt-$T-1")" = 1 ]
up wwalice 2
check "her second upload within the window does not" [ "$(alerts one "wwnt-$T-2")" = 0 ]
sleep 5.5 # the status file is rewritten every 5 seconds
check "it is counted as new_terms_known" [ "$(known)" = 1 ]
stop
STORE=$OUT/new_terms
n=$(find "$STORE" -name '*.terms' -size +8c | wc -l)
check "the term is stored in $STORE" [ "$n" = 1 ]

check "wwatchd run starts again" start two
grep -q "new_terms: 1 terms of 1 rules loaded" "$OUT/two.err" && ok "the restart loads the stored term" || bad "the restart loads the stored term"
up wwalice 3
check "after the restart wwalice's upload is still known (no alert)" [ "$(alerts two "wwnt-$T-3")" = 0 ]
up wwbob 4
check "a different user (wwbob) alerts" [ "$(alerts two "wwnt-$T-4")" = 1 ]
stop
for f in one two; do grep -q . "$OUT/$f.err" && { echo "--- $f.err"; cat "$OUT/$f.err"; }; done
ls -l "$STORE" 2>/dev/null
echo "new_terms: $pass passed, $fail failed"
[ "$fail" = 0 ]
