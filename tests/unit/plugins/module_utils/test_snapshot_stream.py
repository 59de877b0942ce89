"""stream_upload's accounting of parts, with real tar and zstd and the part sender replaced (no network)."""
from __future__ import annotations

import hashlib
import os
import threading

import pytest

from ansible_collections.chainops.validator.plugins.module_utils import snapshot_stream as ss

PART = 64 * 1024


@pytest.fixture
def source(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "blk00000.dat").write_bytes(os.urandom(5 * PART))  # incompressible: about 6 parts
    return data


def upload(source, tmp_path, sender, monkeypatch, connections=3):
    monkeypatch.setattr(ss, "_upload_part", sender)
    urls = ["http://127.0.0.1:9/part%d?X-Amz-Signature=secret" % n for n in range(20)]
    return ss.stream_upload(str(source), [], "zstd -q -c", urls, PART, str(tmp_path), connections=connections)


def test_every_part_is_sent_once_with_its_digest_and_at_most_connections_at_a_time(source, tmp_path, monkeypatch):
    sent, lock, active, peak = {}, threading.Lock(), [0], [0]

    def sender(config_path, data):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        with open(config_path) as handle:
            url = [line for line in handle if line.startswith("url = ")][0]
        threading.Event().wait(0.05)
        with lock:
            active[0] -= 1
            sent[url] = bytes(data)
        return 200, len(data), '"etag-%d"' % len(sent), ""

    result = upload(source, tmp_path, sender, monkeypatch)
    body = b"".join(sent[url] for url in sorted(sent, key=lambda u: int(u.split("part")[1].split("?")[0])))
    assert len(result["parts"]) == len(sent) >= 5 and result["bytes"] == len(body)
    assert hashlib.sha256(body).hexdigest() == result["sha256"]
    assert [p["part_number"] for p in result["parts"]] == list(range(1, len(sent) + 1))
    assert all(p["sha256"] == hashlib.sha256(sent[url]).hexdigest()
               for p, url in zip(result["parts"], sorted(sent, key=lambda u: int(u.split("part")[1].split("?")[0]))))
    assert 1 < peak[0] <= 3
    assert os.listdir(tmp_path) == ["data"]  # the config directory (presigned URLs) is gone


@pytest.mark.parametrize("failure", ["raises", "refused"])
def test_a_part_that_was_not_sent_fails_the_upload(source, tmp_path, monkeypatch, failure):
    def flaky(config_path, data):
        if config_path.endswith("p00001"):  # the second part: curl could not start, or S3 refused it
            if failure == "raises":
                raise OSError(11, "Resource temporarily unavailable")
            return 503, 0, "", "SlowDown"
        return 200, len(data), '"etag"', ""

    with pytest.raises(ss.StreamError) as error:
        upload(source, tmp_path, flaky, monkeypatch)
    message = str(error.value)
    assert error.value.stage == "upload" and "S3 did not accept every part" in message
    assert "part 2:" in message and "secret" not in message
    assert os.listdir(tmp_path) == ["data"]
