# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""EBS snapshot selection and retention: the pure decision logic.

The ``ebs_snapshot_select`` and ``ebs_snapshot_retention`` modules only fetch data and act on the
decisions made here, so every rule can be tested without AWS. Snapshots come in as the dicts
DescribeSnapshots returns (``SnapshotId``, ``StartTime``, ``State``, ``Tags``...); nothing here
imports boto3.

Ordering ("best first", used by both modules): the highest valid block-height tag first
(snapshots without one after all that have one), then the newest ``StartTime``, then the
lowest ``SnapshotId``. Snapshot ids are unique, so this is a total order and the result does
not depend on the order the API returned the snapshots in.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

DEFAULT_TAG_KEYS = {
    "chain": "chainops:chain",
    "network": "chainops:network",
    "client": "chainops:client",
    "data_format": "chainops:data-format",
    "block_height": "chainops:block-height",
    "verified": "chainops:verified",
    "bad": "chainops:bad",
}

# Criteria matched as exact tag values; the modules also send them as server-side filters.
EXACT_TAG_CRITERIA = ("chain", "network", "client", "data_format")

# "verified" must be explicitly true; "bad" counts unless explicitly false, so a typo or a
# free-text reason ("bad: corrupt leveldb") never makes a broken snapshot eligible.
TRUE_VALUES = frozenset(("true", "yes", "1", "on"))
FALSE_VALUES = frozenset(("false", "no", "0", "off", ""))

OWNER_ALIASES = frozenset(("self", "amazon", "aws-marketplace"))
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
HEIGHT = re.compile(r"^[0-9]+$")
DURATION_PART = re.compile(r"([0-9]+)\s*([smhdw])")
DURATION = re.compile(r"^\s*(?:[0-9]+\s*[smhdw]\s*)+$")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# AWS tag keys are at most 128 characters, values at most 256.
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = datetime.timedelta(microseconds=1)


class SnapshotCriteriaError(ValueError):
    """An option value is invalid; the message starts with the option's name."""


# ---------------------------------------------------------------------------------------------
# Option parsing and validation
# ---------------------------------------------------------------------------------------------


def parse_duration(value, option):
    """``"30d"``, ``"12h"``, ``"1w2d"``... into a timedelta; a bare number is refused as ambiguous."""
    if isinstance(value, datetime.timedelta):
        return value
    text = "" if value is None else str(value)
    if not DURATION.match(text):
        raise SnapshotCriteriaError(
            "%s: %r is not a duration; use a number with a unit s, m, h, d or w, e.g. '30d' or '1d12h'"
            % (option, value)
        )
    seconds = sum(int(number) * DURATION_UNITS[unit] for number, unit in DURATION_PART.findall(text))
    if seconds <= 0:
        raise SnapshotCriteriaError("%s: %r must be longer than zero" % (option, value))
    return datetime.timedelta(seconds=seconds)


def format_duration(delta):
    """Largest exact-ish unit, for messages: 3 days 4 hours -> '3d4h'."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = DURATION_UNITS[unit]
        if seconds >= size:
            parts.append("%d%s" % (seconds // size, unit))
            seconds %= size
    return "".join(parts) or "0s"


def validate_tag_keys(tag_keys, option="tag_keys"):
    """Merge user tag keys over the defaults; refuse empty, over-long, or colliding keys."""
    merged = dict(DEFAULT_TAG_KEYS)
    for name, key in (tag_keys or {}).items():
        if name not in DEFAULT_TAG_KEYS:
            raise SnapshotCriteriaError(
                "%s: unknown entry %r; known entries are %s" % (option, name, ", ".join(sorted(DEFAULT_TAG_KEYS)))
            )
        if key is None:
            continue
        if not isinstance(key, str) or not key.strip():
            raise SnapshotCriteriaError("%s.%s: a tag key must be a non-empty string" % (option, name))
        if len(key) > MAX_TAG_KEY:
            raise SnapshotCriteriaError("%s.%s: tag key is longer than %d characters" % (option, name, MAX_TAG_KEY))
        merged[name] = key
    seen = {}
    for name in sorted(merged):
        key = merged[name]
        if key in seen:
            # One tag cannot mean two things; e.g. chain == network would match nonsense.
            raise SnapshotCriteriaError(
                "%s.%s and %s.%s are both %r; each entry needs its own tag key" % (option, seen[key], option, name, key)
            )
        seen[key] = name
    return merged


def validate_tag_value(value, option):
    """A value used both as an exact match and as a server-side filter value."""
    if not isinstance(value, str) or value == "":
        raise SnapshotCriteriaError("%s: must be a non-empty string" % option)
    if len(value) > MAX_TAG_VALUE:
        raise SnapshotCriteriaError("%s: longer than %d characters" % (option, MAX_TAG_VALUE))
    # DescribeSnapshots treats * and ? as wildcards; the client-side check is exact, so the two
    # would disagree. Refuse instead of guessing.
    if "*" in value or "?" in value:
        raise SnapshotCriteriaError("%s: %r contains a wildcard (* or ?); only exact values are supported" % (option, value))
    return value


def validate_extra_tags(tags, tag_keys, dedicated=(), option="tags"):
    """Extra exact-match tags; ``dedicated`` names the tag_keys entries that have their own option."""
    result = {}
    reserved = dict((key, name) for name, key in tag_keys.items())
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not key:
            raise SnapshotCriteriaError("%s: tag keys must be non-empty strings" % option)
        if key in reserved:
            name = reserved[key]
            hint = "use the %s option instead" % name if name in dedicated else "it cannot also be an extra tag"
            raise SnapshotCriteriaError("%s: %r is the tag key of tag_keys.%s; %s" % (option, key, name, hint))
        if isinstance(value, bool) or isinstance(value, (int, float)):
            # YAML turns `true`/`1` into non-strings; tags are always strings in AWS.
            value = str(value).lower() if isinstance(value, bool) else str(value)
        result[key] = validate_tag_value(value, "%s.%s" % (option, key))
    return result


def validate_owner_ids(owner_ids, option="owner_ids"):
    if not owner_ids:
        raise SnapshotCriteriaError("%s: at least one owner is needed (e.g. 'self')" % option)
    result = []
    for owner in owner_ids:
        owner = str(owner).strip()
        if owner not in OWNER_ALIASES and not ACCOUNT_ID.match(owner):
            raise SnapshotCriteriaError(
                "%s: %r is neither a 12-digit account id nor one of %s" % (option, owner, ", ".join(sorted(OWNER_ALIASES)))
            )
        if owner not in result:
            result.append(owner)
    return result


def _optional_int(value, option, minimum):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SnapshotCriteriaError("%s: must be an integer" % option)
    if value < minimum:
        raise SnapshotCriteriaError("%s: must be %d or more, got %d" % (option, minimum, value))
    return value


class SelectionCriteria:
    """What a snapshot must satisfy to be restored onto a node."""

    def __init__(
        self,
        chain,
        network,
        client=None,
        data_format=None,
        tags=None,
        owner_ids=None,
        owner_aliases=None,
        min_block_height=None,
        max_age=None,
        min_size=None,
        require_verified=False,
        tag_keys=None,
    ):
        self.tag_keys = validate_tag_keys(tag_keys)
        self.chain = validate_tag_value(chain, "chain")
        self.network = validate_tag_value(network, "network")
        self.client = None if client is None else validate_tag_value(client, "client")
        self.data_format = None if data_format is None else validate_tag_value(data_format, "data_format")
        self.tags = validate_extra_tags(tags, self.tag_keys, EXACT_TAG_CRITERIA)
        # Explicit account ids and owner aliases (e.g. 'amazon') the OwnerId/OwnerAlias must be in.
        # None means "not checked client-side" (only the server-side OwnerIds applies).
        self.owner_ids = None if owner_ids is None else frozenset(owner_ids)
        self.owner_aliases = frozenset(owner_aliases or ())
        self.min_block_height = _optional_int(min_block_height, "min_block_height", 0)
        self.max_age = None if max_age is None else parse_duration(max_age, "max_age")
        self.min_size = _optional_int(min_size, "min_size", 1)
        self.require_verified = bool(require_verified)

    def required_tags(self):
        """Exact tag matches, as {tag key: value}, in a stable order."""
        required = {}
        for name in EXACT_TAG_CRITERIA:
            value = getattr(self, name)
            if value is not None:
                required[self.tag_keys[name]] = value
        for key in sorted(self.tags):
            required[key] = self.tags[key]
        return required


class RetentionPolicy:
    """Which snapshots of each chain+network group to keep."""

    def __init__(self, keep_last=None, max_age=None, chain=None, network=None, tags=None, tag_keys=None, owner_id=None):
        if keep_last is None and max_age is None:
            raise SnapshotCriteriaError("keep_last or max_age: at least one retention rule is required")
        self.tag_keys = validate_tag_keys(tag_keys)
        self.keep_last = _optional_int(keep_last, "keep_last", 1)
        self.max_age = None if max_age is None else parse_duration(max_age, "max_age")
        self.chain = None if chain is None else validate_tag_value(chain, "chain")
        self.network = None if network is None else validate_tag_value(network, "network")
        self.tags = validate_extra_tags(tags, self.tag_keys, ("chain", "network"))
        # Only snapshots of this account are ever pruned; None disables the client-side check.
        self.owner_id = owner_id

    def scope_tags(self):
        scope = {}
        if self.chain is not None:
            scope[self.tag_keys["chain"]] = self.chain
        if self.network is not None:
            scope[self.tag_keys["network"]] = self.network
        for key in sorted(self.tags):
            scope[key] = self.tags[key]
        return scope


# ---------------------------------------------------------------------------------------------
# Server-side filters
# ---------------------------------------------------------------------------------------------


def describe_filters(required_tags, require_tag_keys=()):
    """DescribeSnapshots ``Filters`` for completed snapshots carrying the given tags.

    Only exact matches go to the server (one value per filter, so the filters AND together);
    everything else, and these again, is checked client-side.
    """
    filters = [{"Name": "status", "Values": ["completed"]}]
    for key, value in required_tags.items():
        filters.append({"Name": "tag:%s" % key, "Values": [value]})
    keys = [key for key in require_tag_keys if key not in required_tags]
    if keys:
        # AWS ORs the values of one filter, so only one "must carry this key" filter is useful.
        filters.append({"Name": "tag-key", "Values": [keys[0]]})
    return filters


def collect_pages(call, result_key, **params):
    """Follow NextToken through every page of a Describe* call; returns (items, page count).

    ``call`` is the client method (already wrapped for retries), so each page is retried on its
    own instead of restarting the whole listing after a throttle.
    """
    items = []
    pages = 0
    token = None
    seen = set()
    while True:
        request = dict(params)
        if token:
            request["NextToken"] = token
        page = call(**request)
        pages += 1
        items.extend(page.get(result_key) or [])
        token = page.get("NextToken")
        if not token:
            return items, pages
        if token in seen:
            # A server that hands out the same token twice would otherwise loop forever.
            raise RuntimeError("%s pagination repeated NextToken %r" % (result_key, token))
        seen.add(token)


# ---------------------------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------------------------


def parse_time(value):
    """A StartTime (datetime from botocore, or ISO 8601 text) as an aware UTC datetime."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = datetime.datetime.fromisoformat(text)
    else:
        raise ValueError("StartTime %r is neither a datetime nor ISO 8601 text" % (value,))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def tag_dict(tags):
    """[{'Key': k, 'Value': v}, ...] (or an already flat dict) into {k: v}."""
    if isinstance(tags, dict):
        return dict(tags)
    return dict((tag.get("Key"), tag.get("Value", "")) for tag in tags or [])


def flag_is_true(value):
    return value is not None and value.strip().lower() in TRUE_VALUES


def flag_marks_bad(value):
    return value is not None and value.strip().lower() not in FALSE_VALUES


class Candidate:
    """One snapshot, normalised for decisions."""

    def __init__(self, snapshot, tag_keys):
        self.snapshot_id = snapshot["SnapshotId"]
        self.start_time = parse_time(snapshot["StartTime"])
        self.state = snapshot.get("State")
        self.progress = snapshot.get("Progress")
        self.volume_size = snapshot.get("VolumeSize")
        self.owner_id = snapshot.get("OwnerId")
        self.owner_alias = snapshot.get("OwnerAlias")
        self.description = snapshot.get("Description")
        self.volume_id = snapshot.get("VolumeId")
        self.encrypted = snapshot.get("Encrypted")
        self.kms_key_id = snapshot.get("KmsKeyId")
        self.tags = tag_dict(snapshot.get("Tags"))
        self.chain = self.tags.get(tag_keys["chain"])
        self.network = self.tags.get(tag_keys["network"])
        self.verified = flag_is_true(self.tags.get(tag_keys["verified"]))
        self.bad = flag_marks_bad(self.tags.get(tag_keys["bad"]))
        raw_height = self.tags.get(tag_keys["block_height"])
        self.raw_block_height = raw_height
        self.block_height = None
        self.height_error = None
        if raw_height is not None:
            if HEIGHT.match(raw_height.strip()):
                self.block_height = int(raw_height.strip())
            else:
                self.height_error = "block-height tag %s=%r is not a non-negative integer" % (tag_keys["block_height"], raw_height)

    def sort_key(self):
        """Ascending sort puts the best snapshot first (see the module docstring)."""
        has_height = self.block_height is not None
        start = (self.start_time - EPOCH) // ONE_MICROSECOND
        return (0 if has_height else 1, -(self.block_height or 0), -start, self.snapshot_id)

    def summary(self):
        return {
            "snapshot_id": self.snapshot_id,
            "block_height": self.block_height,
            "start_time": self.start_time.isoformat(),
            "state": self.state,
            "volume_size": self.volume_size,
            "owner_id": self.owner_id,
            "verified": self.verified,
            "bad": self.bad,
        }

    def details(self):
        """The chosen snapshot as the modules return it."""
        result = self.summary()
        result.update(
            {
                "progress": self.progress,
                "owner_alias": self.owner_alias,
                "description": self.description,
                "volume_id": self.volume_id,
                "encrypted": self.encrypted,
                "kms_key_id": self.kms_key_id,
                "tags": dict(self.tags),
                "chain": self.chain,
                "network": self.network,
            }
        )
        return result


def candidates(snapshots, tag_keys):
    """Normalise, dropping exact duplicates that pagination under concurrent changes can return."""
    result = {}
    for snapshot in snapshots:
        candidate = Candidate(snapshot, tag_keys)
        result.setdefault(candidate.snapshot_id, candidate)
    return sorted(result.values(), key=Candidate.sort_key)


# ---------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------


def rejection_reasons(candidate, criteria, now):
    """Every criterion the snapshot fails, as sentences; empty when it qualifies."""
    reasons = []
    keys = criteria.tag_keys
    if candidate.state != "completed":
        progress = " (%s)" % candidate.progress if candidate.progress else ""
        reasons.append("state is %s%s, not completed" % (candidate.state, progress))
    if criteria.owner_ids is not None or criteria.owner_aliases:
        owner_ok = (criteria.owner_ids is not None and candidate.owner_id in criteria.owner_ids) or (
            candidate.owner_alias is not None and candidate.owner_alias in criteria.owner_aliases
        )
        if not owner_ok:
            reasons.append("owner %s is not an accepted owner" % candidate.owner_id)
    for key, wanted in criteria.required_tags().items():
        actual = candidate.tags.get(key)
        if actual is None:
            reasons.append("tag %s is missing (wanted %r)" % (key, wanted))
        elif actual != wanted:
            reasons.append("tag %s is %r, wanted %r" % (key, actual, wanted))
    if candidate.height_error:
        reasons.append(candidate.height_error)
    elif criteria.min_block_height is not None:
        if candidate.block_height is None:
            reasons.append("no %s tag, min_block_height is %d" % (keys["block_height"], criteria.min_block_height))
        elif candidate.block_height < criteria.min_block_height:
            reasons.append("block height %d is below min_block_height %d" % (candidate.block_height, criteria.min_block_height))
    if criteria.max_age is not None:
        age = now - candidate.start_time
        if age > criteria.max_age:
            reasons.append("age %s exceeds max_age %s" % (format_duration(age), format_duration(criteria.max_age)))
    if criteria.min_size is not None:
        if candidate.volume_size is None or candidate.volume_size < criteria.min_size:
            reasons.append("size %s GiB is below min_size %d GiB" % (candidate.volume_size, criteria.min_size))
    if criteria.require_verified and not candidate.verified:
        reasons.append("not marked verified (%s is %r)" % (keys["verified"], candidate.tags.get(keys["verified"])))
    if candidate.bad:
        reasons.append("marked bad (%s=%r)" % (keys["bad"], candidate.tags.get(keys["bad"])))
    return reasons


def _why_first(best, runner_up, qualified_count):
    if runner_up is None:
        return "%s is the only snapshot that meets every criterion" % best.snapshot_id
    of = "of %d qualifying snapshots" % qualified_count
    if best.block_height is not None and runner_up.block_height != best.block_height:
        return "%s has the highest block height (%d) %s; next best is %s at %s" % (
            best.snapshot_id,
            best.block_height,
            of,
            runner_up.snapshot_id,
            "no height tag" if runner_up.block_height is None else runner_up.block_height,
        )
    tie = "at block height %d" % best.block_height if best.block_height is not None else "without block-height tags"
    if runner_up.start_time != best.start_time:
        return "%s is the newest (%s) %s, tied %s with %s" % (
            best.snapshot_id,
            best.start_time.isoformat(),
            of,
            tie,
            runner_up.snapshot_id,
        )
    return "%s ties %s with %s on start time too; the lowest snapshot id wins" % (best.snapshot_id, tie, runner_up.snapshot_id)


class SelectionResult:
    def __init__(self, best, qualified, rejected, reason):
        self.best = best
        self.qualified = qualified
        self.rejected = rejected
        self.reason = reason

    def as_dict(self):
        return {
            "found": self.best is not None,
            "snapshot": self.best.details() if self.best else None,
            "snapshot_id": self.best.snapshot_id if self.best else None,
            "reason": self.reason,
            "qualified": [candidate.summary() for candidate in self.qualified],
            "rejected": [dict(candidate.summary(), reasons=reasons) for candidate, reasons in self.rejected],
        }


def select_snapshot(snapshots, criteria, now):
    """Rank the snapshots and pick the best one that meets every criterion.

    ``now`` is an aware datetime (ages are relative to it). Qualified and rejected lists come back
    in preference order, so the whole result depends only on the set of snapshots given.
    """
    now = parse_time(now)
    qualified = []
    rejected = []
    for candidate in candidates(snapshots, criteria.tag_keys):
        reasons = rejection_reasons(candidate, criteria, now)
        if reasons:
            rejected.append((candidate, reasons))
        else:
            qualified.append(candidate)
    if qualified:
        best = qualified[0]
        reason = _why_first(best, qualified[1] if len(qualified) > 1 else None, len(qualified))
    else:
        best = None
        reason = "no snapshot meets every criterion (%d candidate(s) rejected)" % len(rejected)
    return SelectionResult(best, qualified, rejected, reason)


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------


def snapshot_refs_from_images(images):
    """{snapshot id: ['used by AMI ami-...', ...]} from DescribeImages output."""
    refs = {}
    for image in images or []:
        for mapping in image.get("BlockDeviceMappings") or []:
            snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
            if snapshot_id:
                refs.setdefault(snapshot_id, []).append(
                    "used by AMI %s (%s)" % (image.get("ImageId"), image.get("State", "unknown state"))
                )
    return refs


def snapshot_refs_from_volumes(volumes):
    """{snapshot id: ['source of volume vol-... being created']} from DescribeVolumes output."""
    refs = {}
    for volume in volumes or []:
        if volume.get("State") == "creating" and volume.get("SnapshotId"):
            refs.setdefault(volume["SnapshotId"], []).append("source of volume %s being created" % volume.get("VolumeId"))
    return refs


def merge_refs(*ref_maps):
    merged = {}
    for refs in ref_maps:
        for snapshot_id, reasons in refs.items():
            merged.setdefault(snapshot_id, []).extend(reasons)
    return merged


class RetentionPlan:
    def __init__(self, delete, keep, ignored, groups):
        self.delete = delete
        self.keep = keep
        self.ignored = ignored
        self.groups = groups


def plan_retention(snapshots, policy, protected_refs, now):
    """Decide, per chain+network group, which snapshots go.

    Rules: a snapshot is deleted only when no rule keeps it. ``keep_last`` keeps the first N of
    its group in preference order (so the one ``ebs_snapshot_select`` would pick stays); ``max_age``
    keeps those younger than the age. With both, keep_last works as a floor. Whatever the rules
    say, the best verified snapshot not marked bad, and any snapshot an AMI or a volume being
    created refers to, are kept.

    Returns a RetentionPlan whose lists hold dicts (summary + ``group`` + ``reasons``), in group
    order then preference order. ``ignored`` are snapshots the policy does not manage (not
    completed, other owner, outside the scope, no chain/network tag).
    """
    now = parse_time(now)
    keys = policy.tag_keys
    scope = policy.scope_tags()
    protected_refs = protected_refs or {}
    groups = {}
    ignored = []

    def entry(candidate, reasons, group=None):
        item = candidate.summary()
        item["chain"] = candidate.chain
        item["network"] = candidate.network
        item["group"] = group
        item["reasons"] = reasons
        return item

    for candidate in candidates(snapshots, keys):
        why_not = []
        if candidate.state != "completed":
            why_not.append("state is %s: only completed snapshots are managed" % candidate.state)
        if policy.owner_id is not None and candidate.owner_id != policy.owner_id:
            why_not.append("owned by %s, not this account" % candidate.owner_id)
        for key, wanted in scope.items():
            if candidate.tags.get(key) != wanted:
                why_not.append("tag %s is %r, outside the scope %r" % (key, candidate.tags.get(key), wanted))
        if candidate.chain is None or candidate.network is None:
            why_not.append("no %s/%s tag: not managed" % (keys["chain"], keys["network"]))
        if why_not:
            ignored.append(entry(candidate, why_not))
            continue
        groups.setdefault((candidate.chain, candidate.network), []).append(candidate)

    delete, keep, summaries = [], [], []
    for group_key in sorted(groups):
        members = groups[group_key]  # already in preference order
        group_name = "%s/%s" % group_key
        newest_verified = next((c for c in members if c.verified and not c.bad), None)
        deleted_here = 0
        for rank, candidate in enumerate(members, start=1):
            age = now - candidate.start_time
            keeps, expired = [], []
            if policy.keep_last is not None:
                if rank <= policy.keep_last:
                    keeps.append("rank %d within keep_last %d" % (rank, policy.keep_last))
                else:
                    expired.append("rank %d beyond keep_last %d" % (rank, policy.keep_last))
            if policy.max_age is not None:
                if age <= policy.max_age:
                    keeps.append("age %s within max_age %s" % (format_duration(age), format_duration(policy.max_age)))
                else:
                    expired.append("age %s beyond max_age %s" % (format_duration(age), format_duration(policy.max_age)))
            guards = []
            if candidate is newest_verified:
                guards.append("newest verified snapshot of %s" % group_name)
            guards.extend(protected_refs.get(candidate.snapshot_id, []))
            if keeps or guards:
                reasons = keeps + guards
                if not keeps:
                    # Say so: this is the snapshot a later run deletes once the guard goes away.
                    reasons.append("the rules alone would delete it: " + "; ".join(expired))
                keep.append(entry(candidate, reasons, group_name))
            else:
                delete.append(entry(candidate, expired, group_name))
                deleted_here += 1
        summaries.append(
            {
                "group": group_name,
                "chain": group_key[0],
                "network": group_key[1],
                "total": len(members),
                "deleted": deleted_here,
                "kept": len(members) - deleted_here,
                "newest_verified": newest_verified.snapshot_id if newest_verified else None,
            }
        )
    return RetentionPlan(delete, keep, ignored, summaries)
