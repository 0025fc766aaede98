#!/usr/bin/env bash
# End-to-end test on Debian 13's OpenSSH 10 (sshd-session, sshd-auth): a debootstrapped trixie
# chroot (cached in $WW_TRIXIE_ROOT, built from nothing when missing) with the host's /tmp,
# /dev/shm, /proc, /sys and /dev bind-mounted, two sshd from the chroot on loopback (one with
# the sftp-server subsystem, one with internal-sftp), UsePAM yes. Non-root users inside the
# chroot transfer files; on the host, auditd and `wwatchd run` on its defaults deliver to a
# private rsyslog over TCP. Every remote creation must alert once, under the rule that names
# its process, with source.ip; root's, local, outside, rename and overwrite stay silent.
# Then rules.world_writable_by_mode: a 1777 directory no rule names must be found, watched
# and alert (by mode), its 0755 subdirectory must not.
# Run as root, under the machine-wide lock: flock /run/wwatchd-kernel.lock bash tests/e2e/trixie.sh
# Prints "N passed, N failed"; exits non-zero on any failure. Unmounts everything at exit.
set -u
cd "$(dirname "$0")/../.."
. tests/e2e/env.sh
. tests/e2e/lib.sh
. tests/e2e/trixie-env.sh

BIN=${WWATCHD_BIN:-target/release/wwatchd}
OUT=$(mktemp -d /run/wwatchd-e2e-trixie.XXXXXX)
COLLECT=$OUT/collect.log
T0=$SECONDS

WW=
cleanup() {
    ww_end_daemon
    wt_teardown || echo "FAIL trixie chroot teardown: something is still mounted under $WW_TRIXIE_ROOT"
    ww_stop_all >/dev/null 2>&1
    rm -rf /tmp/wwtx-* /tmp/.wwtx-* /dev/shm/wwtx-* /srv/wwtx-drop-* 2>/dev/null
    # The by-mode phase's mount point, once nothing is mounted on it.
    mountpoint -q "$WW_TRIXIE_ROOT/srv/wwtx-drop" || rmdir "$WW_TRIXIE_ROOT/srv/wwtx-drop" 2>/dev/null
    rm -f "$WW_TRIXIE_ROOT"/srv/wwtx-src.bin "$WW_TRIXIE_ROOT"/srv/wwtx-batch-*
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

# World-writable by mode (rules.world_writable_by_mode): a 1777 directory that no rule names,
# /srv/wwtx-drop-$T on the host, bind-mounted into the chroot as /srv/wwtx-drop. The daemon
# must find it, watch it, and alert on a creation in it (by mode) but not in its private
# subdirectory (mode 0755: the PARENT record says no), while /tmp stays the companion's.
DROP=/srv/wwtx-drop-$T
mkdir -p "$DROP/private" "$R/srv/wwtx-drop"
chmod 1777 "$DROP"
chown "${WT_UID[wwalice]}:${WT_UID[wwalice]}" "$DROP/private"
chmod 755 "$DROP/private"
mount --bind "$DROP" "$R/srv/wwtx-drop"
printf '[rules]\nworld_writable_by_mode = true\n' >"$CONF"
"$BIN" run --config "$CONF" --output "tcp://127.0.0.1:$WW_SYSLOG_PORT" --status-file "$OUT/status.json" \
    --spool-dir "$OUT/spool" >"$OUT/wwatchd-mode.log" 2>&1 9>&- &
WW=$!
dropkey="key=wwatchd-d-srv-wwtx-drop-$T-b64"
watched() { for _ in $(seq 50); do auditctl -l | grep -q -- "$dropkey" && return 0; sleep 0.1; done; return 1; }
check "by mode: the daemon finds $DROP (mode 1777) and watches it" watched
check "by mode: three built-in rules loaded" grep -q "started: 3 detection rules" "$OUT/wwatchd-mode.log"
wt_as wwalice scp "${SSH[@]}" "$src" "wwalice@internal:/srv/wwtx-drop/wwtx-mode-a-$T.bin"
wt_as wwalice scp "${SSH[@]}" "$src" "wwalice@sftpserver:/srv/wwtx-drop/wwtx-mode-r-$T.bin"
wt_as wwalice scp "${SSH[@]}" "$src" "wwalice@internal:/srv/wwtx-drop/private/wwtx-mode-p-$T.bin"
wt_as wwalice scp "${SSH[@]}" "$src" "wwalice@internal:/tmp/wwtx-mode-tmp-$T.bin"
n=0
for f in "$DROP/wwtx-mode-a-$T.bin" "$DROP/wwtx-mode-r-$T.bin" "$DROP/private/wwtx-mode-p-$T.bin" "/tmp/wwtx-mode-tmp-$T.bin"; do
    [ -e "$f" ] && n=$((n + 1))
done
check "by mode: the four transfers created their files ($n of 4)" [ "$n" = 4 ]
sleep 2.5
python3 - "$COLLECT" "$T" >"$OUT/verdicts-mode" <<'EOF2'
import json, sys
collect, t = sys.argv[1], sys.argv[2]
MODE, COMP = "afcdeefb-a9f7-46fb-a7e0-e6411ecb0437", "61f88af8-7b6d-4103-829a-dae6ab96a2b9"
docs = []
for line in open(collect, encoding="utf-8", errors="replace"):
    if " wwatchd " in line and " alert - " in line:
        docs.append(json.loads(line.split(" alert - ", 1)[1]))
def one(path, proc, rule, what):
    hits = [d for d in docs if d["file"]["path"] == path]
    good = (len(hits) == 1 and hits[0]["rule"]["id"] == rule and hits[0]["process"]["name"] == proc
            and hits[0].get("source", {}).get("ip") == "127.0.0.1")
    print("ok" if good else "bad", what, [(h["rule"]["id"][:8], h["process"]["name"]) for h in hits])
one(f"/srv/wwtx-drop/wwtx-mode-a-{t}.bin", "sshd-session", MODE, "by-mode-alert-internal-sftp")
one(f"/srv/wwtx-drop/wwtx-mode-r-{t}.bin", "sftp-server", MODE, "by-mode-alert-sftp-server")
one(f"/tmp/wwtx-mode-tmp-{t}.bin", "sshd-session", COMP, "tmp-stays-the-companion's")
n = sum(1 for d in docs if d["file"]["path"].endswith(f"wwtx-mode-p-{t}.bin"))
print("ok" if n == 0 else "bad", "no-alert-in-the-0755-subdirectory", n)
EOF2
while read -r v what rest; do
    check "by mode: $what" [ "$v" = ok ]
done <"$OUT/verdicts-mode"
grep -q '^bad' "$OUT/verdicts-mode" && { echo "--- verdicts"; cat "$OUT/verdicts-mode"; tail -5 "$OUT/wwatchd-mode.log"; }
kill -TERM "$WW"; wait "$WW"; rc=$?; WW=
check "by mode: SIGTERM exits 0" [ "$rc" = 0 ]
check "by mode: our rules are gone after SIGTERM" [ "$(ours)" = 0 ]
wt_teardown
check "nothing is left mounted under $WW_TRIXIE_ROOT" [ -z "$(wt__mounts_under "$WW_TRIXIE_ROOT")" ]
check "no process is left in the chroot" [ -z "$(wt__pids_inside "$WW_TRIXIE_ROOT")" ]

if [ "$fail" -gt 0 ]; then
    echo "--- wwatchd log"; tail -30 "$OUT/wwatchd.log"
    echo "--- env log"; tail -30 "$OUT/env.log"
fi
echo "e2e trixie: $pass passed, $fail failed ($((SECONDS - T0)) s)"
[ "$fail" = 0 ]
