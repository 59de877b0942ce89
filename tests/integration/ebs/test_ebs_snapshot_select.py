"""chainops.validator.ebs_snapshot_select against a real moto_server, run the real way.

Every case that talks to AWS runs `ansible-playbook` in a subprocess with tasks calling the module,
`endpoint_url` pointing at a loopback proxy in front of the `moto_server` fixture. Argument errors
run the module's main() in-process with `patch_module_args` (they fail before any AWS call). The proxy
and what it overlays: ebs_support.py (shared with the retention and restore-volume tests); its fixtures:
conftest.py.
"""
from __future__ import annotations

import re
import time

import pytest
from ebs_support import (
    K_BAD,
    K_VERIFIED,
    MODULE,
    chain_tags,
    days_ago,
    foreign_snapshot,
    make_snapshot,
    rejected,
    run_in_process,
    run_tasks,
    task,
    volume,
    with_endpoint,
)


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
    assert proxy.actions() == {"GetCallerIdentity": 4, "DescribeSnapshots": 5}
    for request in proxy.requests:
        if request["action"] == "DescribeSnapshots":
            assert ("MaxResults", "1000") in request["pairs"]


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
    assert proxy.actions()["DescribeSnapshots"] == 1


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
    assert proxy.actions() == {}
