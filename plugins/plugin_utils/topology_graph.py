# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The topology as a Graphviz picture: clusters (a validator, its standbys and sentries, the WireGuard links
between them), fleets, load balancers, and the ports the internet reaches.

Input is what the inventory knows about each host (the ec2_topology plugin's ``topology_*`` variables, the
P2P ports of the host firewall) and, when given, the provision topology's load balancers. Output is DOT text;
``dot -Tsvg`` draws it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

ROLE_STYLE = {
    "validator": 'shape=box, style="rounded,filled,bold", fillcolor="#f4c7c3"',
    "standby": 'shape=box, style="rounded,filled,dashed", fillcolor="#fce8b2"',
    "sentry": 'shape=box, style="rounded,filled", fillcolor="#c9daf8"',
}
FLEET_STYLE = 'shape=box, style="rounded,filled", fillcolor="#d9ead3"'
HIDDEN_ROLES = ("validator", "standby")


def _id(text):
    return '"%s"' % str(text).replace("\\", "\\\\").replace('"', '\\"')


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_]", "_", str(text))


def _ports(host):
    ports = host.get("p2p_ports") or []
    return ", ".join("%s/%s" % (p.get("port"), p.get("protocol", "tcp")) for p in ports if isinstance(p, dict))


def _label(host):
    lines = [host["name"], host.get("role") or "?"]
    if host.get("overlay_address"):
        lines.append("overlay %s" % host["overlay_address"])
    if host.get("dns_name"):
        lines.append(host["dns_name"])
    return "\\n".join(_escape(line) for line in lines)


def _escape(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def topology_dot(hosts, balancers=None, title="chainops topology"):
    """DOT text for ``hosts`` ([{name, role, cluster, fleet, chain, network, overlay_address, dns_name,
    p2p_ports: [{port, protocol}]}]) and ``balancers`` ([{name, fleet, port, protocol, target_port}])."""
    balancers = balancers or []
    lines = ["digraph topology {",
             "  graph [rankdir=LR, fontname=Helvetica, label=%s, labelloc=t, compound=true];" % _id(title),
             "  node [fontname=Helvetica, fontsize=10];",
             "  edge [fontname=Helvetica, fontsize=9];",
             '  internet [label="internet", shape=ellipse, style=filled, fillcolor="#eeeeee"];']
    clusters, fleets = {}, {}
    for host in sorted(hosts, key=lambda h: h["name"]):
        if host.get("cluster") and host.get("role") in ROLE_STYLE:
            clusters.setdefault(host["cluster"], []).append(host)
        elif host.get("fleet"):
            fleets.setdefault(host["fleet"], []).append(host)
    edges = []
    for name, members in sorted(clusters.items()):
        chain = next((m.get("chain") for m in members if m.get("chain")), "")
        network = next((m.get("network") for m in members if m.get("network")), "")
        lines.append("  subgraph cluster_c_%s {" % _slug(name))
        lines.append("    label=%s; style=rounded; color=\"#999999\";" % _id("cluster %s%s" % (name, " (%s %s)" % (chain, network) if chain else "")))
        for member in members:
            lines.append("    %s [label=\"%s\", %s];" % (_id(member["name"]), _label(member), ROLE_STYLE[member["role"]]))
        lines.append("  }")
        hubs = [m for m in members if m["role"] in HIDDEN_ROLES]
        for sentry in (m for m in members if m["role"] == "sentry"):
            for hub in hubs:
                edges.append("  %s -> %s [dir=both, style=dashed, color=\"#3c78d8\", label=\"WireGuard\"];" % (_id(sentry["name"]), _id(hub["name"])))
            ports = _ports(sentry)
            edges.append("  internet -> %s [label=%s];" % (_id(sentry["name"]), _id("P2P " + ports if ports else "P2P")))
    balanced = {}
    for balancer in balancers:
        balanced.setdefault(balancer.get("fleet"), []).append(balancer)
    for name, members in sorted(fleets.items()):
        role = members[0].get("role") or ""
        lines.append("  subgraph cluster_f_%s {" % _slug(name))
        lines.append("    label=%s; style=rounded; color=\"#999999\";" % _id("fleet %s (%s)" % (name, role)))
        for member in members:
            lines.append("    %s [label=\"%s\", %s];" % (_id(member["name"]), _label(member), FLEET_STYLE))
        lines.append("  }")
        for member in members:
            ports = _ports(member)
            if ports:
                edges.append("  internet -> %s [label=%s];" % (_id(member["name"]), _id("P2P " + ports)))
        for balancer in balanced.get(name, []):
            lb_id = _id(balancer["name"])
            lines.append("  %s [label=\"%s\\n%s :%s\", shape=box3d, style=filled, fillcolor=\"#fff2cc\"];" % (
                lb_id, _escape(balancer["name"]), _escape(balancer.get("protocol") or "TCP"), balancer.get("port")))
            edges.append("  internet -> %s [label=%s];" % (lb_id, _id(":%s" % balancer.get("port"))))
            for member in members:
                edges.append("  %s -> %s [label=%s, color=\"#b45f06\"];" % (lb_id, _id(member["name"]), _id(":%s, /health" % balancer.get("target_port"))))
    lines.extend(edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def hosts_from_inventory(names, hostvars):
    """The graph's hosts from inventory variables (the ec2_topology plugin's, or a static inventory's)."""
    hosts = []
    for name in names:
        variables = hostvars.get(name) or {}
        role = variables.get("topology_role")
        if not role:
            continue
        ports = variables.get("wireguard_sentry_p2p_ports")
        if not isinstance(ports, list) and variables.get("topology_p2p_port"):
            ports = [{"port": variables["topology_p2p_port"], "protocol": variables.get("topology_p2p_protocol") or "tcp"}]
        hosts.append({
            "name": name, "role": role, "cluster": variables.get("topology_cluster"), "fleet": variables.get("topology_fleet"),
            "chain": variables.get("topology_chain"), "network": variables.get("topology_network"),
            "overlay_address": variables.get("topology_overlay_address") or variables.get("wireguard_sentry_overlay_address"),
            "dns_name": variables.get("topology_dns_name"),
            "p2p_ports": [] if role in HIDDEN_ROLES else (ports if isinstance(ports, list) else []),
        })
    return hosts


def balancers_from_plan(plan):
    """The load balancers of a provision plan (plugin_utils/provision_plan.build_plan's result)."""
    return [{"name": lb["name"], "fleet": lb.get("fleet"), "port": lb.get("port"), "protocol": lb.get("protocol"),
             "target_port": (lb.get("target_group") or {}).get("port")} for lb in (plan or {}).get("load_balancers") or []]
