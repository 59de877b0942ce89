"""Polykey seed nodes for real: node IDs derived from the recovery codes before the agents start and
equal to what the running agents say, a client that joins through the seed list, no mDNS, the client
service closed, a seed rebuilt from nothing that keeps its ID, and no secret in -vvv output."""
import json
import os
import subprocess

import testinfra
from chainops_testlib import podman_hosts, recap, run_playbook, wait_for

SEEDS, CLIENT = ["pk-seed-1", "pk-seed-2"], "pk-client"
testinfra_hosts = podman_hosts(*SEEDS, CLIENT)
DATA = "/var/lib/polykey-npm"
STATUS = "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:1316/status', timeout=3).read().decode())\""


def address(name):
    inspect = json.loads(subprocess.run(["podman", "container", "inspect", name], check=True, capture_output=True, text=True).stdout)
    return inspect[0]["NetworkSettings"]["Networks"]["chainops-polykey"]["IPAddress"]


def get(name):
    return testinfra.get_host("podman://" + name)


def status(name):
    return json.loads(get(name).check_output(STATUS))


def derived_id(name):
    return json.loads(get(name).file("/etc/chainops/node-identity.json").content_string)["id"]


def test_node_id_is_derived_before_start_and_is_the_running_agents(host):
    name = host.backend.get_hostname()
    running = json.loads(host.file(DATA + "/node/status.json").content_string)
    assert running["status"] == "LIVE"
    assert running["data"]["nodeId"] == derived_id(name)
    assert host.check_output("/opt/chainops/polykey-npm/1.15.1/polykey node-id --recovery-code-file %s/recovery-code", DATA) == derived_id(name)


def test_secrets_are_the_node_users_only(host):
    for secret in ("recovery-code", "password"):
        stat = host.file("%s/%s" % (DATA, secret))
        assert stat.user == "polykey-npm" and stat.mode == 0o600, secret


def test_client_joins_through_the_seed_list_and_the_graphs_hold_the_seeds():
    """The client, given the seed list only, connects to both seeds and its node graph holds them; each seed
    holds the client's connection and the other seed in its graph. (A seed adds a node that dialled it to its
    graph only sometimes, after a check of its own: not asserted.)"""
    seeds = {derived_id(name) for name in SEEDS}
    client = derived_id(CLIENT)
    expected = [(CLIENT, "connections", seeds), (CLIENT, "nodeGraph", seeds)]
    for name in SEEDS:
        expected += [(name, "connections", {client}), (name, "nodeGraph", seeds - {derived_id(name)})]
    for host, field, wanted in expected:
        last = {}

        def holds(host=host, field=field, wanted=wanted, last=last):  # pylint: disable=dangerous-default-value # last status, for the message
            last.update(status(host))
            return wanted <= set(last[field])
        try:
            wait_for(holds, timeout=120, message="%s's %s to hold %s" % (host, field, sorted(wanted)))
        except AssertionError as error:
            raise AssertionError("%s; last status %s" % (error, last)) from None


HEALTH = "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:9680/health', timeout=3)\""


def test_the_seeds_are_healthy_with_their_peers():
    for name in SEEDS:
        wait_for(lambda name=name: get(name).run(HEALTH).rc == 0, timeout=60, message="%s's /health" % name)


def test_no_mdns_and_the_client_service_closed_to_others(host):
    assert ":64023" not in host.check_output("ss -Hlun")
    listening = host.check_output("ss -Hltn")
    assert "127.0.0.1:1315" in listening and "127.0.0.1:1316" in listening  # client service, runner status: loopback
    name = host.backend.get_hostname()
    if name != CLIENT:
        probe = "python3 -c \"import socket; socket.create_connection(('%s', 1315), 2)\"" % address(name)
        assert get(CLIENT).run(probe).rc != 0


def test_check_mode_changes_nothing():
    counters = recap(run_playbook("converge.yml", "--check").stdout)
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counters.values()), counters


def test_z_a_seed_rebuilt_from_nothing_keeps_its_id_and_the_client_comes_back_to_it():
    """The container and its data are gone; the same recovery code gives the same node ID; the client,
    whose seed list did not change, reconnects. The rebuild runs at -vvv and prints no secret."""
    name, before, old_address = SEEDS[1], derived_id(SEEDS[1]), address(SEEDS[1])
    secrets = [get(name).check_output("cat %s/recovery-code" % DATA), get(name).check_output("cat %s/password" % DATA)]
    image = os.environ["CHAINOPS_TEST_IMAGE"]
    subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=True, capture_output=True)
    subprocess.run(["podman", "run", "-d", "--name", name, "--hostname", name, "--network", "chainops-polykey", "--ip", old_address,
                    "--systemd=always", "--cap-add=NET_ADMIN", image, "/sbin/init"], check=True, capture_output=True)
    wait_for(lambda: get(name).run("systemctl is-system-running").stdout.strip() in ("running", "degraded"), timeout=60,
             message="the rebuilt container to boot")
    result = run_playbook("converge.yml", "--limit", name, "-vvv")
    assert recap(result.stdout)[name]["failed"] == 0
    for secret in secrets:
        assert secret.strip() and secret.strip() not in result.stdout + result.stderr, "a secret was printed"
    assert derived_id(name) == before and status(name)["nodeId"] == before
    wait_for(lambda: before in status(CLIENT)["connections"], timeout=180, message="the client to reconnect to the rebuilt seed")
