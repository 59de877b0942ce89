"""Make `ansible_collections.chainops.validator` importable from the working tree."""
import sys
from pathlib import Path

from chainops_testlib import link_collection  # tests/testlib, put on sys.path by tests/conftest.py

COLLECTIONS = link_collection(Path(__file__).resolve().parents[2] / ".cache" / "collections")
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
