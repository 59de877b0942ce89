#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: ansible-test requires the header on modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: snapshot_archive_restore
short_description: Stream a node snapshot archive into a data directory, checksum verified
version_added: 0.2.0
description:
  - Downloads a tar archive (zstd, lz4 or uncompressed) over HTTP(S) and extracts it while it
    downloads, without a temporary copy of the archive; the sha256 of the downloaded bytes is
    computed on the stream and must equal O(sha256).
  - Extraction goes into a staging directory beside O(dest) on the same file system; only a
    complete, verified extraction is renamed into place. A checksum mismatch or an interrupted
    run leaves only the staging directory, which the next run deletes and redoes; a run
    interrupted after a verified extraction finishes the swap without downloading again.
  - Paths in O(keep) (the node's secret files, such as signing state or wallets) are never taken
    from the archive; the existing ones are moved into the restored tree.
  - Refuses to replace a data directory that holds data unless O(force=true).
  - Runs on the node; needs C(curl), C(tar) and C(zstd) or C(lz4) there. The bytes go through
    C(hash | zstd -d --no-check | tar -x) under C(bash -o pipefail), where the hash stage is a
    small Python process that passes the bytes on with C(tee(2)) and hashes them with hashlib's
    SHA-256.
  - The archive is fetched as byte ranges over O(connections) connections (one C(curl) each), one
    range per part of the manifest (O(parts)) or per 64 MiB, and the parts are fed to the pipeline
    in order. Fetched parts are kept in the staging directory until the restore is verified, so an
    interrupted restore fetches only the parts it is missing (see O(resume)).
  - A one-byte range request comes first; a server that ignores byte ranges, or O(connections=0),
    gives one C(curl) stream into the pipeline, without resume. A server whose archive size differs
    from O(size) or the sum of O(parts) is refused before anything is fetched.
  - The URL is never logged and never in a process's arguments (a presigned URL is a credential);
    it reaches C(curl) through its config on standard input.
options:
  url:
    description: HTTP(S) URL of the archive, for example an S3 presigned URL made on the controller.
    type: str
    required: true
  sha256:
    description: Expected sha256 of the archive file (64 hex digits).
    type: str
    required: true
  compression:
    description: Compression of the archive.
    type: str
    choices: [zstd, lz4, none]
    default: zstd
  dest:
    description: The node's data directory.
    type: path
    required: true
  staging_dir:
    description:
      - Where to extract before the swap; must be on the file system of O(dest).
      - Default C(<parent of dest>/.<name of dest>.restore).
    type: path
  keep:
    description: Paths relative to O(dest) that are never taken from the archive and are carried over from the existing O(dest).
    type: list
    elements: str
    default: []
  owner:
    description: Owner of the restored files (kept files keep theirs).
    type: str
  group:
    description: Group of the restored files.
    type: str
  force:
    description: Replace a data directory that holds data.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the connection, and seconds without any data after which the download is abandoned.
    type: int
    default: 60
  size:
    description:
      - Size of the archive in bytes, from the manifest; checked against the size the server reports
        for a one-byte range request.
    type: int
  parts:
    description:
      - The archive's parts from the manifest, in order, each fetched as one byte range.
      - When one part's bytes are bad, only that part is fetched again by the next run.
      - When empty, the archive is fetched in ranges of 64 MiB, and a checksum mismatch discards every part.
    type: list
    elements: dict
    default: []
    suboptions:
      size:
        description: Bytes in the part.
        type: int
        required: true
      sha256:
        description: sha256 of the part's bytes.
        type: str
        required: true
  connections:
    description:
      - Byte ranges fetched at the same time. One S3 connection gives about 90 MB/s; several fill the
        instance's bandwidth until the decompressor, tar or the disk is the limit.
      - V(0) fetches the archive as a single stream, without resume.
    type: int
    default: 8
  resume:
    description:
      - Keep the fetched parts until the restore is verified, so that an interrupted restore
        fetches only the missing parts. Needs free space for the archive in the staging directory;
        where the file system has less free space than the parts still to fetch plus twice the
        archive (for the extracted data), the module warns and deletes each part once extracted.
      - V(false) deletes each part once it is extracted; the staging directory then holds about
        2 x O(connections) parts at a time, and an interrupted restore fetches again what it had extracted.
    type: bool
    default: true
  record:
    description:
      - JSON file recording the archive restored last (name, sha256, time, bytes, bytes fetched, parts; never the URL).
      - A rerun with the same O(sha256) and an existing O(dest) changes nothing.
      - Default C(<parent of dest>/.<name of dest>.snapshot-restore.json).
    type: path
  name:
    description: Archive name, stored in the record.
    type: str
    default: ""
notes:
  - Check mode reports whether a restore would happen and downloads nothing.
extends_documentation_fragment:
  - chainops.validator.progress
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Restore the node's data from an archive
  chainops.validator.snapshot_archive_restore:
    url: "{{ presigned.url }}"
    sha256: "{{ archive.sha256 }}"
    compression: zstd
    dest: /data/litecoind
    keep: [regtest/wallets]
    owner: litecoind
    group: litecoind
"""

RETURN = r"""
bytes:
  description: Archive bytes downloaded (0 when nothing was downloaded).
  returned: always
  type: int
seconds:
  description: Wall time of the whole restore (download and extraction, fsync of the marker, swap, ownership).
  returned: always
  type: float
pipeline_seconds:
  description: Wall time of the download, checksum, decompression and extraction pipeline alone.
  returned: when something was downloaded
  type: float
fetched_bytes:
  description: Bytes fetched from the server by this run (less than O(size) when parts of an interrupted run were reused).
  returned: always
  type: int
reused_parts:
  description: Parts of an interrupted run that were reused instead of fetched.
  returned: always
  type: int
parts:
  description: Parts the archive was fetched in (0 for a single stream).
  returned: always
  type: int
throughput_mib_s:
  description: Archive MiB per second through download, checksum, decompression and extraction.
  returned: always
  type: float
resumed:
  description: True when a verified extraction from an interrupted run was reused.
  returned: always
  type: bool
kept:
  description: Paths of O(keep) carried over from the previous data directory.
  returned: always
  type: list
  elements: str
msg:
  description: What happened.
  returned: always
  type: str
"""

import grp
import json
import os
import pwd
import shutil
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chainops.validator.plugins.module_utils.progress import Progress, progress_argument_spec
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_archive import (
    SHA256,
    unexpected_data,
)
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_fetch import (
    PartStore,
    RangedFetch,
    plan_parts,
    probe_size,
)
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_stream import (
    StreamError,
    stream_restore,
)

MARKER = ".complete"


def listing(root):
    out = []
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(base, name), root))
    return out


def remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def chown_tree(root, uid, gid, skip):
    skip_abs = [os.path.join(root, s) for s in skip]
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(base, d) not in skip_abs]
        os.lchown(base, uid, gid)
        for name in files:
            path = os.path.join(base, name)
            if path not in skip_abs:
                os.lchown(path, uid, gid)


def keep_parts(module, store, size, resume):
    """Keep the parts for a resume only where they fit beside the extracted data (taken as twice the archive)."""
    if not resume:
        return False
    missing = sum(part.size for part in store.plan if not store.have(part))
    stat = os.statvfs(store.root)
    free = stat.f_bavail * stat.f_frsize
    if free >= missing + 2 * size:
        return True
    module.warn("%d bytes free beside the data directory, less than the parts still to fetch (%d) and twice the archive "
                "(%d) for the extracted data: each part is deleted once extracted, so an interrupted restore starts over"
                % (free, missing, 2 * size))
    return False


def report_parts(fetch, progress):
    """Report a ranged download's bytes on disk every second until the returned event is set."""
    stop = threading.Event()
    parts = len(fetch.store.plan)

    def run():
        while not stop.wait(1.0):
            done, fed = fetch.progress()
            progress.update(done=done, state="%d of %d parts extracted" % (fed, parts), force=True)

    thread = threading.Thread(target=run)
    thread.daemon = True
    thread.start()
    return stop


def mismatch(module, fetch, staging, actual, expected, dest, result):
    """Fail on a checksum mismatch; keep only the parts that are proven good."""
    message = "checksum mismatch: the archive's sha256 is %s, the manifest says %s; %s was not touched" % (actual, expected, dest)
    bad = fetch.store.bad_parts() if fetch else []
    if bad:
        for part in bad:
            fetch.store.drop(part)
        remove(os.path.join(staging, "tree"))
        message += "; parts %s did not match their sha256 and were deleted, the next run fetches only them" % (
            ", ".join(str(part.index) for part in bad))
    else:
        remove(staging)
    module.fail_json(msg=message, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True, no_log=True),
            sha256=dict(type="str", required=True),
            compression=dict(type="str", choices=["zstd", "lz4", "none"], default="zstd"),
            dest=dict(type="path", required=True),
            staging_dir=dict(type="path"),
            keep=dict(type="list", elements="str", default=[], no_log=False),
            owner=dict(type="str"),
            group=dict(type="str"),
            force=dict(type="bool", default=False),
            timeout=dict(type="int", default=60),
            record=dict(type="path"),
            name=dict(type="str", default=""),
            size=dict(type="int"),
            parts=dict(type="list", elements="dict", default=[], options=dict(
                size=dict(type="int", required=True),
                sha256=dict(type="str", required=True),
            )),
            connections=dict(type="int", default=8),
            resume=dict(type="bool", default=True),
            **progress_argument_spec()
        ),
        supports_check_mode=True,
    )
    params = module.params
    expected = params["sha256"].lower()
    if expected.startswith("sha256:"):
        expected = expected[7:]
    if not SHA256.match(expected):
        module.fail_json(msg="sha256 must be 64 hex digits, got %r" % params["sha256"])
    dest = params["dest"].rstrip("/")
    parent, base = os.path.dirname(dest), os.path.basename(dest)
    staging = params["staging_dir"] or os.path.join(parent, "." + base + ".restore")
    record = params["record"] or os.path.join(parent, "." + base + ".snapshot-restore.json")
    keep = [k.strip("/") for k in params["keep"] if k.strip("/")]
    if any(k.startswith("../") or k == ".." or os.path.isabs(k) for k in params["keep"]):
        module.fail_json(msg="keep: paths must be relative to dest and inside it")
    if params["connections"] < 0:
        module.fail_json(msg="connections must be 0 (one stream) or more, got %d" % params["connections"])
    if params["size"] is not None and params["size"] < 1:
        module.fail_json(msg="size must be a positive number of bytes, got %d" % params["size"])
    try:
        if params["parts"]:
            plan_parts(params["size"], params["parts"])
    except ValueError as exc:
        module.fail_json(msg="parts: %s" % exc)
    result = dict(changed=False, bytes=0, seconds=0.0, throughput_mib_s=0.0, resumed=False, kept=[],
                  fetched_bytes=0, reused_parts=0, parts=0)

    uid = gid = None
    try:
        if params["owner"]:
            uid = pwd.getpwnam(params["owner"]).pw_uid
        if params["group"]:
            gid = grp.getgrnam(params["group"]).gr_gid
    except KeyError as exc:
        module.fail_json(msg="owner/group does not exist on the host: %s" % exc)

    previous = {}
    if os.path.exists(record):
        try:
            with open(record) as handle:
                previous = json.load(handle)
        except (OSError, ValueError):
            previous = {}
    if previous.get("sha256") == expected and os.path.isdir(dest) and not os.path.exists(staging):
        module.exit_json(msg="%s already holds archive %s" % (dest, previous.get("name") or expected[:12]), **result)

    tree, old, marker = os.path.join(staging, "tree"), os.path.join(staging, "old"), os.path.join(staging, MARKER)
    resumable = False
    if os.path.isfile(marker):
        with open(marker) as handle:
            resumable = handle.read().strip() == expected
    if resumable and not os.path.isdir(tree):
        # Interrupted after the swap: only the clean-up is left.
        if not module.check_mode:
            remove(staging)
        result.update(changed=True, resumed=True, msg="finished the clean-up of an interrupted restore of %s" % dest)
        module.exit_json(**result)

    data = unexpected_data(listing(dest), keep) if os.path.isdir(dest) else []
    if data and not params["force"]:
        module.fail_json(msg="%s holds node data (%s%s); refusing to replace it without force"
                         % (dest, ", ".join(data[:5]), ", ..." if len(data) > 5 else ""), **result)
    if module.check_mode:
        result.update(changed=True, msg="would restore %s into %s" % (params["name"] or expected[:12], dest))
        module.exit_json(**result)

    started = time.monotonic()
    if resumable:
        result["resumed"] = True
    else:
        # Anything left by an interrupted or failed run is incomplete and is redone, except the
        # fetched parts: the plan decides which of them are reused.
        parts_dir = os.path.join(staging, "parts")
        if os.path.isdir(staging):
            for entry in os.listdir(staging):
                if entry != "parts":
                    remove(os.path.join(staging, entry))
        elif os.path.lexists(staging):
            remove(staging)
        os.makedirs(tree, mode=0o750)
        fetch = None
        try:
            piped = time.monotonic()
            size = None
            if params["connections"] > 0:
                # One small request first: does the server answer byte ranges, and how big is the archive?
                size = probe_size(params["url"], params["timeout"])
                listed = params["size"] or (sum(part["size"] for part in params["parts"]) if params["parts"] else None)
                if size is not None and listed is not None and size != listed:
                    raise ValueError("the server's archive has %d bytes, the manifest says %d" % (size, listed))
            if size:
                store = PartStore(parts_dir, expected, plan_parts(size, params["parts"]))
                fetch = RangedFetch(params["url"], store, params["connections"], params["timeout"],
                                    keep_parts=keep_parts(module, store, size, params["resume"]))
                result.update(parts=len(store.plan), reused_parts=fetch.reused_parts)
            progress = Progress(params["progress_file"], "restore of %s" % (params["name"] or expected[:12]),
                                total=size or params["size"] or (sum(part["size"] for part in params["parts"]) if params["parts"] else None))
            reporter = report_parts(fetch, progress) if fetch and params["progress_file"] else None
            try:
                total, actual = stream_restore(params["url"], params["compression"], tree, keep, params["timeout"],
                                               feed=fetch.feed if fetch else None, progress=progress)
            finally:
                if reporter:
                    reporter.set()
            result["pipeline_seconds"] = round(time.monotonic() - piped, 3)
        except StreamError as exc:
            result["bytes"] = exc.bytes
            result["fetched_bytes"] = fetch.fetched_bytes if fetch else exc.bytes
            if exc.stage == "extract" and exc.sha256 != expected:
                # Corrupt bytes usually break the decompressor too: the checksum is the real finding.
                mismatch(module, fetch, staging, exc.sha256, expected, dest, result)
            # The staging directory stays (with the fetched parts): the next run goes on from there.
            module.fail_json(msg="%s; %s was not touched" % (exc, dest), **result)
        except ValueError as exc:
            module.fail_json(msg="%s; %s was not touched" % (exc, dest), **result)
        result["bytes"] = total
        result["fetched_bytes"] = fetch.fetched_bytes if fetch else total
        if actual != expected:
            mismatch(module, fetch, staging, actual, expected, dest, result)
        with open(marker, "w") as handle:
            handle.write(expected + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    # Swap. Each step is a rename on one file system and can be redone after an interruption.
    if os.path.isdir(dest) and not os.path.exists(old):
        os.rename(dest, old)
    for path in keep:
        source, target = os.path.join(old, path), os.path.join(tree, path)
        if os.path.lexists(source):
            if os.path.lexists(target):
                remove(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(source, target)
            result["kept"].append(path)
    if uid is not None or gid is not None:
        chown_tree(tree, -1 if uid is None else uid, -1 if gid is None else gid, result["kept"])
    os.chmod(tree, 0o750)
    os.rename(tree, dest)
    with open(record + ".tmp", "w") as handle:
        json.dump({"name": params["name"], "sha256": expected, "restored": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "bytes": result["bytes"], "fetched_bytes": result["fetched_bytes"], "parts": result["parts"]}, handle)
    os.rename(record + ".tmp", record)
    remove(staging)  # with the parts: the restore is verified and in place
    seconds = time.monotonic() - started
    result.update(changed=True, seconds=round(seconds, 3),
                  throughput_mib_s=round(result["bytes"] / 1048576.0 / seconds, 1) if seconds > 0 else 0.0,
                  msg="restored %s into %s (%d bytes, sha256 verified)" % (params["name"] or expected[:12], dest, result["bytes"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
