"""playbooks/provision.yml's fleets against a real moto_server: a Polykey-style seed fleet and a load-balanced
RPC fleet created, read back with boto3, re-run, checked and torn down (the helpers are provision_support.py's,
shared with test_provision.py; a file of its own so that pytest-xdist runs it beside the lifecycle tests)."""
from __future__ import annotations

import boto3
import pytest

from playbook_runner import recap
from provision_support import AMI, HOSTED_ZONE, REGION, clients, instances, provisioned, records, reset, rule_set, run, seed


def fleet_topology(world):
    """A Polykey-style seed fleet (Elastic IPs, one shared name) and an RPC fleet (an access group, a P2P port
    per node, a network load balancer whose target group checks /health)."""
    return {
        "region": REGION,
        "subnets": world["subnets"],
        "defaults": {"ami": AMI, "admin_cidrs": ["203.0.113.0/24"], "health_cidrs": ["10.20.0.0/16"]},
        "fleets": [
            {"name": "pk-testnet", "chain": "polykey", "network": "testnet", "role": "seed", "count": 2,
             "p2p_ports": ["1314/udp"], "rpc_ports": [1315], "rpc_cidrs": ["203.0.113.0/24"], "access_group": False,
             "elastic_ip": True, "hosted_zone": HOSTED_ZONE, "dns_prefix": "seed", "shared_name": "testnet"},
            {"name": "ltc-rpc", "chain": "litecoin", "network": "regtest", "role": "rpc", "count": 2,
             "unique_p2p_port": 19500, "rpc_ports": [19443], "hosted_zone": HOSTED_ZONE,
             "load_balancer": {"type": "network", "port": 19443}},
        ],
    }


@pytest.fixture(scope="class")
def fleet_world(moto_server, tmp_path_factory):
    yield from provisioned(moto_server, tmp_path_factory, "fleets", fleet_topology)


def elbv2(endpoint):
    return boto3.client("elbv2", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


class TestFleets:
    def test_first_run_creates(self, fleet_world):
        proc = fleet_world["first"]
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    def test_nodes_groups_and_elastic_ips(self, fleet_world):
        ec2 = clients(fleet_world["endpoint"])[0]
        found = instances(ec2, **{"tag:ManagedBy": "chainops.validator"})
        assert set(found) == {"pk-testnet-1", "pk-testnet-2", "ltc-rpc-1", "ltc-rpc-2"}
        assert found["pk-testnet-2"]["TagMap"] == {
            "Name": "pk-testnet-2", "Chain": "polykey", "Network": "testnet", "Role": "seed", "Fleet": "pk-testnet",
            "ManagedBy": "chainops.validator", "DnsName": "seed-2." + HOSTED_ZONE}
        assert [found["ltc-rpc-%d" % n]["TagMap"]["P2PPort"] for n in (1, 2)] == ["19500/tcp", "19501/tcp"]
        eips = {{t["Key"]: t["Value"] for t in a.get("Tags", [])}.get("Name"): a for a in ec2.describe_addresses()["Addresses"]}
        assert set(eips) == {"pk-testnet-1-eip", "pk-testnet-2-eip"}
        for name in ("pk-testnet-1", "pk-testnet-2"):
            assert eips[name + "-eip"]["InstanceId"] == found[name]["InstanceId"], name
        groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [fleet_world["vpc"]]}])["SecurityGroups"]}
        assert rule_set(groups["pk-testnet-node"]) == {
            ("udp", 1314, 1314, "0.0.0.0/0"), ("udp", 1314, 1314, "::/0"),          # public P2P
            ("tcp", 1315, 1315, "203.0.113.0/24"),                                   # client service: admins only
            ("tcp", 9680, 9680, "10.20.0.0/16"), ("tcp", 22, 22, "203.0.113.0/24")}
        access = groups["ltc-rpc-access"]
        assert rule_set(access) == set()                                            # apps carry it
        assert rule_set(groups["ltc-rpc-node"]) == {
            ("tcp", 19500, 19501, "0.0.0.0/0"), ("tcp", 19500, 19501, "::/0"),      # each node's own P2P port
            ("tcp", 19443, 19443, access["GroupId"]),                               # RPC only from the access group
            ("tcp", 9680, 9680, "10.20.0.0/16"), ("tcp", 22, 22, "203.0.113.0/24")}

    def test_dns_per_node_and_one_shared_name_for_the_seeds(self, fleet_world):
        ec2, r53 = clients(fleet_world["endpoint"])
        found = instances(ec2, **{"tag:ManagedBy": "chainops.validator"})
        eip = {a["InstanceId"]: a["PublicIp"] for a in ec2.describe_addresses()["Addresses"] if a.get("InstanceId")}
        seeds = [eip[found["pk-testnet-%d" % n]["InstanceId"]] for n in (1, 2)]
        assert records(r53, fleet_world["zone_id"]) == {
            "www." + HOSTED_ZONE: ["192.0.2.10"],
            "seed-1." + HOSTED_ZONE: [seeds[0]], "seed-2." + HOSTED_ZONE: [seeds[1]],
            "testnet." + HOSTED_ZONE: sorted(seeds),
            "ltc-rpc-1." + HOSTED_ZONE: [found["ltc-rpc-1"]["PublicIpAddress"]],
            "ltc-rpc-2." + HOSTED_ZONE: [found["ltc-rpc-2"]["PublicIpAddress"]],
        }

    def test_load_balancer_checks_health_and_holds_the_nodes(self, fleet_world):
        elb = elbv2(fleet_world["endpoint"])
        ec2 = clients(fleet_world["endpoint"])[0]
        found = instances(ec2, **{"tag:ManagedBy": "chainops.validator"})
        group = elb.describe_target_groups(Names=["ltc-rpc-tg"])["TargetGroups"][0]
        assert (group["Protocol"], group["Port"], group["HealthCheckProtocol"], group["HealthCheckPath"],
                str(group["HealthCheckPort"])) == ("TCP", 19443, "HTTP", "/health", "9680")
        targets = {t["Target"]["Id"] for t in elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]}
        assert targets == {found["ltc-rpc-1"]["InstanceId"], found["ltc-rpc-2"]["InstanceId"]}
        balancer = elb.describe_load_balancers(Names=["ltc-rpc-lb"])["LoadBalancers"][0]
        assert balancer["Type"] == "network" and balancer["Scheme"] == "internet-facing"
        listener = elb.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"][0]
        assert (listener["Port"], listener["DefaultActions"][0]["TargetGroupArn"]) == (19443, group["TargetGroupArn"])

    def test_second_run_and_check_mode_change_nothing(self, fleet_world):
        for args in ((), ("--check",)):
            proc = run(fleet_world["endpoint"], fleet_world["topology"], *args, tmp=fleet_world["tmp"])
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
            steps = [line for line in proc.stdout.splitlines() if line.startswith(("TASK", "changed"))]
            assert recap(proc.stdout) == {"localhost": {"changed": 0, "failed": 0}}, (args, steps)

    def test_teardown_leaves_nothing(self, fleet_world):
        proc = run(fleet_world["endpoint"], fleet_world["topology"], state="absent", tmp=fleet_world["tmp"])
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        ec2, r53 = clients(fleet_world["endpoint"])
        elb = elbv2(fleet_world["endpoint"])
        assert instances(ec2, **{"tag:ManagedBy": "chainops.validator"}) == {}
        assert ec2.describe_addresses()["Addresses"] == []
        assert records(r53, fleet_world["zone_id"]) == {"www." + HOSTED_ZONE: ["192.0.2.10"]}
        assert elb.describe_load_balancers()["LoadBalancers"] == [] and elb.describe_target_groups()["TargetGroups"] == []
        assert {g["GroupName"] for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [fleet_world["vpc"]]}])["SecurityGroups"]} == {"default", "ops-bastion"}


def test_a_shared_name_in_a_zone_that_does_not_exist_fails_before_any_change(moto_server, tmp_path):
    reset(moto_server)
    world = seed(moto_server)
    topology = fleet_topology(world)
    topology["fleets"][0]["hosted_zone"] = "missing.example.org"
    proc = run(moto_server, topology, tmp=tmp_path)
    assert proc.returncode != 0
    assert ("provision_topology: the hosted_zone missing.example.org does not exist in Route53 (used by pk-testnet)"
            in " ".join(proc.stdout.split())), proc.stdout[-3000:]
    ec2 = clients(moto_server)[0]
    assert instances(ec2, **{"tag:ManagedBy": "chainops.validator"}) == {}
    assert {g["GroupName"] for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [world["vpc"]]}])["SecurityGroups"]} == {"default", "ops-bastion"}
    reset(moto_server)
