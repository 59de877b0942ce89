"""Benchmark: chainops_health against a naive per-request checker, same node, same run.

Starts a real node (anvil, or litecoind regtest) on loopback behind a counting proxy, then
for each checker (chainops_health, then the naive baseline):
  * saturation: closed-loop keep-alive load, requests/s;
  * fixed rate: open-loop 500 requests/s, p50/p99 latency measured from the *scheduled*
    send time (so a stalled server cannot hide its queueing delay);
  * node RPC calls/s during both phases, counted by the proxy in front of the node.
The load generator is a separate process.  With 2+ CPUs the checker is pinned to CPU 0
and the load generator to CPU 1 ("one core" for the checker).  Every phase is bounded
in time and request count; everything listens on 127.0.0.1 only.

Usage: .venv/bin/python tests/bench/health_bench.py [--node anvil|litecoind] [--quick]
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import re
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "roles/health_checker/files/chainops-health"  # run as a directory
CACHE = Path(os.environ.get("CHAINOPS_CACHE", REPO / ".cache"))
ANVIL = CACHE / "artifacts/bin/anvil"
LITECOIND = Path("/usr/lib/litecoin/litecoind")
SYSTEM_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
MAX_REQUESTS = 1_000_000  # hard cap per phase, whatever the duration


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url, timeout=30.0, expect=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if expect is None or resp.status == expect:
                    return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last}")


# ----------------------------------------------------------------------------- nodes

class AnvilNode:
    label = "anvil"

    def __init__(self, workdir):
        if not ANVIL.exists():
            sys.exit(f"anvil not found at {ANVIL}: run `make -C {REPO} artifacts`")
        self.port = free_port()
        self.proc = subprocess.Popen([str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = None
        try:
            wait_rpc(self, "eth_blockNumber")
            self.rpc("anvil_mine", "0x5")
        except BaseException:
            self.stop()  # never leave a node behind
            raise

    def rpc(self, method, *params):
        return json_rpc(self.url, method, list(params), self.auth)

    def checker_node_config(self, proxy_url, workdir):
        return {"adapter": "ethereum", "node": {"url": proxy_url}, "min_peers": 0}

    naive_methods = ("eth_syncing", "eth_blockNumber")

    @staticmethod
    def naive_healthy(results):
        return results["eth_syncing"] is False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class LitecoinNode(AnvilNode):
    label = "litecoind regtest"

    def __init__(self, workdir):
        if not LITECOIND.exists():
            sys.exit(f"litecoind not found at {LITECOIND}: install the Debian package litecoind")
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.datadir = Path(workdir) / "ltc"
        self.datadir.mkdir()
        self.proc = subprocess.Popen(
            [str(LITECOIND), "-regtest", f"-datadir={self.datadir}", "-server=1", "-listen=0", "-disablewallet",
             "-dnsseed=0", "-listenonion=0", "-connect=0", "-printtoconsole=0", "-rpcbind=127.0.0.1",
             f"-rpcport={self.port}", "-rpcallowip=127.0.0.1", "-rpcuser=bench", f"-rpcpassword={self.password}",
             "-rpcthreads=8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = ("bench", self.password)
        try:
            wait_rpc(self, "getblockcount")
            self.rpc("generatetodescriptor", 5, "raw(51)#8lvh9jxk")
        except BaseException:
            self.stop()  # never leave a node behind
            raise

    def checker_node_config(self, proxy_url, workdir):
        password_file = Path(workdir) / "rpc.pass"
        password_file.write_text(self.password)
        return {"adapter": "bitcoin", "node": {"url": proxy_url, "user": "bench", "password_file": str(password_file)},
                "min_peers": 0}

    naive_methods = ("getblockchaininfo",)

    @staticmethod
    def naive_healthy(results):
        return not results["getblockchaininfo"]["initialblockdownload"]


def wait_rpc(node, method, timeout=30.0):
    """Until the node answers (litecoind says -28 "Loading block index" for a while)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return node.rpc(method)
        except (OSError, RuntimeError):
            if time.monotonic() > deadline or node.proc.poll() is not None:
                raise
            time.sleep(0.2)


def json_rpc(url, method, params, auth=None):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            doc = json.load(resp)
    except urllib.error.HTTPError as exc:
        doc = json.load(exc)
    if doc.get("error"):
        raise RuntimeError(f"{method}: {doc['error']}")
    return doc["result"]


# ----------------------------------------------------------------------------- counting proxy (own process)

class _Upstream(threading.local):
    conn = None


class QuietServer(ThreadingHTTPServer):
    """The load generator closes connections with requests in flight at the end of a phase: not an error."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def proxy_main(ready, upstream_port, http_count, rpc_count):
    """Forward every request to the node and count it: HTTP requests and JSON-RPC calls (batches expanded)."""
    upstream = _Upstream()

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # header and body go out in two writes: avoid Nagle/delayed-ACK stalls

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                doc = json.loads(body)
                calls = len(doc) if isinstance(doc, list) else 1
            except ValueError:
                calls = 1
            with http_count.get_lock():
                http_count.value += 1
            with rpc_count.get_lock():
                rpc_count.value += calls
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
            for attempt in (1, 2):  # the node may have closed an idle keep-alive connection
                if upstream.conn is None:
                    upstream.conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=10)
                try:
                    upstream.conn.request("POST", "/", body=body, headers=headers)
                    resp = upstream.conn.getresponse()
                    payload = resp.read()
                    break
                except (OSError, http.client.HTTPException):
                    upstream.conn.close()
                    upstream.conn = None
                    if attempt == 2:
                        self.send_error(502)
                        return
            self.send_response(resp.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = QuietServer(("127.0.0.1", 0), Proxy)
    ready.send(server.server_address[1])
    server.serve_forever()


# ----------------------------------------------------------------------------- naive checker (own process)

def naive_main(ready, node_port, methods, healthy_fn_name, auth, cpu):
    """The baseline: every /health request asks the node (keep-alive upstream, so it is not a strawman)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    healthy_fn = getattr(LitecoinNode if healthy_fn_name == "litecoin" else AnvilNode, "naive_healthy")
    upstream = _Upstream()
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()

    def call(method):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
        for attempt in (1, 2):
            if upstream.conn is None:
                upstream.conn = http.client.HTTPConnection("127.0.0.1", node_port, timeout=2)
            try:
                upstream.conn.request("POST", "/", body=body, headers=headers)
                return json.loads(upstream.conn.getresponse().read())["result"]
            except (OSError, http.client.HTTPException):
                upstream.conn.close()
                upstream.conn = None
                if attempt == 2:
                    raise

    class Naive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # header and body go out in two writes: avoid Nagle/delayed-ACK stalls

        def do_GET(self):  # noqa: N802
            try:
                healthy = healthy_fn({m: call(m) for m in methods})
            except Exception:  # noqa: BLE001 - node down means unhealthy
                healthy = False
            body = json.dumps({"healthy": healthy}).encode()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = QuietServer(("127.0.0.1", 0), Naive)
    ready.send(server.server_address[1])
    server.serve_forever()


# ----------------------------------------------------------------------------- load generator (own process)

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: chainops-bench\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class _Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""
        self.started = None  # scheduled (fixed rate) or actual (saturation) send time

    def send(self, when):
        self.started = when
        self.sock.send(REQUEST)  # 70 bytes always fit an empty socket buffer

    def responses(self):
        """Complete responses' status codes parsed from the buffer."""
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            match = _CONTENT_LENGTH.search(self.buf, 0, end + 2)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buf) < total:
                return out
            out.append(int(self.buf[9:12]))
            self.buf = self.buf[total:]


def loadgen_main(conn, mode, port, seconds, connections, rate, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    cpu0, wait0 = time.process_time(), proc_runqueue_wait_s(os.getpid())
    if mode == "saturate":
        result = saturate(port, seconds, connections)
    else:
        result = fixed_rate(port, seconds, connections, rate)
    result["loadgen_cpu_s"] = time.process_time() - cpu0
    result["loadgen_runqueue_wait_s"] = proc_runqueue_wait_s(os.getpid()) - wait0
    conn.send(result)


def saturate(port, seconds, connections):
    sel = selectors.DefaultSelector()
    conns = [_Conn(port) for _attempt in range(connections)]
    start = time.perf_counter()
    deadline = start + seconds
    done, statuses, sent = 0, {}, 0
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
        c.send(start)
        sent += 1
    while done < sent:
        for key, _events in sel.select(timeout=1.0):
            c = key.data
            data = c.sock.recv(65536)
            if not data:
                raise RuntimeError("server closed a keep-alive connection")
            c.buf += data
            for status in c.responses():
                done += 1
                statuses[status] = statuses.get(status, 0) + 1
                if time.perf_counter() < deadline and sent < MAX_REQUESTS:
                    c.send(None)
                    sent += 1
    elapsed = time.perf_counter() - start
    for c in conns:
        c.sock.close()
    return {"requests": done, "elapsed_s": elapsed, "rps": done / elapsed, "statuses": statuses}


def fixed_rate(port, seconds, connections, rate):
    """Open loop: request i is due at start + i/rate; latency counts from the due time."""
    sel = selectors.DefaultSelector()
    conns = [_Conn(port) for _attempt in range(connections)]
    idle = list(conns)
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    total = min(int(seconds * rate), MAX_REQUESTS)
    start = time.perf_counter() + 0.05
    latencies, statuses, issued = [], {}, 0
    hard_stop = start + seconds + 10  # bound the tail if the server falls far behind
    while len(latencies) < total and time.perf_counter() < hard_stop:
        now = time.perf_counter()
        while issued < total and idle and start + issued / rate <= now:
            idle.pop().send(start + issued / rate)
            issued += 1
        next_due = start + issued / rate if issued < total else now + 0.05
        timeout = max(0.0, next_due - time.perf_counter()) if idle else 0.05
        for key, _events in sel.select(timeout=timeout):
            c = key.data
            data = c.sock.recv(65536)
            if not data:
                raise RuntimeError("server closed a keep-alive connection")
            c.buf += data
            for status in c.responses():
                latencies.append(time.perf_counter() - c.started)
                statuses[status] = statuses.get(status, 0) + 1
                idle.append(c)
    elapsed = time.perf_counter() - start
    for c in conns:
        c.sock.close()
    latencies.sort()
    return {"requests": len(latencies), "planned": total, "elapsed_s": elapsed, "rps": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": latencies[-1] * 1000 if latencies else float("nan"), "statuses": statuses}


def percentile(sorted_values, pct):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def run_load(ctx, mode, port, seconds, connections, rate, cpu):
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=loadgen_main, args=(child, mode, port, seconds, connections, rate, cpu))
    proc.start()
    if not parent.poll(seconds + 30):
        proc.kill()
        raise RuntimeError(f"load generator ({mode}) did not finish")
    result = parent.recv()
    proc.join(10)
    return result


# ----------------------------------------------------------------------------- measurement

def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_runqueue_wait_s(pid):
    """Seconds the process's threads spent runnable but waiting for a CPU (schedstat field 2)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass  # thread exited meanwhile
    return total / 1e9


def proc_rss_mb(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(ctx, label, port, pid, counters, args, cpus):
    """Saturation then fixed rate against one checker; node calls counted per phase by the proxy."""
    http_count, rpc_count = counters
    out = {"label": label}
    for mode, seconds in (("saturate", args.saturation_seconds), ("rate", args.rate_seconds)):
        calls0, rpc0, cpu0, t0 = http_count.value, rpc_count.value, proc_cpu_seconds(pid), time.monotonic()
        wait0 = proc_runqueue_wait_s(pid)
        result = run_load(ctx, mode, port, seconds, args.connections, args.rate, cpus[1])
        wall = time.monotonic() - t0
        result["server_cpu_cores"] = (proc_cpu_seconds(pid) - cpu0) / result["elapsed_s"]
        result["server_runqueue_wait_s"] = proc_runqueue_wait_s(pid) - wait0
        result["node_http_per_s"] = (http_count.value - calls0) / wall
        result["node_rpc_per_s"] = (rpc_count.value - rpc0) / wall
        out[mode] = result
    out["rss_mb"] = proc_rss_mb(pid)
    return out


def start_process(ctx, target, *args):
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    if not parent.poll(20):
        raise RuntimeError(f"{target.__name__} did not start")
    return proc, parent.recv()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", choices=("anvil", "litecoind"), default="anvil")
    parser.add_argument("--saturation-seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="2 s phases (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.saturation_seconds = args.rate_seconds = 2.0
    args.saturation_seconds = min(args.saturation_seconds, 30.0)  # keep shared machines usable
    args.rate_seconds = min(args.rate_seconds, 30.0)

    load_before = os.getloadavg()
    available = sorted(os.sched_getaffinity(0))
    cpus = (available[0], available[1]) if len(available) >= 2 else (None, None)
    ctx = multiprocessing.get_context("spawn")
    workdir = tempfile.mkdtemp(prefix="chainops-bench-")
    node = (LitecoinNode if args.node == "litecoind" else AnvilNode)(workdir)
    http_count, rpc_count = ctx.Value("q", 0), ctx.Value("q", 0)
    proxy = None
    results = []
    try:
        proxy, proxy_port = start_process(ctx, proxy_main, node.port, http_count, rpc_count)
        proxy_url = f"http://127.0.0.1:{proxy_port}"
        # chainops_health, on the target's interpreter in isolated mode (stdlib only).
        port = free_port()
        cfg = node.checker_node_config(proxy_url, workdir)
        cfg.update({"listen_host": "127.0.0.1", "listen_port": port, "poll_interval_s": args.poll_interval,
                    "timeout_s": 2})
        cfg_path = Path(workdir) / "health.json"
        cfg_path.write_text(json.dumps(cfg))
        service = subprocess.Popen([SYSTEM_PYTHON, "-I", "-S", "-B", str(SERVICE), str(cfg_path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if cpus[0] is not None:
            os.sched_setaffinity(service.pid, {cpus[0]})
        try:
            wait_http(f"http://127.0.0.1:{port}/health", expect=200)
            results.append(measure(ctx, "chainops_health", port, service.pid, (http_count, rpc_count), args, cpus))
        finally:
            service.terminate()
            service.wait(10)

        auth = getattr(node, "auth", None)
        naive, naive_port = start_process(ctx, naive_main, proxy_port, node.naive_methods,
                                          "litecoin" if args.node == "litecoind" else "anvil", auth, cpus[0])
        try:
            wait_http(f"http://127.0.0.1:{naive_port}/health", expect=200)
            results.append(measure(ctx, "naive (node RPC per request)", naive_port, naive.pid,
                                   (http_count, rpc_count), args, cpus))
        finally:
            naive.terminate()
            naive.join(5)
    finally:
        if proxy is not None:
            proxy.terminate()
        node.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report(args, node, cpus, results, (load_before, os.getloadavg()))


def report(args, node, cpus, results, loads):
    ours, naive = results
    print(f"machine: {os.cpu_count()} CPUs, load average (1 min) {loads[0][0]:.2f} before, {loads[1][0]:.2f} after "
          "(other work on the machine competes with the checker for CPU)")
    pinned = f"checker pinned to CPU {cpus[0]}, load generator to CPU {cpus[1]}" if cpus[0] is not None \
        else "not pinned (fewer than 2 CPUs)"
    print(f"node: {node.label} behind a counting proxy (both checkers go through it); {pinned}")
    print(f"chainops_health poll interval {args.poll_interval}s; naive baseline calls "
          f"{', '.join(node.naive_methods)} on every request")
    print(f"phases: saturation {args.saturation_seconds}s x {args.connections} keep-alive connections; "
          f"fixed rate {args.rate} req/s for {args.rate_seconds}s (open loop)\n")
    rows = [
        ("saturation requests/s", lambda r: r["saturate"]["rps"], "{:.0f}"),
        ("  checker CPU (cores) at saturation", lambda r: r["saturate"]["server_cpu_cores"], "{:.2f}"),
        ("  requests per checker CPU-second",
         lambda r: r["saturate"]["rps"] / max(r["saturate"]["server_cpu_cores"], 1e-9), "{:.0f}"),
        ("  checker wait for a CPU (s of phase)", lambda r: r["saturate"]["server_runqueue_wait_s"], "{:.2f}"),
        ("  load generator CPU s (of phase s)", lambda r: r["saturate"]["loadgen_cpu_s"], "{:.1f}"),
        ("  load generator wait for a CPU s", lambda r: r["saturate"]["loadgen_runqueue_wait_s"], "{:.2f}"),
        ("  node RPC calls/s at saturation", lambda r: r["saturate"]["node_rpc_per_s"], "{:.2f}"),
        (f"achieved rate (target {args.rate} req/s)", lambda r: r["rate"]["rps"], "{:.0f}"),
        (f"p50 latency ms @{args.rate} req/s", lambda r: r["rate"]["p50_ms"], "{:.2f}"),
        (f"p99 latency ms @{args.rate} req/s", lambda r: r["rate"]["p99_ms"], "{:.2f}"),
        (f"max latency ms @{args.rate} req/s", lambda r: r["rate"]["max_ms"], "{:.2f}"),
        (f"checker CPU % of a core @{args.rate} req/s", lambda r: 100 * r["rate"]["server_cpu_cores"], "{:.1f}"),
        (f"checker wait for a CPU s @{args.rate} req/s", lambda r: r["rate"]["server_runqueue_wait_s"], "{:.2f}"),
        (f"load generator wait for a CPU s @{args.rate} req/s", lambda r: r["rate"]["loadgen_runqueue_wait_s"],
         "{:.2f}"),
        (f"node RPC calls/s @{args.rate} req/s", lambda r: r["rate"]["node_rpc_per_s"], "{:.2f}"),
        (f"node HTTP requests/s @{args.rate} req/s", lambda r: r["rate"]["node_http_per_s"], "{:.2f}"),
        ("checker RSS MB", lambda r: r["rss_mb"], "{:.1f}"),
    ]
    width = max(len(row[0]) for row in rows) + 2
    print(f"{'':{width}}{'chainops_health':>18}{'naive':>18}")
    for name, get, fmt in rows:
        print(f"{name:{width}}{fmt.format(get(ours)):>18}{fmt.format(get(naive)):>18}")
    print(f"{'HTTP statuses (saturation)':{width}}{str(ours['saturate']['statuses']):>18}"
          f"{str(naive['saturate']['statuses']):>18}")
    print(f"{'HTTP statuses (fixed rate)':{width}}{str(ours['rate']['statuses']):>18}"
          f"{str(naive['rate']['statuses']):>18}")

    calls_per_poll = {"anvil": 4, "litecoind": 3}[args.node]
    budget = calls_per_poll / args.poll_interval
    print("\ntargets (chainops_health):")
    print(f"  >= 3000 req/s on one core: {ours['saturate']['rps']:.0f}  "
          f"{'OK' if ours['saturate']['rps'] >= 3000 else 'MISSED'}")
    print(f"  p99 <= 10 ms @{args.rate} req/s: {ours['rate']['p99_ms']:.2f}  "
          f"{'OK' if ours['rate']['p99_ms'] <= 10 else 'MISSED'}")
    worst = max(ours["saturate"]["node_rpc_per_s"], ours["rate"]["node_rpc_per_s"])
    print(f"  node RPC calls/s <= {calls_per_poll} calls per {args.poll_interval}s poll = {budget:.2f}/s "
          f"(+1 poll of slack per phase): {worst:.2f}  "
          f"{'OK' if worst <= budget + calls_per_poll / min(args.saturation_seconds, args.rate_seconds) else 'MISSED'}")

    cpu_us = 1e6 * ours["saturate"]["server_cpu_cores"] / ours["saturate"]["rps"]
    print(f"  checker CPU per request at saturation: {cpu_us:.0f} us (estimate if CPU-bound on one core: "
          f"~{1e6 / cpu_us:.0f} req/s)")
    for phase, seconds in (("saturate", args.saturation_seconds), ("rate", args.rate_seconds)):
        starved = ours[phase]["loadgen_runqueue_wait_s"]
        if starved > 0.1 * seconds:
            print(f"  note: in the {phase} phase the load generator itself waited {starved:.2f}s of {seconds}s "
                  "for a CPU (other work on the machine): throughput and latency above are lower bounds")

    def ratio(a, b):
        return a / b if b else float("inf")
    print("\nratios (chainops_health / naive):")
    print(f"  saturation throughput   {ratio(ours['saturate']['rps'], naive['saturate']['rps']):.1f}x")
    print(f"  p50 latency @{args.rate} req/s  {ratio(ours['rate']['p50_ms'], naive['rate']['p50_ms']):.3f}x")
    print(f"  p99 latency @{args.rate} req/s  {ratio(ours['rate']['p99_ms'], naive['rate']['p99_ms']):.3f}x")
    print(f"  node RPC calls/s @{args.rate} req/s  "
          f"{ratio(ours['rate']['node_rpc_per_s'], naive['rate']['node_rpc_per_s']):.5f}x")


if __name__ == "__main__":
    main()
