# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The unit_hardening filter (logic in plugins/plugin_utils/unit_hardening.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.plugin_utils.unit_hardening import HardeningError
from ansible_collections.chainops.validator.plugins.plugin_utils.unit_hardening import unit_hardening as _unit_hardening


def unit_hardening(changes=None):
    """The collection's shared systemd sandbox with a service's own changes."""
    if changes is not None and not isinstance(changes, dict):
        raise AnsibleFilterError("unit_hardening: expects a mapping of setting names to values (None drops one)")
    try:
        return _unit_hardening(changes)
    except HardeningError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"unit_hardening": unit_hardening}
