"""`make demo` end to end: real PostgreSQL, the real CLI, traffic, the page; Ctrl-C cleans up."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.binaries import missing
from tests.fixtures.pgcluster import find_bindir

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0

pytestmark = pytest.mark.timeout(180)


async def read_until(stream: asyncio.StreamReader, pattern: str, lines: list[str],
                     within: float) -> re.Match[str]:
    """Collect stdout lines until one matches `pattern`."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(lines))
        line = (await asyncio.wait_for(stream.readline(), remaining)).decode()
        if not line:
            raise AssertionError("demo exited early:\n" + "".join(lines))
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match


def exists(path: Path) -> bool:
    return path.exists()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_demo_starts_serves_and_cleans_up_on_ctrl_c():
    if find_bindir() is None:
        missing("PostgreSQL server binaries not found (make sysdeps)")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tools" / "demo.py"), "--duration", "30", "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group, like a shell job in a terminal
    )
    lines: list[str] = []
    try:
        workdir = Path((await read_until(proc.stdout, r"workdir (\S+)", lines, 10)).group(1))
        cluster = Path((await read_until(proc.stdout, r"cluster dir (\S+)", lines,
                                         START_TIMEOUT_S)).group(1))
        url = (await read_until(proc.stdout, r"overview page: (http://\S+/)", lines,
                                START_TIMEOUT_S)).group(1)
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert exists(workdir) and exists(cluster)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            # Beacons come every second; PostgreSQL is scraped every 5 s, and statements
            # are per interval, so they show from the second scrape on.
            wanted = ("/checkout", "/products/:id", "orders_legacy_ref_idx", "customers_name_key",
                      "FROM orders WHERE")
            deadline = time.monotonic() + 45
            while True:
                async with session.get(url) as resp:
                    assert resp.status == 200
                    page = await resp.text()
                if all(w in page for w in wanted) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            assert "No API timings yet" not in page and "No beacons yet" not in page
            assert "No PostgreSQL target configured" not in page
            assert [w for w in wanted if w not in page] == []
            assert 'class="target up">demo up' in page
            async with session.get(url + "metrics") as resp:
                assert resp.status == 200
                metrics = await resp.text()
            assert re.search(r'metricsd_api_requests_total\{[^}]*route="/checkout"', metrics)
            assert "metricsd_web_vitals_lcp_seconds_bucket" in metrics

        # Ctrl-C in a terminal: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        lines.append(out.decode())
        assert proc.returncode == 0, "".join(lines)
    finally:
        if proc.returncode is None:  # a failed assertion: still let the demo clean up
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.communicate(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert not exists(workdir), "".join(lines)
    assert not exists(cluster), "".join(lines)
    assert not port_open(port)
    assert f"removed {cluster}" in "".join(lines)
