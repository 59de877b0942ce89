"""`make lab` end to end: the lab built by the real playbooks on moto and podman, then the operations
an operator runs on it (check mode, double-sign guard, rolling upgrade with a broken build, failover),
then `lab.sh down` leaving nothing behind. Tests run in file order on one lab."""
from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import boto3
import pytest
from chainops_testlib import recap, wait_for
from moto_server import free_port

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab" / "lab.sh"
NAME = "chainops-labtest"
VALIDATOR, STANDBY, SENTRIES = "ltc-validator", "ltc-standby", ["ltc-sentry-1", "ltc-sentry-2"]
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
