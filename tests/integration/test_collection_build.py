"""The built collection tarball installs and works by FQCN, without the working tree."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
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


# A module of another collection as a task's key (namespace.collection.name:), and a filter of one.
FOREIGN_FQCN = re.compile(r"^\s*(?:-\s+)?((?!ansible\.builtin\.|chainops\.validator\.)[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*):\s*$",
                          re.M)
FOREIGN_FILTER = re.compile(r"\|\s*((?!ansible\.builtin\.|chainops\.validator\.)[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\b")


@pytest.fixture(scope="module")
def installed_alone(installed, tmp_path_factory):
    """The tarball installed into an empty path with the dependencies galaxy.yml declares, taken from
    the `ansible` package's copies (Galaxy is unreachable); nothing else is visible to Ansible."""
    base, tarball = installed
    site_collections = next(Path(sys.prefix).glob("lib/python3*/site-packages")) / "ansible_collections"
    declared = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["dependencies"]
    requirements = [{"name": str(tarball), "type": "file"}] + [
        {"name": str(site_collections.joinpath(*name.split("."))), "type": "dir"} for name in declared]
    target = tmp_path_factory.mktemp("alone")
    (target / "requirements.yml").write_text(yaml.safe_dump({"collections": requirements}))
    env = {"ANSIBLE_COLLECTIONS_PATH": str(target / "collections"), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
           "PATH": str(BIN), "HOME": str(target), "ANSIBLE_NOCOLOR": "1"}
    install = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-r", str(target / "requirements.yml"),
                              "-p", str(target / "collections")], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    installed_names = sorted("%s.%s" % (path.parent.name, path.name) for path in (target / "collections" / "ansible_collections").glob("*/*"))
    assert installed_names == sorted(["chainops.validator"] + list(declared)), installed_names
    return target / "collections" / "ansible_collections" / "chainops" / "validator", env


def test_every_playbook_and_plugin_works_with_the_declared_dependencies_only(installed_alone):
    root, env = installed_alone
    for playbook in sorted((root / "playbooks").glob("*.yml")):
        fqcn = "chainops.validator." + playbook.stem
        check = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", fqcn],
                               capture_output=True, text=True, env=env, timeout=300, check=False)
        assert check.returncode == 0, (fqcn, check.stdout[-2000:] + check.stderr[-2000:])
    # Every module and filter of another collection that a role, playbook or plugin names, resolved from the install.
    texts = [path.read_text() for pattern in ("roles/**/*.yml", "roles/**/*.j2", "playbooks/**/*.yml") for path in root.glob(pattern)]
    modules = sorted({name for text in texts for name in FOREIGN_FQCN.findall(text)})
    filters = sorted({name for text in texts for name in FOREIGN_FILTER.findall(text)})
    assert "community.aws.elb_target_group" in modules and "amazon.aws.ec2_snapshot" in modules, modules
    # The collection's own plugins, by FQCN.
    own = {
        "module": ["chainops.validator." + p.stem for p in (root / "plugins" / "modules").glob("*.py")],
        "inventory": ["chainops.validator." + p.stem for p in (root / "plugins" / "inventory").glob("*.py")],
        "filter": ["chainops.validator." + p.stem for p in (root / "plugins" / "filter").glob("*.yml")],
    }
    for kind, names in (("module", modules + own["module"]), ("filter", filters + own["filter"]), ("inventory", own["inventory"])):
        if not names:
            continue
        doc = subprocess.run([str(BIN / "ansible-doc"), "-t", kind, "--json", *names], capture_output=True, text=True, env=env,
                             timeout=300, check=False)
        assert doc.returncode == 0, (kind, doc.stderr[-3000:])
        documented = json.loads(doc.stdout)
        assert sorted(documented) == sorted(names), (kind, sorted(set(names) - set(documented)))
