"""Progress of long work in the normal output (plugin_utils/progress.py), through real playbook runs:
a restore from a rate-capped loopback server, a sync wait, an upload's progress file; a short run
prints nothing, and the lines never show a task's secret options (checked at -v)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest

from playbook_runner import ansible_playbook
from range_server import RangeServer

BUCKET = "chainops-progress"
SECRET = "X-Amz-Signature=0123456789abcdef-not-for-output"
LINE = re.compile(r"^\[localhost\] restore of chain-a: ([\d.]+) (KiB|MiB) of 6\.0 MiB \((\d+) %\), [\d.]+ (?:B|KiB|MiB)/s, "
                  r"about \S+ left, \d of 1 parts extracted$", re.M)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    source = root / "source"
    source.mkdir()
    (source / "blocks.dat").write_bytes(os.urandom(6 * 1024 * 1024))  # incompressible: 6 MiB on the wire
    with open(root / "a.tar.zst", "wb") as out:
        tar = subprocess.Popen(["tar", "-C", str(source), "-cf", "-", "."], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-1", "-c"], stdin=tar.stdout, stdout=out, check=True)
        assert tar.wait() == 0
    # 1 MiB/s per connection, two connections: about 3 s, so lines at a 0.5 s interval.
    server = RangeServer(root, rate=1024 * 1024)
    yield {"url": server.url + "a.tar.zst?" + SECRET, "sha256": hashlib.sha256((root / "a.tar.zst").read_bytes()).hexdigest(),
           "size": (root / "a.tar.zst").stat().st_size}
    server.close()


def play(tmp_path, tasks, *args):
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]))
    return ansible_playbook(path, "-i", "localhost,", *args)


def test_a_restore_reports_progress_at_a_steady_interval_and_a_final_figure(archive, tmp_path):
    restore = {"chainops.validator.snapshot_archive_restore": {
        "url": archive["url"], "sha256": archive["sha256"], "dest": str(tmp_path / "data"), "name": "chain-a", "connections": 2}}
    result = play(tmp_path, [restore], "-v", "-e", "chainops_progress_interval=0.5")
    assert result.returncode == 0, result.stdout[-3000:]
    lines = LINE.findall(result.stdout)
    assert len(lines) >= 3, result.stdout[-3000:]
    percents = [int(p[2]) for p in lines]
    # It grows while the restore runs, one line per new report.
    assert percents == sorted(set(percents)) and percents[0] < 90, percents
    mib = archive["size"] / 1048576
    assert re.search(r"^\[localhost\] restore of chain-a: %.1f MiB finished in \d+s \([\d.]+ (KiB|MiB)/s\)$" % mib, result.stdout, re.M), \
        result.stdout[-2000:]
    # The presigned URL (a no_log option) is nowhere in the output, at -v.
    assert "0123456789abcdef" not in result.stdout + result.stderr
    assert (tmp_path / "data" / "blocks.dat").stat().st_size == 6 * 1024 * 1024


def test_a_short_run_prints_no_progress_and_interval_zero_turns_it_off(archive, tmp_path):
    quick = {"chainops.validator.wait_ready": {"command": ["/bin/true"], "what": "quick"}}
    result = play(tmp_path, [quick], "-e", "chainops_progress_interval=5")
    assert result.returncode == 0 and "[localhost] waiting for quick" not in result.stdout, result.stdout[-2000:]
    restore = {"chainops.validator.snapshot_archive_restore": {
        "url": archive["url"], "sha256": archive["sha256"], "dest": str(tmp_path / "off"), "name": "chain-a", "connections": 2}}
    result = play(tmp_path, [restore], "-e", "chainops_progress_interval=0")
    assert result.returncode == 0 and "restore of chain-a" not in result.stdout, result.stdout[-2000:]


def test_a_sync_wait_counts_towards_its_height(tmp_path):
    counter = tmp_path / "height"
    probe = ["sh", "-c", 'h=$(cat %s 2>/dev/null || echo 3000); h=$((h+10)); echo $h > %s; echo "{\\"blocks\\": $h}"' % (counter, counter)]
    wait = {"chainops.validator.wait_ready": {"command": probe, "minimums": {"blocks": 3100}, "interval": 0.5, "timeout": 30,
                                              "what": "the node's height"}}
    result = play(tmp_path, [wait], "-e", "chainops_progress_interval=0.7")
    assert result.returncode == 0, result.stdout[-3000:]
    # The first line has no rate yet (one height seen); the later ones do, counted from the first height.
    lines = re.findall(r"^\[localhost\] waiting for the node's height: (\d+) blocks of 3100 blocks \((\d+) %\), [\d.]+ blocks/s, "
                       r"about \S+ left, last seen: blocks \d+ < 3100$", result.stdout, re.M)
    assert len(lines) >= 2, result.stdout[-3000:]
    assert all(3000 < int(height) < 3100 for height, _percent in lines)
    assert re.search(r"^\[localhost\] waiting for the node's height: finished in \d+s$", result.stdout, re.M)


def test_an_upload_writes_the_bytes_s3_accepted(s3, aws_env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "blocks.dat").write_bytes(os.urandom(11 * 1024 * 1024))
    progress_file = tmp_path / "progress.json"
    tasks = [
        {"chainops.validator.snapshot_archive_s3": {"operation": "multipart_start", "bucket": "chainops-progress", "key": "a.tar.zst",
                                                    "data_size": str(11 * 1024 * 1024), "data_files": 1, "min_part_size": 5 * 1024 * 1024,
                                                    "endpoint_url": aws_env, "region": "us-east-1"}, "register": "mp", "no_log": True},
        # With the interval 0 the action plugin leaves the module alone: the file given here is written.
        {"chainops.validator.snapshot_archive_upload": {"src": str(data), "part_urls": "{{ mp.part_urls }}", "part_size": "{{ mp.part_size }}",
                                                        "work_dir": str(tmp_path / "work"), "progress_file": str(progress_file)},
         "register": "up", "no_log": True},
        {"ansible.builtin.copy": {"content": "{{ up.bytes }}", "dest": str(tmp_path / "bytes"), "mode": "0600"}},
    ]
    result = play(tmp_path, tasks, "-e", "chainops_progress_interval=0")
    assert result.returncode == 0, result.stdout[-3000:]
    report = json.loads(progress_file.read_text())
    assert report["what"] == "archive upload of %s" % data and report["unit"] == "bytes"
    assert report["done"] == int((tmp_path / "bytes").read_text()) and report["state"] == "3 parts accepted"


def test_a_volume_initialization_reports_the_bytes_read(tmp_path):
    volume = tmp_path / "volume.img"  # a file on a disk file system (O_DIRECT), standing in for the device
    volume.write_bytes(b"\0" * (8 * 1024 * 1024))
    task = {"chainops.validator.volume_initialize": {"device": str(volume), "iodepth": 4, "rate": "2m"}, "register": "init"}
    report = {"ansible.builtin.copy": {"content": "{{ init | to_json }}", "dest": str(tmp_path / "init.json"), "mode": "0600"}}
    result = play(tmp_path, [task, report], "-e", "chainops_progress_interval=0.5")
    assert result.returncode == 0, result.stdout[-3000:]
    lines = re.findall(r"^\[localhost\] initialization of %s: ([\d.]+) MiB of 8\.0 MiB \((\d+) %%\), [\d.]+ (?:KiB|MiB)/s, about \S+ left$"
                       % re.escape(str(volume)), result.stdout, re.M)
    assert len(lines) >= 2 and int(lines[0][1]) < 90, result.stdout[-3000:]
    assert re.search(r"^\[localhost\] initialization of %s: 8\.0 MiB finished in \d+s" % re.escape(str(volume)), result.stdout, re.M)
    out = json.loads((tmp_path / "init.json").read_text())
    assert out["bytes"] == out["size"] == 8 * 1024 * 1024 and out["changed"] is False


def test_a_task_with_its_own_async_and_a_bad_interval(tmp_path):
    probe = {"command": ["/bin/true"], "what": "async"}
    result = play(tmp_path, [{"chainops.validator.wait_ready": probe, "async": 30, "poll": 1, "register": "w"},
                             {"ansible.builtin.assert": {"that": ["w.ready"]}}])
    assert result.returncode == 0, result.stdout[-2000:]
    result = play(tmp_path, [{"chainops.validator.wait_ready": probe}], "-e", "chainops_progress_interval=soon")
    assert result.returncode != 0
    assert "chainops_progress_interval must be a number of seconds (0 turns progress lines off), got 'soon'" in result.stdout, result.stdout[-2000:]
