#!/usr/bin/env bash
# The whole test suite: lints, Rust tests, then the end-to-end suite (tests/e2e) against the real
# binary, real OpenSSH clients and a real Docker engine, and the kube-sim suite (tests/kube_sim)
# against kube-sim with kubectl and the official Python client. Installs and starts what is missing.
#
#   scripts/test.sh                       # everything
#   scripts/test.sh -k transfer -x        # extra arguments go to pytest
#   SSHPOD_BIN=target/release/sshpod scripts/test.sh
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

ensure_cargo
# A fresh clone gains nothing from incremental state; it only costs disk.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=0; fi
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

ensure_packages
ensure_dockerd
ensure_guest_image
ensure_venv
ensure_browser
ensure_player_assets
export SSHPOD_PLAYER_ASSETS="$PLAYER_ASSETS"
ensure_helm
export SSHPOD_HELM="$HELM_BIN"

log "cargo build -p sshpod -p kube-sim"
cargo build -p sshpod -p kube-sim
log "cargo test --workspace"
cargo test --workspace

log "end-to-end and kube-sim suites"
export SSHPOD_BIN="${SSHPOD_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/sshpod}"
export KUBE_SIM_BIN="${KUBE_SIM_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/kube-sim}"
# One invocation; both directories share the e2e settings (timeouts, no cache).
"$REPO_ROOT/.venv/bin/pytest" -c tests/e2e/pytest.ini --rootdir tests tests/e2e tests/kube_sim -v "$@"
log "chaos run (bench/chaos, short and seeded): nothing left behind, nothing lost"
"$REPO_ROOT/bench/chaos" --cycles 40 --seed 1 --sshpod "$SSHPOD_BIN"
