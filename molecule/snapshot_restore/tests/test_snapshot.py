"""snapshot_restore scenario: archive on S3 (moto), restored node, kept secrets, catch-up, EBS API steps."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import boto3
import pytest
import testinfra

from chainops_testlib import podman_hosts, recap, run_playbook

SOURCE, RESTORED = (testinfra.get_host(spec) for spec in podman_hosts("snap-source", "snap-restored"))
CLI = "litecoin-cli -conf=/etc/chainops/litecoind/rpc.conf -regtest -rpcport=19443 "
BUCKET = "chainops-snap-test"
MANIFEST = "chainops/snapshots/manifest.json"
ARCHIVED, FINAL = 3000, 3200


@pytest.fixture(scope="module")
def s3():
    endpoint = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "moto-endpoint").read_text().strip()
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    return session.client("s3", endpoint_url=endpoint), session.client("ec2", endpoint_url=endpoint)


def litecoin_archives(manifest):
    """This file's archives: the manifest also lists the EthereumJS sealer's (test_snapshot_ethereumjs.py)."""
    return [archive for archive in manifest["archives"] if archive["chain"] == "litecoin"]


def chain_info(host):
    return json.loads(host.check_output(CLI + "getblockchaininfo"))


def test_restored_node_catches_up_with_the_source():
    deadline = time.monotonic() + 180
    while True:
        source, restored = chain_info(SOURCE), chain_info(RESTORED)
        if restored["blocks"] == source["blocks"] and restored["bestblockhash"] == source["bestblockhash"]:
            break
        assert time.monotonic() < deadline, "restored node stuck at %s, source at %s" % (restored["blocks"], source["blocks"])
        time.sleep(2)
    assert source["blocks"] == FINAL
    peers = json.loads(RESTORED.check_output(CLI + "getpeerinfo"))
    source_addresses = SOURCE.check_output("hostname -I").split()
    assert any(p["addr"].rsplit(":", 1)[0] in source_addresses or p["addr"].startswith("snap-source") for p in peers), peers


def test_restored_node_started_from_the_archive_not_from_genesis(s3):
    record = json.loads(RESTORED.file("/data/.litecoind.snapshot-restore.json").content_string)
    manifest = json.loads(s3[0].get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    (archive,) = litecoin_archives(manifest)
    assert record["name"] == archive["name"] and record["sha256"] == archive["sha256"] and record["bytes"] == archive["size"]
    # Fetched in parallel byte ranges, one per part the upload listed in the manifest.
    assert record["parts"] == len(archive["parts"]) and record["fetched_bytes"] == archive["size"]
    assert archive["height"] == ARCHIVED and "-%d-" % ARCHIVED in archive["name"]
    # Blocks below the archived height were never downloaded by the restored node: they came from disk.
    assert RESTORED.file("/data/.litecoind.restore").exists is False


def test_restored_node_keeps_its_own_secrets():
    own, theirs = RESTORED.file("/etc/chainops/litecoind/rpc.conf"), SOURCE.file("/etc/chainops/litecoind/rpc.conf")
    assert own.content_string != theirs.content_string
    assert own.mode == 0o600 and own.user == "litecoind"
    wallets = "/data/litecoind/regtest/wallets/"
    assert RESTORED.file(wallets + "own-only").content_string == "restored node's own wallet\n"
    assert not RESTORED.file(wallets + "source-only").exists
    # The node still authenticates with its own credentials.
    assert chain_info(RESTORED)["chain"] == "regtest"


def test_restored_data_belongs_to_the_node_user():
    stray = RESTORED.check_output("find /data/litecoind -path /data/litecoind/regtest/wallets -prune -o ! -user litecoind -print")
    assert stray == ""
    assert RESTORED.file("/data/litecoind").mode == 0o750


def test_archive_holds_no_secrets_and_no_runtime_files(s3, tmp_path):
    manifest = json.loads(s3[0].get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    (archive,) = litecoin_archives(manifest)
    assert archive["verified"] is True, "verify mode should have marked it"
    assert archive["chain"] == "litecoin" and archive["network"] == "regtest" and archive["client"] == "litecoind"
    assert archive["compression"] == "zstd" and archive["client_version"]
    body = s3[0].get_object(Bucket=BUCKET, Key=archive["key"])["Body"].read()
    tags = {t["Key"]: t["Value"] for t in s3[0].get_object_tagging(Bucket=BUCKET, Key=archive["key"])["TagSet"]}
    assert tags["chainops:block-height"] == str(ARCHIVED) and tags["chainops:sha256"] == archive["sha256"]
    # The manifest lists the parts the host uploaded, with the sha256 of the bytes S3 holds at each place.
    offsets = [sum(part["size"] for part in archive["parts"][:index]) for index in range(len(archive["parts"]))]
    assert sum(part["size"] for part in archive["parts"]) == archive["size"] == len(body)
    assert [part["sha256"] for part in archive["parts"]] == [
        hashlib.sha256(body[at:at + part["size"]]).hexdigest() for at, part in zip(offsets, archive["parts"])]
    tar_bytes = subprocess.run(["zstd", "-d", "-c"], input=body, capture_output=True, check=True).stdout
    names = tarfile.open(fileobj=io.BytesIO(tar_bytes)).getnames()
    assert "./regtest/blocks/blk00000.dat" in names
    assert not [n for n in names if "wallets" in n or n.endswith((".lock", ".cookie", "debug.log", ".pid"))], names
    # Streamed by the host as a multipart upload (S3's ETag of a multipart object ends in -<parts>),
    # not put whole from the controller.
    assert s3[0].head_object(Bucket=BUCKET, Key=archive["key"])["ETag"].strip('"').rsplit("-", 1)[-1].isdigit()
    # Nothing left behind on the source (no archive, no presigned-URL config), no upload left open.
    assert SOURCE.check_output("ls -A /data/.chainops-snapshot") == ""
    assert s3[0].list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_ebs_mode_started_a_tagged_snapshot(s3):
    ec2 = s3[1]
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:chainops:chain", "Values": ["litecoin"]}])["Snapshots"]
    assert len(snapshots) == 1
    tags = {t["Key"]: t["Value"] for t in snapshots[0]["Tags"]}
    assert tags["chainops:network"] == "regtest" and tags["chainops:client"] == "litecoind"
    assert tags["chainops:block-height"] == str(ARCHIVED) and tags["chainops:source"] == "snap-source"


def test_check_mode_on_the_converged_node_changes_nothing():
    result = run_playbook("converge.yml", "--check")
    for name in ("snap-restored", "snap-ej-restored"):
        assert recap(result.stdout)[name]["changed"] == 0, result.stdout[-4000:]


def test_snapshot_refuses_a_validator():
    result = run_playbook("../../playbooks/snapshot.yml", "-e", "snapshot_hosts=snap-restored", "-e", "node_mode=private", check=False)
    assert result.returncode != 0
    assert "snapshots are taken from sentries only" in " ".join((result.stdout + result.stderr).split())


def test_restore_refuses_when_nothing_qualifies():
    result = run_playbook("converge.yml", "-e", "snapshot_restore_force=true", "-e", "snapshot_restore_min_height=999999",
                          "--check", check=False)
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "no archive in the manifest qualifies" in output
    assert "height 3000 below min_height 999999" in output
