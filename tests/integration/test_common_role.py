"""roles/_common, the internal role the collection's roles share: it refuses a play that uses it
directly, checks its arguments by entry point, and, imported from a role, leaves an existing account
alone when asked to (check mode on the controller, so nothing here can change this machine)."""
from __future__ import annotations

import json

from playbook_runner import ansible_playbook


def run(tmp_path, tasks, check=True, caller_role=False):
    if caller_role:
        (tmp_path / "roles" / "caller" / "tasks").mkdir(parents=True)
        (tmp_path / "roles" / "caller" / "tasks" / "main.yml").write_text(json.dumps(tasks))
        play = {"hosts": "localhost", "connection": "local", "gather_facts": False, "roles": ["caller"]}
    else:
        play = {"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([play]))
    return ansible_playbook(path, "-i", "localhost,", *(["--check"] if check else []))


def common(entry_point, **variables):
    return {"name": "Import " + entry_point, "ansible.builtin.import_role": {
        "name": "chainops.validator._common", "tasks_from": entry_point}, "vars": variables}


def test_a_play_that_names_the_internal_role_is_refused(tmp_path):
    result = run(tmp_path, [common("packages", _common_packages=["tar"])])
    assert result.returncode != 0
    assert "chainops.validator._common is internal to the collection's roles" in result.stdout


def test_a_missing_or_wrong_argument_is_named(tmp_path):
    result = run(tmp_path, [common("system_account", _common_account_group="nogroup",
                                   _common_account_keep_existing="sometimes")], caller_role=True)
    assert result.returncode != 0
    assert "_common_account_user" in result.stdout
    assert "_common_account_keep_existing" in result.stdout


def test_an_existing_account_is_left_alone_when_asked(tmp_path):
    # root exists on every machine: with keep_existing the group and user tasks are skipped.
    result = run(tmp_path, [common("system_account", _common_account_user="root", _common_account_group="root",
                                   _common_account_home="/nowhere", _common_account_keep_existing=True)],
                 caller_role=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "skipping: [localhost]" in result.stdout.split("Create the system group root")[1].split("TASK")[0]
    assert "skipping: [localhost]" in result.stdout.split("Create the system user root")[1].split("TASK")[0]
    assert "changed=0" in result.stdout
