"""Tests for the chainops.validator.ec2_topology inventory plugin, against a real moto_server.

The plugin runs for real: `ansible-inventory -i <tmp>/x.ec2_topology.yml --list` in a subprocess (and
once through the InventoryManager API). Between the plugin and moto sits a small HTTP proxy that
records every request (API action, region, access key, parameters), so call counts are measured on
the wire, and that can inject AWS error responses (throttling, access denied).
"""
from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
import yaml
from chainops_testlib import link_collection  # tests/testlib, put on sys.path by tests/conftest.py
from moto_proxy import MotoProxy  # tests/testlib, put on sys.path by tests/conftest.py
from moto_server import unwrap_unsafe

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AMI = "ami-12c6146b"  # one of moto's built-in AMIs, valid in every region
PLUGIN = "chainops.validator.ec2_topology"


# ---------------------------------------------------------------- wire-level proxy in front of moto


def _error_body(code, message):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message>'
        "</Error></Errors><RequestID>injected-by-test</RequestID></Response>" % (code, message)
    ).encode()


class Proxy(MotoProxy):
    """The shared moto proxy, able to answer chosen requests with an AWS error instead of moto."""

    def __init__(self, upstream):
        super().__init__(upstream)
        self.injections = []  # [predicate, status, body, remaining]

    def exchange(self, request, forward):
        with self.lock:
            request["injected"] = None
            for injection in self.injections:
                if injection[3] > 0 and injection[0](request):
                    injection[3] -= 1
                    request["injected"] = injection[1]
                    return injection[1], [("Content-Type", "text/xml")], injection[2]
        return forward()

    def inject(self, predicate, status, code, message, times=1):
        self.injections.append([predicate, status, _error_body(code, message), times])


@pytest.fixture
def proxy(aws_env):
    p = Proxy(aws_env)
    yield p
    p.close()


# ---------------------------------------------------------------- running the plugin


@pytest.fixture(scope="session")
def collections_dir(tmp_path_factory):
    """A private collections path whose chainops/validator points at this working tree."""
    root = link_collection(tmp_path_factory.mktemp("collections"))
    site = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "ansible_collections").is_dir())
    return "%s:%s" % (root, site)


class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stderr = proc.stderr
        self.text = " ".join(proc.stderr.split())  # unwrapped, for message checks
        self.data = unwrap_unsafe(json.loads(proc.stdout)) if proc.returncode == 0 and proc.stdout.strip() else None

    @property
    def hostvars(self):
        return self.data["_meta"]["hostvars"]

    @property
    def hosts(self):
        return set(self.hostvars)

    def group(self, name):
        return set(self.data.get(name, {}).get("hosts", []))

    @property
    def groups(self):
        return {k for k in self.data if k not in ("_meta", "all", "ungrouped")}

    def warnings(self):
        return [line for line in self.stderr.splitlines() if "[WARNING]: ec2_topology:" in line]


@pytest.fixture
def inventory(tmp_path, collections_dir, proxy):
    """run(config, *args) -> Run: writes <tmp>/<name>.ec2_topology.yml and runs ansible-inventory on it."""
    empty_cfg = tmp_path / "ansible.cfg"
    empty_cfg.write_text("")

    def run(config, *args, name="fleet", env=None, command="--list"):
        config = dict({"plugin": PLUGIN, "endpoint_url": proxy.url}, **config)
        path = tmp_path / ("%s.ec2_topology.yml" % name)
        path.write_text(yaml.safe_dump(config))
        full_env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=collections_dir,
            ANSIBLE_CONFIG=str(empty_cfg),
            ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_DEPRECATION_WARNINGS="false",
            AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        )
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        proc = subprocess.run(
            [str(BIN / "ansible-inventory"), "-i", str(path), command, *args],
            capture_output=True, text=True, env=full_env, cwd=tmp_path, timeout=600, check=False,
        )
        return Run(proc)

    return run


# ---------------------------------------------------------------- seeding moto


def client(endpoint, region, **creds):
    return boto3.client("ec2", region_name=region, endpoint_url=endpoint, **creds)


def launch(ec2, az, count=1, **tags):
    kwargs = {}
    if tags:
        kwargs["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    resp = ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count, InstanceType="t3.small",
                             Placement={"AvailabilityZone": az}, **kwargs)
    return resp["Instances"]


def node(ec2, name, az, role, cluster=None, chain="cosmoshub", network="mainnet", **extra):
    tags = {"Name": name, "Role": role, "Chain": chain, "Network": network}
    if cluster:
        tags["Cluster"] = cluster
    tags.update(extra)
    return launch(ec2, az, **tags)[0]


@pytest.fixture
def fleet(aws_env):
    """Two regions, two chains: a cosmoshub cluster in us-east-1 and a celestia cluster in eu-west-1."""
    use1, euw1 = client(aws_env, "us-east-1"), client(aws_env, "eu-west-1")
    hosts = {}
    hosts["cosmos-a-validator"] = node(use1, "cosmos-a-validator", "us-east-1a", "validator", "cosmos-a")
    hosts["cosmos-a-sentry-1"] = node(use1, "cosmos-a-sentry-1", "us-east-1a", "sentry", "cosmos-a")
    hosts["cosmos-a-sentry-2"] = node(use1, "cosmos-a-sentry-2", "us-east-1b", "sentry", "cosmos-a")
    stopped = node(use1, "cosmos-a-sentry-3", "us-east-1c", "sentry", "cosmos-a")
    use1.stop_instances(InstanceIds=[stopped["InstanceId"]])
    for inst in launch(use1, "us-east-1b", count=2, Role="rpc", Chain="cosmoshub", Network="mainnet"):
        hosts[inst["InstanceId"]] = inst  # no Name tag: host name falls back to the instance ID
    hosts["bastion"] = launch(use1, "us-east-1a", Name="bastion")[0]
    for name, az, role in (("celestia-b-validator", "eu-west-1a", "validator"), ("celestia-b-standby", "eu-west-1b", "standby"),
                           ("celestia-b-sentry-1", "eu-west-1a", "sentry"), ("celestia-b-sentry-2", "eu-west-1c", "sentry")):
        hosts[name] = node(euw1, name, az, role, "celestia-b", chain="celestia", network="mocha")
    hosts["celestia-public"] = node(euw1, "celestia-public", "eu-west-1b", "Public", chain="celestia", network="mocha")
    return {"hosts": hosts, "stopped": stopped, "endpoint": aws_env}


REGIONS = ["us-east-1", "eu-west-1"]


def describe_in(region):
    """Proxy predicate: DescribeInstances requests (of one region, or any when None)."""
    def predicate(record):
        return record["action"] == "DescribeInstances" and region in (None, record["region"])
    return predicate


def describe_calls(proxy):
    return [r for r in proxy.requests if r["action"] == "DescribeInstances"]


# ---------------------------------------------------------------- groups and host variables


def test_fleet_groups_hostvars_and_minimal_calls(fleet, proxy, inventory):
    run = inventory({"regions": REGIONS}, env={"ANSIBLE_INVENTORY_ENABLED": "auto"})  # as users run it
    assert run.rc == 0, run.stderr
    hosts = fleet["hosts"]
    assert run.hosts == set(hosts)
    assert "cosmos-a-sentry-3" not in run.hosts  # stopped

    assert run.group("validators") == {"cosmos-a-validator", "celestia-b-validator"}
    assert run.group("sentries") == {"cosmos-a-sentry-1", "cosmos-a-sentry-2", "celestia-b-sentry-1", "celestia-b-sentry-2"}
    assert run.group("standbys") == {"celestia-b-standby"}
    assert run.group("public_nodes") == {"celestia-public"}
    rpc = {h for h in hosts if h.startswith("i-")}
    assert len(rpc) == 2 and run.group("rpc_nodes") == rpc
    cosmos = {h for h in hosts if h.startswith("cosmos-")} | rpc
    celestia = {h for h in hosts if h.startswith("celestia-")}
    assert run.group("chain_cosmoshub") == cosmos and run.group("network_mainnet") == cosmos
    assert run.group("chain_celestia") == celestia and run.group("network_mocha") == celestia
    assert run.group("cluster_cosmos_a") == {"cosmos-a-validator", "cosmos-a-sentry-1", "cosmos-a-sentry-2"}
    assert run.group("cluster_celestia_b") == celestia - {"celestia-public"}
    assert run.group("region_us_east_1") == cosmos | {"bastion"}
    assert run.group("region_eu_west_1") == celestia
    for name, inst in hosts.items():
        assert name in run.group("az_" + inst["Placement"]["AvailabilityZone"].replace("-", "_"))
    assert run.groups == {
        "validators", "sentries", "standbys", "public_nodes", "rpc_nodes", "chain_cosmoshub", "chain_celestia",
        "network_mainnet", "network_mocha", "cluster_cosmos_a", "cluster_celestia_b", "region_us_east_1",
        "region_eu_west_1", "az_us_east_1a", "az_us_east_1b", "az_eu_west_1a", "az_eu_west_1b", "az_eu_west_1c",
    }

    sentry = run.hostvars["cosmos-a-sentry-2"]
    inst = hosts["cosmos-a-sentry-2"]
    assert sentry["ansible_host"] == inst["PrivateIpAddress"]
    assert sentry["topology_availability_zone"] == "us-east-1b"
    assert sentry["topology_role"] == "sentry"
    assert sentry["topology_chain"] == "cosmoshub" and sentry["topology_network"] == "mainnet"
    assert sentry["topology_cluster"] == "cosmos-a"
    assert sentry["topology_validator"] == "cosmos-a-validator"
    assert sentry["topology_sentries"] == ["cosmos-a-sentry-1", "cosmos-a-sentry-2"]
    assert sentry["topology_standbys"] == []
    assert sentry["ec2_tags"] == {"Name": "cosmos-a-sentry-2", "Role": "sentry", "Chain": "cosmoshub",
                                  "Network": "mainnet", "Cluster": "cosmos-a"}
    ec2 = sentry["ec2"]
    assert ec2["instance_id"] == inst["InstanceId"] and ec2["instance_type"] == "t3.small"
    assert ec2["state"] == "running" and ec2["region"] == "us-east-1" and ec2["availability_zone"] == "us-east-1b"
    assert ec2["private_ip_address"] == inst["PrivateIpAddress"] and ec2["vpc_id"] == inst["VpcId"]
    assert ec2["image_id"] == AMI and ec2["owner_id"] == "123456789012"
    assert "tags" not in sentry  # `tags` is reserved in ansible-core; they live in ec2_tags

    # One overlay CIDR per cluster, distinct addresses inside it, hub first.
    for cluster, members in (("cosmos-a", ["cosmos-a-validator", "cosmos-a-sentry-1", "cosmos-a-sentry-2"]),
                             ("celestia-b", ["celestia-b-validator", "celestia-b-standby", "celestia-b-sentry-1", "celestia-b-sentry-2"])):
        cidrs = {run.hostvars[m]["topology_overlay_cidr"] for m in members}
        assert len(cidrs) == 1
        net = ipaddress.ip_network(cidrs.pop())
        addrs = [ipaddress.ip_address(run.hostvars[m]["topology_overlay_address"]) for m in members]
        assert len(set(addrs)) == len(addrs) and all(a in net for a in addrs)
        assert addrs[0] == min(addrs)
        assert not any(run.hostvars[m]["topology_overlay_persisted"] for m in members)
    assert run.hostvars["celestia-b-sentry-1"]["topology_validator"] == "celestia-b-validator"
    assert run.hostvars["celestia-b-sentry-1"]["topology_standbys"] == ["celestia-b-standby"]
    assert run.hostvars["celestia-public"]["topology_role"] == "public"  # tag value "Public"
    assert "topology_overlay_address" not in run.hostvars["celestia-public"]
    assert run.hostvars["bastion"]["topology_role"] is None

    # Minimum API traffic: one DescribeInstances page per region, nothing else, server-side filtered.
    assert proxy.actions() == Counter({"DescribeInstances": 2})
    calls = describe_calls(proxy)
    assert sorted(c["region"] for c in calls) == sorted(REGIONS)
    for call in calls:
        assert call["params"]["MaxResults"] == "1000"
        assert call["params"]["Filter.1.Name"] == "instance-state-name" and call["params"]["Filter.1.Value.1"] == "running"
    assert run.warnings() == []


def test_graph_and_constructed_features(fleet, proxy, inventory):
    config = {
        "regions": REGIONS,
        "compose": {"node_label": "ec2_tags.Chain ~ '/' ~ (topology_cluster or 'none')", "ansible_user": "'admin'"},
        "groups": {"hubs": "topology_role in ['validator', 'standby']", "labelled": "node_label.startswith('celestia')"},
        "keyed_groups": [{"key": "ec2.instance_type", "prefix": "type"}, {"key": "ec2_tags.Role | default('none')", "prefix": "tagrole"}],
    }
    run = inventory(config)
    assert run.rc == 0, run.stderr
    assert run.hostvars["cosmos-a-sentry-1"]["node_label"] == "cosmoshub/cosmos-a"
    assert run.hostvars["celestia-public"]["node_label"] == "celestia/none"
    assert "node_label" not in run.hostvars["bastion"]  # no Chain tag: the error is skipped (strict off)
    assert run.hostvars["bastion"]["ansible_user"] == "admin"
    assert run.group("hubs") == {"cosmos-a-validator", "celestia-b-validator", "celestia-b-standby"}
    assert run.group("labelled") == {h for h in fleet["hosts"] if h.startswith("celestia-")}
    assert run.group("type_t3_small") == run.hosts
    assert run.group("tagrole_Public") == {"celestia-public"} and "bastion" in run.group("tagrole_none")


def test_graph_output_lists_topology_groups(fleet, proxy, tmp_path, collections_dir):
    path = tmp_path / "g.ec2_topology.yml"
    path.write_text(yaml.safe_dump({"plugin": PLUGIN, "endpoint_url": proxy.url, "regions": REGIONS}))
    (tmp_path / "empty.cfg").write_text("")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_dir, ANSIBLE_CONFIG=str(tmp_path / "empty.cfg"))
    out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--graph", "validators"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["@validators:", "|--celestia-b-validator", "|--cosmos-a-validator"]


# ---------------------------------------------------------------- filters and states


def test_server_side_filters_and_states(fleet, proxy, inventory):
    run = inventory({"regions": REGIONS, "filters": {"tag:Chain": "celestia"}})
    assert run.rc == 0, run.stderr
    assert run.hosts == {h for h in fleet["hosts"] if h.startswith("celestia-")}
    for call in describe_calls(proxy):
        sent = {call["params"][k] for k in call["params"] if k.startswith("Filter.") and k.endswith(".Name")}
        assert sent == {"tag:Chain", "instance-state-name"}
    assert proxy.actions() == Counter({"DescribeInstances": 2})

    proxy.reset()
    run = inventory({"regions": ["us-east-1"], "instance_states": ["running", "stopped"]})
    assert run.rc == 0, run.stderr
    assert "cosmos-a-sentry-3" in run.hosts and run.hostvars["cosmos-a-sentry-3"]["ec2"]["state"] == "stopped"
    assert "cosmos-a-sentry-3" in run.group("sentries")

    run = inventory({"regions": ["us-east-1"], "filters": {"instance-state-name": "stopped"}})
    assert run.hosts == {"cosmos-a-sentry-3"}


def test_include_and_exclude_filters_are_local(fleet, proxy, inventory):
    config = {
        "regions": REGIONS,
        "include_filters": [{"tag:Role": ["validator", "sentry"]}, {"tag:Name": "celestia-p*"}],
        "exclude_filters": [{"tag:Name": "*-sentry-?", "availability-zone": "eu-west-1c"},
                            {"instance-id": fleet["hosts"]["cosmos-a-sentry-1"]["InstanceId"]}],
    }
    run = inventory(config)
    assert run.rc == 0, run.stderr
    assert run.hosts == {"cosmos-a-validator", "cosmos-a-sentry-2", "celestia-b-validator", "celestia-b-sentry-1", "celestia-public"}
    # Local evaluation: still exactly one scan per region.
    assert proxy.actions() == Counter({"DescribeInstances": 2})
    # Topology is computed on what is left: cosmos-a now has one sentry, which is reported.
    assert any("cluster 'cosmos-a': validator cosmos-a-validator has 1 sentry" in w for w in run.warnings())

    bad = inventory({"regions": REGIONS, "include_filters": [{"block-device-mapping.volume-id": "vol-1"}]})
    assert bad.rc != 0
    assert "include_filters: filter 'block-device-mapping.volume-id' is not supported locally" in bad.text


# ---------------------------------------------------------------- names and addresses


def test_hostnames_preference_and_ansible_host(fleet, proxy, inventory):
    run = inventory({"regions": ["us-east-1"], "hostnames": ["tag:Missing", "private-dns-name"],
                     "ansible_host": ["tag:Missing", "public-ip-address", "private-ip-address"]})
    assert run.rc == 0, run.stderr
    by_id = {i["InstanceId"]: i for i in fleet["hosts"].values()}
    expected = {i["PrivateDnsName"] for i in by_id.values() if i["Placement"]["AvailabilityZone"].startswith("us-east-1")}
    assert run.hosts == expected
    for hv in run.hostvars.values():
        assert hv["ansible_host"] == hv["ec2"]["public_ip_address"]

    run = inventory({"regions": ["us-east-1"], "hostnames": ["instance-id"], "ansible_host": []})
    assert run.hosts == {i for i, inst in by_id.items() if inst["Placement"]["AvailabilityZone"].startswith("us-east-1")}
    assert all("ansible_host" not in hv for hv in run.hostvars.values())
    # Cluster variables use the host names actually chosen.
    validator_id = fleet["hosts"]["cosmos-a-validator"]["InstanceId"]
    assert run.hostvars[fleet["hosts"]["cosmos-a-sentry-1"]["InstanceId"]]["topology_validator"] == validator_id

    run = inventory({"regions": ["us-east-1"], "hostnames": ["tag:Missing"]})
    assert run.rc == 0 and run.hosts == set()
    assert any("have no value for any of hostnames" in w for w in run.warnings())

    bad = inventory({"regions": ["us-east-1"], "hostnames": ["tag:Name", "mac-address"]})
    assert bad.rc != 0 and "hostnames: unknown source 'mac-address'" in bad.text


def test_duplicate_hostnames(aws_env, proxy, inventory):
    ec2 = client(aws_env, "us-east-1")
    first = node(ec2, "twin", "us-east-1a", "rpc")
    time.sleep(1.1)  # moto's launch time has one-second resolution
    second = node(ec2, "twin", "us-east-1b", "rpc")

    run = inventory({"regions": ["us-east-1"]})
    assert run.rc == 0, run.stderr
    # The oldest keeps the plain name, the newer one gets a suffix.
    assert run.hosts == {"twin", "twin_" + second["InstanceId"]}
    assert run.hostvars["twin"]["ec2"]["instance_id"] == first["InstanceId"]
    assert any("several instances share a host name" in w and first["InstanceId"] in w for w in run.warnings())

    run = inventory({"regions": ["us-east-1"], "duplicate_hostnames": "first"})
    assert run.hosts == {"twin"} and run.hostvars["twin"]["ec2"]["instance_id"] == first["InstanceId"]

    run = inventory({"regions": ["us-east-1"], "duplicate_hostnames": "error"})
    assert run.rc != 0
    assert "duplicate host names: twin (%s, %s)" % (first["InstanceId"], second["InstanceId"]) in run.text


def _persist_overlay(ec2, run, names):
    """What the WireGuard role does: write the inventory's overlay addresses back as tags."""
    for name in names:
        hv = run.hostvars[name]
        ec2.create_tags(Resources=[hv["ec2"]["instance_id"]], Tags=[{"Key": "OverlayAddress", "Value": hv["topology_overlay_address"]}])


def test_overlay_addresses_survive_adding_and_removing_sentries(aws_env, proxy, inventory):
    ec2 = client(aws_env, "us-east-1")
    for name, az, role in (("v", "us-east-1a", "validator"), ("s1", "us-east-1a", "sentry"), ("s2", "us-east-1b", "sentry")):
        node(ec2, name, az, role, "c1")
    first = inventory({"regions": ["us-east-1"]})
    assert first.rc == 0, first.stderr
    before = {n: first.hostvars[n]["topology_overlay_address"] for n in ("v", "s1", "s2")}
    _persist_overlay(ec2, first, before)

    # New sentry whose name sorts before the others, then removal of s1.
    node(ec2, "a-new", "us-east-1c", "sentry", "c1")
    grown = inventory({"regions": ["us-east-1"]})
    for n, addr in before.items():
        assert grown.hostvars[n]["topology_overlay_address"] == addr
        assert grown.hostvars[n]["topology_overlay_persisted"] is True
    assert grown.hostvars["a-new"]["topology_overlay_address"] not in before.values()
    assert grown.hostvars["a-new"]["topology_overlay_persisted"] is False

    ec2.terminate_instances(InstanceIds=[first.hostvars["s1"]["ec2"]["instance_id"]])
    shrunk = inventory({"regions": ["us-east-1"]})
    assert "s1" not in shrunk.hosts
    assert {n: shrunk.hostvars[n]["topology_overlay_address"] for n in ("v", "s2")} == {"v": before["v"], "s2": before["s2"]}
    assert shrunk.hostvars["s2"]["topology_sentries"] == ["a-new", "s2"]


def test_tag_schema_role_map_and_group_overrides(aws_env, proxy, inventory):
    ec2 = client(aws_env, "us-east-1")
    for name, az, role in (("v", "us-east-1a", "signer"), ("s1", "us-east-1a", "sentry-node"), ("s2", "us-east-1b", "sentry-node")):
        launch(ec2, az, Name=name, **{"node-role": role, "validator-set": "blue", "Chain": "osmosis", "addr": ""})
    ec2.create_tags(Resources=[i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                               if {"Key": "Name", "Value": "s2"} in i["Tags"]], Tags=[{"Key": "addr", "Value": "10.7.7.9/29"}])
    config = {
        "regions": ["us-east-1"],
        "tag_schema": {"role": "node-role", "cluster": "validator-set", "overlay_address": "addr"},
        "role_map": {"Signer": "validator", "sentry-node": "sentry"},
        "role_groups": {"validator": "signers", "sentry": None},
        "group_prefixes": {"cluster": "set_", "availability_zone": None, "network": None},
    }
    run = inventory(config)
    assert run.rc == 0, run.stderr
    assert run.group("signers") == {"v"} and "sentries" not in run.groups
    assert run.group("set_blue") == {"v", "s1", "s2"} and run.group("chain_osmosis") == {"v", "s1", "s2"}
    assert not [g for g in run.groups if g.startswith(("az_", "network_"))]
    assert run.hostvars["s1"]["topology_validator"] == "v"
    # The persisted address (with prefix) decides the CIDR; the others fill it from the bottom.
    assert run.hostvars["s2"]["topology_overlay_address"] == "10.7.7.9" and run.hostvars["s2"]["topology_overlay_persisted"]
    assert run.hostvars["v"]["topology_overlay_cidr"] == "10.7.7.8/29"
    assert run.hostvars["v"]["topology_overlay_address"] == "10.7.7.10"  # .9 is taken
    assert run.warnings() == []

    bad = inventory(dict(config, tag_schema={"rol": "node-role"}))
    assert bad.rc != 0 and "tag_schema: unknown key(s) rol; known: chain, cluster, dns_name, fleet, network, overlay_address, p2p_port, role" in bad.text
    bad = inventory(dict(config, role_map={"leader": "boss"}))
    assert bad.rc != 0 and "role_map: 'leader' maps to 'boss', which is not one of validator, sentry, standby, public, rpc" in bad.text


def test_extra_instance_keys(aws_env, proxy, inventory):
    node(client(aws_env, "us-east-1"), "n1", "us-east-1a", "rpc")
    run = inventory({"regions": ["us-east-1"], "extra_instance_keys": ["Monitoring", "EbsOptimized", "RootDeviceName"]})
    assert run.rc == 0, run.stderr
    ec2 = run.hostvars["n1"]["ec2"]
    assert ec2["monitoring"] == {"State": "disabled"} and ec2["ebs_optimized"] is False and ec2["root_device_name"] == "/dev/sda1"
    assert "block_device_mappings" not in ec2  # only what was asked for

    bad = inventory({"regions": ["us-east-1"], "extra_instance_keys": ["Monitoring", "Colour"]})
    assert bad.rc != 0 and "extra_instance_keys: Colour not DescribeInstances instance member(s)" in bad.text


def test_overlay_cidrs_option(fleet, proxy, inventory):
    run = inventory({"regions": REGIONS, "overlay_cidrs": {"cosmos-a": "10.50.0.0/29"}, "overlay_pool": "10.60.0.0/16",
                     "overlay_prefix": 28})
    assert run.rc == 0, run.stderr
    assert run.hostvars["cosmos-a-validator"]["topology_overlay_address"] == "10.50.0.1"
    assert run.hostvars["cosmos-a-sentry-2"]["topology_overlay_cidr"] == "10.50.0.0/29"
    cidr = run.hostvars["celestia-b-validator"]["topology_overlay_cidr"]
    assert cidr.startswith("10.60.") and cidr.endswith("/28")


# ---------------------------------------------------------------- topology warnings and errors


@pytest.fixture
def broken_fleet(aws_env):
    ec2 = client(aws_env, "us-east-1")
    # few: a validator with one sentry
    node(ec2, "few-v", "us-east-1a", "validator", "few")
    node(ec2, "few-s1", "us-east-1b", "sentry", "few")
    # twins: two signing validators
    for name, az, role in (("tw-v1", "us-east-1a", "validator"), ("tw-v2", "us-east-1b", "validator"),
                           ("tw-s1", "us-east-1a", "sentry"), ("tw-s2", "us-east-1c", "sentry")):
        node(ec2, name, az, role, "twins")
    # oneaz: sentries all in one AZ
    for name, az, role in (("az-v", "us-east-1a", "validator"), ("az-s1", "us-east-1b", "sentry"), ("az-s2", "us-east-1b", "sentry")):
        node(ec2, name, az, role, "oneaz")
    # orphans: sentries and no validator
    node(ec2, "orph-s1", "us-east-1a", "sentry", "orphans")
    node(ec2, "orph-s2", "us-east-1b", "sentry", "orphans")
    # a typo in a role, and a sentry without a cluster
    node(ec2, "typo", "us-east-1a", "sentinel", "few")
    node(ec2, "nocluster", "us-east-1a", "sentry")
    # duplicate persisted overlay addresses
    node(ec2, "dup-v", "us-east-1a", "validator", "dup", OverlayAddress="10.77.0.5/24")
    node(ec2, "dup-s1", "us-east-1a", "sentry", "dup", OverlayAddress="10.77.0.5")
    node(ec2, "dup-s2", "us-east-1b", "sentry", "dup")
    return aws_env


EXPECTED_PROBLEMS = [
    "cluster 'few': validator few-v has 1 sentry (few-s1), fewer than min_sentries=2",
    "cluster 'twins' has 2 signing validators (tw-v1, tw-v2); only one may sign, tag the others as standby",
    "cluster 'oneaz': all 2 sentries (az-s1, az-s2) are in availability zone us-east-1b; one zone outage cuts the validator off",
    "cluster 'orphans' has no validator or standby (members: orph-s1, orph-s2)",
    "host 'typo': unknown role 'sentinel' (known roles: validator, sentry, standby, public, rpc, seed, bootnode)",
    "host 'nocluster': role sentry needs a cluster, but none is set",
    "cluster 'dup': hosts dup-s1, dup-v all claim overlay address 10.77.0.5",
]


def test_topology_problems_are_warnings_by_default(broken_fleet, proxy, inventory):
    run = inventory({"regions": ["us-east-1"]})
    assert run.rc == 0, run.stderr
    for message in EXPECTED_PROBLEMS:
        assert "[WARNING]: ec2_topology: " + message in run.stderr
    assert len(run.warnings()) == len(EXPECTED_PROBLEMS)
    # Hosts are all still there, the unknown-role host without a role.
    assert {"typo", "nocluster", "orph-s1", "tw-v2"} <= run.hosts
    assert run.hostvars["typo"]["topology_role"] is None and "typo" not in run.group("sentries")
    assert run.group("validators") >= {"tw-v1", "tw-v2"}
    # min_sentries is configurable.
    run = inventory({"regions": ["us-east-1"], "min_sentries": 1})
    assert not any("cluster 'few'" in w for w in run.warnings())


def test_topology_problems_fail_in_strict_mode(broken_fleet, proxy, inventory):
    run = inventory({"regions": ["us-east-1"], "strict": True})
    assert run.rc != 0
    assert "ec2_topology: topology errors (strict mode)" in run.text
    for message in EXPECTED_PROBLEMS:
        if "availability zone" in message:
            # Single-AZ sentries stay a warning even in strict mode.
            assert "[WARNING]: ec2_topology: " + message in run.stderr
        else:
            assert "- " + message in run.text


def test_strict_errors_fail_the_run_only_with_the_shipped_setting(broken_fleet, proxy, inventory):
    """Ansible turns any inventory plugin error into a warning unless told otherwise: with Ansible's
    defaults a strict topology error leaves an empty inventory and exit 0; with the ansible.cfg the
    collection ships next to its inventories (inventory.any_unparsed_is_failed) the run fails."""
    shipped = str(REPO / "inventories" / "aws" / "ansible.cfg")
    defaults = inventory({"regions": ["us-east-1"], "strict": True}, env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": None})
    assert defaults.rc == 0 and "topology errors (strict mode)" in defaults.text and not defaults.hosts
    failed = inventory({"regions": ["us-east-1"], "strict": True},
                       env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": None, "ANSIBLE_CONFIG": shipped})
    assert failed.rc != 0 and "Completely failed to parse inventory source" in failed.text
    assert "topology errors (strict mode)" in failed.text


def test_fleet_nodes_come_out_as_fleet_and_role_groups_with_their_dns_name_and_port(aws_env, proxy, inventory):
    """Provision's fleet tags: Fleet, Role seed/rpc, DnsName, P2PPort; no cluster, so no topology problem."""
    ec2 = client(aws_env, "us-east-1")
    for number in (1, 2):
        node(ec2, "pk-testnet-%d" % number, "us-east-1a", "seed", chain="polykey", network="testnet", Fleet="pk-testnet",
             DnsName="seed-%d.polykey.example.org" % number)
        node(ec2, "rad-orgs-%d" % number, "us-east-1b", "public", chain="radicle", network="main", Fleet="rad-orgs",
             P2PPort="%d/tcp" % (8775 + number))
    node(ec2, "eth-rpc-1", "us-east-1a", "rpc", chain="ethereum", Fleet="eth-rpc")
    run = inventory({"regions": ["us-east-1"], "strict": True})
    assert run.rc == 0, run.stderr
    assert run.group("fleet_pk_testnet") == {"pk-testnet-1", "pk-testnet-2"}
    assert run.group("seeds") == {"pk-testnet-1", "pk-testnet-2"}
    assert run.group("public_nodes") == {"rad-orgs-1", "rad-orgs-2"} and run.group("rpc_nodes") == {"eth-rpc-1"}
    seed = run.hostvars["pk-testnet-2"]
    assert (seed["topology_fleet"], seed["topology_role"], seed["topology_dns_name"], seed["topology_cluster"]) == \
        ("pk-testnet", "seed", "seed-2.polykey.example.org", None)
    assert (run.hostvars["rad-orgs-2"]["topology_p2p_port"], run.hostvars["rad-orgs-2"]["topology_p2p_protocol"]) == (8777, "tcp")
    assert run.hostvars["eth-rpc-1"]["topology_p2p_port"] is None
    assert not run.warnings()


def test_unknown_options_are_refused_all_named(aws_env, proxy, inventory):
    run = inventory({"regions": ["us-east-1"], "stict": True, "min_sentry": 3})
    assert run.rc != 0
    assert "unknown option(s) min_sentry, stict; the plugin's options are:" in run.text
    assert "strict" in run.text.split("the plugin's options are:")[1]


def test_overlapping_and_too_small_cidrs(aws_env, proxy, inventory):
    ec2 = client(aws_env, "us-east-1")
    for cluster in ("left", "right"):
        for name, az, role in (("v", "us-east-1a", "validator"), ("s1", "us-east-1a", "sentry"), ("s2", "us-east-1b", "sentry")):
            node(ec2, "%s-%s" % (cluster, name), az, role, cluster)
    run = inventory({"regions": ["us-east-1"], "overlay_cidrs": {"left": "10.1.0.0/30", "right": "10.1.0.0/24"}})
    assert run.rc == 0, run.stderr
    assert "ec2_topology: clusters 'right' (10.1.0.0/24) and 'left' (10.1.0.0/30) have overlapping overlay CIDRs" in run.text
    assert "ec2_topology: cluster 'left': overlay CIDR 10.1.0.0/30 has 2 usable addresses but the cluster has 3 members" in run.text
    strict = inventory({"regions": ["us-east-1"], "overlay_cidrs": {"left": "10.1.0.0/30"}, "strict": True})
    assert strict.rc != 0 and "has 2 usable addresses" in strict.text


# ---------------------------------------------------------------- credentials and regions


def test_assume_role_into_another_account(aws_env, proxy, inventory):
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=aws_env)
    role = "arn:aws:iam::111111111111:role/validator-inventory"
    creds = sts.assume_role(RoleArn=role, RoleSessionName="seed")["Credentials"]
    other = client(aws_env, "us-east-1", aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                   aws_session_token=creds["SessionToken"])
    node(other, "remote-v", "us-east-1a", "validator", "remote")
    node(other, "remote-s1", "us-east-1a", "sentry", "remote")
    node(other, "remote-s2", "us-east-1b", "sentry", "remote")
    node(client(aws_env, "us-east-1"), "home", "us-east-1a", "rpc")

    run = inventory({"regions": ["us-east-1"], "assume_role_arn": role, "role_session_name": "inv-test"})
    assert run.rc == 0, run.stderr
    assert run.hosts == {"remote-v", "remote-s1", "remote-s2"}
    assert run.hostvars["remote-v"]["ec2"]["owner_id"] == "111111111111"
    assert proxy.actions() == Counter({"AssumeRole": 1, "DescribeInstances": 1})
    (assume,) = [r for r in proxy.requests if r["action"] == "AssumeRole"]
    assert assume["access_key"] == "testing" and assume["params"]["RoleArn"] == role
    assert assume["params"]["RoleSessionName"] == "inv-test"
    (describe,) = describe_calls(proxy)
    assert describe["access_key"] not in (None, "testing") and describe["token"]  # temporary credentials

    home = inventory({"regions": ["us-east-1"]})
    assert home.hosts == {"home"}


def test_explicit_keys_session_token_and_profile(aws_env, proxy, inventory, tmp_path):
    node(client(aws_env, "eu-west-1"), "eu-node", "eu-west-1a", "rpc")
    node(client(aws_env, "us-east-1"), "us-node", "us-east-1a", "rpc")
    run = inventory({"regions": ["eu-west-1"], "access_key": "AKIDEXPLICIT", "secret_key": "s3cr3t", "session_token": "tok3n"})
    assert run.rc == 0, run.stderr
    (call,) = describe_calls(proxy)
    assert call["access_key"] == "AKIDEXPLICIT" and call["token"] == "tok3n"

    # Region and credentials from a named profile; no `regions` option at all.
    (tmp_path / "aws-config").write_text("[profile lab]\nregion = eu-west-1\n")
    (tmp_path / "aws-credentials").write_text("[lab]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = x\n")
    proxy.reset()
    env = {"AWS_CONFIG_FILE": str(tmp_path / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
           "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_DEFAULT_REGION": None}
    run = inventory({"profile": "lab"}, env=env)
    assert run.rc == 0, run.stderr
    assert run.hosts == {"eu-node"}
    (call,) = describe_calls(proxy)
    assert call["access_key"] == "AKIDPROFILE" and call["region"] == "eu-west-1"

    bad = inventory({"profile": "nope", "regions": ["eu-west-1"]}, env=env)
    assert bad.rc != 0 and "nope" in bad.text


def test_regions_from_environment_or_fail(aws_env, proxy, inventory):
    node(client(aws_env, "us-east-1"), "us-node", "us-east-1a", "rpc")
    run = inventory({})  # AWS_DEFAULT_REGION=us-east-1 from the aws_env fixture
    assert run.rc == 0, run.stderr
    assert run.hosts == {"us-node"} and {c["region"] for c in describe_calls(proxy)} == {"us-east-1"}

    proxy.reset()
    run = inventory({}, env={"AWS_DEFAULT_REGION": None, "AWS_REGION": None})
    assert run.rc != 0
    assert "no region to query" in run.text and "never scans every region" in run.text
    assert proxy.requests == []  # nothing called at all


def test_strict_permissions(aws_env, proxy, inventory):
    node(client(aws_env, "us-east-1"), "us-node", "us-east-1a", "rpc")
    node(client(aws_env, "eu-west-1"), "eu-node", "eu-west-1a", "rpc")
    proxy.inject(describe_in("eu-west-1"), 403, "UnauthorizedOperation", "You are not authorized to perform this operation.", times=10)
    run = inventory({"regions": REGIONS})
    assert run.rc != 0
    assert "DescribeInstances failed in eu-west-1" in run.text and "UnauthorizedOperation" in run.text

    run = inventory({"regions": REGIONS, "strict_permissions": False})
    assert run.rc == 0, run.stderr
    assert run.hosts == {"us-node"}
    assert any("skipping region eu-west-1" in w and "UnauthorizedOperation" in w for w in run.warnings())


# ---------------------------------------------------------------- pagination, retries, caching


def test_pagination_follows_next_token(aws_env, proxy, inventory):
    ec2 = client(aws_env, "us-east-1")
    names = ["n%02d" % i for i in range(12)]
    for name in names:  # one reservation each: moto pages by reservation
        launch(ec2, "us-east-1a", Name=name, Role="rpc")
    run = inventory({"regions": ["us-east-1"], "page_size": 5})
    assert run.rc == 0, run.stderr
    assert run.hosts == set(names)
    calls = describe_calls(proxy)
    assert len(calls) == 3
    assert [c["params"]["MaxResults"] for c in calls] == ["5", "5", "5"]
    assert "NextToken" not in calls[0]["params"] and all(c["params"].get("NextToken") for c in calls[1:])

    bad = inventory({"regions": ["us-east-1"], "page_size": 2000})
    assert bad.rc != 0 and "page_size must be between 5 and 1000" in bad.text


def test_throttling_is_retried_with_the_same_result(fleet, proxy, inventory):
    baseline = inventory({"regions": REGIONS})
    assert baseline.rc == 0, baseline.stderr
    proxy.reset()
    throttled = describe_in(None)
    proxy.inject(throttled, 503, "RequestLimitExceeded", "Request limit exceeded.", times=1)
    run = inventory({"regions": REGIONS})
    assert run.rc == 0, run.stderr
    assert run.data == baseline.data
    calls = describe_calls(proxy)
    assert [c["injected"] for c in calls].count(503) == 1
    assert len(calls) == 3  # two regions + one retry
    (victim,) = [c for c in calls if c["injected"]]
    assert [c["region"] for c in calls].count(victim["region"]) == 2

    # Persistent throttling gives up after retry_max_attempts and says why.
    proxy.reset()
    proxy.inject(throttled, 503, "RequestLimitExceeded", "Request limit exceeded.", times=100)
    run = inventory({"regions": ["us-east-1"], "retry_max_attempts": 2})
    assert run.rc != 0 and "RequestLimitExceeded" in run.text
    assert len(describe_calls(proxy)) == 2


def test_cache_warm_run_makes_no_call_and_recomputes(fleet, proxy, inventory, tmp_path):
    cache = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache"),
             "cache_timeout": 3600, "regions": REGIONS, "assume_role_arn": "arn:aws:iam::123456789012:role/inv"}
    cold = inventory(cache)
    assert cold.rc == 0, cold.stderr
    assert proxy.actions() == Counter({"AssumeRole": 1, "DescribeInstances": 2})
    assert len(list((tmp_path / "cache").iterdir())) == 1

    proxy.reset()
    warm = inventory(dict(cache, compose={"answer": "'warm-' ~ topology_role"}, min_sentries=3))
    assert warm.rc == 0, warm.stderr
    assert proxy.requests == []  # no STS, no EC2, nothing
    assert warm.hosts == cold.hosts
    assert warm.hostvars["cosmos-a-sentry-1"]["answer"] == "warm-sentry"  # compose applies on a cache hit
    # Topology checks are recomputed from cached data too (min_sentries changed).
    assert any("cluster 'cosmos-a'" in w and "min_sentries=3" in w for w in warm.warnings())
    for name, hv in cold.hostvars.items():
        assert {k: v for k, v in warm.hostvars[name].items() if k != "answer"} == hv

    # Changes in AWS are not seen until the cache is flushed...
    node(client(fleet["endpoint"], "us-east-1"), "late", "us-east-1a", "rpc")
    assert "late" not in inventory(cache).hosts and proxy.requests == []
    flushed = inventory(cache, "--flush-cache")
    assert "late" in flushed.hosts
    assert proxy.actions() == Counter({"AssumeRole": 1, "DescribeInstances": 2})

    # ...or the query changes: the cache entry remembers what it answers.
    proxy.reset()
    filtered = inventory(dict(cache, filters={"tag:Chain": "celestia"}))
    assert filtered.hosts == {h for h in fleet["hosts"] if h.startswith("celestia-")}
    assert proxy.actions()["DescribeInstances"] == 2


# ---------------------------------------------------------------- the parser and the Python API


def _load_fetch():
    path = REPO / "plugins" / "plugin_utils" / "ec2_topology_fetch.py"
    spec = importlib.util.spec_from_file_location("chainops_validator_fetch_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trimming_parser_matches_botocore(aws_env, monkeypatch):
    from botocore.parsers import EC2QueryParser

    ec2 = client(aws_env, "us-east-1")
    ec2.create_key_pair(KeyName="ops")
    sg = ec2.create_security_group(GroupName="p2p", Description="p2p")["GroupId"]
    ec2.run_instances(ImageId=AMI, MinCount=3, MaxCount=3, KeyName="ops", SecurityGroupIds=[sg],
                      TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Empty", "Value": ""}, {"Key": "Role", "Value": "sentry"}]}])
    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": "us-east-1c"})
    captured = {}

    def grab(response_dict, **kwargs):
        captured["response"] = dict(response_dict)

    ec2.meta.events.register("before-parse.ec2.DescribeInstances", grab)
    ec2.describe_instances()
    response = captured["response"]
    shape = ec2.meta.service_model.operation_model("DescribeInstances").output_shape

    fetch = _load_fetch()
    keys = fetch.DEFAULT_INSTANCE_KEYS | {"BlockDeviceMappings", "Monitoring", "EbsOptimized", "AmiLaunchIndex"}
    reference = EC2QueryParser(timestamp_parser=lambda x: x).parse(response, shape)
    fast = fetch.make_parser(keys).parse(response, shape)
    expected = [fetch.trim_instance(i, keys, r) for r in reference["Reservations"] for i in r["Instances"]]
    got = [i for r in fast["Reservations"] for i in r["Instances"]]
    assert len(got) == 4
    assert got == expected
    assert {t["Key"]: t["Value"] for t in got[0]["Tags"]} == {"Empty": "", "Role": "sentry"}
    assert got[0]["KeyName"] == "ops" and got[0]["SecurityGroups"][0]["GroupId"] == sg
    assert isinstance(got[0]["LaunchTime"], str)  # kept as sent: JSON-cacheable

    # The fallback (botocore's full parse, then trimming) gives the same answer.
    parser = fetch.make_parser(keys)
    monkeypatch.setattr(parser, "_fast_parse", lambda *a: 1 / 0)
    slow = parser.parse(response, shape)
    assert [i for r in slow["Reservations"] for i in r["Instances"]] == expected


INVENTORY_MANAGER_SCRIPT = textwrap.dedent("""
    import json, sys
    from ansible.plugins.loader import init_plugin_loader
    init_plugin_loader(sys.argv[2].split(":"))
    from ansible.parsing.dataloader import DataLoader
    from ansible.inventory.manager import InventoryManager
    from ansible_collections.chainops.validator.plugins.plugin_utils import ec2_topology_fetch
    seen = []
    ec2_topology_fetch.EVENT_HOOKS.append(("before-send.ec2", lambda **kw: seen.append(kw["event_name"])))
    inv = InventoryManager(loader=DataLoader(), sources=[sys.argv[1]])
    host = inv.get_host("cosmos-a-sentry-1")
    print(json.dumps({
        "validators": sorted(h.name for h in inv.groups["validators"].get_hosts()),
        "validator_of_sentry": host.vars["topology_validator"],
        "groups": sorted(g.name for g in host.get_groups()),
        "hook_calls": seen,
    }))
""")


def test_inventory_manager_api_and_botocore_hook_count(fleet, proxy, tmp_path, collections_dir):
    path = tmp_path / "api.ec2_topology.yml"
    path.write_text(yaml.safe_dump({"plugin": PLUGIN, "endpoint_url": proxy.url, "regions": REGIONS}))
    (tmp_path / "empty.cfg").write_text("")
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "empty.cfg"), ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
    proc = subprocess.run([sys.executable, "-c", INVENTORY_MANAGER_SCRIPT, str(path), collections_dir],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["validators"] == ["celestia-b-validator", "cosmos-a-validator"]
    assert out["validator_of_sentry"] == "cosmos-a-validator"
    assert out["groups"] == ["all", "az_us_east_1a", "chain_cosmoshub", "cluster_cosmos_a", "network_mainnet", "region_us_east_1", "sentries"]
    # botocore's own event hook and the wire agree: two requests.
    assert out["hook_calls"] == ["before-send.ec2.DescribeInstances"] * 2
    assert proxy.actions() == Counter({"DescribeInstances": 2})


def test_documentation_renders(collections_dir, tmp_path):
    (tmp_path / "empty.cfg").write_text("")
    proc = subprocess.run([str(BIN / "ansible-doc"), "-t", "inventory", PLUGIN], capture_output=True, text=True,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_dir, ANSIBLE_CONFIG=str(tmp_path / "empty.cfg")),
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    for option in ("assume_role_arn", "include_filters", "duplicate_hostnames", "tag_schema", "overlay_pool", "cache_timeout", "keyed_groups"):
        assert option in proc.stdout
