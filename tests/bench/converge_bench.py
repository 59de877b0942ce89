"""Benchmark: a no-op converge of the lab topology against the same number of ping tasks.

On a lab built by `lab/lab.sh up` (a fresh one named chainops-bench by default, or the running
dev lab with --reuse), measures in one run:
  * first converge: site.yml on fresh containers (recorded by lab.sh while building);
  * no-op converge: site.yml again, nothing to change (median of --runs);
  * baseline: a playbook of ansible.builtin.ping tasks on the same hosts, as many per host as the
    no-op converge ran on that host (tasks that reached the host: ok + changed in the recap),
    same connection, same forks (median of --runs).
Prints the no-op converge as a ratio of the baseline (target <= 1.5) and the no-op time per host
per task. Not a timed test: run it by hand, e.g. `make lab-bench`.

Usage: .venv/bin/python tests/bench/converge_bench.py [--reuse] [--runs 3] [--keep]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "lab" / "lab.sh"
sys.path.insert(0, str(REPO / "tests" / "testlib"))
from chainops_testlib import recap  # noqa: E402 - tests/testlib, shared with the tests


def lab_env(name, state):
    port = os.environ.get("LAB_MOTO_PORT", "5055" if name == "chainops-lab" else "5056")
    return dict(os.environ, LAB_NAME=name, LAB_STATE=str(state), LAB_MOTO_PORT=port, ANSIBLE_FORCE_COLOR="false")


def timed_playbook(env, playbook):
    started = time.perf_counter()
    proc = subprocess.run([str(LAB), "playbook", str(playbook)], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit("%s failed:\n%s" % (playbook, proc.stdout[-4000:]))
    counts = recap(proc.stdout, ("ok", "changed"))
    return elapsed, counts


def ping_playbook(tasks_per_host, path):
    """As many ping tasks per host as the converge ran there (a host with fewer skips the rest)."""
    hosts = ",".join(sorted(tasks_per_host))
    lines = ["---", "- name: Ping baseline", "  hosts: %s" % hosts, "  gather_facts: false", "  become: true",
             "  vars:", "    bench_tasks: %s" % dict(sorted(tasks_per_host.items())), "  tasks:"]
    for index in range(1, max(tasks_per_host.values()) + 1):
        lines += ["    - name: Ping %d" % index, "      ansible.builtin.ping:",
                  "      when: bench_tasks[inventory_hostname] >= %d" % index]
    path.write_text("\n".join(lines) + "\n")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="measure the running dev lab (chainops-lab, .lab)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the bench lab afterwards")
    args = parser.parse_args()
    assert os.environ.get("CHAINOPS_TEST_IMAGE"), "set CHAINOPS_TEST_IMAGE (make lab-bench does)"
    if args.reuse:
        name, state = "chainops-lab", REPO / ".lab"
    else:
        name, state = "chainops-bench", Path(tempfile.mkdtemp(prefix="converge-bench-")) / "state"
    env = lab_env(name, state)
    try:
        if not args.reuse:
            print("building a fresh lab (%s) ..." % name, flush=True)
            proc = subprocess.run([str(LAB), "up"], env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit("lab.sh up failed:\n" + proc.stdout[-4000:] + proc.stderr[-2000:])
        first_file = state / "site-first-seconds"
        first = float(first_file.read_text()) if first_file.exists() else None

        noop_times, counts = [], {}
        for _run in range(args.runs):
            elapsed, counts = timed_playbook(env, REPO / "playbooks" / "site.yml")
            changed = sum(c["changed"] for c in counts.values())
            if changed:
                sys.exit("the lab was not converged: a no-op run changed %d tasks" % changed)
            noop_times.append(elapsed)
        tasks = {host: c["ok"] for host, c in counts.items()}
        with tempfile.TemporaryDirectory() as tmp:
            ping = ping_playbook(tasks, Path(tmp) / "ping.yml")
            ping_times = [timed_playbook(env, ping)[0] for _run in range(args.runs)]
    finally:
        if not args.reuse and not args.keep:
            subprocess.run([str(LAB), "down"], env=env, capture_output=True, check=False)

    noop, ping_median = statistics.median(noop_times), statistics.median(ping_times)
    per_task = noop / statistics.mean(tasks.values())
    print("hosts: %d, tasks reaching each host in a no-op converge: %s" % (len(tasks), dict(sorted(tasks.items()))))
    print("first converge (site.yml on fresh hosts): %s" % ("%.1f s" % first if first is not None else "not recorded"))
    print("no-op converge: %.1f s (median of %d: %s)" % (noop, args.runs, ", ".join("%.1f" % t for t in noop_times)))
    print("ping baseline, same task count: %.1f s (median of %d: %s)" % (ping_median, args.runs, ", ".join("%.1f" % t for t in ping_times)))
    print("no-op time per host per task: %.3f s" % per_task)
    print("RATIO no-op converge / ping baseline: %.2f (target <= 1.5)" % (noop / ping_median))
    if first is not None:
        print("RATIO first converge / no-op converge: %.1f" % (first / noop))


if __name__ == "__main__":
    main()
