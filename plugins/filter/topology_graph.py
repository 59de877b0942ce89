# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""topology_dot: the inventory's clusters and fleets as Graphviz DOT (plugin_utils/topology_graph.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.plugin_utils.provision_plan import PlanError, build_plan
from ansible_collections.chainops.validator.plugins.plugin_utils.topology_graph import (
    balancers_from_plan,
    hosts_from_inventory,
    topology_dot,
)


def topology_dot_filter(names, hostvars, provision_topology=None, title="chainops topology"):
    balancers = []
    if provision_topology:
        try:
            balancers = balancers_from_plan(build_plan(provision_topology))
        except PlanError as exc:
            raise AnsibleFilterError("topology_dot: provision_topology: %s" % "; ".join(exc.problems))
    return topology_dot(hosts_from_inventory(list(names), dict(hostvars)), balancers, title)


class FilterModule(object):
    def filters(self):
        return {"topology_dot": topology_dot_filter}
