# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""EBS volume limits and the volume-initialization plan of a restore: pure logic, no AWS calls.

Limits are AWS's current ones (EBS volume types, 2025): gp3 up to 64 TiB, 80,000 IOPS and
2,000 MiB/s, with at most 500 IOPS per GiB and 0.25 MiB/s per IOPS; a provisioned volume
initialization rate of 100 to 300 MiB/s, for volumes created from snapshots only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

MIB = 1024 * 1024
GIB = 1024 * MIB
INITIALIZATION_RATE = (100, 300)

# size (GiB), iops and throughput (MiB/s) ranges; iops_per_gib and throughput_per_iops caps.
LIMITS = {
    "gp3": {"size": (1, 65536), "iops": (3000, 80000), "throughput": (125, 2000), "iops_per_gib": 500, "throughput_per_iops": 0.25},
    "gp2": {"size": (1, 16384)},
    "io1": {"size": (4, 16384), "iops": (100, 64000), "iops_per_gib": 50},
    "io2": {"size": (4, 65536), "iops": (100, 256000), "iops_per_gib": 1000},
    "st1": {"size": (125, 16384)},
    "sc1": {"size": (125, 16384)},
    "standard": {"size": (1, 1024)},
}


def volume_problems(volume_type, size, iops=None, throughput=None, initialization_rate=None):
    """Every way the requested volume breaks AWS's limits, as (option, what is wrong) pairs; the
    options are volume_type, size, iops, throughput and initialization_rate."""
    limits = LIMITS.get(volume_type)
    if limits is None:
        return [("volume_type", "must be one of %s, got %r" % (", ".join(sorted(LIMITS)), volume_type))]
    problems = []

    def check_range(name, value, bounds, unit):
        if value is not None and not bounds[0] <= value <= bounds[1]:
            problems.append((name, "for %s must be from %d to %d %s, got %d" % (volume_type, bounds[0], bounds[1], unit, value)))
            return False
        return True

    check_range("size", size, limits["size"], "GiB")
    in_range = {}
    for name, value, unit in (("iops", iops, "IOPS"), ("throughput", throughput, "MiB/s")):
        if value is None:
            continue
        if name not in limits:
            problems.append((name, "cannot be set for %s volumes" % volume_type))
        elif check_range(name, value, limits[name], unit):
            in_range[name] = True
            if name == "iops" and size is not None and "iops_per_gib" in limits and value > size * limits["iops_per_gib"]:
                problems.append(("iops", "%d for a %d GiB %s volume exceeds %d per GiB (at most %d)"
                                 % (value, size, volume_type, limits["iops_per_gib"], size * limits["iops_per_gib"])))
    if in_range.get("iops") and in_range.get("throughput") and "throughput_per_iops" in limits:
        most = int(iops * limits["throughput_per_iops"])
        if throughput > most:
            problems.append(("throughput", "%d MiB/s needs at least %d IOPS on %s (%g MiB/s per IOPS), got %d IOPS; at most %d MiB/s"
                             % (throughput, int(throughput / limits["throughput_per_iops"]), volume_type, limits["throughput_per_iops"],
                                iops, most)))
    if initialization_rate:
        check_range("initialization_rate", initialization_rate, INITIALIZATION_RATE, "MiB/s")
    return problems


def initialization_plan(snapshot, rate, fast_restore, created=None):
    """How the new volume's blocks arrive from the snapshot, and when that ends.

    ``snapshot``: DescribeSnapshots' entry (FullSnapshotSizeInBytes when EBS gives it, else the
    volume size); ``rate``: the provisioned initialization rate in MiB/s, or 0; ``fast_restore``:
    fast snapshot restore is enabled for the snapshot in the volume's zone. A volume from a fast
    snapshot restore is initialized at creation, unless a rate is given (the rate wins, as in EBS).
    """
    full = snapshot.get("FullSnapshotSizeInBytes")
    size = full or int(snapshot.get("VolumeSize") or 0) * GIB
    plan = {"snapshot_bytes": size, "size_source": "FullSnapshotSizeInBytes" if full else "VolumeSize"}
    if rate:
        seconds = int(-(-size // (rate * MIB)))
        plan.update(method="provisioned-rate", rate_mib_s=rate, expected_seconds=seconds)
        if created is not None:
            plan["expected_completion"] = (created + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif fast_restore:
        plan.update(method="fast-snapshot-restore", rate_mib_s=None, expected_seconds=0)
    else:
        # EBS's default rate fluctuates: no completion time can be promised (pre-warm with fio instead).
        plan.update(method="default", rate_mib_s=None, expected_seconds=None)
    return plan
