"""Bad input against a real host: every role, the playbooks that act on hosts, and their valid edges.

One systemd container plays the host, set up like a fresh Debian AMI with one twist: it already has a
login account (`admin`, as the AMI's SSH user) and a running `litecoind` service (a stand-in unit) that a
playbook must not stop by mistake. Each bad input runs the real role or playbook; each must fail naming
its variable, and the host's fingerprint (accounts, files under /etc /opt /srv /usr/local /var/lib, unit
files and their states, packages) must be the same afterwards. The roles' cases run in one playbook,
each in a block whose rescue records the failure message (one ansible-playbook start for all of them).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from playbook_runner import ansible_playbook  # noqa: E402

CONTAINER = "chainops-inputs-%d" % os.getpid()
CONNECTION_PLUGINS = str(ROOT / "tests" / "harness" / "connection_plugins")

# What "the host did not change" means: accounts, the files a role could create or modify, units, packages.
FINGERPRINT = r"""
set -e
getent passwd; getent group
find /etc /opt /srv /usr/local /var/lib /data -xdev \
  \( -path /var/lib/apt/lists -o -path /var/lib/systemd/timers -o -path /var/lib/systemd/random-seed \
     -o -path /var/lib/dpkg/lock -o -path /var/lib/dpkg/lock-frontend -o -path /etc/ld.so.cache \) -prune \
  -o -printf '%p %m %u %g %s %T@\n' 2>/dev/null | sort
systemctl list-unit-files --no-legend --no-pager | sort
systemctl is-active litecoind || true
dpkg-query -W -f '${Package} ${Version}\n'
"""

NODE = {"node_profile": "litecoind", "node_network": "regtest", "node_start": False}
WIREGUARD = {"wireguard_sentry_admin_cidrs": ["192.0.2.0/24"], "wireguard_sentry_p2p_ports": [{"port": 19444}]}
DATADOG = {"datadog_agent_api_key": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "datadog_agent_node_checks": False,
           "datadog_agent_health_checker": False}
RESTORE = dict(NODE, snapshot_restore_source="ebs", snapshot_restore_ebs_instance_id="i-0123456789abcdef0",
               node_data_mount="/data")

# A Polykey seed from the bundle fetch-artifacts.sh built (its recovery code is a test value).
ARTIFACTS = Path(os.environ.get("CHAINOPS_CACHE", ROOT / ".cache")) / "artifacts"
PK_CODE = ("cool sunny spy battle pet arctic title tiger kid wrap dinner sadness "
           "unhappy squirrel element report amateur viable tunnel opera artwork popular myth subject")
POLYKEY = {"node_profile": "polykey-npm", "node_start": False,
           "node_install_url": "file://" + (ARTIFACTS / "polykey-agent.path").read_text().strip(),
           "node_install_sha256": (ARTIFACTS / "polykey-agent.sha256").read_text().strip(),
           "node_secrets": {"recovery-code": PK_CODE, "password": "zzz-not-shown-password"}}

# (case, role, variables, text the failure message must contain)
ROLE_CASES = [
    # a Polykey seed: the recovery code, the password, the seed list
    ("recovery code of 23 words", "node", dict(POLYKEY, node_secrets={"recovery-code": PK_CODE.rsplit(" ", 1)[0], "password": "x"}),
     "node_secrets['recovery-code']: the recovery code has 23 words, a recovery code has 24"),
    ("seed without its password", "node", dict(POLYKEY, node_secrets={"recovery-code": PK_CODE}),
     "node_mode standalone requires the secret file /var/lib/polykey-npm/password"),
    ("seed list naming an unknown host", "node", dict(POLYKEY, node_peers=["pk-seed-9"]),
     "node_peers[0]: 'pk-seed-9' is not valid: is not a host of the inventory"),
    # names that become paths, accounts and unit lines
    ("secret outside the data dir", "node", dict(NODE, node_secrets={"../../etc/cron.d/evil": "* * * * * root id"}),
     "node_secrets['../../etc/cron.d/evil']: '../../etc/cron.d/evil' is not valid: a relative name must stay inside"),
    ("newline in an extra argument", "node", dict(NODE, node_extra_args=["-debug\nUser=root"]),
     "node_extra_args[0]: '-debug\\nUser=root' is not valid: must be one line"),
    ("login account as node user", "node", dict(NODE, node_user="admin"),
     "node_user: 'admin' is an existing login account"),
    ("mapping as secret content", "node", dict(NODE, node_secrets={"regtest/wallet.key": {"key": "zzz-not-shown"}}),
     "node_secrets['regtest/wallet.key']: the content must be a non-empty string (the file's text), got a mapping"),
    ("version with no candidate", "node", dict(NODE, node_version="9.9.9-1"),
     "node_version: '9.9.9-1' is not available on target: litecoind offers 0.21"),
    ("bad peer port", "node", dict(NODE, node_peers=[{"address": "10.0.0.2", "port": 70000}]),
     "node_peers[0].port: 70000 is not valid"),
    ("system directory as config dir", "node", dict(NODE, node_config_dir="/etc"),
     "node_config_dir: '/etc' is not valid: is a system directory"),
    ("bind that is not an address", "node", dict(NODE, node_ports={"rpc": {"bind": "localhost"}}),
     "node_ports.rpc.bind: 'localhost' is not valid: must be an IP address"),
    ("login account as health checker user", "health_checker",
     {"health_checker_adapter": "bitcoin", "health_checker_node_url": "http://127.0.0.1:19443", "health_checker_user": "root",
      "health_checker_node_password_file": "none"},
     "health_checker_user: 'root' is an existing login account"),
    ("bad listen address", "health_checker",
     {"health_checker_adapter": "bitcoin", "health_checker_node_url": "http://127.0.0.1:19443", "health_checker_listen_host": "10.0.0.999",
      "health_checker_node_password_file": "none"},
     "health_checker_listen_host: '10.0.0.999' is not valid: must be an IP address"),
    ("newline in an ordering unit", "health_checker",
     {"health_checker_adapter": "bitcoin", "health_checker_node_url": "http://127.0.0.1:19443",
      "health_checker_after_units": ["litecoind.service\nExecStartPre=/bin/sh -c id"], "health_checker_node_password_file": "none"},
     "health_checker_after_units[0]:"),
    ("out-of-range WireGuard port", "wireguard_sentry", dict(WIREGUARD, wireguard_sentry_port=70000),
     "wireguard_sentry_port: 70000 is not valid: must be an integer from 1 to 65535"),
    ("unknown protocol", "wireguard_sentry", dict(WIREGUARD, wireguard_sentry_p2p_ports=[{"port": 19444, "protocol": "sctp"}]),
     "wireguard_sentry_p2p_ports[0].protocol: 'sctp' is not valid"),
    ("bad admin network", "wireguard_sentry", dict(WIREGUARD, wireguard_sentry_admin_cidrs=["203.0.113.0/33", "2001:db8::/129"]),
     "wireguard_sentry_admin_cidrs[0]: '203.0.113.0/33' is not valid: must be a network in CIDR notation, e.g. 203.0.113.0/24 or "
     "2001:db8::/32; wireguard_sentry_admin_cidrs[1]: '2001:db8::/129' is not valid"),
    ("SSH port public on sentries", "wireguard_sentry", dict(WIREGUARD, wireguard_sentry_p2p_ports=[{"port": 22}]),
     "wireguard_sentry_p2p_ports[0]: {'port': 22} is not valid: is the SSH port"),
    ("misspelt Datadog site", "datadog_agent", dict(DATADOG, datadog_agent_site="datadoghq.con"),
     "datadog_agent_site: 'datadoghq.con' is not valid: one of Datadog's sites"),
    ("repository URL without a scheme", "datadog_agent", dict(DATADOG, datadog_agent_apt_repo_url="apt.datadoghq.com"),
     "datadog_agent_apt_repo_url: 'apt.datadoghq.com' is not valid: must be a URL"),
    ("user check replacing a built-in one", "datadog_agent", dict(DATADOG, datadog_agent_checks={"process": {"instances": []}}),
     "datadog_agent_checks['process']: 'process' is not valid: the role writes its own process check"),
    ("reserved tag", "datadog_agent", dict(DATADOG, datadog_agent_tags=["host:other"]),
     "datadog_agent_tags[0]: 'host:other' is not valid: 'host' is a tag key Datadog reserves"),
    ("tags as a string", "datadog_agent", dict(DATADOG, datadog_agent_tags="env:prod"),
     "datadog_agent_tags: 'env:prod' is not valid: must be a list"),
    ("system directory as set-aside dir", "snapshot_restore", dict(RESTORE, snapshot_restore_ebs_keep_dir="/etc"),
     "snapshot_restore_ebs_keep_dir: '/etc' is not valid: is a system directory"),
    ("the data volume's device name", "snapshot_restore", dict(RESTORE, snapshot_restore_ebs_device_name="/dev/sdf"),
     "snapshot_restore_ebs_device_name: '/dev/sdf' is not valid"),
    ("an archive to a bucket that cannot exist", "snapshot", dict(NODE, snapshot_s3_bucket="My_Snapshots"),
     "snapshot (archive): snapshot_s3_bucket: 'My_Snapshots' is not valid: must name the S3 bucket of the archives"),
    ("parts below S3's smallest", "snapshot", dict(NODE, snapshot_s3_bucket="ltc-snapshots", snapshot_part_size=1048576),
     "snapshot_part_size: 1048576 is not valid: must be an integer from 5242880 to 5368709120"),
]


def podman(*argv, check=True, stdin=None):
    proc = subprocess.run(["podman", *argv], capture_output=True, text=True, timeout=300, check=False, input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError("podman %s: %s" % (" ".join(argv), proc.stderr))
    return proc.stdout


def fingerprint():
    return podman("exec", "-i", CONTAINER, "bash", "-s", stdin=FINGERPRINT)


@pytest.fixture(scope="module")
def host():
    image = os.environ.get("CHAINOPS_TEST_IMAGE")
    assert image, "CHAINOPS_TEST_IMAGE is not set: run through make"
    podman("rm", "-f", "-t", "0", CONTAINER, check=False)
    podman("run", "-d", "--name", CONTAINER, "--hostname", "target", "--systemd=always", "--cap-add=NET_ADMIN",
           "--device=/dev/net/tun", image, "/sbin/init")
    try:
        for _attempt in range(60):
            state = subprocess.run(["podman", "exec", CONTAINER, "systemctl", "is-system-running", "--wait"],
                                   capture_output=True, text=True, timeout=120, check=False)
            if state.stdout.strip() in ("running", "degraded"):
                break
        # The AMI's SSH user, and a running node a mistaken playbook could stop.
        podman("exec", CONTAINER, "useradd", "-m", "-s", "/bin/bash", "-u", "1000", "admin")
        podman("exec", "-i", CONTAINER, "sh", "-c", "cat > /etc/systemd/system/litecoind.service", stdin=(
            "[Unit]\nDescription=stand-in node\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"))
        podman("exec", CONTAINER, "systemctl", "enable", "--now", "litecoind")
        yield CONTAINER
    finally:
        podman("rm", "-f", "-t", "0", CONTAINER, check=False)


def inventory(tmp_path, topology):
    """`target` is the container; other hosts exist only in the inventory (never contacted)."""
    hosts = {"target": {"ansible_connection": "podman", "ansible_host": CONTAINER, "ansible_python_interpreter": "/usr/bin/python3"}}
    for name, variables in topology.items():
        hosts.setdefault(name, {"ansible_host": "192.0.2.1"}).update(variables)
    groups = {}
    for name, variables in hosts.items():
        role = variables.get("topology_role")
        group = {"validator": "validators", "standby": "standbys", "sentry": "sentries"}.get(role)
        if group:
            groups.setdefault(group, {"hosts": {}})["hosts"][name] = None
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts, "children": groups}}))
    return path


def run(playbook, inventory_path, *args):
    return ansible_playbook(playbook, "-i", str(inventory_path), *args, env={
        "ANSIBLE_CONNECTION_PLUGINS": CONNECTION_PLUGINS, "ANSIBLE_PIPELINING": "true", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        # The playbook runner pins the controller's interpreter for localhost runs; the host has its own.
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent"})


def test_every_bad_role_input_fails_naming_it_and_the_host_does_not_change(host, tmp_path):
    tasks = []
    for index, (case, role, variables, _expected) in enumerate(ROLE_CASES):
        tasks.append({
            "name": "Case %d: %s" % (index, case),
            "block": [
                {"name": "Run %s" % role, "ansible.builtin.include_role": {"name": "chainops.validator." + role}, "vars": variables},
                {"name": "Record that it passed", "ansible.builtin.set_fact": {
                    "results": "{{ results | default({}) | combine({'%d': 'NO FAILURE'}) }}" % index}},
            ],
            "rescue": [{"name": "Record the failure", "ansible.builtin.set_fact": {
                "results": "{{ results | default({}) | combine({'%d': ansible_failed_result.msg | default('no message')}) }}" % index}}],
        })
    report = {"content": "{{ results | to_json }}", "dest": str(tmp_path / "results.json"), "mode": "0644"}
    tasks.append({"name": "Report", "ansible.builtin.copy": report, "delegate_to": "localhost", "become": False})
    playbook = tmp_path / "cases.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Bad inputs", "hosts": "target", "gather_facts": False, "become": True, "tasks": tasks}],
                                       sort_keys=False, width=1000))
    before = fingerprint()
    proc = run(playbook, inventory(tmp_path, {}))
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    wrong = {}
    for index, (case, _role, _variables, expected) in enumerate(ROLE_CASES):
        message = results.get(str(index), "NOT RUN")
        if expected not in message:
            wrong[case] = message
    assert not wrong, json.dumps(wrong, indent=1)
    assert "zzz-not-shown" not in proc.stdout + proc.stderr
    words = PK_CODE.split()  # no two consecutive words of the recovery code anywhere in the output
    assert not [pair for pair in zip(words, words[1:]) if " ".join(pair) in proc.stdout + proc.stderr]
    assert fingerprint() == before


PLAYBOOK_CASES = [
    # validator_failover trusted host roles: from a sentry (it stopped that sentry's node), onto a sentry.
    ("failover from a sentry", "validator_failover.yml", ["-e", "chainops_failover_from=target", "-e", "chainops_failover_to=st"],
     "chainops_failover_from: 'target' is not valid: is a sentry, not its cluster's validator"),
    ("failover onto a sentry", "validator_failover.yml", ["-e", "chainops_failover_from=v", "-e", "chainops_failover_to=target"],
     "chainops_failover_to: 'target' is not valid: is a sentry, not a standby"),
    # Signer safety: no lease backend, no fence skipped for a host that is not the old signer.
    ("failover without a lease bucket", "validator_failover.yml", ["-e", "chainops_failover_from=v", "-e", "chainops_failover_to=st"],
     "signer_lease_bucket: '' is not valid: must name the S3 bucket of the signer leases (set for st)"),
    ("a fence skipped for another host", "validator_failover.yml",
     ["-e", "chainops_failover_from=v", "-e", "chainops_failover_to=st", "-e", "chainops_failover_unfenced=st",
      "-e", "signer_lease_bucket=ltc-leases"],
     "chainops_failover_unfenced: 'st' is not valid: must name the old signer (v) itself"),
    ("a failover run id that is a path", "validator_failover.yml",
     ["-e", "chainops_failover_from=v", "-e", "chainops_failover_to=st", "-e", "chainops_failover_run=../x",
      "-e", "signer_lease_bucket=ltc-leases"],
     "chainops_failover_run: '../x' is not valid: must be the id of a failover run"),
    ("a validator without a lease bucket", "site.yml", [],
     "signer_lease_bucket must name the S3 bucket of the signer leases (a validator signs only with its cluster lease), got \"\""),
    ("a switch that is not a boolean", "site.yml", ["-e", "chainops_site_datadog=maybe"],
     "site: chainops_site_datadog must be true or false"),
    ("no healthy sentry needed", "site.yml", ["-e", "chainops_site_min_healthy_sentries=0"],
     "chainops_site_min_healthy_sentries must be a whole number of at least 1, got 0"),
    ("a companion node without its profile", "site.yml", ["-e", '{"chainops_site_companion_nodes": [{"node_name": "lighthouse"}]}'],
     "chainops_site_companion_nodes must be a list of node role variables, each with node_profile, got [{\"node_name\": \"lighthouse\"}]"),
    ("an AWS endpoint that is not a URL", "site.yml", ["-e", "chainops_aws_endpoint_url=localhost:5000"],
     "chainops_aws_endpoint_url must be an http:// or https:// URL, got \"localhost:5000\""),
    ("a misspelt AWS region", "site.yml", ["-e", "chainops_aws_region=eu-west"],
     "chainops_aws_region must be an AWS region such as eu-west-1, got \"eu-west\""),
    ("an upgrade to a path", "rolling_upgrade.yml", ["-e", "node_version=../../bin"],
     "rolling_upgrade: node_version \"../../bin\" is not a version"),
    # The node keeps running: nothing is stopped before the inputs are checked.
    ("an EBS snapshot without its volume", "snapshot.yml", ["-e", "snapshot_mode=ebs", "-e", "snapshot_hosts=target"],
     "snapshot (ebs): snapshot_ebs_volume_id: '' is not valid: must name the node's data volume (vol-...)"),
]


@pytest.mark.parametrize("case, playbook, args, expected", PLAYBOOK_CASES, ids=[c[0] for c in PLAYBOOK_CASES])
def test_playbooks_refuse_before_touching_the_host(host, tmp_path, case, playbook, args, expected):
    topology = {
        "target": {"topology_role": "sentry", "topology_cluster": "c1", "node_profile": "litecoind", "node_name": "litecoind"},
        "v": {"topology_role": "validator", "topology_cluster": "c1"},
        "st": {"topology_role": "standby", "topology_cluster": "c1"},
    }
    before = fingerprint()
    proc = run(ROOT / "playbooks" / playbook, inventory(tmp_path, topology), *args)
    assert proc.returncode != 0
    assert expected in proc.stdout, proc.stdout[-4000:]
    assert fingerprint() == before


def test_an_invalid_topology_fails_before_the_first_directory(host, tmp_path):
    """Two signing validators in one cluster: the plan fails before /etc/chainops or any key exists. The
    other members exist only in the inventory (local connection: their persisted state is absent)."""
    topology = {"target": {"topology_role": "validator", "topology_cluster": "c1"}}
    for name, role in (("v2", "validator"), ("s1", "sentry"), ("s2", "sentry")):
        topology[name] = {"topology_role": role, "topology_cluster": "c1", "ansible_connection": "local"}
    playbook = tmp_path / "wireguard.yml"
    playbook.write_text(yaml.safe_dump([{"name": "WireGuard", "hosts": "target", "gather_facts": False, "become": True,
                                         "roles": [{"role": "chainops.validator.wireguard_sentry"}]}]))
    before = fingerprint()
    proc = run(playbook, inventory(tmp_path, topology), "-e", json.dumps(WIREGUARD))
    assert proc.returncode != 0
    assert "cluster 'c1' has 2 signing validators (target, v2)" in proc.stdout, proc.stdout[-4000:]
    assert fingerprint() == before


def test_valid_edges_ipv6_admin_networks_converge(host, tmp_path):
    """IPv6 admin networks alone (they broke the ruleset) and mixed with IPv4 (they were dropped): the
    firewall of a host outside any cluster loads both."""
    playbook = tmp_path / "firewall.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Firewall", "hosts": "target", "gather_facts": False, "become": True,
                                         "roles": [{"role": "chainops.validator.wireguard_sentry"}]}]))
    for admins in (["2001:db8::/32"], ["2001:db8:1::/48", "203.0.113.0/24"]):
        proc = run(playbook, inventory(tmp_path, {}), "-e", json.dumps({"wireguard_sentry_admin_cidrs": admins}))
        assert proc.returncode == 0, proc.stdout[-4000:]
        ruleset = podman("exec", CONTAINER, "nft", "list", "table", "inet", "chainops")
        for cidr in admins:
            family = "ip6" if ":" in cidr else "ip"
            # nft prints a one-element set without its braces
            assert re.search(r"%s saddr \{? ?%s ?\}? tcp dport 22 accept" % (family, re.escape(cidr)), ruleset), ruleset
