"""`make lab` end to end: the lab built by the real playbooks on moto and podman, then the operations
an operator runs on it (check mode, double-sign guard, rolling upgrade with a broken build, failover),
then `lab.sh down` leaving nothing behind. Tests run in file order on one lab."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
import testinfra
from chainops_testlib import open_tcp_ports, recap, wait_for
from moto_server import free_port

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab" / "lab.sh"
NAME = "chainops-labtest"
VALIDATOR, STANDBY, SENTRIES = "ltc-validator", "ltc-standby", ["ltc-sentry-1", "ltc-sentry-2"]
HUBS, THIRD = [VALIDATOR, STANDBY], "ltc-sentry-3"
MEMBERS = HUBS + SENTRIES
CLI = ["litecoin-cli", "-conf=/etc/chainops/litecoind/rpc.conf", "-datadir=/var/lib/litecoind", "-chain=regtest", "-rpcport=19443"]
NEW_VERSION = "0.21.2.1-1+b1+lab1"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    assert os.environ.get("CHAINOPS_TEST_IMAGE"), "CHAINOPS_TEST_IMAGE is not set: run through `make lab-test`"
    state = tmp_path_factory.mktemp("lab") / "state"
    # JSON results: messages the tests look for stay on one line (YAML folds them at 80 columns).
    env = dict(os.environ, LAB_NAME=NAME, LAB_STATE=str(state), LAB_MOTO_PORT=str(free_port()), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    try:
        lab = {"env": env, "state": state, "first": run_lab("up", env)}
        yield lab
    finally:
        run_lab("down", env, check=False)


def run_lab(command, env, *args, check=True):
    proc = subprocess.run([str(LAB), command, *args], env=env, capture_output=True, text=True, timeout=2400, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("lab.sh %s failed (%d):\n%s\n%s" % (" ".join((command,) + args), proc.returncode, proc.stdout[-8000:],
                                                                 proc.stderr[-3000:]))
    return proc


def playbook(lab, name, *args, check=True):
    """Run a collection playbook against the lab's ec2_topology inventory (`lab.sh playbook`)."""
    return run_lab("playbook", lab["env"], name, *args, check=check)


def on(host, *argv, check=True):
    proc = subprocess.run(["podman", "exec", "%s-%s" % (NAME, host), *argv], capture_output=True, text=True, timeout=300, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s: %s failed: %s" % (host, " ".join(argv), proc.stderr))
    return proc.stdout.strip()


def host_of(name):
    """A testinfra host on the lab container (podman exec, no Ansible)."""
    return testinfra.get_host("podman://%s-%s" % (NAME, name))


def node_active(host):
    return on(host, "systemctl", "is-active", "litecoind", check=False) == "active"


def health(host):
    script = ("import urllib.request, urllib.error\ntry: print(urllib.request.urlopen('http://127.0.0.1:9680/health', timeout=3).status)\n"
              "except urllib.error.HTTPError as e: print(e.code)")
    return int(on(host, "python3", "-c", script))


def height(host):
    return int(on(host, *CLI, "getblockcount"))


def installed_version(host):
    return on(host, "dpkg-query", "-W", "-f=${Version}", "litecoind")


def started_at(host):
    return on(host, "systemctl", "show", "litecoind", "-p", "ActiveEnterTimestampMonotonic")


def chain(host):
    return json.loads(on(host, *CLI, "getblockchaininfo"))


def mine(host, blocks):
    on(host, *CLI, "generatetodescriptor", str(blocks), "raw(51)")


def wg_state(host):
    """The host's persisted WireGuard state: address, cidr, role, public_key."""
    return json.loads(on(host, "cat", "/etc/chainops/wireguard.json"))


def wg_peers(host):
    """{public_key: latest_handshake_epoch} from `wg show wg0 dump`."""
    lines = on(host, "wg", "show", "wg0", "dump").splitlines()[1:]
    return {line.split("\t")[0]: int(line.split("\t")[4]) for line in lines}


def ip_of(host):
    return on(host, "hostname", "-I").split()[0]


def secrets_of(host):
    """The private key and every preshared key on a host (to grep output for them)."""
    return on(host, "sh", "-c", "cat /etc/wireguard/wg0.key /etc/wireguard/psk/*.psk").split()


def psk_digest(host, peer):
    """sha256 of the preshared key `host` keeps for `peer` (compared, never printed)."""
    return hashlib.sha256(on(host, "cat", "/etc/wireguard/psk/%s.psk" % peer).strip().encode()).hexdigest()


def live_psk_digests(host):
    """{peer public key: sha256 of the preshared key the live interface uses}."""
    lines = on(host, "wg", "show", "wg0", "preshared-keys").splitlines()
    return {key: hashlib.sha256(psk.encode()).hexdigest() for key, psk in (line.split("\t") for line in lines)}


def tunnel_started_at(host):
    return on(host, "systemctl", "show", "wg-quick@wg0", "-p", "ActiveEnterTimestampMonotonic")


def ec2(lab):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url="http://127.0.0.1:%s" % lab["env"]["LAB_MOTO_PORT"],
                        aws_access_key_id="lab", aws_secret_access_key="lab")


def instance_ids(lab):
    """{Name tag: instance id} of the lab's running instances."""
    found = {}
    for reservation in ec2(lab).describe_instances(Filters=[{"Name": "tag:Lab", "Values": [NAME]},
                                                            {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]:
        for instance in reservation["Instances"]:
            found[{t["Key"]: t["Value"] for t in instance["Tags"]}["Name"]] = instance["InstanceId"]
    return found


def target_group(lab):
    """A P2P target group (a network load balancer's) on moto with both sentries in it: ARN and client."""
    elb = boto3.client("elbv2", region_name="us-east-1", endpoint_url="http://127.0.0.1:%s" % lab["env"]["LAB_MOTO_PORT"],
                       aws_access_key_id="lab", aws_secret_access_key="lab")
    vpc = ec2(lab).describe_vpcs(Filters=[{"Name": "tag:Lab", "Values": [NAME]}])["Vpcs"][0]["VpcId"]
    arn = elb.create_target_group(Name="ltc-p2p", Protocol="TCP", Port=19444, VpcId=vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    ids = instance_ids(lab)
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": ids[name]} for name in SENTRIES])
    return arn, elb


def retag(lab, roles):
    """Set the Role tag of lab instances: {Name tag: role}."""
    client, ids = ec2(lab), instance_ids(lab)
    for name, role in roles.items():
        client.create_tags(Resources=[ids[name]], Tags=[{"Key": "Role", "Value": role}])


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


def test_first_run_builds_the_topology_and_proves_the_validator_hidden(lab):
    out = lab["first"].stdout
    for step in ("AWS stand-in", "provision", "instances", "site", "status"):
        assert re.search(r"==> \[lab [0-9:]+\] %s" % step, out), step
    rows = status_rows(out)
    assert set(rows) == {"internet", VALIDATOR, STANDBY, *SENTRIES}
    for host in SENTRIES + [VALIDATOR]:
        assert rows[host]["node"] == "active" and rows[host]["height"] == "200" and rows[host]["/health"] == "200", rows[host]
        assert rows[host]["wg"].startswith(("2/", "3/")), rows[host]
    assert rows[STANDBY]["node"] == "inactive"  # installed, never started by site.yml
    assert re.search(r"%s\s+validator\s+\S+\s+open: none\s+ok" % VALIDATOR, out)
    for host in SENTRIES:
        assert re.search(r"%s\s+sentry\s+\S+\s+open: 19444\s+ok" % host, out)
    assert "include a validator or standby address: no (ok)" in out
    assert json.loads(on(VALIDATOR, "cat", "/etc/chainops/signer.json")) == {"cluster": "ltc", "host": VALIDATOR}


# The WireGuard topology, checked on the converged lab (what molecule/topology used to converge on its own).
def test_private_keys_are_root_only(lab):
    for name in MEMBERS:
        host = host_of(name)
        key = host.file("/etc/wireguard/wg0.key")
        assert key.exists and key.user == "root" and key.mode == 0o600, name
        assert host.file("/etc/wireguard/wg0.conf").mode == 0o600, name
        assert "PrivateKey" not in host.file("/etc/wireguard/wg0.conf").content_string, name


def test_overlay_addresses_are_distinct_and_in_one_cidr(lab):
    states = {name: wg_state(name) for name in MEMBERS}
    assert len({s["address"] for s in states.values()}) == len(MEMBERS)
    assert len({s["cidr"] for s in states.values()}) == 1
    assert states[VALIDATOR]["role"] == "validator" and states[STANDBY]["role"] == "standby"


def test_preshared_keys_are_per_pair_identical_on_both_ends_and_live(lab):
    digests = set()
    for hub in HUBS:
        hub_live = live_psk_digests(hub)
        for name in SENTRIES:
            for host, peer in ((hub, name), (name, hub)):
                key = host_of(host).file("/etc/wireguard/psk/%s.psk" % peer)
                assert key.user == "root" and key.mode == 0o600, (host, peer)
            digest = psk_digest(hub, name)
            assert digest == psk_digest(name, hub), "the two ends of %s-%s hold different keys" % (hub, name)
            assert hub_live[wg_state(name)["public_key"]] == digest, "%s's live key for %s" % (hub, name)
            assert live_psk_digests(name)[wg_state(hub)["public_key"]] == digest, "%s's live key for %s" % (name, hub)
            digests.add(digest)
        assert "PresharedKey =" not in on(hub, "cat", "/etc/wireguard/wg0.conf")
    assert len(digests) == len(HUBS) * len(SENTRIES)  # one key per pair


def test_hubs_tunnel_to_exactly_their_sentries_with_recent_handshakes(lab):
    sentry_keys = {wg_state(name)["public_key"] for name in SENTRIES}
    wait_for(lambda: set(wg_peers(VALIDATOR)) == sentry_keys and all(time.time() - t < 180 for t in wg_peers(VALIDATOR).values()),
             message="the validator's handshakes with both sentries")
    assert set(wg_peers(STANDBY)) == sentry_keys
    allowed = on(VALIDATOR, "wg", "show", "wg0", "allowed-ips")
    for name in SENTRIES:
        assert "%s/32" % wg_state(name)["address"] in allowed
        # hub and spoke: a sentry tunnels to the hubs only, never to another sentry
        assert set(wg_peers(name)) == {wg_state(hub)["public_key"] for hub in HUBS}
    assert "PersistentKeepalive" not in on(VALIDATOR, "cat", "/etc/wireguard/wg0.conf")


def test_firewall_is_an_own_default_deny_table(lab):
    for name in MEMBERS:
        ruleset = on(name, "nft", "list", "table", "inet", "chainops")
        assert "policy drop" in ruleset and "192.0.2.0/24" in ruleset, name
        assert on(name, "systemctl", "is-enabled", "chainops-firewall") == "enabled", name


def test_no_tcp_port_of_a_hub_answers_the_internet(lab):
    internet = host_of("internet")
    for hub in HUBS:
        assert open_tcp_ports(internet, ip_of(hub)) == [], hub
    for name in SENTRIES:
        assert open_tcp_ports(internet, ip_of(name), 19400, 19500) == [19444], name  # P2P open, RPC (19443) not
    # The validator's P2P port answers on the overlay, from a sentry.
    assert open_tcp_ports(host_of(SENTRIES[0]), wg_state(VALIDATOR)["address"], 19443, 19444) == [19444]


def test_second_run_is_a_no_op(lab):
    proc = run_lab("up", lab["env"])
    assert "changed tasks in this run: 0" in proc.stdout, proc.stdout[-4000:]


def test_check_mode_on_the_converged_lab_changes_nothing(lab):
    proc = playbook(lab, "site.yml", "--check")
    assert all(v["changed"] == 0 and v["failed"] == 0 for v in recap(proc.stdout).values()), proc.stdout[-4000:]


def test_validator_sees_blocks_only_through_its_sentries(lab):
    start = height(VALIDATOR)
    on("internet", *CLI, "generatetodescriptor", "5", "raw(51)")
    wait_for(lambda: height(VALIDATOR) >= start + 5, message="the validator to get the internet's blocks")
    peers = {p["addr"].rsplit(":", 1)[0] for p in json.loads(on(VALIDATOR, *CLI, "getpeerinfo"))}
    overlay = {json.loads(on(h, "cat", "/etc/chainops/wireguard.json"))["address"] for h in SENTRIES}
    assert peers and peers <= overlay, (peers, overlay)


def test_blocks_mined_on_the_validator_reach_the_internet_which_never_learns_it(lab):
    start = chain(VALIDATOR)["blocks"]
    mine(VALIDATOR, 20)
    wait_for(lambda: chain("internet")["blocks"] >= start + 20, message="the internet to get the validator's blocks")
    assert chain("internet")["bestblockhash"] == chain(VALIDATOR)["bestblockhash"]
    hidden = {ip_of(hub) for hub in HUBS} | {wg_state(hub)["address"] for hub in HUBS} | set(HUBS)
    peers = json.loads(on("internet", *CLI, "getpeerinfo"))
    assert peers and not {p["addr"].rsplit(":", 1)[0] for p in peers} & hidden
    known = json.loads(on("internet", *CLI, "getnodeaddresses", "0"))
    assert not {entry["address"] for entry in known} & hidden


def test_validator_keeps_peering_through_the_other_sentry_when_one_stops(lab):
    on(SENTRIES[0], "systemctl", "stop", "litecoind")
    try:
        start = chain(VALIDATOR)["blocks"]
        mine(VALIDATOR, 5)
        wait_for(lambda: chain("internet")["blocks"] >= start + 5, message="blocks through the remaining sentry")
    finally:
        on(SENTRIES[0], "systemctl", "start", "litecoind")
    wait_for(lambda: health(SENTRIES[0]) == 200, timeout=120, message="the restarted sentry's /health")


def test_limit_run_on_one_sentry_keeps_every_tunnel(lab):
    before = {name: tunnel_started_at(name) for name in MEMBERS}
    peers_before = wg_peers(VALIDATOR)
    proc = playbook(lab, "site.yml", "--limit", SENTRIES[0])
    assert recap(proc.stdout)[SENTRIES[0]]["changed"] == 0, proc.stdout[-3000:]
    assert set(wg_peers(VALIDATOR)) == set(peers_before)
    assert set(wg_peers(SENTRIES[0])) == {wg_state(hub)["public_key"] for hub in HUBS}
    assert {name: tunnel_started_at(name) for name in MEMBERS} == before


def test_key_rotation_keeps_the_cluster_connected_and_prints_no_key(lab):
    """One site run for two checks: the rotation, at -vvv, prints neither the old private and preshared
    keys nor the new ones."""
    old_keys = {name: wg_state(name)["public_key"] for name in MEMBERS}
    old_psks = {(hub, name): psk_digest(hub, name) for hub in HUBS for name in SENTRIES}
    old_secrets = [key for name in MEMBERS for key in secrets_of(name)]
    assert len(old_secrets) == len(MEMBERS) + 2 * len(old_psks) and all(len(key) == 44 for key in old_secrets)
    rotated_at = time.time()
    proc = playbook(lab, "site.yml", "-vvv", "-e", "wireguard_sentry_rotate_keys=true")
    new_keys = {name: wg_state(name)["public_key"] for name in MEMBERS}
    assert all(new_keys[name] != old_keys[name] for name in MEMBERS)
    for (hub, name), digest in old_psks.items():
        assert psk_digest(hub, name) != digest and psk_digest(name, hub) == psk_digest(hub, name)
    new_secrets = [key for name in MEMBERS for key in secrets_of(name)]
    assert not set(new_secrets) & set(old_secrets)
    for secret in old_secrets + new_secrets:
        assert secret not in proc.stdout and secret not in proc.stderr, "a key was printed"
    wait_for(lambda: set(wg_peers(VALIDATOR)) == {new_keys[name] for name in SENTRIES}
             and all(t >= rotated_at for t in wg_peers(VALIDATOR).values()),
             timeout=180, message="handshakes with the rotated keys")
    start = chain(VALIDATOR)["blocks"]
    mine(VALIDATOR, 3)
    wait_for(lambda: chain("internet")["blocks"] >= start + 3, message="blocks after the rotation")


def test_double_sign_guard_refuses_a_second_signer(lab):
    """Tags swapped without a failover: the new 'validator' must not start while the old one signs."""
    retag(lab, {VALIDATOR: "standby", STANDBY: "validator"})
    try:
        proc = playbook(lab, "site.yml", "--limit", "%s,%s" % (VALIDATOR, STANDBY), check=False)
        assert proc.returncode != 0
        assert "Double-sign guard: %s of cluster ltc is running as the signing validator" % VALIDATOR in proc.stdout
        assert not node_active(STANDBY)
        assert node_active(VALIDATOR)
    finally:
        retag(lab, {VALIDATOR: "validator", STANDBY: "standby"})


def test_rolling_upgrade_stops_at_the_broken_host(lab):
    script = (ROOT / "tests" / "lab" / "make_upgrade_repo.sh").read_text()
    subprocess.run(["podman", "exec", "-i", "%s-internet" % NAME, "bash", "-s", NEW_VERSION], input=script, text=True,
                   capture_output=True, timeout=300, check=True)
    for host in SENTRIES + [VALIDATOR, STANDBY]:
        repo = "broken" if host == SENTRIES[1] else "good"
        on(host, "sh", "-c", "echo 'deb [trusted=yes] http://%s-internet:8080/%s ./' > /etc/apt/sources.list.d/lab-upgrade.list" % (NAME, repo))
    old = installed_version(VALIDATOR)
    before = {h: started_at(h) for h in [VALIDATOR]}
    arn, elb = target_group(lab)
    proc = playbook(lab, "rolling_upgrade.yml", "-e", "node_version=" + NEW_VERSION, "-e", "node_wait_timeout=20",
                    "-e", "chainops_upgrade_target_group_arn=" + arn, check=False)
    assert proc.returncode != 0
    assert "Rolling upgrade to %s stopped at %s" % (NEW_VERSION, SENTRIES[1]) in proc.stdout, proc.stdout[-5000:]
    # The upgraded sentry is back in the load balancer; the broken one stays out until fixed.
    serving = {t["Target"]["Id"] for t in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
               if t["TargetHealth"]["State"] != "draining"}
    assert serving == {instance_ids(lab)[SENTRIES[0]]}
    assert installed_version(SENTRIES[0]) == NEW_VERSION and node_active(SENTRIES[0]) and health(SENTRIES[0]) == 200
    assert installed_version(SENTRIES[1]) == NEW_VERSION and not node_active(SENTRIES[1])  # the broken build
    for host in (VALIDATOR, STANDBY):  # after the failure: untouched
        assert installed_version(host) == old
    assert started_at(VALIDATOR) == before[VALIDATOR] and health(VALIDATOR) == 200


def test_failover_moves_the_signer(lab):
    playbook(lab, "validator_failover.yml", "-e", "chainops_failover_from=" + VALIDATOR, "-e", "chainops_failover_to=" + STANDBY,
             "-e", "chainops_failover_wait_seconds=1")
    assert not node_active(VALIDATOR) and node_active(STANDBY)
    assert on(VALIDATOR, "test", "-e", "/etc/chainops/signer.json", check=False) == ""
    assert json.loads(on(STANDBY, "cat", "/etc/chainops/signer.json"))["host"] == STANDBY
    start = height(SENTRIES[0])
    on("internet", *CLI, "generatetodescriptor", "3", "raw(51)")
    wait_for(lambda: height(STANDBY) >= start + 3, message="the new signer to follow the chain through the sentries")
    # Re-tagged as the playbook says, site.yml agrees with the new signer and keeps the old one stopped.
    retag(lab, {VALIDATOR: "standby", STANDBY: "validator"})
    playbook(lab, "site.yml", "--limit", "%s,%s" % (VALIDATOR, STANDBY))
    assert node_active(STANDBY) and not node_active(VALIDATOR)
    wait_for(lambda: health(STANDBY) == 200, timeout=60, message="the new signer's /health")


def test_a_third_sentry_joins_and_nobody_is_renumbered(lab):
    """Scale-out as an operator does it: provision one more sentry, then the same `make lab` path. After
    the failover above, ltc-standby is the cluster's signing validator."""
    signer = STANDBY
    before = {name: wg_state(name)["address"] for name in MEMBERS}
    started = tunnel_started_at(signer)
    proc = run_lab("up", dict(lab["env"], LAB_SENTRY_COUNT="3"))
    assert recap(proc.stdout)[THIRD]["failed"] == 0
    assert {name: wg_state(name)["address"] for name in MEMBERS} == before
    third = wg_state(THIRD)
    assert third["address"] not in before.values() and third["role"] == "sentry"
    wait_for(lambda: third["public_key"] in wg_peers(signer), message="the signer to add the third sentry")
    assert len(wg_peers(signer)) == 3
    assert tunnel_started_at(signer) == started  # peers added live (syncconf), no restart
    rows = status_rows(proc.stdout)
    assert rows[THIRD]["node"] == "active" and rows[THIRD]["/health"] == "200", rows[THIRD]
    assert re.search(r"%s\s+sentry\s+\S+\s+open: 19444\s+ok" % THIRD, proc.stdout)


def test_signing_waits_a_bounded_time_for_healthy_sentries_and_says_why(lab):
    """No sentry can sync (the internet and both hubs' nodes stopped, so every sentry has 0 peers): the
    validator does not start, within the bound, and the message names each sentry's reasons."""
    signer, sentries = STANDBY, SENTRIES + [THIRD]
    for name in ("internet", signer, VALIDATOR):
        on(name, "systemctl", "stop", "litecoind")
    wait_for(lambda: all(health(name) == 503 for name in sentries), timeout=60, message="the sentries to lose their peers")
    bound = 20
    proc = playbook(lab, "site.yml", "--limit", signer, "-e", "chainops_site_sentry_health_timeout=%d" % bound, check=False)
    assert proc.returncode != 0
    match = re.search(r"%s does not start signing: 0 of its sentries \((?P<asked>[^)]*)\) answered /health 200 "
                      r"after (?P<waited>\d+) s of waiting \(bound %d s\), 1 needed\. Last seen: (?P<seen>[^\"]*)" % (signer, bound),
                      proc.stdout)
    assert match, proc.stdout[-4000:]
    assert match["asked"].split(", ") == sentries
    assert bound <= int(match["waited"]) <= bound + 20
    seen = dict(part.split(": ", 1) for part in match["seen"].split(" | "))
    assert sorted(seen) == sentries
    for name in sentries:
        assert seen[name].startswith("HTTP 503:") and "peers: 0 peers, minimum is 1" in seen[name], seen
    assert not node_active(signer)


def test_down_leaves_nothing(lab):
    port = int(lab["env"]["LAB_MOTO_PORT"])
    run_lab("down", lab["env"])
    assert subprocess.run(["podman", "ps", "-aq", "--filter", "label=chainops.lab=" + NAME], capture_output=True, text=True,
                          check=True).stdout.strip() == ""
    assert NAME not in subprocess.run(["podman", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                                      check=True).stdout.split()
    assert not lab["state"].exists()
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2)
