"""Unit tests of plugins/module_utils/provision_plan.py and the provision filters (no AWS, no Ansible run)."""
from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.chainops.validator.plugins.filter.provision import (
    FilterModule,
    provision_placement,
    provision_plan,
)
from ansible_collections.chainops.validator.plugins.plugin_utils.provision_plan import (
    PlanError,
    build_plan,
    parse_port,
    placement,
)

SUBNETS = {"us-east-1a": "subnet-0000000000000000a", "us-east-1b": "subnet-0000000000000000b",
           "us-east-1c": "subnet-0000000000000000c"}
BASE = {
    "region": "us-east-1",
    "subnets": SUBNETS,
    "defaults": {"ami": "ami-12c6146b", "admin_cidrs": ["203.0.113.0/24"], "health_cidrs": ["10.0.0.0/16"]},
    "clusters": [{"name": "cosmos-a", "chain": "cosmoshub", "network": "mainnet", "p2p_ports": [26656]}],
}


def topo(**cluster):
    t = copy.deepcopy(BASE)
    t["clusters"][0].update(cluster)
    return t


def problems(t, state="present"):
    with pytest.raises(PlanError) as info:
        build_plan(t, state)
    return info.value.problems


def by_name(items):
    return {i["name"]: i for i in items}


# ---------------------------------------------------------------- expansion


def test_default_cluster_expansion():
    plan = build_plan(topo())
    hosts = by_name(plan["instances"])
    assert list(hosts) == ["cosmos-a-validator", "cosmos-a-sentry-1", "cosmos-a-sentry-2"]
    assert [h["role"] for h in hosts.values()] == ["validator", "sentry", "sentry"]
    assert hosts["cosmos-a-sentry-1"]["tags"] == {
        "Name": "cosmos-a-sentry-1", "Chain": "cosmoshub", "Network": "mainnet", "Role": "sentry",
        "Cluster": "cosmos-a", "ManagedBy": "chainops.validator"}
    assert [h["public_ip"] for h in hosts.values()] == [False, True, True]
    assert hosts["cosmos-a-validator"]["security_group"] == "cosmos-a-validator"
    assert hosts["cosmos-a-sentry-2"]["security_group"] == "cosmos-a-sentry"
    assert plan["records"] == [] and plan["zones"] == []
    assert plan["cluster_names"] == ["cosmos-a"]
    assert [v["name"] for v in plan["volumes"]] == [h + "-data" for h in hosts]
    assert plan["volumes"][0] == {
        "name": "cosmos-a-validator-data", "host": "cosmos-a-validator", "cluster": "cosmos-a", "az": "us-east-1a",
        "device": "/dev/sdf", "size": 100, "type": "gp3", "iops": None, "throughput": None,
        "tags": {"Name": "cosmos-a-validator-data", "Chain": "cosmoshub", "Network": "mainnet", "Role": "validator",
                 "Cluster": "cosmos-a", "ManagedBy": "chainops.validator"}}


def test_security_group_rules():
    plan = build_plan(topo(p2p_ports=[26656, "30303/udp", "9000-9010"], wireguard_port=51999, health_port=9700,
                           admin_cidrs=["203.0.113.0/24", "2001:db8::/32"]))
    groups = by_name(plan["security_groups"])
    # P2P is overlay-only on the hubs: the security group never sees it (only the tunnel's UDP).
    assert groups["cosmos-a-validator"]["rules"] == [
        {"proto": "tcp", "ports": ["9700"], "cidr_ip": ["10.0.0.0/16"], "rule_desc": "health check from the load balancer"},
        {"proto": "tcp", "ports": ["22"], "cidr_ip": ["203.0.113.0/24"], "rule_desc": "SSH from admin_cidrs"},
        {"proto": "tcp", "ports": ["22"], "cidr_ipv6": ["2001:db8::/32"], "rule_desc": "SSH from admin_cidrs"},
        {"proto": "udp", "ports": ["51999"], "group_name": ["cosmos-a-sentry"],
         "group_desc": "chainops.validator cosmos-a-sentry", "rule_desc": "WireGuard from its peers"},
        # validator and standby are WireGuard peers too
        {"proto": "udp", "ports": ["51999"], "group_name": ["cosmos-a-validator"],
         "group_desc": "chainops.validator cosmos-a-validator", "rule_desc": "WireGuard from its peers"},
    ]
    assert groups["cosmos-a-sentry"]["rules"] == [
        {"proto": "tcp", "ports": ["26656"], "cidr_ip": ["0.0.0.0/0"], "rule_desc": "public P2P"},
        {"proto": "tcp", "ports": ["26656"], "cidr_ipv6": ["::/0"], "rule_desc": "public P2P"},
        {"proto": "udp", "ports": ["30303"], "cidr_ip": ["0.0.0.0/0"], "rule_desc": "public P2P"},
        {"proto": "udp", "ports": ["30303"], "cidr_ipv6": ["::/0"], "rule_desc": "public P2P"},
        {"proto": "tcp", "ports": ["9000-9010"], "cidr_ip": ["0.0.0.0/0"], "rule_desc": "public P2P"},
        {"proto": "tcp", "ports": ["9000-9010"], "cidr_ipv6": ["::/0"], "rule_desc": "public P2P"},
        {"proto": "tcp", "ports": ["9700"], "cidr_ip": ["10.0.0.0/16"], "rule_desc": "health check from the load balancer"},
        {"proto": "tcp", "ports": ["22"], "cidr_ip": ["203.0.113.0/24"], "rule_desc": "SSH from admin_cidrs"},
        {"proto": "tcp", "ports": ["22"], "cidr_ipv6": ["2001:db8::/32"], "rule_desc": "SSH from admin_cidrs"},
        {"proto": "udp", "ports": ["51999"], "group_name": ["cosmos-a-validator"],
         "group_desc": "chainops.validator cosmos-a-validator", "rule_desc": "WireGuard from its peers"},
    ]


def test_no_admin_cidrs_means_no_ssh_and_no_health_port_means_no_health_rule():
    plan = build_plan(topo(admin_cidrs=[], health_port=None, health_cidrs=[]))
    for group in plan["security_groups"]:
        assert all(rule["rule_desc"] not in ("SSH from admin_cidrs", "health check from the load balancer")
                   for rule in group["rules"])


def test_validator_never_open_to_the_world():
    plan = build_plan(topo(p2p_ports=[1, "2/udp"]))
    validator = by_name(plan["security_groups"])["cosmos-a-validator"]
    assert all("0.0.0.0/0" not in rule.get("cidr_ip", []) for rule in validator["rules"])


def test_sentries_round_robin_and_hubs_in_different_zones():
    plan = build_plan(topo(sentry_count=5, standby=True))
    zones = {h["name"]: h["az"] for h in plan["instances"]}
    assert zones == {
        "cosmos-a-validator": "us-east-1a", "cosmos-a-standby": "us-east-1b",
        "cosmos-a-sentry-1": "us-east-1a", "cosmos-a-sentry-2": "us-east-1b", "cosmos-a-sentry-3": "us-east-1c",
        "cosmos-a-sentry-4": "us-east-1a", "cosmos-a-sentry-5": "us-east-1b"}
    assert by_name(plan["instances"])["cosmos-a-standby"]["tags"]["Role"] == "standby"


def test_explicit_zone_order_and_single_zone():
    plan = build_plan(topo(availability_zones=["us-east-1c", "us-east-1a"], standby=True, sentry_count=3))
    zones = [h["az"] for h in plan["instances"]]
    assert zones == ["us-east-1c", "us-east-1a", "us-east-1c", "us-east-1a", "us-east-1c"]
    single = build_plan(topo(availability_zones=["us-east-1b"], standby=True))
    assert {h["az"] for h in single["instances"]} == {"us-east-1b"}


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 20), nzones=st.integers(1, 3))
def test_spread_is_balanced(count, nzones):
    """Per zone, sentry counts differ by at most one, and every zone is used when there are enough sentries."""
    zones = sorted(SUBNETS)[:nzones]
    plan = build_plan(topo(sentry_count=count, availability_zones=zones))
    sentries = [h["az"] for h in plan["instances"] if h["role"] == "sentry"]
    counts = [sentries.count(z) for z in zones]
    assert len(sentries) == count
    assert max(counts) - min(counts) <= 1
    assert (min(counts) > 0) == (count >= nzones)


def test_dns_records_per_sentry():
    t = topo(hosted_zone="Cosmos.Example.ORG.", sentry_count=3, dns_first_index=4, dns_ttl=60)
    plan = build_plan(t)
    assert plan["records"] == [
        {"fqdn": "node-%d.cosmos.example.org" % n, "zone": "cosmos.example.org", "host": "cosmos-a-sentry-%d" % i,
         "cluster": "cosmos-a", "ttl": 60} for i, n in ((1, 4), (2, 5), (3, 6))]
    assert plan["zones"] == ["cosmos.example.org"]
    assert by_name(plan["instances"])["cosmos-a-validator"]["fqdn"] is None
    assert by_name(plan["instances"])["cosmos-a-sentry-2"]["fqdn"] == "node-5.cosmos.example.org"


def test_two_clusters_sharing_a_zone_need_distinct_numbers():
    t = topo(hosted_zone="example.org")
    t["clusters"].append(dict(t["clusters"][0], name="cosmos-b"))
    assert problems(t) == ["provision_topology.clusters[1].dns_first_index gives node-%d.example.org, already used by cosmos-a; "
                           "give each its own names (non-overlapping dns_first_index ranges, or another dns_prefix)" % n for n in (1, 2)]
    t["clusters"][1]["dns_first_index"] = 3
    assert [r["fqdn"] for r in build_plan(t)["records"]] == ["node-%d.example.org" % n for n in (1, 2, 3, 4)]


def test_volumes_per_role_and_type_change_drops_type_specific_keys():
    plan = build_plan(topo(volume={"size": 500, "type": "gp3", "iops": 6000, "throughput": 500},
                           validator_volume={"type": "io2", "iops": 20000}, sentry_volume={"size": 800}))
    volumes = by_name(plan["volumes"])
    assert {k: volumes["cosmos-a-validator-data"][k] for k in ("size", "type", "iops", "throughput")} == \
        {"size": 500, "type": "io2", "iops": 20000, "throughput": None}
    assert {k: volumes["cosmos-a-sentry-1-data"][k] for k in ("size", "type", "iops", "throughput")} == \
        {"size": 800, "type": "gp3", "iops": 6000, "throughput": 500}


def test_defaults_and_common_tags_apply_to_every_cluster():
    t = copy.deepcopy(BASE)
    t["tags"] = {"Team": "ops"}
    t["defaults"].update(sentry_count=1, instance_type="c6i.xlarge", tags={"CostCenter": "42"})
    t["clusters"].append({"name": "celestia-a", "chain": "celestia", "network": "mocha", "p2p_ports": [26656],
                          "sentry_instance_type": "c6i.2xlarge", "tags": {"CostCenter": "43"}})
    plan = build_plan(t)
    hosts = by_name(plan["instances"])
    assert len(hosts) == 4
    assert hosts["celestia-a-sentry-1"]["instance_type"] == "c6i.2xlarge"
    assert hosts["celestia-a-validator"]["instance_type"] == "c6i.xlarge"
    assert hosts["celestia-a-sentry-1"]["tags"]["CostCenter"] == "43"
    assert hosts["cosmos-a-sentry-1"]["tags"]["CostCenter"] == "42"
    assert all(h["tags"]["Team"] == "ops" for h in hosts.values())


def test_string_numbers_from_templates_are_accepted():
    plan = build_plan(topo(sentry_count="3", standby="true", p2p_ports=["26656"], volume={"size": "200", "type": "gp3"}))
    assert len(plan["instances"]) == 5 and plan["volumes"][0]["size"] == 200


def test_absent_state_plans_the_same_resources():
    assert build_plan(topo(), "absent")["instances"] == build_plan(topo())["instances"]
    assert build_plan(topo(), "absent")["state"] == "absent"


# ---------------------------------------------------------------- validation messages


@pytest.mark.parametrize("cluster, expected", [
    ({"name": "Cosmos_A"}, "provision_topology.clusters[0].name must be lower-case letters"),
    ({"chain": ""}, "provision_topology.clusters[0].chain must be a non-empty string"),
    ({"ami": "ubuntu"}, "provision_topology.clusters[0].ami must be an AMI ID (ami-...), got 'ubuntu'"),
    ({"sentry_count": 0}, "provision_topology.clusters[0].sentry_count must be between 1 and 50, got 0"),
    ({"sentry_count": "two"}, "provision_topology.clusters[0].sentry_count must be an integer, got 'two'"),
    ({"standby": "maybe"}, "provision_topology.clusters[0].standby must be true or false, got 'maybe'"),
    ({"p2p_ports": []}, "provision_topology.clusters[0].p2p_ports must list the public P2P ports"),
    ({"p2p_ports": ["26656/sctp"]}, "provision_topology.clusters[0].p2p_ports[0] must be a port"),
    ({"p2p_ports": [70000]}, "provision_topology.clusters[0].p2p_ports[0] must be a port"),
    ({"p2p_ports": ["51820/udp"]}, "provision_topology.clusters[0].wireguard_port 51820 overlaps a public UDP P2P port"),
    ({"admin_cidrs": ["0.0.0.0/0"]}, "provision_topology.clusters[0].admin_cidrs must not contain 0.0.0.0/0"),
    ({"admin_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
     "provision_topology.clusters[0].admin_cidrs must not contain 0.0.0.0/1 (wider than /8): SSH would be open"),
    ({"p2p_ports": [22]}, "provision_topology.clusters[0].p2p_ports covers the ssh_port 22: it would be open to the internet"),
    ({"p2p_ports": ["9000-9999"]}, "provision_topology.clusters[0].p2p_ports covers the health_port 9680"),
    ({"health_port": 22}, "provision_topology.clusters[0].health_port 22 is the ssh_port: health_cidrs would reach SSH"),
    ({"admin_cidrs": ["10.0.0.1/8"]}, "provision_topology.clusters[0].admin_cidrs[0] is not a valid CIDR"),
    ({"admin_cidrs": "10.0.0.0/8"}, "provision_topology.clusters[0].admin_cidrs must be a list of CIDRs"),
    ({"health_cidrs": []}, "provision_topology.clusters[0].health_cidrs is empty but health_port is set"),
    ({"health_cidrs": ["::/0"]}, "provision_topology.clusters[0].health_cidrs must not contain ::/0"),
    ({"wireguard_port": 0}, "provision_topology.clusters[0].wireguard_port must be between 1 and 65535, got 0"),
    ({"availability_zones": ["us-east-1d"]},
     "provision_topology.clusters[0].availability_zones has no subnet in provision_topology.subnets for us-east-1d"),
    ({"availability_zones": ["us-east-1a", "us-east-1a"]}, "provision_topology.clusters[0].availability_zones lists a zone twice"),
    ({"volume": {"size": 20, "type": "gp2", "iops": 3000}},
     "provision_topology.clusters[0].volume.iops is only valid for gp3, io1 and io2 volumes, not gp2"),
    ({"volume": {"size": 20, "type": "io1"}}, "provision_topology.clusters[0].volume.iops is required for io1 volumes"),
    ({"volume": {"size": 10, "type": "io1", "iops": 1000}},
     "provision_topology.clusters[0].volume.iops 1000 exceeds 50 IOPS per GiB for a 10 GiB io1 volume (max 500)"),
    ({"volume": {"size": 100, "type": "gp3", "throughput": 1001}},
     "provision_topology.clusters[0].volume.throughput must be between 125 and 1000, got 1001"),
    ({"volume": {"size": 100, "type": "gp3", "throughput": 1000}},
     "provision_topology.clusters[0].volume.throughput 1000 MiB/s needs at least 4000 IOPS"),
    ({"volume": {"size": 100, "type": "st1"}}, "provision_topology.clusters[0].volume.size must be between 125 and 16384, got 100"),
    ({"volume": {"size": 100, "type": "nvme"}}, "provision_topology.clusters[0].volume.type must be one of"),
    ({"validator_volume": {"throughput": 300, "type": "io2", "iops": 1000}},
     "provision_topology.clusters[0].validator_volume.throughput is only valid for gp3 volumes, not io2"),
    ({"volume": {"size": 100, "speed": 3}}, "provision_topology.clusters[0].volume.speed is not a known key"),
    ({"hosted_zone": "not a zone"}, "provision_topology.clusters[0].hosted_zone must be a DNS zone name"),
    ({"sentrys": 2}, "provision_topology.clusters[0].sentrys is not a known key"),
    ({"tags": {"Role": "x"}}, "provision_topology.clusters[0].tags.Role is set by the playbook and can not be overridden"),
    ({"tags": {"aws:x": "y"}}, "provision_topology.clusters[0].tags.aws:x is not a valid tag key"),
    ({"validator_instance_type": "huge"}, "provision_topology.clusters[0].validator_instance_type must be an instance type"),
])
def test_cluster_errors_name_the_key(cluster, expected):
    found = problems(topo(**cluster))
    assert any(p.startswith(expected) for p in found), found


def test_top_level_errors():
    assert problems({"clusters": []}) == [
        "provision_topology.region must be a non-empty string, got None",
        "provision_topology needs 'subnets' (availability zone -> subnet ID) or 'vpc_id' (one subnet per zone is looked up)",
        "provision_topology has no cluster and no fleet: nothing to provision",
    ]
    assert problems({"region": "us-east-1", "subnets": SUBNETS}) == [
        "provision_topology needs 'clusters' (validators with sentries) or 'fleets' (standalone public nodes), or both"]
    assert problems(["x"])[-1].startswith("provision_topology must be a mapping")
    assert problems(dict(BASE, subnets={"eu-west-1a": "subnet-0000000000000000a"}))[0] == \
        "provision_topology.subnets.eu-west-1a is not an availability zone of region us-east-1"
    assert "provision_topology.subnets maps two availability zones to the same subnet" in problems(
        dict(BASE, subnets={"us-east-1a": "subnet-0000000000000000a", "us-east-1b": "subnet-0000000000000000a"}))
    assert problems(dict(BASE, vpc="x"))[0].startswith("provision_topology.vpc is not a known key")
    assert problems(topo(), state="gone") == ["provision_state must be 'present' or 'absent', got 'gone'"]
    t = dict(BASE, subnets=None, vpc_id="vpc-0123456789abcdef0")
    assert problems(t) == ["provision_topology.clusters[0].availability_zones is required when "
                           "provision_topology.subnets is not given"]


def test_every_problem_is_reported_at_once():
    t = topo(sentry_count=0, ami="x")
    t["clusters"].append({"name": "b"})
    found = problems(t)
    assert len(found) >= 5
    assert any(p.startswith("provision_topology.clusters[1].chain") for p in found)
    assert any(p.startswith("provision_topology.clusters[1].p2p_ports") for p in found)


def test_parse_port():
    assert parse_port(26656) == ("tcp", 26656, 26656)
    assert parse_port("30303/udp") == ("udp", 30303, 30303)
    assert parse_port("9000-9010") == ("tcp", 9000, 9010)
    assert parse_port("9010-9000") is None
    assert parse_port(True) is None
    assert parse_port(0) is None


# ---------------------------------------------------------------- placement


def _subnet(sid, az, vpc="vpc-00000000000000001", **tags):
    return {"id": sid, "availability_zone": az, "vpc_id": vpc, "tags": tags}


def test_placement_checks_declared_subnets():
    plan = build_plan(topo())
    info = [_subnet(s, az) for az, s in SUBNETS.items()]
    placed = placement(plan, info)
    assert placed["vpc_id"] == "vpc-00000000000000001"
    expected = [SUBNETS["us-east-1a"], SUBNETS["us-east-1a"], SUBNETS["us-east-1b"]]
    assert [i["subnet_id"] for i in placed["instances"]] == expected
    wrong = [_subnet(SUBNETS["us-east-1a"], "us-east-1b")] + info[1:]
    with pytest.raises(PlanError, match=r"subnets.us-east-1a: subnet subnet-0000000000000000a is in us-east-1b, not us-east-1a"):
        placement(plan, wrong)
    with pytest.raises(PlanError, match=r"subnets.us-east-1c: subnet subnet-0000000000000000c does not exist"):
        placement(plan, info[:2])
    with pytest.raises(PlanError, match="span several VPCs"):
        placement(plan, info[:2] + [_subnet(SUBNETS["us-east-1c"], "us-east-1c", vpc="vpc-00000000000000002")])
    with pytest.raises(PlanError, match="not in provision_topology.vpc_id vpc-00000000000000009"):
        placement(build_plan(dict(topo(), vpc_id="vpc-00000000000000009")), info)


def test_placement_looks_up_one_subnet_per_zone_in_the_vpc():
    t = dict(topo(availability_zones=["us-east-1a", "us-east-1b"]), subnets=None, vpc_id="vpc-00000000000000001")
    plan = build_plan(t)
    info = [_subnet("subnet-00000000000000009", "us-east-1a"), _subnet("subnet-00000000000000003", "us-east-1a"),
            _subnet("subnet-00000000000000007", "us-east-1b"),
            _subnet("subnet-00000000000000008", "us-east-1b", **{"chainops:provision": "true"}),
            _subnet("subnet-00000000000000001", "us-east-1a", vpc="vpc-00000000000000002")]
    placed = placement(plan, info)
    # Lowest ID, unless one is tagged for provisioning; other VPCs ignored.
    assert placed["subnets"] == {"us-east-1a": "subnet-00000000000000003", "us-east-1b": "subnet-00000000000000008"}
    with pytest.raises(PlanError, match="no subnet in availability zone us-east-1b of vpc-00000000000000001"):
        placement(plan, info[:2])


# ---------------------------------------------------------------- filter glue


def test_filters_raise_ansible_errors():
    assert set(FilterModule().filters()) == {"provision_plan", "provision_placement", "host_firewall", "provision_public_addresses",
                                             "provision_targets"}
    assert provision_plan(topo())["cluster_names"] == ["cosmos-a"]
    with pytest.raises(AnsibleFilterError, match=r"invalid provision_topology: provision_topology.clusters\[0\].sentry_count"):
        provision_plan(topo(sentry_count=-1))
    with pytest.raises(AnsibleFilterError, match="does not exist"):
        provision_placement(build_plan(topo()), [])
