"""The five example inventories (inventories/examples/<system>): each topology is planned by provision's
own planner, its instances exist on moto as provision.yml would tag them, the example's own
ec2_topology.yml reads them back through the inventory plugin, and every host's node configuration
(and its companions', and the validator allowlist's) is rendered from the example's group_vars.
No AWS: moto over loopback. Nothing is deployed: the render entry point writes to a directory."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import boto3
import pytest
import yaml
from moto_server import unwrap_unsafe  # tests/testlib, put on sys.path by tests/conftest.py
from playbook_runner import COLLECTIONS_PATH, REPO_ROOT, ansible_playbook, ensure_collection_link

ensure_collection_link()
if str(COLLECTIONS_PATH) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_PATH))
from ansible_collections.chainops.validator.plugins.plugin_utils.provision_plan import build_plan  # noqa: E402

EXAMPLES = REPO_ROOT / "inventories" / "examples"
SYSTEMS = ("ethereum", "icon", "polykey", "radicle", "waku")

# Renders what site.yml's fleet play would run on each host: the node (standalone), the companions, and
# the validator allowlist's config. Inventory-name peers become {address, port, id} with a stand-in id,
# because the render entry point reads no host's persisted identity.
RENDER = """
- name: Render every host of the example
  hosts: all
  gather_facts: false
  connection: local
  tasks:
    - name: Peers as the render entry point takes them (a stand-in id for an inventory name)
      ansible.builtin.set_fact:
        __render_peers: >-
          {{ __render_peers | default([]) + [item if item is mapping else {'address': hostvars[item].node_p2p_advertise_address
             | default(hostvars[item].ansible_host), 'port': none, 'id': 'id-of-' ~ item}] }}
      loop: "{{ node_peers | default([]) }}"

    - name: Render the main node as the fleet play runs it
      ansible.builtin.include_role:
        name: chainops.validator.node
        tasks_from: render
      vars:
        node_mode: standalone
        node_peers: "{{ __render_peers | default([]) }}"
        node_render_dest: "{{ render_root }}/{{ inventory_hostname }}/main"

    - name: The validator allowlist's config, resolved and checked by the role itself
      when: chainops_site_validator_allowlist | default(false) | bool
      block:
        - name: Resolve it
          ansible.builtin.include_role:
            name: chainops.validator.validator_allowlist
            tasks_from: config
            public: true
        - name: Write it
          ansible.builtin.copy:
            content: "{{ __validator_allowlist_config | to_json }}"
            dest: "{{ render_root }}/{{ inventory_hostname }}/allowlist.json"
            mode: "0644"

    - name: Render the companions as site.yml runs them
      ansible.builtin.include_tasks: "%(repo)s/playbooks/includes/companion_nodes.yml"
      vars:
        chainops_companion_render_root: "{{ render_root }}/{{ inventory_hostname }}"
      when: chainops_site_companion_nodes | default([]) | length > 0
""" % {"repo": REPO_ROOT}


def example(system):
    root = EXAMPLES / system
    topology = yaml.safe_load((root / "provision_topology.yml").read_text())["provision_topology"]
    return root, topology


def test_the_five_systems_have_an_example():
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == list(SYSTEMS)
    for system in SYSTEMS:
        root = EXAMPLES / system
        readme = (root / "README.md").read_text()
        assert "ansible-playbook chainops.validator.provision -e @inventories/examples/%s/provision_topology.yml" % system in readme
        assert "ansible-playbook -i inventories/examples/%s/ec2_topology.yml chainops.validator.site" % system in readme


def launch(plan, region, endpoint):
    """The plan's instances (and their data volumes at /dev/sdf) on moto, tagged as provision.yml tags them."""
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    volumes = {v["host"]: v for v in plan["volumes"]}
    for instance in plan["instances"]:
        tags = [{"Key": k, "Value": str(v)} for k, v in instance["tags"].items()]
        [created] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=instance["instance_type"],
                                      Placement={"AvailabilityZone": instance["az"]},
                                      TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"]
        if instance["name"] in volumes:
            volume = ec2.create_volume(AvailabilityZone=instance["az"], Size=volumes[instance["name"]]["size"], VolumeType="gp3")
            ec2.attach_volume(VolumeId=volume["VolumeId"], InstanceId=created["InstanceId"], Device="/dev/sdf")


def read_back(root, endpoint):
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, ANSIBLE_INVENTORY_CACHE="False", ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="True")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(root / "ec2_topology.yml"), "--list"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return unwrap_unsafe(json.loads(proc.stdout))


def stand_in_vault(system, hosts):
    """What the operator's vault file gives (README: -e @vault.yml), with made-up values."""
    digest = "0" * 64
    return {
        "polykey": {"vault_polykey": {h: {"recovery_code": "stand-in", "password": "stand-in"} for h in hosts}},
        "icon": {"vault_icon_artifact_sha256": digest, "vault_icon": {h: {"keystore": "{}", "keysecret": "stand-in"} for h in hosts}},
        "waku": {"vault_gowaku_deb_sha256": digest, "vault_datadog_api_key": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
        "ethereum": {"vault_geth_sha256": digest, "vault_lighthouse_sha256": digest},
        "radicle": {},
    }[system]


def test_the_stand_in_vaults_hold_every_vault_variable_the_examples_use():
    for system in SYSTEMS:
        used = set(re.findall(r"\b(vault_[a-z0-9_]+)", "".join(p.read_text() for p in (EXAMPLES / system / "group_vars").glob("*.yml"))))
        assert used == set(stand_in_vault(system, [])), system


def render(root, tmp_path, endpoint, vault):
    (tmp_path / "render.yml").write_text(RENDER)
    (tmp_path / "vault.json").write_text(json.dumps(vault))
    env = {"AWS_ENDPOINT_URL": endpoint, "ANSIBLE_INVENTORY_CACHE": "False", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}
    result = ansible_playbook(tmp_path / "render.yml", "-i", str(root / "ec2_topology.yml"), "-e", "render_root=%s" % (tmp_path / "out"),
                              "-e", "@%s" % (tmp_path / "vault.json"), env=env)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return tmp_path / "out"


@pytest.mark.parametrize("system", SYSTEMS)
def test_an_example_plans_reads_back_and_renders_every_host(system, aws_env, tmp_path):
    root, topology = example(system)
    plan = build_plan(topology)
    launch(plan, topology["region"], aws_env)
    inventory = read_back(root, aws_env)
    hosts = sorted(inventory["_meta"]["hostvars"])
    assert hosts == sorted(i["name"] for i in plan["instances"])
    for fleet in plan["fleets"]:
        group = "fleet_" + fleet["name"].replace("-", "_")
        assert sorted(inventory[group]["hosts"]) == sorted(i["name"] for i in plan["instances"] if i["fleet"] == fleet["name"])
    out = render(root, tmp_path, aws_env, stand_in_vault(system, hosts))
    for host in hosts:
        main = out / host / "main"
        resolved = json.loads((main / "profile.json").read_text())
        units = list(main.glob("*.service"))
        assert len(units) == 1 and "ExecStart=" in units[0].read_text(), host
        for item in resolved.get("config_files", []):
            assert (main / item["dest"]).stat().st_size > 0, (host, item["dest"])
    CHECKS[system](inventory["_meta"]["hostvars"], out)
    # The example's picture, drawn from the same inventory (chainops.validator.topology_graph).
    env = {"AWS_ENDPOINT_URL": aws_env, "ANSIBLE_INVENTORY_CACHE": "False"}
    drawn = ansible_playbook(REPO_ROOT / "playbooks" / "topology_graph.yml", "-i", str(root / "ec2_topology.yml"),
                             "-e", "topology_graph_dest=%s" % tmp_path, "-e", "@%s" % (tmp_path / "vault.json"),
                             "-e", "@%s" % (root / "provision_topology.yml"), env=env)
    assert drawn.returncode == 0, drawn.stdout[-3000:]
    graph = (tmp_path / "topology.dot").read_text()
    for fleet in plan["fleets"]:
        assert "label=\"fleet %s (%s)\"" % (fleet["name"], fleet["role"]) in graph
    for balancer in plan["load_balancers"]:
        assert "internet -> \"%s\"" % balancer["name"] in graph
    assert (tmp_path / "topology.svg").read_text().rstrip().endswith("</svg>")


def check_polykey(hostvars, out):
    for host in hostvars:
        resolved = json.loads((out / host / "main" / "profile.json").read_text())
        assert (resolved["name"], resolved["network"], resolved["ports"]["client"]["bind"]) == ("polykey", "testnet", "0.0.0.0")
    env = (out / "pk-testnet-1" / "main" / "polykey.env").read_text()
    assert "id-of-pk-testnet-2" in env and "id-of-pk-testnet-1" not in env


def check_radicle(hostvars, out):
    for number, host in enumerate(sorted(hostvars), start=1):
        config = json.loads((out / host / "main" / "config.json").read_text())["node"]
        port = 8775 + number
        assert config["listen"] == ["0.0.0.0:%d" % port]
        assert config["externalAddresses"] == ["org-%d.radicle.example.org:%d" % (number, port)]
        assert config["alias"] == host
        httpd = (out / host / "radicle-httpd" / "radicle-httpd.service").read_text()
        assert "Environment=RAD_HOME=/data/radicle RAD_PASSPHRASE=" in httpd and "--listen 127.0.0.1:8080" in httpd
        assert "User=radicle" in httpd
    assert json.loads((out / "rad-orgs-1" / "main" / "config.json").read_text())["node"]["seedingPolicy"] == {"default": "block"}
    assert json.loads((out / "rad-orgs-2" / "main" / "config.json").read_text())["node"]["seedingPolicy"]["default"] == "allow"


def check_icon(hostvars, out):
    for host in hostvars:
        join = (out / host / "main" / "join-chain.sh").read_text()
        env = (out / host / "main" / "goloop.env").read_text()
        assert "seed-ctz.solidwallet.io" not in join  # never the public seeds
        if host.startswith("icx-sentries"):
            assert "--seed prep-a.example.net:7100" in join and "--seed prep-b.example.net:7100" in join
            assert 'GOLOOP_RPC_ADDR="127.0.0.1:9000"' in env
            allowlist = json.loads((out / host / "allowlist.json").read_text())
            assert allowlist["endpoints"] == ["http://127.0.0.1:9000/api/v3", "https://ctz.solidwallet.io/api/v3"]
            assert (allowlist["ports"], allowlist["grades"], allowlist["extra_cidrs"]) == (
                [{"port": 7100, "protocol": "tcp"}], ["main"], ["10.0.0.0/16"])
            check = subprocess.run([sys.executable, str(REPO_ROOT / "roles/validator_allowlist/files/chainops_allowlist.py"),
                                    "--check-config", str(out / host / "allowlist.json")], capture_output=True, text=True, check=False)
            assert check.returncode == 0, check.stderr
        else:
            assert 'GOLOOP_RPC_ADDR="0.0.0.0:9000"' in env and "--role 0 " in join
            assert not (out / host / "allowlist.json").exists()
            for sentry in ("icx-sentries-1", "icx-sentries-2"):
                assert "--seed %s:7100" % hostvars[sentry]["ansible_host"] in join


def check_waku(hostvars, out):
    for number, host in enumerate(sorted(hostvars), start=1):
        flags = tomllib.loads((out / host / "main" / "gowaku.toml").read_text())
        assert flags["dns4-domain-name"] == "node-%d.waku.example.org" % number
        others = [h for h in sorted(hostvars) if h != host]
        assert flags["staticnode"] == ["/dns4/node-%s.waku.example.org/tcp/60000/p2p/id-of-%s" % (h.rsplit("-", 1)[1], h) for h in others]
        assert (flags["cluster-id"], flags["pubsub-topic"]) == (66, ["/waku/2/rs/66/0"])


def check_ethereum(hostvars, out):
    [host] = hostvars
    assert hostvars[host].get("node_data_volume_id") is None  # no blank volume: the snapshot makes it
    geth = tomllib.loads((out / host / "main" / "geth.toml").read_text())
    assert geth["Node"]["HTTPHost"] == "0.0.0.0"
    beacon = (out / host / "lighthouse" / "lighthouse.toml").read_text()
    assert 'checkpoint-sync-url = "https://beacon.example.org"' in beacon


CHECKS = {"polykey": check_polykey, "radicle": check_radicle, "icon": check_icon, "waku": check_waku, "ethereum": check_ethereum}
