"""chainops.validator.signer_lease against a real moto_server: one signer per cluster, whoever races.

The module runs through ansible-playbook the real way; moto 5.2 honours If-Match and If-None-Match on
PutObject (412), which is what the lease's conditional write relies on.
"""
from __future__ import annotations

import json

from playbook_runner import task_results

BUCKET = "chainops-lease-test"
KEY = "chainops/signer-leases/cosmos-1.json"


def lease_task(name, state, endpoint, **args):
    return {"name": name, "chainops.validator.signer_lease": dict(
        args, state=state, bucket=BUCKET, cluster="cosmos-1", endpoint_url=endpoint, region="us-east-1")}


def stored(s3):
    return json.loads(s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read())


def test_six_controllers_racing_for_one_lease_leave_exactly_one_holder(s3, aws_env, tmp_path):
    hosts = ["ctl%d" % n for n in range(6)]
    results = task_results(tmp_path, [lease_task("acquire", "acquired", aws_env, holder="{{ inventory_hostname }}")],
                           hosts=hosts, forks=6)["acquire"]
    winners = [host for host, result in results.items() if not result.get("failed")]
    assert len(winners) == 1, results
    lease = stored(s3)
    assert lease["holder"] == winners[0] and lease["token"] == 1
    for host in set(hosts) - set(winners):
        assert results[host]["outcome"] == "refused"
        assert "held by %s with token 1" % winners[0] in results[host]["msg"], results[host]["msg"]


def test_six_failover_runs_racing_for_one_claim_leave_exactly_one_and_change_nothing_else(s3, aws_env, tmp_path):
    task_results(tmp_path, [lease_task("a acquires", "acquired", aws_env, holder="val-a")], hosts=["localhost"])
    before = stored(s3)
    hosts = ["run%d" % n for n in range(6)]
    results = task_results(tmp_path, [lease_task("claim", "claimed", aws_env, holder="val-b", takeover_from="val-a",
                                                 run="{{ inventory_hostname }}", ttl=900)], hosts=hosts, forks=6)["claim"]
    winners = [host for host, result in results.items() if not result.get("failed")]
    assert len(winners) == 1, results
    lease = stored(s3)
    assert lease["failover"]["run"] == winners[0] and (lease["failover"]["from"], lease["failover"]["to"]) == ("val-a", "val-b")
    assert dict(lease, failover=None) == dict(before, failover=None)  # the holder keeps its lease until it is released
    for host in set(hosts) - set(winners):
        assert results[host]["outcome"] == "refused"
        assert "another failover of cluster cosmos-1 is under way: a failover from val-a to val-b (run %s)" % winners[0] in results[host]["msg"]
    results = task_results(tmp_path, [
        lease_task("another host acquires", "acquired", aws_env, holder="val-c", takeover_from="val-a"),
        lease_task("the winner resumes", "claimed", aws_env, holder="val-b", takeover_from="val-a", run=winners[0]),
        lease_task("the target takes over", "acquired", aws_env, holder="val-b", takeover_from="val-a"),
    ], hosts=["localhost"])
    assert results["another host acquires"]["localhost"]["failed"]
    assert "val-c cannot take the signer lease of cluster cosmos-1: a failover from val-a to val-b" in results["another host acquires"]["localhost"]["msg"]
    assert results["the winner resumes"]["localhost"]["changed"] is False
    assert results["the target takes over"]["localhost"]["outcome"] == "taken_over"
    lease = stored(s3)
    assert (lease["holder"], lease["token"]) == ("val-b", 2) and "failover" not in lease


def test_lease_lifecycle_tokens_only_grow(s3, aws_env, tmp_path):
    results = task_results(tmp_path, [
        lease_task("a acquires", "acquired", aws_env, holder="val-a", ttl=600),
        lease_task("a acquires again", "acquired", aws_env, holder="val-a", ttl=600),
        lease_task("a verifies its token", "verified", aws_env, holder="val-a", token=1),
        lease_task("b verifies", "verified", aws_env, holder="val-b"),
        lease_task("b acquires in check mode", "acquired", aws_env, holder="val-b") | {"check_mode": True},
        lease_task("b takes over from the wrong host", "acquired", aws_env, holder="val-b", takeover_from="val-c"),
        lease_task("b takes over from a in check mode", "acquired", aws_env, holder="val-b", takeover_from="val-a") | {"check_mode": True},
        lease_task("query after check mode", "query", aws_env),
        lease_task("b takes over from a", "acquired", aws_env, holder="val-b", takeover_from="val-a"),
        lease_task("a verifies its old token", "verified", aws_env, holder="val-a", token=1),
        lease_task("a releases what it lost", "released", aws_env, holder="val-a"),
        lease_task("b releases with a stale token", "released", aws_env, holder="val-b", token=1),
        lease_task("b releases", "released", aws_env, holder="val-b", token=2),
        lease_task("b releases again", "released", aws_env, holder="val-b"),
        lease_task("c acquires", "acquired", aws_env, holder="val-c"),
    ])
    first, again = results["a acquires"]["localhost"], results["a acquires again"]["localhost"]
    assert first["changed"] and first["outcome"] == "acquired" and first["lease"]["token"] == 1
    assert not again["changed"] and again["outcome"] == "held", again
    assert not results["a verifies its token"]["localhost"].get("failed")
    assert "val-b does not hold the signer lease of cluster cosmos-1: held by val-a" in results["b verifies"]["localhost"]["msg"]
    assert "held by val-a with token 1" in results["b acquires in check mode"]["localhost"]["msg"]
    wrong = results["b takes over from the wrong host"]["localhost"]
    assert wrong["failed"] and "takeover_from names val-c, but val-a holds it" in wrong["msg"]
    would = results["b takes over from a in check mode"]["localhost"]
    assert would["changed"] and would["lease"]["token"] == 2 and would["outcome"] == "taken_over"
    assert results["query after check mode"]["localhost"]["lease"]["holder"] == "val-a"
    taken = results["b takes over from a"]["localhost"]
    assert taken["outcome"] == "taken_over" and taken["lease"] == dict(taken["lease"], holder="val-b", token=2, previous_holder="val-a")
    assert results["a verifies its old token"]["localhost"]["failed"]
    lost = results["a releases what it lost"]["localhost"]  # nothing of its own to give back: no write, no error
    assert not lost.get("failed") and not lost["changed"] and lost["outcome"] == "not_held" and lost["lease"]["holder"] == "val-b"
    assert "expected token 1" in results["b releases with a stale token"]["localhost"]["msg"]
    released = results["b releases"]["localhost"]
    assert released["changed"] and released["lease"]["holder"] is None and released["lease"]["token"] == 2
    assert not results["b releases again"]["localhost"]["changed"]
    assert results["c acquires"]["localhost"]["lease"]["token"] == 3
    assert stored(s3)["holder"] == "val-c" and stored(s3)["token"] == 3


def test_an_expired_lease_is_taken_without_naming_its_holder(s3, aws_env, tmp_path):
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps({
        "format": 1, "cluster": "cosmos-1", "holder": "val-a", "token": 7,
        "acquired_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T01:00:00Z"}).encode())
    result = task_results(tmp_path, [lease_task("b acquires", "acquired", aws_env, holder="val-b")])["b acquires"]["localhost"]
    assert result["outcome"] == "taken_over" and result["lease"]["token"] == 8 and result["lease"]["previous_holder"] == "val-a"


BAD_INPUTS = [
    ({"state": "acquired"}, "state is acquired but all of the following are missing: holder"),
    ({"state": "acquired", "holder": "val-a", "ttl": 5}, "ttl must be at least 30 seconds, got 5"),
    ({"state": "acquired", "holder": "val-a", "takeover_from": "val-a"}, "takeover_from names the holder itself (val-a)"),
    ({"state": "verified", "holder": "a/b"}, "holder must be a non-empty name without '/'"),
    ({"state": "released", "holder": "val-a", "token": 0}, "token must be a positive integer, got 0"),
]


def test_bad_input_fails_naming_the_option_and_writes_nothing(s3, aws_env, tmp_path):
    tasks = [lease_task("bad %d" % n, args["state"], aws_env, **{k: v for k, v in args.items() if k != "state"})
             for n, (args, _message) in enumerate(BAD_INPUTS)]
    results = task_results(tmp_path, tasks)
    for n, (_args, message) in enumerate(BAD_INPUTS):
        result = results["bad %d" % n]["localhost"]
        assert result["failed"] and message in result["msg"], result["msg"]
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_a_lease_that_is_not_ours_to_read_is_an_error_not_a_free_lease(s3, aws_env, tmp_path):
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b'{"format": 1, "cluster": "other", "holder": null, "token": 3}')
    result = task_results(tmp_path, [lease_task("acquire", "acquired", aws_env, holder="val-a")])["acquire"]["localhost"]
    assert result["failed"] and "it is the lease of cluster 'other', not 'cosmos-1'" in result["msg"], result["msg"]
    assert stored(s3)["cluster"] == "other"
