#!/usr/bin/env bash
# The VM suite: the .deb under real systemd, on Debian 12 (bookworm) and Debian 13 (trixie),
# in disposable qemu VMs (TCG; nested KVM is not relied on). Root only.
#
#   tests/vm/run.sh [--deb FILE] [RELEASE...]     (default: bookworm trixie)
#
# For each release: a base image built by tests/vm/mkimage.sh from Debian's packages
# (debootstrap, no downloaded image) and cached in $WWATCHD_VM_CACHE (default
# /var/cache/wwatchd-vm), keyed by a hash of mkimage.sh and the release, so a rerun only
# copies it. Into a copy go the freshly built .deb and tests/vm/guest.sh (with debugfs, no
# mount); the VM boots from the image's own kernel and initrd, a oneshot unit runs one phase
# of guest.sh and powers off; qemu is killed after $WWATCHD_VM_TIMEOUT seconds (default 600)
# whatever happens. The same disk boots again for the next phase (a reboot), five boots in
# all (WWATCHD_VM_PHASES=N: the first N). Results are read back from the powered-off image with debugfs. Every check is one
# PASS/FAIL line; the exit status is non-zero if any check failed or a phase gave no result.
#
# Kernel audit inside a VM is the VM's own: nothing here touches the host's audit, so no
# machine-wide lock is needed. Serial logs and results stay in $WWATCHD_VM_WORK (default
# /var/tmp/wwatchd-vm) until the next run.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
    echo "vm: run as root (debootstrap, debugfs on images)" >&2
    exit 77
fi

deb=
releases=()
while [ $# -gt 0 ]; do
    case $1 in
    --deb) deb=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) releases+=("$1"); shift ;;
    esac
done
[ ${#releases[@]} -gt 0 ] || releases=(bookworm trixie)

cache=${WWATCHD_VM_CACHE:-/var/cache/wwatchd-vm}
work=${WWATCHD_VM_WORK:-/var/tmp/wwatchd-vm}
timeout=${WWATCHD_VM_TIMEOUT:-600}
# WWATCHD_VM_PHASES=N stops after phase N (1 install, 2 reboot, 3-4 locked, 5 no auditd).
phases=${WWATCHD_VM_PHASES:-5}
t0=$(date +%s)

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debugfs >/dev/null || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
    echo "vm: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# debootstrap of trixie needs its keyring (Debian 12 ships it in debian-archive-keyring).
if [ -z "$deb" ]; then
    command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
    echo "== vm: cargo deb"
    deb=$(cargo deb 2>&1 | tail -n 1)
fi
[ -f "$deb" ] || { echo "vm: no .deb at '$deb'" >&2; exit 1; }
deb=$(realpath "$deb")
echo "vm: package $deb"

mkdir -p "$cache" "$work"
key=$(cat tests/vm/mkimage.sh | sha256sum | cut -c1-16)

# image RELEASE: the cached base image's path, built first if missing.
image() {
    local rel=$1 img="$cache/$1-$key.img" t
    if [ ! -f "$img" ]; then
        t=$(date +%s)
        echo "== vm: building the $rel base image (cache miss: $img)" >&2
        (exec 9>"$cache/$rel.lock" && flock 9 && { [ -f "$img" ] || bash tests/vm/mkimage.sh "$rel" "$img"; }) >&2
        echo "vm: $rel image built in $(($(date +%s) - t)) s" >&2
        # Older images of this release (another mkimage.sh) are of no further use.
        find "$cache" -maxdepth 1 -name "$rel-*" ! -name "$rel-$key.*" -delete
    fi
    echo "$img"
}

# boot IMG KERNEL INITRD LOG: one boot, killed after $timeout s.
boot() {
    local rc=0
    timeout -k 10 "$timeout" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 2048 -smp 2 \
        -kernel "$2" -initrd "$3" -append "root=/dev/vda rw console=ttyS0 panic=-1" \
        -drive "file=$1,format=raw,if=virtio" -nic none -display none -monitor none \
        -serial "file:$4" -no-reboot || rc=$?
    return $rc
}

fetch() { debugfs -R "cat $2" "$1" 2>/dev/null; }

# Missing base images are built first, side by side (debootstrap mostly waits on the
# network and the disk).
pids=()
for rel in "${releases[@]}"; do
    [ -f "$cache/$rel-$key.img" ] || { image "$rel" >/dev/null & pids+=($!); }
done
for p in "${pids[@]}"; do
    wait "$p" || { echo "vm: building a base image failed" >&2; exit 1; }
done

total_fail=0
total_pass=0
declare -A summary
for rel in "${releases[@]}"; do
    base=$(image "$rel")
    run="$work/$rel"
    rm -rf "$run"
    mkdir -p "$run"
    img="$run/disk.img"
    cp --sparse=always "$base" "$img"
    cp tests/vm/guest.sh "$run/guest.sh"
    echo 1 >"$run/phase"
    debugfs -w -f - "$img" >/dev/null 2>"$run/debugfs.log" <<EOF
mkdir /vmtest
write $deb /vmtest/wwatchd.deb
write $run/guest.sh /vmtest/guest.sh
write $run/phase /vmtest/phase
EOF
    [ "$(fetch "$img" /vmtest/phase)" = 1 ] || { echo "vm: cannot inject into $img: $(cat "$run/debugfs.log")" >&2; exit 1; }
    rel_fail=0
    rel_pass=0
    for phase in $(seq 1 $phases); do
        t=$(date +%s)
        rc=0
        boot "$img" "${base%.img}.vmlinuz" "${base%.img}.initrd" "$run/serial.$phase.log" || rc=$?
        secs=$(($(date +%s) - t))
        if [ "$rc" != 0 ]; then
            if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
                echo "FAIL $rel/phase $phase: no power-off within ${timeout} s (killed); serial log: $run/serial.$phase.log"
            else
                echo "FAIL $rel/phase $phase: qemu exited with status $rc; serial log: $run/serial.$phase.log"
            fi
            rel_fail=$((rel_fail + 1))
            # The guest's file system journal may be unreplayed: e2fsck finishes it first.
            e2fsck -fy "$img" >/dev/null 2>&1 || true
        fi
        res=$(fetch "$img" "/vmtest/results.$phase")
        if [ -z "$res" ]; then
            echo "FAIL $rel/phase $phase: no results (qemu exit $rc after $secs s); serial log tail:"
            tail -n 25 "$run/serial.$phase.log" | sed 's/^/    /'
            rel_fail=$((rel_fail + 1))
            break
        fi
        echo "$res"
        p=$(grep -c '^PASS' <<<"$res" || true)
        f=$(grep -c '^FAIL' <<<"$res" || true)
        rel_pass=$((rel_pass + p))
        rel_fail=$((rel_fail + f))
        echo "vm: $rel phase $phase: $p passed, $f failed, boot to power-off $secs s"
        for n in journal.$phase journal-all.$phase console.$phase; do
            fetch "$img" "/vmtest/$n" >"$run/$n" || true
        done
        nextp=$(fetch "$img" /vmtest/phase)
        if [ "$nextp" != $((phase + 1)) ] && [ "$nextp" != done ]; then
            echo "FAIL $rel/phase $phase: did not finish (next phase '$nextp'); see $run/console.$phase"
            rel_fail=$((rel_fail + 1))
            break
        fi
        [ "$nextp" != done ] || break
        [ "$phase" -lt "$phases" ] || echo "vm: $rel: stopping after phase $phase (WWATCHD_VM_PHASES)"
    done
    summary[$rel]="$rel_pass passed, $rel_fail failed"
    total_pass=$((total_pass + rel_pass))
    total_fail=$((total_fail + rel_fail))
    # Keep the disk only when something failed (for a post-mortem with debugfs).
    [ "$rel_fail" -gt 0 ] || rm -f "$img"
done

echo "== vm summary ($(($(date +%s) - t0)) s in all)"
for rel in "${releases[@]}"; do
    echo "vm: $rel: ${summary[$rel]}"
done
if [ "$total_fail" -gt 0 ] || [ "$total_pass" = 0 ]; then
    echo "vm: FAILED ($total_fail failed)"
    exit 1
fi
echo "vm: all $total_pass passed"
