"""chainops.validator.signer_fence against a real moto_server: the old signer cut off by the EC2 API."""
from __future__ import annotations

import boto3
import pytest

from playbook_runner import task_results

AMI = "ami-12c6146b"  # one of moto's built-in AMIs


@pytest.fixture
def world(aws_env):
    ec2 = boto3.client("ec2", endpoint_url=aws_env, region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="validator", Description="p2p from sentries", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "udp", "FromPort": 51820, "ToPort": 51820, "IpRanges": [{"CidrIp": "10.40.0.0/16"}]}])
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=AMI, MinCount=2, MaxCount=2, SubnetId=subnet,
                                                      SecurityGroupIds=[group])["Instances"]]
    data = ec2.create_volume(Size=10, AvailabilityZone="us-east-1a")["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=ids[1], Device="/dev/sdf")
    return {"ec2": ec2, "vpc": vpc, "group": group, "stop": ids[0], "isolate": ids[1], "data": data, "endpoint": aws_env}


def fence(name, world, **args):
    return {"name": name, "chainops.validator.signer_fence": dict(
        args, endpoint_url=world["endpoint"], region="us-east-1", wait_interval=1, wait_timeout=30)}


def instance(world, instance_id):
    return world["ec2"].describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def test_stop_waits_for_stopped_tags_the_token_and_is_idempotent(world, tmp_path):
    results = task_results(tmp_path, [
        fence("check mode", world, instance_id=world["stop"]) | {"check_mode": True},
        fence("stop", world, instance_id=world["stop"], token=4),
        fence("again", world, instance_id=world["stop"], token=4),
    ])
    would = results["check mode"]["localhost"]
    assert would["changed"] and would["previous_state"] == "running"
    stopped = results["stop"]["localhost"]
    assert stopped["changed"] and stopped["previous_state"] == "running" and stopped["state"] == "stopped", stopped
    assert not results["again"]["localhost"]["changed"]
    after = instance(world, world["stop"])
    assert after["State"]["Name"] == "stopped"
    tags = {t["Key"]: t["Value"] for t in after.get("Tags", [])}
    assert tags["chainops:fenced"].endswith(" stop token=4"), tags
    # Check mode ran first and changed nothing: only one stop happened (the tag is from the real run).
    assert instance(world, world["isolate"])["State"]["Name"] == "running"


def test_isolate_swaps_in_a_deny_all_group_and_detaches_the_data_volume(world, tmp_path):
    results = task_results(tmp_path, [
        fence("isolate", world, instance_id=world["isolate"], method="isolate", detach_volume_ids=[world["data"]]),
        fence("again", world, instance_id=world["isolate"], method="isolate", detach_volume_ids=[world["data"]]),
    ])
    first = results["isolate"]["localhost"]
    assert first["changed"] and first["detached_volume_ids"] == [world["data"]], first
    assert list(first["security_groups"].values()) == [[world["group"]]]
    assert not results["again"]["localhost"]["changed"], results["again"]["localhost"]
    ec2 = world["ec2"]
    after = instance(world, world["isolate"])
    assert after["State"]["Name"] == "running"
    assert [g["GroupId"] for i in after["NetworkInterfaces"] for g in i["Groups"]] == [first["isolation_group_id"]]
    deny_all = ec2.describe_security_groups(GroupIds=[first["isolation_group_id"]])["SecurityGroups"][0]
    assert deny_all["VpcId"] == world["vpc"] and deny_all["IpPermissions"] == [] and deny_all["IpPermissionsEgress"] == []
    assert ec2.describe_volumes(VolumeIds=[world["data"]])["Volumes"][0]["State"] == "available"


def test_bad_input_and_a_missing_instance_fail_clearly(world, tmp_path):
    results = task_results(tmp_path, [
        fence("not an id", world, instance_id="val-a"),
        fence("detach without isolate", world, instance_id=world["stop"], detach_volume_ids=[world["data"]]),
        fence("gone", world, instance_id="i-0123456789abcdef0"),
    ])
    assert "instance_id must be an EC2 instance id (i-...), got 'val-a'" in results["not an id"]["localhost"]["msg"]
    assert "detach_volume_ids needs method=isolate" in results["detach without isolate"]["localhost"]["msg"]
    assert "i-0123456789abcdef0" in results["gone"]["localhost"]["msg"] and results["gone"]["localhost"]["failed"]
    assert instance(world, world["stop"])["State"]["Name"] == "running"
