"""HTTP behaviour of chainops_health: keep-alive, routes, staleness, connection cap, no waiting on the node."""
from __future__ import annotations

import dataclasses
import email.utils
import http.client
import json
import re
import signal
import socket
import threading
import time

import pytest

from hc_support import POLL, fixture_json, free_port, wait_until

from chainops_health.config import validate_config
from chainops_health.server import HealthServer, Poller


def ethereum_fixtures(node):
    for method in ("eth_blockNumber", "eth_getBlockByNumber", "net_peerCount"):
        node.set_rpc(method, fixture_json(f"ethereum_{method}.json"))
    node.set_result("eth_syncing", False)


@pytest.fixture
def in_process(fixture_node):
    """Poller + HealthServer in this process, polled by hand (no poller thread) so tests control time."""
    servers = []

    def make(**overrides):
        node = fixture_node()
        ethereum_fixtures(node)
        # Polled by hand: the node's timeout only bounds a loaded machine's slow answer (CI runs these beside
        # the lab, at a lower priority), and the snapshot stays fresh for 2 polls plus that timeout.
        raw = {"adapter": "ethereum", "node": {"url": node.url}, "listen_host": "127.0.0.1",
               "listen_port": free_port(), "poll_interval_s": POLL, "timeout_s": 5}
        raw.update(overrides)
        cfg = validate_config(raw)
        poller = Poller(cfg)
        server = HealthServer((cfg["listen_host"], cfg["listen_port"]), poller, cfg["max_connections"])
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return poller, server, node

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def connect(server):
    return http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)


def test_answers_503_starting_before_the_first_poll(in_process):
    server = in_process()[1]
    conn = connect(server)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    assert resp.status == 503
    assert json.loads(resp.read())["status"] == "starting"


def test_keep_alive_serves_many_requests_on_one_connection(in_process):
    poller, server = in_process()[:2]
    poller.poll_once()
    conn = connect(server)
    conn.request("GET", "/health")
    first = conn.getresponse()
    assert first.status == 200 and first.getheader("Connection") is None
    first.read()
    sock = conn.sock
    for path in ("/live", "/metrics", "/health?verbose", "/health"):
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200, path
        resp.read()
        assert conn.sock is sock, f"connection was not reused for {path}"
    date = first.getheader("Date")
    assert date and abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) < 5


def test_head_get_404_and_unsupported_methods(in_process):
    poller, server = in_process()[:2]
    poller.poll_once()
    conn = connect(server)
    conn.request("GET", "/health")
    get = conn.getresponse()
    body = get.read()
    conn.request("HEAD", "/health")
    head = conn.getresponse()
    assert head.status == 200
    assert head.read() == b""
    assert int(head.getheader("Content-Length")) == len(body)
    conn.request("GET", "/nope")
    missing = conn.getresponse()
    assert missing.status == 404 and b"/health" in missing.read()
    conn.request("POST", "/health", body=b"{}")
    assert conn.getresponse().status == 501


@pytest.mark.parametrize("query,verbose", [("?verbose", True), ("?verbose=1", True), ("?verbose=true", True),
                                           ("?verbose=0", False), ("?other=1", False), ("", False)])
def test_verbose_query_adds_detail(in_process, query, verbose):
    poller, server = in_process()[:2]
    poller.poll_once()
    conn = connect(server)
    conn.request("GET", "/health" + query)
    doc = json.loads(conn.getresponse().read())
    assert ("references" in doc and "node" in doc and "soft_errors" in doc) is verbose
    assert set(doc["checks"]) == {"node_answers", "not_syncing", "peers", "head_age", "lag"}


def test_http10_and_requests_with_bodies_close_the_connection(in_process):
    poller, server = in_process()[:2]
    poller.poll_once()
    with socket.create_connection(server.server_address, timeout=5) as sock:
        sock.sendall(b"GET /live HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and b"\r\nConnection: close\r\n" in data
    conn = connect(server)
    conn.request("GET", "/health", body=b"x" * 10)
    resp = conn.getresponse()
    assert resp.getheader("Connection") == "close"


def test_stale_snapshot_turns_every_endpoint_unhealthy(in_process):
    poller, server = in_process()[:2]
    poller.poll_once()
    conn = connect(server)
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()
    # A poller that stopped publishing (hung, crashed) must not leave the last "healthy" in place.
    poller.snapshot = dataclasses.replace(poller.snapshot, expires_at=0.0)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    assert resp.status == 503 and doc["status"] == "stale" and "stale_after_s" in doc["reason"]
    conn.request("GET", "/live")
    live = conn.getresponse()
    assert live.status == 503 and json.loads(live.read())["stale"] is True
    conn.request("GET", "/metrics")
    metrics = conn.getresponse().read().decode()
    assert "chainops_health_stale 1" in metrics and "chainops_health_healthy 0" in metrics


def test_connection_cap_closes_extra_connections(in_process):
    poller, server = in_process(max_connections=2)[:2]
    poller.poll_once()
    held = [connect(server) for _attempt in range(2)]
    for conn in held:
        conn.request("GET", "/live")
        assert conn.getresponse().read()
    with socket.create_connection(server.server_address, timeout=5) as extra:
        extra.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert extra.recv(4096) == b"", "a connection over the cap must be closed, not served"
    held[0].close()

    def served_again():  # once the handler thread notices the close, its slot is free again
        try:
            conn = connect(server)
            conn.request("GET", "/live")
            return conn.getresponse().status == 200
        except (ConnectionError, http.client.HTTPException):
            return False
    wait_until(served_again, 5, "a freed connection slot")


def test_probes_never_wait_on_a_slow_node(fixture_node, start_service):
    node = fixture_node()
    ethereum_fixtures(node)
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "timeout_s": 3, "min_peers": 0})
    service.wait_status(200)
    node.delay = 2.0  # every node call now takes 2 s: a poll takes ~8 s
    time.sleep(0.3)
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    latencies = []
    for _attempt in range(60):
        started = time.perf_counter()
        conn.request("GET", "/health")
        conn.getresponse().read()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    # Bounds generous enough for a loaded shared machine: a probe that waited on the node would take ~2 s.
    assert max(latencies) < 1.0, f"slowest probe {max(latencies):.3f}s while the node took 2 s per call"
    assert sorted(latencies)[len(latencies) // 2] < 0.2


def test_node_rpc_load_does_not_depend_on_request_rate(fixture_node, start_service):
    node = fixture_node()
    ethereum_fixtures(node)
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "min_peers": 0})
    service.wait_status(200)
    before, started = node.requests, time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    for _attempt in range(2000):
        conn.request("GET", "/health")
        assert conn.getresponse().read()
    elapsed = time.monotonic() - started
    calls = node.requests - before
    polls = elapsed / POLL + 1  # polls that can start in the window
    assert calls <= polls * 4, f"{calls} node calls for 2000 probes in {elapsed:.2f}s (4 calls per poll)"
    # The service's own counter matches what the node saw.
    assert service.metrics()["chainops_health_node_requests_total"] == pytest.approx(node.requests, abs=4)


def test_node_timeout_is_reported_and_flips_within_a_poll(fixture_node, start_service):
    node = fixture_node()
    ethereum_fixtures(node)
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "timeout_s": 0.3, "min_peers": 0})
    service.wait_status(200)
    node.delay = 2.0
    doc = service.assert_flips(503, "the node answers 2 s late, timeout_s is 0.3")
    # The first unhealthy poll may have begun before the delay: its first call answered, a later one timed
    # out (a soft error). The poll after it meets the delay on its first call; wait for it, two polls at most.
    due = service.polls() + 2
    while doc["checks"]["node_answers"]["status"] == "pass" and service.polls() <= due:
        time.sleep(0.05)
        _status, doc = service.get()
    # The poll gave up at the timeout (connect plus read) instead of waiting for the late answer.
    assert doc["poll_duration_s"] < 1.5, f"the poll waited {doc['poll_duration_s']}s for a node timing out"
    assert doc["checks"]["node_answers"] == {"status": "fail", "value": False, "reason": "node: timed out"}
    node.delay = 0.0


def test_garbage_from_the_node_is_an_unhealthy_verdict_not_a_crash(fixture_node, start_service):
    node = fixture_node()
    ethereum_fixtures(node)
    node.set_result("eth_blockNumber", "banana")
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "min_peers": 0})
    status, doc = service.get()
    assert status == 503
    assert "unexpected response from node: ValueError" in doc["checks"]["node_answers"]["reason"]
    ethereum_fixtures(node)
    service.wait_status(200)


def test_sigterm_stops_the_service_cleanly(fixture_node, start_service):
    node = fixture_node()
    ethereum_fixtures(node)
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "min_peers": 0})
    started = time.monotonic()
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(10) == 0
    assert time.monotonic() - started < 3


def raw_exchange(server, request):
    """Send raw bytes; return (first response, whether the server then closed the connection)."""
    with socket.create_connection(server.server_address, timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
        head, _sep, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < length:
            body += sock.recv(65536)
        sock.settimeout(0.3)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        return head, closed


@pytest.mark.parametrize("request_bytes,status,closed", [
    (b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n", b"200", False),
    (b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"200", True),
    (b"GET /live HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", b"200", False),
    (b"GET /live HTTP/1.0\r\n\r\n", b"200", True),
    (b"GET /live HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"200", True),
    (b"GET /live HTTP/2.0\r\n\r\n", b"400", True),
    (b"GET /live\r\n\r\n", b"400", True),
    (b"GARBAGE\r\n\r\n", b"400", True),
    (b"GET /live HTTP/1.1\r\nno-colon-here\r\n\r\n", b"400", True),
    (b"GET /live HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", b"431", True),
    (b"GET /live HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", b"400", True),
])
def test_request_parsing_and_keep_alive_rules(in_process, request_bytes, status, closed):
    poller, server = in_process()[:2]
    poller.poll_once()
    data, was_closed = raw_exchange(server, request_bytes)
    assert data[9:12] == status, data[:200]
    assert was_closed is closed
