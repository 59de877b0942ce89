# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The streaming parts of snapshot archives, as all-C pipelines that Python only supervises.

Restore: ``curl | python3 -c HASHER | zstd -d --no-check | tar -x``.
Upload:  ``tar -c | zstd | tee >(openssl dgst -sha256) | split --filter='curl -T presigned part'``.

An earlier version read the download in Python and fed the decompressor, and reached only
0.56-0.74 of raw ``zstd -d | tar -x``. The restore's hash stage (HASHER) is a small Python process
that never writes the archive: tee(2) hands the decompressor the pipe's pages without a copy, and
the one read that hashing needs goes to OpenSSL's SHA-256 (hashlib, SHA-NI). It replaced
``tee | openssl dgst``, whose 8 KiB reads and writes copied every byte four times (see
docs/snapshots.md for the measurements). The upload still hashes with ``openssl dgst``, not
``sha256sum``: Debian's coreutils hash without SHA-NI, about 170 MB/s here against 1 GB/s.

Presigned URLs are credentials: they reach curl through its config (stdin or a 0600 file), never
its argv (visible in /proc) or an error message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

# zstd --no-check: the sha256 of the whole archive, checked before anything is moved into place,
# already proves integrity; zstd's own xxhash64 of the output would be a second, weaker check.
DECOMPRESSORS = {"zstd": "zstd -d -c -q --no-check", "lz4": "lz4 -d -c -q", "none": None}
# A byte count curl reports on its stderr, so that the archive's bytes need no extra copy (wc).
BYTES_TAG = "chainops-bytes"
HASH = "openssl dgst -sha256 -r"
SHA_LINE = re.compile(r"^([0-9a-f]{64})\b")
# The restore's hash stage: stdin (curl) to stdout (the decompressor), the sha256 hex to fd argv[1].
# tee(2) duplicates the pipe's pages into stdout without copying them; the read that follows
# consumes exactly those bytes for hashing. Both pipes are raised to 1 MiB (F_SETPIPE_SZ) so that
# each stage moves big chunks. When tee(2) cannot be used (not two pipes, no tee in libc) it falls
# back to read and write. When the decompressor has died (EPIPE) hashing goes on to the end, so
# that corrupt bytes are reported as a checksum mismatch; the decompressor's exit code reports it.
HASHER = r"""
import ctypes, errno, fcntl, hashlib, os, sys
SIZE = 1 << 20
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
    if out and not tee:
        try:
            done = 0
            while done < got:
                done += os.write(1, view[done:got])
        except BrokenPipeError:
            out = False
os.write(int(sys.argv[1]), (digest.hexdigest() + "\n").encode())
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


def restore_script(compression, dest, exclude, hash_fd):
    """The bash pipeline of a restore. stdin carries curl's config (the URL); stdout gets PIPESTATUS."""
    stages = ["curl --config - %d>&-" % hash_fd,
              "%s -c %s %d" % (shlex.quote(sys.executable or "python3"), shlex.quote(HASHER), hash_fd)]
    if DECOMPRESSORS[compression]:
        stages.append("%s %d>&-" % (DECOMPRESSORS[compression], hash_fd))
    stages.append("%s >/dev/null %d>&-" % (" ".join(shlex.quote(a) for a in tar_extract_command(dest, exclude)), hash_fd))
    return "set -o pipefail\n%s\necho \"${PIPESTATUS[*]}\"\n" % " | ".join(stages)


def restore_config(url, timeout):
    # --speed-time/--speed-limit: give up after `timeout` seconds without data, like a socket timeout.
    return "\n".join([
        "url = %s" % curl_quote(url),
        "fail", "silent", "show-error", "location",
        'proto = "=http,https"',
        "connect-timeout = %d" % timeout,
        "speed-limit = 1", "speed-time = %d" % timeout,
        'write-out = "%%{stderr}%s %%{size_download}\\n"' % BYTES_TAG,
    ]) + "\n"


def _bytes_from(stderr):
    found = re.findall(r"^%s (\d+)$" % BYTES_TAG, stderr, re.M)
    rest = "\n".join(line for line in stderr.splitlines() if not line.startswith(BYTES_TAG))
    return (int(found[-1]) if found else 0), rest


def stream_restore(url, compression, dest, exclude=(), timeout=60):
    """Download url and extract it into dest. Returns (bytes, sha256 hex).

    Raises StreamError: stage ``download`` when curl failed (partial data may be in dest), stage
    ``extract`` when the bytes arrived but the decompressor or tar failed; both carry the sha256 of
    what arrived so that the caller can call a complete but corrupt download a checksum mismatch.
    """
    for tool in ("curl", "tar") + ((DECOMPRESSORS[compression].split()[0],) if DECOMPRESSORS[compression] else ()):
        if not shutil.which(tool):
            raise StreamError("%s is needed on the host and was not found" % tool, "setup")
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(["bash", "-c", restore_script(compression, dest, exclude, write_fd)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(write_fd,))
    except Exception:
        os.close(read_fd)
        os.close(write_fd)
        raise
    os.close(write_fd)
    stdout, stderr = proc.communicate(restore_config(url, timeout).encode())
    # The hash stage wrote its line and exited before bash printed PIPESTATUS.
    sha256 = _digest(_read_all(read_fd))
    total, errors = _bytes_from(stderr.decode("utf-8", "replace"))
    errors = redact(errors, [url])[-2000:]
    stages = 4 if DECOMPRESSORS[compression] else 3
    codes = _codes(stdout.decode(), stages)
    if codes[0] != 0:
        raise StreamError("download of the archive failed (curl exit %d): %s" % (codes[0], errors.strip()), "download", total, sha256)
    if sha256 is None:
        raise StreamError("hashing the download failed: %s" % errors.strip(), "checksum", total, None)
    if any(codes) or proc.returncode:
        raise StreamError("extraction failed (exit codes curl/hash/%star %s): %s"
                          % ("decompressor/" if stages == 4 else "", codes, errors.strip()), "extract", total, sha256)
    return total, sha256


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


def upload_script(source, exclude, compressor, part_size, config_dir, hash_fd):
    """The bash pipeline of an upload. Prints one line per part (from curl), then PIPESTATUS.

    Each part is buffered in memory by curl (``--data-binary @-``) because S3 needs a
    Content-Length on UploadPart and refuses chunked transfer encoding; the archive never touches
    the disk. The part's presigned URL is in ``config_dir/<part file name>`` (0600).
    """
    tar = ["tar", "-C", source] + ["--exclude=" + e for e in exclude] + ["-cf", "-", "."]
    # Inside the filter $FILE is split's name for the part: p00000, p00001, ...
    curl = ("test -f %(dir)s/\"$FILE\" || { echo \"chainops: no presigned URL for part $FILE\" >&2; exit 90; }; "
            "exec curl --config %(dir)s/\"$FILE\" --data-binary @- -X PUT -H 'Content-Type:' -o /dev/null "
            "-w \"$FILE %%{http_code} %%{size_upload} %%header{etag}\\n\"" % {"dir": shlex.quote(config_dir)})
    stages = [" ".join(shlex.quote(a) for a in tar) + " %d>&-" % hash_fd,
              compressor + " %d>&-" % hash_fd,
              "tee >(exec %s >&%d) %d>&-" % (HASH, hash_fd, hash_fd),
              "split -b %d -d -a 5 --filter=%s - p %d>&-" % (int(part_size), shlex.quote(curl), hash_fd)]
    return "set -o pipefail\n%s\necho \"status ${PIPESTATUS[*]}\"\n" % " | ".join(stages)


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


def parse_parts(stdout):
    """Parts uploaded (from curl's write-out lines), and the pipeline's exit codes."""
    parts, codes = [], []
    for line in stdout.splitlines():
        fields = line.split()
        if fields[:1] == ["status"]:
            codes = [int(c) for c in fields[1:]]
        elif len(fields) >= 3 and re.match(r"^p\d{5}$", fields[0]):
            etag = fields[3] if len(fields) > 3 else ""
            parts.append({"part_number": int(fields[0][1:]) + 1, "http_code": int(fields[1]),
                          "bytes": int(fields[2]), "etag": etag})
    return sorted(parts, key=lambda p: p["part_number"]), codes


def stream_upload(source, exclude, compressor, part_urls, part_size, work_dir, timeout=60):
    """Archive ``source`` and upload it, streaming, to presigned UploadPart URLs.

    Returns dict(bytes, sha256, parts=[{part_number, etag, bytes}]). Raises StreamError.
    """
    for tool in ("curl", "openssl", "tar", "split", compressor.split()[0]):
        if not shutil.which(tool):
            raise StreamError("%s is needed on the host and was not found" % tool, "setup")
    config_dir = tempfile.mkdtemp(prefix=".upload-", dir=work_dir)  # 0700
    try:
        for index, url in enumerate(part_urls):
            path = os.path.join(config_dir, "p%05d" % index)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(part_config(url, timeout=timeout))
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(["bash", "-c", upload_script(source, exclude, compressor, part_size, config_dir, write_fd)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(write_fd,), cwd=config_dir)
        except Exception:
            os.close(read_fd)
            os.close(write_fd)
            raise
        os.close(write_fd)
        stdout, stderr = proc.communicate()
        sha256 = _digest(_read_all(read_fd))
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
    parts, codes = parse_parts(stdout.decode("utf-8", "replace"))
    errors = redact(stderr.decode("utf-8", "replace"), part_urls)[-2000:].strip()
    total = sum(p["bytes"] for p in parts)
    if "chainops: no presigned URL for part" in errors:
        raise StreamError("the archive needs more than the %d parts of %d bytes that were presigned: %s"
                          % (len(part_urls), part_size, errors), "upload", total, sha256)
    if len(codes) != 4 or any(codes) or proc.returncode:
        # tar's 1 ("file changed as we read it") fails too: the node is meant to be stopped.
        raise StreamError("archive upload failed (exit codes tar/compressor/tee/split %s): %s" % (codes, errors), "upload", total, sha256)
    bad = [p for p in parts if p["http_code"] != 200 or not p["etag"]]
    if bad or not parts:
        raise StreamError("S3 did not accept every part: %s %s" % (bad, errors), "upload", total, sha256)
    if sha256 is None:
        raise StreamError("hashing the archive failed: %s" % errors, "checksum", total, None)
    return {"bytes": total, "sha256": sha256, "parts": [{"part_number": p["part_number"], "etag": p["etag"], "bytes": p["bytes"]} for p in parts]}
