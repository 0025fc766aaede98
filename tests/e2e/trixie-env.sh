# shellcheck shell=bash
# trixie-env.sh: a Debian 13 (trixie) chroot with OpenSSH 10, as a library to source after
# env.sh. For tests/e2e/trixie.sh and tools/capture-trixie.sh.
#
#   wt_build      debootstrap trixie into $WW_TRIXIE_ROOT once (about 30 s; installs
#                 debootstrap when missing); reused while $WW_TRIXIE_ROOT/.wwatchd-ready exists
#   wt_mount      bind-mount /proc, /sys, /dev, /dev/pts, /dev/shm and the HOST's /tmp into it:
#                 the kernel's dir=/tmp and dir=/dev/shm watches are on the host's inodes
#   wt_setup      users wwalice and wwbob (and root) with keys, client config, two sshd on
#                 loopback: $WW_TRIXIE_PORT_SFTP with the sftp-server subsystem,
#                 $WW_TRIXIE_PORT_INTERNAL with `Subsystem sftp internal-sftp`; UsePAM yes
#   wt_as USER CMD...   run CMD inside the chroot as USER (setpriv, no PAM)
#   wt_teardown   kill every process whose root is the chroot (the sshds and their sessions),
#                 then unmount everything mounted under it; safe to call at any time, twice
#
# The chroot's processes are found by /proc/PID/root, so only what runs inside our chroot is
# ever signalled. The tree is only ever deleted with nothing mounted in it. Needs root.

WW_TRIXIE_ROOT=${WW_TRIXIE_ROOT:-/var/cache/wwatchd-trixie}
WW_TRIXIE_MIRROR=${WW_TRIXIE_MIRROR:-http://deb.debian.org/debian}
WW_TRIXIE_PORT_SFTP=${WW_TRIXIE_PORT_SFTP:-2322}
WW_TRIXIE_PORT_INTERNAL=${WW_TRIXIE_PORT_INTERNAL:-2323}
WW_TRIXIE_PACKAGES=openssh-server,openssh-client,openssh-sftp-server,rsync,procps
# Inside the chroot:
WT_SSH_CONFIG=/etc/ssh/wwatchd_ssh_config
# Fixed uids, so fixtures captured on different machines agree.
declare -A WT_UID=([wwalice]=1601 [wwbob]=1602)
# Mounted in this order, unmounted in the reverse one.
WT_MOUNTS=(proc sys dev dev/pts dev/shm tmp)

wt_log() { printf 'trixie-env.sh: %s\n' "$*" >&2; }

# Mount points at or below DIR, deepest first.
wt__mounts_under() {
    local dir=${1%/}
    findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | sort -r
}

wt_build() {
    local root=$WW_TRIXIE_ROOT
    [[ -e $root/.wwatchd-ready ]] && return 0
    local d
    for d in "$root" "$root.new"; do
        if [[ -n $(wt__mounts_under "$d") ]]; then
            wt_log "error: something is mounted under $d; not rebuilding it (run wt_teardown)"
            return 1
        fi
    done
    if ! command -v debootstrap >/dev/null; then
        wt_log "installing debootstrap"
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends debootstrap; } >&2 || return 1
    fi
    rm -rf --one-file-system "$root.new" "$root"
    mkdir -p "$(dirname "$root")"
    local t0=$SECONDS
    wt_log "debootstrap trixie into $root (--variant=minbase, $WW_TRIXIE_PACKAGES)"
    debootstrap --variant=minbase --include="$WW_TRIXIE_PACKAGES" trixie "$root.new" \
        "$WW_TRIXIE_MIRROR" >"$(dirname "$root")/wwatchd-trixie-debootstrap.log" 2>&1 || {
        tail -20 "$(dirname "$root")/wwatchd-trixie-debootstrap.log" >&2
        wt_log "error: debootstrap failed"
        return 1
    }
    # debootstrap's maintainer scripts may have left a daemon behind (none seen; be sure).
    wt__kill_inside "$root.new"
    mv "$root.new" "$root"
    chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' openssh-server rsync libpam0g \
        >"$root/.wwatchd-ready"
    wt_log "built in $((SECONDS - t0)) s: $(tr '\n' ' ' <"$root/.wwatchd-ready")"
}

wt_mount() {
    local root=$WW_TRIXIE_ROOT m
    for m in "${WT_MOUNTS[@]}"; do
        mkdir -p "$root/$m"
        mountpoint -q "$root/$m" && continue
        mount --bind "/$m" "$root/$m" || { wt_log "error: mount --bind /$m"; return 1; }
    done
}

# Pids whose root directory is DIR (the processes running inside that chroot).
wt__pids_inside() {
    local dir p r
    dir=$(readlink -f "$1")
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        [[ $r == "$dir" ]] && echo "${p#/proc/}"
    done
}

wt__kill_inside() {
    local pids
    pids=$(wt__pids_inside "$1")
    [[ -z $pids ]] && return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null
    ww__wait "[[ -z \$(wt__pids_inside '$1') ]]" 50 && return 0
    # shellcheck disable=SC2046
    kill -KILL $(wt__pids_inside "$1") 2>/dev/null
    ww__wait "[[ -z \$(wt__pids_inside '$1') ]]" 50
}

wt_teardown() {
    local root=$WW_TRIXIE_ROOT m rc=0
    [[ -d $root ]] || return 0
    wt__kill_inside "$root"
    for m in $(wt__mounts_under "$root"); do
        umount "$m" 2>/dev/null || umount -l "$m" || rc=1
    done
    if [[ -n $(wt__mounts_under "$root") ]]; then
        wt_log "error: still mounted: $(wt__mounts_under "$root" | tr '\n' ' ')"
        return 1
    fi
    return $rc
}

wt_chroot() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 /usr/sbin/chroot "$WW_TRIXIE_ROOT" "$@"; }

# Run CMD as USER inside the chroot, with a clean login-like environment and no PAM.
wt_as() {
    local u=$1 uid
    shift
    uid=$(wt_chroot id -u "$u") || return 1
    env -i HOME="$( [[ $u == root ]] && echo /root || echo "/home/$u")" USER="$u" LOGNAME="$u" \
        SHELL=/bin/bash LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin \
        /usr/sbin/chroot "$WW_TRIXIE_ROOT" /usr/bin/setpriv --reuid="$uid" --regid="$(wt_chroot id -g "$u")" \
        --init-groups -- "$@"
}

wt__sshd_conf() { # NAME PORT SUBSYSTEM
    cat <<EOF
# wwatchd trixie e2e sshd ($1); not the chroot's own.
ListenAddress 127.0.0.1
Port $2
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/wwatchd-sshd-$1.pid
UsePAM yes
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /etc/ssh/wwatchd_authorized_keys/%u
AllowAgentForwarding yes
X11Forwarding no
PrintMotd no
Subsystem sftp $3
EOF
}

wt_setup() {
    local root=$WW_TRIXIE_ROOT u
    ww__close_lock_fds
    mkdir -p "$root/etc/ssh/wwatchd_authorized_keys" "$root/run/sshd"
    chmod 755 "$root/etc/ssh/wwatchd_authorized_keys" "$root/run/sshd"
    for u in wwalice wwbob root; do
        local home=/home/$u
        if [[ $u == root ]]; then
            home=/root
        elif ! wt_chroot id "$u" >/dev/null 2>&1; then
            wt_chroot useradd -m -u "${WT_UID[$u]}" -U -s /bin/bash "$u" || return 1
        fi
        if [[ ! -s $root$home/.ssh/id_ed25519 ]]; then
            mkdir -p "$root$home/.ssh"
            rm -f "$root$home/.ssh/id_ed25519" "$root$home/.ssh/id_ed25519.pub"
            wt_chroot ssh-keygen -q -t ed25519 -N '' -C "$u@wwatchd-trixie" \
                -f "$home/.ssh/id_ed25519" || return 1
        fi
        wt_chroot chown -R "$u:" "$home/.ssh"
        chmod 700 "$root$home/.ssh"
        install -m 644 -o root -g root "$root$home/.ssh/id_ed25519.pub" \
            "$root/etc/ssh/wwatchd_authorized_keys/$u"
    done
    cat >"$root$WT_SSH_CONFIG" <<EOF
# wwatchd trixie e2e client configuration.
Host sftpserver
    HostName 127.0.0.1
    Port $WW_TRIXIE_PORT_SFTP
Host internal
    HostName 127.0.0.1
    Port $WW_TRIXIE_PORT_INTERNAL
Host *
    IdentityFile ~/.ssh/id_ed25519
    IdentitiesOnly yes
    BatchMode yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
EOF
    chmod 644 "$root$WT_SSH_CONFIG"
    wt__sshd_conf sftpserver "$WW_TRIXIE_PORT_SFTP" /usr/lib/openssh/sftp-server \
        >"$root/etc/ssh/wwatchd_sshd_sftpserver.conf"
    wt__sshd_conf internal "$WW_TRIXIE_PORT_INTERNAL" internal-sftp \
        >"$root/etc/ssh/wwatchd_sshd_internal.conf"
    local n port
    for n in sftpserver internal; do
        port=$WW_TRIXIE_PORT_SFTP
        [[ $n == internal ]] && port=$WW_TRIXIE_PORT_INTERNAL
        ww__listening_tcp "$port" && continue
        wt_chroot /usr/sbin/sshd -t -f "/etc/ssh/wwatchd_sshd_$n.conf" || return 1
        wt_chroot /usr/sbin/sshd -f "/etc/ssh/wwatchd_sshd_$n.conf" 9>&- || return 1
        ww__wait "ww__listening_tcp $port" 50 || { wt_log "error: sshd $n not on $port"; return 1; }
    done
}
