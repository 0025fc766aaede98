#!/usr/bin/env bash
# End-to-end test of new_terms rules (issue 11, part 3): Elastic's current seed rule (type
# new_terms on process.executable and host.id, window now-5d) in the live daemon.
#
# Real uploads by the non-root wwalice over loopback to the test sshd (external sftp-server):
#   1. scp (SFTP protocol: sftp-server creates the file)   -> alerts: a new executable
#   2. sftp put, by the same sftp-server, within the window -> no alert (new_terms_known)
#   3. scp -O (legacy protocol: /usr/bin/scp creates it)    -> alerts: another executable
#   then SIGTERM, the store file is in daemon.state_dir, the daemon starts again:
#   4. sftp put again                                       -> no alert: the term survived
#   5. a damaged store is set aside and reported at the next start, never a crash
#
# The rule is the built-in remote_file_creation_world_writeable_new_terms (Elastic's file,
# KQL), selected by name in rules.builtin; the suite fails if it does not load.
#
# Run as root under the kernel lock (flock /run/wwatchd-kernel.lock). Prints
# "new_terms: N passed, M failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
OUT=$(mktemp -d /run/wwatchd-e2e-nt.XXXXXX)
STATE=$OUT/state
T=$$
WW=
cleanup() {
    ww_end_daemon
    ww_stop_all >/dev/null 2>&1
    rm -f /tmp/wwnt-*-"$T".bin /var/tmp/wwnt-*-"$T".bin
}
trap cleanup EXIT

{ ww_install_packages && ww_start_auditd && ww_users && ww_start_sshd; } >"$OUT/env.log" 2>&1 ||
    { cat "$OUT/env.log"; echo "new_terms: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet
chmod 755 "$OUT"
mkdir -p "$OUT/rules"
chmod 755 "$OUT/rules"

config() { # BUILTIN-ARRAY
    cat <<EOF
[rules]
dir = "$OUT/rules"
builtin = $1
[daemon]
state_dir = "$STATE"
EOF
}
config '["remote_file_creation_world_writeable_new_terms"]' >"$OUT/wwatchd.toml"
chmod 644 "$OUT/wwatchd.toml" "$OUT/rules/"*.toml 2>/dev/null
quiet() { "$@" >"$OUT/quiet.log" 2>&1 || { cat "$OUT/quiet.log"; return 1; }; }
check "the configuration with the new_terms rule is valid" \
    quiet "$BIN" check --config "$OUT/wwatchd.toml"

WANT=$(ww_kernel_rules "$OUT/wwatchd.toml") || { bad "rules print derives kernel rules for the new_terms seed"; WANT=1; }
start() { # ALERTS LOG
    ww__close_lock_fds
    "$BIN" run --config "$OUT/wwatchd.toml" --output stdout --spool-dir none \
        --status-file "$OUT/status.json" >"$1" 2>"$2" &
    WW=$!
}
started() { grep -q '^wwatchd: started: ' "$1" && [ "$(ours)" -ge "$WANT" ]; }
waited() { local i; for ((i = 0; i < ${WAIT:-100}; i++)); do "$@" && return 0; sleep 0.1; done; return 1; }
stop() {
    kill -TERM "$WW"
    wait "$WW"
    local rc=$?
    WW=
    return $rc
}
both() { [ "$1" = "$2" ] && [ "$3" = "$4" ]; }
alerts_for() { grep -c "\"path\":\"$2\"" "$1" || true; }
counter() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counters"][sys.argv[2]])' "$OUT/status.json" "$1" 2>/dev/null; }

SSH=(-q -F "$WW_SSH_CONFIG")
src=$OUT/src.bin
head -c 4096 /dev/urandom >"$src"
chmod 644 "$src"
put() { # REMOTE-PATH
    printf 'put %s %s\n' "$src" "$1" >"$OUT/batch"
    chmod 644 "$OUT/batch"
    ww_as wwalice sftp "${SSH[@]}" -b "$OUT/batch" wwalice@127.0.0.1 >/dev/null
}

start "$OUT/alerts1.jsonl" "$OUT/wwatchd1.log"
check "wwatchd starts with its $WANT kernel rules" waited started "$OUT/wwatchd1.log"
P1=/tmp/wwnt-scp-$T.bin
P2=/tmp/wwnt-sftp-$T.bin
P3=/var/tmp/wwnt-scpO-$T.bin
ww_as wwalice scp "${SSH[@]}" "$src" "wwalice@127.0.0.1:$P1"
sleep 1
put "$P2"
ww_as wwalice scp -O "${SSH[@]}" "$src" "wwalice@127.0.0.1:$P3"
sleep 2.5
A=$OUT/alerts1.jsonl
check "the first upload by sftp-server alerts" [ "$(alerts_for "$A" "$P1")" = 1 ]
check "the second upload by sftp-server within the window does not" [ "$(alerts_for "$A" "$P2")" = 0 ]
check "the first upload by /usr/bin/scp (scp -O) alerts" [ "$(alerts_for "$A" "$P3")" = 1 ]
check "the alerts carry host.id and the executable" \
    python3 -c '
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
exes = sorted(d["process"]["executable"] for d in docs)
assert all(d["host"]["id"] for d in docs), docs
assert exes == ["/usr/bin/scp", "/usr/lib/openssh/sftp-server"], exes' "$A"
sleep 5.5
check "status: new_terms_known 1, new_terms 2 (got $(counter new_terms_known), $(counter new_terms))" \
    both "$(counter new_terms_known)" 1 "$(counter new_terms)" 2
check "the store file exists in daemon.state_dir" [ -s "$STATE/new_terms.bin" ]
check "the state directory is 0700, the store 0600" \
    both "$(stat -c %a "$STATE")" 700 "$(stat -c %a "$STATE/new_terms.bin")" 600
check "wwatchd exits 0 at SIGTERM" stop

start "$OUT/alerts2.jsonl" "$OUT/wwatchd2.log"
check "wwatchd starts again" waited started "$OUT/wwatchd2.log"
check "it loads the 2 stored terms" grep -q 'new_terms: 2 terms loaded from' "$OUT/wwatchd2.log"
P4=/tmp/wwnt-after-restart-$T.bin
put "$P4"
sleep 2.5
check "after the restart the sftp-server term is still known: no alert" \
    [ "$(alerts_for "$OUT/alerts2.jsonl" "$P4")" = 0 ]
check "wwatchd exits 0 at SIGTERM again" stop

# A torn store (a disk fault): set aside, reported, counted; the daemon runs.
head -c 20 "$STATE/new_terms.bin" >"$STATE/new_terms.bin.cut"
mv "$STATE/new_terms.bin.cut" "$STATE/new_terms.bin"
chmod 600 "$STATE/new_terms.bin"
start "$OUT/alerts3.jsonl" "$OUT/wwatchd3.log"
check "with a torn store wwatchd starts" waited started "$OUT/wwatchd3.log"
check "and reports it, set aside as new_terms.bin.bad" \
    grep -q 'new_terms store .*new_terms.bin.bad' "$OUT/wwatchd3.log"
P5=/tmp/wwnt-after-loss-$T.bin
put "$P5"
sleep 6
check "the lost term alerts again" [ "$(alerts_for "$OUT/alerts3.jsonl" "$P5")" = 1 ]
check "new_terms_lost is 1 in the status file" [ "$(counter new_terms_lost)" = 1 ]
check "wwatchd exits 0 at SIGTERM a third time" stop
check "no wwatchd-d-* rule is left" [ "$(ours)" = 0 ]
echo "new_terms: $pass passed, $fail failed"
[ "$fail" = 0 ]
