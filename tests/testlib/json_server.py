"""A stand-in for a node's HTTP API, answering JSON documents on loopback.

In a test: ``with JsonServer(answer) as server: server.url``, where ``answer(request)`` returns the reply
to one request (its method, path, headers and body, ``request.json()`` the parsed body): a JSON-able
document (status 200), bytes (200, sent as they are) or ``(status, document or bytes[, content type])``.
As a program (in a network namespace or a container): ``python3 json_server.py HOST PORT FILE`` answers
every request with FILE's content, read at each request, so a test changes the answer by rewriting it.
"""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple


class Request(NamedTuple):
    method: str
    path: str
    headers: object  # the request's http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body) if self.body else None


def handler_for(answer):
    """A request handler answering every GET and POST with ``answer(request)`` (see the module's doc)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # every reply has a Content-Length, so connections can be kept

        def _reply(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = answer(Request(self.command, self.path, self.headers, body))
            status, content_type = 200, "application/json"
            if isinstance(reply, tuple):
                status, reply, content_type = (reply + (content_type,))[:3]
            data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply  # noqa: N815 - http.server's names

        def log_message(self, *args):
            pass

    return Handler


class JsonServer:
    """Serves ``answer`` on a free loopback port (or the given one) until closed."""

    def __init__(self, answer, host="127.0.0.1", port=0):
        self.server = ThreadingHTTPServer((host, port), handler_for(answer))
        self.server.daemon_threads = True
        self.url = "http://%s:%d" % (host, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv):
    host, port, path = argv[0], int(argv[1]), argv[2]

    def from_file(_request):
        with open(path, "rb") as handle:
            return handle.read()
    server = ThreadingHTTPServer((host, port), handler_for(from_file))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
