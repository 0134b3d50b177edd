"""Real webhook receivers (aiohttp servers that record and answer as scripted) and helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from metricsd.alerting.collector import AlertingCollector
from metricsd.alerting.rules.load import parse_rule_text
from metricsd.alerting.service import AlertingService
from metricsd.config import AlertingConfig


@dataclass
class Received:
    body: bytes
    json: Any
    headers: dict[str, str]
    at: float


@dataclass
class Recorder:
    """What one receiver server got; `script` answers requests in order, then 200."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: list[float] = field(default_factory=list)

    @property
    def bodies(self) -> list[Any]:
        return [r.json for r in self.received]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until `count` deliveries (2xx answers) arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {count} notification(s), got {len(self.received)}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass


def receiver_app(recorder: Recorder) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        recorder.attempts.append(time.monotonic())
        if recorder.delay:
            await asyncio.sleep(recorder.delay)
        if recorder.script:
            status, headers = recorder.script.pop(0)
            if status >= 300:
                return web.Response(status=status, headers=headers, text="scripted failure")
        recorder.received.append(Received(body, orjson.loads(body), dict(request.headers),
                                          time.monotonic()))
        recorder.arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    return app


@pytest.fixture
def make_receiver(aiohttp_server):
    """Factory: await make_receiver(script=[(503, {})], delay=0, port=None) -> Recorder."""

    async def factory(script=None, delay=0.0, port=None) -> Recorder:
        recorder = Recorder(script=list(script or []), delay=delay)
        kwargs = {"port": port} if port else {}
        server = await aiohttp_server(receiver_app(recorder), **kwargs)
        recorder.url = str(server.make_url("/hook"))
        return recorder

    return factory


class Clock:
    """Wall-clock time the test moves by hand (alert timestamps); timers still run for real."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


DEMO_RULES = """
groups:
  - name: demo
    rules:
      - alert: DemoHigh
        expr: demo_latency_seconds > 1
        for: {for_}
        labels:
          severity: page
        annotations:
          summary: "{{{{ $labels.route }}}} is slow"
          description: "latency {{{{ $value | humanizeDuration }}}}"
"""


@pytest.fixture
async def http_session():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make_service(tmp_path, clock, http_session):
    """Factory: an AlertingService over a real registry whose gauge the test sets."""
    services: list[AlertingService] = []

    def factory(alerting: dict[str, Any], rules: str | None = None, for_: str = "0s",
                registry: CollectorRegistry | None = None, gauge: Gauge | None = None):
        own_registry = registry is None
        if registry is None:
            registry = CollectorRegistry()
            gauge = Gauge("demo_latency_seconds", "demo", ["route"], registry=registry)
        defaults = {"group_wait": 0.05, "group_interval": 0.2, "repeat_interval": 3600,
                    "state_file": str(tmp_path / "state.json"),
                    "dead_letter_file": str(tmp_path / "dead.jsonl")}
        config = AlertingConfig.model_validate({**defaults, **alerting})
        groups = parse_rule_text(rules or DEMO_RULES.format(for_=for_))
        service = AlertingService(config, groups, registry=registry,
                                  session=lambda: http_session,
                                  external_url="http://metricsd.test:9811", clock=clock)
        service.gauge = gauge  # type: ignore[attr-defined]
        if own_registry:
            registry.register(AlertingCollector(service))
        services.append(service)
        return service

    yield factory
    for service in services:
        await service.close()


def receiver_config(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "backoff": 0.02, "max_backoff": 0.2, **extra}


def only(recorder: Recorder) -> Any:
    assert len(recorder.received) == 1, recorder.bodies
    return recorder.received[0].json


Factory = Callable[..., Any]
