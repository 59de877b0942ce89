"""`make lab` end to end, the topology side: the lab built by the real playbooks on moto and podman,
its WireGuard topology and firewall checked on the converged hosts, a second run and a check run that
change nothing, a --limit run, a key rotation and a third sentry joining. Tests run in file order on the
lab of tests/lab/conftest.py, which tests/lab/test_lab_operations.py then operates and removes."""
from __future__ import annotations

import json
import re
import subprocess
import time

from chainops_testlib import open_tcp_ports, open_tcp_ports_of, recap, wait_for
from labkit import HUBS, MEMBERS, PAIRS, SENTRIES, STANDBY, THIRD, VALIDATOR, CLI, FLEET, assert_refused_by_the_start_check, status_rows, world


def test_first_run_builds_the_topology_and_proves_the_validator_hidden(lab):
    out = lab.first.stdout
    for step in ("AWS stand-in", "provision", "instances", "site", "status"):
        assert re.search(r"==> \[lab [0-9:]+\] %s" % step, out), step
    rows = status_rows(out)
    assert set(rows) == {"internet", VALIDATOR, STANDBY, *SENTRIES, *FLEET}
    for host in SENTRIES + [VALIDATOR]:
        assert rows[host]["node"] == "active" and rows[host]["height"] == "200" and rows[host]["/health"] == "200", rows[host]
        assert rows[host]["wg"].startswith(("2/", "3/")), rows[host]
    assert rows[STANDBY]["node"] == "inactive"  # installed, never started by site.yml
    assert re.search(r"%s\s+validator\s+\S+\s+open: none\s+ok" % VALIDATOR, out)
    for host in SENTRIES:
        assert re.search(r"%s\s+sentry\s+\S+\s+open: 19444\s+ok" % host, out)
    assert "include a validator or standby address: no (ok)" in out
    # The picture next to the table: the cluster's WireGuard links, and no way in to a hub.
    assert "topology: %s/topology.svg" % lab.state in out
    graph = (lab.state / "topology.dot").read_text()
    for sentry in SENTRIES:
        assert '"%s" -> "%s" [dir=both' % (sentry, VALIDATOR) in graph
    assert 'internet -> "%s"' % VALIDATOR not in graph and 'internet -> "%s"' % STANDBY not in graph
    assert (lab.state / "topology.svg").read_text().rstrip().endswith("</svg>")
    # The signer holds the cluster's lease (token 1) in S3 and its token in /run; the standby has neither.
    lease = lab.lease()
    assert (lease["holder"], lease["token"]) == (VALIDATOR, 1), lease
    assert lab.signer_token(VALIDATOR) == {"cluster": "ltc", "holder": VALIDATOR, "token": 1, "expires_at": lease["expires_at"]}
    assert lab.signer_token(STANDBY) is None
    # Signing nodes are started by the signer role only, never at boot.
    assert lab.on(VALIDATOR, "systemctl", "is-enabled", "litecoind", check=False) == "disabled"


def test_the_standby_started_by_hand_refuses_without_the_lease(lab):
    subprocess.run(["podman", "exec", "%s-%s" % (lab.name, STANDBY), "systemctl", "start", "litecoind"],
                   capture_output=True, text=True, timeout=120, check=False)
    assert_refused_by_the_start_check(lab, STANDBY)


# The WireGuard topology, checked on the converged lab (what molecule/topology used to converge on its own).


def test_private_keys_are_root_only(lab):
    for name in MEMBERS:
        host = lab.host(name)
        key = host.file("/etc/wireguard/wg0.key")
        assert key.exists and key.user == "root" and key.mode == 0o600, name
        assert host.file("/etc/wireguard/wg0.conf").mode == 0o600, name
        assert "PrivateKey" not in host.file("/etc/wireguard/wg0.conf").content_string, name


def test_overlay_addresses_are_distinct_and_in_one_cidr(lab):
    states = {name: lab.wg_state(name) for name in MEMBERS}
    assert len({s["address"] for s in states.values()}) == len(MEMBERS)
    assert len({s["cidr"] for s in states.values()}) == 1
    assert states[VALIDATOR]["role"] == "validator" and states[STANDBY]["role"] == "standby"


def test_preshared_keys_are_per_pair_identical_on_both_ends_and_live(lab):
    digests = set()
    for one, other in PAIRS:
        for host, peer in ((one, other), (other, one)):
            key = lab.host(host).file("/etc/wireguard/psk/%s.psk" % peer)
            assert key.user == "root" and key.mode == 0o600, (host, peer)
        digest = lab.psk_digest(one, other)
        assert digest == lab.psk_digest(other, one), "the two ends of %s-%s hold different keys" % (one, other)
        assert lab.live_psk_digests(one)[lab.wg_state(other)["public_key"]] == digest, "%s's live key for %s" % (one, other)
        assert lab.live_psk_digests(other)[lab.wg_state(one)["public_key"]] == digest, "%s's live key for %s" % (other, one)
        digests.add(digest)
    assert len(digests) == len(PAIRS)  # one key per pair
    for name in MEMBERS:
        assert "PresharedKey =" not in lab.on(name, "cat", "/etc/wireguard/wg0.conf")


def test_hubs_tunnel_to_exactly_their_sentries_with_recent_handshakes(lab):
    sentry_keys = {lab.wg_state(name)["public_key"] for name in SENTRIES}
    for hub, other in ((VALIDATOR, STANDBY), (STANDBY, VALIDATOR)):
        # A hub's peers: its sentries, and the other hub of the cluster.
        assert set(lab.wg_peers(hub)) == sentry_keys | {lab.wg_state(other)["public_key"]}, hub
    wait_for(lambda: lab.sentry_handshakes_since(VALIDATOR, time.time() - 180), message="the validator's handshakes with both sentries")
    allowed = lab.on(VALIDATOR, "wg", "show", "wg0", "allowed-ips")
    for name in SENTRIES:
        assert "%s/32" % lab.wg_state(name)["address"] in allowed
        # hub and spoke: a sentry tunnels to the hubs only, never to another sentry
        assert set(lab.wg_peers(name)) == {lab.wg_state(hub)["public_key"] for hub in HUBS}, name
    assert "PersistentKeepalive" not in lab.on(VALIDATOR, "cat", "/etc/wireguard/wg0.conf")


def test_firewall_is_an_own_default_deny_table(lab):
    # SSH from the lab's admin network only: the machine the lab runs on (nft lists a /32 as the address).
    admin = world(lab)["lab_admin_cidr"].removesuffix("/32")
    for name in MEMBERS:
        ruleset = lab.on(name, "nft", "list", "table", "inet", "chainops")
        assert "policy drop" in ruleset and "ip saddr %s tcp dport 22 accept" % admin in ruleset, name
        assert lab.on(name, "systemctl", "is-enabled", "chainops-firewall") == "enabled", name


def test_no_tcp_port_of_a_hub_answers_the_internet(lab):
    internet = lab.host("internet")
    # Both hubs in one scan: each of its probes of a dropped port waits its timeout.
    assert open_tcp_ports_of(internet, {lab.ip_of(hub): lab.listening(hub) for hub in HUBS}) == {lab.ip_of(hub): [] for hub in HUBS}
    for name in SENTRIES:
        assert open_tcp_ports(internet, lab.ip_of(name), 19400, 19500, lab.listening(name)) == [19444], name  # P2P open, RPC (19443) not
    # The validator's P2P port answers on the overlay, from a sentry.
    assert open_tcp_ports(lab.host(SENTRIES[0]), lab.wg_state(VALIDATOR)["address"], 19443, 19444, lab.listening(VALIDATOR)) == [19444]


def test_validator_sees_blocks_only_through_its_sentries(lab):
    start = lab.height(VALIDATOR)
    lab.on("internet", *CLI, "generatetodescriptor", "5", "raw(51)")
    wait_for(lambda: lab.height(VALIDATOR) >= start + 5, message="the validator to get the internet's blocks")
    peers = {p["addr"].rsplit(":", 1)[0] for p in json.loads(lab.on(VALIDATOR, *CLI, "getpeerinfo"))}
    overlay = {json.loads(lab.on(h, "cat", "/etc/chainops/wireguard.json"))["address"] for h in SENTRIES}
    assert peers and peers <= overlay, (peers, overlay)


def test_blocks_mined_on_the_validator_reach_the_internet_which_never_learns_it(lab):
    start = lab.chain(VALIDATOR)["blocks"]
    lab.mine(VALIDATOR, 20)
    wait_for(lambda: lab.chain("internet")["blocks"] >= start + 20, message="the internet to get the validator's blocks")
    assert lab.chain("internet")["bestblockhash"] == lab.chain(VALIDATOR)["bestblockhash"]
    hidden = {lab.ip_of(hub) for hub in HUBS} | {lab.wg_state(hub)["address"] for hub in HUBS} | set(HUBS)
    peers = json.loads(lab.on("internet", *CLI, "getpeerinfo"))
    assert peers and not {p["addr"].rsplit(":", 1)[0] for p in peers} & hidden
    known = json.loads(lab.on("internet", *CLI, "getnodeaddresses", "0"))
    assert not {entry["address"] for entry in known} & hidden


def test_validator_keeps_peering_through_the_other_sentry_when_one_stops(lab):
    lab.on(SENTRIES[0], "systemctl", "stop", "litecoind")
    try:
        start = lab.chain(VALIDATOR)["blocks"]
        lab.mine(VALIDATOR, 5)
        wait_for(lambda: lab.chain("internet")["blocks"] >= start + 5, message="blocks through the remaining sentry")
    finally:
        lab.on(SENTRIES[0], "systemctl", "start", "litecoind")
    wait_for(lambda: lab.health(SENTRIES[0]) == 200, timeout=120, message="the restarted sentry's /health")


def test_second_run_is_a_no_op(lab):
    proc = lab.up()
    assert "changed tasks in this run: 0" in proc.stdout, proc.stdout[-4000:]


def test_check_mode_on_the_converged_lab_changes_nothing(lab):
    proc = lab.playbook("site.yml", "--check")
    assert all(v["changed"] == 0 and v["failed"] == 0 for v in recap(proc.stdout).values()), proc.stdout[-4000:]


def test_limit_run_on_one_sentry_keeps_every_tunnel(lab):
    before = {name: lab.tunnel_started_at(name) for name in MEMBERS}
    peers_before = lab.wg_peers(VALIDATOR)
    proc = lab.playbook("site.yml", "--limit", SENTRIES[0])
    assert recap(proc.stdout)[SENTRIES[0]]["changed"] == 0, proc.stdout[-3000:]
    assert set(lab.wg_peers(VALIDATOR)) == set(peers_before)
    assert set(lab.wg_peers(SENTRIES[0])) == {lab.wg_state(hub)["public_key"] for hub in HUBS}
    assert {name: lab.tunnel_started_at(name) for name in MEMBERS} == before


def test_key_rotation_keeps_the_cluster_connected_and_prints_no_key(lab):
    """One site run for two checks: the rotation, at -vvv, prints neither the old private and preshared
    keys nor the new ones. Limited to the cluster, as an operator rotates one cluster's keys."""
    old_keys = {name: lab.wg_state(name)["public_key"] for name in MEMBERS}
    old_psks = {pair: lab.psk_digest(*pair) for pair in PAIRS}
    old_secrets = [key for name in MEMBERS for key in lab.secrets_of(name)]
    assert len(old_secrets) == len(MEMBERS) + 2 * len(PAIRS) and all(len(key) == 44 for key in old_secrets)
    rotated_at = time.time()
    proc = lab.playbook("site.yml", "--limit", "cluster_ltc", "-vvv", "-e", "wireguard_sentry_rotate_keys=true")
    assert set(recap(proc.stdout)) == set(MEMBERS), proc.stdout[-3000:]
    new_keys = {name: lab.wg_state(name)["public_key"] for name in MEMBERS}
    assert all(new_keys[name] != old_keys[name] for name in MEMBERS)
    for (one, other), digest in old_psks.items():
        assert lab.psk_digest(one, other) != digest and lab.psk_digest(other, one) == lab.psk_digest(one, other)
    new_secrets = [key for name in MEMBERS for key in lab.secrets_of(name)]
    assert not set(new_secrets) & set(old_secrets)
    for secret in old_secrets + new_secrets:
        assert secret not in proc.stdout and secret not in proc.stderr, "a key was printed"
    wait_for(lambda: set(lab.wg_peers(VALIDATOR)) == {new_keys[name] for name in SENTRIES + [STANDBY]}
             and lab.sentry_handshakes_since(VALIDATOR, rotated_at),
             timeout=180, message="handshakes with the rotated keys")
    start = lab.chain(VALIDATOR)["blocks"]
    lab.mine(VALIDATOR, 3)
    wait_for(lambda: lab.chain("internet")["blocks"] >= start + 3, message="blocks after the rotation")


def test_a_third_sentry_joins_and_nobody_is_renumbered(lab):
    """Scale-out as an operator does it: provision one more sentry, then the same `make lab` path."""
    signer = VALIDATOR
    before = {name: lab.wg_state(name)["address"] for name in MEMBERS}
    started = lab.tunnel_started_at(signer)
    proc = lab.up(LAB_SENTRY_COUNT="3")
    assert recap(proc.stdout)[THIRD]["failed"] == 0
    assert {name: lab.wg_state(name)["address"] for name in MEMBERS} == before
    third = lab.wg_state(THIRD)
    assert third["address"] not in before.values() and third["role"] == "sentry"
    wait_for(lambda: third["public_key"] in lab.wg_peers(signer), message="the signer to add the third sentry")
    assert len(lab.wg_peers(signer)) == 4  # three sentries and the other hub
    assert lab.tunnel_started_at(signer) == started  # peers added live (syncconf), no restart
    rows = status_rows(proc.stdout)
    assert rows[THIRD]["node"] == "active" and rows[THIRD]["/health"] == "200", rows[THIRD]
    assert re.search(r"%s\s+sentry\s+\S+\s+open: 19444\s+ok" % THIRD, proc.stdout)
