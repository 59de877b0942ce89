"""Helpers of the EBS module tests (ebs_snapshot_select, ebs_snapshot_retention, ebs_restore_volume),
which run the modules against a real moto_server; the fixtures that use them are in conftest.py.

The proxy (tests/testlib/moto_proxy.py) is honest plumbing: it forwards every request unchanged and
counts the API actions, and it can overlay the few facts moto cannot produce. moto marks every snapshot
`completed` at once, stamps StartTime with the creation second and never leaves a volume `creating`;
for those cases the proxy rewrites the
`status`/`progress`/`startTime` fields of chosen snapshots (and `status` of chosen volumes) in the XML
answer and then applies the request's `status` filter itself, the way EC2 would, after removing it from
what moto sees. Everything else (tags, owners, filters, pagination, AMIs, deletion) is moto's own behaviour.
"""
from __future__ import annotations

import collections
import datetime
import importlib
import json
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from ansible.module_utils.testing import patch_module_args
from moto_proxy import MotoProxy  # tests/testlib, put on sys.path by tests/conftest.py
from playbook_runner import task_results

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


class EbsProxy(MotoProxy):
    """The shared moto proxy, with overlays for what moto cannot model."""

    def __init__(self, upstream: str):
        super().__init__(upstream, timeout=60)
        self.reset()

    def reset(self):
        super().reset()
        with self.lock:
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

    def exchange(self, request, forward):
        action, pairs = request["action"], request["pairs"]
        if action == "DescribeFastSnapshotRestores":  # moto does not implement fast snapshot restore
            return 200, [("Content-Type", "text/xml")], self._fast_restores(pairs)
        overlays = {"DescribeSnapshots": ("snapshotSet", "snapshotId", self.snapshots),
                    "DescribeVolumes": ("volumeSet", "volumeId", self.volumes)}.get(action)
        status_values = None
        body = None
        if overlays and overlays[2]:
            # moto would filter on its own (always completed/available) status: filter here instead.
            pairs, status_values = _split_status_filter(pairs)
            body = urlencode(pairs).encode()
        status, headers, payload = forward(body)
        if status == 200 and overlays and overlays[2]:
            payload = self._rewrite(payload, overlays, status_values)
        if status == 200 and action == "DescribeImages" and self.hidden_images:
            payload = self._hide_images(payload)
        return status, headers, payload

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


# ---------------------------------------------------------------------------------------------
# Running the module through ansible-playbook
# ---------------------------------------------------------------------------------------------


def run_tasks(tmp_path, collections_path, tasks):
    """Run tasks on localhost; returns {task name: result}. Tasks may fail (ignore_errors is set)."""
    results = task_results(tmp_path, tasks, collections_path=collections_path)
    assert len(results) == len(tasks), sorted(results)
    return {name: hosts["localhost"] for name, hosts in results.items()}


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
