# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Progress of long module runs in the normal output: restores, uploads, volume waits, sync waits.

``ProgressAction`` is the action plugin of such a module. While the module runs it reads the module's
progress file (plugins/module_utils/progress.py) and prints one line at a steady interval, e.g.::

    [sentry-1] restore of cosmoshub-4-pruned: 41.2 GiB of 110.0 GiB (37 %), 612.0 MiB/s, about 1m55s left

then a final figure. Short runs print nothing: the first line comes after one interval. Check mode, a
task with its own ``async``, and ``chainops_progress_interval: 0`` run the module without it.
The lines carry counts and the module's one-line state, never the task's options (``no_log`` options
such as presigned URLs stay out at every verbosity).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import time

try:
    from ansible.plugins.action import ActionBase
    from ansible.utils.display import Display
except ImportError:  # the pure functions below are unit tested without Ansible
    ActionBase, Display = object, None

DEFAULT_INTERVAL = 10
# Polls before the first line come quicker, so that a run of a few seconds ends with little delay.
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(count):
    value, unit = float(count), 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return ("%d %s" % (value, UNITS[unit])) if unit == 0 else ("%.1f %s" % (value, UNITS[unit]))


def human_seconds(seconds):
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return "%dh%02dm" % (hours, minutes)
    if minutes:
        return "%dm%02ds" % (minutes, seconds)
    return "%ds" % seconds


def _amount(value, unit):
    return human_bytes(value) if unit == "bytes" else "%s %s" % (_number(value), unit)


def _number(value):
    return ("%d" % value) if float(value).is_integer() else ("%.1f" % value)


def progress_line(report, previous=None, now=None):
    """One line for a progress report; ``previous`` (an earlier report) gives the current rate.

    Bytes get a rate per second and, with a total, a percentage and the time left at the average
    rate so far. Other units (blocks, seconds) are shown as counts. The module's state follows.
    """
    now = report.get("updated") or now or time.time()
    unit, done, total = report.get("unit") or "bytes", report.get("done") or 0, report.get("total")
    parts = []
    if unit == "s":
        parts.append("%s elapsed" % human_seconds(now - report.get("started", now)) + (" of at most %s" % human_seconds(total) if total else ""))
    elif done or total:
        amount = _amount(done, unit) + (" of %s" % _amount(total, unit) if total else "")
        if total:
            amount += " (%d %%)" % min(100, int(100.0 * done / total)) if total > 0 else ""
        parts.append(amount)
        # The average since the first value seen gives the time left; the change since the last line, the rate.
        base, since = report.get("first_done", 0) or 0, report.get("first_at", report.get("started", now))
        average = (done - base) / (now - since) if now > since and done > base else None
        rate = average
        if previous and previous.get("updated") and now > previous["updated"] and done >= (previous.get("done") or 0):
            rate = (done - (previous.get("done") or 0)) / (now - previous["updated"])
        if rate is not None:
            parts.append(("%s/s" % human_bytes(rate)) if unit == "bytes" else ("%s %s/s" % (_number(round(rate, 1)), unit)))
        if total and average and done < total:
            parts.append("about %s left" % human_seconds((total - done) / average))
    if report.get("state"):
        parts.append(report["state"])
    return "%s: %s" % (report.get("what") or "working", ", ".join(parts) if parts else "started")


def final_line(report, result, seconds):
    """The closing figure: what was done in how long, at what average rate (bytes)."""
    unit = (report or {}).get("unit") or "bytes"
    what = (report or {}).get("what") or "done"
    done = result.get("bytes") if isinstance(result.get("bytes"), int) else (report or {}).get("done")
    verdict = "failed after" if result.get("failed") else "finished in"
    if unit == "bytes" and done:
        return "%s: %s %s %s (%s/s)" % (what, human_bytes(done), verdict, human_seconds(seconds), human_bytes(done / max(seconds, 0.001)))
    return "%s: %s %s" % (what, verdict, human_seconds(seconds))


class ProgressAction(ActionBase):
    """Action plugin of a module that writes a progress file (its ``progress_file`` option).

    The module runs as usual (pipelined, in the foreground); a thread of this plugin reads the progress
    file over the same connection every interval, without privilege escalation (the file lies in the
    connection user's remote temporary directory and holds nothing secret), and prints it. A module
    that ends within the first interval costs one remote ``mkdir`` more than without this plugin.
    """

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ProgressAction, self).run(tmp, task_vars)
        try:
            interval = float(task_vars.get("chainops_progress_interval", DEFAULT_INTERVAL))
        except (TypeError, ValueError):
            result.update(failed=True, msg="chainops_progress_interval must be a number of seconds (0 turns progress lines off), got %r"
                          % task_vars.get("chainops_progress_interval"))
            return result
        if self._play_context.check_mode or self._task.async_val or interval <= 0:
            # As Ansible's own module action does, including a task's own async.
            result.update(self._execute_module(task_vars=task_vars, wrap_async=bool(self._task.async_val)))
            return result
        shell = self._connection._shell
        # Removed with the task's other remote files (ActionBase.cleanup).
        progress_path = shell.join_path(shell.tmpdir or self._make_tmp_path(), "progress.json")
        host = task_vars.get("inventory_hostname", "")
        shown, stop, started = {}, threading.Event(), time.time()
        poller = threading.Thread(target=self._show, args=(progress_path, interval, host, stop, shown))
        poller.daemon = True
        poller.start()
        try:
            result.update(self._execute_module(module_args=dict(self._task.args, progress_file=progress_path), task_vars=task_vars))
        finally:
            stop.set()
            # A read in flight is short; a connection that hangs must not hold the result back.
            poller.join(30)
        if shown.get("last") is not None:
            Display().display("[%s] %s" % (host, final_line(shown["last"], result, time.time() - started)))
        return result

    def _show(self, progress_path, interval, host, stop, shown):
        """Every ``interval`` seconds until ``stop``: read the report and print a line when it is new."""
        display, command = Display(), "cat %s 2>/dev/null; true" % self._connection._shell.quote(progress_path)
        while not stop.wait(interval):
            try:
                report = _json_or_none(self._low_level_execute_command(command, sudoable=False).get("stdout", ""))
            except Exception as exc:  # a failed read must not fail the work; the module's own result decides
                display.vvv("progress of %s not read: %s" % (host, exc))
                continue
            # A line for each new report (the module writes at most once a second).
            if report and not stop.is_set() and report.get("updated") != (shown.get("last") or {}).get("updated"):
                display.display("[%s] %s" % (host, progress_line(report, shown.get("last"))))
                shown["last"] = report


def _json_or_none(text):
    try:
        value = json.loads(text.strip())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
