"""Fixtures for the health checker tests.

Factories (rather than ready-made nodes) so a missing litecoind or anvil FAILS inside the test
with a clear message instead of erroring or skipping.
"""
from __future__ import annotations

import pytest

from hc_support import Anvil, FixtureNode, LitecoinDaemon, Service, require_anvil, \
    require_litecoind


@pytest.fixture
def start_service(tmp_path):
    started = []

    def start(cfg):
        service = Service(tmp_path, cfg)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def litecoind(tmp_path):
    daemons = []

    def make(name, auth="password"):
        require_litecoind()
        daemon = LitecoinDaemon(tmp_path, name, auth)
        daemons.append(daemon)
        return daemon.start()

    yield make
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
def anvil():
    nodes = []

    def make():
        require_anvil()
        node = Anvil()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


@pytest.fixture
def fixture_node():
    nodes = []

    def make():
        node = FixtureNode()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()
