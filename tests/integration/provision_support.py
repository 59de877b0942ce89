"""Helpers of the provision tests (test_provision.py, test_provision_on_moto_fleets.py): a moto account
seeded with a VPC, subnets, a hosted zone and bystanders; provision.yml run with a topology; what moto
holds afterwards, read back with boto3."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import boto3

from playbook_runner import REPO_ROOT, ansible_playbook

PLAYBOOK = REPO_ROOT / "playbooks" / "provision.yml"
REGION = "us-east-1"
AMI = "ami-12c6146b"  # one of moto's built-in AMIs
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
HOSTED_ZONE = "ltc.example.org"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
ACTIVE = ["pending", "running", "stopping", "stopped"]


def reset(endpoint):
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"), timeout=120).close()


def clients(endpoint):
    kw = dict(region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.client("ec2", **kw), boto3.client("route53", **kw)


def run(endpoint, topology, *args, state=None, tmp=None):
    """Run provision.yml with `topology` as provision_topology (a JSON extra-vars file)."""
    extra = {"provision_topology": topology, "provision_aws_endpoint_url": endpoint}
    if state:
        extra["provision_state"] = state
    path = Path(tmp) / "topology.json"
    path.write_text(json.dumps(extra))
    env = dict(CREDS, AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    env.pop("AWS_PROFILE", None)
    proc = ansible_playbook(PLAYBOOK, "-i", "localhost,", "-e", "@%s" % path, *args, env=env)
    return proc


def seed(endpoint):
    """A VPC with one subnet per zone, a hosted zone, and bystanders teardown must not touch."""
    ec2, r53 = clients(endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    for index, zone in enumerate(ZONES):
        subnets[zone] = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.%d.0/24" % index,
                                          AvailabilityZone=zone)["Subnet"]["SubnetId"]
    zone_id = r53.create_hosted_zone(Name=HOSTED_ZONE, CallerReference="provision-test")["HostedZone"]["Id"]
    # Bystanders: a hand-made instance, security group and record in the same VPC and zone.
    other_sg = ec2.create_security_group(GroupName="ops-bastion", Description="not ours", VpcId=vpc)["GroupId"]
    other = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnets[ZONES[0]],
                              SecurityGroupIds=[other_sg],
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "Name", "Value": "bastion"}, {"Key": "Cluster", "Value": "ltc-a"}]}])
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": "www." + HOSTED_ZONE, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.10"}]}}]})
    return {"vpc": vpc, "subnets": subnets, "zone_id": zone_id, "other_sg": other_sg,
            "other_instance": other["Instances"][0]["InstanceId"]}


def instances(ec2, **filters):
    flt = [{"Name": "instance-state-name", "Values": ACTIVE}] + [{"Name": k, "Values": [v]} for k, v in filters.items()]
    found = {}
    for reservation in ec2.describe_instances(Filters=flt)["Reservations"]:
        for inst in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            found[tags.get("Name", inst["InstanceId"])] = dict(inst, TagMap=tags)
    return found


def rule_set(group):
    """Ingress rules as a set of (proto, from, to, source) with sources CIDRs or group IDs."""
    rules = set()
    for perm in group["IpPermissions"]:
        key = (perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort"))
        for r in perm.get("IpRanges", []):
            rules.add(key + (r["CidrIp"],))
        for r in perm.get("Ipv6Ranges", []):
            rules.add(key + (r["CidrIpv6"],))
        for r in perm.get("UserIdGroupPairs", []):
            rules.add(key + (r["GroupId"],))
    return rules


def records(r53, zone_id):
    sets = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {s["Name"].rstrip("."): sorted(r["Value"] for r in s.get("ResourceRecords", []))
            for s in sets if s["Type"] == "A"}


def provisioned(endpoint, tmp_path_factory, name, make_topology):
    """A class fixture's body: a fresh moto account (VPC and subnets), the topology provisioned once (its
    run kept as ``first``), and moto reset afterwards."""
    reset(endpoint)
    data = seed(endpoint)
    data["endpoint"] = endpoint
    data["tmp"] = tmp_path_factory.mktemp(name)
    data["topology"] = make_topology(data)
    data["first"] = run(endpoint, data["topology"], tmp=data["tmp"])
    yield data
    reset(endpoint)
