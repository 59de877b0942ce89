# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Filters playbooks/provision.yml uses to validate and expand a topology, and the host firewall's rules
from the same port model (logic in plugin_utils/provision_plan.py and plugin_utils/port_model.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.plugin_utils import port_model
from ansible_collections.chainops.validator.plugins.plugin_utils.provision_plan import (
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


def provision_public_addresses(instances, eip_results=None):
    """``{"A": {node: IPv4}, "AAAA": {node: IPv6}}``: a node's Elastic IP (from ec2_eip results) or else the
    public address it was given, and the first IPv6 address of its interfaces; None where it has none."""
    eips = dict((r["item"]["host"], r["public_ip"]) for r in eip_results or [] if r.get("public_ip") and r.get("item"))
    addresses = {"A": {}, "AAAA": {}}
    for name, instance in (instances or {}).items():
        addresses["A"][name] = eips.get(name) or instance.get("public_ip_address")
        v6 = [a.get("ipv6_address") for nic in instance.get("network_interfaces") or [] for a in nic.get("ipv6_addresses") or []]
        addresses["AAAA"][name] = v6[0] if v6 else None
    return addresses


def provision_targets(names, instances):
    """Target group targets (``[{"Id": instance id}]``) of the nodes ``names`` that exist in ``instances``."""
    return [{"Id": instances[name]["instance_id"]} for name in names
            if isinstance(instances.get(name), dict) and instances[name].get("instance_id")]


def host_firewall(role_spec, topology=None, host=None, interface="wg0", group_addresses=None):
    """The host's nftables rules: from its node in the provision plan of ``topology`` when it has one (the
    same rules as its security group), else from ``role_spec`` (the firewall role's variables)."""
    plan_ports = None
    if topology and host:
        try:
            plan = build_plan(topology)
        except PlanError as exc:
            raise AnsibleFilterError("host_firewall: %s" % exc)
        plan_ports = next((i["ports"] for i in plan["instances"] if i["name"] == host), None)
    try:
        spec = port_model.node_spec(plan_ports, **(role_spec or {}))
        rules = port_model.node_rules(spec)
    except (ValueError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("host_firewall: %s" % exc)
    # Every WireGuard peer group is the host's peers: their endpoint addresses.
    addresses = dict((name, list(group_addresses.get("peers", []))) for name in spec.get("wireguard_groups") or []) \
        if group_addresses and "peers" in group_addresses else {}
    addresses.update(dict((k, v) for k, v in (group_addresses or {}).items() if k != "peers"))
    return {"source": "provision plan" if plan_ports else "role variables",
            "rules": port_model.host_rules(rules, interface=interface, group_addresses=addresses)}


class FilterModule(object):
    def filters(self):
        return {
            "provision_plan": provision_plan,
            "provision_placement": provision_placement,
            "host_firewall": host_firewall,
            "provision_public_addresses": provision_public_addresses,
            "provision_targets": provision_targets,
        }
