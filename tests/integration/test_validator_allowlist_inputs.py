"""validator_allowlist: bad input fails on the controller, naming the role's variable, before any change."""
from __future__ import annotations

import pytest
from playbook_runner import assert_fails_before_changes, run_role_in_check_mode

GOOD = {"validator_allowlist_endpoints": ["http://127.0.0.1:9000/api/v3"], "validator_allowlist_ports": [{"port": 7100, "protocol": "tcp"}]}


@pytest.mark.parametrize("changes, fragment", [
    ({"validator_allowlist_extra_cidrs": ["10.0.0.0/33"]}, "validator_allowlist_extra_cidrs: '10.0.0.0/33' is not an address or network"),
    ({"validator_allowlist_endpoints": ["ftp://10.0.0.1/"]}, "validator_allowlist_endpoints: one or more http(s) JSON-RPC URLs"),
    ({"validator_allowlist_ports": [{"port": 70000}]}, "validator_allowlist_ports[0]: {port: 1-65535, protocol: tcp|udp}"),
    ({"validator_allowlist_exempt_interfaces": ["wg0; drop"]}, "validator_allowlist_exempt_interfaces: 'wg0; drop' is not an interface name"),
    ({"validator_allowlist_timeout_s": 500}, "validator_allowlist_timeout_s: seconds, more than 0 and at most 120, got 500"),
    ({"validator_allowlist_endpoints": []}, "validator_allowlist_endpoints is empty and the node profile in this play has no RPC port"),
])
def test_bad_input_is_named_before_any_change(tmp_path, changes, fragment):
    assert_fails_before_changes(run_role_in_check_mode(tmp_path, "validator_allowlist", dict(GOOD, **changes)), fragment)
