# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Each role's validation phase: the checks its argument spec cannot express, as one function per role
that returns every problem at once (``plugin_utils/inputs.py`` holds the checks themselves). The roles
call these through the ``*_input_problems`` filters before their first change."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.chainops.validator.plugins.module_utils.ebs_volume import LIMITS as EBS_LIMITS, volume_problems
from ansible_collections.chainops.validator.plugins.plugin_utils.inputs import Problems, as_int
from ansible_collections.chainops.validator.plugins.plugin_utils.recovery_code import recovery_code_problem

VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,99}$")
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOSTNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,253}$")


def kind(value):
    """What a value is, in words (never the value: it may be a secret)."""
    if value is None or value == "":
        return "nothing"
    for types, word in ((bool, "a boolean"), (dict, "a mapping"), (list, "a list"), ((int, float), "a number"), (str, "a string")):
        if isinstance(value, types):
            return word
    return type(value).__name__


def _strings_single_line(problems, name, value):
    """Every string inside a nested structure is one line (values end up in config file lines)."""
    if isinstance(value, str):
        problems.single_line(name, value, allow_empty=True)
    elif isinstance(value, dict):
        for key, item in value.items():
            problems.single_line("%s key" % name, str(key))
            _strings_single_line(problems, "%s.%s" % (name, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _strings_single_line(problems, "%s[%d]" % (name, index), item)


def peers(problems, name, value, inventory_hosts):
    """node_peers-style lists: inventory hostnames, or {address, port, id}."""
    if not isinstance(value, list):
        problems.add(name, value, "must be a list of inventory hostnames or {address, port, id} mappings")
        return
    for index, peer in enumerate(value):
        where = "%s[%d]" % (name, index)
        if isinstance(peer, str):
            if peer not in inventory_hosts:
                problems.add(where, peer, "is not a host of the inventory (give {address, port, id} for a node outside it)")
        elif isinstance(peer, dict):
            unknown = sorted(set(peer) - {"address", "port", "id"})
            if unknown:
                problems.add(where, peer, "unknown key(s) %s; allowed: address, port, id" % ", ".join(map(str, unknown)))
            address = peer.get("address")
            if problems.single_line(where + ".address", address) and not HOSTNAME.match(address):
                problems.add(where + ".address", address, "must be an IP address or a host name")
            if "port" in peer:
                problems.port(where + ".port", peer["port"])
            if peer.get("id") is not None:
                problems.single_line(where + ".id", peer["id"])
        else:
            problems.add(where, peer, "must be an inventory hostname or a mapping {address, port, id}")


def node_problems(values, inventory_hosts=()):
    """The node role's inputs (``values``: variable name -> value) that its argument spec lets through."""
    p = Problems()
    if p.single_line("node_profile", values["node_profile"]) and not PROFILE_NAME.match(values["node_profile"]):
        p.add("node_profile", values["node_profile"], "a profile name is letters, digits, '_', '.' and '-' (no '/')")
    p.unit_name("node_name", values["node_name"])
    p.account_name("node_user", values["node_user"])
    p.account_name("node_group", values["node_group"])
    for name in ("node_data_dir", "node_config_dir", "node_install_dir"):
        p.dedicated_directory(name, values[name])
    if values.get("node_data_mount"):
        p.absolute_path("node_data_mount", values["node_data_mount"])
    version = values.get("node_version")
    if version not in (None, "") and (not isinstance(version, str) or not VERSION.match(version)):
        p.add("node_version", version, "a version is letters, digits and . + ~ : _ - (a Debian or release version, no '/')")
    p.string_list("node_extra_args", values.get("node_extra_args", []))
    for port_name, settings in (values.get("node_ports") or {}).items():
        if isinstance(settings, dict) and "bind" in settings:
            p.ip_address("node_ports.%s.bind" % port_name, settings["bind"])
    peers(p, "node_peers", values.get("node_peers", []), inventory_hosts)
    peers(p, "node_private_peers", values.get("node_private_peers", []), inventory_hosts)
    p.single_line("node_p2p_advertise_address", values.get("node_p2p_advertise_address", ""), allow_empty=True)
    # Settings a profile cannot run without (Lighthouse's checkpoint sync URL): in node_config, or in the
    # network's settings (node_profile_overrides).
    config = values.get("node_config") if isinstance(values.get("node_config"), dict) else {}
    network_settings = values.get("node_profile_network_settings") or {}
    for key, why in sorted((values.get("node_profile_required_config") or {}).items()):
        if not (config.get(key) or network_settings.get(key)):
            p.items.append("node_config.%s: is required by profile %s (%s): %s; or give it for the network in "
                           "node_profile_overrides.networks.<network>.%s" % (key, values["node_profile"], values.get("node_network") or "its default network",
                                                                             why, key))
    secrets = values.get("node_secrets") or {}
    # The profile's secrets that have a format (a Polykey recovery code: bip39), by path.
    secret_formats = dict((s.get("path"), s.get("format")) for s in values.get("node_profile_secrets") or []
                          if isinstance(s, dict) and s.get("format"))
    if not isinstance(secrets, dict):
        p.add("node_secrets", "<not shown>", "must be a mapping {file name: content}")
    else:
        for key, content in secrets.items():
            where = "node_secrets[%r]" % key
            if p.file_in(where, key, values["node_data_dir"]) and key.startswith("/"):
                homes = (values["node_data_dir"], values["node_config_dir"])
                if not any(key.startswith(home + "/") for home in homes):
                    p.add(where, key, "an absolute secret path must be inside node_data_dir (%s) or node_config_dir (%s)" % homes)
            if not isinstance(content, str) or not content:
                # The content is a secret: its type is named, never the value.
                p.items.append("%s: the content must be a non-empty string (the file's text), got %s"
                               % (where, kind(content)))
            elif secret_formats.get(key if key.startswith("/") else values["node_data_dir"] + "/" + key) == "bip39":
                problem = recovery_code_problem(content.strip())
                if problem:
                    p.items.append("%s: the recovery code %s" % (where, problem))
    _strings_single_line(p, "node_config", values.get("node_config") or {})
    if values.get("node_install_url"):
        p.url("node_install_url", values["node_install_url"], schemes=("https", "http", "file"))
    elif values.get("node_profile_own_artifact"):
        p.items.append("node_install_url: is required by profile %s, which has no public download: %s"
                       % (values["node_profile"], values["node_profile_own_artifact"]))
    p.integer("node_limit_nofile", values.get("node_limit_nofile"), 1024, 1048576)
    p.integer("node_wait_timeout", values.get("node_wait_timeout"), 1, 86400)
    p.integer("node_data_device_timeout", values.get("node_data_device_timeout"), 1, 3600)
    return p.items


def health_checker_problems(values):
    p = Problems()
    p.unit_name("health_checker_service_name", values["health_checker_service_name"])
    p.account_name("health_checker_user", values["health_checker_user"])
    p.account_name("health_checker_group", values["health_checker_group"])
    p.dedicated_directory("health_checker_install_dir", values["health_checker_install_dir"])
    p.dedicated_directory("health_checker_config_dir", values["health_checker_config_dir"])
    p.ip_address("health_checker_listen_host", values["health_checker_listen_host"])
    if isinstance(values.get("health_checker_after_units"), list):
        for index, unit in enumerate(values["health_checker_after_units"]):
            where = "health_checker_after_units[%d]" % index
            if p.single_line(where, unit) and not re.match(r"^[A-Za-z0-9_.@:-]+$", unit):
                p.add(where, unit, "a unit name is letters, digits and _ . @ : - (e.g. litecoind.service)")
    else:
        p.add("health_checker_after_units", values.get("health_checker_after_units"), "must be a list of unit names")
    password_files = [("health_checker_node_password_file", values.get("health_checker_node_password_file", ""))]
    for index, reference in enumerate(values.get("health_checker_references") or []):
        if isinstance(reference, dict) and "password_file" in reference:
            password_files.append(("health_checker_references[%d].password_file" % index, reference["password_file"]))
    defaults = values.get("health_checker_reference_defaults") or {}
    if isinstance(defaults, dict) and "password_file" in defaults:
        password_files.append(("health_checker_reference_defaults.password_file", defaults["password_file"]))
    for name, path in password_files:
        if path not in ("", "none", None):
            p.absolute_path(name, path)
    if values.get("health_checker_node_url"):
        p.url("health_checker_node_url", values["health_checker_node_url"])
    if values.get("health_checker_consensus_url"):
        p.url("health_checker_consensus_url", values["health_checker_consensus_url"])
        if values.get("health_checker_adapter") not in ("", "ethereum"):
            p.add("health_checker_consensus_url", values["health_checker_consensus_url"],
                  "only the ethereum adapter has a consensus client (adapter is %s)" % values.get("health_checker_adapter"))
    p.integer("health_checker_wait_timeout", values.get("health_checker_wait_timeout"), 1, 3600)
    return p.items


INTERFACE = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}$")
PEER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")


def wireguard_sentry_problems(values, members=(), clusters=()):
    """The wireguard_sentry role's inputs; ``members``: inventory hostnames with a topology role (they name
    files and appear in commands), ``clusters``: the clusters of the inventory."""
    p = Problems()
    interface = values["wireguard_sentry_interface"]
    if p.single_line("wireguard_sentry_interface", interface) and not INTERFACE.match(interface):
        p.add("wireguard_sentry_interface", interface, "an interface name is 1-15 letters, digits and _ = + . -")
    p.port("wireguard_sentry_port", values["wireguard_sentry_port"])
    p.integer("wireguard_sentry_mtu", values["wireguard_sentry_mtu"], 1280, 9000)
    p.integer("wireguard_sentry_keepalive", values["wireguard_sentry_keepalive"], 1, 65535)
    p.integer("wireguard_sentry_min_sentries", values["wireguard_sentry_min_sentries"], 1, 50)
    p.integer("wireguard_sentry_overlay_prefix", values["wireguard_sentry_overlay_prefix"], 8, 30)
    p.cidr("wireguard_sentry_overlay_pool", values["wireguard_sentry_overlay_pool"], version=4)
    cidrs = values["wireguard_sentry_cluster_cidrs"]
    if isinstance(cidrs, dict):
        for cluster, cidr in cidrs.items():
            if clusters and cluster not in clusters:
                p.add("wireguard_sentry_cluster_cidrs", cluster, "names no cluster of the inventory (clusters: %s)" % ", ".join(sorted(clusters)))
            p.cidr("wireguard_sentry_cluster_cidrs.%s" % cluster, cidr, version=4)
    if values["wireguard_sentry_endpoint_address"]:
        p.ip_address("wireguard_sentry_endpoint_address", values["wireguard_sentry_endpoint_address"])
    p.cidr_list("wireguard_sentry_admin_cidrs", values["wireguard_sentry_admin_cidrs"], min_prefix=8)
    p.port("wireguard_sentry_ssh_port", values["wireguard_sentry_ssh_port"])
    for name in ("wireguard_sentry_p2p_ports", "wireguard_sentry_overlay_ports", "wireguard_sentry_public_ports",
                 "wireguard_sentry_rpc_ports"):
        p.port_rules(name, values.get(name, []))
    p.port("wireguard_sentry_health_port", values.get("wireguard_sentry_health_port", 9680))
    p.cidr_list("wireguard_sentry_health_cidrs", values.get("wireguard_sentry_health_cidrs", []), min_prefix=1)
    # Private RPC is never the internet's.
    p.cidr_list("wireguard_sentry_rpc_cidrs", values.get("wireguard_sentry_rpc_cidrs", []), min_prefix=8)
    # Ports the firewall opens to everyone (on sentries) must not be the SSH port: SSH is for the admin networks only.
    ssh, wg = as_int(values["wireguard_sentry_ssh_port"]), as_int(values["wireguard_sentry_port"])
    for name in ("wireguard_sentry_p2p_ports", "wireguard_sentry_public_ports"):
        for index, rule in enumerate(values[name] if isinstance(values[name], list) else []):
            if not isinstance(rule, dict):
                continue
            protocol = rule.get("protocol", "tcp")
            port = as_int(rule.get("port"))
            if port is not None and port == ssh and protocol == "tcp":
                p.add("%s[%d]" % (name, index), rule, "is the SSH port (wireguard_sentry_ssh_port %s): it would be open to everyone" % ssh)
            if port is not None and port == wg and protocol == "udp":
                p.add("%s[%d]" % (name, index), rule, "is the WireGuard port (wireguard_sentry_port %s)" % wg)
    for member in members:
        if not PEER_NAME.match(str(member)):
            p.add("inventory hostname", member, "a cluster member's name names its key files: letters, digits, '_', '.' and '-'")
    return p.items


# Datadog's sites (docs.datadoghq.com/getting_started/site): the `site` parameter of each.
DATADOG_SITES = ("datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com",
                 "ap2.datadoghq.com", "ddog-gov.com")
# Tag keys Datadog reserves (host, device, source, service), and those the role sets from the topology.
DATADOG_RESERVED_TAGS = ("host", "device", "source", "service")
DATADOG_TOPOLOGY_TAGS = ("chain", "network", "role", "cluster", "availability-zone", "region")
DATADOG_BUILTIN_CHECKS = ("openmetrics", "http_check", "process", "journald", "systemd")
DATADOG_OWN_SETTINGS = ("api_key", "site", "hostname", "logs_enabled")
DATADOG_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*:[^\s,]+$")
DATADOG_VERSION = re.compile(r"^(?:\d+:)?(\d+)\.\d+\.\d+(?:~[A-Za-z0-9.]+)?-\d+$")
HOST_NAME = re.compile(r"^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _datadog_tags(p, name, tags, topology_tags):
    if not isinstance(tags, list):
        p.add(name, tags, 'must be a list of "key:value" strings')
        return
    for index, tag in enumerate(tags):
        where = "%s[%d]" % (name, index)
        if not isinstance(tag, str) or not DATADOG_TAG.match(tag):
            p.add(where, tag, 'a tag is "key:value": the key starts with a letter, no spaces or commas')
            continue
        key = tag.split(":", 1)[0].lower()
        if key in DATADOG_RESERVED_TAGS:
            p.add(where, tag, "'%s' is a tag key Datadog reserves (%s)" % (key, ", ".join(DATADOG_RESERVED_TAGS)))
        elif topology_tags and key in DATADOG_TOPOLOGY_TAGS:
            p.add(where, tag, "'%s' is set by the role from the topology (datadog_agent_topology_tags); "
                              "set datadog_agent_topology_tags: false to give it yourself" % key)


def datadog_agent_problems(values):
    p = Problems()
    if values["datadog_agent_site"] not in DATADOG_SITES:
        p.add("datadog_agent_site", values["datadog_agent_site"], "one of Datadog's sites: %s" % ", ".join(DATADOG_SITES))
    p.url("datadog_agent_apt_repo_url", values["datadog_agent_apt_repo_url"], schemes=("https", "http", "file"))
    urls = values["datadog_agent_apt_key_urls"]
    if not isinstance(urls, list) or not urls:
        p.add("datadog_agent_apt_key_urls", urls, "must be a non-empty list of key URLs")
    else:
        for index, url in enumerate(urls):
            p.url("datadog_agent_apt_key_urls[%d]" % index, url, schemes=("https", "http", "file"))
    dist = values["datadog_agent_apt_dist"]
    if p.single_line("datadog_agent_apt_dist", dist) and not re.match(r"^[a-z0-9][a-z0-9._-]*$", dist):
        p.add("datadog_agent_apt_dist", dist, "an apt distribution name (e.g. stable, beta)")
    p.integer("datadog_agent_major_version", values["datadog_agent_major_version"], 6, 7)
    version = values["datadog_agent_version"]
    if version:
        match = DATADOG_VERSION.match(str(version))
        if not match:
            p.add("datadog_agent_version", version, "an exact package version such as 7.60.0-1 (epoch optional), or empty")
        elif match.group(1) != str(values["datadog_agent_major_version"]):
            p.add("datadog_agent_version", version, "is not of datadog_agent_major_version %s" % values["datadog_agent_major_version"])
    p.absolute_path("datadog_agent_apt_keyring", values["datadog_agent_apt_keyring"])
    if values["datadog_agent_hostname"] and not HOST_NAME.match(str(values["datadog_agent_hostname"])):
        p.add("datadog_agent_hostname", values["datadog_agent_hostname"], "a host name (letters, digits, '-' and '.')")
    _datadog_tags(p, "datadog_agent_tags", values["datadog_agent_tags"], values["datadog_agent_topology_tags"])
    config = values["datadog_agent_config"]
    if not isinstance(config, dict):
        p.add("datadog_agent_config", config, "must be a mapping (merged over datadog.yaml)")
    else:
        for key in DATADOG_OWN_SETTINGS:
            if key in config:
                p.add("datadog_agent_config.%s" % key, "<not shown>", "set it with datadog_agent_%s, which the role checks" % key)
        if "tags" in config:
            _datadog_tags(p, "datadog_agent_config.tags", config["tags"], values["datadog_agent_topology_tags"])
    checks = values["datadog_agent_checks"]
    if not isinstance(checks, dict):
        p.add("datadog_agent_checks", "<not shown>", "must be a mapping {check name: {init_config, instances, logs} or null}")
    else:
        for name, check in checks.items():
            where = "datadog_agent_checks[%r]" % name
            if name in DATADOG_BUILTIN_CHECKS:
                p.add(where, name, "the role writes its own %s check; use a check name of your own or the role's settings for it" % name)
            elif not re.match(r"^[a-z0-9_]{1,64}$", str(name)):
                p.add(where, name, "a check name is lowercase letters, digits and '_'")
            if check is not None and not isinstance(check, dict):
                p.add(where, "<not shown>", "must be a mapping {init_config, instances, logs}, or null to remove our file")
    p.string_list("datadog_agent_check_tags", values["datadog_agent_check_tags"])
    p.account_name("datadog_agent_user", values["datadog_agent_user"])
    p.account_name("datadog_agent_group", values["datadog_agent_group"])
    if isinstance(values["datadog_agent_additional_groups"], list):
        for index, group in enumerate(values["datadog_agent_additional_groups"]):
            p.account_name("datadog_agent_additional_groups[%d]" % index, group)
    else:
        p.add("datadog_agent_additional_groups", values["datadog_agent_additional_groups"], "must be a list of group names")
    p.dedicated_directory("datadog_agent_config_dir", values["datadog_agent_config_dir"])
    p.unit_name("datadog_agent_service", values["datadog_agent_service"])
    if values["datadog_agent_health_checker"]:
        p.url("datadog_agent_health_checker_url", values["datadog_agent_health_checker_url"])
    p.string_list("datadog_agent_systemd_units", values["datadog_agent_systemd_units"])
    return p.items


S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
FAILOVER_RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def failover_problems(request, hosts):
    """validator_failover's request (``request``: from, to, wait_seconds, unfenced, run, lease_bucket) against the inventory
    (``hosts``: hostname -> {role, cluster}): the signer moves from the cluster's validator to one of its
    standbys, nothing else."""
    p = Problems()
    old, new = request.get("from"), request.get("to")
    for name, host in (("chainops_failover_from", old), ("chainops_failover_to", new)):
        if not p.single_line(name, host):
            continue
        if host not in hosts:
            p.add(name, host, "is not a host of the inventory")
    if p:
        return p.items
    if old == new:
        p.add("chainops_failover_to", new, "must differ from chainops_failover_from")
        return p.items
    if hosts[old].get("role") != "validator":
        p.add("chainops_failover_from", old, "is a %s, not its cluster's validator: only the signer is failed over"
              % (hosts[old].get("role") or "host without a topology role"))
    if hosts[new].get("role") != "standby":
        p.add("chainops_failover_to", new, "is a %s, not a standby: the signer moves only onto a standby of the same cluster"
              % (hosts[new].get("role") or "host without a topology role"))
    if not hosts[old].get("cluster") or hosts[old].get("cluster") != hosts[new].get("cluster"):
        p.add("chainops_failover_to", new, "is in cluster %s, chainops_failover_from %s in cluster %s: both must be in one cluster"
              % (hosts[new].get("cluster"), old, hosts[old].get("cluster")))
    wait = request.get("wait_seconds")
    try:
        wait_ok = not isinstance(wait, bool) and 0 <= int(str(wait)) <= 3600
    except ValueError:
        wait_ok = False
    if not wait_ok:
        p.add("chainops_failover_wait_seconds", wait, "must be a whole number of seconds from 0 to 3600")
    unfenced = request.get("unfenced") or ""
    if unfenced and unfenced != old:
        p.add("chainops_failover_unfenced", unfenced, "must name the old signer (%s) itself: it is the operator's word that this "
              "host is down, so its fence may be skipped" % old)
    run = request.get("run")
    if run is not None and not FAILOVER_RUN.match(str(run)):
        p.add("chainops_failover_run", run, "must be the id of a failover run (letters, digits and ._:-, at most 64), as a "
              "refused failover names it")
    if not S3_BUCKET.match(str(request.get("lease_bucket") or "")):
        p.add("signer_lease_bucket", request.get("lease_bucket") or "",
              "must name the S3 bucket of the signer leases (set for %s): the new signer starts only with its cluster's lease" % new)
    return p.items


def snapshot_restore_problems(values):
    p = Problems()
    if values["snapshot_restore_manifest_url"]:
        p.url("snapshot_restore_manifest_url", values["snapshot_restore_manifest_url"], schemes=("https", "http", "file"))
    p.integer("snapshot_restore_presign_expiry", values["snapshot_restore_presign_expiry"], 60, 604800)
    p.integer("snapshot_restore_download_timeout", values["snapshot_restore_download_timeout"], 1, 3600)
    p.integer("snapshot_restore_connections", values["snapshot_restore_connections"], 0, 64)
    p.integer("snapshot_restore_ebs_initialize_iodepth", values["snapshot_restore_ebs_initialize_iodepth"], 1, 256)
    p.integer("snapshot_restore_wait_timeout", values["snapshot_restore_wait_timeout"], 1, 604800)
    packages = values["snapshot_restore_packages"]
    if p.string_list("snapshot_restore_packages", packages):
        for index, package in enumerate(packages):
            if not re.match(r"^[a-z0-9][a-z0-9+.-]+$", package):
                p.add("snapshot_restore_packages[%d]" % index, package, "a Debian package name")
    if values["snapshot_restore_source"] == "ebs":
        instance = values["snapshot_restore_ebs_instance_id"]
        if instance and not re.match(r"^i-[0-9a-f]{8,17}$", str(instance)):
            p.add("snapshot_restore_ebs_instance_id", instance, "an EC2 instance id (i-...)")
        zone = values["snapshot_restore_ebs_availability_zone"]
        if zone and not re.match(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$", str(zone)):
            p.add("snapshot_restore_ebs_availability_zone", zone, "an availability zone such as us-east-1a")
        device = values["snapshot_restore_ebs_device_name"]
        if not re.match(r"^/dev/(sd[g-z]|xvd[g-z])$", str(device)):
            p.add("snapshot_restore_ebs_device_name", device, "a free device name from /dev/sdg to /dev/sdz "
                  "(/dev/sdf is the provisioned data volume)")
        p.dedicated_directory("snapshot_restore_ebs_keep_dir", values["snapshot_restore_ebs_keep_dir"])
        tags = values["snapshot_restore_ebs_tags"]
        if isinstance(tags, dict):
            for key in tags:
                if str(key).startswith(("chainops:", "aws:")):
                    p.add("snapshot_restore_ebs_tags", key, "tags under chainops: and aws: are set by the role or AWS")
        else:
            p.add("snapshot_restore_ebs_tags", tags, "must be a mapping of tag keys to values")
        p.integer("snapshot_restore_ebs_device_timeout", values["snapshot_restore_ebs_device_timeout"], 1, 3600)
        sized = ("snapshot_restore_ebs_volume_size", "snapshot_restore_ebs_iops", "snapshot_restore_ebs_throughput",
                 "snapshot_restore_ebs_initialization_rate")
        numbers = {name: as_int(values[name]) for name in sized}
        volume_type = values["snapshot_restore_ebs_volume_type"]
        # The role sends IOPS and throughput only to the types that take them (tasks/ebs.yml): check those.
        takes = EBS_LIMITS.get(volume_type, {})
        if None not in numbers.values():
            for problem in volume_problems(volume_type, numbers["snapshot_restore_ebs_volume_size"] or None,
                                           numbers["snapshot_restore_ebs_iops"] if "iops" in takes else None,
                                           numbers["snapshot_restore_ebs_throughput"] if "throughput" in takes else None,
                                           numbers["snapshot_restore_ebs_initialization_rate"]):
                name = "snapshot_restore_ebs_" + {"size": "volume_size"}.get(problem[0], problem[0])
                p.add(name, values[name], problem[1])
        else:
            for name, number in numbers.items():
                if number is None:
                    p.add(name, values[name], "must be an integer")
    return p.items


def _s3_key(p, name, value):
    """An S3 key or key prefix written by the role: one line, not empty, no leading or trailing '/'."""
    if p.single_line(name, value) and (value.startswith("/") or value.endswith("/")):
        p.add(name, value, "an S3 key has no leading or trailing '/'")


def snapshot_problems(values):
    """The snapshot role's inputs for what runs: ``snapshot_mode`` is the entry point (archive, ebs or verify)."""
    p = Problems()
    action = values["snapshot_mode"]
    if action in ("archive", "verify"):
        if not S3_BUCKET.match(str(values["snapshot_s3_bucket"] or "")):
            p.add("snapshot_s3_bucket", values["snapshot_s3_bucket"], "must name the S3 bucket of the archives (%s needs it)" % action)
        _s3_key(p, "snapshot_s3_manifest_key", values["snapshot_s3_manifest_key"])
        if values["snapshot_work_dir"]:
            p.dedicated_directory("snapshot_work_dir", values["snapshot_work_dir"])
    if values["snapshot_aws_endpoint_url"]:
        p.url("snapshot_aws_endpoint_url", values["snapshot_aws_endpoint_url"])
    if action in ("archive", "ebs") and values["snapshot_block_height"] not in ("", None):
        p.integer("snapshot_block_height", values["snapshot_block_height"], 0)
    if action == "archive":
        _s3_key(p, "snapshot_s3_prefix", values["snapshot_s3_prefix"])
        p.integer("snapshot_zstd_level", values["snapshot_zstd_level"], 1, 19)
        p.integer("snapshot_keep", values["snapshot_keep"], 1, 1000)
        p.string_list("snapshot_exclude", values["snapshot_exclude"])
        p.integer("snapshot_part_size", values["snapshot_part_size"], 5 * 1024 * 1024, 5 * 1024 * 1024 * 1024)
        p.integer("snapshot_upload_connections", values["snapshot_upload_connections"], 1, 64)
        p.integer("snapshot_presign_expiry", values["snapshot_presign_expiry"], 60, 604800)
    elif action == "ebs":
        if not re.match(r"^vol-[0-9a-f]{8,17}$", str(values["snapshot_ebs_volume_id"] or "")):
            p.add("snapshot_ebs_volume_id", values["snapshot_ebs_volume_id"], "must name the node's data volume (vol-...): ebs needs it")
        p.integer("snapshot_ebs_keep_last", values["snapshot_ebs_keep_last"], 1, 1000)
        if values["snapshot_ebs_max_age"] and not re.match(r"^[0-9]+[smhdw]$", str(values["snapshot_ebs_max_age"])):
            p.add("snapshot_ebs_max_age", values["snapshot_ebs_max_age"], "a number with a unit s, m, h, d or w (e.g. 30d), or empty")
        if values["snapshot_ebs_data_format"]:
            p.single_line("snapshot_ebs_data_format", values["snapshot_ebs_data_format"])
    elif action == "verify":
        p.port("snapshot_verify_rpc_port", values["snapshot_verify_rpc_port"])
        p.integer("snapshot_verify_timeout", values["snapshot_verify_timeout"], 1, 86400)
    return p.items
