"""Pure logic of chainops_health: parsing, verdicts, bootstrap, credentials, metrics."""
from __future__ import annotations

import datetime
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainops_health.adapters import NodeStatus, parse_rfc3339, to_int
from chainops_health.client import Endpoint, RpcError, read_credentials
from chainops_health.config import validate_config
from chainops_health.server import metrics_text, render_routes
from chainops_health.verdict import evaluate, next_bootstrap_state

NOW = 1_800_000_000.0


def config(**overrides):
    raw = {"adapter": "bitcoin", "node": {"url": "http://127.0.0.1:9332"}}
    raw.update(overrides)
    return validate_config(raw)


def node(height=100, head_age=10.0, syncing=False, peers=3, **detail):
    return NodeStatus(height=height, head_time=None if head_age is None else NOW - head_age,
                      syncing=syncing, peers=peers, detail=detail)


def statuses(verdict):
    return {name: check["status"] for name, check in verdict["checks"].items()}


# ----------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text,expected", [
    ("2024-09-23T10:52:28Z", datetime.datetime(2024, 9, 23, 10, 52, 28, tzinfo=datetime.timezone.utc)),
    ("2024-09-23T10:52:28.537045937Z",
     datetime.datetime(2024, 9, 23, 10, 52, 28, 537046, tzinfo=datetime.timezone.utc)),
    ("2024-02-29T23:59:59.5+02:00",
     datetime.datetime(2024, 2, 29, 21, 59, 59, 500000, tzinfo=datetime.timezone.utc)),
    ("1999-12-31T23:00:00-01:30", datetime.datetime(2000, 1, 1, 0, 30, tzinfo=datetime.timezone.utc)),
])
def test_parse_rfc3339_handles_nanoseconds_and_offsets(text, expected):
    assert parse_rfc3339(text) == pytest.approx(expected.timestamp(), abs=1e-6)


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2400, 1, 1)))
def test_parse_rfc3339_matches_datetime(moment):
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    assert parse_rfc3339(text) == pytest.approx(moment.replace(tzinfo=datetime.timezone.utc).timestamp(),
                                                abs=1e-5)


@pytest.mark.parametrize("bad", ["", "2024-09-23", "2024-09-23T10:52:28", "yesterday", None])
def test_parse_rfc3339_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_rfc3339(bad)


@pytest.mark.parametrize("value,expected", [(5, 5), ("0x1f", 31), ("0X10", 16), ("22143250", 22143250), ("0x0", 0)])
def test_to_int_accepts_json_rpc_encodings(value, expected):
    assert to_int(value) == expected


@pytest.mark.parametrize("bad", [True, None, 1.5, "abc", [], {}])
def test_to_int_rejects_non_integers(bad):
    with pytest.raises(ValueError):
        to_int(bad)


# ----------------------------------------------------------------------------- verdicts

def test_synced_node_is_healthy_with_every_check_reported():
    cfg = config(max_head_age_s=600, references=[{"url": "http://10.0.0.2:9332"}])
    verdict = evaluate(cfg, node(height=100), None, [("10.0.0.2:9332", 101, None)], NOW)
    assert verdict["healthy"] is True
    assert statuses(verdict) == {"node_answers": "pass", "not_syncing": "pass", "peers": "pass",
                                 "head_age": "pass", "lag": "pass"}
    assert verdict["checks"]["lag"]["value"] == 1
    assert verdict["checks"]["lag"]["reference_height"] == 101
    assert verdict["checks"]["peers"] == {"status": "pass", "value": 3, "limit": 1}


@pytest.mark.parametrize("case,observed,failed", [
    ("node down", dict(node=None, error="node: [Errno 111] Connection refused"),
     {"node_answers", "not_syncing", "peers", "head_age", "lag"}),
    ("syncing", dict(node=node(syncing=True)), {"not_syncing"}),
    ("too few peers", dict(node=node(peers=0)), {"peers"}),
    ("stale head", dict(node=node(head_age=601)), {"head_age"}),
    ("behind", dict(node=node(height=97)), {"lag"}),
    ("peers unknown", dict(node=node(peers=None)), {"peers"}),
])
def test_each_failure_marks_only_its_check(case, observed, failed):
    cfg = config(max_head_age_s=600, references=[{"url": "http://10.0.0.2:9332"}])
    verdict = evaluate(cfg, observed["node"], observed.get("error"), [("ref", 100, None)], NOW)
    assert verdict["healthy"] is False, case
    assert {name for name, status in statuses(verdict).items() if status == "fail"} == failed, case


def test_lag_uses_best_reachable_reference_and_reports_reason():
    cfg = config(references=[{"url": "http://10.0.0.2:1"}, {"url": "http://10.0.0.3:1"}, {"url": "http://10.0.0.4:1"}])
    refs = [("a", 104, None), ("b", None, "timed out"), ("c", 110, None)]
    lag = evaluate(cfg, node(height=100), None, refs, NOW)["checks"]["lag"]
    assert lag["status"] == "fail"
    assert lag["value"] == 10
    assert lag["reference_height"] == 110
    assert lag["references_reachable"] == 2
    assert "10 blocks behind" in lag["reason"]


@given(height=st.integers(0, 10**9), ahead=st.integers(0, 10**6), limit=st.integers(0, 1000))
def test_being_ahead_of_every_reference_never_fails(height, ahead, limit):
    cfg = config(max_lag_blocks=limit, references=[{"url": "http://10.0.0.2:1"}])
    verdict = evaluate(cfg, node(height=height + ahead), None, [("r", height, None)], NOW)
    assert verdict["checks"]["lag"]["status"] == "pass"
    assert verdict["lag"] == -ahead


@settings(max_examples=300)
@given(height=st.integers(0, 1000), ref=st.one_of(st.none(), st.integers(0, 1000)), limit=st.integers(0, 20),
       peers=st.one_of(st.none(), st.integers(0, 5)), min_peers=st.integers(0, 3),
       syncing=st.one_of(st.none(), st.booleans()), age=st.one_of(st.none(), st.floats(-5, 500)),
       max_age=st.one_of(st.none(), st.floats(1, 300)), answered=st.booleans(),
       policy=st.sampled_from(["fail_open", "fail_closed"]), bootstrap=st.booleans())
def test_verdict_is_healthy_exactly_when_no_check_fails(height, ref, limit, peers, min_peers, syncing, age, max_age,
                                                        answered, policy, bootstrap):
    cfg = config(max_lag_blocks=limit, min_peers=min_peers, max_head_age_s=max_age, reference_policy=policy,
                 references=[{"url": "http://10.0.0.2:1"}])
    observed = node(height=height, head_age=age, syncing=syncing, peers=peers) if answered else None
    refs = [("r", ref, None if ref is not None else "refused")]
    verdict = evaluate(cfg, observed, None if answered else "down", refs, NOW, bootstrap)
    assert verdict["healthy"] == all(s != "fail" for s in statuses(verdict).values())
    if not answered:
        assert verdict["healthy"] is False
    # The node reports a head time, so the age the checker sees is NOW - (NOW - age), float rounding included.
    seen_age = None if age is None else NOW - (NOW - age)
    if answered and ref is not None and height - ref >= 0 and syncing is False and (peers or 0) >= min_peers \
            and peers is not None and (max_age is None or (seen_age is not None and seen_age <= max_age)):
        assert verdict["healthy"] is True


@pytest.mark.parametrize("policy,healthy", [("fail_open", True), ("fail_closed", False)])
def test_all_references_unreachable_applies_the_explicit_policy(policy, healthy):
    cfg = config(reference_policy=policy, references=[{"url": "http://10.0.0.2:1"}, {"url": "http://10.0.0.3:1"}])
    refs = [("a", None, "timed out"), ("b", None, "Connection refused")]
    verdict = evaluate(cfg, node(), None, refs, NOW)
    assert verdict["healthy"] is healthy
    assert verdict["reference_policy_applied"] == policy
    lag = verdict["checks"]["lag"]
    assert lag["policy_applied"] == policy
    assert f"all 2 references unreachable, {policy} policy applied" in lag["reason"]
    assert "timed out" in lag["reason"] and "Connection refused" in lag["reason"]


def test_no_references_skips_lag_and_says_so():
    verdict = evaluate(config(), node(), None, [], NOW)
    assert verdict["checks"]["lag"]["status"] == "skip"
    assert verdict["reference_policy_applied"] is None
    assert verdict["healthy"] is True


def test_bootstrap_waives_catching_up_but_not_a_dead_node_or_missing_peers():
    cfg = config(bootstrap=True, max_head_age_s=60, references=[{"url": "http://10.0.0.2:1"}])
    catching_up = evaluate(cfg, node(height=10, syncing=True, head_age=9999), None, [("r", 5000, None)], NOW, True)
    assert catching_up["healthy"] is True
    assert {k: v for k, v in statuses(catching_up).items() if v == "waived"} == \
        {"not_syncing": "waived", "head_age": "waived", "lag": "waived"}
    no_peers = evaluate(cfg, node(height=10, syncing=True, peers=0), None, [("r", 5000, None)], NOW, True)
    assert no_peers["healthy"] is False and no_peers["checks"]["peers"]["status"] == "fail"
    down = evaluate(cfg, None, "refused", [("r", 5000, None)], NOW, True)
    assert down["healthy"] is False


def test_bootstrap_ends_for_good_once_caught_up():
    cfg = config(bootstrap=True, references=[{"url": "http://10.0.0.2:1"}])
    behind = evaluate(cfg, node(height=10, syncing=True), None, [("r", 500, None)], NOW, True)
    assert next_bootstrap_state(True, behind) is True
    caught_up = evaluate(cfg, node(height=500), None, [("r", 500, None)], NOW, True)
    assert next_bootstrap_state(True, caught_up) is False
    # Once off it stays off, so a later stall is reported.
    assert next_bootstrap_state(False, behind) is False
    later = evaluate(cfg, node(height=10), None, [("r", 500, None)], NOW, False)
    assert later["healthy"] is False and later["checks"]["lag"]["status"] == "fail"


def test_unknown_values_fail_enabled_checks_with_the_soft_error():
    observed = NodeStatus(height=100, head_time=None, syncing=False, peers=None,
                          soft_errors=["net_peerCount: node net_peerCount: Method not found"])
    verdict = evaluate(config(min_peers=1, max_head_age_s=30), observed, None, [], NOW)
    assert verdict["checks"]["peers"]["status"] == "fail"
    assert "Method not found" in verdict["checks"]["peers"]["reason"]
    assert verdict["checks"]["head_age"]["status"] == "fail"


def test_icon_has_no_sync_flag_and_says_so():
    cfg = validate_config({"adapter": "icon", "node": {"url": "http://127.0.0.1:9000/api/v3"}})
    verdict = evaluate(cfg, NodeStatus(height=5, head_time=NOW), None, [], NOW)
    assert verdict["checks"]["not_syncing"]["status"] == "skip"
    assert "does not report sync state" in verdict["checks"]["not_syncing"]["reason"]
    assert verdict["checks"]["peers"]["status"] == "skip"


# ----------------------------------------------------------------------------- credentials

def test_credentials_from_bare_password_file(tmp_path):
    path = tmp_path / "pass"
    path.write_text("s3cret\n")
    endpoint = Endpoint({"url": "http://x:1", "user": "rpc", "password_file": str(path)}, "node")
    assert read_credentials(endpoint) == ("rpc", "s3cret")


def test_credentials_from_node_config_style_file(tmp_path):
    path = tmp_path / "litecoin.conf"
    path.write_text("server=1\nrpcuser=ltc\nrpcpassword=abc=def\n")
    endpoint = Endpoint({"url": "http://x:1", "password_file": str(path)}, "node")
    assert read_credentials(endpoint) == ("ltc", "abc=def")


def test_credentials_from_cookie_file_and_clear_errors(tmp_path):
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:0123abcd")
    assert read_credentials(Endpoint({"url": "http://x:1", "cookie_file": str(cookie)}, "node")) == \
        ("__cookie__", "0123abcd")
    missing = Endpoint({"url": "http://x:1", "cookie_file": str(tmp_path / "nope")}, "node")
    with pytest.raises(RpcError, match="cannot read cookie_file"):
        read_credentials(missing)


# ----------------------------------------------------------------------------- rendering

def poll_record(**overrides):
    record = {"polled_at": NOW, "duration_s": 0.0123, "polls": 7, "node_requests": 21, "reference_requests": 7,
              "node_detail": {"blocks": 100}, "node_error": None, "soft_errors": [], "references": [("r", 101, None)]}
    record.update(overrides)
    return record


METRIC_LINE = re.compile(r'^(chainops_health_[a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (\S+)$')


def test_metrics_are_valid_prometheus_text_with_help_and_type():
    cfg = config(references=[{"url": "http://10.0.0.2:1"}])
    verdict = evaluate(cfg, node(height=100), None, [("r", 101, None)], NOW)
    text = metrics_text(cfg, verdict, poll_record(), stale=False).decode()
    assert text.endswith("\n")
    declared, samples = set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            declared.add(line.split()[2])
            continue
        match = METRIC_LINE.match(line)
        assert match, f"bad sample line: {line!r}"
        assert match.group(1) in declared, f"{match.group(1)} has no HELP/TYPE"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(4))
    assert samples["chainops_health_height"] == 100
    assert samples["chainops_health_reference_height"] == 101
    assert samples["chainops_health_lag_blocks"] == 1
    assert samples["chainops_health_peers"] == 3
    assert samples["chainops_health_syncing"] == 0
    assert samples["chainops_health_healthy"] == 1
    assert samples["chainops_health_up"] == 1
    assert samples["chainops_health_last_poll_timestamp_seconds"] == NOW
    assert samples["chainops_health_last_poll_duration_seconds"] == pytest.approx(0.0123)
    assert samples['chainops_health_check_ok{check="lag"}'] == 1
    assert samples["chainops_health_node_requests_total"] == 21


def test_metrics_use_nan_for_unknown_and_zero_healthy_when_stale():
    cfg = config()
    verdict = evaluate(cfg, None, "refused", [], NOW)
    text = metrics_text(cfg, verdict, poll_record(), stale=True).decode()
    assert "chainops_health_height NaN" in text
    assert "chainops_health_up 0" in text
    assert "chainops_health_stale 1" in text
    healthy = evaluate(cfg, node(), None, [], NOW)
    assert "chainops_health_healthy 0" in metrics_text(cfg, healthy, poll_record(), stale=True).decode()


def test_pre_rendered_routes_have_exact_content_length():
    cfg = config()
    verdict = evaluate(cfg, node(), None, [], NOW)
    routes = render_routes(cfg, verdict, poll_record(), stale=False)
    assert set(routes) == {"/health", "/health?verbose", "/live", "/metrics"}
    for path, (head, body) in routes.items():
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        assert length == len(body), path
        assert head.endswith(b"\r\n") and not head.endswith(b"\r\n\r\n"), path
    assert routes["/health"][0].startswith(b"HTTP/1.1 200 OK\r\n")
    stale = render_routes(cfg, verdict, poll_record(), stale=True)
    assert stale["/health"][0].startswith(b"HTTP/1.1 503 ")
    assert b'"status":"stale"' in stale["/health"][1]
    assert b"chainops_health_stale 1" in stale["/metrics"][1]
    assert stale["/live"][0].startswith(b"HTTP/1.1 503 ")
