"""The command line as users run it: check-config, --listen, python -m, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import aiohttp

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, **kw):
    return subprocess.run([PY, "-m", "metricsd", *args], capture_output=True, text=True,
                          timeout=60, **kw)


def test_check_config_ok_and_failing(tmp_path):
    good = tmp_path / "good.yml"
    good.write_text("ingest: {max_series: 100}\n")
    result = run("check-config", str(good))
    assert result.returncode == 0 and "OK" in result.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("ingest: {max_series: -1, bogus: 1}\n")
    result = run("check-config", str(bad))
    assert result.returncode == 2
    assert "ingest.max_series" in result.stderr and "ingest.bogus: unknown key" in result.stderr


async def start(tmp_path, *extra):
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        PY, "-m", "metricsd", "--listen", f"127.0.0.1:{port}", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return proc, url
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("metricsd did not start: " + (await proc.stdout.read()).decode())


async def test_sigterm_lets_an_in_flight_request_finish(tmp_path):
    proc, url = await start(tmp_path)
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"service":"a","route":"/x","method":"GET","status":200,"duration_ms":1}'
    # Send the headers and half the body, then ask metricsd to stop.
    writer.write(b"POST /v1/beacons/timings HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:20])
    await writer.drain()
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    writer.write(body[20:])
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 202"), status_line
    assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_python_m_serves_metrics_with_embedded_defaults(tmp_path):
    proc, url = await start(tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/metrics") as resp:
                assert resp.status == 200
                assert "metricsd_build_info" in await resp.text()
            async with session.get(f"{url}/readyz") as resp:
                assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


def test_bad_listen_is_refused():
    result = run("--listen", "nowhere")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr
