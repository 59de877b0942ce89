"""The signer lease's transitions, on a fixed clock: who may hold it, and the fencing token that only grows."""
from __future__ import annotations

import json

import pytest

from ansible_collections.chainops.validator.plugins.module_utils.signer_lease import (
    LeaseError,
    LeaseRefused,
    acquire,
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


@pytest.mark.parametrize("lease, holder, token", [
    (held("val-a", 3), "val-b", None),
    (held("val-a", 3), "val-a", 2),
])
def test_release_by_anyone_but_the_holder_with_its_token_is_refused(lease, holder, token):
    with pytest.raises(LeaseRefused):
        release(lease, "c1", holder, NOW, token)


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
