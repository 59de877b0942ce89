"""chainops_allowlist's logic against a fixture of goloop's getPReps answer: which validators are admitted,
what is skipped and why, and what happens when the chain cannot be asked or lists nobody."""
from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "icon_getpreps.json").read_text())


def load():
    spec = importlib.util.spec_from_file_location("chainops_allowlist", ROOT / "roles/validator_allowlist/files/chainops_allowlist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


al = load()
NAMES = {"node.cherry.example": ["192.0.2.33", "2001:db8::33"]}


def resolver(name):
    if name not in NAMES:
        raise OSError("no such name")
    return NAMES[name]


def config(tmp_path, **changes):
    raw = {"endpoints": ["http://127.0.0.1:9000/api/v3", "https://ctz.solidwallet.io/api/v3"], "ports": [{"port": 7100, "protocol": "tcp"}],
           "exempt_interfaces": ["wg0"], "extra_cidrs": ["10.99.0.0/16"], "state_file": str(tmp_path / "state.json"), "nft": "/bin/true"}
    raw.update(changes)
    return al.validate_config(raw)


def test_main_and_sub_validators_are_admitted_by_address_and_resolved_name(tmp_path):
    fresh = al.fetch_list(config(tmp_path), resolver, lambda url, request, timeout: FIXTURE)
    assert fresh["addresses"] == ["192.0.2.33", "203.0.113.10", "2001:db8::20", "2001:db8::33"]
    assert fresh["height"] == 0x4a8c1f2 and fresh["endpoint"] == "http://127.0.0.1:9000/api/v3"
    assert [v["name"] for v in fresh["validators"]] == ["banana", "cherry", "damson"]  # elder is a candidate
    assert fresh["skipped"] == ["fig: p2pEndpoint 'fig node:7100' is not host:port"]


def test_the_request_is_getpreps_on_the_chain_score():
    request = al.icon_request()
    assert request["method"] == "icx_call"
    assert request["params"] == {"to": "cx0000000000000000000000000000000000000000", "dataType": "call",
                                 "data": {"method": "getPReps", "params": {}}}


def test_grades_choose_which_validators(tmp_path):
    fresh = al.fetch_list(config(tmp_path, grades=["main"]), resolver, lambda *a: FIXTURE)
    assert fresh["addresses"] == ["192.0.2.33", "203.0.113.10", "2001:db8::33"]
    fresh = al.fetch_list(config(tmp_path, grades=["candidate"]), resolver, lambda *a: FIXTURE)
    assert fresh["addresses"] == ["198.51.100.40"]


def test_the_next_endpoint_is_asked_when_the_first_is_unreachable_or_empty(tmp_path):
    asked = []

    def asker(url, request, timeout):
        asked.append(url)
        if url.startswith("http://127.0.0.1"):
            return {"jsonrpc": "2.0", "id": 1, "result": {"blockHeight": "0x10", "preps": []}}
        return FIXTURE
    fresh = al.fetch_list(config(tmp_path), resolver, asker)
    assert asked == ["http://127.0.0.1:9000/api/v3", "https://ctz.solidwallet.io/api/v3"]
    assert fresh["endpoint"] == "https://ctz.solidwallet.io/api/v3"


@pytest.mark.parametrize("answer, reason", [
    ({"jsonrpc": "2.0", "id": 1, "result": {"blockHeight": "0x10", "preps": []}}, "the chain lists no reachable main/sub validator endpoint (0 listed)"),
    ({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "Method not found"}}, "the chain answered an error"),
    ({"jsonrpc": "2.0", "id": 1, "result": "0x0"}, "the answer has no result.preps list"),
    ([], "the answer is not a JSON object"),
])
def test_unusable_answers_are_named_per_endpoint(tmp_path, answer, reason):
    with pytest.raises(al.SourceError) as raised:
        al.fetch_list(config(tmp_path), resolver, lambda *a: answer)
    assert str(raised.value).count(reason) == 2, str(raised.value)


def no_names(name):
    raise OSError("%s: temporary failure in name resolution" % name)


def test_a_validator_whose_name_does_not_resolve_is_skipped_not_fatal(tmp_path):
    fresh = al.fetch_list(config(tmp_path), no_names, lambda *a: FIXTURE)
    assert fresh["addresses"] == ["203.0.113.10", "2001:db8::20"]
    assert "cherry: node.cherry.example does not resolve" in fresh["skipped"]


def test_resolution_is_bounded_in_time():
    release = threading.Event()

    def stuck(name):
        release.wait(10)
        return ["192.0.2.99"]
    try:
        assert al.resolve(["stuck.example", "203.0.113.1"], 0.2, stuck) == {"stuck.example": [], "203.0.113.1": ["203.0.113.1"]}
    finally:
        release.set()


@pytest.mark.parametrize("endpoint, expected", [
    ("203.0.113.10:7100", ("203.0.113.10", 7100)),
    ("[2001:db8::20]:7100", ("2001:db8::20", 7100)),
    ("node.example.org:7100", ("node.example.org", 7100)),
    ("2001:db8::20:7100", (None, None)),
    ("node.example.org", (None, None)),
    ("node.example.org:70000", (None, None)),
    ("", (None, None)),
    (None, (None, None)),
])
def test_endpoints(endpoint, expected):
    assert al.split_endpoint(endpoint) == expected


def test_the_table_drops_new_connections_to_the_guarded_ports_from_anyone_else(tmp_path):
    script = al.nft_script(config(tmp_path, ports=[{"port": 7100, "protocol": "tcp"}, {"port": 7100, "protocol": "udp"}]),
                           ["203.0.113.10", "2001:db8::20"])
    assert "elements = { 10.99.0.0/16, 203.0.113.10/32 }" in script
    assert "elements = { 2001:db8::20/128 }" in script
    assert 'iifname "wg0" accept' in script and "ct state established,related accept" in script
    for protocol in ("tcp", "udp"):
        assert "ip saddr @admitted4 %s dport { 7100 } accept" % protocol in script
        assert "    %s dport { 7100 } drop" % protocol in script
    assert script.index("table inet chainops_allowlist\ndelete table inet chainops_allowlist") >= 0


def test_with_no_addresses_the_sets_are_empty_never_open(tmp_path):
    script = al.nft_script(config(tmp_path, extra_cidrs=[]), [])
    assert "elements" not in script and "tcp dport { 7100 } drop" in script


@pytest.mark.parametrize("raw, problem", [
    ({"endpoints": []}, "endpoints: one or more http(s) JSON-RPC URLs"),
    ({"grades": ["validators"]}, "grades: each one of main, sub, candidate"),
    ({"ports": [{"port": 0}]}, "ports[0]: {port: 1-65535, protocol: tcp|udp}"),
    ({"extra_cidrs": ["10.0.0.0/33"]}, "extra_cidrs: '10.0.0.0/33' is not an address or network"),
    ({"exempt_interfaces": ["wg0; drop"]}, "exempt_interfaces: 'wg0; drop' is not an interface name"),
    ({"source": "cometbft"}, "source: only 'icon' is supported"),
    ({"timeout_s": 0}, "timeout_s: seconds, more than 0"),
    ({"surprise": 1}, "surprise: unknown key"),
])
def test_bad_config_is_named(tmp_path, raw, problem):
    base = {"endpoints": ["http://127.0.0.1:9000/api/v3"], "ports": [{"port": 7100}]}
    with pytest.raises(al.ConfigError) as raised:
        al.validate_config(dict(base, **raw))
    assert any(problem in p for p in raised.value.args[0]), raised.value.args[0]
