"""Every shipped node profile renders its config and systemd unit, in every node mode.

Rendered units pass `systemd-analyze verify`. litecoind's and anvil's binaries are real
(Debian package; the release archive the tests fetch). The other clients cannot be installed
here, so their binary path is a stub executable: see docs/profiles.md.
"""
from __future__ import annotations

import json
import shutil
import subprocess
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
        node_config: {moniker: test-node, chain_id: test-1, daemon: gaiad, checkpoint_sync_url: "https://beacon.example.org"}
      loop: "{{ cases }}"
      loop_control:
        loop_var: case
"""


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
                "install_dir": str(base / "install" / profile),
                "dest": str(base / profile / mode),
            })
    (base / "cases.json").write_text(json.dumps({"cases": cases}))
    (base / "render.yml").write_text(RENDER_PLAYBOOK)
    result = ansible_playbook(base / "render.yml", "-i", "localhost,", "-c", "local", "-e", "@%s" % (base / "cases.json"))
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
