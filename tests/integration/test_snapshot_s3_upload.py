"""Streamed archive upload and the manifest's lock, against a real moto_server.

snapshot_archive_s3 (controller: multipart start/complete/abort, presigned parts, manifest update
with If-Match / If-None-Match) and snapshot_archive_upload (host: tar | zstd cut into parts, each
hashed and sent by its own curl, several at a time) run through ansible-playbook on the controller,
then snapshot_archive_restore fetches the archive back in parallel parts; with real tar, zstd, curl and
moto_server over HTTP. moto 5.2 accepts presigned UploadPart URLs and honours If-Match and
If-None-Match on PutObject (412 PreconditionFailed), which is what the lock needs; it does not check
signatures or expiry.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from chainops_testlib import RECAP  # tests/testlib, put on sys.path by tests/conftest.py
from playbook_runner import ansible_playbook

# Installed by `make setup` (tests/harness/system-deps.sh): missing tools are an error, not a skip.
MISSING_TOOLS = [tool for tool in ('zstd', 'curl') if not shutil.which(tool)]
assert not MISSING_TOOLS, "run make setup: missing %s" % MISSING_TOOLS

BUCKET = "chainops-upload-test"
MANIFEST = "snapshots/manifest.json"


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data" / "litecoind"
    (data / "regtest" / "blocks").mkdir(parents=True)
    # Incompressible, so that 5 MiB parts give three of them.
    (data / "regtest" / "blocks" / "blk00000.dat").write_bytes(os.urandom(12 * 1024 * 1024))
    (data / "regtest" / "wallets").mkdir()
    (data / "regtest" / "wallets" / "secret").write_text("never uploaded\n")
    (data / ".lock").write_text("")
    return data


def entry(name, height, key=None):
    return {"name": name, "chain": "litecoin", "network": "regtest", "client": "litecoind", "client_version": "1",
            "height": height, "created": "2026-11-22T14:30:00Z", "sha256": "a" * 64, "size": 10, "compression": "zstd",
            "key": key or "snapshots/%s.tar.zst" % name}


def play(tmp_path, tasks, endpoint, *args, hosts="localhost", inventory="localhost,"):
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"hosts": hosts, "connection": "local", "gather_facts": False,
                                     "vars": {"endpoint": endpoint, "bucket": BUCKET}, "tasks": tasks}]))
    return ansible_playbook(playbook, "-i", inventory, *args)


def s3_task(**args):
    return {"chainops.validator.snapshot_archive_s3": dict(args, bucket="{{ bucket }}", endpoint_url="{{ endpoint }}",
                                                           region="us-east-1")}


def upload_tasks(data_dir, work, key, data_size="{{ du_bytes }}", min_part_size=5 * 1024 * 1024):
    return [
        dict(s3_task(operation="multipart_start", key=key, data_size=data_size, data_files=10, min_part_size=min_part_size),
             register="mp", no_log=True),
        {"chainops.validator.snapshot_archive_upload": {
            "src": str(data_dir), "exclude": ["regtest/wallets", ".lock"], "part_urls": "{{ mp.part_urls }}",
            "part_size": "{{ mp.part_size }}", "work_dir": str(work), "connections": 3},
         "register": "up", "no_log": True, "failed_when": False},
        {"ansible.builtin.copy": {"content": "{{ {'mp': mp | combine({'part_urls': mp.part_urls | length}), 'up': up} | to_json }}",
                                  "dest": str(work.parent / "result.json"), "mode": "0600"}},
    ]


def test_streamed_upload_completes_tags_and_never_shows_urls(s3, aws_env, data_dir, tmp_path):
    work = tmp_path / "work"
    key = "snapshots/litecoin/regtest/a.tar.zst"
    tasks = upload_tasks(data_dir, work, key, data_size=str(12 * 1024 * 1024 + 4096)) + [
        s3_task(operation="multipart_complete", key=key, upload_id="{{ mp.upload_id }}", parts="{{ up.parts }}",
                tags={"chainops:chain": "litecoin", "chainops:sha256": "{{ up.sha256 }}"}),
        s3_task(operation="manifest_update", key=MANIFEST, keep=3,
                add=dict(entry("a", 3000, key), sha256="{{ up.sha256 }}", size="{{ up.bytes }}", parts="{{ up.manifest_parts }}")),
    ]
    result = play(tmp_path, tasks, aws_env, "-vvv")
    assert result.returncode == 0, result.stdout[-4000:]
    out = json.loads((tmp_path / "result.json").read_text())
    assert out["mp"]["part_size"] == 5 * 1024 * 1024 and out["mp"]["part_urls"] >= 3
    up = out["up"]
    assert [p["part_number"] for p in up["parts"]] == [1, 2, 3]
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert len(body) == up["bytes"] and hashlib.sha256(body).hexdigest() == up["sha256"]
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]}
    assert tags == {"chainops:chain": "litecoin", "chainops:sha256": up["sha256"]}
    raw = subprocess.run(["zstd", "-d", "-c"], input=body, stdout=subprocess.PIPE, check=True).stdout
    names = tarfile.open(fileobj=io.BytesIO(raw)).getnames()
    assert "./regtest/blocks/blk00000.dat" in names
    assert not [n for n in names if "wallets" in n or n.endswith(".lock")], names
    # Each part's digest, as the manifest lists it, is that of the bytes S3 holds at the part's place.
    offsets = [sum(p["bytes"] for p in up["parts"][:index]) for index in range(len(up["parts"]))]
    assert [p["sha256"] for p in up["parts"]] == [
        hashlib.sha256(body[at:at + p["bytes"]]).hexdigest() for at, p in zip(offsets, up["parts"])]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    assert [(a["name"], a["sha256"], a["size"]) for a in manifest["archives"]] == [("a", up["sha256"], up["bytes"])]
    assert manifest["archives"][0]["parts"] == [{"size": p["bytes"], "sha256": p["sha256"]} for p in up["parts"]]
    # The archive restores from S3 (moto answers byte ranges) in parallel parts, one per uploaded part.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=600)
    restored = tmp_path / "restored" / "litecoind"
    restore = {"chainops.validator.snapshot_archive_restore": {
        "url": url, "sha256": up["sha256"], "dest": str(restored), "parts": manifest["archives"][0]["parts"],
        "size": up["bytes"], "connections": 3}, "register": "restored", "no_log": True}
    report = {"ansible.builtin.copy": {"content": "{{ restored | to_json }}", "dest": str(tmp_path / "restored.json"), "mode": "0600"}}
    restored_run = play(tmp_path, [restore, report], aws_env)
    assert restored_run.returncode == 0, restored_run.stdout[-4000:]
    done = json.loads((tmp_path / "restored.json").read_text())
    assert done["parts"] == 3 and done["fetched_bytes"] == up["bytes"]
    assert (restored / "regtest" / "blocks" / "blk00000.dat").read_bytes() == (
        data_dir / "regtest" / "blocks" / "blk00000.dat").read_bytes()
    # Presigned URLs are credentials: not in the -vvv output, and no config file left on the host.
    assert "Signature=" not in result.stdout and "uploadId=" not in result.stdout and "X-Amz-Signature" not in result.stdout
    assert os.listdir(work) == []
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_too_few_parts_fails_clearly_and_abort_cleans_up(s3, aws_env, data_dir, tmp_path):
    work = tmp_path / "work"
    key = "snapshots/b.tar.zst"
    # A data size of 1 byte plans one 5 MiB part for 12 MiB of incompressible data.
    tasks = upload_tasks(data_dir, work, key, data_size="1") + [
        s3_task(operation="multipart_abort", key=key, upload_id="{{ mp.upload_id }}"),
        s3_task(operation="multipart_abort", key=key, upload_id="{{ mp.upload_id }}"),
    ]
    result = play(tmp_path, tasks, aws_env)
    assert result.returncode == 0, result.stdout[-4000:]
    up = json.loads((tmp_path / "result.json").read_text())["up"]
    # failed_when: false (as in the playbook, to show the message of a no_log task) clears "failed".
    assert "sha256" not in up and "needs more than the 1 parts of 5242880 bytes that were presigned" in up["msg"]
    assert "Signature=" not in up["msg"]
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert "the upload was already gone" in result.stdout or int(RECAP.search(result.stdout)["failed"]) == 0
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_bad_input_fails_with_the_variable_named(aws_env, s3, tmp_path):
    result = play(tmp_path, [s3_task(operation="multipart_start", key="k")], aws_env)
    assert result.returncode != 0 and "data_size" in result.stdout
    result = play(tmp_path, [s3_task(operation="manifest_update", key=MANIFEST, add=entry("x", 1), keep=0)], aws_env)
    assert result.returncode != 0 and "keep must be at least 1" in result.stdout
    result = play(tmp_path, [s3_task(operation="manifest_update", key=MANIFEST, add={"name": "broken"})], aws_env)
    assert result.returncode != 0 and "new manifest entry broken is invalid" in result.stdout
    result = play(tmp_path, [{"chainops.validator.snapshot_archive_upload": {
        "src": str(tmp_path), "part_urls": ["http://127.0.0.1:9/x"], "part_size": 1024, "work_dir": str(tmp_path / "w")}}], aws_env)
    assert result.returncode != 0 and "part_size must be at least 5242880" in result.stdout


def test_concurrent_manifest_updates_lose_nothing(s3, aws_env, tmp_path):
    # Six hosts add their archive at the same moment (six module processes, one playbook run).
    hosts = ["h%d" % n for n in range(6)]
    tasks = [dict(s3_task(operation="manifest_update", key=MANIFEST, keep=10,
                          add=dict(entry("{{ inventory_hostname }}", "{{ 100 + (inventory_hostname[1:] | int) }}"))),
                  register="m"),
             {"ansible.builtin.copy": {"content": "{{ m.attempts }}", "dest": str(tmp_path) + "/attempts-{{ inventory_hostname }}",
                                       "mode": "0600"}}]
    result = play(tmp_path, tasks, aws_env, "-f", "6", hosts="all", inventory=",".join(hosts) + ",")
    assert result.returncode == 0, result.stdout[-4000:]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    assert sorted(a["name"] for a in manifest["archives"]) == hosts
    attempts = [int((tmp_path / ("attempts-" + h)).read_text()) for h in hosts]
    print("manifest update attempts per host:", attempts)


def test_manifest_read_before_and_after_the_first_archive_and_of_a_broken_manifest(s3, aws_env, tmp_path):
    read = dict(s3_task(operation="manifest_read", key=MANIFEST), register="read")
    report = {"ansible.builtin.copy": {"content": "{{ read | to_json }}", "dest": str(tmp_path / "read.json"), "mode": "0600"},
              "check_mode": False}

    def manifest_read(*args):
        (tmp_path / "read.json").unlink(missing_ok=True)
        result = play(tmp_path, [read, report], aws_env, *args)
        assert result.returncode == 0, result.stdout[-3000:]
        return json.loads((tmp_path / "read.json").read_text())

    for args in ((), ("--check",)):
        first = manifest_read(*args)
        assert (first["exists"], first["manifest"], first["changed"]) == (False, {"format": 1, "archives": []}, False)
    play(tmp_path, [s3_task(operation="manifest_update", key=MANIFEST, add=entry("a", 5), keep=3)], aws_env)
    listed = manifest_read("--check")
    assert listed["exists"] and [a["name"] for a in listed["manifest"]["archives"]] == ["a"] and not listed["changed"]
    # A malformed entry is kept for the selection to reject; a document that is not a manifest fails, named.
    s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=json.dumps({"format": 1, "archives": [{"name": "half"}]}).encode())
    assert manifest_read()["manifest"]["archives"] == [{"name": "half"}]
    s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=b"<html>not json</html>")
    result = play(tmp_path, [read], aws_env)
    assert result.returncode != 0
    assert "manifest s3://%s/%s is not valid JSON" % (BUCKET, MANIFEST) in result.stdout, result.stdout[-3000:]
