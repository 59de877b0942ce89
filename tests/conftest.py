"""Shared pytest fixtures: a real moto_server on a free loopback port."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("CHAINOPS_CACHE", REPO_ROOT / ".cache"))
# tests/testlib holds helpers shared with the benchmarks and molecule verifiers.
sys.path.insert(0, str(REPO_ROOT / "tests" / "testlib"))

from chainops_testlib import link_collection  # noqa: E402
from moto_server import MotoServer  # noqa: E402

# `ansible_collections.chainops.validator` importable from the working tree, once for every test directory.
COLLECTIONS = link_collection(CACHE_DIR / "collections")
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
# The health checker's package (roles/health_checker/files/chainops-health/chainops_health), which its tests import.
sys.path.insert(0, str(REPO_ROOT / "roles" / "health_checker" / "files" / "chainops-health"))


@pytest.fixture(scope="session")
def moto_process():
    """The session's `MotoServer` (tests/testlib/moto_server.py), started on a free loopback port."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_server(moto_process):
    """The endpoint URL of the session's real `moto_server`."""
    return moto_process.url


@pytest.fixture
def moto_reset(moto_process):
    """Reset moto's state before a test so tests do not see each other's resources."""
    moto_process.reset()
    return moto_process.url


@pytest.fixture
def aws_env(moto_reset, monkeypatch):
    """Fake credentials pointed at the moto server, for boto3 and amazon.aws alike."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_reset


@pytest.fixture
def s3(aws_env, request):
    """A boto3 S3 client on fresh moto state, with the test module's BUCKET created."""
    import boto3  # noqa: PLC0415 - only the S3 tests need it
    client = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    client.create_bucket(Bucket=request.module.BUCKET)
    return client
