#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: ansible-test requires the header on modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: node_key
short_description: Make a node's secp256k1 P2P key once and return the IDs peers address it by
version_added: 0.3.0
description:
  - Runs on the host that owns the key. Reads the key file at O(path) and returns the node's devp2p
    node ID (enode), libp2p peer ID and compressed public key. The private key is never returned.
  - With O(generate=true) a missing key file is created first, with a key from the operating system's
    random source, mode 0600 and owned by O(owner) and O(group); an existing file is never rewritten.
  - The node profiles' C(node_key) section gives O(path) and O(env_name); the node role calls this
    module to make the key before the client first starts and to publish the node's identity.
  - In check mode a missing key is reported with RV(exists=false) instead of being created or failing.
options:
  path:
    description: The key file.
    type: path
    required: true
  env_name:
    description:
      - The file is an environment file with one line C(<env_name>=<key>) (for clients that read the
        key from a variable, such as nwaku's and go-waku's C(WAKUNODE2_NODEKEY)).
      - Without it the file holds the key as 64 hexadecimal digits (geth's C(nodekey)).
    type: str
  generate:
    description: Create the key file when it does not exist.
    type: bool
    default: false
  owner:
    description: Owner of a created key file and of parent directories it creates.
    type: str
  group:
    description: Group of a created key file and of parent directories it creates.
    type: str
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Make the P2P node key once
  chainops.validator.node_key:
    path: /var/lib/waku/nodekey.env
    env_name: WAKUNODE2_NODEKEY
    generate: true
    owner: waku
    group: waku

- name: Read the node's peer ID
  chainops.validator.node_key:
    path: /var/lib/waku/nodekey.env
    env_name: WAKUNODE2_NODEKEY
  register: waku_key
"""

RETURN = r"""
exists:
  description: Whether the key file exists (after any generation).
  returned: always
  type: bool
generated:
  description: Whether this run created the key file (or would have, in check mode).
  returned: always
  type: bool
enode_id:
  description: devp2p node ID, the uncompressed public key without its prefix (128 hex digits).
  returned: when the key exists
  type: str
peer_id:
  description: libp2p peer ID of the key.
  returned: when the key exists
  type: str
  sample: 16Uiu2HAmPLe7Mzm8TsYUubgCAW1aJoeFScxrLj8ppHFivPo97bUZ
public_key:
  description: Compressed public key, hex.
  returned: when the key exists
  type: str
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.chainops.validator.plugins.module_utils.node_key import (
    ENV_NAME,
    NodeKeyError,
    format_key,
    identities,
    new_secret,
    parse_key,
)


def _ids(owner, group):
    uid = pwd.getpwnam(owner).pw_uid if owner else -1
    gid = grp.getgrnam(group).gr_gid if group else -1
    return uid, gid


def _create(path, content, uid, gid):
    """Write the key atomically, 0600 from the first byte; parent directories 0700."""
    missing = []
    parent = os.path.dirname(path)
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory, 0o700)
        os.chown(directory, uid, gid)
    temporary = "%s.tmp-%d" % (path, os.getpid())
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(handle, content.encode())
        os.fsync(handle)
    finally:
        os.close(handle)
    os.chown(temporary, uid, gid)
    os.rename(temporary, path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            env_name=dict(type="str"),
            generate=dict(type="bool", default=False),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["env_name"] is not None and not ENV_NAME.match(p["env_name"]):
        module.fail_json(msg="env_name: %r is not an environment variable name" % p["env_name"])
    try:
        uid, gid = _ids(p["owner"], p["group"])
    except KeyError as error:
        module.fail_json(msg="owner/group: no such user or group: %s" % error)

    generated = False
    if not os.path.exists(p["path"]):
        if not p["generate"] and not module.check_mode:
            module.fail_json(msg="%s: no node key (nothing generates it: generate is false)" % p["path"],
                             exists=False, generated=False)
        if module.check_mode or not p["generate"]:
            module.exit_json(changed=p["generate"], exists=False, generated=p["generate"])
        _create(p["path"], format_key(new_secret(), p["env_name"]), uid, gid)
        generated = True

    try:
        with open(p["path"]) as handle:
            secret = parse_key(handle.read(), p["env_name"])
    except (IOError, OSError) as error:
        module.fail_json(msg="%s: cannot read the node key: %s" % (p["path"], error.strerror))
    except NodeKeyError as error:
        module.fail_json(msg="%s: %s" % (p["path"], error))
    module.exit_json(changed=generated, exists=True, generated=generated, **identities(secret))


if __name__ == "__main__":
    main()
