"""The signer lease's transitions, on a fixed clock: who may hold it, and the fencing token that only grows."""
from __future__ import annotations

import json

import pytest

from ansible_collections.chainops.validator.plugins.module_utils.signer_lease import (
    LeaseError,
    LeaseRefused,
    acquire,
    claim_failover,
    format_time,
    parse_lease,
    release,
    verify,
)

NOW = 1_800_000_000
TTL = 600


def held(holder, token, expires_in=TTL):
    return {"format": 1, "cluster": "c1", "holder": holder, "token": token,
            "acquired_at": format_time(NOW - 10), "expires_at": format_time(NOW + expires_in)}


def test_first_acquire_creates_token_one():
    document, outcome = acquire(None, "c1", "val-a", NOW, TTL)
    assert outcome == "acquired" and document["token"] == 1 and document["holder"] == "val-a"
    assert document["expires_at"] == format_time(NOW + TTL)


def test_own_lease_is_renewed_only_past_half_its_ttl():
    assert acquire(held("val-a", 4, expires_in=TTL // 2), "c1", "val-a", NOW, TTL) == (None, "held")
    document, outcome = acquire(held("val-a", 4, expires_in=TTL // 2 - 1), "c1", "val-a", NOW, TTL)
    assert outcome == "renewed" and document["token"] == 4 and document["expires_at"] == format_time(NOW + TTL)
    document, outcome = acquire(held("val-a", 4, expires_in=-5), "c1", "val-a", NOW, TTL)
    assert outcome == "renewed" and document["token"] == 4


def test_another_holders_valid_lease_is_refused_with_who_and_until_when():
    with pytest.raises(LeaseRefused) as refused:
        acquire(held("val-a", 3), "c1", "val-b", NOW, TTL)
    assert "held by val-a with token 3" in str(refused.value) and "expires in 600 s" in str(refused.value)
    assert refused.value.lease["holder"] == "val-a"


@pytest.mark.parametrize("expires_in, takeover_from", [(0, None), (-60, None), (300, "val-a")])
def test_expired_or_named_lease_is_taken_over_with_the_next_token(expires_in, takeover_from):
    document, outcome = acquire(held("val-a", 3, expires_in), "c1", "val-b", NOW, TTL, takeover_from)
    assert outcome == "taken_over" and document["token"] == 4
    assert document["holder"] == "val-b" and document["previous_holder"] == "val-a"


def test_release_keeps_the_token_so_the_next_holder_gets_a_higher_one():
    document, outcome = release(held("val-a", 3), "c1", "val-a", NOW, token=3)
    assert outcome == "released" and document["holder"] is None and document["token"] == 3
    assert "expires_at" not in document and document["released_by"] == "val-a"
    assert acquire(parse_lease(json.dumps(document), "c1"), "c1", "val-b", NOW, TTL)[0]["token"] == 4
    assert release(document, "c1", "val-a", NOW) == (None, "free")
    assert release(None, "c1", "val-a", NOW) == (None, "free")


def test_a_release_with_a_stale_token_is_refused():
    with pytest.raises(LeaseRefused, match="expected token 2"):
        release(held("val-a", 3), "c1", "val-a", NOW, 2)


@pytest.mark.parametrize("token", [None, 3])
def test_another_holders_lease_is_not_released_and_not_an_error(token):
    assert release(held("val-a", 3), "c1", "val-b", NOW, token) == (None, "not_held")


@pytest.mark.parametrize("lease, token", [
    (None, None),
    (held("val-b", 3), None),
    (held("val-a", 3, expires_in=0), None),
    (held("val-a", 3), 2),
])
def test_verify_refuses_unless_held_unexpired_with_the_token(lease, token):
    with pytest.raises(LeaseRefused):
        verify(lease, "c1", "val-a", NOW, token)


def test_verify_passes_for_the_holder():
    assert verify(held("val-a", 3), "c1", "val-a", NOW, 3) == "held"


@pytest.mark.parametrize("text, problem", [
    ("{", "not JSON"),
    ('{"format": 2, "cluster": "c1", "token": 1}', "not a format 1 signer lease"),
    ('{"format": 1, "cluster": "c2", "token": 1}', "lease of cluster 'c2'"),
    ('{"format": 1, "cluster": "c1", "token": -1, "holder": null}', "token must be a non-negative integer"),
    ('{"format": 1, "cluster": "c1", "token": true, "holder": null}', "token must be a non-negative integer"),
    ('{"format": 1, "cluster": "c1", "token": 1, "holder": "a", "expires_at": "soon"}', "expires_at must be"),
    ('{"format": 1, "cluster": "c1", "token": 1, "holder": ""}', "holder must be a host name or null"),
])
def test_a_damaged_lease_is_an_error_never_a_free_one(text, problem):
    with pytest.raises(LeaseError, match=problem):
        parse_lease(text, "c1")


def claimed(lease, run="run-1", source="val-a", target="val-b", expires_in=900):
    return dict(lease, failover={"from": source, "to": target, "run": run, "claimed_at": format_time(NOW - 5),
                                 "expires_at": format_time(NOW + expires_in)})


def test_a_failover_claim_is_written_once_and_the_same_run_may_resume_it():
    document, outcome = claim_failover(held("val-a", 1), "c1", "val-a", "val-b", "run-1", NOW, 900)
    assert outcome == "claimed" and document["holder"] == "val-a" and document["token"] == 1
    assert document["failover"] == {"from": "val-a", "to": "val-b", "run": "run-1", "claimed_at": format_time(NOW),
                                    "expires_at": format_time(NOW + 900)}
    assert claim_failover(document, "c1", "val-a", "val-b", "run-1", NOW + 60, 900) == (None, "claimed")
    with pytest.raises(LeaseRefused, match="run run-1 claimed a failover of cluster c1 from val-a to val-b, not from val-a to val-c"):
        claim_failover(document, "c1", "val-a", "val-c", "run-1", NOW, 900)


@pytest.mark.parametrize("source, target", [("val-a", "val-b"), ("val-a", "val-c")])
def test_another_runs_valid_claim_is_refused_naming_that_run(source, target):
    with pytest.raises(LeaseRefused) as refused:
        claim_failover(claimed(held("val-a", 1)), "c1", source, target, "run-2", NOW, 900)
    assert "another failover of cluster c1 is under way: a failover from val-a to val-b (run run-1)" in str(refused.value)
    assert "(900 s left)" in str(refused.value) and "chainops_failover_run" in str(refused.value)


def test_an_expired_claim_gives_way_to_a_new_run():
    document, outcome = claim_failover(claimed(held("val-a", 1), expires_in=-1), "c1", "val-a", "val-c", "run-2", NOW, 900)
    assert outcome == "claimed" and (document["failover"]["run"], document["failover"]["to"]) == ("run-2", "val-c")


@pytest.mark.parametrize("lease", [held("val-b", 2), held("val-c", 2, expires_in=-5)])
def test_a_claim_is_refused_when_another_host_holds_the_lease(lease):
    with pytest.raises(LeaseRefused, match="cannot fail cluster c1 over from val-a: the signer lease is held by val-"):
        claim_failover(lease, "c1", "val-a", "val-b", "run-1", NOW, 900)


@pytest.mark.parametrize("lease", [None, {"format": 1, "cluster": "c1", "holder": None, "token": 3}])
def test_a_free_lease_can_be_claimed(lease):
    document, outcome = claim_failover(lease, "c1", "val-a", "val-b", "run-1", NOW, 900)
    assert outcome == "claimed" and document["holder"] is None and document["failover"]["to"] == "val-b"


def test_while_claimed_only_the_target_acquires_and_that_clears_the_claim():
    lease = claimed(held("val-a", 1))
    with pytest.raises(LeaseRefused, match="val-c cannot take the signer lease of cluster c1: a failover from val-a to val-b"):
        acquire(lease, "c1", "val-c", NOW, TTL, takeover_from="val-a")
    with pytest.raises(LeaseRefused, match="val-a cannot take the signer lease"):
        acquire(lease, "c1", "val-a", NOW, TTL)  # the old signer's routine renewal waits for the failover
    released, outcome = release(lease, "c1", "val-a", NOW, token=1)
    assert outcome == "released" and released["failover"] == lease["failover"]
    document, outcome = acquire(released, "c1", "val-b", NOW, TTL)
    assert outcome == "acquired" and document["token"] == 2 and "failover" not in document
    document, outcome = acquire(lease, "c1", "val-b", NOW, TTL, takeover_from="val-a")
    assert outcome == "taken_over" and document["token"] == 2 and "failover" not in document


def test_a_run_that_moved_the_lease_and_stopped_can_be_resumed_and_no_other_run_can():
    lease = claimed(held("val-a", 1))
    moved, outcome = acquire(lease, "c1", "val-b", NOW, TTL, takeover_from="val-a")
    assert outcome == "taken_over" and "failover" not in moved
    assert moved["last_failover"] == {"run": "run-1", "from": "val-a", "to": "val-b", "done_at": format_time(NOW)}
    assert claim_failover(moved, "c1", "val-a", "val-b", "run-1", NOW + 60, 900) == (None, "claimed")
    with pytest.raises(LeaseRefused, match="cannot fail cluster c1 over from val-a: the signer lease is held by val-b"):
        claim_failover(moved, "c1", "val-a", "val-b", "run-2", NOW + 60, 900)
    assert release(moved, "c1", "val-a", NOW + 60) == (None, "not_held")  # the resumed run's release on the old host
    assert acquire(moved, "c1", "val-b", NOW + 60, TTL) == (None, "held")


@pytest.mark.parametrize("expires_in, outcome", [(TTL, "held"), (TTL // 4, "renewed"), (-10, "renewed")])
def test_the_holders_acquire_drops_an_expired_claim_of_another_target_and_still_renews(expires_in, outcome):
    lease = claimed(held("val-a", 1, expires_in=expires_in), expires_in=-1)
    document, got = acquire(lease, "c1", "val-a", NOW, TTL)
    assert got == outcome and "failover" not in document and "last_failover" not in document
    assert document["expires_at"] == format_time(NOW + (TTL if outcome == "renewed" else expires_in))
    assert verify(document, "c1", "val-a", NOW, token=1) == "held"


@pytest.mark.parametrize("failover", [{"from": "a", "to": "b"}, "x", dict(zip(("from", "to", "run"), "abc"))])
def test_a_damaged_claim_is_an_error(failover):
    with pytest.raises(LeaseError, match="failover"):
        parse_lease(json.dumps(dict(held("val-a", 1), failover=failover)), "c1")
