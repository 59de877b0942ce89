# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Checks of user input that types and choices cannot express, run on the controller before a role
or playbook changes anything. Every check adds a problem that names the variable, shows the bad value
and says what is allowed; callers report all problems at once.

Values that become names (users, groups, units), paths, unit-file lines, URLs, addresses, networks
and ports are checked here, in one place, so that each role's validation phase is a list of calls.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import posixpath
import re

# Debian's adduser: NAME_REGEX for system users and groups (at most 32 characters).
ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# A unit or service name as the roles use it (the file name without .service; no instance '@').
UNIT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Directories a role must never take over (create, chown or chmod) as its own.
SYSTEM_DIRECTORIES = frozenset((
    "/", "/bin", "/boot", "/dev", "/etc", "/etc/apt", "/etc/chainops", "/etc/default", "/etc/systemd",
    "/etc/systemd/system", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/opt/chainops", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
    "/usr/local/bin", "/usr/local/lib", "/usr/sbin", "/usr/share", "/var", "/var/cache", "/var/lib",
    "/var/log", "/var/tmp",
))


def as_int(value):
    """An integer as Ansible's argument specs take it (``20`` or ``"20"``, as extra vars give it); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^\s*-?[0-9]+\s*$", value):
        return int(value)
    return None


def show(value):
    """A value as it appears in a message: repr for strings (shows newlines), else its Python form."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class Problems(object):
    """Collects input problems; each check returns whether the value passed."""

    def __init__(self):
        self.items = []

    def add(self, name, value, allowed):
        self.items.append("%s: %s is not valid: %s" % (name, show(value), allowed))
        return False

    def __bool__(self):
        return bool(self.items)

    __nonzero__ = __bool__

    # -- basic shapes -------------------------------------------------------------------------
    def string(self, name, value, allow_empty=False):
        if not isinstance(value, str):
            return self.add(name, value, "must be a string")
        if not value and not allow_empty:
            return self.add(name, value, "must not be empty")
        return True

    def single_line(self, name, value, allow_empty=False):
        """A string that goes into one line of a unit or config file: no newline or control character."""
        if not self.string(name, value, allow_empty):
            return False
        if CONTROL.search(value):
            return self.add(name, value, "must be one line without control characters (it is written into a file line)")
        return True

    def string_list(self, name, value, single_line=True):
        if not isinstance(value, list):
            return self.add(name, value, "must be a list of strings")
        ok = True
        for index, item in enumerate(value):
            where = "%s[%d]" % (name, index)
            ok &= self.single_line(where, item) if single_line else self.string(where, item)
        return ok

    def integer(self, name, value, low=None, high=None):
        number = as_int(value)
        if number is None:
            return self.add(name, value, "must be an integer")
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = "from %s to %s" % (low, high) if high is not None else "at least %s" % low
            return self.add(name, value, "must be an integer " + bounds)
        return True

    # -- names ---------------------------------------------------------------------------------
    def account_name(self, name, value):
        """A system user or group name the role creates."""
        if self.single_line(name, value) and not ACCOUNT_NAME.match(value):
            return self.add(name, value, "a user or group name is 1-32 characters of a-z, 0-9, '_' and '-', "
                                         "starting with a letter or '_'")
        return True

    def unit_name(self, name, value):
        if self.single_line(name, value) and not UNIT_NAME.match(value):
            return self.add(name, value, "a service name is letters, digits, '_', '.' and '-' (no '/', spaces or '@'), "
                                         "at most 100 characters")
        return True

    # -- paths ---------------------------------------------------------------------------------
    def absolute_path(self, name, value):
        if not self.single_line(name, value):
            return False
        if not value.startswith("/"):
            return self.add(name, value, "must be an absolute path")
        if re.search(r"\s", value):
            return self.add(name, value, "must not contain whitespace (systemd splits path lists on it)")
        if posixpath.normpath(value) != value or "/../" in value + "/" or value.endswith("/.."):
            return self.add(name, value, "must be a normalised path (no '..', '.', '//' or trailing '/')")
        return True

    def dedicated_directory(self, name, value):
        """A directory the role creates and owns: absolute, normalised, and not a system directory."""
        if not self.absolute_path(name, value):
            return False
        if value in SYSTEM_DIRECTORIES:
            return self.add(name, value, "is a system directory; give a directory of its own (e.g. %s/<name>)" % value.rstrip("/"))
        return True

    def file_in(self, name, value, base):
        """A file name relative to ``base`` that must stay inside it, or an absolute path."""
        if not self.single_line(name, value):
            return False
        if value.startswith("/"):
            return self.absolute_path(name, value)
        parts = value.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return self.add(name, value, "a relative name must stay inside %s (no '..', '.' or empty parts)" % base)
        return True

    # -- network -------------------------------------------------------------------------------
    def port(self, name, value):
        return self.integer(name, value, 1, 65535)

    def ip_address(self, name, value, version=None):
        if not self.single_line(name, value):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return self.add(name, value, "must be an IP address (IPv4 or IPv6, without brackets)")
        if version and address.version != version:
            return self.add(name, value, "must be an IPv%d address" % version)
        return True

    def cidr(self, name, value, version=None, min_prefix=0):
        if not self.single_line(name, value):
            return False
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return self.add(name, value, "must be a network in CIDR notation, e.g. 203.0.113.0/24 or 2001:db8::/32")
        if version and network.version != version:
            return self.add(name, value, "must be an IPv%d network" % version)
        if network.prefixlen < min_prefix:
            return self.add(name, value, "is too wide (/%d); at most /%d is allowed here" % (network.prefixlen, min_prefix))
        return True

    def cidr_list(self, name, value, min_prefix=0):
        if not isinstance(value, list):
            return self.add(name, value, "must be a list of networks in CIDR notation")
        ok = True
        for index, item in enumerate(value):
            ok &= self.cidr("%s[%d]" % (name, index), item, min_prefix=min_prefix)
        return ok

    def port_rules(self, name, value, protocols=("tcp", "udp")):
        """[{port: N, protocol: tcp|udp}]: the firewall's port lists."""
        if not isinstance(value, list):
            return self.add(name, value, "must be a list of {port, protocol} mappings")
        ok = True
        for index, item in enumerate(value):
            where = "%s[%d]" % (name, index)
            if not isinstance(item, dict):
                ok = self.add(where, item, "must be a mapping {port: N, protocol: tcp|udp}")
                continue
            unknown = sorted(set(item) - {"port", "protocol"})
            if unknown:
                ok = self.add(where, item, "unknown key(s) %s; allowed: port, protocol" % ", ".join(map(str, unknown)))
            if "port" not in item:
                ok = self.add(where, item, "needs a port")
            else:
                ok &= self.port(where + ".port", item["port"])
            protocol = item.get("protocol", "tcp")
            if protocol not in protocols:
                ok = self.add(where + ".protocol", protocol, "must be one of %s" % ", ".join(protocols))
        return ok

    # -- URLs ----------------------------------------------------------------------------------
    def url(self, name, value, schemes=("http", "https")):
        if not self.single_line(name, value):
            return False
        match = re.match(r"^([a-z][a-z0-9+.-]*)://([^/?#\s]*)", value)
        if not match or match.group(1) not in schemes:
            return self.add(name, value, "must be a URL starting with %s" % " or ".join(s + "://" for s in schemes))
        if match.group(1) == "file":
            # file:///path: no host (or localhost), an absolute path.
            if match.group(2) not in ("", "localhost") or len(value) <= match.end() + 1:
                return self.add(name, value, "must be file:///absolute/path")
            return True
        if not match.group(2):
            return self.add(name, value, "must name a host after %s://" % match.group(1))
        if "@" in match.group(2):
            return self.add(name, value, "must not carry credentials (user:password@)")
        return True


def systemd_quote(argument):
    """One ExecStart argument, quoted for systemd: specifiers (%) and variables ($) kept literal,
    whitespace and quotes preserved. Refuses control characters (they cannot be written safely)."""
    if CONTROL.search(argument):
        raise ValueError("control character in %s" % show(argument))
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if escaped != argument or not argument or re.search(r"[\s;']", argument):
        return '"%s"' % escaped
    return escaped
