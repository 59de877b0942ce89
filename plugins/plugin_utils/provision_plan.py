# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Validate a topology description and expand it into the AWS resources ``playbooks/provision.yml`` manages.

Pure Python (stdlib only): no boto3, no Ansible. The playbook only loops over what :func:`build_plan`
returns, so every naming, tagging, placement and firewall decision is made (and unit-tested) here.

Resources per cluster ``C``:

* security groups ``C-validator`` (validator and standby) and ``C-sentry``;
* instances ``C-validator``, optionally ``C-standby``, and ``C-sentry-1..N`` tagged with the schema the
  ``ec2_topology`` inventory reads (Name, Chain, Network, Role, Cluster) plus ``ManagedBy``;
* one data volume per instance, ``<instance>-data``;
* with a hosted zone, an A record ``node-N.<zone>`` per sentry (the public nodes).

Every problem found is collected and reported at once (:class:`PlanError`), each message naming the
offending key as ``provision_topology.clusters[i].key``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.chainops.validator.plugins.plugin_utils import port_model

MANAGED_BY_KEY = "ManagedBy"
MANAGED_BY = "chainops.validator"
DATA_DEVICE = "/dev/sdf"

VAR = "provision_topology"
TOP_KEYS = frozenset((
    "region", "vpc_id", "subnets", "clusters", "fleets", "defaults", "tags",
))
CLUSTER_KEYS = frozenset((
    "name", "chain", "network", "ami", "availability_zones", "standby", "sentry_count",
    "validator_instance_type", "sentry_instance_type", "instance_type", "volume", "validator_volume",
    "sentry_volume", "admin_cidrs", "health_cidrs", "p2p_ports", "wireguard_port", "health_port", "ssh_port",
    "hosted_zone", "dns_first_index", "dns_ttl", "key_name", "iam_instance_profile", "tags",
))
# Keys of a fleet: standalone public nodes of one chain (seeds, bootnodes, RPC endpoints, public nodes).
FLEET_KEYS = frozenset((
    "name", "chain", "network", "role", "count", "ami", "availability_zones", "instance_type", "volume",
    "admin_cidrs", "health_cidrs", "health_port", "ssh_port", "p2p_ports", "unique_p2p_port", "rpc_ports",
    "rpc_cidrs", "access_group", "elastic_ip", "ipv6", "hosted_zone", "dns_prefix", "dns_first_index", "dns_ttl",
    "shared_name", "load_balancer", "key_name", "iam_instance_profile", "tags",
))
LOAD_BALANCER_KEYS = frozenset(("type", "port", "target_port", "protocol", "subnets_public"))
VOLUME_KEYS = frozenset(("size", "type", "iops", "throughput"))
DEFAULTS = {
    "standby": False,
    "sentry_count": 2,
    "instance_type": "t3.medium",
    "volume": {"size": 100, "type": "gp3"},
    "admin_cidrs": [],
    "health_cidrs": [],
    "p2p_ports": [],
    "wireguard_port": 51820,
    "health_port": 9680,
    "ssh_port": 22,
    "hosted_zone": None,
    "dns_first_index": 1,
    "dns_ttl": 300,
    "key_name": None,
    "iam_instance_profile": None,
    "tags": {},
}

# EBS limits (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-volume-types.html), capped where
# amazon.aws.ec2_vol checks narrower ranges itself (gp3 IOPS 3000-16000 and 125-1000 MiB/s, io1/io2 IOPS
# up to 64000), so a description that passes here is one the module accepts.
# type: (min size GiB, max size GiB, iops allowed, iops range, max iops per GiB, throughput allowed)
VOLUME_TYPES = {
    "gp3": (1, 16384, True, (3000, 16000), 500, True),
    "gp2": (1, 16384, False, None, None, False),
    "io1": (4, 16384, True, (100, 64000), 50, False),
    "io2": (4, 65536, True, (100, 64000), 1000, False),
    "st1": (125, 16384, False, None, None, False),
    "sc1": (125, 16384, False, None, None, False),
    "standard": (1, 1024, False, None, None, False),
}
GP3_THROUGHPUT = (125, 1000)

CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
TAG_VALUE = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,256}$")
AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
VPC = re.compile(r"^vpc-[0-9a-f]{8,17}$")
ZONE_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
AZ = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
PORT_SPEC = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp))?$")


class PlanError(ValueError):
    """The description is invalid. ``problems`` lists every message."""

    def __init__(self, problems):
        self.problems = list(problems)
        super(PlanError, self).__init__("invalid %s: %s" % (VAR, "; ".join(self.problems)))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value):
    """Integers from YAML or from Jinja-templated strings (``"{{ n }}"`` renders to ``'3'``)."""
    if _is_int(value):
        return value
    if isinstance(value, str) and re.match(r"^\d+$", value.strip()):
        return int(value.strip())
    return None


def _as_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    return None


class _Checker:
    def __init__(self):
        self.problems = []

    def add(self, where, message):
        self.problems.append("%s %s" % (where, message))

    def integer(self, where, value, low, high):
        number = _as_int(value)
        if number is None:
            self.add(where, "must be an integer, got %r" % (value,))
        elif not low <= number <= high:
            self.add(where, "must be between %d and %d, got %d" % (low, high, number))
        else:
            return number
        return None

    def string(self, where, value, pattern=None, what=None):
        if not isinstance(value, str) or not value.strip():
            self.add(where, "must be a non-empty string, got %r" % (value,))
            return None
        if pattern is not None and not pattern.match(value):
            self.add(where, "must be %s, got %r" % (what, value))
            return None
        return value

    def cidrs(self, where, value):
        if not isinstance(value, (list, tuple)):
            self.add(where, "must be a list of CIDRs, got %r" % (value,))
            return []
        result = []
        for index, item in enumerate(value):
            try:
                network = ipaddress.ip_network(str(item), strict=True)
            except ValueError as exc:
                self.add("%s[%d]" % (where, index), "is not a valid CIDR (%s)" % exc)
                continue
            result.append(network)
        return result

    def unknown_keys(self, where, mapping, allowed):
        for key in sorted(set(mapping) - allowed, key=str):
            self.add("%s.%s" % (where, key), "is not a known key (known: %s)" % ", ".join(sorted(allowed)))


def parse_port(spec):
    """``9333`` / ``"9333"`` -> (tcp, 9333, 9333); ``"30303/udp"``; ``"9000-9010/tcp"``. None when invalid."""
    if _is_int(spec):
        return ("tcp", spec, spec) if 1 <= spec <= 65535 else None
    if not isinstance(spec, str):
        return None
    match = PORT_SPEC.match(spec.strip())
    if not match:
        return None
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 1 <= low <= high <= 65535:
        return None
    return (match.group(3) or "tcp", low, high)


def _ports_text(low, high):
    return str(low) if low == high else "%d-%d" % (low, high)


def _volume(checker, where, base, override):
    spec = dict(base or {})
    if override is not None:
        if not isinstance(override, dict):
            checker.add(where, "must be a mapping, got %r" % (override,))
            return None
        if override.get("type") not in (None, spec.get("type", "gp3")):
            # IOPS and throughput are specific to a volume type: a different type does not inherit them.
            spec.pop("iops", None)
            spec.pop("throughput", None)
        spec.update(override)
    checker.unknown_keys(where, spec, VOLUME_KEYS)
    vtype = spec.get("type", "gp3")
    if vtype not in VOLUME_TYPES:
        checker.add(where + ".type", "must be one of %s, got %r" % (", ".join(sorted(VOLUME_TYPES)), vtype))
        return None
    low, high, iops_ok, iops_range, iops_per_gib, throughput_ok = VOLUME_TYPES[vtype]
    size = checker.integer(where + ".size", spec.get("size"), low, high)
    result = {"type": vtype, "size": size, "iops": None, "throughput": None}
    if spec.get("iops") is not None:
        if not iops_ok:
            checker.add(where + ".iops", "is only valid for gp3, io1 and io2 volumes, not %s" % vtype)
        else:
            iops = checker.integer(where + ".iops", spec["iops"], iops_range[0], iops_range[1])
            if iops is not None and size is not None and iops > size * iops_per_gib:
                checker.add(where + ".iops", "%d exceeds %d IOPS per GiB for a %d GiB %s volume (max %d)"
                            % (iops, iops_per_gib, size, vtype, size * iops_per_gib))
            result["iops"] = iops
    elif vtype in ("io1", "io2"):
        checker.add(where + ".iops", "is required for %s volumes" % vtype)
    if spec.get("throughput") is not None:
        if not throughput_ok:
            checker.add(where + ".throughput", "is only valid for gp3 volumes, not %s" % vtype)
        else:
            throughput = checker.integer(where + ".throughput", spec["throughput"], *GP3_THROUGHPUT)
            result["throughput"] = throughput
            iops = result["iops"] or 3000
            # AWS caps gp3 throughput at 0.25 MiB/s per provisioned IOPS.
            if throughput is not None and throughput > iops // 4:
                checker.add(where + ".throughput", "%d MiB/s needs at least %d IOPS (gp3 allows 0.25 MiB/s per IOPS)"
                            % (throughput, throughput * 4))
    return result


def _tags(checker, where, value):
    if not isinstance(value, dict):
        checker.add(where, "must be a mapping of tag names to values, got %r" % (value,))
        return {}
    reserved = {"Name", "Chain", "Network", "Role", "Cluster", MANAGED_BY_KEY}
    tags = {}
    for key, tag_value in value.items():
        if key in reserved:
            checker.add("%s.%s" % (where, key), "is set by the playbook and can not be overridden")
        elif not isinstance(key, str) or not key or key.lower().startswith("aws:") or len(key) > 128:
            checker.add("%s.%s" % (where, key), "is not a valid tag key")
        else:
            tags[key] = "" if tag_value is None else str(tag_value)
    return tags


def _merge(defaults, cluster):
    merged = dict(DEFAULTS)
    merged.update(defaults)
    merged.update(cluster)
    return merged


def build_plan(topology, state="present"):
    """Validate ``topology`` (the ``provision_topology`` variable) and return the resource plan.

    :raises PlanError: listing every problem found.
    """
    checker = _Checker()
    if state not in ("present", "absent"):
        checker.add("provision_state", "must be 'present' or 'absent', got %r" % (state,))
    if not isinstance(topology, dict):
        raise PlanError(checker.problems + ["%s must be a mapping with a 'clusters' list, got %r" % (VAR, topology)])
    checker.unknown_keys(VAR, topology, TOP_KEYS)

    region = checker.string(VAR + ".region", topology.get("region"), re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$"),
                            "an AWS region such as us-east-1")
    vpc_id = topology.get("vpc_id")
    if vpc_id is not None:
        vpc_id = checker.string(VAR + ".vpc_id", vpc_id, VPC, "a VPC ID (vpc-...)")
    subnets = topology.get("subnets")
    if subnets is not None:
        if not isinstance(subnets, dict) or not subnets:
            checker.add(VAR + ".subnets", "must be a non-empty mapping of availability zone to subnet ID")
            subnets = None
        else:
            for az, subnet in subnets.items():
                where = "%s.subnets.%s" % (VAR, az)
                if not isinstance(az, str) or not AZ.match(az):
                    checker.add(where, "key must be an availability zone such as us-east-1a")
                elif region and not az.startswith(region):
                    checker.add(where, "is not an availability zone of region %s" % region)
                checker.string(where, subnet, SUBNET, "a subnet ID (subnet-...)")
            if len(set(subnets.values())) != len(subnets):
                checker.add(VAR + ".subnets", "maps two availability zones to the same subnet")
    if vpc_id is None and subnets is None:
        checker.add(VAR, "needs 'subnets' (availability zone -> subnet ID) or 'vpc_id' (one subnet per zone is looked up)")

    defaults = topology.get("defaults") or {}
    if not isinstance(defaults, dict):
        checker.add(VAR + ".defaults", "must be a mapping of cluster keys")
        defaults = {}
    checker.unknown_keys(VAR + ".defaults", defaults, CLUSTER_KEYS - {"name"})
    common_tags = _tags(checker, VAR + ".tags", topology.get("tags") or {})

    clusters_in = topology.get("clusters")
    fleets_in = topology.get("fleets")
    if clusters_in is None and fleets_in is None:
        checker.add(VAR, "needs 'clusters' (validators with sentries) or 'fleets' (standalone public nodes), or both")
    if clusters_in is not None and not isinstance(clusters_in, list):
        checker.add(VAR + ".clusters", "must be a list of clusters")
    if fleets_in is not None and not isinstance(fleets_in, list):
        checker.add(VAR + ".fleets", "must be a list of fleets")
    clusters_in = clusters_in if isinstance(clusters_in, list) else []
    fleets_in = fleets_in if isinstance(fleets_in, list) else []
    if not clusters_in and not fleets_in and (topology.get("clusters") is not None or topology.get("fleets") is not None):
        checker.add(VAR, "has no cluster and no fleet: nothing to provision")

    plan = {
        "state": state,
        "region": region,
        "vpc_id": vpc_id,
        "subnets": dict(subnets) if subnets else None,
        "clusters": [],
        "fleets": [],
        "security_groups": [],
        "instances": [],
        "volumes": [],
        "records": [],
        "shared_records": [],
        "elastic_ips": [],
        "load_balancers": [],
    }
    seen_names = {}
    seen_records = {}
    kinds = (
        ("clusters", clusters_in, CLUSTER_KEYS, lambda raw: _merge(defaults, raw), _cluster, "dns_first_index"),
        ("fleets", fleets_in, FLEET_KEYS, lambda raw: _fleet_spec(defaults, raw), _fleet, "dns_prefix"),
    )
    for kind, items, keys, spec_of, expand, dns_key in kinds:
        for index, raw in enumerate(items):
            where = "%s.%s[%d]" % (VAR, kind, index)
            if not isinstance(raw, dict):
                checker.add(where, "must be a mapping, got %r" % (raw,))
                continue
            checker.unknown_keys(where, raw, keys)
            expanded = expand(checker, where, spec_of(raw), subnets, common_tags)
            if expanded is None:
                continue
            name = expanded["summary"]["name"]
            if name in seen_names:
                checker.add(where + ".name", "%r is already used by %s" % (name, seen_names[name]))
                continue
            seen_names[name] = "%s[%d]" % (kind, index)
            shared = expanded.get("shared_records", [])
            for record in expanded["records"] + shared:
                owner = seen_records.get(record["fqdn"])
                if owner is not None and owner != name:
                    checker.add(where + (".shared_name" if record in shared else "." + dns_key),
                                "gives %s, already used by %s; give each its own names (non-overlapping dns_first_index "
                                "ranges, or another dns_prefix)" % (record["fqdn"], owner))
                seen_records[record["fqdn"]] = name
            plan[kind].append(expanded["summary"])
            for key in ("security_groups", "instances", "volumes", "records", "shared_records", "elastic_ips", "load_balancers"):
                plan[key].extend(expanded.get(key, []))
    instance_names = [i["name"] for i in plan["instances"]]
    for duplicate in sorted(set(n for n in instance_names if instance_names.count(n) > 1)):
        checker.add(VAR, "two nodes would be named %s: rename a cluster or fleet" % duplicate)
    if checker.problems:
        raise PlanError(checker.problems)
    plan["zones"] = sorted(set(r["zone"] for r in plan["records"] + plan["shared_records"]))
    plan["cluster_names"] = [c["name"] for c in plan["clusters"]]
    plan["fleet_names"] = [f["name"] for f in plan["fleets"]]
    return plan


def _common(checker, where, spec, subnets, common_tags):
    """What clusters and fleets share: identity, zones, image, access rules, DNS, tags."""
    c = {}
    c["name"] = checker.string(where + ".name", spec.get("name"), CLUSTER_NAME,
                               "lower-case letters, digits and '-', 1 to 40 characters, no leading/trailing '-'")
    c["chain"] = checker.string(where + ".chain", spec.get("chain"), TAG_VALUE, "a tag value")
    c["network"] = checker.string(where + ".network", spec.get("network"), TAG_VALUE, "a tag value")
    c["ami"] = checker.string(where + ".ami", spec.get("ami"), AMI, "an AMI ID (ami-...)")

    azs = spec.get("availability_zones")
    if azs is None:
        if subnets:
            azs = sorted(subnets)
        else:
            checker.add(where + ".availability_zones", "is required when %s.subnets is not given" % VAR)
            azs = []
    elif not isinstance(azs, list) or not azs or not all(isinstance(a, str) and AZ.match(a) for a in azs):
        checker.add(where + ".availability_zones", "must be a non-empty list of availability zones, got %r" % (azs,))
        azs = []
    elif len(set(azs)) != len(azs):
        checker.add(where + ".availability_zones", "lists a zone twice: %r" % (azs,))
    elif subnets:
        missing = [a for a in azs if a not in subnets]
        if missing:
            checker.add(where + ".availability_zones", "has no subnet in %s.subnets for %s" % (VAR, ", ".join(missing)))
    c["azs"] = azs

    c["admin"] = checker.cidrs(where + ".admin_cidrs", spec.get("admin_cidrs"))
    for network_ in c["admin"]:
        # /0, or the internet in a few wide pieces (0.0.0.0/1 + 128.0.0.0/1): SSH would be open to everyone.
        if network_.prefixlen < 8:
            checker.add(where + ".admin_cidrs", "must not contain %s (wider than /8): SSH would be open to the internet"
                        % network_)
    c["health"] = checker.cidrs(where + ".health_cidrs", spec.get("health_cidrs"))
    for network_ in c["health"]:
        if network_.prefixlen == 0:
            checker.add(where + ".health_cidrs", "must not contain %s: give the load balancer subnets or the VPC CIDR"
                        % network_)
    health_port = spec.get("health_port")
    if health_port is not None:
        health_port = checker.integer(where + ".health_port", health_port, 1, 65535)
        if not c["health"] and spec.get("health_cidrs") is not None and health_port is not None:
            checker.add(where + ".health_cidrs", "is empty but health_port is set: give the load balancer / VPC CIDR "
                        "(or set health_port: null for no health check rule)")
    c["health_port"] = health_port
    c["ssh_port"] = checker.integer(where + ".ssh_port", spec.get("ssh_port"), 1, 65535)
    if c["ssh_port"] is not None and health_port is not None and c["ssh_port"] == health_port:
        checker.add(where + ".health_port", "%d is the ssh_port: health_cidrs would reach SSH" % health_port)

    zone = spec.get("hosted_zone")
    if zone is not None:
        zone = str(zone).rstrip(".").lower()
        labels = zone.split(".")
        if len(labels) < 2 or not all(ZONE_LABEL.match(label) for label in labels):
            checker.add(where + ".hosted_zone", "must be a DNS zone name such as validators.example.com, got %r"
                        % (spec.get("hosted_zone"),))
            zone = None
    c["zone"] = zone
    c["dns_first"] = checker.integer(where + ".dns_first_index", spec.get("dns_first_index"), 0, 99999)
    c["dns_ttl"] = checker.integer(where + ".dns_ttl", spec.get("dns_ttl"), 0, 2147483647)
    c["key_name"] = spec.get("key_name")
    if c["key_name"] is not None:
        c["key_name"] = checker.string(where + ".key_name", c["key_name"])
    c["profile"] = spec.get("iam_instance_profile")
    if c["profile"] is not None:
        c["profile"] = checker.string(where + ".iam_instance_profile", c["profile"])
    c["tags"] = dict(common_tags)
    c["tags"].update(_tags(checker, where + ".tags", spec.get("tags") or {}))
    return c


def _port_list(checker, where, raw, required=None):
    """A list of port specs (``26656``, ``'30303/udp'``, ``'9000-9010/tcp'``) -> [(protocol, low, high)]."""
    if raw is None or raw == []:
        if required:
            checker.add(where, required + ", got %r" % (raw,))
        return []
    if not isinstance(raw, list):
        checker.add(where, "must be a list of ports, got %r" % (raw,))
        return []
    ports = []
    for index, item in enumerate(raw):
        parsed = parse_port(_as_int(item) if _as_int(item) is not None else item)
        if parsed is None:
            checker.add("%s[%d]" % (where, index), "must be a port, 'PORT/udp' or 'LOW-HIGH/tcp', got %r" % (item,))
        else:
            ports.append(parsed)
    return ports


def _covers(ports, protocol, port):
    return port is not None and any(proto == protocol and lo <= port <= hi for proto, lo, hi in ports)


def _public_ports_spare(checker, where, public, c, what):
    """Ports open to the internet must not cover SSH or the health check."""
    for port_key, port in (("ssh_port", c["ssh_port"]), ("health_port", c["health_port"])):
        if _covers(public, "tcp", port):
            checker.add(where, "covers the %s %d: it would be open to the internet on every %s" % (port_key, port, what))


def _cluster(checker, where, spec, subnets, common_tags):
    before = len(checker.problems)
    c = _common(checker, where, spec, subnets, common_tags)
    name, chain, network, azs = c["name"], c["chain"], c["network"], c["azs"]
    standby = _as_bool(spec.get("standby"))
    if standby is None:
        checker.add(where + ".standby", "must be true or false, got %r" % (spec.get("standby"),))
    sentry_count = checker.integer(where + ".sentry_count", spec.get("sentry_count"), 1, 50)

    instance_type = spec.get("instance_type")
    types = {}
    for role in ("validator", "sentry"):
        key = role + "_instance_type"
        types[role] = checker.string(where + "." + key, spec.get(key) or instance_type, INSTANCE_TYPE,
                                     "an instance type such as m6i.xlarge")

    volumes = {}
    for role in ("validator", "sentry"):
        key = role + "_volume"
        volumes[role] = _volume(checker, where + "." + (key if spec.get(key) is not None else "volume"),
                                spec.get("volume"), spec.get(key))

    wireguard_port = checker.integer(where + ".wireguard_port", spec.get("wireguard_port"), 1, 65535)
    p2p = _port_list(checker, where + ".p2p_ports", spec.get("p2p_ports"),
                     "must list the public P2P ports of the sentries, e.g. [26656] or ['30303/tcp', '30303/udp']")
    if _covers(p2p, "udp", wireguard_port):
        checker.add(where + ".wireguard_port", "%d overlaps a public UDP P2P port" % wireguard_port)
    _public_ports_spare(checker, where + ".p2p_ports", p2p, c, "sentry")

    if len(checker.problems) != before:
        return None

    base_tags = dict(c["tags"])
    base_tags.update({"Chain": chain, "Network": network, "Cluster": name, MANAGED_BY_KEY: MANAGED_BY})
    sg_validator = name + "-validator"
    sg_sentry = name + "-sentry"
    # Every node with a health checker answers it from health_cidrs (the load balancer's or the VPC's).
    access = {"admin_cidrs": [str(n) for n in c["admin"]], "ssh_port": c["ssh_port"], "wireguard_port": wireguard_port,
              "health_port": c["health_port"], "health_cidrs": [str(n) for n in c["health"]]}
    specs = {
        # The hubs also tunnel to each other (validator and standby are WireGuard peers).
        "validator": dict(access, role="validator", p2p=p2p, wireguard_groups=[sg_sentry, sg_validator]),
        "sentry": dict(access, role="sentry", p2p=p2p, wireguard_groups=[sg_validator]),
    }
    security_groups = [
        {"name": group_name, "cluster": name, "role": kind, "description": _sg_description(group_name),
         "rules": port_model.security_group_rules(port_model.node_rules(specs[kind]), _sg_description),
         "tags": dict(base_tags, Name=group_name, Role=kind)}
        for kind, group_name in (("validator", sg_validator), ("sentry", sg_sentry))
    ]

    # Hubs: the validator in the first zone, the standby in the next one (it should survive a zone outage).
    nodes = [("validator", name + "-validator", azs[0])]
    if standby:
        nodes.append(("standby", name + "-standby", azs[1 % len(azs)]))
    # Sentries round robin over the zones so losing one zone never takes every sentry.
    for number in range(1, sentry_count + 1):
        nodes.append(("sentry", "%s-sentry-%d" % (name, number), azs[(number - 1) % len(azs)]))

    instances, volume_list, records = [], [], []
    for role, host, az in nodes:
        kind = "sentry" if role == "sentry" else "validator"
        tags = dict(base_tags, Name=host, Role=role)
        record = None
        if role == "sentry" and c["zone"]:
            record = {"fqdn": "node-%d.%s" % (c["dns_first"] + len(records), c["zone"]), "zone": c["zone"], "host": host,
                      "cluster": name, "ttl": c["dns_ttl"]}
            records.append(record)
        volume = volumes[kind]
        volume_list.append({
            "name": host + "-data", "host": host, "cluster": name, "az": az, "device": DATA_DEVICE,
            "size": volume["size"], "type": volume["type"], "iops": volume["iops"], "throughput": volume["throughput"],
            "tags": dict(base_tags, Name=host + "-data", Role=role),
        })
        instances.append({
            "name": host, "cluster": name, "role": role, "chain": chain, "network": network, "az": az,
            "subnet_id": subnets[az] if subnets else None, "instance_type": types[kind], "ami": c["ami"],
            "security_group": sg_sentry if role == "sentry" else sg_validator,
            # Only sentries face the internet; the validator and standby are reached over WireGuard.
            "public_ip": role == "sentry", "key_name": c["key_name"], "iam_instance_profile": c["profile"],
            "tags": tags, "fqdn": record["fqdn"] if record else None,
            "ports": dict(specs[kind], role=role),
        })
    summary = {
        "name": name, "chain": chain, "network": network, "availability_zones": list(azs), "standby": standby,
        "sentry_count": sentry_count, "hosted_zone": c["zone"], "security_groups": [sg_validator, sg_sentry],
        "hosts": [host for _role, host, _az in nodes],
    }
    return {"summary": summary, "security_groups": security_groups, "instances": instances,
            "volumes": volume_list, "records": records}


FLEET_DEFAULTS = {
    "role": "public",
    "count": 2,
    "instance_type": "t3.medium",
    "volume": {"size": 100, "type": "gp3"},
    "admin_cidrs": [],
    "health_cidrs": [],
    "health_port": 9680,
    "ssh_port": 22,
    "p2p_ports": [],
    "unique_p2p_port": None,
    "rpc_ports": [],
    "rpc_cidrs": [],
    "access_group": None,
    "elastic_ip": False,
    "ipv6": False,
    "hosted_zone": None,
    "dns_prefix": None,
    "dns_first_index": 1,
    "dns_ttl": 300,
    "shared_name": None,
    "load_balancer": None,
    "key_name": None,
    "iam_instance_profile": None,
    "tags": {},
}
FLEET_ROLES = port_model.FLEET_ROLES
# Keys of `defaults` a fleet takes (the cluster-only ones, such as sentry_count, do not apply).
FLEET_DEFAULT_KEYS = FLEET_KEYS & (frozenset(DEFAULTS) | frozenset(("ami", "availability_zones", "volume")))
LB_TYPES = {"network": ("TCP", "TLS", "UDP", "TCP_UDP"), "application": ("HTTP", "HTTPS")}


def _fleet_spec(defaults, raw):
    """A fleet's keys over the fleet defaults and the `defaults` keys that apply to fleets."""
    spec = dict(FLEET_DEFAULTS)
    spec.update(dict((k, v) for k, v in defaults.items() if k in FLEET_DEFAULT_KEYS))
    spec.update(raw)
    return spec


def _fleet(checker, where, spec, subnets, common_tags):
    """A fleet: ``count`` standalone nodes of one chain, each with a public address (optionally an Elastic
    IP and IPv6), a DNS record ``<dns_prefix>-N.<zone>``, P2P ports shared or unique per node, private RPC
    reachable from an access security group, optionally one shared DNS name and a load balancer."""
    before = len(checker.problems)
    c = _common(checker, where, spec, subnets, common_tags)
    name, azs = c["name"], c["azs"]
    role = spec.get("role")
    if role not in FLEET_ROLES:
        checker.add(where + ".role", "must be one of %s, got %r" % (", ".join(FLEET_ROLES), role))
    count = checker.integer(where + ".count", spec.get("count"), 1, 50)
    instance_type = checker.string(where + ".instance_type", spec.get("instance_type"), INSTANCE_TYPE,
                                   "an instance type such as m6i.xlarge")
    # volume: false: no data volume from provision (the node's comes from a snapshot: snapshot_restore ebs).
    volume = None if spec.get("volume") is False else _volume(checker, where + ".volume", spec.get("volume"), None)
    flags = {}
    for key in ("elastic_ip", "ipv6"):
        flags[key] = _as_bool(spec.get(key))
        if flags[key] is None:
            checker.add(where + "." + key, "must be true or false, got %r" % (spec.get(key),))

    p2p = _port_list(checker, where + ".p2p_ports", spec.get("p2p_ports"))
    rpc = _port_list(checker, where + ".rpc_ports", spec.get("rpc_ports"))
    unique = spec.get("unique_p2p_port")
    unique_base, unique_proto = None, "tcp"
    if unique is not None:
        if _as_int(unique) is not None:
            unique = {"base": unique}
        if not isinstance(unique, dict) or set(unique) - {"base", "protocol"}:
            checker.add(where + ".unique_p2p_port", "must be a port or {base: PORT, protocol: tcp|udp}, got %r" % (unique,))
        else:
            unique_proto = unique.get("protocol", "tcp")
            if unique_proto not in ("tcp", "udp"):
                checker.add(where + ".unique_p2p_port.protocol", "must be tcp or udp, got %r" % (unique_proto,))
            if count is not None:
                unique_base = checker.integer(where + ".unique_p2p_port.base", unique.get("base"), 1, 65536 - count)
    if not p2p and unique is None and not rpc:
        checker.add(where, "opens no port: give p2p_ports, unique_p2p_port or rpc_ports")

    unique_range = []
    if unique_base is not None and count is not None:
        unique_range = [(unique_proto, unique_base, unique_base + count - 1)]
        # Every node's own port is public on the whole fleet's group: it must not hit another port.
        for key, ports in (("p2p_ports", p2p), ("rpc_ports", rpc)):
            for proto, low, high in ports:
                if proto == unique_proto and low <= unique_base + count - 1 and unique_base <= high:
                    checker.add(where + ".unique_p2p_port", "%s %d-%d collides with %s %s" % (
                        unique_proto, unique_base, unique_base + count - 1, key, _ports_text(low, high)))
    public = p2p + unique_range
    _public_ports_spare(checker, where + (".unique_p2p_port" if _covers(unique_range, "tcp", c["ssh_port"])
                                          or _covers(unique_range, "tcp", c["health_port"]) else ".p2p_ports"), public, c, "node")
    for proto, low, high in rpc:
        if any(p == proto and lo <= high and low <= hi for p, lo, hi in p2p):
            checker.add(where + ".rpc_ports", "%s %s is also a public P2P port" % (proto, _ports_text(low, high)))
        for port_key, port in (("ssh_port", c["ssh_port"]), ("health_port", c["health_port"])):
            if _covers([(proto, low, high)], "tcp", port):
                checker.add(where + ".rpc_ports", "covers the %s %d" % (port_key, port))

    rpc_cidrs = checker.cidrs(where + ".rpc_cidrs", spec.get("rpc_cidrs"))
    for network_ in rpc_cidrs:
        if network_.prefixlen < 8:
            checker.add(where + ".rpc_cidrs", "must not contain %s (wider than /8): RPC would be open to the internet; "
                        "give the apps' networks or use the access group" % network_)
    access_group = spec.get("access_group")
    access_group = bool(rpc) if access_group is None else _as_bool(access_group)
    if access_group is None:
        checker.add(where + ".access_group", "must be true or false, got %r" % (spec.get("access_group"),))

    prefix = spec.get("dns_prefix") or name
    if prefix and not ZONE_LABEL.match(str(prefix)):
        checker.add(where + ".dns_prefix", "must be one DNS label (letters, digits, '-'), got %r" % (prefix,))
    shared = spec.get("shared_name")
    if shared is not None:
        if not c["zone"]:
            checker.add(where + ".shared_name", "needs hosted_zone (the zone the shared name lives in)")
        elif not all(ZONE_LABEL.match(label) for label in str(shared).lower().split(".")):
            checker.add(where + ".shared_name", "must be a DNS name under the zone, such as testnet, got %r" % (shared,))

    lb = spec.get("load_balancer")
    if lb is not None:
        if not isinstance(lb, dict):
            checker.add(where + ".load_balancer", "must be a mapping {type, port, target_port, protocol}, got %r" % (lb,))
            lb = None
        else:
            checker.unknown_keys(where + ".load_balancer", lb, LOAD_BALANCER_KEYS)
            lb_type = lb.get("type", "network")
            if lb_type not in LB_TYPES:
                checker.add(where + ".load_balancer.type", "must be network or application, got %r" % (lb_type,))
                lb_type = None
            protocol = lb.get("protocol", "TCP" if lb_type == "network" else "HTTP")
            if lb_type and protocol not in LB_TYPES[lb_type]:
                checker.add(where + ".load_balancer.protocol", "must be one of %s for a %s load balancer, got %r"
                            % (", ".join(LB_TYPES[lb_type]), lb_type, protocol))
            target_port = lb.get("target_port")
            if target_port is None and rpc:
                target_port = rpc[0][1]
            target_port = checker.integer(where + ".load_balancer.target_port", target_port, 1, 65535)
            lb_port = checker.integer(where + ".load_balancer.port", lb.get("port", target_port), 1, 65535)
            if c["health_port"] is None:
                checker.add(where + ".load_balancer", "needs health_port: the target group checks the health checker's /health")
            lb = {"type": lb_type, "protocol": protocol, "port": lb_port, "target_port": target_port}

    if len(checker.problems) != before:
        return None

    base_tags = dict(c["tags"])
    base_tags.update({"Chain": c["chain"], "Network": c["network"], "Fleet": name, MANAGED_BY_KEY: MANAGED_BY})
    sg_node, sg_access = name + "-node", name + "-access"
    ports = {
        "role": role, "p2p": p2p, "rpc": rpc, "rpc_cidrs": [str(n) for n in rpc_cidrs],
        "rpc_groups": [sg_access] if access_group and rpc else [], "health_port": c["health_port"],
        "health_cidrs": [str(n) for n in c["health"]], "ssh_port": c["ssh_port"],
        "admin_cidrs": [str(n) for n in c["admin"]],
    }
    # One group for the fleet: it admits every node's own P2P port, and so does each host (one rule set
    # for both enforcers; a node only listens on its own port).
    ports["p2p"] = public
    security_groups = [{
        "name": sg_node, "fleet": name, "role": role, "description": _sg_description(sg_node),
        "rules": port_model.security_group_rules(port_model.node_rules(ports), _sg_description),
        "tags": dict(base_tags, Name=sg_node, Role=role),
    }]
    if access_group and rpc:
        # No rules of its own: the apps that may call the fleet's RPC carry it.
        security_groups.insert(0, {"name": sg_access, "fleet": name, "role": "access", "description": _sg_description(sg_access),
                                   "rules": [], "tags": dict(base_tags, Name=sg_access, Role="access")})

    instances, volumes, records, eips = [], [], [], []
    for number in range(1, count + 1):
        host = "%s-%d" % (name, number)
        az = azs[(number - 1) % len(azs)]
        tags = dict(base_tags, Name=host, Role=role)
        if unique_base is not None:
            tags["P2PPort"] = "%d/%s" % (unique_base + number - 1, unique_proto)
        fqdn = None
        if c["zone"]:
            fqdn = "%s-%d.%s" % (prefix, c["dns_first"] + number - 1, c["zone"])
            tags["DnsName"] = fqdn
            for record_type in ("A", "AAAA") if flags["ipv6"] else ("A",):
                records.append({"fqdn": fqdn, "zone": c["zone"], "host": host, "fleet": name, "ttl": c["dns_ttl"],
                                "type": record_type})
        if flags["elastic_ip"]:
            eips.append({"host": host, "fleet": name, "tags": dict(base_tags, Name=host + "-eip", Role=role)})
        if volume is not None:
            volumes.append({
                "name": host + "-data", "host": host, "fleet": name, "cluster": None, "az": az, "device": DATA_DEVICE,
                "size": volume["size"], "type": volume["type"], "iops": volume["iops"], "throughput": volume["throughput"],
                "tags": dict(base_tags, Name=host + "-data", Role=role),
            })
        instances.append({
            "name": host, "cluster": None, "fleet": name, "role": role, "chain": c["chain"], "network": c["network"],
            "az": az, "subnet_id": subnets[az] if subnets else None, "instance_type": instance_type, "ami": c["ami"],
            "security_group": sg_node, "public_ip": not flags["elastic_ip"], "ipv6": flags["ipv6"],
            "elastic_ip": flags["elastic_ip"], "key_name": c["key_name"], "iam_instance_profile": c["profile"],
            "tags": tags, "fqdn": fqdn, "ports": ports,
            "p2p_port": unique_base + number - 1 if unique_base is not None else None,
        })
    shared_records = []
    if shared is not None:
        fqdn = "%s.%s" % (str(shared).lower(), c["zone"])
        for record_type in ("A", "AAAA") if flags["ipv6"] else ("A",):
            shared_records.append({"fqdn": fqdn, "zone": c["zone"], "hosts": [i["name"] for i in instances], "fleet": name,
                                   "ttl": c["dns_ttl"], "type": record_type})
    load_balancers = []
    if lb is not None:
        load_balancers.append({
            "name": _aws_name(name + "-lb"), "fleet": name, "type": lb["type"], "protocol": lb["protocol"], "port": lb["port"],
            "target_group": {
                "name": _aws_name(name + "-tg"), "protocol": lb["protocol"], "port": lb["target_port"],
                "health_check": {"protocol": "HTTP", "path": "/health", "port": c["health_port"]},
                "targets": [i["name"] for i in instances],
            },
            "security_group": sg_node, "zones": sorted(set(i["az"] for i in instances)),
            "tags": dict(base_tags, Name=name + "-lb", Role="load-balancer"),
        })
    summary = {
        "name": name, "chain": c["chain"], "network": c["network"], "role": role, "count": count,
        "availability_zones": list(azs), "hosted_zone": c["zone"], "security_groups": [g["name"] for g in security_groups],
        "access_group": sg_access if access_group and rpc else None, "hosts": [i["name"] for i in instances],
        "shared_name": shared_records[0]["fqdn"] if shared_records else None,
        "load_balancer": load_balancers[0]["name"] if load_balancers else None,
    }
    return {"summary": summary, "security_groups": security_groups, "instances": instances, "volumes": volumes,
            "records": records, "shared_records": shared_records, "elastic_ips": eips, "load_balancers": load_balancers}


def _aws_name(name):
    """ELBv2 names: at most 32 characters."""
    return name if len(name) <= 32 else name[:32].rstrip("-")


def _sg_description(group):
    return "chainops.validator %s" % group


def subnets_by_az(subnets_info, availability_zones, vpc_id=None):
    """Choose one subnet per zone from DescribeSubnets results (``ec2_vpc_subnet_info`` output).

    Prefers a subnet tagged ``chainops:provision=true``, then the lowest subnet ID, so the choice is stable.

    :returns: ``(mapping az -> subnet id, vpc id)``
    :raises PlanError: when a zone has no subnet or the subnets span several VPCs.
    """
    problems = []
    by_az = {}
    vpcs = set()
    for subnet in subnets_info:
        az = subnet.get("availability_zone")
        if vpc_id and subnet.get("vpc_id") != vpc_id:
            continue
        vpcs.add(subnet.get("vpc_id"))
        preferred = (subnet.get("tags") or {}).get("chainops:provision") == "true"
        by_az.setdefault(az, []).append((0 if preferred else 1, subnet.get("id") or subnet.get("subnet_id")))
    if len(vpcs) > 1:
        problems.append("%s.subnets span several VPCs (%s); a cluster's security groups live in one VPC"
                        % (VAR, ", ".join(sorted(v for v in vpcs if v))))
    chosen = {}
    for az in availability_zones:
        if az not in by_az:
            problems.append("%s: no subnet in availability zone %s%s" % (VAR, az, " of %s" % vpc_id if vpc_id else ""))
        else:
            chosen[az] = sorted(by_az[az])[0][1]
    if problems:
        raise PlanError(problems)
    return chosen, (vpc_id or (vpcs.pop() if vpcs else None))


def check_subnets(declared, subnets_info, vpc_id=None):
    """Check that every declared subnet exists, lies in the zone it is declared for and in ``vpc_id``.

    :returns: the VPC ID of the subnets.
    :raises PlanError: on a mismatch.
    """
    found = dict(((s.get("id") or s.get("subnet_id")), s) for s in subnets_info)
    problems = []
    vpcs = set()
    for az, subnet_id in sorted(declared.items()):
        subnet = found.get(subnet_id)
        if subnet is None:
            problems.append("%s.subnets.%s: subnet %s does not exist" % (VAR, az, subnet_id))
            continue
        vpcs.add(subnet.get("vpc_id"))
        if subnet.get("availability_zone") != az:
            problems.append("%s.subnets.%s: subnet %s is in %s, not %s"
                            % (VAR, az, subnet_id, subnet.get("availability_zone"), az))
    if len(vpcs) > 1:
        problems.append("%s.subnets span several VPCs (%s)" % (VAR, ", ".join(sorted(vpcs))))
    elif vpc_id and vpcs and vpcs != {vpc_id}:
        problems.append("%s.subnets are in %s, not in %s.vpc_id %s" % (VAR, ", ".join(sorted(vpcs)), VAR, vpc_id))
    if problems:
        raise PlanError(problems)
    return vpcs.pop() if vpcs else vpc_id


def placement(plan, subnets_info):
    """Resolve the subnet of every zone (declared and checked, or looked up in the VPC) and place the instances.

    :returns: ``{"vpc_id": ..., "subnets": {az: subnet}, "instances": [instance with subnet_id]}``
    """
    zones = sorted(set(i["az"] for i in plan["instances"]))
    if plan.get("subnets"):
        vpc_id = check_subnets(plan["subnets"], subnets_info, plan.get("vpc_id"))
        subnet_map = dict(plan["subnets"])
    else:
        subnet_map, vpc_id = subnets_by_az(subnets_info, zones, plan.get("vpc_id"))
    return {"vpc_id": vpc_id, "subnets": subnet_map, "instances": place_instances(plan, subnet_map)}


def place_instances(plan, subnet_map):
    """Fill in each instance's subnet from ``subnet_map`` (az -> subnet ID)."""
    instances = []
    for instance in plan["instances"]:
        placed = dict(instance)
        placed["subnet_id"] = subnet_map[instance["az"]]
        instances.append(placed)
    return instances
