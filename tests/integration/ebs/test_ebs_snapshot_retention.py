"""chainops.validator.ebs_snapshot_retention against a real moto_server, run through ansible-playbook.

The proxy, runner and seeding helpers come from ebs_support.py (same directory), the fixtures from
conftest.py; ebs_support.py's docstring says exactly what the proxy overlays and why.
"""
from __future__ import annotations

import re

import pytest
from ebs_support import (
    ACCOUNT,
    K_BAD,
    K_VERIFIED,
    chain_tags,
    days_ago,
    foreign_snapshot,
    make_snapshot,
    run_in_process,
    run_tasks,
    task,
    volume,
    with_endpoint,
)

MODULE = "chainops.validator.ebs_snapshot_retention"


def retention(name, proxy, check_mode=False, **args):
    return task(name, module=MODULE, check_mode=check_mode, **with_endpoint(proxy, **args))


def ids(items):
    return sorted(item["snapshot_id"] for item in items)


def existing(ec2):
    return set(s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] if s["OwnerId"] == ACCOUNT)


@pytest.fixture
def groups(aws, proxy):
    """Two groups plus snapshots the policy must never touch.

    ethereum/mainnet, best first: m1 (h500, 1d, verified but bad), m2 (h400, 2d), m3 (h300, 10d,
    verified: the protected newest verified one), m4 (h200, 20d), m5 (h100, 40d, root of an AMI),
    m6 (h50, 50d, a volume is being created from it). ethereum/goerli: g1 (h10, 60d), g2 (h5, 70d).
    Never managed: an untagged snapshot, one without a network tag, a pending one, and another
    account's snapshot tagged ethereum/mainnet.
    """
    vol = volume(aws)
    s = {
        "m1": make_snapshot(aws, vol, chain_tags(height=500, **{K_VERIFIED: "true", K_BAD: "true"})),
        "m2": make_snapshot(aws, vol, chain_tags(height=400)),
        "m3": make_snapshot(aws, vol, chain_tags(height=300, **{K_VERIFIED: "true"})),
        "m4": make_snapshot(aws, vol, chain_tags(height=200)),
        "m6": make_snapshot(aws, vol, chain_tags(height=50)),
        "g1": make_snapshot(aws, vol, chain_tags(network="goerli", height=10)),
        "g2": make_snapshot(aws, vol, chain_tags(network="goerli", height=5)),
        "untagged": make_snapshot(aws, vol, {"Name": "scratch"}),
        "no_network": make_snapshot(aws, vol, {"chainops:chain": "ethereum", "chainops:block-height": "1"}),
        "pending": make_snapshot(aws, vol, chain_tags(height=1)),
    }
    # An AMI of this account: moto gives it its own root snapshot, which AWS (and moto) refuse to
    # delete while the AMI exists. Tag that snapshot as an old chain snapshot.
    image_id = aws.register_image(Name="node-image", RootDeviceName="/dev/sda1")["ImageId"]
    root = aws.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    aws.create_tags(Resources=[root], Tags=[{"Key": k, "Value": str(v)} for k, v in chain_tags(height=100).items()])
    s["m5"], s["ami"] = root, image_id
    # A volume being created from m6 (moto makes it available at once: overlaid as creating).
    s["creating_volume"] = aws.create_volume(SnapshotId=s["m6"], AvailabilityZone="us-east-1a")["VolumeId"]
    proxy.overlay_volume(s["creating_volume"], "creating")
    other_id = foreign_snapshot(aws)[0]
    aws.create_tags(Resources=[other_id], Tags=[{"Key": k, "Value": str(v)} for k, v in chain_tags(height=1).items()])
    s["other_owner"] = other_id
    for key, age in {"m1": 1, "m2": 2, "m3": 10, "m4": 20, "m5": 40, "m6": 50, "g1": 60, "g2": 70,
                     "untagged": 90, "no_network": 90, "other_owner": 90}.items():
        proxy.overlay_snapshot(s[key], start_time=days_ago(age))
    proxy.overlay_snapshot(s["pending"], state="pending", progress="5%", start_time=days_ago(90))
    return s


def test_check_mode_lists_what_each_policy_would_delete(groups, aws, proxy, tmp_path, collections_path):
    before = existing(aws)
    results = run_tasks(tmp_path, collections_path, [
        retention("keep 2", proxy, check_mode=True, keep_last=2),
        retention("15 days", proxy, check_mode=True, max_age="15d"),
        retention("1 or 5 days", proxy, check_mode=True, keep_last=1, max_age="5d"),
        retention("goerli keep 1", proxy, check_mode=True, keep_last=1, chain="ethereum", network="goerli"),
        retention("nothing due", proxy, check_mode=True, keep_last=10),
    ])
    g = groups
    assert ids(results["keep 2"]["deleted"]) == sorted([g["m4"]])
    assert ids(results["15 days"]["deleted"]) == sorted([g["m4"], g["g1"], g["g2"]])
    assert ids(results["1 or 5 days"]["deleted"]) == sorted([g["m4"], g["g2"]])
    assert ids(results["goerli keep 1"]["deleted"]) == [g["g2"]]
    assert results["nothing due"]["deleted"] == [] and results["nothing due"]["changed"] is False
    for name in ("keep 2", "15 days", "1 or 5 days", "goerli keep 1"):
        assert results[name]["changed"] is True, name

    kept = dict((i["snapshot_id"], i["reasons"]) for i in results["keep 2"]["kept"])
    assert kept[g["m1"]] == ["rank 1 within keep_last 2"]
    assert kept[g["m3"]] == ["newest verified snapshot of ethereum/mainnet",
                             "the rules alone would delete it: rank 3 beyond keep_last 2"]
    assert kept[g["m5"]][0] == "used by AMI %s (available)" % g["ami"]
    assert kept[g["m6"]][0] == "source of volume %s being created" % g["creating_volume"]
    ignored = dict((i["snapshot_id"], i["reasons"]) for i in results["keep 2"]["ignored"])
    assert ignored[g["other_owner"]] == ["owned by %s, not this account" % foreign_snapshot(aws)[1]]
    assert ignored[g["no_network"]] == ["no chainops:chain/chainops:network tag: not managed"]
    # The untagged and pending snapshots never even come back (tag-key and status filters).
    assert g["untagged"] not in ignored and g["pending"] not in ignored
    assert results["keep 2"]["filters"] == [{"Name": "status", "Values": ["completed"]},
                                            {"Name": "tag-key", "Values": ["chainops:chain"]}]
    assert dict((x["group"], (x["total"], x["deleted"], x["kept"], x["newest_verified"]))
                for x in results["keep 2"]["groups"]) == {
        "ethereum/goerli": (2, 0, 2, None), "ethereum/mainnet": (6, 1, 5, g["m3"])}
    assert results["goerli keep 1"]["filters"][1:] == [{"Name": "tag:chainops:chain", "Values": ["ethereum"]},
                                                       {"Name": "tag:chainops:network", "Values": ["goerli"]}]

    # Nothing deleted, and the API use is batched: per run one STS call and one snapshot listing;
    # the AMI and volume listings only in the four runs that had something due.
    assert existing(aws) == before
    assert proxy.actions() == {"GetCallerIdentity": 5, "DescribeSnapshots": 5, "DescribeImages": 4, "DescribeVolumes": 4}


def test_deletes_exactly_what_the_policy_says_then_nothing(groups, aws, proxy, tmp_path, collections_path):
    before = existing(aws)
    results = run_tasks(tmp_path, collections_path, [
        retention("prune", proxy, keep_last=1, max_age="5d"),
        retention("again", proxy, keep_last=1, max_age="5d"),
    ])
    g = groups
    prune = results["prune"]
    assert prune["changed"] is True and not prune.get("failed")
    assert ids(prune["deleted"]) == sorted([g["m4"], g["g2"]])
    reasons = dict((i["snapshot_id"], i["reasons"]) for i in prune["deleted"])[g["m4"]]
    assert reasons[0] == "rank 4 beyond keep_last 1"
    # Exact age: 20 days plus the seconds since the overlay was set.
    assert re.fullmatch(r"age 2w6d(\d+s)? beyond max_age 5d", reasons[1])
    assert existing(aws) == before - {g["m4"], g["g2"]}
    assert proxy.actions()["DeleteSnapshot"] == 2
    again = results["again"]
    assert again["changed"] is False and again["deleted"] == []
    assert dict((x["group"], x["deleted"]) for x in again["groups"]) == {"ethereum/goerli": 0, "ethereum/mainnet": 0}


def test_snapshot_that_came_into_use_after_the_listing_is_kept(groups, aws, proxy, tmp_path, collections_path):
    """Race: the AMI is not in the DescribeImages answer (as if registered a moment later), so the
    plan includes its root snapshot; AWS (moto) refuses the deletion and the module keeps it."""
    proxy.hidden_images.add(groups["ami"])
    before = existing(aws)
    result = run_tasks(tmp_path, collections_path, [retention("prune", proxy, keep_last=2)])["prune"]
    g = groups
    assert not result.get("failed")
    assert ids(result["deleted"]) == [g["m4"]]
    kept = dict((i["snapshot_id"], i["reasons"]) for i in result["kept"])
    assert kept[g["m5"]][-1].startswith("AWS refused the deletion: ")
    assert "InvalidSnapshot.InUse" in kept[g["m5"]][-1]
    assert any(g["m5"] in warning and "came into use" in warning for warning in result["warnings"])
    assert existing(aws) == before - {g["m4"]}
    assert proxy.actions()["DeleteSnapshot"] == 2


def test_bad_input_fails_with_a_message_naming_the_option(aws, proxy, capsys):
    cases = {
        "no rule": (dict(), "one of the following is required: keep_last, max_age"),
        "keep none": (dict(keep_last=0), "keep_last: must be 1 or more, got 0"),
        "keep negative": (dict(keep_last=-3), "keep_last: must be 1 or more, got -3"),
        "keep text": (dict(keep_last="all"), "keep_last"),
        "bad age": (dict(max_age="forever"), "max_age: 'forever' is not a duration"),
        "unitless age": (dict(max_age=30), "max_age: '30' is not a duration"),
        "wildcard chain": (dict(keep_last=1, chain="eth*"), "chain: 'eth*' contains a wildcard"),
        "empty network": (dict(keep_last=1, network=""), "network: must be a non-empty string"),
        "same tag keys": (dict(keep_last=1, tag_keys={"verified": "flag", "bad": "flag"}),
                          "tag_keys.bad and tag_keys.verified are both 'flag'"),
        "reserved scope tag": (dict(keep_last=1, tags={"chainops:verified": "true"}),
                               "tags: 'chainops:verified' is the tag key of tag_keys.verified; it cannot also be an extra tag"),
        "unknown option": (dict(keep_last=1, keep_first=1), "Unsupported parameters"),
    }
    for name, (args, message) in cases.items():
        result = run_in_process(MODULE, dict(args, endpoint_url=proxy.url), capsys)
        assert result.get("failed") is True, name
        assert message in result["msg"], (name, result["msg"])
    assert proxy.actions() == {}
