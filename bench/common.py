"""Shared benchmark plumbing: pinned server processes, wrk runs, medians, Prometheus text."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SERVER_CPU = "0"  # the server gets one core, the load generator the other
CLIENT_CPU = "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") else argv


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


@contextlib.contextmanager
def server(argv: list[str], health: str, env: dict[str, str] | None = None) -> Iterator[None]:
    """Start a server pinned to SERVER_CPU, wait for `health`, stop it afterwards."""
    proc = subprocess.Popen(pinned(SERVER_CPU, argv), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    try:
        wait_http(health)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def metricsd(config: str = "", extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """metricsd on a free port with `config` (YAML text); yields its base URL."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(config or "{}\n")
    url = f"http://127.0.0.1:{port}"
    try:
        with server([PY, "-m", "metricsd", "--config", f.name, "--listen", f"127.0.0.1:{port}"],
                    f"{url}/healthz", extra_env):
            yield url
    finally:
        os.unlink(f.name)


@contextlib.contextmanager
def bare_server() -> Iterator[str]:
    """The baseline: an aiohttp handler that reads the body and answers 204."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with server([PY, str(ROOT / "bench" / "bare_server.py"), str(port)], f"{url}/"):
        yield url


@contextlib.contextmanager
def naive_server(mode: str) -> Iterator[str]:
    """A batch baseline (bench/naive_server.py): `rows` or `columnar`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with server([PY, str(ROOT / "bench" / "naive_server.py"), str(port), mode], f"{url}/"):
        yield url


def wrk(url: str, lua: str, seconds: int = 8, connections: int = 32,
        latency: bool = False) -> dict[str, float]:
    """Run wrk (one thread, on CLIENT_CPU) with a Lua script; parse requests/s and latency."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk not found: apt-get install wrk (make sysdeps)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    argv = [binary, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url]
    if latency:
        argv.insert(1, "--latency")
    try:
        out = subprocess.run(pinned(CLIENT_CPU, argv), capture_output=True, text=True,
                             timeout=seconds + 60).stdout
    finally:
        os.unlink(f.name)
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": float(re.search(r"(\d+) requests in", out).group(1))}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(bad.group(1)) if bad else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            result[f"p{pct}_ms"] = float(m.group(1)) * scale
    return result


def post_lua(path: str, body: str, headers: dict[str, str] | None = None,
             delay_ms: float | None = None) -> str:
    """A wrk script that POSTs `body` (a JSON string) to `path`, optionally paced."""
    lines = ['wrk.method = "POST"', f"wrk.path = {lua_string(path)}",
             f"wrk.body = {lua_string(body)}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}"
              for k, v in (headers or {}).items()]
    if delay_ms is not None:
        lines.append(f"function delay() return {delay_ms:.3f} end")
    return "\n".join(lines) + "\n"


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def metric_value(url: str, name: str, labels: str = "") -> float:
    """Sum of the samples `name{labels...}` on url/metrics (labels: a substring filter)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def median(values: list[float]) -> float:
    return statistics.median(values)
