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
version_added: 0.1.0
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
    C(curl | hash | zstd -d --no-check | tar -x) under C(bash -o pipefail), where the hash stage
    is a small Python process that passes the bytes on with C(tee(2)) and hashes them with
    hashlib's SHA-256; the module itself only supervises.
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
  record:
    description:
      - JSON file recording the archive restored last (name, sha256, time; never the URL).
      - A rerun with the same O(sha256) and an existing O(dest) changes nothing.
      - Default C(<parent of dest>/.<name of dest>.snapshot-restore.json).
    type: path
  name:
    description: Archive name, stored in the record.
    type: str
    default: ""
notes:
  - Check mode reports whether a restore would happen and downloads nothing.
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
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chainops.validator.plugins.module_utils.snapshot_archive import (
    SHA256,
    unexpected_data,
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
    result = dict(changed=False, bytes=0, seconds=0.0, throughput_mib_s=0.0, resumed=False, kept=[])

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
        # Anything left by an interrupted or failed run is incomplete: start over.
        if os.path.exists(staging):
            remove(staging)
        os.makedirs(tree, mode=0o750)
        try:
            piped = time.monotonic()
            total, actual = stream_restore(params["url"], params["compression"], tree, keep, params["timeout"])
            result["pipeline_seconds"] = round(time.monotonic() - piped, 3)
        except StreamError as exc:
            result["bytes"] = exc.bytes
            if exc.stage == "extract" and exc.sha256 != expected:
                # Corrupt bytes usually break the decompressor too: the checksum is the real finding.
                remove(staging)
                module.fail_json(msg="checksum mismatch: the archive's sha256 is %s, the manifest says %s; %s was not touched"
                                 % (exc.sha256, expected, dest), **result)
            # The staging directory stays; the next run deletes it and starts over.
            module.fail_json(msg="%s; %s was not touched" % (exc, dest), **result)
        result["bytes"] = total
        if actual != expected:
            remove(staging)
            module.fail_json(msg="checksum mismatch: the archive's sha256 is %s, the manifest says %s; %s was not touched"
                             % (actual, expected, dest), **result)
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
                   "bytes": result["bytes"]}, handle)
    os.rename(record + ".tmp", record)
    remove(staging)
    seconds = time.monotonic() - started
    result.update(changed=True, seconds=round(seconds, 3),
                  throughput_mib_s=round(result["bytes"] / 1048576.0 / seconds, 1) if seconds > 0 else 0.0,
                  msg="restored %s into %s (%d bytes, sha256 verified)" % (params["name"] or expected[:12], dest, result["bytes"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
