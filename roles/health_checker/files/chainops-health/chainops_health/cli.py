# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The command line.

    DIR CONFIG.json                 serve
    DIR --check-config CONFIG.json  validate and exit (0 = valid, 2 = invalid)
    DIR --print-target-group CONFIG.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from chainops_health import VERSION
from chainops_health.config import ConfigError, load_config, target_group_report, validate_config
from chainops_health.server import serve


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="chainops_health", description="Sync-aware HTTP health checker.")
    parser.add_argument("config", help="path to the JSON config file")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check-config", action="store_true", help="validate the config and exit (0 = valid)")
    mode.add_argument("--print-target-group", action="store_true",
                      help="print the matching ELBv2 target-group health check settings as JSON and exit")
    parser.add_argument("--version", action="version", version=f"chainops_health {VERSION}")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = validate_config(load_config(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"chainops_health: config error: {problem}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"config OK: {cfg['adapter']} adapter, {len(cfg['references'])} reference(s), "
              f"listen {cfg['listen_host']}:{cfg['listen_port']}")
        return 0
    if args.print_target_group:
        print(json.dumps(target_group_report(cfg), indent=2, sort_keys=True))
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    return serve(cfg)
