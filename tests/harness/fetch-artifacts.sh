#!/usr/bin/env bash
# Fetches release artifacts that tests serve from a loopback HTTP server
# (tests never reach the internet; this setup step uses the npm registry once).
set -euo pipefail
cache="${CHAINOPS_CACHE:?}/artifacts"
mkdir -p "$cache"
anvil_version="${CHAINOPS_ANVIL_VERSION:-1.7.1}"
anvil_tgz="$cache/anvil-linux-amd64-${anvil_version}.tgz"
if [ ! -s "$anvil_tgz" ]; then
  echo "==> npm pack @foundry-rs/anvil-linux-amd64@${anvil_version}"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "@foundry-rs/anvil-linux-amd64@${anvil_version}" >/dev/null)
  mv "$tmp"/*.tgz "$anvil_tgz"
  rm -rf "$tmp"
fi
# The unpacked binary lets controller-side tests (config rendering, health checks) run anvil.
if [ ! -x "$cache/bin/anvil" ]; then
  mkdir -p "$cache/bin"
  tar -xzf "$anvil_tgz" -C "$cache/bin" --strip-components=2 package/bin/anvil
fi
# The npm bundles of the polykey-npm and ethereumjs profiles: built from the npm registry with the lockfile
# in roles/node/files/<bundle>, once per content of that directory (npm-bundle.sh reuses it); its path and
# sha256 next to it (<name>.path, <name>.sha256) for the scenarios.
bundles="$(dirname "$0")/../../roles/node/files"
for bundle in polykey:polykey-agent ethereumjs:ethereumjs-node; do
  "$bundles/npm-bundle.sh" "$bundles/${bundle%%:*}" "$cache" > "$cache/${bundle#*:}.out"
  sed -n 1p "$cache/${bundle#*:}.out" > "$cache/${bundle#*:}.path"
  sed -n 2p "$cache/${bundle#*:}.out" > "$cache/${bundle#*:}.sha256"
done
