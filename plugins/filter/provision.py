# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Filters playbooks/provision.yml uses to validate and expand a topology (logic in module_utils/provision_plan.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.module_utils.provision_plan import (
    PlanError,
    build_plan,
    placement,
)


def provision_plan(topology, state="present"):
    """Validate the topology description and expand it into security groups, instances, volumes and records."""
    try:
        return build_plan(topology, state=state)
    except PlanError as exc:
        raise AnsibleFilterError(str(exc))


def provision_placement(plan, subnets):
    """Pick or check the subnet of every availability zone and place the plan's instances in them."""
    try:
        return placement(plan, subnets)
    except PlanError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {
            "provision_plan": provision_plan,
            "provision_placement": provision_placement,
        }
