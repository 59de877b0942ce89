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
# The Polykey agent bundle (the polykey-npm profile's archive): built from the npm registry with the
# lockfile in roles/node/files/polykey, once per content of that directory (build-bundle.sh reuses it);
# its path and sha256 next to it for the scenario.
polykey="$(dirname "$0")/../../roles/node/files/polykey/build-bundle.sh"
"$polykey" "$cache" > "$cache/polykey-agent.out"
sed -n 1p "$cache/polykey-agent.out" > "$cache/polykey-agent.path"
sed -n 2p "$cache/polykey-agent.out" > "$cache/polykey-agent.sha256"
