# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The poller that keeps the pre-rendered responses current, the responses themselves, and the HTTP server."""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import math
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chainops_health import VERSION
from chainops_health.adapters import ADAPTERS
from chainops_health.client import Client, Endpoint, RpcError, RpcTimeout
from chainops_health.verdict import FAIL, PASS, RefResult, evaluate, next_bootstrap_state


LOG = logging.getLogger("chainops_health")
Reference = namedtuple("Reference", "name adapter client")


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
