#!/usr/bin/env bash
# capture.sh: regenerate tests/fixtures/ from real transfers on this kernel.
#
# Run as root on a disposable Debian 12 machine: bash tools/capture.sh [--only NAME]
# It installs and starts what it needs (tests/e2e/env.sh), adds audit rules with
# key wwatchd-capture and removes exactly those at exit, and stops the services
# it started. See tests/fixtures/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[[ $(id -u) == 0 ]] || { echo "capture.sh: run as root" >&2; exit 77; }
# shellcheck source=../tests/e2e/env.sh
. "$here/../tests/e2e/env.sh"
ww_install_packages
exec python3 "$here/capture.py" "$@"
