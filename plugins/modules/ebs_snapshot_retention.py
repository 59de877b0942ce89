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
module: ebs_snapshot_retention
short_description: Prune blockchain node EBS snapshots per chain and network
version_added: 0.2.0
description:
  - Groups this account's completed EBS snapshots by their chain and network tags and deletes
    those that no retention rule keeps.
  - Within a group, snapshots are ranked the way M(chainops.validator.ebs_snapshot_select) ranks
    them (highest block-height tag, then newest start time, then lowest id).
    O(keep_last) keeps the first N of each group; O(max_age) keeps those younger than the age.
    A snapshot is deleted only when no given rule keeps it, so with both rules O(keep_last)
    acts as a floor.
  - "Whatever the rules say, these are never deleted: the best-ranked snapshot of each group
    that is marked verified and not marked bad; any snapshot referenced by an AMI of this account
    (in any state); any snapshot a volume is being created from."
  - Only snapshots with both a chain and a network tag are managed. Snapshots that are not
    C(completed), belong to another account, or fall outside O(chain), O(network) and O(tags)
    are never touched.
  - "API use: one STS C(GetCallerIdentity), paginated C(DescribeSnapshots) with server-side
    C(OwnerIds=self), C(status) and C(tag:) filters, and only when something is due for
    deletion one paginated C(DescribeImages) (C(Owners=self)) and one paginated
    C(DescribeVolumes) (C(status=creating)), then one C(DeleteSnapshot) per deleted snapshot."
  - In check mode nothing is deleted and RV(deleted) lists what would be.
author:
  - chainops.validator maintainers (!UNKNOWN)
options:
  keep_last:
    description:
      - Keep the best N snapshots of each chain and network group (N >= 1).
      - At least one of O(keep_last) and O(max_age) is required.
    type: int
  max_age:
    description:
      - Keep snapshots whose start time is younger than this, as a number with a unit
        (V(s), V(m), V(h), V(d), V(w)), for example V(30d) or V(2w).
      - At least one of O(keep_last) and O(max_age) is required.
    type: str
  chain:
    description:
      - Only manage snapshots whose chain tag has this value. All chains when omitted.
    type: str
  network:
    description:
      - Only manage snapshots whose network tag has this value. All networks when omitted.
    type: str
  tags:
    description:
      - Only manage snapshots that also carry these tags with exactly these values.
      - May not repeat a key of O(tag_keys).
    type: dict
    default: {}
  tag_keys:
    description:
      - Tag keys the policy reads. Entries left out keep their defaults, the same as in
        M(chainops.validator.ebs_snapshot_select).
      - A snapshot counts as verified when its O(tag_keys.verified) tag is V(true), V(yes), V(1)
        or V(on), and as bad when its O(tag_keys.bad) tag is present with any value other than
        V(false), V(no), V(0), V(off) or empty.
    type: dict
    default: {}
    suboptions:
      chain:
        description: Tag holding the chain name.
        type: str
        default: chainops:chain
      network:
        description: Tag holding the network name.
        type: str
        default: chainops:network
      client:
        description: Tag holding the client name (not used by the policy; reserved so O(tags) cannot reuse it).
        type: str
        default: chainops:client
      data_format:
        description: Tag holding the data format (not used by the policy; reserved so O(tags) cannot reuse it).
        type: str
        default: chainops:data-format
      block_height:
        description: Tag holding the block height, used for ranking.
        type: str
        default: chainops:block-height
      verified:
        description: Tag that marks a snapshot as verified by a test restore.
        type: str
        default: chainops:verified
      bad:
        description: Tag that marks a snapshot as unusable.
        type: str
        default: chainops:bad
notes:
  - A snapshot that AWS refuses to delete because it came into use after the listing
    (C(InvalidSnapshot.InUse)) is reported in RV(kept) with a warning instead of failing the task.
  - Snapshots in state C(error) are not pruned by this module.
seealso:
  - module: chainops.validator.ebs_snapshot_select
  - module: amazon.aws.ec2_snapshot
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Keep the best 3 snapshots of every chain and network
  chainops.validator.ebs_snapshot_retention:
    region: eu-west-1
    keep_last: 3

- name: Keep 30 days of ethereum mainnet snapshots, but never fewer than 2
  chainops.validator.ebs_snapshot_retention:
    chain: ethereum
    network: mainnet
    max_age: 30d
    keep_last: 2
  register: pruned

- name: Show what went
  ansible.builtin.debug:
    msg: "{{ pruned.deleted | map(attribute='snapshot_id') | list }}"

- name: Preview a stricter policy
  chainops.validator.ebs_snapshot_retention:
    keep_last: 1
  check_mode: true
  register: preview
"""

RETURN = r"""
deleted:
  description: Snapshots deleted (in check mode, the ones that would be), with the rules that let them go.
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: Snapshot id.
      type: str
      sample: snap-0123456789abcdef0
    group:
      description: Chain and network, as C(chain/network).
      type: str
      sample: ethereum/mainnet
    chain:
      description: Value of the chain tag.
      type: str
    network:
      description: Value of the network tag.
      type: str
    block_height:
      description: Value of the block-height tag, null when absent or invalid.
      type: int
    start_time:
      description: Start time (ISO 8601, UTC).
      type: str
    state:
      description: Snapshot state.
      type: str
    volume_size:
      description: Size in GiB.
      type: int
    owner_id:
      description: Owning account.
      type: str
    verified:
      description: Whether the verified tag is set.
      type: bool
    bad:
      description: Whether the bad tag is set.
      type: bool
    reasons:
      description: The rules under which the snapshot goes.
      type: list
      elements: str
      sample: ["rank 4 beyond keep_last 3"]
kept:
  description: Managed snapshots that stay, with every rule or guard that keeps them. Same fields as RV(deleted).
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0123456789abcdef0", "group": "ethereum/mainnet", "reasons": ["rank 1 within keep_last 3"]}]
ignored:
  description: >-
    Snapshots returned by the listing that the policy does not manage (other owner, not completed,
    outside the scope, no chain or network tag), with the reasons. Same fields as RV(deleted).
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0123456789abcdef0", "group": null, "reasons": ["no chainops:chain/chainops:network tag: not managed"]}]
groups:
  description: Per chain and network group, how many snapshots there were, went and stayed.
  returned: always
  type: list
  elements: dict
  contains:
    group:
      description: Chain and network, as C(chain/network).
      type: str
    chain:
      description: Chain.
      type: str
    network:
      description: Network.
      type: str
    total:
      description: Managed snapshots in the group.
      type: int
    deleted:
      description: Snapshots deleted (or that would be, in check mode).
      type: int
    kept:
      description: Snapshots kept.
      type: int
    newest_verified:
      description: The protected best verified snapshot, or null.
      type: str
filters:
  description: The C(Filters) sent to C(DescribeSnapshots).
  returned: always
  type: list
  elements: dict
  sample: [{"Name": "status", "Values": ["completed"]}, {"Name": "tag-key", "Values": ["chainops:chain"]}]
"""

import datetime
import functools

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency.

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.chainops.validator.plugins.module_utils.snapshot_selection import (
    DEFAULT_TAG_KEYS,
    RetentionPolicy,
    SnapshotCriteriaError,
    collect_pages,
    describe_filters,
    merge_refs,
    plan_retention,
    snapshot_refs_from_images,
    snapshot_refs_from_volumes,
)


def argument_spec():
    tag_keys = dict((name, dict(type="str", default=key, no_log=False)) for name, key in DEFAULT_TAG_KEYS.items())
    return dict(
        keep_last=dict(type="int"),
        max_age=dict(type="str"),
        chain=dict(type="str"),
        network=dict(type="str"),
        tags=dict(type="dict", default={}),
        tag_keys=dict(type="dict", default={}, options=tag_keys, no_log=False),
    )


def images_parameters(ec2):
    """DescribeImages arguments that also list deprecated and disabled AMIs, which still pin snapshots."""
    params = dict(Owners=["self"], IncludeDeprecated=True, MaxResults=1000)
    members = ec2.meta.service_model.operation_model("DescribeImages").input_shape.members
    if "IncludeDisabled" in members:  # botocore gained it in 2024; older ones reject unknown keys
        params["IncludeDisabled"] = True
    return params


def protected_refs(module, ec2):
    """Snapshots pinned by this account's AMIs or by volumes being created: two listings, not per snapshot."""
    try:
        images, dummy = collect_pages(functools.partial(ec2.describe_images, aws_retry=True), "Images", **images_parameters(ec2))
        volumes, dummy = collect_pages(
            functools.partial(ec2.describe_volumes, aws_retry=True),
            "Volumes",
            Filters=[{"Name": "status", "Values": ["creating"]}],
            MaxResults=500,
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to list the AMIs and volumes that may still need the snapshots")
    return merge_refs(snapshot_refs_from_images(images), snapshot_refs_from_volumes(volumes))


def main():
    module = AnsibleAWSModule(
        argument_spec=argument_spec(),
        required_one_of=[("keep_last", "max_age")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        policy = RetentionPolicy(
            keep_last=params["keep_last"],
            max_age=params["max_age"],
            chain=params["chain"],
            network=params["network"],
            tags=params["tags"],
            tag_keys=params["tag_keys"],
        )
    except SnapshotCriteriaError as e:
        module.fail_json(msg=str(e))

    sts = module.client("sts", retry_decorator=AWSRetry.jittered_backoff())
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    keys = policy.tag_keys
    filters = describe_filters(policy.scope_tags(), require_tag_keys=[keys["chain"], keys["network"]])
    try:
        policy.owner_id = sts.get_caller_identity(aws_retry=True)["Account"]
        snapshots, dummy = collect_pages(
            functools.partial(ec2.describe_snapshots, aws_retry=True),
            "Snapshots",
            OwnerIds=["self"],
            Filters=filters,
            MaxResults=1000,
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to list this account's snapshots")

    now = datetime.datetime.now(datetime.timezone.utc)
    plan = plan_retention(snapshots, policy, {}, now)
    if plan.delete:
        # Only worth two more listings when something is due; then plan again with the guards.
        plan = plan_retention(snapshots, policy, protected_refs(module, ec2), now)

    deleted = []
    kept = list(plan.keep)
    if module.check_mode:
        deleted = plan.delete
    else:
        for item in plan.delete:
            try:
                ec2.delete_snapshot(SnapshotId=item["snapshot_id"], aws_retry=True)
            except is_boto3_error_code("InvalidSnapshot.InUse") as e:
                # Something started using it after the listing; AWS protects it, so do we.
                item = dict(item, reasons=item["reasons"] + ["AWS refused the deletion: %s" % e])
                kept.append(item)
                module.warn("Kept %s: it came into use after the listing (%s)" % (item["snapshot_id"], e))
                continue
            except is_boto3_error_code("InvalidSnapshot.NotFound"):
                module.warn("%s was already gone when its turn came" % item["snapshot_id"])
                continue
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
                module.fail_json_aws(
                    e,
                    msg="Failed to delete snapshot %s; %d deleted before it" % (item["snapshot_id"], len(deleted)),
                    deleted=deleted,
                )
            deleted.append(item)

    deleted_ids = set(item["snapshot_id"] for item in deleted)
    groups = []
    for group in plan.groups:
        went = sum(1 for item in deleted if item["group"] == group["group"])
        groups.append(dict(group, deleted=went, kept=group["total"] - went))
    module.exit_json(
        changed=bool(deleted_ids),
        deleted=deleted,
        kept=kept,
        ignored=plan.ignored,
        groups=groups,
        filters=filters,
    )


if __name__ == "__main__":
    main()
