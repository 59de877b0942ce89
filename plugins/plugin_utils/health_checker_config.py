# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The health checker service's config (roles/health_checker), built from the role's settings.

Controller only, through the health_checker_* filters. The service validates the result itself
(its --print-target-group, run by the role on the controller); this builds it: the node's
URL from its profile, the reference nodes from inventory hostnames or mappings, the credential files
systemd hands over, and the numbers as JSON numbers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.module_utils.common._collections_compat import Mapping
from ansible.module_utils.parsing.convert_bool import boolean

# Which of a profile's ports serves the API an adapter reads (default rpc), and under which path.
PORT_NAMES = {"waku": "rest"}
URL_PATHS = {"icon": "/api/v3"}
INTEGERS = ("max_lag_blocks", "listen_port", "max_connections")
FLOATS = ("max_head_age_s", "poll_interval_s", "timeout_s")
# Left out of the config when None.
OPTIONAL_NUMBERS = {"min_peers": int, "stale_after_s": float, "slow_polls_tolerated": int}


class HealthCheckerConfigError(ValueError):
    """A setting that cannot become a config; the message names the role variable."""


def _health(profile):
    health = profile.get("health") if isinstance(profile, Mapping) else None
    return health if isinstance(health, Mapping) else {}


def api_port(profile, adapter):
    """(name, port mapping) of the profile's port the adapter reads; the mapping is {} when there is none."""
    name = _health(profile).get("port", PORT_NAMES.get(adapter, "rpc"))
    ports = profile.get("ports") if isinstance(profile, Mapping) else None
    port = ports.get(name) if isinstance(ports, Mapping) else None
    return name, port if isinstance(port, Mapping) else {}


def api_path(profile, adapter):
    return _health(profile).get("path", URL_PATHS.get(adapter, ""))


def _url_host(bind):
    """A wildcard bind is reached on loopback; an IPv6 address goes in brackets."""
    if bind in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bind == "::":
        return "[::1]"
    return "[%s]" % bind if ":" in bind else bind


def node_url(profile, adapter, explicit=""):
    """explicit, else the URL of the node's API from its profile, else '' (unknown)."""
    if explicit:
        return explicit
    _name, port = api_port(profile or {}, adapter)
    if "port" not in port:
        return ""
    return "http://%s:%s%s" % (_url_host(port.get("bind", "127.0.0.1")), port["port"], api_path(profile, adapter))


def resolve_references(entries, hostvars, profile, adapter, defaults, credentials_dir, host):
    """(references for the config, credential files for systemd, problems) from health_checker_references."""
    references, credentials, problems = [], [], []
    for index, entry in enumerate(entries):
        where = "health_checker_references[%d]" % index
        if isinstance(entry, str):
            if entry not in hostvars:
                problems.append("%s: host %s is not in the inventory" % (where, entry))
                continue
            variables = hostvars[entry]
            ref_profile = variables.get("_node_profile", profile)
            port_name, port = api_port(ref_profile, adapter)
            if "port" not in port:
                problems.append("%s: host %s has no node profile with a '%s' port in this play (and neither has %s): give a mapping "
                                "with its url." % (where, entry, port_name, host))
                continue
            reference = dict(defaults)
            url = "http://%s:%s%s" % (variables.get("ansible_host", entry), port["port"], api_path(ref_profile, adapter))
            reference.update(name=entry, url=url)
        elif isinstance(entry, Mapping):
            reference = dict(entry)
        else:
            problems.append("%s: must be an inventory hostname or a mapping with a url, got %s" % (where, json.dumps(entry)))
            continue
        # systemd hands the file over (LoadCredential=): the config names the copy, the file keeps its owner and mode.
        if reference.get("password_file"):
            credentials.append({"id": "ref%d" % index, "path": reference["password_file"]})
            reference["password_file"] = "%s/ref%d" % (credentials_dir, index)
        references.append(reference)
    return references, credentials, problems


def _number(name, value, kind):
    """The argument spec accepts "3" for an int (as -e gives it); the service wants JSON numbers."""
    if not isinstance(value, str):
        return value
    try:
        return kind(value)
    except ValueError:
        raise HealthCheckerConfigError("health_checker_%s: must be a number, got %r" % (name, value))


def service_config(settings, hostvars):
    """{'config', 'credentials', 'problems'} for the service, from the role's settings (see the filter's documentation)."""
    credentials = []
    node = {"url": settings["node_url"]}
    if settings["node_user"]:
        node["user"] = settings["node_user"]
    if settings["node_password_file"]:
        credentials.append({"id": "node", "path": settings["node_password_file"]})
        node["password_file"] = settings["credentials_dir"] + "/node"
    if settings["node_headers"]:
        node["headers"] = settings["node_headers"]
    references, reference_credentials, problems = resolve_references(
        settings["references"], hostvars, settings["profile"], settings["adapter"], settings["reference_defaults"],
        settings["credentials_dir"], settings["host"])
    config = {
        "adapter": settings["adapter"],
        "node": node,
        "references": references,
        "reference_policy": settings["reference_policy"],
        "bootstrap": boolean(settings["bootstrap"], strict=False),
        "listen_host": settings["listen_host"],
        "target_group": settings["target_group"],
    }
    for name in INTEGERS:
        config[name] = _number(name, settings[name], int)
    for name in FLOATS:
        config[name] = _number(name, settings[name], float)
    if settings["consensus_url"]:
        config["consensus"] = {"url": settings["consensus_url"]}
    for name, kind in OPTIONAL_NUMBERS.items():
        if settings[name] is not None:
            config[name] = _number(name, settings[name], kind)
    return {"config": config, "credentials": credentials + reference_credentials, "problems": problems}
