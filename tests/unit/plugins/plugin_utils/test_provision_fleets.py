"""Fleets in plugins/plugin_utils/provision_plan.py: standalone public nodes (seeds, bootnodes, RPC
endpoints, public nodes), one example per seed system, and bad fleet input named by its key."""
from __future__ import annotations

import copy

import pytest
from ansible_collections.chainops.validator.plugins.plugin_utils.provision_plan import PlanError, build_plan

SUBNETS = {"us-east-1a": "subnet-0000000000000000a", "us-east-1b": "subnet-0000000000000000b",
           "us-east-1c": "subnet-0000000000000000c"}
BASE = {"region": "us-east-1", "subnets": SUBNETS,
        "defaults": {"ami": "ami-12c6146b", "admin_cidrs": ["203.0.113.0/24"], "health_cidrs": ["10.0.0.0/16"]}}

POLYKEY = {"name": "pk-testnet", "chain": "polykey", "network": "testnet", "role": "seed", "p2p_ports": ["1314/udp"],
           "rpc_ports": [1315], "rpc_cidrs": ["203.0.113.0/24"], "access_group": False, "elastic_ip": True,
           "hosted_zone": "polykey.example.org", "dns_prefix": "seed", "shared_name": "testnet"}
RADICLE = {"name": "rad-orgs", "chain": "radicle", "network": "main", "count": 3, "unique_p2p_port": 8776,
           "hosted_zone": "radicle.example.org", "dns_prefix": "org"}
WAKU = {"name": "waku", "chain": "waku", "network": "staging", "count": 2, "p2p_ports": [60000, "9000/udp"],
        "elastic_ip": True, "ipv6": True, "hosted_zone": "waku.example.org", "dns_prefix": "node"}
ETHEREUM = {"name": "eth-rpc", "chain": "ethereum", "network": "mainnet", "role": "rpc", "count": 1,
            "p2p_ports": [30303, "30303/udp", 9000, "9000/udp", "9001/udp"], "rpc_ports": [8545, 8546], "hosted_zone": "eth.example.org"}
ICON = {"name": "icx-endpoints", "chain": "icon", "network": "mainnet", "role": "rpc", "count": 3, "p2p_ports": [7100],
        "rpc_ports": [9000], "load_balancer": {"type": "network", "port": 9000}}


def plan_of(*fleets, **top):
    topology = dict(copy.deepcopy(BASE), fleets=[copy.deepcopy(f) for f in fleets], **top)
    return build_plan(topology)


def problems(*fleets, **top):
    with pytest.raises(PlanError) as info:
        plan_of(*fleets, **top)
    return info.value.problems


def by_name(items):
    return {i["name"]: i for i in items}


def test_polykey_seeds_with_elastic_ips_and_one_shared_name():
    plan = plan_of(POLYKEY)
    nodes = by_name(plan["instances"])
    assert list(nodes) == ["pk-testnet-1", "pk-testnet-2"]
    assert [n["az"] for n in nodes.values()] == ["us-east-1a", "us-east-1b"]
    assert nodes["pk-testnet-1"]["tags"] == {
        "Name": "pk-testnet-1", "Chain": "polykey", "Network": "testnet", "Role": "seed", "Fleet": "pk-testnet",
        "ManagedBy": "chainops.validator", "DnsName": "seed-1.polykey.example.org"}
    # The Elastic IP is the public address (it survives a replaced instance): no auto-assigned one.
    assert [n["public_ip"] for n in nodes.values()] == [False, False]
    assert [e["host"] for e in plan["elastic_ips"]] == ["pk-testnet-1", "pk-testnet-2"]
    assert [(r["fqdn"], r["type"]) for r in plan["records"]] == [("seed-1.polykey.example.org", "A"), ("seed-2.polykey.example.org", "A")]
    assert plan["shared_records"] == [{"fqdn": "testnet.polykey.example.org", "zone": "polykey.example.org",
                                       "hosts": ["pk-testnet-1", "pk-testnet-2"], "fleet": "pk-testnet", "ttl": 300, "type": "A"}]
    group = by_name(plan["security_groups"])["pk-testnet-node"]
    assert [(r["proto"], r["ports"], r.get("cidr_ip", r.get("cidr_ipv6")), r["rule_desc"]) for r in group["rules"]] == [
        ("udp", ["1314"], ["0.0.0.0/0"], "public P2P"), ("udp", ["1314"], ["::/0"], "public P2P"),
        ("tcp", ["1315"], ["203.0.113.0/24"], "private RPC"),
        ("tcp", ["9680"], ["10.0.0.0/16"], "health check from the load balancer"),
        ("tcp", ["22"], ["203.0.113.0/24"], "SSH from admin_cidrs")]
    assert "pk-testnet-access" not in by_name(plan["security_groups"])  # access_group: false
    assert plan["fleets"][0]["shared_name"] == "testnet.polykey.example.org" and plan["zones"] == ["polykey.example.org"]


def test_radicle_org_nodes_each_with_its_own_port_and_record():
    plan = plan_of(RADICLE)
    nodes = by_name(plan["instances"])
    assert [(n["p2p_port"], n["tags"]["P2PPort"], n["fqdn"]) for n in nodes.values()] == [
        (8776, "8776/tcp", "org-1.radicle.example.org"), (8777, "8777/tcp", "org-2.radicle.example.org"),
        (8778, "8778/tcp", "org-3.radicle.example.org")]
    assert [n["az"] for n in nodes.values()] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    rules = by_name(plan["security_groups"])["rad-orgs-node"]["rules"]
    assert rules[0] == {"proto": "tcp", "ports": ["8776-8778"], "cidr_ip": ["0.0.0.0/0"], "rule_desc": "public P2P"}
    assert [v["name"] for v in plan["volumes"]] == ["rad-orgs-1-data", "rad-orgs-2-data", "rad-orgs-3-data"]


def test_waku_nodes_with_elastic_ips_and_ipv6_records():
    plan = plan_of(WAKU)
    assert [(r["fqdn"], r["type"]) for r in plan["records"]] == [
        ("node-1.waku.example.org", "A"), ("node-1.waku.example.org", "AAAA"),
        ("node-2.waku.example.org", "A"), ("node-2.waku.example.org", "AAAA")]
    assert all(n["ipv6"] and n["elastic_ip"] for n in plan["instances"])


def test_ethereum_rpc_node_with_an_access_group():
    plan = plan_of(ETHEREUM)
    groups = by_name(plan["security_groups"])
    assert groups["eth-rpc-access"]["rules"] == []
    assert {"proto": "tcp", "ports": ["8545"], "group_name": ["eth-rpc-access"], "group_desc": "chainops.validator eth-rpc-access",
            "rule_desc": "private RPC"} in groups["eth-rpc-node"]["rules"]
    # RPC is never open to the internet.
    assert not [r for r in groups["eth-rpc-node"]["rules"] if r["rule_desc"] == "private RPC" and "cidr_ip" in r]
    assert plan["fleets"][0]["access_group"] == "eth-rpc-access"
    # geth's P2P (30303 tcp+udp) and Lighthouse's (9000 tcp+udp, QUIC 9001/udp) for everyone.
    public = {(r["proto"], port) for r in groups["eth-rpc-node"]["rules"] if r.get("cidr_ip") == ["0.0.0.0/0"] for port in r["ports"]}
    assert public >= {("tcp", "30303"), ("udp", "30303"), ("tcp", "9000"), ("udp", "9000"), ("udp", "9001")}
    assert plan["instances"][0]["public_ip"] is True and plan["instances"][0]["fqdn"] == "eth-rpc-1.eth.example.org"


def test_icon_endpoints_behind_a_load_balancer_checked_on_health():
    plan = plan_of(ICON)
    assert plan["load_balancers"] == [{
        "name": "icx-endpoints-lb", "fleet": "icx-endpoints", "type": "network", "protocol": "TCP", "port": 9000,
        "target_group": {"name": "icx-endpoints-tg", "protocol": "TCP", "port": 9000,
                         "health_check": {"protocol": "HTTP", "path": "/health", "port": 9680},
                         "targets": ["icx-endpoints-1", "icx-endpoints-2", "icx-endpoints-3"]},
        "security_group": "icx-endpoints-node", "zones": ["us-east-1a", "us-east-1b", "us-east-1c"],
        "tags": {"Chain": "icon", "Network": "mainnet", "Fleet": "icx-endpoints", "ManagedBy": "chainops.validator",
                 "Name": "icx-endpoints-lb", "Role": "load-balancer"}}]


def test_fleets_and_clusters_together():
    cluster = {"name": "cosmos-a", "chain": "cosmoshub", "network": "mainnet", "p2p_ports": [26656]}
    plan = plan_of(ETHEREUM, clusters=[cluster])
    assert plan["cluster_names"] == ["cosmos-a"] and plan["fleet_names"] == ["eth-rpc"]
    assert len(plan["instances"]) == 4


@pytest.mark.parametrize("fleets, expected", [
    ((POLYKEY, dict(RADICLE, name="pk-testnet")), "provision_topology.fleets[1].name 'pk-testnet' is already used by fleets[0]"),
    ((dict(RADICLE, rpc_ports=["8777-8780"]),),
     "provision_topology.fleets[0].unique_p2p_port tcp 8776-8778 collides with rpc_ports 8777-8780"),
    ((dict(RADICLE, p2p_ports=[8778]),), "provision_topology.fleets[0].unique_p2p_port tcp 8776-8778 collides with p2p_ports 8778"),
    ((dict(ETHEREUM, rpc_cidrs=["0.0.0.0/0"]),),
     "provision_topology.fleets[0].rpc_cidrs must not contain 0.0.0.0/0 (wider than /8): RPC would be open to the internet"),
    ((dict(POLYKEY, hosted_zone=None),), "provision_topology.fleets[0].shared_name needs hosted_zone"),
    ((dict(ETHEREUM, role="miner"),), "provision_topology.fleets[0].role must be one of seed, bootnode, rpc, public, got 'miner'"),
    ((dict(ETHEREUM, p2p_ports=[22]),), "provision_topology.fleets[0].p2p_ports covers the ssh_port 22"),
    ((dict(RADICLE, unique_p2p_port=9679),), "provision_topology.fleets[0].unique_p2p_port covers the health_port 9680"),
    ((dict(ETHEREUM, rpc_ports=[30303]),), "provision_topology.fleets[0].rpc_ports tcp 30303 is also a public P2P port"),
    ((dict(ICON, health_port=None),), "provision_topology.fleets[0].load_balancer needs health_port"),
    ((dict(ICON, load_balancer={"type": "classic"}),), "provision_topology.fleets[0].load_balancer.type must be network or application"),
    ((dict(ETHEREUM, count=0),), "provision_topology.fleets[0].count must be between 1 and 50, got 0"),
    ((dict(ETHEREUM, replicas=2),), "provision_topology.fleets[0].replicas is not a known key"),
    ((dict(ETHEREUM, p2p_ports=[], rpc_ports=[]),), "provision_topology.fleets[0] opens no port"),
])
def test_bad_fleet_input_is_named(fleets, expected):
    found = problems(*fleets)
    assert any(p.startswith(expected) for p in found), found


def test_a_fleet_may_not_take_a_cluster_name():
    cluster = {"name": "eth-rpc", "chain": "ethereum", "network": "mainnet", "p2p_ports": [30303]}
    assert "provision_topology.fleets[0].name 'eth-rpc' is already used by clusters[0]" in problems(ETHEREUM, clusters=[cluster])


def test_a_fleet_whose_data_comes_from_a_snapshot_gets_no_blank_volume():
    plan = plan_of(dict(ETHEREUM, volume=False))
    assert plan["volumes"] == [] and [i["name"] for i in plan["instances"]] == ["eth-rpc-1"]
    assert [v["name"] for v in plan_of(ETHEREUM)["volumes"]] == ["eth-rpc-1-data"]
