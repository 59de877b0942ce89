"""chainops_allowlist with the real nftables, in network namespaces of its own (nothing on this machine's
own firewall changes): a sentry admits new P2P connections only from the validators the chain lists,
keeps its last good list when the chain cannot be asked or lists nobody, and with no list at all
admits no one (never everyone).

Two namespaces joined by a veth pair: the sentry (192.0.2.1) runs the program, a loopback JSON-RPC
server answering getPReps from the fixture, and a P2P listener; the peer side dials from 192.0.2.10 (a
listed validator) and from 192.0.2.66 (not listed)."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "roles/validator_allowlist/files/chainops_allowlist.py"
FIXTURE = json.loads((ROOT / "tests/unit/validator_allowlist/fixtures/icon_getpreps.json").read_text())
SENTRY, LISTED, UNLISTED = "192.0.2.1", "192.0.2.10", "192.0.2.66"

JSON_SERVER = ROOT / "tests/testlib/json_server.py"
LISTENER = textwrap.dedent("""
    import socket
    server = socket.create_server(("0.0.0.0", 7100))
    while True:
        connection, _ = server.accept()
        connection.sendall(b"hello")
        connection.close()
""")


def sh(*argv, check=True, **kwargs):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=check, **kwargs)


@pytest.fixture
def lab(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces and nftables); CI runs it as root")
    suffix = str(os.getpid())[-6:]
    sentry_ns, peer_ns = "chainops-al-s%s" % suffix, "chainops-al-p%s" % suffix
    processes = []
    sh("ip", "netns", "add", sentry_ns)
    sh("ip", "netns", "add", peer_ns)
    try:
        sh("ip", "link", "add", "als" + suffix, "netns", sentry_ns, "type", "veth", "peer", "name", "alp" + suffix, "netns", peer_ns)
        for ns, link, addresses in ((sentry_ns, "als" + suffix, [SENTRY]), (peer_ns, "alp" + suffix, [LISTED, UNLISTED])):
            for address in addresses:
                sh("ip", "-n", ns, "addr", "add", address + "/24", "dev", link)
            sh("ip", "-n", ns, "link", "set", link, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        answer = tmp_path / "answer.json"
        listed = copy.deepcopy(FIXTURE)
        listed["result"]["preps"] = [dict(listed["result"]["preps"][0], p2pEndpoint=LISTED + ":7100")]
        answer.write_text(json.dumps(listed))

        def start(*argv):
            process = subprocess.Popen(["ip", "netns", "exec", sentry_ns, sys.executable, *argv])
            processes.append(process)
            return process

        start("-c", LISTENER)
        server = start(str(JSON_SERVER), "127.0.0.1", "9000", str(answer))
        config = tmp_path / "allowlist.json"
        config.write_text(json.dumps({
            "endpoints": ["http://127.0.0.1:9000/api/v3"], "ports": [{"port": 7100, "protocol": "tcp"}],
            "extra_cidrs": ["198.51.100.0/24"], "state_file": str(tmp_path / "state" / "state.json"), "timeout_s": 2}))
        sh("ip", "netns", "exec", sentry_ns, sys.executable, "-c",
           "import socket, time\nfor _ in range(100):\n    try:\n        socket.create_connection(('127.0.0.1', 9000), 1).close(); break\n"
           "    except OSError: time.sleep(0.05)")

        class Lab:
            state_file = tmp_path / "state" / "state.json"

            @staticmethod
            def run():
                proc = sh("ip", "netns", "exec", sentry_ns, sys.executable, str(PROGRAM), str(config), check=False)
                return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {"stderr": proc.stderr})

            @staticmethod
            def admitted():
                listing = json.loads(sh("ip", "netns", "exec", sentry_ns, "nft", "-j", "list", "set", "inet", "chainops_allowlist", "admitted4").stdout)
                [entry] = [item["set"] for item in listing["nftables"] if "set" in item]
                return sorted(e["prefix"]["addr"] + "/" + str(e["prefix"]["len"]) if isinstance(e, dict) else e for e in entry.get("elem", []))

            @staticmethod
            def dial(source):
                proc = sh("ip", "netns", "exec", peer_ns, sys.executable, "-c",
                          "import socket\ns = socket.create_connection(('%s', 7100), timeout=1.5, source_address=('%s', 0))\nprint(s.recv(5).decode())"
                          % (SENTRY, source), check=False)
                return proc.stdout.strip() == "hello"

            @staticmethod
            def answer(doc):
                answer.write_text(json.dumps(doc))

            @staticmethod
            def stop_chain():
                server.terminate()
                server.wait(10)

        yield Lab
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        sh("ip", "netns", "del", sentry_ns, check=False)
        sh("ip", "netns", "del", peer_ns, check=False)


def test_only_listed_validators_reach_the_p2p_port_and_the_last_good_list_survives_outages(lab):
    # Before any list: nothing guards the port (the table does not exist yet).
    assert lab.dial(UNLISTED)
    code, result = lab.run()
    assert code == 0 and result["changed"], result
    assert lab.admitted() == ["192.0.2.10", "198.51.100.0/24"]
    assert lab.dial(LISTED) and not lab.dial(UNLISTED)
    # Unchanged on the next run.
    code, result = lab.run()
    assert (code, result["changed"]) == (0, False) and result["message"].startswith("unchanged:"), result

    # The chain lists nobody: the last good list stays.
    lab.answer({"jsonrpc": "2.0", "id": 1, "result": {"blockHeight": "0x10", "preps": []}})
    code, result = lab.run()
    assert code == 3 and "kept the last good list" in result["message"], result
    assert "the chain lists no reachable main/sub validator endpoint (0 listed)" in result["message"]
    assert lab.admitted() == ["192.0.2.10", "198.51.100.0/24"] and lab.dial(LISTED) and not lab.dial(UNLISTED)

    # The chain cannot be asked: the last good list stays.
    lab.stop_chain()
    code, result = lab.run()
    assert code == 3 and "kept the last good list" in result["message"], result
    assert "http://127.0.0.1:9000/api/v3:" in result["message"]
    assert lab.dial(LISTED) and not lab.dial(UNLISTED)

    # No list ever (a new host) and no chain: only extra_cidrs, never everyone.
    lab.state_file.unlink()
    code, result = lab.run()
    assert code == 4 and "admit only extra_cidrs (1)" in result["message"], result
    assert lab.admitted() == ["198.51.100.0/24"]
    assert not lab.dial(LISTED) and not lab.dial(UNLISTED)
