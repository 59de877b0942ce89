"""playbooks/provision.yml against a real moto_server: create, inspect, re-run, check mode, inventory, tear down.

The playbook runs for real (ansible-playbook in a subprocess, amazon.aws modules over HTTP to moto);
everything asserted is read back from moto with boto3, not from the playbook's output. The tests of the
lifecycle class share one provisioned topology and run in file order (create -> inspect -> idempotence ->
check mode -> inventory -> teardown), because a provision run takes about a minute on moto.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from moto_server import unwrap_unsafe  # tests/testlib, put on sys.path by tests/conftest.py
from playbook_runner import REPO_ROOT, ansible_playbook, recap
from provision_support import (
    AMI,
    CREDS,
    HOSTED_ZONE,
    PLAYBOOK,
    REGION,
    ZONES,
    clients,
    instances,
    provisioned,
    records,
    reset,
    rule_set,
    run,
    seed,
)


def topology(world):
    return {
        "region": REGION,
        "subnets": world["subnets"],
        "defaults": {"ami": AMI, "admin_cidrs": ["203.0.113.0/24"], "health_cidrs": ["10.20.0.0/16"]},
        "clusters": [{
            "name": "ltc-a", "chain": "litecoin", "network": "regtest", "standby": True, "sentry_count": 3,
            "p2p_ports": [19444, "19445/udp"], "hosted_zone": HOSTED_ZONE, "sentry_instance_type": "t3.small",
            "validator_instance_type": "m6i.large",
            "volume": {"size": 50, "type": "gp3", "iops": 4000, "throughput": 250},
            "validator_volume": {"type": "io2", "iops": 5000, "size": 100},
            "tags": {"Lab": "provision-test"},
        }],
    }


@pytest.fixture(scope="class")
def world(moto_server, tmp_path_factory):
    yield from provisioned(moto_server, tmp_path_factory, "provision", topology)


class TestLifecycle:
    def test_first_run_creates(self, world):
        proc = world["first"]
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert recap(proc.stdout)["localhost"]["changed"] > 0

    def test_security_group_rules_exact(self, world):
        ec2 = clients(world["endpoint"])[0]
        groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [world["vpc"]]}])["SecurityGroups"]}
        validator, sentry = groups["ltc-a-validator"], groups["ltc-a-sentry"]
        assert rule_set(validator) == {
            ("udp", 51820, 51820, sentry["GroupId"]),          # WireGuard only from the sentries' group
            ("udp", 51820, 51820, validator["GroupId"]),       # and the other hub (validator <-> standby)
            ("tcp", 9680, 9680, "10.20.0.0/16"),               # health port only from the LB / VPC CIDR
            ("tcp", 22, 22, "203.0.113.0/24"),                 # SSH only from admin_cidrs
        }
        assert rule_set(sentry) == {
            ("tcp", 19444, 19444, "0.0.0.0/0"),                # public P2P, IPv4 and IPv6
            ("tcp", 19444, 19444, "::/0"),
            ("udp", 19445, 19445, "0.0.0.0/0"),
            ("udp", 19445, 19445, "::/0"),
            ("udp", 51820, 51820, validator["GroupId"]),        # WireGuard from the validator's group
            ("tcp", 9680, 9680, "10.20.0.0/16"),               # health port only from the LB / VPC CIDR
            ("tcp", 22, 22, "203.0.113.0/24"),
        }
        for group, role in ((validator, "validator"), (sentry, "sentry")):
            tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
            assert tags["Cluster"] == "ltc-a" and tags["Role"] == role and tags["ManagedBy"] == "chainops.validator"

    def test_instances_tagged_and_spread(self, world):
        ec2 = clients(world["endpoint"])[0]
        found = instances(ec2, **{"tag:ManagedBy": "chainops.validator"})
        assert set(found) == {"ltc-a-validator", "ltc-a-standby", "ltc-a-sentry-1", "ltc-a-sentry-2", "ltc-a-sentry-3"}
        groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
        expected_role = {"ltc-a-validator": "validator", "ltc-a-standby": "standby"}
        for name, inst in found.items():
            role = expected_role.get(name, "sentry")
            assert inst["TagMap"] == {"Name": name, "Chain": "litecoin", "Network": "regtest", "Role": role,
                                      "Cluster": "ltc-a", "ManagedBy": "chainops.validator", "Lab": "provision-test"}
            assert inst["ImageId"] == AMI
            assert inst["InstanceType"] == ("t3.small" if role == "sentry" else "m6i.large")
            assert [g["GroupId"] for g in inst["SecurityGroups"]] == [
                groups["ltc-a-sentry" if role == "sentry" else "ltc-a-validator"]]
            # Only sentries get a public address.
            assert bool(inst.get("PublicIpAddress")) == (role == "sentry"), name
            assert inst["SubnetId"] == world["subnets"][inst["Placement"]["AvailabilityZone"]]
        zone_of = {name: inst["Placement"]["AvailabilityZone"] for name, inst in found.items()}
        assert [zone_of["ltc-a-sentry-%d" % i] for i in (1, 2, 3)] == ZONES  # round robin
        assert zone_of["ltc-a-validator"] == "us-east-1a" and zone_of["ltc-a-standby"] == "us-east-1b"

    def test_data_volumes(self, world):
        ec2 = clients(world["endpoint"])[0]
        found = instances(ec2, **{"tag:ManagedBy": "chainops.validator"})
        volumes = {v["VolumeId"]: v for v in ec2.describe_volumes()["Volumes"]}
        for name, inst in found.items():
            data = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf"]
            assert len(data) == 1, name
            volume = volumes[data[0]["Ebs"]["VolumeId"]]
            tags = {t["Key"]: t["Value"] for t in volume.get("Tags", [])}
            assert tags["Name"] == name + "-data" and tags["Cluster"] == "ltc-a"
            assert volume["AvailabilityZone"] == inst["Placement"]["AvailabilityZone"]
            if "sentry" in name:
                assert (volume["VolumeType"], volume["Size"], volume["Iops"], volume["Throughput"]) == ("gp3", 50, 4000, 250)
            else:
                assert (volume["VolumeType"], volume["Size"], volume["Iops"]) == ("io2", 100, 5000)

    def test_dns_records(self, world):
        ec2, r53 = clients(world["endpoint"])
        found = instances(ec2, **{"tag:ManagedBy": "chainops.validator"})
        assert records(r53, world["zone_id"]) == {
            "www." + HOSTED_ZONE: ["192.0.2.10"],
            "node-1." + HOSTED_ZONE: [found["ltc-a-sentry-1"]["PublicIpAddress"]],
            "node-2." + HOSTED_ZONE: [found["ltc-a-sentry-2"]["PublicIpAddress"]],
            "node-3." + HOSTED_ZONE: [found["ltc-a-sentry-3"]["PublicIpAddress"]],
        }

    def test_second_run_changes_nothing(self, world):
        proc = run(world["endpoint"], world["topology"], tmp=world["tmp"])
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert recap(proc.stdout) == {"localhost": {"changed": 0, "failed": 0}}, proc.stdout[-4000:]
        ec2 = clients(world["endpoint"])[0]
        assert len(instances(ec2, **{"tag:ManagedBy": "chainops.validator"})) == 5

    def test_check_mode_changes_nothing(self, world):
        proc = run(world["endpoint"], world["topology"], "--check", tmp=world["tmp"])
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert recap(proc.stdout) == {"localhost": {"changed": 0, "failed": 0}}, proc.stdout[-4000:]

    def test_check_mode_reports_pending_changes_without_making_them(self, world):
        changed = json.loads(json.dumps(world["topology"]))
        changed["clusters"][0]["volume"]["size"] = 60
        changed["clusters"][0]["tags"]["Lab"] = "provision-test-2"
        proc = run(world["endpoint"], changed, "--check", tmp=world["tmp"])
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        reported = [line for line in proc.stdout.splitlines() if line.startswith("changed:")]
        for name in ("ltc-a-sentry-1-data", "ltc-a-validator-data", "ltc-a-sentry-3 (sentry"):
            assert any(name in line for line in reported), (name, reported)
        ec2 = clients(world["endpoint"])[0]
        sizes = {v["Size"] for v in ec2.describe_volumes(
            Filters=[{"Name": "tag:Name", "Values": ["ltc-a-*-data"]}])["Volumes"]}
        assert sizes == {50, 100}
        assert {i["TagMap"]["Lab"] for i in instances(ec2, **{"tag:ManagedBy": "chainops.validator"}).values()} == {
            "provision-test"}

    def test_inventory_plugin_sees_the_topology(self, world):
        """The shipped AWS inventory (inventories/aws), on the same moto, groups the provisioned hosts (the tag
        schema matches) and composes each host's data volume for the node role."""
        shipped = yaml.safe_load((REPO_ROOT / "inventories" / "aws" / "ec2_topology.yml").read_text())
        config = world["tmp"] / "aws.ec2_topology.yml"
        config.write_text(yaml.safe_dump(dict(shipped, regions=[REGION], endpoint_url=world["endpoint"], strict=True,
                                              cache=False, filters={"tag:ManagedBy": "chainops.validator"}), sort_keys=False))
        site = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "ansible_collections").is_dir())
        env = dict(os.environ, **CREDS)
        env.update(ANSIBLE_COLLECTIONS_PATH="%s:%s" % (REPO_ROOT / ".cache" / "collections", site),
                   ANSIBLE_INVENTORY_UNPARSED_FAILED="true", AWS_CONFIG_FILE="/nonexistent",
                   AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(config), "--list"],
                              capture_output=True, text=True, env=env, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        data = json.loads(proc.stdout)

        def group(name):
            return set(data.get(name, {}).get("hosts", []))

        sentries = {"ltc-a-sentry-1", "ltc-a-sentry-2", "ltc-a-sentry-3"}
        assert group("validators") == {"ltc-a-validator"}
        assert group("standbys") == {"ltc-a-standby"}
        assert group("sentries") == sentries
        assert group("cluster_ltc_a") == sentries | {"ltc-a-validator", "ltc-a-standby"}
        assert group("chain_litecoin") == group("cluster_ltc_a") and group("network_regtest") == group("cluster_ltc_a")
        assert group("az_us_east_1c") == {"ltc-a-sentry-3"}
        # ansible-inventory marks strings from the inventory as unsafe: {"__ansible_unsafe": value}.
        hostvars = unwrap_unsafe(data["_meta"]["hostvars"])
        assert hostvars["ltc-a-sentry-2"]["topology_validator"] == "ltc-a-validator"
        assert "are in availability zone" not in proc.stderr  # the plugin's warning when sentries share one zone

        ec2 = clients(world["endpoint"])[0]
        for name, inst in instances(ec2, **{"tag:ManagedBy": "chainops.validator"}).items():
            volume_id = next(m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")
            assert hostvars[name]["node_data_volume_id"] == volume_id, name
            assert hostvars[name]["node_data_mount"] == "/data", name

    def test_teardown_leaves_nothing(self, world):
        proc = run(world["endpoint"], world["topology"], state="absent", tmp=world["tmp"])
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert recap(proc.stdout)["localhost"]["changed"] > 0
        ec2, r53 = clients(world["endpoint"])
        assert instances(ec2, **{"tag:ManagedBy": "chainops.validator"}) == {}
        # Data volumes and root volumes (ec2_instance tags those too) alike.
        assert [v["VolumeId"] for v in ec2.describe_volumes(
            Filters=[{"Name": "tag:ManagedBy", "Values": ["chainops.validator"]}])["Volumes"]] == []
        names = {g["GroupName"] for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [world["vpc"]]}])["SecurityGroups"]}
        assert names == {"default", "ops-bastion"}
        assert records(r53, world["zone_id"]) == {"www." + HOSTED_ZONE: ["192.0.2.10"]}
        # The hand-made instance tagged with the same Cluster, but not ManagedBy, is untouched.
        assert set(instances(ec2, **{"tag:Cluster": "ltc-a"})) == {"bastion"}

    def test_second_teardown_changes_nothing(self, world):
        proc = run(world["endpoint"], world["topology"], state="absent", tmp=world["tmp"])
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert recap(proc.stdout) == {"localhost": {"changed": 0, "failed": 0}}, proc.stdout[-4000:]


# ---------------------------------------------------------------- bad descriptions fail before any AWS call

GOOD = {
    "region": REGION,
    "subnets": {"us-east-1a": "subnet-0a1b2c3d4e5f60718", "us-east-1b": "subnet-0a1b2c3d4e5f60719"},
    "defaults": {"ami": AMI, "admin_cidrs": ["203.0.113.0/24"], "health_cidrs": ["10.20.0.0/16"]},
    "clusters": [{"name": "ltc-a", "chain": "litecoin", "network": "regtest", "p2p_ports": [19444]}],
}


def _bad(**cluster):
    topo = json.loads(json.dumps(GOOD))
    topo["clusters"][0].update(cluster)
    return topo


@pytest.mark.parametrize("topo, message", [
    (_bad(sentry_count=0), "provision_topology.clusters[0].sentry_count must be between 1 and 50, got 0"),
    (_bad(admin_cidrs=["0.0.0.0/0"]), "provision_topology.clusters[0].admin_cidrs must not contain 0.0.0.0/0"),
    (_bad(volume={"size": 20, "type": "gp2", "iops": 3000}),
     "provision_topology.clusters[0].volume.iops is only valid for gp3, io1 and io2 volumes, not gp2"),
    (_bad(availability_zones=["us-east-1a", "us-east-1d"]),
     "provision_topology.clusters[0].availability_zones has no subnet in provision_topology.subnets for us-east-1d"),
    (dict(GOOD, clusters=[GOOD["clusters"][0], GOOD["clusters"][0]]),
     "provision_topology.clusters[1].name 'ltc-a' is already used by clusters[0]"),
    (_bad(p2p_ports=[19444, 22]), "provision_topology.clusters[0].p2p_ports covers the ssh_port 22: it would be open to the internet"),
    (_bad(p2p_ports=["9000-9999"]), "provision_topology.clusters[0].p2p_ports covers the health_port 9680"),
    (_bad(health_port=22), "provision_topology.clusters[0].health_port 22 is the ssh_port: health_cidrs would reach SSH"),
    (_bad(admin_cidrs=["0.0.0.0/1", "128.0.0.0/1"]), "provision_topology.clusters[0].admin_cidrs must not contain 0.0.0.0/1 (wider than /8)"),
], ids=["sentry-count", "admin-world", "gp2-iops", "az-without-subnet", "duplicate-cluster", "p2p-over-ssh", "p2p-over-health",
        "health-is-ssh", "admin-world-in-halves"])
def test_bad_description_fails_before_any_api_call(topo, message, tmp_path):
    # An endpoint where nothing listens: any AWS call would fail with a connection error instead.
    proc = run("http://127.0.0.1:9", topo, tmp=tmp_path)
    assert proc.returncode != 0
    text = " ".join((proc.stdout + proc.stderr).split())
    assert message in text, text[-3000:]
    assert "Look up the subnets" not in proc.stdout  # stopped at validation, before the first AWS task


def test_missing_description_is_named(tmp_path):
    env = dict(CREDS)
    proc = ansible_playbook(PLAYBOOK, "-i", "localhost,", env=env)
    assert proc.returncode != 0
    assert "provision_topology is not set" in " ".join(proc.stdout.split())


def test_subnet_in_wrong_zone_fails_before_any_change(moto_server, tmp_path):
    reset(moto_server)
    world = seed(moto_server)
    topo = topology(world)
    swapped = {"us-east-1a": world["subnets"]["us-east-1b"], "us-east-1b": world["subnets"]["us-east-1a"]}
    topo["subnets"] = dict(world["subnets"], **swapped)
    proc = run(moto_server, topo, tmp=tmp_path)
    assert proc.returncode != 0
    text = " ".join((proc.stdout + proc.stderr).split())
    assert "provision_topology.subnets.us-east-1a: subnet %s is in us-east-1b, not us-east-1a" % world["subnets"]["us-east-1b"] in text
    ec2 = clients(moto_server)[0]
    assert instances(ec2, **{"tag:ManagedBy": "chainops.validator"}) == {}
    assert {g["GroupName"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [world["vpc"]]}])["SecurityGroups"]} == {"default", "ops-bastion"}
    reset(moto_server)


def test_check_mode_before_anything_exists(moto_server, tmp_path):
    """--check on an empty account reports the work to do, fails on nothing and creates nothing."""
    reset(moto_server)
    world = seed(moto_server)
    proc = run(moto_server, topology(world), "--check", tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert recap(proc.stdout)["localhost"]["changed"] > 0
    assert "ltc-a-sentry-3 would be launched in us-east-1c once ltc-a-sentry exists" in proc.stdout
    ec2, r53 = clients(moto_server)
    assert instances(ec2, **{"tag:ManagedBy": "chainops.validator"}) == {}
    assert {g["GroupName"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [world["vpc"]]}])["SecurityGroups"]} == {"default", "ops-bastion"}
    assert records(r53, world["zone_id"]) == {"www." + HOSTED_ZONE: ["192.0.2.10"]}
    reset(moto_server)
