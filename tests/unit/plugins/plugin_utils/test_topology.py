"""Unit tests for the shared topology model (plugins/plugin_utils/topology.py)."""
from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# Load the module straight from the working tree (it is pure Python, no Ansible imports), under a
# private name so it cannot clash with anything else on sys.path.
_PATH = Path(__file__).resolve().parents[4] / "plugins" / "plugin_utils" / "topology.py"
_spec = importlib.util.spec_from_file_location("chainops_validator_topology_under_test", _PATH)
t = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(t)


def h(name, role, cluster=None, az=None, address=None, chain="cosmoshub", network="mainnet"):
    return {"name": name, "role": role, "cluster": cluster, "availability_zone": az,
            "overlay_address": address, "chain": chain, "network": network}


def healthy(cluster="c1", prefix=""):
    return [
        h(prefix + "val", "validator", cluster, "az-a"),
        h(prefix + "s1", "sentry", cluster, "az-a"),
        h(prefix + "s2", "sentry", cluster, "az-b"),
    ]


def codes(topo, severity=None):
    return sorted(i.code for i in topo.issues if severity is None or i.severity == severity)


# ---------------------------------------------------------------- structure


def test_healthy_cluster_has_no_issues_and_hub_first_addresses():
    topo = t.build_topology(healthy(), cluster_cidrs={"c1": "10.10.0.0/24"})
    assert topo.issues == []
    c = topo.clusters["c1"]
    assert c.validator == "val" and c.hub == "val"
    assert c.sentries == ["s1", "s2"]
    # Fresh cluster: hub gets the first usable address, sentries follow by name.
    assert c.addresses == {"val": "10.10.0.1", "s1": "10.10.0.2", "s2": "10.10.0.3"}
    assert c.persisted == set()
    assert topo.host("s2") == {
        "role": "sentry", "cluster": "c1", "validator": "val", "standbys": [], "sentries": ["s1", "s2"],
        "overlay_address": "10.10.0.3", "overlay_cidr": "10.10.0.0/24", "overlay_persisted": False,
    }


def test_non_overlay_roles_are_not_cluster_members():
    hosts = healthy() + [h("rpc1", "rpc", "c1"), h("pub", "public"), h("bastion", None)]
    topo = t.build_topology(hosts)
    assert topo.issues == []
    assert topo.clusters["c1"].members == ["val", "s1", "s2"]
    assert topo.host("rpc1") == {"role": "rpc", "cluster": None}
    assert topo.host("bastion") == {"role": None, "cluster": None}


def test_roles_are_case_insensitive():
    hosts = [h("v", " Validator "), h("a", "SENTRY"), h("b", "Sentry")]
    for x in hosts:
        x["cluster"] = "c"
    hosts[2]["availability_zone"] = "other"
    topo = t.build_topology(hosts)
    assert topo.issues == []
    assert topo.roles == {"v": "validator", "a": "sentry", "b": "sentry"}


def test_standby_only_cluster_uses_standby_as_hub():
    hosts = [h("sb", "standby", "c", "a"), h("s1", "sentry", "c", "a"), h("s2", "sentry", "c", "b")]
    topo = t.build_topology(hosts)
    assert topo.issues == []
    assert topo.clusters["c"].validator is None
    assert topo.host("s1")["validator"] == "sb"


def test_validator_plus_standby_is_fine():
    hosts = healthy() + [h("sb", "standby", "c1", "az-c")]
    topo = t.build_topology(hosts)
    assert topo.issues == []
    c = topo.clusters["c1"]
    assert c.hub == "val" and c.standbys == ["sb"]
    # validator, then standby, then sentries
    assert [c.addresses[n] for n in ("val", "sb", "s1", "s2")] == sorted(c.addresses.values(), key=ipaddress.ip_address)


def test_duplicate_host_name_is_a_programming_error():
    with pytest.raises(ValueError):
        t.build_topology([h("a", "rpc"), h("a", "rpc")])


def test_to_dict_is_plain_data():
    topo = t.build_topology(healthy() + [h("x", "bogus")])
    d = topo.to_dict()
    assert d["clusters"]["c1"]["validator"] == "val"
    assert d["issues"][0]["code"] == "unknown_role"
    assert d["issues"][0]["hosts"] == ["x"]


# ---------------------------------------------------------------- every validation finding


def test_unknown_role():
    topo = t.build_topology(healthy() + [h("oops", "valdator", "c1")])
    (issue,) = topo.issues
    assert (issue.severity, issue.code, issue.hosts) == ("error", "unknown_role", ("oops",))
    assert "unknown role 'valdator'" in issue.message and "validator, sentry, standby, public, rpc" in issue.message
    assert "oops" not in topo.clusters["c1"].members


def test_missing_cluster():
    topo = t.build_topology([h("lonely", "sentry")])
    assert codes(topo) == ["missing_cluster"]
    assert "role sentry needs a cluster" in topo.issues[0].message


def test_no_validator():
    topo = t.build_topology([h("s1", "sentry", "c", "a"), h("s2", "sentry", "c", "b")])
    assert codes(topo) == ["no_validator"]
    assert topo.errors[0].message == "cluster 'c' has no validator or standby (members: s1, s2)"


def test_two_signing_validators():
    topo = t.build_topology(healthy() + [h("val2", "validator", "c1", "az-b")])
    assert codes(topo) == ["two_validators"]
    msg = topo.errors[0].message
    assert "2 signing validators (val, val2)" in msg and "standby" in msg
    assert topo.errors[0].hosts == ("val", "val2")


@pytest.mark.parametrize("count,min_sentries,expected", [(0, 2, True), (1, 2, True), (2, 2, False), (2, 3, True), (1, 1, False)])
def test_too_few_sentries(count, min_sentries, expected):
    hosts = [h("val", "validator", "c", "a")] + [h("s%d" % i, "sentry", "c", "az%d" % i) for i in range(count)]
    topo = t.build_topology(hosts, min_sentries=min_sentries)
    assert ("too_few_sentries" in codes(topo)) is expected
    if expected:
        assert "fewer than min_sentries=%d" % min_sentries in topo.errors[0].message


def test_sentries_in_one_az_is_only_a_warning():
    hosts = [h("val", "validator", "c", "a"), h("s1", "sentry", "c", "z"), h("s2", "sentry", "c", "z")]
    topo = t.build_topology(hosts)
    assert codes(topo) == ["sentries_single_az"]
    assert topo.errors == [] and topo.warnings[0].severity == "warning"
    assert "availability zone z" in topo.warnings[0].message


def test_single_az_not_reported_for_one_sentry_or_unknown_az():
    one = t.build_topology([h("val", "validator", "c", "a"), h("s1", "sentry", "c", "z")], min_sentries=1)
    unknown = t.build_topology([h("val", "validator", "c"), h("s1", "sentry", "c"), h("s2", "sentry", "c")])
    assert one.issues == [] and unknown.issues == []


def test_mixed_chain_cluster():
    hosts = healthy()
    hosts[2]["chain"] = "celestia"
    topo = t.build_topology(hosts)
    assert codes(topo) == ["mixed_chain"]
    assert "celestia/mainnet (s2)" in topo.errors[0].message and "cosmoshub/mainnet (s1, val)" in topo.errors[0].message


def test_overlapping_cidrs():
    hosts = healthy("a") + healthy("b", prefix="b-")
    topo = t.build_topology(hosts, cluster_cidrs={"a": "10.0.0.0/24", "b": "10.0.0.128/25"})
    assert codes(topo) == ["overlapping_cidrs"]
    assert topo.errors[0].message == "clusters 'a' (10.0.0.0/24) and 'b' (10.0.0.128/25) have overlapping overlay CIDRs"


def test_overlap_check_handles_nested_and_many_networks():
    hosts = []
    cidrs = {}
    for i in range(5):
        hosts += healthy("c%d" % i, prefix="c%d-" % i)
        cidrs["c%d" % i] = "10.1.%d.0/24" % i
    cidrs["c4"] = "10.1.0.0/22"  # covers c0..c3
    topo = t.build_topology(hosts, cluster_cidrs=cidrs)
    pairs = sorted(tuple(sorted((i.message.split("'")[1], i.message.split("'")[3]))) for i in topo.errors)
    assert pairs == [("c0", "c4"), ("c1", "c4"), ("c2", "c4"), ("c3", "c4")]


def test_duplicate_persisted_addresses():
    hosts = healthy()
    hosts[1]["overlay_address"] = "10.5.0.7"
    hosts[2]["overlay_address"] = "10.5.0.7"
    topo = t.build_topology(hosts, cluster_cidrs={"c1": "10.5.0.0/24"})
    assert codes(topo) == ["duplicate_address"]
    assert topo.errors[0].message == "cluster 'c1': hosts s1, s2 all claim overlay address 10.5.0.7"
    # The plan stays usable: everyone still has a distinct address.
    addrs = topo.clusters["c1"].addresses
    assert len(set(addrs.values())) == 3


def test_cidr_too_small():
    hosts = healthy() + [h("s3", "sentry", "c1", "az-c")]
    topo = t.build_topology(hosts, cluster_cidrs={"c1": "10.0.0.0/30"})
    assert codes(topo) == ["cidr_too_small"]
    assert topo.errors[0].message == "cluster 'c1': overlay CIDR 10.0.0.0/30 has 2 usable addresses but the cluster has 4 members"
    assert len(topo.clusters["c1"].addresses) == 2


@pytest.mark.parametrize("cidr,usable", [("10.0.0.0/29", 6), ("10.0.0.0/31", 2), ("10.0.0.1/32", 1), ("fd00::/126", 3), ("fd00::/127", 2)])
def test_usable_count(cidr, usable):
    assert t.usable_count(ipaddress.ip_network(cidr)) == usable


def test_address_outside_cidr_and_reserved_and_invalid():
    hosts = healthy() + [h("s3", "sentry", "c1", "az-c"), h("s4", "sentry", "c1", "az-d")]
    hosts[1]["overlay_address"] = "192.168.1.1"
    hosts[2]["overlay_address"] = "10.0.0.0"
    hosts[3]["overlay_address"] = "not-an-ip"
    hosts[4]["overlay_address"] = "10.0.0.255"
    topo = t.build_topology(hosts, cluster_cidrs={"c1": "10.0.0.0/24"})
    assert codes(topo) == ["address_outside_cidr", "invalid_address", "invalid_address", "invalid_address"]
    msgs = " | ".join(i.message for i in topo.errors)
    assert "overlay address 192.168.1.1 is outside cluster 'c1' CIDR 10.0.0.0/24" in msgs
    assert "10.0.0.0 is the network or broadcast address" in msgs
    assert "10.0.0.255 is the network or broadcast address" in msgs
    assert "'not-an-ip' is not an IP address" in msgs


def test_invalid_cidr_and_pool():
    bad = t.build_topology(healthy(), cluster_cidrs={"c1": "10.0.0.1/24"})  # host bits set
    assert codes(bad) == ["invalid_cidr"]
    bad_pool = t.build_topology(healthy(), pool="nonsense")
    assert codes(bad_pool) == ["invalid_cidr"]
    bad_prefix = t.build_topology(healthy(), pool="10.0.0.0/24", cluster_prefix=16)
    assert codes(bad_prefix) == ["invalid_cidr"]


def test_conflicting_cidr_from_tags():
    hosts = healthy()
    hosts[0]["overlay_address"] = "10.1.0.1/24"
    hosts[1]["overlay_address"] = "10.2.0.2/24"
    assert codes(t.build_topology(hosts)) == ["conflicting_cidr"]
    hosts[1]["overlay_address"] = None
    explicit = t.build_topology(hosts, cluster_cidrs={"c1": "10.9.0.0/24"})
    assert "conflicting_cidr" in codes(explicit)


def test_pool_exhausted():
    hosts = healthy("a") + healthy("b", prefix="b-") + healthy("c", prefix="c-")
    topo = t.build_topology(hosts, pool="10.0.0.0/23", cluster_prefix=24)
    assert codes(topo) == ["pool_exhausted"]


# ---------------------------------------------------------------- CIDR choice and address stability


def test_cidr_from_tag_prefix():
    hosts = healthy()
    hosts[1]["overlay_address"] = "172.16.5.9/28"
    topo = t.build_topology(hosts)
    c = topo.clusters["c1"]
    assert str(c.cidr) == "172.16.5.0/28"
    assert c.addresses["s1"] == "172.16.5.9" and c.persisted == {"s1"}
    assert c.addresses["val"] == "172.16.5.1"


def test_bare_persisted_address_keeps_its_pool_subnet():
    hosts = healthy()
    hosts[0]["overlay_address"] = "10.99.200.1"
    topo = t.build_topology(hosts)
    assert str(topo.clusters["c1"].cidr) == "10.99.200.0/24"


def test_pool_slots_do_not_collide_with_explicit_cidrs():
    hosts = []
    for i in range(6):
        hosts += healthy("k%d" % i, prefix="k%d-" % i)
    explicit = {"k0": "10.0.0.0/25"}
    topo = t.build_topology(hosts, cluster_cidrs=explicit, pool="10.0.0.0/26", cluster_prefix=29)
    # /26 pool has 8 /29 slots; k0's /25 covers the whole pool: no room for the others.
    assert codes(topo) == ["pool_exhausted"] * 5
    topo = t.build_topology(hosts, cluster_cidrs={"k0": "10.0.0.0/29"}, pool="10.0.0.0/26", cluster_prefix=29)
    assert topo.issues == []
    nets = [topo.clusters["k%d" % i].cidr for i in range(6)]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_pool_slot_is_stable_when_clusters_are_added():
    base = healthy("alpha", prefix="a-") + healthy("omega", prefix="o-")
    before = t.build_topology(base)
    after = t.build_topology(base + healthy("beta", prefix="b-") + healthy("aaa", prefix="aa-"))
    # Hash-derived slots: new clusters do not shift existing ones unless they collide (they do not here).
    assert before.clusters["alpha"].cidr == after.clusters["alpha"].cidr
    assert before.clusters["omega"].cidr == after.clusters["omega"].cidr


def _persist(topo, hosts):
    """What the WireGuard role does: write the plan back as the persisted address."""
    for x in hosts:
        plan = topo.host(x["name"])
        if plan.get("overlay_address"):
            x["overlay_address"] = plan["overlay_address"]
    return hosts


def test_adding_and_removing_sentries_never_renumbers_persisted_hosts():
    hosts = healthy()
    first = t.build_topology(hosts)
    hosts = _persist(first, hosts)
    cidr = first.clusters["c1"].cidr
    before = dict(first.clusters["c1"].addresses)

    # A new sentry whose name sorts first, and removal of s1.
    grown = hosts + [h("a-new", "sentry", "c1", "az-c")]
    topo = t.build_topology(grown)
    assert topo.clusters["c1"].cidr == cidr
    for name, addr in before.items():
        assert topo.clusters["c1"].addresses[name] == addr
    assert topo.clusters["c1"].addresses["a-new"] not in before.values()

    shrunk = [x for x in hosts if x["name"] != "s1"] + [h("s3", "sentry", "c1", "az-c")]
    topo = t.build_topology(shrunk)
    assert topo.clusters["c1"].addresses["val"] == before["val"]
    assert topo.clusters["c1"].addresses["s2"] == before["s2"]
    # s1's freed address is the lowest free one, so the new sentry reuses it deterministically.
    assert topo.clusters["c1"].addresses["s3"] == before["s1"]


def test_allocation_is_deterministic_regardless_of_input_order():
    hosts = healthy() + [h("s0", "sentry", "c1", "az-c"), h("sb", "standby", "c1", "az-b")]
    a = t.build_topology(hosts).to_dict()
    b = t.build_topology(list(reversed(hosts))).to_dict()
    assert a == b


def test_ipv6_cluster():
    topo = t.build_topology(healthy(), cluster_cidrs={"c1": "fd42::/120"})
    assert topo.issues == []
    assert topo.clusters["c1"].addresses == {"val": "fd42::1", "s1": "fd42::2", "s2": "fd42::3"}


def test_allocate_addresses_skips_used():
    net = ipaddress.ip_network("10.0.0.0/29")
    addrs, unplaced = t.allocate_addresses(net, ["a", "b", "c", "d", "e", "f", "g"], {"x": ipaddress.ip_address("10.0.0.2")})
    assert addrs["a"] == "10.0.0.1" and addrs["b"] == "10.0.0.3" and addrs["x"] == "10.0.0.2"
    assert unplaced == ["f", "g"]


names = st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=1, max_size=30, unique=True)


@settings(max_examples=150, deadline=None)
@given(names, names, st.randoms(use_true_random=False))
def test_property_growth_keeps_persisted_addresses(first_names, extra_names, rnd):
    hosts = [h("val", "validator", "c", "a")] + [h("s-" + n, "sentry", "c", rnd.choice("abc")) for n in first_names]
    topo = t.build_topology(hosts, cluster_cidrs={"c": "10.20.0.0/24"})
    hosts = _persist(topo, hosts)
    before = dict(topo.clusters["c"].addresses)
    # Remove a random subset, add new sentries, shuffle the input order.
    kept = [x for x in hosts if x["name"] == "val" or rnd.random() < 0.7]
    new = [h("n-" + n, "sentry", "c", "b") for n in extra_names]
    grown = kept + new
    rnd.shuffle(grown)
    after = t.build_topology(grown, cluster_cidrs={"c": "10.20.0.0/24"})
    addrs = after.clusters["c"].addresses
    for x in kept:
        assert addrs[x["name"]] == before[x["name"]]
    assert len(set(addrs.values())) == len(addrs) == len(grown)
    net = ipaddress.ip_network("10.20.0.0/24")
    assert all(ipaddress.ip_address(a) in net for a in addrs.values())
    assert not [i for i in after.errors if i.code != "too_few_sentries"]
