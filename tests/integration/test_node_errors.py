"""Bad input to the node role fails with a clear message before anything changes.

The runs target the controller itself in check mode, so even a check that failed to trigger
could not change this machine.
"""
from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest
from playbook_runner import CACHE_DIR, assert_fails_before_changes, run_role_in_check_mode


BROKEN_PROFILE = """
name: broken
description: a profile without a readiness check
install: {method: apt, packages: [hello]}
binary: /usr/bin/hello
service: {exec_start: /usr/bin/hello}
ports: {p2p: {port: 1234, protocol: tcp, bind: 0.0.0.0}}
identity: {kind: address, port: p2p}
"""


@pytest.fixture(scope="module")
def artifact_server():
    directory = CACHE_DIR / "artifacts"
    assert (directory / "anvil-linux-amd64-1.7.1.tgz").exists(), "run `make setup` to fetch test artifacts"
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def run_role(tmp_path, variables: dict, *extra: str):
    return run_role_in_check_mode(tmp_path, "node", variables, *extra)


def test_unknown_profile(tmp_path):
    result = run_role(tmp_path, {"node_profile": "nosuchchain"})
    assert_fails_before_changes(result, "node_profile 'nosuchchain' is unknown", "anvil", "litecoind")


def test_missing_profile_argument(tmp_path):
    result = run_role(tmp_path, {})
    assert_fails_before_changes(result, "node_profile")


def test_profile_missing_required_field(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "broken.yml").write_text(BROKEN_PROFILE)
    result = run_role(tmp_path, {"node_profile": "broken", "node_profile_dirs": [str(profiles)]})
    assert_fails_before_changes(result, "node profile 'broken': required field 'readiness' is missing")


def test_bad_port(tmp_path):
    result = run_role(tmp_path, {"node_profile": "litecoind", "node_ports": {"rpc": {"port": 70000}}})
    assert_fails_before_changes(result, "node_ports.rpc.port must be an integer from 1 to 65535, got 70000")


def test_unknown_port_name(tmp_path):
    result = run_role(tmp_path, {"node_profile": "litecoind", "node_ports": {"grpc": {"port": 9090}}})
    assert_fails_before_changes(result, "node_ports has unknown port names ['grpc']")


def test_unknown_network(tmp_path):
    result = run_role(tmp_path, {"node_profile": "litecoind", "node_network": "signet2"})
    assert_fails_before_changes(result, "node_network 'signet2' is not supported by profile 'litecoind'", "regtest")


def test_bad_mode(tmp_path):
    result = run_role(tmp_path, {"node_profile": "litecoind", "node_mode": "validator"})
    assert_fails_before_changes(result, "node_mode", "standalone, private, sentry")


def test_secret_missing_in_private_mode(tmp_path):
    missing = tmp_path / "priv_validator_key.json"
    result = run_role(tmp_path, {
        "node_profile": "litecoind",
        "node_mode": "private",
        "node_profile_overrides": {"secrets": [{"path": str(missing), "description": "validator key", "required_in": ["private"]}]},
    })
    assert_fails_before_changes(result, "node_mode private requires the secret file %s (validator key)" % missing)


def test_checksum_mismatch(tmp_path, artifact_server):
    wrong = hashlib.sha256(b"not the release").hexdigest()
    # The cache directory of a controller that has downloaded before; its creation is no host change.
    (tmp_path / "downloads" / "anvil" / wrong[:16]).mkdir(parents=True)
    result = run_role(tmp_path, {
        "node_profile": "anvil",
        "node_install_url": artifact_server + "/anvil-linux-amd64-1.7.1.tgz",
        "node_install_sha256": wrong,
        "node_download_cache_dir": str(tmp_path / "downloads"),
    })
    assert_fails_before_changes(result, "release anvil 1.7.1", "expected sha256:" + wrong, "did not match")
    assert not list((tmp_path / "downloads").rglob("*.tgz")), "a file that failed verification was kept"


def test_missing_checksum_for_version(tmp_path, artifact_server):
    result = run_role(tmp_path, {
        "node_profile": "anvil",
        "node_version": "9.9.9",
        "node_install_url": artifact_server + "/anvil-linux-amd64-1.7.1.tgz",
        "node_download_cache_dir": str(tmp_path / "downloads"),
    })
    assert_fails_before_changes(result, "node profile 'anvil' has no sha256 checksum for version 9.9.9 on amd64; set node_install_sha256")
