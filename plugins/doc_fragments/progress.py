# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The progress file of long module runs (plugins/module_utils/progress.py) and how it is shown.
    DOCUMENTATION = r"""
options:
  progress_file:
    description:
      - Where the module writes its progress while it runs (JSON with counts and a one-line state, nothing
        from the other options).
      - Set by the module's action plugin, which starts the module in the background and prints a line of
        progress (done, rate, time left) every C(chainops_progress_interval) seconds (default 10; C(0) runs the
        module in the foreground, silent until it ends), then a final figure. Runs shorter than one interval
        print nothing. Leave unset.
    type: path
notes:
  - Progress lines are printed in the normal output (no C(-v) needed). They carry counts and the module's
    state, never an option's value, so presigned URLs and other C(no_log) options stay hidden at every verbosity.
  - In check mode, or when the task sets its own C(async), the module runs as usual, without progress lines.
"""
