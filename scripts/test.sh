#!/usr/bin/env bash
# The whole test suite: lints, Rust tests, then the end-to-end suite (tests/e2e) against the real
# binary, real OpenSSH clients and a real Docker engine. Installs and starts what is missing.
#
#   scripts/test.sh                       # everything
#   scripts/test.sh -k transfer -x        # extra arguments go to pytest
#   SSHPOD_BIN=target/release/sshpod scripts/test.sh
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

ensure_cargo
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

ensure_packages
ensure_dockerd
ensure_guest_image
ensure_venv

log "cargo build -p sshpod"
cargo build -p sshpod
log "cargo test --workspace"
cargo test --workspace

log "end-to-end suite"
export SSHPOD_BIN="${SSHPOD_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/sshpod}"
"$REPO_ROOT/.venv/bin/pytest" tests/e2e -v "$@"
