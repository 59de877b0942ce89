# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The verdict: each check (answering, syncing, peers, head age, lag behind the references) and the bootstrap switch."""

from __future__ import annotations

import json
from collections import namedtuple

from chainops_health.adapters import ADAPTERS


PASS, FAIL, SKIP, WAIVED = "pass", "fail", "skip", "waived"

RefResult = namedtuple("RefResult", "name height error")  # one reference's answer in one poll


def _check(status, value, limit=None, reason=None, **extra):
    result = {"status": status, "value": value}
    if limit is not None:
        result["limit"] = limit
    if reason:
        result["reason"] = reason
    result.update(extra)
    return result


def _unknown(node, node_error, what):
    if node is None:
        return f"{what} unknown: node did not answer ({node_error})"
    hint = "; ".join(node.soft_errors) if node.soft_errors else "not reported"
    return f"{what} unavailable: {hint}"


def evaluate(cfg, node, node_error, references, now, bootstrap_active=False):
    """Checks and verdict for one poll.  Pure (no I/O, no clock) so it can be table-tested.

    node: NodeStatus or None when the node did not answer (node_error says why).
    references: RefResult (name, height or None, error or None) per configured reference.
    """
    references = [RefResult(*ref) for ref in references]
    adapter = ADAPTERS[cfg["adapter"]]
    behind = WAIVED if bootstrap_active else FAIL  # bootstrap only forgives "still catching up"
    answered = node is not None
    checks = {"node_answers": _check(PASS if answered else FAIL, answered, reason=None if answered else node_error)}

    if not adapter.reports_syncing:
        checks["not_syncing"] = _check(SKIP, None, reason=f"{adapter.name} does not report sync state")
    elif node is None or node.syncing is None:
        checks["not_syncing"] = _check(FAIL, None, reason=_unknown(node, node_error, "sync state"))
    else:
        reason = f"node reports it is syncing ({_sync_hint(node)})" if node.syncing else None
        checks["not_syncing"] = _check(behind if node.syncing else PASS, node.syncing, reason=reason)

    peers = node.peers if node else None
    if cfg["min_peers"] == 0:
        checks["peers"] = _check(SKIP, peers, 0, "min_peers is 0")
    elif peers is None:
        checks["peers"] = _check(FAIL, None, cfg["min_peers"], _unknown(node, node_error, "peer count"))
    else:
        ok = peers >= cfg["min_peers"]
        checks["peers"] = _check(PASS if ok else FAIL, peers, cfg["min_peers"],
                                 None if ok else f"{peers} peers, minimum is {cfg['min_peers']}")

    exact_age = now - node.head_time if node and node.head_time is not None else None
    age = None if exact_age is None else round(exact_age, 3)  # rounded for display only
    limit = cfg["max_head_age_s"]
    if limit is None:
        checks["head_age"] = _check(SKIP, age, reason="max_head_age_s not set")
    elif age is None:
        checks["head_age"] = _check(FAIL, None, limit, _unknown(node, node_error, "head time"))
    else:
        ok = exact_age <= limit
        checks["head_age"] = _check(PASS if ok else behind, age, limit,
                                    None if ok else f"head block is {age:.1f}s old, maximum is {limit}s")

    checks["lag"], reference_height, applied = _lag_check(cfg, node, node_error, references, behind)
    healthy = all(c["status"] != FAIL for c in checks.values())
    reachable = sum(1 for ref in references if ref.height is not None)
    return {
        "healthy": healthy,
        "checks": checks,
        "height": node.height if node else None,
        "reference_height": reference_height,
        "lag": checks["lag"]["value"],
        "peers": peers,
        "syncing": node.syncing if node else None,
        "head_age_s": age,
        "references_reachable": reachable,
        "references_configured": len(references),
        "reference_policy_applied": applied,
        "bootstrap_active": bootstrap_active,
    }


def _sync_hint(node):
    keys = ("headers", "initialblockdownload", "highestBlock", "catching_up", "nodeHealth", "sync", "consensus")
    hint = {k: node.detail[k] for k in keys if k in node.detail}
    return json.dumps(hint, sort_keys=True) if hint else "no detail"


def _lag_check(cfg, node, node_error, references, behind):
    """(check, best reference height, policy applied or None).  Being ahead is fine."""
    limit = cfg["max_lag_blocks"]
    if not references:
        return _check(SKIP, None, limit, "no references configured"), None, None
    heights = [ref.height for ref in references if ref.height is not None]
    extra = {"references_reachable": len(heights), "references_configured": len(references),
             "policy": cfg["reference_policy"]}
    if not heights:
        policy = cfg["reference_policy"]
        errors = "; ".join(f"{ref.name}: {ref.error}" for ref in references)
        reason = f"all {len(references)} references unreachable, {policy} policy applied ({errors})"
        status = PASS if policy == "fail_open" else FAIL
        return _check(status, None, limit, reason, policy_applied=policy, **extra), None, policy
    best = max(heights)
    extra["reference_height"] = best
    if node is None or node.height is None:
        return _check(FAIL, None, limit, _unknown(node, node_error, "height"), **extra), best, None
    lag = best - node.height
    if lag > limit:
        reason = f"{lag} blocks behind best reference ({best}), maximum is {limit}"
        return _check(behind, lag, limit, reason, **extra), best, None
    reason = f"ahead of best reference by {-lag} blocks" if lag < 0 else None
    return _check(PASS, lag, limit, reason, **extra), best, None


def next_bootstrap_state(active, verdict):
    """Bootstrap ends for good once the node is caught up, so it cannot mask a later stall."""
    if not active:
        return False
    catching_up = ("not_syncing", "head_age", "lag")
    caught_up = verdict["checks"]["node_answers"]["status"] == PASS and all(
        verdict["checks"][name]["status"] in (PASS, SKIP) for name in catching_up)
    return not caught_up
