# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""fio with its JSON status reports read while it runs (``--status-interval`` with ``--output-format=json``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import subprocess


def fio_reports(stream):
    """fio's JSON reports, one object at a time as fio prints them (each spans lines from ``{`` to ``}``)."""
    lines = []
    for line in stream:
        if line.startswith("{"):
            lines = []
        lines.append(line)
        if line.rstrip("\n") == "}":
            try:
                yield json.loads("".join(lines))
            except ValueError:
                pass
            lines = []


def run_fio(argv, on_job=None):
    """Run fio (``argv`` asks for JSON status reports); ``on_job`` gets the first job of each report.

    Returns (exit code, the first job of the last report or None, stderr).
    """
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    job = None
    try:
        for report in fio_reports(proc.stdout):
            job = (report.get("jobs") or [None])[0] or job
            if job and on_job is not None:
                on_job(job)
    finally:
        errors = proc.stderr.read()
        proc.wait()
    return proc.returncode, job, errors
