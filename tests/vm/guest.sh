#!/bin/bash
# The checks that run inside a disposable Debian VM (tests/vm/run.sh boots it), as root,
# from the oneshot unit wwvm-test.service, with systemd as PID 1 and no network but
# loopback. One boot runs one phase; the phase ends by naming the next one in
# /vmtest/phase, and the unit powers the VM off. Every check writes one line to
# /vmtest/results.PHASE: "PASS phase: what", "FAIL phase: what: why" or "INFO phase: what"
# (a recorded observation, not a verdict); run.sh echoes and counts them.
#
#   1 install    dpkg -i; hardening under systemd; alerts in the journal and rsyslog's file;
#                reload; a broken config refused; auditd restart and augenrules; stop
#   2 reboot     everything back at boot, after auditd; dpkg -r and dpkg -P; install again
#                and lock audit (-e 2 at the end of rules.d) for the next boot
#   3 locked     enabled 2 with our rules.d file: runs on the loaded rules and alerts
#   4 locked-bare  enabled 2 without our rules.d file: says once what is missing, alerts for
#                what a site rule lets it see
#   5 no-auditd  auditd purged: runs, warns once about the kernel log, alerts
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C

V=/vmtest
phase=$(cat $V/phase 2>/dev/null || echo 1)
release=$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
out=$V/results.$phase
: >"$out"
exec > >(tee -a $V/console.$phase) 2>&1

name=$phase
case $phase in
1) name=install ;; 2) name=reboot ;; 3) name=locked ;; 4) name=locked-bare ;; 5) name=no-auditd ;;
esac
say() { echo "$*" >>"$out"; echo "$*"; sync; }
pass() { say "PASS $release/$name: $1"; }
fail() { say "FAIL $release/$name: $1${2:+: $2}"; }
info() { say "INFO $release/$name: $*"; }
check() { # check WHAT COMMAND... (FAIL shows the command's output)
    local what=$1 o
    shift
    if o=$("$@" 2>&1); then pass "$what"; else fail "$what" "$(echo "$o" | tr '\n' ' ' | cut -c1-300)"; fi
}
# wait_for SECONDS COMMAND...: true as soon as COMMAND is, polling every 0.2 s.
wait_for() {
    local end=$(($(date +%s%N) + $1 * 1000000000))
    shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$(date +%s%N)" -lt "$end" ] || return 1
        sleep 0.2
    done
}
next() { echo "$1" >$V/phase; sync; }

mainpid() { systemctl show -p MainPID --value wwatchd; }
ours() { auditctl -l | grep -F 'key=wwatchd-d-' | sort; }
# The rules the daemon derives now (rules print; hidden /home directories come on top).
wanted() { wwatchd rules print | grep '^-a' | grep -o 'key=[^ ]*' | sort; }
ours_keys() { ours | grep -o 'key=[^ ]*' | sort; }
all_ours_loaded() { [ -n "$(wanted)" ] && [ -z "$(comm -23 <(wanted) <(ours_keys))" ]; }
# This boot's journal of the service: its stderr and what it sent through /dev/log.
unit_log() { journalctl -b -u wwatchd -o cat --no-pager; }
alerts_for() { journalctl -b -t wwatchd -o cat --no-pager | grep -F '"kind":"alert"' | grep -F "\"path\":\"$1\""; }
alert_in_journal() { alerts_for "$1" >/dev/null; }
# upload HOW FILE: as wwalice over loopback ssh; HOW is sftp, scp (SFTP protocol), scp-O.
upload() {
    local how=$1 dst=$2 src=$V/payload
    [ -f $src ] || head -c 4096 /dev/urandom >$src
    case $how in
    sftp) echo "put $src $dst" | sftp -q -b - wwalice@127.0.0.1 ;;
    scp) scp -q "$src" "wwalice@127.0.0.1:$dst" ;;
    scp-O) scp -q -O "$src" "wwalice@127.0.0.1:$dst" ;;
    esac
}
# drop HOW FILE: upload, then the alert must reach the journal within 10 s.
drop() {
    local how=$1 f=$2
    if ! upload "$how" "$f"; then
        fail "$how upload of $f by wwalice" "the upload itself failed"
        return 1
    fi
    if wait_for 10 alert_in_journal "$f"; then
        pass "$how upload of $f by wwalice: alert in the journal ($(alerts_for "$f" | grep -o '"message":"[^"]*"' | head -n 1))"
    else
        fail "$how upload of $f by wwalice: alert in the journal" "none within 10 s; creator per auditd: $(creator "$f")"
        return 1
    fi
}
# What the kernel recorded as the creating process of FILE (from auditd's log, if any).
creator() {
    [ -r /var/log/audit/audit.log ] || { echo "no audit.log"; return; }
    ausearch -f "$1" 2>/dev/null | grep -o ' comm="[^"]*" exe="[^"]*"' | head -n 1
}
hardening() { # the running daemon as systemd started it
    local pid
    pid=$(mainpid)
    check "systemd is PID 1" test "$(cat /proc/1/comm)" = systemd
    check "wwatchd.service is enabled" systemctl is-enabled --quiet wwatchd
    check "wwatchd.service is active" systemctl is-active --quiet wwatchd
    if [ -z "$pid" ] || [ "$pid" = 0 ]; then
        fail "wwatchd has a main PID" "$(systemctl status wwatchd --no-pager 2>&1 | tail -n 5)"
        return
    fi
    check "runs as user wwatchd" test "$(ps -o user= -p "$pid")" = wwatchd
    local bad="" t
    for t in /proc/"$pid"/task/*; do
        for f in CapEff CapPrm CapBnd; do
            grep -qx "$f:	0000002040000000" "$t/status" || bad+=" $t $(grep "^$f" "$t/status")"
        done
        for f in CapInh CapAmb; do
            grep -qx "$f:	0000000000000000" "$t/status" || bad+=" $t $(grep "^$f" "$t/status")"
        done
        grep -qx "NoNewPrivs:	1" "$t/status" || bad+=" $t NoNewPrivs"
    done
    check "every thread: CapEff/CapPrm/CapBnd 0000002040000000 (AUDIT_READ|AUDIT_CONTROL), CapInh/CapAmb 0, NoNewPrivs" test -z "$bad"
    [ -z "$bad" ] || info "capabilities: $bad"
}
no_denials() {
    local o
    o=$(unit_log | grep -iE 'SIGSYS|EPERM|Operation not permitted|permission denied|seccomp')
    check "no SIGSYS, EPERM or 'Operation not permitted' in its journal" test -z "$o"
    [ -z "$o" ] || info "journal: $(echo "$o" | head -n 5 | tr '\n' ' ')"
    o=$(journalctl -b -k -o cat --no-pager | grep -E 'type=1326|SECCOMP' | grep -F wwatchd)
    check "no seccomp record of wwatchd in the kernel log" test -z "$o"
}
# How many times this boot's journal has a diagnostic matching PATTERN.
diag_count() { unit_log | grep -cE "$1"; }
wwatchd_procs() { pgrep -x wwatchd; }

echo "== wwatchd VM test, $release, phase $phase ($name), kernel $(uname -r)"
case $phase in
1)
    check "dpkg -i the .deb" dpkg -i $V/wwatchd.deb
    wait_for 10 systemctl is-active --quiet wwatchd
    wait_for 10 all_ours_loaded
    hardening
    check "all derived kernel rules loaded ($(ours | wc -l) keyed wwatchd-d-)" all_ours_loaded
    check "wwatchd rules status: nothing missing" wwatchd rules status
    # Under systemd stderr goes to the journal: each diagnostic must appear once, not also
    # as a second copy sent through /dev/log.
    wait_for 5 test "$(diag_count 'privileges:')" -ge 1
    n=$(diag_count 'privileges:')
    check "a diagnostic is logged once under systemd ('privileges:' seen $n times)" test "$n" = 1
    [ "$n" = 1 ] || info "journal: $(unit_log | grep 'privileges:' | tr '\n' ' ')"

    drop sftp /tmp/vm-sftp.bin
    drop scp /tmp/vm-scp.bin
    drop scp-O /tmp/vm-scp-legacy.bin
    drop sftp /var/tmp/vm-sftp.bin
    check "rsyslog is active" systemctl is-active --quiet rsyslog
    in_rsyslog() { grep -rlF '"path":"/tmp/vm-sftp.bin"' /var/log/auth.log /var/log/syslog /var/log/messages 2>/dev/null | grep -q .; }
    if wait_for 10 in_rsyslog; then
        pass "the sftp alert is in rsyslog's file ($(grep -rlF '"path":"/tmp/vm-sftp.bin"' /var/log/ 2>/dev/null | grep -v journal | tr '\n' ' '))"
    else
        fail "the sftp alert is in rsyslog's file" "not in /var/log/{auth.log,syslog,messages}"
    fi

    # internal-sftp: sshd does the file I/O itself (Debian 13: in a process named
    # sshd-session). The built-in rule lists "sshd", so on Debian 12 it must alert; on 13 what
    # it gives is recorded (a companion rule for sshd-session is separate work).
    cp /etc/ssh/sshd_config /etc/ssh/sshd_config.orig
    sed -i 's|^Subsystem[[:space:]]\+sftp.*|Subsystem sftp internal-sftp|' /etc/ssh/sshd_config
    if grep -q '^Subsystem sftp internal-sftp' /etc/ssh/sshd_config && systemctl reload ssh; then
        sleep 1
        f=/tmp/vm-internal-sftp.bin
        if [ "$release" = bookworm ]; then
            drop sftp $f
        else
            upload sftp $f
            if wait_for 10 alert_in_journal $f; then
                info "internal-sftp upload: alert ($(alerts_for $f | grep -o '"message":"[^"]*"' | head -n 1))"
            else
                info "internal-sftp upload: no alert from the built-in rule; kernel recorded$(creator $f)"
            fi
        fi
    else
        fail "switch sshd to internal-sftp"
    fi
    cp /etc/ssh/sshd_config.orig /etc/ssh/sshd_config
    systemctl reload ssh

    # reload applies a change: a watched directory gives a new kernel rule, same process.
    pid=$(mainpid)
    mkdir -p /srv/wwvm-drop
    cp /etc/wwatchd/wwatchd.toml $V/wwatchd.toml.orig
    sed -i 's|^#watch_dirs = \[\]|watch_dirs = ["/srv/wwvm-drop"]|' /etc/wwatchd/wwatchd.toml
    srv_rule() { auditctl -l | grep -F 'dir=/srv/wwvm-drop' | grep -qF 'key=wwatchd-d-'; }
    check "config edited (watch_dirs)" grep -q '^watch_dirs = \["/srv/wwvm-drop"\]' /etc/wwatchd/wwatchd.toml
    systemctl reload wwatchd
    check "systemctl reload wwatchd applies watch_dirs: a rule for /srv/wwvm-drop within 5 s" wait_for 5 srv_rule
    check "same process after reload" test "$(mainpid)" = "$pid"
    # A broken file is refused, the running configuration kept.
    cp /etc/wwatchd/wwatchd.toml $V/wwatchd.toml.good
    printf '\n[rules]\nno_such_key = 1\n' >>/etc/wwatchd/wwatchd.toml
    before=$(diag_count 'configuration not reloaded')
    systemctl reload wwatchd
    refused() { [ "$(diag_count 'configuration not reloaded')" -gt "$before" ]; }
    check "broken config on reload: refused, said in the journal" wait_for 5 refused
    info "refusal: $(unit_log | grep -F 'configuration not reloaded' | tail -n 1 | cut -c1-300)"
    sleep 1
    check "broken config: still active, same process" test "$(systemctl is-active wwatchd)/$(mainpid)" = "active/$pid"
    check "broken config: the old configuration kept (rule for /srv/wwvm-drop still loaded)" srv_rule
    cp $V/wwatchd.toml.orig /etc/wwatchd/wwatchd.toml
    systemctl reload wwatchd
    check "original config back on reload: the /srv rule goes" wait_for 5 bash -c "! auditctl -l | grep -qF dir=/srv/wwvm-drop"

    # auditd's own reloads: rules back within 2 s.
    count_ok() { all_ours_loaded; }
    # Should a release's auditd.service refuse a manual stop (RefuseManualStop=yes, as
    # upstream's once did), the admin's way is `service auditd restart`.
    if o=$(systemctl restart auditd 2>&1); then
        pass "systemctl restart auditd"
    elif grep -q 'Operation refused' <<<"$o"; then
        info "systemctl restart auditd refused ($(echo "$o" | head -n 1)); using service auditd restart"
        check "service auditd restart" service auditd restart
    else
        fail "systemctl restart auditd" "$(echo "$o" | head -n 2 | tr '\n' ' ')"
    fi
    check "auditd active after its restart" systemctl is-active --quiet auditd
    check "after auditd restart: our rules back within 2 s" wait_for 2 count_ok
    check "augenrules --load" augenrules --load
    check "augenrules --load: our rules back within 2 s" wait_for 2 count_ok
    # The same without our rules.d file: the daemon itself reinstalls on CONFIG_CHANGE.
    mv /etc/audit/rules.d/40-wwatchd.rules $V/
    augenrules --load >/dev/null 2>&1
    check "augenrules --load without our rules.d file: wwatchd reinstalls within 2 s" wait_for 2 count_ok
    mv $V/40-wwatchd.rules /etc/audit/rules.d/
    drop sftp /tmp/vm-after-reloads.bin

    # stop removes exactly ours.
    auditctl -w /etc/wwvm-foreign -p wa -k wwvm-foreign >/dev/null
    others=$(auditctl -l | grep -vF 'key=wwatchd-d-')
    check "systemctl stop wwatchd" systemctl stop wwatchd
    check "after stop: no rule keyed wwatchd-d- left" test -z "$(ours)"
    check "after stop: every other rule still loaded, unchanged" test "$(auditctl -l | grep -vF 'key=wwatchd-d-')" = "$others"
    check "after stop: no wwatchd process" bash -c '! pgrep -x wwatchd'
    auditctl -W /etc/wwvm-foreign -p wa -k wwvm-foreign >/dev/null
    no_denials
    unit_log >$V/journal.$phase
    next 2
    ;;
2)
    # A reboot: enabled at boot, started after auditd loaded rules.d (whose -D would
    # otherwise delete ours), everything in place.
    wait_for 20 systemctl is-active --quiet wwatchd
    hardening
    check "after reboot: all derived kernel rules loaded" wait_for 5 all_ours_loaded
    a=$(systemctl show -p ActiveEnterTimestampMonotonic --value auditd)
    w=$(systemctl show -p ExecMainStartTimestampMonotonic --value wwatchd)
    check "started after auditd was up (auditd active at $a us, wwatchd exec at $w us)" test "$a" -gt 0 -a "$w" -gt "$a"
    n=$(unit_log | grep -ciE 'rule_reinstalls=[1-9]|reinstall')
    info "reinstall mentions in this boot's journal: $n"
    st=$(unit_log | grep '^started: ' | head -n 1)
    check "no kernel rule failed to install at boot" grep -q ', 0 failed)' <<<"$st"
    info "${st:-no started line}"
    drop sftp /tmp/vm-after-reboot.bin
    no_denials
    unit_log >$V/journal.$phase

    check "dpkg -r wwatchd" dpkg -r wwatchd
    check "after dpkg -r: service not active" bash -c '! systemctl is-active --quiet wwatchd'
    check "after dpkg -r: no wwatchd process" bash -c '! pgrep -x wwatchd'
    check "after dpkg -r: no rule keyed wwatchd-d-" test -z "$(ours)"
    check "after dpkg -r: /usr/bin/wwatchd gone" test ! -e /usr/bin/wwatchd
    check "after dpkg -r: unit file gone" test ! -e /usr/lib/systemd/system/wwatchd.service
    check "after dpkg -r: conffiles kept" test -f /etc/wwatchd/wwatchd.toml -a -f /etc/audit/rules.d/40-wwatchd.rules
    check "dpkg -P wwatchd" dpkg -P wwatchd
    check "after dpkg -P: /etc/wwatchd gone" test ! -e /etc/wwatchd
    check "after dpkg -P: /etc/audit/rules.d/40-wwatchd.rules gone" test ! -e /etc/audit/rules.d/40-wwatchd.rules
    check "after dpkg -P: /var/lib/wwatchd gone" test ! -e /var/lib/wwatchd
    left=$(find /etc/systemd /var/lib/systemd -name '*wwatchd*' 2>/dev/null)
    check "after dpkg -P: no systemd link or state left${left:+: $left}" test -z "$left"
    check "after dpkg -P: no rule keyed wwatchd-d-" test -z "$(ours)"
    check "after dpkg -P: no wwatchd process" bash -c '! pgrep -x wwatchd'

    # Next boot: installed again, audit locked at the end of rules.d as hardened hosts do.
    check "dpkg -i again (for the locked boots)" dpkg -i $V/wwatchd.deb
    wait_for 10 all_ours_loaded
    sed -i 's|^#reconcile_interval = 30|reconcile_interval = 1|' /etc/wwatchd/wwatchd.toml
    echo '-e 2' >/etc/audit/rules.d/99-zz-wwvm-lock.rules
    next 3
    ;;
3)
    wait_for 20 systemctl is-active --quiet wwatchd
    check "audit is locked (enabled 2)" bash -c "auditctl -s | grep -qx 'enabled 2'"
    hardening
    check "locked, rules.d file installed: all our rules were loaded by auditd" all_ours_loaded
    sleep 4 # four reconcile intervals: the daemon must neither loop nor exit
    n=$(diag_count 'LOCKED|locked')
    check "locked: said once ($n times after 4 reconcile intervals)" test "$n" = 1
    info "locked: $(unit_log | grep -iE 'locked' | head -n 1 | cut -c1-400)"
    check "locked: still active" systemctl is-active --quiet wwatchd
    drop sftp /tmp/vm-locked.bin
    drop scp /var/tmp/vm-locked.bin
    check "locked: wwatchd rules status reports nothing missing" wwatchd rules status
    no_denials
    unit_log >$V/journal.$phase
    # Next boot: locked again, but our rules.d file gone; a site rule of the host's own
    # covers /var/tmp, so that is what wwatchd can still see.
    mv /etc/audit/rules.d/40-wwatchd.rules $V/40-wwatchd.rules.away
    echo '-a always,exit -F arch=b64 -S open,openat,creat,mkdir,mkdirat -F dir=/var/tmp -F success=1 -k site-var-tmp' \
        >/etc/audit/rules.d/30-wwvm-site.rules
    next 4
    ;;
4)
    wait_for 20 systemctl is-active --quiet wwatchd
    check "audit is locked (enabled 2)" bash -c "auditctl -s | grep -qx 'enabled 2'"
    check "locked, no rules.d file: none of our rules loaded" test -z "$(ours)"
    sleep 4
    n=$(diag_count 'LOCKED')
    check "locked, missing rules: said once ($n times after 4 reconcile intervals)" test "$n" = 1
    m=$(unit_log | grep 'LOCKED' | head -n 1)
    check "the message names the missing rules" bash -c "grep -qF 'key=wwatchd-d-tmp-b64' <<<'$m'"
    info "message: $(echo "$m" | cut -c1-300)..."
    check "locked, missing rules: still active" systemctl is-active --quiet wwatchd
    check "locked, missing rules: wwatchd rules status exits non-zero" bash -c '! wwatchd rules status >/dev/null'
    drop sftp /var/tmp/vm-site-rule.bin
    upload sftp /tmp/vm-unseen.bin
    sleep 3
    check "a drop into /tmp, which no loaded rule covers, gives no alert" bash -c "! journalctl -b -t wwatchd -o cat | grep -qF '\"path\":\"/tmp/vm-unseen.bin\"'"
    no_denials
    unit_log >$V/journal.$phase
    # Next boot: no auditd at all.
    rm -f /etc/audit/rules.d/30-wwvm-site.rules /etc/audit/rules.d/99-zz-wwvm-lock.rules
    mv $V/40-wwatchd.rules.away /etc/audit/rules.d/40-wwatchd.rules
    check "dpkg -P auditd" dpkg -P auditd
    next 5
    ;;
5)
    wait_for 20 systemctl is-active --quiet wwatchd
    check "auditd is not installed" bash -c '! dpkg -s auditd 2>/dev/null | grep -qx "Status: install ok installed" && ! test -e /usr/sbin/auditd'
    check "no audit daemon registered (kernel status pid 0)" bash -c "wwatchd status | grep -q '^kernel: enabled 1 .* pid 0 '"
    hardening
    check "all derived kernel rules loaded" wait_for 5 wwatchd rules status
    wait_for 5 test "$(diag_count 'kernel log')" -ge 1
    n=$(diag_count 'kernel log')
    check "warns once that records also go to the kernel log ($n times)" test "$n" = 1
    info "warning: $(unit_log | grep 'kernel log' | head -n 1 | cut -c1-300)"
    drop sftp /tmp/vm-no-auditd.bin
    n=$(journalctl -b -k -o cat --no-pager | grep -c 'type=1300')
    info "SYSCALL records in the kernel log this boot: $n"
    no_denials
    unit_log >$V/journal.$phase
    next done
    ;;
esac
journalctl -b --no-pager >$V/journal-all.$phase 2>&1
sync
