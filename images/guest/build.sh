#!/usr/bin/env bash
# Build the local guest image sshpod-guest:latest from Debian packages, without a registry:
# debootstrap a minimal bookworm root file system, then `docker import` it.
#
# The image carries a label sshpod.guest.key: a hash of this script, the package list and the
# suite. If an image with the same key exists, nothing is done.
#
# Environment: SSHPOD_GUEST_IMAGE (default sshpod-guest:latest), SSHPOD_DEBIAN_MIRROR (default:
# the mirror in this machine's apt sources).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$here/../../scripts/lib.sh"

IMAGE="${SSHPOD_GUEST_IMAGE:-sshpod-guest:latest}"
SUITE=bookworm
PACKAGES=bash,coreutils,procps,busybox,openssh-sftp-server,openssh-client,less,ca-certificates
KEY_LABEL=sshpod.guest.key

key=$( { cat "${BASH_SOURCE[0]}"; echo "$PACKAGES"; echo "$SUITE"; } | sha256sum | cut -d' ' -f1)

existing=$(docker image inspect --format "{{ index .Config.Labels \"$KEY_LABEL\" }}" "$IMAGE" 2>/dev/null || true)
if [ "$existing" = "$key" ]; then
  log "guest image $IMAGE is up to date (key ${key:0:12}); not rebuilding"
  exit 0
fi

command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (scripts/lib.sh ensure_packages)"
mirror="${SSHPOD_DEBIAN_MIRROR:-$(debian_mirror)}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sshpod-guest.XXXXXX")
cleanup() { rm -rf --one-file-system "$tmp"; }
trap cleanup EXIT
rootfs="$tmp/rootfs"

log "building $IMAGE: debootstrap $SUITE from $mirror (packages: $PACKAGES)"
start=$SECONDS
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
  tail -n 40 "$tmp/debootstrap.log" >&2
  [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
  die "debootstrap failed"
fi

# Keep the image small: no package caches, lists or logs.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/var/cache/apt/*.bin \
       "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/var/log/* \
       "$rootfs"/debootstrap \
       "$rootfs"/tmp/* "$rootfs"/var/tmp/*
# A non-root user with uid 1000, the uid sshpod's Kubernetes backend runs pods as by default:
# programs such as sftp-server refuse to run for a uid without a passwd entry, and a login
# wants a home directory.
echo 'guest:x:1000:1000:sshpod guest:/home/guest:/bin/bash' >>"$rootfs/etc/passwd"
echo 'guest:x:1000:' >>"$rootfs/etc/group"
echo 'guest:*:20000:0:99999:7:::' >>"$rootfs/etc/shadow"
install -d -m 0755 -o 1000 -g 1000 "$rootfs/home/guest"
# Docker provides these at run time.
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"

tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL $KEY_LABEL=$key" \
  --message "sshpod guest image: debootstrap $SUITE ($PACKAGES)" \
  - "$IMAGE" >/dev/null

size=$(docker image inspect --format '{{ .Size }}' "$IMAGE")
log "built $IMAGE in $((SECONDS - start)) s ($((size / 1024 / 1024)) MiB, key ${key:0:12})"
