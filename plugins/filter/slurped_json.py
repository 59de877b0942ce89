# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""The slurped_json filter: a JSON file read with ansible.builtin.slurp, parsed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import json

from ansible.errors import AnsibleFilterError

_NO_DEFAULT = object()


def slurped_json(result, default=_NO_DEFAULT):
    """The parsed content of a slurp result; default when it has none (a file that was missing)."""
    if not isinstance(result, dict):
        raise AnsibleFilterError("slurped_json: expects a registered ansible.builtin.slurp result, got %s" % type(result).__name__)
    if "content" not in result:
        if default is _NO_DEFAULT:
            raise AnsibleFilterError("slurped_json: %s was not read: %s" % (result.get("source", "the file"), result.get("msg", "no content")))
        return default
    source = result.get("source", "the file")
    try:
        return json.loads(base64.b64decode(result["content"], validate=True).decode("utf-8"))
    except (binascii.Error, TypeError) as exc:
        raise AnsibleFilterError("slurped_json: %s: content is not base64: %s" % (source, exc))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AnsibleFilterError("slurped_json: %s is not JSON: %s" % (source, exc))


class FilterModule(object):
    def filters(self):
        return {"slurped_json": slurped_json}
