# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: built on amazon.aws's GPLv3+ module_utils.
"""Small JSON documents in S3 shared by several writers (the signer lease, the snapshot manifest):
read with their ETag, written only if nobody wrote since, through S3's conditional writes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

# 412 PreconditionFailed: the object changed since it was read (or exists already);
# 409 ConditionalRequestConflict: two conditional writes raced on S3's side.
CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def read_document(s3, bucket, key):
    """The object's text and ETag, or (None, None) when it does not exist."""
    try:
        got = s3.get_object(Bucket=bucket, Key=key)
    except is_boto3_error_code(("NoSuchKey", "404")):
        return None, None
    return got["Body"].read().decode("utf-8"), got["ETag"]


def write_if_unchanged(s3, bucket, key, text, etag):
    """Write ``text`` (JSON) only if the object still has ``etag`` (If-Match), or does not exist yet
    when ``etag`` is None (If-None-Match: *). Returns False when another writer got there first."""
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType="application/json", **condition)
    except is_boto3_error_code(CONFLICT_CODES):
        return False
    return True
