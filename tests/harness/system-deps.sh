#!/usr/bin/env bash
# Installs the Debian packages the harness needs (podman, runc, mmdebstrap, test nodes, the sanity
# test's shellcheck). Only installs what is missing, so a second run costs one dpkg query.
# The container DNS plugin is not pulled in by podman with --no-install-recommends: without it a new
# podman (CNI) network has no name resolution and lab hosts cannot dial each other by name.
set -euo pipefail
packages=(podman runc golang-github-containernetworking-plugin-dnsname mmdebstrap uidmap slirp4netns
          python3-venv shellcheck litecoind wireguard-go wireguard-tools nftables zstd lz4 curl openssl fio
          openssh-client iproute2 graphviz)
# npm fetches test artifacts; any npm will do (a machine may have Node.js from elsewhere,
# whose nodejs package conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "==> apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
