"""The built collection tarball installs and works by FQCN, without the working tree."""
from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from playbook_runner import REPO_ROOT, ansible_playbook

BIN = Path(sys.executable).parent

PLAYBOOK = """
- name: Use the installed collection by FQCN only
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Render the litecoind profile with the installed node role
      ansible.builtin.include_role:
        name: chainops.validator.node
        tasks_from: render
      vars:
        node_profile: litecoind
        node_network: regtest
        node_render_dest: "{{ render_dest }}"

    - name: Use a filter plugin of the installed collection
      ansible.builtin.assert:
        that:
          - "(['a'] | chainops.validator.node_peer_endpoints({'a': {'address': '10.0.0.1', 'port': 1}})) == [{'address': '10.0.0.1', 'port': 1, 'id': None}]"
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("galaxy")
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(base), str(REPO_ROOT)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stderr
    tarballs = list(base.glob("chainops-validator-*.tar.gz"))
    assert len(tarballs) == 1
    # Galaxy is unreachable here; the dependencies come from the `ansible` package.
    install = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "--force", "-p", str(base / "collections"), str(tarballs[0])],
                             capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stderr
    return base, tarballs[0]


def test_tarball_leaves_out_tests_and_local_state(installed):
    tarball = installed[1]
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert "roles/node/tasks/main.yml" in names
    assert "plugins/module_utils/node_profile.py" in names
    for excluded in (".venv", ".cache", "tests", "molecule", ".git", ".ci"):
        assert not any(name == excluded or name.startswith(excluded + "/") for name in names), excluded


def test_installed_collection_runs_by_fqcn(installed, tmp_path):
    base = installed[0]
    site_packages = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    collections_path = "%s:%s" % (base / "collections", site_packages)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    result = ansible_playbook(tmp_path / "play.yml", "-i", "localhost,", "-c", "local", "-e", "render_dest=%s" % (tmp_path / "out"),
                              collections_path=collections_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "chain=regtest" in (tmp_path / "out" / "litecoin.conf").read_text()
    listing = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "chainops.validator", "-p", str(base / "collections")],
                             capture_output=True, text=True, env={"ANSIBLE_COLLECTIONS_PATH": collections_path, "PATH": str(BIN)}, check=False)
    assert str(base / "collections") in listing.stdout
    doc = subprocess.run([str(BIN / "ansible-doc"), "-t", "filter", "chainops.validator.node_profile_resolve"], capture_output=True, text=True,
                         env={"ANSIBLE_COLLECTIONS_PATH": collections_path, "PATH": str(BIN), "ANSIBLE_NOCOLOR": "1"}, check=False)
    assert doc.returncode == 0, doc.stderr
    assert str(base / "collections") in doc.stdout and "port_overrides" in doc.stdout
