#!/usr/bin/env bash
# A class on Docker, from the teacher's first command to the end of term, run for real: make the
# class's SSH CA, sign a student's key until the end of term, start sshpod with homes of their own,
# log in with the certificate, keep work across logins and a server restart, revoke the student
# at the end of term, and remove their home. Each step checks what it promises and stops on the
# first that does not hold (the README's "A class on Docker" walks through the same steps).
#
#   examples/class/docker.sh                  # in .work/class, on port 2223
#   SSHPOD_CLASS_DIR=/tmp/c SSHPOD_PORT=2300 SSHPOD_BIN=target/release/sshpod examples/class/docker.sh
#
# SSHPOD_CLASS_STUDENT names the student (alice); a run that fails removes that student's home.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

PORT="${SSHPOD_PORT:-2223}"
CLASS="${SSHPOD_CLASS_DIR:-$WORK_DIR/class}"
STUDENT="${SSHPOD_CLASS_STUDENT:-alice}"
DEADLINE_S=60

ensure_packages
ensure_dockerd
ensure_guest_image
ensure_isolated_network
BIN=$(realpath "$(sshpod_binary "${SSHPOD_BIN:-}")")

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'walk-through failed: %s\n' "$*" >&2; [ -f "$CLASS/sshpod.log" ] && tail -n 30 "$CLASS/sshpod.log" >&2; exit 1; }

rm -rf "$CLASS"
mkdir -p "$CLASS"
chmod 700 "$CLASS"
cd "$CLASS"

step "1. The teacher makes the class's CA (ca_key never goes to the server; ca_key.pub does)"
ssh-keygen -q -t ed25519 -N '' -C 'class CA' -f ca_key

step "2. The student ($STUDENT) makes a key; the teacher signs it for the term (principal $STUDENT, serial 1001)"
ssh-keygen -q -t ed25519 -N '' -C "$STUDENT" -f student
ssh-keygen -q -s ca_key -I "$STUDENT@class" -n "$STUDENT" -z 1001 -V -5m:+16w student.pub
ssh-keygen -L -f student-cert.pub | grep -E 'Valid|Principals' -A1

step "3. The server: trusts the CA, nothing revoked yet, a home and a container of your own per user"
ssh-keygen -q -k -f revoked.krl
cat >config.yaml <<EOF
ssh:
  listen: 127.0.0.1:$PORT
  hostkeys: [$CLASS/ssh_host_ed25519_key]
log:
  level: info
  format: text
auth:
  publicKey:
    method: ""                       # certificates only
    trustedUserCAKeys: $CLASS/ca_key.pub
    revokedKeys: $CLASS/revoked.krl
identity:
  enable: true                       # the student is their own user, in their home
  hostname: "%u-class"
homes:
  enable: true                       # a Docker volume per user, kept until 'sshpod homes rm'
  gracePeriod: 1m                    # log in again within a minute: same container, tmux still there
  customizeCommand: 'echo "Welcome to the class, \$USER" > WELCOME'
docker:
  execution:
    mode: user
    container:
      image: sshpod-guest:latest
    host:
      networkmode: $SSHPOD_NETWORK
      capdrop: [ALL]
EOF
"$BIN" --config config.yaml check-config >/dev/null
: >sshpod.log

server_pid=""
start_server() {
  local logged deadline=$((SECONDS + DEADLINE_S))
  logged=$(wc -l <sshpod.log)
  "$BIN" --config config.yaml --control-socket "$CLASS/control.sock" >>sshpod.log 2>&1 &
  server_pid=$!
  until tail -n +$((logged + 1)) sshpod.log | grep -q 'listening on'; do
    kill -0 "$server_pid" 2>/dev/null || fail "sshpod did not start"
    [ $SECONDS -lt $deadline ] || fail "sshpod did not listen within ${DEADLINE_S}s"
    sleep 0.2
  done
}
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" || true
  server_pid=""
}
finished=""
clean_up() {
  stop_server
  [ -n "$finished" ] || "$BIN" --config config.yaml homes rm "$STUDENT" --yes >/dev/null 2>&1 || true
}
trap clean_up EXIT
start_server
echo "sshpod is listening on 127.0.0.1:$PORT"

# How a student logs in: their key, their certificate, and the server's host key learnt once.
student() {
  ssh -p "$PORT" -i student -o CertificateFile=student-cert.pub -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$CLASS/known_hosts" -o StrictHostKeyChecking=accept-new -o LogLevel=ERROR \
    "$STUDENT@127.0.0.1" "$@"
}

step "4. The student logs in with their certificate: their own user, home and hostname"
out=$(student 'whoami; echo $HOME; pwd; hostname; cat WELCOME; echo "my notes" > notes.txt')
printf '%s\n' "$out"
[ "$out" = "$(printf '%s\n/home/%s\n/home/%s\n%s-class\nWelcome to the class, %s' "$STUDENT" "$STUDENT" "$STUDENT" "$STUDENT" "$STUDENT")" ] \
  || fail "unexpected first login: $out"

step "5. They log in again, and again after a server restart: the notes are still there"
[ "$(student cat notes.txt)" = "my notes" ] || fail "notes.txt is gone at the second login"
stop_server
start_server
[ "$(student cat notes.txt)" = "my notes" ] || fail "notes.txt is gone after the restart"
echo "notes.txt survived a logout and a restart (and the host key is the one learnt before)"

step "6. End of term: the teacher revokes serial 1001; their running session ends, new logins fail"
student 'sleep 600' 2>session.err &
session_pid=$!
deadline=$((SECONDS + DEADLINE_S))
# A second login lands in the same container (mode: user) and sees the first one's process.
until student 'pgrep -fx "sleep 600"' >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || fail "the session did not start"
  sleep 0.2
done
echo "the session runs (a second login sees it: one container per user)"
printf 'serial: 1001\n' >revoke.txt
ssh-keygen -q -k -u -f revoked.krl -s ca_key.pub revoke.txt
deadline=$((SECONDS + DEADLINE_S))
while kill -0 "$session_pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "the revoked session still runs after ${DEADLINE_S}s"
  sleep 0.2
done
grep -q 'revoked' session.err || fail "the session ended without saying why: $(cat session.err)"
cat session.err
if student true 2>/dev/null; then fail "a revoked certificate still logs in"; fi
echo "a new login with the revoked certificate is refused"

step "7. The operator removes the student's home (with the server stopped, no container of theirs runs)"
stop_server
"$BIN" --config config.yaml homes ls
"$BIN" --config config.yaml homes rm "$STUDENT" --yes
[ -z "$("$BIN" --config config.yaml homes ls "$STUDENT" | tail -n +2)" ] || fail "$STUDENT's home is still listed"
echo "$STUDENT's home is gone"

finished=yes
step "Done: the walk-through held at every step"
