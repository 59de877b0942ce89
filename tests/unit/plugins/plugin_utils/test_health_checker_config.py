"""The health checker's config from the role's settings (plugins/plugin_utils/health_checker_config.py, filters in plugins/filter/health_checker.py)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.chainops.validator.plugins.filter.health_checker import health_checker_config, health_checker_node_url
from ansible_collections.chainops.validator.plugins.plugin_utils.health_checker_config import node_url, resolve_references

LITECOIND = {"name": "litecoind", "ports": {"rpc": {"port": 9332, "bind": "0.0.0.0"}}, "health": {"adapter": "bitcoin"}}
CREDENTIALS = "/run/credentials/chainops-health.service"
HOSTVARS = {
    "sentry1": {},
    "sentry2": {"ansible_host": "10.10.0.3", "_node_profile": {"name": "litecoind", "ports": {"rpc": {"port": 9333}}}},
    "sentry3": {"ansible_host": "10.10.0.4"},
    "bare": {"_node_profile": {"name": "other", "ports": {"p2p": {"port": 1}}}},
}


def settings(**changes):
    base = {
        "adapter": "bitcoin", "node_url": "http://127.0.0.1:9332", "node_user": "", "node_password_file": "", "node_headers": {},
        "references": [], "reference_defaults": {}, "reference_policy": "fail_closed", "max_lag_blocks": 5, "max_head_age_s": 600,
        "bootstrap": False, "poll_interval_s": 5, "timeout_s": 3, "listen_host": "0.0.0.0", "listen_port": 9680,
        "max_connections": 64, "target_group": {}, "consensus_url": "", "min_peers": None, "stale_after_s": None,
        "slow_polls_tolerated": None, "credentials_dir": CREDENTIALS, "profile": LITECOIND, "host": "sentry1",
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    "profile, adapter, url",
    [
        (LITECOIND, "bitcoin", "http://127.0.0.1:9332"),
        ({"ports": {"rpc": {"port": 8545, "bind": "::"}}}, "ethereum", "http://[::1]:8545"),
        ({"ports": {"rest": {"port": 8645, "bind": "fd00::5"}}}, "waku", "http://[fd00::5]:8645"),
        ({"ports": {"rpc": {"port": 9000, "bind": "10.1.1.1"}}}, "icon", "http://10.1.1.1:9000/api/v3"),
        ({"ports": {"api": {"port": 1234}}, "health": {"port": "api", "path": "/status"}}, "polykey", "http://127.0.0.1:1234/status"),
        ({"ports": {"p2p": {"port": 1}}}, "bitcoin", ""),
        ({}, "bitcoin", ""),
    ],
)
def test_the_node_url_from_the_profile(profile, adapter, url):
    assert node_url(profile, adapter) == url


def test_an_explicit_node_url_wins():
    assert health_checker_node_url(LITECOIND, "bitcoin", "http://10.0.0.1:9332") == "http://10.0.0.1:9332"
    assert health_checker_node_url(None, "bitcoin") == ""


def test_references_from_hostnames_and_mappings_with_their_credentials():
    entries = ["sentry2", {"url": "https://rpc.example/", "password_file": "/etc/chainops/ref.pw", "headers": {"X-Key": "k"}}, "sentry3"]
    references, credentials, problems = resolve_references(entries, HOSTVARS, LITECOIND, "bitcoin", {"user": "rpc"}, CREDENTIALS, "sentry1")
    assert problems == []
    # sentry2 reads its own profile's port; sentry3 has none, so this host's profile gives it.
    assert references[0] == {"user": "rpc", "name": "sentry2", "url": "http://10.10.0.3:9333"}
    assert references[1] == {"url": "https://rpc.example/", "password_file": CREDENTIALS + "/ref1", "headers": {"X-Key": "k"}}
    assert references[2] == {"user": "rpc", "name": "sentry3", "url": "http://10.10.0.4:9332"}
    assert credentials == [{"id": "ref1", "path": "/etc/chainops/ref.pw"}]


def test_bad_references_are_named_by_index():
    _refs, _creds, problems = resolve_references(["sentry9", 5, "bare"], HOSTVARS, LITECOIND, "bitcoin", {}, CREDENTIALS, "sentry1")
    assert problems == [
        "health_checker_references[0]: host sentry9 is not in the inventory",
        "health_checker_references[1]: must be an inventory hostname or a mapping with a url, got 5",
        "health_checker_references[2]: host bare has no node profile with a 'rpc' port in this play (and neither has sentry1): "
        "give a mapping with its url.",
    ]


def test_the_config_takes_json_numbers_and_leaves_unset_options_out():
    built = health_checker_config(settings(max_lag_blocks="7", listen_port="9700", timeout_s="2.5", min_peers="3", bootstrap="yes",
                                           node_password_file="/etc/chainops/litecoind/rpc.conf", node_user="rpc",
                                           consensus_url="http://127.0.0.1:5052"), HOSTVARS)
    config = built["config"]
    assert (config["max_lag_blocks"], config["listen_port"], config["timeout_s"], config["min_peers"]) == (7, 9700, 2.5, 3)
    assert config["bootstrap"] is True
    assert config["node"] == {"url": "http://127.0.0.1:9332", "user": "rpc", "password_file": CREDENTIALS + "/node"}
    assert config["consensus"] == {"url": "http://127.0.0.1:5052"}
    assert "stale_after_s" not in config and "slow_polls_tolerated" not in config
    assert built["credentials"] == [{"id": "node", "path": "/etc/chainops/litecoind/rpc.conf"}]
    assert built["problems"] == []


def test_the_filter_names_what_does_not_fit():
    with pytest.raises(AnsibleFilterError, match="health_checker_max_lag_blocks: must be a number, got 'lots'"):
        health_checker_config(settings(max_lag_blocks="lots"), HOSTVARS)
    broken = settings(colour="blue")
    del broken["host"]
    with pytest.raises(AnsibleFilterError, match="missing setting\\(s\\) host; unknown setting\\(s\\) colour"):
        health_checker_config(broken, HOSTVARS)
