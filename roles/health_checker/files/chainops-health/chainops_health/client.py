# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""HTTP and JSON-RPC to the node and the references: bounded reads, no proxies, credentials from files."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import urllib.error
import urllib.request

from chainops_health import VERSION


# A misbehaving node or reference must not be able to exhaust our memory.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class RpcError(Exception):
    """The node or a reference did not give a usable answer."""


class RpcTimeout(RpcError):
    """The node or a reference did not answer within timeout_s (it may only be slow)."""


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
