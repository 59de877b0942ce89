# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The datadog_agent role's filters (logic in plugins/plugin_utils/datadog_checks.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.plugin_utils.datadog_checks import builtin_checks, topology_tags
from ansible_collections.chainops.validator.plugins.plugin_utils.filter_settings import settings_problem

CHECK_SETTINGS = ("health_checker", "health_checker_url", "health_checker_metrics", "check_tags", "node_checks", "node_unit",
                  "node_binary", "node_profile_name", "node_metrics_wanted", "node_metrics_port", "node_openmetrics",
                  "logs_enabled", "systemd_units")


def datadog_topology_tags(values):
    """'name:value' host tags from the host's topology values that are set."""
    if not isinstance(values, dict):
        raise AnsibleFilterError("datadog_topology_tags: expects a mapping of tag names to values")
    return topology_tags(values)


def datadog_checks(settings):
    """The role's own check files by check name; None where the host has no such check."""
    problem = settings_problem(settings, CHECK_SETTINGS)
    if problem:
        raise AnsibleFilterError("datadog_checks: %s" % problem)
    return builtin_checks(settings)


class FilterModule(object):
    def filters(self):
        return {"datadog_topology_tags": datadog_topology_tags, "datadog_checks": datadog_checks}
