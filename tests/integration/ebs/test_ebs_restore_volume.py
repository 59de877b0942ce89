"""chainops.validator.ebs_restore_volume against a real moto_server, run through ansible-playbook.

The proxy (ebs_support.py) records every request, so the tests see exactly what EC2 was
asked (moto accepts VolumeInitializationRate but does not keep it), and answers
DescribeFastSnapshotRestores, which moto does not implement.
"""
from __future__ import annotations

from urllib.parse import urlencode

from ebs_support import (
    REGION,
    make_snapshot,
    run_in_process,
    run_tasks,
    task,
    volume,
    with_endpoint,
)

MODULE = "chainops.validator.ebs_restore_volume"


def world(ec2, zone="b"):
    """An instance in zone us-east-1<zone> and a completed 20 GiB snapshot."""
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 Placement={"AvailabilityZone": REGION + zone})["Instances"][0]["InstanceId"]
    snapshot = make_snapshot(ec2, volume(ec2, size=20), {"chainops:chain": "litecoin"})
    return instance, snapshot


def sent(proxy, action):
    """The parameters of every request of this action, as dicts."""
    return [dict(request["pairs"]) for request in proxy.requests if request["action"] == action]


def restore(tmp_path, collections_path, proxy, name="restore", check_mode=False, **args):
    return run_tasks(tmp_path, collections_path, [task(name, MODULE, check_mode=check_mode, **with_endpoint(proxy, **args))])[name]


def test_a_rated_gp3_volume_at_the_current_limits_is_created_attached_and_reused(aws, proxy, tmp_path, collections_path):
    instance, snapshot = world(aws)
    args = dict(snapshot_id=snapshot, instance_id=instance, iops=8000, throughput=2000, initialization_rate=200, tags={"Name": "n1-data"})
    result = restore(tmp_path, collections_path, proxy, **args)
    assert result.get("failed") is not True, result.get("msg")
    assert (result["changed"], result["created"], result["attached"], result["availability_zone"]) == (True, True, True, REGION + "b")
    [create] = sent(proxy, "CreateVolume")
    assert (create["VolumeInitializationRate"], create["Iops"], create["Throughput"], create["Size"], create["VolumeType"]) == (
        "200", "8000", "2000", "20", "gp3")
    assert create["AvailabilityZone"] == REGION + "b"
    # 20 GiB (moto gives no FullSnapshotSizeInBytes) at 200 MiB/s: 102.4 s, rounded up.
    plan = result["initialization"]
    assert (plan["method"], plan["rate_mib_s"], plan["snapshot_bytes"], plan["size_source"], plan["expected_seconds"]) == (
        "provisioned-rate", 200, 20 * 1024 ** 3, "VolumeSize", 103)
    assert plan["expected_completion"].endswith("Z")
    described = aws.describe_volumes(VolumeIds=[result["volume_id"]])["Volumes"][0]
    assert [(a["InstanceId"], a["Device"]) for a in described["Attachments"]] == [(instance, "/dev/sdg")]
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags == {"Name": "n1-data", "chainops:restored-for": instance, "chainops:restored-from": snapshot}

    proxy.reset()
    # moto does not keep the rate; EBS reports it with the volume, as the proxy does here.
    proxy.volumes[result["volume_id"]] = {"volumeInitializationRate": "200"}
    asked_now = {**args, "initialization_rate": 300}
    again = restore(tmp_path, collections_path, proxy, **asked_now)
    assert (again["changed"], again["created"], again["attached"], again["volume_id"]) == (False, False, False, result["volume_id"])
    assert sent(proxy, "CreateVolume") == [] and sent(proxy, "AttachVolume") == []
    # The reused volume is initialized at the rate it was created with, whatever this run asked for.
    assert (again["initialization"]["method"], again["initialization"]["rate_mib_s"]) == ("provisioned-rate", 200)


def test_fast_snapshot_restore_where_enabled_sends_no_rate(aws, proxy, tmp_path, collections_path):
    instance, snapshot = world(aws)
    proxy.fast_restores[(snapshot, REGION + "a")] = "enabled"  # another zone: does not count
    result = restore(tmp_path, collections_path, proxy, "other zone", snapshot_id=snapshot, instance_id=instance,
                     initialization_rate=300, fast_snapshot_restore=True, check_mode=True)
    assert result["initialization"]["method"] == "provisioned-rate" and sent(proxy, "CreateVolume") == []
    proxy.fast_restores[(snapshot, REGION + "b")] = "enabled"
    result = restore(tmp_path, collections_path, proxy, snapshot_id=snapshot, instance_id=instance, initialization_rate=300,
                     fast_snapshot_restore=True)
    assert result["initialization"] == {"method": "fast-snapshot-restore", "rate_mib_s": None, "expected_seconds": 0,
                                        "snapshot_bytes": 20 * 1024 ** 3, "size_source": "VolumeSize"}
    [create] = sent(proxy, "CreateVolume")
    assert "VolumeInitializationRate" not in create
    query = sent(proxy, "DescribeFastSnapshotRestores")[-1]  # the first was the check-mode run's
    assert sorted(v for k, v in query.items() if k.startswith("Filter.")) == sorted(
        ["snapshot-id", snapshot, "availability-zone", REGION + "b"]), urlencode(query)


def test_check_mode_creates_nothing_and_a_volume_attached_elsewhere_is_refused(aws, proxy, tmp_path, collections_path):
    instance, snapshot = world(aws)
    preview = restore(tmp_path, collections_path, proxy, snapshot_id=snapshot, instance_id=instance, check_mode=True)
    assert (preview["changed"], preview["volume_id"], preview["initialization"]["method"]) == (True, "", "default")
    assert sent(proxy, "CreateVolume") == [] and sent(proxy, "AttachVolume") == []
    assert aws.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [snapshot]}])["Volumes"] == []
    # A volume made for this instance that someone attached to another one is not taken over.
    other, _unused = world(aws)
    stray = aws.create_volume(SnapshotId=snapshot, AvailabilityZone=REGION + "b", TagSpecifications=[{"ResourceType": "volume", "Tags": [
        {"Key": "chainops:restored-for", "Value": instance}]}])["VolumeId"]
    aws.attach_volume(VolumeId=stray, InstanceId=other, Device="/dev/sdh")
    refused = restore(tmp_path, collections_path, proxy, snapshot_id=snapshot, instance_id=instance)
    assert refused["failed"] and refused["msg"] == "volume %s is attached to %s, not %s" % (stray, other, instance)


def test_limits_and_sizes_are_checked_before_any_call(aws, proxy, tmp_path, collections_path, capsys):
    result = run_in_process(MODULE, dict(snapshot_id="snap-1", instance_id="i-1", iops=3000, throughput=1000, initialization_rate=500), capsys)
    assert result["failed"] and result["msg"] == (
        "ebs_restore_volume: throughput 1000 MiB/s needs at least 4000 IOPS on gp3 (0.25 MiB/s per IOPS), got 3000 IOPS; "
        "at most 750 MiB/s; initialization_rate for gp3 must be from 100 to 300 MiB/s, got 500")
    instance, snapshot = world(aws)
    small = restore(tmp_path, collections_path, proxy, snapshot_id=snapshot, instance_id=instance, size=10)
    assert small["failed"] and small["msg"] == "size 10 GiB is smaller than the snapshot's 20 GiB"
    dense = restore(tmp_path, collections_path, proxy, snapshot_id=snapshot, instance_id=instance, iops=12000)
    assert dense["failed"] and dense["msg"] == "ebs_restore_volume: iops 12000 for a 20 GiB gp3 volume exceeds 500 per GiB (at most 10000)"
    assert sent(proxy, "CreateVolume") == []
