# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The signer role's view of a node's service state and of its client's double-sign state (logic in
plugins/plugin_utils/signer_state.py and double_sign_state.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.chainops.validator.plugins.plugin_utils.double_sign_state import StateError, carry
from ansible_collections.chainops.validator.plugins.plugin_utils.signer_state import running_signers, unit_state


def signer_unit_state(text):
    return unit_state(text)


def signer_running(results):
    return running_signers(results)


def signer_state_carry(old_text, new_text, state_format):
    try:
        return carry(state_format, old_text, new_text)
    except StateError as exc:
        raise AnsibleFilterError("signer_state_carry: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"signer_unit_state": signer_unit_state, "signer_running": signer_running, "signer_state_carry": signer_state_carry}
