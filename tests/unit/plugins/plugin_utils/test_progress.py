"""Progress lines (plugin_utils/progress.py) from the reports modules write (module_utils/progress.py)."""
from __future__ import annotations

import json

from ansible_collections.chainops.validator.plugins.module_utils.progress import Progress
from ansible_collections.chainops.validator.plugins.plugin_utils.progress import (
    final_line,
    human_bytes,
    human_seconds,
    progress_line,
)

GIB = 1024 ** 3


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_bytes_with_a_total_give_percent_rate_and_time_left():
    report = {"what": "restore of a", "unit": "bytes", "total": 100 * GIB, "done": 25 * GIB, "started": 0.0, "updated": 100.0}
    previous = dict(report, done=20 * GIB, updated=90.0)
    line = progress_line(report, previous)
    # 5 GiB in the last 10 s; 25 GiB in 100 s on average, so 75 GiB more take 300 s.
    assert line == "restore of a: 25.0 GiB of 100.0 GiB (25 %), 512.0 MiB/s, about 5m00s left"


def test_a_sync_wait_counts_from_the_first_height_seen():
    clock = Clock()
    progress = Progress(None, "waiting for the node's height", unit="blocks", total=3200, clock=clock)
    progress.update(done=3000)  # restored at 3000
    clock.now += 20
    progress.update(done=3100, state="last seen: blocks 3100 < 3200")
    line = progress_line(progress.report)
    # 100 blocks in 20 s from the first value (3000), not 3100 blocks since the start: 20 s left.
    assert line == "waiting for the node's height: 3100 blocks of 3200 blocks (96 %), 5 blocks/s, about 20s left, last seen: blocks 3100 < 3200"


def test_a_wait_without_a_count_shows_time_and_state():
    report = {"what": "waiting for the health checker", "unit": "s", "total": 300, "done": 0, "state": "last seen: HTTP 503",
              "started": 0.0, "updated": 65.0}
    assert progress_line(report) == "waiting for the health checker: 1m05s elapsed of at most 5m00s, last seen: HTTP 503"


def test_upload_without_a_total_gives_amount_and_rate():
    report = {"what": "archive upload of /data/x", "unit": "bytes", "total": None, "done": 3 * GIB, "state": "48 parts accepted",
              "started": 0.0, "updated": 30.0}
    assert progress_line(report) == "archive upload of /data/x: 3.0 GiB, 102.4 MiB/s, 48 parts accepted"


def test_final_line_takes_the_module_figure_and_says_when_it_failed():
    report = {"what": "restore of a", "unit": "bytes", "done": GIB}
    assert final_line(report, {"bytes": 2 * GIB}, 4.0) == "restore of a: 2.0 GiB finished in 4s (512.0 MiB/s)"
    assert final_line(report, {"failed": True, "msg": "x"}, 4.0) == "restore of a: 1.0 GiB failed after 4s (256.0 MiB/s)"
    assert final_line({"what": "waiting for x", "unit": "s"}, {}, 125) == "waiting for x: finished in 2m05s"


def test_units_and_durations():
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536 * 1024 ** 2, 3 * 1024 ** 4)] == ["0 B", "1023 B", "1.0 KiB", "1.5 GiB", "3.0 TiB"]
    assert [human_seconds(s) for s in (0, 59.6, 61, 3600 * 26 + 61)] == ["0s", "1m00s", "1m01s", "26h01m"]


def test_the_file_is_written_at_most_once_a_second_and_whole(tmp_path):
    clock = Clock()
    path = tmp_path / "progress.json"
    progress = Progress(str(path), "restore of a", total=10, clock=clock)
    progress.update(done=1)
    progress.update(done=2)  # same second: not written
    assert json.loads(path.read_text())["done"] == 1
    clock.now += 1.0
    progress.update(done=3)
    assert json.loads(path.read_text())["done"] == 3
    progress.update(done=4, force=True)
    assert json.loads(path.read_text())["done"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]  # no temporary file left
    Progress(None, "no file").update(done=1, force=True)  # without a path: nothing to write, no error
