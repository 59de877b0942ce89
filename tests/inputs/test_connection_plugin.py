"""tests/harness/connection_plugins/podman.py on a real systemd container: as root it enters the container with
nsenter, and a task must see what `podman exec` shows it (environment, working directory, PID 1, the
container's files); files go in and out; a restarted container (a new process) is found again."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "chainops-connection-%d" % os.getpid()
# What a task sees of its process: environment, working directory, PID 1's name, the host name, the user.
VIEW = "env | sort | grep -v '^_=' | tr '\\n' ' '; pwd; cat /proc/1/comm; hostname; id -u"
CACHE = Path(tempfile.gettempdir()) / ("chainops-podman-connection-%d" % os.getuid()) / (CONTAINER + ".json")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="nsenter needs root; rootless runs use podman exec")


@pytest.fixture(scope="module")
def container():
    image = os.environ["CHAINOPS_TEST_IMAGE"]
    subprocess.run(["podman", "run", "-d", "--name", CONTAINER, "--systemd=always", image, "/sbin/init"], check=True,
                   capture_output=True, timeout=120)
    yield CONTAINER
    subprocess.run(["podman", "rm", "-f", "-t", "0", CONTAINER], capture_output=True, timeout=120, check=False)
    CACHE.unlink(missing_ok=True)


def ansible(module, args, method):
    env = dict(os.environ, ANSIBLE_CONNECTION_PLUGINS=str(ROOT / "tests" / "harness" / "connection_plugins"), ANSIBLE_PIPELINING="true",
               CHAINOPS_PODMAN_EXEC_METHOD=method, ANSIBLE_LOAD_CALLBACK_PLUGINS="true", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    proc = subprocess.run(["ansible", "all", "-i", CONTAINER + ",", "-c", "podman", "-m", module, "-a", args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][CONTAINER]


def test_nsenter_gives_a_task_the_same_view_as_podman_exec(container):
    through_podman = ansible("ansible.builtin.shell", VIEW, "podman")["stdout"]
    through_nsenter = ansible("ansible.builtin.shell", VIEW, "nsenter")["stdout"]
    assert through_nsenter == through_podman
    assert "container=podman" in through_nsenter and "\nsystemd\n" in through_nsenter
    assert json.loads(CACHE.read_text())["pid"] > 0


def test_files_go_in_and_come_out_through_the_containers_root(container, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("through /proc/PID/root\n")
    ansible("ansible.builtin.copy", "src=%s dest=/root/in.txt mode=0640" % source, "nsenter")
    shown = subprocess.run(["podman", "exec", container, "stat", "-c", "%a %U", "/root/in.txt"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert shown == ["640", "root"]
    ansible("ansible.builtin.fetch", "src=/root/in.txt dest=%s/ flat=true" % (tmp_path / "out"), "nsenter")
    assert (tmp_path / "out" / "in.txt").read_text() == "through /proc/PID/root\n"


def test_a_restarted_container_is_found_again(container):
    before = json.loads(CACHE.read_text())["pid"]
    subprocess.run(["podman", "restart", "-t", "0", container], check=True, capture_output=True, timeout=120)
    assert ansible("ansible.builtin.command", "cat /proc/1/comm", "nsenter")["stdout"] == "systemd"
    assert json.loads(CACHE.read_text())["pid"] != before
