"""The weekly report goes out at report.schedule (clock injected) to real receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from metricsd.config import Config, HistoryConfig
from metricsd.history.report.period import last_full_week, week_period
from metricsd.history.report.schedule import ReportScheduler, next_run
from metricsd.history.service import HistoryService
from tests.history.stores import make_store, observe


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_next_run_is_the_next_local_monday_0900(tz: str) -> None:
    zone = ZoneInfo(tz)
    # Every hour across two weeks, including the DST change of 2026-10-25 / 2026-11-01.
    start = datetime(2026, 10, 19, tzinfo=zone).timestamp()
    for h in range(24 * 21):
        after = start + h * 3600 + 17
        when = datetime.fromtimestamp(next_run("MON 09:00", tz, after), zone)
        assert (when.weekday(), when.hour, when.minute) == (0, 9, 0)
        assert 0 < when.timestamp() - after <= 7 * 86400 + 3600


def test_last_full_week() -> None:
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert last_full_week(monday_9).id == "2026-W48"
    assert last_full_week(monday_9 - 10 * 3600).id == "2026-W47"  # Sunday evening
    week = week_period("2026-W48", "Europe/Berlin")
    assert week.end - week.start == 7 * 86400
    assert len(week.days()) == 7


async def test_digest_reaches_slack_and_webhook_at_the_scheduled_time(
        aiohttp_server: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    received: dict[str, list[tuple[dict[str, str], bytes]]] = {"slack": [], "am": []}

    def handler(kind: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            received[kind].append((dict(request.headers), await request.read()))
            return web.Response(status=200)
        return handle

    app = web.Application()
    app.router.add_post("/slack", handler("slack"))
    app.router.add_post("/am", handler("am"))
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    config = make_config({
        "alerting": {"receivers": [
            {"name": "chat", "url": f"{base}/slack", "format": "slack"},
            {"name": "hook", "url": f"{base}/am", "format": "alertmanager", "secret": "k"}],
            "default_receiver": "hook"},
        "report": {"schedule": "MON 09:00", "timezone": "Europe/Berlin",
                   "receivers": ["chat", "hook"],
                   "external_url": "https://metricsd.example.com/"},
    })
    berlin = ZoneInfo("Europe/Berlin")
    clock = Clock(datetime(2026, 11, 30, 8, 58, tzinfo=berlin).timestamp())
    store = make_store()
    history = HistoryService(HistoryConfig(path=str(tmp_path / "h.sqlite")), store, clock)
    await history.open()
    # Slow API traffic in W48 so that a target is missed.
    stamps = np.full(100, datetime(2026, 11, 25, 12, tzinfo=berlin).timestamp())
    observe(store, "api", [("shop", "/slow", "GET")] * 100, np.full(100, 1.2), stamps, [1] * 100)
    await history.flush()
    scheduler = ReportScheduler(config, history.db, clock)
    async with aiohttp.ClientSession() as session:
        assert not await scheduler.tick(session)  # 08:58: not yet
        clock.now += 60
        assert not await scheduler.tick(session)  # 08:59
        assert received == {"slack": [], "am": []}
        clock.now += 61  # 09:00:01
        assert await scheduler.tick(session)
        assert not await scheduler.tick(session)  # once a week
    await history.close()
    link = "https://metricsd.example.com/reports/2026-W48"
    (headers, body), = received["slack"]
    slack = json.loads(body)
    assert slack["blocks"][0]["type"] == "header" and "2026-W48" in slack["text"]
    assert any(b.get("type") == "actions" and b["elements"][0]["url"] == link
               for b in slack["blocks"])
    assert re.search(r"API p95: 1,2\d\d ms \(< 500 ms\) MISSED", slack["blocks"][1]["text"]["text"])
    (headers, body), = received["am"]
    assert headers["X-Metricsd-Signature"] == "sha256=" + hmac.new(
        b"k", body, hashlib.sha256).hexdigest()
    am = json.loads(body)
    assert am["version"] == "4" and am["status"] == "firing" and am["externalURL"] == link
    missed = {a["labels"]["target"] for a in am["alerts"]}
    assert {"API p95", "API p99"} <= missed
    assert am["report"]["period"]["id"] == "2026-W48"
    # The built report is kept in the file for /reports.
    rows = await history.db.read(lambda c: c.execute("SELECT period FROM reports").fetchall())
    assert rows == [("2026-W48",)]


async def test_the_daemon_schedules_the_report(aiohttp_client: Any,
                                               make_config: Callable[..., Config],
                                               tmp_path: Path) -> None:
    from metricsd.app import create_app
    from metricsd.core import SCHEDULER
    from metricsd.history import REPORT_JOB, REPORTS

    config = make_config({"history": {"path": str(tmp_path / "h.sqlite")},
                          "report": {"schedule": "MON 09:00"}})
    client = await aiohttp_client(create_app(config))
    app = client.app
    assert app[SCHEDULER].get_job(REPORT_JOB) is not None
    clock = Clock(datetime(2026, 11, 30, 9, 0, 5, tzinfo=ZoneInfo("UTC")).timestamp())
    app[REPORTS].clock = clock
    app[REPORTS].due = clock.now - 1
    async with aiohttp.ClientSession() as session:
        assert await app[REPORTS].tick(session)
    resp = await client.get("/reports", params={"format": "json"})
    built = (await resp.json())["built"]
    assert [b["period"] for b in built] == ["2026-W48"]
