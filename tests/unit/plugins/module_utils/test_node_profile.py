"""Profile validation and resolution (plugins/module_utils/node_profile.py)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible_collections.chainops.validator.plugins.module_utils.node_profile import (
    ProfileError,
    deep_merge,
    download_checksum,
    peer_endpoints,
    resolve_profile,
    substitute,
    validate_profile,
)

PROFILE_DIR = Path(__file__).resolve().parents[4] / "roles" / "node" / "files" / "profiles"
CONTEXT = {"name": "ltc", "user": "ltc", "group": "ltc", "mode": "standalone", "data_dir": "/data/ltc",
           "config_dir": "/etc/chainops/ltc", "install_dir": "/opt/chainops/ltc", "version": "", "arch": "amd64"}


def load(name):
    return yaml.safe_load((PROFILE_DIR / (name + ".yml")).read_text())


@pytest.mark.parametrize("path", sorted(PROFILE_DIR.glob("*.yml")), ids=lambda p: p.stem)
def test_every_shipped_profile_is_valid(path):
    profile = yaml.safe_load(path.read_text())
    assert validate_profile(profile) == []
    assert profile["name"] == path.stem


def test_resolve_picks_network_ports_and_fills_placeholders():
    resolved = resolve_profile(load("litecoind"), "regtest", {}, {}, CONTEXT)
    assert resolved["network"] == "regtest"
    assert resolved["ports"]["p2p"] == {"port": 19444, "protocol": "tcp", "bind": "0.0.0.0"}
    assert resolved["ports"]["rpc"]["bind"] == "127.0.0.1"
    assert resolved["service"]["exec_start"] == "/usr/lib/litecoin/litecoind -conf=/etc/chainops/ltc/litecoin.conf -datadir=/data/ltc"
    assert "-rpcport=19443" in resolved["readiness"]["argv"]
    assert resolved["secrets"][1]["path"] == "/data/ltc/regtest/wallets"
    assert "networks" not in resolved


def test_resolve_default_network_and_binary_placeholders():
    resolved = resolve_profile(load("anvil"), "", {}, {}, CONTEXT)
    assert resolved["network"] == "devnet"
    assert resolved["version"] == "1.7.1"
    assert resolved["binary"] == "/opt/chainops/ltc/1.7.1/anvil"
    assert resolved["install"]["url"].endswith("/anvil-linux-amd64-1.7.1.tgz")
    assert resolved["service"]["exec_start"].startswith("/opt/chainops/ltc/1.7.1/anvil --host 127.0.0.1 --port 8545")


def test_version_from_role_wins_over_profile():
    resolved = resolve_profile(load("anvil"), "", {}, {}, dict(CONTEXT, version="2.0.0"))
    assert resolved["binary"] == "/opt/chainops/ltc/2.0.0/anvil"


def test_port_overrides_apply_last_and_are_validated():
    resolved = resolve_profile(load("litecoind"), "regtest", {}, {"rpc": {"bind": "10.0.0.1"}}, CONTEXT)
    assert resolved["ports"]["rpc"] == {"port": 19443, "protocol": "tcp", "bind": "10.0.0.1"}
    with pytest.raises(ProfileError, match=r"node_ports.rpc.port must be an integer from 1 to 65535, got 0"):
        resolve_profile(load("litecoind"), "regtest", {}, {"rpc": {"port": 0}}, CONTEXT)
    with pytest.raises(ProfileError, match=r"node_ports.rpc.port must be an integer from 1 to 65535, got '8545'"):
        resolve_profile(load("litecoind"), "regtest", {}, {"rpc": {"port": "8545"}}, CONTEXT)
    with pytest.raises(ProfileError, match=r"node_ports.p2p.protocol must be one of tcp, udp"):
        resolve_profile(load("litecoind"), "regtest", {}, {"p2p": {"protocol": "sctp"}}, CONTEXT)


def test_overrides_are_deep_merged_without_touching_the_input():
    profile = load("litecoind")
    original = copy.deepcopy(profile)
    resolved = resolve_profile(profile, "regtest", {"service": {"stop_timeout": 30}}, {}, CONTEXT)
    assert resolved["service"]["stop_timeout"] == 30
    assert resolved["service"]["exec_start"].startswith("/usr/lib/litecoin/litecoind")
    assert profile == original


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.pop("readiness"), "required field 'readiness' is missing"),
        (lambda p: p.pop("binary"), "required field 'binary' is missing"),
        (lambda p: p["install"].update(method="snap"), "install.method must be one of apt, url, deb, none, got 'snap'"),
        (lambda p: p["install"].update(packages=[]), "install.packages is required when install.method is apt"),
        (lambda p: p["service"].pop("exec_start"), "required field 'service.exec_start' is missing"),
        (lambda p: p["ports"]["p2p"].update(port=65536), "ports.p2p.port must be an integer from 1 to 65535, got 65536"),
        (lambda p: p["networks"]["regtest"]["ports"]["rpc"].update(port=-1), "networks.regtest.ports.rpc.port must be an integer"),
        (lambda p: p.update(default_network="signet"), "default_network 'signet' is not one of networks"),
        (lambda p: p["identity"].update(kind="enode"), "identity.kind must be one of address, command, node_key, none"),
        (lambda p: p["identity"].update(kind="node_key", format="enode_id"), "identity.kind node_key needs the profile's node_key section"),
        (lambda p: p.update(identity={"kind": "node_key", "format": "ens"}, node_key={"path": "/k"}),
         "identity.format must be one of enode_id, peer_id when identity.kind is node_key, got 'ens'"),
        (lambda p: p.update(node_key={"env": "X"}), "node_key.path is required"),
        (lambda p: p["identity"].update(announced={"url": "http://127.0.0.1:8645/debug/v1/info", "enr": "enrUri"}),
         "identity.announced needs url (a GET answering JSON), enr and multiaddrs"),
        (lambda p: p.update(node_key={"path": "/k", "env": "A-B"}), "node_key.env must be an environment variable name, got 'A-B'"),
        (lambda p: p["identity"].pop("port"), "identity.port (the name of the P2P port) is required"),
        (lambda p: p.update(readiness={"timeout": 3}), "readiness needs either 'argv'"),
        (lambda p: p["secrets"].append({"kind": "file"}), "secrets[2].path is required"),
        (lambda p: p["secrets"].append({"path": "/x", "required_in": ["validator"]}), "secrets[2].required_in has unknown mode 'validator'"),
        (lambda p: p["init"].append({"argv": ["true"]}), "init[1] needs 'argv' and 'creates'"),
        (lambda p: p["config_files"].append({"template": "x.j2"}), "config_files[1] needs 'template' and 'dest'"),
        (lambda p: p["chain_status"].update(adapter="cosmos"), "chain_status.adapter must be one of bitcoin, ethereum"),
        (lambda p: p["chain_status"].pop("argv"), "chain_status with adapter bitcoin needs 'argv'"),
        (lambda p: p["chain_status"].update(timeout=5), "chain_status: unknown key(s) timeout (it takes adapter, and argv or url)"),
    ],
)
def test_validation_errors_name_the_field(mutate, message):
    profile = load("litecoind")
    mutate(profile)
    errors = validate_profile(profile)
    assert any(message in error for error in errors), errors
    assert all(error.startswith("node profile 'litecoind': ") for error in errors)
    with pytest.raises(ProfileError, match="node profile 'litecoind'"):
        resolve_profile(profile, "regtest", {}, {}, CONTEXT)


def test_url_install_needs_url_and_archive_member():
    profile = load("anvil")
    profile["install"].pop("url")
    profile["install"].pop("archive_member")
    errors = validate_profile(profile)
    assert ("node profile 'anvil': install.url is required when install.method is url (or install.own_artifact: why the "
            "operator gives node_install_url)") in errors
    profile["install"]["own_artifact"] = "no public release"
    assert not [error for error in validate_profile(profile) if "install.url" in error]
    assert ("node profile 'anvil': install.archive_member is required when install.archive is tar (or install.tree: true "
            "to unpack the whole archive)") in errors


def test_a_deb_install_needs_a_url_and_takes_no_archive_fields():
    profile = load("anvil")
    profile["install"]["method"] = "deb"
    profile["install"].pop("url")
    errors = validate_profile(profile)
    assert ("node profile 'anvil': install.url is required when install.method is deb (or install.own_artifact: why the "
            "operator gives node_install_url)") in errors
    assert ("node profile 'anvil': install.archive_member does not apply to install.method deb (the package is installed "
            "whole)") in errors


def test_a_tree_install_unpacks_the_whole_tar_archive():
    profile = load("polykey-npm")
    assert validate_profile(profile) == [] and profile["install"]["tree"] is True
    profile["install"]["archive"] = "none"
    assert validate_profile(profile) == ["node profile 'polykey-npm': install.tree needs install.archive: tar"]


def test_unknown_network_lists_supported_ones():
    with pytest.raises(ProfileError, match=r"node_network 'signet' is not supported by profile 'litecoind' \(supported: mainnet, regtest, testnet\)"):
        resolve_profile(load("litecoind"), "signet", {}, {}, CONTEXT)


def test_substitute_reports_unknown_placeholders():
    assert substitute({"a": ["${x.y}", 3]}, {"x": {"y": 7}}) == {"a": ["7", 3]}
    assert substitute("literal $HOME and %s$%s", {}) == "literal $HOME and %s$%s"
    with pytest.raises(ProfileError, match=r"unknown placeholder \$\{nope\}"):
        substitute("${nope}", {"known": 1})


def test_download_checksum():
    profile = resolve_profile(load("anvil"), "", {}, {}, CONTEXT)
    assert download_checksum(profile, "1.7.1", "amd64") == "sha256:5727dd8f08f3bf6dde4ec1d9832e87c43f9315ef824bff1ab18486bf51bc7af3"
    assert download_checksum(profile, "1.7.1", "amd64", "ab" * 32) == "sha256:" + "ab" * 32
    with pytest.raises(ProfileError, match="no sha256 checksum for version 1.7.1 on arm64; set node_install_sha256"):
        download_checksum(profile, "1.7.1", "arm64")
    with pytest.raises(ProfileError, match="is not a sha256 hex digest"):
        download_checksum(profile, "1.7.1", "amd64", "xyz")


def test_peer_endpoints():
    identities = {"sentry-1": {"address": "10.0.0.2", "port": 26656, "id": "abc"}, "gone": None}
    assert peer_endpoints(["sentry-1", {"address": "10.0.0.3", "port": 26656}], identities) == [
        {"address": "10.0.0.2", "port": 26656, "id": "abc"},
        {"address": "10.0.0.3", "port": 26656, "id": None},
    ]
    with pytest.raises(ProfileError, match="peer 'gone' has no known P2P identity"):
        peer_endpoints(["gone"], identities)
    with pytest.raises(ProfileError, match="each peer needs an 'address'"):
        peer_endpoints([{"port": 1}])
    with pytest.raises(ProfileError, match="bad port 70000"):
        peer_endpoints([{"address": "10.0.0.9", "port": 70000}])


def test_deep_merge():
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"c": 3}, "d": [2]}) == {"a": {"b": 1, "c": 3}, "d": [2]}
