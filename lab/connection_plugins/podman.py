# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's and molecule's connection to podman containers, with pipelining.

containers.podman.podman runs `podman exec` without --interactive, so nothing reaches the
container's stdin and it cannot pipeline: every task costs a temporary directory, a copy, a chmod
and a cleanup, each a `podman exec`. Passing the module on stdin (`podman exec -i`) makes a task
one `podman exec`. Found by the short name `podman` once this directory is in connection_plugins
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
"""

import os
import shlex
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect


class Connection(ConnectionBase):
    transport = "podman"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._mount_point = None

    def _podman(self, args, in_data=None):
        command = [self.get_option("podman_executable")] + list(args)
        try:
            proc = subprocess.run([to_bytes(a, errors="surrogate_or_strict") for a in command], input=in_data,
                                  capture_output=True, check=False)
        except OSError as exc:
            raise AnsibleConnectionFailure("cannot run %s: %s" % (command[0], to_native(exc)))
        return proc.returncode, proc.stdout, proc.stderr

    @property
    def _container(self):
        return self.get_option("remote_addr")

    def _connect(self):
        if not self._connected:
            rc, out, _err = self._podman(["mount", self._container])
            mount_point = to_native(out).strip()
            # Rootless podman cannot mount: files then go through `podman cp`.
            self._mount_point = mount_point if rc == 0 and mount_point and os.listdir(mount_point) else None
            self._connected = True
        return self

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec"]
        if in_data is not None:
            args.append("--interactive")
        if self.get_option("remote_user"):
            args += ["--user", self.get_option("remote_user")]
        args.append(self._container)
        args += shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        return self._podman(args, in_data)

    def _copy(self, source, destination, description):
        rc, _out, err = self._podman(["cp", source, destination])
        if rc != 0:
            raise AnsibleError("%s failed: %s" % (description, to_native(err)))

    @ensure_connect
    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        if self._mount_point and not self.get_option("remote_user"):
            shutil.copyfile(in_path, self._mount_point + out_path)
        else:
            self._copy(in_path, "%s:%s" % (self._container, out_path), "copying %s into %s" % (in_path, self._container))

    @ensure_connect
    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        if self._mount_point:
            shutil.copyfile(self._mount_point + in_path, out_path)
        else:
            self._copy("%s:%s" % (self._container, in_path), out_path, "copying %s out of %s" % (in_path, self._container))

    def close(self):
        # The mount is podman's (refcounted per container); nothing to keep open here.
        self._connected = False
