"""create_app(): the only place that knows what metricsd is made of and the start-up order."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from metricsd import alerting
from metricsd.config import Config
from metricsd.export.prometheus import SelfCollector, StoreCollector
from metricsd.keys import CONFIG, HTTP, READINESS, REGISTRY, SCHEDULER, SELF_METRICS, STORE
from metricsd.selfmetrics import SelfMetrics
from metricsd.store.series import Store
from metricsd.web import auth, beacons, metrics, page, postgres, status, summary

log = logging.getLogger(__name__)


async def http_session(app: web.Application) -> AsyncIterator[None]:
    """One client session for every outgoing webhook."""
    app[HTTP] = aiohttp.ClientSession()
    yield
    await app[HTTP].close()


async def _expire(store: Store) -> None:
    store_expired = await store.expire_idle(time.time())
    if store_expired:
        log.info("expired %d idle series", store_expired)


async def scheduler(app: web.Application) -> AsyncIterator[None]:
    """APScheduler on this event loop; subsystems add their jobs before it starts."""
    sched = app[SCHEDULER]
    store = app[STORE]
    sched.add_job(_expire, "interval", args=[store], seconds=60,
                  id="store:expire", max_instances=1, coalesce=True)
    sched.start()
    yield
    sched.shutdown(wait=False)


def create_app(config: Config) -> web.Application:
    """Build the application; I/O happens only in the cleanup contexts."""
    app = web.Application(
        client_max_size=config.ingest.max_body_bytes, middlewares=[auth.admin_auth]
    )
    app[CONFIG] = config
    registry = app[REGISTRY] = CollectorRegistry(auto_describe=True)
    store = app[STORE] = Store(
        max_series=config.ingest.max_series,
        window_samples=config.ingest.window.samples,
        window_seconds=config.ingest.window.seconds,
        idle_timeout=config.ingest.series_idle_timeout,
        started_at=time.time(),
    )
    app[SELF_METRICS] = SelfMetrics()
    app[SCHEDULER] = AsyncIOScheduler()
    app[READINESS] = {}
    registry.register(StoreCollector(store))
    registry.register(SelfCollector(store, app[SELF_METRICS]))
    app[READINESS]["ingest"] = lambda: {
        "ok": True, "series": store.series_count, "max_series": store.pool.slots,
    }

    # --- wiring: each subsystem adds its routes, collectors, readiness and jobs ---
    status.setup(app)
    metrics.setup(app)
    beacons.setup(app)
    summary.setup(app)
    postgres.setup(app)  # PG_STATE, exporter, /v1/postgres/*, readiness, pg_pools ctx (first)
    page.setup(app)
    alerting.setup(app)  # rules, alerts:evaluate job, /v1/alerts, collector

    # Cleanup contexts start in this order and stop in reverse: pools, then the HTTP
    # session, then the scheduler whose jobs use both.
    app.cleanup_ctx.append(http_session)
    app.cleanup_ctx.append(scheduler)
    return app
