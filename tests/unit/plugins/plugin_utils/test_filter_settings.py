"""settings_problem: the builder filters' check of the settings mapping a role passes them."""
from __future__ import annotations

from ansible_collections.chainops.validator.plugins.plugin_utils.filter_settings import settings_problem


def test_exact_keys_are_no_problem():
    assert settings_problem({"a": 1, "b": None}, ("a", "b")) == ""


def test_missing_and_unknown_keys_are_named():
    assert settings_problem({"a": 1, "zz": 2, "c": 3}, ("a", "b")) == "missing setting(s) b; unknown setting(s) c, zz"


def test_anything_but_a_mapping():
    assert settings_problem(["a"], ("a",)) == "expects a mapping of settings"
