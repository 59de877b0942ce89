# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""chainops_health: a sync-aware HTTP health checker for blockchain nodes.

A background thread polls the node (and optional reference nodes) once per poll
interval, decides a verdict and pre-renders every HTTP response.  Request
handlers only copy those bytes to the socket, so a probe never waits on the
node and the node sees the same RPC load whatever the probe rate.

Standard library only: it runs with the target host's system python3 (3.11).
The role installs this package next to a __main__.py and runs the directory
(python3 -I -S DIR ...; see chainops_health.cli for the arguments). Modules:
config (the JSON config and its validation), client (HTTP/JSON-RPC), adapters
(one per client family), verdict (checks to healthy or not), server (poller,
responses, HTTP server), cli.
"""

from __future__ import annotations

VERSION = "1.0.0"
