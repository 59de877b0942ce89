"""datadog_agent role on the controller: bad input fails early and clearly; check configs render per profile.

The role runs against the controller itself in check mode, so nothing here can change this machine.
The install, service and checks are proven for real in molecule/datadog_agent.
"""
from __future__ import annotations

import json

import yaml
from playbook_runner import REPO_ROOT, ansible_playbook, assert_fails_before_changes, run_role_in_check_mode

API_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


# Loads the role's own defaults and vars next to a resolved node profile and writes the check
# mappings the role would write, so each profile's checks can be inspected without an Agent.
RENDER_PLAYBOOK = """
- name: Render the datadog_agent check mappings for a node profile
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Resolve the node profile as the role does
      ansible.builtin.include_role:
        name: chainops.validator.node
        tasks_from: profile.yml
    - name: Load the role defaults
      ansible.builtin.include_vars: {file: "%(role)s/defaults/main.yml"}
    - name: Load the role vars
      ansible.builtin.include_vars: {file: "%(role)s/vars/main.yml"}
    - name: Write the check mappings
      ansible.builtin.copy:
        dest: "{{ render_dest }}"
        content: "{{ __datadog_agent_checks | to_json }}"
        mode: "0600"
""" % {"role": REPO_ROOT / "roles" / "datadog_agent"}


def run_role(tmp_path, variables: dict, *extra: str):
    return run_role_in_check_mode(tmp_path, "datadog_agent", variables, *extra)


def test_missing_api_key_fails_clearly(tmp_path):
    result = run_role(tmp_path, {"node_profile": "litecoind"})
    assert_fails_before_changes(result, "datadog_agent_api_key is missing or is not a Datadog API key")


def test_wrong_key_fails_and_is_not_printed_even_at_vvv(tmp_path):
    app_key = "a" * 32 + "bcdef123"  # 40 characters: an application key pasted by mistake
    result = run_role(tmp_path, {"node_profile": "litecoind", "datadog_agent_api_key": app_key}, "-vvv")
    assert_fails_before_changes(result, "datadog_agent_api_key is missing or is not a Datadog API key")
    assert app_key not in result.stdout + result.stderr


def test_no_api_key_needed_when_config_is_left_alone(tmp_path):
    # Gets past the key check and stops at the next one: no Agent on this controller.
    result = run_role(tmp_path, {"datadog_agent_configure": False, "datadog_agent_install": False,
                                 "datadog_agent_node_checks": False})
    assert_fails_before_changes(result, "datadog_agent_install is false but this host has no dd-agent user")
    assert "datadog_agent_api_key" not in result.stdout


def test_node_checks_without_node_profile(tmp_path):
    result = run_role(tmp_path, {"datadog_agent_api_key": API_KEY})
    assert_fails_before_changes(result, "datadog_agent_node_checks is true but this host has no node profile")


def test_metrics_endpoint_without_metric_list(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    geth = yaml.safe_load((REPO_ROOT / "roles/node/files/profiles/geth.yml").read_text())
    geth["name"] = "mychain"
    (profiles / "mychain.yml").write_text(yaml.safe_dump(geth))
    result = run_role(tmp_path, {"datadog_agent_api_key": API_KEY, "node_profile": "mychain",
                                 "node_profile_dirs": [str(profiles)]})
    assert_fails_before_changes(result, "node profile 'mychain' serves Prometheus metrics on port 6060",
                                "datadog_agent_node_openmetrics")


def render_checks(tmp_path, variables: dict) -> dict:
    (tmp_path / "render.yml").write_text(RENDER_PLAYBOOK)
    variables = dict(variables, render_dest=str(tmp_path / "checks.json"))
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    result = ansible_playbook(tmp_path / "render.yml", "-i", "localhost,", "-c", "local", "-e", "@%s" % (tmp_path / "vars.json"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads((tmp_path / "checks.json").read_text())


def test_geth_native_metrics_endpoint_is_scraped_with_an_explicit_list(tmp_path):
    checks = render_checks(tmp_path, {"node_profile": "geth", "topology_role": "sentry", "topology_cluster": "c9"})
    endpoints = {i["openmetrics_endpoint"]: i for i in checks["openmetrics"]["instances"]}
    assert sorted(endpoints) == ["http://127.0.0.1:6060/debug/metrics/prometheus", "http://127.0.0.1:9680/metrics"]
    geth = endpoints["http://127.0.0.1:6060/debug/metrics/prometheus"]
    assert geth["namespace"] == "geth"
    assert {"chain_head_block": "chain.head_block"} in geth["metrics"]
    # Check-level tags never use Datadog's reserved names (cluster is a host tag in datadog.yaml).
    assert sorted(geth["tags"]) == ["chain:ethereum", "chainops_check:node", "network:mainnet", "role:sentry"]
    assert checks["process"]["instances"][0]["search_string"] == ["/opt/chainops/geth/1.16.5-737ffd1b/geth"]
    assert checks["journald"] is None  # logs not enabled


def test_node_metrics_can_be_turned_off_and_profiles_without_endpoint_have_none(tmp_path):
    checks = render_checks(tmp_path, {"node_profile": "cometbft", "datadog_agent_node_openmetrics": {"enabled": False},
                                      "datadog_agent_logs_enabled": True})
    assert [i["openmetrics_endpoint"] for i in checks["openmetrics"]["instances"]] == ["http://127.0.0.1:9680/metrics"]
    assert checks["journald"]["logs"][0]["include_units"] == ["cometbft.service"]
    checks = render_checks(tmp_path, {"node_profile": "anvil", "datadog_agent_health_checker": False})
    assert checks["openmetrics"] is None and checks["http_check"] is None
    assert checks["systemd"]["instances"][0]["unit_names"] == ["anvil.service"]
