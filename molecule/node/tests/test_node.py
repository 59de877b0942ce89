"""node role: litecoind (apt), anvil (release archive + sha256) and EthereumJS (npm bundle) on real
systemd hosts; tests/test_ethereumjs.py runs the EthereumJS network itself."""
import json
import time

import testinfra
from chainops_testlib import json_rpc, listeners, podman_hosts, recap, run_playbook, unit_properties

testinfra_hosts = podman_hosts("node-ltc-private", "node-ltc-public", "node-anvil", "node-ej-sealer", "node-ej-follower")

SERVICES = {"node-ltc-private": "litecoind", "node-ltc-public": "litecoind", "node-anvil": "anvil",
            "node-ej-sealer": "ethereumjs", "node-ej-follower": "ethereumjs"}
RPC_PORTS = {"litecoind": 19443, "anvil": 8545, "ethereumjs": 8545}
LTC_CLI = "litecoin-cli -conf=/etc/chainops/litecoind/rpc.conf -datadir=/data/litecoind -chain=regtest -rpcport=19443"
# Mine to an anyone-can-spend script: no wallet needed on the node.
MINE = " generatetodescriptor 25 'raw(51)'"


def service_of(host):
    return SERVICES[host.backend.name]


def test_service_running_and_enabled(host):
    service = host.service(service_of(host))
    assert service.is_running
    assert service.is_enabled


def test_unit_is_hardened(host):
    unit = service_of(host)
    props = unit_properties(
        host, unit, "NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome", "LimitNOFILE",
        "Restart", "User", "CapabilityBoundingSet", "ReadWritePaths",
    )
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["PrivateTmp"] == "yes"
    assert props["ProtectHome"] == "yes"
    assert props["LimitNOFILE"] == "65536"
    assert props["Restart"] == "on-failure"
    assert props["User"] == unit
    assert props["CapabilityBoundingSet"] == ""
    assert props["ReadWritePaths"] == "/data/" + unit
    # systemd's own exposure score: 10 is unprotected; "OK" (below 5) is what a hardened daemon gets.
    score_line = host.check_output("systemd-analyze security %s --no-pager | tail -n1", unit)
    score = float(score_line.split("exposure level for")[1].split(":")[1].split()[0])
    assert score < 5.0, score_line


def test_rpc_listens_only_on_loopback(host):
    port = RPC_PORTS[service_of(host)]
    addresses = [address for address, listen_port in listeners(host) if listen_port == port]
    assert addresses, "nothing listens on the RPC port %d" % port
    assert set(addresses) <= {"127.0.0.1", "::1"}, addresses


def test_data_lives_on_the_data_volume(host):
    unit = service_of(host)
    data_dir = host.file("/data/" + unit)
    assert data_dir.is_directory
    assert data_dir.user == unit and data_dir.mode == 0o750
    assert host.run("mountpoint -q /data").rc == 0


def test_secrets_are_private(host):
    unit = service_of(host)
    if unit == "litecoind":
        secrets = ["/etc/chainops/litecoind/rpc.conf"]
        readable_by_daemon = host.file("/etc/chainops/litecoind/rpcauth.conf")
        assert readable_by_daemon.mode == 0o640 and readable_by_daemon.group == "litecoind"
    elif unit == "ethereumjs":
        secrets = ["/data/ethereumjs/nodekey"] + (["/data/ethereumjs/signer.key"] if host.backend.name == "node-ej-sealer" else [])
        assert host.file("/data/ethereumjs/devnet/config").mode == 0o700  # the client's store of the node key
    else:
        secrets = ["/data/anvil/accounts.json"]
    for path in secrets:
        secret = host.file(path)
        assert secret.exists, path
        assert secret.mode == 0o600, "%s is %o" % (path, secret.mode)
        assert secret.user == unit


def test_rpc_answers(host):
    if service_of(host) == "anvil":
        assert int(json_rpc(host, "http://127.0.0.1:8545/", "eth_blockNumber"), 16) >= 0
        assert host.file("/opt/chainops/anvil/1.7.1/anvil").mode == 0o755
    elif service_of(host) == "ethereumjs":
        assert json_rpc(host, "http://127.0.0.1:8545/", "web3_clientVersion").startswith("EthereumJS/0.10.5")
        assert int(json_rpc(host, "http://127.0.0.1:8545/", "net_version")) == 1337
    else:
        info = json.loads(host.check_output(LTC_CLI + " getblockchaininfo"))
        assert info["chain"] == "regtest"


def test_identity_is_persisted(host):
    identity_file = host.file("/etc/chainops/node-identity.json")
    if service_of(host) == "anvil":
        assert not identity_file.exists  # anvil has no P2P
        return
    identity = json.loads(identity_file.content_string)
    if service_of(host) == "ethereumjs":  # an IPv4 address: EthereumJS reads no host names in enodes
        assert identity["address"] == host.interface("eth0").addresses[0] and identity["port"] == 30303
    else:
        assert identity["address"] == host.backend.name and identity["port"] == 19444
    assert identity_file.mode == 0o644


def test_private_node_peers_only_with_its_peer_which_syncs_its_blocks():
    private = testinfra.get_host("podman://node-ltc-private")
    public = testinfra.get_host("podman://node-ltc-public")
    peers = json.loads(private.check_output(LTC_CLI + " getpeerinfo"))
    # Exactly one connection, outbound, to the configured peer (connect= by its name).
    assert [peer["addr"] for peer in peers] == ["node-ltc-public:19444"]
    assert all(not peer["inbound"] for peer in peers)
    config = private.file("/etc/chainops/litecoind/litecoin.conf").content_string
    assert "connect=node-ltc-public:19444" in config and "discover=0" in config

    start = json.loads(private.check_output(LTC_CLI + " getblockchaininfo"))["blocks"]
    private.check_output(LTC_CLI + MINE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if json.loads(public.check_output(LTC_CLI + " getblockchaininfo"))["blocks"] == start + 25:
            break
        time.sleep(0.5)
    tips = [json.loads(node.check_output(LTC_CLI + " getblockchaininfo")) for node in (private, public)]
    assert tips[1]["blocks"] == start + 25
    assert tips[0]["bestblockhash"] == tips[1]["bestblockhash"]


def test_check_mode_on_converged_hosts_changes_nothing():
    result = run_playbook("converge.yml", "--check")
    counters = recap(result.stdout)
    assert set(counters) == set(SERVICES)
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counters.values()), counters


def test_secrets_never_appear_in_verbose_output():
    private = testinfra.get_host("podman://node-ltc-private")
    password = private.check_output("sed -n 's/^rpcpassword=//p' /etc/chainops/litecoind/rpc.conf").strip()
    rpcauth = private.check_output("sed -n 's/^rpcauth=//p' /etc/chainops/litecoind/rpcauth.conf").strip()
    assert len(password) > 20 and rpcauth
    # EthereumJS: each node's devp2p key, and the sealer's signer key (given in node_secrets).
    sealer, follower = (testinfra.get_host("podman://" + name) for name in ("node-ej-sealer", "node-ej-follower"))
    keys = [node.check_output("cat /data/ethereumjs/nodekey") for node in (sealer, follower)]
    keys.append(sealer.check_output("cat /data/ethereumjs/signer.key"))
    assert all(len(key) == 64 for key in keys)
    result = run_playbook("converge.yml", "-vvv")
    assert all(c["changed"] == 0 for c in recap(result.stdout).values())
    for secret in [password, rpcauth.split("$")[-1]] + keys:
        assert secret not in result.stdout and secret not in result.stderr


def test_limit_run_reads_peer_identity_from_the_peer_host():
    # node-ltc-public is outside this play: its identity comes from its persisted file.
    result = run_playbook("converge.yml", "--limit", "node-ltc-private", "--diff")
    counters = recap(result.stdout)
    assert set(counters) == {"node-ltc-private"} and counters["node-ltc-private"]["changed"] == 0, counters
    assert "Read the persisted identities of peers outside this play" in result.stdout
    assert "ok: [node-ltc-private -> node-ltc-public]" in result.stdout
