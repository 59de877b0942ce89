# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Progress of a long module run, written where the controller can read it while the module runs.

A module cannot print while it runs: Ansible shows its result once it ends. The collection's action
plugins for long work (plugins/plugin_utils/progress.py) start the module in the background and read
this small JSON file at a steady interval, then print a line of progress (done, rate, time left).
The file holds counts and a one-line state, never a URL, a key or anything else from the options.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

# The file is rewritten at most about once a second (a writer reporting every second passes): readers poll every few seconds.
MIN_GAP = 0.9

PROGRESS_OPTION_DOC = (
    "Where the module writes its progress while it runs (JSON: counts and a one-line state, nothing "
    "from the other options). Set by the collection's action plugin, which prints it at a steady "
    "interval; leave unset.")


def progress_argument_spec():
    return dict(progress_file=dict(type="path"))


class Progress(object):
    """Writes ``{what, unit, total, done, state, started, updated}`` to ``path`` (a no-op without one).

    ``update`` is cheap to call often: it writes only when MIN_GAP has passed or ``force`` is set.
    The write is a rename, so a reader never sees half a file.
    """

    def __init__(self, path, what, unit="bytes", total=None, clock=time.time):
        self.path, self.clock = path, clock
        self.report = {"what": what, "unit": unit, "total": total, "done": 0, "state": "", "started": clock(), "updated": 0.0}
        self._written = 0.0
        if unit == "bytes":
            # Bytes count from zero at the start (a transfer); other units from the first value seen.
            self.report.update(first_done=0, first_at=self.report["started"])

    def update(self, done=None, total=None, state=None, force=False):
        if done is not None:
            self.report["done"] = done
            if "first_done" not in self.report:
                # Rates count from the first value seen: a sync wait starts at the restored height, not 0.
                self.report["first_done"], self.report["first_at"] = done, self.clock()
        if total is not None:
            self.report["total"] = total
        if state is not None:
            self.report["state"] = state[:200]
        now = self.report["updated"] = self.clock()
        if not self.path or (not force and now - self._written < MIN_GAP):
            return
        self._written = now
        temporary = "%s.%d" % (self.path, os.getpid())
        try:
            with open(temporary, "w") as handle:
                json.dump(self.report, handle)
            os.rename(temporary, self.path)
        except OSError:
            # Progress is a courtesy: a full or read-only disk must not fail the work itself.
            pass
