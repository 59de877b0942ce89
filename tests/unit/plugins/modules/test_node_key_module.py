"""chainops.validator.node_key run in this process: the key is made once, 0600, and never returned."""
from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.chainops.validator.plugins.module_utils.node_key import (
    openssh_ed25519_public_key,
    parse_key,
    radicle_nid,
)

MODULE = importlib.import_module("ansible_collections.chainops.validator.plugins.modules.node_key")


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        MODULE.main()
    return json.loads(capsys.readouterr().out)


def test_a_missing_key_is_made_once_in_new_private_directories(tmp_path, capsys):
    path = tmp_path / "data" / "waku" / "nodekey.env"
    first = run(capsys, path=str(path), env_name="WAKUNODE2_NODEKEY", generate=True)
    assert (first["changed"], first["generated"], first["exists"]) == (True, True, True)
    content = path.read_text()
    secret = parse_key(content, "WAKUNODE2_NODEKEY")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # The private key is nowhere in the result.
    assert "%064x" % secret not in json.dumps(first)
    second = run(capsys, path=str(path), env_name="WAKUNODE2_NODEKEY", generate=True)
    assert (second["changed"], second["generated"]) == (False, False)
    assert path.read_text() == content
    assert (second["peer_id"], second["enode_id"]) == (first["peer_id"], first["enode_id"])
    assert os.listdir(path.parent) == ["nodekey.env"]


def test_check_mode_reports_a_missing_key_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "nodekey"
    result = run(capsys, path=str(path), generate=True, _ansible_check_mode=True)
    assert (result["changed"], result["exists"], result["generated"]) == (True, False, True)
    assert "peer_id" not in result and not path.exists()
    # Reading only, in check mode: reported, not failed (the step that makes the key did not run).
    result = run(capsys, path=str(path), _ansible_check_mode=True)
    assert (result.get("failed", False), result["changed"], result["exists"]) == (False, False, False)


def test_a_missing_key_fails_when_nothing_makes_it(tmp_path, capsys):
    result = run(capsys, path=str(tmp_path / "nodekey"))
    assert result["failed"] and "no node key" in result["msg"]


def test_a_bad_key_file_and_a_bad_env_name_are_named(tmp_path, capsys):
    path = tmp_path / "nodekey"
    path.write_text("WAKUNODE2_NODEKEY=xyz\n")
    result = run(capsys, path=str(path), env_name="WAKUNODE2_NODEKEY")
    assert result["failed"] and result["msg"] == "%s: expected one line WAKUNODE2_NODEKEY=<secp256k1 private key as 64 hex digits>" % path
    result = run(capsys, path=str(path), env_name="NOT-A-NAME")
    assert result["failed"] and result["msg"].startswith("env_name: 'NOT-A-NAME'")
    result = run(capsys, path=str(path), generate=True, owner="no-such-user-here")
    assert result["failed"] and "no such user or group" in result["msg"]


def test_an_openssh_ed25519_key_gives_radicles_node_id_and_is_never_generated(tmp_path, capsys):
    key = tmp_path / "radicle"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "radicle", "-f", str(key)], check=True)
    result = run(capsys, path=str(key), type="openssh_ed25519")
    expected = radicle_nid(openssh_ed25519_public_key((tmp_path / "radicle.pub").read_text()))
    assert (result["changed"], result["exists"], result["radicle_nid"]) == (False, True, expected)
    assert "PRIVATE" not in json.dumps(result) and "peer_id" not in result
    refused = run(capsys, path=str(tmp_path / "missing"), type="openssh_ed25519", generate=True)
    assert refused["failed"] and "type openssh_ed25519: the key is read only" in refused["msg"]
    assert not (tmp_path / "missing").exists()
