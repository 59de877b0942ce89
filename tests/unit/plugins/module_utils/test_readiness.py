"""module_utils/readiness.py: bounded waits that keep the last observation, on real commands and a
real loopback HTTP server; the clock is injected where the bound itself is under test."""
from __future__ import annotations

import os
import sys

import pytest
from ansible_collections.chainops.validator.plugins.module_utils.readiness import (
    health_reasons,
    probe_command,
    probe_http,
    unit_state,
    unmet_minimums,
    wait,
)
from json_server import JsonServer  # tests/testlib, put on sys.path by tests/conftest.py

UNHEALTHY = {
    "status": "unhealthy", "healthy": False,
    "checks": {
        "node_answers": {"status": "pass", "value": True},
        "not_syncing": {"status": "fail", "value": True, "reason": "node reports it is syncing (initialblockdownload)"},
        "peers": {"status": "fail", "value": 0, "limit": 1, "reason": "0 peers, minimum is 1"},
        "lag": {"status": "skip", "value": None, "reason": "no references"},
    },
}


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_health_reasons_lists_failing_checks_only():
    assert health_reasons(UNHEALTHY) == ["not_syncing: node reports it is syncing (initialblockdownload)",
                                         "peers: 0 peers, minimum is 1"]
    assert health_reasons({"status": "starting", "healthy": False, "reason": "first poll not finished"}) == ["first poll not finished"]
    assert health_reasons({"healthy": True, "checks": {"peers": {"status": "pass"}}}) == []
    assert health_reasons("not a document") == [] and health_reasons(None) == []


def test_unmet_minimums_names_field_value_and_minimum():
    assert unmet_minimums({"blocks": 150, "headers": 200}, {"blocks": 200}) == ["blocks 150 < 200"]
    assert unmet_minimums({"blocks": 200}, {"blocks": 200}) == []
    assert unmet_minimums({"sync": {"height": "7"}}, {"sync.height": 5}) == []
    assert unmet_minimums({}, {"blocks": 1}) == ["blocks missing < 1"]
    assert unmet_minimums(None, {"blocks": 1}) == ["blocks missing < 1"]
    assert unmet_minimums({"blocks": True}, {"blocks": 1}) == ["blocks True < 1"]  # a bool is not a height


def test_wait_stops_at_the_bound_and_keeps_the_last_state():
    clock = FakeClock()
    seen = iter(range(100))

    def probe():
        return {"ok": False, "state": "attempt %d" % next(seen)}

    result = wait(probe, timeout=10, interval=3, clock=clock, sleep=clock.sleep)
    assert result["ready"] is False
    assert clock.sleeps == [3, 3, 3, 1]  # the last sleep is cut to the bound
    assert result["attempts"] == 5 and result["elapsed"] == 10
    assert result["last"]["state"] == "attempt 4"


def test_wait_zero_timeout_is_exactly_one_attempt():
    clock = FakeClock()
    result = wait(lambda: {"ok": False, "state": "down"}, timeout=0, interval=5, clock=clock, sleep=clock.sleep)
    assert result["attempts"] == 1 and clock.sleeps == [] and not result["ready"]


def test_wait_returns_as_soon_as_ready_and_applies_minimums():
    clock = FakeClock()
    heights = iter([100, 180, 200, 300])

    def probe():
        return {"ok": True, "json": {"blocks": next(heights)}}

    result = wait(probe, timeout=60, interval=2, minimums={"blocks": 200}, clock=clock, sleep=clock.sleep)
    assert result["ready"] and result["attempts"] == 3 and result["last"]["state"] == "ready"

    clock = FakeClock()
    result = wait(lambda: {"ok": True, "json": {"blocks": 150}}, timeout=4, interval=2, minimums={"blocks": 200},
                  clock=clock, sleep=clock.sleep)
    assert not result["ready"] and result["last"]["state"] == "blocks 150 < 200"


def test_probe_command_reports_exit_code_and_last_line():
    failed = probe_command([sys.executable, "-c", "import sys; print('first'); sys.stderr.write('boom\\nerror: no RPC\\n'); sys.exit(3)"], 10)
    assert failed["ok"] is False and failed["rc"] == 3 and failed["state"] == "exit 3: error: no RPC"
    answered = probe_command([sys.executable, "-c", "print('{\"blocks\": 5}')"], 10)
    assert answered["ok"] and answered["json"] == {"blocks": 5}
    slow = probe_command([sys.executable, "-c", "import time; time.sleep(5)"], 0.3)
    assert not slow["ok"] and slow["state"] == "no answer within 0.3s"
    missing = probe_command(["/nonexistent/cli"], 1)
    assert not missing["ok"] and missing["state"].startswith("cannot run /nonexistent/cli")


@pytest.fixture
def http_server():
    """A loopback server: /health answers `UNHEALTHY` with 503, /ok 200 with JSON, /post echoes the body."""

    def answer(request):
        if request.method == "POST":
            return {"echo": request.json(), "type": request.headers["Content-Type"]}
        return (503, UNHEALTHY) if request.path == "/health" else {"blocks": 12}

    with JsonServer(answer) as server:
        yield server.url


def test_probe_http_explains_an_unhealthy_health_document(http_server):
    observed = probe_http(http_server + "/health", "GET", None, {}, [200], 3)
    assert observed["ok"] is False and observed["status"] == 503
    assert observed["state"] == ("HTTP 503: not_syncing: node reports it is syncing (initialblockdownload); "
                                 "peers: 0 peers, minimum is 1")
    assert observed["reasons"] == health_reasons(UNHEALTHY)


def test_probe_http_ready_and_posts_json(http_server):
    assert probe_http(http_server + "/ok", "GET", None, {}, [200], 3)["json"] == {"blocks": 12}
    posted = probe_http(http_server + "/post", "POST", {"method": "eth_syncing"}, {}, [200], 3)
    assert posted["ok"] and posted["json"] == {"echo": {"method": "eth_syncing"}, "type": "application/json"}


def test_probe_http_names_a_refused_connection():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    observed = probe_http("http://127.0.0.1:%d/health" % port, "GET", None, {}, [200], 2)
    assert observed["ok"] is False and observed["status"] is None
    assert observed["state"].startswith("no answer from http://127.0.0.1:%d/health:" % port) and "refused" in observed["state"]


def test_unit_state_names_the_state_result_and_journal(tmp_path, monkeypatch):
    """systemctl and journalctl stand-ins on PATH print what the real ones print for a crash-looping unit."""
    (tmp_path / "systemctl").write_text("#!/bin/sh\nprintf 'ActiveState=activating\\nSubState=auto-restart\\nResult=exit-code\\n"
                                        "ExecMainStatus=1\\nNRestarts=4\\n'\n")
    (tmp_path / "journalctl").write_text("#!/bin/sh\nprintf 'starting\\nError: Cannot obtain a lock on data directory\\n'\n")
    for tool in ("systemctl", "journalctl"):
        (tmp_path / tool).chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path, os.environ["PATH"]))
    assert unit_state("litecoind") == ("litecoind is activating/auto-restart (result exit-code, last exit status 1, "
                                       "restarted 4 times)")
    assert unit_state("litecoind", journal_lines=5).endswith(
        "; its journal ends: starting | Error: Cannot obtain a lock on data directory")
