# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""P2P node keys: read the file forms clients use, make new secp256k1 ones, derive what peers address.

devp2p clients (geth, EthereumJS) and libp2p clients (nwaku, go-waku) identify a node by the public key
of a secp256k1 key kept on the host; radicle by the public key of an OpenSSH Ed25519 key. Computing the
ID from the key file lets the role publish a node's address before the client ever starts, so sentries
and validators can be configured in one play. Standard library only: this runs on the host inside a
module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re
import secrets
import struct

# The curve (SEC 2, section 2.4.1).
FIELD_PRIME = 2 ** 256 - 2 ** 32 - 977
ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
GENERATOR = (
    0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
    0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_HEX_KEY = r"[\"']?(?:0x)?([0-9a-fA-F]{64})[\"']?"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# libp2p PublicKey protobuf {Type: Secp256k1 (2), Data: 33 bytes}, wrapped in an identity multihash
# (code 0x00, length 37), as libp2p's peer ID spec does for keys of 42 bytes or less.
_LIBP2P_SECP256K1_PREFIX = bytes([0x00, 37, 0x08, 0x02, 0x12, 33])


class NodeKeyError(ValueError):
    """The key file's content is not a usable key; the message never contains the key."""


def parse_key(text, env_name=None):
    """The secret scalar of a key file: 64 hex digits, or one line ``<env_name>=<64 hex digits>``."""
    text = text.strip()
    if env_name:
        match = re.match(r"%s=%s\Z" % (re.escape(env_name), _HEX_KEY), text)
        expected = "one line %s=<secp256k1 private key as 64 hex digits>" % env_name
    else:
        match = re.match(r"%s\Z" % _HEX_KEY, text)
        expected = "a secp256k1 private key as 64 hex digits"
    if not match:
        raise NodeKeyError("expected %s" % expected)
    secret = int(match.group(1), 16)
    if not 0 < secret < ORDER:
        raise NodeKeyError("the key is outside the secp256k1 range (0 < key < curve order)")
    return secret


def format_key(secret, env_name=None):
    """The file content for ``secret``, in the form parse_key reads."""
    line = "%064x" % secret
    return "%s=%s\n" % (env_name, line) if env_name else line


def new_secret():
    return secrets.randbelow(ORDER - 1) + 1


def _inverse(value):
    # Fermat's little theorem; pow(value, -1, modulus) needs Python 3.8.
    return pow(value % FIELD_PRIME, FIELD_PRIME - 2, FIELD_PRIME)


def _add(first, second):
    if first is None or second is None:
        return first or second
    if first[0] == second[0] and (first[1] + second[1]) % FIELD_PRIME == 0:
        return None
    if first == second:
        slope = 3 * first[0] * first[0] * _inverse(2 * first[1])
    else:
        slope = (second[1] - first[1]) * _inverse(second[0] - first[0])
    x = (slope * slope - first[0] - second[0]) % FIELD_PRIME
    return x, (slope * (first[0] - x) - first[1]) % FIELD_PRIME


def public_point(secret):
    """secret * G by double-and-add (not constant time: fine for deriving an ID from a key at rest)."""
    point, base = None, GENERATOR
    while secret:
        if secret & 1:
            point = _add(point, base)
        base, secret = _add(base, base), secret >> 1
    return point


def compressed_public_key(secret):
    x, y = public_point(secret)
    return bytes([2 + (y & 1)]) + x.to_bytes(32, "big")


def enode_id(secret):
    """devp2p node ID: the uncompressed public key without its 0x04 prefix, 128 hex digits."""
    return "%064x%064x" % public_point(secret)


def _base58(raw):
    """base58btc (Bitcoin's alphabet; a leading zero byte is a leading '1')."""
    number, encoded = int.from_bytes(raw, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        encoded = _BASE58[digit] + encoded
    leading_zeros = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * leading_zeros + encoded


def libp2p_peer_id(secret):
    """libp2p peer ID (base58btc) of a secp256k1 key."""
    return _base58(_LIBP2P_SECP256K1_PREFIX + compressed_public_key(secret))


def identities(secret):
    """Everything peers may address this key by."""
    return {
        "enode_id": enode_id(secret),
        "peer_id": libp2p_peer_id(secret),
        "public_key": compressed_public_key(secret).hex(),
    }


# ---- OpenSSH Ed25519 (radicle) --------------------------------------------------------------------
_OPENSSH_MAGIC = b"openssh-key-v1\0"
# multicodec ed25519-pub (0xed, as a varint 0xed 0x01), as radicle's Node ID (a did:key) starts.
_ED25519_PUB_MULTICODEC = b"\xed\x01"


def _ssh_string(blob, offset):
    if offset + 4 > len(blob):
        raise NodeKeyError("the OpenSSH key is truncated")
    size = struct.unpack(">I", blob[offset:offset + 4])[0]
    if offset + 4 + size > len(blob):
        raise NodeKeyError("the OpenSSH key is truncated")
    return blob[offset + 4:offset + 4 + size], offset + 4 + size


def _ed25519_from_public_blob(blob):
    kind, offset = _ssh_string(blob, 0)
    if kind != b"ssh-ed25519":
        raise NodeKeyError("the key is %s, not Ed25519" % kind.decode("ascii", "replace"))
    key, _offset = _ssh_string(blob, offset)
    if len(key) != 32:
        raise NodeKeyError("the Ed25519 public key has %d bytes, not 32" % len(key))
    return key


def openssh_ed25519_public_key(text):
    """The 32-byte public key of an OpenSSH Ed25519 key file: the private key file (its public half is
    stored in clear, even when the private half is encrypted) or a public key line ``ssh-ed25519 AAAA...``.
    Reading the private file means a stale ``.pub`` beside it is never taken for the key."""
    text = text.strip()
    try:
        begin, end = "-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----"
        if text.startswith(begin):
            if not text.endswith(end):
                raise NodeKeyError("the OpenSSH private key has no END line")
            blob = base64.b64decode("".join(text[len(begin):-len(end)].split()), validate=True)
            if not blob.startswith(_OPENSSH_MAGIC):
                raise NodeKeyError("not an openssh-key-v1 private key")
            offset = len(_OPENSSH_MAGIC)
            for _field in ("cipher", "kdf", "kdf options"):
                _value, offset = _ssh_string(blob, offset)
            if struct.unpack(">I", blob[offset:offset + 4])[0] != 1:
                raise NodeKeyError("the OpenSSH key file does not hold exactly one key")
            public, _offset = _ssh_string(blob, offset + 4)
            return _ed25519_from_public_blob(public)
        fields = text.split()
        if len(fields) >= 2 and fields[0].startswith("ssh-"):
            return _ed25519_from_public_blob(base64.b64decode(fields[1], validate=True))
    except (ValueError, IndexError, struct.error) as error:
        if isinstance(error, NodeKeyError):
            raise
        raise NodeKeyError("the OpenSSH key cannot be decoded")
    raise NodeKeyError("expected an OpenSSH Ed25519 private key file or public key line")


def radicle_nid(public_key):
    """radicle's Node ID: 'z' + base58btc(multicodec ed25519-pub + the public key), a did:key's method-specific id."""
    return "z" + _base58(_ED25519_PUB_MULTICODEC + public_key)


def ed25519_identities(public_key):
    """Everything peers may address an Ed25519 key by."""
    return {"radicle_nid": radicle_nid(public_key), "public_key": public_key.hex()}
