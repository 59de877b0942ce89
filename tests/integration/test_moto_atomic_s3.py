"""The tests' S3 stand-in decides racing conditional writes as S3 does: exactly one writer wins.

The signer lease and the snapshot manifest's lock are only as safe as this; plain moto 5.2 let two
racing PUTs with If-None-Match: * both succeed (once in CI, about one round in fifteen here when the
server switches threads as often as it can, which is what this test makes it do).
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from moto_server import MotoServer

TESTLIB = Path(__file__).resolve().parent.parent / "testlib"
ROUNDS = 100
WRITERS = 8
# The server as MotoServer runs it, switching threads every microsecond instead of every 5 ms, so a
# window between moto's check and its write is hit often enough to count.
EAGER_SWITCHING = [sys.executable, "-c", "import sys; sys.setswitchinterval(1e-6); sys.path.insert(0, %r); "
                   "import moto_atomic_s3; moto_atomic_s3.main(sys.argv[1:])" % str(TESTLIB)]


@pytest.fixture(scope="module")
def eager_moto():
    with MotoServer(command=EAGER_SWITCHING) as server:
        yield server.url


def race(clients, barrier, **put):
    """Each client PUTs a body of its own at once; returns the indexes of those S3 accepted.
    (The bodies differ from every earlier one too: an unchanged body keeps its ETag.)"""
    accepted = []

    def write(index, client):
        barrier.wait()
        try:
            client.put_object(Body=("%s by writer %d" % (put, index)).encode(), **put)
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] in ("PreconditionFailed", "412"), exc.response
        else:
            accepted.append(index)

    threads = [threading.Thread(target=write, args=(index, client)) for index, client in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted


def test_racing_conditional_writes_have_exactly_one_winner(eager_moto):
    clients = [boto3.client("s3", endpoint_url=eager_moto, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing") for writer in range(WRITERS)]
    clients[0].create_bucket(Bucket="chainops-race")
    barrier = threading.Barrier(WRITERS)
    created, replaced = [], []
    for round_number in range(ROUNDS):
        key = "lease-%d" % round_number
        created.append(len(race(clients, barrier, Bucket="chainops-race", Key=key, IfNoneMatch="*")))
        etag = clients[0].head_object(Bucket="chainops-race", Key=key)["ETag"]
        replaced.append(len(race(clients, barrier, Bucket="chainops-race", Key=key, IfMatch=etag)))
    assert created == [1] * ROUNDS, "If-None-Match: * rounds with other than one winner: %s" % [n for n in created if n != 1]
    assert replaced == [1] * ROUNDS, "If-Match rounds with other than one winner: %s" % [n for n in replaced if n != 1]
