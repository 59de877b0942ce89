"""A stand-in for a node's HTTP API: every GET and POST is answered with one JSON document.

In a test: ``with JsonServer(lambda: {...}) as server: server.url``. As a program (in a network namespace
or a container): ``python3 json_server.py HOST PORT FILE`` answers with FILE's content, read at each
request, so a test changes the answer by rewriting the file.
"""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler_for(answer):
    """A request handler answering ``answer()`` (bytes or a JSON-able value) to every GET and POST."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = answer()
            body = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply  # noqa: N815

        def log_message(self, *args):
            pass

    return Handler


class JsonServer:
    """``answer``: a callable returning the document; served on a free loopback port until closed."""

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

    def from_file():
        with open(path, "rb") as handle:
            return handle.read()
    ThreadingHTTPServer((host, port), handler_for(from_file)).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
