# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_restore_volume: progress lines while the module runs (plugins/plugin_utils/progress.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chainops.validator.plugins.plugin_utils.progress import ProgressAction


class ActionModule(ProgressAction):
    pass
