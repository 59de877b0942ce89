"""Carrying CometBFT's last-signed state to the new signer: never older than the old one's."""
from __future__ import annotations

import json

import pytest

from ansible_collections.chainops.validator.plugins.plugin_utils.double_sign_state import StateError, carry, cometbft_last_signed


def state(height, round_=0, step=3, signed=True):
    document = {"height": str(height), "round": round_, "step": step}
    if signed:
        document.update(signature="c2ln", signbytes="AB12")
    return json.dumps(document)


def test_reads_the_file_as_cometbft_writes_it():
    assert cometbft_last_signed(state(36)) == (36, 0, 3)
    assert cometbft_last_signed('{"height": "0", "round": 0, "step": 0}') == (0, 0, 0)


@pytest.mark.parametrize("old, new, carried", [
    (state(36), state(20), True),
    (state(36, 1, 1), state(36, 0, 3), True),  # a later round of the same height
    (state(36, 0, 3), state(36, 0, 2), True),  # precommit after prevote
    (state(36), state(36), False),
    (state(20), state(36), False),  # this host signed later (it was the signer before)
])
def test_the_newest_by_height_round_step_wins(old, new, carried):
    assert carry("cometbft", old, new)["carry"] is carried


def test_the_reason_names_both_states():
    assert carry("cometbft", state(36), state(20))["reason"] == (
        "the old signer's last signature (height 36, round 0, step precommit) is newer than this host's "
        "(height 20, round 0, step precommit): carried")
    assert carry("cometbft", state(20), state(36))["reason"].startswith("this host's state (height 36, round 0, step precommit) is not older")


def test_no_old_state_keeps_this_hosts_and_says_what_is_left():
    decision = carry("cometbft", None, state(20))
    assert decision["carry"] is False and "double_sign_check_height" in decision["reason"]


@pytest.mark.parametrize("new", [None, "{not json", '{"height": 5}'])
def test_a_missing_or_damaged_own_state_takes_the_old_one(new):
    assert carry("cometbft", state(36), new)["carry"] is True


@pytest.mark.parametrize("old, problem", [
    ("{not json", "not JSON"),
    ('["x"]', "not a JSON object"),
    ('{"height": "-1", "round": 0, "step": 0}', "height must be a whole number (CometBFT writes it in quotes), got '-1'"),
    ('{"height": "3", "round": true, "step": 0}', "round must be a whole number, got True"),
    ('{"height": "3", "round": 0, "step": 4}', "step must be 0 to 3 (none, propose, prevote, precommit), got 4"),
])
def test_a_damaged_old_state_is_refused_not_guessed(old, problem):
    with pytest.raises(StateError) as error:
        carry("cometbft", old, state(1))
    assert str(error.value).startswith("the old signer's state cannot be read: " + problem)


def test_an_unknown_format_is_an_error():
    with pytest.raises(StateError, match="unknown signing-state format 'eip3076'"):
        carry("eip3076", state(1), state(1))
