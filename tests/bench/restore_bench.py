"""Benchmark: restoring a node from a snapshot archive, against its baselines, same run.

1. Time to synced. A source litecoind (regtest, loopback only) mines --blocks blocks; its data
   directory is archived (tar | zstd, as playbooks/snapshot.yml does); then it mines --extra more.
   Two fresh nodes then sync with the source over P2P, one after the other:
     * genesis:  an empty data directory, syncing every block from the source;
     * restored: the archive streamed through the real snapshot_archive_restore module (run by
       ansible-playbook, download over loopback HTTP, sha256 checked) and the node started on it.
   Each is timed from the start (of the restore, for the restored node) until the node's block
   count equals the source's. Printed: both times and genesis / restored.
2. Pipeline throughput. The same kind of archive, made large (--size MiB of node-like data), is
   restored (a) by the module (curl | hash stage (tee(2) + hashlib sha256) | zstd -d --no-check |
   tar -x -b 2048 over loopback HTTP, as the role does; the server uses sendfile) and
   (b) by `zstd -d -c FILE | tar -x` from the local file, the raw baseline. Median of --repeat
   runs each, every run after os.sync() so that none pays for another's write-back; printed as
   MiB/s and module / raw (target >= 0.8). The module's figure is its pipeline time
   (pipeline_seconds); the whole module run (marker fsync, swap, record) is printed beside it.

Usage: .venv/bin/python tests/bench/restore_bench.py [--blocks 3000] [--extra 200] [--size 512] [--repeat 3]
"""
from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import http.server
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from playbook_runner import ansible_playbook  # noqa: E402

LITECOIND = Path("/usr/lib/litecoin/litecoind")
# Litecoin 0.21 regtest needs a wallet peg-in past height 431 (MWEB); keep MWEB out of reach.
CONSENSUS = ["-vbparams=mweb:4000000000:4000000001"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Node:
    def __init__(self, datadir: Path, connect: int | None = None):
        self.datadir, self.rpc_port, self.p2p_port = datadir, free_port(), free_port()
        self.password = secrets.token_hex(16)
        datadir.mkdir(parents=True, exist_ok=True)
        args = [str(LITECOIND), "-regtest", f"-datadir={datadir}", "-server=1", "-disablewallet", "-dnsseed=0",
                "-listenonion=0", "-printtoconsole=0", "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1",
                f"-rpcport={self.rpc_port}", "-rpcuser=bench", f"-rpcpassword={self.password}", "-bind=127.0.0.1",
                f"-port={self.p2p_port}", "-discover=0", *CONSENSUS]
        args += [f"-connect=127.0.0.1:{connect}"] if connect else ["-connect=0"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.rpc("getblockcount")
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("litecoind did not start in %s" % datadir)
                time.sleep(0.05)

    def rpc(self, method, *params):
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.rpc_port}", data=body, headers={
            "Authorization": "Basic " + base64.b64encode(f"bench:{self.password}".encode()).decode()})
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())["result"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def make_archive(source: Path, archive: Path, excludes=(".lock", "*.pid", ".cookie", "debug.log")) -> str:
    tar = subprocess.Popen(["tar", "-C", str(source), *("--exclude=" + e for e in excludes), "-cf", "-", "."], stdout=subprocess.PIPE)
    with open(archive, "wb") as out:
        subprocess.run(["zstd", "-q", "-T0", "-3", "-c"], stdin=tar.stdout, stdout=out, check=True)
    assert tar.wait() == 0
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Server:
    def __init__(self, root: Path):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def copyfile(self, source, outputfile):
                # sendfile(2): the server stands in for S3 or a CDN and should not compete with the
                # restore for the CPU by copying bytes through Python.
                outputfile.flush()
                self.connection.sendfile(source)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()


def module_restore(work: Path, url: str, sha256: str, dest: Path) -> dict:
    """Run the real module through ansible-playbook; return its result."""
    out = work / "module-result.json"
    playbook = work / "restore.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"chainops.validator.snapshot_archive_restore": {"url": url, "sha256": sha256, "dest": str(dest)}, "register": "r"},
        {"ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(out), "mode": "0600"}}]}]))
    result = ansible_playbook(playbook, "-i", "localhost,")
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:])
    return json.loads(out.read_text())


def wait_synced(node: Node, height: int, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while node.rpc("getblockcount") < height:
        if time.monotonic() > deadline:
            raise RuntimeError("node did not reach %d" % height)
        time.sleep(0.05)


def time_to_synced(work: Path, blocks: int, extra: int) -> None:
    source = Node(work / "source")
    nodes = [source]
    server = None
    try:
        source.rpc("generatetodescriptor", blocks, "raw(51)")
        source.stop()
        archive_dir = work / "served"
        archive_dir.mkdir()
        sha = make_archive(work / "source", archive_dir / "chain.tar.zst")
        size = (archive_dir / "chain.tar.zst").stat().st_size
        source = Node(work / "source")
        nodes.append(source)
        source.rpc("generatetodescriptor", extra, "raw(51)")
        height = source.rpc("getblockcount")
        server = Server(archive_dir)

        started = time.monotonic()
        genesis = Node(work / "genesis", connect=source.p2p_port)
        nodes.append(genesis)
        wait_synced(genesis, height)
        genesis_seconds = time.monotonic() - started
        genesis.stop()

        started = time.monotonic()
        module_result = module_restore(work, server.url + "chain.tar.zst", sha, work / "restored")
        restored_at = time.monotonic() - started
        restored = Node(work / "restored", connect=source.p2p_port)
        nodes.append(restored)
        wait_synced(restored, height)
        restored_seconds = time.monotonic() - started
        print("time to synced, litecoind regtest, %d blocks archived, %d more on the network (archive %.1f MiB):"
              % (blocks, extra, size / 1048576))
        print("  genesis sync:           %7.2f s" % genesis_seconds)
        print("  restore + catch-up:     %7.2f s (of which restore incl. ansible-playbook start-up %.2f s)" % (restored_seconds, restored_at))
        # The same without ansible-playbook's own start-up (the module's measured download+extract).
        core = restored_seconds - restored_at + module_result["seconds"]
        print("  ratio genesis/restored: %7.2f" % (genesis_seconds / restored_seconds))
        print("  without ansible start-up: restore %.2f s + start and catch-up %.2f s = %.2f s, ratio %.2f"
              % (module_result["seconds"], restored_seconds - restored_at, core, genesis_seconds / core))
    finally:
        for node in nodes:
            node.stop()
        if server:
            server.close()


def synthetic_tree(root: Path, mib: int) -> None:
    """Node-like data: block files (mostly incompressible) and many small leveldb-like files."""
    rng = os.urandom
    blocks = root / "regtest" / "blocks"
    state = root / "regtest" / "chainstate"
    blocks.mkdir(parents=True)
    state.mkdir(parents=True)
    written, index = 0, 0
    while written < mib * 1048576:
        # half random, half repetitive: zstd ratio around 2, like real block data
        chunk = rng(1 << 19) + (b"\x00\x01chainops" * (1 << 16))[: 1 << 19]
        if index % 4 == 0:
            for n in range(16):
                (state / ("%06d.ldb" % (index * 16 + n))).write_bytes(chunk[n * 65536:(n + 1) * 65536])
        else:
            with open(blocks / ("blk%05d.dat" % (index // 8)), "ab") as handle:
                handle.write(chunk)
        written += len(chunk)
        index += 1


def pipeline_throughput(work: Path, mib: int, repeat: int) -> None:
    tree = work / "synthetic"
    synthetic_tree(tree, mib)
    served = work / "served-big"
    served.mkdir()
    sha = make_archive(tree, served / "big.tar.zst")
    shutil.rmtree(tree)
    size = (served / "big.tar.zst").stat().st_size
    server = Server(served)
    module_times, raw_times, whole_times = [], [], []
    try:
        for run in range(repeat):
            dest = work / ("raw%d" % run)
            dest.mkdir()
            # Write back what the previous run left dirty, so that no run pays for another's writes.
            os.sync()
            started = time.monotonic()
            subprocess.run("zstd -d -c -q %s | tar -x -C %s" % (served / "big.tar.zst", dest), shell=True, check=True)
            raw_times.append(time.monotonic() - started)
            shutil.rmtree(dest)
            dest = work / ("module%d" % run)
            os.sync()
            result = module_restore(work, server.url + "big.tar.zst", sha, dest)
            assert result["bytes"] == size
            # The pipeline alone, comparable with the raw one; the whole module run (fsync of the
            # marker, which writes back the extracted tree, swap, record) is printed beside it.
            module_times.append(result["pipeline_seconds"])
            whole_times.append(result["seconds"])
            shutil.rmtree(dest)
            (work / (".module%d.snapshot-restore.json" % run)).unlink()
    finally:
        server.close()
    raw, module = statistics.median(raw_times), statistics.median(module_times)
    print("restore pipeline, archive %.0f MiB (%d MiB extracted), median of %d:" % (size / 1048576, mib, repeat))
    print("  raw zstd -d | tar -x (local file):                %7.1f MiB/s  (%s s)" % (size / 1048576 / raw, " ".join("%.2f" % t for t in raw_times)))
    print("  module curl | sha256 | zstd -d | tar -x (HTTP):   %7.1f MiB/s  (%s s)" % (size / 1048576 / module, " ".join("%.2f" % t for t in module_times)))
    whole = statistics.median(whole_times)
    print("  whole module run incl. fsync, swap, record:       %7.1f MiB/s  (%s s)" % (size / 1048576 / whole, " ".join("%.2f" % t for t in whole_times)))
    print("  ratio module pipeline/raw throughput:             %7.2f  (target >= 0.8)" % (raw / module))
    print("  ratio whole module run/raw throughput:            %7.2f" % (raw / whole))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=3000)
    parser.add_argument("--extra", type=int, default=200)
    parser.add_argument("--size", type=int, default=512, help="MiB of synthetic data for the throughput part")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for tool in ("zstd", "tar"):
        if not shutil.which(tool):
            sys.exit("%s is needed" % tool)
    if not LITECOIND.exists():
        sys.exit("litecoind not found at %s: install the Debian package litecoind" % LITECOIND)
    with tempfile.TemporaryDirectory(prefix="restore-bench-") as work:
        time_to_synced(Path(work) / "sync", args.blocks, args.extra)
        (Path(work) / "pipe").mkdir()
        pipeline_throughput(Path(work) / "pipe", args.size, args.repeat)


if __name__ == "__main__":
    main()
