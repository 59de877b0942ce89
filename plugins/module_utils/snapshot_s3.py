# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""S3 side of snapshot archives, independent of Ansible: multipart plans and the manifest's
optimistic lock.

The manifest is one JSON object that several snapshot.yml runs may update at once. Each update
reads it with its ETag and writes it back with ``If-Match: <etag>`` (``If-None-Match: *`` when it
did not exist); S3 answers 412 when someone else wrote in between, and the update is redone on
the new manifest. No entry is lost and no lock can be left behind by a dead run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import random
import time

from ansible_collections.chainops.validator.plugins.module_utils.snapshot_stream import (
    MAX_PARTS,
    part_count_for,
    part_size_for,
)


class ManifestConflict(Exception):
    """Another writer changed the manifest since it was read (HTTP 412), or created it (409)."""


def multipart_plan(size_estimate, min_part_size):
    """(part_size, part_count) for an archive of at most size_estimate bytes."""
    part_size = part_size_for(size_estimate, min_part_size)
    count = part_count_for(size_estimate, part_size)
    if count > MAX_PARTS:
        raise ValueError("an archive of up to %d bytes does not fit in %d parts" % (size_estimate, MAX_PARTS))
    return part_size, count


def conditional_update(read, write, change, attempts=10, backoff=0.2, sleep=time.sleep):
    """Read-modify-write of a manifest with an optimistic lock.

    read() -> (text or None when missing, etag or None)
    change(text) -> (document, extra); document is written as JSON
    write(body, etag) -> None; etag None means create-only. Raises ManifestConflict on 412/409.
    Returns (document, extra, attempts used). Raises ManifestConflict after ``attempts`` losses.
    """
    for attempt in range(1, int(attempts) + 1):
        text, etag = read()
        document, extra = change(text)
        body = json.dumps(document, indent=2, sort_keys=False) + "\n"
        try:
            write(body, etag)
            return document, extra, attempt
        except ManifestConflict:
            if attempt == attempts:
                break
            # Jitter so that writers that collided do not collide again in lockstep.
            sleep(min(5.0, backoff * (2 ** (attempt - 1))) * random.uniform(0.5, 1.5))
    raise ManifestConflict("the manifest changed under every one of %d attempts to update it; another run keeps writing it"
                           % int(attempts))
