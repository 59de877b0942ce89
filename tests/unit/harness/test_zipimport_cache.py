"""The test-only bytecode cache for modules imported from zips (tests/harness/chainops_zipimport_cache.py):
a source compiled once is loaded from the cache under another archive's name, a changed source is
compiled again, and only a private directory is used."""
from __future__ import annotations

import importlib.util
import os
import zipfile
import zipimport
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parents[2] / "harness" / "chainops_zipimport_cache.py"
SOURCE = "def outer():\n    def inner():\n        return 41 + 1\n    return inner()\n"


@pytest.fixture(name="hook")
def fixture_hook(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("zipimport_cache_under_test", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    compiled, real_compile = [], module._compile_source  # pylint: disable=protected-access

    def counting_compile(pathname, source):
        compiled.append(pathname)
        return real_compile(pathname, source)

    monkeypatch.setattr(module, "CACHE_DIR", str(cache))
    monkeypatch.setattr(module, "_compile_source", counting_compile)
    monkeypatch.setattr(zipimport, "_compile_source", module._cached_compile_source)  # pylint: disable=protected-access
    module.compiled, module.cache = compiled, cache
    return module


def archive(tmp_path, name, source):
    path = tmp_path / name / "ansible_stat_payload.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as payload:
        payload.writestr("mod.py", source)
    return path


def run(code):
    namespace = {}
    exec(code, namespace)  # pylint: disable=exec-used
    return namespace["outer"]


def test_a_source_compiled_once_is_loaded_from_the_cache_with_this_archives_name(hook, tmp_path):
    first = zipimport.zipimporter(str(archive(tmp_path, "run1", SOURCE))).get_code("mod")
    assert len(hook.compiled) == 1 and len(list(hook.cache.iterdir())) == 1
    second_zip = archive(tmp_path, "run2", SOURCE)
    second = zipimport.zipimporter(str(second_zip)).get_code("mod")
    assert len(hook.compiled) == 1, "the second archive's module was compiled again"
    outer = run(second)
    assert outer() == 42
    inner = next(const for const in outer.__code__.co_consts if hasattr(const, "co_filename"))
    assert {second.co_filename, outer.__code__.co_filename, inner.co_filename} == {str(second_zip / "mod.py")}
    assert first.co_filename == str(tmp_path / "run1" / "ansible_stat_payload.zip" / "mod.py")


def test_a_changed_source_is_compiled_again(hook, tmp_path):
    zipimport.zipimporter(str(archive(tmp_path, "run1", SOURCE))).get_code("mod")
    changed = zipimport.zipimporter(str(archive(tmp_path, "run2", SOURCE.replace("41", "40")))).get_code("mod")
    assert len(hook.compiled) == 2 and run(changed)() == 41


def test_a_damaged_cache_entry_falls_back_to_compiling(hook, tmp_path):
    zipimport.zipimporter(str(archive(tmp_path, "run1", SOURCE))).get_code("mod")
    entry = next(hook.cache.iterdir())
    entry.write_bytes(b"not marshal data")
    code = zipimport.zipimporter(str(archive(tmp_path, "run2", SOURCE))).get_code("mod")
    assert len(hook.compiled) == 2 and run(code)() == 42


def test_only_a_directory_no_one_else_can_write_is_used(hook, tmp_path):
    private, shared, link = tmp_path / "private", tmp_path / "shared", tmp_path / "link"
    private.mkdir(mode=0o700)
    shared.mkdir()
    shared.chmod(0o777)
    link.symlink_to(private)
    assert hook._private(str(private))  # pylint: disable=protected-access
    assert not hook._private(str(shared)) and not hook._private(str(link))  # pylint: disable=protected-access
    assert not hook._private(str(tmp_path / "missing"))  # pylint: disable=protected-access
    assert os.stat(private).st_uid == os.geteuid()
