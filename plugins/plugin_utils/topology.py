# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Sentry topology model shared by the inventory plugin, filter plugins and the WireGuard role.

Pure Python (stdlib only, no boto3, no Ansible): a *cluster* is one hub - the signing
``validator`` or, failing that, a non-signing ``standby`` - plus the ``sentry`` hosts that
protect it. Each cluster owns an overlay CIDR; every cluster member gets one overlay address.

Address stability rules (a host keeps its address while it exists):

* An address persisted for a host (EC2 tag, inventory variable) always wins.
* Hosts without one get the lowest free address of the cluster CIDR, hubs first, then by name,
  so adding or removing a sentry never moves a host whose address is persisted.
* A cluster CIDR comes from explicit configuration, else from the prefix of a persisted address
  (``10.99.3.2/24``), else from the pool subnet holding a persisted address, else from a pool
  slot derived from a hash of the cluster name (so a new cluster rarely moves another).

Problems are returned as data (:class:`TopologyIssue`), never raised, so callers decide whether
to warn or to fail.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress

ROLES = ("validator", "sentry", "standby", "public", "rpc", "seed", "bootnode")
# Roles that belong to a cluster and sit on the WireGuard overlay.
OVERLAY_ROLES = frozenset(("validator", "standby", "sentry"))
HUB_ROLES = ("validator", "standby")

DEFAULT_MIN_SENTRIES = 2
DEFAULT_POOL = "10.99.0.0/16"
DEFAULT_CLUSTER_PREFIX = 24

ERROR = "error"
WARNING = "warning"

# Hubs get the first addresses so that, on a fresh cluster, the validator is predictably .1.
_ROLE_ORDER = {"validator": 0, "standby": 1, "sentry": 2}


class TopologyIssue:
    """One validation finding. ``severity`` is ``error`` or ``warning``; ``code`` is stable for tests and tooling."""

    __slots__ = ("severity", "code", "message", "cluster", "hosts")

    def __init__(self, severity, code, message, cluster=None, hosts=()):
        self.severity = severity
        self.code = code
        self.message = message
        self.cluster = cluster
        self.hosts = tuple(hosts)

    def to_dict(self):
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "cluster": self.cluster,
            "hosts": list(self.hosts),
        }

    def __repr__(self):
        return "TopologyIssue(%s, %s, %r)" % (self.severity, self.code, self.message)


class Cluster:
    """One validator (or standby) and its sentries, with the overlay plan."""

    __slots__ = ("name", "cidr", "validators", "standbys", "sentries", "addresses", "persisted", "chain", "network")

    def __init__(self, name):
        self.name = name
        self.cidr = None  # ipaddress network, None when it could not be decided
        self.validators = []
        self.standbys = []
        self.sentries = []
        self.addresses = {}  # host name -> address string
        self.persisted = set()  # host names whose address came from persisted data
        self.chain = None
        self.network = None

    @property
    def validator(self):
        """The signing validator, or None."""
        return self.validators[0] if self.validators else None

    @property
    def hub(self):
        """Where sentries connect: the signing validator, else the first standby."""
        if self.validators:
            return self.validators[0]
        return self.standbys[0] if self.standbys else None

    @property
    def members(self):
        return self.validators + self.standbys + self.sentries

    def to_dict(self):
        return {
            "name": self.name,
            "cidr": str(self.cidr) if self.cidr is not None else None,
            "validator": self.validator,
            "hub": self.hub,
            "standbys": list(self.standbys),
            "sentries": list(self.sentries),
            "addresses": dict(self.addresses),
            "persisted": sorted(self.persisted),
            "chain": self.chain,
            "network": self.network,
        }


class Topology:
    """Result of :func:`build_topology`."""

    def __init__(self):
        self.clusters = {}
        self.roles = {}  # host name -> normalized known role (or None)
        self.host_cluster = {}  # host name -> cluster name, overlay members only
        self.issues = []

    @property
    def errors(self):
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self):
        return [i for i in self.issues if i.severity == WARNING]

    def host(self, name):
        """Overlay facts for one host: role, cluster, hub, sentries, address, CIDR, persisted."""
        cluster_name = self.host_cluster.get(name)
        if cluster_name is None:
            return {"role": self.roles.get(name), "cluster": None}
        cluster = self.clusters[cluster_name]
        return {
            "role": self.roles.get(name),
            "cluster": cluster_name,
            "validator": cluster.hub,
            "standbys": list(cluster.standbys),
            "sentries": list(cluster.sentries),
            "overlay_address": cluster.addresses.get(name),
            "overlay_cidr": str(cluster.cidr) if cluster.cidr is not None else None,
            "overlay_persisted": name in cluster.persisted,
        }

    def to_dict(self):
        return {
            "clusters": dict((name, c.to_dict()) for name, c in sorted(self.clusters.items())),
            "issues": [i.to_dict() for i in self.issues],
        }


def normalize_role(value):
    """Tag values are matched case-insensitively: ``Validator`` is ``validator``."""
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def _parse_network(value):
    return ipaddress.ip_network(str(value).strip(), strict=True)


def _parse_persisted(value):
    """Return (address, implied network or None). Raises ValueError on junk."""
    text = str(value).strip()
    if "/" in text:
        iface = ipaddress.ip_interface(text)
        return iface.ip, iface.network
    return ipaddress.ip_address(text), None


def _usable_bounds(network):
    """First and last usable address (as int) of a network."""
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.version == 4 and network.prefixlen <= 30:
        return first + 1, last - 1  # network and broadcast addresses are not usable
    if network.version == 6 and network.prefixlen <= 126:
        return first + 1, last  # skip the subnet-router anycast address
    return first, last


def usable_count(network):
    lo, hi = _usable_bounds(network)
    return max(0, hi - lo + 1)


def allocate_addresses(network, ordered_hosts, persisted):
    """Give every host in ``ordered_hosts`` an address inside ``network``.

    ``persisted`` maps host name -> ipaddress address, already validated to lie in ``network``
    and to be unique. Hosts without one get the lowest free usable address in list order.
    Returns ``(addresses, unplaced)``: name -> address string, and the hosts left without one.
    """
    lo, hi = _usable_bounds(network)
    used = set(int(a) for a in persisted.values())
    addresses = dict((name, str(addr)) for name, addr in persisted.items())
    unplaced = []
    candidate = lo
    cls = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
    for name in ordered_hosts:
        if name in addresses:
            continue
        while candidate <= hi and candidate in used:
            candidate += 1
        if candidate > hi:
            unplaced.append(name)
            continue
        used.add(candidate)
        addresses[name] = str(cls(candidate))
        candidate += 1
    return addresses, unplaced


def _fmt(names):
    return ", ".join(sorted(names))


def build_topology(hosts, cluster_cidrs=None, pool=DEFAULT_POOL, cluster_prefix=DEFAULT_CLUSTER_PREFIX,
                   min_sentries=DEFAULT_MIN_SENTRIES):
    """Build and validate the topology.

    :param hosts: iterable of mappings with ``name`` (unique) and optionally ``role``, ``cluster``,
        ``availability_zone``, ``overlay_address`` (persisted, ``a.b.c.d`` or ``a.b.c.d/nn``),
        ``chain`` and ``network``.
    :param cluster_cidrs: optional mapping cluster name -> CIDR string (explicit, wins).
    :param pool: CIDR that per-cluster subnets are carved from when not explicit.
    :param cluster_prefix: prefix length of the pool subnets.
    :param min_sentries: fewer sentries than this in a cluster is an error.
    :returns: :class:`Topology`; nothing is raised for bad data.
    """
    topo = Topology()
    issues = topo.issues
    cluster_cidrs = cluster_cidrs or {}
    persisted_raw = {}  # host -> (address, implied network)
    azs = {}
    chains = {}  # cluster -> {(chain, network): [hosts]}

    seen = set()
    for host in hosts:
        name = host["name"]
        if name in seen:
            raise ValueError("duplicate host name %r given to build_topology" % (name,))
        seen.add(name)
        raw_role = host.get("role")
        role = normalize_role(raw_role)
        if role is not None and role not in ROLES:
            issues.append(TopologyIssue(
                ERROR, "unknown_role",
                "host '%s': unknown role '%s' (known roles: %s)" % (name, raw_role, ", ".join(ROLES)),
                hosts=(name,)))
            role = None
        topo.roles[name] = role
        if role not in OVERLAY_ROLES:
            continue
        cluster_name = host.get("cluster")
        if cluster_name in (None, ""):
            issues.append(TopologyIssue(
                ERROR, "missing_cluster",
                "host '%s': role %s needs a cluster, but none is set" % (name, role), hosts=(name,)))
            continue
        cluster_name = str(cluster_name)
        cluster = topo.clusters.get(cluster_name)
        if cluster is None:
            cluster = topo.clusters[cluster_name] = Cluster(cluster_name)
        topo.host_cluster[name] = cluster_name
        if role == "validator":
            cluster.validators.append(name)
        elif role == "standby":
            cluster.standbys.append(name)
        else:
            cluster.sentries.append(name)
        azs[name] = host.get("availability_zone")
        chains.setdefault(cluster_name, {}).setdefault((host.get("chain"), host.get("network")), []).append(name)
        address = host.get("overlay_address")
        if address not in (None, ""):
            try:
                persisted_raw[name] = _parse_persisted(address)
            except ValueError:
                issues.append(TopologyIssue(
                    ERROR, "invalid_address",
                    "host '%s': overlay address '%s' is not an IP address" % (name, address),
                    cluster=cluster_name, hosts=(name,)))

    for cluster in topo.clusters.values():
        cluster.validators.sort()
        cluster.standbys.sort()
        cluster.sentries.sort()
        _check_roles(cluster, azs, min_sentries, issues)
        combos = chains[cluster.name]
        if len(combos) > 1:
            parts = ["%s/%s (%s)" % (c or "-", n or "-", _fmt(h)) for (c, n), h in sorted(combos.items(), key=lambda kv: str(kv[0]))]
            issues.append(TopologyIssue(
                ERROR, "mixed_chain",
                "cluster '%s' mixes chains or networks: %s; cluster names must be unique per chain and network"
                % (cluster.name, "; ".join(parts)),
                cluster=cluster.name, hosts=[h for hs in combos.values() for h in hs]))
        cluster.chain, cluster.network = sorted(combos, key=str)[0]

    _assign_cidrs(topo, cluster_cidrs, persisted_raw, pool, cluster_prefix, issues)
    _check_overlaps(topo, issues)

    for name in sorted(topo.clusters):
        _allocate_cluster(topo.clusters[name], persisted_raw, issues)
    return topo


def _check_roles(cluster, azs, min_sentries, issues):
    name = cluster.name
    if not cluster.validators and not cluster.standbys:
        issues.append(TopologyIssue(
            ERROR, "no_validator",
            "cluster '%s' has no validator or standby (members: %s)" % (name, _fmt(cluster.members)),
            cluster=name, hosts=cluster.members))
        return
    if len(cluster.validators) > 1:
        issues.append(TopologyIssue(
            ERROR, "two_validators",
            "cluster '%s' has %d signing validators (%s); only one may sign, tag the others as standby"
            % (name, len(cluster.validators), _fmt(cluster.validators)),
            cluster=name, hosts=cluster.validators))
    if len(cluster.sentries) < min_sentries:
        issues.append(TopologyIssue(
            ERROR, "too_few_sentries",
            "cluster '%s': validator %s has %d sentr%s (%s), fewer than min_sentries=%d"
            % (name, cluster.hub, len(cluster.sentries), "y" if len(cluster.sentries) == 1 else "ies",
               _fmt(cluster.sentries) or "none", min_sentries),
            cluster=name, hosts=[cluster.hub] + cluster.sentries))
    sentry_azs = set(azs.get(s) for s in cluster.sentries)
    if len(cluster.sentries) >= 2 and len(sentry_azs) == 1 and None not in sentry_azs:
        issues.append(TopologyIssue(
            WARNING, "sentries_single_az",
            "cluster '%s': all %d sentries (%s) are in availability zone %s; one zone outage cuts the validator off"
            % (name, len(cluster.sentries), _fmt(cluster.sentries), sentry_azs.pop()),
            cluster=name, hosts=cluster.sentries))


def _assign_cidrs(topo, explicit, persisted_raw, pool, prefix, issues):
    pending = []
    for name in sorted(topo.clusters):
        cluster = topo.clusters[name]
        implied = set(persisted_raw[h][1] for h in cluster.members if h in persisted_raw and persisted_raw[h][1] is not None)
        if name in explicit:
            try:
                cluster.cidr = _parse_network(explicit[name])
            except ValueError as exc:
                issues.append(TopologyIssue(
                    ERROR, "invalid_cidr", "cluster '%s': overlay CIDR '%s' is invalid: %s" % (name, explicit[name], exc),
                    cluster=name))
                continue
            wrong = sorted(str(n) for n in implied if n != cluster.cidr)
            if wrong:
                issues.append(TopologyIssue(
                    ERROR, "conflicting_cidr",
                    "cluster '%s': persisted addresses imply %s but the configured overlay CIDR is %s"
                    % (name, ", ".join(wrong), cluster.cidr), cluster=name))
        elif len(implied) > 1:
            issues.append(TopologyIssue(
                ERROR, "conflicting_cidr",
                "cluster '%s': persisted addresses disagree on the overlay CIDR (%s)" % (name, ", ".join(sorted(str(n) for n in implied))),
                cluster=name))
        elif implied:
            cluster.cidr = implied.pop()
        else:
            pending.append(cluster)

    if not pending:
        return
    try:
        pool_net = _parse_network(pool)
    except ValueError as exc:
        issues.append(TopologyIssue(ERROR, "invalid_cidr", "overlay pool '%s' is invalid: %s" % (pool, exc)))
        return
    if prefix < pool_net.prefixlen or prefix > pool_net.max_prefixlen:
        issues.append(TopologyIssue(
            ERROR, "invalid_cidr", "cluster prefix /%d does not fit in overlay pool %s" % (prefix, pool_net)))
        return
    size = 1 << (pool_net.max_prefixlen - prefix)
    slots = 1 << (prefix - pool_net.prefixlen)
    base = int(pool_net.network_address)
    cls = pool_net.__class__
    # Slots overlapped by explicit or implied CIDRs, as int ranges (cheap to test, any pool size).
    blocked = []
    for c in topo.clusters.values():
        if c.cidr is not None and c.cidr.version == pool_net.version and c.cidr.overlaps(pool_net):
            start = max(int(c.cidr.network_address), base)
            end = min(int(c.cidr.broadcast_address), int(pool_net.broadcast_address))
            blocked.append(((start - base) // size, (end - base) // size))
    used_slots = set()

    def slot_net(slot):
        return cls((base + slot * size, prefix))

    def free(slot):
        return slot not in used_slots and not any(lo <= slot <= hi for lo, hi in blocked)

    # Clusters with a persisted bare address keep the pool subnet that holds it.
    hashed = []
    for cluster in pending:
        addrs = [persisted_raw[h][0] for h in cluster.members if h in persisted_raw]
        inside = [a for a in addrs if a.version == pool_net.version and a in pool_net]
        if inside:
            slot = (int(min(inside)) - base) // size
            if free(slot):
                used_slots.add(slot)
                cluster.cidr = slot_net(slot)
                continue
        hashed.append(cluster)
    for cluster in hashed:
        start = int(hashlib.sha256(cluster.name.encode("utf-8")).hexdigest(), 16) % slots
        for i in range(slots):
            slot = (start + i) % slots
            if free(slot):
                used_slots.add(slot)
                cluster.cidr = slot_net(slot)
                break
        else:
            issues.append(TopologyIssue(
                ERROR, "pool_exhausted",
                "cluster '%s': overlay pool %s has no free /%d subnet left" % (cluster.name, pool_net, prefix),
                cluster=cluster.name))


def _check_overlaps(topo, issues):
    nets = sorted(
        ((c.cidr, c.name) for c in topo.clusters.values() if c.cidr is not None),
        key=lambda x: (x[0].version, int(x[0].network_address), x[0].prefixlen, x[1]))
    # Sorted by start address: a network can only overlap ones that start before its end.
    for i, (net, name) in enumerate(nets):
        for other, other_name in nets[i + 1:]:
            if other.version != net.version or int(other.network_address) > int(net.broadcast_address):
                break
            issues.append(TopologyIssue(
                ERROR, "overlapping_cidrs",
                "clusters '%s' (%s) and '%s' (%s) have overlapping overlay CIDRs" % (name, net, other_name, other),
                cluster=name))


def _allocate_cluster(cluster, persisted_raw, issues):
    net = cluster.cidr
    if net is None:
        return
    members = cluster.members
    lo, hi = _usable_bounds(net)
    valid = {}
    by_addr = {}
    for host in members:
        if host not in persisted_raw:
            continue
        addr = persisted_raw[host][0]
        if addr.version != net.version or addr not in net:
            issues.append(TopologyIssue(
                ERROR, "address_outside_cidr",
                "host '%s': overlay address %s is outside cluster '%s' CIDR %s" % (host, addr, cluster.name, net),
                cluster=cluster.name, hosts=(host,)))
            continue
        if not lo <= int(addr) <= hi:
            issues.append(TopologyIssue(
                ERROR, "invalid_address",
                "host '%s': overlay address %s is the network or broadcast address of %s" % (host, addr, net),
                cluster=cluster.name, hosts=(host,)))
            continue
        by_addr.setdefault(addr, []).append(host)
    for addr, hosts in sorted(by_addr.items()):
        if len(hosts) > 1:
            issues.append(TopologyIssue(
                ERROR, "duplicate_address",
                "cluster '%s': hosts %s all claim overlay address %s" % (cluster.name, _fmt(hosts), addr),
                cluster=cluster.name, hosts=hosts))
            # Nobody keeps a contested address; they get fresh ones so the plan stays usable.
            continue
        valid[hosts[0]] = addr
    capacity = hi - lo + 1 if hi >= lo else 0
    if len(members) > capacity:
        issues.append(TopologyIssue(
            ERROR, "cidr_too_small",
            "cluster '%s': overlay CIDR %s has %d usable address%s but the cluster has %d members"
            % (cluster.name, net, capacity, "" if capacity == 1 else "es", len(members)),
            cluster=cluster.name, hosts=members))
    ordered = sorted(members, key=lambda h: (_ROLE_ORDER[_role_of(cluster, h)], h))
    cluster.addresses, _unplaced = allocate_addresses(net, ordered, valid)
    cluster.persisted = set(valid)


def _role_of(cluster, host):
    if host in cluster.validators:
        return "validator"
    if host in cluster.standbys:
        return "standby"
    return "sentry"


def preshared_key_owner(host, host_role, peer, peer_role):
    """The side of a WireGuard pair that generates and keeps the pair's preshared key.

    A hub (validator, standby) owns the keys of its spokes, so a validator converged alone keeps
    every pair's key; between equals the lexically smaller name owns it. Both ends agree on it.
    """
    host_hub, peer_hub = host_role in HUB_ROLES, peer_role in HUB_ROLES
    if host_hub != peer_hub:
        return host if host_hub else peer
    return min(host, peer)
