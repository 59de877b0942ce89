# Copyright: chainops.validator contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""chainops_allowlist: admit a sentry's P2P port only from the validators the chain lists.

Run by a systemd timer. Each run asks the chain (the first endpoint that gives a usable answer) for its
validator set, resolves their P2P endpoints to addresses and loads them into an nftables table of its
own, which drops new connections to the P2P ports from any other source. The table is replaced in one
transaction, so it is never half-written.

The last good list is kept on disk. When no endpoint answers, or the answer lists no usable endpoint,
the last good list stays loaded (exit 3), and with none at all only `extra_cidrs` are admitted (exit 4):
an empty or missing answer never opens the port to everyone.

Sources: `icon` asks goloop's chain SCORE (`icx_call` to cx000...000, method `getPReps`; goloop
doc/iiss_extension.md and icon/iiss/icstate: `preps[].p2pEndpoint` "host:port", `grade` 0x0 main, 0x1 sub,
0x2 candidate, `status` 0x0 active; integers as hex strings).

Standard library only: it runs with the host's python3.

Usage:
    chainops_allowlist.py CONFIG.json            update the table (exit 0 updated or unchanged, 3 kept, 4 closed)
    chainops_allowlist.py --check-config CONFIG.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

EXIT_KEPT = 3
EXIT_CLOSED = 4
ICON_CHAIN_SCORE = "cx" + "0" * 40
ICON_GRADES = {"main": "0x0", "sub": "0x1", "candidate": "0x2"}
ICON_ACTIVE = "0x0"
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# Proxies are for people, not for a firewall's source of truth.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SourceError(Exception):
    """The chain gave no usable answer (unreachable, an error, or no endpoint to admit)."""


class ConfigError(Exception):
    pass


def validate_config(raw):
    """The config with defaults, or ConfigError naming every problem."""
    problems = []
    if not isinstance(raw, dict):
        raise ConfigError(["config must be a JSON object"])
    known = {"source", "endpoints", "grades", "ports", "exempt_interfaces", "extra_cidrs", "state_file", "table",
             "timeout_s", "resolve_timeout_s", "nft"}
    problems += ["%s: unknown key" % key for key in sorted(set(raw) - known)]
    cfg = {
        "source": raw.get("source", "icon"),
        "endpoints": raw.get("endpoints") or [],
        "grades": raw.get("grades") or ["main", "sub"],
        "ports": raw.get("ports") or [],
        "exempt_interfaces": raw.get("exempt_interfaces") or [],
        "extra_cidrs": raw.get("extra_cidrs") or [],
        "state_file": raw.get("state_file") or "/var/lib/chainops/allowlist/state.json",
        "table": raw.get("table") or "chainops_allowlist",
        "timeout_s": raw.get("timeout_s", 10),
        "resolve_timeout_s": raw.get("resolve_timeout_s", 10),
        "nft": raw.get("nft") or "/usr/sbin/nft",
    }
    if cfg["source"] != "icon":
        problems.append("source: only 'icon' is supported, got %r" % (cfg["source"],))
    if not cfg["endpoints"] or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in cfg["endpoints"]):
        problems.append("endpoints: one or more http(s) JSON-RPC URLs, got %r" % (cfg["endpoints"],))
    unknown = [g for g in cfg["grades"] if g not in ICON_GRADES]
    if unknown or not isinstance(cfg["grades"], list):
        problems.append("grades: each one of %s, got %r" % (", ".join(ICON_GRADES), cfg["grades"]))
    if not cfg["ports"]:
        problems.append("ports: at least one {port, protocol} to guard")
    for index, port in enumerate(cfg["ports"]):
        if not (isinstance(port, dict) and isinstance(port.get("port"), int) and 0 < port["port"] < 65536
                and port.get("protocol", "tcp") in ("tcp", "udp")):
            problems.append("ports[%d]: {port: 1-65535, protocol: tcp|udp}, got %r" % (index, port))
    for name in cfg["exempt_interfaces"]:
        if not (isinstance(name, str) and 0 < len(name) < 16 and name.replace("-", "").replace("_", "").replace(".", "").isalnum()):
            problems.append("exempt_interfaces: %r is not an interface name" % (name,))
    for value in cfg["extra_cidrs"]:
        try:
            ipaddress.ip_network(value, strict=False)
        except (TypeError, ValueError):
            problems.append("extra_cidrs: %r is not an address or network" % (value,))
    if not (isinstance(cfg["table"], str) and cfg["table"].replace("_", "").isalnum()):
        problems.append("table: letters, digits and '_', got %r" % (cfg["table"],))
    for key in ("timeout_s", "resolve_timeout_s"):
        if not isinstance(cfg[key], (int, float)) or isinstance(cfg[key], bool) or not 0 < cfg[key] <= 120:
            problems.append("%s: seconds, more than 0 and at most 120, got %r" % (key, cfg[key]))
    if problems:
        raise ConfigError(problems)
    return cfg


# ----------------------------------------------------------------------------- the chain's answer

def icon_request():
    return {"jsonrpc": "2.0", "id": 1, "method": "icx_call",
            "params": {"to": ICON_CHAIN_SCORE, "dataType": "call", "data": {"method": "getPReps", "params": {}}}}


def icon_validators(answer, grades):
    """(height, [{address, name, grade, endpoint}], skipped reasons) from a getPReps JSON-RPC answer."""
    if not isinstance(answer, dict):
        raise SourceError("the answer is not a JSON object")
    if answer.get("error"):
        raise SourceError("the chain answered an error: %s" % json.dumps(answer["error"])[:200])
    result = answer.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("preps"), list):
        raise SourceError("the answer has no result.preps list")
    wanted = {ICON_GRADES[g] for g in grades}
    chosen, skipped = [], []
    for index, prep in enumerate(result["preps"]):
        if not isinstance(prep, dict):
            skipped.append("preps[%d]: not an object" % index)
            continue
        if prep.get("grade") not in wanted or prep.get("status", ICON_ACTIVE) != ICON_ACTIVE:
            continue
        label = prep.get("name") or prep.get("address") or "preps[%d]" % index
        endpoint = prep.get("p2pEndpoint")
        host, port = split_endpoint(endpoint)
        if host is None:
            skipped.append("%s: p2pEndpoint %r is not host:port" % (label, endpoint))
            continue
        chosen.append({"address": prep.get("address"), "name": prep.get("name"), "grade": prep.get("grade"),
                       "endpoint": endpoint, "host": host, "port": port})
    height = result.get("blockHeight")
    try:
        height = int(height, 16) if isinstance(height, str) else height
    except ValueError:
        height = None
    return height, chosen, skipped


def split_endpoint(endpoint):
    """("host", port) of "host:port" or "[v6]:port"; (None, None) when it is not one."""
    if not isinstance(endpoint, str) or not endpoint or any(c.isspace() for c in endpoint):
        return None, None
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None, None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _is_ip(host):
            return None, None
    elif ":" in host:  # an IPv6 address needs brackets, else its last group reads as the port
        return None, None
    if not host:
        return None, None
    return host, int(port)


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def ask(url, request, timeout):
    body = json.dumps(request).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json",
                                                          "User-Agent": "chainops-allowlist"}, method="POST")
    try:
        with _OPENER.open(req, timeout=timeout) as response:
            return json.loads(response.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as error:
        raise SourceError("%s: HTTP %d" % (url, error.code)) from None
    except (OSError, ValueError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        raise SourceError("%s: %s" % (url, "timed out" if isinstance(reason, (socket.timeout, TimeoutError)) else reason)) from None


def resolve(hosts, timeout, resolver=None):
    """{host: [addresses]} for every host, within `timeout` seconds in all; unresolved hosts map to []."""
    resolver = resolver or _resolve_one
    result = {host: [host] for host in hosts if _is_ip(host)}
    names = sorted(set(hosts) - set(result))
    if not names:
        return result
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(names)))
    futures = {name: pool.submit(resolver, name) for name in names}
    deadline = time.monotonic() + timeout
    for name, future in futures.items():
        try:
            result[name] = sorted(set(future.result(timeout=max(0.0, deadline - time.monotonic()))))
        except Exception:  # noqa: BLE001 - a name that does not resolve in time is skipped, not fatal
            result[name] = []
    pool.shutdown(wait=False, cancel_futures=True)
    return result


def _resolve_one(name):
    return [info[4][0] for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)]


def fetch_list(cfg, resolver=None, asker=None):
    """The new allow list from the first endpoint that gives a usable one, or SourceError with every reason."""
    asker = asker or ask
    reasons = []
    for url in cfg["endpoints"]:
        try:
            height, validators, skipped = icon_validators(asker(url, icon_request(), cfg["timeout_s"]), cfg["grades"])
        except SourceError as error:
            reasons.append(str(error) if str(error).startswith(url) else "%s: %s" % (url, error))
            continue
        addresses = resolve([v["host"] for v in validators], cfg["resolve_timeout_s"], resolver)
        for validator in validators:
            validator["addresses"] = addresses.get(validator["host"], [])
            if not validator["addresses"]:
                skipped.append("%s: %s does not resolve" % (validator["name"] or validator["address"], validator["host"]))
        admitted = sorted({a for v in validators for a in v["addresses"]}, key=_address_key)
        if not admitted:
            reasons.append("%s: the chain lists no reachable %s validator endpoint (%d listed%s)" % (
                url, "/".join(cfg["grades"]), len(validators), "; " + "; ".join(skipped[:5]) if skipped else ""))
            continue
        return {"endpoint": url, "height": height, "addresses": admitted, "skipped": skipped,
                "validators": [{k: v[k] for k in ("address", "name", "grade", "endpoint", "addresses")} for v in validators]}
    raise SourceError("; ".join(reasons))


def _address_key(text):
    address = ipaddress.ip_address(text)
    return address.version, int(address)


# ----------------------------------------------------------------------------- nftables

def nft_script(cfg, addresses):
    """The whole table, replaced atomically (`nft -f`): new connections to the guarded ports are dropped
    unless they come from an exempt interface or an admitted address."""
    table = cfg["table"]
    networks = [ipaddress.ip_network(a, strict=False) for a in list(addresses) + list(cfg["extra_cidrs"])]
    v4 = sorted({str(n) for n in networks if n.version == 4})
    v6 = sorted({str(n) for n in networks if n.version == 6})
    lines = [
        "# Written by chainops_allowlist: the validators the chain lists, and extra_cidrs.",
        "table inet %s" % table,
        "delete table inet %s" % table,
        "table inet %s {" % table,
        "  set admitted4 {", "    type ipv4_addr; flags interval;",
    ]
    if v4:
        lines.append("    elements = { %s }" % ", ".join(v4))
    lines += ["  }", "  set admitted6 {", "    type ipv6_addr; flags interval;"]
    if v6:
        lines.append("    elements = { %s }" % ", ".join(v6))
    lines += [
        "  }",
        "  chain input {",
        # Before the host firewall (inet chainops, priority filter - 10); it only ever drops.
        "    type filter hook input priority filter - 20; policy accept;",
        "    ct state established,related accept",
        '    iifname "lo" accept',
    ]
    for name in cfg["exempt_interfaces"]:
        lines.append('    iifname "%s" accept' % name)
    for protocol in ("tcp", "udp"):
        ports = sorted({p["port"] for p in cfg["ports"] if p.get("protocol", "tcp") == protocol})
        if not ports:
            continue
        guarded = "%s dport { %s }" % (protocol, ", ".join(str(p) for p in ports))
        lines += ["    ip saddr @admitted4 %s accept" % guarded,
                  "    ip6 saddr @admitted6 %s accept" % guarded,
                  "    %s drop" % guarded]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def apply(cfg, addresses):
    script = nft_script(cfg, addresses)
    run = subprocess.run([cfg["nft"], "-f", "-"], input=script, capture_output=True, text=True, timeout=30, check=False)
    if run.returncode != 0:
        raise RuntimeError("nft -f failed (%d): %s" % (run.returncode, (run.stderr or run.stdout).strip()[-500:]))


# ----------------------------------------------------------------------------- state

def read_state(path):
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("addresses") else None


def write_state(path, state):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    temporary = "%s.tmp-%d" % (path, os.getpid())
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def update(cfg, resolver=None, asker=None, now=None):
    """One run: (exit code, message, changed)."""
    previous = read_state(cfg["state_file"])
    try:
        fresh = fetch_list(cfg, resolver, asker)
    except SourceError as error:
        if previous:
            apply(cfg, previous["addresses"])
            return EXIT_KEPT, ("kept the last good list from %s (height %s, %d addresses): %s" % (
                previous.get("updated_at"), previous.get("height"), len(previous["addresses"]), error)), False
        apply(cfg, [])
        return EXIT_CLOSED, ("no list yet, the guarded ports admit only extra_cidrs (%d): %s" % (
            len(cfg["extra_cidrs"]), error)), False
    fresh["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    apply(cfg, fresh["addresses"])
    changed = previous is None or previous.get("addresses") != fresh["addresses"]
    write_state(cfg["state_file"], fresh)
    added = sorted(set(fresh["addresses"]) - set((previous or {}).get("addresses", [])), key=_address_key)
    removed = sorted(set((previous or {}).get("addresses", [])) - set(fresh["addresses"]), key=_address_key)
    message = "%s %d addresses of %d validators from %s at height %s" % (
        "admitted" if changed else "unchanged:", len(fresh["addresses"]), len(fresh["validators"]), fresh["endpoint"], fresh["height"])
    if changed and previous:
        message += " (added %s; removed %s)" % (", ".join(added) or "none", ", ".join(removed) or "none")
    if fresh["skipped"]:
        message += "; skipped: " + "; ".join(fresh["skipped"][:10])
    return 0, message, changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-config", action="store_true")
    parser.add_argument("config")
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as handle:
            cfg = validate_config(json.load(handle))
    except ConfigError as error:
        print("chainops_allowlist: config error: " + "; ".join(error.args[0]), file=sys.stderr)
        return 2
    except (OSError, ValueError) as error:
        print("chainops_allowlist: cannot read %s: %s" % (args.config, error), file=sys.stderr)
        return 2
    if args.check_config:
        return 0
    try:
        code, message, changed = update(cfg)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        print("chainops_allowlist: %s" % error, file=sys.stderr)
        return 1
    print(json.dumps({"changed": changed, "message": message, "rc": code}))
    return code


if __name__ == "__main__":
    sys.exit(main())
