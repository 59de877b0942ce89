"""The lab as the tests drive it: `lab.sh` with a lab name of its own (tests/lab/conftest.py builds one),
and what the tests read from its hosts (podman exec, no Ansible) and from its moto."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import testinfra
import yaml
from chainops_testlib import listeners
from moto_server import free_port

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab" / "lab.sh"
sys.path.insert(0, str(ROOT / "lab"))
# lab/status.py's probe of HAProxy's stats (run in the balancer container): one reading for both.
from status import BALANCER, lab_address  # noqa: E402  pylint: disable=wrong-import-position
VALIDATOR, STANDBY, SENTRIES = "ltc-validator", "ltc-standby", ["ltc-sentry-1", "ltc-sentry-2"]
HUBS, THIRD = [VALIDATOR, STANDBY], "ltc-sentry-3"
FLEET = ["ltc-rpc-1", "ltc-rpc-2"]  # the lab's default fleet (LAB_FLEET_COUNT), behind HAProxy
MEMBERS = HUBS + SENTRIES
# WireGuard pairs: each hub with each sentry (hub and spoke), and the two hubs with each other.
PAIRS = [(hub, sentry) for hub in HUBS for sentry in SENTRIES] + [(VALIDATOR, STANDBY)]
CLI = ["litecoin-cli", "-conf=/etc/chainops/litecoind/rpc.conf", "-datadir=/var/lib/litecoind", "-chain=regtest", "-rpcport=19443"]


def run_lab(command, env, *args, check=True):
    proc = subprocess.run([str(LAB), command, *args], env=env, capture_output=True, text=True, timeout=2400, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("lab.sh %s failed (%d):\n%s\n%s" % (" ".join((command,) + args), proc.returncode, proc.stdout[-8000:],
                                                                 proc.stderr[-3000:]))
    return proc


def status_rows(output):
    """{host: {column: value}} from the status table."""
    lines = output[re.search(r"^host +role +cluster", output, re.M).start():].splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = line.split(None, len(header) - 1)
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def assert_refused_by_the_start_check(lab, host):
    """The node's start was refused by the signer's start check: inactive (not failed, so that the guard does
    not take it for a crash-looping signer), with the reason in its journal."""
    state = lab.on(host, "systemctl", "show", "--property=ActiveState,SubState", "litecoind")
    assert state.split() == ["ActiveState=inactive", "SubState=dead"], state
    journal = lab.on(host, "journalctl", "-u", "litecoind", "-n", "30", "--no-pager")
    assert "signer-check: refusing to start the ltc signer on %s: /run/chainops/signer.json is missing" % host in journal, journal


class SignerWatch:
    """Which hosts run a signing node at each instant, read from the machine's /proc (not from a marker, a
    service state or Ansible): a process named after the node's binary in the host's container cgroup.
    Samples every ``interval`` seconds in a thread while the ``with`` block runs; ``most`` is the most hosts
    seen running one at the same time and ``timeline`` the changes, [(seconds, {host, ...})]."""

    def __init__(self, lab, hosts, binary="litecoind", interval=0.05):
        self.binary, self.interval = binary, interval
        self.ids = {host: subprocess.run(["podman", "inspect", "-f", "{{.Id}}", "%s-%s" % (lab.name, host)], capture_output=True,
                                         text=True, timeout=60, check=True).stdout.strip() for host in hosts}
        self.most, self.timeline, self._stop = 0, [], threading.Event()

    def running(self):
        found = set()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if Path("/proc", pid, "comm").read_text().strip() != self.binary:
                    continue
                cgroup = Path("/proc", pid, "cgroup").read_text()
            except OSError:
                continue  # the process ended between the listing and the read
            found.update(host for host, container in self.ids.items() if container in cgroup)
        return found

    def _sample(self):
        start, last = time.monotonic(), None
        while not self._stop.is_set():
            now = self.running()
            self.most = max(self.most, len(now))
            if now != last:
                self.timeline.append((round(time.monotonic() - start, 2), now))
                last = now
            time.sleep(self.interval)

    def __enter__(self):
        self.timeline.append((0.0, self.running()))
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


class Lab:
    """One lab, built by `up()`: `lab.sh` runs with its own LAB_NAME, state directory and moto port."""

    def __init__(self, name, state, **env):
        assert os.environ.get("CHAINOPS_TEST_IMAGE"), "CHAINOPS_TEST_IMAGE is not set: run through `make lab-test`"
        self.name, self.state = name, state
        # JSON results: messages the tests look for stay on one line (YAML folds them at 80 columns).
        self.env = dict(os.environ, LAB_NAME=name, LAB_STATE=str(state), LAB_MOTO_PORT=str(free_port()), ANSIBLE_FORCE_COLOR="false",
                        ANSIBLE_CALLBACK_RESULT_FORMAT="json", **env)
        self.first = None

    def up(self, **env):
        return run_lab("up", dict(self.env, **env))

    def down(self, check=True):
        return run_lab("down", self.env, check=check)

    def playbook(self, name, *args, check=True):
        """Run a collection playbook against the lab's ec2_topology inventory (`lab.sh playbook`)."""
        return run_lab("playbook", self.env, name, *args, check=check)

    def playbooks_at_once(self, *runs):
        """Start several `lab.sh playbook` runs at the same moment (several controllers), wait for all:
        [CompletedProcess]. Each run is (name, *args)."""
        procs = [subprocess.Popen([str(LAB), "playbook", *run], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for run in runs]
        done = []
        try:
            for proc, run in zip(procs, runs):
                out, err = proc.communicate(timeout=1200)
                done.append(subprocess.CompletedProcess([str(LAB), "playbook", *run], proc.returncode, out, err))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        return done

    def cut_off(self, host, tmp_path):
        """An extra inventory (-i) under which the controller cannot reach host (its container name points
        nowhere) while the host itself runs on: a network cut between the controller and one machine."""
        path = tmp_path / ("cut-off-%s.yml" % host)
        path.write_text(json.dumps({"all": {"hosts": {host: {"ansible_host": "%s-cut-off-%s" % (self.name, host)}}}}))
        return ["-i", str(path)]

    def on(self, host, *argv, check=True):
        proc = subprocess.run(["podman", "exec", "%s-%s" % (self.name, host), *argv], capture_output=True, text=True, timeout=300,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s: %s failed: %s" % (host, " ".join(argv), proc.stderr))
        return proc.stdout.strip()

    def host(self, name):
        """A testinfra host on the lab container (podman exec, no Ansible)."""
        return testinfra.get_host("podman://%s-%s" % (self.name, name))

    def listening(self, host):
        """The TCP ports the host listens on (any address): a port scan probes them again slowly."""
        return sorted({listener[1] for listener in listeners(self.host(host))})

    def node_active(self, host):
        return self.on(host, "systemctl", "is-active", "litecoind", check=False) == "active"

    def health(self, host):
        script = ("import urllib.request, urllib.error\ntry: print(urllib.request.urlopen('http://127.0.0.1:9680/health', timeout=3).status)\n"
                  "except urllib.error.HTTPError as e: print(e.code)")
        return int(self.on(host, "python3", "-c", script))

    def height(self, host):
        return int(self.on(host, *CLI, "getblockcount"))

    def chain(self, host):
        return json.loads(self.on(host, *CLI, "getblockchaininfo"))

    def mine(self, host, blocks):
        self.on(host, *CLI, "generatetodescriptor", str(blocks), "raw(51)")

    def installed_version(self, host):
        return self.on(host, "dpkg-query", "-W", "-f=${Version}", "litecoind")

    def started_at(self, host, unit="litecoind"):
        return self.on(host, "systemctl", "show", unit, "-p", "ActiveEnterTimestampMonotonic")

    def tunnel_started_at(self, host):
        return self.started_at(host, "wg-quick@wg0")

    def wg_state(self, host):
        """The host's persisted WireGuard state: address, cidr, role, public_key."""
        return json.loads(self.on(host, "cat", "/etc/chainops/wireguard.json"))

    def wg_peers(self, host):
        """{public_key: latest_handshake_epoch} from `wg show wg0 dump`."""
        lines = self.on(host, "wg", "show", "wg0", "dump").splitlines()[1:]
        return {line.split("\t")[0]: int(line.split("\t")[4]) for line in lines}

    def sentry_handshakes_since(self, hub, since, sentries=tuple(SENTRIES)):
        """Whether ``hub`` has handshaken with each of ``sentries`` (by their current keys) after ``since``."""
        peers = self.wg_peers(hub)
        return all(peers.get(self.wg_state(name)["public_key"], 0) > since for name in sentries)

    def balancer(self):
        """{server: {status, check, sessions}} as HAProxy reports the fleet's backend."""
        return {row["server"]: row for row in json.loads(self.on("balancer", "python3", "-c", BALANCER))}

    def ip_of(self, host):
        return lab_address("%s-%s" % (self.name, host), self.name)

    def secrets_of(self, host):
        """The private key and every preshared key on a host (to grep output for them)."""
        return self.on(host, "sh", "-c", "cat /etc/wireguard/wg0.key /etc/wireguard/psk/*.psk").split()

    def psk_digest(self, host, peer):
        """sha256 of the preshared key `host` keeps for `peer` (compared, never printed)."""
        return hashlib.sha256(self.on(host, "cat", "/etc/wireguard/psk/%s.psk" % peer).strip().encode()).hexdigest()

    def live_psk_digests(self, host):
        """{peer public key: sha256 of the preshared key the live interface uses}."""
        lines = self.on(host, "wg", "show", "wg0", "preshared-keys").splitlines()
        return {key: hashlib.sha256(psk.encode()).hexdigest() for key, psk in (line.split("\t") for line in lines)}

    # -- its AWS (moto) --------------------------------------------------------------------------
    def client(self, service):
        return boto3.client(service, region_name="us-east-1", endpoint_url="http://127.0.0.1:%s" % self.env["LAB_MOTO_PORT"],
                            aws_access_key_id="lab", aws_secret_access_key="lab")

    def lease(self, cluster="ltc"):
        """The cluster's signer lease as stored in the lab's S3 (the signer role's bucket on moto)."""
        got = self.client("s3").get_object(Bucket="%s-signer-leases" % self.name, Key="chainops/signer-leases/%s.json" % cluster)
        return json.loads(got["Body"].read())

    def signer_token(self, host):
        """The lease token the signer role handed to host's node start check, or None."""
        text = self.on(host, "cat", "/run/chainops/signer.json", check=False)
        return json.loads(text) if text else None

    def instance_ids(self):
        """{Name tag: instance id} of the lab's running instances."""
        found = {}
        for reservation in self.client("ec2").describe_instances(Filters=[{"Name": "tag:Lab", "Values": [self.name]},
                                                                          {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]:
            for instance in reservation["Instances"]:
                found[{t["Key"]: t["Value"] for t in instance["Tags"]}["Name"]] = instance["InstanceId"]
        return found

    def target_group(self):
        """A P2P target group (a network load balancer's) on moto with both sentries in it: ARN and client."""
        elb = self.client("elbv2")
        vpc = self.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Lab", "Values": [self.name]}])["Vpcs"][0]["VpcId"]
        arn = elb.create_target_group(Name="ltc-p2p", Protocol="TCP", Port=19444, VpcId=vpc,
                                      TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
        ids = self.instance_ids()
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": ids[name]} for name in SENTRIES])
        return arn, elb

    def retag(self, roles):
        """Set the Role tag of lab instances: {Name tag: role}."""
        client, ids = self.client("ec2"), self.instance_ids()
        for name, role in roles.items():
            client.create_tags(Resources=[ids[name]], Tags=[{"Key": "Role", "Value": role}])


def running_lab(tmp_path_factory, name, **env):
    """A module fixture's body: the lab built (its first `up` kept as ``lab.first``), then removed."""
    lab = Lab(name, tmp_path_factory.mktemp("lab") / "state", **env)
    try:
        lab.first = lab.up()
        yield lab
    finally:
        lab.down(check=False)


def world(lab):
    """The lab's state lab/world.yml wrote (VPC, zone, the load balancer's subnet, the admin network)."""
    return yaml.safe_load((lab.state / "world.yml").read_text())


def assert_down_leaves_nothing(lab):
    """`lab.sh down`: no container, network, moto or state of the lab is left."""
    port = int(lab.env["LAB_MOTO_PORT"])
    lab.down()
    assert subprocess.run(["podman", "ps", "-aq", "--filter", "label=chainops.lab=" + lab.name], capture_output=True, text=True,
                          check=True).stdout.strip() == ""
    assert lab.name not in subprocess.run(["podman", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                                          check=True).stdout.split()
    assert not lab.state.exists()
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2)
    except OSError:
        return
    raise AssertionError("moto still answers on port %d" % port)
