#!/usr/bin/env bash
# Builds the local Debian 12 systemd test image (no registry needed) and reuses it while it exists.
# The tag carries a hash of this script, so a changed recipe builds a new image, and the ISO week:
# the image keeps its package lists (tests install packages without an update first), and a
# weekly rebuild keeps those lists close to the mirror. The image keeps the bytecode of Ansible's
# modules between tasks (chainops_zipimport_cache.py, part of the recipe's hash; compiled here, so that
# nothing under /usr/local changes when a test runs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
hook="$here/chainops_zipimport_cache.py"
recipe_hash="$(cat "$0" "$hook" | sha256sum | cut -c1-12)"
image="localhost/chainops-validator-test:bookworm-${recipe_hash}-$(date -u +%G%V)"
if podman image exists "$image"; then
  echo "$image"
  exit 0
fi
cache="${CHAINOPS_CACHE:-$here/../../.cache}"
mkdir -p "$cache"
tarball="$cache/rootfs-bookworm-${recipe_hash}.tar"
mirror="${CHAINOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
echo "==> building $image with mmdebstrap from $mirror (~1 min)" >&2
# --mode=auto: real root when run as root, a user namespace (unshare) otherwise.
# The hooks are run by mmdebstrap's shell with the root directory as $1: single quotes on purpose.
# shellcheck disable=SC2016
mmdebstrap --mode=auto --variant=minbase \
  --include=python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,ca-certificates,procps,sudo \
  --customize-hook='rm -f "$1"/etc/machine-id; touch "$1"/etc/machine-id' \
  --customize-hook='chroot "$1" systemctl mask systemd-logind.service getty.target console-getty.service systemd-udevd.service >/dev/null 2>&1 || true' \
  --customize-hook='echo "deb http://deb.debian.org/debian-security bookworm-security main" >> "$1"/etc/apt/sources.list' \
  --customize-hook='mkdir -p "$1"/usr/local/lib/python3.11/dist-packages && mkdir -m 0700 "$1"/var/cache/chainops-zipimport' \
  --customize-hook="copy-in $hook /usr/local/lib/python3.11/dist-packages" \
  --customize-hook='echo import chainops_zipimport_cache > "$1"/usr/local/lib/python3.11/dist-packages/chainops_zipimport_cache.pth' \
  --customize-hook='chroot "$1" python3 -m py_compile /usr/local/lib/python3.11/dist-packages/chainops_zipimport_cache.py' \
  --skip=cleanup/apt/lists \
  bookworm "$tarball" "$mirror" >&2
podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' "$tarball" "$image" >/dev/null
rm -f "$tarball"
echo "$image"
