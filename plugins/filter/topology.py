# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Filters over the shared topology model (plugins/plugin_utils/topology.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.plugin_utils.topology import (
    DEFAULT_CLUSTER_PREFIX,
    DEFAULT_MIN_SENTRIES,
    DEFAULT_POOL,
    build_topology,
    preshared_key_owner,
)

# Inventory variables read for each host (the ec2_topology inventory plugin sets them from tags).
HOST_KEYS = {
    "role": "topology_role",
    "cluster": "topology_cluster",
    "availability_zone": "topology_availability_zone",
    "chain": "topology_chain",
    "network": "topology_network",
    "overlay_address": "topology_overlay_address",
}


def topology_plan(names, hostvars, persisted=None, cluster_cidrs=None, pool=DEFAULT_POOL,
                  prefix=DEFAULT_CLUSTER_PREFIX, min_sentries=DEFAULT_MIN_SENTRIES, strict=True):
    """Plan clusters and overlay addresses for the inventory hosts ``names``."""
    persisted = persisted or {}
    hosts = []
    for name in names:
        variables = hostvars[name]
        if not variables.get("topology_role"):
            continue
        host = dict((key, variables.get(var)) for key, var in HOST_KEYS.items())
        host["name"] = name
        # The inventory plugin also fills in addresses it merely allocated (persisted: false);
        # those must not override what the host itself has persisted.
        if variables.get("topology_overlay_persisted") is False and persisted.get(name):
            host["overlay_address"] = persisted[name]
        elif not host["overlay_address"] and persisted.get(name):
            host["overlay_address"] = persisted[name]
        hosts.append(host)
    topology = build_topology(hosts, cluster_cidrs=cluster_cidrs or {}, pool=pool, cluster_prefix=int(prefix),
                              min_sentries=int(min_sentries))
    if strict and topology.errors:
        raise AnsibleFilterError("topology is invalid: " + "; ".join(issue.message for issue in topology.errors))
    plan = topology.to_dict()
    plan["hosts"] = dict((host["name"], topology.host(host["name"])) for host in hosts)
    return plan


def wireguard_peer_names(plan, host, mesh_sentries=False):
    """Hub and spoke: hubs (validator, standbys) peer with the sentries; sentries with the hubs."""
    cluster_name = (plan["hosts"].get(host) or {}).get("cluster")
    if cluster_name is None:
        return []
    cluster = plan["clusters"][cluster_name]
    hubs = ([cluster["validator"]] if cluster["validator"] else []) + list(cluster["standbys"])
    if host in hubs:
        names = list(cluster["sentries"]) + [hub for hub in hubs if hub != host]
    else:
        names = hubs + (list(cluster["sentries"]) if mesh_sentries else [])
    return [name for name in names if name != host]


def wireguard_peers(names, hostvars, play_hosts, persisted_states, host=None, host_role=None):
    """Peer entries (name, role, address, public_key, endpoint, port, psk_owner) for the WireGuard config.

    Hosts in this play publish ``wireguard_sentry_state`` in this run (so a rotated key is
    picked up at once); the others are read from the state they persisted on their host.
    """
    peers = []
    for name in names:
        state = None
        if name in play_hosts:
            state = hostvars[name].get("wireguard_sentry_state")
        if not state:
            state = (persisted_states or {}).get(name)
        if not state or not state.get("public_key") or not state.get("address"):
            raise AnsibleFilterError(
                "WireGuard peer '%s' has no public key or overlay address yet: converge it (it is not in this play "
                "and has no persisted state in /etc/chainops/wireguard.json)" % name)
        peer = dict((key, state.get(key)) for key in ("role", "address", "public_key", "endpoint", "port"))
        peer["name"] = name
        peer["psk_owner"] = preshared_key_owner(host, host_role, name, peer["role"]) if host else None
        peers.append(peer)
    return peers


class FilterModule(object):
    def filters(self):
        return {
            "topology_plan": topology_plan,
            "wireguard_peer_names": wireguard_peer_names,
            "wireguard_peers": wireguard_peers,
        }
