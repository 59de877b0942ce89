# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The Datadog Agent's configuration for a chainops host: its tags and the check files the role writes.

Controller only (the datadog_agent role's vars, through the datadog_* filters). Each check is a mapping
as the Agent reads conf.d/<check>.d/*.yaml, or None when the host has no such check (the role then
removes its file).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Values a topology tag is left out for (an unset inventory variable, as Jinja renders it too).
_UNSET = ("", None, "None")


def topology_tags(values):
    """'name:value' for each topology value that is set, in the given order."""
    return ["%s:%s" % (name, value) for name, value in values.items() if value not in _UNSET]


def _metrics_host(port):
    """Where the Agent reaches the node's metrics: loopback for a wildcard bind."""
    bind = port.get("bind", "0.0.0.0")
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind


def _profile_name(settings, default):
    """The node profile's name; default when the play has no node profile (None)."""
    name = settings["node_profile_name"]
    return default if name is None else name


def _openmetrics_instances(settings):
    instances = []
    tags = list(settings["check_tags"])
    if settings["health_checker"]:
        instances.append({
            "openmetrics_endpoint": settings["health_checker_url"] + "/metrics",
            "namespace": "chainops.health",
            "metrics": settings["health_checker_metrics"],
            "rename_labels": {"version": "checker_version"},
            "tags": tags + ["chainops_check:health_checker"],
        })
    if settings["node_metrics_wanted"]:
        port = settings["node_metrics_port"]
        node = settings["node_openmetrics"]
        instances.append({
            "openmetrics_endpoint": "http://%s:%s%s" % (_metrics_host(port), port.get("port", 0), node.get("path", "/metrics")),
            "namespace": node.get("namespace", _profile_name(settings, "node")),
            "metrics": node.get("metrics", []),
            "rename_labels": {"version": "node_version"},
            "tags": tags + ["chainops_check:node"] + list(node.get("tags", [])),
        })
    return instances


def builtin_checks(settings):
    """The role's own checks by name (openmetrics, http_check, process, journald, systemd); None: no file.

    settings: health_checker (bool), health_checker_url, health_checker_metrics, check_tags, node_checks
    (bool), node_unit, node_binary, node_profile_name (None without a node profile), node_metrics_wanted
    (bool), node_metrics_port (the
    profile's metrics port, {} for none), node_openmetrics (the merged openmetrics settings),
    logs_enabled (bool), systemd_units.
    """
    tags = list(settings["check_tags"])
    openmetrics = _openmetrics_instances(settings)
    node_checks = settings["node_checks"]
    unit = settings["node_unit"]
    return {
        "openmetrics": {"init_config": {}, "instances": openmetrics} if openmetrics else None,
        "http_check": {"init_config": {}, "instances": [{
            "name": "chainops-health",
            "url": settings["health_checker_url"] + "/health",
            "method": "GET",
            "http_response_status_code": "200",
            "timeout": 5,
            "tags": tags,
        }]} if settings["health_checker"] else None,
        "process": {"init_config": {}, "instances": [{
            "name": unit,
            "search_string": [settings["node_binary"]],
            "exact_match": False,
            "tags": tags,
        }]} if node_checks else None,
        "journald": {"logs": [{
            "type": "journald",
            "include_units": [unit + ".service"],
            "source": _profile_name(settings, unit),
            "service": unit,
            "tags": tags,
        }]} if node_checks and settings["logs_enabled"] else None,
        "systemd": {"init_config": {}, "instances": [{
            "unit_names": list(settings["systemd_units"]),
            "tags": tags,
        }]} if settings["systemd_units"] else None,
    }
