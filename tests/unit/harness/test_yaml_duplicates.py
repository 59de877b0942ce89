"""tests/harness/yaml_duplicates.py: copied YAML blocks between roles are found through renamed
prefixes and task titles; calls of a shared step and play headers are not copies; the known list only
shrinks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "harness" / "yaml_duplicates.py"

ACCOUNT = """---
- name: Create the {what} group
  ansible.builtin.group:
    name: "{{{{ {prefix}_group }}}}"
    system: true

- name: Create the {what} user
  ansible.builtin.user:
    name: "{{{{ {prefix}_user }}}}"
    group: "{{{{ {prefix}_group }}}}"
    system: true
    shell: /usr/sbin/nologin
"""

CALL = """---
- name: Create the account
  ansible.builtin.import_role:
    name: chainops.validator._common
    tasks_from: system_account
  vars:
    _common_account_user: "{{{{ {prefix}_user }}}}"
    _common_account_group: "{{{{ {prefix}_group }}}}"
    _common_account_home: /nonexistent
"""

HEADER = """---
- name: Converge {what}
  hosts: all
  gather_facts: false
  become: true
  roles:
    - role: chainops.validator.{what}
"""


def tree(tmp_path: Path, template: str, roles=("alpha", "beta_gamma")) -> Path:
    for role in roles:
        path = tmp_path / "roles" / role / "tasks" / "main.yml"
        path.parent.mkdir(parents=True)
        path.write_text(template.format(prefix=role, what=role.replace("_", " ")))
    return tmp_path


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args], capture_output=True, text=True, check=False)


def test_a_block_copied_under_another_prefix_and_title_is_found(tmp_path):
    result = run(tree(tmp_path, ACCOUNT))
    assert result.returncode == 1
    assert "roles/alpha/tasks/main.yml:2 ~ roles/beta_gamma/tasks/main.yml:2 (10 normalised lines)" in result.stdout


def test_calls_of_a_shared_step_and_play_headers_are_not_copies(tmp_path):
    assert run(tree(tmp_path, CALL)).returncode == 0
    for scenario in ("one", "two"):
        play = tmp_path / "molecule" / scenario / "converge.yml"
        play.parent.mkdir(parents=True)
        play.write_text(HEADER.format(what="node"))
    assert run(tmp_path).returncode == 0


def test_the_known_list_reports_listed_pairs_and_fails_on_new_or_gone_ones(tmp_path):
    root = tree(tmp_path / "tree", ACCOUNT)
    known = tmp_path / "known"
    known.write_text("# debt\nroles/alpha/tasks/main.yml ~ roles/beta_gamma/tasks/main.yml\n")
    listed = run(root, "--known", str(known))
    assert listed.returncode == 0, listed.stdout
    assert listed.stdout.startswith("known roles/alpha")
    (root / "roles" / "delta" / "tasks").mkdir(parents=True)
    (root / "roles" / "delta" / "tasks" / "main.yml").write_text(ACCOUNT.format(prefix="delta", what="delta"))
    new = run(root, "--known", str(known))
    assert new.returncode == 1 and "NEW   roles/alpha/tasks/main.yml:2 ~ roles/delta/tasks/main.yml:2" in new.stdout
    for role in ("beta_gamma", "delta"):
        (root / "roles" / role / "tasks" / "main.yml").write_text(CALL.format(prefix=role))
    gone = run(root, "--known", str(known))
    assert gone.returncode == 1
    assert "GONE  roles/alpha/tasks/main.yml ~ roles/beta_gamma/tasks/main.yml" in gone.stdout


DIRECTORY = """---
- name: Create the {what} directory
  ansible.builtin.file:
    path: "{{{{ {prefix}_dir }}}}"
    state: directory
    owner: root
    group: root
    mode: "0700"

- name: Install the {what} program
  ansible.builtin.copy:
    src: {prefix}.py
    dest: "{{{{ {prefix}_program }}}}"
    owner: root
    group: root
    mode: "0644"
"""

# A play copied between scenarios: only two lines say what it does, one of them a failed_when test.
WAIT = """---
- name: Wait for systemd
  hosts: all
  gather_facts: false
  tasks:
    - name: Wait until systemd finished booting
      ansible.builtin.command: systemctl is-system-running --wait
      register: __boot
      changed_when: false
      failed_when: __boot.stdout not in ['running', 'degraded']
"""


def test_the_same_module_with_the_same_file_attributes_is_no_copied_step(tmp_path):
    result = run(tree(tmp_path, DIRECTORY))
    assert result.returncode == 0, result.stdout
    assert "0 copied blocks" in result.stdout


def test_a_window_with_two_lines_of_content_among_keywords_is_a_copy(tmp_path):
    for scenario in ("one", "two"):
        play = tmp_path / "molecule" / scenario / "prepare.yml"
        play.parent.mkdir(parents=True)
        play.write_text(WAIT)
    result = run(tmp_path)
    assert result.returncode == 1
    assert "molecule/one/prepare.yml:6 ~ molecule/two/prepare.yml:6 (5 normalised lines)" in result.stdout
    # Each line of content is needed: with --min-content 3 the same play is no longer a copy.
    assert run(tmp_path, "--min-content", "3").returncode == 0
