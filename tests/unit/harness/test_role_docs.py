"""tests/harness/role_docs.py: the README variable tables made from the argument specs, and --check catching drift."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

SCRIPT = Path(__file__).resolve().parents[3] / "tests" / "harness" / "role_docs.py"
SPEC = importlib.util.spec_from_file_location("role_docs", SCRIPT)
role_docs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(role_docs)

SPECS = {"argument_specs": {
    "main": {"options": {
        "demo_mode": {"type": "str", "choices": ["a", "b"], "default": "a", "description": ["Pick O(demo_mode=a) or C(b).", "See U(https://x.example)."]},
        "demo_items": {"type": "list", "elements": "str", "required": True, "description": "Items | with a pipe."},
        "demo_settings": {"type": "dict", "default": {}, "description": "I(Settings).", "options": {"depth": {"type": "int", "default": 2}}},
    }},
    "extra": {"options": {"demo_mode": {"type": "str", "default": "a", "description": "Same."}}},
}}


def test_one_row_per_variable_with_its_entry_points_and_markup_in_markdown():
    table = role_docs.table("demo", SPECS)
    assert "| `demo_mode` | str (a, b) | `a` | all | Pick `demo_mode=a` or `b`. See <https://x.example>. |" in table
    assert "| `demo_items` | list of str | *required* | main | Items \\| with a pipe. |" in table
    assert "| `demo_settings` | dict | `{}` | main | *Settings*. |" in table
    assert "| `demo_settings.depth` | int | `2` | main |  |" in table
    assert "ansible-doc -t role chainops.validator.demo" in table


def write_role(root: Path, readme: str):
    (root / "roles" / "demo" / "meta").mkdir(parents=True)
    (root / "roles" / "demo" / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(SPECS))
    (root / "roles" / "demo" / "README.md").write_text(readme)


def test_check_fails_on_a_stale_readme_and_write_fixes_it_keeping_the_rest(tmp_path, capsys):
    write_role(tmp_path, "# demo\n\nHand-written text.\n")
    assert role_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "STALE roles/demo/README.md" in capsys.readouterr().out
    assert role_docs.main(["--write", "--root", str(tmp_path)]) == 0
    written = (tmp_path / "roles" / "demo" / "README.md").read_text()
    assert written.startswith("# demo\n\nHand-written text.\n\n" + role_docs.BEGIN)
    assert role_docs.main(["--check", "--root", str(tmp_path)]) == 0
    # A changed spec makes the table stale again; --write replaces it in place, once.
    spec_file = tmp_path / "roles" / "demo" / "meta" / "argument_specs.yml"
    spec_file.write_text(spec_file.read_text().replace("Same.", "Changed."))
    assert role_docs.main(["--check", "--root", str(tmp_path)]) == 1
    role_docs.main(["--write", "--root", str(tmp_path)])
    rewritten = (tmp_path / "roles" / "demo" / "README.md").read_text()
    assert rewritten.count(role_docs.BEGIN) == 1 and "Hand-written text." in rewritten
    assert role_docs.main(["--check", "--root", str(tmp_path)]) == 0
