# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Snapshot archives: manifest parsing, archive selection and the data-directory rules.

A manifest is a JSON document listing archives of node data directories::

    {"format": 1, "archives": [{"name": "litecoin-regtest-3200-20261122T143000Z",
      "chain": "litecoin", "network": "regtest", "client": "litecoind",
      "client_version": "0.21.2.1", "height": 3200, "created": "2026-11-22T14:30:00Z",
      "sha256": "<64 hex>", "size": 12345, "compression": "zstd",
      "key": "litecoin/regtest/<name>.tar.zst", "verified": false,
      "parts": [{"size": 67108864, "sha256": "<64 hex>"}, ...]}]}

``parts`` (optional, written by the upload) lists the archive's byte ranges in order; a restore
fetches them in parallel and, after an interruption or a bad part, fetches only what it lacks.
Each entry has either ``key`` (an object key in the manifest's bucket) or ``url`` (absolute, or
relative to the manifest's URL). Nothing here does I/O: the role, the playbook and the
``snapshot_archive_restore`` module fetch and act, this decides.

Ordering ("best first"): highest height, then newest ``created``, then name, so the choice does
not depend on the order of the manifest.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import posixpath
import re

MANIFEST_FORMAT = 1
COMPRESSIONS = ("zstd", "lz4", "none")
SUFFIXES = {"zstd": ".tar.zst", "lz4": ".tar.lz4", "none": ".tar"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
REQUIRED_FIELDS = ("name", "chain", "network", "height", "created", "sha256", "compression")
UTC = datetime.timezone.utc


class ArchiveError(ValueError):
    """Invalid manifest or option; the message names the field or option."""


def parse_time(value, field="created"):
    """ISO 8601 UTC timestamp (``Z`` or ``+00:00``) to an aware datetime."""
    if not isinstance(value, str):
        raise ArchiveError("%s must be an ISO 8601 timestamp string, got %r" % (field, value))
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ArchiveError("%s %r is not an ISO 8601 timestamp" % (field, value))
    if parsed.tzinfo is None:
        raise ArchiveError("%s %r has no time zone (use Z)" % (field, value))
    return parsed.astimezone(UTC)


def format_time(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_problems(entry):
    """Everything wrong with one manifest entry (an empty list for a valid one)."""
    if not isinstance(entry, dict):
        return ["entry is a %s, not an object" % type(entry).__name__]
    problems = ["missing field %r" % field for field in REQUIRED_FIELDS if field not in entry]
    name = entry.get("name")
    if "name" in entry and (not isinstance(name, str) or not NAME.match(name)):
        problems.append("name %r is not a plain file name" % (name,))
    for field in ("chain", "network", "client", "client_version"):
        if field in entry and not isinstance(entry[field], str):
            problems.append("%s must be a string" % field)
    height = entry.get("height")
    if "height" in entry and (isinstance(height, bool) or not isinstance(height, int) or height < 0):
        problems.append("height %r is not a non-negative integer" % (height,))
    if "created" in entry:
        try:
            parse_time(entry["created"])
        except ArchiveError as exc:
            problems.append(str(exc))
    if "sha256" in entry and not (isinstance(entry["sha256"], str) and SHA256.match(entry["sha256"])):
        problems.append("sha256 is not 64 lower-case hex digits")
    if "compression" in entry and entry["compression"] not in COMPRESSIONS:
        problems.append("compression %r is not one of %s" % (entry["compression"], ", ".join(COMPRESSIONS)))
    has_key, has_url = bool(entry.get("key")), bool(entry.get("url"))
    if has_key == has_url:
        problems.append("needs exactly one of key or url")
    for field in ("key", "url"):
        if entry.get(field) is not None and not isinstance(entry[field], str):
            problems.append("%s must be a string" % field)
    if "size" in entry and (isinstance(entry["size"], bool) or not isinstance(entry["size"], int) or entry["size"] < 0):
        problems.append("size %r is not a non-negative integer" % (entry["size"],))
    if "verified" in entry and not isinstance(entry["verified"], bool):
        problems.append("verified must be true or false")
    if "parts" in entry:
        problems += parts_problems(entry["parts"], entry.get("size"))
    return problems


def parts_problems(parts, size=None):
    """What is wrong with an entry's ``parts`` (size and sha256 of each byte range, in order)."""
    if not isinstance(parts, list) or not parts:
        return ["parts must be a non-empty list"]
    problems = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict):
            problems.append("parts[%d] is not an object" % index)
            continue
        if isinstance(part.get("size"), bool) or not isinstance(part.get("size"), int) or part["size"] < 1:
            problems.append("parts[%d].size %r is not a positive integer" % (index, part.get("size")))
        if not (isinstance(part.get("sha256"), str) and SHA256.match(part["sha256"])):
            problems.append("parts[%d].sha256 is not 64 lower-case hex digits" % index)
    if not problems and isinstance(size, int) and not isinstance(size, bool) and sum(p["size"] for p in parts) != size:
        problems.append("parts add up to %d bytes, size is %d" % (sum(p["size"] for p in parts), size))
    return problems


def parse_manifest(document, source="manifest"):
    """A manifest (JSON text or already-decoded dict) to its list of entries.

    A malformed document fails; a malformed entry does not (it is rejected with its problems by
    select_archive), so one bad upload cannot block restores from the good ones.
    """
    if isinstance(document, (bytes, bytearray)):
        document = document.decode("utf-8")
    if isinstance(document, str):
        if not document.strip():
            return []
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise ArchiveError("%s is not valid JSON: %s" % (source, exc))
    if not isinstance(document, dict):
        raise ArchiveError("%s must be a JSON object with an 'archives' list" % source)
    version = document.get("format", MANIFEST_FORMAT)
    if version != MANIFEST_FORMAT:
        raise ArchiveError("%s has format %r; this collection reads format %d" % (source, version, MANIFEST_FORMAT))
    archives = document.get("archives", [])
    if not isinstance(archives, list):
        raise ArchiveError("%s: 'archives' must be a list" % source)
    return archives


def validate_criteria(criteria):
    """Normalise selection criteria; fail naming the snapshot_restore_* option."""
    out = dict(criteria)
    for field in ("chain", "network"):
        if not isinstance(out.get(field), str) or not out[field]:
            raise ArchiveError("snapshot_restore_%s: a non-empty string is required" % field)
    for field in ("client", "client_version"):
        if out.get(field) in (None, ""):
            out[field] = None
        elif not isinstance(out[field], str):
            raise ArchiveError("snapshot_restore_%s must be a string" % field)
    minimum = out.get("min_height")
    if minimum in (None, ""):
        out["min_height"] = None
    else:
        try:
            out["min_height"] = int(minimum)
        except (TypeError, ValueError):
            raise ArchiveError("snapshot_restore_min_height %r is not an integer" % (minimum,))
        if out["min_height"] < 0:
            raise ArchiveError("snapshot_restore_min_height must be >= 0")
    out["require_verified"] = bool(out.get("require_verified", False))
    compressions = out.get("compressions") or list(COMPRESSIONS)
    unknown = [c for c in compressions if c not in COMPRESSIONS]
    if unknown:
        raise ArchiveError("snapshot_restore_compressions: unknown %s (known: %s)" % (", ".join(unknown), ", ".join(COMPRESSIONS)))
    out["compressions"] = list(compressions)
    return out


def rejection_reasons(entry, criteria):
    """Every criterion a (valid) entry fails."""
    reasons = []
    for field in ("chain", "network", "client", "client_version"):
        wanted = criteria.get(field)
        if wanted is not None and entry.get(field) != wanted:
            reasons.append("%s is %r, not %r" % (field, entry.get(field), wanted))
    if criteria.get("min_height") is not None and entry["height"] < criteria["min_height"]:
        reasons.append("height %d below min_height %d" % (entry["height"], criteria["min_height"]))
    if criteria.get("require_verified") and entry.get("verified") is not True:
        reasons.append("not verified (require_verified is true)")
    if entry.get("bad"):
        reasons.append("marked bad (%s)" % entry["bad"])
    if entry["compression"] not in criteria["compressions"]:
        reasons.append("compression %s not in %s" % (entry["compression"], ", ".join(criteria["compressions"])))
    return reasons


def sort_key(entry):
    # Negated for "highest/newest first"; name last for a total order.
    return (-entry["height"], -parse_time(entry["created"]).timestamp(), entry["name"])


def select_archive(entries, criteria):
    """Pick the best archive: {found, archive, reason, qualified, rejected}."""
    criteria = validate_criteria(criteria)
    qualified, rejected = [], []
    for index, entry in enumerate(entries):
        problems = entry_problems(entry)
        if problems:
            label = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else "entry #%d" % index
            rejected.append({"name": label, "reasons": ["invalid entry: " + p for p in problems]})
            continue
        reasons = rejection_reasons(entry, criteria)
        if reasons:
            rejected.append({"name": entry["name"], "reasons": reasons})
        else:
            qualified.append(entry)
    qualified.sort(key=sort_key)
    rejected.sort(key=lambda item: item["name"])
    if not qualified:
        return {"found": False, "archive": None, "qualified": [], "rejected": rejected,
                "reason": "no archive qualifies (%d listed)" % len(entries)}
    best = qualified[0]
    if len(qualified) == 1:
        reason = "%s is the only qualifying archive (height %d)" % (best["name"], best["height"])
    else:
        second = qualified[1]
        if second["height"] < best["height"]:
            reason = "%s has the highest height (%d) of %d qualifying archives; next best is %s at %d" % (
                best["name"], best["height"], len(qualified), second["name"], second["height"])
        else:
            reason = "%s is the newest (%s) of %d qualifying archives at height %d" % (
                best["name"], best["created"], len(qualified), best["height"])
    return {"found": True, "archive": best, "qualified": qualified, "rejected": rejected, "reason": reason}


def archive_location(entry, manifest_url=None, manifest_key=None):
    """Where to fetch an entry: {'key': ...} (same bucket as the manifest) or {'url': ...}."""
    if entry.get("url"):
        url = entry["url"]
        if "://" not in url:
            if not manifest_url:
                raise ArchiveError("archive %s has a relative url %r but the manifest has no URL" % (entry["name"], url))
            url = posixpath.join(posixpath.dirname(manifest_url), url) if not url.startswith("/") else \
                re.sub(r"^([a-z]+://[^/]+).*$", r"\1", manifest_url) + url
        return {"url": url}
    key = entry["key"]
    if manifest_key is None and manifest_url:
        # An HTTP manifest naming keys: keys are paths next to the manifest.
        return {"url": posixpath.join(posixpath.dirname(manifest_url), key.lstrip("/"))}
    return {"key": key.lstrip("/")}


def archive_name(chain, network, height, created):
    """Deterministic archive name: <chain>-<network>-<height>-<UTC timestamp>."""
    stamp = parse_time(created).strftime("%Y%m%dT%H%M%SZ")
    name = "%s-%s-%d-%s" % (chain, network, int(height), stamp)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return name


def manifest_add(document, entry, keep=None):
    """A new manifest with entry added (replacing one of the same name), best first.

    keep: when set, only the best ``keep`` valid archives of the entry's chain/network stay
    listed; the others are returned by manifest_pruned() so the caller can delete them.
    """
    problems = entry_problems(entry)
    if problems:
        raise ArchiveError("new manifest entry %s is invalid: %s" % (entry.get("name"), "; ".join(problems)))
    archives = [a for a in parse_manifest(document) if not (isinstance(a, dict) and a.get("name") == entry["name"])]
    archives.append(dict(entry))
    valid = [a for a in archives if not entry_problems(a)]
    invalid = [a for a in archives if entry_problems(a)]
    valid.sort(key=sort_key)
    if keep is not None:
        keep = int(keep)
        if keep < 1:
            raise ArchiveError("snapshot_archive_keep must be >= 1")
        same = [a for a in valid if a["chain"] == entry["chain"] and a["network"] == entry["network"]]
        # The best verified archive of the group always stays (as EBS retention does).
        verified = [a for a in same if a.get("verified") is True and not a.get("bad")][:1]
        kept_names = set(a["name"] for a in same[:keep]) | set(a["name"] for a in verified)
        valid = [a for a in valid if a not in same or a["name"] in kept_names]
    return {"format": MANIFEST_FORMAT, "archives": valid + invalid}


def manifest_pruned(before, after):
    """Entries listed in ``before`` and no longer in ``after`` (to delete their objects)."""
    kept = set(a.get("name") for a in parse_manifest(after) if isinstance(a, dict))
    return [a for a in parse_manifest(before) if isinstance(a, dict) and a.get("name") not in kept]


def manifest_mark(document, name, verified=True):
    """A new manifest with archive ``name`` marked verified; fails when it is not listed."""
    archives = parse_manifest(document)
    found = False
    out = []
    for archive in archives:
        if isinstance(archive, dict) and archive.get("name") == name:
            archive = dict(archive, verified=bool(verified))
            found = True
        out.append(archive)
    if not found:
        raise ArchiveError("archive %r is not in the manifest" % name)
    return {"format": MANIFEST_FORMAT, "archives": out}


def data_relative_paths(data_dir, paths):
    """The paths that lie inside data_dir, relative to it (secret files to exclude and keep)."""
    root = posixpath.normpath(data_dir)
    out = []
    for path in paths:
        normal = posixpath.normpath(path)
        if normal != root and normal.startswith(root.rstrip("/") + "/"):
            relative = normal[len(root.rstrip("/")) + 1:]
            if relative not in out:
                out.append(relative)
    return out


def unexpected_data(paths, keep=()):
    """The entries of a recursive data-directory listing that count as node data.

    paths: every path below the data directory, relative to it (``find -mindepth 1 -printf '%P\\n'``).
    keep: relative secret paths; they, what lies below them and the directories leading to them
    do not count, nor does ``lost+found``. An empty result means "safe to restore into".
    """
    keep = [k.strip("/") for k in keep if k.strip("/")]
    ancestors = set()
    for path in keep:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            ancestors.add("/".join(parts[:depth]))
    out = []
    for path in paths:
        path = path.strip("/")
        if not path or path in ancestors or path == "lost+found" or path.startswith("lost+found/"):
            continue
        if any(path == k or path.startswith(k + "/") for k in keep):
            continue
        out.append(path)
    return sorted(out)
