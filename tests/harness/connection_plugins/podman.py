# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's and molecule's connection to podman containers, with pipelining.

containers.podman.podman runs `podman exec` without --interactive, so nothing reaches the
container's stdin and it cannot pipeline: every task costs a temporary directory, a copy, a chmod
and a cleanup, each a `podman exec`. Passing the module on stdin makes a task one command.
As root, that command enters the container's namespaces with nsenter instead of `podman exec`:
podman's own start-up (about 0.1 CPU-s each time) was the largest cost of a task on this 2-core
CI machine, nsenter's is about 0.003 CPU-s. The container's process ID and environment are read
once with `podman inspect` and kept in a small cache checked against the process's start time,
so a restarted or re-created container is inspected again.
Found by the short name `podman` once this directory is in connection_plugins
(lab/lab.sh and .config/molecule/config.yml put it there).
"""
from __future__ import annotations

DOCUMENTATION = r"""
name: podman
short_description: Run tasks in a podman container, with pipelining
description:
  - Like C(containers.podman.podman), but passes pipelined modules on the container's stdin
    (C(podman exec --interactive)), so a task is one C(podman exec) when pipelining is enabled.
  - Files are copied through the container's mount point when podman can mount it (root), otherwise with C(podman cp).
author: chainops.validator
options:
  remote_addr:
    description: The container's name or ID.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_host
  remote_user:
    description: User to run commands as inside the container (default the container's user).
    vars:
      - name: ansible_user
    env:
      - name: ANSIBLE_REMOTE_USER
  podman_executable:
    description: The podman command.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  exec_method:
    description:
      - C(nsenter) enters the container's namespaces directly (root only), C(podman) runs C(podman exec).
      - C(auto) is C(nsenter) when running as root with no I(remote_user), else C(podman).
    choices: [auto, nsenter, podman]
    default: auto
    vars:
      - name: ansible_podman_exec_method
    env:
      - name: CHAINOPS_PODMAN_EXEC_METHOD
"""

import json
import os
import shlex
import shutil
import subprocess
import tempfile

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect


def _start_time(pid):
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            # The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class Connection(ConnectionBase):
    transport = "podman"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pid = None
        self._env = []

    def _podman(self, args, in_data=None):
        return self._run([self.get_option("podman_executable")] + list(args), in_data)

    @staticmethod
    def _run(command, in_data=None):
        try:
            proc = subprocess.run([to_bytes(a, errors="surrogate_or_strict") for a in command], input=in_data,
                                  capture_output=True, check=False)
        except OSError as exc:
            raise AnsibleConnectionFailure("cannot run %s: %s" % (command[0], to_native(exc)))
        return proc.returncode, proc.stdout, proc.stderr

    @property
    def _container(self):
        return self.get_option("remote_addr")

    def _use_nsenter(self):
        method = self.get_option("exec_method")
        if method == "auto":
            return os.geteuid() == 0 and not self.get_option("remote_user") and shutil.which("nsenter") is not None
        return method == "nsenter"

    def _cache_path(self):
        """The cache file, or None when its directory is not ours alone (then every task inspects)."""
        directory = os.path.join(tempfile.gettempdir(), "chainops-podman-connection-%d" % os.geteuid())
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # A directory someone else made could point us at any process: trust only our own, private one.
        info = os.lstat(directory)
        if info.st_uid != os.geteuid() or info.st_mode & 0o077 or not os.path.isdir(directory) or os.path.islink(directory):
            return None
        return os.path.join(directory, self._container.replace("/", "_") + ".json")

    def _inspect(self):
        """(pid, environment) of the running container: cached while its process is the same one."""
        path = self._cache_path()
        try:
            with open(path, encoding="utf-8") as cached:
                entry = json.load(cached)
            if entry["start_time"] is not None and _start_time(entry["pid"]) == entry["start_time"]:
                return entry["pid"], entry["env"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        rc, out, err = self._podman(["container", "inspect", "--format", "{{.State.Pid}} {{json .Config.Env}}", self._container])
        if rc != 0:
            raise AnsibleConnectionFailure("container %s: podman inspect failed: %s" % (self._container, to_native(err).strip()))
        pid_text, env_json = to_native(out).strip().split(" ", 1)
        pid = int(pid_text)
        if pid <= 0:
            raise AnsibleConnectionFailure("container %s is not running" % self._container)
        # podman exec gives a command the container's environment except what podman set for PID 1 only.
        env = [item for item in json.loads(env_json) or [] if item.split("=", 1)[0] not in ("HOSTNAME", "container_uuid")]
        entry = {"pid": pid, "start_time": _start_time(pid), "env": env}
        if path:
            # Written whole and renamed: parallel workers read either the old entry or the new one.
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path))
            with os.fdopen(fd, "w", encoding="utf-8") as new:
                json.dump(entry, new)
            os.replace(temporary, path)
        return entry["pid"], entry["env"]

    def _connect(self):
        if not self._connected:
            if self._use_nsenter():
                self._pid, self._env = self._inspect()
            self._connected = True
        return self

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        if self._pid:
            # All of the container's namespaces, its root and working directory, and only its environment,
            # as `podman exec` gives.
            return self._run(["nsenter", "--target", str(self._pid), "--all", "--root", "--wd", "--", "/usr/bin/env", "-i"]
                             + self._env + argv, in_data)
        args = ["exec"]
        if in_data is not None:
            args.append("--interactive")
        if self.get_option("remote_user"):
            args += ["--user", self.get_option("remote_user")]
        args.append(self._container)
        return self._podman(args + argv, in_data)

    def _copy(self, source, destination, description):
        rc, _out, err = self._podman(["cp", source, destination])
        if rc != 0:
            raise AnsibleError("%s failed: %s" % (description, to_native(err)))

    @ensure_connect
    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        if self._pid:
            # The container's root as its process sees it.
            shutil.copyfile(in_path, "/proc/%d/root%s" % (self._pid, out_path))
        else:
            self._copy(in_path, "%s:%s" % (self._container, out_path), "copying %s into %s" % (in_path, self._container))

    @ensure_connect
    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        if self._pid:
            shutil.copyfile("/proc/%d/root%s" % (self._pid, in_path), out_path)
        else:
            self._copy("%s:%s" % (self._container, in_path), out_path, "copying %s out of %s" % (in_path, self._container))

    def close(self):
        self._connected = False
