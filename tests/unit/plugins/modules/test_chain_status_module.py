"""chainops.validator.chain_status run in this process: a profile's chain_status section as the reader option."""
from __future__ import annotations

import importlib
import json
import sys

import pytest
from ansible.module_utils.testing import patch_module_args

MODULE = importlib.import_module("ansible_collections.chainops.validator.plugins.modules.chain_status")
# A stand-in bitcoin CLI: getblockchaininfo in sync at height 42, getblockhash echoes its height.
CLI = [sys.executable, "-c", "import json, sys; a = sys.argv[1:]; "
       "print(json.dumps({'blocks': 42, 'headers': 42, 'initialblockdownload': False, 'verificationprogress': 1.0}) "
       "if a[-1] == 'getblockchaininfo' else 'hash-' + a[-1])"]


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        MODULE.main()
    return json.loads(capsys.readouterr().out)


def test_the_reader_option_reads_like_adapter_and_command(capsys):
    by_option = run(capsys, adapter="bitcoin", command=CLI, hash_at=7)
    by_reader = run(capsys, reader={"adapter": "bitcoin", "argv": CLI}, hash_at=7)
    assert by_reader["height"] == by_option["height"] == 42
    assert by_reader["hash"] == by_option["hash"] == "hash-7"
    assert by_reader["ready"] and not by_reader.get("failed")


@pytest.mark.parametrize(
    "args, message",
    [
        ({"reader": {"adapter": "bitcoin"}}, "adapter is bitcoin but all of the following are missing: argv found in reader"),
        ({"reader": {"adapter": "ethereum", "url": "http://127.0.0.1:1/"}, "adapter": "ethereum"}, "mutually exclusive: reader|adapter"),
        ({"reader": {"adapter": "bitcoin", "argv": CLI, "timeout": 3}}, "Unsupported parameters for (basic.py) module: reader.timeout"),
        ({}, "one of the following is required: adapter, reader"),
    ],
)
def test_a_reader_that_does_not_fit_fails_naming_it(capsys, args, message):
    result = run(capsys, **args)
    assert result["failed"] and message in result["msg"], result["msg"]
