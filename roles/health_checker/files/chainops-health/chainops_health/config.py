# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The JSON config: loading, validation naming every problem, and the matching ELBv2 target-group health check."""

from __future__ import annotations

import json
import math
import urllib.parse

from chainops_health.adapters import ADAPTERS


POLICIES = ("fail_closed", "fail_open")


class ConfigError(Exception):
    """Invalid configuration; carries every problem found, not just the first."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


TOP_KEYS = {"adapter", "node", "consensus", "references", "reference_policy", "listen_host", "listen_port",
            "poll_interval_s", "timeout_s", "stale_after_s", "min_peers", "max_head_age_s",
            "max_lag_blocks", "bootstrap", "max_connections", "target_group", "slow_polls_tolerated"}
ENDPOINT_KEYS = {"url", "user", "password_file", "cookie_file", "headers"}
REFERENCE_KEYS = ENDPOINT_KEYS | {"name", "adapter"}
TARGET_GROUP_KEYS = {"interval_s", "timeout_s", "healthy_threshold", "unhealthy_threshold"}
# AWS ELBv2 CreateTargetGroup limits.
TARGET_GROUP_LIMITS = {"interval_s": (5, 300), "timeout_s": (2, 120), "healthy_threshold": (2, 10),
                       "unhealthy_threshold": (2, 10)}


def load_config(path):
    """Parsed JSON from path; unreadable or malformed files become ConfigError."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError([f"cannot read config file {path}: {exc.strerror or exc}"]) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError([f"{path} is not valid JSON: {exc}"]) from None


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    """Collects every problem so one run reports them all."""

    def __init__(self):
        self.problems = []

    def number(self, doc, key, default, minimum=None, exclusive=False, integer=False, nullable=False):
        value = doc.get(key, default)
        if value is None and nullable:
            return None
        kind = "an integer" if integer else "a number"
        if not _is_number(value) or (integer and not isinstance(value, int)):
            self.problems.append(f"{key}: must be {kind}, got {value!r}")
            return default
        if minimum is not None and (value <= minimum if exclusive else value < minimum):
            self.problems.append(f"{key}: must be {'>' if exclusive else '>='} {minimum}, got {value!r}")
            return default
        return value

    def endpoint(self, spec, where, allowed):
        if not isinstance(spec, dict):
            self.problems.append(f"{where}: must be an object with a 'url'")
            return None
        for key in sorted(set(spec) - allowed):
            self.problems.append(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
        url_problem = check_url(spec.get("url"))
        if url_problem:
            self.problems.append(f"{where}.url: {url_problem}")
        for key in ("user", "password_file", "cookie_file"):
            if key in spec and not (isinstance(spec[key], str) and spec[key]):
                self.problems.append(f"{where}.{key}: must be a non-empty string")
        for key in ("password_file", "cookie_file"):
            if isinstance(spec.get(key), str) and spec[key] and not spec[key].startswith("/"):
                self.problems.append(f"{where}.{key}: must be an absolute path, got {spec[key]!r}")
        if spec.get("password_file") and spec.get("cookie_file"):
            self.problems.append(f"{where}: set password_file or cookie_file, not both")
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
                for k, v in headers.items()):
            self.problems.append(f"{where}.headers: must map header names to single-line strings")
        return spec


def check_url(url):
    """None if url is a usable http(s) URL, else what is wrong with it."""
    if not isinstance(url, str) or not url:
        return "required: an http:// or https:// URL"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"bad URL {url!r}: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"bad URL {url!r}: scheme must be http or https"
    if not parts.hostname:
        return f"bad URL {url!r}: no host"
    if port == 0:
        return f"bad URL {url!r}: port 0"
    if parts.fragment or any(c.isspace() for c in url):
        return f"bad URL {url!r}: no fragments or whitespace"
    return None


def _reference_name(spec, index):
    # Host and port only: the URL path of a hosted RPC often carries an API key.
    if isinstance(spec.get("name"), str) and spec["name"]:
        return spec["name"]
    try:
        return urllib.parse.urlsplit(spec["url"]).netloc.rpartition("@")[2] or f"ref{index}"
    except (ValueError, KeyError, AttributeError):
        return f"ref{index}"


def validate_config(raw):
    """Normalized config (defaults filled in) or ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(["config must be a JSON object"])
    check = _Checker()
    problems = check.problems
    for key in sorted(set(raw) - TOP_KEYS):
        problems.append(f"{key}: unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")

    adapter_name = raw.get("adapter")
    adapter = ADAPTERS.get(adapter_name) if isinstance(adapter_name, str) else None
    if adapter is None:
        problems.append(f"adapter: unknown adapter {adapter_name!r} (choose one of {', '.join(sorted(ADAPTERS))})")
    if "node" not in raw:
        problems.append("node: required, an object with a 'url'")
    else:
        check.endpoint(raw["node"], "node", ENDPOINT_KEYS)

    if "consensus" in raw:
        if adapter_name != "ethereum":
            problems.append("consensus: only the ethereum adapter has a consensus client (a beacon node API URL)")
        else:
            check.endpoint(raw["consensus"], "consensus", ENDPOINT_KEYS)

    cfg = {"adapter": adapter_name, "node": raw.get("node"), "consensus": raw.get("consensus")}
    cfg["poll_interval_s"] = check.number(raw, "poll_interval_s", 5.0, minimum=0.1)
    cfg["timeout_s"] = check.number(raw, "timeout_s", 2.0, minimum=0, exclusive=True)
    default_stale = 2 * cfg["poll_interval_s"] + cfg["timeout_s"]
    cfg["stale_after_s"] = check.number(raw, "stale_after_s", default_stale, minimum=0, exclusive=True)
    if cfg["stale_after_s"] <= cfg["poll_interval_s"]:
        problems.append(f"stale_after_s: must be greater than poll_interval_s ({cfg['poll_interval_s']})")
    default_slow = adapter.default_slow_polls_tolerated if adapter else 0
    cfg["slow_polls_tolerated"] = check.number(raw, "slow_polls_tolerated", default_slow, minimum=0, integer=True)
    default_peers = adapter.default_min_peers if adapter else 1
    cfg["min_peers"] = check.number(raw, "min_peers", default_peers, minimum=0, integer=True)
    cfg["max_lag_blocks"] = check.number(raw, "max_lag_blocks", 2, minimum=0, integer=True)
    cfg["max_head_age_s"] = check.number(raw, "max_head_age_s", None, minimum=0, exclusive=True, nullable=True)
    cfg["listen_host"] = raw.get("listen_host", "0.0.0.0")
    if not isinstance(cfg["listen_host"], str) or not cfg["listen_host"]:
        problems.append("listen_host: must be a non-empty string")
    cfg["listen_port"] = check.number(raw, "listen_port", 9680, minimum=1, integer=True)
    if cfg["listen_port"] > 65535:
        problems.append(f"listen_port: must be <= 65535, got {cfg['listen_port']}")
    cfg["max_connections"] = check.number(raw, "max_connections", 512, minimum=1, integer=True)
    cfg["bootstrap"] = raw.get("bootstrap", False)
    if not isinstance(cfg["bootstrap"], bool):
        problems.append(f"bootstrap: must be true or false, got {cfg['bootstrap']!r}")
    cfg["reference_policy"] = raw.get("reference_policy", "fail_closed")
    if cfg["reference_policy"] not in POLICIES:
        problems.append(f"reference_policy: must be fail_closed or fail_open, got {cfg['reference_policy']!r}")

    cfg["references"] = _validate_references(check, raw.get("references", []), adapter_name)
    cfg["target_group"] = _validate_target_group(check, raw.get("target_group", {}), cfg["poll_interval_s"])
    if adapter is not None:
        _check_capabilities(problems, adapter, cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def _validate_references(check, refs, adapter_name):
    if not isinstance(refs, list):
        check.problems.append("references: must be a list")
        return []
    out = []
    for index, spec in enumerate(refs):
        where = f"references[{index}]"
        if check.endpoint(spec, where, REFERENCE_KEYS) is None:
            continue
        ref = dict(spec)
        ref["adapter"] = spec.get("adapter", adapter_name)
        ref_adapter = ADAPTERS.get(ref["adapter"]) if isinstance(ref["adapter"], str) else None
        if "adapter" in spec and ref_adapter is None:
            check.problems.append(f"{where}.adapter: unknown adapter {ref['adapter']!r} "
                                  f"(choose one of {', '.join(sorted(ADAPTERS))})")
        elif ref_adapter is not None and not ref_adapter.reports_height:
            check.problems.append(f"{where}.adapter: {ref['adapter']} has no block height to compare")
        ref["name"] = _reference_name(spec, index)
        out.append(ref)
    names = [ref["name"] for ref in out]
    for name in sorted({n for n in names if names.count(n) > 1}):
        check.problems.append(f"references: name {name!r} used twice (set a distinct 'name')")
    return out


def _validate_target_group(check, spec, poll_interval):
    if not isinstance(spec, dict):
        check.problems.append("target_group: must be an object")
        spec = {}
    for key in sorted(set(spec) - TARGET_GROUP_KEYS):
        check.problems.append(f"target_group.{key}: unknown key (allowed: {', '.join(sorted(TARGET_GROUP_KEYS))})")
    # Probing faster than we poll learns nothing new, so the default interval follows the poll interval.
    defaults = {"interval_s": min(300, max(5, math.ceil(poll_interval))), "timeout_s": 2,
                "healthy_threshold": 3, "unhealthy_threshold": 2}
    out = {}
    for key, (low, high) in TARGET_GROUP_LIMITS.items():
        value = spec.get(key, defaults[key])
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            check.problems.append(f"target_group.{key}: must be an integer from {low} to {high} (AWS limit), "
                                  f"got {value!r}")
            value = defaults[key]
        out[key] = value
    if out["timeout_s"] >= out["interval_s"]:
        check.problems.append(f"target_group.timeout_s: must be less than interval_s ({out['interval_s']})")
    return out


def _check_capabilities(problems, adapter, cfg):
    """Refuse checks the adapter cannot perform instead of silently skipping them."""
    name = adapter.name
    if not adapter.reports_peers and cfg["min_peers"] > 0:
        problems.append(f"min_peers: adapter {name} cannot report a peer count; set min_peers to 0")
    if not adapter.reports_head_time and cfg["max_head_age_s"] is not None:
        problems.append(f"max_head_age_s: adapter {name} has no head block time; remove max_head_age_s")
    if not adapter.reports_height and cfg["references"]:
        problems.append(f"references: adapter {name} has no block height to compare; remove references")


def target_group_health_check(cfg):
    """ELBv2 target-group health check settings for a validated config.

    Keys are community.aws.elb_target_group options, so the role can pass them straight through.
    """
    group = cfg["target_group"]
    return {
        "health_check_protocol": "http",
        "health_check_port": str(cfg["listen_port"]),
        "health_check_path": "/health",
        "successful_response_codes": "200",
        "health_check_interval": group["interval_s"],
        "health_check_timeout": group["timeout_s"],
        "healthy_threshold_count": group["healthy_threshold"],
        "unhealthy_threshold_count": group["unhealthy_threshold"],
    }


def target_group_report(cfg):
    """What --print-target-group prints: module options, raw API names and drain/re-admit estimates."""
    settings = target_group_health_check(cfg)
    group = cfg["target_group"]
    # Worst case: the verdict flips up to one poll (plus its timeout) late, then the LB needs N probes.
    lag = cfg["poll_interval_s"] + cfg["timeout_s"]
    return {
        "elb_target_group": settings,
        "elbv2_api": {
            "HealthCheckProtocol": "HTTP", "HealthCheckPort": settings["health_check_port"],
            "HealthCheckPath": "/health", "Matcher": {"HttpCode": "200"},
            "HealthCheckIntervalSeconds": group["interval_s"], "HealthCheckTimeoutSeconds": group["timeout_s"],
            "HealthyThresholdCount": group["healthy_threshold"],
            "UnhealthyThresholdCount": group["unhealthy_threshold"],
        },
        "estimates": {
            "drain_within_s": round(group["interval_s"] * group["unhealthy_threshold"] + lag, 1),
            "readmit_within_s": round(group["interval_s"] * group["healthy_threshold"] + lag, 1),
        },
    }
