#!/usr/bin/env bash
# Run test jobs in parallel lanes: the containers wait on systemd, apt and the nodes far more than
# they use the CPU. A job is a molecule scenario, or `unit` (pytest tests/unit tests/integration),
# or `lab` (pytest tests/lab: the lab built, operated and removed). Each line is prefixed with its
# job, so progress stays visible. pytest's exit code 5 (nothing collected) is a failure.
# Usage: lanes.sh JOBS NAME...   (longest jobs first: they start at once)
set -euo pipefail
jobs=$1; shift
logs=${CHAINOPS_CACHE:-.cache}/lane-logs
mkdir -p "$logs"

run_one() {
  local name=$1 started rc
  started=$(date +%s)
  set +e
  case $name in
    unit) pytest -q -p no:cacheprovider tests/unit tests/integration ;;
    lab) pytest -q -x -p no:cacheprovider tests/lab ;;
    *) molecule test -s "$name" ;;
  esac 2>&1 | tee "$logs/$name.log" | sed -u "s/^/[$name] /"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -eq 5 ]; then echo "[$name] pytest collected no tests: treating as failure"; rc=1; fi
  echo "==> $name: rc=$rc in $(( $(date +%s) - started ))s" | tee -a "$logs/summary"
  return "$rc"
}
export -f run_one
export logs

: > "$logs/summary"
rc=0
# shellcheck disable=SC2016 # $1 belongs to the inner bash
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || rc=$?
echo "==> lanes summary"; cat "$logs/summary"
if [ "$rc" -ne 0 ]; then
  echo "==> failed jobs (logs in $logs):" >&2
  grep -v 'rc=0 ' "$logs/summary" >&2 || true
  exit 1
fi
