"""format: alertmanager_api against an aiohttp server that speaks Alertmanager's v2 API.

Timing with the hand-moved clock: what is posted when (new, resend, resolved, retention),
the body of every alert, bounded batches, the bounded queue, several Alertmanagers, and
metricsd's own grouping still working for the other receivers. tests/e2e/
test_alertmanager.py runs the same receiver against a real Alertmanager.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from metricsd.alerting.notify.apiqueue import AlertQueue, alerts_endpoint
from metricsd.alerting.stats import AlertingStats
from metricsd.config import AlertingConfig
from tests.alerting.conftest import receiver_config

START = "2023-11-14T22:13:20Z"  # the test clock's start, 1_700_000_000


@dataclass
class FakeAlertmanager:
    """Records POST /api/v2/alerts bodies; answers `status` (200 by default)."""

    url: str = ""
    posts: list[list[dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    gate: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_posts(self, count: int, within_s: float = 5.0) -> None:
        async with asyncio.timeout(within_s):
            while len(self.posts) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def alerts(self) -> list[dict[str, Any]]:
        return [a for post in self.posts for a in post]


@pytest.fixture
def make_am(aiohttp_server):
    async def factory(prefix: str = "") -> FakeAlertmanager:
        am = FakeAlertmanager()

        async def handle(request: web.Request) -> web.Response:
            if am.gate is not None:
                await am.gate.wait()
            body = await request.json()
            assert isinstance(body, list)
            if am.status != 200:
                return web.Response(status=am.status, text="refused")
            am.posts.append(body)
            am.arrived.set()
            return web.json_response("")

        app = web.Application()
        app.router.add_post(f"{prefix}/api/v2/alerts", handle)
        server = await aiohttp_server(app)
        am.url = str(server.make_url(prefix or "/"))
        return am

    return factory


def api_receiver(*urls: str, **extra: Any) -> dict[str, Any]:
    return {"receivers": [{"name": "am", "format": "alertmanager_api", "urls": list(urls),
                           **extra}],
            "default_receiver": "am", "evaluation_interval": 15}


async def settle() -> None:
    await asyncio.sleep(0.05)


async def test_firing_alert_is_posted_resent_and_resolved_like_prometheus(
    make_am, make_service, clock
):
    am = await make_am()
    service = make_service(api_receiver(am.url, resend_delay=60,
                                        external_labels={"cluster": "eu", "route": "x"}))
    service.gauge.labels(route="/orders").set(2.5)
    await service.evaluate_once()
    await am.wait_posts(1)
    [alert] = am.posts[0]
    assert set(alert) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    # external labels are added; the alert's own value of a label wins.
    assert alert["labels"] == {"alertname": "DemoHigh", "route": "/orders",
                               "severity": "page", "cluster": "eu"}
    assert alert["annotations"] == {"summary": "/orders is slow", "description": "latency 2.5s"}
    assert alert["startsAt"] == START
    # endsAt = now + 4 * max(evaluation_interval 15 s, resend_delay 60 s) = +240 s
    assert alert["endsAt"] == "2023-11-14T22:17:20Z"
    assert alert["generatorURL"].startswith("http://metricsd.test:9811/graph?g0.expr=")

    for step in (15, 15, 15):  # 45 s later: not due yet
        clock.advance(step)
        await service.evaluate_once()
    await settle()
    assert len(am.posts) == 1
    clock.advance(15)  # 60 s after the first send: resent with a fresh endsAt
    await service.evaluate_once()
    await am.wait_posts(2)
    assert am.posts[1][0]["endsAt"] == "2023-11-14T22:18:20Z"
    assert am.posts[1][0]["startsAt"] == START

    service.gauge.labels(route="/orders").set(0.1)
    clock.advance(15)  # resolved at once, not at the next resend
    await service.evaluate_once()
    await am.wait_posts(3)
    [resolved] = am.posts[2]
    assert resolved["endsAt"] == "2023-11-14T22:14:35Z"
    assert resolved["labels"] == alert["labels"]
    clock.advance(60)
    await service.evaluate_once()
    await am.wait_posts(4)  # resolved alerts are re-sent too, with the same endsAt
    assert am.posts[3][0]["endsAt"] == "2023-11-14T22:14:35Z"
    clock.advance(900)  # past the 15 min retention: forgotten, nothing more is sent
    await service.evaluate_once()
    clock.advance(60)
    await service.evaluate_once()
    await settle()
    assert len(am.posts) == 4
    assert service.registry.get_sample_value(
        "metricsd_alertmanager_alerts_sent_total",
        {"receiver": "am", "alertmanager": am.url}) == 4


async def test_batches_are_bounded_and_every_alertmanager_gets_everything(
    make_am, make_service
):
    first, second = await make_am(), await make_am("/prefix")
    service = make_service(api_receiver(first.url, second.url, max_batch=3))
    for i in range(7):
        service.gauge.labels(route=f"/r{i}").set(2)
    await service.evaluate_once()
    for am in (first, second):
        await am.wait_posts(3)
        assert sorted(len(p) for p in am.posts) == [1, 3, 3]
        assert sorted(a["labels"]["route"] for a in am.alerts()) == [f"/r{i}" for i in range(7)]


async def test_refused_batches_are_counted_and_resent_later(make_am, make_service, clock):
    am = await make_am()
    am.status = 400
    service = make_service(api_receiver(am.url, resend_delay=10))
    service.gauge.labels(route="/a").set(2)
    await service.evaluate_once()
    await settle()
    labels = {"receiver": "am", "alertmanager": am.url}
    assert service.registry.get_sample_value(
        "metricsd_alertmanager_alerts_failed_total", labels) == 1
    assert service.receivers() == [{"name": "am", "format": "alertmanager_api", "up": False}]
    am.status = 200
    clock.advance(10)
    await service.evaluate_once()
    await am.wait_posts(1)
    await settle()
    assert service.receivers()[0]["up"] is True
    assert service.registry.get_sample_value(
        "metricsd_alertmanager_alerts_sent_total", labels) == 1


async def _fill(queue: AlertQueue) -> None:
    """Two puts before the sender task gets to run: 5 alerts into a capacity of 3."""
    no_session: Any = None
    queue.put([{"n": 1}, {"n": 2}], session=lambda: no_session)
    queue.put([{"n": 3}, {"n": 4}, {"n": 5}], session=lambda: no_session)
    queue._task.cancel()  # type: ignore[union-attr]  # it never posts to a None session


def test_full_queue_drops_the_oldest_and_counts_them():
    stats = AlertingStats()
    queue = AlertQueue("am", "http://127.0.0.1:9", capacity=3, max_batch=10, timeout=1,
                       headers=lambda body: {}, stats=stats)
    with asyncio.Runner() as runner:
        runner.run(_fill(queue))
    assert [a["n"] for a in queue._queue] == [3, 4, 5]
    assert stats.am_dropped[("am", "http://127.0.0.1:9")] == 2
    assert stats.am_queue_length[("am", "http://127.0.0.1:9")] == 3


async def test_slow_alertmanager_builds_a_queue_that_drains(make_am, make_service, clock):
    am = await make_am()
    am.gate = asyncio.Event()
    service = make_service(api_receiver(am.url, resend_delay=1, queue_capacity=2,
                                        max_batch=1))
    service.gauge.labels(route="/a").set(2)
    service.gauge.labels(route="/b").set(2)
    await service.evaluate_once()  # /a in flight (blocked), /b queued
    await settle()
    for _ in range(3):  # every second both are due again: the queue overflows
        clock.advance(1)
        await service.evaluate_once()
    labels = {"receiver": "am", "alertmanager": am.url}
    assert service.registry.get_sample_value(
        "metricsd_alertmanager_queue_length", labels) == 2
    assert service.registry.get_sample_value(
        "metricsd_alertmanager_alerts_dropped_total", labels) == 5
    am.gate.set()
    await am.wait_posts(3)
    await settle()
    assert service.registry.get_sample_value(
        "metricsd_alertmanager_queue_length", labels) == 0


async def test_other_receivers_keep_metricsd_grouping(make_am, make_receiver, make_service):
    am = await make_am()
    rec = await make_receiver()
    service = make_service({
        "receivers": [receiver_config("chat", rec.url),
                      {"name": "am", "format": "alertmanager_api", "url": am.url}],
        "default_receiver": "am",
        "routes": [{"receiver": "chat", "matchers": ['route="/chat"'], "continue": True}],
    })
    service.gauge.labels(route="/chat").set(2)
    service.gauge.labels(route="/other").set(2)
    await service.evaluate_once()
    await am.wait_posts(1)
    await rec.wait_for(1)
    # The chat route matched /chat only (continue: true, then the root route to am) ...
    [body] = rec.bodies
    assert body["groupKey"].startswith('{}/{route="/chat"}:')
    assert [a["labels"]["route"] for a in body["alerts"]] == ["/chat"]
    # ... and the Alertmanager got both alerts, ungrouped.
    assert sorted(a["labels"]["route"] for a in am.alerts()) == ["/other"]


def test_alerts_endpoint_keeps_a_path_prefix():
    assert alerts_endpoint("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts_endpoint("http://h/am/") == "http://h/am/api/v2/alerts"
    assert alerts_endpoint("http://h/api/v2/alerts") == "http://h/api/v2/alerts"


@pytest.mark.parametrize(("receiver", "error"), [
    ({"name": "a", "format": "alertmanager_api"}, "needs urls"),
    ({"name": "a", "format": "alertmanager_api", "urls": ["ftp://x"]}, "not an http"),
    ({"name": "a", "url": "http://x", "urls": ["http://y"]}, "urls is for alertmanager_api"),
    ({"name": "a", "format": "slack"}, "needs url"),
])
def test_receiver_config_is_checked(receiver, error):
    with pytest.raises(ValueError, match=error):
        AlertingConfig.model_validate({"receivers": [receiver], "default_receiver": "a"})


def test_fallback_cannot_be_an_alertmanager():
    with pytest.raises(ValueError, match="fallback_receiver cannot be"):
        AlertingConfig.model_validate({
            "receivers": [{"name": "hook", "url": "http://x"},
                          {"name": "am", "format": "alertmanager_api", "url": "http://y"}],
            "default_receiver": "hook", "fallback_receiver": "am"})


async def test_reload_keeps_the_resend_schedule_and_stops_the_old_queues(
    make_am, make_service, clock
):
    from metricsd.alerting.rules.load import parse_rule_text
    from tests.alerting.conftest import DEMO_RULES

    am = await make_am()
    service = make_service(api_receiver(am.url, resend_delay=60))
    service.gauge.labels(route="/a").set(2)
    await service.evaluate_once()
    await am.wait_posts(1)
    old = service.receivers_by_name["am"]
    config = AlertingConfig.model_validate({
        **api_receiver(am.url, resend_delay=60), "group_wait": 0.05})
    service.prepare_reload(config, parse_rule_text(DEMO_RULES.format(for_="0s")),
                           15.0, 300.0)()
    new = service.receivers_by_name["am"]
    assert new is not old
    clock.advance(15)  # not due for 45 s more: the new receiver knows it was sent
    await service.evaluate_once()
    await settle()
    assert len(am.posts) == 1
    assert all(q._task is None or q._task.done() for q in old.queues)  # type: ignore[attr-defined]
    clock.advance(45)
    await service.evaluate_once()
    await am.wait_posts(2)
