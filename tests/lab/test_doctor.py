"""The preflight (tests/harness/doctor.sh) and the network repair (tests/harness/networks.sh), with one
capability broken on purpose: podman is pointed at a CNI plugin directory without the DNS plugin, as
on a machine where golang-github-containernetworking-plugin-dnsname is missing."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCTOR = ROOT / "tests" / "harness" / "doctor.sh"
NETWORKS = ROOT / "tests" / "harness" / "networks.sh"
CNI_PLUGINS = Path("/usr/lib/cni")


def run(argv, env, timeout=120):
    return subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def env():
    assert os.environ.get("CHAINOPS_TEST_IMAGE"), "CHAINOPS_TEST_IMAGE is not set: run through make"
    assert os.environ.get("CONTAINERS_CONF"), "CONTAINERS_CONF is not set: run through make"
    return dict(os.environ, CHAINOPS_DOCTOR_NAME="chainops-doctortest")


@pytest.fixture
def without_dns_plugin(tmp_path, env):
    """A containers.conf like the project's, whose CNI plugin directory lacks dnsname."""
    plugins = tmp_path / "cni"
    plugins.mkdir()
    for plugin in CNI_PLUGINS.iterdir():
        if plugin.name != "dnsname":
            (plugins / plugin.name).symlink_to(plugin)
    assert (CNI_PLUGINS / "dnsname").exists(), "the DNS plugin is not installed: make system-deps installs it"
    conf = tmp_path / "containers.conf"
    conf.write_text(Path(env["CONTAINERS_CONF"]).read_text() + '\n[network]\ncni_plugin_dirs = ["%s"]\n' % plugins)
    return dict(env, CONTAINERS_CONF=str(conf))


def lines(proc):
    return (proc.stdout + proc.stderr).splitlines()


def test_doctor_passes_on_this_machine(env):
    proc = run([DOCTOR], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for capability in ("test image", "systemd in a container", "container DNS", "wireguard-go tunnel",
                       "nftables in a container", "host gateway server"):
        assert any(line.startswith("ok") and capability in line for line in lines(proc)), capability


def test_doctor_names_missing_container_dns_in_one_line_with_its_fix(without_dns_plugin):
    proc = run([DOCTOR], without_dns_plugin)
    assert proc.returncode != 0
    failed = [line for line in lines(proc) if line.startswith("FAIL")]
    assert len(failed) == 1, proc.stdout
    assert "container DNS" in failed[0] and "dns_enabled=false" in failed[0]
    assert "fix: apt-get install -y golang-github-containernetworking-plugin-dnsname" in failed[0]
    # The other capabilities are still tried and pass.
    assert any(line.startswith("ok") and "wireguard-go tunnel" in line for line in lines(proc))
    assert "doctor: 1 problem(s)" in proc.stderr


def test_doctor_names_a_missing_image(env):
    proc = run([DOCTOR], dict(env, CHAINOPS_TEST_IMAGE="localhost/chainops-doctortest-missing:none"))
    assert proc.returncode != 0
    assert [line for line in lines(proc) if line.startswith("FAIL")] == [
        line for line in lines(proc) if "test image" in line and "fix: make image" in line]


def test_a_network_left_without_dns_is_removed_with_its_containers(without_dns_plugin, env):
    old, good = "chainops-doctortest-old", "chainops-doctortest-good"
    try:
        assert run(["podman", "network", "create", old], without_dns_plugin).returncode == 0
        assert run(["podman", "network", "create", good], env).returncode == 0
        started = run(["podman", "run", "-d", "--name", old + "-c", "--network", old, env["CHAINOPS_TEST_IMAGE"], "sleep", "300"], env)
        assert started.returncode == 0, started.stderr
        proc = run([NETWORKS, old, good, "chainops-doctortest-absent"], env)
        assert proc.returncode == 0, proc.stderr
        assert "podman network %s has no DNS" % old in proc.stdout
        assert run(["podman", "network", "exists", old], env).returncode != 0
        assert run(["podman", "container", "exists", old + "-c"], env).returncode != 0
        assert run(["podman", "network", "exists", good], env).returncode == 0  # had DNS: left alone
    finally:
        run(["podman", "rm", "-f", "-t", "0", old + "-c"], env)
        run(["podman", "network", "rm", "-f", old, good], env)
