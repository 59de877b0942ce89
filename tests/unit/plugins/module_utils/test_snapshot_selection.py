"""Unit and property tests for plugins/module_utils/snapshot_selection.py (no AWS involved)."""
from __future__ import annotations

import datetime
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.chainops.validator.plugins.module_utils import snapshot_selection as sel

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
ME = "123456789012"
OTHER = "210987654321"
KEYS = sel.DEFAULT_TAG_KEYS

# 10,000 examples per property is the S1 target; CI can ask for it, a laptop run uses fewer.
EXAMPLES = int(os.environ.get("CHAINOPS_HYPOTHESIS_EXAMPLES", "200"))
# database=None: no .hypothesis/ directory left in the working tree.
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def snap(snapshot_id, height=None, age_days=1.0, state="completed", owner=ME, chain="ethereum", network="mainnet",
         size=100, verified=None, bad=None, extra=None):
    tags = {}
    if chain is not None:
        tags[KEYS["chain"]] = chain
    if network is not None:
        tags[KEYS["network"]] = network
    if height is not None:
        tags[KEYS["block_height"]] = str(height)
    if verified is not None:
        tags[KEYS["verified"]] = verified
    if bad is not None:
        tags[KEYS["bad"]] = bad
    tags.update(extra or {})
    return {
        "SnapshotId": snapshot_id,
        "StartTime": NOW - datetime.timedelta(days=age_days),
        "State": state,
        "Progress": "100%" if state == "completed" else "42%",
        "VolumeSize": size,
        "OwnerId": owner,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def criteria(**kwargs):
    kwargs.setdefault("chain", "ethereum")
    kwargs.setdefault("network", "mainnet")
    kwargs.setdefault("owner_ids", [ME])
    return sel.SelectionCriteria(**kwargs)


def pick(snapshots, **kwargs):
    return sel.select_snapshot(snapshots, criteria(**kwargs), NOW)


def rejected_reasons(result):
    return dict((c.snapshot_id, reasons) for c, reasons in result.rejected)


# ---------------------------------------------------------------------------------------------
# Option validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,seconds",
    [("30s", 30), ("5m", 300), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1d12h", 129600), (" 1d 2h ", 93600)],
)
def test_parse_duration(text, seconds):
    assert sel.parse_duration(text, "max_age") == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["7", "", "d", "1y", "-1d", "1.5d", "forever", None, "0d", "0s0m"])
def test_parse_duration_refuses(text):
    with pytest.raises(sel.SnapshotCriteriaError) as err:
        sel.parse_duration(text, "max_age")
    assert str(err.value).startswith("max_age: ")


def test_tag_keys_override_and_defaults():
    keys = sel.validate_tag_keys({"chain": "Chain", "network": None})
    assert keys["chain"] == "Chain"
    assert keys["network"] == KEYS["network"]


@pytest.mark.parametrize(
    "tag_keys,message",
    [
        ({"height": "h"}, "tag_keys: unknown entry 'height'"),
        ({"chain": ""}, "tag_keys.chain: a tag key must be a non-empty string"),
        ({"chain": "  "}, "tag_keys.chain: a tag key must be a non-empty string"),
        ({"chain": "k" * 129}, "tag_keys.chain: tag key is longer than 128"),
        ({"chain": "same", "network": "same"}, "tag_keys.chain and tag_keys.network are both 'same'"),
        ({"bad": KEYS["verified"]}, "tag_keys.bad and tag_keys.verified are both"),
    ],
)
def test_tag_keys_refused(tag_keys, message):
    with pytest.raises(sel.SnapshotCriteriaError) as err:
        sel.validate_tag_keys(tag_keys)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"chain": ""}, "chain: must be a non-empty string"),
        ({"chain": None}, "chain: must be a non-empty string"),
        ({"network": "main*"}, "network: 'main*' contains a wildcard"),
        ({"client": "ge?h"}, "client: 'ge?h' contains a wildcard"),
        ({"data_format": "x" * 257}, "data_format: longer than 256"),
        ({"min_block_height": -1}, "min_block_height: must be 0 or more, got -1"),
        ({"min_block_height": True}, "min_block_height: must be an integer"),
        ({"min_size": 0}, "min_size: must be 1 or more, got 0"),
        ({"max_age": "7"}, "max_age: '7' is not a duration"),
        ({"tags": {KEYS["chain"]: "x"}}, "tags: 'chainops:chain' is the tag key of tag_keys.chain; use the chain option instead"),
        ({"tags": {"team": "*"}}, "tags.team: '*' contains a wildcard"),
        ({"tags": {"": "x"}}, "tags: tag keys must be non-empty strings"),
    ],
)
def test_selection_criteria_refused(kwargs, message):
    with pytest.raises(sel.SnapshotCriteriaError) as err:
        criteria(**kwargs)
    assert message in str(err.value)


def test_extra_tag_values_are_stringified_like_aws_tags():
    assert criteria(tags={"archive": True, "shard": 3}).tags == {"archive": "true", "shard": "3"}


@pytest.mark.parametrize(
    "owners,message",
    [([], "owner_ids: at least one owner"), (["me"], "owner_ids: 'me' is neither"), (["12345"], "owner_ids: '12345'")],
)
def test_owner_ids_refused(owners, message):
    with pytest.raises(sel.SnapshotCriteriaError) as err:
        sel.validate_owner_ids(owners)
    assert message in str(err.value)


def test_owner_ids_deduplicated_in_order():
    assert sel.validate_owner_ids(["self", ME, "self", "amazon"]) == ["self", ME, "amazon"]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({}, "keep_last or max_age: at least one retention rule is required"),
        ({"keep_last": 0}, "keep_last: must be 1 or more, got 0"),
        ({"keep_last": 2, "max_age": "soon"}, "max_age: 'soon' is not a duration"),
        ({"keep_last": 2, "chain": "eth*"}, "chain: 'eth*' contains a wildcard"),
        ({"keep_last": 2, "tags": {KEYS["network"]: "x"}}, "'chainops:network' is the tag key of tag_keys.network; use the network option"),
        ({"keep_last": 2, "tags": {KEYS["verified"]: "x"}}, "tag_keys.verified; it cannot also be an extra tag"),
    ],
)
def test_retention_policy_refused(kwargs, message):
    with pytest.raises(sel.SnapshotCriteriaError) as err:
        sel.RetentionPolicy(**kwargs)
    assert message in str(err.value)


def test_describe_filters():
    c = criteria(client="geth", tags={"team": "a"})
    assert sel.describe_filters(c.required_tags()) == [
        {"Name": "status", "Values": ["completed"]},
        {"Name": "tag:chainops:chain", "Values": ["ethereum"]},
        {"Name": "tag:chainops:network", "Values": ["mainnet"]},
        {"Name": "tag:chainops:client", "Values": ["geth"]},
        {"Name": "tag:team", "Values": ["a"]},
    ]
    # Retention without a chain: only "must carry the chain key" is sent, the network key is
    # checked client-side (AWS ORs the values of one filter).
    assert sel.describe_filters({}, ["chainops:chain", "chainops:network"]) == [
        {"Name": "status", "Values": ["completed"]},
        {"Name": "tag-key", "Values": ["chainops:chain"]},
    ]


def test_collect_pages_follows_tokens_and_stops_on_a_loop():
    pages = {None: {"Items": [1, 2], "NextToken": "a"}, "a": {"Items": [3], "NextToken": "b"}, "b": {"Items": []}}
    seen = []

    def call(**params):
        seen.append(params)
        return pages[params.get("NextToken")]

    assert sel.collect_pages(call, "Items", MaxResults=2) == ([1, 2, 3], 3)
    assert seen[0] == {"MaxResults": 2} and seen[2] == {"MaxResults": 2, "NextToken": "b"}
    with pytest.raises(RuntimeError, match="repeated NextToken"):
        sel.collect_pages(lambda **p: {"Items": [], "NextToken": "same"}, "Items")


# ---------------------------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,verified,bad",
    [
        ("true", True, True),
        ("TRUE ", True, True),
        ("yes", True, True),
        ("1", True, True),
        ("false", False, False),
        ("No", False, False),
        ("", False, False),
        ("corrupt leveldb", False, True),
    ],
)
def test_flag_semantics(value, verified, bad):
    assert sel.flag_is_true(value) is verified
    assert sel.flag_marks_bad(value) is bad
    assert sel.flag_is_true(None) is False and sel.flag_marks_bad(None) is False


def test_start_time_accepts_iso_text_and_naive_datetimes():
    text = dict(snap("snap-a"), StartTime="2026-05-01T10:00:00.000Z")
    naive = dict(snap("snap-b"), StartTime=datetime.datetime(2026, 5, 1, 10, 0, 0))
    assert sel.Candidate(text, KEYS).start_time == sel.Candidate(naive, KEYS).start_time
    assert sel.Candidate(text, KEYS).start_time.tzinfo is not None


# ---------------------------------------------------------------------------------------------
# Selection: the tricky datasets
# ---------------------------------------------------------------------------------------------


def test_newest_is_pending():
    result = pick([snap("snap-done", height=100, age_days=2), snap("snap-pending", height=200, age_days=0, state="pending")])
    assert result.best.snapshot_id == "snap-done"
    assert rejected_reasons(result)["snap-pending"] == ["state is pending (42%), not completed"]


def test_higher_height_but_older_wins():
    result = pick([snap("snap-old-high", height=500, age_days=9), snap("snap-new-low", height=400, age_days=0.1)])
    assert result.best.snapshot_id == "snap-old-high"
    assert "highest block height (500)" in result.reason and "snap-new-low at 400" in result.reason


def test_wrong_network_tag():
    result = pick([snap("snap-goerli", height=900, network="goerli"), snap("snap-main", height=100)])
    assert result.best.snapshot_id == "snap-main"
    assert rejected_reasons(result)["snap-goerli"] == ["tag chainops:network is 'goerli', wanted 'mainnet'"]


def test_missing_chain_tag_is_a_reason():
    result = pick([snap("snap-x", chain=None)], owner_ids=None)
    assert rejected_reasons(result)["snap-x"] == ["tag chainops:chain is missing (wanted 'ethereum')"]


def test_other_owner():
    result = pick([snap("snap-theirs", height=900, owner=OTHER), snap("snap-mine", height=100)])
    assert result.best.snapshot_id == "snap-mine"
    assert rejected_reasons(result)["snap-theirs"] == ["owner %s is not an accepted owner" % OTHER]
    # And the other way round when the other account is the one asked for.
    assert pick([snap("snap-theirs", owner=OTHER), snap("snap-mine")], owner_ids=[OTHER]).best.snapshot_id == "snap-theirs"


def test_owner_alias_accepted():
    amazon = dict(snap("snap-amzn", owner="801119661308"), OwnerAlias="amazon")
    result = pick([amazon], owner_ids=None, owner_aliases=["amazon"])
    assert result.best.snapshot_id == "snap-amzn"


def test_marked_bad():
    result = pick([snap("snap-bad", height=900, verified="true", bad="true"), snap("snap-ok", height=100)])
    assert result.best.snapshot_id == "snap-ok"
    assert rejected_reasons(result)["snap-bad"] == ["marked bad (chainops:bad='true')"]
    # A free-text reason still marks it bad; an explicit "false" does not.
    assert pick([snap("snap-b", bad="truncated at 1200")]).best is None
    assert pick([snap("snap-b", bad="false")]).best.snapshot_id == "snap-b"


def test_unverified_when_verified_required():
    data = [snap("snap-unverified", height=900), snap("snap-maybe", height=800, verified="maybe"),
            snap("snap-verified", height=100, verified="yes")]
    assert pick(data).best.snapshot_id == "snap-unverified"
    result = pick(data, require_verified=True)
    assert result.best.snapshot_id == "snap-verified"
    assert rejected_reasons(result)["snap-unverified"] == ["not marked verified (chainops:verified is None)"]
    assert rejected_reasons(result)["snap-maybe"] == ["not marked verified (chainops:verified is 'maybe')"]


def test_min_height_age_size_and_all_reasons_listed():
    data = [
        snap("snap-low", height=10),
        snap("snap-noheight"),
        snap("snap-garbage", height="12k"),
        snap("snap-old", height=1000, age_days=30),
        snap("snap-small", height=1000, size=8),
        snap("snap-ok", height=1000, size=100),
        snap("snap-everything", height=5, age_days=40, size=1, state="error", owner=OTHER, network="x", bad="1"),
    ]
    result = pick(data, min_block_height=100, max_age="7d", min_size=50)
    assert result.best.snapshot_id == "snap-ok"
    reasons = rejected_reasons(result)
    assert reasons["snap-low"] == ["block height 10 is below min_block_height 100"]
    assert reasons["snap-noheight"] == ["no chainops:block-height tag, min_block_height is 100"]
    assert reasons["snap-garbage"] == ["block-height tag chainops:block-height='12k' is not a non-negative integer"]
    assert reasons["snap-old"] == ["age 4w2d exceeds max_age 1w"]
    assert reasons["snap-small"] == ["size 8 GiB is below min_size 50 GiB"]
    assert len(reasons["snap-everything"]) == 7


def test_malformed_height_rejected_even_without_min_height():
    result = pick([snap("snap-garbage", height="1e9"), snap("snap-ok", height=1)])
    assert result.best.snapshot_id == "snap-ok"


def test_snapshots_without_height_rank_after_those_with_one():
    result = pick([snap("snap-noheight", age_days=0), snap("snap-height", height=0, age_days=5)])
    assert [c.snapshot_id for c in result.qualified] == ["snap-height", "snap-noheight"]


def test_tie_on_height_newest_wins_then_lowest_id():
    result = pick([snap("snap-b", height=7, age_days=1), snap("snap-c", height=7, age_days=2), snap("snap-a", height=7, age_days=1)])
    assert [c.snapshot_id for c in result.qualified] == ["snap-a", "snap-b", "snap-c"]
    assert "lowest snapshot id wins" in result.reason
    newer = pick([snap("snap-b", height=7, age_days=1), snap("snap-a", height=7, age_days=2)])
    assert newer.best.snapshot_id == "snap-b" and "is the newest" in newer.reason


def test_nothing_qualifies():
    result = pick([snap("snap-x", network="goerli")])
    assert result.best is None and result.as_dict()["found"] is False
    assert result.reason == "no snapshot meets every criterion (1 candidate(s) rejected)"
    assert pick([]).as_dict() == {"found": False, "snapshot": None, "snapshot_id": None,
                                  "reason": "no snapshot meets every criterion (0 candidate(s) rejected)",
                                  "qualified": [], "rejected": []}


def test_result_dict_shape():
    out = pick([snap("snap-a", height=3, verified="true")]).as_dict()
    assert out["snapshot_id"] == "snap-a" and out["found"] is True
    assert out["snapshot"]["block_height"] == 3 and out["snapshot"]["verified"] is True
    assert out["snapshot"]["tags"][KEYS["chain"]] == "ethereum"
    assert out["snapshot"]["start_time"] == "2026-04-30T12:00:00+00:00"
    assert out["reason"] == "snap-a is the only snapshot that meets every criterion"


def test_custom_tag_keys():
    keys = {"chain": "Chain", "network": "Net", "block_height": "Height", "verified": "QA"}
    custom = {"SnapshotId": "snap-custom", "StartTime": NOW, "State": "completed", "OwnerId": ME, "VolumeSize": 1,
              "Tags": [{"Key": "Chain", "Value": "ethereum"}, {"Key": "Net", "Value": "mainnet"},
                       {"Key": "Height", "Value": "5"}, {"Key": "QA", "Value": "true"}]}
    default_tagged = snap("snap-default", height=99, verified="true")
    result = pick([custom, default_tagged], tag_keys=keys, require_verified=True)
    assert result.best.snapshot_id == "snap-custom" and result.best.block_height == 5
    assert "tag Chain is missing (wanted 'ethereum')" in rejected_reasons(result)["snap-default"]


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------


def plan(snapshots, refs=None, **kwargs):
    kwargs.setdefault("owner_id", ME)
    return sel.plan_retention(snapshots, sel.RetentionPolicy(**kwargs), refs or {}, NOW)


def ids(items):
    return sorted(item["snapshot_id"] for item in items)


def group_dataset():
    return [
        snap("snap-m1", height=500, age_days=1, verified="true", bad="true"),
        snap("snap-m2", height=400, age_days=2),
        snap("snap-m3", height=300, age_days=10, verified="true"),
        snap("snap-m4", height=200, age_days=20),
        snap("snap-m5", height=100, age_days=40),
        snap("snap-m6", height=50, age_days=50),
        snap("snap-g1", height=10, age_days=60, network="goerli"),
        snap("snap-g2", height=5, age_days=70, network="goerli"),
    ]


REFS = {"snap-m5": ["used by AMI ami-1 (available)"], "snap-m6": ["source of volume vol-1 being created"]}


def test_keep_last_with_guards():
    result = plan(group_dataset(), REFS, keep_last=2)
    assert ids(result.delete) == ["snap-m4"]
    kept = dict((item["snapshot_id"], item["reasons"]) for item in result.keep)
    # m1 is verified but bad, so m3 is the protected newest verified one.
    assert kept["snap-m3"] == ["newest verified snapshot of ethereum/mainnet",
                               "the rules alone would delete it: rank 3 beyond keep_last 2"]
    assert kept["snap-m5"][0] == "used by AMI ami-1 (available)"
    assert kept["snap-m6"][0] == "source of volume vol-1 being created"
    assert dict((g["group"], (g["total"], g["deleted"], g["newest_verified"])) for g in result.groups) == {
        "ethereum/goerli": (2, 0, None),
        "ethereum/mainnet": (6, 1, "snap-m3"),
    }


def test_max_age_only():
    assert ids(plan(group_dataset(), REFS, max_age="15d").delete) == ["snap-g1", "snap-g2", "snap-m4"]


def test_keep_last_is_a_floor_with_max_age():
    result = plan(group_dataset(), REFS, keep_last=1, max_age="5d")
    assert ids(result.delete) == ["snap-g2", "snap-m4"]
    assert dict((i["snapshot_id"], i["reasons"]) for i in result.delete)["snap-m4"] == [
        "rank 4 beyond keep_last 1", "age 2w6d beyond max_age 5d"]


def test_without_guards_everything_beyond_the_rules_goes():
    assert ids(plan(group_dataset(), keep_last=1).delete) == [
        "snap-g2", "snap-m2", "snap-m4", "snap-m5", "snap-m6"]


def test_scope_and_ignored():
    data = group_dataset() + [
        snap("snap-pending", height=1, age_days=90, state="pending"),
        snap("snap-theirs", height=1, age_days=90, owner=OTHER),
        snap("snap-nonet", height=1, age_days=90, network=None),
    ]
    result = plan(data, keep_last=1, chain="ethereum", network="goerli")
    assert ids(result.delete) == ["snap-g2"]
    ignored = dict((i["snapshot_id"], i["reasons"]) for i in result.ignored)
    assert ignored["snap-pending"][0] == "state is pending: only completed snapshots are managed"
    assert ignored["snap-theirs"][0] == "owned by %s, not this account" % OTHER
    assert "no chainops:chain/chainops:network tag: not managed" in ignored["snap-nonet"]
    assert "tag chainops:network is 'mainnet', outside the scope 'goerli'" in ignored["snap-m1"]


def test_refs_from_images_and_volumes():
    images = [{"ImageId": "ami-1", "State": "disabled", "BlockDeviceMappings": [
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-a"}}, {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}]}]
    volumes = [{"VolumeId": "vol-1", "State": "creating", "SnapshotId": "snap-a"},
               {"VolumeId": "vol-2", "State": "available", "SnapshotId": "snap-b"},
               {"VolumeId": "vol-3", "State": "creating", "SnapshotId": ""}]
    refs = sel.merge_refs(sel.snapshot_refs_from_images(images), sel.snapshot_refs_from_volumes(volumes))
    assert refs == {"snap-a": ["used by AMI ami-1 (disabled)", "source of volume vol-1 being created"]}


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------

CHAINS = ["ethereum", "litecoin"]
NETWORKS = ["mainnet", "testnet"]
CLIENTS = ["geth", "erigon"]
FORMATS = ["v1", "v2"]
HEIGHTS = [None, "0", "7", "7", "7", "100", "100", "250", " 99 ", "12k", "", "-3"]
FLAGS = [None, "true", "yes", "TRUE", "1", "false", "no", "", "maybe", "corrupt"]
TRUE = ["true", "yes", "TRUE", "1", " on "]
NOT_TRUE = [None, "false", "no", "", "maybe", "verified"]
BAD = ["true", "1", "corrupt", "YES", "maybe"]
NOT_BAD = [None, None, None, "false", "no", "0", "", " OFF "]
OWNERS = [ME, OTHER]


BREAKABLE = ["chain", "network", "client", "data_format", "team", "state", "owner", "verified", "bad"]


def _tag(draw, wanted, pool, broken):
    """The wanted value, or (when this criterion is the one broken) a different value or none."""
    if broken:
        return draw(st.sampled_from([None] + [value for value in pool if value != wanted]))
    if wanted is not None:
        return wanted
    return draw(st.sampled_from([None] + pool))


@st.composite
def snapshot_sets(draw, params=None):
    """Snapshots that mostly meet the criteria; each of the others breaks one criterion on purpose
    (heights, start times and sizes vary freely), so every check is exercised on its own."""
    p = params or {}
    count = draw(st.integers(min_value=0, max_value=14))
    ids_ = draw(st.lists(st.integers(min_value=0, max_value=10**6), min_size=count, max_size=count, unique=True))
    result = []
    for number in ids_:
        broken = draw(st.sampled_from([None] * len(BREAKABLE) + BREAKABLE))
        tags = {}
        for name, pool in (("chain", CHAINS), ("network", NETWORKS), ("client", CLIENTS), ("data_format", FORMATS)):
            value = _tag(draw, p.get(name), pool, broken == name)
            if value is not None:
                tags[KEYS[name]] = value
        team = _tag(draw, (p.get("tags") or {}).get("team"), ["a", "b"], broken == "team")
        if team is not None:
            tags["team"] = team
        height = draw(st.sampled_from(HEIGHTS))
        if height is not None:
            tags[KEYS["block_height"]] = height
        if p.get("require_verified"):
            verified = draw(st.sampled_from(NOT_TRUE if broken == "verified" else TRUE))
        else:
            verified = draw(st.sampled_from(FLAGS))
        if verified is not None:
            tags[KEYS["verified"]] = verified
        bad = draw(st.sampled_from(BAD if broken == "bad" else NOT_BAD))
        if bad is not None:
            tags[KEYS["bad"]] = bad
        owners = p.get("owner_ids") or OWNERS
        others = [owner for owner in OWNERS if owner not in owners]
        owner = draw(st.sampled_from(others if broken == "owner" and others else owners))
        result.append({
            "SnapshotId": "snap-%017x" % number,
            # A few fixed instants so ties on start time happen often.
            "StartTime": NOW - datetime.timedelta(hours=draw(st.sampled_from([0, 1, 1, 30, 200, 2000]))),
            "State": draw(st.sampled_from(["pending", "error"])) if broken == "state" else "completed",
            "VolumeSize": draw(st.sampled_from([1, 50, 100, 500, 500, 500])),
            "OwnerId": owner,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        })
    return result


@st.composite
def criteria_params(draw):
    return dict(
        chain=draw(st.sampled_from(CHAINS)),
        network=draw(st.sampled_from(NETWORKS)),
        client=draw(st.sampled_from([None] + CLIENTS)),
        data_format=draw(st.sampled_from([None] + FORMATS)),
        tags=draw(st.sampled_from([{}, {"team": "a"}])),
        owner_ids=draw(st.sampled_from([[ME], [OTHER], [ME, OTHER]])),
        min_block_height=draw(st.sampled_from([None, 0, 7, 100])),
        max_age=draw(st.sampled_from([None, "1h", "2d", "30d"])),
        min_size=draw(st.sampled_from([None, 1, 100])),
        require_verified=draw(st.booleans()),
    )


@st.composite
def scenarios(draw):
    params = draw(criteria_params())
    return draw(snapshot_sets(params)), params


def oracle_qualifies(snapshot, p):
    """The issue's criteria, restated independently of the implementation."""
    tags = dict((t["Key"], t["Value"]) for t in snapshot["Tags"])
    if snapshot["State"] != "completed" or snapshot["OwnerId"] not in p["owner_ids"]:
        return False
    wanted = {KEYS["chain"]: p["chain"], KEYS["network"]: p["network"]}
    if p["client"]:
        wanted[KEYS["client"]] = p["client"]
    if p["data_format"]:
        wanted[KEYS["data_format"]] = p["data_format"]
    wanted.update(p["tags"])
    if any(tags.get(k) != v for k, v in wanted.items()):
        return False
    raw = tags.get(KEYS["block_height"])
    height = None
    if raw is not None:
        stripped = raw.strip()
        if not (stripped and all(ch in "0123456789" for ch in stripped)):
            return False
        height = int(stripped)
    if p["min_block_height"] is not None and (height is None or height < p["min_block_height"]):
        return False
    if p["max_age"] is not None:
        limit = {"1h": 3600, "2d": 172800, "30d": 2592000}[p["max_age"]]
        if (NOW - snapshot["StartTime"]).total_seconds() > limit:
            return False
    if p["min_size"] is not None and snapshot["VolumeSize"] < p["min_size"]:
        return False
    verified = (tags.get(KEYS["verified"]) or "").strip().lower() in ("true", "yes", "1", "on")
    if p["require_verified"] and not verified:
        return False
    bad = tags.get(KEYS["bad"])
    if bad is not None and bad.strip().lower() not in ("false", "no", "0", "off", ""):
        return False
    return True


def oracle_height(snapshot):
    raw = dict((t["Key"], t["Value"]) for t in snapshot["Tags"]).get(KEYS["block_height"])
    return int(raw.strip()) if raw is not None else None


@PROPERTY
@given(scenarios())
def test_property_selection_never_violates_a_criterion_and_picks_the_best(scenario):
    snapshots, params = scenario
    result = sel.select_snapshot(snapshots, sel.SelectionCriteria(**params), NOW)
    qualifying = [s for s in snapshots if oracle_qualifies(s, params)]
    assert sorted(c.snapshot_id for c in result.qualified) == sorted(s["SnapshotId"] for s in qualifying)
    assert len(result.qualified) + len(result.rejected) == len(snapshots)
    assert all(reasons for dummy, reasons in result.rejected)
    if not qualifying:
        assert result.best is None
        return
    best = dict((s["SnapshotId"], s) for s in qualifying)[result.best.snapshot_id]
    assert oracle_qualifies(best, params)
    # Nothing qualifying beats it: higher height, or same height and newer, or full tie and lower id.
    for other in qualifying:
        h_best, h_other = oracle_height(best), oracle_height(other)
        if h_other is not None and (h_best is None or h_other > h_best):
            pytest.fail("%s has a higher height than the pick" % other["SnapshotId"])
        if h_other == h_best:
            assert other["StartTime"] <= best["StartTime"]
            if other["StartTime"] == best["StartTime"]:
                assert best["SnapshotId"] <= other["SnapshotId"]


@PROPERTY
@given(scenarios(), st.randoms(use_true_random=False))
def test_property_selection_is_order_independent(scenario, rnd):
    snapshots, params = scenario
    first = sel.select_snapshot(snapshots, sel.SelectionCriteria(**params), NOW).as_dict()
    shuffled = list(snapshots)
    rnd.shuffle(shuffled)
    for snapshot in shuffled:
        tags = list(snapshot["Tags"])
        rnd.shuffle(tags)
        snapshot["Tags"] = tags
    assert sel.select_snapshot(shuffled, sel.SelectionCriteria(**params), NOW).as_dict() == first


@PROPERTY
@given(
    snapshot_sets({"owner_ids": [ME], "chain": "ethereum", "network": "mainnet"}),
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([None, "1h", "2d", "30d"]),
    st.lists(st.integers(min_value=0, max_value=13), max_size=3),
    st.randoms(use_true_random=False),
)
def test_property_retention_never_deletes_protected_and_honours_the_rules(snapshots, keep_last, max_age, ref_idx, rnd):
    if keep_last is None and max_age is None:
        keep_last = 1
    refs = dict((snapshots[i]["SnapshotId"], ["used by AMI ami-%d (available)" % i]) for i in ref_idx if i < len(snapshots))
    policy = sel.RetentionPolicy(keep_last=keep_last, max_age=max_age, owner_id=ME)
    result = sel.plan_retention(snapshots, policy, refs, NOW)
    deleted = set(ids(result.delete))
    assert not deleted & set(refs)
    assert set(ids(result.delete)) | set(ids(result.keep)) | set(ids(result.ignored)) == set(s["SnapshotId"] for s in snapshots)
    by_id = dict((s["SnapshotId"], s) for s in snapshots)
    groups = {}
    for snapshot in snapshots:
        tags = dict((t["Key"], t["Value"]) for t in snapshot["Tags"])
        if snapshot["State"] != "completed" or snapshot["OwnerId"] != ME:
            assert snapshot["SnapshotId"] not in deleted
            continue
        if KEYS["chain"] not in tags or KEYS["network"] not in tags:
            assert snapshot["SnapshotId"] not in deleted
            continue
        groups.setdefault((tags[KEYS["chain"]], tags[KEYS["network"]]), []).append(snapshot)
    limit = {None: None, "1h": 3600, "2d": 172800, "30d": 2592000}[max_age]
    for members in groups.values():
        members.sort(key=lambda s: sel.Candidate(s, KEYS).sort_key())
        good_verified = [s for s in members if sel.flag_is_true(dict((t["Key"], t["Value"]) for t in s["Tags"]).get(KEYS["verified"]))
                         and not sel.flag_marks_bad(dict((t["Key"], t["Value"]) for t in s["Tags"]).get(KEYS["bad"]))]
        guarded = set(refs)
        if good_verified:
            guarded.add(good_verified[0]["SnapshotId"])
        for rank, snapshot in enumerate(members, start=1):
            young = limit is not None and (NOW - snapshot["StartTime"]).total_seconds() <= limit
            kept_by_rule = (keep_last is not None and rank <= keep_last) or young
            # Exact: deleted if and only if no rule and no guard keeps it.
            assert (snapshot["SnapshotId"] in deleted) == (not kept_by_rule and snapshot["SnapshotId"] not in guarded)
    for snapshot_id in deleted:
        assert by_id[snapshot_id]["State"] == "completed"
    # Order independence of the plan.
    shuffled = list(snapshots)
    rnd.shuffle(shuffled)
    again = sel.plan_retention(shuffled, policy, refs, NOW)
    assert (again.delete, again.keep, again.ignored, again.groups) == (result.delete, result.keep, result.ignored, result.groups)
