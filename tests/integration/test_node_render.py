"""Every shipped node profile renders its config and systemd unit, in every node mode.

Rendered units pass `systemd-analyze verify`. litecoind's and anvil's binaries are real
(Debian package; the release archive the tests fetch). The other clients cannot be installed
here, so their binary path is a stub executable: see docs/profiles.md.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from playbook_runner import CACHE_DIR, REPO_ROOT, ansible_playbook

PROFILE_DIR = REPO_ROOT / "roles" / "node" / "files" / "profiles"
PROFILES = sorted(path.stem for path in PROFILE_DIR.glob("*.yml"))
RUNS_HERE = {"litecoind", "anvil"}
MODES = ("standalone", "private", "sentry")
PEERS = [{"address": "10.77.0.2", "port": 30999, "id": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}]
PRIVATE_PEERS = [{"address": "10.77.0.9", "port": 30998, "id": "ffeeddccbbaa99887766554433221100ffeeddcc"}]
SIGNER = "0x" + "ab" * 20
# Settings one profile needs besides the common ones: the private network EthereumJS runs (clique, one signer).
CONFIG = {"ethereumjs": {"genesis": {
    "config": {"chainId": 1337, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0, "byzantiumBlock": 0,
               "constantinopleBlock": 0, "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
               "clique": {"period": 2, "epoch": 30000}},
    "difficulty": "0x1", "gasLimit": "0x1c9c380", "extraData": "0x" + "00" * 32 + SIGNER[2:] + "00" * 65,
    "alloc": {SIGNER: {"balance": "0x10000000000000000000"}}}}}

RENDER_PLAYBOOK = """
- name: Render every profile in every mode
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.include_role:
        name: chainops.validator.node
        tasks_from: render
      vars:
        node_profile: "{{ case.profile }}"
        node_mode: "{{ case.mode }}"
        node_peers: "{{ case.peers }}"
        node_private_peers: "{{ case.private_peers }}"
        node_install_dir: "{{ case.install_dir }}"
        node_render_dest: "{{ case.dest }}"
        node_config: "{{ {'moniker': 'test-node', 'chain_id': 'test-1', 'daemon': 'gaiad', 'checkpoint_sync_url': 'https://beacon.example.org'}
                         | combine(case.config) }}"
      loop: "{{ cases }}"
      loop_control:
        loop_var: case
"""


def render(base: Path, cases: list[dict]):
    """Run RENDER_PLAYBOOK over ``cases`` (profile, mode, peers, private_peers, config, install_dir, dest)."""
    (base / "cases.json").write_text(json.dumps({"cases": cases}))
    (base / "render.yml").write_text(RENDER_PLAYBOOK)
    return ansible_playbook(base / "render.yml", "-i", "localhost,", "-c", "local", "-e", "@%s" % (base / "cases.json"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    base = tmp_path_factory.mktemp("render")
    cases = []
    for profile in PROFILES:
        for mode in MODES:
            cases.append({
                "profile": profile,
                "mode": mode,
                "peers": PEERS if mode == "private" else [],
                "private_peers": PRIVATE_PEERS if mode == "sentry" else [],
                "config": CONFIG.get(profile, {}),
                "install_dir": str(base / "install" / profile),
                "dest": str(base / profile / mode),
            })
    result = render(base, cases)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return base


def test_profiles_are_found():
    assert {"litecoind", "anvil"} <= set(PROFILES)


def provide_binary(profile: str, binary: Path) -> None:
    """Real binaries where the client runs here; a stub only where it cannot be installed."""
    if binary.exists():
        return
    if profile == "anvil":
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CACHE_DIR / "artifacts" / "bin" / "anvil", binary)
        return
    assert profile not in RUNS_HERE, "%s runs here: its binary %s must be real (run `make setup`)" % (profile, binary)
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\n# stub: %s cannot be installed in the test environment\nexit 0\n" % profile)
    binary.chmod(0o755)


def parse_config(path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".toml":
        tomllib.loads(text)
    elif path.suffix == ".json":
        json.loads(text)
    elif path.suffix in (".yml", ".yaml"):
        yaml.safe_load(text)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("profile", PROFILES)
def test_profile_renders_a_valid_unit_and_config(rendered, profile, mode):
    dest = rendered / profile / mode
    resolved = json.loads((dest / "profile.json").read_text())
    unit = dest / ("%s.service" % profile)
    text = unit.read_text()
    assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text
    assert "${" not in text, "unresolved placeholder in unit"
    provide_binary(profile, Path(resolved["binary"]))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stderr
    configs = [dest / item["dest"] for item in resolved.get("config_files", [])]
    for config in configs:
        assert config.exists(), config
        assert "${" not in config.read_text(), "unresolved placeholder in %s" % config
        parse_config(config)
    # Every port the profile declares binds RPC-like ports to loopback unless the profile says otherwise.
    rpc = resolved["ports"].get("rpc")
    if rpc:
        assert rpc["bind"] in ("127.0.0.1", "::1", "localhost"), rpc
    # Peering is wired: the peers (private mode) or the private peers (sentry mode) reach the config or command line.
    everything = text + "".join(config.read_text() for config in configs)
    wanted = PEERS if mode == "private" else PRIVATE_PEERS if mode == "sentry" else []
    if resolved.get("identity", {}).get("kind") != "none":
        for peer in wanted:
            assert peer["address"] in everything, "%s %s mode does not use peer %s" % (profile, mode, peer["address"])


def test_the_ethereum_pair_shares_one_engine_secret_over_loopback(rendered):
    """geth and Lighthouse on one host: the same JWT file as each unit's credential, the engine API on
    loopback at the port Lighthouse dials, every API of both on loopback, the checkpoint URL given."""
    geth, beacon = rendered / "geth" / "standalone", rendered / "lighthouse" / "standalone"
    geth_unit, beacon_unit = (geth / "geth.service").read_text(), (beacon / "lighthouse.service").read_text()
    jwt = "LoadCredential=engine-jwt:/etc/chainops/ethereum/engine-jwt.hex"
    assert jwt in geth_unit.splitlines() and jwt in beacon_unit.splitlines()
    assert "--authrpc.jwtsecret %d/engine-jwt" in geth_unit and "--execution-jwt %d/engine-jwt" in beacon_unit
    node = tomllib.loads((geth / "geth.toml").read_text())["Node"]
    assert "JWTSecret" not in node  # the credential, not a path readable by the node user
    flags = tomllib.loads((beacon / "lighthouse.toml").read_text())
    assert (node["AuthAddr"], node["AuthPort"]) == ("127.0.0.1", 8551)
    assert flags["execution-endpoint"] == "http://%s:%d" % (node["AuthAddr"], node["AuthPort"])
    assert node["HTTPHost"] == "127.0.0.1" and flags["http-address"] == "127.0.0.1" and flags["metrics-address"] == "127.0.0.1"
    assert (flags["network"], flags["checkpoint-sync-url"], flags["port"], flags["quic-port"]) == \
        ("mainnet", "https://beacon.example.org", "9000", "9001")
    resolved = json.loads((beacon / "profile.json").read_text())
    public = {(p["port"], p["protocol"]) for p in resolved["ports"].values() if p["bind"] not in ("127.0.0.1", "::1")}
    assert public == {(9000, "tcp"), (9000, "udp"), (9001, "udp")}


def ethereumjs_options(dest: Path) -> list[str]:
    return [line for line in (dest / "ethereumjs.options").read_text().splitlines() if line and not line.startswith("#")]


def test_ethereumjs_dials_exactly_its_peers_with_discovery_off_and_its_api_on_loopback(rendered):
    """Private mode: the peers as enode bootnodes (the only nodes it dials), discovery off, as many peer
    slots as peers; sentry mode: the private peers too; every mode: RPC on loopback, the genesis as given,
    and the unit starting the runner with the host's own node key file."""
    private, sentry = rendered / "ethereumjs" / "private", rendered / "ethereumjs" / "sentry"
    options = ethereumjs_options(private)
    assert "--bootnodes=enode://%s@%s:%d" % (PEERS[0]["id"], PEERS[0]["address"], PEERS[0]["port"]) in options
    assert {"--discV4=false", "--discDns=false", "--maxPeers=1", "--rpc", "--rpcAddr=127.0.0.1", "--rpcPort=8545", "--port=30303"} <= set(options)
    assert not any(option.startswith(("--mine", "--unlock")) for option in options)  # not the sealer
    assert "--bootnodes=enode://%s@%s:%d" % (PRIVATE_PEERS[0]["id"], PRIVATE_PEERS[0]["address"], PRIVATE_PEERS[0]["port"]) \
        in ethereumjs_options(sentry)
    resolved = json.loads((private / "profile.json").read_text())
    genesis = json.loads((private / "devnet.json").read_text())
    # As given, with geth's zero for what it leaves out (EthereumJS refuses a genesis without a nonce).
    assert genesis == dict({"nonce": "0x0", "timestamp": "0x0", "gasUsed": "0x0", "number": "0x0", "mixHash": "0x" + "0" * 64,
                            "parentHash": "0x" + "0" * 64, "coinbase": "0x" + "0" * 40}, **CONFIG["ethereumjs"]["genesis"])
    unit = (private / "ethereumjs.service").read_text()
    data_dir = resolved["service"]["exec_start"].split("--data-dir ")[1].split()[0]
    assert "start --node-key-file %s/nodekey --data-dir %s" % (data_dir, data_dir) in unit
    secrets = {secret["path"] for secret in resolved["secrets"]}
    assert {data_dir + "/nodekey", data_dir + "/devnet/config", data_dir + "/signer.key"} == secrets


def ethereumjs_case(base: Path, peers=(), **config) -> dict:
    """One private-mode ethereumjs render (RENDER_PLAYBOOK) with node_config ``config``."""
    return {"profile": "ethereumjs", "mode": "private", "peers": list(peers), "private_peers": [], "config": config,
            "install_dir": str(base / "install"), "dest": str(base / "out")}


@pytest.mark.parametrize("peers, config, wanted", [
    ((), {"genesis": dict(CONFIG["ethereumjs"]["genesis"], config={"chainId": 1337})},
     "node_config.genesis.config.clique ({period, epoch}) is missing"),
    ([{"address": "seed.example.org", "port": 30303, "id": "ab" * 64}], CONFIG["ethereumjs"],
     "peer address seed.example.org must be an IPv4 address"),
])
def test_ethereumjs_refuses_what_the_client_cannot_take(tmp_path, peers, config, wanted):
    result = render(tmp_path, [ethereumjs_case(tmp_path, peers, **config)])
    assert result.returncode != 0 and wanted in result.stdout, result.stdout[-3000:]


def test_ethereumjs_seals_with_the_signer_key_when_it_mines(tmp_path):
    result = render(tmp_path, [ethereumjs_case(tmp_path, mine=True, **CONFIG["ethereumjs"])])
    assert result.returncode == 0, result.stdout[-3000:]
    options = ethereumjs_options(tmp_path / "out")
    data_dir = json.loads((tmp_path / "out" / "profile.json").read_text())["service"]["exec_start"].split("--data-dir ")[1].split()[0]
    assert {"--mine", "--unlock=%s/signer.key" % data_dir, "--isSingleNode=true", "--maxPeers=0"} <= set(options)


def test_gowaku_settings_key_by_key_in_each_mode(rendered):
    """go-waku's TOML keys are its flag names (cmd/waku/flags.go): private nodes dial only their static
    peers and are in no discovery table; sentries discover and keep their validators as static nodes;
    the APIs stay on loopback; the key comes from the environment file, never the config."""
    def flags(mode):
        return tomllib.loads((rendered / "gowaku" / mode / "gowaku.toml").read_text())

    private, sentry, standalone = flags("private"), flags("sentry"), flags("standalone")
    peer = PEERS[0]
    assert private["staticnode"] == ["/ip4/%s/tcp/%d/p2p/%s" % (peer["address"], peer["port"], peer["id"])]
    assert (private["discv5-discovery"], private["peer-exchange"], private["dns-discovery"], private["websocket-support"]) == \
        (False, False, False, False)
    assert "ext-ip" not in private and "dns4-domain-name" not in private and "discv5-bootstrap-node" not in private
    assert private["max-connections"] == 10
    guarded = PRIVATE_PEERS[0]
    assert sentry["staticnode"] == ["/ip4/%s/tcp/%d/p2p/%s" % (guarded["address"], guarded["port"], guarded["id"])]
    assert (sentry["discv5-discovery"], sentry["peer-exchange"], sentry["websocket-support"], sentry["max-connections"]) == \
        (True, True, True, 50)
    assert "staticnode" not in standalone
    for mode in (private, sentry, standalone):
        assert (mode["address"], mode["tcp-port"], mode["websocket-port"], mode["discv5-udp-port"]) == ("0.0.0.0", 60000, 60001, 9000)
        assert (mode["relay"], mode["cluster-id"], mode["pubsub-topic"]) == (True, 66, ["/waku/2/rs/66/0"])
        assert (mode["rest"], mode["rest-address"], mode["rest-port"]) == (True, "127.0.0.1", 8645)
        assert (mode["metrics-server"], mode["metrics-server-address"], mode["metrics-server-port"]) == (True, "127.0.0.1", 8008)
        assert not {"nodekey", "key-file"} & set(mode)
    unit = (rendered / "gowaku" / "sentry" / "gowaku.service").read_text().splitlines()
    assert "EnvironmentFile=/var/lib/gowaku/nodekey.env" in unit
    assert "ExecStart=/usr/bin/waku --config-file=/etc/chainops/gowaku/gowaku.toml" in unit
    resolved = json.loads((rendered / "gowaku" / "sentry" / "profile.json").read_text())
    assert resolved["node_key"] == {"path": "/var/lib/gowaku/nodekey.env", "env": "WAKUNODE2_NODEKEY"}
    assert resolved["identity"]["announced"]["url"] == "http://127.0.0.1:8645/debug/v1/info"
    public = {(p["port"], p["protocol"]) for p in resolved["ports"].values() if p["bind"] not in ("127.0.0.1", "::1")}
    assert public == {(60000, "tcp"), (60001, "tcp"), (9000, "udp")}


@pytest.mark.parametrize("address, wanted", [
    ("203.0.113.7", {"ext-ip": "203.0.113.7"}),
    ("2001:db8::7", {"ext-multiaddr": ["/ip6/2001:db8::7/tcp/60000"]}),
    ("waku-1.example.org", {"dns4-domain-name": "waku-1.example.org"}),
])
def test_gowaku_announces_the_advertised_address_in_the_form_it_takes(tmp_path, address, wanted):
    case = {"profile": "gowaku", "mode": "standalone", "peers": [], "private_peers": [], "install_dir": str(tmp_path / "install"),
            "dest": str(tmp_path / "out"), "config": {}}
    (tmp_path / "advertise.json").write_text(json.dumps({"node_p2p_advertise_address": address}))
    (tmp_path / "cases.json").write_text(json.dumps({"cases": [case]}))
    (tmp_path / "render.yml").write_text(RENDER_PLAYBOOK)
    result = ansible_playbook(tmp_path / "render.yml", "-i", "localhost,", "-c", "local", "-e", "@%s" % (tmp_path / "cases.json"),
                              "-e", "@%s" % (tmp_path / "advertise.json"))
    assert result.returncode == 0, result.stdout[-3000:]
    flags = tomllib.loads((tmp_path / "out" / "gowaku.toml").read_text())
    assert {key: flags[key] for key in ("ext-ip", "ext-multiaddr", "dns4-domain-name") if key in flags} == wanted


def goloop_env(path: Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def test_goloop_settings_key_by_key_and_its_role_per_mode(rendered):
    """goloop reads GOLOOP_* variables (cmd/cli/server.go) and starts its engines as `python3 -m pyexec` from
    PATH and JAVAEE_BIN (service/eeproxy); the chain is joined with the P2P role of the mode: a P-Rep
    behind sentries validates (3), a sentry seeds (1), a citizen does neither (0)."""
    install = rendered / "install" / "goloop" / "v1.4.4"
    for mode, role, seeds in (("private", 3, [PEERS[0]]), ("sentry", 1, PRIVATE_PEERS), ("standalone", 0, [])):
        dest = rendered / "goloop" / mode
        env = goloop_env(dest / "goloop.env")
        assert env["GOLOOP_RPC_ADDR"] == '"127.0.0.1:9000"' and env["GOLOOP_P2P_LISTEN"] == '"0.0.0.0:7100"'
        assert env["GOLOOP_ENGINES"] == '"python,java"' and env["PYEE_VERIFY_PACKAGE"] == '"true"'
        assert env["PATH"] == '"%s/venv/bin:/usr/local/bin:/usr/bin:/bin"' % install
        assert env["JAVAEE_BIN"] == '"%s/execman/bin/execman"' % install
        assert (env["GOLOOP_KEY_STORE"], env["GOLOOP_KEY_SECRET"]) == ('"/var/lib/goloop/keystore.json"', '"/var/lib/goloop/keysecret"')
        join = (dest / "join-chain.sh").read_text()
        assert "--role %d " % role in join
        assert ("--seed seed-ctz.solidwallet.io:7100" in join) is (mode != "private")
        for peer in seeds:
            assert "--seed %s:%d" % (peer["address"], peer["port"]) in join
        check = subprocess.run(["sh", "-n", str(dest / "join-chain.sh")], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
        resolved = json.loads((dest / "profile.json").read_text())
        assert resolved["binary"] == "%s/bin/goloop" % install
        assert resolved["network_settings"]["references"] == [{"name": "ctz.solidwallet.io", "url": "https://ctz.solidwallet.io/api/v3"}]


@pytest.mark.parametrize("config, role", [({"prep": True}, 3), ({"prep": True, "role": 1}, 1), ({}, 0)])
def test_goloop_a_standalone_prep_validates(tmp_path, config, role):
    case = {"profile": "goloop", "mode": "standalone", "peers": [], "private_peers": [], "install_dir": str(tmp_path / "install"),
            "dest": str(tmp_path / "out"), "config": config}
    result = render(tmp_path, [case])
    assert result.returncode == 0, result.stdout[-3000:]
    assert "--role %d " % role in (tmp_path / "out" / "join-chain.sh").read_text()


def test_goloop_rpc_for_a_load_balancer_binds_where_it_is_told(tmp_path):
    """An endpoint behind a load balancer: node_ports opens the RPC on the host's addresses (the host
    firewall and security group admit only the load balancer's sources)."""
    (tmp_path / "ports.json").write_text(json.dumps({"node_ports": {"rpc": {"bind": "0.0.0.0"}}}))
    case = {"profile": "goloop", "mode": "standalone", "peers": [], "private_peers": [], "install_dir": str(tmp_path / "install"),
            "dest": str(tmp_path / "out"), "config": {}}
    (tmp_path / "cases.json").write_text(json.dumps({"cases": [case]}))
    (tmp_path / "render.yml").write_text(RENDER_PLAYBOOK)
    result = ansible_playbook(tmp_path / "render.yml", "-i", "localhost,", "-c", "local", "-e", "@%s" % (tmp_path / "cases.json"),
                              "-e", "@%s" % (tmp_path / "ports.json"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert goloop_env(tmp_path / "out" / "goloop.env")["GOLOOP_RPC_ADDR"] == '"0.0.0.0:9000"'


def test_radicle_identity_is_the_node_key_module_reading_the_private_key(rendered):
    """The Node ID comes from module node_key reading radicle's OpenSSH key file itself (its derivation
    is tested in tests/unit/plugins/module_utils/test_node_key.py and test_node_key_module.py)."""
    profile = json.loads((rendered / "radicle" / "standalone" / "profile.json").read_text())
    assert profile["identity"]["kind"] == "node_key" and profile["identity"]["format"] == "radicle_nid"
    assert profile["node_key"] == {"path": "/var/lib/radicle/keys/radicle", "type": "openssh_ed25519"}
    assert [secret["path"] for secret in profile["secrets"]] == [profile["node_key"]["path"]]


def test_radicle_config_key_by_key_in_each_mode(rendered):
    def config(mode):
        return json.loads((rendered / "radicle" / mode / "config.json").read_text())

    private, sentry, standalone = config("private"), config("sentry"), config("standalone")
    assert private["node"]["connect"] == ["%s@%s:%d" % (PEERS[0]["id"], PEERS[0]["address"], PEERS[0]["port"])]
    assert (private["node"]["peers"], private["node"]["externalAddresses"]) == ({"type": "static"}, [])
    guarded = PRIVATE_PEERS[0]
    assert sentry["node"]["connect"] == ["%s@%s:%d" % (guarded["id"], guarded["address"], guarded["port"])]
    assert sentry["node"]["peers"] == {"type": "dynamic"} and sentry["node"]["externalAddresses"] == ["localhost:8776"]
    for doc in (private, sentry, standalone):
        assert doc["preferredSeeds"] == []
        node = doc["node"]
        assert (node["listen"], node["network"], node["relay"], node["alias"]) == (["0.0.0.0:8776"], "main", "auto", "localhost")
        assert node["seedingPolicy"] == {"default": "allow", "scope": "all"}
    unit = (rendered / "radicle" / "sentry" / "radicle.service").read_text().splitlines()
    assert "Environment=RAD_HOME=/var/lib/radicle RAD_PASSPHRASE=" in unit and "RestartPreventExitStatus=75" in unit
    resolved = json.loads((rendered / "radicle" / "sentry" / "profile.json").read_text())
    assert resolved["binary"].endswith("/1.8.0/radicle-1.8.0-x86_64-unknown-linux-musl/bin/radicle-node")
    assert resolved["install"]["url"] == \
        "https://files.radicle.xyz/releases/1.8.0/radicle-1.8.0-x86_64-unknown-linux-musl.tar.xz"
    httpd = (rendered / "radicle-httpd" / "standalone" / "radicle-httpd.service").read_text()
    assert "--listen 127.0.0.1:8080" in httpd


def test_radicle_seeds_an_allow_list_and_refuses_a_bad_repository_id(tmp_path):
    rid = "rad:z3gqcJUoA1n9HaHKufZs5FCSGazv5"
    case = {"profile": "radicle", "mode": "standalone", "peers": [], "private_peers": [], "install_dir": str(tmp_path / "install"),
            "dest": str(tmp_path / "out"), "config": {"seed_repositories": [rid], "alias": "acme-org-node"}}
    result = render(tmp_path, [case])
    assert result.returncode == 0, result.stdout[-3000:]
    node = json.loads((tmp_path / "out" / "config.json").read_text())["node"]
    assert (node["seedingPolicy"], node["alias"]) == ({"default": "block"}, "acme-org-node")
    script = (tmp_path / "out" / "radicle-node.sh").read_text()
    assert "/bin/rad seed --no-fetch --scope all %s >/dev/null" % rid in script
    case["config"] = {"seed_repositories": ["heartwood"]}
    result = render(tmp_path, [case])
    assert result.returncode != 0 and "node_config.seed_repositories: heartwood is not a repository ID" in result.stdout


def test_radicle_refuses_a_second_writer_on_the_same_state(rendered, tmp_path):
    """The start script, run twice on one state directory with a stand-in for radicle-node: the second
    exits 75 (which the unit does not restart) and says why; once the first ends, a new one starts."""
    script = rendered / "radicle" / "standalone" / "radicle-node.sh"
    state = tmp_path / "state"
    (state / "keys").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "radicle", "-f", str(state / "keys" / "radicle")], check=True)
    (state / "node").mkdir()
    (state / "node" / "control.sock").write_text("")  # left by a killed node
    env = dict(os.environ, RAD_HOME=str(state))
    first = subprocess.Popen(["sh", str(script), "sleep", "30"], env=env)
    try:
        deadline = time.monotonic() + 10
        # The link is the script's last step before it execs the node: wait for it (a loaded machine is slow).
        while not (state / "config.json").is_symlink() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (state / "node" / "control.sock").exists() and (state / "keys" / "radicle.pub").exists()
        assert os.readlink(state / "config.json") == "/etc/chainops/radicle/config.json"
        second = subprocess.run(["sh", str(script), "true"], env=env, capture_output=True, text=True, timeout=30, check=False)
        assert second.returncode == 75
        assert "refusing to start a second writer on the same state" in second.stderr
    finally:
        first.terminate()
        first.wait(10)
    third = subprocess.run(["sh", str(script), "true"], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert third.returncode == 0, third.stderr
