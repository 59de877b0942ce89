# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The streaming part of a snapshot restore: bytes -> sha256 -> decompressor -> tar -x.

Kept apart from the module because it has to connect processes with pipes while it reads the
download (module.run_command can only feed a whole buffer to one command): the archive is never
stored, and hashing, decompression and extraction run in parallel in three processes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import queue
import subprocess
import threading

CHUNK = 1 << 20
DECOMPRESSORS = {"zstd": ["zstd", "-d", "-c", "-q"], "lz4": ["lz4", "-d", "-c", "-q"], "none": None}


class StreamError(RuntimeError):
    def __init__(self, message, count, sha256):
        super(StreamError, self).__init__(message)
        self.bytes = count
        self.sha256 = sha256


def tar_command(dest, exclude):
    command = ["tar", "-x", "-f", "-", "-C", dest, "--no-same-owner", "--delay-directory-restore"]
    for path in exclude:
        # Members are "./path" when the archive was made with "tar -C dir .", "path" otherwise.
        command += ["--exclude=" + path, "--exclude=./" + path]
    return command


def stream_extract(reader, compression, dest, exclude=()):
    """Extract the archive read from ``reader`` (has .read(n)) into dest.

    Returns (bytes read, sha256 hex digest). Raises StreamError when the decompressor or tar
    fail on an archive whose bytes arrived (a checksum mismatch is the caller's to judge).
    """
    digest = hashlib.sha256()
    total = 0
    decompressor = DECOMPRESSORS[compression]
    with open(os.devnull, "wb") as devnull:
        tar = None
        if decompressor:
            head = subprocess.Popen(decompressor, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            tar = subprocess.Popen(tar_command(dest, exclude), stdin=head.stdout, stdout=devnull, stderr=subprocess.PIPE)
            head.stdout.close()
            procs = [head, tar]
        else:
            head = tar = subprocess.Popen(tar_command(dest, exclude), stdin=subprocess.PIPE, stdout=devnull, stderr=subprocess.PIPE)
            procs = [tar]
        # A writer thread feeds the pipe while this thread reads and hashes the next chunk; socket
        # reads, sha256 of large buffers and pipe writes all release the GIL, so they overlap.
        chunks = queue.Queue(maxsize=8)
        state = {"broken": False}

        def writer():
            while True:
                chunk = chunks.get()
                if chunk is None:
                    break
                if not state["broken"]:
                    try:
                        head.stdin.write(chunk)
                    except (BrokenPipeError, IOError):
                        # Keep reading and hashing: a corrupt download must be reported as a
                        # checksum mismatch, not as a broken pipe.
                        state["broken"] = True
            try:
                head.stdin.close()
            except (BrokenPipeError, IOError):
                pass

        thread = threading.Thread(target=writer)
        thread.daemon = True
        thread.start()
        try:
            while True:
                chunk = reader.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                total += len(chunk)
                chunks.put(chunk)
        except Exception:
            for proc in procs:
                proc.kill()
            chunks.put(None)
            thread.join()
            for proc in procs:
                proc.wait()
            raise
        chunks.put(None)
        thread.join()
        errors = tar.communicate()[1]
        codes = [proc.wait() for proc in procs]
    if any(codes):
        message = "extraction failed (exit codes %s): %s" % (codes, errors.decode("utf-8", "replace")[-2000:])
        raise StreamError(message, total, digest.hexdigest())
    return total, digest.hexdigest()
