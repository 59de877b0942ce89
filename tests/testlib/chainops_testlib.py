"""Helpers shared by the molecule scenarios' testinfra tests."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.M)


def podman_hosts(*names: str) -> list[str]:
    """testinfra host specs that use `podman exec` directly (fast, no Ansible per command)."""
    return ["podman://" + name for name in names]


def run_playbook(playbook: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a playbook of the current scenario against molecule's inventory and config."""
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    env = dict(os.environ, ANSIBLE_CONFIG=str(ephemeral / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false")
    command = ["ansible-playbook", "-i", str(ephemeral / "inventory"), str(scenario / playbook), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, check=False)
    if check and result.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(command), result.returncode, result.stdout[-6000:], result.stderr[-3000:]))
    return result


def wait_for(predicate, timeout: float = 90, message: str = "condition") -> None:
    """Poll ``predicate`` once a second until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError("timed out waiting for " + message)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    found = {m["host"]: {k: int(m[k]) for k in ("changed", "unreachable", "failed")} for m in RECAP.finditer(output)}
    assert found, "no PLAY RECAP in output:\n" + output[-3000:]
    return found


def unit_properties(host, unit: str, *names: str) -> dict[str, str]:
    output = host.check_output("systemctl show %s -p %s", unit, ",".join(names))
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def json_rpc(host, url: str, method: str, params=None):
    """POST a JSON-RPC call from inside the host (Debian's python3; no curl in the image)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    script = (
        "import sys, urllib.request; "
        "r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), "
        "headers={'Content-Type': 'application/json'}), timeout=30); print(r.read().decode())"
    )
    return json.loads(host.check_output("python3 -c %s %s %s", script, url, body))["result"]


def listeners(host) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket."""
    result = []
    for line in host.check_output("ss -Hltn").splitlines():
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        result.append((address.strip("[]"), int(port)))
    return result


# Runs inside a test host: connect to every TCP port of a target at once (bounded concurrency)
# and print the ports that accepted. Dropped packets time out (filtered), rejects fail fast. On a loaded
# machine an open port can miss the 0.5 s of the fast pass: the ports the target listens on (argv[4],
# comma-separated) that it missed are probed again, a few connections with 5 s each.
PORT_SCAN = r"""
import asyncio, json, sys
target, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
listening = [int(p) for p in sys.argv[4].split(",") if p]
async def probe(port, limit, opened, timeout):
    async with limit:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(target, port), timeout)
            opened.append(port)
            writer.close()
        except Exception:
            pass
async def main():
    limit, opened = asyncio.Semaphore(2000), []
    await asyncio.gather(*(probe(p, limit, opened, 0.5) for p in range(first, last + 1)))
    missed = [port for port in listening if first <= port <= last and port not in opened]
    if missed:
        limit = asyncio.Semaphore(len(missed))
        await asyncio.gather(*(probe(port, limit, opened, 5) for port in missed))
    print(json.dumps(sorted(opened)))
asyncio.run(main())
"""


def open_tcp_ports(host, target: str, first: int = 1, last: int = 65535, listening=()) -> list[int]:
    """TCP ports of ``target`` that accept a connection from ``host``. ``listening``: the target's listening
    ports (see ``listeners``), probed again slowly when the fast pass missed them."""
    return json.loads(host.check_output("ulimit -n 8192; python3 -c %s %s %s %s %s", PORT_SCAN, target, str(first), str(last),
                                        ",".join(str(p) for p in listening) or ","))
