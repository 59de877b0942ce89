"""Unit tests for plugins/module_utils/snapshot_fetch.py (part plans, the part store) and the manifest's parts."""
from __future__ import annotations

import hashlib
import json

import pytest

from ansible_collections.chainops.validator.plugins.module_utils import snapshot_archive as sa
from ansible_collections.chainops.validator.plugins.module_utils import snapshot_fetch as sf

SHA = "ab" * 32


def parts_of(data, size):
    return [{"size": len(data[at:at + size]), "sha256": hashlib.sha256(data[at:at + size]).hexdigest()}
            for at in range(0, len(data), size)]


def test_plan_from_the_manifest_parts_is_contiguous_and_keeps_each_digest():
    data = bytes(range(256)) * 41  # 10,496 bytes
    parts = parts_of(data, 4096)
    plan = sf.plan_parts(len(data), parts)
    assert [(p.index, p.start, p.size, p.end) for p in plan] == [
        (0, 0, 4096, 4095), (1, 4096, 4096, 8191), (2, 8192, 2304, 10495)]
    assert [p.sha256 for p in plan] == [p["sha256"] for p in parts]
    assert sf.plan_parts(None, parts) == plan  # the size is implied by the parts


def test_plan_without_parts_cuts_fixed_ranges_with_a_short_last_one():
    plan = sf.plan_parts(10, range_size=4)
    assert [(p.start, p.end, p.sha256) for p in plan] == [(0, 3, None), (4, 7, None), (8, 9, None)]
    assert len(sf.plan_parts(sf.DEFAULT_RANGE * 3)) == 3
    assert len(sf.plan_parts(sf.DEFAULT_RANGE * 3 + 1)) == 4


@pytest.mark.parametrize("size, parts, message", [
    (None, None, "the archive's size is needed"),
    (10, [{"size": 4, "sha256": SHA}, {"size": 4, "sha256": SHA}], "parts add up to 8 bytes, size is 10"),
    (None, [{"size": 0, "sha256": SHA}], "parts[0].size 0 is not a positive integer"),
    (None, [{"size": 4, "sha256": SHA}, {"size": True, "sha256": SHA}], "parts[1].size True is not a positive integer"),
    (None, [{"size": 4, "sha256": "AB" * 32}], "parts[0].sha256 is not 64 lower-case hex digits"),
    (None, ["x"], "parts[0] is not an object"),
])
def test_bad_plans_fail_naming_the_part(size, parts, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        sf.plan_parts(size, parts)


def test_manifest_entries_with_bad_parts_are_rejected_and_good_ones_kept():
    good = {"name": "a", "chain": "c", "network": "n", "height": 1, "created": "2026-11-20T10:00:00Z",
            "sha256": SHA, "compression": "zstd", "key": "k", "size": 8,
            "parts": [{"size": 4, "sha256": SHA}, {"size": 4, "sha256": SHA}]}
    assert sa.entry_problems(good) == []
    assert sa.entry_problems(dict(good, size=9)) == ["parts add up to 8 bytes, size is 9"]
    assert sa.entry_problems(dict(good, parts=[])) == ["parts must be a non-empty list"]
    picked = sa.select_archive([dict(good, name="b", parts="x"), good], {"chain": "c", "network": "n"})
    assert picked["archive"]["name"] == "a"
    assert picked["rejected"] == [{"name": "b", "reasons": ["invalid entry: parts must be a non-empty list"]}]


def test_store_keeps_parts_of_the_same_plan_and_drops_those_of_another(tmp_path):
    data = b"x" * 10 + b"y" * 10
    plan = sf.plan_parts(20, parts_of(data, 10))
    store = sf.PartStore(str(tmp_path / "parts"), SHA, plan)
    assert (tmp_path / "parts").stat().st_mode & 0o777 == 0o700
    (tmp_path / "parts" / "00000").write_bytes(b"x" * 10)
    (tmp_path / "parts" / "00001.tmp").write_bytes(b"y" * 3)  # cut off mid-part
    store = sf.PartStore(str(tmp_path / "parts"), SHA, plan)
    assert [store.have(part) for part in plan] == [True, False]
    fetch = sf.RangedFetch("http://127.0.0.1:9/a", store, connections=4)
    assert fetch.reused_parts == 1 and [p.index for p in fetch.missing] == [1]
    # Another archive (or another split of it): nothing is reused.
    other = sf.PartStore(str(tmp_path / "parts"), "cd" * 32, plan)
    assert [other.have(part) for part in plan] == [False, False]
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["plan.json"]
    assert json.loads((tmp_path / "parts" / "plan.json").read_text())["sha256"] == "cd" * 32


def test_bad_parts_are_found_by_their_digest(tmp_path):
    data = b"a" * 8 + b"b" * 8 + b"c" * 8
    plan = sf.plan_parts(24, parts_of(data, 8))
    store = sf.PartStore(str(tmp_path), SHA, plan)
    for part, content in zip(plan, (b"a" * 8, b"B" * 8, b"c" * 8)):
        (tmp_path / ("%05d" % part.index)).write_bytes(content)
    assert [part.index for part in store.bad_parts()] == [1]
    unlisted = sf.PartStore(str(tmp_path / "ranges"), SHA, sf.plan_parts(24, range_size=8))
    assert unlisted.bad_parts() == []  # no digests to check against: only the whole archive's sha256 decides


def test_range_config_keeps_the_url_in_the_config_and_asks_for_exactly_the_part():
    part = sf.Part(3, 300, 100, None)
    config = sf.range_config("https://b.s3.amazonaws.com/k?X-Amz-Signature=s\"x", part, "/p/00003.tmp", 30)
    assert 'url = "https://b.s3.amazonaws.com/k?X-Amz-Signature=s\\"x"' in config.splitlines()
    assert "range = 300-399" in config.splitlines() and 'output = "/p/00003.tmp"' in config.splitlines()
    with pytest.raises(ValueError):
        sf.range_config("http://a/\nb", part, "/p/x", 30)
