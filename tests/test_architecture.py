"""docs/architecture.md's promise: a beacon kind or a receiver is one class plus its
registration, and nothing else in metricsd changes (route, store, /metrics, readers)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from metricsd.core import REGISTRY
from metricsd.export.beacons import View, histogram, window_help, window_summary
from metricsd.export.read import Samples
from metricsd.ingest.base import BEACONS, BeaconType, Context, Sample, as_object, number, register
from metricsd.ingest.normalize import normalize_path
from metricsd.store.series import FamilySpec, Store


@pytest.fixture
def longtasks() -> Iterator[type[BeaconType]]:
    """The worked example of docs/architecture.md, registered for one test only."""

    class LongTaskBeacon(BeaconType):
        """Long tasks (PerformanceLongTaskTiming) from browsers: page and duration."""

        name = "longtasks"
        needs_token = False
        cors = True
        series = (FamilySpec("longtask", ("page",), (0.05, 0.1, 0.25, 0.5, 1.0, 2.5), ("",)),)

        @classmethod
        def exports(cls, store: Store) -> list[View]:
            (longtask,) = cls.series
            return [
                histogram("metricsd_longtask_duration_seconds", "Long tasks, cumulative",
                          longtask),
                window_summary("metricsd_longtask_window_seconds",
                               f"Long task quantiles {window_help(store)}", longtask),
            ]

        def parse(self, item: Any, ctx: Context) -> Sample:
            item = as_object(item)
            page = normalize_path(self.string(item, "page") or "/")
            seconds = number(item, "duration_ms", 50.0, 60_000.0) / 1000.0
            return ("longtask", (page,), seconds, ctx.now, 0, 0, "")

    register(LongTaskBeacon)
    try:
        yield LongTaskBeacon
    finally:
        del BEACONS[LongTaskBeacon.name]


async def test_a_beacon_kind_is_one_class_and_its_registration(longtasks, aiohttp_client,
                                                                 make_config):
    client = await aiohttp_client(create_app(make_config()))
    resp = await client.post("/v1/beacons/longtasks", json=[
        {"page": "/orders/42", "duration_ms": 120}, {"page": "/orders/43", "duration_ms": 80},
        {"page": "/orders/44", "duration_ms": 10}])  # below 50 ms: not a long task
    assert resp.status == 202
    body = await resp.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    text = await (await client.get("/metrics")).text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    hist = families["metricsd_longtask_duration_seconds"]
    assert hist.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in hist.samples if s.name.endswith("_bucket")}
    assert buckets == {"0.05": 0, "0.1": 1, "0.25": 2, "0.5": 2, "1.0": 2, "2.5": 2, "+Inf": 2}
    # The alert engine and the page read the same families through the read interface.
    samples = Samples(client.app[REGISTRY])
    await samples.prepare(0.0)
    current = samples.current(["metricsd_longtask_window_seconds"])
    medians = [v for labels, v in current["metricsd_longtask_window_seconds"]
               if labels == {"page": "/orders/:id", "quantile": "0.5"}]
    assert medians == [pytest.approx(0.1)]


async def test_a_receiver_kind_is_one_class_and_its_registration(aiohttp_server, make_config):
    """A `format: ntfy` receiver: registered, checked by check-config, posted to."""
    from metricsd.alerting.notify.notification import Notification
    from metricsd.alerting.notify.receivers.base import RECEIVER_KINDS, Receiver
    from metricsd.alerting.notify.receivers.base import register as register_receiver
    from metricsd.alerting.rules.validate import compile_alerting

    class NtfyReceiver(Receiver):
        """POSTs one line per notification (ntfy.sh style)."""

        kind = "ntfy"

        def render(self, notification: Notification) -> Mapping[str, Any]:
            return {"topic": notification.receiver, "message": notification.status}

    got: list[Any] = []

    async def ntfy(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/", ntfy)
    server = await aiohttp_server(app)
    register_receiver(NtfyReceiver)
    try:
        config = make_config({"alerting": {
            "receivers": [{"name": "phone", "url": str(server.make_url("/")), "format": "ntfy"}],
            "default_receiver": "phone"}})
        compile_alerting(config.alerting)  # the config check accepts the new format
        receiver = RECEIVER_KINDS["ntfy"].from_config(config.alerting.receivers[0])
        assert isinstance(receiver, NtfyReceiver)
    finally:
        del RECEIVER_KINDS["ntfy"]
    notification = Notification(receiver="phone", group_key="{}", group_labels={}, alerts=())
    async with aiohttp.ClientSession() as session:
        delivery = await receiver.send(notification, session)
    assert delivery.ok and got == [{"topic": "phone", "message": "resolved"}]
