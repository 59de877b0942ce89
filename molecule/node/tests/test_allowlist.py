"""validator_allowlist on node-ltc-private: litecoind's P2P port admits new connections only from the
validator the chain lists (node-ltc-public, by name), refreshed by a timer; others are dropped."""
import json

import testinfra
from chainops_testlib import podman_hosts

testinfra_hosts = podman_hosts("node-ltc-private")
DIAL = "python3 -c \"import socket; socket.create_connection(('node-ltc-private', 19444), timeout=3).close()\""


def address_of(name):
    return testinfra.get_host("podman://" + name).check_output("hostname -I").split()[0]


def test_the_table_admits_the_listed_validator_resolved_by_name(host):
    listing = json.loads(host.check_output("nft -j list set inet chainops_allowlist admitted4"))
    [entry] = [item["set"] for item in listing["nftables"] if "set" in item]
    assert entry.get("elem") == [address_of("node-ltc-public")]
    state = json.loads(host.file("/var/lib/chainops/allowlist/state.json").content_string)
    assert [(v["name"], v["endpoint"]) for v in state["validators"]] == [("banana", "node-ltc-public:19444")]


def test_only_the_listed_validator_reaches_the_p2p_port():
    assert testinfra.get_host("podman://node-ltc-public").run(DIAL).rc == 0
    blocked = testinfra.get_host("podman://node-anvil").run(DIAL)
    assert blocked.rc != 0 and "timed out" in blocked.stderr, blocked.stderr


def test_the_timer_refreshes_and_the_service_runs_as_installed(host):
    assert host.service("chainops-allowlist.timer").is_running and host.service("chainops-allowlist.timer").is_enabled
    assert host.service("chainops-allowlist.service").is_enabled
    run = host.run("systemctl start chainops-allowlist.service && systemctl show -p Result --value chainops-allowlist.service")
    assert run.rc == 0 and run.stdout.strip() == "success", run.stdout + run.stderr
    journal = host.check_output("journalctl -u chainops-allowlist.service -n 5 --no-pager -o cat")
    assert '"message": "unchanged: 1 addresses of 1 validators from http://node-anvil:9000/api/v3' in journal
