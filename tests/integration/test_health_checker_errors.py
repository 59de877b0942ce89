"""Bad input to the health_checker role fails with a clear message, naming the variable, before anything changes.

The runs target the controller itself in check mode, and the role checks its settings (argument specs,
then the service's own --check-config logic) before its first task that touches a host.
"""
from __future__ import annotations

import pytest
from playbook_runner import assert_fails_before_changes as assert_fails_without_changes
from playbook_runner import run_role_in_check_mode

# A valid base without the node role in the play: adapter and URL are explicit.
BASE = {"health_checker_adapter": "bitcoin", "health_checker_node_url": "http://127.0.0.1:9332"}


def run_role(tmp_path, variables: dict, *extra: str):
    return run_role_in_check_mode(tmp_path, "health_checker", variables, *extra)


def assert_fails_before_changes(result, *fragments):
    assert_fails_without_changes(result, *fragments)
    # Nothing past the settings checks ran.
    assert "Create the service's system group" not in result.stdout


def test_unknown_adapter(tmp_path):
    result = run_role(tmp_path, dict(BASE, health_checker_adapter="dogecoin"))
    assert_fails_before_changes(result, "health_checker_adapter", "dogecoin", "bitcoin, ethereum, cometbft")


def test_no_adapter_without_the_node_role(tmp_path):
    result = run_role(tmp_path, {})
    assert_fails_before_changes(result, "health_checker_adapter is not set and there is no node profile in this play")


def test_no_url_without_the_node_role(tmp_path):
    result = run_role(tmp_path, {"health_checker_adapter": "ethereum"})
    assert_fails_before_changes(result, "health_checker_node_url is not set")


def test_bad_node_url(tmp_path):
    result = run_role(tmp_path, dict(BASE, health_checker_node_url="localhost:9332"))
    assert_fails_before_changes(result, "health_checker_node_url: 'localhost:9332' is not valid: must be a URL starting with http:// or https://")


def test_negative_thresholds_are_all_reported(tmp_path):
    result = run_role(tmp_path, dict(BASE, health_checker_min_peers=-1, health_checker_max_lag_blocks=-3,
                                     health_checker_poll_interval_s=-1, health_checker_max_head_age_s=-5))
    assert_fails_before_changes(
        result,
        "health_checker_min_peers: must be >= 0, got -1",
        "health_checker_max_lag_blocks: must be >= 0, got -3",
        "health_checker_poll_interval_s: must be >= 0.1, got -1",
        "health_checker_max_head_age_s: must be > 0, got -5",
    )


def test_wrong_type_is_caught_by_the_argument_spec(tmp_path):
    result = run_role(tmp_path, dict(BASE, health_checker_max_lag_blocks="many"))
    assert_fails_before_changes(result, "health_checker_max_lag_blocks", "int")


def test_bad_reference_url(tmp_path):
    result = run_role(tmp_path, dict(BASE, health_checker_references=[
        {"name": "a", "url": "http://10.0.0.2:9332"}, {"name": "b", "url": "ftp://10.0.0.3:9332"}]))
    assert_fails_before_changes(result, "health_checker_references[1].url: bad URL 'ftp://10.0.0.3:9332': scheme must be http or https")


def test_relative_reference_credential_file(tmp_path):
    # The service reads systemd's copy (an absolute path), so the role checks the real path itself.
    result = run_role(tmp_path, dict(BASE, health_checker_references=[
        {"name": "b", "url": "http://10.0.0.3:9332", "password_file": "relative/path"}]))
    assert_fails_before_changes(
        result, "health_checker_references[0].password_file: 'relative/path' is not valid: must be an absolute path")


def test_reference_host_not_in_inventory(tmp_path):
    result = run_role(tmp_path, dict(BASE, health_checker_references=["sentry-9"]))
    assert_fails_before_changes(result, "health_checker_references[0]: host sentry-9 is not in the inventory")


def test_bad_reference_policy(tmp_path):
    result = run_role(tmp_path, dict(BASE, health_checker_reference_policy="fail_sometimes"))
    assert_fails_before_changes(result, "health_checker_reference_policy", "fail_closed, fail_open")


def test_target_group_outside_the_aws_limits(tmp_path):
    result = run_role(tmp_path, dict(BASE, health_checker_target_group_settings={"interval_s": 1, "healthy_threshold": 11}))
    assert_fails_before_changes(
        result,
        "health_checker_target_group_settings.interval_s: must be an integer from 5 to 300 (AWS limit), got 1",
        "health_checker_target_group_settings.healthy_threshold: must be an integer from 2 to 10 (AWS limit), got 11",
    )


def test_check_the_adapter_cannot_do(tmp_path):
    result = run_role(tmp_path, {"health_checker_adapter": "icon", "health_checker_node_url": "http://127.0.0.1:9000/api/v3",
                                 "health_checker_min_peers": 1})
    assert_fails_before_changes(result, "health_checker_min_peers: adapter icon cannot report a peer count; set min_peers to 0")


@pytest.mark.parametrize("listen_port", [0, 70000])
def test_bad_listen_port(tmp_path, listen_port):
    result = run_role(tmp_path, dict(BASE, health_checker_listen_port=listen_port))
    assert_fails_before_changes(result, "health_checker_listen_port: must be")
