"""Copied YAML blocks between roles (and between molecule scenarios): windows of N normalised lines.

The Python side has `duplicates`; task files are YAML, which it does not read. A block copied from
one role into another is a step with two homes: it belongs in roles/_common (or in a module). This
scan reads roles/*/{tasks,handlers}/*.yml and the plays of molecule/*/ (not molecule.yml), normalises each line and reports every
window of --min-lines (default 5) consecutive normalised lines that stands in two different owners
(a role, or a molecule scenario). Exit 1 when there is one that --known does not list (the pairs
still to be removed), or when --known lists a pair that is no longer there, so the list only shrinks.

Normalised: blank lines, full-line comments and ``---`` dropped; indentation and trailing spaces
stripped; a task's ``name:`` text dropped (the same step under another title is still a copy); the
owner's own variable prefix (``node_``, ``_node_``, ``__node_`` in roles/node) written as ``ROLE_``,
so that ``node_user`` in one role and ``health_checker_user`` in another read the same.

A copy is a step: a window counts only when at least --min-content (default 2) of its lines say what
the step does. Thin lines say where or how a task runs (``- name:``, ``hosts:``, ``become:``,
``register:``, ``changed_when:``, ``failed_when:``...), which module it calls (``ansible.builtin.file:``)
or how a file is kept (``owner:``, ``group:``, an octal ``mode:``, ``state:``): two roles that each
create a root-owned 0700 directory call the same module, they do not share a step.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# Lines that say where or how a task runs, which module it calls or how a file is kept, not what the
# step does: a window needs --min-content other lines to be a copied step.
THIN = re.compile(r"^(- )?((name|when|block|rescue|always|tasks|roles|vars|loop|tags|listen):?|role: .*|"
                  r"(hosts|gather_facts|become|delegate_to|run_once|check_mode|changed_when|no_log|register|notify): .*|failed_when: (false|true)|"
                  r"[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+:|"
                  r"(owner|group): root|mode: [\"']?0[0-7]{3}[\"']?|state: (directory|file|absent|touch|link))$")


def owner_of(root: Path, path: Path) -> tuple[str, str]:
    """(owner, variable prefix) of a file: ("role node", "node") or ("molecule polykey", "")."""
    parts = path.relative_to(root).parts
    if parts[0] == "roles":
        return "role " + parts[1], parts[1].lstrip("_")
    return "molecule " + parts[1], ""


def normalise(line: str, prefix: str) -> str:
    text = line.strip()
    if not text or text.startswith("#") or text == "---":
        return ""
    text = re.sub(r"^(- )?name:\s.*$", r"\1name:", text) if not re.match(r"^(- )?name:\s*[\"']?\{\{", text) else text
    if prefix:
        text = re.sub(r"\b_{0,2}%s_" % re.escape(prefix), "ROLE_", text)
    return text


CALL = re.compile(r"^(\s*)(- )?ansible\.builtin\.(import_playbook|(import|include)_(role|tasks)):")


def call_lines(raw: list[str]) -> set[int]:
    """Line numbers of tasks that call a shared step (import/include of a role or task file).

    A call is what removing a copy leaves behind, so it is not a copy itself; its lines break a window.
    """
    calls = set()
    for index, text in enumerate(raw):
        match = CALL.match(text)
        if not match:
            continue
        indent = len(match.group(1)) - (0 if match.group(2) else 2)  # the task's "- " column
        start = index
        while start > 0 and not (raw[start].startswith(" " * indent + "- ") and len(raw[start]) - len(raw[start].lstrip()) == indent):
            start -= 1
        end = index + 1
        while end < len(raw) and (not raw[end].strip() or len(raw[end]) - len(raw[end].lstrip()) > indent):
            end += 1
        calls.update(range(start + 1, end + 1))
    return calls


def files(root: Path) -> list[Path]:
    found = []
    for pattern in ("roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "molecule/*/*.yml"):
        # molecule.yml is each scenario's settings (platforms, provisioner), not plays.
        found += sorted(path for path in root.glob(pattern) if path.name != "molecule.yml")
    return found


def scan(root: Path, min_lines: int = 5, min_content: int = 2) -> list[tuple[str, int, str, int, int]]:
    """Pairs of places in different owners sharing min_lines+ normalised lines: (file a, line a, file b, line b, length)."""
    lines = {}  # file -> [(line number, normalised text)]
    owners = {}
    for path in files(root):
        owner, prefix = owner_of(root, path)
        owners[path] = owner
        raw = path.read_text().splitlines()
        calls = call_lines(raw)
        numbered = [(number, "" if number in calls else normalise(text, prefix)) for number, text in enumerate(raw, 1)]
        lines[path] = [(number, text) for number, text in numbered if text or number in calls]

    def counted(entries, position):
        """The window at position, or None when it holds a call or fewer than min_content lines that are not thin."""
        window = tuple(text for _number, text in entries[position:position + min_lines])
        return None if "" in window or sum(not THIN.match(text) for text in window) < min_content else window

    index = {}  # window -> [(file, position)]
    for path, entries in lines.items():
        for position in range(len(entries) - min_lines + 1):
            window = counted(entries, position)
            if window:
                index.setdefault(window, []).append((path, position))
    found = []
    for places in index.values():
        for first, (path_a, pos_a) in enumerate(places):
            for path_b, pos_b in places[first + 1:]:
                if owners[path_a] == owners[path_b]:
                    continue
                # Extend backwards: only the start of a run is reported.
                a, b = lines[path_a], lines[path_b]
                if pos_a and pos_b and a[pos_a - 1][1] == b[pos_b - 1][1] and counted(a, pos_a - 1):
                    continue
                length = min_lines
                while (pos_a + length < len(a) and pos_b + length < len(b) and a[pos_a + length][1]
                       and a[pos_a + length][1] == b[pos_b + length][1]):
                    length += 1
                # Each position has one window, so a pair of positions comes up once.
                found.append((str(path_a.relative_to(root)), a[pos_a][0], str(path_b.relative_to(root)), b[pos_b][0], length))
    return sorted(found, key=lambda row: -row[4])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--min-lines", type=int, default=5)
    parser.add_argument("--min-content", type=int, default=2, help="lines of a window that must not be thin")
    parser.add_argument("--known", type=Path, help="pairs still to be removed (file a ~ file b, a line each): reported, "
                        "not failed; a pair that is gone must leave the list too")
    args = parser.parse_args()
    found = scan(args.root, args.min_lines, args.min_content)
    known = set()
    if args.known:
        known = {line.strip() for line in args.known.read_text().splitlines() if line.strip() and not line.startswith("#")}
    pairs = {"%s ~ %s" % (path_a, path_b) for path_a, _line_a, path_b, _line_b, _length in found}
    new = 0
    for path_a, line_a, path_b, line_b, length in found:
        listed = "%s ~ %s" % (path_a, path_b) in known
        new += not listed
        print("%s%s:%d ~ %s:%d (%d normalised lines)" % ("known " if listed else "NEW   ", path_a, line_a, path_b, line_b, length))
    gone = sorted(known - pairs)
    for pair in gone:
        print("GONE  %s: no longer a copy, take it out of %s" % (pair, args.known))
    summary = "yaml duplicates: %d copied block%s between roles or scenarios (windows of %d lines)" % (
        len(found), "" if len(found) == 1 else "s", args.min_lines)
    if args.known:
        summary += ", %d not in the known list, %d listed but gone" % (new, len(gone))
    print(summary)
    return 1 if new or gone else 0


if __name__ == "__main__":
    sys.exit(main())
