#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: this module is built on amazon.aws's GPLv3+
# module_utils, and ansible-test requires the header on modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: snapshot_archive_s3
short_description: The controller's S3 side of snapshot archives (presigned multipart uploads, locked manifest updates)
version_added: 0.2.0
description:
  - Runs where the AWS credentials are (normally the controller, C(delegate_to=localhost)), so the
    node that streams its archive never holds AWS credentials, only presigned URLs for the parts of
    one upload.
  - O(operation=multipart_start) creates a multipart upload and presigns C(UploadPart) URLs for as
    many parts as an archive of the O(data_size) bytes in O(data_files) files can need. Run the task with
    C(no_log=true) - the URLs are credentials.
  - O(operation=multipart_complete) completes the upload from the parts' ETags and tags the object.
    O(operation=multipart_abort) aborts it (the parts are deleted); an upload that is already gone is
    not an error.
  - O(operation=manifest_update) adds an archive to the manifest (keeping the best O(keep) of its
    chain and network) and/or marks one verified, with an optimistic lock - C(If-Match) on the
    manifest's ETag, C(If-None-Match=*) when it does not exist yet - redone on the new manifest when
    another run wrote in between (up to O(attempts) times); then deletes the objects of the
    archives it dropped.
  - O(operation=manifest_read) reads the manifest, the reader both taking and restoring use, and
    returns its archives, validated as a document (a malformed entry is kept, to be rejected with its
    problems when an archive is picked), and whether it exists yet. It changes nothing, in check mode too.
options:
  operation:
    description: What to do.
    type: str
    required: true
    choices: [multipart_start, multipart_complete, multipart_abort, manifest_update, manifest_read]
  bucket:
    description: S3 bucket.
    type: str
    required: true
  key:
    description: Object key of the archive (multipart operations) or of the manifest (O(operation=manifest_update), O(operation=manifest_read)).
    type: str
    required: true
  data_size:
    description:
      - Bytes in the directory to be archived (O(operation=multipart_start), for example C(du -s -b)).
      - With O(data_files) it gives an upper bound of the archive's size (tar headers added,
        compression assumed to gain nothing), which sets the part size and the number of parts.
    type: int
  data_files:
    description: Files and directories in the directory to be archived (for example C(du -s --inodes)).
    type: int
    default: 0
  min_part_size:
    description: Smallest part size in bytes; raised when the archive would need more than 10,000 parts.
    type: int
    default: 67108864
  expiry:
    description: Seconds the presigned part URLs stay valid; must cover the whole upload.
    type: int
    default: 21600
  upload_id:
    description: Upload id from O(operation=multipart_start) (complete and abort).
    type: str
  parts:
    description: Parts uploaded, as returned by M(chainops.validator.snapshot_archive_upload) (complete).
    type: list
    elements: dict
  tags:
    description: Object tags set on the completed archive.
    type: dict
    default: {}
  add:
    description: Manifest entry to add (O(operation=manifest_update)); see docs/snapshots.md for its fields.
    type: dict
  verified:
    description: Name of a listed archive to mark verified (O(operation=manifest_update)).
    type: str
  keep:
    description: Archives kept listed per chain and network when O(add) is given (the best verified one always stays).
    type: int
  attempts:
    description: Read-modify-write attempts before giving up when other runs keep changing the manifest.
    type: int
    default: 10
  delete_pruned:
    description: Delete the objects of archives the update dropped from the manifest.
    type: bool
    default: true
notes:
  - Check mode writes nothing; O(operation=manifest_update) returns the manifest it would write.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Start the upload and presign its parts
  chainops.validator.snapshot_archive_s3:
    operation: multipart_start
    bucket: my-snapshots
    key: chainops/snapshots/litecoin/regtest/a.tar.zst
    data_size: 2147483648
    data_files: 1200
  delegate_to: localhost
  no_log: true
  register: upload

- name: Read the manifest
  chainops.validator.snapshot_archive_s3:
    operation: manifest_read
    bucket: my-snapshots
    key: chainops/snapshots/manifest.json
  delegate_to: localhost
  register: manifest

- name: Add the archive to the manifest (concurrent runs lose nothing)
  chainops.validator.snapshot_archive_s3:
    operation: manifest_update
    bucket: my-snapshots
    key: chainops/snapshots/manifest.json
    add: "{{ entry }}"
    keep: 3
  delegate_to: localhost
"""

RETURN = r"""
upload_id:
  description: Multipart upload id.
  returned: operation is multipart_start, multipart_complete or multipart_abort
  type: str
part_urls:
  description: Presigned C(UploadPart) URLs, part 1 first. Credentials - keep the task C(no_log).
  returned: operation is multipart_start
  type: list
  elements: str
part_size:
  description: Bytes per part (all but the last).
  returned: operation is multipart_start
  type: int
etag:
  description: ETag of the completed object.
  returned: operation is multipart_complete
  type: str
manifest:
  description:
    - The manifest as written (O(operation=manifest_update)) or as read (O(operation=manifest_read),
      with format 1 and no archives when it does not exist yet).
  returned: operation is manifest_update or manifest_read
  type: dict
exists:
  description: Whether the manifest object exists.
  returned: operation is manifest_read
  type: bool
pruned:
  description: Entries dropped from the manifest (their objects deleted when O(delete_pruned=true)).
  returned: operation is manifest_update
  type: list
  elements: dict
attempts:
  description: Read-modify-write attempts the manifest update took (more than 1 when another run wrote in between).
  returned: operation is manifest_update
  type: int
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.chainops.validator.plugins.module_utils.snapshot_archive import (
    ArchiveError,
    manifest_add,
    manifest_mark,
    manifest_pruned,
    parse_manifest,
)
from ansible_collections.chainops.validator.plugins.module_utils.s3_document import read_document, write_if_unchanged
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_stream import upload_bound
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_s3 import (
    ManifestConflict,
    conditional_update,
    multipart_plan,
)

REQUIRED = {
    "multipart_start": ["data_size"],
    "multipart_complete": ["upload_id", "parts"],
    "multipart_abort": ["upload_id"],
}


def multipart_start(module, s3, params):
    try:
        part_size, count = multipart_plan(upload_bound(params["data_size"], params["data_files"]), params["min_part_size"])
    except ValueError as exc:
        module.fail_json(msg="data_size: %s" % exc)
    if module.check_mode:
        module.exit_json(changed=True, upload_id="", part_urls=[], part_size=part_size)
    upload = s3.create_multipart_upload(Bucket=params["bucket"], Key=params["key"])
    urls = [s3.generate_presigned_url("upload_part", ExpiresIn=params["expiry"], Params={
        "Bucket": params["bucket"], "Key": params["key"], "UploadId": upload["UploadId"], "PartNumber": n})
        for n in range(1, count + 1)]
    module.exit_json(changed=True, upload_id=upload["UploadId"], part_urls=urls, part_size=part_size)


def multipart_complete(module, s3, params):
    parts = []
    for part in params["parts"]:
        try:
            parts.append({"PartNumber": int(part["part_number"]), "ETag": str(part["etag"])})
        except (KeyError, TypeError, ValueError):
            module.fail_json(msg="parts: every part needs part_number and etag, got %r" % (part,))
    numbers = [p["PartNumber"] for p in parts]
    if not parts or numbers != list(range(1, len(parts) + 1)):
        module.fail_json(msg="parts: expected parts 1..N in order, got %s" % numbers)
    if module.check_mode:
        module.exit_json(changed=True, upload_id=params["upload_id"], etag="")
    done = s3.complete_multipart_upload(Bucket=params["bucket"], Key=params["key"], UploadId=params["upload_id"],
                                        MultipartUpload={"Parts": parts})
    if params["tags"]:
        s3.put_object_tagging(Bucket=params["bucket"], Key=params["key"], Tagging={
            "TagSet": [{"Key": str(k), "Value": str(v)} for k, v in sorted(params["tags"].items())]})
    module.exit_json(changed=True, upload_id=params["upload_id"], etag=done.get("ETag", ""))


def multipart_abort(module, s3, params):
    if module.check_mode:
        module.exit_json(changed=True, upload_id=params["upload_id"])
    try:
        s3.abort_multipart_upload(Bucket=params["bucket"], Key=params["key"], UploadId=params["upload_id"])
    except is_boto3_error_code("NoSuchUpload"):
        module.exit_json(changed=False, upload_id=params["upload_id"], msg="the upload was already gone")
    module.exit_json(changed=True, upload_id=params["upload_id"])


def manifest_read(module, s3, params):
    text, etag = read_document(s3, params["bucket"], params["key"])
    try:
        archives = parse_manifest(text or "", "manifest s3://%s/%s" % (params["bucket"], params["key"]))
    except ArchiveError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, manifest={"format": 1, "archives": archives}, exists=etag is not None)


def manifest_update(module, s3, params):
    bucket, key = params["bucket"], params["key"]
    if not params["add"] and not params["verified"]:
        module.fail_json(msg="manifest_update needs add, verified or both")
    if params["keep"] is not None and params["keep"] < 1:
        module.fail_json(msg="keep must be at least 1, got %d" % params["keep"])

    def read():
        return read_document(s3, bucket, key)

    def change(text):
        before = {"format": 1, "archives": parse_manifest(text or "")}
        document = before
        if params["add"]:
            document = manifest_add(document, params["add"], params["keep"])
        if params["verified"]:
            document = manifest_mark(document, params["verified"], True)
        return document, manifest_pruned(before, document)

    def write(body, etag):
        # The lock: S3 refuses the write when the manifest is no longer the one read.
        if not module.check_mode and not write_if_unchanged(s3, bucket, key, body, etag):
            raise ManifestConflict("another run wrote the manifest in between")

    try:
        document, pruned, attempts = conditional_update(read, write, change, params["attempts"])
    except (ArchiveError, ValueError) as exc:
        module.fail_json(msg="manifest s3://%s/%s: %s" % (bucket, key, exc))
    except ManifestConflict as exc:
        module.fail_json(msg="manifest s3://%s/%s: %s" % (bucket, key, exc))
    if pruned and params["delete_pruned"] and not module.check_mode:
        keys = [p["key"] for p in pruned if isinstance(p.get("key"), str)]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    module.exit_json(changed=True, manifest=document, pruned=pruned, attempts=attempts)


def main():
    argument_spec = dict(
        operation=dict(type="str", required=True,
                       choices=["multipart_start", "multipart_complete", "multipart_abort", "manifest_update", "manifest_read"]),
        bucket=dict(type="str", required=True),
        key=dict(type="str", required=True, no_log=False),
        data_size=dict(type="int"),
        data_files=dict(type="int", default=0),
        min_part_size=dict(type="int", default=64 * 1024 * 1024),
        expiry=dict(type="int", default=21600),
        upload_id=dict(type="str"),
        parts=dict(type="list", elements="dict"),
        tags=dict(type="dict", default={}),
        add=dict(type="dict"),
        verified=dict(type="str"),
        keep=dict(type="int"),
        attempts=dict(type="int", default=10),
        delete_pruned=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              required_if=[("operation", op, needed) for op, needed in REQUIRED.items()])
    params = module.params
    for name in ("min_part_size", "expiry", "attempts"):
        if params[name] < 1:
            module.fail_json(msg="%s must be a positive number, got %d" % (name, params[name]))
    for name in ("data_size", "data_files"):
        if params[name] is not None and params[name] < 0:
            module.fail_json(msg="%s must not be negative, got %d" % (name, params[name]))
    if params["min_part_size"] < 5 * 1024 * 1024:
        module.fail_json(msg="min_part_size must be at least 5 MiB (S3's smallest part), got %d" % params["min_part_size"])
    s3 = module.client("s3", retry_decorator=AWSRetry.jittered_backoff(retries=10))
    operation = {"multipart_start": multipart_start, "multipart_complete": multipart_complete,
                 "multipart_abort": multipart_abort, "manifest_update": manifest_update, "manifest_read": manifest_read}[params["operation"]]
    try:
        operation(module, s3, params)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="%s on s3://%s/%s failed" % (params["operation"], params["bucket"], params["key"]))


if __name__ == "__main__":
    main()
