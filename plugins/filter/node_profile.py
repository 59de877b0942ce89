# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Filters the node role uses to validate and resolve client profiles (logic in module_utils)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.module_utils.node_profile import (
    ProfileError,
    download_checksum,
    peer_endpoints,
    resolve_profile,
)


def _wrap(function):
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ProfileError as exc:
            raise AnsibleFilterError(str(exc))

    call.__name__ = function.__name__
    return call


class FilterModule(object):
    def filters(self):
        return {
            "node_profile_resolve": _wrap(resolve_profile),
            "node_download_checksum": _wrap(download_checksum),
            "node_peer_endpoints": _wrap(peer_endpoints),
        }
