"""Config validation, --check-config, --print-target-group and the target-group settings."""
from __future__ import annotations

import json
import socket
import subprocess

import pytest
import yaml

from hc_support import SERVICE, SYSTEM_PYTHON, free_port

from chainops_health.config import ConfigError, target_group_health_check, validate_config

NODE = {"url": "http://127.0.0.1:9332"}


def run_cli(tmp_path, raw, *flags):
    path = tmp_path / "health.json"
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return subprocess.run([SYSTEM_PYTHON, "-I", "-S", "-B", str(SERVICE), *flags, str(path)],
                          capture_output=True, text=True, timeout=30, check=False)


def problems(raw):
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    return info.value.problems


def test_minimal_config_gets_documented_defaults():
    cfg = validate_config({"adapter": "bitcoin", "node": NODE})
    assert cfg["poll_interval_s"] == 5.0
    assert cfg["timeout_s"] == 2.0
    assert cfg["stale_after_s"] == 12.0
    assert cfg["min_peers"] == 1
    assert cfg["max_lag_blocks"] == 2
    assert cfg["max_head_age_s"] is None
    assert cfg["reference_policy"] == "fail_closed"
    assert cfg["bootstrap"] is False
    assert cfg["listen_host"] == "0.0.0.0" and cfg["listen_port"] == 9680
    assert cfg["references"] == []


@pytest.mark.parametrize("raw,expected", [
    ({"adapter": "dogecoin", "node": NODE},
     "adapter: unknown adapter 'dogecoin' (choose one of bitcoin, cometbft, ethereum, icon, polykey, substrate, waku)"),
    ({"node": NODE}, "adapter: unknown adapter None"),
    ({"adapter": "bitcoin"}, "node: required"),
    ({"adapter": "bitcoin", "node": {"url": "ftp://127.0.0.1:21"}}, "node.url: bad URL 'ftp://127.0.0.1:21': scheme"),
    ({"adapter": "bitcoin", "node": {"url": "127.0.0.1:9332"}}, "node.url: bad URL '127.0.0.1:9332'"),
    ({"adapter": "bitcoin", "node": {"url": "http://"}}, "node.url: bad URL 'http://': no host"),
    ({"adapter": "bitcoin", "node": {"url": "http://127.0.0.1:99999"}}, "node.url: bad URL 'http://127.0.0.1:99999'"),
    ({"adapter": "bitcoin", "node": {}}, "node.url: required"),
    ({"adapter": "bitcoin", "node": NODE, "references": [{"url": "http//typo"}]}, "references[0].url: bad URL"),
    ({"adapter": "bitcoin", "node": NODE, "min_peers": -1}, "min_peers: must be >= 0, got -1"),
    ({"adapter": "bitcoin", "node": NODE, "max_lag_blocks": -3}, "max_lag_blocks: must be >= 0, got -3"),
    ({"adapter": "bitcoin", "node": NODE, "max_head_age_s": -5}, "max_head_age_s: must be > 0, got -5"),
    ({"adapter": "bitcoin", "node": NODE, "poll_interval_s": 0}, "poll_interval_s: must be >= 0.1, got 0"),
    ({"adapter": "bitcoin", "node": NODE, "timeout_s": -2}, "timeout_s: must be > 0, got -2"),
    ({"adapter": "bitcoin", "node": NODE, "min_peers": 1.5}, "min_peers: must be an integer, got 1.5"),
    ({"adapter": "bitcoin", "node": NODE, "min_peers": True}, "min_peers: must be an integer, got True"),
    ({"adapter": "bitcoin", "node": NODE, "max_lag_blocks": "2"}, "max_lag_blocks: must be an integer, got '2'"),
    ({"adapter": "bitcoin", "node": NODE, "max_lag_block": 2}, "max_lag_block: unknown key"),
    ({"adapter": "bitcoin", "node": NODE, "reference_policy": "fail_maybe"}, "reference_policy: must be fail_closed"),
    ({"adapter": "bitcoin", "node": NODE, "bootstrap": "yes"}, "bootstrap: must be true or false"),
    ({"adapter": "bitcoin", "node": NODE, "listen_port": 70000}, "listen_port: must be <= 65535"),
    ({"adapter": "bitcoin", "node": NODE, "stale_after_s": 3}, "stale_after_s: must be greater than poll_interval_s"),
    ({"adapter": "bitcoin", "node": dict(NODE, password_file="relative/path")}, "must be an absolute path"),
    ({"adapter": "bitcoin", "node": dict(NODE, password_file="/a", cookie_file="/b")}, "not both"),
    ({"adapter": "bitcoin", "node": dict(NODE, headers={"X-Key": "a\r\nInjected: 1"})}, "node.headers"),
    ({"adapter": "bitcoin", "node": NODE, "references": [{"url": "http://a:1", "adapter": "waku"}]},
     "references[0].adapter: waku has no block height"),
    ({"adapter": "bitcoin", "node": NODE, "references": [{"url": "http://a:1"}, {"url": "http://a:1"}]},
     "references: name 'a:1' used twice"),
    ({"adapter": "icon", "node": {"url": "http://127.0.0.1:9000/api/v3"}, "min_peers": 1},
     "min_peers: adapter icon cannot report a peer count; set min_peers to 0"),
    ({"adapter": "waku", "node": {"url": "http://127.0.0.1:8645"}, "references": [{"url": "http://b:8645"}]},
     "references: adapter waku has no block height to compare; remove references"),
    ({"adapter": "waku", "node": {"url": "http://127.0.0.1:8645"}, "max_head_age_s": 30},
     "max_head_age_s: adapter waku has no head block time"),
    ({"adapter": "bitcoin", "node": NODE, "target_group": {"interval_s": 3}},
     "target_group.interval_s: must be an integer from 5 to 300 (AWS limit), got 3"),
    ({"adapter": "bitcoin", "node": NODE, "target_group": {"healthy_threshold": 11}},
     "target_group.healthy_threshold: must be an integer from 2 to 10"),
    ({"adapter": "bitcoin", "node": NODE, "target_group": {"interval_s": 5, "timeout_s": 5}},
     "target_group.timeout_s: must be less than interval_s"),
    ([1, 2], "config must be a JSON object"),
])
def test_bad_config_is_rejected_with_a_clear_message(raw, expected):
    found = problems(raw)
    assert any(expected in problem for problem in found), found


def test_every_problem_is_reported_at_once():
    found = problems({"adapter": "nope", "node": {"url": "gopher://x"}, "min_peers": -1, "max_lag_blocks": -1})
    assert len(found) == 4, found


def test_reference_names_hide_url_paths_and_credentials():
    references = [{"url": "https://user:pw@mainnet.example.invalid/v3/SECRETKEY"},
                  {"url": "http://10.0.1.5:8545", "name": "sentry-2"}]
    cfg = validate_config({"adapter": "ethereum", "node": {"url": "http://127.0.0.1:8545"}, "references": references})
    assert [r["name"] for r in cfg["references"]] == ["mainnet.example.invalid", "sentry-2"]
    assert [r["adapter"] for r in cfg["references"]] == ["ethereum", "ethereum"]


def test_check_config_flag_accepts_a_valid_file(tmp_path):
    result = run_cli(tmp_path, {"adapter": "cometbft", "node": {"url": "http://127.0.0.1:26657"},
                                "references": [{"url": "https://rpc.example.invalid"}]}, "--check-config")
    assert result.returncode == 0, result.stderr
    assert "config OK: cometbft adapter, 1 reference(s)" in result.stdout


@pytest.mark.parametrize("raw,message", [
    ({"adapter": "dogecoin", "node": NODE}, "config error: adapter: unknown adapter 'dogecoin'"),
    ({"adapter": "bitcoin", "node": {"url": "localhost:9332"}}, "config error: node.url: bad URL"),
    ({"adapter": "bitcoin", "node": NODE, "min_peers": -2}, "config error: min_peers: must be >= 0, got -2"),
    ('{"adapter": "bitcoin",', "is not valid JSON"),
])
def test_check_config_flag_exits_non_zero_with_the_message(tmp_path, raw, message):
    result = run_cli(tmp_path, raw, "--check-config")
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_serving_with_bad_config_exits_non_zero_too(tmp_path):
    result = run_cli(tmp_path, {"adapter": "bitcoin", "node": NODE, "max_lag_blocks": -1})
    assert result.returncode == 2
    assert "config error: max_lag_blocks: must be >= 0, got -1" in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = subprocess.run([SYSTEM_PYTHON, "-I", "-S", "-B", str(SERVICE), "--check-config", str(tmp_path / "nope.json")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr and "No such file" in result.stderr


def test_port_in_use_exits_non_zero(tmp_path):
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = run_cli(tmp_path, {"adapter": "bitcoin", "node": NODE, "listen_host": "127.0.0.1",
                                    "listen_port": port})
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_target_group_settings_default_to_poll_interval_and_service_port():
    cfg = validate_config({"adapter": "bitcoin", "node": NODE, "listen_port": 9700, "poll_interval_s": 10})
    assert target_group_health_check(cfg) == {
        "health_check_protocol": "http",
        "health_check_port": "9700",
        "health_check_path": "/health",
        "successful_response_codes": "200",
        "health_check_interval": 10,
        "health_check_timeout": 2,
        "healthy_threshold_count": 3,
        "unhealthy_threshold_count": 2,
    }


@pytest.mark.parametrize("poll,interval", [(0.5, 5), (5, 5), (7.2, 8), (900, 300)])
def test_target_group_interval_is_clamped_to_aws_limits(poll, interval):
    cfg = validate_config({"adapter": "bitcoin", "node": NODE, "poll_interval_s": poll, "stale_after_s": poll * 3})
    assert target_group_health_check(cfg)["health_check_interval"] == interval


def test_target_group_overrides_and_cli_report(tmp_path):
    raw = {"adapter": "ethereum", "node": {"url": "http://127.0.0.1:8545"}, "listen_port": 9681,
           "target_group": {"interval_s": 10, "timeout_s": 3, "healthy_threshold": 2, "unhealthy_threshold": 3}}
    settings = target_group_health_check(validate_config(raw))
    assert (settings["health_check_interval"], settings["health_check_timeout"], settings["healthy_threshold_count"],
            settings["unhealthy_threshold_count"]) == (10, 3, 2, 3)
    result = run_cli(tmp_path, raw, "--print-target-group")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["elb_target_group"] == settings
    assert report["elbv2_api"]["Matcher"] == {"HttpCode": "200"}
    assert report["elbv2_api"]["HealthCheckPath"] == "/health"
    # 3 failed probes 10 s apart, plus up to one poll (5 s) and its timeout (2 s) before the verdict flips.
    assert report["estimates"] == {"drain_within_s": 37.0, "readmit_within_s": 27.0}


def test_the_role_installs_every_file_of_the_program():
    """The role copies a list of files (so nothing else in the directory reaches the host): it must be the whole program."""
    role_vars = yaml.safe_load((SERVICE.parents[1] / "vars" / "main.yml").read_text())
    on_disk = sorted(str(path.relative_to(SERVICE)) for path in SERVICE.rglob("*.py") if "__pycache__" not in path.parts)
    assert sorted(role_vars["__health_checker_program_files"]) == on_disk
