"""tests/harness/changelog_check.sh on a scratch repository: a change under plugins/, roles/ or playbooks/
since the last release needs a new fragment, and fragments must be valid."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "harness" / "changelog_check.sh"


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)


def commit(repo, files, message):
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", message)


def check(repo):
    env = dict(os.environ, PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")))
    return subprocess.run([str(SCRIPT)], cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def released(tmp_path):
    """A collection whose release 0.2.0 is recorded, with a module and a role."""
    repo = tmp_path / "collection"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "changelogs").mkdir()
    shutil.copy(ROOT / "changelogs" / "config.yaml", repo / "changelogs" / "config.yaml")
    commit(repo, {
        "galaxy.yml": "namespace: chainops\nname: validator\nversion: 0.2.0\nreadme: README.md\nauthors: [t]\n",
        "changelogs/changelog.yaml": "ancestor: null\nreleases:\n  0.2.0:\n    release_date: '2026-12-03'\n",
        "plugins/modules/thing.py": "# a module\n",
        "roles/r/tasks/main.yml": "---\n[]\n",
        "docs/x.md": "docs\n",
    }, "release 0.2.0")
    return repo


def test_a_release_with_nothing_after_it_passes(released):
    result = check(released)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 changed file(s) under plugins/roles/playbooks" in result.stdout


def test_a_plugin_or_role_change_without_a_fragment_fails_and_one_with_a_fragment_passes(released):
    commit(released, {"docs/x.md": "more docs\n"}, "docs only")
    assert check(released).returncode == 0
    commit(released, {"roles/r/tasks/main.yml": "---\n- name: X\n  ansible.builtin.debug:\n"}, "role change")
    result = check(released)
    assert result.returncode == 1
    assert "changed since the release" in result.stderr and "roles/r/tasks/main.yml" in result.stderr
    commit(released, {"changelogs/fragments/r.yml": "---\nminor_changes:\n  - r - does X.\n"}, "fragment")
    result = check(released)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 new fragment(s)" in result.stdout


def test_an_invalid_fragment_fails(released):
    commit(released, {"plugins/modules/thing.py": "# changed\n",
                      "changelogs/fragments/bad.yml": "---\nnew_stuff:\n  - not a section antsibull-changelog knows\n"}, "bad")
    result = check(released)
    assert result.returncode != 0
    assert "bad.yml" in result.stdout + result.stderr
