# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""chainops_health: a sync-aware HTTP health checker for blockchain nodes.

A background thread polls the node (and optional reference nodes) once per poll
interval, decides a verdict and pre-renders every HTTP response.  Request
handlers only copy those bytes to the socket, so a probe never waits on the
node and the node sees the same RPC load whatever the probe rate.

Standard library only: it runs with the target host's system python3 (3.11).

Usage:
    chainops_health.py CONFIG.json                 serve
    chainops_health.py --check-config CONFIG.json  validate and exit
    chainops_health.py --print-target-group CONFIG.json
"""

from __future__ import annotations

import argparse
import base64
import calendar
import dataclasses
import email.utils
import http.client
import json
import logging
import math
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from collections import namedtuple
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1.0.0"
LOG = logging.getLogger("chainops_health")

# A misbehaving node or reference must not be able to exhaust our memory.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# twox128("Timestamp") ++ twox128("Now"): the head block's timestamp (u64 ms, SCALE) on Substrate.
SUBSTRATE_TIMESTAMP_NOW_KEY = "0xf0c365c3cf59d671eb72da0e7a4113c49f1f0515f462cdcf84e0f1d6045dfcbb"

PASS, FAIL, SKIP, WAIVED = "pass", "fail", "skip", "waived"
POLICIES = ("fail_closed", "fail_open")

RefResult = namedtuple("RefResult", "name height error")  # one reference's answer in one poll
Reference = namedtuple("Reference", "name adapter client")


class ConfigError(Exception):
    """Invalid configuration; carries every problem found, not just the first."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class RpcError(Exception):
    """The node or a reference did not give a usable answer."""


class RpcTimeout(RpcError):
    """The node or a reference did not answer within timeout_s (it may only be slow)."""


# --------------------------------------------------------------------------- parsing helpers

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


# --------------------------------------------------------------------------- HTTP client

# Node traffic never goes through proxies taken from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Endpoint:
    """Where and how to reach one node: URL, optional basic-auth files and extra headers."""

    def __init__(self, spec, name):
        self.name = name
        self.url = spec["url"].rstrip("/")
        self.user = spec.get("user")
        self.password_file = spec.get("password_file")
        self.cookie_file = spec.get("cookie_file")
        self.headers = dict(spec.get("headers") or {})


def _read_secret(path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(65536).strip()
    except OSError as exc:
        raise RpcError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def read_credentials(endpoint):
    """(user, password) for basic auth, or None.

    Read on every call: bitcoind rewrites its cookie on restart.  A password file
    may hold the bare password or be a node config file with rpcuser=/rpcpassword=.
    """
    if endpoint.cookie_file:
        user, sep, password = _read_secret(endpoint.cookie_file, "cookie_file").partition(":")
        if not sep:
            raise RpcError(f"cookie_file {endpoint.cookie_file}: expected 'user:password'")
        return user, password
    if endpoint.password_file:
        text = _read_secret(endpoint.password_file, "password_file")
        settings = dict(line.strip().split("=", 1) for line in text.splitlines() if "=" in line)
        if "rpcpassword" in settings:
            return endpoint.user or settings.get("rpcuser", ""), settings["rpcpassword"].strip()
        return endpoint.user or "", text
    if endpoint.user:
        return endpoint.user, ""
    return None


def _describe(exc):
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(exc) or type(exc).__name__


class Client:
    """HTTP access to one endpoint with a per-call timeout; counts calls for /metrics."""

    def __init__(self, endpoint, timeout):
        self.endpoint = endpoint
        self.timeout = timeout
        self.calls = 0

    def request(self, path="", body=None):
        """(status, body bytes); HTTP error statuses are returned, transport failures raise RpcError."""
        endpoint = self.endpoint
        headers = {"User-Agent": f"chainops-health/{VERSION}", "Accept": "application/json"}
        headers.update(endpoint.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            credentials, credential_error = read_credentials(endpoint), None
        except RpcError as exc:
            # bitcoind deletes its cookie when it stops: still ask, so "connection refused" is what we report.
            credentials, credential_error = None, str(exc)
        if credentials:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            headers["Authorization"] = "Basic " + token
        request = urllib.request.Request(endpoint.url + path, data=body, headers=headers,
                                         method="GET" if body is None else "POST")
        self.calls += 1
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return response.status, response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403) and credential_error:
                raise RpcError(f"{endpoint.name}{path}: HTTP {exc.code}: {credential_error}") from None
            # bitcoind and friends put JSON-RPC errors in 4xx/5xx bodies: let the caller read them.
            with exc:
                return exc.code, exc.read(MAX_RESPONSE_BYTES)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            hint = f" ({credential_error})" if credential_error else ""
            reason = _describe(exc)
            error = RpcTimeout if reason == "timed out" else RpcError
            raise error(f"{endpoint.name}{path}: {reason}{hint}") from None

    def _json(self, status, body, what):
        if status in (401, 403):
            raise RpcError(f"{what}: HTTP {status} (check user/password_file/cookie_file)")
        try:
            return json.loads(body)
        except ValueError:
            raise RpcError(f"{what}: HTTP {status}, response is not JSON") from None

    def get_json(self, path):
        status, body = self.request(path)
        what = self.endpoint.name + path
        doc = self._json(status, body, what)
        if status != 200:
            raise RpcError(f"{what}: HTTP {status}")
        return doc

    def rpc(self, method, params=None):
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                              "params": [] if params is None else params}).encode()
        status, body = self.request("", payload)
        what = f"{self.endpoint.name} {method}"
        doc = self._json(status, body, what)
        if not isinstance(doc, dict):
            raise RpcError(f"{what}: unexpected JSON-RPC response")
        if doc.get("error"):
            error = doc["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise RpcError(f"{what}: {message}")
        if status != 200 or "result" not in doc:
            raise RpcError(f"{what}: HTTP {status}, no result")
        return doc["result"]


def unwrap(doc):
    """CometBFT wraps REST answers in a JSON-RPC envelope."""
    if isinstance(doc, dict) and doc.get("error"):
        raise RpcError(str(doc["error"]))
    return doc.get("result", doc) if isinstance(doc, dict) else doc


# --------------------------------------------------------------------------- adapters

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


# --------------------------------------------------------------------------- configuration

TOP_KEYS = {"adapter", "node", "consensus", "references", "reference_policy", "listen_host", "listen_port",
            "poll_interval_s", "timeout_s", "stale_after_s", "min_peers", "max_head_age_s",
            "max_lag_blocks", "bootstrap", "max_connections", "target_group", "slow_polls_tolerated"}
ENDPOINT_KEYS = {"url", "user", "password_file", "cookie_file", "headers"}
REFERENCE_KEYS = ENDPOINT_KEYS | {"name", "adapter"}
TARGET_GROUP_KEYS = {"interval_s", "timeout_s", "healthy_threshold", "unhealthy_threshold"}
# AWS ELBv2 CreateTargetGroup limits.
TARGET_GROUP_LIMITS = {"interval_s": (5, 300), "timeout_s": (2, 120), "healthy_threshold": (2, 10),
                       "unhealthy_threshold": (2, 10)}


def load_config(path):
    """Parsed JSON from path; unreadable or malformed files become ConfigError."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError([f"cannot read config file {path}: {exc.strerror or exc}"]) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError([f"{path} is not valid JSON: {exc}"]) from None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    """Collects every problem so one run reports them all."""

    def __init__(self):
        self.problems = []

    def number(self, doc, key, default, minimum=None, exclusive=False, integer=False, nullable=False):
        value = doc.get(key, default)
        if value is None and nullable:
            return None
        kind = "an integer" if integer else "a number"
        if not _is_number(value) or (integer and not isinstance(value, int)):
            self.problems.append(f"{key}: must be {kind}, got {value!r}")
            return default
        if minimum is not None and (value <= minimum if exclusive else value < minimum):
            self.problems.append(f"{key}: must be {'>' if exclusive else '>='} {minimum}, got {value!r}")
            return default
        return value

    def endpoint(self, spec, where, allowed):
        if not isinstance(spec, dict):
            self.problems.append(f"{where}: must be an object with a 'url'")
            return None
        for key in sorted(set(spec) - allowed):
            self.problems.append(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
        url_problem = check_url(spec.get("url"))
        if url_problem:
            self.problems.append(f"{where}.url: {url_problem}")
        for key in ("user", "password_file", "cookie_file"):
            if key in spec and not (isinstance(spec[key], str) and spec[key]):
                self.problems.append(f"{where}.{key}: must be a non-empty string")
        for key in ("password_file", "cookie_file"):
            if isinstance(spec.get(key), str) and spec[key] and not spec[key].startswith("/"):
                self.problems.append(f"{where}.{key}: must be an absolute path, got {spec[key]!r}")
        if spec.get("password_file") and spec.get("cookie_file"):
            self.problems.append(f"{where}: set password_file or cookie_file, not both")
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
                for k, v in headers.items()):
            self.problems.append(f"{where}.headers: must map header names to single-line strings")
        return spec


def check_url(url):
    """None if url is a usable http(s) URL, else what is wrong with it."""
    if not isinstance(url, str) or not url:
        return "required: an http:// or https:// URL"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"bad URL {url!r}: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"bad URL {url!r}: scheme must be http or https"
    if not parts.hostname:
        return f"bad URL {url!r}: no host"
    if port == 0:
        return f"bad URL {url!r}: port 0"
    if parts.fragment or any(c.isspace() for c in url):
        return f"bad URL {url!r}: no fragments or whitespace"
    return None


def _reference_name(spec, index):
    # Host and port only: the URL path of a hosted RPC often carries an API key.
    if isinstance(spec.get("name"), str) and spec["name"]:
        return spec["name"]
    try:
        return urllib.parse.urlsplit(spec["url"]).netloc.rpartition("@")[2] or f"ref{index}"
    except (ValueError, KeyError, AttributeError):
        return f"ref{index}"


def validate_config(raw):
    """Normalized config (defaults filled in) or ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(["config must be a JSON object"])
    check = _Checker()
    problems = check.problems
    for key in sorted(set(raw) - TOP_KEYS):
        problems.append(f"{key}: unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")

    adapter_name = raw.get("adapter")
    adapter = ADAPTERS.get(adapter_name) if isinstance(adapter_name, str) else None
    if adapter is None:
        problems.append(f"adapter: unknown adapter {adapter_name!r} (choose one of {', '.join(sorted(ADAPTERS))})")
    if "node" not in raw:
        problems.append("node: required, an object with a 'url'")
    else:
        check.endpoint(raw["node"], "node", ENDPOINT_KEYS)

    if "consensus" in raw:
        if adapter_name != "ethereum":
            problems.append("consensus: only the ethereum adapter has a consensus client (a beacon node API URL)")
        else:
            check.endpoint(raw["consensus"], "consensus", ENDPOINT_KEYS)

    cfg = {"adapter": adapter_name, "node": raw.get("node"), "consensus": raw.get("consensus")}
    cfg["poll_interval_s"] = check.number(raw, "poll_interval_s", 5.0, minimum=0.1)
    cfg["timeout_s"] = check.number(raw, "timeout_s", 2.0, minimum=0, exclusive=True)
    default_stale = 2 * cfg["poll_interval_s"] + cfg["timeout_s"]
    cfg["stale_after_s"] = check.number(raw, "stale_after_s", default_stale, minimum=0, exclusive=True)
    if cfg["stale_after_s"] <= cfg["poll_interval_s"]:
        problems.append(f"stale_after_s: must be greater than poll_interval_s ({cfg['poll_interval_s']})")
    default_slow = adapter.default_slow_polls_tolerated if adapter else 0
    cfg["slow_polls_tolerated"] = check.number(raw, "slow_polls_tolerated", default_slow, minimum=0, integer=True)
    default_peers = adapter.default_min_peers if adapter else 1
    cfg["min_peers"] = check.number(raw, "min_peers", default_peers, minimum=0, integer=True)
    cfg["max_lag_blocks"] = check.number(raw, "max_lag_blocks", 2, minimum=0, integer=True)
    cfg["max_head_age_s"] = check.number(raw, "max_head_age_s", None, minimum=0, exclusive=True, nullable=True)
    cfg["listen_host"] = raw.get("listen_host", "0.0.0.0")
    if not isinstance(cfg["listen_host"], str) or not cfg["listen_host"]:
        problems.append("listen_host: must be a non-empty string")
    cfg["listen_port"] = check.number(raw, "listen_port", 9680, minimum=1, integer=True)
    if cfg["listen_port"] > 65535:
        problems.append(f"listen_port: must be <= 65535, got {cfg['listen_port']}")
    cfg["max_connections"] = check.number(raw, "max_connections", 512, minimum=1, integer=True)
    cfg["bootstrap"] = raw.get("bootstrap", False)
    if not isinstance(cfg["bootstrap"], bool):
        problems.append(f"bootstrap: must be true or false, got {cfg['bootstrap']!r}")
    cfg["reference_policy"] = raw.get("reference_policy", "fail_closed")
    if cfg["reference_policy"] not in POLICIES:
        problems.append(f"reference_policy: must be fail_closed or fail_open, got {cfg['reference_policy']!r}")

    cfg["references"] = _validate_references(check, raw.get("references", []), adapter_name)
    cfg["target_group"] = _validate_target_group(check, raw.get("target_group", {}), cfg["poll_interval_s"])
    if adapter is not None:
        _check_capabilities(problems, adapter, cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _validate_references(check, refs, adapter_name):
    if not isinstance(refs, list):
        check.problems.append("references: must be a list")
        return []
    out = []
    for index, spec in enumerate(refs):
        where = f"references[{index}]"
        if check.endpoint(spec, where, REFERENCE_KEYS) is None:
            continue
        ref = dict(spec)
        ref["adapter"] = spec.get("adapter", adapter_name)
        ref_adapter = ADAPTERS.get(ref["adapter"]) if isinstance(ref["adapter"], str) else None
        if "adapter" in spec and ref_adapter is None:
            check.problems.append(f"{where}.adapter: unknown adapter {ref['adapter']!r} "
                                  f"(choose one of {', '.join(sorted(ADAPTERS))})")
        elif ref_adapter is not None and not ref_adapter.reports_height:
            check.problems.append(f"{where}.adapter: {ref['adapter']} has no block height to compare")
        ref["name"] = _reference_name(spec, index)
        out.append(ref)
    names = [ref["name"] for ref in out]
    for name in sorted({n for n in names if names.count(n) > 1}):
        check.problems.append(f"references: name {name!r} used twice (set a distinct 'name')")
    return out


def _validate_target_group(check, spec, poll_interval):
    if not isinstance(spec, dict):
        check.problems.append("target_group: must be an object")
        spec = {}
    for key in sorted(set(spec) - TARGET_GROUP_KEYS):
        check.problems.append(f"target_group.{key}: unknown key (allowed: {', '.join(sorted(TARGET_GROUP_KEYS))})")
    # Probing faster than we poll learns nothing new, so the default interval follows the poll interval.
    defaults = {"interval_s": min(300, max(5, math.ceil(poll_interval))), "timeout_s": 2,
                "healthy_threshold": 3, "unhealthy_threshold": 2}
    out = {}
    for key, (low, high) in TARGET_GROUP_LIMITS.items():
        value = spec.get(key, defaults[key])
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            check.problems.append(f"target_group.{key}: must be an integer from {low} to {high} (AWS limit), "
                                  f"got {value!r}")
            value = defaults[key]
        out[key] = value
    if out["timeout_s"] >= out["interval_s"]:
        check.problems.append(f"target_group.timeout_s: must be less than interval_s ({out['interval_s']})")
    return out


def _check_capabilities(problems, adapter, cfg):
    """Refuse checks the adapter cannot perform instead of silently skipping them."""
    name = adapter.name
    if not adapter.reports_peers and cfg["min_peers"] > 0:
        problems.append(f"min_peers: adapter {name} cannot report a peer count; set min_peers to 0")
    if not adapter.reports_head_time and cfg["max_head_age_s"] is not None:
        problems.append(f"max_head_age_s: adapter {name} has no head block time; remove max_head_age_s")
    if not adapter.reports_height and cfg["references"]:
        problems.append(f"references: adapter {name} has no block height to compare; remove references")


def target_group_health_check(cfg):
    """ELBv2 target-group health check settings for a validated config.

    Keys are community.aws.elb_target_group options, so the role can pass them straight through.
    """
    group = cfg["target_group"]
    return {
        "health_check_protocol": "http",
        "health_check_port": str(cfg["listen_port"]),
        "health_check_path": "/health",
        "successful_response_codes": "200",
        "health_check_interval": group["interval_s"],
        "health_check_timeout": group["timeout_s"],
        "healthy_threshold_count": group["healthy_threshold"],
        "unhealthy_threshold_count": group["unhealthy_threshold"],
    }


def target_group_report(cfg):
    """What --print-target-group prints: module options, raw API names and drain/re-admit estimates."""
    settings = target_group_health_check(cfg)
    group = cfg["target_group"]
    # Worst case: the verdict flips up to one poll (plus its timeout) late, then the LB needs N probes.
    lag = cfg["poll_interval_s"] + cfg["timeout_s"]
    return {
        "elb_target_group": settings,
        "elbv2_api": {
            "HealthCheckProtocol": "HTTP", "HealthCheckPort": settings["health_check_port"],
            "HealthCheckPath": "/health", "Matcher": {"HttpCode": "200"},
            "HealthCheckIntervalSeconds": group["interval_s"], "HealthCheckTimeoutSeconds": group["timeout_s"],
            "HealthyThresholdCount": group["healthy_threshold"],
            "UnhealthyThresholdCount": group["unhealthy_threshold"],
        },
        "estimates": {
            "drain_within_s": round(group["interval_s"] * group["unhealthy_threshold"] + lag, 1),
            "readmit_within_s": round(group["interval_s"] * group["healthy_threshold"] + lag, 1),
        },
    }


# --------------------------------------------------------------------------- verdict

def _check(status, value, limit=None, reason=None, **extra):
    result = {"status": status, "value": value}
    if limit is not None:
        result["limit"] = limit
    if reason:
        result["reason"] = reason
    result.update(extra)
    return result


def _unknown(node, node_error, what):
    if node is None:
        return f"{what} unknown: node did not answer ({node_error})"
    hint = "; ".join(node.soft_errors) if node.soft_errors else "not reported"
    return f"{what} unavailable: {hint}"


def evaluate(cfg, node, node_error, references, now, bootstrap_active=False):
    """Checks and verdict for one poll.  Pure (no I/O, no clock) so it can be table-tested.

    node: NodeStatus or None when the node did not answer (node_error says why).
    references: RefResult (name, height or None, error or None) per configured reference.
    """
    references = [RefResult(*ref) for ref in references]
    adapter = ADAPTERS[cfg["adapter"]]
    behind = WAIVED if bootstrap_active else FAIL  # bootstrap only forgives "still catching up"
    answered = node is not None
    checks = {"node_answers": _check(PASS if answered else FAIL, answered, reason=None if answered else node_error)}

    if not adapter.reports_syncing:
        checks["not_syncing"] = _check(SKIP, None, reason=f"{adapter.name} does not report sync state")
    elif node is None or node.syncing is None:
        checks["not_syncing"] = _check(FAIL, None, reason=_unknown(node, node_error, "sync state"))
    else:
        reason = f"node reports it is syncing ({_sync_hint(node)})" if node.syncing else None
        checks["not_syncing"] = _check(behind if node.syncing else PASS, node.syncing, reason=reason)

    peers = node.peers if node else None
    if cfg["min_peers"] == 0:
        checks["peers"] = _check(SKIP, peers, 0, "min_peers is 0")
    elif peers is None:
        checks["peers"] = _check(FAIL, None, cfg["min_peers"], _unknown(node, node_error, "peer count"))
    else:
        ok = peers >= cfg["min_peers"]
        checks["peers"] = _check(PASS if ok else FAIL, peers, cfg["min_peers"],
                                 None if ok else f"{peers} peers, minimum is {cfg['min_peers']}")

    exact_age = now - node.head_time if node and node.head_time is not None else None
    age = None if exact_age is None else round(exact_age, 3)  # rounded for display only
    limit = cfg["max_head_age_s"]
    if limit is None:
        checks["head_age"] = _check(SKIP, age, reason="max_head_age_s not set")
    elif age is None:
        checks["head_age"] = _check(FAIL, None, limit, _unknown(node, node_error, "head time"))
    else:
        ok = exact_age <= limit
        checks["head_age"] = _check(PASS if ok else behind, age, limit,
                                    None if ok else f"head block is {age:.1f}s old, maximum is {limit}s")

    checks["lag"], reference_height, applied = _lag_check(cfg, node, node_error, references, behind)
    healthy = all(c["status"] != FAIL for c in checks.values())
    reachable = sum(1 for ref in references if ref.height is not None)
    return {
        "healthy": healthy,
        "checks": checks,
        "height": node.height if node else None,
        "reference_height": reference_height,
        "lag": checks["lag"]["value"],
        "peers": peers,
        "syncing": node.syncing if node else None,
        "head_age_s": age,
        "references_reachable": reachable,
        "references_configured": len(references),
        "reference_policy_applied": applied,
        "bootstrap_active": bootstrap_active,
    }


def _sync_hint(node):
    keys = ("headers", "initialblockdownload", "highestBlock", "catching_up", "nodeHealth", "sync", "consensus")
    hint = {k: node.detail[k] for k in keys if k in node.detail}
    return json.dumps(hint, sort_keys=True) if hint else "no detail"


def _lag_check(cfg, node, node_error, references, behind):
    """(check, best reference height, policy applied or None).  Being ahead is fine."""
    limit = cfg["max_lag_blocks"]
    if not references:
        return _check(SKIP, None, limit, "no references configured"), None, None
    heights = [ref.height for ref in references if ref.height is not None]
    extra = {"references_reachable": len(heights), "references_configured": len(references),
             "policy": cfg["reference_policy"]}
    if not heights:
        policy = cfg["reference_policy"]
        errors = "; ".join(f"{ref.name}: {ref.error}" for ref in references)
        reason = f"all {len(references)} references unreachable, {policy} policy applied ({errors})"
        status = PASS if policy == "fail_open" else FAIL
        return _check(status, None, limit, reason, policy_applied=policy, **extra), None, policy
    best = max(heights)
    extra["reference_height"] = best
    if node is None or node.height is None:
        return _check(FAIL, None, limit, _unknown(node, node_error, "height"), **extra), best, None
    lag = best - node.height
    if lag > limit:
        reason = f"{lag} blocks behind best reference ({best}), maximum is {limit}"
        return _check(behind, lag, limit, reason, **extra), best, None
    reason = f"ahead of best reference by {-lag} blocks" if lag < 0 else None
    return _check(PASS, lag, limit, reason, **extra), best, None


def next_bootstrap_state(active, verdict):
    """Bootstrap ends for good once the node is caught up, so it cannot mask a later stall."""
    if not active:
        return False
    catching_up = ("not_syncing", "head_age", "lag")
    caught_up = verdict["checks"]["node_answers"]["status"] == PASS and all(
        verdict["checks"][name]["status"] in (PASS, SKIP) for name in catching_up)
    return not caught_up


# --------------------------------------------------------------------------- rendering

_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


def http_response(code, body, content_type="application/json"):
    """(head, body) bytes; the handler adds Date/Connection and the blank line."""
    head = (f"HTTP/1.1 {code} {_REASONS[code]}\r\nServer: chainops-health\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n").encode("ascii")
    return head, body


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def health_document(cfg, verdict, poll, state, verbose):
    doc = {
        "status": state,
        "healthy": state == "healthy",
        "adapter": cfg["adapter"],
        "height": verdict["height"],
        "reference_height": verdict["reference_height"],
        "checks": verdict["checks"],
        "reference_policy": cfg["reference_policy"],
        "reference_policy_applied": verdict["reference_policy_applied"],
        "bootstrap": {"enabled": cfg["bootstrap"], "active": verdict["bootstrap_active"]},
        "polled_at": _iso(poll["polled_at"]),
        "poll_duration_s": round(poll["duration_s"], 4),
    }
    if state == "stale":
        doc["reason"] = f"no poll completed within stale_after_s={cfg['stale_after_s']}s; last verdict shown is stale"
    if verbose:
        doc["node"] = poll["node_detail"]
        doc["node_error"] = poll["node_error"]
        doc["soft_errors"] = poll["soft_errors"]
        doc["references"] = [RefResult(*ref)._asdict() for ref in poll["references"]]
        doc["config"] = {k: cfg[k] for k in ("poll_interval_s", "timeout_s", "stale_after_s", "min_peers",
                                             "max_lag_blocks", "max_head_age_s")}
        doc["version"] = VERSION
    return doc


def _metric_value(value):
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(value)


def metrics_text(cfg, verdict, poll, stale):
    """Prometheus text exposition format 0.0.4."""
    gauges = [
        ("up", "1 if the node RPC answered the last poll", verdict["checks"]["node_answers"]["status"] == PASS),
        ("healthy", "1 if /health answers 200", verdict["healthy"] and not stale),
        ("stale", "1 if no poll completed within stale_after_s", stale),
        ("height", "Node head block height", verdict["height"]),
        ("reference_height", "Best height among reachable references", verdict["reference_height"]),
        ("lag_blocks", "Reference height minus node height (negative: ahead)", verdict["lag"]),
        ("peers", "Node peer count", verdict["peers"]),
        ("syncing", "1 if the node reports it is syncing", verdict["syncing"]),
        ("head_age_seconds", "Age of the head block at the last poll", verdict["head_age_s"]),
        ("references_configured", "Configured reference endpoints", verdict["references_configured"]),
        ("references_reachable", "References that answered the last poll", verdict["references_reachable"]),
        ("reference_policy_applied", "1 if every reference was unreachable and the policy decided",
         verdict["reference_policy_applied"] is not None),
        ("bootstrap_active", "1 while bootstrap mode forgives catching up", verdict["bootstrap_active"]),
        ("last_poll_timestamp_seconds", "Unix time the last poll finished", round(poll["polled_at"], 3)),
        ("last_poll_duration_seconds", "Duration of the last poll", round(poll["duration_s"], 6)),
    ]
    counters = [
        ("polls_total", "Polls completed", poll["polls"]),
        ("node_requests_total", "HTTP requests sent to the node", poll["node_requests"]),
        ("reference_requests_total", "HTTP requests sent to references", poll["reference_requests"]),
    ]
    lines = []
    for name, help_text, value in gauges:
        lines += [f"# HELP chainops_health_{name} {help_text}.", f"# TYPE chainops_health_{name} gauge",
                  f"chainops_health_{name} {_metric_value(value)}"]
    lines += ["# HELP chainops_health_check_ok 1 unless the check failed (skipped and waived checks count as ok).",
              "# TYPE chainops_health_check_ok gauge"]
    lines += [f'chainops_health_check_ok{{check="{name}"}} {_metric_value(check["status"] != FAIL)}'
              for name, check in verdict["checks"].items()]
    for name, help_text, value in counters:
        lines += [f"# HELP chainops_health_{name} {help_text}.", f"# TYPE chainops_health_{name} counter",
                  f"chainops_health_{name} {value}"]
    lines += ["# HELP chainops_health_info Static information about this checker.", "# TYPE chainops_health_info gauge",
              f'chainops_health_info{{adapter="{cfg["adapter"]}",reference_policy="{cfg["reference_policy"]}",'
              f'version="{VERSION}"}} 1']
    return ("\n".join(lines) + "\n").encode("utf-8")


def _json_bytes(doc):
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def render_routes(cfg, verdict, poll, stale):
    """Every response for one poll, pre-rendered: handlers only look them up."""
    state = "stale" if stale else ("healthy" if verdict["healthy"] else "unhealthy")
    code = 200 if state == "healthy" else 503
    live = verdict["checks"]["node_answers"]["status"] == PASS and not stale
    live_doc = {"live": live, "node_answered": verdict["checks"]["node_answers"]["value"],
                "polled_at": _iso(poll["polled_at"]), "stale": stale}
    return {
        "/health": http_response(code, _json_bytes(health_document(cfg, verdict, poll, state, False))),
        "/health?verbose": http_response(code, _json_bytes(health_document(cfg, verdict, poll, state, True))),
        "/live": http_response(200 if live else 503, _json_bytes(live_doc)),
        "/metrics": http_response(200, metrics_text(cfg, verdict, poll, stale),
                                  "text/plain; version=0.0.4; charset=utf-8"),
    }


def starting_routes():
    body = _json_bytes({"status": "starting", "healthy": False, "reason": "first poll not finished"})
    metrics = b"# HELP chainops_health_up 1 if the node RPC answered the last poll.\n" \
              b"# TYPE chainops_health_up gauge\nchainops_health_up 0\n"
    unavailable = http_response(503, body)
    return {"/health": unavailable, "/health?verbose": unavailable, "/live": unavailable,
            "/metrics": http_response(200, metrics, "text/plain; version=0.0.4; charset=utf-8")}


@dataclass
class Snapshot:
    """Immutable per poll; swapped in one attribute assignment, so handlers need no lock."""
    fresh: dict
    stale: dict
    expires_at: float  # time.monotonic() after which the stale variant is served


# --------------------------------------------------------------------------- poller

class Poller:
    """Polls the node and references every poll interval and publishes a Snapshot."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.adapter = ADAPTERS[cfg["adapter"]]
        self.node_client = Client(Endpoint(cfg["node"], "node"), cfg["timeout_s"])
        # The beacon node beside an Ethereum execution client, asked in the same poll.
        self.node_extra = {"consensus": Client(Endpoint(cfg["consensus"], "consensus"), cfg["timeout_s"])} if cfg.get("consensus") else {}
        self.references = [Reference(ref["name"], ADAPTERS[ref["adapter"]],
                                     Client(Endpoint(ref, ref["name"]), cfg["timeout_s"])) for ref in cfg["references"]]
        # References are asked in parallel with the node so a poll costs one timeout, not N.
        self.executor = ThreadPoolExecutor(max_workers=min(8, len(self.references)),
                                           thread_name_prefix="reference") if self.references else None
        self.bootstrap_active = cfg["bootstrap"]
        self.polls = 0
        self.healthy = None
        self.last_node = None
        self.slow_polls = 0
        starting = starting_routes()
        self.snapshot = Snapshot(starting, starting, math.inf)
        self._stop = threading.Event()
        self._thread = None

    def routes(self):
        snapshot = self.snapshot
        return snapshot.fresh if time.monotonic() < snapshot.expires_at else snapshot.stale

    def poll_node(self):
        try:
            node = self.adapter.poll(self.node_client, self.cfg, **self.node_extra)
        except RpcTimeout as exc:
            # A slow answer is not yet a dead node: keep the last good poll's status for a few polls.
            tolerated = self.cfg["slow_polls_tolerated"]
            if self.last_node is None or self.slow_polls >= tolerated:
                return None, str(exc) + (f" ({self.slow_polls + 1} polls in a row)" if tolerated else "")
            self.slow_polls += 1
            kept = dataclasses.replace(self.last_node, soft_errors=[
                f"{exc}: slow poll {self.slow_polls} of {tolerated} tolerated; the last good poll's status is kept"])
            return kept, None
        except RpcError as exc:
            return None, str(exc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return None, f"unexpected response from node: {type(exc).__name__}: {exc}"
        self.last_node, self.slow_polls = node, 0
        return node, None

    def _reference_heights(self, futures):
        results = []
        # The timeout applies per socket operation (connect, then read), so allow two of them.
        deadline = time.monotonic() + 2 * self.cfg["timeout_s"] + 0.5
        for ref, future in zip(self.references, futures):
            try:
                height = future.result(timeout=max(0.0, deadline - time.monotonic()))
                results.append(RefResult(ref.name, height, None))
            except FutureTimeout:
                results.append(RefResult(ref.name, None, "no answer in time"))
            except RpcError as exc:
                results.append(RefResult(ref.name, None, str(exc)))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                results.append(RefResult(ref.name, None, f"unexpected response: {type(exc).__name__}: {exc}"))
        return results

    def poll_once(self):
        started_mono = time.monotonic()
        futures = [self.executor.submit(ref.adapter.height, ref.client) for ref in self.references]
        node, node_error = self.poll_node()
        references = self._reference_heights(futures)
        now = time.time()
        verdict = evaluate(self.cfg, node, node_error, references, now, self.bootstrap_active)
        self.bootstrap_active = next_bootstrap_state(self.bootstrap_active, verdict)
        self.polls += 1
        poll = {
            "polled_at": now, "duration_s": time.monotonic() - started_mono, "polls": self.polls,
            "node_requests": self.node_client.calls,
            "reference_requests": sum(ref.client.calls for ref in self.references),
            "node_detail": node.detail if node else None, "node_error": node_error,
            "soft_errors": node.soft_errors if node else [], "references": references,
        }
        # Logged before it is served, so that the journal never lags behind what /health says.
        self._log_transition(verdict)
        self.snapshot = Snapshot(render_routes(self.cfg, verdict, poll, False),
                                 render_routes(self.cfg, verdict, poll, True),
                                 time.monotonic() + self.cfg["stale_after_s"])
        return verdict

    def _log_transition(self, verdict):
        if verdict["healthy"] == self.healthy:
            return
        failed = {name: check.get("reason") for name, check in verdict["checks"].items() if check["status"] == FAIL}
        if verdict["healthy"]:
            LOG.info("verdict: healthy at poll %d (height %s)", self.polls, verdict["height"])
        else:
            LOG.warning("verdict: unhealthy at poll %d: %s", self.polls, json.dumps(failed, sort_keys=True))
        self.healthy = verdict["healthy"]

    def run(self):
        interval = self.cfg["poll_interval_s"]
        next_start = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a bug must not kill polling; the snapshot goes stale instead
                LOG.exception("poll failed")
            # Fixed rate, so a change is seen within one interval; after an overrun, do not burst.
            next_start = max(next_start + interval, time.monotonic())
            self._stop.wait(next_start - time.monotonic())

    def start(self):
        self._thread = threading.Thread(target=self.run, name="poller", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=1.0)  # daemon thread: do not hold up shutdown for a slow node
        if self.executor:
            self.executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- HTTP server

_NOT_FOUND = http_response(404, _json_bytes({"error": "not found", "paths": ["/health", "/live", "/metrics"]}))
_date_cache = (0, b"")


def _date_header():
    """RFC 9110 wants a Date header; formatting it once per second keeps it off the hot path."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, b"Date: " + email.utils.formatdate(now, usegmt=True).encode("ascii") + b"\r\n")
    return _date_cache[1]


def _wants_verbose(query):
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("verbose")
    return bool(values) and values[-1].lower() not in ("0", "false", "no")


class HealthHandler(BaseHTTPRequestHandler):
    """Looks up pre-rendered bytes: no node I/O, no JSON encoding, no logging per request."""
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    timeout = 15  # idle keep-alive connections are closed so they cannot pin threads

    def parse_request(self):
        """Lean stand-in for the stdlib parse_request.

        The stock one feeds every header through the email parser, which costs more than
        the rest of a request here.  We only need method, path, version and keep-alive.
        """
        self.command, self.request_version, self.close_connection = None, "HTTP/0.9", True
        self.requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.0"
            self.send_error(400, "Bad request line")
            return False
        self.command, self.path, self.request_version = words
        headers = {}
        for _header_number in range(100):
            line = self.rfile.readline(8193)
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or len(line) > 8192:
                self.send_error(400, "Bad header line")
                return False
            headers[name.strip().lower()] = value.strip()
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers
        connection = headers.get("connection", "").lower()
        keep_alive = "keep-alive" in connection if self.request_version == "HTTP/1.0" else "close" not in connection
        # We never read request bodies, so after one the stream cannot be reused.
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        self.close_connection = not keep_alive or has_body
        return True

    def do_GET(self):  # noqa: N802 - http.server naming
        self._respond(True)

    def do_HEAD(self):  # noqa: N802 - http.server naming
        self._respond(False)

    def _respond(self, with_body):
        routes = self.server.poller.routes()
        path, _sep, query = self.path.partition("?")
        if query and path == "/health" and _wants_verbose(query):
            path = "/health?verbose"
        head, body = routes.get(path, _NOT_FOUND)
        closing = b"Connection: close\r\n" if self.close_connection else b""
        self.wfile.write(b"".join((head, _date_header(), closing, b"\r\n", body if with_body else b"")))

    def log_message(self, format, *args):  # noqa: A002 - signature from http.server
        pass


class HealthServer(ThreadingHTTPServer):
    """Thread per connection, capped so a connection flood cannot exhaust threads or memory."""
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, poller, max_connections):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.poller = poller
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, HealthHandler)

    def server_bind(self):
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: close now rather than queue unboundedly
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def handle_error(self, request, client_address):
        # Clients (load balancers) hanging up mid-response are routine, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            LOG.exception("error serving %s", client_address[0])

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def serve(cfg):
    poller = Poller(cfg)
    try:
        server = HealthServer((cfg["listen_host"], cfg["listen_port"]), poller, cfg["max_connections"])
    except OSError as exc:
        LOG.error("cannot listen on %s:%s: %s", cfg["listen_host"], cfg["listen_port"], exc.strerror or exc)
        return 1
    signal.signal(signal.SIGTERM, _exit_on_signal)
    poller.start()
    LOG.info("chainops_health %s: %s adapter, listening on %s:%s, poll every %ss", VERSION, cfg["adapter"],
             cfg["listen_host"], server.server_address[1], cfg["poll_interval_s"])
    try:
        server.serve_forever(poll_interval=0.5)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        poller.stop()
        server.server_close()
    return 0


# --------------------------------------------------------------------------- CLI

def parse_args(argv):
    parser = argparse.ArgumentParser(prog="chainops_health", description="Sync-aware HTTP health checker.")
    parser.add_argument("config", help="path to the JSON config file")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check-config", action="store_true", help="validate the config and exit (0 = valid)")
    mode.add_argument("--print-target-group", action="store_true",
                      help="print the matching ELBv2 target-group health check settings as JSON and exit")
    parser.add_argument("--version", action="version", version=f"chainops_health {VERSION}")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = validate_config(load_config(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"chainops_health: config error: {problem}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"config OK: {cfg['adapter']} adapter, {len(cfg['references'])} reference(s), "
              f"listen {cfg['listen_host']}:{cfg['listen_port']}")
        return 0
    if args.print_target_group:
        print(json.dumps(target_group_report(cfg), indent=2, sort_keys=True))
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    return serve(cfg)


if __name__ == "__main__":
    sys.exit(main())
