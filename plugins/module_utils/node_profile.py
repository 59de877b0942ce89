# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""Client profiles for the ``node`` role: validation and resolution.

A profile is data (YAML) describing how to install and run one blockchain client.
This module checks a profile and resolves the parts that depend on the chosen
network and the user's overrides, so the role's tasks stay thin and every error
names the field that is wrong.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

INSTALL_METHODS = ("apt", "url", "deb", "none")
NODE_MODES = ("standalone", "private", "sentry")
PROTOCOLS = ("tcp", "udp")
IDENTITY_KINDS = ("address", "command", "node_key", "none")
# What a node_key identity publishes (what module node_key returns), by the node_key's type.
NODE_KEY_FORMATS = {"secp256k1": ("enode_id", "peer_id"), "openssh_ed25519": ("radicle_nid",)}
SECRET_KINDS = ("file", "dir")

# chain_status readers (module_utils/chain_status.py) and what each reads through.
CHAIN_STATUS_SOURCES = {"bitcoin": "argv", "ethereum": "url"}
REQUIRED_FIELDS = ("name", "description", "install", "binary", "service", "ports", "identity", "readiness")


# Profiles use ${name} or ${ports.rpc.port} placeholders instead of Jinja, so Ansible never
# templates them early and a profile can refer to values (ports, binary) resolved from itself.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class ProfileError(ValueError):
    """A profile or a role variable that feeds it is invalid."""


def _lookup(context, dotted):
    value = context
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ProfileError("unknown placeholder ${%s} (known: %s)" % (dotted, ", ".join(sorted(context))))
        value = value[part]
    return value


def substitute(value, context):
    """Replace ${...} placeholders in every string of ``value`` (recursively)."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda match: str(_lookup(context, match.group(1))), value)
    if isinstance(value, list):
        return [substitute(item, context) for item in value]
    if isinstance(value, dict):
        return dict((key, substitute(item, context)) for key, item in value.items())
    return value


def plain_copy(value):
    """A copy of nested dicts and lists as plain dicts and lists. Not copy.deepcopy: on the lazy
    containers Ansible 2.19 passes to filters, deepcopy took about 0.4 CPU-seconds per profile."""
    if isinstance(value, dict):
        return dict((key, plain_copy(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [plain_copy(item) for item in value]
    return value


def deep_merge(base, override):
    """Return ``base`` with ``override`` merged in recursively (dicts merge, other values replace)."""
    result = plain_copy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = plain_copy(value)
    return result


def _is_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _check_ports(ports, where, errors):
    if not isinstance(ports, dict):
        errors.append("%s must be a mapping of port name to {port, protocol, bind}" % where)
        return
    for name, spec in ports.items():
        field = "%s.%s" % (where, name)
        if not isinstance(spec, dict):
            errors.append("%s must be a mapping with 'port', 'protocol' and 'bind'" % field)
            continue
        if "port" in spec and not _is_port(spec["port"]):
            errors.append("%s.port must be an integer from 1 to 65535, got %r" % (field, spec["port"]))
        if "protocol" in spec and spec["protocol"] not in PROTOCOLS:
            errors.append("%s.protocol must be one of %s, got %r" % (field, ", ".join(PROTOCOLS), spec["protocol"]))
        if "bind" in spec and not isinstance(spec["bind"], str):
            errors.append("%s.bind must be an address string, got %r" % (field, spec["bind"]))


def _check_install(install, errors):
    method = install.get("method")
    if method not in INSTALL_METHODS:
        errors.append("install.method must be one of %s, got %r" % (", ".join(INSTALL_METHODS), method))
        return
    if method == "apt" and not install.get("packages"):
        errors.append("install.packages is required when install.method is apt")
    if method in ("url", "deb"):
        # Downloaded and verified on the controller (deb: then installed with apt).
        if not install.get("url") and not install.get("own_artifact"):
            errors.append("install.url is required when install.method is %s (or install.own_artifact: why the "
                          "operator gives node_install_url)" % method)
        if not isinstance(install.get("checksums", {}), dict):
            errors.append("install.checksums must map version -> {arch: 'sha256:<hex>'}")
    if method == "deb":
        for field in ("archive", "archive_member", "tree"):
            if field in install:
                errors.append("install.%s does not apply to install.method deb (the package is installed whole)" % field)
    if method == "url":
        if install.get("archive") not in (None, "none", "tar"):
            errors.append("install.archive must be 'tar' or 'none', got %r" % install.get("archive"))
        if install.get("archive") == "tar" and not install.get("archive_member") and not install.get("tree"):
            errors.append("install.archive_member is required when install.archive is tar (or install.tree: true "
                          "to unpack the whole archive)")
        if install.get("tree") and install.get("archive") != "tar":
            errors.append("install.tree needs install.archive: tar")


def validate_profile(profile, name=None):
    """Return a list of error strings for ``profile`` (empty when valid)."""
    label = name or (profile or {}).get("name") or "?"
    errors = []
    if not isinstance(profile, dict):
        return ["node profile %r must be a mapping, got %s" % (label, type(profile).__name__)]
    for field in REQUIRED_FIELDS:
        if field not in profile or profile[field] in (None, ""):
            errors.append("required field '%s' is missing" % field)
    if isinstance(profile.get("install"), dict):
        _check_install(profile["install"], errors)
    elif "install" in profile:
        errors.append("install must be a mapping")
    service = profile.get("service")
    if isinstance(service, dict):
        if not service.get("exec_start"):
            errors.append("required field 'service.exec_start' is missing")
    elif "service" in profile:
        errors.append("service must be a mapping with exec_start")
    if "ports" in profile:
        _check_ports(profile["ports"], "ports", errors)
    for network, spec in (profile.get("networks") or {}).items():
        if isinstance(spec, dict) and "ports" in spec:
            _check_ports(spec["ports"], "networks.%s.ports" % network, errors)
    default_network = profile.get("default_network")
    if default_network and default_network not in (profile.get("networks") or {}):
        errors.append("default_network %r is not one of networks: %s" % (default_network, sorted(profile.get("networks") or {})))
    identity = profile.get("identity")
    if isinstance(identity, dict):
        if identity.get("kind") not in IDENTITY_KINDS:
            errors.append("identity.kind must be one of %s, got %r" % (", ".join(IDENTITY_KINDS), identity.get("kind")))
        if identity.get("kind") == "command" and not identity.get("argv"):
            errors.append("identity.argv is required when identity.kind is command")
        if identity.get("kind") == "address" and not identity.get("port"):
            errors.append("identity.port (the name of the P2P port) is required when identity.kind is address")
        if identity.get("kind") == "node_key":
            key_type = profile["node_key"].get("type", "secp256k1") if isinstance(profile.get("node_key"), dict) else "secp256k1"
            formats = NODE_KEY_FORMATS.get(key_type, ())
            if identity.get("format") not in formats:
                errors.append("identity.format must be one of %s when identity.kind is node_key, got %r (node_key.type %s)"
                              % (", ".join(formats), identity.get("format"), key_type))
            if "node_key" not in profile:
                errors.append("identity.kind node_key needs the profile's node_key section (path of the key file)")
        announced = identity.get("announced")
        if announced is not None and (not isinstance(announced, dict) or not all(announced.get(k) for k in ("url", "enr", "multiaddrs"))):
            errors.append("identity.announced needs url (a GET answering JSON), enr and multiaddrs (the answer's keys)")
    node_key = profile.get("node_key")
    if node_key is not None:
        if not isinstance(node_key, dict) or not node_key.get("path"):
            errors.append("node_key.path is required (the key file: secp256k1, which the role makes once, or OpenSSH Ed25519)")
        elif node_key.get("type", "secp256k1") not in NODE_KEY_FORMATS:
            errors.append("node_key.type must be one of %s, got %r" % (", ".join(NODE_KEY_FORMATS), node_key["type"]))
        elif node_key.get("env") is not None and not re.match(r"[A-Za-z_][A-Za-z0-9_]*\Z", str(node_key["env"])):
            errors.append("node_key.env must be an environment variable name, got %r" % node_key["env"])
    readiness = profile.get("readiness")
    if isinstance(readiness, dict):
        if not (readiness.get("argv") or readiness.get("http")):
            errors.append("readiness needs either 'argv' (a command) or 'http' (url, body)")
    chain_status = profile.get("chain_status")
    if chain_status is not None:
        if not isinstance(chain_status, dict) or chain_status.get("adapter") not in CHAIN_STATUS_SOURCES:
            errors.append("chain_status.adapter must be one of %s" % ", ".join(sorted(CHAIN_STATUS_SOURCES)))
        elif not chain_status.get(CHAIN_STATUS_SOURCES[chain_status["adapter"]]):
            errors.append("chain_status with adapter %s needs '%s'" % (chain_status["adapter"], CHAIN_STATUS_SOURCES[chain_status["adapter"]]))
        # The section is the chain_status module's reader option as it stands, which takes no other key.
        unknown = sorted(set(chain_status) - {"adapter"} - set(CHAIN_STATUS_SOURCES.values())) if isinstance(chain_status, dict) else []
        if unknown:
            errors.append("chain_status: unknown key(s) %s (it takes adapter, and argv or url)" % ", ".join(unknown))
    for index, secret in enumerate(profile.get("secrets") or []):
        if not isinstance(secret, dict) or not secret.get("path"):
            errors.append("secrets[%d].path is required" % index)
            continue
        if secret.get("kind", "file") not in SECRET_KINDS:
            errors.append("secrets[%d].kind must be one of %s" % (index, ", ".join(SECRET_KINDS)))
        for mode in secret.get("required_in") or []:
            if mode not in NODE_MODES:
                errors.append("secrets[%d].required_in has unknown mode %r (known: %s)" % (index, mode, ", ".join(NODE_MODES)))
    for index, item in enumerate(profile.get("config_files") or []):
        if not isinstance(item, dict) or not item.get("template") or not item.get("dest"):
            errors.append("config_files[%d] needs 'template' and 'dest'" % index)
    for index, item in enumerate(profile.get("init") or []):
        if not isinstance(item, dict) or not item.get("argv") or not item.get("creates"):
            errors.append("init[%d] needs 'argv' and 'creates' (init steps must be idempotent)" % index)
    return ["node profile %r: %s" % (label, error) for error in errors]


def resolve_profile(profile, network=None, overrides=None, port_overrides=None, context=None):
    """Merge overrides, pick the network, compute effective ports and fill placeholders.

    ``context`` holds the role's values (name, user, group, data_dir, config_dir,
    install_dir, version, arch, mode). Returns the merged profile with ``network``,
    ``network_settings``, effective ``ports`` and every ${...} placeholder replaced.
    Raises ProfileError on any invalid input.
    """
    merged = deep_merge(profile, overrides or {})
    errors = validate_profile(merged)
    if errors:
        raise ProfileError("; ".join(errors))
    networks = merged.get("networks") or {}
    chosen = network or merged.get("default_network")
    if networks and chosen not in networks:
        raise ProfileError(
            "node_network %r is not supported by profile %r (supported: %s)" % (chosen, merged["name"], ", ".join(sorted(networks)))
        )
    ports = deep_merge(merged.get("ports") or {}, (networks.get(chosen) or {}).get("ports") or {})
    port_errors = []
    unknown = sorted(set(port_overrides or {}) - set(ports))
    if unknown:
        port_errors.append("node_ports has unknown port names %s (profile %r has: %s)" % (unknown, merged["name"], ", ".join(sorted(ports))))
    ports = deep_merge(ports, port_overrides or {})
    _check_ports(ports, "node_ports", port_errors)
    if port_errors:
        raise ProfileError("; ".join(port_errors))
    merged["network"] = chosen
    merged["ports"] = ports
    merged["network_settings"] = networks.get(chosen) or {}
    merged.pop("networks", None)
    values = dict(context or {})
    if not values.get("version"):
        values["version"] = str(merged.get("version") or "")
    merged["version"] = values["version"]
    values.update(network=chosen, ports=ports, network_settings=merged["network_settings"])
    # The binary path may itself use placeholders (install_dir, version); resolve it first.
    values["binary"] = merged["binary"] = substitute(merged["binary"], values)
    if merged.get("cli"):
        values["cli"] = merged["cli"] = substitute(merged["cli"], values)
    return substitute(merged, values)


def download_checksum(profile, version, arch, override=None):
    """Return 'sha256:<hex>' for a url install, or raise ProfileError naming what is missing."""
    if override:
        value = override if override.startswith("sha256:") else "sha256:" + override
    else:
        per_version = (profile["install"].get("checksums") or {}).get(str(version)) or {}
        value = per_version.get(arch) if isinstance(per_version, dict) else per_version
        if not value:
            raise ProfileError(
                "node profile %r has no sha256 checksum for version %s on %s; set node_install_sha256"
                % (profile["name"], version, arch)
            )
    hexpart = value.split(":", 1)[1]
    if len(hexpart) != 64 or any(char not in "0123456789abcdef" for char in hexpart.lower()):
        raise ProfileError("checksum for node profile %r version %s is not a sha256 hex digest: %r" % (profile["name"], version, value))
    return value


def peer_endpoints(peers, identities=None):
    """Normalise peers given as {address, port, id} dicts or inventory names with known identities."""
    identities = identities or {}
    result = []
    for peer in peers or []:
        if isinstance(peer, str):
            if identities.get(peer) is None:
                raise ProfileError("peer %r has no known P2P identity (not in this play and no persisted identity found)" % peer)
            peer = identities[peer]
        if not isinstance(peer, dict) or not peer.get("address"):
            raise ProfileError("each peer needs an 'address' (and usually 'port' and 'id'), got %r" % (peer,))
        if peer.get("port") is not None and not _is_port(peer["port"]):
            raise ProfileError("peer %s has a bad port %r" % (peer["address"], peer["port"]))
        result.append({"address": peer["address"], "port": peer.get("port"), "id": peer.get("id")})
    return result
