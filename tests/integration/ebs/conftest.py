"""Fixtures of the EBS module tests: the proxy in front of the moto_server fixture, a fresh EC2 account,
a private collections path (helpers in ebs_support.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import boto3
import pytest
from chainops_testlib import link_collection  # tests/testlib, put on sys.path by tests/conftest.py
from ebs_support import REGION, EbsProxy


@pytest.fixture(scope="session")
def proxy(moto_server):
    server = EbsProxy(moto_server)
    yield server
    server.close()


@pytest.fixture
def aws(aws_env, proxy):
    """Fresh moto state, a clean proxy, and a boto3 EC2 client that talks to moto directly."""
    proxy.reset()
    return boto3.client("ec2", endpoint_url=aws_env, region_name=REGION)


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory):
    """A private ANSIBLE_COLLECTIONS_PATH: this working tree plus the venv's amazon.aws."""
    root = link_collection(tmp_path_factory.mktemp("collections"))
    site_packages = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    return "%s:%s" % (root, site_packages)
