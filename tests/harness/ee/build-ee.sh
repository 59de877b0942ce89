#!/usr/bin/env bash
# Builds the execution environment from the repository's execution-environment.yml with ansible-builder,
# the way a user with a registry would, with the two things this machine cannot reach replaced:
#  - the base image: one built here from the project's Debian 12 image (Containerfile.base), passed as
#    EE_BASE_IMAGE, with PKGMGR set to its dnf-speaking apt front end (chainops-pkgmgr);
#  - Galaxy: amazon.aws and community.aws come from a Galaxy server on loopback (local_galaxy.py) that
#    serves the `ansible` package's copies, passed as ANSIBLE_GALAXY_CLI_COLLECTION_OPTS (as a private
#    Automation Hub would be).
# Python packages come from PyPI, Debian packages from Debian's mirror. The image is reused while its
# inputs are unchanged: its tag carries a hash of this recipe, the EE file, the base, the dependencies'
# versions and the collection's own file list (FILES.json: every file's sha256). Prints the image name.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
: "${CHAINOPS_TEST_IMAGE:?set CHAINOPS_TEST_IMAGE (make setup writes .cache/image-name)}"
bin="${CHAINOPS_VENV_BIN:-$root/.venv/bin}"
work="$(mktemp -d)"
galaxy_pid=""
cleanup() {
  [ -z "$galaxy_pid" ] || kill "$galaxy_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

version="$("$bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$root/galaxy.yml")"
mkdir -p "$work/definition"
"$bin/ansible-galaxy" collection build --output-path "$work/definition" "$root" >/dev/null
tarball="$work/definition/chainops-validator-$version.tar.gz"
[ -f "$tarball" ] || { echo "build-ee: $tarball was not built" >&2; exit 1; }
grep -q "chainops-validator-$version.tar.gz" "$root/execution-environment.yml" || {
  echo "build-ee: execution-environment.yml does not name chainops-validator-$version.tar.gz (galaxy.yml's version)" >&2; exit 1; }

# The base's context: its recipe, the apt front end, and this machine's CA bundle.
ca_bundle="${CHAINOPS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
mkdir -p "$work/base"
cp "$here/Containerfile.base" "$here/chainops-pkgmgr" "$work/base/"
cp "$ca_bundle" "$work/base/ca-certificates.crt"
base_hash="$(cat "$work/base/"* <(echo "$CHAINOPS_TEST_IMAGE") | sha256sum | cut -c1-12)"
base="localhost/chainops-ee-base:$base_hash"
hash="$({ cat "$0" "$here/local_galaxy.py" "$root/execution-environment.yml"; echo "$base"
          "$bin/python" "$here/local_galaxy.py" --versions amazon.aws community.aws; "$bin/ansible-builder" --version
          tar -xOzf "$tarball" MANIFEST.json FILES.json; } | sha256sum | cut -c1-12)"
image="localhost/chainops-validator-ee:$version-$hash"
if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

if ! podman image exists "$base"; then
  echo "==> execution environment base $base (from $CHAINOPS_TEST_IMAGE)" >&2
  podman build -q -f "$work/base/Containerfile.base" --build-arg "CHAINOPS_BASE=$CHAINOPS_TEST_IMAGE" -t "$base" "$work/base" >&2
fi

"$bin/python" "$here/local_galaxy.py" --ready-file "$work/galaxy-url" amazon.aws community.aws >&2 &
galaxy_pid=$!
for _ in $(seq 100); do [ -s "$work/galaxy-url" ] && break; sleep 0.1; done
[ -s "$work/galaxy-url" ] || { echo "build-ee: the local Galaxy server did not start" >&2; exit 1; }

cp "$root/execution-environment.yml" "$work/definition/"
echo "==> execution environment $image (ansible-builder; about 3 minutes when nothing is cached)" >&2
# --network=host: the galaxy stage reaches the loopback Galaxy server.
"$bin/ansible-builder" build -f "$work/definition/execution-environment.yml" -c "$work/context" -t "$image" \
  --container-runtime podman -v 1 \
  --build-arg "EE_BASE_IMAGE=$base" --build-arg PKGMGR=/usr/local/bin/chainops-pkgmgr --build-arg PYCMD=/opt/ee-python/bin/python3 \
  --build-arg "ANSIBLE_GALAXY_CLI_COLLECTION_OPTS=-s $(cat "$work/galaxy-url")" \
  --extra-build-cli-args=--network=host >&2
# Older builds of the EE and its base are not needed any more (the layers they share with these stay).
podman images --format '{{.Repository}}:{{.Tag}}' | grep -E '^localhost/chainops-(validator-ee|ee-base):' \
  | grep -vxF -e "$image" -e "$base" | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$image"
