# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The streaming parts of snapshot archives, as all-C pipelines that Python only supervises.

Restore: ``curl | python3 -c HASHER | zstd -d --no-check | tar -x``, or the same pipeline after
         ``python3 -c HASHER`` fed in order with parts fetched in parallel (snapshot_fetch.py).
Upload:  ``tar -c | zstd`` cut into parts by Python, each part hashed and PUT by its own curl,
         several at a time.

An earlier version read the download in Python and fed the decompressor, and reached only
0.56-0.74 of raw ``zstd -d | tar -x``. The restore's hash stage (HASHER) is a small Python process
that never writes the archive: tee(2) hands the decompressor the pipe's pages without a copy, and
the one read that hashing needs goes to OpenSSL's SHA-256 (hashlib, SHA-NI). It replaced
``tee | openssl dgst``, whose 8 KiB reads and writes copied every byte four times (see
docs/snapshots.md for the measurements). The upload hashes with hashlib too, not ``sha256sum``:
Debian's coreutils hash without SHA-NI, about 170 MB/s here against 1.5 GB/s.

Presigned URLs are credentials: they reach curl through its config (stdin or a 0600 file), never
its argv (visible in /proc) or an error message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading

# zstd --no-check: the sha256 of the whole archive, checked before anything is moved into place,
# already proves integrity; zstd's own xxhash64 of the output would be a second, weaker check.
DECOMPRESSORS = {"zstd": "zstd -d -c -q --no-check", "lz4": "lz4 -d -c -q", "none": None}
# A byte count curl reports on its stderr, so that the archive's bytes need no extra copy (wc).
BYTES_TAG = "chainops-bytes"
SHA_LINE = re.compile(r"^([0-9a-f]{64})\b")
# The restore's hash stage: stdin (curl) to stdout (the decompressor), the sha256 hex to fd argv[1].
# tee(2) duplicates the pipe's pages into stdout without copying them; the read that follows
# consumes exactly those bytes for hashing. Both pipes are raised to 1 MiB (F_SETPIPE_SZ) so that
# each stage moves big chunks. When tee(2) cannot be used (not two pipes, no tee in libc) it falls
# back to read and write. When the decompressor has died (EPIPE) hashing goes on to the end, so
# that corrupt bytes are reported as a checksum mismatch; the decompressor's exit code reports it.
HASHER = r"""
import ctypes, errno, fcntl, hashlib, json, os, sys, time
SIZE = 1 << 20
# argv[2], argv[3]: a progress file and its report (module_utils/progress.py); "done" counts the bytes hashed.
progress = sys.argv[2] if len(sys.argv) > 3 else ""
report, written = (json.loads(sys.argv[3]) if progress else None), 0.0
def show(final=False):
    global written
    now = time.time()
    if progress and (final or now - written >= 1.0):
        written = report["updated"] = now
        report["done"] = count
        try:
            with open(progress + ".hash", "w") as handle:
                json.dump(report, handle)
            os.rename(progress + ".hash", progress)
        except OSError:
            pass
count = 0
for fd in (0, 1):
    try:
        fcntl.fcntl(fd, 1031, SIZE)
    except OSError:
        pass
try:
    tee = ctypes.CDLL(None, use_errno=True).tee
    tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
    tee.restype = ctypes.c_ssize_t
except (AttributeError, OSError):
    tee = None
digest, buf = hashlib.sha256(), bytearray(SIZE)
view, out = memoryview(buf), True
while True:
    want = SIZE
    if out and tee:
        want = tee(0, 1, SIZE, 0)
        if want == 0:
            break
        if want < 0:
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code == errno.EPIPE:
                out = False
            elif code != errno.EINVAL:
                raise OSError(code, os.strerror(code))
            tee, want = None, SIZE
    got = 0
    while got < want:
        n = os.readv(0, [view[got:want]])
        if not n:
            break
        got += n
    if not got:
        break
    digest.update(view[:got])
    count += got
    show()
    if out and not tee:
        try:
            done = 0
            while done < got:
                done += os.write(1, view[done:got])
        except BrokenPipeError:
            out = False
show(final=True)
os.write(int(sys.argv[1]), (digest.hexdigest() + "\n").encode())
"""
# tar's stage: its stdin pipe raised to 1 MiB (F_SETPIPE_SZ), then tar itself (exec). With the
# default 64 KiB pipe between zstd and tar, each side woke the other every 64 KiB; on 2 CPUs shared
# with the download that made a parallel restore of 513 MiB take 2.3-2.5 s instead of 1.9-2.0 s
# (docs/snapshots.md). The hash stage raises its own pipes the same way.
WIDE_STDIN = r"""
import fcntl, os, sys
try:
    fcntl.fcntl(0, 1031, 1 << 20)
except OSError:
    pass
os.execvp(sys.argv[1], sys.argv[1:])
"""
MIN_PART = 5 * 1024 * 1024  # S3's smallest part (except the last one)
MAX_PARTS = 10000  # S3's most parts of one upload


class StreamError(RuntimeError):
    """The pipeline failed. ``stage`` says where: download, upload, extract, archive, checksum."""

    def __init__(self, message, stage, count=0, sha256=None):
        super(StreamError, self).__init__(message)
        self.stage = stage
        self.bytes = count
        self.sha256 = sha256


def curl_quote(value):
    """A value for a curl config file (double-quoted; backslash escapes)."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("URL contains a line break or NUL")
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def redact(text, secrets):
    """Remove URLs (and their query strings, where presigned signatures live) from curl's messages."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<url>")
    return re.sub(r"(https?://[^\s?'\"]*)\?[^\s'\"]*", r"\1?<redacted>", text)


def tar_extract_command(dest, exclude):
    # -b 2048 -B: 1 MiB records, read whole from the pipe. tar writes each file's data from its
    # record buffer, so the default 10 KiB records cost a write(2) per 10 KiB; 1 MiB records cut
    # tar's CPU time by about a quarter here. -B makes any archive (any blocking) read correctly.
    command = ["tar", "-x", "-f", "-", "-C", dest, "-b", "2048", "-B", "--no-same-owner", "--delay-directory-restore"]
    for path in exclude:
        # Members are "./path" when the archive was made with "tar -C dir .", "path" otherwise.
        command += ["--exclude=" + path, "--exclude=./" + path]
    return command


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("ascii", "replace")


def _digest(text):
    match = SHA_LINE.match(text.strip())
    return match.group(1) if match else None


def _codes(stdout, count):
    try:
        codes = [int(c) for c in stdout.split()]
    except ValueError:
        codes = []
    return codes if len(codes) == count else [255] * count


def restore_script(compression, dest, exclude, hash_fd, fetch=True, progress=None):
    """The bash pipeline of a restore; stdout gets PIPESTATUS.

    fetch: stdin carries curl's config (the URL) and curl is the first stage; otherwise stdin
    carries the archive itself (parallel ranged downloads fed in order, snapshot_fetch.py).
    progress: a module_utils.progress.Progress; the hash stage writes the bytes it has seen to its file.
    """
    stages = ["curl --config - %d>&-" % hash_fd] if fetch else []
    report = " %s %s" % (shlex.quote(progress.path), shlex.quote(json.dumps(progress.report))) if progress is not None and progress.path else ""
    stages.append("%s -c %s %d%s" % (shlex.quote(sys.executable or "python3"), shlex.quote(HASHER), hash_fd, report))
    if DECOMPRESSORS[compression]:
        stages.append("%s %d>&-" % (DECOMPRESSORS[compression], hash_fd))
    tar = [sys.executable or "python3", "-c", WIDE_STDIN] + tar_extract_command(dest, exclude)
    stages.append("%s >/dev/null %d>&-" % (" ".join(shlex.quote(a) for a in tar), hash_fd))
    return "set -o pipefail\n%s\necho \"${PIPESTATUS[*]}\"\n" % " | ".join(stages)


def get_config(url, timeout, *options):
    """curl's config for a GET of ``url`` (the URL stays out of argv: a presigned URL is a credential).

    Fails on HTTP errors, follows redirects over HTTP(S) only, and gives up after ``timeout``
    seconds without a connection or without data (--speed-time/--speed-limit, like a socket
    timeout); ``options`` are further config lines.
    """
    return "\n".join([
        "url = %s" % curl_quote(url),
        "fail", "silent", "show-error", "location",
        'proto = "=http,https"',
        "connect-timeout = %d" % timeout,
        "speed-limit = 1", "speed-time = %d" % timeout,
    ] + list(options)) + "\n"


def restore_config(url, timeout):
    return get_config(url, timeout, 'write-out = "%%{stderr}%s %%{size_download}\\n"' % BYTES_TAG)


def _bytes_from(stderr):
    found = re.findall(r"^%s (\d+)$" % BYTES_TAG, stderr, re.M)
    rest = "\n".join(line for line in stderr.splitlines() if not line.startswith(BYTES_TAG))
    return (int(found[-1]) if found else 0), rest


def require_tools(*tools):
    for tool in tools:
        if not shutil.which(tool):
            raise StreamError("%s is needed on the host and was not found" % tool, "setup")


def stream_restore(url, compression, dest, exclude=(), timeout=60, feed=None, progress=None):
    """Download url and extract it into dest. Returns (bytes, sha256 hex).

    feed: instead of one curl stream, a callable that writes the whole archive, in order, to the
    file descriptor it is given and closes it; it runs in a thread and returns the byte count or
    raises StreamError (stage ``download``).

    Raises StreamError: stage ``download`` when the download failed (partial data may be in dest),
    stage ``extract`` when the bytes arrived but the decompressor or tar failed; both carry the
    sha256 of what arrived so that the caller can call a complete but corrupt download a checksum
    mismatch.
    """
    fetch = feed is None
    require_tools(*(["curl"] if fetch else []) + ["tar"] + (DECOMPRESSORS[compression] or "").split()[:1])
    read_fd, write_fd = os.pipe()
    feed_read = feed_write = None
    try:
        if not fetch:
            feed_read, feed_write = os.pipe()
        # One stream: the hash stage counts the bytes. Ranged parts: the caller counts them as they arrive.
        proc = subprocess.Popen(["bash", "-c", restore_script(compression, dest, exclude, write_fd, fetch, progress if fetch else None)],
                                stdin=subprocess.PIPE if fetch else feed_read, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(write_fd,))
    except Exception:
        for fd in (read_fd, write_fd, feed_read, feed_write):
            if fd is not None:
                os.close(fd)
        raise
    os.close(write_fd)
    fed = {}
    feeder = None
    if not fetch:
        os.close(feed_read)
        feeder = threading.Thread(target=_run_feed, args=(feed, feed_write, fed))
        feeder.start()
    try:
        stdout, stderr = proc.communicate(restore_config(url, timeout).encode() if fetch else None)
    finally:
        if feeder:
            feeder.join()
    # The hash stage wrote its line and exited before bash printed PIPESTATUS.
    sha256 = _digest(_read_all(read_fd))
    total, errors = _bytes_from(stderr.decode("utf-8", "replace"))
    errors = redact(errors, [url])[-2000:]
    stages = (1 if fetch else 0) + (3 if DECOMPRESSORS[compression] else 2)
    codes = _codes(stdout.decode(), stages)
    if fetch and codes[0] != 0:
        raise StreamError("download of the archive failed (curl exit %d): %s" % (codes[0], errors.strip()), "download", total, sha256)
    if not fetch:
        error = fed.get("error")
        if error is not None and getattr(error, "stage", "download") != "extract":
            raise StreamError(str(error), getattr(error, "stage", "download"), getattr(error, "bytes", 0), sha256)
        # A feed stopped by the pipeline (stage extract) is reported by the exit codes below.
        total = fed["bytes"] if error is None else error.bytes
    if sha256 is None:
        raise StreamError("hashing the download failed: %s" % errors.strip(), "checksum", total, None)
    if any(codes) or proc.returncode:
        names = (["curl"] if fetch else []) + ["hash"] + (["decompressor"] if DECOMPRESSORS[compression] else []) + ["tar"]
        raise StreamError("extraction failed (exit codes %s %s): %s" % ("/".join(names), codes, errors.strip()),
                          "extract", total, sha256)
    return total, sha256


def _run_feed(feed, fd, out):
    try:
        out["bytes"] = feed(fd)
    except Exception as exc:  # reported by stream_restore once the pipeline has ended
        out["error"] = exc
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


# ---- upload ---------------------------------------------------------------------------------

def part_size_for(estimate, minimum=64 * 1024 * 1024):
    """Part size so that an archive of at most ``estimate`` bytes fits in S3's 10,000 parts."""
    size = max(minimum, MIN_PART)
    needed = -(-int(estimate) // MAX_PARTS)
    if needed > size:
        # Round up to a whole MiB.
        size = -(-needed // 1048576) * 1048576
    return size


def part_count_for(estimate, part_size):
    """Parts to presign for an archive of at most ``estimate`` bytes (at least one)."""
    return max(1, -(-int(estimate) // int(part_size)))


def upload_bound(data_bytes, files):
    """An upper bound of the archive's size from the data directory's size and file count.

    tar adds at most 1.5 KiB per member (header, padding) plus its 10 KiB end; zstd and lz4 never
    grow incompressible input by more than about 0.4%; 1% and 1 MiB more for safety.
    """
    return int((int(data_bytes) + 1536 * (int(files) + 1) + 10240) * 1.01) + 1048576


def part_config(url, retries=3, timeout=60):
    # The part is in memory (--data-binary @-), so curl can retry it.
    return "\n".join([
        "url = %s" % curl_quote(url),
        "fail", "silent", "show-error",
        'proto = "=http,https"',
        "retry = %d" % retries, "retry-all-errors",
        "connect-timeout = %d" % timeout,
        "speed-limit = 1", "speed-time = %d" % timeout,
    ]) + "\n"


def _upload_part(config_path, data):
    """PUT one part (curl reads it from stdin); returns (http code, bytes sent, etag, curl's messages)."""
    proc = subprocess.Popen(["curl", "--config", config_path, "--data-binary", "@-", "-X", "PUT", "-H", "Content-Type:",
                             "-o", "/dev/null", "-w", "%{http_code} %{size_upload} %header{etag}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(data)
    fields = out.decode("ascii", "replace").split()
    code = int(fields[0]) if fields and fields[0].isdigit() else 0
    sent = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    etag = fields[2] if len(fields) > 2 and proc.returncode == 0 else ""
    return code, sent, etag, err.decode("utf-8", "replace")


def _read_part(stream, size):
    """The next ``size`` bytes of the archive (fewer at its end; empty when it has ended)."""
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        count = stream.readinto(view[got:])
        if not count:
            break
        got += count
    del view
    del buf[got:]
    return buf


def stream_upload(source, exclude, compressor, part_urls, part_size, work_dir, timeout=60, connections=4, progress=None):
    """Archive ``source`` and upload it, streaming, to presigned UploadPart URLs, ``connections`` parts at a time.

    ``tar | compressor`` runs as two processes; this process cuts their output into parts,
    hashes each part and the whole archive (hashlib, SHA-NI) and hands each part to its own curl.
    Memory: at most ``connections`` + 1 parts. Returns dict(bytes, sha256,
    parts=[{part_number, etag, bytes, sha256}]). Raises StreamError. ``progress`` (a
    module_utils.progress.Progress) is told the bytes S3 has accepted.
    """
    require_tools("curl", "tar", compressor.split()[0])
    connections = max(1, int(connections))
    config_dir = tempfile.mkdtemp(prefix=".upload-", dir=work_dir)  # 0700
    whole = hashlib.sha256()
    done, failures, total = [], [], 0
    slots = threading.BoundedSemaphore(connections)
    lock = threading.Lock()

    def send(number, config_path, data, digest):
        try:
            code, sent, etag, errors = _upload_part(config_path, data)
            with lock:
                if code == 200 and etag and sent == len(data):
                    done.append({"part_number": number, "etag": etag, "bytes": len(data), "sha256": digest})
                    if progress is not None:
                        progress.update(done=sum(part["bytes"] for part in done), state="%d parts accepted" % len(done))
                else:
                    failures.append("part %d: HTTP %d, %d of %d bytes sent%s" % (
                        number, code, sent, len(data), (": " + errors.strip()) if errors.strip() else ""))
        except Exception as exc:  # a part that was not sent must fail the upload, never vanish
            with lock:
                failures.append("part %d: %s: %s" % (number, type(exc).__name__, exc))
        finally:
            slots.release()

    tar_cmd = ["tar", "-C", source] + ["--exclude=" + e for e in exclude] + ["-cf", "-", "."]
    threads, procs, number = [], [], 0
    tar_err = tempfile.TemporaryFile(dir=config_dir)
    comp_err = tempfile.TemporaryFile(dir=config_dir)
    try:
        tar = subprocess.Popen(tar_cmd, stdout=subprocess.PIPE, stderr=tar_err, stdin=subprocess.DEVNULL)
        procs.append(tar)
        comp = subprocess.Popen(shlex.split(compressor), stdin=tar.stdout, stdout=subprocess.PIPE, stderr=comp_err)
        procs.append(comp)
        tar.stdout.close()
        while True:
            data = _read_part(comp.stdout, int(part_size))
            if not data:
                break
            whole.update(data)
            total += len(data)
            if number >= len(part_urls):
                failures.append("the archive needs more than the %d parts of %d bytes that were presigned" % (len(part_urls), part_size))
                break
            slots.acquire()
            with lock:
                if failures:
                    slots.release()
                    break
            config_path = os.path.join(config_dir, "p%05d" % number)
            fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(part_config(part_urls[number], timeout=timeout))
            thread = threading.Thread(target=send, args=(number + 1, config_path, data, hashlib.sha256(data).hexdigest()))
            try:
                thread.start()
            except BaseException:
                slots.release()
                raise
            threads.append(thread)
            number += 1
        if failures:
            comp.kill()
            tar.kill()
        comp.stdout.close()
        codes = [tar.wait(), comp.wait()]
        for thread in threads:
            thread.join()
        if progress is not None:
            progress.update(force=True)
        tar_err.seek(0)
        comp_err.seek(0)
        messages = (tar_err.read() + comp_err.read()).decode("utf-8", "replace")
    finally:
        # On any way out: no archiver left running, no part still being sent when its config goes.
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for thread in threads:
            thread.join()
        tar_err.close()
        comp_err.close()
        shutil.rmtree(config_dir, ignore_errors=True)
    sha256 = whole.hexdigest()
    failures = [redact(f, part_urls) for f in failures]
    if failures and failures[0].startswith("the archive needs more than"):
        raise StreamError(failures[0], "upload", total, sha256)
    if any(codes) and not failures:
        # tar's 1 ("file changed as we read it") fails too: the node is meant to be stopped.
        raise StreamError("archive upload failed (exit codes tar/compressor %s): %s" % (codes, messages.strip()[-2000:]),
                          "upload", total, sha256)
    done.sort(key=lambda part: part["part_number"])
    if failures or not done or [part["part_number"] for part in done] != list(range(1, number + 1)):
        raise StreamError("S3 did not accept every part (%d of %d accepted): %s"
                          % (len(done), number, "; ".join(failures)[-2000:]), "upload", total, sha256)
    return {"bytes": total, "sha256": sha256, "parts": done}
