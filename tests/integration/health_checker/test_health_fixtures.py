"""CometBFT, Substrate, ICON, Waku (and Ethereum syncing) adapters against documented response shapes.

No such node runs here, so a loopback fixture server answers with the files in fixtures/; tests
switch fixtures while the service runs and expect the verdict to follow by the first poll after the switch.
"""
from __future__ import annotations

import time

import pytest

from hc_support import FIXTURES, fixture_json, wait_until

from chainops_health.config import ConfigError, validate_config


def rfc3339(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".123456789Z"


# ----------------------------------------------------------------------------- CometBFT

def cometbft_node(fixture_node, status="cometbft_status.json", fresh=True):
    node = fixture_node()
    doc = fixture_json(status)
    if fresh:  # the fixture's block time is from 2024; make it current for head-age checks
        doc["result"]["sync_info"]["latest_block_time"] = rfc3339(time.time() - 3)
    node.set_json("/status", doc)
    node.set_json("/net_info", fixture_json("cometbft_net_info.json"))
    return node, doc


def test_cometbft_synced_node_reports_height_peers_and_head_age(fixture_node, start_service):
    node = cometbft_node(fixture_node)[0]
    service = start_service({"adapter": "cometbft", "node": {"url": node.url}, "min_peers": 2,
                             "max_head_age_s": 30})
    status, doc = service.get()
    assert status == 200, doc
    assert doc["height"] == 22143250
    assert doc["checks"]["peers"] == {"status": "pass", "value": 2, "limit": 2}
    assert 2 < doc["checks"]["head_age"]["value"] < 10
    verbose = service.get("/health?verbose")[1]
    assert verbose["node"]["catching_up"] is False


def test_cometbft_catching_up_flips_unhealthy_and_back(fixture_node, start_service):
    node, synced = cometbft_node(fixture_node)
    service = start_service({"adapter": "cometbft", "node": {"url": node.url}})
    service.wait_status(200)

    node.set_json("/status", fixture_json("cometbft_status_catching_up.json"))
    doc = service.assert_flips(503, "catching_up became true")
    check = doc["checks"]["not_syncing"]
    assert check["status"] == "fail" and check["value"] is True
    assert '"catching_up": true' in check["reason"]

    node.set_json("/status", synced)
    service.assert_flips(200, "catching_up became false")


def test_cometbft_old_head_and_too_few_peers_fail(fixture_node, start_service):
    node = cometbft_node(fixture_node, fresh=False)[0]
    service = start_service({"adapter": "cometbft", "node": {"url": node.url}, "min_peers": 3,
                             "max_head_age_s": 60})
    status, doc = service.get()
    assert status == 503
    assert doc["checks"]["head_age"]["status"] == "fail"
    assert doc["checks"]["head_age"]["value"] > 3600  # 2024-09-23T10:52:28.537Z is long gone
    assert doc["checks"]["peers"]["reason"] == "2 peers, minimum is 3"


def test_cometbft_lag_against_reference_rpc(fixture_node, start_service):
    node = cometbft_node(fixture_node)[0]
    reference, ref_doc = cometbft_node(fixture_node)
    service = start_service({"adapter": "cometbft", "node": {"url": node.url}, "max_lag_blocks": 3,
                             "references": [{"url": reference.url, "name": "public-rpc"}]})
    service.wait_status(200)
    ref_doc["result"]["sync_info"]["latest_block_height"] = "22143260"
    reference.set_json("/status", ref_doc)
    doc = service.assert_flips(503, "reference 10 blocks ahead")
    assert doc["checks"]["lag"]["value"] == 10
    assert doc["reference_height"] == 22143260

    ref_doc["result"]["sync_info"]["latest_block_height"] = "22143000"  # node is ahead now: fine
    reference.set_json("/status", ref_doc)
    doc = service.assert_flips(200, "reference behind the node")
    assert doc["checks"]["lag"]["value"] == -250


def test_cometbft_rpc_error_envelope_is_a_node_failure(fixture_node, start_service):
    node = cometbft_node(fixture_node)[0]
    node.set_json("/status", {"jsonrpc": "2.0", "id": -1, "error": {"code": -32603, "message": "Internal error"}},
                  status=500)
    service = start_service({"adapter": "cometbft", "node": {"url": node.url}})
    status, doc = service.get()
    assert status == 503
    assert doc["checks"]["node_answers"]["reason"] == "node/status: HTTP 500"


# ----------------------------------------------------------------------------- Substrate

def substrate_node(fixture_node):
    node = fixture_node()
    for method in ("system_health", "system_syncState", "chain_getHeader"):
        node.set_rpc(method, fixture_json(f"substrate_{method}.json"))
    node.set_rpc("state_getStorage", fixture_json("substrate_state_getStorage_timestamp.json"))
    return node


def scale_u64_ms(ts):
    return "0x" + int(ts * 1000).to_bytes(8, "little").hex()


def test_substrate_synced_node_reports_height_peers_and_timestamp(fixture_node, start_service):
    node = substrate_node(fixture_node)
    node.set_result("state_getStorage", scale_u64_ms(time.time() - 6))
    service = start_service({"adapter": "substrate", "node": {"url": node.url}, "min_peers": 2,
                             "max_head_age_s": 60})
    status, doc = service.get()
    assert status == 200, doc
    assert doc["height"] == 21463807
    assert doc["checks"]["peers"]["value"] == 12
    assert 5 < doc["checks"]["head_age"]["value"] < 15


def test_substrate_fixture_timestamp_decodes_to_its_documented_time(fixture_node, start_service):
    node = substrate_node(fixture_node)
    service = start_service({"adapter": "substrate", "node": {"url": node.url}, "max_head_age_s": 60})
    metrics = service.metrics()
    # 0xb0ed821e92010000 is 1727088750000 ms little endian: 2024-09-23T10:52:30Z.
    head_age = metrics["chainops_health_head_age_seconds"]
    assert head_age == pytest.approx(metrics["chainops_health_last_poll_timestamp_seconds"] - 1727088750.0, abs=0.01)
    assert service.get()[0] == 503


def test_substrate_syncing_flips_unhealthy(fixture_node, start_service):
    node = substrate_node(fixture_node)
    service = start_service({"adapter": "substrate", "node": {"url": node.url}})
    service.wait_status(200)
    node.set_rpc("system_health", fixture_json("substrate_system_health_syncing.json"))
    doc = service.assert_flips(503, "isSyncing became true")
    assert doc["checks"]["not_syncing"]["status"] == "fail"
    assert doc["checks"]["peers"]["value"] == 9


def test_substrate_lag_uses_reference_chain_get_header(fixture_node, start_service):
    node = substrate_node(fixture_node)
    reference = substrate_node(fixture_node)  # chain_getHeader number 0x1478301 = 21463809
    service = start_service({"adapter": "substrate", "node": {"url": node.url}, "max_lag_blocks": 1,
                             "references": [{"url": reference.url}]})
    status, doc = service.get()
    assert status == 503
    assert doc["checks"]["lag"]["value"] == 2 and doc["reference_height"] == 21463809
    reference.set_result("chain_getHeader", {"number": hex(21463808)})
    service.assert_flips(200, "reference within 1 block")


# ----------------------------------------------------------------------------- ICON

def test_icon_height_and_microsecond_timestamp(fixture_node, start_service):
    node = fixture_node()
    block = fixture_json("icon_icx_getLastBlock.json")
    node.set_rpc("icx_getLastBlock", block)
    service = start_service({"adapter": "icon", "node": {"url": node.url + "/api/v3"}})
    status, doc = service.get()
    assert status == 200, doc
    assert doc["height"] == 78221904
    assert doc["checks"]["not_syncing"]["status"] == "skip"
    assert doc["checks"]["peers"]["status"] == "skip"
    metrics = service.metrics()
    expected_age = metrics["chainops_health_last_poll_timestamp_seconds"] - 1727088750.123456
    assert metrics["chainops_health_head_age_seconds"] == pytest.approx(expected_age, abs=0.01)


def test_icon_lag_against_a_reference_flips(fixture_node, start_service):
    node, reference = fixture_node(), fixture_node()
    block = fixture_json("icon_icx_getLastBlock.json")
    node.set_rpc("icx_getLastBlock", block)
    reference.set_rpc("icx_getLastBlock", block)
    service = start_service({"adapter": "icon", "node": {"url": node.url}, "max_lag_blocks": 25,
                             "references": [{"url": reference.url, "name": "icon-ref"}]})
    service.wait_status(200)
    ahead = fixture_json("icon_icx_getLastBlock.json")
    ahead["result"]["height"] = 78221904 + 26
    reference.set_rpc("icx_getLastBlock", ahead)
    doc = service.assert_flips(503, "reference 26 blocks ahead")
    assert doc["checks"]["lag"]["reason"] == "26 blocks behind best reference (78221930), maximum is 25"


# ----------------------------------------------------------------------------- Waku

def waku_node(fixture_node):
    node = fixture_node()
    node.set_json("/health", fixture_json("waku_health_ready.json"))
    node.set_json("/debug/v1/info", fixture_json("waku_debug_v1_info.json"))
    node.set_json("/admin/v1/peers", fixture_json("waku_admin_v1_peers.json"))
    return node


def test_waku_ready_node_counts_connected_peers(fixture_node, start_service):
    node = waku_node(fixture_node)
    service = start_service({"adapter": "waku", "node": {"url": node.url}, "min_peers": 2})
    status, doc = service.get()
    assert status == 200, doc
    assert doc["checks"]["peers"]["value"] == 2  # the third peer in the fixture is not connected
    assert doc["checks"]["lag"]["status"] == "skip" and doc["height"] is None
    verbose = service.get("/health?verbose")[1]
    assert verbose["node"]["nodeHealth"] == "READY"
    assert verbose["node"]["protocolsHealth"]["Relay"] == "READY"
    assert verbose["node"]["enrUri"].startswith("enr:")


def test_waku_initializing_flips_unhealthy_and_back(fixture_node, start_service):
    node = waku_node(fixture_node)
    service = start_service({"adapter": "waku", "node": {"url": node.url}, "min_peers": 1})
    service.wait_status(200)
    node.set_json("/health", fixture_json("waku_health_initializing.json"))
    doc = service.assert_flips(503, "nodeHealth INITIALIZING")
    assert '"nodeHealth": "INITIALIZING"' in doc["checks"]["not_syncing"]["reason"]
    node.set_json("/health", fixture_json("waku_health_ready.json"))
    service.assert_flips(200, "nodeHealth READY")


@pytest.mark.parametrize("fixture,code,healthy", [("waku_health_legacy_ready.txt", 200, True),
                                                  ("waku_health_legacy_not_ready.txt", 503, False)])
def test_waku_legacy_plain_text_health(fixture_node, start_service, fixture, code, healthy):
    node = waku_node(fixture_node)
    node.set_text("/health", (FIXTURES / fixture).read_text(), code)
    service = start_service({"adapter": "waku", "node": {"url": node.url}, "min_peers": 0})
    status, doc = service.get()
    assert (status == 200) is healthy
    assert doc["checks"]["node_answers"]["status"] == "pass"


def test_waku_without_admin_api_explains_the_missing_peer_count(fixture_node, start_service):
    node = waku_node(fixture_node)
    del node.get_routes["/admin/v1/peers"]  # nwaku runs with --rest-admin=false by default
    service = start_service({"adapter": "waku", "node": {"url": node.url}, "min_peers": 1})
    status, doc = service.get()
    assert status == 503
    assert doc["checks"]["peers"]["reason"] == \
        "peer count unavailable: /admin/v1/peers: node/admin/v1/peers: HTTP 404, response is not JSON"


def test_waku_with_min_peers_zero_does_not_ask_the_admin_api(fixture_node, start_service):
    node = waku_node(fixture_node)
    service = start_service({"adapter": "waku", "node": {"url": node.url}, "min_peers": 0})
    service.wait_status(200)
    # /debug/v1/info is the last call of a poll without the admin API: three of them, three whole polls.
    wait_until(lambda: node.hits["/debug/v1/info"] >= 3, 10, "three complete polls")
    assert node.hits["/admin/v1/peers"] == 0


# ----------------------------------------------------------------------------- Ethereum (syncing)

def execution_client(fixture_node, syncing):
    """An Ethereum execution client answering the fixtures; eth_syncing answers ``syncing`` (a response)."""
    node = fixture_node()
    for method in ("eth_blockNumber", "eth_getBlockByNumber", "net_peerCount"):
        node.set_rpc(method, fixture_json(f"ethereum_{method}.json"))
    node.set_rpc("eth_syncing", syncing)
    return node


def test_ethereum_syncing_progress_object_is_syncing(fixture_node, start_service):
    node = execution_client(fixture_node, fixture_json("ethereum_eth_syncing_progress.json"))
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}})
    status, doc = service.get()
    assert status == 503
    assert doc["checks"]["not_syncing"]["value"] is True
    assert '"highestBlock": "0x454"' in doc["checks"]["not_syncing"]["reason"]
    assert doc["checks"]["peers"]["value"] == 25
    assert doc["height"] == 0x386
    node.set_result("eth_syncing", False)
    service.assert_flips(200, "eth_syncing returned false")


# ----------------------------------------------------------------------------- Ethereum with its consensus client

def ethereum_pair(fixture_node):
    execution, beacon = execution_client(fixture_node, {"jsonrpc": "2.0", "result": False}), fixture_node()
    synced = fixture_json("beacon_node_syncing.json")
    beacon.set_json("/eth/v1/node/syncing", synced)
    return execution, beacon, synced


def test_ethereum_without_a_peer_to_sync_from_is_syncing_not_unknown(fixture_node, start_service):
    """EthereumJS answers eth_syncing with an error until a peer tells it the head: not synced, with
    that reason, and forgiven like any catching-up node while the bootstrap grace lasts."""
    node = execution_client(fixture_node, fixture_json("ethereumjs_eth_syncing_no_peer.json"))
    service = start_service({"adapter": "ethereum", "node": {"url": node.url}})
    status, doc = service.get()
    assert status == 503
    check = doc["checks"]["not_syncing"]
    assert check["status"] == "fail" and check["value"] is True
    assert "no peer available for synchronization" in check["reason"] and "syncing" in check["reason"]
    # Any other error still means "sync state unknown", named.
    node.set_rpc("eth_syncing", {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "internal failure"}})
    deadline = time.monotonic() + 10
    while doc["checks"]["not_syncing"]["value"] is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        doc = service.get()[1]
    assert doc["checks"]["not_syncing"]["value"] is None, doc["checks"]["not_syncing"]
    assert "eth_syncing" in doc["checks"]["not_syncing"]["reason"] and "internal failure" in doc["checks"]["not_syncing"]["reason"]


@pytest.mark.parametrize("field, value", [("is_syncing", True), ("is_optimistic", True), ("el_offline", True)])
def test_ethereum_is_synced_only_when_its_beacon_node_is(fixture_node, start_service, field, value):
    """The execution client says it is not syncing; the beacon node beside it decides."""
    execution, beacon, synced = ethereum_pair(fixture_node)
    service = start_service({"adapter": "ethereum", "node": {"url": execution.url}, "consensus": {"url": beacon.url}})
    doc = service.wait_status(200)[1]
    assert doc["checks"]["not_syncing"] == {"status": "pass", "value": False}
    assert beacon.hits["/eth/v1/node/syncing"] >= 1

    beacon.set_json("/eth/v1/node/syncing", {"data": dict(synced["data"], **{field: value})})
    doc = service.assert_flips(503, "the beacon node reported %s=%s" % (field, value))
    assert doc["checks"]["not_syncing"]["value"] is True
    assert '"%s": true' % field in doc["checks"]["not_syncing"]["reason"]

    beacon.set_json("/eth/v1/node/syncing", synced)
    service.assert_flips(200, "the beacon node is synced again")


def test_ethereum_with_its_beacon_node_down_is_not_synced(fixture_node, start_service):
    execution, beacon, _synced = ethereum_pair(fixture_node)
    del beacon.get_routes["/eth/v1/node/syncing"]
    service = start_service({"adapter": "ethereum", "node": {"url": execution.url}, "consensus": {"url": beacon.url}})
    status, doc = service.get()
    assert status == 503
    check = doc["checks"]["not_syncing"]
    assert check["status"] == "fail" and check["value"] is None
    assert "consensus /eth/v1/node/syncing: consensus/eth/v1/node/syncing: HTTP 404" in check["reason"]


def test_a_consensus_client_belongs_to_the_ethereum_adapter_only():
    with pytest.raises(ConfigError) as info:
        validate_config({"adapter": "bitcoin", "node": {"url": "http://127.0.0.1:8332"}, "consensus": {"url": "http://127.0.0.1:5052"}})
    assert "consensus: only the ethereum adapter has a consensus client (a beacon node API URL)" in info.value.problems


def gowaku_node(fixture_node):
    """go-waku without RLN (cmd/waku/server/rest): /health is 501, /debug/v1/info lists the addresses,
    /admin/v1/peers (--rest-admin) gives one entry per peer with protocol names and `connected`."""
    node = fixture_node()
    node.set_json("/health", "Non RLN healthcheck is not implemented", status=501)
    node.set_json("/debug/v1/info", fixture_json("waku_debug_v1_info.json"))
    node.set_json("/admin/v1/peers", [
        {"id": "16Uiu2HAkvWiyFsgRhuJEb9JfjYxEkoHLgnUQmr1N5mKWnYjxYRVm", "multiaddrs": ["/ip4/10.0.1.5/tcp/60000"],
         "protocols": ["/vac/waku/relay/2.0.0"], "connected": True, "pubsubTopics": ["/waku/2/rs/66/0"]},
        {"id": "16Uiu2HAm2SeSmBDHvgBwfLZb3SYX8kmdH6Ue5MVKdQZLzdKWKXsL", "multiaddrs": ["/ip4/10.0.1.6/tcp/60000"],
         "protocols": ["/vac/waku/relay/2.0.0"], "connected": False, "pubsubTopics": None}])
    return node


def test_gowaku_without_rln_is_ready_by_its_addresses_and_counts_connected_peers(fixture_node, start_service):
    node = gowaku_node(fixture_node)
    service = start_service({"adapter": "waku", "node": {"url": node.url}, "min_peers": 1})
    status, doc = service.get("/health?verbose")
    assert status == 200, doc
    assert doc["checks"]["peers"]["value"] == 1
    assert doc["node"]["nodeHealth"] == "no health report without RLN; /debug/v1/info lists addresses"
    node.set_json("/debug/v1/info", {})  # go-waku leaves out empty fields (omitempty)
    doc = service.assert_flips(503, "go-waku lists no address")
    assert "lists no address" in doc["checks"]["not_syncing"]["reason"]


def test_a_slow_waku_node_is_served_from_its_last_good_poll_for_two_polls_only(fixture_node, start_service):
    node = waku_node(fixture_node)
    service = start_service({"adapter": "waku", "node": {"url": node.url}, "min_peers": 0})
    service.wait_status(200)
    after = service.polls()
    node.delay = 1.0  # every answer now outlasts timeout_s (0.4 s)
    _seen, doc = service.wait_status(503, timeout=20)
    flipped = service.transitions()[-1]
    # Two timed-out polls are tolerated, the third fails (one more if a poll was under way at the change).
    assert flipped[0] == "unhealthy" and after + 3 <= flipped[1] <= after + 4, (after, service.transitions())
    assert doc["checks"]["node_answers"]["reason"].endswith("timed out (3 polls in a row)"), doc["checks"]["node_answers"]
    node.delay = 0.0
    service.assert_flips(200, "the node answers in time again")


def test_without_tolerance_a_slow_node_fails_at_the_next_poll(fixture_node, start_service):
    node = waku_node(fixture_node)
    service = start_service({"adapter": "waku", "node": {"url": node.url}, "min_peers": 0, "slow_polls_tolerated": 0})
    service.wait_status(200)
    node.delay = 1.0
    service.assert_flips(503, "a timed-out poll with slow_polls_tolerated 0")
