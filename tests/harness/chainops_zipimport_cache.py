"""Tests only: keep the bytecode Python compiles from zip archives.

Ansible runs every module from a zip (AnsiballZ) that Python imports with zipimport, which keeps no
bytecode: every task compiled ansible.module_utils anew, a third of the CPU of a no-op converge on
the 2-core CI machine. This keeps each compiled source, by its content, in a directory only its user
can write, and gives the code the file name of this run's archive, as a fresh compile would.
Loaded at start-up by chainops_zipimport_cache.pth: in the test image (tests/harness/build-image.sh)
and in the project's virtualenv (Makefile). Any error falls back to compiling.
"""
import hashlib
import marshal
import os
import stat
import sys
import zipimport

# The test image creates this directory; on the controller the tests name one in the environment.
CACHE_DIR = os.environ.get("CHAINOPS_ZIPIMPORT_CACHE", "/var/cache/chainops-zipimport")
_compile_source = zipimport._compile_source


def _renamed(code, filename):
    consts = tuple(_renamed(const, filename) if isinstance(const, type(code)) else const for const in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _cached_compile_source(pathname, source):
    try:
        # The path inside the archive (ansible/module_utils/basic.py): the archive's own path is new each run.
        inner = pathname.replace(os.sep, "/").rsplit(".zip/", 1)[-1]
        key = hashlib.sha256(b"%s\0%s\0%s" % (sys.implementation.cache_tag.encode(), inner.encode("utf-8", "surrogateescape"),
                                              source)).hexdigest()
        path = os.path.join(CACHE_DIR, key)
        try:
            with open(path, "rb") as cached:
                return _renamed(marshal.loads(cached.read()), pathname)
        except FileNotFoundError:
            pass
        code = _compile_source(pathname, source)
        temporary = "%s.%d" % (path, os.getpid())
        with open(temporary, "wb") as new:
            marshal.dump(code, new)
        os.replace(temporary, path)
        return code
    except Exception:  # pylint: disable=broad-except  # a cache only: never worse than compiling
        return _compile_source(pathname, source)


def _private(directory):
    """Only a directory of this user that nobody else can write: its files are run as code."""
    try:
        info = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


if _private(CACHE_DIR):
    zipimport._compile_source = _cached_compile_source
