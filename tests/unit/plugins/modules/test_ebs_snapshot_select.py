"""chainops.validator.ebs_snapshot_select against a real moto_server, run the real way.

Every case that talks to AWS runs `ansible-playbook` in a subprocess with tasks calling the module,
`endpoint_url` pointing at a loopback proxy in front of the `moto_server` fixture. Argument errors
run the module's main() in-process with `patch_module_args` (they fail before any AWS call). The proxy is honest plumbing:
it forwards every request unchanged and counts the API actions, and it can overlay the few facts
moto cannot produce. moto marks every snapshot `completed` at once, stamps StartTime with the
creation second and never leaves a volume `creating`; for those cases the proxy rewrites the
`status`/`progress`/`startTime` fields of chosen snapshots (and `status` of chosen volumes) in
the XML answer and then applies the request's `status` filter itself, the way EC2 would, after
removing it from what moto sees. Everything else (tags, owners, filters, pagination, AMIs,
deletion) is moto's own behaviour.

The retention tests import the proxy and the runner from here.
"""
from __future__ import annotations

import collections
import datetime
import http.client
import importlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import pytest
from ansible.module_utils.testing import patch_module_args

REPO_ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15"
MODULE = "chainops.validator.ebs_snapshot_select"
K_CHAIN, K_NET, K_HEIGHT = "chainops:chain", "chainops:network", "chainops:block-height"
K_VERIFIED, K_BAD = "chainops:verified", "chainops:bad"

ET.register_namespace("", EC2_NS)


# ---------------------------------------------------------------------------------------------
# Proxy in front of moto
# ---------------------------------------------------------------------------------------------


def _split_status_filter(pairs):
    """Take the `status` filter out of EC2 query parameters; returns (other pairs, status values or None)."""
    filters = collections.OrderedDict()
    rest = []
    for key, value in pairs:
        parts = key.split(".")
        if parts[0] == "Filter" and len(parts) >= 3:
            filters.setdefault(parts[1], []).append((parts[2:], value))
        else:
            rest.append((key, value))
    status = None
    kept = []
    for entries in filters.values():
        name = next(v for p, v in entries if p == ["Name"])
        values = [v for p, v in entries if p[0] == "Value"]
        if name == "status":
            status = values
        else:
            kept.append((name, values))
    for index, (name, values) in enumerate(kept, start=1):
        rest.append(("Filter.%d.Name" % index, name))
        rest.extend(("Filter.%d.Value.%d" % (index, n), v) for n, v in enumerate(values, start=1))
    return rest, status


class MotoProxy:
    """Loopback HTTP proxy to moto that counts actions and overlays what moto cannot model."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.lock = threading.Lock()
        self.reset()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, payload = proxy.handle("POST", self.path, dict(self.headers), body)
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        with self.lock:
            self.actions = collections.Counter()
            self.requests = []
            self.snapshots = {}  # snapshot id -> {xml field: value}
            self.volumes = {}  # volume id -> {xml field: value}
            self.hidden_images = set()
            self.apply_status_filter = True
            self.fast_restores = {}  # (snapshot id, zone) -> state; DescribeFastSnapshotRestores is answered from here

    def overlay_snapshot(self, snapshot_id, state=None, progress=None, start_time=None):
        fields = {}
        if state:
            fields["status"] = state
        if progress:
            fields["progress"] = progress
        if start_time:
            fields["startTime"] = start_time.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self.snapshots.setdefault(snapshot_id, {}).update(fields)

    def overlay_volume(self, volume_id, state):
        self.volumes.setdefault(volume_id, {})["status"] = state

    def handle(self, method, path, headers, body):
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        action = dict(pairs).get("Action", "?")
        with self.lock:
            self.actions[action] += 1
            self.requests.append((action, pairs))
        if action == "DescribeFastSnapshotRestores":  # moto does not implement fast snapshot restore
            return 200, [("Content-Type", "text/xml")], self._fast_restores(pairs)
        overlays = {"DescribeSnapshots": ("snapshotSet", "snapshotId", self.snapshots),
                    "DescribeVolumes": ("volumeSet", "volumeId", self.volumes)}.get(action)
        status_values = None
        if overlays and overlays[2]:
            # moto would filter on its own (always completed/available) status: filter here instead.
            pairs, status_values = _split_status_filter(pairs)
            body = urlencode(pairs).encode()
        headers = dict((k, v) for k, v in headers.items() if k.lower() not in ("host", "content-length"))
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        result_headers = response.getheaders()
        conn.close()
        if response.status == 200 and overlays and overlays[2]:
            payload = self._rewrite(payload, overlays, status_values)
        if response.status == 200 and action == "DescribeImages" and self.hidden_images:
            payload = self._hide_images(payload)
        return response.status, result_headers, payload

    def _rewrite(self, payload, overlays, status_values):
        set_name, id_field, table = overlays
        root = ET.fromstring(payload)
        item_set = root.find("{%s}%s" % (EC2_NS, set_name))
        if item_set is None:
            return payload
        for item in list(item_set.findall("{%s}item" % EC2_NS)):
            item_id = item.findtext("{%s}%s" % (EC2_NS, id_field))
            for field, value in table.get(item_id, {}).items():
                element = item.find("{%s}%s" % (EC2_NS, field))
                if element is None:
                    element = ET.SubElement(item, "{%s}%s" % (EC2_NS, field))
                element.text = value
            status = item.findtext("{%s}status" % EC2_NS)
            if status_values is not None and self.apply_status_filter and status not in status_values:
                item_set.remove(item)
        return ET.tostring(root, xml_declaration=True, encoding="utf-8")

    def _fast_restores(self, pairs):
        """DescribeFastSnapshotRestores as EC2 answers it, filtered by the request's snapshot-id and availability-zone."""
        filters = {}
        for key, value in pairs:
            parts = key.split(".")
            if parts[0] == "Filter" and parts[-1] == "Name":
                filters.setdefault(parts[1], {})["name"] = value
            elif parts[0] == "Filter" and parts[2] == "Value":
                filters.setdefault(parts[1], {}).setdefault("values", []).append(value)
        wanted = {f["name"]: f.get("values", []) for f in filters.values()}
        root = ET.Element("{%s}DescribeFastSnapshotRestoresResponse" % EC2_NS)
        ET.SubElement(root, "{%s}requestId" % EC2_NS).text = "fast-restores"
        found = ET.SubElement(root, "{%s}fastSnapshotRestoreSet" % EC2_NS)
        for (snapshot_id, zone), state in sorted(self.fast_restores.items()):
            if snapshot_id in wanted.get("snapshot-id", [snapshot_id]) and zone in wanted.get("availability-zone", [zone]):
                item = ET.SubElement(found, "{%s}item" % EC2_NS)
                for field, value in (("snapshotId", snapshot_id), ("availabilityZone", zone), ("state", state), ("ownerId", ACCOUNT)):
                    ET.SubElement(item, "{%s}%s" % (EC2_NS, field)).text = value
        return ET.tostring(root, xml_declaration=True, encoding="utf-8")

    def _hide_images(self, payload):
        root = ET.fromstring(payload)
        image_set = root.find("{%s}imagesSet" % EC2_NS)
        for item in list(image_set.findall("{%s}item" % EC2_NS)) if image_set is not None else []:
            if item.findtext("{%s}imageId" % EC2_NS) in self.hidden_images:
                image_set.remove(item)
        return ET.tostring(root, xml_declaration=True, encoding="utf-8")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def proxy(moto_server):
    server = MotoProxy(moto_server)
    yield server
    server.close()


@pytest.fixture
def aws(aws_env, proxy):
    """Fresh moto state, a clean proxy, and a boto3 EC2 client that talks to moto directly."""
    proxy.reset()
    return boto3.client("ec2", endpoint_url=aws_env, region_name=REGION)


# ---------------------------------------------------------------------------------------------
# Running the module through ansible-playbook
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory):
    """A private ANSIBLE_COLLECTIONS_PATH: this working tree plus the venv's amazon.aws."""
    root = tmp_path_factory.mktemp("collections")
    link = root / "ansible_collections" / "chainops" / "validator"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO_ROOT)
    site_packages = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    return "%s:%s" % (root, site_packages)


def run_tasks(tmp_path, collections_path, tasks, expect_rc=None):
    """Run tasks on localhost; returns {task name: result}. Tasks may fail (ignore_errors is set)."""
    playbook = [{
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [dict(task, ignore_errors=True) for task in tasks],
    }]
    path = tmp_path / ("play-%d.yml" % time.monotonic_ns())
    path.write_text(json.dumps(playbook))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_NOCOLOR="true",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        PATH="%s:%s" % (BIN, os.environ.get("PATH", "")),
    )
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(path)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    try:
        output = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook output is not JSON (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    results = {}
    for task in output["plays"][0]["tasks"]:
        results[task["task"]["name"]] = task["hosts"]["localhost"]
    assert len(results) == len(tasks), proc.stderr
    return results


def run_in_process(module, args, capsys):
    """Run a module's main() in this process (for argument errors: no AWS, and much faster)."""
    loaded = importlib.import_module("ansible_collections.chainops.validator.plugins.modules." + module.split(".")[-1])
    with patch_module_args(dict(args, region=REGION)), pytest.raises(SystemExit):
        loaded.main()
    return json.loads(capsys.readouterr().out)


def task(name, module=MODULE, check_mode=False, **args):
    args.setdefault("region", REGION)
    return {"name": name, module: args, "check_mode": check_mode}


def with_endpoint(proxy, **args):
    return dict(args, endpoint_url=proxy.url)


# ---------------------------------------------------------------------------------------------
# Seeding moto
# ---------------------------------------------------------------------------------------------


def make_snapshot(ec2, volume_id, tags):
    """One tagged snapshot of volume_id (tags given as a dict)."""
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": str(v)} for k, v in tags.items()]}]
    return ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"]


def chain_tags(chain="ethereum", network="mainnet", height=None, **extra):
    tags = {K_CHAIN: chain, K_NET: network}
    if height is not None:
        tags[K_HEIGHT] = height
    tags.update(extra)
    return tags


def volume(ec2, size=100):
    return ec2.create_volume(Size=size, AvailabilityZone=REGION + "a")["VolumeId"]


def foreign_snapshot(ec2):
    """A snapshot in this region that another account owns.

    moto registers its built-in AMIs (owned by Amazon's accounts) in every region, each with a
    root snapshot under that owner; it is listed by DescribeSnapshots whatever OwnerIds says.
    """
    for snapshot in ec2.describe_snapshots()["Snapshots"]:
        if snapshot["OwnerId"] != ACCOUNT:
            return snapshot["SnapshotId"], snapshot["OwnerId"]
    raise AssertionError("moto has no snapshot owned by another account in %s" % REGION)


def days_ago(days):
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)


def rejected(result):
    return dict((item["snapshot_id"], item["reasons"]) for item in result["rejected"])


# ---------------------------------------------------------------------------------------------
# The tricky dataset
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tricky(aws, proxy):
    """Every trap would win if the criterion guarding it were ignored.

    heights: pending 1300 > wrong network 1250 > other owner 1200 > bad 1150 > unverified 1100 >
    verified-but-old 1050 > verified-recent 900. Start times (overlaid, see module docstring)
    go from 5 days ago (verified-but-old) to now (pending).
    """
    vol = volume(aws)
    ids = {
        "verified_old": make_snapshot(aws, vol, chain_tags(height=1050, **{K_VERIFIED: "true"})),
        "verified_recent": make_snapshot(aws, vol, chain_tags(height=900, **{K_VERIFIED: "yes"})),
        "bad": make_snapshot(aws, vol, chain_tags(height=1150, **{K_VERIFIED: "true", K_BAD: "corrupt leveldb"})),
        "wrong_network": make_snapshot(aws, vol, chain_tags(network="goerli", height=1250, **{K_VERIFIED: "true"})),
        "unverified": make_snapshot(aws, vol, chain_tags(height=1100)),
        "pending": make_snapshot(aws, vol, chain_tags(height=1300, **{K_VERIFIED: "true"})),
    }
    other_id, other_owner = foreign_snapshot(aws)
    aws.create_tags(Resources=[other_id], Tags=[{"Key": k, "Value": str(v)} for k, v in
                                                chain_tags(height=1200, **{K_VERIFIED: "true"}).items()])
    ids["other_owner"] = other_id
    proxy.overlay_snapshot(ids["verified_old"], start_time=days_ago(5))
    proxy.overlay_snapshot(ids["verified_recent"], start_time=days_ago(0.5))
    proxy.overlay_snapshot(ids["bad"], start_time=days_ago(1))
    proxy.overlay_snapshot(ids["wrong_network"], start_time=days_ago(0.2))
    proxy.overlay_snapshot(ids["unverified"], start_time=days_ago(0.1))
    proxy.overlay_snapshot(ids["pending"], state="pending", progress="37%", start_time=days_ago(0))
    ids["other_owner_account"] = other_owner
    return ids


def test_tricky_dataset_picks_the_right_snapshot(tricky, proxy, tmp_path, collections_path):
    base = with_endpoint(proxy, chain="ethereum", network="mainnet")
    results = run_tasks(tmp_path, collections_path, [
        task("default", **base),
        task("verified", require_verified=True, **base),
        task("verified and recent", require_verified=True, max_age="2d", **base),
        task("check mode", check_mode=True, **base),
        task("other owner asked for", owner_ids=[tricky["other_owner_account"]], **base),
    ])
    default = results["default"]
    assert not default.get("failed") and default["changed"] is False
    # The pending (1300), wrong-network (1250), other-owner (1200) and bad (1150) traps all lose.
    assert default["snapshot_id"] == tricky["unverified"]
    assert default["snapshot"]["block_height"] == 1100
    assert [q["snapshot_id"] for q in default["qualified"]] == [
        tricky["unverified"], tricky["verified_old"], tricky["verified_recent"]]
    assert default["reason"] == "%s has the highest block height (1100) of 3 qualifying snapshots; next best is %s at 1050" % (
        tricky["unverified"], tricky["verified_old"])
    reasons = rejected(default)
    assert reasons[tricky["bad"]] == ["marked bad (chainops:bad='corrupt leveldb')"]
    # Server-side filters keep the pending and wrong-network snapshots out of the answer entirely.
    assert tricky["pending"] not in reasons and tricky["wrong_network"] not in reasons
    # moto ignores OwnerIds, so the other account's snapshot does come back; the client-side
    # owner check is what rejects it (real EC2 would not return it at all).
    assert reasons[tricky["other_owner"]] == ["owner %s is not an accepted owner" % tricky["other_owner_account"]]
    assert {"Name": "status", "Values": ["completed"]} in default["filters"]
    assert {"Name": "tag:chainops:network", "Values": ["mainnet"]} in default["filters"]
    assert default["owner_ids"] == ["self"]

    # Verified required: the higher (1050) but older snapshot beats the recent 900.
    verified = results["verified"]
    assert verified["snapshot_id"] == tricky["verified_old"]
    assert rejected(verified)[tricky["unverified"]] == ["not marked verified (chainops:verified is None)"]

    recent = results["verified and recent"]
    assert recent["snapshot_id"] == tricky["verified_recent"]
    # Exact age: 5 days plus the seconds the run took since the overlay was set.
    assert re.fullmatch(r"age 5d(\d+s)? exceeds max_age 2d", rejected(recent)[tricky["verified_old"]][0])

    assert results["check mode"]["snapshot_id"] == tricky["unverified"]
    assert results["check mode"]["changed"] is False

    other = results["other owner asked for"]
    assert other["snapshot_id"] == tricky["other_owner"]
    assert other["owner_ids"] == [tricky["other_owner_account"]]

    # One GetCallerIdentity per run that has 'self' among the owners, one DescribeSnapshots page
    # per run, nothing per snapshot.
    assert proxy.actions == {"GetCallerIdentity": 4, "DescribeSnapshots": 5}
    for action, pairs in proxy.requests:
        if action == "DescribeSnapshots":
            assert ("MaxResults", "1000") in pairs


def test_pending_snapshot_is_rejected_even_if_the_server_returns_it(tricky, proxy, tmp_path, collections_path):
    """Defence in depth: with the status filter not applied (as if EC2 answered from a stale
    view), the pending snapshot reaches the module and is rejected client-side."""
    proxy.apply_status_filter = False
    result = run_tasks(tmp_path, collections_path, [
        task("pick", **with_endpoint(proxy, chain="ethereum", network="mainnet"))])["pick"]
    assert result["snapshot_id"] == tricky["unverified"]
    assert rejected(result)[tricky["pending"]] == ["state is pending (37%), not completed"]


def test_nothing_qualifies_fails_clearly_or_reports_found_false(tricky, proxy, tmp_path, collections_path):
    base = with_endpoint(proxy, chain="ethereum", network="mainnet", min_block_height=1101)
    results = run_tasks(tmp_path, collections_path, [
        task("strict", **base),
        task("allow none", allow_none=True, **base),
        task("unknown chain", **with_endpoint(proxy, chain="bitcoin", network="mainnet")),
    ])
    strict = results["strict"]
    assert strict.get("failed") is True
    assert strict["msg"].startswith("No EBS snapshot for chain=ethereum network=mainnet meets every criterion (5 rejected: ")
    assert "%s: block height 1050 is below min_block_height 1101" % tricky["verified_old"] in strict["msg"]
    assert strict["msg"].endswith("set allow_none=true to get found=false instead of a failure")
    assert strict["found"] is False and len(strict["rejected"]) == 5

    allowed = results["allow none"]
    assert not allowed.get("failed") and allowed["changed"] is False
    assert allowed["found"] is False and allowed["snapshot"] is None and allowed["snapshot_id"] is None
    assert allowed["reason"] == "no snapshot meets every criterion (5 candidate(s) rejected)"

    unknown = results["unknown chain"]
    assert unknown.get("failed") is True
    assert "(no completed snapshot of owners self matches the tag filters)" in unknown["msg"]


def test_ties_use_real_moto_start_times_then_ids(aws, proxy, tmp_path, collections_path):
    """No overlay here: moto's own StartTime (one-second resolution) decides a height tie."""
    vol = volume(aws)
    first = make_snapshot(aws, vol, chain_tags(height=77))
    time.sleep(1.1)
    second = make_snapshot(aws, vol, chain_tags(height=77))
    results = run_tasks(tmp_path, collections_path, [
        task("tie", **with_endpoint(proxy, chain="ethereum", network="mainnet"))])
    result = results["tie"]
    assert result["snapshot_id"] == second
    assert result["reason"].startswith("%s is the newest (" % second)
    assert result["reason"].endswith("tied at block height 77 with %s" % first)


def test_custom_tag_keys_client_format_size_and_extra_tags(aws, proxy, tmp_path, collections_path):
    small, big = volume(aws, size=50), volume(aws, size=600)
    custom = {"Chain": "litecoin", "Net": "regtest", "Height": "2100", "Client": "litecoind", "Format": "v1", "team": "a"}
    ids = {
        "best": make_snapshot(aws, big, custom),
        "small": make_snapshot(aws, small, dict(custom, Height="2200")),
        "other_client": make_snapshot(aws, big, dict(custom, Height="2300", Client="btcd")),
        "other_format": make_snapshot(aws, big, dict(custom, Height="2400", Format="v0")),
        "other_team": make_snapshot(aws, big, dict(custom, Height="2500", team="b")),
        "default_keys": make_snapshot(aws, big, chain_tags(chain="litecoin", network="regtest", height=9999)),
    }
    args = with_endpoint(proxy, chain="litecoin", network="regtest", client="litecoind", data_format="v1",
                         tags={"team": "a"}, min_size=100,
                         tag_keys={"chain": "Chain", "network": "Net", "block_height": "Height",
                                   "client": "Client", "data_format": "Format"})
    result = run_tasks(tmp_path, collections_path, [task("custom", **args)])["custom"]
    assert result["snapshot_id"] == ids["best"], result
    assert result["snapshot"]["block_height"] == 2100 and result["snapshot"]["volume_size"] == 600
    # Only the size check is client-side here; the tag mismatches are filtered by the server.
    assert rejected(result) == {ids["small"]: ["size 50 GiB is below min_size 100 GiB"]}
    names = [f["Name"] for f in result["filters"]]
    assert names == ["status", "tag:Chain", "tag:Net", "tag:Client", "tag:Format", "tag:team"]


def test_many_snapshots_one_page_each_run(aws, proxy, tmp_path, collections_path):
    """S2: 300 candidates, one DescribeSnapshots call, decided quickly on moto."""
    vol = volume(aws)
    for number in range(300):
        make_snapshot(aws, vol, chain_tags(height=1000 + (number * 7919) % 300))
    result = run_tasks(tmp_path, collections_path, [
        task("many", **with_endpoint(proxy, chain="ethereum", network="mainnet"))])["many"]
    assert len(result["qualified"]) == 300
    heights = [q["block_height"] for q in result["qualified"]]
    assert heights == sorted(heights, reverse=True) and heights[0] == 1299
    assert proxy.actions["DescribeSnapshots"] == 1


def test_bad_input_fails_with_a_message_naming_the_option(aws, proxy, capsys):
    ok = dict(chain="ethereum", network="mainnet", endpoint_url=proxy.url)
    cases = {
        "missing chain": (dict(network="mainnet"), "missing required arguments: chain"),
        "empty chain": (dict(ok, chain=""), "chain: must be a non-empty string"),
        "wildcard network": (dict(ok, network="main*"), "network: 'main*' contains a wildcard (* or ?); only exact values are supported"),
        "unitless max_age": (dict(ok, max_age="7"), "max_age: '7' is not a duration; use a number with a unit"),
        "zero max_age": (dict(ok, max_age="0d"), "max_age: '0d' must be longer than zero"),
        "negative height": (dict(ok, min_block_height=-1), "min_block_height: must be 0 or more, got -1"),
        "non-int height": (dict(ok, min_block_height="tall"), "min_block_height"),
        "zero size": (dict(ok, min_size=0), "min_size: must be 1 or more, got 0"),
        "bad owner": (dict(ok, owner_ids=["me"]), "owner_ids: 'me' is neither a 12-digit account id nor one of"),
        "no owner": (dict(ok, owner_ids=[]), "owner_ids: at least one owner is needed"),
        "same tag keys": (dict(ok, tag_keys={"chain": "k", "network": "k"}), "tag_keys.chain and tag_keys.network are both 'k'"),
        "empty tag key": (dict(ok, tag_keys={"verified": ""}), "tag_keys.verified: a tag key must be a non-empty string"),
        "unknown tag key entry": (dict(ok, tag_keys={"height": "h"}), "tag_keys.height"),
        "reserved extra tag": (dict(ok, tags={"chainops:client": "geth"}),
                               "tags: 'chainops:client' is the tag key of tag_keys.client; use the client option instead"),
        "wildcard extra tag": (dict(ok, tags={"team": "a?"}), "tags.team: 'a?' contains a wildcard"),
        "non-bool verified": (dict(ok, require_verified="perhaps"), "require_verified"),
        "unknown option": (dict(ok, chian="ethereum"), "Unsupported parameters"),
    }
    for name, (args, message) in cases.items():
        result = run_in_process(MODULE, args, capsys)
        assert result.get("failed") is True, name
        assert message in result["msg"], (name, result["msg"])
    # Every one failed before talking to AWS.
    assert proxy.actions == {}
