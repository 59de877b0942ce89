#!/usr/bin/env bash
# ansible-test wants the collection at .../ansible_collections/<namespace>/<name> as a real
# directory (it resolves symlinks), so sanity runs on a copy of the tracked and new files.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${CHAINOPS_CACHE:?}/sanity/ansible_collections/chainops/validator"
rm -rf "$dest"
mkdir -p "$dest"
(cd "$root" || exit 1; git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents -- {} "$dest" 2>/dev/null || true)
# Collections this one depends on (from galaxy.yml) sit beside it, taken from the `ansible` package.
source_collections="$(python3 -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__file__) if ansible_collections.__file__ else list(ansible_collections.__path__)[0])')"
for dependency in $(python3 -c 'import sys, yaml; print(" ".join(yaml.safe_load(open(sys.argv[1]))["dependencies"] or {}))' "$root/galaxy.yml"); do
  namespace="${dependency%%.*}"; name="${dependency#*.}"
  mkdir -p "$dest/../../$namespace"
  rm -rf "$dest/../../$namespace/$name"
  cp -r "$source_collections/$namespace/$name" "$dest/../../$namespace/$name"
done
cd "$dest"
git init -q && git add -A >/dev/null
# ansible-test's --venv mode downloads get-pip from a host CI cannot reach, so sanity runs
# --local in a dedicated virtualenv where ansible-test may install its pinned requirements.
venv="${CHAINOPS_CACHE}/sanity-venv"
core_version="$(grep -E '^ansible-core==' "$root/requirements-test.txt" | cut -d= -f3)"
if [ ! -x "$venv/bin/ansible-test" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "ansible-core==${core_version}"
fi
pip_version="$(grep -Eo "pip='[0-9.]+'" "$venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | cut -d"'" -f2)"
bootstrap="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$bootstrap")"
cp "$root/tests/harness/get_pip_offline.py" "$bootstrap"
echo "==> ansible-test sanity"
python_version="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
log="${CHAINOPS_CACHE}/sanity.log"
rc=0
"$venv/bin/ansible-test" sanity --local --requirements --python "$python_version" --color no "$@" 2>&1 | tee "$log" || rc=$?
# ansible-test skips a test whose program is missing (shellcheck, ...) with only a warning: that is a failure here.
if grep -E 'Required program .* not found|Skipping sanity test' "$log" >&2; then
  echo "sanity: a test was skipped for a missing program (make system-deps installs it)" >&2
  exit 1
fi
exit "$rc"
