#!/usr/bin/env bash
# Changelog discipline, run in the lint lane: the fragments are valid (antsibull-changelog lint), and
# when plugins/, roles/ or playbooks/ changed since the last release (the last commit that changed
# changelogs/changelog.yaml), at least one fragment was added since. Run from the repository root.
set -euo pipefail
antsibull-changelog lint
release="$(git log -1 --format=%H -- changelogs/changelog.yaml)"
if [ -z "$release" ]; then
  echo "changelog: no release recorded in changelogs/changelog.yaml yet" >&2
  exit 1
fi
changed="$(git diff --name-only "$release" HEAD -- plugins roles playbooks)"
added="$(git diff --name-only --diff-filter=A "$release" HEAD -- 'changelogs/fragments/*.yml' 'changelogs/fragments/*.yaml')"
if [ -n "$changed" ] && [ -z "$added" ]; then
  echo "changelog: plugins, roles or playbooks changed since the release ${release:0:12} without a fragment" >&2
  echo "$changed" | head -5 | sed 's/^/  /' >&2
  echo "add changelogs/fragments/<topic>.yml (a 'trivial' section for changes users do not see)" >&2
  exit 1
fi
echo "changelog: fragments valid; $(echo "$changed" | grep -c . || true) changed file(s) under plugins/roles/playbooks since ${release:0:12}, $(echo "$added" | grep -c . || true) new fragment(s)"
