#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: ansible-test requires the header on modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wait_ready
short_description: Wait, within a total time bound, until a command or HTTP endpoint on the host is ready, and say why not
version_added: 0.2.0
description:
  - Runs on the host. Repeats one probe until it is ready or O(timeout) seconds have passed, then
    fails with what the last attempt showed (a command's exit code and last line of output, an HTTP
    status and the failing checks of a chainops C(/health) document, or the JSON fields below their
    minimum), instead of an exhausted retry count.
  - A probe is either O(command) (ready when it exits 0) or O(url) (ready on one of O(status_code)).
    With O(minimums), the probe's JSON output must also reach each given field's minimum, for
    example a node's C(blocks) against the height a snapshot was restored at.
  - One task prints one result, however long it waits. The whole wait takes at most O(timeout) plus
    one O(attempt_timeout).
options:
  command:
    description: Command to run, as an argument list (no shell). Mutually exclusive with O(url).
    type: list
    elements: str
  url:
    description: URL to request. Mutually exclusive with O(command). Proxies are not used.
    type: str
  method:
    description: HTTP method.
    type: str
    default: GET
    choices: [GET, HEAD, POST]
  body:
    description: JSON body to send (a string is sent as it is).
    type: raw
  headers:
    description: HTTP headers.
    type: dict
    default: {}
  status_code:
    description: HTTP statuses that mean ready.
    type: list
    elements: int
    default: [200]
  minimums:
    description:
      - "Fields of the probe's JSON output (dotted paths) and the minimum each must reach, e.g.
        C({blocks: 200})."
    type: dict
    default: {}
  timeout:
    description: Total seconds to keep trying. C(0) makes exactly one attempt.
    type: int
    default: 60
  interval:
    description: Seconds between attempts.
    type: float
    default: 2
  attempt_timeout:
    description: Seconds one attempt may take.
    type: float
    default: 5
  what:
    description: What is being waited for, in words, for the result message (e.g. C(litecoind RPC)).
    type: str
    default: the probe
  unit:
    description:
      - A systemd unit whose state (active state, result, last exit status, restarts) is added to the
        failure message, e.g. the node's service when its RPC never answers.
    type: str
  journal_lines:
    description:
      - With O(unit), this many of its last journal lines are added to the failure message too. Only for
        services whose logs hold no secrets.
    type: int
    default: 0
  fail_on_timeout:
    description: Fail when not ready in time. With C(false) the result says RV(ready=false) and the task succeeds.
    type: bool
    default: true
notes:
  - Only reads; in check mode it runs as usual, so a check run reports the real state.
extends_documentation_fragment:
  - chainops.validator.progress
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Wait until the node answers its RPC
  chainops.validator.wait_ready:
    command: [litecoin-cli, -conf=/etc/chainops/litecoind/rpc.conf, getblockchaininfo]
    timeout: 60
    what: litecoind RPC
    unit: litecoind

- name: Wait until the restored node serves the snapshot's height
  chainops.validator.wait_ready:
    command: [litecoin-cli, -conf=/etc/chainops/litecoind/rpc.conf, getblockchaininfo]
    minimums: {blocks: 120000}
    timeout: 600
    what: the restored chain

- name: Wait until /health answers 200
  chainops.validator.wait_ready:
    url: http://127.0.0.1:9680/health
    timeout: 180
    what: /health
"""

RETURN = r"""
ready:
  description: Whether the probe was ready before the bound.
  returned: always
  type: bool
attempts:
  description: Attempts made.
  returned: always
  type: int
elapsed:
  description: Seconds spent.
  returned: always
  type: float
state:
  description: What the last attempt showed, in one line (C(ready) when ready).
  returned: always
  type: str
  sample: "HTTP 503: peers: 0 peers, minimum is 1; not_syncing: node reports it is syncing (initialblockdownload)"
reasons:
  description: "Failing checks of a chainops C(/health) document, as C(check: reason) strings."
  returned: always
  type: list
  elements: str
rc:
  description: Exit code of the last command run.
  returned: with O(command)
  type: int
stdout:
  description: Output of the last command run (its last 4000 characters).
  returned: with O(command)
  type: str
status:
  description: HTTP status of the last request (null when nothing answered).
  returned: with O(url)
  type: int
json:
  description: The last output or body, parsed as JSON (null when it is not JSON).
  returned: always
  type: raw
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chainops.validator.plugins.module_utils.progress import Progress, progress_argument_spec
from ansible_collections.chainops.validator.plugins.module_utils.readiness import (
    json_field,
    probe_command,
    probe_http,
    unit_state,
    wait,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            command=dict(type="list", elements="str"),
            url=dict(type="str"),
            method=dict(type="str", default="GET", choices=["GET", "HEAD", "POST"]),
            body=dict(type="raw"),
            headers=dict(type="dict", default={}),
            status_code=dict(type="list", elements="int", default=[200]),
            minimums=dict(type="dict", default={}),
            timeout=dict(type="int", default=60),
            interval=dict(type="float", default=2),
            attempt_timeout=dict(type="float", default=5),
            what=dict(type="str", default="the probe"),
            unit=dict(type="str"),
            journal_lines=dict(type="int", default=0),
            fail_on_timeout=dict(type="bool", default=True),
            **progress_argument_spec()
        ),
        mutually_exclusive=[("command", "url")],
        required_one_of=[("command", "url")],
        supports_check_mode=True,
    )
    p = module.params
    problems = []
    if p["timeout"] < 0:
        problems.append("timeout: must be >= 0, got %d" % p["timeout"])
    if p["interval"] <= 0 or p["attempt_timeout"] <= 0:
        problems.append("interval and attempt_timeout: must be > 0")
    if p["command"] is not None and not p["command"]:
        problems.append("command: must not be empty")
    for field, minimum in p["minimums"].items():
        if isinstance(minimum, bool) or not isinstance(minimum, (int, float)):
            try:
                float(minimum)
            except (TypeError, ValueError):
                problems.append("minimums.%s: must be a number, got %r" % (field, minimum))
    if problems:
        module.fail_json(msg="; ".join(problems))

    if p["command"]:
        def probe():
            return probe_command(p["command"], p["attempt_timeout"])
    else:
        def probe():
            return probe_http(p["url"], p["method"], p["body"], p["headers"], p["status_code"], p["attempt_timeout"])

    # A sync wait with one minimum (a height) counts towards it; any other wait counts seconds.
    field = next(iter(p["minimums"])) if len(p["minimums"]) == 1 else None
    progress = Progress(p["progress_file"], "waiting for %s" % p["what"], unit=field or "s",
                        total=float(p["minimums"][field]) if field else p["timeout"])

    def observe(last):
        value = json_field(last.get("json"), field) if field and last.get("json") is not None else None
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        progress.update(done=value if numeric else None, state="last seen: %s" % last.get("state", ""))

    result = wait(probe, p["timeout"], p["interval"], minimums=p["minimums"], observe=observe)
    last = result["last"]
    output = dict(changed=False, ready=result["ready"], attempts=result["attempts"], elapsed=result["elapsed"],
                  state=last.get("state", ""), reasons=last.get("reasons", []), json=last.get("json"))
    if p["command"]:
        output.update(rc=last.get("rc"), stdout=last.get("stdout", ""))
    else:
        output.update(status=last.get("status"))
    if not result["ready"] and p["fail_on_timeout"]:
        why = "; %s" % unit_state(p["unit"], p["journal_lines"]) if p["unit"] else ""
        module.fail_json(msg="%s not ready after %.0f s (%d attempts, bound %d s); last seen: %s%s"
                         % (p["what"], result["elapsed"], result["attempts"], p["timeout"], output["state"], why), **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
