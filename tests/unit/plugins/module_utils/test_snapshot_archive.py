"""Unit and property tests for plugins/module_utils/snapshot_archive.py (manifests, selection, data rules)."""
from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.chainops.validator.plugins.module_utils import snapshot_archive as sa

EXAMPLES = int(os.environ.get("CHAINOPS_HYPOTHESIS_EXAMPLES", "200"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SHA = "ab" * 32
CRITERIA = {"chain": "litecoin", "network": "regtest"}


def entry(name, height=100, created="2026-11-20T10:00:00Z", **extra):
    base = {"name": name, "chain": "litecoin", "network": "regtest", "client": "litecoind", "client_version": "0.21.2.1",
            "height": height, "created": created, "sha256": SHA, "compression": "zstd", "key": "a/%s.tar.zst" % name}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def test_tricky_manifest_picks_the_right_archive():
    entries = [
        entry("newest-but-lower", height=90, created="2026-11-21T10:00:00Z"),
        entry("best", height=120, created="2026-11-19T10:00:00Z"),
        entry("other-network", height=500, network="mainnet"),
        entry("other-client", height=400, client="litecoind-fork"),
        entry("marked-bad", height=300, bad="corrupt"),
        entry("broken-sha", height=600, sha256="xyz"),
        entry("lz4-not-allowed", height=200, compression="lz4"),
        "not an object",
    ]
    result = sa.select_archive(entries, dict(CRITERIA, client="litecoind", compressions=["zstd"]))
    assert result["found"] and result["archive"]["name"] == "best"
    assert "highest height (120)" in result["reason"] and "newest-but-lower at 90" in result["reason"]
    rejected = {r["name"]: r["reasons"] for r in result["rejected"]}
    assert rejected["other-network"] == ["network is 'mainnet', not 'regtest'"]
    assert rejected["other-client"] == ["client is 'litecoind-fork', not 'litecoind'"]
    assert rejected["marked-bad"] == ["marked bad (corrupt)"]
    assert rejected["broken-sha"] == ["invalid entry: sha256 is not 64 lower-case hex digits"]
    assert rejected["lz4-not-allowed"] == ["compression lz4 not in zstd"]
    assert rejected["entry #7"] == ["invalid entry: entry is a str, not an object"]


def test_tie_on_height_goes_to_the_newest_then_the_name():
    entries = [entry("b", created="2026-11-20T10:00:00Z"), entry("a", created="2026-11-20T10:00:00Z"),
               entry("c", created="2026-11-21T10:00:00Z")]
    result = sa.select_archive(entries, CRITERIA)
    assert [a["name"] for a in result["qualified"]] == ["c", "a", "b"]
    assert "is the newest" in result["reason"]


def test_verified_min_height_and_version():
    entries = [entry("unverified", height=200), entry("verified", height=150, verified=True),
               entry("old-version", height=180, verified=True, client_version="0.18")]
    result = sa.select_archive(entries, dict(CRITERIA, require_verified=True, client_version="0.21.2.1", min_height=100))
    assert result["archive"]["name"] == "verified"
    rejected = {r["name"]: r["reasons"] for r in result["rejected"]}
    assert rejected["unverified"] == ["not verified (require_verified is true)"]
    assert rejected["old-version"] == ["client_version is '0.18', not '0.21.2.1'"]
    assert sa.select_archive(entries, dict(CRITERIA, min_height=1000))["found"] is False


def test_nothing_qualifies_and_empty_manifest():
    result = sa.select_archive([], CRITERIA)
    assert result == {"found": False, "archive": None, "qualified": [], "rejected": [], "reason": "no archive qualifies (0 listed)"}
    assert sa.parse_manifest("") == []


@pytest.mark.parametrize("document, message", [
    ("{not json", "is not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"format": 2, "archives": []}', "has format 2"),
    ('{"archives": {}}', "'archives' must be a list"),
])
def test_bad_manifests_fail_clearly(document, message):
    with pytest.raises(sa.ArchiveError, match=message):
        sa.parse_manifest(document)


@pytest.mark.parametrize("criteria, message", [
    ({"network": "regtest"}, "snapshot_restore_chain"),
    ({"chain": "litecoin", "network": ""}, "snapshot_restore_network"),
    (dict(CRITERIA, min_height="ten"), "snapshot_restore_min_height"),
    (dict(CRITERIA, min_height=-1), "snapshot_restore_min_height"),
    (dict(CRITERIA, compressions=["gzip"]), "snapshot_restore_compressions"),
])
def test_bad_criteria_name_the_variable(criteria, message):
    with pytest.raises(sa.ArchiveError, match=message):
        sa.select_archive([], criteria)


def test_locations():
    assert sa.archive_location(entry("x"), None, "m/manifest.json") == {"key": "a/x.tar.zst"}
    assert sa.archive_location(entry("x"), "http://h:1/snap/manifest.json") == {"url": "http://h:1/snap/a/x.tar.zst"}
    relative = entry("x", key=None, url="files/x.tar.zst")
    assert sa.archive_location(relative, "http://h:1/snap/manifest.json") == {"url": "http://h:1/snap/files/x.tar.zst"}
    rooted = entry("x", key=None, url="/x.tar.zst")
    assert sa.archive_location(rooted, "http://h:1/snap/manifest.json") == {"url": "http://h:1/x.tar.zst"}
    with pytest.raises(sa.ArchiveError, match="relative url"):
        sa.archive_location(relative, None, "m.json")


def test_manifest_add_replaces_keeps_and_prunes():
    old = {"format": 1, "archives": [entry("h1", height=1), entry("h2", height=2, verified=True), entry("h3", height=3),
                                     entry("main", height=9, network="mainnet")]}
    update = sa.manifest_add(old, entry("h4", height=4), keep=2)
    names = [a["name"] for a in update["archives"]]
    # best two of litecoin/regtest, plus the best verified one, plus the other network untouched
    assert names == ["main", "h4", "h3", "h2"]
    assert [a["name"] for a in sa.manifest_pruned(old, update)] == ["h1"]
    again = sa.manifest_add(update, entry("h4", height=4, size=7))
    assert [a["name"] for a in again["archives"]].count("h4") == 1
    with pytest.raises(sa.ArchiveError, match="invalid"):
        sa.manifest_add(old, entry("bad", sha256="0"))
    with pytest.raises(sa.ArchiveError, match="snapshot_archive_keep"):
        sa.manifest_add(old, entry("h5"), keep=0)


def test_manifest_mark():
    marked = sa.manifest_mark(json.dumps({"archives": [entry("a"), entry("b")]}), "b")
    assert [a.get("verified") for a in marked["archives"]] == [None, True]
    with pytest.raises(sa.ArchiveError, match="not in the manifest"):
        sa.manifest_mark({"archives": []}, "zz")


def test_data_paths_and_unexpected_data():
    secrets = ["/etc/chainops/litecoind/rpc.conf", "/data/litecoind/regtest/wallets", "/data/litecoind", "/data/litecoind2/x"]
    keep = sa.data_relative_paths("/data/litecoind/", secrets)
    assert keep == ["regtest/wallets"]
    assert sa.unexpected_data(["regtest", "regtest/wallets", "regtest/wallets/w.dat", "lost+found"], keep) == []
    assert sa.unexpected_data(["regtest", "regtest/blocks", "regtest/wallets"], keep) == ["regtest/blocks"]
    assert sa.unexpected_data(["regtest/walletsX"], keep) == ["regtest/walletsX"]


def test_archive_name():
    assert sa.archive_name("litecoin", "regtest", 3000, "2026-11-22T14:30:00Z") == "litecoin-regtest-3000-20261122T143000Z"


heights = st.integers(min_value=0, max_value=50)
entries_strategy = st.lists(
    st.builds(
        lambda i, h, day, net, ver, bad, comp: entry(
            "e%03d" % i, height=h, created="2026-11-%02dT00:00:00Z" % day, network=net, verified=ver, bad=bad, compression=comp),
        st.integers(0, 999), heights, st.integers(1, 28), st.sampled_from(["regtest", "mainnet"]),
        st.sampled_from([None, True, False]), st.sampled_from([None, "x"]), st.sampled_from(["zstd", "lz4", "none"])),
    max_size=25, unique_by=lambda e: e["name"])


@PROPERTY
@given(entries_strategy, st.booleans(), st.integers(0, 60), st.randoms(use_true_random=False))
def test_property_pick_satisfies_every_criterion_is_best_and_order_independent(entries, verified, minimum, rnd):
    criteria = dict(CRITERIA, require_verified=verified, min_height=minimum, compressions=["zstd", "lz4"])
    result = sa.select_archive(entries, criteria)
    eligible = [e for e in entries if e["network"] == "regtest" and e["height"] >= minimum and not e.get("bad")
                and e["compression"] != "none" and (not verified or e.get("verified") is True)]
    assert result["found"] == bool(eligible)
    assert len(result["qualified"]) + len(result["rejected"]) == len(entries)
    if eligible:
        best = result["archive"]
        assert best in eligible
        assert all(sa.sort_key(best) <= sa.sort_key(e) for e in eligible)
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert sa.select_archive(shuffled, criteria) == result


def test_random_manifest_roundtrip():
    rng = random.Random(5)
    doc = {"format": 1, "archives": []}
    for i in range(30):
        doc = sa.manifest_add(doc, entry("n%02d" % i, height=rng.randint(0, 100)), keep=5)
    assert len(doc["archives"]) == 5
    assert [a["height"] for a in doc["archives"]] == sorted((a["height"] for a in doc["archives"]), reverse=True)
