# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Parallel ranged download of a snapshot archive, kept as part files and fed in order to the restore.

One HTTP stream from S3 gives about 90 MB/s, far below what zstd and tar can take, so the archive
is fetched as byte ranges over several connections, one ``curl -r`` per part. Each part lands in
``<parts dir>/<index>`` (renamed from ``.tmp`` once complete), and a feeder passes the parts in
order to the restore pipeline with sendfile(2) (snapshot_stream.stream_restore). Downloads run at
most ``window`` parts ahead of the feeder, so memory stays bounded and the parts are usually still
in the page cache when fed.

Resume: the parts stay on disk until the restore has been verified. A new run with the same plan
(archive sha256 and part boundaries, in ``plan.json``) reuses every complete part and fetches only
the missing ones. A complete part is trusted by its size: the sha256 of the whole archive, computed
on the stream as before, checks every byte end to end. When it does not match and the manifest
lists each part's sha256, the parts are hashed to find the bad ones, which are deleted so that the
next run fetches only those.

Parts come from the manifest (``parts``: size and sha256 of each, as the upload writes them) or,
for manifests without them, from fixed-size ranges of the archive's ``size`` (or the size the
server reports for a one-byte range).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import hashlib
import json
import os
import re
import subprocess
import threading

from ansible_collections.chainops.validator.plugins.module_utils.snapshot_archive import parts_problems
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_stream import (
    StreamError,
    curl_quote,
    get_config,
    redact,
)

DEFAULT_RANGE = 64 * 1024 * 1024
ATTEMPTS = 3  # per part, before the restore gives up (the parts fetched so far stay)
BACKOFF = 1.0  # seconds before the second attempt at a part, doubled for the third
CURL_TOO_LARGE = 63  # curl's exit code when max-filesize is exceeded
PLAN_FILE = "plan.json"


class Part(collections.namedtuple("Part", "index start size sha256")):
    """One byte range of the archive: [start, start + size)."""

    @property
    def end(self):
        return self.start + self.size - 1


def plan_parts(size=None, parts=None, range_size=DEFAULT_RANGE):
    """The archive's parts: the manifest's list (size, sha256) or ranges of ``range_size``.

    Raises ValueError naming what is wrong.
    """
    if parts:
        problems = parts_problems(parts, size)
        if problems:
            raise ValueError("; ".join(problems))
        plan, start = [], 0
        for index, part in enumerate(parts):
            plan.append(Part(index, start, part["size"], part["sha256"]))
            start += part["size"]
        return plan
    if size is None or size < 1:
        raise ValueError("the archive's size is needed to fetch it in ranges")
    if range_size < 1:
        raise ValueError("range size must be positive")
    return [Part(index, start, min(range_size, size - start), None)
            for index, start in enumerate(range(0, size, range_size))]


def range_config(url, part, output, timeout):
    """curl's config for one part."""
    return get_config(
        url, timeout,
        "range = %d-%d" % (part.start, part.end),
        # A server that ignores the range announces the whole archive: curl stops before writing it.
        "max-filesize = %d" % part.size,
        "output = %s" % curl_quote(output),
        'write-out = "%{http_code} %{size_download}"')


def probe_size(url, timeout=60):
    """The archive's size from a one-byte range request, or None when the server ignores ranges."""
    config = get_config(
        url, timeout,
        "range = 0-0", "output = /dev/null", "max-time = %d" % (2 * timeout),
        # A server that ignores the range sends the whole archive: stop at its headers (exit 63).
        "max-filesize = 1",
        'write-out = "%{http_code} %header{content-range}"')
    proc = subprocess.run(["curl", "--config", "-"], input=config.encode(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    if proc.returncode == CURL_TOO_LARGE:
        return None
    if proc.returncode != 0:
        raise StreamError("asking the server for the archive's size failed (curl exit %d): %s"
                          % (proc.returncode, redact(proc.stderr.decode("utf-8", "replace"), [url]).strip()[-500:]),
                          "download")
    match = re.match(r"^206 bytes 0-0/(\d+)\s*$", proc.stdout.decode("ascii", "replace"))
    return int(match.group(1)) if match else None


class PartStore(object):
    """The part files of one archive's restore, in ``root`` (inside the restore's staging directory)."""

    def __init__(self, root, sha256, plan):
        self.root, self.plan = root, plan
        wanted = {"sha256": sha256, "parts": [[p.start, p.size, p.sha256] for p in plan]}
        try:
            with open(os.path.join(root, PLAN_FILE)) as handle:
                same = json.load(handle) == wanted
        except (OSError, ValueError):
            same = False
        if not same:
            # Parts of another archive or another split are of no use: start this plan afresh.
            if os.path.isdir(root):
                for name in os.listdir(root):
                    os.unlink(os.path.join(root, name))
            else:
                os.makedirs(root, mode=0o700)
            with open(os.path.join(root, PLAN_FILE + ".tmp"), "w") as handle:
                json.dump(wanted, handle)
            os.rename(os.path.join(root, PLAN_FILE + ".tmp"), os.path.join(root, PLAN_FILE))

    def path(self, part):
        return os.path.join(self.root, "%05d" % part.index)

    def have(self, part):
        try:
            return os.path.getsize(self.path(part)) == part.size
        except OSError:
            return False

    def drop(self, part):
        for path in (self.path(part), self.path(part) + ".tmp"):
            if os.path.lexists(path):
                os.unlink(path)

    def bad_parts(self):
        """Parts whose file does not match the manifest's sha256 (only parts that list one)."""
        bad = []
        for part in self.plan:
            if part.sha256 is None or not self.have(part):
                continue
            digest = hashlib.sha256()
            with open(self.path(part), "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            if digest.hexdigest() != part.sha256:
                bad.append(part)
        return bad


class RangedFetch(object):
    """Fetch the missing parts over ``connections`` connections and feed all parts in order.

    ``feed(fd)`` is what snapshot_stream.stream_restore calls: it returns the bytes fed, or raises
    StreamError (stage ``download`` when a part could not be fetched, ``extract`` when the pipeline
    stopped reading). Counters for the result: ``fetched_bytes``, ``reused_parts``.
    """

    def __init__(self, url, store, connections=8, timeout=60, window=None, keep_parts=True):
        self.url, self.store, self.timeout = url, store, timeout
        self.connections = max(1, int(connections))
        self.window = window or 2 * self.connections
        self.keep_parts = keep_parts
        self.ready = set(part.index for part in store.plan if store.have(part))
        self.reused_parts = len(self.ready)
        self.fetched_bytes = 0
        self.fed_parts = 0
        self.active = {}  # part index -> the file curl is writing, for progress
        self.missing = collections.deque(part for part in store.plan if part.index not in self.ready)
        self.fed = 0  # parts fed so far; downloads stay within `window` parts of it
        self.error = None
        self.procs = set()
        self.cond = threading.Condition()

    def _next(self):
        with self.cond:
            while self.missing and self.error is None and self.missing[0].index >= self.fed + self.window:
                self.cond.wait()
            if self.error is not None or not self.missing:
                return None
            return self.missing.popleft()

    def _fetch(self, part):
        tmp = self.store.path(part) + ".tmp"
        problem = None
        for attempt in range(ATTEMPTS):
            # nice: the parts arrive faster than zstd and tar take them (8 x 90 MiB/s), so on a busy
            # host the extraction, which decides the restore's time, gets the CPU first.
            proc = subprocess.Popen(["nice", "-n", "10", "curl", "--config", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            with self.cond:
                if self.error is not None:
                    proc.kill()
                self.procs.add(proc)
                self.active[part.index] = tmp
            out, err = proc.communicate(range_config(self.url, part, tmp, self.timeout).encode())
            with self.cond:
                self.procs.discard(proc)
                self.active.pop(part.index, None)
                if self.error is not None:
                    return
            fields = out.decode("ascii", "replace").split()
            got = os.path.getsize(tmp) if os.path.exists(tmp) else 0
            if proc.returncode == 0 and fields[:1] == ["206"] and got == part.size:
                os.rename(tmp, self.store.path(part))
                with self.cond:
                    self.fetched_bytes += part.size
                    self.ready.add(part.index)
                    self.cond.notify_all()
                return
            if proc.returncode == CURL_TOO_LARGE or (proc.returncode == 0 and fields[:1] == ["200"]):
                problem = "the server ignored the byte range (it answered with the whole archive)"
                break  # retrying cannot help
            problem = "curl exit %d, HTTP %s, %d of %d bytes: %s" % (
                proc.returncode, fields[0] if fields else "?", got, part.size,
                redact(err.decode("utf-8", "replace"), [self.url]).strip()[-300:])
            # A short pause before the next attempt, so that a burst of throttling (S3's 503 SlowDown)
            # or a reset connection can pass; a failure elsewhere ends it at once.
            if attempt + 1 < ATTEMPTS:
                with self.cond:
                    self.cond.wait_for(lambda: self.error is not None, BACKOFF * 2 ** attempt)
                    if self.error is not None:
                        return
        self._fail(StreamError("part %d (bytes %d-%d) could not be fetched after %d attempt%s: %s"
                               % (part.index, part.start, part.end, attempt + 1, "s" if attempt else "", problem), "download"))

    def progress(self):
        """(bytes on disk: parts fetched or reused plus what curl has written of the others, parts fed on)."""
        with self.cond:
            done = sum(part.size for part in self.store.plan if part.index in self.ready)
            writing = list(self.active.values())
            fed = self.fed_parts
        for path in writing:
            try:
                done += os.path.getsize(path)
            except OSError:
                pass  # renamed or not created yet
        return done, fed

    def _fail(self, error):
        with self.cond:
            if self.error is None:
                self.error = error
            for proc in self.procs:
                proc.kill()
            self.cond.notify_all()

    def _worker(self):
        try:
            while True:
                part = self._next()
                if part is None:
                    return
                self._fetch(part)
        except Exception as exc:  # a worker must never die silently: the feeder would wait forever
            self._fail(StreamError("fetching parts failed: %s: %s" % (type(exc).__name__, exc), "download"))

    def feed(self, fd):
        workers = [threading.Thread(target=self._worker) for _index in range(min(self.connections, len(self.missing)))]
        for worker in workers:
            worker.start()
        total = 0
        try:
            for part in self.store.plan:
                with self.cond:
                    while part.index not in self.ready and self.error is None:
                        self.cond.wait()
                    if self.error is not None:
                        raise self.error
                total += self._send(fd, part, total)
                if not self.keep_parts:
                    self.store.drop(part)
                with self.cond:
                    self.fed = part.index + 1
                    self.fed_parts += 1
                    self.cond.notify_all()
            return total
        except BaseException as exc:
            # Whatever stopped the feeder must stop the workers too, or they would wait for it forever.
            self._fail(exc if isinstance(exc, StreamError)
                       else StreamError("feeding the parts failed: %s: %s" % (type(exc).__name__, exc), "download", total))
            raise
        finally:
            for worker in workers:
                worker.join()

    def _send(self, fd, part, total):
        sent = 0
        with open(self.store.path(part), "rb") as handle:
            while sent < part.size:
                try:
                    count = os.sendfile(fd, handle.fileno(), sent, part.size - sent)
                except BrokenPipeError:
                    raise StreamError("the restore pipeline stopped reading", "extract", total + sent)
                if count == 0:
                    raise StreamError("part %d is shorter than planned" % part.index, "download", total + sent)
                sent += count
        return sent
