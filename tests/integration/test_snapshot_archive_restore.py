"""snapshot_archive_restore on the controller: a real archive served over loopback HTTP, real tar/zstd/lz4.

Covers the streamed restore, secret files kept and never taken from the archive, idempotence,
checksum mismatch (data untouched, staging cleaned), an interrupted run being redone, a verified
extraction being resumed without a download, and the refusal to overwrite data.
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

import pytest

from playbook_runner import RECAP, ansible_playbook

pytestmark = pytest.mark.skipif(not shutil.which("zstd") or not shutil.which("lz4"), reason="zstd and lz4 are needed")


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

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": "http://127.0.0.1:%d/" % server.server_address[1], "sums": sums}
    server.shutdown()


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
