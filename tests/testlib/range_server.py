"""A loopback HTTP file server that answers byte ranges the way S3 does, for restore tests and benchmarks.

- ``Range: bytes=a-b`` gets 206 with Content-Range; no Range gets the whole file (200). HEAD and
  the ETag / Last-Modified headers are enough for an S3 client using path-style URLs
  (``/<bucket>/<key>`` maps to ``root/<bucket>/<key>``), such as awscli in the restore benchmark.
- ``rate``: bytes per second per connection (S3 gives one GET stream about 90 MB/s); sent with
  sendfile(2) in small slices, so serving costs the restore under test little CPU.
- ``served``: bytes sent so far (all requests), ``requests``: (path, range header) of each GET.
- ``cut_after``: once this many bytes have been served in total, every transfer in progress or
  started later is cut off mid-body (the connection closes early), as a network failure would.
"""
from __future__ import annotations

import http.server
import os
import re
import threading
import time
from pathlib import Path

SLICE = 256 * 1024


class RangeServer:
    def __init__(self, root: Path, rate: float | None = None):
        self.root, self.rate = Path(root), rate
        self.lock = threading.Lock()
        self.served = 0
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _object_headers(self, stat, length):
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", '"%x-%x"' % (stat.st_ino, int(stat.st_mtime)))
                self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
                self.end_headers()

            def do_HEAD(self):  # noqa: N802 - http.server's name
                # What an S3 client (awscli, path-style /bucket/key) asks before a ranged download.
                path = server.root / self.path.split("?", 1)[0].lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                stat = path.stat()
                self.send_response(200)
                self._object_headers(stat, stat.st_size)

            def do_GET(self):  # noqa: N802 - http.server's name
                path = server.root / self.path.split("?", 1)[0].lstrip("/")
                with server.lock:
                    server.requests.append((self.path.split("?", 1)[0], self.headers.get("Range")))
                if not path.is_file():
                    self.send_error(404)
                    return
                stat = path.stat()
                size = stat.st_size
                start, end = 0, size - 1
                match = re.match(r"^bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                    if start > end:
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
                else:
                    self.send_response(200)
                self._object_headers(stat, end - start + 1)
                self.wfile.flush()
                server._send(self.connection, path, start, end - start + 1)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]

    def _send(self, sock, path: Path, offset: int, count: int) -> None:
        started, sent = time.monotonic(), 0
        with open(path, "rb") as handle:
            while sent < count:
                with self.lock:
                    if self.cut_after is not None and self.served >= self.cut_after:
                        return  # the handler returns early: the connection closes mid-body
                    want = min(SLICE, count - sent)
                    if self.cut_after is not None:
                        want = min(want, max(1, self.cut_after - self.served))
                try:
                    done = os.sendfile(sock.fileno(), handle.fileno(), offset + sent, want)
                except (BrokenPipeError, ConnectionResetError):
                    return
                if not done:
                    return
                sent += done
                with self.lock:
                    self.served += done
                if self.rate:
                    ahead = sent / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)

    def reset(self) -> None:
        with self.lock:
            self.served, self.requests, self.cut_after = 0, [], None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
