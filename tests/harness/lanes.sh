#!/usr/bin/env bash
# Run test jobs in parallel lanes: the containers wait on systemd, apt and the nodes far more than
# they use the CPU. A job is a molecule scenario, or `unit` (pytest tests/unit tests/integration),
# `lab` (tests/lab: one lab built, its topology checked, then operated, and removed),
# `inputs` (pytest tests/inputs: bad input against a real host, which must not change; and the
# preflight's own tests),
# `sanity` (ansible-test) or `lint` (ansible-lint). Each line is prefixed with its job, so progress
# stays visible. pytest's exit code 5 (nothing collected) is a failure. At the end: the lane table,
# each job's start and duration, against the CI budget (CHAINOPS_CI_BUDGET seconds, default 35 min)
# counted from CHAINOPS_TEST_STARTED (epoch seconds; default: when this script started).
# Usage: lanes.sh JOBS NAME...   (longest jobs first: they start at once)
set -euo pipefail
jobs=$1; shift
logs=${CHAINOPS_CACHE:-.cache}/lane-logs
mkdir -p "$logs"
here="$(cd "$(dirname "$0")" && pwd)"
export CHAINOPS_TEST_STARTED=${CHAINOPS_TEST_STARTED:-$(date +%s)}
budget=${CHAINOPS_CI_BUDGET:-2100}
lanes_started=$(date +%s)

run_one() {
  local name=$1 started rc
  started=$(date +%s)
  set +e
  # The lab is the critical path (one lab, converged again and again, strictly in order); the other
  # jobs use the CPU it leaves: on 2 cores, under a load of 10 and more, its first converge took 6 times
  # as long as on a quiet machine. Niceness is inherited down to the containers the jobs start.
  [ "$name" = lab ] || renice -n 10 -p $$ >/dev/null
  case $name in
    unit) pytest -q -p no:cacheprovider -n "${CHAINOPS_UNIT_WORKERS:-2}" --dist loadfile tests/unit tests/integration ;;
    # One lab for both files, in this order (tests/lab/conftest.py).
    lab) pytest -q -x -p no:cacheprovider --durations=30 tests/lab/test_lab_topology.py tests/lab/test_lab_operations.py ;;
    inputs) pytest -q -p no:cacheprovider tests/inputs tests/lab/test_doctor.py ;;
    sanity) "$here/sanity.sh" ;;
    lint) ansible-lint --offline ;;
    *) molecule test -s "$name" ;;
  esac 2>&1 | tee "$logs/$name.log" | sed -u "s/^/[$name] /"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -eq 5 ]; then echo "[$name] pytest collected no tests: treating as failure"; rc=1; fi
  printf '%s %d %d %d\n' "$name" "$rc" "$((started - CHAINOPS_TEST_STARTED))" "$(($(date +%s) - started))" >> "$logs/summary"
  echo "==> $name: rc=$rc in $(($(date +%s) - started))s"
  return "$rc"
}
export -f run_one
export logs here

: > "$logs/summary"
rc=0
# shellcheck disable=SC2016 # $1 belongs to the inner bash
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || rc=$?
total=$(($(date +%s) - CHAINOPS_TEST_STARTED))
echo "==> lane table ($jobs lanes; seconds from the start of make test)"
printf '%-16s %6s %6s %4s\n' job start time rc
printf '%-16s %6d %6d %4s\n' "setup+doctor" 0 "$((lanes_started - CHAINOPS_TEST_STARTED))" 0
sort -k3,3n "$logs/summary" | while read -r name job_rc start seconds; do
  printf '%-16s %6d %6d %4d\n' "$name" "$start" "$seconds" "$job_rc"
done
printf '%-16s %6s %6d %4s   budget %d s: %s\n' total "" "$total" "$([ "$rc" -eq 0 ] && echo 0 || echo fail)" "$budget" \
  "$([ "$total" -le "$budget" ] && echo within || echo OVER)"
if [ "$rc" -ne 0 ]; then
  echo "==> failed jobs (logs in $logs):" >&2
  awk '$2 != 0 {print "  " $1 " rc=" $2}' "$logs/summary" >&2
  # Their ends again, together: where the run stops is what a reader (or CI's summary) sees.
  awk '$2 != 0 {print $1}' "$logs/summary" | while read -r name; do
    echo "==> the end of $name's log:" >&2
    grep -v '^\s*$' "$logs/$name.log" | tail -n 60 | sed "s/^/[$name] /" >&2
  done
  exit 1
fi
