"""create_app(): the only place that knows what metricsd is made of and the start-up order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from metricsd.config import Config
from metricsd.keys import CONFIG, HTTP, READINESS, REGISTRY, SCHEDULER, SELF_METRICS, STORE
from metricsd.selfmetrics import SelfMetrics
from metricsd.store.series import Store
from metricsd.web import status


async def http_session(app: web.Application) -> AsyncIterator[None]:
    """One client session for every outgoing webhook."""
    app[HTTP] = aiohttp.ClientSession()
    yield
    await app[HTTP].close()


async def scheduler(app: web.Application) -> AsyncIterator[None]:
    """APScheduler on this event loop; subsystems add their jobs before it starts."""
    sched = app[SCHEDULER]
    store = app[STORE]
    sched.add_job(lambda: store.expire(time.time()), "interval", seconds=60,
                  id="store:expire", max_instances=1, coalesce=True)
    sched.start()
    yield
    sched.shutdown(wait=False)


def create_app(config: Config) -> web.Application:
    """Build the application; I/O happens only in the cleanup contexts."""
    app = web.Application(client_max_size=config.ingest.max_body_bytes)
    app[CONFIG] = config
    app[REGISTRY] = CollectorRegistry(auto_describe=True)
    app[STORE] = Store(
        max_series=config.ingest.max_series,
        window_samples=config.ingest.window.samples,
        window_seconds=config.ingest.window.seconds,
        idle_timeout=config.ingest.series_idle_timeout,
    )
    app[SELF_METRICS] = SelfMetrics()
    app[SCHEDULER] = AsyncIOScheduler()
    app[READINESS] = {}

    # --- wiring: subsystems (ingest, export, postgres, alerting, page) ---

    status.setup(app)
    app.cleanup_ctx.append(http_session)
    app.cleanup_ctx.append(scheduler)
    return app
