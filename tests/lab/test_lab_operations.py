"""The operations an operator runs, on the lab tests/lab/test_lab_topology.py has checked (three
sentries by then): a fleet of two RPC nodes behind a real load balancer (HAProxy checking /health),
one of which falls behind and comes back, a rolling upgrade whose build is broken on the second host, a
validator failover, and the signer's fault tests: a dead signer, two failovers at once, a crash-looping
signer, a signer cut off from the controller; then the bounded wait for healthy sentries and `lab.sh down`.
In the fault tests a SignerWatch reads from /proc which hosts run litecoind at each instant; EC2's stop
and start (moto) power the instances' containers off and on (lab/ec2_power.py).
Tests run in file order on one lab; each fault test starts from the signer the one before left."""
from __future__ import annotations

import json
import re
import subprocess

from chainops_testlib import open_tcp_ports, recap, wait_for
from labkit import (CLI, FLEET, HUBS, ROOT, SENTRIES, STANDBY, THIRD, VALIDATOR, SignerWatch, assert_down_leaves_nothing,
                    assert_refused_by_the_start_check, status_rows, world)

NEW_VERSION = "0.21.2.1-1+b1+lab1"
CHECK_INTERVAL = 2  # lab/balancer.yml: inter 2s, fall 2, rise 2
# Runs inside the balancer container: when the node's /health first answers 503 and when HAProxy first
# reports its server DOWN, on one clock (a `podman exec` between two readings can take seconds on a
# loaded machine). Gives up after 60 s and says what it last saw.
WATCH_DOWN = r"""
import csv, io, json, sys, time, urllib.error, urllib.request
health, server = "http://%s:9680/health" % sys.argv[1], sys.argv[2]
def health_status():
    try:
        return urllib.request.urlopen(health, timeout=2).status
    except urllib.error.HTTPError as error:
        return error.code
def haproxy_status():
    text = urllib.request.urlopen("http://127.0.0.1:8404/stats;csv", timeout=2).read().decode()
    return next(r["status"] for r in csv.DictReader(io.StringIO(text.lstrip("# "))) if r["pxname"] == "fleet" and r["svname"] == server)
seen = {"first_503": None, "first_down": None}
deadline = time.monotonic() + 60
while time.monotonic() < deadline and seen["first_down"] is None:
    seen["health"] = health_status()
    if seen["first_503"] is None and seen["health"] == 503:
        seen["first_503"] = time.monotonic()
    seen["haproxy"] = haproxy_status()
    if seen["first_503"] is not None and seen["haproxy"].startswith("DOWN"):
        seen["first_down"] = time.monotonic()
    time.sleep(0.2)
print(json.dumps(seen))
"""


def test_the_fleet_is_provisioned_with_its_records_groups_and_load_balancer(lab):
    ec2, r53, elb = lab.client("ec2"), lab.client("route53"), lab.client("elbv2")
    ids = lab.instance_ids()
    lb_cidr = world(lab)["lab_lb_cidr"]
    groups = {g["GroupName"]: g for g in ec2.describe_security_groups(Filters=[{"Name": "tag:Lab", "Values": [lab.name]}])["SecurityGroups"]}
    node_group = groups["ltc-rpc-node"]
    rules = {(p["IpProtocol"], p["FromPort"], r.get("CidrIp") or r.get("CidrIpv6") or r.get("GroupId"))
             for p in node_group["IpPermissions"] for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", []) + p.get("UserIdGroupPairs", [])}
    assert rules == {("tcp", 19444, "0.0.0.0/0"), ("tcp", 19444, "::/0"),
                     ("tcp", 19443, lb_cidr), ("tcp", 9680, lb_cidr), ("tcp", 22, world(lab)["lab_admin_cidr"])}
    zone = r53.list_hosted_zones_by_name(DNSName=lab.name + ".test")["HostedZones"][0]["Id"]
    names = {s["Name"].rstrip(".") for s in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"] if s["Type"] == "A"}
    assert names == {"ltc-rpc-1.%s.test" % lab.name, "ltc-rpc-2.%s.test" % lab.name}
    group = elb.describe_target_groups(Names=["ltc-rpc-tg"])["TargetGroups"][0]
    assert (group["HealthCheckPath"], str(group["HealthCheckPort"])) == ("/health", "9680")
    targets = {t["Target"]["Id"] for t in elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]}
    assert targets == {ids[name] for name in FLEET}
    rows = status_rows(lab.first.stdout)
    for name in FLEET:
        assert rows[name]["node"] == "active" and rows[name]["/health"] == "200", rows[name]
        assert re.search(r"%s\s+rpc\s+\S+\s+open: 19444\s+ok" % name, lab.first.stdout)  # RPC and health: not from the internet


def test_the_fleet_hosts_firewall_comes_from_the_same_plan(lab):
    lb_cidr = world(lab)["lab_lb_cidr"]
    for name in FLEET:
        ruleset = lab.on(name, "cat", "/etc/chainops/firewall.nft")
        assert "rendered from the port model" in ruleset and "provision plan" in ruleset, name
        live = lab.on(name, "nft", "list", "table", "inet", "chainops")
        assert re.search(r"ip saddr %s tcp dport 9680 accept" % re.escape(lb_cidr), live), live
        assert re.search(r"ip saddr %s tcp dport 19443 accept" % re.escape(lb_cidr), live), live
    # From the load balancer's network the RPC and the health check answer; from the internet only P2P.
    target, listening = lab.name + "-" + FLEET[0], lab.listening(FLEET[0])
    assert open_tcp_ports(lab.host("balancer"), target, 19443, 19444, listening) == [19443, 19444]
    assert open_tcp_ports(lab.host("balancer"), target, 9680, 9680, listening) == [9680]
    assert open_tcp_ports(lab.host("internet"), target, 9600, 19500, listening) == [19444]


def test_the_balancer_takes_a_node_that_falls_behind_out_and_back(lab):
    """Cut off from its peers while the chain advances, a node's /health turns 503; HAProxy marks it down
    within two check intervals and sends it nothing; reconnected, it catches up and comes back."""
    laggard, other = FLEET
    wait_for(lambda: all(server["status"] == "UP" for server in lab.balancer().values()), timeout=60, message="both nodes UP")
    lab.on(laggard, *CLI, "setnetworkactive", "false")
    try:
        seen = json.loads(lab.on("balancer", "python3", "-c", WATCH_DOWN, "%s-%s" % (lab.name, laggard), laggard))
        assert seen["first_503"] is not None, "the cut-off node's /health did not turn 503 within 60 s: %s" % seen
        assert seen["first_down"] is not None, "HAProxy did not mark it DOWN within 60 s: %s" % seen
        assert seen["first_down"] - seen["first_503"] <= 2 * CHECK_INTERVAL + 1.5, "not within two check intervals: %s" % seen
        lab.mine("internet", 5)
        before = {name: lab.balancer()[name]["sessions"] for name in FLEET}
        for _request in range(6):
            lab.on("balancer", "python3", "-c", "import socket; s = socket.create_connection(('127.0.0.1', 19443), 3); s.close()")
        after = {name: lab.balancer()[name]["sessions"] for name in FLEET}
        assert after[laggard] == before[laggard] and after[other] >= before[other] + 6, (before, after)
    finally:
        lab.on(laggard, *CLI, "setnetworkactive", "true")
    wait_for(lambda: lab.height(laggard) == lab.height("internet"), timeout=120, message="the node to catch up")
    wait_for(lambda: lab.balancer()[laggard]["status"] == "UP", timeout=60, message="HAProxy to take it back")


def test_rolling_upgrade_stops_at_the_broken_host(lab):
    script = (ROOT / "tests" / "lab" / "make_upgrade_repo.sh").read_text()
    subprocess.run(["podman", "exec", "-i", "%s-internet" % lab.name, "bash", "-s", NEW_VERSION], input=script, text=True,
                   capture_output=True, timeout=300, check=True)
    for host in SENTRIES + [THIRD, VALIDATOR, STANDBY]:
        repo = "broken" if host == SENTRIES[1] else "good"
        lab.on(host, "sh", "-c", "echo 'deb [trusted=yes] http://%s-internet:8080/%s ./' > /etc/apt/sources.list.d/lab-upgrade.list" % (lab.name, repo))
    old = lab.installed_version(VALIDATOR)
    before = {h: lab.started_at(h) for h in [VALIDATOR]}
    arn, elb = lab.target_group()
    proc = lab.playbook("rolling_upgrade.yml", "-e", "node_version=" + NEW_VERSION, "-e", "node_wait_timeout=20",
                        "-e", "chainops_upgrade_target_group_arn=" + arn, check=False)
    assert proc.returncode != 0
    assert "Rolling upgrade to %s stopped at %s" % (NEW_VERSION, SENTRIES[1]) in proc.stdout, proc.stdout[-5000:]
    # The upgraded sentry is back in the load balancer; the broken one stays out until fixed.
    serving = {t["Target"]["Id"] for t in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
               if t["TargetHealth"]["State"] != "draining"}
    assert serving == {lab.instance_ids()[SENTRIES[0]]}
    assert lab.installed_version(SENTRIES[0]) == NEW_VERSION and lab.node_active(SENTRIES[0]) and lab.health(SENTRIES[0]) == 200
    assert lab.installed_version(SENTRIES[1]) == NEW_VERSION and not lab.node_active(SENTRIES[1])  # the broken build
    for host in (VALIDATOR, STANDBY):  # after the failure: untouched
        assert lab.installed_version(host) == old
    assert lab.started_at(VALIDATOR) == before[VALIDATOR] and lab.health(VALIDATOR) == 200


def failover_args(old, new, *extra):
    return ("validator_failover.yml", "-e", "chainops_failover_from=" + old, "-e", "chainops_failover_to=" + new,
            "-e", "chainops_failover_wait_seconds=1", "-e", "signer_fence_wait_timeout=60", *extra)


def assert_one_signer_moved(watch, old, new):
    """From the watch: old ran litecoind first, new last, never both at once."""
    assert watch.most == 1 and watch.timeline[0][1] == {old} and watch.timeline[-1][1] == {new}, watch.timeline


# The client's own double-sign state (signer carry): litecoind has none, so the lab's failovers carry a
# CometBFT priv_validator_state.json placed on both hubs; the client that would read it cannot run here.
STATE_DIR = "/var/lib/chainops-carry"
CARRY = ("-e", "signer_state_format=cometbft", "-e", "signer_state_file=%s/priv_validator_state.json" % STATE_DIR)


def cometbft_state(height, step=3):
    return json.dumps({"height": str(height), "round": 0, "step": step, "signature": "c2lnbmF0dXJl", "signbytes": "0A0B%04X" % height})


def place_state(lab, host, text):
    lab.on(host, "sh", "-c", "install -d -o daemon -g daemon -m 0700 %s && printf '%%s' '%s' > %s/priv_validator_state.json"
           % (STATE_DIR, text, STATE_DIR))


def state_on(lab, host):
    return lab.on(host, "stat", "-c", "%U:%G %a", STATE_DIR + "/priv_validator_state.json"), lab.on(host, "cat", STATE_DIR + "/priv_validator_state.json")


def test_failover_moves_the_signer(lab):
    secrets = [key for name in HUBS for key in lab.secrets_of(name)]
    place_state(lab, VALIDATOR, cometbft_state(36))
    place_state(lab, STANDBY, cometbft_state(20))
    with SignerWatch(lab, HUBS) as watch:
        proc = lab.playbook(*failover_args(VALIDATOR, STANDBY, "-vvv", *CARRY))
    assert secrets and not [key for key in secrets if key in proc.stdout + proc.stderr], "a key is in the -vvv output"
    assert_one_signer_moved(watch, VALIDATOR, STANDBY)
    assert not lab.node_active(VALIDATOR) and lab.node_active(STANDBY)
    # The old signer gave its lease back (token kept) and the standby took it: token 2, in S3 and on the host.
    lease = lab.lease()
    assert (lease["holder"], lease["token"]) == (STANDBY, 2) and "previous_holder" not in lease and "failover" not in lease, lease
    assert lab.signer_token(VALIDATOR) is None and lab.signer_token(STANDBY)["token"] == 2
    # The old signer's last signature (height 36) was newer than the standby's (20): carried, 0600.
    assert state_on(lab, STANDBY) == ("daemon:daemon 600", cometbft_state(36))
    start = lab.height(SENTRIES[0])
    lab.on("internet", *CLI, "generatetodescriptor", "3", "raw(51)")
    wait_for(lambda: lab.height(STANDBY) >= start + 3, message="the new signer to follow the chain through the sentries")
    # Re-tagged as the playbook says, site.yml agrees with the new signer and keeps the old one stopped.
    lab.retag({VALIDATOR: "standby", STANDBY: "validator"})
    lab.playbook("site.yml", "--limit", "%s,%s" % (VALIDATOR, STANDBY))
    assert lab.node_active(STANDBY) and not lab.node_active(VALIDATOR)
    wait_for(lambda: lab.health(STANDBY) == 200, timeout=60, message="the new signer's /health")


def test_a_dead_signer_is_fenced_and_does_not_sign_when_it_comes_back(lab):
    """Power cut on the signer (its container killed): the failover cannot reach it, so it stops its
    instance through the EC2 API (moto) and takes the lease over (token 3) before the other host starts.
    Started again through EC2, the dead host does not sign: its token was in /run, its node is not
    enabled at boot, and a hand start is refused."""
    dead, new = STANDBY, VALIDATOR  # after the failover above, ltc-standby signs (tagged validator)
    dead_id = lab.instance_ids()[dead]
    subprocess.run(["podman", "kill", "%s-%s" % (lab.name, dead)], capture_output=True, timeout=120, check=True)
    lab.playbook(*failover_args(dead, new))
    ec2 = lab.client("ec2")
    instance = ec2.describe_instances(InstanceIds=[dead_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "stopped"
    assert " stop" in {t["Key"]: t["Value"] for t in instance["Tags"]}["chainops:fenced"]
    lease = lab.lease()
    assert (lease["holder"], lease["token"], lease["previous_holder"]) == (new, 3, dead), lease
    assert lab.node_active(new) and lab.signer_token(new)["token"] == 3
    # The operator brings the dead machine back through EC2 (lab/ec2_power.py starts its container).
    ec2.start_instances(InstanceIds=[dead_id])
    wait_for(lambda: lab.on(dead, "systemctl", "is-system-running", check=False) in ("running", "degraded"), timeout=120,
             message="the restarted host to boot")
    assert not lab.node_active(dead) and lab.signer_token(dead) is None
    subprocess.run(["podman", "exec", "%s-%s" % (lab.name, dead), "systemctl", "start", "litecoind"],
                   capture_output=True, text=True, timeout=120, check=False)
    assert_refused_by_the_start_check(lab, dead)
    assert lab.node_active(new)
    lab.retag({VALIDATOR: "validator", STANDBY: "standby"})


def test_two_failovers_at_once_move_the_signer_once(lab):
    """Two controllers start the same failover at the same moment (two operators answering one alert).
    One run claims the cluster's lease and moves the signer; the other is refused at the claim (or, if it
    comes late, at the lease already moved) and changes nothing on any host."""
    with SignerWatch(lab, HUBS) as watch:
        runs = lab.playbooks_at_once(failover_args(VALIDATOR, STANDBY), failover_args(VALIDATOR, STANDBY))
    assert sorted(run.returncode == 0 for run in runs) == [False, True], [run.stdout[-3000:] for run in runs]
    loser = next(run for run in runs if run.returncode != 0)
    assert re.search(r"another failover of cluster ltc is under way: a failover from %s to %s \(run [\w.:-]+\) claimed it"
                     % (VALIDATOR, STANDBY), loser.stdout) or (
        "cannot fail cluster ltc over from %s: the signer lease is held by %s" % (VALIDATOR, STANDBY) in loser.stdout), loser.stdout[-4000:]
    assert all(counts["changed"] == 0 for counts in recap(loser.stdout).values()), recap(loser.stdout)
    assert_one_signer_moved(watch, VALIDATOR, STANDBY)
    lease = lab.lease()
    assert (lease["holder"], lease["token"]) == (STANDBY, 4) and "failover" not in lease, lease


CRASH_LOOP = "while :; do pkill -KILL -x litecoind; sleep 2; done"
# A node that cannot be stopped from the host: systemctl stop is refused (systemd's RefuseManualStop).
REFUSE_STOP = ("mkdir -p /run/systemd/system/litecoind.service.d && printf '[Unit]\\nRefuseManualStop=yes\\n' "
               "> /run/systemd/system/litecoind.service.d/zz-lab-refuse-stop.conf && systemctl daemon-reload")


def test_a_crash_looping_signer_is_refused_until_it_is_fenced(lab):
    """The signer's node crash-loops for real (litecoind killed every 2 s, restarted by systemd after
    5 s: mostly activating, sometimes running) and cannot be stopped from the host. A failover whose
    operator vouches that it is down (chainops_failover_unfenced) skips the fence, and the guard refuses
    to start the other host, naming the crash-looping signer. The same run, resumed without that word,
    fences it through EC2 (its machine powered off) and only then starts the other host. Powered on
    again, the fenced host does not sign."""
    looping, other = STANDBY, VALIDATOR  # after the failovers above, ltc-standby signs (tagged standby)
    looping_id = lab.instance_ids()[looping]
    lab.retag({looping: "validator", other: "standby"})
    lab.on(looping, "sh", "-c", REFUSE_STOP)
    lab.on(looping, "sh", "-c", "setsid sh -c '%s' >/dev/null 2>&1 < /dev/null &" % CRASH_LOOP)
    wait_for(lambda: int(lab.on(looping, "systemctl", "show", "-p", "NRestarts", "--value", "litecoind") or 0) >= 1, timeout=60,
             message="systemd to restart the killed litecoind")
    place_state(lab, other, cometbft_state(50))  # the fenced signer's state cannot be read: this one is kept
    run = ("-e", "chainops_failover_run=lab-crash-loop", *CARRY)
    with SignerWatch(lab, HUBS) as watch:
        proc = lab.playbook(*failover_args(looping, other, "-e", "chainops_failover_unfenced=" + looping, *run), check=False)
        assert proc.returncode != 0
        assert "Operation refused" in proc.stdout, proc.stdout[-4000:]  # the release could not stop it
        match = re.search(r"Double-sign guard: %s of cluster ltc is running as the signing validator \(node (?P<state>[\w/-]+)\)"
                          % looping, proc.stdout)
        assert match and not match["state"].startswith("inactive/"), proc.stdout[-4000:]
        assert other not in {host for _seconds, hosts in watch.timeline for host in hosts}, watch.timeline
        assert lab.lease()["holder"] == looping and lab.lease()["failover"]["run"] == "lab-crash-loop"
        lab.playbook(*failover_args(looping, other, *run))
    assert watch.timeline[-1][1] == {other} and watch.most == 1, watch.timeline
    ec2 = lab.client("ec2")
    instance = ec2.describe_instances(InstanceIds=[looping_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "stopped" and "chainops:fenced" in {t["Key"] for t in instance["Tags"]}
    lease = lab.lease()
    assert (lease["holder"], lease["token"], lease["previous_holder"], lease["last_failover"]["run"]) == (
        other, 5, looping, "lab-crash-loop"), lease
    assert state_on(lab, other) == ("root:root 644", cometbft_state(50))  # as placed: not written
    ec2.start_instances(InstanceIds=[looping_id])
    wait_for(lambda: lab.on(looping, "systemctl", "is-system-running", check=False) in ("running", "degraded"), timeout=120,
             message="the fenced host to boot")
    assert not lab.node_active(looping) and lab.signer_token(looping) is None and lab.node_active(other)
    lab.retag({other: "validator", looping: "standby"})


def test_a_signer_cut_off_from_the_controller_is_fenced_before_another_signs(lab, tmp_path):
    """The signer runs but the controller cannot reach it (its connection points nowhere). The failover
    fences it through EC2, which powers its machine off, and only then does the other host start: at no
    instant do both run litecoind. Back on, the fenced host does not sign."""
    cut, new = VALIDATOR, STANDBY  # after the test above, ltc-validator signs (token 5)
    assert lab.node_active(cut)
    cut_id = lab.instance_ids()[cut]
    with SignerWatch(lab, HUBS) as watch:
        proc = lab.playbook(*failover_args(cut, new, *lab.cut_off(cut, tmp_path)))
    assert "UNREACHABLE" in proc.stdout, proc.stdout[-3000:]
    assert_one_signer_moved(watch, cut, new)
    ec2 = lab.client("ec2")
    assert ec2.describe_instances(InstanceIds=[cut_id])["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"
    lease = lab.lease()
    assert (lease["holder"], lease["token"], lease["previous_holder"]) == (new, 6, cut), lease
    ec2.start_instances(InstanceIds=[cut_id])
    wait_for(lambda: lab.on(cut, "systemctl", "is-system-running", check=False) in ("running", "degraded"), timeout=120,
             message="the fenced host to boot")
    assert not lab.node_active(cut) and lab.signer_token(cut) is None and lab.node_active(new)
    lab.retag({cut: "standby", new: "validator"})


def test_signing_waits_a_bounded_time_for_healthy_sentries_and_says_why(lab):
    """No sentry can serve (the internet and both hubs' nodes stopped: the first and the third sentry have
    0 peers; the second still runs the broken build of the upgrade test): the validator does not start,
    within the bound, and the message names each sentry's own reasons."""
    signer, sentries = lab.lease()["holder"], SENTRIES + [THIRD]  # ltc-standby, since the test above
    for name in ("internet", VALIDATOR, STANDBY):
        lab.on(name, "systemctl", "stop", "litecoind")
    # The signers powered off in the tests above left half-open connections on the sentries, which litecoind
    # keeps as peers until its ping timeout (20 min): drop every connection; only live peers come back.
    for name in (SENTRIES[0], THIRD):
        lab.on(name, *CLI, "setnetworkactive", "false")
        lab.on(name, *CLI, "setnetworkactive", "true")
    wait_for(lambda: all(lab.health(name) == 503 for name in sentries), timeout=60, message="the sentries to lose their peers")
    bound = 20
    proc = lab.playbook("site.yml", "--limit", signer, "-e", "chainops_site_sentry_health_timeout=%d" % bound, check=False)
    assert proc.returncode != 0
    match = re.search(r"%s does not start signing: 0 of its sentries \((?P<asked>[^)]*)\) answered /health 200 "
                      r"after (?P<waited>\d+) s of waiting \(bound %d s\), 1 needed\. Last seen: (?P<seen>[^\"\n]*)" % (signer, bound),
                      proc.stdout)
    assert match, proc.stdout[-4000:]
    assert match["asked"].split(", ") == sentries
    assert bound <= int(match["waited"]) <= bound + 20
    seen = dict(part.split(": ", 1) for part in match["seen"].split(" | "))
    assert sorted(seen) == sentries
    for name in (SENTRIES[0], THIRD):
        assert seen[name].startswith("HTTP 503:") and "peers: 0 peers, minimum is 1" in seen[name], seen
    assert seen[SENTRIES[1]].startswith("HTTP 503: node_answers: node: [Errno 111] Connection refused"), seen
    assert not lab.node_active(signer)


def test_down_leaves_nothing(lab):
    assert_down_leaves_nothing(lab)
