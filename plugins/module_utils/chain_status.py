# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""How far a node's chain is, read the same way for every client family: its height, the height it
knows the network is at, whether it is still syncing, and a block's hash at a given height.

The snapshot playbook (is the source synced? at which height?) and snapshot_restore (has the restored
node started from the restored height?) ask through a profile's ``chain_status`` section, so they work
for any family with a reader here instead of for bitcoin's ``getblockchaininfo`` only.

- ``bitcoin``: the node's CLI (``argv``, without a method): ``getblockchaininfo`` and ``getblockhash``.
- ``ethereum``: JSON-RPC (``url``): ``eth_blockNumber``, ``eth_syncing`` and ``eth_getBlockByNumber``.
  ``eth_syncing`` answers ``false`` when in sync and an object while syncing; EthereumJS answers an
  error ("no peer available for synchronization") while it has no peer, which is read as syncing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.chainops.validator.plugins.module_utils.readiness import probe_command, probe_http

ADAPTERS = ("bitcoin", "ethereum")
# Errors of eth_syncing that mean "no peer to sync from yet" rather than "unknown".
NO_PEER_ERRORS = ("no peer available",)


class ChainStatusError(Exception):
    """The node did not answer, or answered something this reader cannot use."""


def _int(value, what):
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str) and value.lower().startswith("0x"):
            return int(value, 16)
        return int(value)
    except (TypeError, ValueError):
        raise ChainStatusError("%s is not a number: %r" % (what, value))


class BitcoinReader:
    """Bitcoin-family nodes through their CLI."""

    def __init__(self, argv, attempt_timeout, run=probe_command):
        self.argv, self.attempt_timeout, self.run = list(argv), attempt_timeout, run

    def _call(self, *args):
        observation = self.run(self.argv + [str(a) for a in args], self.attempt_timeout)
        if not observation.get("ok"):
            raise ChainStatusError(observation.get("state") or "the CLI failed")
        return observation

    def status(self):
        info = self._call("getblockchaininfo").get("json")
        if not isinstance(info, dict) or "blocks" not in info:
            raise ChainStatusError("getblockchaininfo did not return blocks")
        height = _int(info["blocks"], "blocks")
        target = _int(info.get("headers", height), "headers")
        ibd = bool(info.get("initialblockdownload", False))
        syncing = ibd or target > height
        why = ("initial block download" if ibd else "headers %d > blocks %d" % (target, height)) if syncing else ""
        return {"height": height, "target": max(target, height), "syncing": syncing, "syncing_reason": why}

    def block_hash(self, height):
        return self._call("getblockhash", height)["stdout"].strip()


class EthereumReader:
    """Ethereum execution clients through JSON-RPC over HTTP."""

    def __init__(self, url, attempt_timeout, post=probe_http):
        self.url, self.attempt_timeout, self.post = url, attempt_timeout, post

    def _rpc(self, method, params=None):
        """(result, error message): a JSON-RPC error is returned, not raised; no answer is raised."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
        observation = self.post(self.url, "POST", body, {}, [200], self.attempt_timeout)
        document = observation.get("json")
        if not isinstance(document, dict) or ("result" not in document and "error" not in document):
            raise ChainStatusError(observation.get("state") or "%s: no JSON-RPC answer" % method)
        if "error" in document:
            error = document["error"]
            return None, str(error.get("message") if isinstance(error, dict) else error)
        return document["result"], None

    def _result(self, method, params=None):
        result, error = self._rpc(method, params)
        if error is not None:
            raise ChainStatusError("%s: %s" % (method, error))
        return result

    def status(self):
        height = _int(self._result("eth_blockNumber"), "eth_blockNumber")
        syncing, error = self._rpc("eth_syncing")
        if error is not None:
            if not any(text in error.lower() for text in NO_PEER_ERRORS):
                raise ChainStatusError("eth_syncing: %s" % error)
            return {"height": height, "target": height, "syncing": True, "syncing_reason": "no peer to sync from (%s)" % error}
        if syncing is False:
            return {"height": height, "target": height, "syncing": False, "syncing_reason": ""}
        if not isinstance(syncing, dict):
            raise ChainStatusError("eth_syncing returned %s" % json.dumps(syncing))
        target = _int(syncing.get("highestBlock", height), "eth_syncing highestBlock")
        current = _int(syncing.get("currentBlock", height), "eth_syncing currentBlock")
        return {"height": height, "target": max(target, height), "syncing": True,
                "syncing_reason": "syncing: block %d of %d" % (current, target)}

    def block_hash(self, height):
        block = self._result("eth_getBlockByNumber", [hex(height), False])
        if not isinstance(block, dict) or not block.get("hash"):
            raise ChainStatusError("eth_getBlockByNumber: no block at height %d" % height)
        return block["hash"]


def reader(adapter, argv=None, url=None, attempt_timeout=5):
    if adapter == "bitcoin":
        if not argv:
            raise ChainStatusError("the bitcoin adapter reads through the node's CLI: argv is required")
        return BitcoinReader(argv, attempt_timeout)
    if adapter == "ethereum":
        if not url:
            raise ChainStatusError("the ethereum adapter reads through JSON-RPC: url is required")
        return EthereumReader(url, attempt_timeout)
    raise ChainStatusError("unknown adapter %r (known: %s)" % (adapter, ", ".join(ADAPTERS)))


def describe(status):
    """One line: ``height 120 of 130, syncing: block 120 of 130``."""
    text = "height %d" % status["height"]
    if status["target"] > status["height"]:
        text += " of %d" % status["target"]
    return text + (", " + status["syncing_reason"] if status["syncing"] else ", in sync")


def probe(chain_reader, minimum_height=0, synced=False):
    """One reading as a readiness observation (for readiness.wait): ready when the node answers, is at
    ``minimum_height`` or above and, with ``synced``, does not report itself syncing."""
    try:
        status = chain_reader.status()
    except ChainStatusError as exc:
        return {"ok": False, "state": str(exc)}
    unmet = []
    if status["height"] < minimum_height:
        unmet.append("height %d < %d" % (status["height"], minimum_height))
    if synced and status["syncing"]:
        unmet.append("still syncing")
    observation = {"ok": not unmet, "status": status, "state": describe(status)}
    if unmet:
        observation["state"] = "%s (%s)" % ("; ".join(unmet), observation["state"])
    return observation
