"""The manifest's optimistic lock (module_utils.snapshot_s3) against a real moto_server.

moto 5.2 honours If-Match and If-None-Match on PutObject (412 PreconditionFailed). The first test
is deterministic: a competing writer changes the manifest between this run's read and write. The
playbook-level concurrent run is in tests/integration/test_snapshot_s3_upload.py.
"""
from __future__ import annotations

import json
import threading

import boto3
import pytest

from ansible_collections.chainops.validator.plugins.module_utils.snapshot_archive import manifest_add, parse_manifest
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_s3 import (
    ManifestConflict,
    conditional_update,
    multipart_plan,
)
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_stream import (
    curl_quote,
    part_size_for,
    redact,
    upload_bound,
)

BUCKET = "chainops-lock-test"
MANIFEST = "snapshots/manifest.json"


def entry(name, height):
    return {"name": name, "chain": "litecoin", "network": "regtest", "client": "litecoind", "client_version": "1",
            "height": height, "created": "2026-11-22T14:30:00Z", "sha256": "a" * 64, "size": 10, "compression": "zstd",
            "key": "snapshots/%s.tar.zst" % name}


def test_multipart_plan_respects_s3_limits():
    assert multipart_plan(1, 64 << 20) == (64 << 20, 1)
    assert multipart_plan(200 << 20, 64 << 20) == (64 << 20, 4)
    # 2 TiB: 64 MiB parts would be 32768 parts; the part size grows to stay within 10,000.
    size, count = multipart_plan(2 << 40, 64 << 20)
    assert count <= 10000 and size * count >= 2 << 40 and size % (1 << 20) == 0
    assert part_size_for(10, 1) == 5 << 20
    # The bound covers incompressible data plus tar's headers.
    assert upload_bound(100 << 20, 1000) > (100 << 20) + 1000 * 1024


def test_curl_config_quoting_and_redaction():
    assert curl_quote(r'http://h/a?b="c"\d') == r'"http://h/a?b=\"c\"\\d"'
    with pytest.raises(ValueError):
        curl_quote("http://h/\nx")
    text = "curl: (6) Could not resolve host: https://h.example/k?X-Amz-Signature=abc&X-Amz-Credential=def"
    assert "abc" not in redact(text, []) and "def" not in redact(text, [])
    assert redact("failed http://h/x?sig=1", ["http://h/x?sig=1"]) == "failed <url>"


def test_lock_retries_on_the_new_manifest_when_another_run_wrote_in_between(s3, aws_env, tmp_path, monkeypatch):
    """Deterministic: between this run's read and write, another writer changes the manifest."""
    s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=json.dumps({"format": 1, "archives": [entry("first", 1)]}).encode())
    reads = []

    def read():
        got = s3.get_object(Bucket=BUCKET, Key=MANIFEST)
        reads.append(got["ETag"])
        if len(reads) == 1:
            # The competing run: adds "theirs" after our read, unconditionally as an old run would.
            document = json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
            document["archives"].append(entry("theirs", 2))
            s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=json.dumps(document).encode())
        return got["Body"].read().decode(), got["ETag"]

    def write(body, etag):
        try:
            s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=body.encode(), IfMatch=etag)
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] == "PreconditionFailed":
                raise ManifestConflict(str(exc))
            raise

    def change(text):
        return manifest_add({"format": 1, "archives": parse_manifest(text)}, entry("ours", 3)), None

    _document, _extra, attempts = conditional_update(read, write, change, attempts=3, sleep=lambda s: None)
    assert attempts == 2 and len(reads) == 2 and reads[0] != reads[1]
    names = sorted(a["name"] for a in json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())["archives"])
    assert names == ["first", "ours", "theirs"]

    # Creation is locked too: If-None-Match=* loses to a manifest created meanwhile.
    s3.delete_object(Bucket=BUCKET, Key=MANIFEST)
    s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=b'{"format": 1, "archives": []}', IfNoneMatch="*")
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=b'{"format": 1, "archives": []}', IfNoneMatch="*")

    # Giving up is reported, not hidden.
    def always_conflict(body, etag):
        raise ManifestConflict("412")
    with pytest.raises(ManifestConflict, match="3 attempts"):
        conditional_update(read, always_conflict, change, attempts=3, sleep=lambda s: None)


def test_parallel_threads_against_moto_lose_nothing(s3, aws_env):
    """Eight writers in threads, real HTTP to moto, each adding its own entry."""
    def writer(name, attempts_used):
        client = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")

        def read():
            try:
                got = client.get_object(Bucket=BUCKET, Key=MANIFEST)
            except client.exceptions.NoSuchKey:
                return None, None
            return got["Body"].read().decode(), got["ETag"]

        def write(body, etag):
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                client.put_object(Bucket=BUCKET, Key=MANIFEST, Body=body.encode(), **condition)
            except client.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise ManifestConflict(str(exc))
                raise

        def change(text):
            return manifest_add({"format": 1, "archives": parse_manifest(text or "")}, entry(name, 1)), None

        attempts_used[name] = conditional_update(read, write, change, attempts=50, backoff=0.01)[2]

    used = {}
    threads = [threading.Thread(target=writer, args=("w%d" % n, used)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = sorted(a["name"] for a in json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())["archives"])
    assert names == sorted("w%d" % n for n in range(8)), used
    print("attempts per writer:", used)
