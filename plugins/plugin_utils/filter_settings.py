# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The check of a settings mapping that a role passes to one of the collection's builder filters.

A role's vars build one mapping of settings for a filter (datadog_checks, health_checker_config); a
key missing or misspelt there is a bug in the role, named here before anything is built.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def settings_problem(settings, names):
    """'' when settings is a mapping with exactly the keys in names; else what is wrong with it."""
    if not isinstance(settings, dict):
        return "expects a mapping of settings"
    missing = [name for name in names if name not in settings]
    unknown = sorted(set(settings) - set(names))
    return "; ".join((["missing setting(s) " + ", ".join(missing)] if missing else [])
                     + (["unknown setting(s) " + ", ".join(unknown)] if unknown else []))
