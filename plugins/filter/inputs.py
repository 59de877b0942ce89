# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the roles' validation phase (logic in plugins/plugin_utils/)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.plugin_utils.inputs import systemd_quote
from ansible_collections.chainops.validator.plugins.plugin_utils import role_inputs

CHECKS = {
    "node": role_inputs.node_problems,
    "health_checker": role_inputs.health_checker_problems,
    "wireguard_sentry": role_inputs.wireguard_sentry_problems,
    "datadog_agent": role_inputs.datadog_agent_problems,
    "snapshot_restore": role_inputs.snapshot_restore_problems,
    "snapshot": role_inputs.snapshot_problems,
}


def input_problems(values, role, *args):
    """Every problem of a role's inputs (``values``: variable name -> value), as messages."""
    if role not in CHECKS:
        raise AnsibleFilterError("input_problems: unknown role %r (known: %s)" % (role, ", ".join(sorted(CHECKS))))
    if not isinstance(values, dict):
        raise AnsibleFilterError("input_problems: expects a mapping of variable names to values")
    return CHECKS[role](dict(values), *args)


def failover_problems(request, hostvars, inventory_hosts):
    """validator_failover's request checked against the hosts' topology roles (see role_inputs)."""
    hosts = {}
    for name in (request.get("from"), request.get("to")):
        if isinstance(name, str) and name in inventory_hosts:
            variables = hostvars[name]
            hosts[name] = {"role": variables.get("topology_role"), "cluster": variables.get("topology_cluster")}
    return role_inputs.failover_problems(dict(request), hosts)


def systemd_args(arguments):
    """Arguments quoted for a systemd ExecStart= line, joined by spaces."""
    try:
        return " ".join(systemd_quote(str(argument)) for argument in arguments)
    except ValueError as exc:
        raise AnsibleFilterError("systemd_args: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"input_problems": input_problems, "failover_problems": failover_problems, "systemd_args": systemd_args}
