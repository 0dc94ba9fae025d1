#!/usr/bin/env bash
# Build the sshpod image (sshpod:VERSION and sshpod:latest) from a built binary, without a
# registry: the binary, the shared libraries it links, the CA certificates and the recordings
# page's player, nothing else (no shell, no package manager), imported with `docker import`.
#
#   images/sshpod/build.sh                          # builds target/release/sshpod first
#   images/sshpod/build.sh path/to/sshpod           # an already built binary
#
# The image runs as uid/gid 65532 (`sshpod`), reads /etc/sshpod/config.yaml (SSHPOD_CONFIG),
# listens where that file says (2222 in the examples) and checks itself with
# `sshpod healthcheck`. It carries the label sshpod.image.key, a hash of this script, the
# binary and the player's lock file: when an image with the same key exists, nothing is done.
#
# Environment: SSHPOD_IMAGE (default sshpod), the repository the two tags go to.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$here/../../scripts/lib.sh"

REPOSITORY="${SSHPOD_IMAGE:-sshpod}"
KEY_LABEL=sshpod.image.key
UID_GID=65532

binary=$(sshpod_binary "${1:-}")

# "sshpod 0.1.0 (commit 0123456789ab)"
version_line=$("$binary" --version)
version=$(awk '{ print $2 }' <<<"$version_line")
commit=$(sed -n 's/.*(commit \([^)]*\)).*/\1/p' <<<"$version_line")
[ -n "$version" ] || die "cannot read the version from \`$binary --version\`: $version_line"

key=$( { cat "${BASH_SOURCE[0]}"; sha256sum <"$binary"; cat "$REPO_ROOT/web/package-lock.json"; } | sha256sum | cut -d' ' -f1)
existing=$(docker image inspect --format "{{ index .Config.Labels \"$KEY_LABEL\" }}" "$REPOSITORY:$version" 2>/dev/null || true)
if [ "$existing" = "$key" ]; then
  docker tag "$REPOSITORY:$version" "$REPOSITORY:latest"
  log "image $REPOSITORY:$version is up to date (key ${key:0:12}); not rebuilding"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sshpod-image.XXXXXX")
cleanup() { rm -rf --one-file-system "$tmp"; }
trap cleanup EXIT
rootfs="$tmp/rootfs"

install -D -m 0755 "$binary" "$rootfs/usr/bin/sshpod"
# The shared libraries the binary links (glibc, libgcc_s...) and the dynamic loader, at the
# paths the binary looks for them (the loader must be executable).
while read -r library; do
  install -D -m 0755 "$library" "$rootfs$library"
done < <(ldd "$binary" | grep -o '/[^ ]*' | sort -u)
# The recordings page's player, where audit.web.assets looks by default.
ensure_player_assets
install -D -m 0644 "$PLAYER_ASSETS/asciinema-player.min.js" "$rootfs/usr/share/sshpod/player/asciinema-player.min.js"
install -D -m 0644 "$PLAYER_ASSETS/asciinema-player.css" "$rootfs/usr/share/sshpod/player/asciinema-player.css"
install -D -m 0644 "$PLAYER_ASSETS/../../LICENSE" "$rootfs/usr/share/doc/sshpod/asciinema-player.LICENSE"
# Webhooks, config servers and object stores over HTTPS trust the usual public CAs.
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nsshpod:x:%s:%s:sshpod:/var/lib/sshpod:/usr/sbin/nologin\n' \
  "$UID_GID" "$UID_GID" >"$rootfs/etc/passwd"
printf 'root:x:0:\nsshpod:x:%s:\n' "$UID_GID" >"$rootfs/etc/group"
# Client input not read yet is spooled in /tmp; recordings and state under /var/lib/sshpod.
install -d -m 1777 "$rootfs/tmp"
install -d -m 0755 "$rootfs/etc/sshpod"
install -d -m 0750 -o "$UID_GID" -g "$UID_GID" "$rootfs/var/lib/sshpod"

created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change "USER $UID_GID:$UID_GID" \
  --change 'ENV SSHPOD_CONFIG=/etc/sshpod/config.yaml' \
  --change 'ENTRYPOINT ["/usr/bin/sshpod"]' \
  --change 'CMD ["run"]' \
  --change 'EXPOSE 2222' \
  --change 'WORKDIR /var/lib/sshpod' \
  --change 'HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["/usr/bin/sshpod", "healthcheck"]' \
  --change "LABEL org.opencontainers.image.title=sshpod" \
  --change "LABEL org.opencontainers.image.description=\"An SSH server that gives every login its own fresh container\"" \
  --change "LABEL org.opencontainers.image.version=$version" \
  --change "LABEL org.opencontainers.image.revision=$commit" \
  --change "LABEL org.opencontainers.image.licenses=Apache-2.0" \
  --change "LABEL org.opencontainers.image.created=$created" \
  --change "LABEL $KEY_LABEL=$key" \
  --message "sshpod $version ($commit)" \
  - "$REPOSITORY:$version" >/dev/null
docker tag "$REPOSITORY:$version" "$REPOSITORY:latest"

size=$(docker image inspect --format '{{ .Size }}' "$REPOSITORY:$version")
log "built $REPOSITORY:$version and :latest ($((size / 1024 / 1024)) MiB, commit $commit)"
