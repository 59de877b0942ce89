"""The bitcoin-family adapter against real litecoind -regtest daemons on loopback.

Each test starts its own daemons (temp datadirs, free ports) and the service as a process on the
system python3; every state change must flip /health by the first poll after it.
"""
from __future__ import annotations

from hc_support import free_port, wait_until


def synced_pair(litecoind):
    a = litecoind("a", auth="cookie")
    b = litecoind("b", auth="password")
    a.connect(b)
    a.mine(5)
    wait_until(lambda: b.rpc("getblockcount") == 5, 10, "b to sync a's blocks")
    return a, b


def test_lagging_node_flips_unhealthy_and_back_while_the_node_ahead_stays_healthy(litecoind, start_service, tmp_path):
    a, b = synced_pair(litecoind)
    # b uses a litecoin.conf-style password file; a is reached with its rotating cookie.
    behind = start_service({"adapter": "bitcoin", "node": b.node_config(tmp_path, conf_style=True),
                            "references": [dict(a.node_config(tmp_path), name="a")],
                            "min_peers": 0, "max_lag_blocks": 2})
    ahead = start_service({"adapter": "bitcoin", "node": a.node_config(tmp_path),
                           "references": [dict(b.node_config(tmp_path), name="b")],
                           "min_peers": 0, "max_lag_blocks": 2})
    doc = behind.wait_status(200)[1]
    assert doc["height"] == 5 and doc["checks"]["lag"]["value"] == 0

    a.disconnect(b)
    wait_until(lambda: b.rpc("getconnectioncount") == 0, 10, "disconnect")
    a.mine(5)  # b cannot hear about these: it falls 5 blocks behind
    doc = behind.assert_flips(503, "b fell 5 blocks behind a")
    assert doc["checks"]["lag"]["status"] == "fail"
    assert doc["checks"]["lag"]["value"] == 5
    assert doc["checks"]["lag"]["reason"] == "5 blocks behind best reference (10), maximum is 2"
    assert {name for name, check in doc["checks"].items() if check["status"] == "fail"} == {"lag"}

    def ahead_sees_it():
        status, doc = ahead.get()
        assert status == 200, f"being ahead of the reference must not be unhealthy: {doc}"
        return doc if doc["checks"]["lag"]["value"] == -5 else None
    doc = wait_until(ahead_sees_it, 10, "a's checker to see itself 5 blocks ahead", interval=0.02)
    assert doc["checks"]["lag"]["reason"] == "ahead of best reference by 5 blocks"

    a.connect(b)
    wait_until(lambda: b.rpc("getblockcount") == 10, 10, "b to catch up")
    doc = behind.assert_flips(200, "b caught up")
    assert doc["height"] == 10


def test_losing_peers_flips_unhealthy_and_reconnecting_recovers(litecoind, start_service, tmp_path):
    a, b = synced_pair(litecoind)
    service = start_service({"adapter": "bitcoin", "node": b.node_config(tmp_path), "min_peers": 1})
    doc = service.wait_status(200)[1]
    assert doc["checks"]["peers"] == {"status": "pass", "value": 1, "limit": 1}

    a.disconnect(b)
    wait_until(lambda: b.rpc("getconnectioncount") == 0, 10, "b to drop its peer")
    doc = service.assert_flips(503, "b lost its only peer")
    assert doc["checks"]["peers"] == {"status": "fail", "value": 0, "limit": 1, "reason": "0 peers, minimum is 1"}

    a.connect(b)
    service.assert_flips(200, "b reconnected")


def test_stopped_daemon_flips_unhealthy_and_a_restart_with_a_new_cookie_recovers(litecoind, start_service, tmp_path):
    a = litecoind("a", auth="cookie")
    a.mine(3)
    service = start_service({"adapter": "bitcoin", "node": a.node_config(tmp_path), "min_peers": 0})
    service.wait_status(200)
    old_cookie = a.cookie_file.read_text()

    a.stop()
    doc = service.assert_flips(503, "litecoind stopped")
    answers = doc["checks"]["node_answers"]
    assert answers["status"] == "fail" and "Connection refused" in answers["reason"]
    assert service.get("/live")[0] == 503
    metrics = service.metrics()
    assert metrics["chainops_health_up"] == 0 and metrics["chainops_health_healthy"] == 0

    a.start()
    assert a.cookie_file.read_text() != old_cookie, "litecoind should have written a fresh cookie"
    doc = service.assert_flips(200, "litecoind restarted")
    assert doc["height"] == 3
    assert service.get("/live")[0] == 200


def test_initial_block_download_is_syncing_and_bootstrap_forgives_it_once(litecoind, start_service, tmp_path):
    a = litecoind("a", auth="password")
    assert a.rpc("getblockchaininfo")["initialblockdownload"] is True  # regtest genesis is from 2011
    strict = start_service({"adapter": "bitcoin", "node": a.node_config(tmp_path), "min_peers": 0})
    lenient = start_service({"adapter": "bitcoin", "node": a.node_config(tmp_path), "min_peers": 0,
                             "bootstrap": True})
    status, doc = strict.get()
    assert status == 503
    assert doc["checks"]["not_syncing"]["status"] == "fail"
    assert '"initialblockdownload": true' in doc["checks"]["not_syncing"]["reason"]
    status, doc = lenient.get()
    assert status == 200
    assert doc["checks"]["not_syncing"]["status"] == "waived"
    assert doc["bootstrap"] == {"enabled": True, "active": True}

    a.mine(1)  # a block with a current timestamp ends initial block download
    strict.assert_flips(200, "initial block download finished")
    wait_until(lambda: lenient.get()[1]["bootstrap"]["active"] is False, 10, "bootstrap to end once synced")


def test_reference_policies_when_every_reference_is_unreachable(litecoind, start_service, tmp_path):
    a = litecoind("a", auth="password")
    a.mine(2)
    dead = {"url": f"http://127.0.0.1:{free_port()}", "name": "dead"}
    node = a.node_config(tmp_path)
    open_ = start_service({"adapter": "bitcoin", "node": node, "min_peers": 0, "references": [dead],
                           "reference_policy": "fail_open"})
    closed = start_service({"adapter": "bitcoin", "node": node, "min_peers": 0, "references": [dead],
                            "reference_policy": "fail_closed"})
    mixed = start_service({"adapter": "bitcoin", "node": node, "min_peers": 0, "reference_policy": "fail_closed",
                           "references": [dead, dict(a.node_config(tmp_path), name="self")]})

    status, doc = open_.get()
    assert status == 200 and doc["reference_policy_applied"] == "fail_open"
    assert doc["checks"]["lag"]["reason"].startswith("all 1 references unreachable, fail_open policy applied")
    status, doc = closed.get()
    assert status == 503 and doc["reference_policy_applied"] == "fail_closed"
    assert doc["checks"]["lag"]["status"] == "fail" and "Connection refused" in doc["checks"]["lag"]["reason"]
    status, doc = mixed.get()
    assert status == 200 and doc["reference_policy_applied"] is None
    assert doc["checks"]["lag"]["references_reachable"] == 1 and doc["checks"]["lag"]["value"] == 0
    verbose = mixed.get("/health?verbose")[1]
    assert [ref["name"] for ref in verbose["references"]] == ["dead", "self"]
    assert verbose["references"][1]["height"] == 2


def test_wrong_credentials_are_reported_clearly(litecoind, start_service, tmp_path):
    a = litecoind("a", auth="password")
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-password")
    service = start_service({"adapter": "bitcoin", "min_peers": 0,
                             "node": {"url": a.url, "user": a.user, "password_file": str(wrong)}})
    status, doc = service.get()
    assert status == 503
    assert doc["checks"]["node_answers"]["reason"] == \
        "node getblockchaininfo: HTTP 401 (check user/password_file/cookie_file)"
