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
module: signer_fence
short_description: Cut a validator that may still sign off through the EC2 API, and wait until it is
version_added: 0.2.0
description:
  - Fencing for a signer failover, done by the infrastructure rather than by the (possibly dead,
    unreachable or crash-looping) host itself, so that it holds whatever that host does.
  - O(method=stop) stops the instance (C(Force), as a power cut would) and waits until EC2 reports
    it C(stopped). An instance already stopped or terminated is left as it is.
  - O(method=isolate) keeps it running for inspection but replaces the security groups of every
    network interface with one deny-all group of its VPC (no inbound and no outbound rule; created
    when missing) and force-detaches the volumes in O(detach_volume_ids) (the signing node's data),
    waiting until each is C(available).
  - Either way the instance is tagged C(chainops:fenced) with the time, the method and the fencing
    token of the lease that the new signer takes, and the wait is bounded by O(wait_timeout). On
    timeout the task fails with the last state EC2 reported, and a failover must not go on.
options:
  instance_id:
    description: The old signer's instance.
    type: str
    required: true
  method:
    description: How to fence.
    type: str
    default: stop
    choices: [stop, isolate]
  detach_volume_ids:
    description: With O(method=isolate), volumes to force-detach from the instance.
    type: list
    elements: str
    default: []
  isolation_group_name:
    description: With O(method=isolate), the name of the deny-all security group (one per VPC).
    type: str
    default: chainops-fenced
  token:
    description: The fencing token recorded in the instance's C(chainops:fenced) tag.
    type: int
  wait_timeout:
    description: Seconds to wait for EC2 to report the instance stopped or the volumes detached.
    type: int
    default: 300
  wait_interval:
    description: Seconds between two looks at the state.
    type: int
    default: 5
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Stop the old signer's instance before the standby takes the lease
  chainops.validator.signer_fence:
    instance_id: "{{ hostvars['val-a'].instance_id }}"
    method: stop
    token: "{{ lease.lease.token + 1 }}"
    wait_timeout: 180
  delegate_to: localhost

- name: Keep it running for forensics, but cut off, and take its data volume away
  chainops.validator.signer_fence:
    instance_id: i-0123456789abcdef0
    method: isolate
    detach_volume_ids: [vol-0123456789abcdef0]
  delegate_to: localhost
"""

RETURN = r"""
instance_id:
  description: The fenced instance.
  returned: always
  type: str
state:
  description: The instance state EC2 reported last.
  returned: always
  type: str
previous_state:
  description: The instance state before fencing.
  returned: always
  type: str
security_groups:
  description: With O(method=isolate), the groups each network interface had before (interface id to group ids).
  returned: always
  type: dict
isolation_group_id:
  description: With O(method=isolate), the deny-all group now on the instance.
  returned: always
  type: str
detached_volume_ids:
  description: Volumes detached by this task.
  returned: always
  type: list
  elements: str
"""

import time

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.chainops.validator.plugins.module_utils.readiness import wait

FENCED_TAG = "chainops:fenced"


class Fence:
    def __init__(self, module, ec2):
        self.module = module
        self.ec2 = ec2
        self.params = module.params
        self.changed = False
        self.result = dict(instance_id=self.params["instance_id"], security_groups={}, isolation_group_id="",
                           detached_volume_ids=[])

    def instance(self):
        reservations = self.ec2.describe_instances(InstanceIds=[self.params["instance_id"]])["Reservations"]
        instances = [i for r in reservations for i in r["Instances"]]
        if not instances:
            self.module.fail_json(msg="instance_id: no instance %s" % self.params["instance_id"])
        return instances[0]

    def wait_for(self, what, probe):
        """Bounded wait on probe() -> {'ok': bool, 'state': str}; fails with the last state seen."""
        outcome = wait(probe, timeout=self.params["wait_timeout"], interval=self.params["wait_interval"])
        if not outcome["ready"]:
            self.module.fail_json(msg="%s: not done after %d s (bound %d s); last seen: %s. The old signer is not "
                                      "confirmed fenced: do not start another one." % (
                                          what, outcome["elapsed"], self.params["wait_timeout"], outcome["last"]["state"]),
                                  changed=self.changed, **self.result)

    def tag(self, method):
        if self.module.check_mode:
            return
        value = "%s %s%s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), method,
                             "" if self.params["token"] is None else " token=%d" % self.params["token"])
        self.ec2.create_tags(Resources=[self.params["instance_id"]], Tags=[{"Key": FENCED_TAG, "Value": value}])

    def stop(self, instance):
        state = instance["State"]["Name"]
        if state in ("stopped", "terminated"):
            self.result["state"] = state
            return
        self.changed = True
        if self.module.check_mode:
            self.result["state"] = "stopped"
            return
        self.ec2.stop_instances(InstanceIds=[self.params["instance_id"]], Force=True)
        self.tag("stop")
        seen = {}

        def probe():
            seen["state"] = self.instance()["State"]["Name"]
            return {"ok": seen["state"] in ("stopped", "terminated"), "state": "instance %s" % seen["state"]}

        self.wait_for("stopping instance %s" % self.params["instance_id"], probe)
        self.result["state"] = seen["state"]

    def deny_all_group(self, vpc_id):
        name = self.params["isolation_group_name"]
        groups = self.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                            {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
        if groups:
            group = groups[0]
        elif self.module.check_mode:
            return "(deny-all group %s to be created)" % name
        else:
            group_id = self.ec2.create_security_group(GroupName=name, VpcId=vpc_id, Description=(
                "chainops.validator fencing: no traffic in or out"))["GroupId"]
            group = self.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
            self.changed = True
        if group.get("IpPermissions") or group.get("IpPermissionsEgress"):
            # A new group allows all egress, and someone may have added rules: the group must deny everything.
            self.changed = True
            if not self.module.check_mode:
                if group.get("IpPermissions"):
                    self.ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=group["IpPermissions"])
                if group.get("IpPermissionsEgress"):
                    self.ec2.revoke_security_group_egress(GroupId=group["GroupId"], IpPermissions=group["IpPermissionsEgress"])
        return group["GroupId"]

    def isolate(self, instance):
        self.result["state"] = instance["State"]["Name"]
        group_id = self.deny_all_group(instance["VpcId"])
        self.result["isolation_group_id"] = group_id
        for interface in instance.get("NetworkInterfaces", []):
            groups = [g["GroupId"] for g in interface.get("Groups", [])]
            self.result["security_groups"][interface["NetworkInterfaceId"]] = groups
            if groups == [group_id]:
                continue
            self.changed = True
            if self.module.check_mode:
                continue
            # The instance's own group set is its primary interface's; further interfaces have their own.
            if interface.get("Attachment", {}).get("DeviceIndex") == 0:
                self.ec2.modify_instance_attribute(InstanceId=self.params["instance_id"], Groups=[group_id])
            self.ec2.modify_network_interface_attribute(NetworkInterfaceId=interface["NetworkInterfaceId"], Groups=[group_id])
        attached = dict((m["Ebs"]["VolumeId"], m["DeviceName"]) for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m)
        for volume_id in self.params["detach_volume_ids"]:
            if volume_id not in attached:
                continue
            self.changed = True
            self.result["detached_volume_ids"].append(volume_id)
            if self.module.check_mode:
                continue
            self.ec2.detach_volume(VolumeId=volume_id, InstanceId=self.params["instance_id"], Force=True)

            def probe(volume_id=volume_id):
                state = self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"]
                return {"ok": state == "available", "state": "volume %s %s" % (volume_id, state)}

            self.wait_for("detaching volume %s" % volume_id, probe)
        if self.changed:
            self.tag("isolate")


def main():
    argument_spec = dict(
        instance_id=dict(type="str", required=True),
        method=dict(type="str", default="stop", choices=["stop", "isolate"]),
        detach_volume_ids=dict(type="list", elements="str", default=[]),
        isolation_group_name=dict(type="str", default="chainops-fenced"),
        token=dict(type="int", no_log=False),
        wait_timeout=dict(type="int", default=300),
        wait_interval=dict(type="int", default=5),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    problems = []
    if not params["instance_id"].startswith("i-"):
        problems.append("instance_id must be an EC2 instance id (i-...), got %r" % params["instance_id"])
    for name in ("wait_timeout", "wait_interval"):
        if params[name] < 1:
            problems.append("%s must be at least 1, got %d" % (name, params[name]))
    if params["detach_volume_ids"] and params["method"] != "isolate":
        problems.append("detach_volume_ids needs method=isolate (a stopped instance keeps its volumes)")
    if problems:
        module.fail_json(msg="signer_fence: " + "; ".join(problems))
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    fence = Fence(module, ec2)
    try:
        instance = fence.instance()
        fence.result["previous_state"] = instance["State"]["Name"]
        getattr(fence, params["method"])(instance)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="fencing instance %s (%s) failed: %s" % (params["instance_id"], params["method"], to_native(exc)))
    module.exit_json(changed=fence.changed, **fence.result)


if __name__ == "__main__":
    main()
