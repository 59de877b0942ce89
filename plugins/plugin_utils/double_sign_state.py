# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""A client's own double-sign protection, carried from the old signer to the new one (controller side).

CometBFT's file signer keeps the height, round and step it last signed in priv_validator_state.json
and refuses to sign at or below them. When the signer moves, the new host must start with a state
that is never older than the old one's, or it could sign again a height the old host signed. The
new host keeps its own file when that is as new or newer (it signed later, as a signer before).

The file as CometBFT writes it (privval.FilePVLastSignState): height as a decimal string (an int64
in CometBFT's JSON), round and step as numbers, step 0 none, 1 propose, 2 prevote, 3 precommit,
plus the last signature and sign bytes when it has signed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

FORMATS = ("cometbft",)
STEPS = {0: "none", 1: "propose", 2: "prevote", 3: "precommit"}


class StateError(ValueError):
    """A state file that cannot be read as its client writes it."""


def _whole(value, name, text_allowed=False):
    if text_allowed and isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise StateError("%s must be a whole number%s, got %r" % (name, " (CometBFT writes it in quotes)" if text_allowed else "", value))


def cometbft_last_signed(text):
    """(height, round, step) from priv_validator_state.json's text. Raises StateError."""
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise StateError("not JSON: %s" % exc)
    if not isinstance(state, dict):
        raise StateError("not a JSON object: %r" % (text[:100],))
    step = _whole(state.get("step"), "step")
    if step not in STEPS:
        raise StateError("step must be 0 to 3 (%s), got %d" % (", ".join(STEPS.values()), step))
    return _whole(state.get("height"), "height", text_allowed=True), _whole(state.get("round"), "round"), step


def describe(signed):
    return "height %d, round %d, step %s" % (signed[0], signed[1], STEPS[signed[2]])


def carry(state_format, old_text, new_text):
    """What the new signer starts with: {"carry": bool, "reason": str}; carry means write old_text.

    old_text None: the old signer's state could not be read (it was fenced, or it has none): the new
    signer keeps its own, and the client's chain-side check (CometBFT's double_sign_check_height) is
    what is left. Raises StateError when the old state is damaged: starting with an unknown floor is
    refused rather than guessed.
    """
    if state_format not in FORMATS:
        raise StateError("unknown signing-state format %r (known: %s)" % (state_format, ", ".join(FORMATS)))
    if old_text is None:
        return {"carry": False, "reason": "the old signer's state was not read (fenced, or no file): this host keeps its own; "
                                          "double_sign_check_height is the remaining check"}
    try:
        old = cometbft_last_signed(old_text)
    except StateError as exc:
        raise StateError("the old signer's state cannot be read: %s" % exc)
    if new_text is None:
        return {"carry": True, "reason": "this host has no state; the old signer's (%s) is carried" % describe(old)}
    try:
        new = cometbft_last_signed(new_text)
    except StateError as exc:
        return {"carry": True, "reason": "this host's state cannot be read (%s); the old signer's (%s) is carried" % (exc, describe(old))}
    if old > new:
        return {"carry": True, "reason": "the old signer's last signature (%s) is newer than this host's (%s): carried"
                                         % (describe(old), describe(new))}
    return {"carry": False, "reason": "this host's state (%s) is not older than the old signer's (%s): kept"
                                      % (describe(new), describe(old))}
