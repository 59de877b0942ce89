# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Whether a host's signing node may be signing, from ``systemctl show`` (controller side).

A node signs unless it is loaded and cleanly stopped (ActiveState inactive) or not installed at all:
a node that is activating between restarts, failed (it may be restarted by anyone), or stopping
counts as signing, so a crash-looping signer is never taken for a stopped one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

STOPPED_STATES = ("inactive",)


def unit_state(text):
    """{"signs": bool, "state": "ActiveState/SubState", "loaded": bool} from ``systemctl show`` output."""
    properties = dict(line.split("=", 1) for line in str(text).splitlines() if "=" in line)
    loaded = properties.get("LoadState") == "loaded"
    active = properties.get("ActiveState", "unknown")
    return {"signs": loaded and active not in STOPPED_STATES, "loaded": loaded,
            "state": "%s/%s" % (active, properties.get("SubState", "unknown"))}


def running_signers(results):
    """[{"host", "state"}] of the hosts whose node may sign, from a loop of ``systemctl show`` results
    (``item`` is the host). Hosts that did not answer are left out: the lease covers them."""
    running = []
    for result in results:
        if result.get("unreachable") or "stdout" not in result or result.get("rc", 0) != 0:
            continue
        state = unit_state(result["stdout"])
        if state["signs"]:
            running.append({"host": result["item"], "state": state["state"]})
    return running
