# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""A cluster's signer lease, independent of Ansible and of S3: the document and its transitions.

The lease says which host of a cluster may sign. It lives in one object per cluster (S3, written
with If-Match / If-None-Match, see plugins/modules/signer_lease.py), so two controllers cannot
both believe they hold it. Every change of holder raises the fencing token by one; a release
keeps the token, and the object is never deleted, so tokens never go back. Anything that acts
for a signer (the host's token file, a fence) can be stamped with the token and stale ones
refused.

A failover first writes a claim into the same object (``failover``: from, to, run, expiry). While
it is valid, another run's claim and any other host's acquire are refused, so of two failovers started
at once one proceeds and the other changes nothing. The new signer's acquire clears the claim; a run
that died leaves it until it expires, or until the same run (its id) resumes.

Times are UTC, stored as ISO 8601 text (readable in the bucket) and handled as epoch seconds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import json
import time

LEASE_FORMAT = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class LeaseError(Exception):
    """The stored lease cannot be read (not JSON, wrong shape, another cluster's)."""


class LeaseRefused(Exception):
    """This holder may not have, keep or release the lease; the message says who holds it."""

    def __init__(self, message, lease=None):
        super(LeaseRefused, self).__init__(message)
        self.lease = lease


def format_time(epoch):
    return time.strftime(TIME_FORMAT, time.gmtime(int(epoch)))


def parse_time(text):
    return calendar.timegm(time.strptime(text, TIME_FORMAT))


def _require_time(document, key, name):
    try:
        parse_time(document.get(key) or "")
    except (TypeError, ValueError):
        raise LeaseError("%s must be %s UTC, got %r" % (name, TIME_FORMAT, document.get(key)))


def _stored_or_new(current, cluster):
    """The stored lease, or the one a cluster has before anyone held it (token 0, nobody)."""
    return current or {"format": LEASE_FORMAT, "cluster": cluster, "token": 0, "holder": None}


def parse_lease(text, cluster):
    """The stored document as a dict, or None when there is none yet. Raises LeaseError."""
    if text is None:
        return None
    try:
        lease = json.loads(text)
    except ValueError as exc:
        raise LeaseError("not JSON: %s" % exc)
    if not isinstance(lease, dict) or lease.get("format") != LEASE_FORMAT:
        raise LeaseError("not a format %d signer lease: %r" % (LEASE_FORMAT, text[:200]))
    if lease.get("cluster") != cluster:
        raise LeaseError("it is the lease of cluster %r, not %r" % (lease.get("cluster"), cluster))
    token = lease.get("token")
    if not isinstance(token, int) or isinstance(token, bool) or token < 0:
        raise LeaseError("token must be a non-negative integer, got %r" % (token,))
    holder = lease.get("holder")
    if holder is not None and (not isinstance(holder, str) or not holder):
        raise LeaseError("holder must be a host name or null, got %r" % (holder,))
    if holder is not None:
        _require_time(lease, "expires_at", "expires_at")
    for name in ("failover", "last_failover"):
        record = lease.get(name)
        if record is not None and (not isinstance(record, dict)
                                   or not all(isinstance(record.get(k), str) and record.get(k) for k in ("from", "to", "run"))):
            raise LeaseError("%s must hold from, to and run, got %r" % (name, record))
    if lease.get("failover") is not None:
        _require_time(lease["failover"], "expires_at", "failover.expires_at")
    return lease


def active_claim(lease, now):
    """The lease's failover claim while it is valid, else None."""
    claim = (lease or {}).get("failover")
    if claim and parse_time(claim["expires_at"]) > int(now):
        return claim
    return None


def describe_claim(claim, now):
    return "a failover from %s to %s (run %s) claimed it at %s, until %s (%d s left)" % (
        claim["from"], claim["to"], claim["run"], claim.get("claimed_at") or "?", claim["expires_at"],
        parse_time(claim["expires_at"]) - int(now))


def seconds_left(lease, now):
    """Seconds until a held lease expires (negative once it has); None when nobody holds it."""
    if not lease or lease.get("holder") is None:
        return None
    return parse_time(lease["expires_at"]) - int(now)


def describe(lease, now):
    """One line for messages: who holds it, with which token, until when."""
    if not lease:
        return "no lease exists yet"
    left = seconds_left(lease, now)
    if left is None:
        return "nobody holds it (token %d, released by %s at %s)" % (
            lease["token"], lease.get("released_by") or "?", lease.get("released_at") or "?")
    state = "expires in %d s" % left if left > 0 else "expired %d s ago" % -left
    return "held by %s with token %d since %s, until %s (%s)" % (
        lease["holder"], lease["token"], lease.get("acquired_at") or "?", lease["expires_at"], state)


def _held(lease, holder, now, ttl, token):
    return {"format": LEASE_FORMAT, "cluster": lease["cluster"], "holder": holder, "token": token,
            "acquired_at": format_time(now), "expires_at": format_time(int(now) + int(ttl))}


def acquire(current, cluster, holder, now, ttl, takeover_from=None):
    """(new document or None when nothing needs writing, outcome).

    outcome: ``acquired`` (free or never held), ``renewed`` (ours, less than half the ttl left, or
    expired), ``held`` (ours, nothing to write but a finished claim), ``taken_over`` (another holder's,
    expired or named in takeover_from: the caller has made sure that holder no longer signs). Raises
    LeaseRefused when another holder's lease is still valid and was not named, or while another
    host's failover claim is valid. A claim that is over (this holder was its target, or it expired)
    is dropped; when this holder was its target, ``last_failover`` keeps its run so that the run can
    be resumed (claim_failover).
    """
    base = _stored_or_new(current, cluster)
    claim = active_claim(base, now)
    if claim and claim["to"] != holder:
        raise LeaseRefused("%s cannot take the signer lease of cluster %s: %s" % (holder, cluster, describe_claim(claim, now)), base)
    over = base.get("failover")
    done = None
    if over is not None:
        base = dict((k, v) for k, v in base.items() if k != "failover")
        if over["to"] == holder:
            done = {"run": over["run"], "from": over["from"], "to": holder, "done_at": format_time(now)}

    def outcome_of(document, outcome):
        if done:
            document["last_failover"] = done
        return document, outcome

    owner = base.get("holder")
    if owner is None:
        return outcome_of(_held(base, holder, now, ttl, base["token"] + 1), "acquired")
    left = seconds_left(base, now)
    if owner == holder:
        if left >= int(ttl) // 2:
            return outcome_of(dict(base), "held") if over is not None else (None, "held")
        renewed = dict(base, expires_at=format_time(int(now) + int(ttl)), renewed_at=format_time(now))
        return outcome_of(renewed, "renewed")
    if left <= 0 or takeover_from == owner:
        document = _held(base, holder, now, ttl, base["token"] + 1)
        document["previous_holder"] = owner
        return outcome_of(document, "taken_over")
    hint = ("" if takeover_from is None else
            "; takeover_from names %s, but %s holds it" % (takeover_from, owner))
    raise LeaseRefused("the signer lease of cluster %s is %s%s" % (cluster, describe(base, now), hint), base)


def claim_failover(current, cluster, source, target, run, now, ttl):
    """(new document or None, outcome ``claimed``): reserve the lease for a failover from source to target.

    Nothing to write when this run holds the claim already, or moved the lease to target already (a
    resumed run: last_failover). Raises LeaseRefused while
    another run's claim is valid, or when the lease is held by neither source nor nobody (the signer
    has moved already, or the request names the wrong host).
    """
    base = _stored_or_new(current, cluster)
    claim = active_claim(base, now)
    if claim and claim["run"] == run:
        if (claim["from"], claim["to"]) != (source, target):
            raise LeaseRefused("run %s claimed a failover of cluster %s from %s to %s, not from %s to %s" % (
                run, cluster, claim["from"], claim["to"], source, target), base)
        return None, "claimed"
    if claim:
        raise LeaseRefused("another failover of cluster %s is under way: %s. Nothing was changed; to resume that run, "
                           "pass its id as chainops_failover_run" % (cluster, describe_claim(claim, now)), base)
    last = base.get("last_failover") or {}
    if last.get("run") == run and base.get("holder") == target and last.get("from") == source:
        return None, "claimed"  # this run moved the lease already and stopped after that: resume its last steps
    owner = base.get("holder")
    if owner not in (source, None):
        raise LeaseRefused("cannot fail cluster %s over from %s: the signer lease is %s. Nothing was changed" % (
            cluster, source, describe(base, now)), base)
    document = dict(base, failover={"from": source, "to": target, "run": run, "claimed_at": format_time(now),
                                    "expires_at": format_time(int(now) + int(ttl))})
    return document, "claimed"


def release(current, cluster, holder, now, token=None):
    """(new document or None, outcome): ``released``; ``free`` when nobody holds it; ``not_held`` when
    another host holds it (nothing of this holder's to give back: it lost the lease, or a resumed
    failover finds it moved already).

    Raises LeaseRefused when this holder has it with another token than the one given (its lease was
    taken over and given back in between: the token it holds is stale).
    """
    if current is None or current.get("holder") is None:
        return None, "free"
    if current["holder"] != holder:
        return None, "not_held"
    if token is not None and int(token) != current["token"]:
        raise LeaseRefused("%s cannot release the signer lease of cluster %s: it is %s (expected token %d)" % (
            holder, cluster, describe(current, now), int(token)), current)
    document = dict((k, v) for k, v in current.items() if k not in ("expires_at", "renewed_at", "previous_holder"))
    document.update(holder=None, released_by=holder, released_at=format_time(now))
    return document, "released"


def verify(current, cluster, holder, now, token=None):
    """``held`` when holder holds an unexpired lease (with this token, when given); else LeaseRefused."""
    left = seconds_left(current, now)
    if current is None or current.get("holder") != holder or left is None or left <= 0 or (
            token is not None and int(token) != current["token"]):
        raise LeaseRefused("%s does not hold the signer lease of cluster %s%s: %s" % (
            holder, cluster, "" if token is None else " with token %d" % int(token), describe(current, now)), current)
    return "held"
