"""How the health_checker role turns variables and node profiles into the service config.

Only the role's settings step runs (tasks_from: settings), on the controller: it changes nothing,
and the service's own validation runs on the result just as in a real run.
"""
from __future__ import annotations

import json

from playbook_runner import ansible_playbook

PLAYBOOK = """
- name: Resolve the health_checker settings
  hosts: sentry1
  gather_facts: false
  tasks:
    - name: Run the settings step
      ansible.builtin.include_role:
        name: chainops.validator.health_checker
        tasks_from: settings
    - name: Show the result
      ansible.builtin.debug:
        msg: "RESULT {{ {'config': __health_checker_config, 'credentials': __health_checker_credentials,
                         'target_group': health_checker_target_group} | to_json }}"
"""

# Hosts are never contacted: sentry1 runs locally, sentry2 only lends its inventory variables.
INVENTORY = {
    "all": {"hosts": {
        "sentry1": {"ansible_connection": "local"},
        "sentry2": {"ansible_host": "10.10.0.3", "_node_profile": {"name": "litecoind", "ports": {"rpc": {"port": 9332, "bind": "0.0.0.0"}}}},
        "sentry3": {"ansible_host": "10.10.0.4"},
    }},
}

# What the node role leaves behind: the resolved profile (only the fields the role reads).
LITECOIND_PROFILE = {
    "name": "litecoind",
    "ports": {"p2p": {"port": 19444, "bind": "0.0.0.0"}, "rpc": {"port": 19443, "bind": "127.0.0.1"}},
    "secrets": [{"path": "/etc/chainops/litecoind/rpc.conf"}, {"path": "/data/litecoind/regtest/wallets"}],
    "health": {"adapter": "bitcoin"},
}


def resolve(tmp_path, variables: dict, *args: str):
    # Host variables of sentry1, not extra vars: those would also override sentry2's profile.
    inventory = json.loads(json.dumps(INVENTORY))
    inventory["all"]["hosts"]["sentry1"].update(variables)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    return ansible_playbook(tmp_path / "play.yml", "-i", str(tmp_path / "inventory.json"), *args)


def resolved(result):
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    line = next(line for line in result.stdout.splitlines() if '"msg": "RESULT ' in line)
    return json.loads(json.loads("{" + line.strip().rstrip(",") + "}")["msg"][len("RESULT "):])


def test_from_the_node_profile(tmp_path):
    result = resolved(resolve(tmp_path, {"_node_profile": LITECOIND_PROFILE}))
    config = result["config"]
    assert config["adapter"] == "bitcoin"
    assert config["node"] == {"url": "http://127.0.0.1:19443", "password_file": "/run/credentials/chainops-health.service/node"}
    assert result["credentials"] == [{"id": "node", "path": "/etc/chainops/litecoind/rpc.conf"}]
    assert "min_peers" not in config and config["references"] == []
    assert result["target_group"]["elb_target_group"]["health_check_port"] == "9680"


def test_explicit_variables_win_over_the_profile(tmp_path):
    result = resolved(resolve(tmp_path, {
        "_node_profile": LITECOIND_PROFILE,
        "health_checker_node_url": "http://10.0.0.1:9332",
        "health_checker_node_password_file": "none",
        "health_checker_listen_port": 9700,
    }))
    assert result["config"]["node"] == {"url": "http://10.0.0.1:9332"}
    assert result["credentials"] == []
    assert result["target_group"]["elbv2_api"]["HealthCheckPort"] == "9700"


def test_references_by_hostname_and_by_mapping(tmp_path):
    run = resolve(tmp_path, {
        "_node_profile": LITECOIND_PROFILE,
        "health_checker_reference_defaults": {"user": "health", "password_file": "/etc/chainops/health-refs/sentry.pass"},
        "health_checker_references": [
            "sentry2",
            {"name": "public", "url": "https://rpc.example.invalid/v1/KEY", "headers": {"X-Api-Key": "SECRET-API-KEY-7"}},
        ],
    }, "-vv")
    result = resolved(run)
    # At -vv set_fact and command print their values: a header (API key) is hidden in the role's output; only this test's debug shows it.
    assert [line for line in run.stdout.splitlines() if "SECRET-API-KEY-7" in line] == \
        [line for line in run.stdout.splitlines() if '"msg": "RESULT ' in line]
    references = result["config"]["references"]
    # sentry2's own profile gives its RPC port; its address is its ansible_host.
    assert references[0] == {"name": "sentry2", "url": "http://10.10.0.3:9332", "user": "health",
                             "password_file": "/run/credentials/chainops-health.service/ref0"}
    assert references[1] == {"name": "public", "url": "https://rpc.example.invalid/v1/KEY", "headers": {"X-Api-Key": "SECRET-API-KEY-7"}}
    assert result["credentials"] == [{"id": "node", "path": "/etc/chainops/litecoind/rpc.conf"},
                                     {"id": "ref0", "path": "/etc/chainops/health-refs/sentry.pass"}]


def test_a_reference_host_without_a_profile_uses_this_hosts_port(tmp_path):
    result = resolved(resolve(tmp_path, {"_node_profile": LITECOIND_PROFILE, "health_checker_references": ["sentry3"]}))
    assert result["config"]["references"][0]["url"] == "http://10.10.0.4:19443"


def test_a_reference_host_with_no_port_known_fails(tmp_path):
    result = resolve(tmp_path, {"health_checker_adapter": "bitcoin", "health_checker_node_url": "http://127.0.0.1:9332",
                                "health_checker_references": ["sentry3"]})
    assert result.returncode != 0
    assert "health_checker_references[0]: host sentry3 has no node profile with a 'rpc' port" in result.stdout


def test_waku_and_icon_endpoints_from_their_profiles(tmp_path):
    waku = {"name": "nwaku", "ports": {"rest": {"port": 8645, "bind": "127.0.0.1"}}, "health": {"adapter": "waku"}}
    icon = {"name": "goloop", "ports": {"rpc": {"port": 9000, "bind": "0.0.0.0"}}, "health": {"adapter": "icon"}}
    assert resolved(resolve(tmp_path, {"_node_profile": waku, "health_checker_min_peers": 0}))["config"]["node"]["url"] == "http://127.0.0.1:8645"
    assert resolved(resolve(tmp_path, {"_node_profile": icon}))["config"]["node"]["url"] == "http://127.0.0.1:9000/api/v3"


def test_profile_without_a_health_adapter_fails(tmp_path):
    polykey = {"name": "polykey", "ports": {"client": {"port": 1315, "bind": "127.0.0.1"}}, "health": {"adapter": "none"}}
    result = resolve(tmp_path, {"_node_profile": polykey})
    assert result.returncode != 0
    assert "node profile 'polykey' has no health adapter" in result.stdout


def test_strings_from_the_command_line_become_json_numbers(tmp_path):
    # `-e name=3` gives strings; the argument spec accepts them, the service wants numbers.
    result = resolved(resolve(tmp_path, {"_node_profile": LITECOIND_PROFILE, "health_checker_max_lag_blocks": "3",
                                         "health_checker_poll_interval_s": "2.5", "health_checker_min_peers": "0",
                                         "health_checker_bootstrap": "yes", "health_checker_listen_port": "9700"}))
    config = result["config"]
    assert (config["max_lag_blocks"], config["poll_interval_s"], config["min_peers"]) == (3, 2.5, 0)
    assert config["bootstrap"] is True and config["listen_port"] == 9700


def test_goloop_compares_with_its_networks_public_api_unless_told_otherwise(tmp_path):
    """Sync-aware by default: the goloop profile's network references (the ICON Foundation's API) become
    the references when none are given; given ones win, and the profile's can be turned off."""
    public = {"name": "ctz.solidwallet.io", "url": "https://ctz.solidwallet.io/api/v3"}
    icon = {"name": "goloop", "ports": {"rpc": {"port": 9000, "bind": "127.0.0.1"}}, "health": {"adapter": "icon"},
            "network_settings": {"channel": "icon_dex", "references": [public]}}
    config = resolved(resolve(tmp_path, {"_node_profile": icon}))["config"]
    assert (config["adapter"], config["references"], config["reference_policy"]) == ("icon", [public], "fail_closed")
    own = {"name": "icx-ref", "url": "http://10.10.0.9:9000/api/v3"}
    assert resolved(resolve(tmp_path, {"_node_profile": icon, "health_checker_references": [own]}))["config"]["references"] == [own]
    assert resolved(resolve(tmp_path, {"_node_profile": icon, "health_checker_profile_references": False}))["config"]["references"] == []
