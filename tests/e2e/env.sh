# shellcheck shell=bash
# env.sh: the end-to-end test environment, as a library to source.
#
# Real services on loopback, started directly (no systemd), each with its own
# config and pid file under $WW_E2E_DIR, so nothing here fights a system copy:
#
#   auditd    the system one; started only when it is not running
#   sshd      127.0.0.1:2222  (UsePAM, external sftp-server, agent forwarding)
#   vsftpd    127.0.0.1:2121  (local users, write_enable, passive on loopback)
#   rsyslogd  127.0.0.1:5514  UDP + TCP, writes each message to a collect file
#             (ww_stop_rsyslog / ww_start_rsyslog again: a collector outage)
#   rsyslogd  a second one on a private unix socket (ww_start_rsyslog_unix), a stand-in
#             for /dev/log
#
# Test users wwalice and wwbob (non-root) log in with keys and passwords; root
# logs in with a key, on this sshd only. The client side uses $WW_SSH_CONFIG:
#   scp -F "$WW_SSH_CONFIG" f wwalice@127.0.0.1:/tmp/
# Every function is idempotent. Needs root. Sourcing it does nothing by itself.

WW_E2E_DIR=${WW_E2E_DIR:-/run/wwatchd-e2e}
WW_SSH_PORT=${WW_SSH_PORT:-2222}
WW_FTP_PORT=${WW_FTP_PORT:-2121}
WW_SYSLOG_PORT=${WW_SYSLOG_PORT:-5514}
WW_SSH_CONFIG=$WW_E2E_DIR/ssh_config
WW_USERS=${WW_USERS:-"wwalice wwbob"}
# A fixed test password: these accounts exist only on test machines.
WW_PASSWORD=${WW_PASSWORD:-wwatchd-e2e-pw}

ww_log() { printf 'env.sh: %s\n' "$*" >&2; }
ww_die() { ww_log "error: $*"; return 1; }

# The pid in FILE, when that process is alive.
ww__pid_alive() {
    local pid
    [[ -r $1 ]] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Pids whose argv is exactly the given words (NUL-joined compare), so we only
# ever touch the copies we started ourselves.
ww__pids_by_argv() {
    local want p
    want=$(printf '%s\0' "$@" | od -An -tx1 | tr -d ' \n')
    for p in /proc/[0-9]*; do
        [[ -r $p/cmdline ]] || continue
        if [[ $(od -An -tx1 <"$p/cmdline" 2>/dev/null | tr -d ' \n') == "$want" ]]; then
            echo "${p#/proc/}"
        fi
    done
}

# Wait up to $2 tenths of a second for command $1 (eval'd) to succeed.
ww__wait() {
    local i
    for ((i = 0; i < $2; i++)); do
        eval "$1" && return 0
        sleep 0.1
    done
    return 1
}

ww__listening_tcp() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# `flock /run/wwatchd-kernel.lock CMD` hands CMD the lock's descriptor, and every daemon
# started from CMD would inherit it: one left running (an auditd that was not ours to stop)
# then holds the machine-wide lock for everybody, long after the test. So before starting a
# daemon, close this shell's copies; flock itself keeps the lock until CMD ends.
ww__close_lock_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        [[ $(readlink "$fd" 2>/dev/null) == "${WW_KERNEL_LOCK:-/run/wwatchd-kernel.lock}" ]] &&
            eval "exec ${fd##*/}>&-"
    done
    return 0
}

ww_install_packages() {
    local want=(auditd openssh-server openssh-client vsftpd rsync tnftp rsyslog
        lftp sshpass curl iproute2 procps util-linux python3)
    local missing=() p
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    ww_log "installing: ${missing[*]}"
    # Debian's maintainer scripts would start the daemons; there is no init
    # system here to do it and we start our own copies anyway.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    local rc=0
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}"; } || rc=$?
    rm -f /usr/sbin/policy-rc.d
    return $rc
}

# Start the system auditd when none is registered with the kernel. Records
# whether we started it, so ww_stop_all can put things back.
ww_start_auditd() {
    ww__close_lock_fds
    mkdir -p "$WW_E2E_DIR"
    local pid
    pid=$(auditctl -s 2>/dev/null | awk '$1 == "pid" {print $2}')
    if [[ -n $pid && $pid != 0 ]] && kill -0 "$pid" 2>/dev/null; then
        return 0
    fi
    if [[ ! -e $WW_E2E_DIR/auditd.started ]]; then
        # Remember the kernel's enabled flag, so it can be put back.
        auditctl -s | awk '$1 == "enabled" {print $2}' >"$WW_E2E_DIR/auditd.enabled_before"
    fi
    mkdir -p /var/log/audit
    /usr/sbin/auditd || ww_die "auditd failed to start" || return 1
    ww__wait '[[ $(auditctl -s | awk '\''$1 == "pid" {print $2}'\'') =~ ^[1-9] ]]' 100 ||
        ww_die "auditd did not register with the kernel" || return 1
    touch "$WW_E2E_DIR/auditd.started"
    # What the Debian service does after starting auditd (its -D is auditd's
    # doing, not ours). WW_AUGENRULES=0 skips it.
    if [[ ${WW_AUGENRULES:-1} == 1 && -x /usr/sbin/augenrules ]]; then
        /usr/sbin/augenrules --load >/dev/null || ww_log "augenrules --load failed (ignored)"
    fi
    # auditd enables auditing when it starts; make sure, without ever locking (-e 2).
    [[ $(auditctl -s | awk '$1 == "enabled" {print $2}') == 1 ]] || auditctl -e 1 >/dev/null
}

# Non-root users with passwords, bash as shell, and a client key each, plus a
# key for root. Private keys live in $WW_E2E_DIR/keys/USER/ (owned by USER, as
# ssh insists); the public keys are authorised through AuthorizedKeysFile
# $WW_E2E_DIR/authorized_keys/%u, so no home directory's .ssh is touched.
ww_users() {
    mkdir -p "$WW_E2E_DIR/keys" "$WW_E2E_DIR/authorized_keys"
    chmod 755 "$WW_E2E_DIR" "$WW_E2E_DIR/keys" "$WW_E2E_DIR/authorized_keys"
    local u
    for u in $WW_USERS root; do
        if [[ $u != root ]] && ! id "$u" >/dev/null 2>&1; then
            useradd -m -s /bin/bash "$u" || return 1
        fi
        if [[ $u != root ]]; then
            echo "$u:$WW_PASSWORD" | chpasswd || return 1
        fi
        local kd=$WW_E2E_DIR/keys/$u
        mkdir -p "$kd"
        if [[ ! -s $kd/id_ed25519 ]]; then
            rm -f "$kd/id_ed25519" "$kd/id_ed25519.pub"
            ssh-keygen -q -t ed25519 -N '' -C "$u@wwatchd-e2e" -f "$kd/id_ed25519" || return 1
        fi
        chown -R "$u:" "$kd"
        chmod 700 "$kd"
        chmod 600 "$kd/id_ed25519"
        install -m 644 -o root -g root "$kd/id_ed25519.pub" "$WW_E2E_DIR/authorized_keys/$u"
    done
    # One client config for everybody: %u is the local user running ssh.
    cat >"$WW_SSH_CONFIG" <<EOF
Host 127.0.0.1 localhost
    Port $WW_SSH_PORT
    IdentityFile $WW_E2E_DIR/keys/%u/id_ed25519
    IdentitiesOnly yes
    BatchMode yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
EOF
    chmod 644 "$WW_SSH_CONFIG"
}

# Run a command as USER with a clean login-like environment, without PAM (so
# no session records of our own): ww_as wwalice scp ...
ww_as() {
    local u=$1 home
    shift
    home=$(getent passwd "$u" | cut -d: -f6)
    setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- \
        env -i HOME="$home" USER="$u" LOGNAME="$u" SHELL=/bin/bash LANG=C.UTF-8 \
        PATH=/usr/local/bin:/usr/bin:/bin "$@"
}

ww_start_sshd() {
    ww__close_lock_fds
    local d=$WW_E2E_DIR/sshd
    mkdir -p "$d" /run/sshd
    chmod 755 /run/sshd
    if ww__pid_alive "$d/sshd.pid" >/dev/null; then return 0; fi
    [[ -s $d/ssh_host_ed25519_key ]] ||
        ssh-keygen -q -t ed25519 -N '' -f "$d/ssh_host_ed25519_key" || return 1
    cat >"$d/sshd_config" <<EOF
# wwatchd end-to-end test sshd; not the system's.
ListenAddress 127.0.0.1
Port $WW_SSH_PORT
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
UsePAM yes
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
AuthorizedKeysFile $WW_E2E_DIR/authorized_keys/%u
AllowAgentForwarding yes
X11Forwarding no
PrintMotd no
# External, so the process that writes files is comm "sftp-server".
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    /usr/sbin/sshd -t -f "$d/sshd_config" || return 1
    /usr/sbin/sshd -f "$d/sshd_config" || return 1
    ww__wait "ww__listening_tcp $WW_SSH_PORT" 50 || ww_die "sshd is not listening on $WW_SSH_PORT"
}

ww_start_vsftpd() {
    ww__close_lock_fds
    local d=$WW_E2E_DIR/vsftpd
    mkdir -p "$d" /var/run/vsftpd/empty
    if [[ -n $(ww__pids_by_argv /usr/sbin/vsftpd "$d/vsftpd.conf") ]]; then return 0; fi
    cat >"$d/vsftpd.conf" <<EOF
# wwatchd end-to-end test vsftpd; not the system's.
listen=YES
background=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$WW_FTP_PORT
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=NO
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=30000
pasv_max_port=30100
port_enable=YES
pam_service_name=vsftpd
secure_chroot_dir=/var/run/vsftpd/empty
seccomp_sandbox=NO
xferlog_enable=NO
dirmessage_enable=NO
use_localtime=YES
EOF
    /usr/sbin/vsftpd "$d/vsftpd.conf" || return 1
    ww__wait "ww__listening_tcp $WW_FTP_PORT" 50 || ww_die "vsftpd is not listening on $WW_FTP_PORT"
}

# A private rsyslogd receiving on 127.0.0.1:$WW_SYSLOG_PORT (UDP and TCP, the
# latter with octet-counted framing, imtcp's default) and writing each message
# to COLLECT_FILE. TEMPLATE (default rawmsg) is rawmsg or msg. No imuxsock, so
# it never takes /dev/log from a system rsyslog.
ww_start_rsyslog() {
    local collect=${1:?usage: ww_start_rsyslog COLLECT_FILE [rawmsg|msg]} prop=${2:-rawmsg}
    ww__close_lock_fds
    local d=$WW_E2E_DIR/rsyslog
    mkdir -p "$d/work"
    if ww__pid_alive "$d/rsyslogd.pid" >/dev/null; then return 0; fi
    mkdir -p "$(dirname "$collect")"
    cat >"$d/rsyslog.conf" <<EOF
# wwatchd end-to-end test rsyslogd; not the system's.
global(workDirectory="$d/work" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
# A receive buffer for bursts of alerts (UDP drops what the default one cannot hold).
input(type="imudp" address="127.0.0.1" port="$WW_SYSLOG_PORT" rcvbufSize="8m")
input(type="imtcp" address="127.0.0.1" port="$WW_SYSLOG_PORT")
template(name="wwcollect" type="string" string="%$prop%\n")
action(type="omfile" file="$collect" template="wwcollect")
EOF
    /usr/sbin/rsyslogd -N1 -f "$d/rsyslog.conf" >/dev/null 2>&1 ||
        { /usr/sbin/rsyslogd -N1 -f "$d/rsyslog.conf"; return 1; }
    /usr/sbin/rsyslogd -f "$d/rsyslog.conf" -i "$d/rsyslogd.pid" || return 1
    ww__wait "ww__listening_tcp $WW_SYSLOG_PORT" 50 || ww_die "rsyslogd is not listening on $WW_SYSLOG_PORT"
}

# Stop the private rsyslogd (the collector goes away; TCP peers see an orderly
# close) and wait until its port is closed. ww_start_rsyslog starts it again.
ww_stop_rsyslog() {
    local pid
    pid=$(ww__pid_alive "$WW_E2E_DIR/rsyslog/rsyslogd.pid") || return 0
    ww__term "$pid"
    ww__wait "! ww__listening_tcp $WW_SYSLOG_PORT" 50 ||
        ww_die "rsyslogd still listening on $WW_SYSLOG_PORT"
}

# A second private rsyslogd that listens only on the unix datagram socket SOCKET (imuxsock,
# rate limiting off) and writes each message to COLLECT_FILE: an honest stand-in for /dev/log
# (wwatchd's `local` output is unix:/dev/log) that never touches the machine's own /dev/log.
# The socket exists while it runs; ww_stop_rsyslog_unix stops it.
ww_start_rsyslog_unix() {
    local sock=${1:?usage: ww_start_rsyslog_unix SOCKET COLLECT_FILE} collect=${2:?collect file}
    ww__close_lock_fds
    local d=$WW_E2E_DIR/rsyslog-unix
    mkdir -p "$d/work" "$(dirname "$sock")" "$(dirname "$collect")"
    if ww__pid_alive "$d/rsyslogd.pid" >/dev/null; then return 0; fi
    cat >"$d/rsyslog.conf" <<EOF
# wwatchd end-to-end test rsyslogd on a private unix socket; not the system's.
global(workDirectory="$d/work" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$sock" RateLimit.Interval="0")
template(name="wwcollect" type="string" string="%rawmsg%\n")
action(type="omfile" file="$collect" template="wwcollect")
EOF
    /usr/sbin/rsyslogd -N1 -f "$d/rsyslog.conf" >/dev/null 2>&1 ||
        { /usr/sbin/rsyslogd -N1 -f "$d/rsyslog.conf"; return 1; }
    /usr/sbin/rsyslogd -f "$d/rsyslog.conf" -i "$d/rsyslogd.pid" || return 1
    ww__wait "[[ -S $sock ]]" 50 || ww_die "rsyslogd did not create $sock"
}

ww_stop_rsyslog_unix() {
    local pid
    pid=$(ww__pid_alive "$WW_E2E_DIR/rsyslog-unix/rsyslogd.pid") || return 0
    ww__term "$pid"
}

# Everything needed for the capture and for end-to-end tests, in order.
ww_start_all() {
    ww_install_packages && ww_start_auditd && ww_users && ww_start_sshd && ww_start_vsftpd
}

ww__term() { # PID...: TERM, wait up to 5 s, then KILL
    local p
    [[ $# -gt 0 ]] || return 0
    kill "$@" 2>/dev/null
    for p in "$@"; do
        ww__wait "! kill -0 $p 2>/dev/null" 50 || kill -9 "$p" 2>/dev/null
    done
}

# Stop what this library started. auditd is stopped only if we started it,
# and then the kernel's enabled flag goes back to what it was (never 2).
ww_stop_all() {
    local pid
    pid=$(ww__pid_alive "$WW_E2E_DIR/rsyslog/rsyslogd.pid") && ww__term "$pid"
    ww_stop_rsyslog_unix
    # sshd: the listener only; sessions end with their clients.
    pid=$(ww__pid_alive "$WW_E2E_DIR/sshd/sshd.pid") && ww__term "$pid"
    # shellcheck disable=SC2046
    ww__term $(ww__pids_by_argv /usr/sbin/vsftpd "$WW_E2E_DIR/vsftpd/vsftpd.conf")
    if [[ -e $WW_E2E_DIR/auditd.started ]]; then
        pid=$(auditctl -s 2>/dev/null | awk '$1 == "pid" {print $2}')
        [[ -n $pid && $pid != 0 ]] && ww__term "$pid"
        local before
        before=$(cat "$WW_E2E_DIR/auditd.enabled_before" 2>/dev/null)
        if [[ $before == 0 || $before == 1 ]]; then
            auditctl -e "$before" >/dev/null
        fi
        rm -f "$WW_E2E_DIR/auditd.started" "$WW_E2E_DIR/auditd.enabled_before"
    fi
    return 0
}
