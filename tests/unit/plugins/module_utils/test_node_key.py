"""secp256k1 node keys: parsing the file forms, and IDs checked against published vectors."""
from __future__ import annotations

import subprocess

import pytest

from ansible_collections.chainops.validator.plugins.module_utils import node_key

# EIP-778's example record: this private key has the compressed public key below.
EIP778_KEY = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291"
EIP778_PUBLIC = "03ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd3138"
# A key and the peer ID js-libp2p printed for it (secp256k1, identity multihash).
LIBP2P_KEY = "db82e7408fbe37e0641087557f3535a34049d19d27f6939f43b47418cd981434"
LIBP2P_PEER_ID = "16Uiu2HAmE1zdG92om3Y49m3ZeT5T3jAZCZ1w7JGWi93NWGRbjmW1"


def test_published_vectors():
    assert node_key.compressed_public_key(int(EIP778_KEY, 16)).hex() == EIP778_PUBLIC
    assert node_key.libp2p_peer_id(int(LIBP2P_KEY, 16)) == LIBP2P_PEER_ID


def test_the_enode_is_the_uncompressed_key_and_agrees_with_the_compressed_one():
    enode = node_key.enode_id(int(EIP778_KEY, 16))
    assert len(enode) == 128 and enode[:64] == EIP778_PUBLIC[2:]
    # 0x03 prefix: y is odd.
    assert int(enode[64:], 16) % 2 == 1


@pytest.mark.parametrize("text, env_name", [
    (EIP778_KEY, None),
    ("0x" + EIP778_KEY.upper() + "\n", None),
    ("WAKUNODE2_NODEKEY=" + EIP778_KEY, "WAKUNODE2_NODEKEY"),
    ('WAKUNODE2_NODEKEY="0x%s"\n' % EIP778_KEY, "WAKUNODE2_NODEKEY"),
])
def test_key_file_forms(text, env_name):
    assert node_key.parse_key(text, env_name) == int(EIP778_KEY, 16)


@pytest.mark.parametrize("text, env_name, expected", [
    (EIP778_KEY[:-1], None, "64 hex digits"),
    ("OTHER=" + EIP778_KEY, "WAKUNODE2_NODEKEY", "one line WAKUNODE2_NODEKEY="),
    (EIP778_KEY, "WAKUNODE2_NODEKEY", "one line WAKUNODE2_NODEKEY="),
    ("0" * 64, None, "outside the secp256k1 range"),
    ("%064x" % node_key.ORDER, None, "outside the secp256k1 range"),
])
def test_bad_key_files_are_named_without_the_key(text, env_name, expected):
    with pytest.raises(node_key.NodeKeyError) as raised:
        node_key.parse_key(text, env_name)
    assert expected in str(raised.value)
    assert EIP778_KEY not in str(raised.value)


def test_format_key_round_trips():
    secret = node_key.new_secret()
    assert 0 < secret < node_key.ORDER
    for env_name in (None, "WAKUNODE2_NODEKEY"):
        assert node_key.parse_key(node_key.format_key(secret, env_name), env_name) == secret


# Radicle heartwood's own test key (crates/radicle-crypto/src/ssh.rs, fmt::test::test_key): this OpenSSH
# public key is the Node ID below.
RADICLE_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINDoXIrhcnRjnLGUXUFdxhkuy08lkTOwrj2IoGsEX6+Q"
RADICLE_NID = "z6MktWkM9vcfysWFq1c2aaLjJ6j4PYYg93TLPswR4qtuoAeT"


def test_radicle_node_ids_follow_heartwood():
    assert node_key.radicle_nid(node_key.openssh_ed25519_public_key(RADICLE_SSH_KEY + "\n")) == RADICLE_NID


@pytest.mark.parametrize("passphrase", ["", "an encrypted private half keeps its public half in clear"])
def test_the_node_id_is_read_from_the_private_key_file_itself(tmp_path, passphrase):
    """The public half comes from the private key file, so a key given in node_secrets is never paired
    with a stale radicle.pub."""
    key = tmp_path / "radicle"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "radicle", "-f", str(key)], check=True)
    expected = node_key.radicle_nid(node_key.openssh_ed25519_public_key((tmp_path / "radicle.pub").read_text()))
    derived = node_key.radicle_nid(node_key.openssh_ed25519_public_key(key.read_text()))
    assert derived == expected and derived.startswith("z6Mk")


@pytest.mark.parametrize("kind, text, expected", [
    ("ecdsa", None, "the key is ecdsa-sha2-nistp256, not Ed25519"),
    (None, "ssh-ed25519 not-base64!", "cannot be decoded"),
    (None, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n", "no END line"),
    (None, "0123", "expected an OpenSSH Ed25519 private key file or public key line"),
])
def test_other_openssh_keys_are_refused_by_name(tmp_path, kind, text, expected):
    if kind:
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(tmp_path / "k")], check=True)
        text = (tmp_path / "k").read_text()
    with pytest.raises(node_key.NodeKeyError, match=expected):
        node_key.openssh_ed25519_public_key(text)
