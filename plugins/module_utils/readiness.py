# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Bounded waits that say why they failed.

A probe is one attempt: a command (ready when it exits 0) or an HTTP request (ready on an expected
status), optionally with JSON fields that must reach a minimum (a node's ``blocks`` against a
restored height). ``wait`` repeats it until it is ready or a total time bound has passed and keeps
the last observation, so a failure names what was last seen instead of "retries exhausted".
``/health`` documents of the chainops health checker are summarised as their failing checks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import subprocess
import time

try:
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, build_opener, ProxyHandler
except ImportError:  # pragma: no cover - Python 2 is not a target; keeps the sanity import test quiet
    HTTPError = URLError = Request = build_opener = ProxyHandler = None

MAX_TEXT = 300


def _tail(text, limit=MAX_TEXT):
    """The last non-empty line of ``text``, shortened: what a failing command last said."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else "..." + line[-limit:]


def json_field(document, path):
    """The value at a dotted ``path`` of a JSON document, or None when any step is missing."""
    value = document
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return None
    return value


def health_reasons(document):
    """Failing checks of a chainops health document, as ``check: reason`` strings; [] when none fail
    or the document is not one."""
    if not isinstance(document, dict):
        return []
    checks = document.get("checks")
    if not isinstance(checks, dict):
        reason = document.get("reason")
        return [str(reason)] if reason and not document.get("healthy") else []
    reasons = []
    for name in sorted(checks):
        check = checks[name]
        if isinstance(check, dict) and check.get("status") == "fail":
            reasons.append("%s: %s" % (name, check.get("reason") or "failed"))
    return reasons


def unmet_minimums(document, minimums):
    """``field value < minimum`` for each field of ``minimums`` the JSON ``document`` does not reach."""
    unmet = []
    for path in sorted(minimums):
        value = json_field(document, path) if document is not None else None
        try:
            reached = value is not None and not isinstance(value, bool) and float(value) >= float(minimums[path])
        except (TypeError, ValueError):
            reached = False
        if not reached:
            unmet.append("%s %s < %s" % (path, "missing" if value is None else value, minimums[path]))
    return unmet


def _parse_json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def probe_command(argv, timeout):
    """One run of ``argv``: an observation dict (``ready`` decided by the caller's minimums)."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                              universal_newlines=True, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "rc": None, "stdout": "", "stderr": "", "state": "no answer within %ss" % timeout}
    except OSError as exc:
        return {"ok": False, "rc": None, "stdout": "", "stderr": str(exc), "state": "cannot run %s: %s" % (argv[0], exc)}
    observation = {"ok": proc.returncode == 0, "rc": proc.returncode, "stdout": proc.stdout[-4000:],
                   "stderr": proc.stderr[-4000:], "json": _parse_json(proc.stdout)}
    if proc.returncode != 0:
        observation["state"] = "exit %d: %s" % (proc.returncode, _tail(proc.stderr) or _tail(proc.stdout) or "no output")
    return observation


def probe_http(url, method, body, headers, status_codes, timeout):
    """One HTTP request (no proxies: the targets are the host's own services)."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    request = Request(url, data=data, headers=headers, method=method)
    opener = build_opener(ProxyHandler({}))
    try:
        response = opener.open(request, timeout=timeout)
        status, text = response.status, response.read(65536).decode("utf-8", "replace")
    except HTTPError as exc:
        status, text = exc.code, exc.read(65536).decode("utf-8", "replace")
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"ok": False, "status": None, "body": "", "state": "no answer from %s: %s" % (url, reason)}
    document = _parse_json(text)
    observation = {"ok": status in status_codes, "status": status, "body": text[-4000:], "json": document}
    if status not in status_codes:
        reasons = health_reasons(document)
        observation["reasons"] = reasons
        observation["state"] = "HTTP %d: %s" % (status, "; ".join(reasons) if reasons else _tail(text) or "empty body")
    return observation


def unit_state(unit, journal_lines=0):
    """One line on a systemd unit: its state, result, last exit status and restarts, then (when asked)
    its last journal lines, for a wait's failure message."""
    keys = ("ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")
    try:
        shown = subprocess.run(["systemctl", "show", unit, "--property=" + ",".join(keys)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "%s: state unknown (%s)" % (unit, exc)
    props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    text = "%s is %s/%s (result %s, last exit status %s, restarted %s times)" % (
        unit, props.get("ActiveState", "?"), props.get("SubState", "?"), props.get("Result", "?"),
        props.get("ExecMainStatus", "?"), props.get("NRestarts", "?"))
    if journal_lines > 0:
        try:
            journal = subprocess.run(["journalctl", "--unit", unit, "--lines", str(journal_lines), "--output", "cat", "--no-pager"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=10,
                                     check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            journal = ""
        lines = [line.strip()[:MAX_TEXT] for line in journal.splitlines() if line.strip()]
        if lines:
            text += "; its journal ends: " + " | ".join(lines)
    return text


def wait(probe, timeout, interval, minimums=None, clock=time.monotonic, sleep=time.sleep, observe=None):
    """Call ``probe()`` until its observation is ready or ``timeout`` seconds have passed (at least one
    attempt; ``timeout`` 0 means exactly one). Returns the result dict: ready, attempts, elapsed, last
    (the last observation, with ``state``: what it showed, in one line). ``observe(last)`` is called
    after each attempt that is not ready (progress reporting)."""
    minimums = minimums or {}
    started = clock()
    attempts = 0
    while True:
        attempts += 1
        last = probe()
        if last.get("ok"):
            unmet = unmet_minimums(last.get("json"), minimums)
            if unmet:
                last["ok"] = False
                last["state"] = "; ".join(unmet)
        if last.get("ok"):
            last.setdefault("state", "ready")
            return {"ready": True, "attempts": attempts, "elapsed": round(clock() - started, 3), "last": last}
        if observe is not None:
            observe(last)
        remaining = timeout - (clock() - started)
        if remaining <= 0:
            return {"ready": False, "attempts": attempts, "elapsed": round(clock() - started, 3), "last": last}
        sleep(min(interval, remaining))
