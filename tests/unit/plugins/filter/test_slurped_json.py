"""slurped_json: a slurp result's JSON content, parsed; a missing file gives the default or fails by name."""
from __future__ import annotations

import base64

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.filter.slurped_json import slurped_json


def _slurped(text: bytes, source="/run/chainops/signer.json"):
    return {"content": base64.b64encode(text).decode(), "encoding": "base64", "source": source, "changed": False}


def test_parses_the_content():
    assert slurped_json(_slurped(b'{"token": "t-1", "expires_at": 5}')) == {"token": "t-1", "expires_at": 5}


def test_a_result_without_content_gives_the_default():
    missing = {"failed": True, "msg": "file not found: /x", "changed": False}
    assert slurped_json(missing, {}) == {}
    assert slurped_json({"skipped": True}, None) is None


def test_a_result_without_content_and_no_default_fails_naming_why():
    with pytest.raises(AnsibleFilterError, match="file not found: /x"):
        slurped_json({"failed": True, "msg": "file not found: /x"})


def test_content_that_is_not_json_fails_naming_the_file():
    with pytest.raises(AnsibleFilterError, match="/var/lib/wg/state.json is not JSON"):
        slurped_json(_slurped(b"{half", source="/var/lib/wg/state.json"), {})


def test_content_that_is_not_base64_fails():
    with pytest.raises(AnsibleFilterError, match="not base64"):
        slurped_json({"content": "%%%", "source": "/x"})


def test_anything_but_a_result_fails():
    with pytest.raises(AnsibleFilterError, match="expects a registered"):
        slurped_json("e30=")
