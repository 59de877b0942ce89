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
module: ebs_snapshot_select
short_description: Pick the best EBS snapshot to restore a blockchain node from
version_added: 0.2.0
description:
  - Lists the EBS snapshots of the given owners that match a node's chain and network (and
    optionally client and data format) and returns the best one, why it won, and every other
    candidate with the reasons it was rejected.
  - A snapshot qualifies when it is C(completed), is owned by one of O(owner_ids), carries the
    exact O(chain), O(network), O(client), O(data_format) and O(tags) tag values, has a valid
    block-height tag of at least O(min_block_height), is no older than O(max_age), is at least
    O(min_size) GiB, is marked verified when O(require_verified=true), and is not marked bad.
  - Among qualifying snapshots the highest block-height tag wins (snapshots without one rank
    after all that have one), then the newest start time, then the lowest snapshot id, so the
    choice is deterministic.
  - "API use: one STS C(GetCallerIdentity) when O(owner_ids) contains V(self) (to check owners
    client-side), then paginated C(DescribeSnapshots) with server-side C(OwnerIds), C(status)
    and C(tag:) filters, 1000 snapshots per page. Nothing is requested per snapshot."
  - The module never changes anything; it always returns C(changed=false) and supports check mode.
author:
  - chainops.validator maintainers (!UNKNOWN)
options:
  chain:
    description:
      - Value the chain tag (O(tag_keys.chain)) must have, for example V(ethereum).
      - Exact match; the wildcards V(*) and V(?) are refused.
    type: str
    required: true
  network:
    description:
      - Value the network tag (O(tag_keys.network)) must have, for example V(mainnet).
      - Exact match; the wildcards V(*) and V(?) are refused.
    type: str
    required: true
  client:
    description:
      - Value the client tag (O(tag_keys.client)) must have, for example V(geth). Not checked when omitted.
    type: str
  data_format:
    description:
      - Value the data-format tag (O(tag_keys.data_format)) must have, for example V(pebble-path).
        Not checked when omitted.
    type: str
  tags:
    description:
      - Further tags the snapshot must carry with exactly these values.
      - May not repeat a key of O(tag_keys); use the dedicated option instead.
    type: dict
    default: {}
  owner_ids:
    description:
      - Owners whose snapshots are considered, as 12-digit account ids or V(self), V(amazon),
        V(aws-marketplace).
      - Sent as the C(OwnerIds) of C(DescribeSnapshots) and checked again on each snapshot, so
        public or shared snapshots of other accounts are never picked by accident.
    type: list
    elements: str
    default: [self]
  min_block_height:
    description:
      - Lowest acceptable value of the block-height tag. Snapshots without that tag are rejected when this is set.
    type: int
  max_age:
    description:
      - Reject snapshots whose start time is older than this, as a number with a unit
        (V(s), V(m), V(h), V(d), V(w)), for example V(7d) or V(1d12h).
    type: str
  min_size:
    description:
      - Reject snapshots of volumes smaller than this many GiB.
    type: int
  require_verified:
    description:
      - Only accept snapshots whose verified tag (O(tag_keys.verified)) is V(true), V(yes), V(1) or V(on).
    type: bool
    default: false
  allow_none:
    description:
      - When nothing qualifies, return RV(found=false) instead of failing.
    type: bool
    default: false
  tag_keys:
    description:
      - Tag keys the criteria read. Entries left out keep their defaults.
      - A snapshot counts as bad when its O(tag_keys.bad) tag is present with any value other
        than V(false), V(no), V(0), V(off) or empty.
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
        description: Tag holding the client name.
        type: str
        default: chainops:client
      data_format:
        description: Tag holding the client database format or version.
        type: str
        default: chainops:data-format
      block_height:
        description: Tag holding the block height the snapshot was taken at (decimal digits).
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
  - Snapshots that the server-side filters exclude (other owners, other chain or network, not
    C(completed)) are not listed in RV(rejected); RV(filters) shows what was sent.
seealso:
  - module: chainops.validator.ebs_snapshot_retention
  - module: amazon.aws.ec2_snapshot_info
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Pick the newest verified mainnet geth snapshot of at least 500 GiB
  chainops.validator.ebs_snapshot_select:
    region: eu-west-1
    chain: ethereum
    network: mainnet
    client: geth
    data_format: pebble-path
    require_verified: true
    min_size: 500
    max_age: 14d
  register: pick

- name: Restore from it
  amazon.aws.ec2_vol:
    region: eu-west-1
    snapshot: "{{ pick.snapshot_id }}"
    zone: eu-west-1a
    volume_type: gp3

- name: Use a snapshot if there is one, otherwise sync from genesis
  chainops.validator.ebs_snapshot_select:
    chain: litecoin
    network: regtest
    min_block_height: 2000
    allow_none: true
    tag_keys:
      chain: Chain
      network: Network
      block_height: Height
  register: pick

- name: Explain the decision
  ansible.builtin.debug:
    msg: "{{ pick.reason if pick.found else pick.rejected }}"
"""

RETURN = r"""
found:
  description: Whether a snapshot qualified.
  returned: always
  type: bool
  sample: true
snapshot_id:
  description: Id of the chosen snapshot, or null when none qualified.
  returned: always
  type: str
  sample: snap-0123456789abcdef0
snapshot:
  description: The chosen snapshot, or null when none qualified.
  returned: always
  type: dict
  contains:
    snapshot_id:
      description: Snapshot id.
      type: str
      sample: snap-0123456789abcdef0
    block_height:
      description: Value of the block-height tag, null when absent.
      type: int
      sample: 19000000
    start_time:
      description: When the snapshot was started (ISO 8601, UTC).
      type: str
      sample: "2026-05-01T10:00:00+00:00"
    state:
      description: Snapshot state.
      type: str
      sample: completed
    progress:
      description: Snapshot progress.
      type: str
      sample: 100%
    volume_size:
      description: Size of the source volume in GiB.
      type: int
      sample: 500
    owner_id:
      description: Owning account.
      type: str
      sample: "123456789012"
    owner_alias:
      description: Owner alias, if AWS reports one.
      type: str
      sample: null
    description:
      description: Snapshot description.
      type: str
      sample: geth mainnet at 19000000
    volume_id:
      description: Source volume id.
      type: str
      sample: vol-0123456789abcdef0
    encrypted:
      description: Whether the snapshot is encrypted.
      type: bool
      sample: true
    kms_key_id:
      description: KMS key of an encrypted snapshot.
      type: str
      sample: null
    verified:
      description: Whether the verified tag is set.
      type: bool
      sample: true
    bad:
      description: Whether the bad tag is set (always false for a chosen snapshot).
      type: bool
      sample: false
    chain:
      description: Value of the chain tag.
      type: str
      sample: ethereum
    network:
      description: Value of the network tag.
      type: str
      sample: mainnet
    tags:
      description: All tags of the snapshot.
      type: dict
      sample: {"chainops:chain": "ethereum", "chainops:network": "mainnet"}
reason:
  description: Why the snapshot won (or why none did).
  returned: always
  type: str
  sample: snap-0123456789abcdef0 has the highest block height (19000000) of 3 qualifying snapshots; next best is snap-0fedcba9876543210 at 18990000
qualified:
  description: Every qualifying snapshot, best first (the first is RV(snapshot)).
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: Snapshot id.
      type: str
    block_height:
      description: Value of the block-height tag, null when absent.
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
rejected:
  description: Snapshots returned by the server-side filters that failed a criterion, in preference order.
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: Snapshot id.
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
      description: Every criterion the snapshot failed.
      type: list
      elements: str
      sample: ["marked bad (chainops:bad='true')"]
filters:
  description: The C(Filters) sent to C(DescribeSnapshots).
  returned: always
  type: list
  elements: dict
  sample: [{"Name": "status", "Values": ["completed"]}, {"Name": "tag:chainops:chain", "Values": ["ethereum"]}]
owner_ids:
  description: The C(OwnerIds) sent to C(DescribeSnapshots).
  returned: always
  type: list
  elements: str
  sample: [self]
"""

import datetime
import functools

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency.

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.chainops.validator.plugins.module_utils.snapshot_selection import (
    DEFAULT_TAG_KEYS,
    OWNER_ALIASES,
    SelectionCriteria,
    SnapshotCriteriaError,
    collect_pages,
    describe_filters,
    select_snapshot,
    validate_owner_ids,
)


def tag_keys_spec():
    return dict((name, dict(type="str", default=key, no_log=False)) for name, key in DEFAULT_TAG_KEYS.items())


def argument_spec():
    return dict(
        chain=dict(type="str", required=True),
        network=dict(type="str", required=True),
        client=dict(type="str"),
        data_format=dict(type="str"),
        tags=dict(type="dict", default={}),
        owner_ids=dict(type="list", elements="str", default=["self"]),
        min_block_height=dict(type="int"),
        max_age=dict(type="str"),
        min_size=dict(type="int"),
        require_verified=dict(type="bool", default=False),
        allow_none=dict(type="bool", default=False),
        tag_keys=dict(type="dict", default={}, options=tag_keys_spec(), no_log=False),
    )


def resolve_owners(module, owner_ids):
    """Split owners into account ids and aliases; 'self' becomes the caller's account id."""
    accounts = set(owner for owner in owner_ids if owner not in OWNER_ALIASES)
    aliases = set(owner for owner in owner_ids if owner in OWNER_ALIASES and owner != "self")
    if "self" in owner_ids:
        sts = module.client("sts", retry_decorator=AWSRetry.jittered_backoff())
        try:
            accounts.add(sts.get_caller_identity(aws_retry=True)["Account"])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg="Failed to find the account id for owner_ids 'self' (sts:GetCallerIdentity)")
    return accounts, aliases


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        owner_ids = validate_owner_ids(params["owner_ids"])
        criteria = SelectionCriteria(
            chain=params["chain"],
            network=params["network"],
            client=params["client"],
            data_format=params["data_format"],
            tags=params["tags"],
            min_block_height=params["min_block_height"],
            max_age=params["max_age"],
            min_size=params["min_size"],
            require_verified=params["require_verified"],
            tag_keys=params["tag_keys"],
        )
    except SnapshotCriteriaError as e:
        module.fail_json(msg=str(e))

    criteria.owner_ids, criteria.owner_aliases = (frozenset(x) for x in resolve_owners(module, owner_ids))
    filters = describe_filters(criteria.required_tags())
    ec2 = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        snapshots, dummy = collect_pages(
            functools.partial(ec2.describe_snapshots, aws_retry=True),
            "Snapshots",
            OwnerIds=owner_ids,
            Filters=filters,
            MaxResults=1000,
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to describe snapshots")

    result = select_snapshot(snapshots, criteria, now=datetime.datetime.now(datetime.timezone.utc)).as_dict()
    result.update(changed=False, filters=filters, owner_ids=owner_ids)
    if not result["found"] and not params["allow_none"]:
        details = "; ".join(
            "%s: %s" % (item["snapshot_id"], ", ".join(item["reasons"])) for item in result["rejected"][:10]
        )
        msg = "No EBS snapshot for chain=%s network=%s meets every criterion" % (criteria.chain, criteria.network)
        if result["rejected"]:
            msg += " (%d rejected: %s%s)" % (len(result["rejected"]), details, "; ..." if len(result["rejected"]) > 10 else "")
        else:
            msg += " (no completed snapshot of owners %s matches the tag filters)" % ", ".join(owner_ids)
        msg += "; set allow_none=true to get found=false instead of a failure"
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
