#!/usr/bin/env bash
# Hostile filenames, end to end on the real kernel (issue 5). A non-root user (wwalice) drives
# sftp, scp and rsync over loopback ssh to create files and directories whose names hold
# newline, CR, tab, quotes, backslash, ESC sequences, C1 controls, bytes that are not UTF-8,
# `%` and syslog-looking text, and a 4095-byte path. `wwatchd run` sends its alerts to a private
# rsyslogd over TCP (octet counting, RFC 5424), UDP (RFC 5424) and a unix datagram socket
# (RFC 3164, the /dev/log form), one run per transport. rsyslog escapes nothing on receipt and
# writes each message's raw bytes as one JSON-escaped line, so the check sees exactly what
# arrived: each alert is one message, its JSON is valid, the decoded path (file.path, or the
# hex wwatchd.raw.file.path when not UTF-8) equals the created path byte for byte, and no
# other message (an injected line) appears. Run as root, under the kernel lock.
# Prints "hostile: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
PORT=${WW_HOSTILE_PORT:-5516}
OUT=$(mktemp -d /run/wwatchd-e2e-hostile.XXXXXX)
RS=$WW_E2E_DIR/rsyslog-hostile
T=$$

WW=
cleanup() {
    ww_end_daemon
    local pid
    pid=$(ww__pid_alive "$RS/rsyslogd.pid") && ww__term "$pid"
    ww_stop_all >/dev/null 2>&1
    rm -rf /tmp/wwh-"$T"-* 2>/dev/null
}
trap cleanup EXIT

ww_start_all >"$OUT/env.log" 2>&1 || { cat "$OUT/env.log"; echo "hostile: 0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet
# `run` below takes no --config: the rules of /etc/wwatchd/wwatchd.toml, if there is one.
NRULES=$(ww_kernel_rules) || { echo "hostile: 0 passed, 1 failed"; exit 1; }

# The collector: nothing escaped on receipt, 64 KiB messages, each transport to its own file,
# each message as its raw bytes JSON-string escaped on one line.
mkdir -p "$RS/work"
cat >"$RS/rsyslog.conf" <<EOF
# wwatchd hostile-filename test rsyslogd; not the system's.
global(workDirectory="$RS/work" maxMessageSize="64k"
       parser.escapeControlCharactersOnReceive="off")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
template(name="wwraw" type="string" string="%rawmsg:::json%\n")
ruleset(name="tcp") { action(type="omfile" file="$OUT/collect-tcp.log" template="wwraw") }
ruleset(name="udp") { action(type="omfile" file="$OUT/collect-udp.log" template="wwraw") }
ruleset(name="unix") { action(type="omfile" file="$OUT/collect-unix.log" template="wwraw") }
input(type="imtcp" address="127.0.0.1" port="$PORT" ruleset="tcp")
# A receive buffer for a burst of 8 KiB alerts: the kernel's default (rmem_default) holds
# about 16 of them, and a datagram that does not fit is dropped where no sender can see it
# (seen once: the counter RcvbufErrors in /proc/net/snmp rose by one, one alert missing).
input(type="imudp" address="127.0.0.1" port="$PORT" ruleset="udp" rcvbufSize="8m")
input(type="imuxsock" socket="$RS/log.sock" ruleset="unix" ratelimit.interval="0")
EOF
if ! /usr/sbin/rsyslogd -N1 -f "$RS/rsyslog.conf" >"$OUT/rsyslog-check.log" 2>&1 ||
    ! /usr/sbin/rsyslogd -f "$RS/rsyslog.conf" -i "$RS/rsyslogd.pid" ||
    ! ww__wait "ww__listening_tcp $PORT && [ -S $RS/log.sock ]" 50; then
    cat "$OUT/rsyslog-check.log"
    echo "hostile: 0 passed, 1 failed"
    exit 1
fi
chmod 755 "$OUT"

# Alerts in COLLECT so far.
collected() { [ -f "$1" ] && grep -c 'wwatchd' "$1" || echo 0; }

# One run: wwatchd to DEST, files created under a fresh root-owned 1777 directory in /tmp
# (root's mkdir does not alert: uid 0), then the check.
run() {
    local name=$1 dest=$2 collect=$OUT/collect-$1.log dir=/tmp/wwh-$T-$1 rd=$OUT/$1
    mkdir -p "$rd" && chmod 755 "$rd"
    mkdir -m 1777 "$dir"
    "$BIN" run --output "$dest" --status-file "$rd/status.json" >>"$rd/wwatchd.log" 2>&1 &
    WW=$!
    local i
    for i in $(seq 50); do [ "$(ours)" -ge "$NRULES" ] && break; sleep 0.1; done
    check "$name: wwatchd run starts and loads its $NRULES kernel rules" [ "$(ours)" -ge "$NRULES" ]
    check "$name: sftp, scp and rsync create every hostile name" \
        python3 tests/e2e/hostile.py create "$dir" "$rd"
    local want
    want=$(wc -l <"$rd/expect")
    # The correlator's 2 s time-out and the sink; then a little more to catch any extra.
    for i in $(seq 100); do [ "$(collected "$collect")" -ge "$want" ] && break; sleep 0.1; done
    sleep 1
    kill -TERM "$WW"; wait "$WW"; WW=
    if python3 tests/e2e/hostile.py check "$collect" "$rd" >"$rd/verdicts" 2>"$rd/check.err"; then
        while read -r verdict what; do
            check "$name: $what" [ "$verdict" = ok ]
        done <"$rd/verdicts"
    else
        bad "$name: the checker failed: $(tail -3 "$rd/check.err")"
    fi
    rm -rf "$dir"
}

run tcp "tcp://127.0.0.1:$PORT"
run udp "udp://127.0.0.1:$PORT"
run unix "unix:$RS/log.sock"

check "our rules are gone after the runs" [ "$(ours)" = 0 ]
if [ "$fail" -gt 0 ]; then
    for f in "$OUT"/*/wwatchd.log; do echo "--- $f"; tail -20 "$f"; done
fi
echo "hostile: $pass passed, $fail failed"
[ "$fail" = 0 ]
