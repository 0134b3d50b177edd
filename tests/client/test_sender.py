"""Both senders against a real HTTP server that answers what the test scripts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from metricsd_client import AsyncSender, SenderCollector, ThreadSender
from metricsd_client.base import TimingSender
from prometheus_client import CollectorRegistry


def expand(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The row items a columnar series object stands for (one per duration)."""
    n = len(obj["duration_ms"])
    status = obj["status"] if isinstance(obj["status"], list) else [obj["status"]] * n
    rows = []
    for j in range(n):
        row = {k: obj[k] for k in ("service", "route", "method")}
        row.update(status=status[j], duration_ms=obj["duration_ms"][j])
        if "timestamp" in obj:
            row["timestamp"] = obj["timestamp"][j]
        rows.append(row)
    return rows


class Script:
    """Answers POST /v1/beacons/timings from a list; records every body it got."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]] | None = None,
                 limit_items: int | None = None, hang: bool = False) -> None:
        self.answers = list(answers or [])
        self.limit_items = limit_items
        self.hang = hang
        self.bodies: list[list[dict[str, Any]]] = []  # as row items, element by element
        self.raw: list[list[dict[str, Any]]] = []  # as sent: one series object per route
        self.auth: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        if self.hang:
            await asyncio.sleep(3600)
        raw = json.loads(await request.read())
        self.raw.append(raw)
        items = [row for obj in raw for row in expand(obj)]
        self.bodies.append(items)
        self.auth.append(request.headers.get("Authorization"))
        if self.limit_items is not None and len(items) > self.limit_items:
            return web.json_response({"error": "too large"}, status=413)
        status, headers = self.answers.pop(0) if self.answers else (202, {})
        return web.json_response({"accepted": len(items)}, status=status, headers=headers)


@pytest.fixture
def scripted(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Callable[..., Any]:
    async def start(script: Script) -> str:
        app = web.Application()
        app.router.add_post("/v1/beacons/timings", script.handle)
        server = await aiohttp_server(app)
        return str(server.make_url("")).rstrip("/")

    return start


@pytest.fixture(params=["async", "thread"])
def make_sender(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Factory for either sender, with start/close that never block the test's loop."""
    kind = request.param
    made: list[TimingSender] = []

    def factory(url: str, **options: Any) -> TimingSender:
        options.setdefault("backoff_initial", 0.01)
        options.setdefault("interval", 0.05)
        cls = AsyncSender if kind == "async" else ThreadSender
        sender = cls(url, service="svc", token="t0k", **options)
        made.append(sender)
        return sender

    yield factory
    for sender in made:  # a failed test must not leave a thread behind
        if isinstance(sender, ThreadSender):
            sender.close(timeout=2)


async def start(sender: TimingSender) -> None:
    sender.start()  # type: ignore[attr-defined]


async def close(sender: TimingSender) -> None:
    if isinstance(sender, AsyncSender):
        await sender.close()
    else:
        assert isinstance(sender, ThreadSender)
        await asyncio.to_thread(sender.close)


async def wait_until(condition: Callable[[], Any], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def record(sender: TimingSender, n: int, route: str = "/r/{id}") -> None:
    for i in range(n):
        sender.record(route, "GET", 200 + i % 2, 0.001 * (i + 1))


async def test_payload_and_token(scripted: Callable[..., Any], make_sender: Any) -> None:
    script = Script()
    sender = make_sender(await scripted(script))
    await start(sender)
    record(sender, 2)
    await close(sender)
    assert script.auth == ["Bearer t0k"]
    assert script.raw == [[{"service": "svc", "route": "/r/{id}", "method": "GET",
                            "status": [200, 201], "duration_ms": [1.0, 2.0]}]]
    assert script.bodies == [[
        {"service": "svc", "route": "/r/{id}", "method": "GET", "status": 200, "duration_ms": 1.0},
        {"service": "svc", "route": "/r/{id}", "method": "GET", "status": 201, "duration_ms": 2.0},
    ]]


async def test_retries_5xx_and_429_then_delivers(scripted: Callable[..., Any],
                                                 make_sender: Any) -> None:
    script = Script([(503, {}), (429, {"Retry-After": "0"})])
    sender = make_sender(await scripted(script))
    await start(sender)
    record(sender, 3)
    await wait_until(lambda: sender.stats().sent)  # close() would try once, not retry
    await close(sender)
    assert [len(b) for b in script.bodies] == [3, 3, 3]
    assert "timestamp" not in script.bodies[0][0]  # fresh: metricsd stamps on arrival
    stamp = script.bodies[2][0]["timestamp"]  # late: carries when it happened
    assert abs(stamp - time.time()) < 30
    stats = sender.stats()
    assert (stats.sent, stats.retries, stats.failed, stats.dropped) == (3, 2, 0, 0)


async def test_413_halves_the_batch(scripted: Callable[..., Any], make_sender: Any) -> None:
    script = Script(limit_items=2)
    sender = make_sender(await scripted(script), batch_size=100)
    record(sender, 5)  # queued before start: one batch of 5
    await start(sender)
    await close(sender)
    delivered = [b for b in script.bodies if len(b) <= 2]
    assert sum(len(b) for b in delivered) == 5
    assert sender.stats().sent == 5 and sender.stats().rejected == 0


async def test_gives_up_after_max_attempts(scripted: Callable[..., Any], make_sender: Any) -> None:
    script = Script([(503, {})] * 10)
    sender = make_sender(await scripted(script), max_attempts=3)
    await start(sender)
    record(sender, 4)
    await wait_until(lambda: sender.stats().failed)
    await close(sender)
    stats = sender.stats()
    assert (stats.failed, stats.retries, stats.sent) == (4, 3, 0)
    assert len(script.bodies) == 3


async def test_full_queue_drops_and_counts(scripted: Callable[..., Any], make_sender: Any) -> None:
    script = Script()
    sender = make_sender(await scripted(script), max_queue=5)
    if isinstance(sender, ThreadSender):
        sender._thread = object()  # type: ignore[assignment]  # hold the lazy start back
    record(sender, 8)
    assert (sender.stats().queued, sender.stats().dropped) == (5, 3)
    registry = CollectorRegistry()
    registry.register(SenderCollector(sender))
    assert registry.get_sample_value("metricsd_client_timings_total",
                                     {"service": "svc", "outcome": "dropped"}) == 3
    assert registry.get_sample_value("metricsd_client_queued_timings", {"service": "svc"}) == 5
    if isinstance(sender, ThreadSender):
        sender._thread = None
    await start(sender)
    await close(sender)
    assert sender.stats().sent == 5
    assert registry.get_sample_value("metricsd_client_timings_total",
                                     {"service": "svc", "outcome": "sent"}) == 5


async def test_batch_size_sends_before_the_interval(scripted: Callable[..., Any],
                                                    make_sender: Any) -> None:
    script = Script()
    sender = make_sender(await scripted(script), batch_size=3, interval=30.0)
    await start(sender)
    record(sender, 3)
    await wait_until(lambda: script.bodies)
    assert [len(b) for b in script.bodies] == [3]  # well before the 30 s interval
    await close(sender)


async def test_close_is_bounded_when_metricsd_hangs(scripted: Callable[..., Any],
                                                     make_sender: Any) -> None:
    script = Script(hang=True)
    sender = make_sender(await scripted(script), timeout=0.3, close_timeout=2.0)
    await start(sender)
    record(sender, 2)
    started = time.perf_counter()
    await close(sender)
    assert time.perf_counter() - started < 2.5
    assert sender.stats().sent == 0 and sender.stats().failed == 2


async def test_a_batch_that_cannot_be_encoded_does_not_stop_the_sender(
    scripted: Callable[..., Any], make_sender: Any
) -> None:
    script = Script()
    sender = make_sender(await scripted(script), batch_size=1)
    await start(sender)
    sender.record(object(), "GET", 200, 0.001)  # type: ignore[arg-type]  # not JSON
    await wait_until(lambda: sender.stats().failed)
    record(sender, 2)
    await wait_until(lambda: sender.stats().sent == 2)
    await close(sender)
    assert sender.stats().failed == 1
