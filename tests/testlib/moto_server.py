"""A real ``moto_server`` on a free loopback port, shared by the pytest fixtures and the benchmarks.

    with MotoServer() as moto:          # started and answering HTTP, or an error
        boto3.client("ec2", endpoint_url=moto.url, ...)
        moto.reset()                    # forget every resource
    # stopped

Also ``unwrap_unsafe``, for comparing ``ansible-inventory`` output of inventories pointed at moto.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Return once ``url`` answers; raise after ``timeout`` seconds, or at once if ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            last_error = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last_error}")


def moto_command() -> list[str]:
    """``moto_server`` with atomic object writes (moto_atomic_s3.py), run by this interpreter: it has
    the moto and boto3 the tests use, and the venv need not be on PATH (.venv/bin/python -m pytest)."""
    return [sys.executable, str(Path(__file__).with_name("moto_atomic_s3.py"))]


def base_amis_file(directory: Path) -> Path | None:
    """moto's own short AMI list (44 images, several owners) as a file for ``MOTO_AMIS_PATH``.

    Without it moto loads every region's "latest" AMIs too (1,300 in us-east-1) on the first EC2
    call after each reset: 1-2 s of CPU per test on a quiet machine, many times that under CI's load.
    No test needs them. None when moto's packaging differs (the full list is loaded then).
    """
    spec = importlib.util.find_spec("moto")
    if spec is None or spec.origin is None:
        return None
    packaged = Path(spec.origin).parent / "ec2" / "resources" / "amis.json.gz"
    if not packaged.is_file():
        return None
    target = directory / "amis.json"
    target.write_bytes(gzip.decompress(packaged.read_bytes()))
    return target


def bind_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on (in use, not a local address), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


class MotoServer:
    """``moto_server -H <host> -p <free port>`` (moto_atomic_s3.py) as a child process; ``url`` is its endpoint."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, timeout: float = 60.0, command: list[str] | None = None):
        self.command = command or moto_command()
        self.host = host
        self.port = port
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.workdir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start the server and wait until it answers; returns its URL."""
        if self.port is None:
            self.port = free_port(self.host)
        elif (error := bind_error(self.host, self.port)) is not None:
            # Checked first: waiting for HTTP would get answers from whatever already listens there.
            raise RuntimeError(f"cannot start moto_server on {self.host}:{self.port}: {error}")
        self.workdir = tempfile.TemporaryDirectory(prefix="chainops-moto-")
        env = dict(os.environ)
        amis = base_amis_file(Path(self.workdir.name))
        if amis is not None:
            env["MOTO_AMIS_PATH"] = str(amis)
        self.proc = subprocess.Popen(
            [*self.command, "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            wait_for_http(self.url + "/moto-api/", self.timeout, self.proc)
        except BaseException:
            self.stop()
            raise
        return self.url

    def reset(self) -> None:
        """Drop every resource moto holds (its own reset API)."""
        request = urllib.request.Request(self.url + "/moto-api/reset", method="POST")
        # Generous: under CI's load (this lane runs niced beside the lab) 5 s was once not enough.
        try:
            urllib.request.urlopen(request, timeout=120).close()
        except OSError as exc:
            raise RuntimeError(f"moto_server at {self.url} did not reset within 120 s: {exc}") from exc

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def unwrap_unsafe(value):
    """Plain values from ``ansible-inventory`` JSON, where untrusted strings are ``{"__ansible_unsafe": ...}``."""
    if isinstance(value, dict):
        if len(value) == 1 and "__ansible_unsafe" in value:
            return value["__ansible_unsafe"]
        return {k: unwrap_unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_unsafe(v) for v in value]
    return value
