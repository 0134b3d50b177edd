"""Stopping metricsd while apps serve must not slow their requests.

metricsd runs as a real process. Each app is measured three times: metricsd up, metricsd
hung (SIGSTOP: connections are accepted by the kernel and never answered, so the sender
waits for its timeout) and metricsd gone (SIGKILL: connections refused). A request that
waited on metricsd would take the sender's 1 s timeout; the bound below is far tighter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import sys
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from flask import Flask
from metricsd_client import MetricsdWSGIMiddleware, setup_aiohttp
from metricsd_client.base import TimingSender

from tests.client.conftest import TOKEN, serve_wsgi

PHASE_SECONDS = 1.5
MAX_REQUESTS_PER_PHASE = 20_000
SENDER_OPTIONS: dict[str, Any] = {
    "timeout": 1.0, "interval": 0.05, "backoff_initial": 0.05, "backoff_max": 0.3,
    "close_timeout": 1.0,
}


@dataclass
class Phase:
    name: str
    latencies: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _open_log(tmp_path: Path) -> BinaryIO:
    return (tmp_path / "metricsd.log").open("wb")


def _write_config(tmp_path: Path) -> Path:
    config = tmp_path / "metricsd.yml"
    config.write_text(f"ingest:\n  tokens: [{TOKEN}]\n")
    return config


@pytest.fixture
async def metricsd_process(tmp_path: Path) -> AsyncIterator[tuple[str, Process]]:
    """`python -m metricsd` on a free port with a timings token; killed at the end."""
    config = _write_config(tmp_path)
    port = _free_port()
    with _open_log(tmp_path) as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "metricsd", "--config", str(config),
            "--listen", f"127.0.0.1:{port}", stdout=log, stderr=log,
            env={**os.environ, "METRICSD_LOG_LEVEL": "warning"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            break
                assert proc.returncode is None, "metricsd exited at start-up"
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("metricsd did not become healthy")
        yield url, proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        await proc.wait()


async def _measure(http: aiohttp.ClientSession, url: str, name: str) -> Phase:
    latencies: list[float] = []
    end = time.perf_counter() + PHASE_SECONDS
    while time.perf_counter() < end and len(latencies) < MAX_REQUESTS_PER_PHASE:
        started = time.perf_counter()
        async with http.get(url) as resp:
            await resp.read()
            assert resp.status == 200
        latencies.append(time.perf_counter() - started)
    return Phase(name, latencies)


async def _outage_phases(url: str, proc: Process,
                         sender: TimingSender) -> list[Phase]:
    async with aiohttp.ClientSession() as http:
        await _measure(http, url, "warm-up")
        up = await _measure(http, url, "metricsd up")
        assert sender.stats().sent > 0  # the path to metricsd really was in use
        proc.send_signal(signal.SIGSTOP)
        hung = await _measure(http, url, "metricsd hung")
        retries_while_hung = sender.stats().retries
        proc.send_signal(signal.SIGKILL)
        proc.send_signal(signal.SIGCONT)
        gone = await _measure(http, url, "metricsd gone")
    assert retries_while_hung > 0, "the sender never noticed the hung metricsd"
    assert sender.stats().retries > retries_while_hung or sender.stats().failed > 0
    return [up, hung, gone]


def _assert_not_slowed(phases: list[Phase]) -> None:
    up, *down = phases
    report = ", ".join(f"{p.name}: median {p.median * 1e3:.2f} ms, p95 {p.p95 * 1e3:.2f} ms, "
                       f"max {max(p.latencies) * 1e3:.1f} ms, n={len(p.latencies)}"
                       for p in phases)
    print(report)  # shown with -s, and with the failure
    for phase in down:
        # Generous for a shared 2-core machine, yet far below the sender's 1 s timeout.
        assert phase.median <= 2 * up.median + 0.002, report
        assert phase.p95 <= 3 * up.p95 + 0.020, report
        assert max(phase.latencies) < 0.5, report


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["id"]})


@pytest.mark.timeout(60)
async def test_aiohttp_app_not_slowed_when_metricsd_stops(
    metricsd_process: tuple[str, Process],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    metricsd_url, proc = metricsd_process
    app = web.Application()
    app.router.add_get("/items/{id}", _ok)
    sender = setup_aiohttp(app, metricsd_url, service="outage", token=TOKEN, **SENDER_OPTIONS)
    server = await aiohttp_server(app)
    phases = await _outage_phases(str(server.make_url("/items/7")), proc, sender)
    _assert_not_slowed(phases)
    started = time.perf_counter()
    await server.close()  # shutdown with metricsd gone stays bounded by close_timeout
    assert time.perf_counter() - started < SENDER_OPTIONS["close_timeout"] + 1.0


@pytest.mark.timeout(60)
async def test_flask_app_not_slowed_when_metricsd_stops(
    metricsd_process: tuple[str, Process],
) -> None:
    metricsd_url, proc = metricsd_process
    app = Flask("outage")

    @app.get("/items/<id>")
    def item(id: str) -> dict[str, str]:
        return {"id": id}

    middleware = MetricsdWSGIMiddleware(app.wsgi_app, metricsd_url, service="outage-wsgi",
                                        token=TOKEN, **SENDER_OPTIONS)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    with serve_wsgi(app) as base:
        phases = await _outage_phases(base + "/items/7", proc, middleware.sender)
    _assert_not_slowed(phases)
    started = time.perf_counter()
    await asyncio.to_thread(middleware.sender.close)
    assert time.perf_counter() - started < SENDER_OPTIONS["close_timeout"] + 1.0
