"""The overview: figures for the page and /v1/summary, and the per-minute history behind
its sparklines. `setup(app)` creates the History and its once-a-minute sampling job."""

from __future__ import annotations

import time

from aiohttp import web

from metricsd.alerting import ALERTS
from metricsd.core import CONFIG, SCHEDULER
from metricsd.ingest import BEACON_TYPES, STORE
from metricsd.ingest.cache import CacheBeacon
from metricsd.overview import model
from metricsd.overview.history import History
from metricsd.overview.model import CARD_SERIES, MAX_ROUTES, Sources
from metricsd.postgres import PG_STATE

HISTORY = web.AppKey("history", History)


def sources(app: web.Application) -> Sources:
    """What the overview reads, from the app (alerting may be unconfigured)."""
    cache = app[BEACON_TYPES].get("cache")
    return Sources(app[STORE], app.get(PG_STATE), app.get(ALERTS),
                   app[CONFIG].ingest.operations,
                   cache.state if isinstance(cache, CacheBeacon) else None)


async def sample_history(app: web.Application, now: float | None = None) -> None:
    """The once-a-minute job: headline numbers and route p95s into the History."""
    await model.sample_history(sources(app), app[HISTORY], now)


def setup(app: web.Application) -> None:
    """The History (bounded to the cards and the route table) and its sampling job."""
    app[HISTORY] = History(app[CONFIG].admin.history_minutes,
                           max_series=len(CARD_SERIES) + MAX_ROUTES, started_at=time.time())
    app[SCHEDULER].add_job(sample_history, "interval", seconds=60, args=[app], id="history:sample",
                           max_instances=1, coalesce=True)
