#!/usr/bin/env bash
# Run test jobs in parallel lanes: the containers wait on systemd, apt and the nodes far more than
# they use the CPU. A job is a molecule scenario, or `unit` (pytest tests/unit tests/integration),
# `lab` (tests/lab: one lab built, its topology checked, a job run in the execution environment, then operated, and removed),
# `inputs` (pytest tests/inputs: bad input against a real host, which must not change; and the
# preflight's own tests),
# `sanity` (ansible-test) or `lint` (ansible-lint, the changelog fragment check, the YAML duplicate scan, the
# role READMEs' variable tables).
# Each line is prefixed with its job, so progress stays visible. pytest's exit code 5 (nothing
# collected) is a failure. At the end: the lane table,
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

# cgroup v1 (this CI machine): every job's CPU-seconds from its own cpuacct group, for the lane table; and
# the jobs other than the lab in one cpu group. Ansible 2.19 starts each task's worker
# in a session of its own (os.setsid), and the kernel's autogroup scheduling gives every session an equal
# share whatever its nice value: renice alone left the lab's tasks sharing the CPU evenly with every task
# of the other jobs. In one cgroup, all the other jobs together weigh as much as one session (1024 shares,
# not less: their timed waits must still see the CPU when the lab is busy). Without cgroup v1
# controllers we can write to (not root; cgroup v2), renice is all there is and the CPU column says "-".
cpuacct="" cpugroup=""
if [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ] && mkdir -p /sys/fs/cgroup/cpuacct/chainops-lanes 2>/dev/null; then
  cpuacct=/sys/fs/cgroup/cpuacct/chainops-lanes
fi
if [ -f /sys/fs/cgroup/cpu/cpu.shares ] && mkdir -p /sys/fs/cgroup/cpu/chainops-lanes-background 2>/dev/null \
   && echo 1024 > /sys/fs/cgroup/cpu/chainops-lanes-background/cpu.shares 2>/dev/null; then
  cpugroup=/sys/fs/cgroup/cpu/chainops-lanes-background
fi
containers=/sys/fs/cgroup/cpuacct/libpod_parent/cpuacct.usage
containers_before=$(cat "$containers" 2>/dev/null || echo "")

run_one() {
  local name=$1 started rc
  started=$(date +%s)
  set +e
  # The lab is the critical path (one lab, converged again and again, strictly in order); the other
  # jobs use the CPU it leaves: on 2 cores, under a load of 10 and more, its first converge took 6 times
  # as long as on a quiet machine. Niceness and the cgroups (above) are inherited by the jobs' processes.
  [ "$name" = lab ] || renice -n 10 -p $$ >/dev/null
  if [ "$name" != lab ] && [ -n "$cpugroup" ]; then echo $$ > "$cpugroup/cgroup.procs" 2>/dev/null || true; fi
  if [ -n "$cpuacct" ] && mkdir -p "$cpuacct/$name" 2>/dev/null && echo 0 > "$cpuacct/$name/cpuacct.usage" 2>/dev/null; then
    echo $$ > "$cpuacct/$name/cgroup.procs" 2>/dev/null || true
  fi
  case $name in
    unit) pytest -q -p no:cacheprovider -n "${CHAINOPS_UNIT_WORKERS:-2}" --dist loadfile tests/unit tests/integration ;;
    # One lab for the three files, in this order (tests/lab/conftest.py).
    lab) pytest -q -x -p no:cacheprovider --durations=30 tests/lab/test_lab_topology.py tests/lab/test_lab_awx.py tests/lab/test_lab_operations.py ;;
    inputs) pytest -q -p no:cacheprovider tests/inputs tests/lab/test_doctor.py ;;
    sanity) "$here/sanity.sh" ;;
    lint) ansible-lint --offline && "$here/changelog_check.sh" && python3 "$here/yaml_duplicates.py" \
            && python3 "$here/role_docs.py" --check ;;
    *) molecule test -s "$name" ;;
  esac 2>&1 | tee "$logs/$name.log" | sed -u "s/^/[$name] /"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -eq 5 ]; then echo "[$name] pytest collected no tests: treating as failure"; rc=1; fi
  local cpu=-
  if [ -r "$cpuacct/$name/cpuacct.usage" ]; then cpu=$(($(cat "$cpuacct/$name/cpuacct.usage") / 1000000000)); fi
  printf '%s %d %d %d %s\n' "$name" "$rc" "$((started - CHAINOPS_TEST_STARTED))" "$(($(date +%s) - started))" "$cpu" >> "$logs/summary"
  echo "==> $name: rc=$rc in $(($(date +%s) - started))s"
  return "$rc"
}
export -f run_one
export logs here cpuacct cpugroup

: > "$logs/summary"
rc=0
# shellcheck disable=SC2016 # $1 belongs to the inner bash
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || rc=$?
total=$(($(date +%s) - CHAINOPS_TEST_STARTED))
echo "==> lane table ($jobs lanes; seconds from the start of make test; cpu: CPU-seconds of the job's own processes)"
printf '%-16s %6s %6s %6s %4s\n' job start time cpu rc
printf '%-16s %6d %6d %6s %4s\n' "setup+doctor" 0 "$((lanes_started - CHAINOPS_TEST_STARTED))" - 0
sort -k3,3n "$logs/summary" | while read -r name job_rc start seconds cpu; do
  printf '%-16s %6d %6d %6s %4d\n' "$name" "$start" "$seconds" "$cpu" "$job_rc"
done
if [ -n "$containers_before" ]; then
  printf '%-16s %6s %6s %6d   (processes in all containers, every job)\n' containers "" "" \
    "$((($(cat "$containers") - containers_before) / 1000000000))"
fi
printf '%-16s %6s %6d %6s %4s   budget %d s: %s\n' total "" "$total" "" "$([ "$rc" -eq 0 ] && echo 0 || echo fail)" "$budget" \
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
