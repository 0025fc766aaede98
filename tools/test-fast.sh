#!/usr/bin/env bash
# The fast tier: everything that needs neither root nor the kernel, as any user, in a few
# minutes: formatting, clippy (with core/clippy.toml: the core does no I/O), the docs (as
# tools/test-all.sh checks them) and every test of the workspace, without the root tier
# (tests/kernel.rs, which skips with a message).
set -euo pipefail
cd "$(dirname "$0")/.."

# The root tier's tests (tests/kernel.rs) skip with a message here, even as root: they
# change global kernel audit state and run only under the machine's kernel lock.
export WWATCHD_SKIP_ROOT_TESTS=1

echo "== cargo fmt --all --check"
cargo fmt --all --check
echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib --quiet
echo "== cargo test --workspace"
cargo test --workspace
