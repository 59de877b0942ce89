"""Helpers shared by the tests, the benchmarks and the molecule scenarios' testinfra tests."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
                   re.M)


def link_collection(root: Path) -> Path:
    """Make ``root`` a collections path whose chainops.validator is this working tree; returns root."""
    link = Path(root) / "ansible_collections" / "chainops" / "validator"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    return Path(root)


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


def recap(output: str, fields=("changed", "unreachable", "failed"), required: bool = True) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host (``fields`` of ok, changed, unreachable, failed); ``required``: fail
    when the output has no recap."""
    found = {m["host"]: {k: int(m[k]) for k in fields} for m in RECAP.finditer(output)}
    assert found or not required, "no PLAY RECAP in output:\n" + output[-3000:]
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


ETH_RPC = "http://127.0.0.1:8545/"  # the ethereumjs profile's RPC, on the node's loopback


def eth_rpc(host, method: str, params=None, url: str = ETH_RPC):
    """A JSON-RPC call to the Ethereum client running in ``host`` (a testinfra host)."""
    return json_rpc(host, url, method, params)


def eth_height(host, url: str = ETH_RPC) -> int:
    return int(eth_rpc(host, "eth_blockNumber", url=url), 16)


def eth_block_hash(host, number: int, url: str = ETH_RPC) -> str:
    return eth_rpc(host, "eth_getBlockByNumber", [hex(number), False], url=url)["hash"]


def eth_enode_id(host, url: str = ETH_RPC) -> str:
    """The enode ID the running client announces (admin_nodeInfo)."""
    return eth_rpc(host, "admin_nodeInfo", url=url)["enode"].split("//")[1].split("@")[0]


def eth_answers(host, url: str = ETH_RPC) -> bool:
    """Whether the client answers its RPC yet (json_rpc's check_output fails while it is not up)."""
    try:
        eth_height(host, url)
    except AssertionError:
        return False
    return True


def listeners(host) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket."""
    result = []
    for line in host.check_output("ss -Hltn").splitlines():
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        result.append((address.strip("[]"), int(port)))
    return result


# Runs inside a test host: connect to every TCP port of each target at once (non-blocking sockets, epoll,
# SCAN_WIDTH connections in flight) and print the ports that accepted, per target. Dropped packets time
# out (filtered), rejects fail fast. On a loaded machine an open port can miss the 0.5 s of the fast
# pass: the ports a target listens on that it missed are probed again, a few connections with 5 s each.
# argv: targets (comma-separated), first port, last port, {target: [listening ports]} as JSON.
SCAN_WIDTH = 8000
PORT_SCAN = r"""
import collections, errno, json, select, socket, sys, time
targets, first, last, listening = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
def scan(pairs, width, timeout):
    opened, pending, poller, flight, expiry = set(), iter(pairs), select.epoll(), {}, collections.deque()
    def launch():
        while len(flight) < width:
            pair = next(pending, None)
            if pair is None:
                return
            sock = socket.socket()
            sock.setblocking(False)
            code = sock.connect_ex(pair)
            if code == errno.EINPROGRESS:
                poller.register(sock.fileno(), select.EPOLLOUT)
                flight[sock.fileno()] = (sock, pair)
                expiry.append((time.monotonic() + timeout, sock))
            else:
                if code == 0:
                    opened.add(pair)
                sock.close()
    def finish(sock):
        poller.unregister(sock.fileno())
        del flight[sock.fileno()]
        sock.close()
    launch()
    while flight:
        for fd, _ in poller.poll(0.05):
            sock, pair = flight[fd]
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                opened.add(pair)
            finish(sock)
        now = time.monotonic()
        while expiry and (expiry[0][1].fileno() < 0 or expiry[0][0] <= now):
            sock = expiry.popleft()[1]
            if sock.fileno() >= 0:
                finish(sock)
        launch()
    return opened
opened = scan([(t, p) for p in range(first, last + 1) for t in targets], %d, 0.5)
missed = [(t, p) for t in targets for p in listening.get(t, []) if first <= p <= last and (t, p) not in opened]
if missed:
    opened |= scan(missed, len(missed), 5)
print(json.dumps({t: sorted(p for u, p in opened if u == t) for t in targets}))
""" % SCAN_WIDTH


def open_tcp_ports_of(host, listening_by_target: dict, first: int = 1, last: int = 65535) -> dict:
    """{target: TCP ports that accept a connection from ``host``}, several targets in one scan.
    ``listening_by_target``: each target's listening ports (see ``listeners``), probed again slowly
    when the fast pass missed them."""
    listening = json.dumps({target: sorted(set(ports)) for target, ports in listening_by_target.items()})
    return json.loads(host.check_output("ulimit -n %d; python3 -c %%s %%s %%s %%s %%s" % (SCAN_WIDTH + 1024), PORT_SCAN,
                                        ",".join(listening_by_target), str(first), str(last), listening))


def open_tcp_ports(host, target: str, first: int = 1, last: int = 65535, listening=()) -> list[int]:
    """TCP ports of ``target`` that accept a connection from ``host``. ``listening``: the target's listening
    ports (see ``listeners``), probed again slowly when the fast pass missed them."""
    return open_tcp_ports_of(host, {target: list(listening)}, first, last)[target]
