"""snapshot_archive_restore on the controller: a real archive served over loopback HTTP, real curl/tar/zstd/lz4.

Covers the restore in parallel byte ranges (the server answers ranges as S3 does) and as one stream
(a server that ignores ranges), secret files kept and never taken from the archive, idempotence,
checksum mismatch (data untouched, staging cleaned), a download cut off at about 60 % being resumed
with only the missing parts fetched again (counted at the server), a bad part found by its sha256
and fetched again alone, an interrupted extraction being redone, a verified extraction being resumed
without a download, and the refusal to overwrite data.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from chainops_testlib import RECAP  # tests/testlib, put on sys.path by tests/conftest.py
from playbook_runner import ansible_playbook
from range_server import RangeServer

# Installed by `make setup` (tests/harness/system-deps.sh): missing tools are an error, not a skip.
MISSING_TOOLS = [tool for tool in ('zstd', 'lz4', 'curl') if not shutil.which(tool)]
assert not MISSING_TOOLS, "run make setup: missing %s" % MISSING_TOOLS


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("archives")
    source = root / "source"
    (source / "regtest" / "blocks").mkdir(parents=True)
    (source / "regtest" / "blocks" / "blk00000.dat").write_bytes(os.urandom(300_000) + b"\0" * 700_000)
    (source / "regtest" / "chainstate").mkdir()
    (source / "regtest" / "chainstate" / "000001.ldb").write_text("state\n" * 1000)
    # The source's secret: must never reach a restored node.
    (source / "regtest" / "wallets").mkdir()
    (source / "regtest" / "wallets" / "source-only").write_text("source secret\n")
    sums = {}
    for name, compressor in (("a.tar.zst", ["zstd", "-q", "-c"]), ("a.tar.lz4", ["lz4", "-q", "-c"])):
        tar = subprocess.Popen(["tar", "-C", str(source), "-cf", "-", "."], stdout=subprocess.PIPE)
        with open(root / name, "wb") as out:
            subprocess.run(compressor, stdin=tar.stdout, stdout=out, check=True)
        assert tar.wait() == 0
        sums[name] = hashlib.sha256((root / name).read_bytes()).hexdigest()

    server = RangeServer(root)
    yield {"url": server.url, "sums": sums, "root": str(root), "server": server}
    server.close()


def run(tmp_path, **args):
    playbook = tmp_path / "restore.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "tasks": [{"chainops.validator.snapshot_archive_restore": args, "register": "out"},
                  {"ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": str(tmp_path / "out.json"), "mode": "0600"},
                   "changed_when": False}],
    }]))
    (tmp_path / "out.json").unlink(missing_ok=True)
    result = ansible_playbook(playbook, "-i", "localhost,")
    recap = RECAP.search(result.stdout)
    out = json.loads((tmp_path / "out.json").read_text()) if (tmp_path / "out.json").exists() else None
    return result, recap, out


def test_restore_keeps_secrets_and_is_idempotent(served, tmp_path):
    dest = tmp_path / "data" / "litecoind"
    (dest / "regtest" / "wallets").mkdir(parents=True)
    (dest / "regtest" / "wallets" / "own-only").write_text("own secret\n")
    args = dict(url=served["url"] + "a.tar.zst", sha256=served["sums"]["a.tar.zst"], dest=str(dest), keep=["regtest/wallets"], name="a")
    result, recap, out = run(tmp_path, **args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert out["changed"] is True and out["kept"] == ["regtest/wallets"] and out["bytes"] > 0
    assert (dest / "regtest" / "blocks" / "blk00000.dat").stat().st_size == 1_000_000
    assert (dest / "regtest" / "wallets" / "own-only").read_text() == "own secret\n"
    assert not (dest / "regtest" / "wallets" / "source-only").exists()
    assert not (dest.parent / ".litecoind.restore").exists()
    assert json.loads((dest.parent / ".litecoind.snapshot-restore.json").read_text())["sha256"] == served["sums"]["a.tar.zst"]
    # The presigned URL is a credential: it must not appear in the output.
    assert served["url"] + "a.tar.zst" not in result.stdout
    result, recap, out = run(tmp_path, **args)
    assert result.returncode == 0 and out["changed"] is False and int(recap["changed"]) == 0


def test_lz4_and_no_secret_dir(served, tmp_path):
    dest = tmp_path / "node"
    result, _log, out = run(tmp_path, url=served["url"] + "a.tar.lz4", sha256=served["sums"]["a.tar.lz4"], compression="lz4",
                            dest=str(dest), keep=["regtest/wallets"])
    assert result.returncode == 0, result.stdout
    assert out["kept"] == [] and (dest / "regtest" / "chainstate" / "000001.ldb").exists()
    assert not (dest / "regtest" / "wallets").exists()


def test_checksum_mismatch_leaves_data_untouched_and_no_staging(served, tmp_path):
    dest = tmp_path / "node"
    dest.mkdir()
    (dest / "keep-me").mkdir()
    result, _log, _out = run(tmp_path, url=served["url"] + "a.tar.zst", sha256="0" * 64, dest=str(dest), keep=["keep-me"])
    assert result.returncode != 0
    assert "checksum mismatch" in result.stdout
    assert sorted(os.listdir(dest)) == ["keep-me"]
    assert not (tmp_path / ".node.restore").exists()


def test_interrupted_extraction_is_redone(served, tmp_path):
    dest = tmp_path / "node"
    staging = tmp_path / ".node.restore"
    (staging / "tree" / "regtest").mkdir(parents=True)
    (staging / "tree" / "regtest" / "half-written").write_text("junk")
    result, _log, out = run(tmp_path, url=served["url"] + "a.tar.zst", sha256=served["sums"]["a.tar.zst"], dest=str(dest))
    assert result.returncode == 0, result.stdout
    assert out["resumed"] is False and out["bytes"] > 0
    assert not (dest / "regtest" / "half-written").exists() and (dest / "regtest" / "blocks").exists()


def test_verified_extraction_is_resumed_without_download(served, tmp_path):
    dest = tmp_path / "node"
    staging = tmp_path / ".node.restore"
    (staging / "tree" / "regtest").mkdir(parents=True)
    (staging / "tree" / "regtest" / "done").write_text("extracted earlier")
    (staging / ".complete").write_text(served["sums"]["a.tar.zst"] + "\n")
    # A URL that would fail: the resume must not download.
    result, _log, out = run(tmp_path, url=served["url"] + "missing.tar.zst", sha256=served["sums"]["a.tar.zst"], dest=str(dest))
    assert result.returncode == 0, result.stdout
    assert out["resumed"] is True and out["bytes"] == 0
    assert (dest / "regtest" / "done").read_text() == "extracted earlier" and not staging.exists()


def test_refuses_data_without_force_and_check_mode(served, tmp_path):
    dest = tmp_path / "node"
    (dest / "regtest" / "blocks").mkdir(parents=True)
    args = dict(url=served["url"] + "a.tar.zst", sha256=served["sums"]["a.tar.zst"], dest=str(dest))
    result, _log, _out = run(tmp_path, **args)
    assert result.returncode != 0 and "holds node data (regtest, regtest/blocks)" in result.stdout
    result, _log, out = run(tmp_path, force=True, **args)
    assert result.returncode == 0 and (dest / "regtest" / "blocks" / "blk00000.dat").exists()


def test_bad_input_fails_clearly(tmp_path):
    result, _log, _out = run(tmp_path, url="http://127.0.0.1:9/x", sha256="abc", dest=str(tmp_path / "d"))
    assert result.returncode != 0 and "sha256 must be 64 hex digits" in result.stdout
    result, _log, _out = run(tmp_path, url="http://127.0.0.1:9/x", sha256="a" * 64, dest=str(tmp_path / "d"), compression="gzip")
    assert result.returncode != 0 and "compression" in result.stdout
    result, _log, _out = run(tmp_path, url="http://127.0.0.1:9/x", sha256="a" * 64, dest=str(tmp_path / "d"), size=10,
                             parts=[{"size": 4, "sha256": "b" * 64}, {"size": 4, "sha256": "c" * 64}])
    assert result.returncode != 0 and "parts: parts add up to 8 bytes, size is 10" in result.stdout
    result, _log, _out = run(tmp_path, url="http://127.0.0.1:9/x", sha256="a" * 64, dest=str(tmp_path / "d"), connections=-1)
    assert result.returncode != 0 and "connections must be 0 (one stream) or more, got -1" in result.stdout


def test_url_is_never_in_process_arguments_nor_in_errors(served, tmp_path):
    """The presigned URL reaches curl through its config on stdin: /proc/*/cmdline never shows it."""
    token = "X-Amz-Signature=0123456789abcdef-secret"
    archive = open(os.path.join(served["root"], "a.tar.zst"), "rb").read()
    seen = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            if "missing" in self.path:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(archive)))
            self.end_headers()
            # Slow enough for the scan below to see curl running.
            for start in range(0, len(archive), len(archive) // 8 + 1):
                for pid in os.listdir("/proc"):
                    if pid.isdigit():
                        try:
                            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                                cmdline = handle.read()
                        except OSError:
                            continue
                        if b"curl" in cmdline:
                            seen.append(cmdline)
                self.wfile.write(archive[start:start + len(archive) // 8 + 1])
                self.wfile.flush()
                time.sleep(0.1)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d/" % server.server_address[1]
    try:
        dest = tmp_path / "node"
        result, _log, out = run(tmp_path, url=base + "a.tar.zst?" + token, sha256=served["sums"]["a.tar.zst"], dest=str(dest))
        assert result.returncode == 0, result.stdout
        assert seen and not [c for c in seen if b"secret" in c], seen
        result, _log, out = run(tmp_path, url=base + "missing.tar.zst?" + token, sha256=served["sums"]["a.tar.zst"],
                                dest=str(tmp_path / "other"))
        assert result.returncode != 0
        # The server ignores byte ranges (200, not 206), so this is the single-stream path; the size
        # probe (a one-byte range) is what meets the 404 first.
        assert "(curl exit 22)" in result.stdout and "404" in result.stdout
        assert out is None or out["parts"] == 0
        assert "secret" not in result.stdout and "secret" not in result.stderr
        assert not (tmp_path / "other").exists()
    finally:
        server.shutdown()


def test_corrupt_archive_with_matching_transfer_is_a_checksum_mismatch(served, tmp_path):
    """Bytes that break the decompressor: reported as a checksum mismatch, nothing left behind."""
    broken = os.path.join(served["root"], "broken.tar.zst")
    data = bytearray(open(os.path.join(served["root"], "a.tar.zst"), "rb").read())
    data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64
    with open(broken, "wb") as handle:
        handle.write(bytes(data))
    dest = tmp_path / "node"
    result, _log, _out = run(tmp_path, url=served["url"] + "broken.tar.zst", sha256=served["sums"]["a.tar.zst"], dest=str(dest))
    assert result.returncode != 0 and "checksum mismatch" in result.stdout
    assert hashlib.sha256(bytes(data)).hexdigest() in result.stdout
    assert not dest.exists() and not (tmp_path / ".node.restore").exists()


def _hasher():
    # Loaded from the working tree by path: the hash stage is a program (a string), run here as the module runs it.
    import importlib.util
    spec = importlib.util.spec_from_file_location("snapshot_stream", os.path.join(
        os.path.dirname(__file__), "..", "..", "plugins", "module_utils", "snapshot_stream.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HASHER


@pytest.mark.parametrize("consumer", ["pipe", "file", "gone"])
def test_hash_stage_passes_every_byte_and_hashes_all_of_them(tmp_path, consumer):
    """tee(2) between two pipes, read/write otherwise, and hashing to the end when the decompressor died."""
    import sys
    data = os.urandom(3 << 20) + b"\0" * ((2 << 20) + 12345)
    read_fd, write_fd = os.pipe()
    stage = [sys.executable, "-c", _hasher(), str(write_fd)]
    if consumer == "file":
        (tmp_path / "in").write_bytes(data)
        with open(tmp_path / "in", "rb") as source, open(tmp_path / "out", "wb") as sink:
            proc = subprocess.Popen(stage, stdin=source, stdout=sink, pass_fds=(write_fd,))
            os.close(write_fd)
            assert proc.wait(60) == 0
        assert (tmp_path / "out").read_bytes() == data
    elif consumer == "pipe":
        proc = subprocess.Popen(stage, stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(write_fd,))
        os.close(write_fd)
        out = proc.communicate(data, 60)[0]
        assert proc.returncode == 0 and out == data
    else:
        dead_read, dead_write = os.pipe()
        os.close(dead_read)  # the decompressor exited: writes fail with EPIPE
        proc = subprocess.Popen(stage, stdin=subprocess.PIPE, stdout=dead_write, pass_fds=(write_fd,))
        os.close(write_fd)
        os.close(dead_write)
        proc.communicate(data, 60)
        assert proc.returncode == 0
    with os.fdopen(read_fd) as digest:
        assert digest.read().strip() == hashlib.sha256(data).hexdigest()


def archive_with_parts(root, name, part_size):
    """A zstd archive of incompressible files, and its parts as the upload lists them (size, sha256)."""
    source = root / (name + ".src")
    (source / "regtest" / "blocks").mkdir(parents=True)
    for index in range(3):
        (source / "regtest" / "blocks" / ("blk%05d.dat" % index)).write_bytes(os.urandom(1 << 20))
    tar = subprocess.Popen(["tar", "-C", str(source), "-cf", "-", "."], stdout=subprocess.PIPE)
    with open(root / name, "wb") as out:
        subprocess.run(["zstd", "-q", "-c"], stdin=tar.stdout, stdout=out, check=True)
    assert tar.wait() == 0
    data = (root / name).read_bytes()
    return source, hashlib.sha256(data).hexdigest(), parts_of(data, part_size)


def parts_of(data, part_size):
    """The archive's parts as the upload lists them in the manifest (size, sha256)."""
    return [{"size": len(data[at:at + part_size]), "sha256": hashlib.sha256(data[at:at + part_size]).hexdigest()}
            for at in range(0, len(data), part_size)]


def same_tree(left, right):
    def files(root):
        return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}
    return files(left) == files(right)


def test_download_cut_at_60_percent_resumes_fetching_only_the_missing_parts(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    source, sha, parts = archive_with_parts(served, "big.tar.zst", 256 * 1024)
    size = sum(part["size"] for part in parts)
    server = RangeServer(served, rate=8 << 20)  # per connection: transfers are in flight at the cut
    cmdlines = []
    scanning = threading.Event()

    def scan():  # the presigned URL must stay out of every curl's argv, ranged ones too
        while not scanning.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        cmdline = handle.read()
                except OSError:
                    continue
                if cmdline.startswith(b"curl"):
                    cmdlines.append(cmdline)
            time.sleep(0.005)

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        dest, parts_dir = tmp_path / "node", tmp_path / ".node.restore" / "parts"
        args = dict(url=server.url + "big.tar.zst?X-Amz-Signature=secret", sha256=sha, dest=str(dest), parts=parts,
                    size=size, connections=4, timeout=10, name="big")
        server.cut_after = int(size * 0.6)
        result, _recap, out = run(tmp_path, **args)
        assert result.returncode != 0, result.stdout
        assert "could not be fetched after 3 attempts" in result.stdout and "was not touched" in result.stdout
        assert "secret" not in result.stdout and not dest.exists()
        complete = [index for index, part in enumerate(parts)
                    if (parts_dir / ("%05d" % index)).is_file() and (parts_dir / ("%05d" % index)).stat().st_size == part["size"]]
        assert 0 < len(complete) < len(parts), (complete, len(parts))
        missing = sum(part["size"] for index, part in enumerate(parts) if index not in complete)

        server.reset()
        result, recap, out = run(tmp_path, **args)
        assert result.returncode == 0, result.stdout
        # Only the parts that were not complete were fetched again, counted at the server (plus the
        # one byte of the request that asks whether the server answers ranges).
        assert server.served - 1 == missing == out["fetched_bytes"] < size
        assert out["reused_parts"] == len(complete) and out["parts"] == len(parts) and out["bytes"] == size
        assert same_tree(source, dest) and not (tmp_path / ".node.restore").exists()
        assert sorted(rng for _path, rng in server.requests) == sorted(["bytes=0-0"] + [
            "bytes=%d-%d" % (sum(p["size"] for p in parts[:index]), sum(p["size"] for p in parts[:index + 1]) - 1)
            for index in range(len(parts)) if index not in complete])
    finally:
        scanning.set()
        scanner.join()
        server.close()
    assert cmdlines and not [c for c in cmdlines if b"secret" in c or b"127.0.0.1" in c], cmdlines[:3]


def test_a_bad_part_is_found_by_its_sha256_and_fetched_again_alone(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    source, sha, parts = archive_with_parts(served, "big.tar.zst", 512 * 1024)
    good = (served / "big.tar.zst").read_bytes()
    bad = bytearray(good)
    at = parts[0]["size"] + parts[1]["size"] + 1000  # inside part 2
    bad[at] ^= 0xFF
    (served / "big.tar.zst").write_bytes(bytes(bad))
    server = RangeServer(served)
    try:
        dest = tmp_path / "node"
        args = dict(url=server.url + "big.tar.zst", sha256=sha, dest=str(dest), parts=parts, connections=3)
        result, _recap, _out = run(tmp_path, **args)
        assert result.returncode != 0 and "checksum mismatch" in result.stdout
        assert "parts 2 did not match their sha256 and were deleted" in result.stdout
        parts_dir = tmp_path / ".node.restore" / "parts"
        assert sorted(p.name for p in parts_dir.iterdir() if p.name != "plan.json") == [
            "%05d" % index for index in range(len(parts)) if index != 2]
        (served / "big.tar.zst").write_bytes(good)
        server.reset()
        result, _recap, out = run(tmp_path, **args)
        assert result.returncode == 0, result.stdout
        assert server.served - 1 == parts[2]["size"] == out["fetched_bytes"] and out["reused_parts"] == len(parts) - 1
        assert same_tree(source, dest)
    finally:
        server.close()


def test_without_resume_each_part_is_deleted_once_extracted(served, tmp_path):
    dest = tmp_path / "node"
    seen = []
    parts_dir = tmp_path / ".node.restore" / "parts"
    watching = threading.Event()

    def watch():
        while not watching.is_set():
            if parts_dir.is_dir():
                seen.append(len([p for p in parts_dir.iterdir() if p.name != "plan.json"]))
            time.sleep(0.002)

    archive = os.path.join(served["root"], "a.tar.zst")
    data = open(archive, "rb").read()
    parts = parts_of(data, 16 * 1024)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result, _recap, out = run(tmp_path, url=served["url"] + "a.tar.zst", sha256=served["sums"]["a.tar.zst"],
                                  dest=str(dest), parts=parts, connections=2, resume=False)
    finally:
        watching.set()
        watcher.join()
    assert result.returncode == 0, result.stdout
    assert out["parts"] == len(parts) > 8 and out["fetched_bytes"] == len(data)
    # Downloads stay within 2 x connections parts of the extraction (plus the one being written).
    assert seen and max(seen) <= 2 * 2 + 2, max(seen)


def test_a_server_without_ranges_gets_one_stream_and_a_wrong_size_is_refused(served, tmp_path):
    """The manifest's size and parts do not make the module trust that the server answers ranges."""
    class Whole(http.server.SimpleHTTPRequestHandler):  # ignores Range: always 200 and the whole file
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Whole, directory=served["root"]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        archive = os.path.join(served["root"], "a.tar.zst")
        data = open(archive, "rb").read()
        parts = parts_of(data, 16 * 1024)
        dest = tmp_path / "node"
        url = "http://127.0.0.1:%d/a.tar.zst" % server.server_address[1]
        result, _recap, out = run(tmp_path, url=url, sha256=served["sums"]["a.tar.zst"], dest=str(dest),
                                  size=len(data), parts=parts)
        assert result.returncode == 0, result.stdout
        assert out["parts"] == 0 and out["fetched_bytes"] == out["bytes"] == len(data)
        assert (dest / "regtest" / "chainstate" / "000001.ldb").exists()
    finally:
        server.shutdown()
    # A ranged server whose archive is not the size the manifest gives: refused before any part is fetched.
    other = tmp_path / "other"
    served["server"].reset()
    result, _recap, _out = run(tmp_path, url=served["url"] + "a.tar.zst", sha256=served["sums"]["a.tar.zst"],
                               dest=str(other), size=len(data) + 1)
    assert result.returncode != 0
    assert "the server's archive has %d bytes, the manifest says %d" % (len(data), len(data) + 1) in result.stdout
    assert not other.exists() and served["server"].requests == [("/a.tar.zst", "bytes=0-0")]
