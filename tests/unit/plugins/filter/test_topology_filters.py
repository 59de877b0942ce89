"""topology_plan and wireguard_peers filters (thin glue over plugin_utils/topology.py)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.filter.topology import topology_plan, wireguard_peers

HOSTVARS = {
    "v1": {"topology_role": "validator", "topology_cluster": "c1"},
    "s1": {"topology_role": "sentry", "topology_cluster": "c1"},
    "s2": {"topology_role": "sentry", "topology_cluster": "c1"},
    "pub": {"topology_role": "public"},
    "other": {},
}


def test_plan_gives_every_member_an_address_and_skips_unrelated_hosts():
    plan = topology_plan(list(HOSTVARS), HOSTVARS)
    assert set(plan["hosts"]) == {"v1", "s1", "s2", "pub"}
    assert plan["hosts"]["pub"]["cluster"] is None
    addresses = [plan["hosts"][name]["overlay_address"] for name in ("v1", "s1", "s2")]
    assert len(set(addresses)) == 3
    assert plan["clusters"]["c1"]["validator"] == "v1"
    assert plan["hosts"]["s1"]["validator"] == "v1" and plan["hosts"]["v1"]["sentries"] == ["s1", "s2"]


def test_persisted_addresses_survive_a_new_sentry():
    first = topology_plan(list(HOSTVARS), HOSTVARS)
    persisted = dict((name, first["hosts"][name]["overlay_address"]) for name in ("v1", "s1", "s2"))
    grown = dict(HOSTVARS, s0={"topology_role": "sentry", "topology_cluster": "c1"})
    second = topology_plan(list(grown), grown, persisted)
    for name, address in persisted.items():
        assert second["hosts"][name]["overlay_address"] == address
    assert second["hosts"]["s0"]["overlay_address"] not in persisted.values()


def test_inventory_address_wins_over_persisted():
    hostvars = dict(HOSTVARS, s1=dict(HOSTVARS["s1"], topology_overlay_address="10.50.0.7/24"))
    plan = topology_plan(list(hostvars), hostvars, {"s1": "10.50.0.9"})
    assert plan["hosts"]["s1"]["overlay_address"] == "10.50.0.7"
    assert plan["clusters"]["c1"]["cidr"] == "10.50.0.0/24"


def test_allocated_but_unpersisted_inventory_address_yields_to_the_host_state():
    hostvars = dict(HOSTVARS, s1=dict(HOSTVARS["s1"], topology_overlay_address="10.99.7.2", topology_overlay_persisted=False))
    plan = topology_plan(list(hostvars), hostvars, {"s1": "10.99.7.9", "v1": "10.99.7.1"})
    assert plan["hosts"]["s1"]["overlay_address"] == "10.99.7.9"
    assert plan["hosts"]["v1"]["overlay_address"] == "10.99.7.1"


def test_strict_plan_raises_every_error_and_lenient_plan_returns_them():
    hostvars = {"v1": {"topology_role": "validator", "topology_cluster": "c1"},
                "v2": {"topology_role": "validator", "topology_cluster": "c1"}}
    with pytest.raises(AnsibleFilterError) as error:
        topology_plan(list(hostvars), hostvars)
    assert "cluster 'c1' has 2 signing validators (v1, v2)" in str(error.value)
    assert "fewer than min_sentries=2" in str(error.value)
    lenient = topology_plan(list(hostvars), hostvars, strict=False)
    codes = {issue["code"] for issue in lenient["issues"] if issue["severity"] == "error"}
    assert codes == {"two_validators", "too_few_sentries"}


def test_wireguard_peers_prefer_this_run_then_persisted_state():
    fresh = {"role": "sentry", "address": "10.99.0.2", "public_key": "NEW", "endpoint": "192.0.2.2", "port": 51820}
    stored = {"role": "sentry", "address": "10.99.0.2", "public_key": "OLD", "endpoint": "192.0.2.2", "port": 51820}
    other = {"role": "sentry", "address": "10.99.0.3", "public_key": "K3", "endpoint": "192.0.2.3", "port": 51820}
    hostvars = {"s1": {"wireguard_sentry_state": fresh}, "s2": {}}
    peers = wireguard_peers(["s1", "s2"], hostvars, ["s1"], {"s1": stored, "s2": other})
    assert [peer["public_key"] for peer in peers] == ["NEW", "K3"]
    assert peers[1]["name"] == "s2" and peers[1]["address"] == "10.99.0.3"
    with pytest.raises(AnsibleFilterError, match="WireGuard peer 's3' has no public key or overlay address yet"):
        wireguard_peers(["s3"], {"s3": {}}, [], {})


def test_peer_names_are_hub_and_spoke():
    from ansible_collections.chainops.validator.plugins.filter.topology import wireguard_peer_names

    hostvars = dict(HOSTVARS, sb={"topology_role": "standby", "topology_cluster": "c1"})
    plan = topology_plan(list(hostvars), hostvars)
    assert wireguard_peer_names(plan, "v1") == ["s1", "s2", "sb"]
    assert wireguard_peer_names(plan, "s1") == ["v1", "sb"]
    assert wireguard_peer_names(plan, "s1", True) == ["v1", "sb", "s2"]
    assert wireguard_peer_names(plan, "pub") == []


def test_both_ends_of_a_pair_agree_on_who_owns_its_preshared_key():
    states = {
        "v1": {"role": "validator", "address": "10.99.0.1", "public_key": "KV", "endpoint": "192.0.2.1", "port": 51820},
        "s1": {"role": "sentry", "address": "10.99.0.2", "public_key": "K1", "endpoint": "192.0.2.2", "port": 51820},
        "s2": {"role": "sentry", "address": "10.99.0.3", "public_key": "K2", "endpoint": "192.0.2.3", "port": 51820},
        "sb": {"role": "standby", "address": "10.99.0.4", "public_key": "KB", "endpoint": "192.0.2.4", "port": 51820},
    }
    owners = {}
    for host in states:
        names = [name for name in states if name != host]
        for peer in wireguard_peers(names, {}, [], states, host, states[host]["role"]):
            owners.setdefault(frozenset((host, peer["name"])), set()).add(peer["psk_owner"])
    assert all(len(owner) == 1 for owner in owners.values()), owners
    assert owners[frozenset(("v1", "s1"))] == {"v1"}      # the hub owns its spokes' keys
    assert owners[frozenset(("sb", "s2"))] == {"sb"}
    assert owners[frozenset(("s1", "s2"))] == {"s1"}      # between equals, the smaller name
    assert owners[frozenset(("v1", "sb"))] == {"sb"}
    assert wireguard_peers(["s1"], {}, [], states)[0]["psk_owner"] is None
