"""History: hourly rollups in an SQLite file that survive restarts, and the reports on them.

`setup(app)` creates the service when `history.path` is set, one cleanup context that opens
and closes the file (and the digest's HTTP session), and the jobs: flush (queued beacon
samples into rows), sample (PostgreSQL and alert facts), retention, and the weekly report's
schedule (`report.schedule`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from metricsd.alerting import ALERTS
from metricsd.core import CONFIG, READINESS, REGISTRY, SCHEDULER
from metricsd.history.report.schedule import ReportScheduler
from metricsd.history.selfmetrics import HistorySource
from metricsd.history.service import HistoryService
from metricsd.ingest import STORE
from metricsd.postgres import PG_STATE, PLANS

HISTORY_DB = web.AppKey("history_db", HistoryService)
REPORTS = web.AppKey("reports", ReportScheduler)
REPORT_SESSION = web.AppKey("report_session", aiohttp.ClientSession)
FLUSH_JOB = "rollups:flush"
SAMPLE_JOB = "rollups:sample"
RETAIN_JOB = "rollups:retain"
REPORT_JOB = "report:schedule"


def advice(app: web.Application) -> Callable[[], list[dict[str, Any]]]:
    """Index advice of the plans subsystem, when it has any (live only, not in the file)."""
    def read() -> list[dict[str, Any]]:
        plans = app.get(PLANS)
        out: list[dict[str, Any]] = []
        if plans is None:
            return out
        for target, tracker in plans.trackers.items():
            for t in tracker.tracked.values():
                for item in t.advice or []:
                    out.append({"target": target, "query": t.query, **item})
        return out
    return read


async def _sample(app: web.Application) -> None:
    await app[HISTORY_DB].sample(app.get(PG_STATE), app.get(PLANS), app.get(ALERTS))


async def _report_tick(app: web.Application) -> None:
    await app[REPORTS].tick(app[REPORT_SESSION])


async def _context(app: web.Application) -> AsyncIterator[None]:
    service = app.get(HISTORY_DB)
    if service is not None:
        await service.open()
    app[REPORT_SESSION] = aiohttp.ClientSession()
    try:
        yield
    finally:
        await app[REPORT_SESSION].close()
        if service is not None:
            await service.close()


def setup(app: web.Application, clock: Callable[[], float] = time.time) -> None:
    """The history service and report schedule; nothing when neither is configured."""
    config = app[CONFIG]
    scheduler = app[SCHEDULER]
    if (config.history.path is None and config.report.schedule is None
            and config.report.source.prometheus_url is None):
        return
    if config.history.path is not None:
        service = app[HISTORY_DB] = HistoryService(config.history, app[STORE], clock)
        app[REGISTRY].add_source(HistorySource(service))
        app[READINESS]["history"] = lambda: {"ok": True, "path": str(service.db.path),
                                             "bytes": service.db.size_bytes()}
        scheduler.add_job(service.flush, "interval", seconds=config.history.flush_interval,
                          id=FLUSH_JOB, max_instances=1, coalesce=True)
        sample_every = min(max(config.postgres.scrape_interval / 2, 1.0), 30.0)
        scheduler.add_job(_sample, "interval", seconds=sample_every, args=[app],
                          id=SAMPLE_JOB, max_instances=1, coalesce=True)
        scheduler.add_job(service.retain, "interval", seconds=3600, id=RETAIN_JOB,
                          max_instances=1, coalesce=True)
    if config.report.schedule is not None:
        db = app[HISTORY_DB].db if HISTORY_DB in app else None
        app[REPORTS] = ReportScheduler(config, db, clock, advice(app))
        scheduler.add_job(_report_tick, "interval", seconds=30, args=[app], id=REPORT_JOB,
                          max_instances=1, coalesce=True)
    app.cleanup_ctx.append(_context)
