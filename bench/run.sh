#!/usr/bin/env bash
# Benchmarks: sshpod against OpenSSH and raw Docker, every scenario against every subject in one
# run. Builds sshpod and kube-sim in release mode, ensures the Docker engine, the guest image and
# the venv, then runs bench/bench.py, which prints the tables and refreshes bench/results.json
# and BENCHMARKS.md.
#
#   bench/run.sh            # the full run (what BENCHMARKS.md reports)
#   bench/run.sh --quick    # few iterations, small sizes: for trying things out
#
# Other arguments go to bench.py (--only login,throughput  --subjects sshpod-docker,docker-exec
# --no-write). Never part of scripts/test.sh.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$REPO_ROOT"

[ "$(id -u)" -eq 0 ] || die "run the benchmarks as root (they start their own sshd on a loopback port)"

ensure_cargo
ensure_packages            # docker.io, openssh-client, openssh-server, openssh-sftp-server, python3-venv, ...
ensure_dockerd
ensure_guest_image
ensure_venv

log "building sshpod and kube-sim (release)"
cargo build --release -p sshpod -p kube-sim
target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
case "$target" in /*) ;; *) target="$REPO_ROOT/$target" ;; esac

command_line="bench/run.sh${*:+ $*}"
exec "$REPO_ROOT/.venv/bin/python" "$REPO_ROOT/bench/bench.py" \
  --sshpod "$target/release/sshpod" --kube-sim "$target/release/kube-sim" \
  --command "$command_line" "$@"
