# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""One port model for every node, two enforcers.

What a node admits, as (protocol, ports, source) rules, is worked out once here from a node's port
spec; the AWS security group rules ``provision`` creates and the nftables rules the host loads are
both rendered from that list, so they cannot disagree (a health check admitted by the security group
but dropped by the host, as the ``health_port`` once was).

A port spec (``node_spec``), for one node:

* ``role``: validator, standby (the hubs), sentry, or a fleet node (seed, bootnode, rpc, public);
* ``p2p``: ``[(protocol, low, high)]``: from anywhere, except on hubs, which take P2P only over the
  WireGuard overlay;
* ``rpc``: private RPC/WebSocket ports: from ``rpc_groups`` (security groups, such as a fleet's access
  group), ``rpc_cidrs``, and, on cluster members, the overlay;
* ``health_port`` from ``health_cidrs`` (the load balancer's sources), ``ssh_port`` from ``admin_cidrs``;
* ``wireguard_port`` from ``wireguard_groups`` (the peers' security groups) on cluster members;
* ``public``: other ports open to everyone (sentries and fleet nodes only).

Sources: ``ANY`` (the internet, IPv4 and IPv6), a CIDR, a security group, or ``OVERLAY`` (the
WireGuard interface; security groups never see that traffic, only the tunnel's UDP). On the host a
security group is rendered as the addresses the caller knows for it (a peer's endpoint; for an access
group, the networks its members live in). Unknown, a WireGuard peer group becomes any source (as
before: WireGuard authenticates every packet itself) and an access group the private address ranges
(its members are instances of the VPC): the host never opens RPC to the internet.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
from collections import namedtuple

HUB_ROLES = ("validator", "standby")
MEMBER_ROLES = ("validator", "standby", "sentry")
FLEET_ROLES = ("seed", "bootnode", "rpc", "public")
ROLES = MEMBER_ROLES + FLEET_ROLES

Source = namedtuple("Source", "kind value")
ANY = Source("any", None)
OVERLAY = Source("overlay", None)
Rule = namedtuple("Rule", "protocol low high source purpose")
# Where the members of a security group live when the host is not told (RFC 1918 and unique local).
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

PURPOSES = {
    "p2p": "public P2P",
    "p2p_overlay": "P2P over the overlay",
    "public": "public port",
    "rpc": "private RPC",
    "rpc_overlay": "RPC over the overlay",
    "health": "health check from the load balancer",
    "ssh": "SSH from admin_cidrs",
    "wireguard": "WireGuard from its peers",
}


def cidr(value):
    return Source("cidr", str(ipaddress.ip_network(str(value), strict=False)))


def group(name):
    return Source("group", name)


def node_rules(spec):
    """The rules one node admits, in a stable order (purpose, then ports, then source)."""
    role = spec.get("role")
    if role not in ROLES:
        raise ValueError("role must be one of %s, got %r" % (", ".join(ROLES), role))
    hub, member = role in HUB_ROLES, role in MEMBER_ROLES
    rules = []

    def add(ports, sources, purpose):
        for protocol, low, high in ports:
            for source in sources:
                rules.append(Rule(protocol, int(low), int(high), source, PURPOSES[purpose]))

    add(port_triples(spec.get("p2p")), [OVERLAY] if hub else [ANY], "p2p_overlay" if hub else "p2p")
    if not hub:
        add(port_triples(spec.get("public")), [ANY], "public")
    rpc = port_triples(spec.get("rpc"))
    rpc_sources = [group(g) for g in spec.get("rpc_groups") or []] + [cidr(c) for c in spec.get("rpc_cidrs") or []]
    add(rpc, rpc_sources, "rpc")
    if member:
        add(rpc, [OVERLAY], "rpc_overlay")
    if spec.get("health_port") is not None:
        add([("tcp", spec["health_port"], spec["health_port"])], [cidr(c) for c in spec.get("health_cidrs") or []], "health")
    if spec.get("ssh_port") is not None:
        add([("tcp", spec["ssh_port"], spec["ssh_port"])], [cidr(c) for c in spec.get("admin_cidrs") or []], "ssh")
    if member and spec.get("wireguard_port") is not None:
        add([("udp", spec["wireguard_port"], spec["wireguard_port"])],
            [group(g) for g in spec.get("wireguard_groups") or []], "wireguard")
    return rules


def port_triples(rules_in):
    """Role-variable port lists (``[{port, protocol}]``, or plan triples) as ``[(protocol, low, high)]``."""
    triples = []
    for item in rules_in or []:
        if isinstance(item, dict):
            port = int(item["port"])
            triples.append((item.get("protocol", "tcp"), port, port))
        else:
            protocol, low, high = item
            triples.append((protocol, int(low), int(high)))
    return triples


def node_spec(plan_ports=None, **role_vars):
    """The port spec of a host: its entry in a provision plan when it has one (one model for its security
    group and its host firewall), else one built from the role's variables."""
    if plan_ports:
        spec = dict(plan_ports)
    else:
        spec = dict(role_vars)
    for key in ("p2p", "public", "rpc"):
        spec[key] = port_triples(spec.get(key))
    return spec


def admitted(rules):
    """The set of (protocol, port, source) a rule list admits, port ranges expanded: what two enforcers
    rendered from the same rules must both admit."""
    return set((r.protocol, port, r.source) for r in rules for port in range(r.low, r.high + 1))


def _ports(rule):
    return str(rule.low) if rule.low == rule.high else "%d-%d" % (rule.low, rule.high)


def security_group_rules(rules, group_description=None):
    """amazon.aws.ec2_security_group ``rules``: one entry per (purpose, protocol, ports) and source family.
    Overlay rules are left out: security groups only see the tunnel's UDP packets."""
    out = []
    index = {}
    for rule in rules:
        if rule.source.kind == "overlay":
            continue
        base = (rule.purpose, rule.protocol, _ports(rule))
        if rule.source.kind == "group":
            entry = {"proto": rule.protocol, "ports": [_ports(rule)], "group_name": [rule.source.value], "rule_desc": rule.purpose}
            if group_description:
                # group_desc lets one group's task create another it references.
                entry["group_desc"] = group_description(rule.source.value)
            out.append(entry)
            continue
        networks = ["0.0.0.0/0", "::/0"] if rule.source.kind == "any" else [rule.source.value]
        for network in networks:
            key = "cidr_ipv6" if ":" in network else "cidr_ip"
            if (base, key) not in index:
                index[(base, key)] = {"proto": rule.protocol, "ports": [_ports(rule)], key: [], "rule_desc": rule.purpose}
                out.append(index[(base, key)])
            index[(base, key)][key].append(network)
    return out


def host_rules(rules, interface="wg0", group_addresses=None):
    """Rules for the host's nftables table: ``{protocol, ports, family, saddr, iifname, purpose}``, where
    ``family`` is ``ip``/``ip6`` with ``saddr`` a list, or None (any source). ``group_addresses`` maps a
    security group to the addresses the host admits for it; an unknown group is any source."""
    group_addresses = group_addresses or {}
    out = []
    for rule in rules:
        base = {"protocol": rule.protocol, "ports": _ports(rule), "purpose": rule.purpose, "iifname": None}
        kind = rule.source.kind
        if kind == "overlay":
            out.append(dict(base, family=None, saddr=None, iifname=interface))
            continue
        if kind == "any" or (kind == "group" and rule.purpose == PURPOSES["wireguard"]
                             and not group_addresses.get(rule.source.value)):
            out.append(dict(base, family=None, saddr=None))
            continue
        if kind == "cidr":
            addresses = [rule.source.value]
        else:
            addresses = list(group_addresses.get(rule.source.value) or PRIVATE_NETWORKS)
        for family, pick in (("ip", lambda a: ":" not in a), ("ip6", lambda a: ":" in a)):
            chosen = [a for a in addresses if pick(a)]
            if chosen:
                out.append(dict(base, family=family, saddr=chosen))
    return _merge_host_rules(out)


def _merge_host_rules(rules):
    """One nft line per (purpose, protocol, ports, family, interface), with the sources in one set."""
    merged = []
    index = {}
    for rule in rules:
        key = (rule["purpose"], rule["protocol"], rule["ports"], rule["family"], rule["iifname"])
        if rule["saddr"] is None or key not in index:
            entry = dict(rule, saddr=list(rule["saddr"]) if rule["saddr"] is not None else None)
            merged.append(entry)
            if rule["saddr"] is not None:
                index[key] = entry
        else:
            index[key]["saddr"].extend(a for a in rule["saddr"] if a not in index[key]["saddr"])
    return merged


def host_admitted(host, group_addresses=None):
    """What rendered host rules admit, in the model's terms: ``(protocol, port, source)`` with a CIDR or
    ANY or OVERLAY as source (for the equivalence check against the security groups)."""
    result = set()
    for rule in host:
        low, _dash, high = rule["ports"].partition("-")
        ports = range(int(low), int(high or low) + 1)
        if rule["iifname"]:
            sources = [OVERLAY]
        elif rule["saddr"] is None:
            sources = [ANY]
        else:
            sources = [cidr(a) for a in rule["saddr"]]
        result.update((rule["protocol"], port, source) for port in ports for source in sources)
    return result
