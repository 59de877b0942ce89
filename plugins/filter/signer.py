# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The signer role's view of a node's service state (logic in plugins/plugin_utils/signer_state.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chainops.validator.plugins.plugin_utils.signer_state import running_signers, unit_state


def signer_unit_state(text):
    return unit_state(text)


def signer_running(results):
    return running_signers(results)


class FilterModule(object):
    def filters(self):
        return {"signer_unit_state": signer_unit_state, "signer_running": signer_running}
