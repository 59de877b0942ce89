"""The snapshot_restore role's EBS path on the controller: API steps against a real moto_server,
device steps against real loop devices (root only).

moto has no block devices: when the role attaches the new volume, a watcher thread plays udev and
links /by-id/nvme-Amazon_Elastic_Block_Store_vol<id> to a loop device prepared as the snapshot's
content (or left blank). Everything after that (blkid, mkfs only when blank, mount by UUID, fstab
with nofail, the host's own secrets kept, the source's removed) is the real thing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest

from chainops_testlib import RECAP  # tests/testlib, put on sys.path by tests/conftest.py
from playbook_runner import ansible_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup"), reason="needs root and loop devices")

TAGS = {"chainops:chain": "litecoin", "chainops:network": "regtest", "chainops:client": "litecoind", "chainops:block-height": "3000"}


# What the snapshot holds: the source's data directory, including the source's secret.
SNAPSHOT_FILES = {
    "litecoind/regtest/blocks/blk00000.dat": b"block" * 1000,
    "litecoind/regtest/wallets/source-only": b"source secret\n",
}


def task_status(output: str, name: str) -> str:
    """ok / changed / skipping / failed of the task with this name, from ansible-playbook's output."""
    match = re.search(r"TASK \[[^\]]*: %s\] \**\n(\w+):" % re.escape(name), output)
    assert match, "task %r not in output" % name
    return match.group(1).rstrip(":")


def fake_udev(ec2, instance_id: str, by_id: Path, device: str, stop: threading.Event) -> None:
    """Link the attached volume's NVMe by-id name to the loop device, as udev does on Nitro."""
    while not stop.is_set():
        for volume in ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]:
            link = by_id / ("nvme-Amazon_Elastic_Block_Store_" + volume["VolumeId"].replace("-", ""))
            if not link.exists():
                link.symlink_to(device)
        time.sleep(0.2)


def setup_aws(endpoint: str):
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 Placement={"AvailabilityZone": "us-east-1b"})["Instances"][0]["InstanceId"]
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=20, VolumeType="gp3")["VolumeId"]
    older = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": k, "Value": ("2000" if k == "chainops:block-height" else v)} for k, v in TAGS.items()]}])["SnapshotId"]
    best = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": k, "Value": v} for k, v in TAGS.items()]}])["SnapshotId"]
    return ec2, instance, best, older


def restore(tmp_path, endpoint, instance, device=None, **extra):
    variables = dict(
        node_profile="litecoind", node_network="regtest", node_user="root", node_group="root",
        node_data_mount=str(tmp_path / "mnt"),
        snapshot_restore_source="ebs", snapshot_restore_ebs_instance_id=instance,
        snapshot_restore_aws_endpoint_url=endpoint, snapshot_restore_aws_region="us-east-1",
        snapshot_restore_ebs_by_id_dir=str(tmp_path / "by-id"), snapshot_restore_ebs_device_timeout=60,
        snapshot_restore_ebs_fstab=str(tmp_path / "fstab"), snapshot_restore_ebs_keep_dir=str(tmp_path / "keep"),
        snapshot_restore_start_node=False, **extra)
    playbook = tmp_path / "ebs.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "vars": variables,
                                     "roles": [{"role": "chainops.validator.snapshot_restore"}]}]))
    return ansible_playbook(playbook, "-i", "localhost,")


def restore_with_udev(tmp_path, aws_env, ec2, instance, device, **extra):
    """Run the EBS restore while a thread plays udev: it links the attached volume's NVMe id to the loop device."""
    stop = threading.Event()
    watcher = threading.Thread(target=fake_udev, args=(ec2, instance, tmp_path / "by-id", device, stop), daemon=True)
    watcher.start()
    try:
        result = restore(tmp_path, aws_env, instance, **extra)
    finally:
        stop.set()
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return result


def test_ebs_restore_keeps_own_secrets_mounts_by_uuid_and_is_idempotent(aws_env, tmp_path, loop_device):
    ec2, instance, best, _older = setup_aws(aws_env)
    device = loop_device(SNAPSHOT_FILES)
    (tmp_path / "by-id").mkdir()
    own = tmp_path / "mnt" / "litecoind" / "regtest" / "wallets"
    own.mkdir(parents=True)
    (own / "own-only").write_text("own secret\n")
    result = restore_with_udev(tmp_path, aws_env, ec2, instance, device, snapshot_restore_ebs_initialize=True)
    data = tmp_path / "mnt" / "litecoind"
    # Initialised with fio: every byte of the device read once (the role checks fio's count against the device's size).
    size = int(subprocess.run(["blockdev", "--getsize64", device], capture_output=True, text=True, check=True).stdout)
    assert "initialised %s: read %d bytes in" % (tmp_path / "by-id" / ("nvme-Amazon_Elastic_Block_Store_" + ec2.describe_volumes(
        Filters=[{"Name": "tag:chainops:restored-for", "Values": [instance]}])["Volumes"][0]["VolumeId"].replace("-", "")),
        size) in result.stdout, result.stdout[-3000:]
    uuid = subprocess.run(["blkid", "-s", "UUID", "-o", "value", device], capture_output=True, text=True, check=True).stdout.strip()
    assert subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(tmp_path / "mnt")], capture_output=True, text=True, check=False).stdout.strip() == device
    assert (tmp_path / "fstab").read_text() == "UUID=%s %s ext4 defaults,nofail 0 2\n" % (uuid, tmp_path / "mnt")
    assert (data / "regtest" / "blocks" / "blk00000.dat").read_bytes() == b"block" * 1000
    assert (data / "regtest" / "wallets" / "own-only").read_text() == "own secret\n"
    assert not (data / "regtest" / "wallets" / "source-only").exists()
    assert not (tmp_path / "keep").exists()
    # API side: a gp3 volume from the best snapshot, in the instance's AZ, tagged, attached.
    volumes = ec2.describe_volumes(Filters=[{"Name": "tag:chainops:restored-for", "Values": [instance]}])["Volumes"]
    assert len(volumes) == 1
    volume = volumes[0]
    tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
    assert volume["SnapshotId"] == best and volume["AvailabilityZone"] == "us-east-1b" and volume["VolumeType"] == "gp3"
    assert volume["Iops"] == 3000 and volume.get("Throughput") == 125
    assert tags["chainops:restored-for"] == instance and tags["chainops:restored-from"] == best
    assert tags["chainops:block-height"] == "3000" and tags["Name"] == "localhost-data"
    assert task_status(result.stdout, "Create a file system on the blank device") == "skipping"
    # Second run: the data directory holds data, nothing happens.
    again = restore(tmp_path, aws_env, instance)
    assert again.returncode == 0, again.stdout[-3000:]
    assert RECAP.search(again.stdout)["changed"] == "0", again.stdout[-3000:]
    assert "already holds node data" in again.stdout


def test_ebs_restore_blank_volume_gets_a_file_system(aws_env, tmp_path, loop_device):
    ec2, instance, _best, _older = setup_aws(aws_env)
    device = loop_device(None)
    (tmp_path / "by-id").mkdir()
    result = restore_with_udev(tmp_path, aws_env, ec2, instance, device, snapshot_restore_ebs_initialization_rate=300,
                               snapshot_restore_ebs_iops=8000, snapshot_restore_ebs_throughput=2000)
    assert task_status(result.stdout, "Create a file system on the blank device") == "changed"
    # The rate's completion time, from the snapshot's 20 GiB: 20480 MiB / 300 MiB/s = 68.3 s.
    assert "initialized from the snapshot at 300 MiB/s: 20480 MiB in about 69 s, done by 20" in result.stdout, result.stdout[-3000:]
    volume = ec2.describe_volumes(Filters=[{"Name": "tag:chainops:restored-for", "Values": [instance]}])["Volumes"][0]
    assert (volume["Iops"], volume["Throughput"]) == (8000, 2000)  # above the old 16,000-IOPS-era caps of 1,000 MiB/s
    assert "TYPE=ext4" in subprocess.run(["blkid", "-o", "export", device], capture_output=True, text=True, check=False).stdout
    assert subprocess.run(["findmnt", "-n", "-o", "FSTYPE", str(tmp_path / "mnt")], capture_output=True, text=True, check=False).stdout.strip() == "ext4"


def test_nothing_qualifies_fails_clearly_or_falls_back(aws_env, tmp_path):
    ec2 = boto3.client("ec2", endpoint_url=aws_env, region_name="us-east-1")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    result = restore(tmp_path, aws_env, instance)
    assert result.returncode != 0
    assert "No EBS snapshot for chain=litecoin network=regtest meets every criterion" in result.stdout, result.stdout[-3000:]
    result = restore(tmp_path, aws_env, instance, snapshot_restore_fallback="sync")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "starts with an empty data directory and syncs from genesis" in result.stdout
