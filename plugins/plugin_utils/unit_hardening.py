# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The systemd sandbox every service of the collection starts from, and one order to write it in.

The node, the health checker and the validator allowlist each add or drop a few settings
(``unit_hardening`` filter); the settings they share live here once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

BASE = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RemoveIPC": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "SystemCallArchitectures": "native",
    "SystemCallErrorNumber": "EPERM",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "UMask": "0077",
}

# Where the settings a service adds stand among the shared ones, so that a unit file keeps its lines
# in one order whatever is added (a reordered unit file is a changed one, and restarts the service).
ORDER = [
    "NoNewPrivileges", "ProtectSystem", "ReadWritePaths", "ProtectHome", "PrivateTmp", "PrivateDevices",
    "PrivateUsers", "DevicePolicy", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset", "RestrictSUIDSGID",
    "RestrictRealtime", "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute", "RemoveIPC",
    "KeyringMode", "CapabilityBoundingSet", "AmbientCapabilities", "SystemCallArchitectures", "SystemCallFilter",
    "SystemCallErrorNumber", "RestrictAddressFamilies", "UMask",
]
_RANK = dict((key, index) for index, key in enumerate(ORDER))


class HardeningError(ValueError):
    pass


def unit_hardening(changes=None):
    """BASE with ``changes`` applied (a value of None drops a setting), in ORDER; unknown settings last.

    Values are strings as written after ``=``; a newline would end the line and is refused.
    """
    settings = dict(BASE)
    for key, value in (changes or {}).items():
        if not isinstance(key, str) or not key.isalnum():
            raise HardeningError("unit_hardening: %r is not a systemd setting name" % (key,))
        if value is None:
            settings.pop(key, None)
            continue
        value = str(value)
        if "\n" in value or "\r" in value:
            raise HardeningError("unit_hardening: the value of %s has a line break" % key)
        settings[key] = value
    names = sorted(settings, key=lambda key: _RANK.get(key, len(ORDER)))  # stable: unknown ones keep their order
    return dict((key, settings[key]) for key in names)
