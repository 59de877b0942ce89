#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: ansible-test requires the header on modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: volume_initialize
short_description: Read every block of a volume restored from an EBS snapshot once, with fio, and report progress
version_added: 0.3.0
description:
  - An EBS volume created from a snapshot fetches each block from S3 on its first read, so a node's first reads
    crawl. This module reads the whole device once with C(fio) (large blocks, many reads in flight, direct I/O, as
    AWS recommends for initialization), reports the bytes read while it runs (the collection's progress lines),
    and fails unless fio read exactly the device's size.
  - Reading changes nothing on the device, so the module never reports a change. C(fio) must be installed.
options:
  device:
    description: The block device (or file) to read, e.g. the volume's C(/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol...) link.
    type: path
    required: true
  block_size:
    description: fio's block size.
    type: str
    default: 1M
  iodepth:
    description: Reads in flight (fio's C(--iodepth)).
    type: int
    default: 32
  ioengine:
    description: fio's I/O engine.
    type: str
    default: libaio
  rate:
    description:
      - Upper bound of the read rate (fio's C(--rate), e.g. C(200m) for 200 MiB/s), to leave I/O to a node that
        already runs on the volume. Unset reads as fast as the volume allows.
    type: str
extends_documentation_fragment:
  - chainops.validator.progress
author:
  - chainops.validator maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read every block of the restored volume once
  chainops.validator.volume_initialize:
    device: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0
    iodepth: 32
  register: initialized
"""

RETURN = r"""
size:
  description: The device's size in bytes.
  returned: always
  type: int
bytes:
  description: Bytes fio read (equal to O(device)'s size, or the module fails). C(0) in check mode.
  returned: always
  type: int
seconds:
  description: How long the read took, as fio measured it.
  returned: always
  type: float
mib_s:
  description: Average read rate in MiB/s.
  returned: always
  type: float
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chainops.validator.plugins.module_utils.fio import run_fio
from ansible_collections.chainops.validator.plugins.module_utils.progress import Progress, progress_argument_spec


def device_size(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            device=dict(type="path", required=True),
            block_size=dict(type="str", default="1M"),
            iodepth=dict(type="int", default=32),
            ioengine=dict(type="str", default="libaio"),
            rate=dict(type="str"),
            **progress_argument_spec()
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["iodepth"] <= 1024:
        module.fail_json(msg="iodepth must be 1..1024, got %d" % p["iodepth"])
    fio = module.get_bin_path("fio", required=True)
    if p["rate"] is not None and not re.match(r"^[1-9][0-9]*[kKmMgG]?$", p["rate"]):
        module.fail_json(msg="rate must be a number of bytes per second with an optional k, m or g, got %r" % p["rate"])
    try:
        size = device_size(p["device"])
    except OSError as exc:
        if module.check_mode:  # the restored volume is not attached in a check run
            module.exit_json(changed=False, size=0, bytes=0, seconds=0.0, mib_s=0.0, msg="would read %s" % p["device"])
        module.fail_json(msg="device %s cannot be read: %s" % (p["device"], exc))
    result = dict(changed=False, size=size, bytes=0, seconds=0.0, mib_s=0.0)
    if module.check_mode:
        module.exit_json(msg="would read %d bytes of %s" % (size, p["device"]), **result)
    progress = Progress(p["progress_file"], "initialization of %s" % p["device"], total=size)
    argv = [fio, "--name=chainops-initialize", "--filename=%s" % p["device"], "--rw=read", "--bs=%s" % p["block_size"],
            "--iodepth=%d" % p["iodepth"], "--ioengine=%s" % p["ioengine"], "--direct=1",
            "--output-format=json", "--status-interval=1"] + (["--rate=%s" % p["rate"]] if p["rate"] else [])
    code, job, errors = run_fio(argv, lambda job: progress.update(done=job["read"]["io_bytes"]))
    if code != 0 or job is None:
        module.fail_json(msg="fio failed on %s (exit %d): %s" % (p["device"], code, errors.strip()[-1000:]), **result)
    read = job["read"]
    result.update(bytes=read["io_bytes"], seconds=round(read["runtime"] / 1000.0, 3), mib_s=round(read["bw"] / 1024.0, 1))
    if result["bytes"] != size:
        module.fail_json(msg="fio read %d of the %d bytes of %s: the volume is not fully initialised" % (result["bytes"], size, p["device"]),
                         **result)
    module.exit_json(msg="read %d bytes of %s" % (size, p["device"]), **result)


if __name__ == "__main__":
    main()
