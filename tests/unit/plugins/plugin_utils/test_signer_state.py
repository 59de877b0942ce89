"""Whether a signing node may be signing, read from systemctl: only a clean stop (or no unit) is "not signing"."""
from __future__ import annotations

import pytest

from ansible_collections.chainops.validator.plugins.plugin_utils.signer_state import running_signers, unit_state


@pytest.mark.parametrize("active, sub, signs", [
    ("active", "running", True),
    ("activating", "auto-restart", True),  # a crash loop between two restarts
    ("failed", "failed", True),  # anyone may start it again
    ("deactivating", "stop-sigterm", True),
    ("inactive", "dead", False),
])
def test_only_a_clean_stop_is_not_signing(active, sub, signs):
    state = unit_state("LoadState=loaded\nActiveState=%s\nSubState=%s\n" % (active, sub))
    assert state == {"signs": signs, "loaded": True, "state": "%s/%s" % (active, sub)}


def test_a_node_that_is_not_installed_does_not_sign():
    assert unit_state("LoadState=not-found\nActiveState=inactive\nSubState=dead")["signs"] is False


def test_running_signers_skips_hosts_that_did_not_answer():
    results = [
        {"item": "a", "rc": 0, "stdout": "LoadState=loaded\nActiveState=activating\nSubState=auto-restart"},
        {"item": "b", "rc": 0, "stdout": "LoadState=loaded\nActiveState=inactive\nSubState=dead"},
        {"item": "c", "unreachable": True, "msg": "container is not running"},
        {"item": "d", "rc": 1, "stdout": "", "stderr": "Failed to connect to bus"},
    ]
    assert running_signers(results) == [{"host": "a", "state": "activating/auto-restart"}]
