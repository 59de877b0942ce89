"""Benchmark: restoring a node from a snapshot archive, against its baselines, same run.

1. Time to synced. A source litecoind (regtest, loopback only) mines --blocks blocks; its data
   directory is archived (tar | zstd, as playbooks/snapshot.yml does); then it mines --extra more.
   Two fresh nodes then sync with the source over P2P, one after the other:
     * genesis:  an empty data directory, syncing every block from the source;
     * restored: the archive streamed through the real snapshot_archive_restore module (run by
       ansible-playbook, download over loopback HTTP, sha256 checked) and the node started on it.
   Each is timed from the start (of the restore, for the restored node) until the node's block
   count equals the source's. Printed: both times and genesis / restored.
2. The limit of a restore, side by side in one run on the same archive (--size MiB of node-like
   data, zstd ratio about 2, manifest parts of --part MiB), served over loopback by
   tests/testlib/range_server.py with a per-connection cap of --rate MiB/s, as one S3 GET stream
   gives about 90 MB/s:
     * ceiling:  ``zstd -d | tar -x`` of the local file, what decompression and extraction allow;
     * single:   the module with connections=0: one curl stream into hash | zstd -d | tar -x,
                 the restore as it was before parallel parts;
     * parallel: the module with --connections ranged parts fed in order (the default path);
     * awscli:   ``aws s3 cp s3://bench/big.tar.zst - | zstd -d | tar -x``, awscli's own
                 multi-threaded ranged download (--connections threads, --part MiB chunks) against
                 the same server (path-style S3; moto would serve it without a per-connection cap).
   Median of --repeat runs each, every run after os.sync(); the module's figure is its pipeline
   time (pipeline_seconds). Printed: MiB/s of archive, ratios parallel/ceiling (target >= 0.8),
   parallel/single (>= 4 where the ceiling allows it) and parallel/awscli (>= 1.0).
   awscli comes from PyPI into its own virtualenv: ``make bench-tools``.

Usage: .venv/bin/python tests/bench/restore_bench.py [--blocks 3000] [--extra 200] [--size 1024] [--repeat 3]
           [--rate 90] [--connections 8] [--part 16] [--skip-sync]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "testlib"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
from playbook_runner import ansible_playbook  # noqa: E402
from range_server import RangeServer  # noqa: E402

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


def module_restore(work: Path, url: str, sha256: str, dest: Path, **options) -> dict:
    """Run the real module through ansible-playbook; return its result."""
    out = work / "module-result.json"
    playbook = work / "restore.yml"
    args = dict(options, url=url, sha256=sha256, dest=str(dest))
    playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"chainops.validator.snapshot_archive_restore": args, "register": "r", "no_log": True},
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
        server = RangeServer(archive_dir)

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


def manifest_parts(archive: Path, part_size: int) -> list:
    """The archive's parts as the upload lists them in the manifest."""
    parts = []
    with open(archive, "rb") as handle:
        for chunk in iter(lambda: handle.read(part_size), b""):
            parts.append({"size": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    return parts


def timed_shell(command: str, env=None) -> float:
    os.sync()  # write back what the previous run left dirty, so that no run pays for another's writes
    started = time.monotonic()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, env=env)
    return time.monotonic() - started


def restore_limit(work: Path, mib: int, repeat: int, rate_mib: float, connections: int, part_mib: int, aws: str | None) -> None:
    """Same archive, same run: local ceiling, today's single stream, the parallel restore, awscli."""
    tree = work / "synthetic"
    synthetic_tree(tree, mib)
    served = work / "served"
    (served / "bench").mkdir(parents=True)
    archive = served / "bench" / "big.tar.zst"
    sha = make_archive(tree, archive)
    shutil.rmtree(tree)
    size = archive.stat().st_size
    parts = manifest_parts(archive, part_mib << 20)
    server = RangeServer(served, rate=rate_mib * 1048576 if rate_mib else None)
    url = server.url + "bench/big.tar.zst"
    aws_env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                   AWS_CONFIG_FILE=str(work / "aws-config"))
    (work / "aws-config").write_text("[default]\ns3 =\n  max_concurrent_requests = %d\n  multipart_chunksize = %dMB\n"
                                     % (connections, part_mib))
    times = {"ceiling": [], "single": [], "parallel": [], "awscli": []}
    try:
        for run in range(repeat):
            dest = work / "dest"
            dest.mkdir()
            times["ceiling"].append(timed_shell("zstd -d -c -q %s | tar -x -C %s" % (archive, dest)))
            shutil.rmtree(dest)
            for label, count in (("single", 0), ("parallel", connections)):
                os.sync()
                result = module_restore(work, url, sha, dest, parts=parts, size=size, connections=count)
                assert result["bytes"] == size and result["parts"] == (len(parts) if count else 0), result
                times[label].append(result["pipeline_seconds"])
                shutil.rmtree(dest)
                (work / ".dest.snapshot-restore.json").unlink()
            if aws:
                dest.mkdir()
                times["awscli"].append(timed_shell(
                    "%s s3 cp --only-show-errors --endpoint-url %s s3://bench/big.tar.zst - | zstd -d -c -q | tar -x -C %s"
                    % (aws, server.url.rstrip("/"), dest), env=aws_env))
                shutil.rmtree(dest)
    finally:
        server.close()
    rate = {label: size / 1048576 / statistics.median(values) for label, values in times.items() if values}
    print("restore of one archive, %.0f MiB (%d MiB extracted, %d parts of %d MiB), server cap %s per connection, median of %d:"
          % (size / 1048576, mib, len(parts), part_mib, "%.0f MiB/s" % rate_mib if rate_mib else "none", repeat))
    rows = [("ceiling", "zstd -d | tar -x of the local file"),
            ("single", "module, one stream: curl | hash | zstd -d | tar -x (the path before)"),
            ("parallel", "module, %d connections, ranged parts fed in order" % connections),
            ("awscli", "aws s3 cp - (%d threads) | zstd -d | tar -x" % connections)]
    for label, what in rows:
        if label in rate:
            print("  %-9s %7.1f MiB/s  %s  (%s s)" % (label, rate[label], what, " ".join("%.2f" % t for t in times[label])))
    print("  ratio parallel/ceiling: %5.2f  (target >= 0.8)" % (rate["parallel"] / rate["ceiling"]))
    print("  ratio parallel/single:  %5.2f  (target >= 4 where the ceiling allows 4 streams: ceiling/single = %.2f)"
          % (rate["parallel"] / rate["single"], rate["ceiling"] / rate["single"]))
    if "awscli" in rate:
        print("  ratio parallel/awscli:  %5.2f  (target >= 1.0)" % (rate["parallel"] / rate["awscli"]))
    else:
        print("  awscli: not found (make bench-tools installs it into .cache/bench-venv); no ratio")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=3000)
    parser.add_argument("--extra", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024, help="MiB of synthetic data for the throughput part")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=90, help="per-connection cap of the server, MiB/s (0: none)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--part", type=int, default=16, help="MiB per manifest part")
    parser.add_argument("--aws", default=str(REPO / ".cache" / "bench-venv" / "bin" / "aws"), help="awscli executable")
    parser.add_argument("--skip-sync", action="store_true", help="only the throughput part")
    args = parser.parse_args()
    for tool in ("zstd", "tar", "curl"):
        if not shutil.which(tool):
            sys.exit("%s is needed" % tool)
    if not args.skip_sync and not LITECOIND.exists():
        sys.exit("litecoind not found at %s: install the Debian package litecoind" % LITECOIND)
    aws = args.aws if os.access(args.aws, os.X_OK) else shutil.which("aws")
    with tempfile.TemporaryDirectory(prefix="restore-bench-") as work:
        if not args.skip_sync:
            time_to_synced(Path(work) / "sync", args.blocks, args.extra)
        (Path(work) / "pipe").mkdir()
        restore_limit(Path(work) / "pipe", args.size, args.repeat, args.rate, args.connections, args.part, aws)


if __name__ == "__main__":
    main()
