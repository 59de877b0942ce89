#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: ansible-test requires the header on modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: chain_status
short_description: Read how far a node's chain is (height, sync state, a block's hash), for any client family
version_added: 0.2.0
description:
  - Runs on the host. Reads the node's height, the height it knows the network is at, and whether it
    is still syncing, through the reader of its client family (O(adapter)); optionally the hash of the
    block at O(hash_at).
  - With O(minimum_height) or O(synced) it waits, within O(timeout) seconds in all, until the node
    reaches that height or stops syncing, and fails with the last reading (or the last error) when it
    does not.
  - The node profiles' C(chain_status) section is a O(reader) as it stands; O(adapter) with O(command) or
    O(url) says the same option by option.
options:
  adapter:
    description:
      - C(bitcoin) reads C(getblockchaininfo) and C(getblockhash) through the node's CLI (O(command)).
      - C(ethereum) reads C(eth_blockNumber), C(eth_syncing) and C(eth_getBlockByNumber) over JSON-RPC
        (O(url)). An C(eth_syncing) error saying no peer is available counts as syncing.
      - One of O(adapter) and O(reader) is required.
    type: str
    choices: [bitcoin, ethereum]
  reader:
    description:
      - The reader as a node profile's C(chain_status) section describes it (the node role's C(_node_profile.chain_status)),
        instead of O(adapter), O(command) and O(url).
    type: dict
    version_added: 0.3.0
    suboptions:
      adapter:
        description: As O(adapter).
        type: str
        required: true
        choices: [bitcoin, ethereum]
      argv:
        description: As O(command) (O(reader.adapter=bitcoin)).
        type: list
        elements: str
      url:
        description: As O(url) (O(reader.adapter=ethereum)).
        type: str
  command:
    description: The node's CLI with its connection options and without a method (O(adapter=bitcoin)).
    type: list
    elements: str
  url:
    description: The node's JSON-RPC URL (O(adapter=ethereum)). Proxies are not used.
    type: str
  minimum_height:
    description: Wait until the node's height is at least this.
    type: int
    default: 0
  synced:
    description: Wait until the node no longer reports itself syncing.
    type: bool
    default: false
  hash_at:
    description: Also return the hash of the block at this height (after the wait).
    type: int
  timeout:
    description: Total seconds to keep trying. C(0) makes exactly one reading.
    type: int
    default: 0
  interval:
    description: Seconds between readings.
    type: float
    default: 2
  attempt_timeout:
    description: Seconds one call to the node may take.
    type: float
    default: 10
  what:
    description: What is being read, in words, for the failure message (e.g. C(geth catching up)).
    type: str
    default: the node
  fail_on_timeout:
    description: Fail when the wait is not met in time. With C(false) the result says RV(ready=false) and the task succeeds.
    type: bool
    default: true
notes:
  - Only reads; in check mode it runs as usual, so a check run reports the real state.
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Is the node synced, and at which height?
  chainops.validator.chain_status:
    adapter: ethereum
    url: http://127.0.0.1:8545/
  register: chain

- name: Wait until the restored node serves the restored height
  chainops.validator.chain_status:
    adapter: bitcoin
    command: [litecoin-cli, -conf=/etc/chainops/litecoind/rpc.conf, -datadir=/var/lib/litecoind, -chain=main]
    minimum_height: 2600000
    timeout: 600
    what: litecoind catching up

- name: The same through the node profile's reader (after the node role's profile entry point)
  chainops.validator.chain_status:
    reader: "{{ _node_profile.chain_status }}"
    minimum_height: 2600000
    timeout: 600
    what: litecoind catching up
"""

RETURN = r"""
ready:
  description: Whether the node answered and met O(minimum_height) and O(synced).
  returned: always
  type: bool
height:
  description: The node's height (null when it never answered).
  returned: always
  type: int
target:
  description: The highest height the node knows of (its headers, or eth_syncing's highestBlock); its height when in sync.
  returned: always
  type: int
syncing:
  description: Whether the node reports itself syncing.
  returned: always
  type: bool
state:
  description: The last reading in one line, or why there was none.
  returned: always
  type: str
  sample: "height 1200 < 1500 (height 1200 of 1530, syncing: block 1200 of 1530)"
hash:
  description: The hash of the block at O(hash_at).
  returned: with O(hash_at)
  type: str
attempts:
  description: Readings made.
  returned: always
  type: int
elapsed:
  description: Seconds spent.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chainops.validator.plugins.module_utils.chain_status import ADAPTERS, ChainStatusError, probe, reader
from ansible_collections.chainops.validator.plugins.module_utils.readiness import wait


def main():
    module = AnsibleModule(
        argument_spec=dict(
            adapter=dict(type="str", choices=list(ADAPTERS)),
            command=dict(type="list", elements="str"),
            url=dict(type="str"),
            reader=dict(type="dict", options=dict(
                adapter=dict(type="str", required=True, choices=list(ADAPTERS)),
                argv=dict(type="list", elements="str"),
                url=dict(type="str"),
            ), required_if=[("adapter", "bitcoin", ("argv",)), ("adapter", "ethereum", ("url",))]),
            minimum_height=dict(type="int", default=0),
            synced=dict(type="bool", default=False),
            hash_at=dict(type="int"),
            timeout=dict(type="int", default=0),
            interval=dict(type="float", default=2),
            attempt_timeout=dict(type="float", default=10),
            what=dict(type="str", default="the node"),
            fail_on_timeout=dict(type="bool", default=True),
        ),
        required_if=[("adapter", "bitcoin", ("command",)), ("adapter", "ethereum", ("url",))],
        required_one_of=[("adapter", "reader")],
        mutually_exclusive=[("reader", "adapter"), ("reader", "command"), ("reader", "url")],
        supports_check_mode=True,
    )
    p = module.params
    if p["reader"]:
        p.update(adapter=p["reader"]["adapter"], command=p["reader"]["argv"], url=p["reader"]["url"])
    problems = []
    for name in ("timeout", "minimum_height"):
        if p[name] < 0:
            problems.append("%s: must be >= 0, got %d" % (name, p[name]))
    if p["hash_at"] is not None and p["hash_at"] < 0:
        problems.append("hash_at: must be >= 0, got %d" % p["hash_at"])
    if p["interval"] <= 0 or p["attempt_timeout"] <= 0:
        problems.append("interval and attempt_timeout: must be > 0")
    if problems:
        module.fail_json(msg="; ".join(problems))

    chain = reader(p["adapter"], argv=p["command"], url=p["url"], attempt_timeout=p["attempt_timeout"])
    result = wait(lambda: probe(chain, p["minimum_height"], p["synced"]), p["timeout"], p["interval"])
    last = result["last"]
    status = last.get("status") or {}
    out = dict(changed=False, ready=result["ready"], attempts=result["attempts"], elapsed=result["elapsed"], state=last["state"],
               height=status.get("height"), target=status.get("target"), syncing=status.get("syncing"))
    if not result["ready"]:
        if p["fail_on_timeout"]:
            module.fail_json(msg="%s: not ready after %ss (%d readings): %s" % (p["what"], result["elapsed"], result["attempts"], last["state"]),
                             **out)
        module.exit_json(**out)
    if p["hash_at"] is not None:
        try:
            out["hash"] = chain.block_hash(p["hash_at"])
        except ChainStatusError as exc:
            module.fail_json(msg="%s: no block hash at height %d: %s" % (p["what"], p["hash_at"], exc), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
