"""Stand-in for ansible-test's get-pip bootstrap script, whose host CI cannot reach.

ansible-test runs this file as __main__ with pip install options and packages as argv
(e.g. "pip==24.2 --no-setuptools"). Like get-pip.py, it puts pip into the running
interpreter and then runs "pip install <argv>", with pip from the stdlib's ensurepip
and the packages from the package index that the machine reaches.
"""
import ensurepip
import os
import runpy
import sys

# ensurepip blanks pip's configuration (PIP_CONFIG_FILE=/dev/null) for its own run; restore it
# so the install below uses the machine's pip configuration (index, CA bundle).
saved_environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True, default_pip=True)
os.environ.clear()
os.environ.update(saved_environment)
# --no-setuptools/--no-wheel are get-pip.py's own flags (skip those packages), not pip's.
arguments = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install"] + arguments
runpy.run_module("pip", run_name="__main__", alter_sys=True)
