"""Each role README's variable table, generated from the role's meta/argument_specs.yml.

The argument specs are what Ansible checks and what `ansible-doc -t role` shows; the README's table is
made from them, so the two cannot drift apart (devsec.hardening does the same). One row per variable,
with the entry points that take it. The table sits between two markers at the end of the README;
--check (the lint lane) fails when a README is not what --write would make of it.

Usage: role_docs.py --check | --write [--root DIR]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

BEGIN = "<!-- BEGIN variables: generated from meta/argument_specs.yml by tests/harness/role_docs.py --write -->"
END = "<!-- END variables -->"
# Ansible's documentation markup (O(), C(), V(), RV(), I(), M(), U(), L()) in Markdown.
MARKUP = [
    (re.compile(r"\b(?:O|C|V|RV|M|E)\(([^()]*(?:\([^()]*\)[^()]*)*)\)"), r"`\1`"),
    (re.compile(r"\bI\(([^()]*)\)"), r"*\1*"),
    (re.compile(r"\bU\(([^()]*)\)"), r"<\1>"),
    (re.compile(r"\bL\(([^(),]*),\s*([^()]*)\)"), r"[\1](\2)"),
]


def markdown(text) -> str:
    """One table cell from a description (a string or a list of paragraphs)."""
    if isinstance(text, list):
        text = " ".join(str(part) for part in text)
    text = " ".join(str(text or "").split())
    for pattern, replacement in MARKUP:
        text = pattern.sub(replacement, text)
    return text.replace("|", "\\|")


def default_cell(spec: dict) -> str:
    if spec.get("required"):
        return "*required*"
    if "default" not in spec:
        return ""
    value = spec["default"]
    shown = value if isinstance(value, str) else json.dumps(value)
    return "`%s`" % shown.replace("|", "\\|").replace("`", "'") if shown != "" else "`''`"


def type_cell(spec: dict) -> str:
    kind = spec.get("type", "str")
    if kind == "list" and spec.get("elements"):
        kind = "list of %s" % spec["elements"]
    if spec.get("choices"):
        kind += " (%s)" % ", ".join(str(choice) for choice in spec["choices"])
    return kind.replace("|", "\\|")


def rows(options: dict, entry: str, found: dict, prefix: str = "") -> None:
    for name, spec in (options or {}).items():
        spec = spec or {}
        key = prefix + name
        row = found.setdefault(key, {"spec": spec, "entries": []})
        row["entries"].append(entry)
        rows(spec.get("options") or spec.get("suboptions"), entry, found, key + ".")


def table(role: str, specs: dict) -> str:
    found: dict = {}
    entries = list((specs.get("argument_specs") or {}).items())
    for entry, spec in entries:
        rows((spec or {}).get("options"), entry, found)
    lines = [BEGIN, "## Variables", "",
             "From `meta/argument_specs.yml`, which Ansible checks the inputs against (also",
             "`ansible-doc -t role chainops.validator.%s -e <entry point>`)." % role, ""]
    if not found:
        lines += ["None.", END]
        return "\n".join(lines) + "\n"
    lines += ["| Variable | Type | Default | Entry points | Description |", "|---|---|---|---|---|"]
    for name in sorted(found):
        spec, entries_of = found[name]["spec"], found[name]["entries"]
        shown = "all" if len(entries) > 1 and len(entries_of) == len(entries) else ", ".join(entries_of)
        lines.append("| `%s` | %s | %s | %s | %s |" % (name, type_cell(spec), default_cell(spec), shown, markdown(spec.get("description"))))
    lines.append(END)
    return "\n".join(lines) + "\n"


def render(readme: str, generated: str) -> str:
    """The README with its generated section replaced (or appended)."""
    if BEGIN in readme and END in readme:
        head, rest = readme.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + generated + (("\n" + tail) if tail else "")
    return readme.rstrip("\n") + "\n\n" + generated


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail when a README's table is not current")
    mode.add_argument("--write", action="store_true", help="write the tables")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args(argv)
    stale = []
    for spec_file in sorted(args.root.glob("roles/*/meta/argument_specs.yml")):
        readme = spec_file.parents[1] / "README.md"
        current = readme.read_text() if readme.exists() else "# %s\n" % spec_file.parents[1].name
        wanted = render(current, table(spec_file.parents[1].name, yaml.safe_load(spec_file.read_text())))
        if wanted != current:
            stale.append(readme)
            if args.write:
                readme.write_text(wanted)
    for readme in stale:
        print("%s %s" % ("wrote" if args.write else "STALE", readme.relative_to(args.root)))
    if stale and args.check:
        print("role_docs: %d README(s) out of date with their argument specs: run python3 tests/harness/role_docs.py --write" % len(stale))
        return 1
    print("role_docs: %d README(s) checked" % len(list(args.root.glob("roles/*/meta/argument_specs.yml"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
