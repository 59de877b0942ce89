# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The health_checker role's filters (logic in plugins/plugin_utils/health_checker_config.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.plugin_utils.filter_settings import settings_problem
from ansible_collections.chainops.validator.plugins.plugin_utils.health_checker_config import HealthCheckerConfigError, node_url, service_config

CONFIG_SETTINGS = ("adapter", "node_url", "node_user", "node_password_file", "node_headers", "references", "reference_defaults",
                   "reference_policy", "max_lag_blocks", "max_head_age_s", "bootstrap", "poll_interval_s", "timeout_s", "listen_host",
                   "listen_port", "max_connections", "target_group", "consensus_url", "min_peers", "stale_after_s",
                   "slow_polls_tolerated", "credentials_dir", "profile", "host")


def health_checker_node_url(profile, adapter, explicit=""):
    """The URL of the node's API: explicit, else from the node profile's port and path, else ''."""
    if profile is not None and not isinstance(profile, dict):
        raise AnsibleFilterError("health_checker_node_url: expects a node profile (a mapping)")
    return node_url(profile or {}, adapter, explicit or "")


def health_checker_config(settings, hostvars):
    """{'config', 'credentials', 'problems'}: the service's config, the files systemd hands over, what is wrong."""
    problem = settings_problem(settings, CONFIG_SETTINGS)
    if problem:
        raise AnsibleFilterError("health_checker_config: %s" % problem)
    try:
        return service_config(settings, hostvars)
    except HealthCheckerConfigError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"health_checker_node_url": health_checker_node_url, "health_checker_config": health_checker_config}
