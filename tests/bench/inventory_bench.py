#!/usr/bin/env python
"""Benchmark: chainops.validator.ec2_topology against amazon.aws.aws_ec2 on the same 5,000-instance fleet.

Standalone script (not a pytest test): ``python tests/bench/inventory_bench.py [--quick]``.

* Starts its own ``moto_server`` on a free loopback port and seeds it with 5,000 instances over three
  regions (validator clusters spread over AZs, standbys, public and RPC nodes, some stopped ones).
* Puts a small counting proxy between the inventories and moto, so API calls are counted on the wire.
* Runs ``ansible-inventory`` for each plugin, configured for the same hosts and groups, and measures the
  inventory process's own CPU (its rusage from ``wait4``: moto and the proxy are other processes /
  threads of this one and are not included) and wall time. Cold runs query moto; warm runs hit a
  jsonfile cache. It checks both inventories have the same hosts, groups and ``ansible_host``.
* Prints a table, then the ratios last.

moto is far slower than AWS (it dominates wall time) and pages DescribeInstances by reservation, not
by instance; both are reported as they are.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import boto3
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "testlib"))
from chainops_testlib import link_collection  # noqa: E402 - tests/testlib
from moto_proxy import MotoProxy  # noqa: E402 - tests/testlib
from moto_server import MotoServer, unwrap_unsafe  # noqa: E402 - tests/testlib, shared with tests/conftest.py

BIN = Path(sys.executable).parent
AMI = "ami-12c6146b"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"]
TOTAL = 5000
CHAINS = [("cosmoshub", "mainnet"), ("celestia", "mocha")]


# ---------------------------------------------------------------- moto and the counting proxy


class CountingProxy(MotoProxy):
    """The shared moto proxy; take() hands over the requests per (API action, region) since the last take."""

    def take(self):
        with self.lock:
            taken, self.requests = self.requests, []
        return Counter((request["action"] or "?", request["region"] or "?") for request in taken)


# ---------------------------------------------------------------- seeding


def seed(endpoint, total=TOTAL):
    """``total`` instances (5,000); returns facts used to check the inventories and the API-call minimum."""
    expected = {"running": 0, "stopped": 0, "reservations": Counter(), "running_by_region": Counter()}
    per_region = [total // len(REGIONS) + (1 if i < total % len(REGIONS) else 0) for i in range(len(REGIONS))]
    for region, quota in zip(REGIONS, per_region):
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
        azs = [region + s for s in "abc"]
        made = 0

        def run(count, az, tags):
            nonlocal made
            resp = ec2.run_instances(
                ImageId=AMI, MinCount=count, MaxCount=count, InstanceType="m6i.large", Placement={"AvailabilityZone": az},
                TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
            made += count
            expected["reservations"][region] += 1
            return [i["InstanceId"] for i in resp["Instances"]]

        for c in range(40):  # 40 clusters per region: validator + 3 sentries in 3 AZs (+ a standby for every 5th)
            chain, network = CHAINS[c % 2]
            cluster = "%s-%s-%02d" % (chain[:6], region.replace("-", ""), c)
            base = {"Chain": chain, "Network": network, "Cluster": cluster}
            run(1, azs[c % 3], dict(base, Name=cluster + "-validator", Role="validator"))
            for s in range(3):
                run(1, azs[(c + s) % 3], dict(base, Name="%s-sentry-%d" % (cluster, s + 1), Role="sentry"))
            if c % 5 == 0:
                run(1, azs[(c + 1) % 3], dict(base, Name=cluster + "-standby", Role="standby"))
        for p in range(5):
            chain, network = CHAINS[p % 2]
            run(1, azs[p % 3], {"Name": "public-%s-%d" % (region, p), "Role": "public", "Chain": chain, "Network": network})
        run(1, azs[0], {"Name": "bastion-" + region})  # no Role: a plain host
        stopped = run(20, azs[1], {"Role": "rpc", "Chain": "cosmoshub", "Network": "mainnet", "Decommissioned": "yes"})
        ec2.stop_instances(InstanceIds=stopped)
        expected["stopped"] += len(stopped)
        b = 0
        while made < quota:  # RPC fleet, no Name tag: named by instance ID
            chain, network = CHAINS[b % 2]
            run(min(100, quota - made), azs[b % 3], {"Role": "rpc", "Chain": chain, "Network": network})
            b += 1
        expected["running"] += made - len(stopped)
        expected["running_by_region"][region] = made - len(stopped)
        print("  seeded %-15s %5d instances (%d reservations)" % (region, made, expected["reservations"][region]), flush=True)
        expected["seeded"] = expected.get("seeded", 0) + made
    return expected


# ---------------------------------------------------------------- configurations


def configs(endpoint, cache_dir):
    ours = {"plugin": "chainops.validator.ec2_topology", "regions": REGIONS, "endpoint_url": endpoint}
    aws = {
        "plugin": "amazon.aws.aws_ec2",
        "regions": REGIONS,
        "endpoint_url": endpoint,
        "filters": {"instance-state-name": "running"},
        "hostnames": ["tag:Name", "instance-id"],
        "compose": {"ansible_host": "private_ip_address"},
        # The same groups as ec2_topology builds natively (roles are lower-case in this fleet).
        "groups": {
            "validators": "tags.get('Role') == 'validator'",
            "sentries": "tags.get('Role') == 'sentry'",
            "standbys": "tags.get('Role') == 'standby'",
            "public_nodes": "tags.get('Role') == 'public'",
            "rpc_nodes": "tags.get('Role') == 'rpc'",
        },
        "keyed_groups": [
            {"key": "tags.Chain", "prefix": "chain"},
            {"key": "tags.Network", "prefix": "network"},
            {"key": "tags.Cluster", "prefix": "cluster"},
            {"key": "placement.availability_zone", "prefix": "az"},
            {"key": "placement.region", "prefix": "region"},
        ],
    }
    aws_bare = {k: v for k, v in aws.items() if k not in ("compose", "groups", "keyed_groups")}
    cache = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_timeout": 86400}
    return {
        "ours-cached": dict(ours, cache_connection=str(cache_dir / "ours"), **cache),
        "aws_ec2-cached": dict(aws, cache_connection=str(cache_dir / "aws"), **cache),
        "aws_ec2-bare": aws_bare,
    }


# ---------------------------------------------------------------- measuring


def run_inventory(workdir, env, name, config, command, capture):
    path = workdir / ("%s.%s.yml" % (name, "aws_ec2" if config["plugin"] == "amazon.aws.aws_ec2" else "ec2_topology"))
    path.write_text(yaml.safe_dump(config))
    out_path = workdir / ("%s%s.out" % (name, command.replace("-", "_")))
    with open(out_path, "wb") as out, open(workdir / (name + ".err"), "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen([str(BIN / "ansible-inventory"), "-i", str(path), command], stdout=out, stderr=err, env=env, cwd=workdir)
        status, usage = os.wait4(proc.pid, 0)[1:]  # the child's own rusage: not moto's, not ours
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit("%s failed:\n%s" % (name, (workdir / (name + ".err")).read_text()[-3000:]))
    data = json.loads(out_path.read_text()) if capture else None
    return {"cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime, "wall": wall, "data": data}


def by_action(calls):
    """Counter of (action, region) -> {action: count}."""
    return dict(Counter(action for action, _region in calls.elements()))


def compare(ours, aws):
    """Same hosts, same membership of every ec2_topology group, same ansible_host."""
    ours, aws = unwrap_unsafe(ours), unwrap_unsafe(aws)
    problems = []
    hosts_o, hosts_a = set(ours["_meta"]["hostvars"]), set(aws["_meta"]["hostvars"])
    if hosts_o != hosts_a:
        problems.append("hosts differ: %d only in ours, %d only in aws_ec2" % (len(hosts_o - hosts_a), len(hosts_a - hosts_o)))
    groups = [g for g in ours if g not in ("_meta", "all", "ungrouped")]
    for group in groups:
        if set(ours[group].get("hosts", [])) != set(aws.get(group, {}).get("hosts", [])):
            problems.append("group %s differs" % group)
    extra = set(aws) - set(ours) - {"aws_ec2", "ungrouped"}
    if extra:
        problems.append("groups only in aws_ec2: %s" % sorted(extra))
    for host in hosts_o & hosts_a:
        if ours["_meta"]["hostvars"][host].get("ansible_host") != aws["_meta"]["hostvars"][host].get("ansible_host"):
            problems.append("ansible_host differs for %s" % host)
            break
    return len(hosts_o), len(groups), problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="skip the bare aws_ec2 run and the --graph runs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--instances", type=int, default=TOTAL, help="fleet size (default %(default)s; smaller for a smoke run)")
    args = parser.parse_args()

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    workdir = Path(tempfile.mkdtemp(prefix="inventory-bench-"))
    link_collection(workdir / "collections")
    site = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "ansible_collections").is_dir())
    (workdir / "ansible.cfg").write_text("")
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH="%s:%s" % (workdir / "collections", site),
        ANSIBLE_CONFIG=str(workdir / "ansible.cfg"),
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS="silently",  # both get valid group names, e.g. az_us_east_1a
        ANSIBLE_DEPRECATION_WARNINGS="false",
        ANSIBLE_NOCOLOR="1",
        AWS_CONFIG_FILE=str(workdir / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-aws-credentials"),
    )

    moto = MotoServer()
    moto_url = moto.start()
    try:
        print("seeding moto with %d instances over %s ..." % (args.instances, ", ".join(REGIONS)), flush=True)
        t0 = time.monotonic()
        expected = seed(moto_url, args.instances)
        print("  done in %.0f s; %d running, %d stopped" % (time.monotonic() - t0, expected["running"], expected["stopped"]), flush=True)
        proxy = CountingProxy(moto_url, timeout=1800)
        cfg = configs(proxy.url, workdir / "cache")

        # Cold runs have caching on, so they also pay for writing the cache (both plugins alike).
        plan = [
            ("ours", "ours-cached", "--list", True),
            ("aws_ec2", "aws_ec2-cached", "--list", True),
            ("ours warm (cache hit)", "ours-cached", "--list", False),
            ("aws_ec2 warm (cache hit)", "aws_ec2-cached", "--list", False),
        ]
        if not args.quick:
            plan += [
                ("ours warm --graph", "ours-cached", "--graph", False),
                ("aws_ec2 warm --graph", "aws_ec2-cached", "--graph", False),
                ("aws_ec2 bare (hosts only)", "aws_ec2-bare", "--list", False),
            ]
        results = {}
        for label, key, command, capture in plan:
            print("running %-28s ..." % label, end=" ", flush=True)
            res = run_inventory(workdir, env, key, cfg[key], command, capture)
            calls = proxy.take()
            res["calls"] = calls
            results[label] = res
            print("cpu %6.2f s  wall %6.1f s  calls %s" % (res["cpu"], res["wall"], by_action(calls) or 0), flush=True)

        hosts, groups, problems = compare(results["ours"]["data"], results["aws_ec2"]["data"])
        print()
        print("same inventory: %d hosts, %d ec2_topology groups compared with aws_ec2 -> %s"
              % (hosts, groups, "identical" if not problems else "DIFFERENT: " + "; ".join(problems[:10])))
        if hosts != expected["running"]:
            print("!! expected %d running hosts, got %d" % (expected["running"], hosts))
        moto_min = sum(math.ceil(n / 1000) for n in expected["reservations"].values())
        aws_min = sum(math.ceil(n / 1000) for n in expected["running_by_region"].values())
        print("API-call minimum: %d DescribeInstances on moto (it pages by reservation: %s); %d on AWS (pages of 1000 instances)"
              % (moto_min, dict(expected["reservations"]), aws_min))

        print()
        print("%-30s %10s %10s %10s  %s" % ("run", "CPU s", "user s", "wall s", "API calls (action: count)"))
        for label, res in results.items():
            calls = by_action(res["calls"])
            print("%-30s %10.2f %10.2f %10.1f  %s" % (label, res["cpu"], res["user"], res["wall"], calls or 0))

        def ratio(a, b, field):
            x, y = results[a][field], results[b][field]
            return x / y if y else float("nan")

        def n_calls(label):
            return sum(results[label]["calls"].values())

        print()
        print("ratios (ec2_topology / aws_ec2, same hosts and groups; lower is better):")
        print("  API calls, cold --list      : %d / %d" % (n_calls("ours"), n_calls("aws_ec2")))
        print("  API calls, warm --list      : %d / %d" % (n_calls("ours warm (cache hit)"), n_calls("aws_ec2 warm (cache hit)")))
        if not args.quick:
            print("  own CPU vs bare aws_ec2     : %.3f  (aws_ec2 with no compose/groups: %.2f s)"
                  % (ratio("ours", "aws_ec2 bare (hosts only)", "cpu"), results["aws_ec2 bare (hosts only)"]["cpu"]))
            print("  own CPU, warm --graph       : %.3f" % ratio("ours warm --graph", "aws_ec2 warm --graph", "cpu"))
        print("  own CPU, warm --list        : %.3f" % ratio("ours warm (cache hit)", "aws_ec2 warm (cache hit)", "cpu"))
        print("  wall time, cold --list      : %.3f  (target < 1)" % ratio("ours", "aws_ec2", "wall"))
        print("  own CPU, cold --list        : %.3f  (target <= 0.2)" % ratio("ours", "aws_ec2", "cpu"))
    finally:
        moto.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print("work directory kept: %s" % workdir)


if __name__ == "__main__":
    main()
