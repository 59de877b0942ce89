"""plugin_utils/topology_graph.py: what the topology picture shows, and what it must never show."""
from __future__ import annotations

import shutil
import subprocess

from ansible_collections.chainops.validator.plugins.plugin_utils.topology_graph import (
    balancers_from_plan,
    hosts_from_inventory,
    topology_dot,
)

HOSTVARS = {
    "ltc-validator": {"topology_role": "validator", "topology_cluster": "c1", "topology_chain": "litecoin", "topology_network": "regtest",
                      "topology_overlay_address": "10.99.0.1", "wireguard_sentry_p2p_ports": [{"port": 19444, "protocol": "tcp"}]},
    "ltc-standby": {"topology_role": "standby", "topology_cluster": "c1", "topology_overlay_address": "10.99.0.2"},
    "ltc-sentry-1": {"topology_role": "sentry", "topology_cluster": "c1", "topology_overlay_address": "10.99.0.3",
                     "wireguard_sentry_p2p_ports": [{"port": 19444, "protocol": "tcp"}]},
    "ltc-sentry-2": {"topology_role": "sentry", "topology_cluster": "c1", "topology_overlay_address": "10.99.0.4",
                     "wireguard_sentry_p2p_ports": [{"port": 19444, "protocol": "tcp"}]},
    "rpc-1": {"topology_role": "rpc", "topology_fleet": "ltc-rpc", "topology_p2p_port": 19500, "topology_p2p_protocol": "tcp",
              "topology_dns_name": "rpc-1.example.org"},
    "internet": {},
}
PLAN = {"load_balancers": [{"name": "ltc-rpc-lb", "fleet": "ltc-rpc", "protocol": "TCP", "port": 19443,
                            "target_group": {"port": 19443}}]}


def dot():
    return topology_dot(hosts_from_inventory(sorted(HOSTVARS), HOSTVARS), balancers_from_plan(PLAN), "lab")


def test_clusters_fleets_links_and_the_load_balancer():
    text = dot()
    assert 'subgraph cluster_c_c1 {' in text and 'label="cluster c1 (litecoin regtest)"' in text
    assert 'subgraph cluster_f_ltc_rpc {' in text and 'label="fleet ltc-rpc (rpc)"' in text
    for sentry in ("ltc-sentry-1", "ltc-sentry-2"):
        for hub in ("ltc-validator", "ltc-standby"):
            assert '"%s" -> "%s" [dir=both, style=dashed, color="#3c78d8", label="WireGuard"];' % (sentry, hub) in text
        assert 'internet -> "%s" [label="P2P 19444/tcp"];' % sentry in text
    assert 'internet -> "rpc-1" [label="P2P 19500/tcp"];' in text
    assert 'internet -> "ltc-rpc-lb" [label=":19443"];' in text and '"ltc-rpc-lb" -> "rpc-1" [label=":19443, /health"' in text
    assert "overlay 10.99.0.3" in text and "rpc-1.example.org" in text
    assert '"internet" [' not in text  # a host without a topology role is not drawn as a node


def test_the_internet_never_reaches_a_validator_or_a_standby():
    text = dot()
    for hub in ("ltc-validator", "ltc-standby"):
        assert 'internet -> "%s"' % hub not in text


def test_graphviz_draws_it():
    tool = shutil.which("dot")
    assert tool, "Graphviz's dot is missing: make system-deps (apt-get install graphviz)"
    svg = subprocess.run([tool, "-Tsvg"], input=dot(), capture_output=True, text=True, check=True).stdout
    assert svg.lstrip().startswith("<?xml") and "WireGuard" in svg
    # Graphviz writes "-" in names as &#45;: five hosts, the internet and the load balancer are drawn.
    assert svg.count('class="node"') == 7 and "ltc&#45;validator" in svg


def test_names_are_quoted():
    text = topology_dot([{"name": 'odd"name', "role": "rpc", "fleet": "f", "p2p_ports": []}])
    assert '"odd\\"name"' in text
