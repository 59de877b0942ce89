"""wireguard_sentry: a validator reachable only through its sentries over WireGuard."""
import hashlib
import json
import time

import testinfra
from chainops_testlib import open_tcp_ports, podman_hosts, recap, run_playbook, wait_for

VALIDATOR, SENTRIES, PUBLIC = "tp-validator", ["tp-sentry-1", "tp-sentry-2"], "tp-public"
testinfra_hosts = podman_hosts(VALIDATOR, *SENTRIES)
CLI = "litecoin-cli -conf=/etc/chainops/litecoind/rpc.conf -datadir=/var/lib/litecoind -chain=regtest -rpcport=19443 "
MINE = "generatetodescriptor %d 'raw(51)'"


def get(name):
    return testinfra.get_host("podman://" + name)


def chain(name):
    return json.loads(get(name).check_output(CLI + "getblockchaininfo"))


def state(name):
    return json.loads(get(name).file("/etc/chainops/wireguard.json").content_string)


def wg_peers(name):
    """{public_key: latest_handshake_epoch} from `wg show wg0 dump`."""
    lines = get(name).check_output("wg show wg0 dump").splitlines()[1:]
    return {line.split("\t")[0]: int(line.split("\t")[4]) for line in lines}


def ip_of(name):
    return get(name).check_output("hostname -I").split()[0]


def secrets_of(name):
    """The private key and every preshared key on a host (to grep output for them)."""
    return get(name).check_output("cat /etc/wireguard/wg0.key /etc/wireguard/psk/*.psk").split()


def psk_digest(name, peer):
    """sha256 of the preshared key `name` keeps for `peer` (compared, never printed)."""
    return hashlib.sha256(get(name).file("/etc/wireguard/psk/%s.psk" % peer).content_string.strip().encode()).hexdigest()


def live_psk_digests(name):
    """{peer public key: sha256 of the preshared key the live interface uses}."""
    lines = get(name).check_output("wg show wg0 preshared-keys").splitlines()
    return {key: hashlib.sha256(psk.encode()).hexdigest() for key, psk in (line.split("\t") for line in lines)}


def tunnel_started_at(name):
    return get(name).check_output("systemctl show wg-quick@wg0 -p ActiveEnterTimestampMonotonic")


def test_private_keys_are_root_only(host):
    key = host.file("/etc/wireguard/wg0.key")
    assert key.exists and key.user == "root" and key.mode == 0o600
    assert host.file("/etc/wireguard/wg0.conf").mode == 0o600
    assert "PrivateKey" not in host.file("/etc/wireguard/wg0.conf").content_string


def test_overlay_addresses_are_distinct_and_in_one_cidr():
    states = {name: state(name) for name in [VALIDATOR] + SENTRIES}
    assert len({s["address"] for s in states.values()}) == 3
    assert len({s["cidr"] for s in states.values()}) == 1
    assert states[VALIDATOR]["role"] == "validator"


def test_preshared_keys_are_per_pair_identical_on_both_ends_and_live():
    validator_live = live_psk_digests(VALIDATOR)
    digests = set()
    for name in SENTRIES:
        for host, peer in ((VALIDATOR, name), (name, VALIDATOR)):
            key = get(host).file("/etc/wireguard/psk/%s.psk" % peer)
            assert key.user == "root" and key.mode == 0o600, (host, peer)
        digest = psk_digest(VALIDATOR, name)
        assert digest == psk_digest(name, VALIDATOR), "the two ends of %s hold different keys" % name
        assert validator_live[state(name)["public_key"]] == digest, "validator's live key for %s" % name
        assert live_psk_digests(name)[state(VALIDATOR)["public_key"]] == digest, "%s's live key" % name
        digests.add(digest)
    assert len(digests) == len(SENTRIES)  # one key per pair
    assert "PresharedKey =" not in get(VALIDATOR).file("/etc/wireguard/wg0.conf").content_string


def test_validator_tunnels_to_exactly_its_sentries_with_recent_handshakes():
    expected = {state(name)["public_key"] for name in SENTRIES}
    wait_for(lambda: set(wg_peers(VALIDATOR)) == expected and all(time.time() - t < 180 for t in wg_peers(VALIDATOR).values()),
             message="handshakes with both sentries")
    allowed = get(VALIDATOR).check_output("wg show wg0 allowed-ips")
    for name in SENTRIES:
        assert "%s/32" % state(name)["address"] in allowed
    for name in SENTRIES:
        assert set(wg_peers(name)) == {state(VALIDATOR)["public_key"]}  # hub and spoke: no sentry-to-sentry tunnel
    assert "PersistentKeepalive" not in get(VALIDATOR).file("/etc/wireguard/wg0.conf").content_string


def test_blocks_mined_on_the_validator_reach_the_public_peer():
    start = chain(VALIDATOR)["blocks"]
    get(VALIDATOR).check_output(CLI + MINE % 20)
    wait_for(lambda: chain(PUBLIC)["blocks"] >= start + 20, message="public peer to sync")
    assert chain(PUBLIC)["bestblockhash"] == chain(VALIDATOR)["bestblockhash"]


def test_public_peer_never_meets_or_learns_the_validator():
    public = get(PUBLIC)
    validator_addresses = {state(VALIDATOR)["address"], ip_of(VALIDATOR), VALIDATOR}
    peers = json.loads(public.check_output(CLI + "getpeerinfo"))
    assert peers, "the public peer has no peers at all"
    for peer in peers:
        assert peer["addr"].rsplit(":", 1)[0] not in validator_addresses
    known = json.loads(public.check_output(CLI + "getnodeaddresses 0"))
    assert not {entry["address"] for entry in known} & validator_addresses
    # The validator's peers are exactly its sentries, over the overlay.
    validator_peers = {p["addr"].rsplit(":", 1)[0] for p in json.loads(get(VALIDATOR).check_output(CLI + "getpeerinfo"))}
    assert validator_peers <= {state(name)["address"] for name in SENTRIES}, validator_peers


def test_validator_has_no_open_tcp_port_from_outside():
    public = get(PUBLIC)
    assert open_tcp_ports(public, ip_of(VALIDATOR)) == []
    for name in SENTRIES:
        opened = open_tcp_ports(public, ip_of(name), 19400, 19500)
        assert opened == [19444], (name, opened)  # P2P open, RPC (19443) not
    # The validator's P2P port answers on the overlay, from a sentry.
    assert open_tcp_ports(get(SENTRIES[0]), state(VALIDATOR)["address"], 19443, 19444) == [19444]


def test_firewall_is_an_own_default_deny_table(host):
    ruleset = host.check_output("nft list table inet chainops")
    assert "policy drop" in ruleset and "192.0.2.0/24" in ruleset
    assert host.service("chainops-firewall").is_enabled


def test_validator_keeps_peering_through_the_other_sentry_when_one_stops():
    get(SENTRIES[0]).check_output("systemctl stop litecoind")
    try:
        start = chain(VALIDATOR)["blocks"]
        get(VALIDATOR).check_output(CLI + MINE % 5)
        wait_for(lambda: chain(PUBLIC)["blocks"] >= start + 5, message="blocks through the remaining sentry")
    finally:
        get(SENTRIES[0]).check_output("systemctl start litecoind")


def test_check_mode_changes_nothing():
    counters = recap(run_playbook("converge.yml", "--check").stdout)
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counters.values()), counters


def test_limit_run_on_one_sentry_keeps_every_tunnel():
    before = {name: tunnel_started_at(name) for name in [VALIDATOR] + SENTRIES}
    peers_before = wg_peers(VALIDATOR)
    counters = recap(run_playbook("converge.yml", "--limit", SENTRIES[0]).stdout)
    assert counters[SENTRIES[0]]["changed"] == 0, counters
    assert set(wg_peers(VALIDATOR)) == set(peers_before)
    assert set(wg_peers(SENTRIES[0])) == {state(VALIDATOR)["public_key"]}
    assert {name: tunnel_started_at(name) for name in [VALIDATOR] + SENTRIES} == before


def test_y_key_rotation_on_request_keeps_the_cluster_connected_and_prints_no_key():
    """One run for two checks (a converge is minutes): the rotation, at -vvv, prints neither the old
    private and preshared keys nor the new ones."""
    members = [VALIDATOR] + SENTRIES
    old_keys = {name: state(name)["public_key"] for name in members}
    old_psks = {name: psk_digest(VALIDATOR, name) for name in SENTRIES}
    old_secrets = [key for name in members for key in secrets_of(name)]
    assert len(old_secrets) == 3 + 2 * len(SENTRIES) and all(len(key) == 44 for key in old_secrets)
    rotated_at = time.time()
    result = run_playbook("converge.yml", "-vvv", "-e", "wireguard_sentry_rotate_keys=true")
    counters = recap(result.stdout)
    assert all(counters[name]["failed"] == 0 for name in members), counters
    new_keys = {name: state(name)["public_key"] for name in members}
    assert all(new_keys[name] != old_keys[name] for name in members)
    for name in SENTRIES:
        assert psk_digest(VALIDATOR, name) != old_psks[name]
        assert psk_digest(name, VALIDATOR) == psk_digest(VALIDATOR, name)
    new_secrets = [key for name in members for key in secrets_of(name)]
    assert not set(new_secrets) & set(old_secrets)
    for secret in old_secrets + new_secrets:
        assert secret not in result.stdout and secret not in result.stderr, "a key was printed"
    wait_for(lambda: set(wg_peers(VALIDATOR)) == {new_keys[name] for name in SENTRIES}
             and all(t >= rotated_at for t in wg_peers(VALIDATOR).values()),
             timeout=180, message="handshakes with the rotated keys")
    start = chain(VALIDATOR)["blocks"]
    get(VALIDATOR).check_output(CLI + MINE % 3)
    wait_for(lambda: chain(PUBLIC)["blocks"] >= start + 3, message="blocks after the rotation")


def test_zz_adding_a_third_sentry_renumbers_nobody():
    before = {name: state(name)["address"] for name in [VALIDATOR] + SENTRIES}
    started = tunnel_started_at(VALIDATOR)
    result = run_playbook("converge.yml", "-e", "chainops_sentry3_joins=true")
    assert {name: state(name)["address"] for name in [VALIDATOR] + SENTRIES} == before
    third = state("tp-sentry-3")
    assert third["address"] not in before.values()
    wait_for(lambda: third["public_key"] in wg_peers(VALIDATOR), message="validator to add the third sentry")
    assert len(wg_peers(VALIDATOR)) == 3
    assert tunnel_started_at(VALIDATOR) == started  # peers added live (syncconf), no restart
    assert recap(result.stdout)[VALIDATOR]["failed"] == 0
