"""A loopback HTTP proxy in front of moto_server, for the tests and benchmarks that count AWS calls.

It forwards every request unchanged and records it: the API action, the region and access key of the
request's signature, the session token and the query parameters. A test that needs an answer moto
cannot give (an injected error, a state moto never reports) overrides ``exchange``; everything else is
moto's own behaviour.
"""
from __future__ import annotations

import http.client
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

# Hop-by-hop and per-connection headers: the proxy sets its own.
_REQUEST_DROPPED = ("connection", "keep-alive", "content-length", "transfer-encoding")
_RESPONSE_DROPPED = ("connection", "keep-alive", "content-length", "transfer-encoding", "date", "server")


def describe(path: str, headers: dict, body: bytes) -> dict:
    """What a test asks of a request: action, region, access_key, token, params (first values), pairs (all)."""
    pairs = parse_qsl(urlsplit(path).query, keep_blank_values=True)
    if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        pairs += parse_qsl(body.decode(), keep_blank_values=True)
    auth = headers.get("Authorization", "")
    # SigV4: Credential=<access key>/<date>/<region>/<service>/aws4_request
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else [None] * 5
    params = {}
    for key, value in pairs:
        params.setdefault(key, value)
    return {
        "action": params.get("Action"),
        "access_key": scope[0],
        "region": scope[2] if len(scope) > 2 else None,
        "token": headers.get("X-Amz-Security-Token"),
        "params": params,
        "pairs": pairs,
    }


class MotoProxy:
    """Serves on a free loopback port until closed; ``url`` is the endpoint to give the code under test."""

    def __init__(self, upstream: str, timeout: float = 600):
        self.upstream = urlsplit(upstream)
        self.timeout = timeout
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, payload = proxy.handle(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _RESPONSE_DROPPED:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle  # noqa: N815 - http.server's names; EC2 and STS take POST, or GET with a query

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, method: str, path: str, headers: dict, body: bytes):
        request = describe(path, headers, body)
        with self.lock:
            self.requests.append(request)

        def forward(new_body: bytes | None = None):
            """Send the request to moto (with new_body instead of its own); (status, headers, payload)."""
            sent = body if new_body is None else new_body
            kept = {k: v for k, v in headers.items() if k.lower() not in _REQUEST_DROPPED}
            kept["Content-Length"] = str(len(sent))
            conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=self.timeout)
            try:
                conn.request(method, path, body=sent, headers=kept)
                response = conn.getresponse()
                return response.status, response.getheaders(), response.read()
            finally:
                conn.close()

        return self.exchange(request, forward)

    def exchange(self, request: dict, forward):
        """The answer to one request: moto's, unless a subclass answers or changes it."""
        del request
        return forward()

    def actions(self) -> Counter:
        """Requests per API action since the last reset."""
        with self.lock:
            return Counter(request["action"] for request in self.requests)

    def reset(self):
        with self.lock:
            self.requests = []

    def close(self):
        self.server.shutdown()
        self.server.server_close()
