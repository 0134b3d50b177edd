"""History: hourly rollups in an SQLite file that survive restarts, and the reports on them.

`setup(app)` (only when `history.path` is set) creates the service, one cleanup context
that opens and closes the file, and the jobs: flush (queued beacon samples into rows),
sample (PostgreSQL and alert facts), retention, and the weekly report's schedule.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from metricsd.alerting import ALERTS
from metricsd.core import CONFIG, READINESS, REGISTRY, SCHEDULER
from metricsd.history.collector import HistoryCollector
from metricsd.history.service import HistoryService
from metricsd.ingest import STORE
from metricsd.postgres import PG_STATE, PLANS

HISTORY_DB = web.AppKey("history_db", HistoryService)
FLUSH_JOB = "history:flush"
SAMPLE_JOB = "history:sample"
RETAIN_JOB = "history:retain"


async def _sample(app: web.Application) -> None:
    await app[HISTORY_DB].sample(app.get(PG_STATE), app.get(PLANS), app.get(ALERTS))


async def _history(app: web.Application) -> AsyncIterator[None]:
    service = app[HISTORY_DB]
    await service.open()
    yield
    await service.close()


def setup(app: web.Application) -> None:
    """The history service, its file (context) and jobs; nothing when history.path is unset."""
    config = app[CONFIG]
    if config.history.path is None:
        return
    service = app[HISTORY_DB] = HistoryService(config.history, app[STORE], time.time)
    app.cleanup_ctx.append(_history)
    app[REGISTRY].register(HistoryCollector(service))
    app[READINESS]["history"] = lambda: {"ok": True, "path": str(service.db.path),
                                         "bytes": service.db.size_bytes()}
    scheduler = app[SCHEDULER]
    scheduler.add_job(service.flush, "interval", seconds=config.history.flush_interval,
                      id=FLUSH_JOB, max_instances=1, coalesce=True)
    sample_every = min(max(config.postgres.scrape_interval / 2, 1.0), 30.0)
    scheduler.add_job(_sample, "interval", seconds=sample_every, args=[app], id=SAMPLE_JOB,
                      max_instances=1, coalesce=True)
    scheduler.add_job(service.retain, "interval", seconds=3600, id=RETAIN_JOB,
                      max_instances=1, coalesce=True)
