"""The shared systemd sandbox: changes applied, settings dropped, one order, bad names and values refused."""
from __future__ import annotations

import pytest

from ansible_collections.chainops.validator.plugins.plugin_utils.unit_hardening import (
    BASE,
    ORDER,
    HardeningError,
    unit_hardening,
)


def test_no_changes_is_the_shared_sandbox_in_order():
    settings = unit_hardening()
    assert settings == BASE
    assert list(settings) == [key for key in ORDER if key in BASE]


def test_added_settings_stand_in_their_place_and_replaced_ones_keep_theirs():
    settings = unit_hardening({"SystemCallFilter": "@system-service", "PrivateUsers": "yes", "UMask": "0022"})
    keys = list(settings)
    assert keys.index("PrivateUsers") == keys.index("PrivateDevices") + 1
    assert keys.index("SystemCallFilter") == keys.index("SystemCallArchitectures") + 1
    assert keys[-1] == "UMask" and settings["UMask"] == "0022"


def test_the_input_order_does_not_change_the_output_order():
    one = unit_hardening({"KeyringMode": "private", "DevicePolicy": "closed"})
    two = unit_hardening({"DevicePolicy": "closed", "KeyringMode": "private"})
    assert list(one.items()) == list(two.items())


def test_none_drops_a_setting_and_unknown_settings_come_last_in_their_order():
    settings = unit_hardening({"ProtectProc": None, "ZSetting": "1", "ASetting": "2"})
    assert "ProtectProc" not in settings
    assert list(settings)[-2:] == ["ZSetting", "ASetting"]


@pytest.mark.parametrize("changes, message", [
    ({"Protect System": "yes"}, "not a systemd setting name"),
    ({"ExecStartPre=/bin/sh\nX": "yes"}, "not a systemd setting name"),
    ({"UMask": "0077\nExecStartPre=/bin/sh"}, "the value of UMask has a line break"),
])
def test_bad_names_and_values_are_refused(changes, message):
    with pytest.raises(HardeningError, match=message):
        unit_hardening(changes)
