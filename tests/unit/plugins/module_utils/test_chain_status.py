"""module_utils/chain_status.py: the bitcoin reader on a real command standing in for the node's CLI, the
ethereum reader on a real loopback JSON-RPC server, each answering as the clients do (syncing objects,
EthereumJS's no-peer error, errors that are not about syncing)."""
from __future__ import annotations

import json
import sys

import pytest
from json_server import JsonServer  # tests/testlib, put on sys.path by tests/conftest.py
from ansible_collections.chainops.validator.plugins.module_utils.chain_status import ChainStatusError, describe, probe, reader
from ansible_collections.chainops.validator.plugins.module_utils.readiness import wait

# A CLI stand-in: prints the getblockchaininfo document it was given, or a block hash.
CLI = [sys.executable, "-c", "import sys; a = sys.argv[1:]; "
       "print(a[0] if a[1] == 'getblockchaininfo' else 'hash-of-%s' % a[2]) if a[0] != 'fail' else sys.exit('error: RPC refused')"]


def bitcoin(info):
    return reader("bitcoin", argv=CLI + [json.dumps(info) if isinstance(info, dict) else info])


def test_bitcoin_in_sync_and_a_block_hash():
    chain = bitcoin({"blocks": 120, "headers": 120, "initialblockdownload": False})
    assert chain.status() == {"height": 120, "target": 120, "syncing": False, "syncing_reason": ""}
    assert chain.block_hash(7) == "hash-of-7"


@pytest.mark.parametrize("info, reason", [
    ({"blocks": 100, "headers": 150, "initialblockdownload": False}, "headers 150 > blocks 100"),
    ({"blocks": 150, "headers": 150, "initialblockdownload": True}, "initial block download"),
])
def test_bitcoin_syncing_says_why(info, reason):
    status = bitcoin(info).status()
    assert status["syncing"] and status["syncing_reason"] == reason and status["target"] == 150


def test_bitcoin_failures_name_what_the_cli_said():
    with pytest.raises(ChainStatusError, match="error: RPC refused"):
        bitcoin("fail").status()
    with pytest.raises(ChainStatusError, match="did not return blocks"):
        bitcoin({"chain": "regtest"}).status()


def rpc_answer(answers):
    """A JSON-RPC node answering each method from ``answers`` (a result, or {"error": ...})."""

    def answer(request):
        call = request.json()
        if call["method"] == "eth_getBlockByNumber":
            reply = {"hash": "0xhash" + call["params"][0]}
        else:
            reply = answers[call["method"]]
        document = {"jsonrpc": "2.0", "id": call["id"]}
        document.update(reply if isinstance(reply, dict) and "error" in reply else {"result": reply})
        return document
    return answer


@pytest.fixture()
def node():
    answers = {}
    with JsonServer(rpc_answer(answers)) as server:
        server.answers = answers
        yield server


def ethereum(server):
    return reader("ethereum", url=server.url + "/", attempt_timeout=5)


def test_ethereum_in_sync_and_a_block_hash(node):
    node.answers.update(eth_blockNumber="0x2a", eth_syncing=False)
    chain = ethereum(node)
    assert chain.status() == {"height": 42, "target": 42, "syncing": False, "syncing_reason": ""}
    assert chain.block_hash(16) == "0xhash0x10"


def test_ethereum_syncing_object(node):
    node.answers.update(eth_blockNumber="0x64", eth_syncing={"startingBlock": "0x0", "currentBlock": "0x64", "highestBlock": "0xc8"})
    status = ethereum(node).status()
    assert status == {"height": 100, "target": 200, "syncing": True, "syncing_reason": "syncing: block 100 of 200"}
    assert describe(status) == "height 100 of 200, syncing: block 100 of 200"


def test_ethereumjs_without_a_peer_is_syncing_not_unknown(node):
    node.answers.update(eth_blockNumber="0x5", eth_syncing={"error": {"code": -32603, "message": "no peer available for synchronization"}})
    status = ethereum(node).status()
    assert status["syncing"] and "no peer to sync from" in status["syncing_reason"]


def test_ethereum_other_errors_and_silence_fail_with_the_reason(node):
    node.answers.update(eth_blockNumber="0x5", eth_syncing={"error": {"code": -32601, "message": "method not found"}})
    with pytest.raises(ChainStatusError, match="eth_syncing: method not found"):
        ethereum(node).status()
    with pytest.raises(ChainStatusError, match="no answer from"):
        reader("ethereum", url="http://127.0.0.1:9/", attempt_timeout=1).status()


def test_probe_waits_for_height_and_sync_and_keeps_the_last_reading(node):
    node.answers.update(eth_blockNumber="0x5", eth_syncing={"currentBlock": "0x5", "highestBlock": "0x9"})
    chain = ethereum(node)
    assert probe(chain, minimum_height=5)["ok"]
    not_synced = probe(chain, minimum_height=5, synced=True)
    assert not not_synced["ok"] and not_synced["state"] == "still syncing (height 5 of 9, syncing: block 5 of 9)"
    result = wait(lambda: probe(chain, minimum_height=8), timeout=0.3, interval=0.1)
    assert not result["ready"] and result["attempts"] >= 2 and result["last"]["state"].startswith("height 5 < 8")


def test_readers_need_their_source():
    with pytest.raises(ChainStatusError, match="argv is required"):
        reader("bitcoin")
    with pytest.raises(ChainStatusError, match="url is required"):
        reader("ethereum")
    with pytest.raises(ChainStatusError, match="unknown adapter"):
        reader("dogecoin", argv=["x"])
