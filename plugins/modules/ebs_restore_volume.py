#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: this module is built on amazon.aws's GPLv3+
# module_utils, and ansible-test requires the header on modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ebs_restore_volume
short_description: Create an EBS volume from a snapshot for an instance, with a volume initialization rate, and attach it
version_added: 0.2.0
description:
  - Creates a volume from O(snapshot_id) in the instance's availability zone, tagged
    C(chainops:restored-for=<instance>) and C(chainops:restored-from=<snapshot>), waits until it is
    available and attaches it to O(instance_id). A volume an earlier, interrupted run made for the same
    instance from the same snapshot is reused, so a second run changes nothing.
  - A volume created from a snapshot is loaded lazily from S3. With O(initialization_rate) EBS
    initializes it at that provisioned rate (100 to 300 MiB/s) and the module returns the expected
    completion time from the snapshot's size (RV(initialization)). With O(fast_snapshot_restore=true)
    and fast snapshot restore enabled for the snapshot in the zone, no rate is sent, since such a volume is
    initialized at creation (a rate would take precedence over it).
  - Checks the volume against AWS's current limits before any call (gp3 up to 64 TiB, 80,000 IOPS
    and 2,000 MiB/s, 500 IOPS per GiB, 0.25 MiB/s per IOPS; io2 up to 256,000 IOPS).
  - Waits are bounded by O(wait_timeout) and fail with the last state seen.
options:
  snapshot_id:
    description: Snapshot to create the volume from (C(snap-...)).
    type: str
    required: true
  instance_id:
    description: Instance to attach the volume to (C(i-...)).
    type: str
    required: true
  availability_zone:
    description: Zone of the volume; the instance's when omitted (a volume attaches only in its own zone).
    type: str
  device_name:
    description: Device name for the attachment (Nitro instances show the volume as an NVMe device whatever it is).
    type: str
    default: /dev/sdg
  volume_type:
    description: EBS volume type.
    type: str
    choices: [gp3, gp2, io1, io2, st1, sc1, standard]
    default: gp3
  size:
    description: Size in GiB; the snapshot's size when omitted or 0. Never smaller than the snapshot.
    type: int
    default: 0
  iops:
    description: Provisioned IOPS (gp3, io1, io2).
    type: int
  throughput:
    description: Throughput in MiB/s (gp3).
    type: int
  initialization_rate:
    description: Provisioned volume initialization rate in MiB/s (100-300); 0 for EBS's default rate.
    type: int
    default: 0
  fast_snapshot_restore:
    description:
      - Ask EBS whether fast snapshot restore is enabled for the snapshot in the zone, and when it is,
        create the volume without an initialization rate so that it is initialized at creation.
      - Off by default, since fast snapshot restore is a paid feature enabled per snapshot and zone.
    type: bool
    default: false
  tags:
    description: More tags for the volume (the C(chainops:restored-*) tags are set by the module).
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for the volume to become available and then attached.
    type: int
    default: 300
notes:
  - Check mode creates and attaches nothing and returns what it would do.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - chainops.validator.progress
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Restore the chosen snapshot onto a gp3 volume initialized at 300 MiB/s
  chainops.validator.ebs_restore_volume:
    snapshot_id: "{{ pick.snapshot_id }}"
    instance_id: i-0123456789abcdef0
    volume_type: gp3
    iops: 16000
    throughput: 1000
    initialization_rate: 300
  delegate_to: localhost
  register: volume

- name: Say when the volume is fully initialized
  ansible.builtin.debug:
    msg: "{{ volume.volume_id }} initialized by {{ volume.initialization.expected_completion }}"
"""

RETURN = r"""
volume_id:
  description: The volume's id.
  returned: always (empty in check mode when it would be created)
  type: str
created:
  description: Whether this run created the volume (false when an earlier run's volume was reused).
  returned: always
  type: bool
attached:
  description: Whether this run attached it.
  returned: always
  type: bool
availability_zone:
  description: Zone of the volume.
  returned: always
  type: str
initialization:
  description:
    - How the volume's blocks arrive from the snapshot. C(method) is C(provisioned-rate), C(fast-snapshot-restore)
      or C(default); C(snapshot_bytes) the snapshot's full size (C(size_source) says where it came from);
      C(rate_mib_s); C(expected_seconds) (0 for fast snapshot restore, null for the default rate, whose speed
      varies) and, for a rate, C(expected_completion) from the volume's creation time (UTC).
  returned: always
  type: dict
"""

import datetime
import time

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.chainops.validator.plugins.module_utils.ebs_volume import initialization_plan, volume_problems
from ansible_collections.chainops.validator.plugins.module_utils.progress import Progress, progress_argument_spec

POLL = 2


def find_reusable(ec2, snapshot_id, instance_id):
    volumes = ec2.describe_volumes(Filters=[
        {"Name": "snapshot-id", "Values": [snapshot_id]},
        {"Name": "tag:chainops:restored-for", "Values": [instance_id]},
        {"Name": "status", "Values": ["creating", "available", "in-use"]},
    ])["Volumes"]
    return sorted(volumes, key=lambda v: v["CreateTime"])[0] if volumes else None


def fast_restore_enabled(ec2, snapshot_id, zone):
    found = ec2.describe_fast_snapshot_restores(Filters=[
        {"Name": "snapshot-id", "Values": [snapshot_id]}, {"Name": "availability-zone", "Values": [zone]}])
    return any(item.get("State") == "enabled" for item in found.get("FastSnapshotRestores", []))


def wait_for(module, ec2, volume_id, done, what, timeout):
    """Poll the volume until done(volume) holds; fail with the last state after timeout seconds."""
    deadline = time.monotonic() + timeout
    progress = Progress(module.params["progress_file"], "volume %s to become %s" % (volume_id, what), unit="s", total=timeout)
    while True:
        volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        if done(volume):
            return volume
        progress.update(state="last state %s, attachments %s" % (
            volume["State"], [(a.get("InstanceId"), a.get("State")) for a in volume.get("Attachments", [])] or "none"))
        if volume["State"] in ("error", "deleting", "deleted") or time.monotonic() >= deadline:
            attachments = [(a.get("InstanceId"), a.get("State")) for a in volume.get("Attachments", [])]
            module.fail_json(msg="volume %s did not become %s within %d s: last state %s, attachments %s"
                                 % (volume_id, what, timeout, volume["State"], attachments or "none"), volume_id=volume_id)
        time.sleep(POLL)


def main():
    argument_spec = dict(
        snapshot_id=dict(type="str", required=True),
        instance_id=dict(type="str", required=True),
        availability_zone=dict(type="str"),
        device_name=dict(type="str", default="/dev/sdg"),
        volume_type=dict(type="str", default="gp3", choices=["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"]),
        size=dict(type="int", default=0),
        iops=dict(type="int"),
        throughput=dict(type="int"),
        initialization_rate=dict(type="int", default=0),
        fast_snapshot_restore=dict(type="bool", default=False),
        tags=dict(type="dict", default={}),
        wait_timeout=dict(type="int", default=300),
        **progress_argument_spec()
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    limits = volume_problems(p["volume_type"], p["size"] or None, p["iops"], p["throughput"], p["initialization_rate"])
    problems = ["%s %s" % pair for pair in limits]
    if p["wait_timeout"] < 1:
        problems.append("wait_timeout must be at least 1 second, got %d" % p["wait_timeout"])
    if p["initialization_rate"] < 0:
        problems.append("initialization_rate must be 0 (EBS's default) or from 100 to 300 MiB/s, got %d" % p["initialization_rate"])
    if problems:
        module.fail_json(msg="ebs_restore_volume: " + "; ".join(problems))
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        result = restore_volume(module, ec2, p)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="restoring %s for %s" % (p["snapshot_id"], p["instance_id"]))
    module.exit_json(**result)


def restore_volume(module, ec2, p):
    snapshot = ec2.describe_snapshots(SnapshotIds=[p["snapshot_id"]])["Snapshots"][0]
    if snapshot["State"] != "completed":
        module.fail_json(msg="snapshot %s is %s (%s), not completed" % (p["snapshot_id"], snapshot["State"], snapshot.get("Progress", "")))
    size = p["size"] or snapshot["VolumeSize"]
    if size < snapshot["VolumeSize"]:
        module.fail_json(msg="size %d GiB is smaller than the snapshot's %d GiB" % (size, snapshot["VolumeSize"]))
    problems = volume_problems(p["volume_type"], size, p["iops"], p["throughput"])
    if problems:
        module.fail_json(msg="ebs_restore_volume: " + "; ".join("%s %s" % pair for pair in problems))
    zone = p["availability_zone"]
    if not zone:
        reservations = ec2.describe_instances(InstanceIds=[p["instance_id"]])["Reservations"]
        zone = reservations[0]["Instances"][0]["Placement"]["AvailabilityZone"]
    fast = p["fast_snapshot_restore"] and fast_restore_enabled(ec2, p["snapshot_id"], zone)
    rate = 0 if fast else p["initialization_rate"]
    volume = find_reusable(ec2, p["snapshot_id"], p["instance_id"])
    created = volume is None
    if created:
        if module.check_mode:
            return dict(changed=True, volume_id="", created=True, attached=True, availability_zone=zone,
                        initialization=initialization_plan(snapshot, rate, fast))
        request = dict(SnapshotId=p["snapshot_id"], AvailabilityZone=zone, VolumeType=p["volume_type"], Size=size,
                       TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": str(k), "Value": str(v)} for k, v in sorted(dict(
                           p["tags"], **{"chainops:restored-for": p["instance_id"], "chainops:restored-from": p["snapshot_id"]}).items())]}])
        for option, name in (("iops", "Iops"), ("throughput", "Throughput")):
            if p[option] is not None:
                request[name] = p[option]
        if rate:
            request["VolumeInitializationRate"] = rate
        volume = ec2.create_volume(**request)
    else:
        zone = volume["AvailabilityZone"]
        # A reused volume was initialized the way it was created: as EBS reports it, not as asked now.
        rate, fast = volume.get("VolumeInitializationRate") or 0, bool(volume.get("FastRestored"))
    volume_id = volume["VolumeId"]
    attachments = [a for a in volume.get("Attachments", []) if a.get("State") in ("attaching", "attached")]
    others = [a["InstanceId"] for a in attachments if a["InstanceId"] != p["instance_id"]]
    if others:
        module.fail_json(msg="volume %s is attached to %s, not %s" % (volume_id, others[0], p["instance_id"]), volume_id=volume_id)
    attached = False
    if not attachments:
        attached = True
        if not module.check_mode:
            wait_for(module, ec2, volume_id, lambda v: v["State"] == "available", "available", p["wait_timeout"])
            ec2.attach_volume(VolumeId=volume_id, InstanceId=p["instance_id"], Device=p["device_name"])
    if not module.check_mode:
        volume = wait_for(module, ec2, volume_id, lambda v: any(a.get("State") == "attached" for a in v.get("Attachments", [])),
                          "attached to %s" % p["instance_id"], p["wait_timeout"])
    created_at = volume.get("CreateTime")
    if isinstance(created_at, datetime.datetime):
        created_at = created_at.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    else:
        created_at = None
    return dict(changed=created or attached, volume_id=volume_id, created=created, attached=attached, availability_zone=zone,
                initialization=initialization_plan(snapshot, rate, fast, created_at))


if __name__ == "__main__":
    main()
