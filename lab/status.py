"""Print the lab's status: each host's role, chain height, peers, /health and WireGuard handshakes, the
load balancer's view of the fleet (HAProxy), and proof that the validator cannot be reached from the
internet peer while its sentries and the fleet's nodes can, on their P2P port only.

Hosts come from the lab inventory (the real ec2_topology plugin on moto); facts are read inside each
container with one `podman exec` per host, all hosts at once. Exit status 1 when the proof fails."""
import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

# Runs inside a lab container with Debian's python3: everything the table needs, as one JSON object.
PROBE = r"""
import json, subprocess, time, urllib.request, urllib.error
def run(*argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return p.stdout.strip() if p.returncode == 0 else None
cli = ["litecoin-cli", "-conf=/etc/chainops/litecoind/rpc.conf", "-datadir=/var/lib/litecoind", "-chain=regtest", "-rpcport=19443"]
out = {"node": run("systemctl", "is-active", "litecoind") or "inactive"}
if out["node"] == "active":
    out["height"] = run(*cli, "getblockcount")
    out["peers"] = run(*cli, "getconnectioncount")
    info = run(*cli, "getpeerinfo")
    out["peer_addrs"] = [p["addr"].rsplit(":", 1)[0] for p in json.loads(info)] if info else []
try:
    out["health"] = urllib.request.urlopen("http://127.0.0.1:9680/health", timeout=2).status
except urllib.error.HTTPError as e:
    out["health"] = e.code
except Exception:
    out["health"] = None
hs = run("wg", "show", "wg0", "latest-handshakes")
if hs is not None:
    now = time.time()
    stamps = [int(line.split()[1]) for line in hs.splitlines() if line.strip()]
    out["wg"] = [sum(1 for s in stamps if s and now - s < 180), len(stamps)]
try:
    out["overlay"] = json.load(open("/etc/chainops/wireguard.json"))["address"]
except Exception:
    out["overlay"] = None
print(json.dumps(out))
"""

# Runs inside the internet container: which of these TCP ports of a target accept a connection.
SCAN = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def accepts(port):
    s = socket.socket(); s.settimeout(1.5)
    try:
        s.connect((sys.argv[1], port)); return True
    except OSError:
        return False
    finally:
        s.close()
ports = [int(p) for p in sys.argv[2:]]
with ThreadPoolExecutor(len(ports)) as pool:
    print(json.dumps([p for p, ok in zip(ports, pool.map(accepts, ports)) if ok]))
"""
PORTS = ["22", "9680", "19443", "19444", "51820"]
ORDER = {"internet": 0, "sentry": 1, "validator": 2, "standby": 3, "rpc": 4}
# Runs inside the balancer container: HAProxy's stats as CSV, the fleet backend's servers.
BALANCER = r"""
import csv, io, json, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:8404/stats;csv", timeout=3).read().decode()
rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
print(json.dumps([{"server": r["svname"], "status": r["status"], "check": r["check_status"], "sessions": int(r["stot"] or 0)}
                  for r in rows if r["pxname"] == "fleet" and r["svname"] not in ("FRONTEND", "BACKEND")]))
"""


def podman_exec(container, *argv):
    proc = subprocess.run(["podman", "exec", container, *argv], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s: %s" % (container, proc.stderr.strip() or proc.stdout.strip()))
    return json.loads(proc.stdout)


def plain(value):
    """ansible-inventory marks plugin-made strings as unsafe: {"__ansible_unsafe": "sentry"}."""
    return value.get("__ansible_unsafe") if isinstance(value, dict) else value


def lab_hosts(inventory):
    """The lab's hosts from its inventory; the balancer is not a node and is left out."""
    proc = subprocess.run(["ansible-inventory", "-i", inventory, "--list"], capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout)
    balancers = set(data.get("lab_balancers", {}).get("hosts", []))
    hosts = []
    for name, hv in data["_meta"]["hostvars"].items():
        if name in balancers:
            continue
        hosts.append({"name": name, "role": plain(hv.get("topology_role")) or "internet",
                      "container": plain(hv.get("lab_container")),
                      "cluster": plain(hv.get("topology_cluster")) or plain(hv.get("topology_fleet")) or "-"})
    return sorted(hosts, key=lambda h: (ORDER.get(h["role"], 9), h["name"]))


def lab_address(container, network):
    """The container's address on the lab network: a fleet node has one on the load balancer's network
    too, and which of the two `hostname -I` lists first varies from start to start."""
    proc = subprocess.run(["podman", "container", "inspect", container], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)[0]["NetworkSettings"]["Networks"][network]["IPAddress"]


def balancer_view(lab_name):
    """HAProxy's view of the fleet's servers, or None when the lab has no fleet."""
    try:
        return podman_exec("%s-balancer" % lab_name, "python3", "-c", BALANCER)
    except (RuntimeError, ValueError):
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab-name", required=True)
    parser.add_argument("--inventory", required=True)
    args = parser.parse_args()
    hosts = lab_hosts(args.inventory)
    for host in hosts:  # the internet host's container name is templated in its inventory vars
        host["container"] = host["container"] if host["container"] and "{{" not in host["container"] else "%s-%s" % (args.lab_name, host["name"])
    with ThreadPoolExecutor(len(hosts)) as pool:
        facts = dict(zip([h["name"] for h in hosts], pool.map(lambda h: podman_exec(h["container"], "python3", "-c", PROBE), hosts)))
        for host, address in zip(hosts, pool.map(lambda h: lab_address(h["container"], args.lab_name), hosts)):
            facts[host["name"]]["ip"] = address

    print("%-16s %-10s %-8s %-12s %-7s %-6s %-7s %-9s %s" % ("host", "role", "cluster", "overlay", "node", "height", "peers", "/health", "wg handshakes"))
    for host in hosts:
        f = facts[host["name"]]
        wg = "%d/%d recent" % tuple(f["wg"]) if f.get("wg") else "-"
        print("%-16s %-10s %-8s %-12s %-7s %-6s %-7s %-9s %s" % (
            host["name"], host["role"], host["cluster"], f.get("overlay") or "-", f["node"], f.get("height") or "-",
            f.get("peers") or "-", f.get("health") or "-", wg))

    servers = balancer_view(args.lab_name)
    if servers:
        print("\nLoad balancer (HAProxy, the NLB's stand-in; check: GET /health):")
        for server in servers:
            print("  %-16s %-6s check %-8s sessions %d" % (server["server"], server["status"], server["check"], server["sessions"]))

    internet = next(h for h in hosts if h["role"] == "internet")
    ok = True
    print("\nFrom the internet peer (%s), TCP %s:" % (facts[internet["name"]]["ip"], ",".join(PORTS)))
    private = {facts[h["name"]]["ip"] for h in hosts if h["role"] in ("validator", "standby")}
    private |= {facts[h["name"]]["overlay"] for h in hosts if h["role"] in ("validator", "standby")}
    targets = [h for h in hosts if h["role"] != "internet"]
    with ThreadPoolExecutor(len(targets)) as pool:
        scans = pool.map(lambda h: podman_exec(internet["container"], "python3", "-c", SCAN, facts[h["name"]]["ip"], *PORTS), targets)
    for host, opened in zip(targets, scans):
        hidden = host["role"] in ("validator", "standby")
        good = opened == [] if hidden else opened == [19444]
        ok &= good
        ports = ",".join(map(str, opened)) or "none"
        verdict = "ok" if good else "UNEXPECTED"
        print("  %-16s %-10s %-15s open: %-12s %s" % (host["name"], host["role"], facts[host["name"]]["ip"], ports, verdict))
    leaked = private & set(facts[internet["name"]].get("peer_addrs") or [])
    ok &= not leaked
    print("  internet peer's peers include a validator or standby address: %s" % (", ".join(sorted(leaked)) or "no (ok)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
