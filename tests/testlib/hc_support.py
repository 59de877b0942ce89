"""Shared helpers for the health checker tests: the service as a process, real nodes, fixture nodes."""
from __future__ import annotations

import base64
import collections
import copy
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from json_server import JsonServer  # tests/testlib

REPO = Path(__file__).resolve().parents[2]
# The program as the role installs it: a directory with __main__.py and the chainops_health package,
# run as `python3 -I -S SERVICE CONFIG` (tests/conftest.py puts it on sys.path for in-process tests).
SERVICE = REPO / "roles" / "health_checker" / "files" / "chainops-health"
FIXTURES = REPO / "tests" / "integration" / "health_checker" / "fixtures"
CACHE = Path(os.environ.get("CHAINOPS_CACHE", REPO / ".cache"))
ANVIL = CACHE / "artifacts" / "bin" / "anvil"
LITECOIND = Path("/usr/lib/litecoin/litecoind")
# The target runs the service with Debian's python3; -I -S keeps site-packages out (stdlib only).
SYSTEM_PYTHON = "/usr/bin/python3"

POLL = 0.5  # poll interval used by the tests
# The service logs each change of verdict with the number of the poll that made it.
TRANSITION = re.compile(r"verdict: (healthy|unhealthy) at poll (\d+)")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fixture_json(name):
    return json.loads((FIXTURES / name).read_text())


def http_get(url, timeout=3.0, method="GET"):
    """(status, headers, body) without raising on 4xx/5xx."""
    request = urllib.request.Request(url, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def wait_until(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ----------------------------------------------------------------------------- the service under test

class Service:
    """chainops_health as its own process, configured from a JSON file like the role will do."""

    def __init__(self, workdir, cfg):
        self.port = free_port()
        full = {"listen_host": "127.0.0.1", "listen_port": self.port, "poll_interval_s": POLL, "timeout_s": 0.4}
        full.update(cfg)
        self.config_path = Path(workdir) / f"health-{self.port}.json"
        self.config_path.write_text(json.dumps(full))
        self.log_path = Path(workdir) / f"health-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([SYSTEM_PYTHON, "-I", "-S", "-B", str(SERVICE), str(self.config_path)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        try:
            wait_until(self._answers, 10, f"chainops_health on port {self.port} to answer (log: {self.log_path})")
        except BaseException:
            self.stop()  # never leave a process behind
            raise

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"service exited with {self.proc.returncode}: {self.log_path.read_text()}")
        try:
            status, _headers, body = http_get(self.base + "/health", timeout=1)
        except OSError:
            return False
        return json.loads(body).get("status") != "starting"

    def get(self, path="/health"):
        status, _headers, body = http_get(self.base + path)
        return status, (json.loads(body) if path != "/metrics" else body.decode())

    def metrics(self):
        status, _headers, body = http_get(self.base + "/metrics")
        assert status == 200
        values = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _sep, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def wait_status(self, code, timeout=10.0):
        """Wait for /health to answer `code`; return (monotonic time seen, body)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            status, doc = self.get()
            if status == code:
                return time.monotonic(), doc
            last = (status, doc)
            time.sleep(0.02)
        raise AssertionError(f"/health did not answer {code} within {timeout}s; last answer: {last}")

    def polls(self):
        """Polls the service has completed, by its own counter."""
        return int(self.metrics()["chainops_health_polls_total"])

    def transitions(self):
        """(verdict, poll number) for every change of verdict the service has logged."""
        return [(match[1], int(match[2])) for match in TRANSITION.finditer(self.log_path.read_text())]

    def assert_flips(self, code, what, after=None):
        """Call once the change is complete: the verdict must follow by the first poll that starts after it.

        A poll already running may still report the old state, the next one may not, so the flip is
        due by poll `after` + 2 (`after`: polls completed once the change was made, read now unless
        given). Counted in the service's polls rather than seconds: a loaded machine slows the test
        down but cannot fail it, while a poller that misses the change, or stalls, still fails it.
        """
        after = self.polls() if after is None else after
        _seen, doc = self.wait_status(code)
        verdict = "healthy" if code == 200 else "unhealthy"
        # The service logs a change before it serves it: the newest logged change is this flip.
        transitions = self.transitions()
        assert transitions and transitions[-1][0] == verdict, (
            f"{what}: /health answers {code} but the last change the service logged is {transitions[-1:]}")
        flipped = transitions[-1][1]
        assert flipped <= after + 2, (
            f"{what}: the verdict became {verdict} at poll {flipped}; {after} polls had completed when "
            f"the change was made, so it was due by poll {after + 2}")
        return doc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


# ----------------------------------------------------------------------------- real nodes

def rpc_call(url, method, params=(), auth=None, timeout=10):
    body = json.dumps({"jsonrpc": "2.0", "id": "test", "method": method, "params": list(params)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as resp:
            doc = json.load(resp)
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        if not raw:
            raise RuntimeError(f"{method}: HTTP {exc.code}") from None
        doc = json.loads(raw)
    if doc.get("error"):
        raise RuntimeError(f"{method}: {doc['error']}")
    return doc["result"]


class LitecoinDaemon:
    """A litecoind -regtest process on free loopback ports with its own datadir.

    auth="cookie" uses the .cookie file litecoind writes (rotated on every start);
    auth="password" uses -rpcuser/-rpcpassword and writes the password to a file.
    """
    OP_TRUE = "raw(51)#8lvh9jxk"  # anyone-can-spend output: mining needs no wallet

    def __init__(self, workdir, name, auth):
        self.name = name
        self.datadir = Path(workdir) / name
        self.datadir.mkdir()
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.auth_mode = auth
        self.user = "chainops"
        self.password = secrets.token_hex(12)
        self.proc = None
        self.url = f"http://127.0.0.1:{self.rpc_port}"

    @property
    def cookie_file(self):
        return self.datadir / "regtest" / ".cookie"

    def credentials(self):
        if self.auth_mode == "cookie":
            user, _sep, password = self.cookie_file.read_text().strip().partition(":")
            return user, password
        return self.user, self.password

    def start(self):
        args = [str(LITECOIND), "-regtest", f"-datadir={self.datadir}", "-server=1", "-listen=1",
                f"-bind=127.0.0.1:{self.p2p_port}", f"-port={self.p2p_port}", "-rpcbind=127.0.0.1",
                f"-rpcport={self.rpc_port}", "-rpcallowip=127.0.0.1", "-disablewallet", "-dnsseed=0",
                "-discover=0", "-listenonion=0", "-connect=0", "-printtoconsole=0"]
        if self.auth_mode == "password":
            args += [f"-rpcuser={self.user}", f"-rpcpassword={self.password}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(self._ready, 30, f"litecoind {self.name} RPC")
        except BaseException:
            self.proc.kill()  # never leave a daemon behind
            self.proc.wait(10)
            raise
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"litecoind {self.name} exited with {self.proc.returncode}")
        try:
            self.rpc("getblockcount")
            return True
        except (OSError, RuntimeError):  # refused, no cookie yet, or -28 "Loading block index"
            return False

    def rpc(self, method, *params):
        return rpc_call(self.url, method, params, self.credentials())

    def mine(self, blocks):
        self.rpc("generatetodescriptor", blocks, self.OP_TRUE)
        return self.rpc("getblockcount")

    def connect(self, other):
        self.rpc("addnode", f"127.0.0.1:{other.p2p_port}", "onetry")
        wait_until(lambda: self.rpc("getconnectioncount") >= 1 and other.rpc("getconnectioncount") >= 1, 10,
                   f"{self.name} and {other.name} to connect")

    def disconnect(self, other):
        self.rpc("disconnectnode", f"127.0.0.1:{other.p2p_port}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.rpc("stop")
            except (OSError, RuntimeError):
                self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def node_config(self, workdir, conf_style=False):
        """The checker's view of this node: URL plus a credentials file, as the role templates it."""
        if self.auth_mode == "cookie":
            return {"url": self.url, "cookie_file": str(self.cookie_file)}
        password_file = Path(workdir) / f"{self.name}{'.conf' if conf_style else '.rpcpass'}"
        text = f"rpcuser={self.user}\nrpcpassword={self.password}\n" if conf_style else self.password + "\n"
        password_file.write_text(text)
        password_file.chmod(0o600)
        spec = {"url": self.url, "password_file": str(password_file)}
        if not conf_style:
            spec["user"] = self.user
        return spec


def require_litecoind():
    if not LITECOIND.exists():
        pytest.fail(f"litecoind not found at {LITECOIND}: install the Debian package `litecoind` "
                    "(tests/harness/system-deps.sh does); these tests need a real node and never skip")


class Anvil:
    """anvil on a free loopback port (instant mining only when asked)."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(self._ready, 20, f"anvil on port {self.port}")
        except BaseException:
            self.stop()  # never leave a node behind
            raise

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"anvil exited with {self.proc.returncode}")
        try:
            self.rpc("eth_blockNumber")
            return True
        except OSError:
            return False

    def rpc(self, method, *params):
        return rpc_call(self.url, method, params)

    def height(self):
        return int(self.rpc("eth_blockNumber"), 16)

    def head_timestamp(self):
        return int(self.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def require_anvil():
    if not ANVIL.exists():
        pytest.fail(f"anvil not found at {ANVIL}: run `make -C {REPO} artifacts` (or "
                    f"`CHAINOPS_CACHE={CACHE} bash {REPO}/tests/harness/fetch-artifacts.sh`); "
                    "these tests need a real node and never skip")


# ----------------------------------------------------------------------------- fixture node

class FixtureNode:
    """A loopback HTTP server answering REST paths and JSON-RPC methods from fixture documents.

    Counts every request and can delay answers, to check that probes never wait on the node.
    """

    def __init__(self):
        self.get_routes = {}
        self.rpc_routes = {}
        self.requests = 0
        self.hits = collections.Counter()  # per GET path or JSON-RPC method
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server = JsonServer(self._answer)
        self.url = self._server.url

    def _answer(self, request):
        if request.method == "GET":
            self.count(request.path)
            reply = self.get_routes.get(request.path, (404, b"404 page not found", "text/plain"))
        else:
            call = request.json()
            self.count(call.get("method"))
            doc = self.rpc_routes.get(call.get("method"))
            if doc is None:
                doc = {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}}
            reply = (200, dict(doc, id=call.get("id")))
        if self.delay:
            time.sleep(self.delay)
        return reply

    def count(self, what):
        with self._lock:
            self.requests += 1
            self.hits[what] += 1

    def set_json(self, path, doc, status=200):
        self.get_routes[path] = (status, json.dumps(doc).encode())

    def set_text(self, path, text, status):
        self.get_routes[path] = (status, text.encode(), "text/plain")

    def set_rpc(self, method, doc):
        """doc: a whole JSON-RPC response (fixture file) or a bare result wrapped here."""
        self.rpc_routes[method] = copy.deepcopy(doc)

    def set_result(self, method, result):
        self.rpc_routes[method] = {"jsonrpc": "2.0", "result": result}

    def close(self):
        self._server.close()
