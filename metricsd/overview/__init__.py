"""The overview: figures for the page and /v1/summary, and the per-minute history behind
its sparklines. `setup(app)` creates the History and its once-a-minute sampling job, and
the cached views (snapshot.py) every reader of those figures shares."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from aiohttp import web

from metricsd.alerting import ALERTS
from metricsd.config import Config
from metricsd.core import CONFIG, SCHEDULER, Apply, current_config, register_reloader
from metricsd.ingest import BEACON_TYPES, STORE
from metricsd.ingest.attribution import AttributionStore
from metricsd.ingest.cache import CacheBeacon
from metricsd.ingest.vitals import VitalsBeacon
from metricsd.overview import model
from metricsd.overview.attribution import attribution_document
from metricsd.overview.history import History
from metricsd.overview.model import CARD_SERIES, MAX_ROUTES, Sources
from metricsd.overview.series import series_document
from metricsd.overview.snapshot import Cached, Snapshot
from metricsd.postgres import PG_STATE

log = logging.getLogger(__name__)

__all__ = ["HISTORY", "VIEWS", "Snapshot", "Views", "sample_history", "setup", "sources"]


def _attribution(app: web.Application) -> AttributionStore | None:
    """The vitals kind's attribution summaries (None when the kind is not registered)."""
    kind = app[BEACON_TYPES].get("vitals")
    return kind.state.attribution if isinstance(kind, VitalsBeacon) else None


def sources(app: web.Application) -> Sources:
    """What the overview reads, from the app (alerting may be unconfigured)."""
    cache = app[BEACON_TYPES].get("cache")
    ingest = current_config(app).ingest
    return Sources(app[STORE], app.get(PG_STATE), app.get(ALERTS),
                   vitals_min_views=ingest.vitals_min_page_views,
                   attribution=_attribution(app), objectives=ingest.operations,
                   caches=cache.state if isinstance(cache, CacheBeacon) else None)


class Views:
    """The page's figures and the /v1/summary document, each computed at most once a second."""

    def __init__(self, app: web.Application) -> None:
        # Sources are looked up per computation: a reload may replace a subsystem's object.
        self.page: Cached[dict[str, Any]] = Cached(
            lambda now: model.figures(sources(app), now))
        self.series: Cached[bytes] = Cached(lambda now: series_document(
            app[STORE], now, current_config(app).ingest.vitals_min_page_views))
        self.attribution: Cached[dict[str, Any]] = Cached(
            lambda now: attribution_document(app[STORE], _attribution(app), now))

    def invalidate(self) -> None:
        """The next reader of each view computes it afresh."""
        self.page.invalidate()
        self.series.invalidate()
        self.attribution.invalidate()

    async def close(self) -> None:
        await self.page.close()
        await self.series.close()
        await self.attribution.close()


HISTORY = web.AppKey("history", History)
VIEWS = web.AppKey("views", Views)


async def sample_history(app: web.Application, now: float | None = None) -> None:
    """The once-a-minute job: headline numbers and route p95s into the History.

    The job reads the shared page snapshot; an explicit `now` (tests, replays) computes
    the figures for that instant instead.
    """
    if now is None:
        try:
            snap = await app[VIEWS].page.get()
        except Exception:  # a bad minute must not stop the job; the page shows a gap
            log.exception("history sample failed")
            return
        model.record_history(snap.value, app[HISTORY], snap.computed_at)
        return
    await model.sample_history(sources(app), app[HISTORY], now)


async def _reload(app: web.Application, old: Config, new: Config) -> Apply:
    """After a reload the next reader computes afresh (new targets, rules, receivers)."""

    async def apply() -> None:
        app[VIEWS].invalidate()

    return apply


async def _views(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[VIEWS].close()


def setup(app: web.Application) -> None:
    """The History (bounded to the cards and the route table), its job, the cached views."""
    app[HISTORY] = History(app[CONFIG].admin.history_minutes,
                           max_series=len(CARD_SERIES) + MAX_ROUTES, started_at=time.time())
    app[VIEWS] = Views(app)
    app.cleanup_ctx.append(_views)
    register_reloader(app, "overview", partial(_reload, app))
    app[SCHEDULER].add_job(sample_history, "interval", seconds=60, args=[app], id="history:sample",
                           max_instances=1, coalesce=True)
