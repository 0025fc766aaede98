#!/usr/bin/env bash
# End-to-end test on Debian 13's OpenSSH 10 (sshd-session, sshd-auth): a debootstrapped trixie
# chroot (cached in $WW_TRIXIE_ROOT, built from nothing when missing) with the host's /tmp,
# /dev/shm, /proc, /sys and /dev bind-mounted, two sshd from the chroot on loopback (one with
# the sftp-server subsystem, one with internal-sftp), UsePAM yes. Non-root users inside the
# chroot transfer files; on the host, auditd and `wwatchd run` on its defaults deliver to a
# private rsyslog over TCP. Every remote creation must alert once, under the rule that names
# its process, with source.ip; root's, local, outside, rename and overwrite stay silent.
# Run as root, under the machine-wide lock: flock /run/wwatchd-kernel.lock bash tests/e2e/trixie.sh
# Prints "N passed, N failed"; exits non-zero on any failure. Unmounts everything at exit.
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/trixie-env.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
OUT=$(mktemp -d /run/wwatchd-e2e-trixie.XXXXXX)
COLLECT=$OUT/collect.log
T0=$SECONDS
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
ours() { auditctl -l | grep -c 'key=wwatchd-d-' || true; }

WW=
cleanup() {
    [ -n "$WW" ] && kill -TERM "$WW" 2>/dev/null && wait "$WW" 2>/dev/null
    WW=
    "$BIN" rules remove >/dev/null 2>&1
    wt_teardown || echo "FAIL trixie chroot teardown: something is still mounted under $WW_TRIXIE_ROOT"
    ww_stop_all >/dev/null 2>&1
    rm -rf /tmp/wwtx-* /tmp/.wwtx-* /dev/shm/wwtx-* 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setup_failed() { cat "$OUT/env.log"; echo "e2e trixie: 0 passed, 1 failed"; exit 1; }
ww_install_packages >"$OUT/env.log" 2>&1 || setup_failed
t=$SECONDS
wt_build >>"$OUT/env.log" 2>&1 || setup_failed
echo "chroot: $(tr '\n' ' ' <"$WW_TRIXIE_ROOT/.wwatchd-ready")(ready after $((SECONDS - t)) s)"
wt_mount >>"$OUT/env.log" 2>&1 || setup_failed
wt_setup >>"$OUT/env.log" 2>&1 || setup_failed
ww_start_auditd >>"$OUT/env.log" 2>&1 || setup_failed
ww_start_rsyslog "$COLLECT" >>"$OUT/env.log" 2>&1 || setup_failed
[ -x "$BIN" ] || cargo build --release --quiet
echo "environment ready after $((SECONDS - T0)) s"

AUDITD_PID=$(auditctl -s | awk '/^pid/{print $2}')
CONF=$OUT/wwatchd.toml
printf '# e2e trixie: the defaults\n' >"$CONF"
chmod 644 "$CONF"
"$BIN" run --config "$CONF" --output "tcp://127.0.0.1:$WW_SYSLOG_PORT" --status-file "$OUT/status.json" \
    --spool-dir "$OUT/spool" >>"$OUT/wwatchd.log" 2>&1 9>&- &
WW=$!
started() { for _ in $(seq 50); do [ "$(ours)" -ge 8 ] && return 0; sleep 0.1; done; return 1; }
check "wwatchd run starts and loads its 8 kernel rules" started
check "wwatchd loads both built-in rules" grep -q "2 detection rules" "$OUT/wwatchd.log"

T=$$
R=$WW_TRIXIE_ROOT
src=/srv/wwtx-src.bin # inside the chroot
head -c 4096 /dev/urandom >"$R$src"
chmod 644 "$R$src"
SSH=(-q -F "$WT_SSH_CONFIG")
sftp_batch() { # USER HOST LINES: an sftp batch inside the chroot
    local f=/srv/wwtx-batch-$1
    printf '%s\n' "$3" >"$R$f"
    chmod 644 "$R$f"
    wt_as "$1" sftp "${SSH[@]}" -b "$f" "$1@$2" >/dev/null
}
# Files that exist before the transfers: the rename and overwrite negatives.
for f in rename-src overwrite overwrite-legacy; do
    wt_as wwalice bash -c "echo old >/tmp/wwtx-$f-$T.bin"
done

# Positives: the seven rows of issue 10, plus symlinks and a put through sftp-server.
wt_as wwalice scp "${SSH[@]}" "$src" "wwalice@internal:/tmp/wwtx-scp-int-$T.bin"
sftp_batch wwalice internal "put $src /dev/shm/wwtx-sftp-int-$T.bin
mkdir /tmp/wwtx-sftpdir-int-$T
symlink /etc/hostname /tmp/wwtx-sftplink-int-$T"
wt_as wwalice ssh-agent bash -c "ssh-add -q ~/.ssh/id_ed25519 && ssh -A ${SSH[*]} wwalice@internal true"
wt_as wwalice scp "${SSH[@]}" "$src" "wwalice@sftpserver:/tmp/wwtx-scp-srv-$T.bin"
sftp_batch wwalice sftpserver "put $src /dev/shm/wwtx-sftp-srv-$T.bin
symlink /etc/hostname /tmp/wwtx-sftplink-srv-$T"
wt_as wwalice scp -O "${SSH[@]}" "$src" "wwalice@internal:/tmp/wwtx-scpO-$T.bin"
wt_as wwalice rsync -e "ssh ${SSH[*]}" "$src" "wwalice@internal:/tmp/wwtx-rsync-$T.bin"
# Negatives.
wt_as root scp "${SSH[@]}" "$src" "root@internal:/tmp/wwtx-root-int-$T.bin"
wt_as root scp "${SSH[@]}" "$src" "root@sftpserver:/tmp/wwtx-root-srv-$T.bin"
wt_as wwbob cp "$src" "/tmp/wwtx-cp-$T.bin"
wt_as wwbob touch "/tmp/wwtx-touch-$T.bin"
wt_as wwalice scp "${SSH[@]}" "$src" "wwalice@internal:wwtx-home-$T.bin"
sftp_batch wwalice internal "rename /tmp/wwtx-rename-src-$T.bin /tmp/wwtx-renamed-$T.bin"
wt_as wwalice scp "${SSH[@]}" "$src" "wwalice@internal:/tmp/wwtx-overwrite-$T.bin"
wt_as wwalice scp -O "${SSH[@]}" "$src" "wwalice@internal:/tmp/wwtx-overwrite-legacy-$T.bin"
# Everything the transfers were to create is there (a failed transfer fails here, not later).
made=0
for p in /tmp/wwtx-scp-int-$T.bin /dev/shm/wwtx-sftp-int-$T.bin /tmp/wwtx-sftpdir-int-$T \
    /tmp/wwtx-sftplink-int-$T /tmp/wwtx-scp-srv-$T.bin /dev/shm/wwtx-sftp-srv-$T.bin \
    /tmp/wwtx-sftplink-srv-$T /tmp/wwtx-scpO-$T.bin /tmp/wwtx-rsync-$T.bin \
    /tmp/wwtx-root-int-$T.bin /tmp/wwtx-root-srv-$T.bin /tmp/wwtx-cp-$T.bin \
    /tmp/wwtx-touch-$T.bin "$R/home/wwalice/wwtx-home-$T.bin" /tmp/wwtx-renamed-$T.bin; do
    if [ -e "$p" ] || [ -L "$p" ]; then made=$((made + 1)); else echo "missing: $p"; fi
done
check "every transfer created its file (15 of 15, found $made)" [ "$made" = 15 ]
sleep 2.5 # the correlator's 2 s time-out and the sink

python3 - "$COLLECT" "$T" >"$OUT/verdicts" <<'EOF'
import fnmatch, json, sys
collect, t = sys.argv[1], sys.argv[2]
SEED, COMP = "3e528511-7316-4a6e-83da-61b5f1c07fd4", "61f88af8-7b6d-4103-829a-dae6ab96a2b9"
docs, bad = [], 0
for line in open(collect, encoding="utf-8", errors="replace"):
    if " wwatchd " not in line or " alert - " not in line:
        continue
    try:
        docs.append(json.loads(line.split(" alert - ", 1)[1]))
    except ValueError:
        bad += 1
print("json", "ok" if bad == 0 else "bad")
want = [  # (row, path glob, process.name, rule)
    ("1:scp/internal-sftp", f"/tmp/wwtx-scp-int-{t}.bin", "sshd-session", COMP),
    ("2:sftp-put/internal-sftp", f"/dev/shm/wwtx-sftp-int-{t}.bin", "sshd-session", COMP),
    ("3:sftp-mkdir/internal-sftp", f"/tmp/wwtx-sftpdir-int-{t}", "sshd-session", COMP),
    ("4:ssh-A-agent-dir", "/tmp/ssh-*", "sshd-session", COMP),
    ("5:scp/sftp-server", f"/tmp/wwtx-scp-srv-{t}.bin", "sftp-server", SEED),
    ("6:scp-O", f"/tmp/wwtx-scpO-{t}.bin", "scp", SEED),
    ("7:rsync", f"/tmp/.wwtx-rsync-{t}.bin.*", "rsync", SEED),
    ("+:sftp-symlink/internal-sftp", f"/tmp/wwtx-sftplink-int-{t}", "sshd-session", COMP),
    ("+:sftp-put/sftp-server", f"/dev/shm/wwtx-sftp-srv-{t}.bin", "sftp-server", SEED),
    ("+:sftp-symlink/sftp-server", f"/tmp/wwtx-sftplink-srv-{t}", "sftp-server", SEED),
]
for row, glob, proc, rule in want:
    hits = [d for d in docs if fnmatch.fnmatchcase(d.get("file", {}).get("path", ""), glob)
            and d.get("process", {}).get("name") == proc]
    src = sorted({h.get("source", {}).get("ip", "-") for h in hits})
    good = (len(hits) == 1 and hits[0]["rule"]["id"] == rule and src == ["127.0.0.1"])
    seed = "seed" if rule == SEED else "companion"
    print("alert", row, proc, seed, ",".join(src) or "-", "ok" if good else
          f"bad({len(hits)}_hits,rules={[h['rule']['id'][:8] for h in hits]})")
agentd = [d for d in docs if d["process"]["name"] == "ssh-agent"]
print("none", "ssh-agent's-own-/tmp/ssh-*", "ok" if not agentd else f"bad({len(agentd)})")
for neg in ("root-int", "root-srv", "cp", "touch", "renamed", "overwrite", "overwrite-legacy"):
    n = sum(1 for d in docs if fnmatch.fnmatchcase(d.get("file", {}).get("path", ""), f"/tmp/wwtx-{neg}-{t}.bin"))
    print("none", neg, "ok" if n == 0 else f"bad({n})")
n = sum(1 for d in docs if d.get("file", {}).get("path", "").endswith(f"wwtx-home-{t}.bin"))
print("none", "home", "ok" if n == 0 else f"bad({n})")
paths = [d["file"]["path"] for d in docs]
dups = sorted({p for p in paths if paths.count(p) > 1})
print("dups", "ok" if not dups else f"bad({dups})")
known = [g for _r, g, _p, _u in want]
extra = [p for p in paths if not any(fnmatch.fnmatchcase(p, g) for g in known)]
print("extra", "ok" if not extra else f"bad({extra})")
seed_only = sum(1 for row, glob, proc, rule in want[:7] if rule == SEED)
print("seedonly", seed_only)
EOF
while read -r kind a b c d e; do
    case "$kind" in
    json) check "every collected alert is one valid JSON message" [ "$a" = ok ] ;;
    alert) check "row $a: alert by $b under the $c rule, source.ip $d" [ "$e" = ok ] ;;
    none) check "no alert: $a" [ "$b" = ok ] ;;
    dups) check "no creation alerts twice" [ "$a" = ok ] ;;
    extra) check "no unexpected alerts" [ "$a" = ok ] ;;
    seedonly) echo "note: the seed rule alone covers $a of the 7 rows" ;;
    esac
done <"$OUT/verdicts"
grep -q ' bad' "$OUT/verdicts" && { echo "--- verdicts"; cat "$OUT/verdicts"; }

check "auditd's pid is unchanged" [ "$(auditctl -s | awk '/^pid/{print $2}')" = "$AUDITD_PID" ]
kill -TERM "$WW"; wait "$WW"; rc=$?; WW=
check "SIGTERM exits 0" [ "$rc" = 0 ]
check "our rules are gone after SIGTERM" [ "$(ours)" = 0 ]
wt_teardown
check "nothing is left mounted under $WW_TRIXIE_ROOT" [ -z "$(wt__mounts_under "$WW_TRIXIE_ROOT")" ]
check "no process is left in the chroot" [ -z "$(wt__pids_inside "$WW_TRIXIE_ROOT")" ]

if [ "$fail" -gt 0 ]; then
    echo "--- wwatchd log"; tail -30 "$OUT/wwatchd.log"
    echo "--- env log"; tail -30 "$OUT/env.log"
fi
echo "e2e trixie: $pass passed, $fail failed ($((SECONDS - T0)) s)"
[ "$fail" = 0 ]
