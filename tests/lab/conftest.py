"""One lab for every lab test: tests/lab/test_lab_topology.py checks its topology first,
tests/lab/test_lab_awx.py runs site.yml on it from the execution environment, then
tests/lab/test_lab_operations.py operates it (fleet behind HAProxy, guard, upgrade, failover) and
removes it. Building it is most of their time, so they share it: the files run in one pytest call,
topology first (the hook below keeps that order)."""
from __future__ import annotations

import pytest
from labkit import running_lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    yield from running_lab(tmp_path_factory, "chainops-labtest")


# The lab's files in the order they use it, whatever order pytest was given them in.
LAB_ORDER = ("test_lab_topology.py", "test_lab_awx.py", "test_lab_operations.py")


def pytest_collection_modifyitems(items):
    def position(item):
        name = item.path.name
        return LAB_ORDER.index(name) if name in LAB_ORDER else -1
    items.sort(key=position)  # stable: each file's own order is kept
