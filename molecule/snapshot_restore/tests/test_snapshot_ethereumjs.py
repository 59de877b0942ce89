"""snapshot_restore scenario, Ethereum: the EthereumJS sealer of a private clique network archived by snapshot.yml
while it seals, a fresh node restored from that archive by snapshot_restore, started with a node key of
its own, and caught up with the sealer over devp2p."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import boto3
import pytest
import testinfra
from chainops_testlib import eth_answers as answers
from chainops_testlib import eth_block_hash as block_hash
from chainops_testlib import eth_enode_id as enode_id
from chainops_testlib import eth_height as height
from chainops_testlib import eth_rpc as rpc
from chainops_testlib import wait_for

SEALER, RESTORED = (testinfra.get_host("podman://" + name) for name in ("snap-ej-sealer", "snap-ej-restored"))
RUNNER = "/opt/chainops/ethereumjs/0.10.5/ethereumjs"
DATA = "/data/ethereumjs"
BUCKET, MANIFEST = "chainops-snap-test", "chainops/snapshots/manifest.json"
ARCHIVED_MIN = 10  # chainops_snap_ej_archived_min in molecule.yml


@pytest.fixture(scope="module")
def s3():
    endpoint = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "moto-endpoint").read_text().strip()
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    return session.client("s3", endpoint_url=endpoint)


@pytest.fixture(scope="module")
def archive(s3):
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    (found,) = [a for a in manifest["archives"] if a["chain"] == "ethereum"]
    return found


def test_the_archive_is_the_sealers_chain_at_a_synced_height(archive):
    assert archive["network"] == "devnet" and archive["client"] == "ethereumjs" and archive["client_version"] == "0.10.5"
    assert archive["height"] >= ARCHIVED_MIN and "-%d-" % archive["height"] in archive["name"]
    # The sealer went on sealing after it was archived (the snapshot playbook restarted it).
    assert height(SEALER) > archive["height"]


def test_the_archive_holds_no_key_of_the_sealer(s3, archive):
    body = s3.get_object(Bucket=BUCKET, Key=archive["key"])["Body"].read()
    tar_bytes = subprocess.run(["zstd", "-d", "-c"], input=body, capture_output=True, check=True).stdout
    names = tarfile.open(fileobj=io.BytesIO(tar_bytes)).getnames()
    assert any(name.startswith("./devnet/chain") for name in names), names
    # The node key, the client's store of it, and the clique signer's key stay on the sealer.
    assert not [n for n in names if n in ("./nodekey", "./signer.key") or n.startswith("./devnet/config")], names


def test_the_restored_node_started_from_the_archive_not_from_genesis(archive):
    record = json.loads(RESTORED.file("/data/.ethereumjs.snapshot-restore.json").content_string)
    assert record["name"] == archive["name"] and record["sha256"] == archive["sha256"]
    # The client's first words on its chain, in its first start: the head it found on disk.
    journal = RESTORED.check_output("journalctl --unit ethereumjs --output cat --no-pager")
    first_head = re.search(r"Latest local block number=(\d+)", journal)
    assert first_head, journal[-2000:]
    assert int(first_head.group(1)) >= archive["height"]


def test_the_restored_node_fetched_the_sealers_head_as_of_its_start():
    """Right after the restore: the head the sealer announced when the restored node connected (the
    client's first sync target) is reached, with the sealer's block at that height."""
    journal = RESTORED.check_output("journalctl --unit ethereumjs --output cat --no-pager")
    first_target = re.search(r"New sync target height=(\d+)", journal)
    assert first_target, journal[-2000:]
    target = int(first_target.group(1))
    wait_for(lambda: height(RESTORED) >= target, timeout=120, message="the restored node to reach its first sync target %d" % target)
    assert block_hash(RESTORED, target) == block_hash(SEALER, target)


def test_the_restored_node_catches_up_with_the_sealer_and_reports_itself_synced():
    """At the end: the sealer's current head, the same hash there, eth_syncing false, one peer.
    EthereumJS 0.10.5 ranks peers by the total difficulty they announced in their handshake only, so in
    a network with one sealer a node follows new blocks through announcements alone and stops at the
    first one it misses (molecule/node's follower shows the same). The sealer is restarted first: the
    restored node's new handshake carries the sealer's current difficulty, and the catch-up under test
    is the same fetch from the restored height as after any reconnect. The client reports itself synced
    only once it has imported its sync target within 60 s of that block's time; under CI's load it can
    miss an announcement first and stay just behind, so the reconnect is made at most three times, and
    every round must reach the sealer's head with the sealer's hash."""
    seen = []
    for _round in range(3):
        SEALER.check_output("systemctl restart ethereumjs")
        wait_for(lambda: answers(SEALER), timeout=60, message="the sealer's RPC after its restart")
        wait_for(lambda: int(rpc(RESTORED, "net_peerCount"), 16) == 1, timeout=60, message="the restored node to dial the sealer again")
        target = height(SEALER)
        wait_for(lambda: height(RESTORED) >= target, timeout=120,
                 message="the restored node to reach the sealer's height %d (at %d)" % (target, height(RESTORED)))
        assert block_hash(RESTORED, target) == block_hash(SEALER, target)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            syncing = rpc(RESTORED, "eth_syncing")
            if syncing is False:
                return
            time.sleep(1)
        seen.append({"target": target, "restored": height(RESTORED), "sealer": height(SEALER), "eth_syncing": syncing})
    raise AssertionError("the restored node never reported itself synced; each round: %s" % seen)


def test_the_restored_node_has_a_node_key_of_its_own():
    own_key = RESTORED.file(DATA + "/nodekey")
    assert own_key.user == "ethereumjs" and own_key.mode == 0o600
    derived = RESTORED.check_output("%s node-id --node-key-file %s/nodekey", RUNNER, DATA)
    assert enode_id(RESTORED) == derived != enode_id(SEALER)
    # Compared by digest: the keys themselves never reach the test's output.
    digests = [hashlib.sha256(host.file(DATA + "/nodekey").content).hexdigest() for host in (SEALER, RESTORED)]
    assert digests[0] != digests[1]
    assert not RESTORED.file(DATA + "/signer.key").exists
