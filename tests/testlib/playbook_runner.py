"""Run ansible-playbook on the controller against the working-tree collection."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from chainops_testlib import REPO_ROOT, link_collection
from chainops_testlib import recap as _recap

CACHE_DIR = Path(os.environ.get("CHAINOPS_CACHE", REPO_ROOT / ".cache"))
COLLECTIONS_PATH = CACHE_DIR / "collections"


def ensure_collection_link() -> None:
    link_collection(COLLECTIONS_PATH)


def ansible_playbook(playbook: Path, *args: str, env: dict | None = None, collections_path: str | None = None) -> subprocess.CompletedProcess:
    ensure_collection_link()
    bin_dir = Path(sys.executable).parent
    site_packages = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    full_env = dict(os.environ)
    full_env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path or "%s:%s" % (COLLECTIONS_PATH, site_packages),
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_NOCOLOR="true",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        # These runs target the controller itself: use this interpreter, no discovery.
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        PATH="%s:%s" % (bin_dir, os.environ.get("PATH", "")),
    )
    full_env.update(env or {})
    command = [str(bin_dir / "ansible-playbook"), str(playbook), *args]
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=900, check=False)


def recap(output: str) -> dict[str, dict[str, int]]:
    """changed and failed per host; empty when the run ended before its recap."""
    return _recap(output, ("changed", "failed"), required=False)


ROLE_PLAYBOOK = """
- name: Run the {role} role on the controller
  hosts: localhost
  gather_facts: false
  roles:
    - role: chainops.validator.{role}
"""


def run_role_in_check_mode(tmp_path: Path, role: str, variables: dict, *extra: str) -> subprocess.CompletedProcess:
    """The role against the controller itself, in check mode: bad input must fail before any change."""
    (tmp_path / "play.yml").write_text(ROLE_PLAYBOOK.format(role=role))
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    return ansible_playbook(tmp_path / "play.yml", "-i", "localhost,", "-c", "local", "--check",
                            "-e", "@%s" % (tmp_path / "vars.json"), *extra)


def assert_fails_before_changes(result: subprocess.CompletedProcess, *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for fragment in fragments:
        assert fragment in output, "%r not in output:\n%s" % (fragment, output[-4000:])
    counters = recap(result.stdout)
    assert counters["localhost"]["changed"] == 0, counters


def task_results(tmp_path: Path, tasks: list[dict], hosts: list[str] | None = None, forks: int = 5,
                 collections_path: str | None = None) -> dict[str, dict[str, dict]]:
    """Run ``tasks`` (each named, failures kept going) on local ``hosts`` with ansible.posix's json callback.

    Returns {task name: {host: result}}; the hosts are inventory names on the local connection, so
    that several module processes run at the same moment (``forks``).
    """
    hosts = hosts or ["localhost"]
    playbook = tmp_path / ("tasks-%d.json" % len(list(tmp_path.glob("tasks-*.json"))))
    playbook.write_text(json.dumps([{"hosts": "all", "connection": "local", "gather_facts": False,
                                     "tasks": [dict(task, ignore_errors=True) for task in tasks]}]))
    result = ansible_playbook(playbook, "-i", ",".join(hosts) + ",", "-f", str(forks),
                              env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, collections_path=collections_path)
    try:
        output = json.loads(result.stdout)
    except ValueError:
        raise AssertionError("no JSON from ansible-playbook (rc %d):\n%s\n%s" % (result.returncode, result.stdout[-3000:], result.stderr[-3000:]))
    return {task["task"]["name"]: task["hosts"] for task in output["plays"][0]["tasks"]}
