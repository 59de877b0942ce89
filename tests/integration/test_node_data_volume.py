"""The node role's data volume steps (tasks/data_volume.yml) against real loop devices (root only).

udev's NVMe link (by-id/nvme-Amazon_Elastic_Block_Store_<volume id without the dash>) is made by
the test and points at a loop device; blkid, mkfs, fstab and mount are the real thing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from playbook_runner import ansible_playbook, recap

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup"), reason="needs root and loop devices")

VOLUME = "vol-0a1b2c3d4e5f60718"


def converge(tmp_path: Path, *args: str, **overrides) -> subprocess.CompletedProcess:
    variables = dict(dict(node_data_volume_id=VOLUME, node_data_mount=str(tmp_path / "data"), node_data_by_id_dir=str(tmp_path / "by-id"),
                          node_data_fstab=str(tmp_path / "fstab"), node_data_device_timeout=5), **overrides)
    playbook = tmp_path / "data_volume.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "vars": variables,
                                     "tasks": [{"ansible.builtin.include_role": {"name": "chainops.validator.node",
                                                                                  "tasks_from": "data_volume"}}]}]))
    return ansible_playbook(playbook, "-i", "localhost,", *args)


def attach(tmp_path: Path, device: str) -> None:
    """What udev does on Nitro when the volume is attached."""
    (tmp_path / "by-id").mkdir(exist_ok=True)
    (tmp_path / "by-id" / ("nvme-Amazon_Elastic_Block_Store_" + VOLUME.replace("-", ""))).symlink_to(device)


def mounted_source(path: Path) -> str:
    return subprocess.run(["findmnt", "-n", "-o", "SOURCE", "--mountpoint", str(path)], capture_output=True, text=True,
                          check=False).stdout.strip()


def blkid(device: str) -> str:
    return subprocess.run(["blkid", "-p", "-o", "export", device], capture_output=True, text=True, check=False).stdout


def test_blank_volume_is_formatted_mounted_by_uuid_and_then_left_alone(tmp_path, loop_device):
    device = loop_device(None)
    attach(tmp_path, device)

    check = converge(tmp_path, "--check")
    assert check.returncode == 0, check.stdout[-4000:]
    assert "TYPE=" not in blkid(device) and not mounted_source(tmp_path / "data") and not (tmp_path / "fstab").exists()

    first = converge(tmp_path)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first.stdout)["localhost"]["changed"] >= 3
    uuid = subprocess.run(["blkid", "-s", "UUID", "-o", "value", device], capture_output=True, text=True, check=True).stdout.strip()
    assert "TYPE=ext4" in blkid(device)
    assert mounted_source(tmp_path / "data") == device
    assert (tmp_path / "fstab").read_text() == "UUID=%s %s ext4 defaults,nofail 0 2\n" % (uuid, tmp_path / "data")

    for args in ((), ("--check",)):
        again = converge(tmp_path, *args)
        assert again.returncode == 0, again.stdout[-4000:]
        assert recap(again.stdout)["localhost"]["changed"] == 0, again.stdout[-4000:]


def test_volume_with_a_file_system_is_mounted_not_formatted(tmp_path, loop_device):
    device = loop_device({"litecoind/regtest/blocks/blk00000.dat": b"chain data"})
    before = blkid(device)
    attach(tmp_path, device)
    result = converge(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert blkid(device) == before
    assert (tmp_path / "data" / "litecoind" / "regtest" / "blocks" / "blk00000.dat").read_bytes() == b"chain data"


def test_another_mount_there_is_left_alone(tmp_path, loop_device):
    restored, provisioned = loop_device({"restored": b"yes"}), loop_device(None)
    (tmp_path / "data").mkdir()
    subprocess.run(["mount", restored, str(tmp_path / "data")], check=True)
    attach(tmp_path, provisioned)
    result = converge(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap(result.stdout)["localhost"]["changed"] == 0
    assert mounted_source(tmp_path / "data") == restored
    assert "TYPE=" not in blkid(provisioned)


@pytest.mark.parametrize("overrides, message", [
    ({"node_data_volume_id": "vol-XYZ"}, "node_data_volume_id 'vol-XYZ' needs to be an EBS volume id"),
    ({"node_data_mount": ""}, "node_data_mount the path to mount it on (now '')"),
])
def test_bad_settings_fail_before_anything_changes(tmp_path, loop_device, overrides, message):
    device = loop_device(None)
    attach(tmp_path, device)
    result = converge(tmp_path, **overrides)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-4000:]
    assert recap(result.stdout)["localhost"]["changed"] == 0
    assert "TYPE=" not in blkid(device)


def test_missing_device_fails_naming_the_volume(tmp_path):
    (tmp_path / "by-id").mkdir()
    result = converge(tmp_path)
    assert result.returncode != 0
    assert "nvme-Amazon_Elastic_Block_Store_" + VOLUME.replace("-", "") in result.stdout, result.stdout[-4000:]
    assert not (tmp_path / "fstab").exists()
