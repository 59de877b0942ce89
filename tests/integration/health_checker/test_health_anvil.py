"""The ethereum adapter against real anvil nodes on loopback."""
from __future__ import annotations

import time

from hc_support import wait_until

MAX_AGE = 2.5  # block timestamps have 1 s resolution; leave a healthy window on a busy machine


def test_stale_head_flips_unhealthy_and_mining_recovers(anvil, start_service):
    node = anvil()
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "min_peers": 0,
                             "max_head_age_s": MAX_AGE})
    node.rpc("evm_mine")  # after the service is up, so a slow start cannot eat the healthy window
    doc = service.wait_status(200)[1]
    assert doc["checks"]["head_age"]["status"] == "pass"

    # The checker's clock says "too old" once head timestamp + max age has passed: count polls from then.
    time.sleep(max(0.0, node.head_timestamp() + MAX_AGE - time.time()))
    doc = service.assert_flips(503, "the head grew older than max_head_age_s")
    check = doc["checks"]["head_age"]
    # value is rounded to 3 decimals for display: an age just past the limit can show as the limit itself
    assert check["status"] == "fail" and check["value"] >= MAX_AGE and check["limit"] == MAX_AGE
    assert f"maximum is {MAX_AGE}s" in check["reason"]

    node.rpc("evm_mine")
    doc = service.assert_flips(200, "a new block was mined")
    assert doc["height"] == node.height()


def test_lag_against_a_reference_anvil_and_being_ahead_is_fine(anvil, start_service):
    node, reference = anvil(), anvil()
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "min_peers": 0, "max_lag_blocks": 2,
                             "references": [{"url": reference.url, "name": "reference"}]})
    service.wait_status(200)

    reference.rpc("anvil_mine", "0x5")
    doc = service.assert_flips(503, "reference moved 5 blocks ahead")
    assert doc["checks"]["lag"]["value"] == 5 and doc["reference_height"] == 5

    node.rpc("anvil_mine", "0x4")  # 1 behind: within max_lag_blocks
    doc = service.assert_flips(200, "node caught up to within 2 blocks")
    assert doc["checks"]["lag"]["value"] == 1

    node.rpc("anvil_mine", "0xa")

    def sees_node_ahead():
        status, doc = service.get()
        assert status == 200, f"being ahead of the reference must not be unhealthy: {doc}"
        return doc if doc["checks"]["lag"]["value"] == -9 else None
    doc = wait_until(sees_node_ahead, 10, "the checker to see the node 9 blocks ahead", interval=0.02)
    assert doc["checks"]["lag"]["reason"] == "ahead of best reference by 9 blocks"


def test_missing_net_peer_count_fails_min_peers_with_the_reason(anvil, start_service):
    node = anvil()
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "min_peers": 1})
    status, doc = service.get()
    assert status == 503
    assert doc["checks"]["node_answers"]["status"] == "pass"
    peers = doc["checks"]["peers"]
    assert peers["status"] == "fail"
    assert peers["reason"] == "peer count unavailable: net_peerCount: node net_peerCount: Method not found"
    verbose = service.get("/health?verbose")[1]
    assert verbose["soft_errors"] == ["net_peerCount: node net_peerCount: Method not found"]


def test_stopped_node_flips_unhealthy_everywhere(anvil, start_service):
    node = anvil()
    node.rpc("anvil_mine", "0x3")
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}, "min_peers": 0})
    doc = service.wait_status(200)[1]
    assert doc["checks"]["not_syncing"] == {"status": "pass", "value": False}
    assert service.metrics()["chainops_health_height"] == 3

    node.stop()
    doc = service.assert_flips(503, "anvil stopped")
    assert "Connection refused" in doc["checks"]["node_answers"]["reason"]
    assert service.get("/live")[0] == 503
    metrics = service.metrics()
    assert metrics["chainops_health_up"] == 0
    assert metrics["chainops_health_healthy"] == 0
