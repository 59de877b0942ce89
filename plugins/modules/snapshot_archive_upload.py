#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: ansible-test requires the header on modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: snapshot_archive_upload
short_description: Stream a node's data directory as a compressed archive to presigned S3 multipart URLs
version_added: 0.2.0
description:
  - Runs on the node. C(tar -c | zstd) runs as two processes; the module cuts their output into
    parts of O(part_size) bytes, hashes each part and the whole archive, and sends each part to
    its presigned C(UploadPart) URL with its own C(curl), O(connections) parts at a time. The
    archive is never written to disk.
  - The node holds no AWS credentials, only the presigned URLs of one upload, made by
    M(chainops.validator.snapshot_archive_s3) on the controller. They reach C(curl) through config
    files (mode 0600, in a 0700 directory under O(work_dir), removed at the end), never its
    arguments, and are never logged.
  - Returns the parts' ETags for the controller to complete the upload, the archive's size and
    sha256, and each part's size and sha256 for the manifest (RV(manifest_parts)), so that a
    restore can fetch the parts in parallel and fetch again only a bad or missing one.
  - Each part is held in memory while it is sent (S3 needs a C(Content-Length) on every part), so
    the host needs about 2 x (O(connections) + 1) x O(part_size) of free memory; C(curl) retries a failed part.
options:
  src:
    description: Directory to archive (the node's data directory).
    type: path
    required: true
  exclude:
    description: C(tar --exclude) patterns, relative to O(src) (secret and run-time files).
    type: list
    elements: str
    default: []
  compression:
    description: Compressor.
    type: str
    choices: [zstd, lz4]
    default: zstd
  zstd_level:
    description: zstd compression level.
    type: int
    default: 3
  part_urls:
    description: Presigned UploadPart URLs, part 1 first.
    type: list
    elements: str
    required: true
  part_size:
    description: Bytes per part (at least 5 MiB, S3's smallest part); the same as the controller planned.
    type: int
    required: true
  work_dir:
    description: Directory for the short-lived curl config files (created 0700 if missing).
    type: path
    required: true
  timeout:
    description: Seconds to wait for a connection, and seconds without progress after which a part is retried.
    type: int
    default: 60
  connections:
    description: Parts sent at the same time (one S3 connection carries about 90 MB/s).
    type: int
    default: 4
notes:
  - Check mode is not supported (the task is skipped); an upload has no dry run.
extends_documentation_fragment:
  - chainops.validator.progress
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Stream the data directory to S3
  chainops.validator.snapshot_archive_upload:
    src: /data/litecoind
    exclude: [regtest/wallets, .lock, "*.pid", .cookie, debug.log]
    part_urls: "{{ upload.part_urls }}"
    part_size: "{{ upload.part_size }}"
    work_dir: /data/.chainops-snapshot
  no_log: true
  register: uploaded
"""

RETURN = r"""
bytes:
  description: Size of the archive in bytes.
  returned: success
  type: int
sha256:
  description: sha256 of the archive.
  returned: success
  type: str
parts:
  description: Uploaded parts, for the controller's CompleteMultipartUpload.
  returned: success
  type: list
  elements: dict
  contains:
    part_number:
      description: Part number, from 1.
      type: int
    etag:
      description: ETag S3 returned for the part.
      type: str
    bytes:
      description: Bytes in the part.
      type: int
    sha256:
      description: sha256 of the part.
      type: str
manifest_parts:
  description: The parts as the manifest lists them, in order (C(size), C(sha256)).
  returned: success
  type: list
  elements: dict
seconds:
  description: Wall time of the upload.
  returned: success
  type: float
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chainops.validator.plugins.module_utils.progress import Progress, progress_argument_spec
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_stream import (
    MIN_PART,
    StreamError,
    stream_upload,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            exclude=dict(type="list", elements="str", default=[]),
            compression=dict(type="str", choices=["zstd", "lz4"], default="zstd"),
            zstd_level=dict(type="int", default=3),
            part_urls=dict(type="list", elements="str", required=True, no_log=True),
            part_size=dict(type="int", required=True),
            work_dir=dict(type="path", required=True),
            timeout=dict(type="int", default=60),
            connections=dict(type="int", default=4),
            **progress_argument_spec()
        ),
        supports_check_mode=False,
    )
    params = module.params
    if not os.path.isdir(params["src"]):
        module.fail_json(msg="src: %s is not a directory" % params["src"])
    if not params["part_urls"]:
        module.fail_json(msg="part_urls: at least one presigned URL is needed")
    if params["part_size"] < MIN_PART:
        module.fail_json(msg="part_size must be at least %d bytes (S3's smallest part), got %d" % (MIN_PART, params["part_size"]))
    if not 1 <= params["zstd_level"] <= 19:
        module.fail_json(msg="zstd_level must be 1..19, got %d" % params["zstd_level"])
    if not 1 <= params["connections"] <= 64:
        module.fail_json(msg="connections must be 1..64, got %d" % params["connections"])
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, got %d" % params["timeout"])
    if not os.path.isdir(params["work_dir"]):
        os.makedirs(params["work_dir"], mode=0o700)
    compressor = "zstd -q -T0 -%d -c" % params["zstd_level"] if params["compression"] == "zstd" else "lz4 -q -z -c"
    started = time.monotonic()
    try:
        progress = Progress(params["progress_file"], "archive upload of %s" % params["src"])
        result = stream_upload(params["src"], params["exclude"], compressor, params["part_urls"], params["part_size"],
                               params["work_dir"], params["timeout"], params["connections"], progress=progress)
    except StreamError as exc:
        module.fail_json(msg=str(exc), stage=exc.stage, bytes=exc.bytes)
    result["manifest_parts"] = [{"size": part["bytes"], "sha256": part["sha256"]} for part in result["parts"]]
    module.exit_json(changed=True, seconds=round(time.monotonic() - started, 3), **result)


if __name__ == "__main__":
    main()
