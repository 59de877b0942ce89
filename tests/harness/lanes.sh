#!/usr/bin/env bash
# Run molecule scenarios in parallel lanes: the containers wait on systemd, apt and the nodes far
# more than they use the CPU. Each line is prefixed with its scenario, so progress stays visible.
# Usage: molecule-lanes.sh JOBS SCENARIO...   (longest scenarios first: they start at once)
set -euo pipefail
jobs=$1; shift
logs=${CHAINOPS_CACHE:-.cache}/molecule-logs
mkdir -p "$logs"

run_one() {
  local scenario=$1 started rc
  started=$(date +%s)
  set +e
  molecule test -s "$scenario" 2>&1 | tee "$logs/$scenario.log" | sed -u "s/^/[$scenario] /"
  rc=${PIPESTATUS[0]}
  set -e
  echo "==> molecule $scenario: rc=$rc in $(( $(date +%s) - started ))s" | tee -a "$logs/summary"
  return "$rc"
}
export -f run_one
export logs

: > "$logs/summary"
rc=0
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || rc=$?
echo "==> molecule summary"; cat "$logs/summary"
if [ "$rc" -ne 0 ]; then
  echo "==> failed scenarios (logs in $logs):" >&2
  grep -v 'rc=0 ' "$logs/summary" >&2 || true
  exit 1
fi
