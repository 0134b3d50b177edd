"""A real metricsd for client tests, a recorder of what reached it, and /metrics parsing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app

TOKEN = "client-test-token"


@dataclass
class Seen:
    """One request metricsd answered: enough to check transport details."""

    method: str
    path: str
    content_type: str
    body: bytes
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Metricsd:
    """A running metricsd app plus what reached it."""

    server: TestServer
    seen: list[Seen]

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample on /metrics as {(name, labels): value}."""
        async with aiohttp.ClientSession() as session, session.get(self.url + "/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return out


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= lbls)


def label_values(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
                 label: str) -> set[str]:
    return {dict(lbls).get(label, "") for (n, lbls), _ in samples.items() if n == name}


@pytest.fixture
async def metricsd(
    aiohttp_server: Callable[..., Awaitable[TestServer]], make_config: Callable[..., Any]
) -> Metricsd:
    """metricsd with a bearer token on timings; beacon requests are recorded as they arrive."""
    app = create_app(make_config({"ingest": {"tokens": [TOKEN]}}))
    seen: list[Seen] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else b""
        response = await handler(request)
        if request.path.startswith("/v1/beacons/"):
            seen.append(Seen(request.method, request.path, request.content_type, body,
                             response.status, dict(request.headers)))
        return response

    app.middlewares.insert(0, record)
    server = await aiohttp_server(app)
    return Metricsd(server, seen)


@contextlib.asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on this loop, on a socket bound to a free port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task  # runs the lifespan shutdown, which flushes the sender
        sock.close()


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app with werkzeug's threaded server in a thread on a free port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="wsgi-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
