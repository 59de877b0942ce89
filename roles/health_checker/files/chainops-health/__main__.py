# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Runs the health checker: python3 -I -S <this directory> [--check-config | --print-target-group] CONFIG.json.

Run as a directory, Python puts the directory first on sys.path (even with -I), so the package next to this
file is the one imported.
"""
import sys

from chainops_health.cli import main

sys.exit(main())
