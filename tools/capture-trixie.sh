#!/usr/bin/env bash
# capture-trixie.sh: regenerate tests/fixtures/trixie_* from real transfers with Debian 13's
# OpenSSH 10 (sshd-session), in the trixie chroot of tests/e2e/trixie-env.sh.
#
# Run as root, under the machine-wide lock:
#   flock /run/wwatchd-kernel.lock bash tools/capture-trixie.sh [--only trixie_NAME]
# Like capture.sh it adds audit rules keyed wwatchd-capture and removes exactly those at
# exit; it also kills what runs in the chroot and unmounts everything it mounted there, even
# when the capture fails. See tests/fixtures/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[[ $(id -u) == 0 ]] || { echo "capture-trixie.sh: run as root" >&2; exit 77; }
# shellcheck source=../tests/e2e/env.sh
. "$here/../tests/e2e/env.sh"
# shellcheck source=../tests/e2e/trixie-env.sh
. "$here/../tests/e2e/trixie-env.sh"
trap 'wt_teardown' EXIT
ww_install_packages
python3 "$here/capture_trixie.py" "$@"
