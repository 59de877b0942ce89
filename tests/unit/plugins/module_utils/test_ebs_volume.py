"""module_utils/ebs_volume.py: AWS's current EBS limits and the initialization plan of a restored volume."""
from __future__ import annotations

import datetime

import pytest
from ansible_collections.chainops.validator.plugins.module_utils.ebs_volume import GIB, MIB, initialization_plan, volume_problems


@pytest.mark.parametrize("volume, expected", [
    (dict(volume_type="gp3", size=65536, iops=80000, throughput=2000, initialization_rate=300), []),
    (dict(volume_type="gp3", size=None, iops=3000, throughput=125), []),
    (dict(volume_type="gp3", size=65537), [("size", "for gp3 must be from 1 to 65536 GiB, got 65537")]),
    (dict(volume_type="gp3", size=100, iops=80001, throughput=125), [("iops", "for gp3 must be from 3000 to 80000 IOPS, got 80001")]),
    (dict(volume_type="gp3", size=100, iops=8000, throughput=2001), [("throughput", "for gp3 must be from 125 to 2000 MiB/s, got 2001")]),
    (dict(volume_type="gp3", size=100, iops=7999, throughput=2000),
     [("throughput", "2000 MiB/s needs at least 8000 IOPS on gp3 (0.25 MiB/s per IOPS), got 7999 IOPS; at most 1999 MiB/s")]),
    (dict(volume_type="gp3", size=10, iops=6000), [("iops", "6000 for a 10 GiB gp3 volume exceeds 500 per GiB (at most 5000)")]),
    (dict(volume_type="io2", size=512, iops=256000), []),
    (dict(volume_type="io1", size=100, iops=5001), [("iops", "5001 for a 100 GiB io1 volume exceeds 50 per GiB (at most 5000)")]),
    (dict(volume_type="gp2", size=100, iops=3000), [("iops", "cannot be set for gp2 volumes")]),
    (dict(volume_type="io2", size=100, iops=3000, throughput=500), [("throughput", "cannot be set for io2 volumes")]),
    (dict(volume_type="st1", size=100), [("size", "for st1 must be from 125 to 16384 GiB, got 100")]),
    (dict(volume_type="gp3", size=100, initialization_rate=99), [("initialization_rate", "for gp3 must be from 100 to 300 MiB/s, got 99")]),
    (dict(volume_type="gp3", size=100, initialization_rate=301), [("initialization_rate", "for gp3 must be from 100 to 300 MiB/s, got 301")]),
    (dict(volume_type="gp4", size=100), [("volume_type", "must be one of gp2, gp3, io1, io2, sc1, st1, standard, got 'gp4'")]),
])
def test_volume_limits(volume, expected):
    assert volume_problems(**volume) == expected


CREATED = datetime.datetime(2026, 12, 3, 12, 0, 0)


def test_a_provisioned_rate_gives_the_completion_time_from_the_full_snapshot_size():
    plan = initialization_plan({"VolumeSize": 1000, "FullSnapshotSizeInBytes": 600 * GIB}, 300, False, CREATED)
    # 600 GiB at 300 MiB/s: 2048 s.
    assert plan == {"snapshot_bytes": 600 * GIB, "size_source": "FullSnapshotSizeInBytes", "method": "provisioned-rate",
                    "rate_mib_s": 300, "expected_seconds": 2048, "expected_completion": "2026-12-03T12:34:08Z"}


def test_without_the_full_size_the_volume_size_counts_and_seconds_round_up():
    plan = initialization_plan({"VolumeSize": 1}, 300, False, None)
    assert (plan["snapshot_bytes"], plan["size_source"], plan["expected_seconds"]) == (GIB, "VolumeSize", 4)  # 1024/300 = 3.4
    assert "expected_completion" not in plan
    assert initialization_plan({"VolumeSize": 0, "FullSnapshotSizeInBytes": 100 * MIB}, 100, False)["expected_seconds"] == 1


def test_fast_restore_is_immediate_and_the_default_rate_promises_nothing():
    fast = initialization_plan({"VolumeSize": 20}, 0, True, CREATED)
    assert (fast["method"], fast["expected_seconds"], fast["rate_mib_s"]) == ("fast-snapshot-restore", 0, None)
    default = initialization_plan({"VolumeSize": 20}, 0, False, CREATED)
    assert (default["method"], default["expected_seconds"]) == ("default", None)
    # A rate given with fast restore enabled wins, as it does in EBS.
    assert initialization_plan({"VolumeSize": 20}, 200, True, CREATED)["method"] == "provisioned-rate"
