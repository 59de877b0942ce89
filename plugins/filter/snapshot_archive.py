# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Filters for snapshot archives and manifests (logic in module_utils/snapshot_archive.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.module_utils.snapshot_archive import (
    ArchiveError,
    archive_location,
    data_relative_paths,
    manifest_add,
    manifest_mark,
    manifest_pruned,
    parse_manifest,
    select_archive,
    unexpected_data,
)


def snapshot_archive_select(manifest, criteria, manifest_url=None, manifest_key=None):
    try:
        result = select_archive(parse_manifest(manifest), criteria)
        if result["found"]:
            result["location"] = archive_location(result["archive"], manifest_url, manifest_key)
        return result
    except ArchiveError as exc:
        raise AnsibleFilterError(str(exc))


def snapshot_manifest_update(manifest, add=None, verified=None, keep=None):
    try:
        document = {"format": 1, "archives": parse_manifest(manifest)}
        if add:
            document = manifest_add(document, add, keep)
        if verified:
            document = manifest_mark(document, verified, True)
        return {"manifest": document, "pruned": manifest_pruned({"archives": parse_manifest(manifest)}, document)}
    except ArchiveError as exc:
        raise AnsibleFilterError(str(exc))


def snapshot_data_paths(paths, data_dir):
    return data_relative_paths(data_dir, paths)


def snapshot_unexpected_data(listing, keep=()):
    return unexpected_data(listing, keep)


class FilterModule(object):
    def filters(self):
        return {
            "snapshot_archive_select": snapshot_archive_select,
            "snapshot_manifest_update": snapshot_manifest_update,
            "snapshot_data_paths": snapshot_data_paths,
            "snapshot_unexpected_data": snapshot_unexpected_data,
        }
