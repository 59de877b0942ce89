# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""One adapter per client family: how to read the height, sync state, peers and head time."""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field

from chainops_health.client import RpcError, unwrap


# twox128("Timestamp") ++ twox128("Now"): the head block's timestamp (u64 ms, SCALE) on Substrate.
SUBSTRATE_TIMESTAMP_NOW_KEY = "0xf0c365c3cf59d671eb72da0e7a4113c49f1f0515f462cdcf84e0f1d6045dfcbb"


def to_int(value):
    """Integer from an int, a 0x-hex string (Ethereum, Substrate) or a decimal string (CometBFT)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        return int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    raise ValueError(f"expected an integer, got {value!r}")


_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def parse_rfc3339(text):
    """Unix seconds from an RFC 3339 time; CometBFT sends nanoseconds, which datetime cannot parse."""
    match = _RFC3339.match(text or "")
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    fields = tuple(int(g) for g in match.groups()[:6])
    zone = match.group(8)
    offset = 0 if zone in ("Z", "z") else int(zone[0] + "1") * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return calendar.timegm(fields + (0, 0, 0)) + float(match.group(7) or 0.0) - offset


@dataclass
class NodeStatus:
    """What one poll learnt about the node; None means unknown."""
    height: int | None = None
    head_time: float | None = None
    syncing: bool | None = None
    peers: int | None = None
    detail: dict = field(default_factory=dict)
    soft_errors: list = field(default_factory=list)


def soft(status, what, call):
    """Secondary data: a failure is recorded, not fatal (anvil has no net_peerCount, say)."""
    try:
        return call()
    except (RpcError, KeyError, TypeError, ValueError, AttributeError) as exc:
        status.soft_errors.append(f"{what}: {exc}")
        return None


class Adapter:
    """How to read one chain family.  poll() raises when the node does not answer at all."""
    name = ""
    reports_syncing = True
    reports_peers = True
    reports_height = True
    reports_head_time = True
    default_min_peers = 1
    # Consecutive node polls that may time out before the node counts as not answering (the last good
    # poll's status is kept meanwhile): clients that block their API on a database now and then.
    default_slow_polls_tolerated = 0

    def poll(self, client, cfg):
        raise NotImplementedError

    def height(self, client):
        raise NotImplementedError


class BitcoinAdapter(Adapter):
    name = "bitcoin"

    def poll(self, client, cfg):
        info = client.rpc("getblockchaininfo")
        status = NodeStatus(height=to_int(info["blocks"]))
        headers = to_int(info.get("headers", info["blocks"]))
        # IBD latches off once caught up, so a node that later stalls shows as headers > blocks.
        status.syncing = bool(info.get("initialblockdownload")) or headers - status.height > cfg["max_lag_blocks"]
        keys = ("chain", "blocks", "headers", "initialblockdownload", "verificationprogress", "bestblockhash")
        status.detail = {key: info.get(key) for key in keys}
        status.peers = soft(status, "getconnectioncount", lambda: to_int(client.rpc("getconnectioncount")))
        status.head_time = soft(status, "getblockheader",
                                lambda: float(client.rpc("getblockheader", [info["bestblockhash"]])["time"]))
        return status

    def height(self, client):
        return to_int(client.rpc("getblockcount"))


# EthereumJS's eth_syncing error while it has no peer (its rpc/modules/eth.ts).
NO_SYNC_PEER = "no peer available for synchronization"


class EthereumAdapter(Adapter):
    name = "ethereum"

    def poll(self, client, cfg, consensus=None):
        status = NodeStatus(height=to_int(client.rpc("eth_blockNumber")))
        # false when synced, a progress object while syncing; None here means the call failed.
        try:
            sync = client.rpc("eth_syncing")
        except RpcError as exc:
            # EthereumJS answers an error, not false, while no peer can tell it the chain's head: it
            # cannot know it is synced, so it is not (a node still catching up, not a broken one).
            sync = NO_SYNC_PEER if NO_SYNC_PEER in str(exc) else None
            if sync is None:
                status.soft_errors.append(f"eth_syncing: {exc}")
        status.syncing = None if sync is None else sync is not False
        if isinstance(sync, dict):
            status.detail["sync"] = {k: sync.get(k) for k in ("startingBlock", "currentBlock", "highestBlock")}
        elif sync == NO_SYNC_PEER:
            status.detail["sync"] = NO_SYNC_PEER
        if consensus is not None:
            # After the merge the execution client only follows the chain its consensus client gives it:
            # synced needs both, and a beacon node that is optimistic (its execution payloads not yet
            # verified) or has lost its execution client is not synced either.
            beacon = soft(status, "consensus /eth/v1/node/syncing", lambda: consensus.get_json("/eth/v1/node/syncing")["data"])
            if not isinstance(beacon, dict):
                status.syncing = None
            else:
                status.detail["consensus"] = {k: beacon.get(k) for k in
                                              ("head_slot", "sync_distance", "is_syncing", "is_optimistic", "el_offline")}
                behind = any(beacon.get(k) is not False for k in ("is_syncing", "is_optimistic")) or beacon.get("el_offline") is True
                status.syncing = None if status.syncing is None else status.syncing or behind
        block = soft(status, "eth_getBlockByNumber", lambda: client.rpc("eth_getBlockByNumber", ["latest", False]))
        if isinstance(block, dict):
            status.head_time = soft(status, "eth_getBlockByNumber.timestamp", lambda: float(to_int(block["timestamp"])))
            status.detail["latest_block"] = block.get("number")
        status.peers = soft(status, "net_peerCount", lambda: to_int(client.rpc("net_peerCount")))
        return status

    def height(self, client):
        return to_int(client.rpc("eth_blockNumber"))


class CometBFTAdapter(Adapter):
    name = "cometbft"

    def poll(self, client, cfg):
        sync = unwrap(client.get_json("/status"))["sync_info"]
        status = NodeStatus(height=to_int(sync["latest_block_height"]), syncing=bool(sync["catching_up"]))
        status.head_time = soft(status, "latest_block_time", lambda: parse_rfc3339(sync["latest_block_time"]))
        status.detail = {key: sync.get(key) for key in
                         ("latest_block_height", "latest_block_time", "catching_up", "earliest_block_height")}
        status.peers = soft(status, "/net_info", lambda: to_int(unwrap(client.get_json("/net_info"))["n_peers"]))
        return status

    def height(self, client):
        return to_int(unwrap(client.get_json("/status"))["sync_info"]["latest_block_height"])


class SubstrateAdapter(Adapter):
    name = "substrate"

    def poll(self, client, cfg):
        health = client.rpc("system_health")
        status = NodeStatus(syncing=bool(health["isSyncing"]), peers=to_int(health["peers"]))
        status.detail = {key: health.get(key) for key in ("peers", "isSyncing", "shouldHavePeers")}
        sync = soft(status, "system_syncState", lambda: client.rpc("system_syncState"))
        if isinstance(sync, dict):
            status.height = soft(status, "system_syncState.currentBlock", lambda: to_int(sync["currentBlock"]))
            status.detail.update({k: sync.get(k) for k in ("startingBlock", "currentBlock", "highestBlock")})
        status.head_time = soft(status, "state_getStorage(Timestamp.Now)", lambda: _substrate_time(
            client.rpc("state_getStorage", [SUBSTRATE_TIMESTAMP_NOW_KEY])))
        return status

    def height(self, client):
        return to_int(client.rpc("chain_getHeader")["number"])


def _substrate_time(raw):
    if not isinstance(raw, str) or not raw.startswith("0x") or len(raw) != 18:
        raise ValueError(f"unexpected Timestamp.Now value {raw!r}")
    return int.from_bytes(bytes.fromhex(raw[2:]), "little") / 1000.0


class IconAdapter(Adapter):
    """goloop JSON-RPC v3: no sync flag and no peer count without the (authenticated) admin API."""
    name = "icon"
    reports_syncing = False
    reports_peers = False
    default_min_peers = 0

    def poll(self, client, cfg):
        block = client.rpc("icx_getLastBlock")
        status = NodeStatus(height=to_int(block["height"]))
        status.head_time = soft(status, "time_stamp", lambda: to_int(block["time_stamp"]) / 1e6)
        status.detail = {key: block.get(key) for key in ("height", "block_hash", "time_stamp")}
        return status

    def height(self, client):
        return to_int(client.rpc("icx_getLastBlock")["height"])


class WakuAdapter(Adapter):
    """Waku REST (nwaku and go-waku): /health readiness, /debug/v1/info, /admin/v1/peers.  No chain height.

    go-waku answers /health with 501 unless RLN is on (cmd/waku/server/rest/health.go): its readiness is
    then /debug/v1/info listing the node's addresses.  Waku nodes block their API while the store
    database works, so slow answers are tolerated for a few polls before the node counts as down."""
    name = "waku"
    reports_height = False
    reports_head_time = False
    default_slow_polls_tolerated = 2

    def poll(self, client, cfg):
        code, body = client.request("/health")
        if code == 501:
            info = client.get_json("/debug/v1/info")
            addresses = info.get("listenAddresses") if isinstance(info, dict) else None
            status = NodeStatus(syncing=not addresses, detail={
                "nodeHealth": "no health report without RLN; /debug/v1/info %s" % ("lists addresses" if addresses else "lists no address"),
                "listenAddresses": addresses, "enrUri": info.get("enrUri") if isinstance(info, dict) else None})
        elif code in (200, 503):
            ready, label, protocols = _waku_health(code, body)
            status = NodeStatus(syncing=not ready, detail={"nodeHealth": label, "protocolsHealth": protocols})
            info = soft(status, "/debug/v1/info", lambda: client.get_json("/debug/v1/info"))
            if isinstance(info, dict):
                status.detail["listenAddresses"] = info.get("listenAddresses")
                status.detail["enrUri"] = info.get("enrUri")
        else:
            raise RpcError(f"{client.endpoint.name}/health: HTTP {code}")
        if cfg["min_peers"] > 0:  # the admin API is optional (--rest-admin): only ask when the check needs it
            status.peers = soft(status, "/admin/v1/peers",
                                lambda: _waku_connected_peers(client.get_json("/admin/v1/peers")))
        return status


def _waku_health(code, body):
    """(ready, label, protocols): JSON report (current nwaku) or the older plain-text answer."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "nodeHealth" in doc:
        label = str(doc["nodeHealth"])
        protocols = {}
        for entry in doc.get("protocolsHealth") or []:
            if isinstance(entry, dict):
                protocols.update({k: v for k, v in entry.items() if k != "desc"})
        return label.upper().replace(" ", "_") == "READY", label, protocols
    return code == 200, body.decode("utf-8", "replace").strip()[:200], {}


def _waku_connected_peers(peers):
    def connected(peer):
        protocols = peer.get("protocols")
        if isinstance(protocols, list) and any(isinstance(p, dict) for p in protocols):
            # newer nwaku: one entry per peer, a connection state per protocol
            return any(isinstance(p, dict) and p.get("connected") for p in protocols)
        return bool(peer.get("connected"))  # older nwaku, and go-waku (protocols are names)
    return len({p.get("multiaddr") or p.get("id") for p in peers if isinstance(p, dict) and connected(p)})


class PolykeyAdapter(Adapter):
    """The Polykey agent runner's loopback status (GET /status): the agent is LIVE, and the nodes it holds
    open connections to. Polykey has no chain: no height, no sync state."""
    name = "polykey"
    reports_syncing = False
    reports_height = False
    reports_head_time = False

    def poll(self, client, cfg):
        doc = client.get_json("/status")
        if doc.get("status") != "LIVE":
            raise RpcError("agent status %s" % doc.get("status"))
        connections = doc.get("connections")
        status = NodeStatus(peers=len(connections) if isinstance(connections, list) else None)
        graph = doc.get("nodeGraph")
        status.detail = {"nodeId": doc.get("nodeId"), "connections": connections,
                         "nodeGraphSize": len(graph) if isinstance(graph, list) else None}
        return status

    def height(self, client):
        raise RpcError("polykey has no chain height")


ADAPTERS = {adapter.name: adapter for adapter in (
    BitcoinAdapter(), EthereumAdapter(), CometBFTAdapter(), SubstrateAdapter(), IconAdapter(), WakuAdapter(),
    PolykeyAdapter())}
