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
module: signer_lease
short_description: A validator cluster's signer lease, held in S3 with conditional writes and a fencing token
version_added: 0.2.0
description:
  - One S3 object per cluster says which host may sign. It is changed only with a conditional write
    (C(If-Match) on the ETag read, C(If-None-Match=*) when it does not exist yet), so when two
    controllers act at once exactly one write lands; the other re-reads the lease and is refused if
    it no longer may have it. No lock can be left behind by a dead run; an unreleased lease expires
    after O(ttl) seconds.
  - Every change of holder raises the lease's fencing token by one. A release keeps the token and
    the object is never deleted, so tokens only grow.
  - O(state=acquired) takes a free or expired lease, keeps (and, with less than half of O(ttl) left,
    renews) this holder's, or takes over the lease of the host named in O(takeover_from), which the
    caller has first made sure no longer signs (stopped or fenced). Any other holder's valid lease
    is refused, naming that holder, its token and the expiry, and nothing is written.
  - O(state=released) gives this holder's lease back. Nothing to do when nobody or another host holds
    it (outcome C(free) or C(not_held)). Refused when, with O(token), this holder's token changed.
  - O(state=verified) changes nothing and fails unless this holder holds an unexpired lease (with
    O(token), when given). Run it immediately before starting a signer.
  - O(state=claimed) reserves the lease for one failover run (O(run)) from O(takeover_from) to
    O(holder) for O(ttl) seconds, before that run changes anything. While the claim is valid another
    run's claim and any other host's acquire are refused, naming the run; the same run may claim
    again (to resume), also after its target took the lease (C(last_failover)). Refused when the lease
    is held by a host other than O(takeover_from). The target's acquire clears the claim.
  - O(state=query) returns the lease as stored.
  - Runs where the AWS credentials are (normally the controller, C(delegate_to=localhost)). The
    host clock of that machine decides expiry; keep it synchronised.
options:
  state:
    description: What to do with the lease.
    type: str
    required: true
    choices: [acquired, released, verified, claimed, query]
  bucket:
    description: S3 bucket holding the leases.
    type: str
    required: true
  cluster:
    description: The validator cluster (the C(topology_cluster) of its hosts); one lease per cluster.
    type: str
    required: true
  holder:
    description: The host that acquires, keeps, verifies or releases the lease (its inventory name). Required unless O(state=query).
    type: str
  key_prefix:
    description: The lease object is C(<key_prefix><cluster>.json).
    type: str
    default: chainops/signer-leases/
  ttl:
    description:
      - Seconds a lease stays valid after it is acquired or renewed. After that another host may take
        it without naming this one. Choose it longer than the time between two runs that renew it.
      - With O(state=claimed), seconds the failover claim stays valid.
    type: int
    default: 3600
  takeover_from:
    description:
      - The host whose still-valid lease O(state=acquired) may take (a failover after that host was
        stopped or fenced). Ignored when the lease is free, expired or already this holder's.
    type: str
  run:
    description: With O(state=claimed), the failover run's id (any text that differs between runs). Required with O(state=claimed).
    type: str
  token:
    description: With O(state=verified) or O(state=released), the fencing token the lease must still carry.
    type: int
  attempts:
    description: Read-decide-write rounds before giving up when other writers keep changing the lease.
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
- name: Take the signer lease for this validator before its node starts
  chainops.validator.signer_lease:
    state: acquired
    bucket: my-validator-leases
    cluster: cosmos-1
    holder: "{{ inventory_hostname }}"
    ttl: 86400
  delegate_to: localhost
  register: lease

- name: Take over after the old signer was fenced
  chainops.validator.signer_lease:
    state: acquired
    bucket: my-validator-leases
    cluster: cosmos-1
    holder: val-b
    takeover_from: val-a
  delegate_to: localhost

- name: Reserve the lease for this failover run before anything stops
  chainops.validator.signer_lease:
    state: claimed
    bucket: my-validator-leases
    cluster: cosmos-1
    holder: val-b
    takeover_from: val-a
    run: "{{ failover_run_id }}"
    ttl: 900
  delegate_to: localhost

- name: Check the lease again immediately before starting the signer
  chainops.validator.signer_lease:
    state: verified
    bucket: my-validator-leases
    cluster: cosmos-1
    holder: "{{ inventory_hostname }}"
    token: "{{ lease.lease.token }}"
  delegate_to: localhost
"""

RETURN = r"""
lease:
  description: The lease after the task (as stored; as it would be stored in check mode). Empty when none exists.
  returned: always
  type: dict
  contains:
    cluster:
      description: The cluster.
      type: str
    holder:
      description: The host that may sign, or null once released.
      type: str
    token:
      description: The fencing token; raised by one at every change of holder.
      type: int
    acquired_at:
      description: When the holder took it (UTC).
      type: str
    expires_at:
      description: When it expires unless renewed (UTC).
      type: str
    previous_holder:
      description: The holder it was taken over from.
      type: str
    failover:
      description: A failover's claim (from, to, run, claimed_at, expires_at) until its new signer acquires the lease.
      type: dict
    last_failover:
      description: The failover run (from, to, run, done_at) whose target took the lease last.
      type: dict
outcome:
  description: >-
    acquired, renewed, held (this holder's already), taken_over, released, free or not_held (nothing
    to release), claimed, verified or queried.
  returned: always
  type: str
key:
  description: The lease's S3 object key.
  returned: always
  type: str
attempts:
  description: Read-decide-write rounds used (more than 1 when another writer changed the lease in between).
  returned: always
  type: int
"""

import json
import time

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.chainops.validator.plugins.module_utils.s3_document import read_document, write_if_unchanged
from ansible_collections.chainops.validator.plugins.module_utils.signer_lease import (
    LeaseError,
    LeaseRefused,
    acquire,
    claim_failover,
    parse_lease,
    release,
    verify,
)


class Conflict(Exception):
    """Someone wrote the lease between our read and our write."""


def read_lease(s3, bucket, key, cluster):
    text, etag = read_document(s3, bucket, key)
    return (None, None) if text is None else (parse_lease(text, cluster), etag)


def write_lease(s3, bucket, key, document, etag):
    if not write_if_unchanged(s3, bucket, key, json.dumps(document, indent=2, sort_keys=True) + "\n", etag):
        raise Conflict()


def run(module, s3, params, now):
    bucket, cluster, holder = params["bucket"], params["cluster"], params["holder"]
    key = "%s%s.json" % (params["key_prefix"], cluster)
    state = params["state"]
    for attempt in range(1, params["attempts"] + 1):
        current, etag = read_lease(s3, bucket, key, cluster)
        if state == "query":
            return dict(changed=False, lease=current or {}, outcome="queried", key=key, attempts=attempt)
        if state == "verified":
            verify(current, cluster, holder, now(), params["token"])
            return dict(changed=False, lease=current, outcome="verified", key=key, attempts=attempt)
        if state == "acquired":
            document, outcome = acquire(current, cluster, holder, now(), params["ttl"], params["takeover_from"])
        elif state == "claimed":
            document, outcome = claim_failover(current, cluster, params["takeover_from"], holder, params["run"], now(), params["ttl"])
        else:
            document, outcome = release(current, cluster, holder, now(), params["token"])
        if document is None:
            return dict(changed=False, lease=current or {}, outcome=outcome, key=key, attempts=attempt)
        if module.check_mode:
            return dict(changed=True, lease=document, outcome=outcome, key=key, attempts=attempt)
        try:
            write_lease(s3, bucket, key, document, etag)
        except Conflict:
            continue  # decide again on what the other writer left
        return dict(changed=True, lease=document, outcome=outcome, key=key, attempts=attempt)
    module.fail_json(msg="the signer lease s3://%s/%s changed under each of %d attempts to write it: another controller keeps "
                         "writing it" % (bucket, key, params["attempts"]), key=key)


def main():
    argument_spec = dict(
        state=dict(type="str", required=True, choices=["acquired", "released", "verified", "claimed", "query"]),
        bucket=dict(type="str", required=True),
        cluster=dict(type="str", required=True),
        holder=dict(type="str"),
        key_prefix=dict(type="str", default="chainops/signer-leases/", no_log=False),
        ttl=dict(type="int", default=3600),
        takeover_from=dict(type="str"),
        run=dict(type="str"),
        token=dict(type="int", no_log=False),
        attempts=dict(type="int", default=5),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              required_if=[("state", s, ["holder"]) for s in ("acquired", "released", "verified")]
                              + [("state", "claimed", ["holder", "takeover_from", "run"])])
    params = module.params
    problems = []
    if params["ttl"] < 30:
        problems.append("ttl must be at least 30 seconds, got %d" % params["ttl"])
    if params["attempts"] < 1:
        problems.append("attempts must be at least 1, got %d" % params["attempts"])
    if params["token"] is not None and params["token"] < 1:
        problems.append("token must be a positive integer, got %d" % params["token"])
    for name in ("cluster", "holder", "takeover_from", "run"):
        value = params[name]
        if value is not None and (not value.strip() or "/" in value):
            problems.append("%s must be a non-empty name without '/', got %r" % (name, value))
    if params["takeover_from"] is not None and params["takeover_from"] == params["holder"]:
        problems.append("takeover_from names the holder itself (%s): name the host the lease is taken from" % params["holder"])
    if problems:
        module.fail_json(msg="signer_lease: " + "; ".join(problems))
    s3 = module.client("s3", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    try:
        result = run(module, s3, params, time.time)
    except LeaseRefused as exc:
        module.fail_json(msg=str(exc), lease=exc.lease or {}, outcome="refused")
    except LeaseError as exc:
        module.fail_json(msg="the signer lease of cluster %s in s3://%s cannot be read: %s" % (params["cluster"], params["bucket"], exc))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="signer lease of cluster %s in s3://%s" % (params["cluster"], params["bucket"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
