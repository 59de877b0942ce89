"""The datadog_agent role's check files and topology tags (plugins/plugin_utils/datadog_checks.py, filters in plugins/filter/datadog.py)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.filter.datadog import datadog_checks, datadog_topology_tags
from ansible_collections.chainops.validator.plugins.plugin_utils.datadog_checks import builtin_checks, topology_tags

GETH_METRICS = [{"chain_head_block": "chain.head_block"}]


def settings(**changes):
    base = {
        "health_checker": True, "health_checker_url": "http://127.0.0.1:9680", "health_checker_metrics": [{"chainops_health_up": "up"}],
        "check_tags": ["chain:ethereum", "network:mainnet"], "node_checks": True, "node_unit": "geth", "node_binary": "/opt/geth/geth",
        "node_profile_name": "geth", "node_metrics_wanted": True, "node_metrics_port": {"port": 6060, "bind": "0.0.0.0"},
        "node_openmetrics": {"enabled": True, "tags": [], "path": "/debug/metrics/prometheus", "namespace": "geth", "metrics": GETH_METRICS},
        "logs_enabled": True, "systemd_units": ["geth.service"],
    }
    base.update(changes)
    return base


def test_topology_tags_keep_set_values_in_order():
    values = {"chain": "litecoin", "network": "main", "role": "", "cluster": None, "availability-zone": "None", "region": "eu-west-1"}
    assert topology_tags(values) == ["chain:litecoin", "network:main", "region:eu-west-1"]
    assert datadog_topology_tags({}) == []


def test_every_check_of_a_node_with_a_metrics_endpoint_and_a_health_checker():
    checks = builtin_checks(settings())
    health, node = checks["openmetrics"]["instances"]
    assert health == {"openmetrics_endpoint": "http://127.0.0.1:9680/metrics", "namespace": "chainops.health",
                      "metrics": [{"chainops_health_up": "up"}], "rename_labels": {"version": "checker_version"},
                      "tags": ["chain:ethereum", "network:mainnet", "chainops_check:health_checker"]}
    # A wildcard bind is scraped on loopback.
    assert node["openmetrics_endpoint"] == "http://127.0.0.1:6060/debug/metrics/prometheus"
    assert (node["namespace"], node["metrics"], node["rename_labels"]) == ("geth", GETH_METRICS, {"version": "node_version"})
    assert checks["http_check"]["instances"][0]["url"] == "http://127.0.0.1:9680/health"
    assert checks["process"]["instances"][0]["search_string"] == ["/opt/geth/geth"]
    assert checks["journald"]["logs"][0]["include_units"] == ["geth.service"]
    assert checks["systemd"]["instances"] == [{"unit_names": ["geth.service"], "tags": ["chain:ethereum", "network:mainnet"]}]


def test_a_bound_address_is_scraped_there_and_defaults_fill_in():
    node_settings = {"enabled": True, "tags": ["team:a"], "metrics": GETH_METRICS}
    checks = builtin_checks(settings(node_metrics_port={"port": 26660, "bind": "10.0.0.5"}, node_openmetrics=node_settings,
                                     node_profile_name="cometbft"))
    node = checks["openmetrics"]["instances"][1]
    assert node["openmetrics_endpoint"] == "http://10.0.0.5:26660/metrics"
    assert node["namespace"] == "cometbft"
    assert node["tags"] == ["chain:ethereum", "network:mainnet", "chainops_check:node", "team:a"]


def test_what_is_switched_off_has_no_file():
    checks = builtin_checks(settings(health_checker=False, node_metrics_wanted=False, logs_enabled=False, systemd_units=[]))
    assert checks["openmetrics"] is None and checks["http_check"] is None
    assert checks["journald"] is None and checks["systemd"] is None
    assert checks["process"] is not None
    none_at_all = builtin_checks(settings(health_checker=False, node_checks=False, node_metrics_wanted=False, systemd_units=[]))
    assert set(none_at_all.values()) == {None}


def test_without_a_node_profile_the_unit_names_the_logs():
    checks = builtin_checks(settings(node_profile_name=None, node_unit="mynode", node_metrics_wanted=False))
    assert checks["journald"]["logs"][0]["source"] == "mynode"


def test_the_filter_names_missing_and_unknown_settings():
    broken = settings(colour="blue")
    del broken["node_unit"]
    with pytest.raises(AnsibleFilterError, match="missing setting\\(s\\) node_unit; unknown setting\\(s\\) colour"):
        datadog_checks(broken)
    with pytest.raises(AnsibleFilterError, match="expects a mapping"):
        datadog_topology_tags(["chain:x"])
