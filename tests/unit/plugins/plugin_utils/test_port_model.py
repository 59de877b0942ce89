"""plugins/plugin_utils/port_model.py: one port model, two enforcers. The security group rules provision
applies and the nftables rules a host loads are rendered from the same plan; for every node of the
example topologies both must admit the same (protocol, port, source) set."""
from __future__ import annotations

import copy

import pytest
from ansible_collections.chainops.validator.plugins.plugin_utils import port_model
from ansible_collections.chainops.validator.plugins.plugin_utils.port_model import ANY, OVERLAY, cidr, group
from ansible_collections.chainops.validator.plugins.plugin_utils.provision_plan import build_plan

SUBNETS = {"us-east-1a": "subnet-0000000000000000a", "us-east-1b": "subnet-0000000000000000b"}
TOPOLOGY = {
    "region": "us-east-1",
    "subnets": SUBNETS,
    "defaults": {"ami": "ami-12c6146b", "admin_cidrs": ["203.0.113.0/24", "2001:db8::/48"], "health_cidrs": ["10.0.0.0/16"]},
    "clusters": [{"name": "cosmos-a", "chain": "cosmoshub", "network": "mainnet", "p2p_ports": [26656], "standby": True}],
    "fleets": [
        {"name": "pk-testnet", "chain": "polykey", "network": "testnet", "role": "seed", "p2p_ports": ["1314/udp"],
         "rpc_ports": [1315], "rpc_cidrs": ["203.0.113.0/24"], "access_group": False, "elastic_ip": True,
         "hosted_zone": "polykey.example.org", "dns_prefix": "seed", "shared_name": "testnet"},
        {"name": "rad-orgs", "chain": "radicle", "network": "main", "count": 3, "unique_p2p_port": 8776,
         "hosted_zone": "radicle.example.org"},
        {"name": "eth-rpc", "chain": "ethereum", "network": "mainnet", "role": "rpc", "count": 1,
         "p2p_ports": [30303, "30303/udp"], "rpc_ports": [8545, 8546], "hosted_zone": "eth.example.org"},
        {"name": "icx-endpoints", "chain": "icon", "network": "mainnet", "role": "rpc", "p2p_ports": [7100],
         "rpc_ports": [9000], "load_balancer": {"type": "network", "port": 9000}},
    ],
}


def sg_admitted(rules, group_members):
    """What security group rules admit, in the model's terms (a group as the sources its members stand for)."""
    admitted = set()
    for rule in rules:
        low, _dash, high = rule["ports"][0].partition("-")
        ports = range(int(low), int(high or low) + 1)
        if "group_name" in rule:
            sources = group_members[rule["group_name"][0]]
        else:
            networks = rule.get("cidr_ip", []) + rule.get("cidr_ipv6", [])
            sources = [ANY if n in ("0.0.0.0/0", "::/0") else cidr(n) for n in networks]
        admitted.update((rule["proto"], port, source) for port in ports for source in sources)
    return admitted


def test_every_node_is_admitted_the_same_by_its_security_group_and_its_host():
    plan = build_plan(copy.deepcopy(TOPOLOGY))
    groups = {g["name"]: g for g in plan["security_groups"]}
    # A group, seen from a host: the addresses of its members (here one documentation address each), or
    # for an access group the apps' networks.
    members = {"cosmos-a-validator": ["192.0.2.10"], "cosmos-a-sentry": ["192.0.2.21", "192.0.2.22"]}
    members.update((fleet["access_group"], ["10.0.0.0/16"]) for fleet in plan["fleets"] if fleet["access_group"])
    assert sorted(members) == ["cosmos-a-sentry", "cosmos-a-validator", "eth-rpc-access", "icx-endpoints-access"]
    for instance in plan["instances"]:
        rules = port_model.node_rules(instance["ports"])
        host = port_model.host_rules(rules, group_addresses=members)
        host_view = port_model.host_admitted(host)
        sg_view = sg_admitted(groups[instance["security_group"]]["rules"],
                              {name: [cidr(a) for a in addresses] for name, addresses in members.items()})
        # The host also admits what only it can see: the overlay.
        assert host_view - {x for x in host_view if x[2] == OVERLAY} == sg_view, instance["name"]
        assert sg_view, instance["name"]


def test_health_port_is_admitted_by_the_sentrys_host_firewall():
    """The regression: the sentry group admitted the health port from health_cidrs, the host dropped it."""
    plan = build_plan(copy.deepcopy(TOPOLOGY))
    sentry = next(i for i in plan["instances"] if i["name"] == "cosmos-a-sentry-1")
    host = port_model.host_rules(port_model.node_rules(sentry["ports"]))
    assert {"protocol": "tcp", "ports": "9680", "purpose": "health check from the load balancer", "iifname": None,
            "family": "ip", "saddr": ["10.0.0.0/16"]} in host


def test_hubs_take_p2p_only_over_the_overlay_and_wireguard_only_from_peers():
    rules = port_model.node_rules({"role": "validator", "p2p": [("tcp", 26656, 26656)], "wireguard_port": 51820,
                                   "wireguard_groups": ["c-sentry"], "ssh_port": 22, "admin_cidrs": ["203.0.113.0/24"]})
    assert ("tcp", 26656, OVERLAY) in port_model.admitted(rules)
    assert not any(source == ANY for _p, _port, source in port_model.admitted(rules))
    host = port_model.host_rules(rules, group_addresses={"c-sentry": ["192.0.2.21", "2001:db8::21"]})
    assert {"protocol": "udp", "ports": "51820", "purpose": "WireGuard from its peers", "iifname": None, "family": "ip6",
            "saddr": ["2001:db8::21"]} in host
    # Peers whose addresses are unknown: WireGuard itself authenticates, so any source (as before).
    assert port_model.host_rules(rules)[-1]["saddr"] is None


def test_an_access_group_is_never_the_internet_on_the_host():
    rules = port_model.node_rules({"role": "rpc", "rpc": [("tcp", 8545, 8546)], "rpc_groups": ["eth-access"]})
    host = port_model.host_rules(rules)
    assert [r["saddr"] for r in host] == [["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], ["fc00::/7"]]
    assert port_model.security_group_rules(rules) == [
        {"proto": "tcp", "ports": ["8545-8546"], "group_name": ["eth-access"], "rule_desc": "private RPC"}]


def test_unknown_role_is_refused():
    with pytest.raises(ValueError, match="role must be one of validator, standby, sentry, seed, bootnode, rpc, public"):
        port_model.node_rules({"role": "miner"})


def test_admitted_expands_ranges():
    rules = port_model.node_rules({"role": "public", "p2p": [("udp", 9000, 9002)]})
    assert port_model.admitted(rules) == {("udp", 9000, ANY), ("udp", 9001, ANY), ("udp", 9002, ANY)}
    assert group("x") == port_model.Source("group", "x")


def test_host_firewall_filter_takes_the_plan_when_the_host_is_in_it_else_the_role_variables():
    from ansible_collections.chainops.validator.plugins.filter.provision import (
        host_firewall, provision_public_addresses, provision_targets)
    role_spec = {"role": "sentry", "p2p": [{"port": 19444, "protocol": "tcp"}], "health_port": 9680, "health_cidrs": ["10.9.0.0/16"],
                 "ssh_port": 22, "admin_cidrs": ["192.0.2.0/24"], "wireguard_port": 51820, "wireguard_groups": ["peers"]}
    from_role = host_firewall(role_spec, None, "s-1", "wg0", {"peers": ["192.0.2.7"]})
    assert from_role["source"] == "role variables"
    assert {"protocol": "udp", "ports": "51820", "purpose": "WireGuard from its peers", "iifname": None, "family": "ip",
            "saddr": ["192.0.2.7"]} in from_role["rules"]
    from_plan = host_firewall(role_spec, copy.deepcopy(TOPOLOGY), "cosmos-a-sentry-1", "wg0", {"peers": ["192.0.2.7"]})
    assert from_plan["source"] == "provision plan"
    assert {"protocol": "tcp", "ports": "26656", "purpose": "public P2P", "iifname": None, "family": None, "saddr": None} in from_plan["rules"]
    assert host_firewall(role_spec, copy.deepcopy(TOPOLOGY), "not-provisioned")["source"] == "role variables"
    instances = {"a": {"instance_id": "i-1", "public_ip_address": "198.51.100.1",
                       "network_interfaces": [{"ipv6_addresses": [{"ipv6_address": "2001:db8::1"}]}]},
                 "b": {"instance_id": "i-2", "public_ip_address": "198.51.100.2"}, "c": {}}
    assert provision_public_addresses(instances, [{"item": {"host": "b"}, "public_ip": "203.0.113.9"}]) == {
        "A": {"a": "198.51.100.1", "b": "203.0.113.9", "c": None}, "AAAA": {"a": "2001:db8::1", "b": None, "c": None}}
    assert provision_targets(["a", "c", "missing"], instances) == [{"Id": "i-1"}]
