#!/usr/bin/env bash
# Quick start: install what is missing, start Docker, build the guest image and sshpod, create a
# demo configuration under .work/demo/ (once; reused afterwards) and run the server.
#
#   scripts/run.sh                 # listens on 0.0.0.0:2222
#   SSHPOD_PORT=2200 scripts/run.sh
#
# SSHPOD_BIN runs an already built binary instead of building one; SSHPOD_DEMO_DIR keeps the
# demo's configuration, keys and password elsewhere (the test suite uses both).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

PORT="${SSHPOD_PORT:-2222}"
DEMO="${SSHPOD_DEMO_DIR:-$WORK_DIR/demo}"

ensure_cargo
ensure_packages
ensure_dockerd
ensure_guest_image
ensure_isolated_network
BIN=$(sshpod_binary "${SSHPOD_BIN:-}")

mkdir -p "$DEMO/authorized_keys"
chmod 700 "$DEMO"

if [ ! -f "$DEMO/id_ed25519" ]; then
  ssh-keygen -q -t ed25519 -N '' -C demo@sshpod -f "$DEMO/id_ed25519"
fi
cp "$DEMO/id_ed25519.pub" "$DEMO/authorized_keys/demo"

password_note="printed on the first run; delete $DEMO/htpasswd for a new one"
if [ ! -f "$DEMO/htpasswd" ]; then
  password=$(openssl rand -base64 18 | tr -d '/+=' | cut -c1-16)
  printf 'demo:%s\n' "$(printf '%s' "$password" | openssl passwd -6 -stdin)" >"$DEMO/htpasswd"
  chmod 600 "$DEMO/htpasswd"
  password_note="$password"
fi

# Rewritten on every run so the port follows SSHPOD_PORT.
cat >"$DEMO/config.yaml" <<EOF
# sshpod demo configuration, written by scripts/run.sh.
ssh:
  listen: 0.0.0.0:$PORT
  hostkeys:
    - $DEMO/ssh_host_ed25519_key
log:
  level: info
  format: text
auth:
  publicKey:
    method: authorizedKeys
    authorizedKeys:
      file: $DEMO/authorized_keys/%u
  password:
    method: htpasswd
    htpasswd:
      file: $DEMO/htpasswd
# You are your own user in your container (demo), with a home and a login shell.
identity:
  enable: true
docker:
  execution:
    # Isolation for strangers (README, "Security model"): no capabilities for the user (so no
    # raw sockets either), and a network on which containers cannot reach each other.
    container:
      image: sshpod-guest:latest
    host:
      networkmode: $SSHPOD_NETWORK
      capdrop: [ALL]
security:
  # Port forwarding (ssh -L, -W) into your container; off unless turned on, as in ContainerSSH.
  forwarding:
    forwardingMode: enable
EOF

rel_key="${DEMO#"$REPO_ROOT"/}/id_ed25519"
cat <<EOF

sshpod demo
  config:    ${DEMO#"$REPO_ROOT"/}/config.yaml
  user:      demo
  key login: ssh -i $rel_key -p $PORT demo@localhost
  password:  ssh -o PubkeyAuthentication=no -p $PORT demo@localhost   (password: $password_note)
  files:     scp -i $rel_key -P $PORT FILE demo@localhost:   |   sftp -i $rel_key -P $PORT demo@localhost
Every login gets a fresh container from sshpod-guest:latest, removed when you log out.
Stop the server with Ctrl-C.

EOF

exec "$BIN" --config "$DEMO/config.yaml"
