#!/usr/bin/env bash
# Build a bootable Debian root file system image for the VM suite (tests/vm/run.sh) from
# Debian's own packages: debootstrap, a little configuration, mkfs.ext4 -d. No downloaded
# image. The result holds everything the in-VM checks need (auditd, sshd, sftp, rsyslog),
# because the VM has no network at test time.
#
#   mkimage.sh RELEASE OUT.img [MIRROR]
#
# RELEASE is a Debian suite (bookworm, trixie). The image's kernel and initrd are in its
# /boot; run.sh copies them out next to the image. Root only.
set -euo pipefail

rel=${1:?usage: mkimage.sh RELEASE OUT.img [MIRROR]}
out=${2:?usage: mkimage.sh RELEASE OUT.img [MIRROR]}
mirror=${3:-http://deb.debian.org/debian}

# Everything the checks use inside the VM. linux-image + initramfs-tools: a kernel that
# boots from virtio (initramfs-tools' MODULES=most has virtio_blk). auditd: augenrules and
# the boot-time rule load that wwatchd must survive. openssh-*: sshd, sftp-server, and the
# scp/sftp clients for loopback uploads. rsyslog: the second syslog reader. adduser: the
# package's postinst. kmod/udev: module loading at boot.
pkgs=linux-image-amd64,initramfs-tools,systemd-sysv,udev,kmod,auditd,openssh-server
pkgs+=,openssh-sftp-server,openssh-client,procps,adduser,rsyslog,e2fsprogs,iproute2

root=$(mktemp -d "${out}.root.XXXXXX")
cleanup() {
    for m in proc sys dev/pts dev; do
        mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
    done
    rm -rf "$root"
}
trap cleanup EXIT

echo "mkimage: debootstrap $rel from $mirror"
debootstrap --variant=minbase --include="$pkgs" "$rel" "$root" "$mirror" \
    >"${out}.debootstrap.log" 2>&1 || {
    tail -n 30 "${out}.debootstrap.log" >&2
    exit 1
}

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

echo wwvm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 wwvm\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$root/etc/fstab"
# The results are read from the powered-off image: journal on disk, for the post-mortem.
mkdir -p "$root/var/log/journal"

# A serial getty hangs up whoever else writes to ttyS0; the console is the harness's log.
# Timers that would start apt or scrubbing work in a short-lived VM go too.
for u in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer \
    apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
    systemd-timesyncd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done

# A non-root user who uploads over loopback ssh with a key; root holds the key.
in_root adduser --disabled-password --gecos "" --uid 1001 wwalice >/dev/null
mkdir -p "$root/root/.ssh" "$root/home/wwalice/.ssh"
ssh-keygen -q -t ed25519 -N "" -C wwvm -f "$root/root/.ssh/id_ed25519"
cp "$root/root/.ssh/id_ed25519.pub" "$root/home/wwalice/.ssh/authorized_keys"
chmod 700 "$root/root/.ssh" "$root/home/wwalice/.ssh"
in_root chown -R wwalice:wwalice /home/wwalice/.ssh
printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n' \
    >"$root/root/.ssh/config"
# Host keys: openssh-server's postinst made them; make sure.
in_root ssh-keygen -A >/dev/null

# The test hook: a oneshot unit that runs /vmtest/guest.sh (injected per run by run.sh)
# once the system is up, then powers off whatever the outcome.
cat >"$root/etc/systemd/system/wwvm-test.service" <<'UNIT'
[Unit]
Description=wwatchd VM test (tests/vm/guest.sh)
After=multi-user.target
ConditionPathExists=/vmtest/guest.sh
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/bin/bash /vmtest/guest.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=1200

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/wwvm-test.service \
    "$root/etc/systemd/system/multi-user.target.wants/wwvm-test.service"

in_root apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin
# The kernel and initrd, for qemu -kernel/-initrd.
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n 1)
cp "$kernel" "${out%.img}.vmlinuz"
cp "$initrd" "${out%.img}.initrd"

size=$(( $(du -sm "$root" | cut -f1) + 1024 ))
rm -f "$out.tmp"
mkfs.ext4 -q -F -L wwvm -d "$root" "$out.tmp" "${size}M"
mv "$out.tmp" "$out"
echo "mkimage: $out (${size} MiB), kernel $(basename "$kernel")"
